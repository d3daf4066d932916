"""Chapter 5's experiment module (`experiments.icl_linear_regression`): known-answer tests of `claim_values` on
small hand-made rows (weakest pairs, Bonferroni bounds, intervals over training runs, missing parts), and a tiny
`run` whose rows `claim_values` judges (fast: a few seconds, no language model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm, t

from icl_geometry.bookkit import profiles
from icl_geometry.core.multiple_testing import bonferroni_z
from icl_geometry.core.verdicts import judge_claim
from icl_geometry.experiments import base
from icl_geometry.experiments import icl_linear_regression as ex
from icl_geometry.toys import linear_icl as li

torch.set_num_threads(1)
ID = ex.ID
CONFIG = {"d": 4, "N": 8, "ranks": [1, 2], "spectrum": "power", "decay": 1.0, "seed": 0, "device": "cpu",
          "n_test": 40_000}
NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "05_icl_linear_regression.ipynb"


def margins(label: list[tuple[float, float]]) -> pd.DataFrame:
    """A margins part: one row per adjacent pair (ranks 1-2, 2-4, ...) of label noise, (margin, SE) each."""
    return pd.DataFrame([{"noise": "label", "small r": 2 ** a, "large r": 2 ** (a + 1), "x_c measured": 1.0 + a,
                          "x_c SE": 0.1, "x_c predicted": 1.0 + a, "x_0 measured": 1.0 + a + m, "x_0 predicted": 2.0,
                          ex.MARGIN: m, "margin SE": se} for a, (m, se) in enumerate(label)])


def test_the_weakest_pair_is_the_one_with_the_least_margin_minus_two_se():
    # pair 0 has the smallest margin but a tight SE; pair 1's margin - 2 SE (3 - 2.8) is the least
    rows = base.stack(margins=margins([(1.0, 0.1), (3.0, 1.4), (2.0, 0.2)]))
    m = ex.claim_values(rows, CONFIG)
    assert list(m) == [ID["label_margin"]]  # no input-noise rows, no other parts: only this claim
    got = m[ID["label_margin"]]
    assert got.value == 3.0 and got.interval == pytest.approx((0.2, 5.8))
    assert got.note.startswith("ranks 2 vs 4:")


def test_a_pair_that_does_not_cross_on_the_grid_is_left_out():
    rows = base.stack(margins=margins([(np.nan, np.nan), (0.5, 0.1)]))
    assert ex.claim_values(rows, CONFIG)[ID["label_margin"]].value == 0.5
    assert ex.claim_values(base.stack(margins=margins([(np.nan, np.nan)])), CONFIG) == {}


def test_closed_form_check_bound_is_bonferroni_over_the_run_s_comparisons():
    z = [0.5, -2.5, 1.0, 0.1, -0.2]
    rows = base.stack(closed_form=pd.DataFrame({"rank": [1] * 5, "z": z}))
    m = ex.claim_values(rows, CONFIG)[ID["mc"]]
    assert m.value == 2.5 and m.interval is None
    assert m.threshold == pytest.approx(norm.ppf(1 - 0.005 / 5)) and m.note.startswith("5 comparisons")
    assert judge_claim(ex.CLAIMS[ID["mc"]], m)[0] == "reproduced"
    assert bonferroni_z(16) == pytest.approx(3.42053, abs=1e-5)  # the bound the committed run shows


def test_few_shot_and_flip_checks_count_losses_and_differences_to_the_rank_before():
    few = pd.DataFrame({"N": [2, 2, 8, 8], "rank": [0, 1, 0, 1], "z": [0.1, -0.3, 0.2, 0.4],
                        "z vs previous": [np.nan, -3.0, np.nan, 1.0]})
    flip = few.drop(columns="N").assign(**{"flip rate": 0.5})
    m = ex.claim_values(base.stack(few_shot=few, flip=flip), CONFIG)
    assert m[ID["few"]].value == 3.0 and m[ID["few"]].note == "6 comparisons, N = 2 and 8"
    assert m[ID["few"]].threshold == pytest.approx(norm.ppf(1 - 0.005 / 6))
    assert m[ID["flip_mc"]].value == 3.0 and m[ID["flip_mc"]].note == "6 comparisons"


def test_flip_margin_takes_the_smaller_margin_of_the_weakest_pair_with_its_own_se():
    ft = pd.DataFrame({"small r": [1, 2], "large r": [2, 4], "small beats 0 by": [0.5, 0.3],
                       "SE (small vs 0)": [0.01, 0.01], "large loses by": [0.2, 0.6],
                       "SE (large vs small)": [0.05, 0.01]})
    # pair 0: min(0.5 - 0.02, 0.2 - 0.1) = 0.1; pair 1: min(0.28, 0.58) = 0.28 -> pair 0, its "large loses by"
    m = ex.claim_values(base.stack(flip_trained=ft), CONFIG)[ID["flip_margin"]]
    assert m.value == 0.2 and m.interval == pytest.approx((0.1, 0.3)) and m.note.startswith("ranks 1 vs 2")


def training(runs: list[list[tuple[float, float, float, float]]]) -> pd.DataFrame:
    """A training part: per run, per rank (1, 2): (distance, trained loss, optimal loss, top-r mass)."""
    return pd.DataFrame([{"run": i, "seed": i, "rank": r, ex.DIST: dist, "loss of trained Gamma": loss,
                          "optimal loss": opt, ex.MASS: mass, ex.EVEN: 0.0}
                         for i, run in enumerate(runs) for r, (dist, loss, opt, mass) in zip((1, 2), run)])


def test_training_claims_take_the_worst_rank_per_run_and_a_t_interval_over_runs():
    rows = base.stack(training=training([[(0.01, 1.01, 1.0, 0.999), (0.02, 2.0, 2.0, 0.995)],
                                         [(0.03, 1.0, 1.0, 0.998), (0.01, 2.04, 2.0, 0.999)],
                                         [(0.02, 1.0, 1.0, 0.997), (0.02, 2.0, 2.0, 0.999)]]))
    m = ex.claim_values(rows, CONFIG)
    assert list(m) == [ID["dist"], ID["excess"], ID["mass"]]
    dist, excess, mass = [0.02, 0.03, 0.02], [0.01, 0.02, 0.0], [0.995, 0.998, 0.997]
    for cid, worst in ((ID["dist"], dist), (ID["excess"], excess), (ID["mass"], mass)):
        half = t.ppf(0.95, 2) * np.std(worst, ddof=1) / np.sqrt(3)
        assert m[cid].value == pytest.approx(np.mean(worst))
        assert m[cid].interval == pytest.approx((np.mean(worst) - half, np.mean(worst) + half))
        assert m[cid].note.startswith("worst rank per run, mean over 3 training runs")


def test_tied_eigenvalues_leave_out_distance_and_mass():
    rows = base.stack(training=training([[(0.01, 1.0, 1.0, 0.9), (0.01, 2.0, 2.0, 0.9)]] * 3))
    assert list(ex.claim_values(rows, {**CONFIG, "spectrum": "flat"})) == [ID["excess"]]


def test_claims_below_their_min_n_are_not_judged():
    """Fewer training runs than MIN_RUNS: no training claim; fewer test prompts than MIN_PROMPTS: no Monte Carlo
    paper claim (the checks stay: they cannot fail with correct code at any size)."""
    two_runs = base.stack(training=training([[(0.01, 1.0, 1.0, 0.999), (0.01, 2.0, 2.0, 0.999)]] * 2))
    assert ex.claim_values(two_runs, CONFIG) == {}
    rows = base.stack(margins=margins([(1.0, 0.1)]), closed_form=pd.DataFrame({"rank": [1], "z": [0.5]}))
    assert set(ex.claim_values(rows, CONFIG)) == {ID["mc"], ID["label_margin"]}
    assert set(ex.claim_values(rows, {**CONFIG, "n_test": 999})) == {ID["mc"]}
    for cid in (ID["dist"], ID["excess"], ID["mass"]):
        assert ex.CLAIMS[cid].min_n == ex.MIN_RUNS
    for cid in (ID["clean"], ID["label_margin"], ID["input_margin"]):
        assert ex.CLAIMS[cid].min_n == ex.MIN_PROMPTS


def test_every_claim_is_labelled_and_names_the_section_that_measures_it():
    """The claim policy: every paper claim has a role, a basis and what would count against it; the theory's noise
    margins and the top-r mass are `derived`, clean loss against rank is forced; every claim's section is a heading
    of the notebook."""
    nb = json.loads(NOTEBOOK.read_text())
    headings = {line.lstrip("#").strip() for cell in nb["cells"] if cell["cell_type"] == "markdown"
                for line in "".join(cell["source"]).splitlines() if line.startswith("#")}
    for cid, spec in ex.CLAIMS.items():
        assert spec.section in headings, (cid, spec.section)
        if spec.kind == "paper":
            assert spec.role == "primary" and spec.basis == "derived" and spec.against, cid
    paper = {cid for cid, spec in ex.CLAIMS.items() if spec.kind == "paper"}
    assert paper == {ID["clean"], ID["label_margin"], ID["input_margin"], ID["mass"]}
    assert ex.CLAIMS[ID["clean"]].forced_by and not ex.CLAIMS[ID["label_margin"]].forced_by
    for cid in (ID["above_var"], ID["flip_margin"], ID["mc"], ID["few"], ID["flip_mc"]):
        assert ex.CLAIMS[cid].kind == "check", cid


def test_regime_is_the_first_crossing_to_where_the_smallest_rank_is_useless_in_units_of_the_data():
    """Measured: min x_c over the pairs to x_0 of the smallest rank, over sd(y) = sqrt(tr Lambda) (label noise) or
    the RMS input std sqrt(tr Lambda / d) (input noise); beside the closed form for the trained ranks and every rank."""
    m = margins([(1.0, 0.1), (3.0, 0.2)])  # x_c = 1, 2; x_0 of rank 1 = 1 + 1 = 2
    m = pd.concat([m, m.assign(noise="input")], ignore_index=True)
    cfg = {**CONFIG, "ranks": [1, 2, 4]}
    wins = ex.regime(base.stack(margins=m), cfg)
    lam = li.make_spectrum("power", 4, 1.0)
    for kind, unit in (("label", np.sqrt(4.0)), ("input", 1.0)):
        assert wins[kind]["unit value"] == pytest.approx(unit)
        assert wins[kind]["measured"] == pytest.approx([1.0 / unit, 2.0 / unit])
        pred = li.smaller_model_regime(lam, 8, (1, 2, 4), kind)
        assert wins[kind]["predicted"] == pytest.approx([pred[0] / unit, pred[1] / unit])
        every = li.smaller_model_regime(lam, 8, range(1, 5), kind)
        assert wins[kind]["every rank (closed form)"] == pytest.approx([every[0] / unit, every[1] / unit])
    assert ex.regime(base.stack(closed_form=pd.DataFrame({"z": [0.0]})), cfg)["label"]["measured"] == [None, None]
    assert ex.regime_text(wins)[0].startswith("label noise: the smaller model wins for a noise std of 0.5 to 1 times")


def test_sweep_claims_clean_gap_least_squares_and_ridge():
    # M = 2 trained ranks, d = 1: predictors 0, 1 trained; 2, 3 Gamma*_0..1; 4, 5, 6 LS, ridge, GD
    loss = {0: [3.0, 4.0], 1: [2.0, 4.5], 2: [5.0, 5.0], 3: [2.5, 4.0], 4: [0.0, 9.0], 5: [1.0, 3.0], 6: [4.0, 4.0]}
    sw = pd.DataFrame([{"noise": "label", "predictor": p, "noise std": s, "loss": v[j],
                        "SE vs previous": 0.1 if p in (1, 3) else np.nan} for p, v in loss.items()
                       for j, s in enumerate((0.0, 1.0))])
    m = ex.claim_values(base.stack(sweep=sw), {**CONFIG, "d": 1})
    assert list(m) == [ID["clean"], ID["ls"], ID["ridge"]]
    assert m[ID["clean"]].value == 1.0 and m[ID["clean"]].interval == pytest.approx((0.8, 1.2))
    assert m[ID["ls"]].value == 2.0  # best trained rank 2.0 minus least squares 0.0 on clean prompts
    assert m[ID["ridge"]].value == 1.0  # min over noise of (best trained - ridge): (2 - 1, 4 - 3)


def test_rows_without_a_part_column_give_no_claims():
    assert ex.claim_values(pd.DataFrame({"z": [1.0]}), CONFIG) == {}


def test_a_tiny_run_gives_rows_that_judge_every_claim(tmp_path):
    cfg = profiles.resolve("05", device="cpu", d=3, N=6, ranks=(1, 3), steps=4, batch=16, n_test=200,
                           label_noise=(0.0, 2.0, 4.0, 8.0, 16.0), input_noise=(0.0, 1.0, 2.0, 4.0, 8.0))
    rows = ex.run(cfg, checkpoint=tmp_path / "ck.pkl")
    assert list(rows[base.PART].unique()) == list(ex.PARTS)
    values = ex.claim_values(rows, cfg)
    assert set(values) <= set(ex.CLAIMS) and {ID["mc"], ID["excess"], ID["few"], ID["flip_mc"]} <= set(values)
    for cid, m in values.items():
        assert np.isfinite(m.value), cid
        judge_claim(ex.CLAIMS[cid], m)
    saved = base.save_rows(rows, tmp_path / "05.json")  # the CSV round trip keeps every verdict
    again = ex.claim_values(base.load_rows(saved), json.loads(json.dumps(cfg.as_dict())))
    assert list(again) == list(values)
    for cid, m in values.items():
        assert again[cid].value == pytest.approx(m.value, rel=1e-12)
        assert (again[cid].interval is None) == (m.interval is None), cid
        assert m.interval is None or again[cid].interval == pytest.approx(m.interval, rel=1e-12)
    resumed = ex.run(cfg, checkpoint=tmp_path / "ck.pkl")  # every step checkpointed: nothing is recomputed
    pd.testing.assert_frame_equal(resumed, rows)
