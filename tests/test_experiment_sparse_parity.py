"""Chapter 6's experiment module (experiments/sparse_parity.py): `claim_values` on small hand-made rows with known
answers (weakest pair, weakest size, worst crossover, Bonferroni bound, missing parts), the committed run's
claims recomputed from its rows, and `run` on a tiny config (fast tier: no bundled model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from icl_geometry.core.multiple_testing import bonferroni_z
from icl_geometry.core.stats import t_interval
from icl_geometry.core.verdicts import judge_claim
from icl_geometry.experiments import base
from icl_geometry.experiments import sparse_parity as ex
from icl_geometry.toys import sparse_parity as sp

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"chapter": "06", "profile": "ci", "device": "cpu", "seed": 0, "d": 4, "k": 2, "n_subsets": 4,
          "decay": 0.8, "N": 8, "heads": [1, 2, 4], "seeds": 3, "width": 4, "steps": 5, "batch": 16,
          "softmax_batch": 16, "lr": 0.01, "label_flip": [0.0, 0.25, 0.375, 0.5, 1.0],
          "input_flip": [0.0, 0.25, 0.5], "n_test": 200}
S = ex.setting(CONFIG)


def _id(slot: tuple[str, ...]) -> str:
    return ex.claim_id(*slot)


def _sweeps(family: str, loss, acc) -> pd.DataFrame:
    """A family's sweep rows with loss(seed, j, noise, rate) and acc(seed, j, noise, rate); no paired error."""
    return pd.DataFrame([{"family": family, "seed": s, "m": m, "noise": kind, "rate": float(r),
                          "loss": loss(s, j, kind, r), "loss_se": 0.0, "acc": acc(s, j, kind, r), "acc_se": 0.0,
                          "pair_se": 0.0 if j < S.M - 1 else np.nan}
                         for s in range(S.seeds) for j, m in enumerate(S.heads) for kind in ex.NOISES
                         for r in S.grid[kind]])


def _flat(s, j, kind, r):
    return 1.0


def test_weakest_adjacent_gain_and_weakest_size_are_chosen():
    gain = {0: [0.5, 0.5, 0.5], 1: [0.01, 0.02, 0.03]}  # clean loss saved by the next size, per seed

    def loss(s, j, kind, r):
        return 1.0 - sum(gain[i][s] for i in range(j))

    sweeps = _sweeps(ex.SOFTMAX, loss, lambda s, j, kind, r: 0.75)
    delta = {0: [0.0, 0.0, 0.0], 1: [0.1, 0.2, 0.3]}  # uncovered tasks' accuracy above 0.5 at each size
    tasks = pd.DataFrame([{"family": ex.SOFTMAX, "seed": s, "m": m, "task": t + 1,
                           "acc": 0.9 if t < m else 0.5 + delta.get(j, [0, 0, 0])[s], "loss": 0.0}
                          for s in range(S.seeds) for j, m in enumerate(S.heads) for t in range(S.n_subsets)])
    values = ex.claim_values(base.stack(sweeps=sweeps, tasks=tasks), CONFIG)
    clean = values[_id(("clean", ex.SOFTMAX))]
    assert clean.value == pytest.approx(0.02) and clean.note.endswith("m = 2 -> 4")
    assert clean.interval[0] < 0.02 < clean.interval[1]
    cover = values[_id(("cover", ex.SOFTMAX))]
    assert cover.value == pytest.approx(0.9 - 0.5 - 0.2) and cover.note.endswith("m = 2")
    assert _id(("clean", ex.LEARNED)) not in values  # a family the rows do not hold is not judged


def test_accuracy_crossover_and_odd_labels():
    """The largest model's accuracy starts higher and falls linearly; the smallest stays flat (as a one-head model does
    under label flips): they cross where the lines meet, per seed; a seed that never crosses below 1/2 counts at 1/2."""
    cross = {0: 0.30, 1: 0.32, 2: 0.34}  # per seed, label flips

    def acc(s, j, kind, r):
        if kind == "label" and r == 1.0:
            return 1 - acc(s, j, kind, 0.0)
        if j == 0:
            return 0.6
        if kind == "input":  # larger models always above the smallest below 1/2
            return 0.6 + 0.1 * j * (1 - 2 * r)
        return 0.6 + 0.1 * j * (cross[s] - r) / cross[s]  # every larger size meets the smallest at cross[s]

    values = ex.claim_values(base.stack(sweeps=_sweeps(ex.LEARNED, _flat, acc)), CONFIG)
    label = values[_id(("acc", ex.LEARNED, "label"))]
    assert label.value == pytest.approx(0.32)  # the grid holds 0.25 and 0.375: linear interpolation is exact here
    assert label.interval == pytest.approx(t_interval([0.30, 0.32, 0.34])[1])  # no Monte Carlo error in these rows
    assert "3/3 seeds cross below 1/2" in label.note and "m = 4 vs m = 1" in label.note
    assert judge_claim(ex.CLAIMS[_id(("acc", ex.LEARNED, "label"))], label)[0] == "reproduced"
    inp = values[_id(("acc", ex.LEARNED, "input"))]
    assert inp.value == 0.5 and inp.interval == (0.5, 0.5) and "0/3 seeds" in inp.note
    assert judge_claim(ex.CLAIMS[_id(("acc", ex.LEARNED, "input"))], inp)[0] == "no effect"
    assert values[_id(("odd",))].value < 1e-12
    short = {**CONFIG, "label_flip": [0.0, 0.25, 0.375, 0.5]}  # no full flip: the check is not made
    rows = base.stack(sweeps=_sweeps(ex.LEARNED, _flat, acc).query("rate != 1.0 or noise != 'label'"))
    assert _id(("odd",)) not in ex.claim_values(rows, short)


def test_seed_claims_below_min_n_are_not_judged():
    two = {**CONFIG, "seeds": 2}
    S2 = ex.setting(two)
    sweeps = pd.DataFrame([{"family": ex.LEARNED, "seed": s, "m": m, "noise": kind, "rate": float(r), "loss": 1.0,
                            "loss_se": 0.0, "acc": 0.5, "acc_se": 0.0, "pair_se": 0.0}
                           for s in range(2) for m in S2.heads for kind in ex.NOISES for r in S2.grid[kind]])
    assert list(ex.claim_values(base.stack(sweeps=sweeps), two)) == [_id(("odd",))]
    for cid, spec in ex.CLAIMS.items():
        if spec.kind in ("paper", "ours") and spec.exact == "":
            assert spec.min_n == ex.MIN_SEEDS, cid


def test_every_claim_is_labelled_and_names_the_section_that_measures_it():
    """One primary per paper statement (the learned-MLP, linear-attention family), the others supporting; the fixed
    family's clean ordering is forced; the closed form against Monte Carlo is a check; every section is a heading."""
    import json

    nb = json.loads((ROOT / "book" / "06_sparse_parity.ipynb").read_text())
    headings = {line.lstrip("#").strip() for cell in nb["cells"] if cell["cell_type"] == "markdown"
                for line in "".join(cell["source"]).splitlines() if line.startswith("#")}
    primaries = []
    for cid, spec in ex.CLAIMS.items():
        assert spec.section in headings, (cid, spec.section)
        if spec.kind == "paper":
            assert spec.role and spec.basis and spec.against, cid
            if spec.role == "primary":
                primaries.append(cid)
    assert primaries == [_id((w, ex.LEARNED, *k)) for w, k in (("clean", ()), ("cover", ()), ("acc", ("label",)),
                                                                 ("acc", ("input",)))]
    assert ex.CLAIMS[_id(("clean", ex.FIXED))].forced_by and not ex.CLAIMS[_id(("clean", ex.LEARNED))].forced_by
    assert ex.CLAIMS[_id(("closed_form",))].kind == "check"


def test_regime_spans_the_first_loss_crossover_to_where_the_smallest_is_useless():
    pred = ex.predicted_crossovers(S)

    def loss(s, j, kind, r):  # size j's loss minus size j-1's is (rate - crossing); the smallest's is 0.5 + r
        cross = list(pred[kind].values())
        return 0.5 + r + sum(r - cross[i] for i in range(j))

    wins = ex.regime(base.stack(sweeps=_sweeps(ex.FIXED, loss, lambda *a: 0.75)), CONFIG)
    for kind in ex.NOISES:
        w = wins[kind]
        assert w["measured"][ex.FIXED] == pytest.approx([min(pred[kind].values()), 0.5])
        assert w["predicted"] == pytest.approx([min(pred[kind].values()),
                                                sp.crossover(S.pi, S.N, 0, S.heads[0], kind, S.k)])
        assert w["accuracy"][ex.FIXED] == [0.5, 0.5]  # equal accuracies never cross below 1/2
    assert ex.regime_text(wins, ex.FIXED)[0].startswith("label flips (fixed parities, linear attention): in loss")


def test_worst_crossover_pair_is_judged():
    pred = ex.predicted_crossovers(S)
    for kind in ex.NOISES:
        for p in pred[kind].values():
            assert 0.05 < p < 0.45
    offset = {"label": (0.01, -0.03), "input": (-0.02, 0.005)}

    def loss(s, j, kind, r):  # size j's loss minus size j-1's is (rate - crossing): each pair crosses there
        cross = [p + o for p, o in zip(pred[kind].values(), offset[kind])]
        return 1.0 + sum(r - cross[i] for i in range(j))

    values = ex.claim_values(base.stack(sweeps=_sweeps(ex.FIXED, loss, lambda *a: 0.75)), CONFIG)
    label = values[_id(("cross", ex.FIXED, "label"))]
    assert label.value == pytest.approx(-0.03) and label.interval == pytest.approx((-0.03, -0.03))
    assert "m = 2 vs 4" in label.note and "2 of 2 pairs" in label.note
    assert values[_id(("cross", ex.FIXED, "input"))].value == pytest.approx(-0.02)
    assert judge_claim(ex.CLAIMS[_id(("cross", ex.FIXED, "label"))], label)[0] == "reproduced"


def test_bonferroni_bound_excess_and_missing_parts():
    z = np.linspace(-2.5, 3.0, 2 * S.M * 3)
    optimal = pd.DataFrame([{"noise": "label", "m": 1, "rate": 0.0, "loss": 1.0 + 0.01 * v, "loss_se": 0.01,
                             "acc": 0.5, "acc_se": 0.0, "closed_form": 1.0} for v in z])
    excess = {(s, j): 0.001 * (s + 1) * (j + 1) for s in range(S.seeds) for j in range(S.M)}
    fits = pd.DataFrame([{"family": f, "seed": s, "m": m, "optimal_loss": 0.5 / m,
                          "exact_loss": 0.5 / m * (1 + excess[s, j]) if f == ex.FIXED else np.nan}
                         for f in (ex.FIXED, ex.SOFTMAX) for s in range(S.seeds) for j, m in enumerate(S.heads)])
    values = ex.claim_values(base.stack(optimal=optimal, fits=fits), CONFIG)
    assert list(values) == [_id(("closed_form",)), _id(("excess", ex.FIXED))]
    closed = values[_id(("closed_form",))]
    assert closed.value == pytest.approx(3.0)
    assert closed.tolerance == pytest.approx(bonferroni_z(len(z)))  # this run's own bound, not the ci run's
    assert values[_id(("excess", ex.FIXED))].value == pytest.approx(0.009)
    assert values[_id(("excess", ex.FIXED))].note.endswith("[1, 2, 4]")
    z_all, z_crit = ex.closed_form_z(optimal)
    assert np.allclose(z_all, z) and z_crit == bonferroni_z(len(z))


def test_run_on_a_tiny_config_gives_rows_claim_values_accepts(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = ex.run(CONFIG, checkpoint=tmp_path / "ck.pkl")
        again = ex.run(CONFIG, checkpoint=tmp_path / "ck.pkl")  # resumes: every family from the checkpoint
    finally:
        torch.set_num_threads(threads)
    assert set(rows[base.PART]) == {"optimal", "fits", "sweeps", "tasks"}
    pd.testing.assert_frame_equal(rows, again)
    values = ex.claim_values(rows, CONFIG)
    assert set(values) <= set(ex.CLAIMS) and _id(("closed_form",)) in values
    base.save_rows(rows, tmp_path / "06.json")
    back = ex.claim_values(base.load_rows(tmp_path / "06.json"), CONFIG)
    assert list(back) == list(values)
    for cid, m in values.items():
        assert back[cid].value == pytest.approx(m.value, rel=1e-9, abs=1e-12)
    cross = ex.crossover_table(rows, CONFIG)
    assert len(cross) == len(ex.FAMILIES) * len(ex.NOISES) * (S.M - 1)
