"""Chapter 6's experiment module (experiments/sparse_parity.py): `claim_values` on small hand-made rows with known
answers (weakest pair, weakest size, worst crossover, Bonferroni bound, missing parts), the committed run's
claims recomputed from its rows, and `run` on a tiny config (fast tier: no bundled model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from icl_geometry.core.verdicts import judge_claim
from icl_geometry.experiments import base
from icl_geometry.experiments import sparse_parity as ex

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


def test_sensitivity_and_odd_labels():
    def acc(s, j, kind, r):
        clean = 0.6 + 0.1 * j + (0.01 * s if j == S.M - 1 else 0.0)
        if r == 0:
            return clean
        return 1 - clean if (kind == "label" and r == 1.0) else 0.5

    values = ex.claim_values(base.stack(sweeps=_sweeps(ex.LEARNED, _flat, acc)), CONFIG)
    sens = values[_id(("sens", ex.LEARNED, "label"))]
    assert sens.value == pytest.approx(0.2 + 0.01) and "rate 0.375, m = 4 minus m = 1" in sens.note
    assert sens.interval[0] < sens.value < sens.interval[1]
    assert values[_id(("sens", ex.LEARNED, "input"))].note.startswith("rate 0.25")
    assert values[_id(("odd",))].value < 1e-12
    short = {**CONFIG, "label_flip": [0.0, 0.25, 0.375, 0.5]}  # no full flip: the check is not made
    rows = base.stack(sweeps=_sweeps(ex.LEARNED, _flat, acc).query("rate != 1.0 or noise != 'label'"))
    assert _id(("odd",)) not in ex.claim_values(rows, short)


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
    assert closed.tolerance == pytest.approx(ex.bonferroni_z(len(z)))  # this run's own bound, not the ci run's
    assert values[_id(("excess", ex.FIXED))].value == pytest.approx(0.009)
    assert values[_id(("excess", ex.FIXED))].note.endswith("[1, 2, 4]")
    z_all, z_crit = ex.closed_form_z(optimal)
    assert np.allclose(z_all, z) and z_crit == ex.bonferroni_z(len(z))


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
