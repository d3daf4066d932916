"""Recorded paper-scale runs (book/recorded/) are validated without re-running them: every verdict a recorded run
states is recomputed from the per-prompt rows committed beside it, with the package's statistics, and must agree.

This is what lets CI vouch for a run that took an hour on a CPU (or ran on a GPU) without repeating it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icl_geometry.bookkit import claims
from icl_geometry.experiments import context_and_reasoning as cg
from icl_geometry.experiments import noisy_demonstrations as nd

RECORDED = Path(__file__).resolve().parents[1] / "book" / "recorded"
CH07 = sorted(RECORDED.glob("07_*.json"))
# Chapter 4: the recorded full runs, and the committed ci run's results (same convention, checked the same way).
CH04 = sorted(RECORDED.glob("04_*.json")) + sorted((RECORDED.parent / "results").glob("04.json"))


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


@pytest.mark.parametrize("path", CH04, ids=[f"{p.parent.name}/{p.stem}" for p in CH04])
def test_chapter4_verdicts_follow_from_its_rows(path):
    """Every claim of a chapter-4 run recomputed from its per-prompt rows with `claim_values` (the chapter's
    own path): same values, intervals and verdicts; a recorded full run must have at least 300 base items."""
    data = json.loads(path.read_text())
    cfg = data["config"]
    rows = path.with_name(path.stem + cg.ROWS_SUFFIX)
    assert rows.exists(), f"{path.name}: no per-prompt rows ({rows.name}) to recompute its verdicts from"
    table = pd.read_csv(rows)
    assert table.item.nunique() == data["n_base_items"], f"{path.name}: rows and n_base_items disagree"
    if path.parent == RECORDED and cfg["profile"] == "full":
        assert data["n_base_items"] >= 300, f"{path.name}: a recorded full run needs at least 300 base items"
    recorded = {c["claim_id"]: c for c in data["claims"]}
    values = cg.claim_values(table, cfg["eps"], n_boot=cfg["n_boot"], level=0.9, seed=cfg["seed"])
    assert {c["claim_id"] for c in values} == set(recorded), f"{path.name}: the claims differ from the record"
    for c in values:
        rec = recorded[c["claim_id"]]
        np.testing.assert_allclose([c["value"], *sorted(c["interval"])], [rec["value"], rec["low"], rec["high"]],
                                   rtol=1e-9, atol=1e-12, err_msg=f"{path.name}: {c['claim_id']}")
        how = {k: c[k] for k in ("direction", "null_margin") if c.get(k) is not None}
        verdict, _ = claims.judge(c["value"], interval=c["interval"], **how)
        if c.get("forced_by"):
            assert rec["forced_by"] == c["forced_by"]
        assert verdict == rec["verdict"], f"{path.name}: {c['claim_id']} recomputes as {verdict}, recorded {rec['verdict']}"


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


CH02 = sorted(RECORDED.glob("02_*.json")) + sorted((RECORDED.parent / "results").glob("02.json"))


@pytest.mark.parametrize("path", CH02, ids=[f"{p.parent.name}/{p.stem}" for p in CH02])
def test_chapter2_toy_verdicts_follow_from_its_rows(path):
    """Every toy claim of a chapter-2 run (the recorded full grid, and the committed ci run) recomputed from its
    per-fit rows with `sine_attention.toy_claim_values` (the chapter's own path): same values, intervals and
    verdicts, and the rows cover the run's whole grid (heads x contexts x seeds x restarts)."""
    from icl_geometry.toys import sine_attention as sa

    data = json.loads(path.read_text())
    cfg = data["config"]
    rows = path.with_name(path.stem + sa.ROWS_SUFFIX)
    assert rows.exists(), f"{path.name}: no per-fit rows ({rows.name}) to recompute its toy verdicts from"
    table = pd.read_csv(rows)
    assert sorted(table.heads.unique()) == sorted(cfg["toy_heads"]), f"{path.name}: rows and toy_heads disagree"
    assert sorted(table.context.unique()) == sorted(cfg["toy_contexts"]), f"{path.name}: rows and toy_contexts disagree"
    n_fits = len(cfg["toy_heads"]) * len(cfg["toy_contexts"]) * cfg["toy_seeds"] * cfg["toy_restarts"]
    assert len(table) == n_fits, f"{path.name}: {len(table)} rows, expected {n_fits}"
    assert table.groupby(["heads", "seed", "context"]).kept.sum().eq(1).all(), "one kept restart per (heads, seed)"
    values = sa.toy_claim_values(table, seed=cfg["seed"])
    recorded = {c["claim_id"]: c for c in data["claims"]}
    assert set(values) == {cid for cid in recorded if cid in sa.TOY_CLAIMS}, f"{path.name}: the toy claims differ"
    for cid, v in values.items():
        rec = recorded[cid]
        np.testing.assert_allclose([v["value"], *sorted(v["interval"])], [rec["value"], rec["low"], rec["high"]],
                                   rtol=1e-9, atol=1e-12, err_msg=f"{path.name}: {cid}")
        verdict, _ = claims.judge(v["value"], interval=v["interval"], direction=v["direction"], threshold=v["threshold"])
        assert verdict == rec["verdict"], f"{path.name}: {cid} recomputes as {verdict}, recorded {rec['verdict']}"
        assert rec["kind"] == v["kind"], f"{path.name}: {cid} recorded as {rec['kind']}"
