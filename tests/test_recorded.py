"""Recorded paper-scale runs (book/recorded/) are validated without re-running them: every verdict a recorded run
states is recomputed from the per-prompt rows committed beside it, with the package's statistics, and must agree.

This is what lets CI vouch for a run that took an hour on a CPU (or ran on a GPU) without repeating it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icl_geometry import claims
from icl_geometry import noisy_demos as nd

RECORDED = Path(__file__).resolve().parents[1] / "book" / "recorded"
CH07 = sorted(RECORDED.glob("07_*.json"))


def test_every_recorded_run_is_complete():
    """Each recorded JSON has its notebook, its rows and the fields the convention asks for."""
    for f in sorted(RECORDED.glob("*.json")):
        data = json.loads(f.read_text())
        assert {"chapter", "config", "claims", "wall_s", "machine", "commit"} <= set(data), f.name
        assert f.with_suffix(".ipynb").exists(), f"{f.name}: its executed notebook is missing"
        assert data["claims"] and all(c["kind"] for c in data["claims"]), f"{f.name}: claims without a kind"


@pytest.mark.parametrize("path", CH07, ids=[p.stem for p in CH07])
def test_chapter7_recorded_verdicts_follow_from_its_rows(path):
    data = json.loads(path.read_text())
    cfg = data["config"]
    rows = path.with_name(path.stem + nd.ROWS_SUFFIX)
    assert rows.exists(), f"{path.name}: no per-prompt rows ({rows.name}) to recompute its verdicts from"
    runs = nd.runs_from_rows(pd.read_csv(rows))
    names = [s.strip() for s in cfg["models"].split(",") if s.strip()]  # smallest first; claims compare the ends
    small, large = runs[names[0]], runs[names[-1]]
    numbers = nd.size_comparison(small, large, sorted(cfg["flip_rates"]), sorted(cfg["noise_rates"]),
                                 cfg["n_boot"], nd.LEVEL, cfg["seed"])
    recorded = {c["claim_id"]: c for c in data["claims"]}
    assert set(numbers["claims"]) <= set(recorded), "a claim the chapter makes is missing from the record"
    for cid, (value, interval) in numbers["claims"].items():
        rec = recorded[cid]
        np.testing.assert_allclose([value, *sorted(interval)], [rec["value"], rec["low"], rec["high"]],
                                   rtol=1e-9, atol=1e-12, err_msg=f"{path.name}: {cid}")
        how = {k: v for k, v in nd.CLAIMS[cid].items() if k in ("direction", "threshold", "null_margin")}
        verdict, _ = claims.judge(value, interval=interval, **how)
        assert verdict == rec["verdict"], f"{path.name}: {cid} recomputes as {verdict}, recorded {rec['verdict']}"


def test_nbval_never_collects_a_recorded_run():
    """`make test` runs nbval over book/; a recorded run must not be re-executed there (it took an hour or more,
    and CI's cell timeout would stop it): the root conftest leaves book/recorded out of collection."""
    import subprocess
    import sys

    root = RECORDED.parents[1]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", "slow or not slow", "--nbval-lax", "book"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    collected = [line for line in out.stdout.splitlines() if ".ipynb::" in line]
    assert collected, out.stdout[-2000:]
    assert not any("recorded/" in line for line in collected), [c for c in collected if "recorded/" in c][:3]
