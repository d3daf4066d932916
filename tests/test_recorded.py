"""Every committed verdict follows from its rows: for each chapter's committed ci run (`book/results/NN.json`)
and each recorded paper-scale run (`book/recorded/NN_<profile>_<model>.json`), the chapter's own
`claim_values(rows, config)` recomputes every value and interval (to 1e-9), and its declared `CLAIMS` give
the same verdict and kind.

This is what lets CI vouch for a run that took hours on a CPU (or ran on a GPU) without repeating it."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from icl_geometry.bookkit.specs import all_specs, get_spec
from icl_geometry.core.verdicts import judge_claim, not_snake_case
from icl_geometry.experiments import base

BOOK = Path(__file__).resolve().parents[1] / "book"
RECORDED = BOOK / "recorded"
RUNS = sorted((BOOK / "results").glob("*.json")) + sorted(RECORDED.glob("*.json"))
# A run recorded before its chapter kept every part in its rows says so in its JSON (`partial_rows`, with the
# reason): the claims its rows cannot give are kept as recorded; every other claim is recomputed.

def experiment(chapter: str):
    """A chapter's experiment module (`icl_geometry.experiments.<slug>`)."""
    return importlib.import_module(f"icl_geometry.experiments.{get_spec(chapter).slug}")


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def test_every_chapter_has_an_experiment_module_with_the_protocol():
    for number in all_specs():
        mod = experiment(number)
        assert callable(mod.run) and callable(mod.claim_values) and isinstance(mod.CLAIMS, dict), number


def test_every_claim_id_is_a_stable_snake_case_name():
    """Ids are names, not sentences, and carry no run's values, so a live and a recorded run match by id."""
    for number in all_specs():
        claims = experiment(number).CLAIMS
        assert not not_snake_case(claims), (number, not_snake_case(claims))
        with_values = [cid for cid in claims if re.search(r"_\d+_(shots|vs)|\d+_vs_\d+", cid)]
        assert not with_values, (number, with_values)


def test_every_committed_run_keeps_its_rows():
    missing = [_id(p) for p in RUNS if not base.rows_path(p).exists()]
    assert not missing, f"runs without rows to recompute their verdicts from: {missing}"


@pytest.mark.parametrize("path", RUNS, ids=[_id(p) for p in RUNS])
def test_verdicts_follow_from_the_rows(path):
    data = json.loads(path.read_text())
    if not base.rows_path(path).exists():
        pytest.fail(f"{path.name}: no rows ({base.rows_path(path).name})")
    mod = experiment(data["chapter"])
    values = mod.claim_values(base.load_rows(path), data["config"])
    recorded = {c["claim_id"]: c for c in data["claims"]}
    assert set(values) <= set(recorded), f"claims recomputed but not recorded: {sorted(set(values) - set(recorded))}"
    if not data.get("partial_rows"):  # a run whose rows hold only some parts says so (why) in its JSON
        assert set(values) == set(recorded), (
            f"recorded claims the rows do not give: {sorted(set(recorded) - set(values))}"
        )
    if path.parent.name == "results":  # the committed ci run records in the declared order (its checked table's order)
        assert list(recorded) == [cid for cid in mod.CLAIMS if cid in recorded], "claims recorded out of order"
    for cid, m in values.items():
        rec = recorded[cid]
        interval = sorted(m.interval) if m.interval is not None else [None, None]
        assert (rec["low"] is None) == (m.interval is None), (
            f"{cid}: interval recorded {rec['low']}, recomputed {m.interval}"
        )
        got = [m.value, *interval] if m.interval is not None else [m.value]
        want = [rec["value"], rec["low"], rec["high"]] if m.interval is not None else [rec["value"]]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"{path.name}: {cid}")
        spec = mod.CLAIMS[cid]
        verdict, _ = judge_claim(spec, m)
        assert verdict == rec["verdict"], f"{path.name}: {cid} recomputes as {verdict}, recorded {rec['verdict']}"
        assert spec.kind == rec["kind"], f"{path.name}: {cid} declared {spec.kind}, recorded {rec['kind']}"


def test_every_recorded_run_is_complete():
    """Each recorded JSON has its notebook, its rows and the fields the convention asks for."""
    for f in sorted(RECORDED.glob("*.json")):
        data = json.loads(f.read_text())
        assert {"chapter", "config", "claims", "wall_s", "machine", "commit"} <= set(data), f.name
        assert f.with_suffix(".ipynb").exists(), f"{f.name}: its executed notebook is missing"
        assert data["claims"] and all(c["kind"] for c in data["claims"]), f"{f.name}: claims without a kind"


@pytest.mark.parametrize("path", [p for p in RUNS if p.name.startswith("04")], ids=_id)
def test_chapter4_runs_cover_their_base_set(path):
    """A chapter-4 run's rows hold its whole base set; a recorded full run has at least 300 base items."""
    data = json.loads(path.read_text())
    assert base.load_rows(path).item.nunique() == data["n_base_items"], f"{path.name}: rows and n_base_items disagree"
    if path.parent == RECORDED and data["config"]["profile"] == "full":
        assert data["n_base_items"] >= 300, f"{path.name}: a recorded full run needs at least 300 base items"


def test_nbval_never_collects_a_recorded_run():
    """`make test` runs nbval over book/; a recorded run must not be re-executed there (it took an hour or more,
    and CI's cell timeout would stop it): the root conftest leaves book/recorded out of collection."""
    import subprocess
    import sys

    root = BOOK.parent
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", "slow or not slow", "--nbval-lax", "book"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    collected = [line for line in out.stdout.splitlines() if ".ipynb::" in line]
    assert collected, out.stdout[-2000:]
    assert not any("recorded/" in line for line in collected), [c for c in collected if "recorded/" in c][:3]
