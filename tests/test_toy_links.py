"""The toy's chain link by link (issue 28, chapter 2): the intervention (`sine_attention.refit`: PCA projection of the
MLP input, only the MLP refitted, against the same refit unprojected), the width-matched family (`width_pairs`,
`parts.width_setting`), and the tables that read the grid's rows (`links.heads_table`, `links.mediation_table`),
with known answers, the intervention's invariants (all components = the control, rank <= components, a planar
input loses nothing, zero steps = the trained fit, stacking = one at a time, determinism) and clear errors. The
chapter's claims on these rows: tests/test_experiment_attention_graphs.py; their intervals' coverage:
tests/test_coverage.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sst

from icl_geometry.toys import sine_attention as sa
from icl_geometry.toys.sine_attention import parts

# A small grid that trains in a second or two on one core: 2 periods, 200 bins (50 train), contexts 1 and 4.
SMALL = dict(contexts=(1, 4), d_head=4, n_bins=200, periods=2.0, steps=150, seeds=2, restarts=1)
STEPS = 60  # refit steps in these tests


@pytest.fixture(scope="module")
def fits() -> dict[int, sa.FitResult]:
    return {h: sa.train(heads=h, seed=0, **SMALL) for h in (1, 2)}


@pytest.fixture(scope="module")
def model(fits) -> sa.SineAttentionToy:
    return fits[2].model


# ----------------------------------------------------------------------------- PCA and the projection

def test_projection_has_rank_at_most_components_and_all_components_is_the_identity():
    z = np.random.default_rng(0).standard_normal((50, 16)) @ np.diag(np.linspace(3, 0.1, 16)) + 5.0
    for k in (1, 2, 5):
        mean, basis, explained = sa.pca_basis(z, k)
        zp = sa.project(z, mean, basis)
        assert basis.shape == (16, k) and np.allclose(basis.T @ basis, np.eye(k))
        assert np.linalg.matrix_rank(zp - zp.mean(0), tol=1e-9) == k
        s2 = np.linalg.svd(z - z.mean(0), compute_uv=False) ** 2
        assert explained == pytest.approx(s2[:k].sum() / s2.sum())
    mean, basis, explained = sa.pca_basis(z, 16)
    assert np.abs(sa.project(z, mean, basis) - z).max() < 1e-12 and explained == pytest.approx(1.0)


def test_projected_mlp_input_has_rank_at_most_components(model):
    z = sa.mlp_inputs(model, "train", 4)
    assert sa.mlp_input_rank(model, None, 4) > 2  # the long context's input is not planar
    mean, basis, _ = sa.pca_basis(z, 2)
    s = sa.singular_values(sa.project(z, mean, basis))
    assert (s > 1e-9 * s[0]).sum() <= 2


# ----------------------------------------------------------------------------- the refit

@pytest.mark.parametrize("init", sa.INITS)
def test_all_components_reproduce_the_control(model, init):
    r = sa.pca_refit(model, 4, components=model.config.d_model, steps=STEPS, seed=3, init=init)
    assert r.test_mse["projected"] == pytest.approx(r.test_mse["control"], rel=1e-10, abs=1e-12)
    assert r.train_mse["projected"] == pytest.approx(r.train_mse["control"], rel=1e-10, abs=1e-12)
    for a, b in zip(r.mlps["control"].parameters(), r.mlps["projected"].parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("init", sa.INITS)
def test_a_planar_input_loses_nothing(model, init):
    """At context 1 the MLP input is an ellipse: its top 2 components are all of it."""
    r = sa.pca_refit(model, 1, 2, steps=STEPS, init=init)
    assert r.explained == pytest.approx(1.0, abs=1e-12)
    assert r.ratio == pytest.approx(1.0, rel=1e-9)


def test_zero_steps_from_the_trained_mlp_is_the_trained_fit(model):
    r = sa.pca_refit(model, 4, 2, steps=0, per_bin=3)
    assert r.test_mse["control"] == pytest.approx(sa.fit_error(model, "test", 4)["mse"], rel=1e-12)
    assert r.original_mse == sa.fit_error(model, "test", 4)["mse"]
    assert r.pieces["control"] == sa.count_regions(model, 4, per_bin=3).pieces


def test_refit_trains_only_the_mlp_and_leaves_the_model_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = sa.pca_refit(model, 4, 2, steps=STEPS)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert r.train_mse["control"] < sa.fit_error(model, "train", 4)["mse"] * 1.0001  # the refit does not get worse
    assert r.test_mse["projected"] > 0 and r.pieces == {"control": -1, "projected": -1}


def test_refit_is_deterministic_given_the_seed(model):
    a, b = (sa.pca_refit(model, 4, 2, steps=STEPS, seed=5, init="fresh") for _ in range(2))
    assert a.test_mse == b.test_mse and a.train_mse == b.train_mse
    c = sa.pca_refit(model, 4, 2, steps=STEPS, seed=6, init="fresh")
    assert c.test_mse != a.test_mse  # another seed, another initialisation
    assert torch.get_num_threads() >= 1


def test_stacked_refits_equal_one_at_a_time(fits):
    jobs = [(m, C) for f in fits.values() for m in f.kept_models for C in (1, 4)]
    many = sa.refit_many(jobs, 2, STEPS, seed=1, init="fresh")
    for (m, C), r in zip(jobs, many):
        one = sa.pca_refit(m, C, 2, STEPS, seed=1, init="fresh")
        assert r.test_mse == pytest.approx(one.test_mse, rel=1e-12)


def test_intervention_rows_one_per_kept_fit_and_context(fits):
    rows = pd.DataFrame(sa.intervention_rows(fits, (1, 4), steps=STEPS, per_bin=2))
    assert list(rows.columns) == list(sa.REFIT_FIELDS)
    assert len(rows) == 2 * 2 * 2 and sorted(set(rows.heads)) == [1, 2] and set(rows.context) == {1, 4}
    assert (rows.control_pieces > 0).all() and (rows.projected_pieces > 0).all()
    at1 = rows[rows.context == 1]
    assert np.allclose(at1.projected_mse, at1.control_mse, rtol=1e-9)
    table = sa.refit_table(rows)
    assert len(table) == 4 and table.networks.tolist() == [2, 2, 2, 2]
    assert np.allclose(table[table.context == 1].ratio, 1.0)
    with pytest.raises(ValueError, match="contexts"):
        sa.intervention_rows(fits, (2,), steps=1)


def test_refit_contrast_known_answer():
    ratios = [1.2, 3.0, 0.8, 2.0]
    rows = pd.DataFrame({"heads": [1, 1, 2, 2], "seed": [0, 1, 0, 1], "context": 16, "components": 2,
                         "control_mse": [0.1, 0.2, 0.3, 0.4]})
    rows["projected_mse"] = rows.control_mse * ratios
    value, (lo, hi), note = sa.refit_contrast(pd.concat([rows, rows.assign(context=1, projected_mse=rows.control_mse)]))
    d = np.log(ratios)
    half = sst.t.ppf(0.95, 3) * d.std(ddof=1) / 2
    assert value == pytest.approx(math.exp(d.mean()))
    assert (lo, hi) == pytest.approx((math.exp(d.mean() - half), math.exp(d.mean() + half)))
    assert "4 networks (heads 1-2 x seeds), context 16" in note and "top-2" in note
    assert sa.refit_contrast(rows, context=16, min_n=5) is None
    assert sa.refit_contrast(rows.iloc[:0]) is None


@pytest.mark.parametrize("kwargs,message", [
    (dict(components=0), "components"), (dict(components=17), "components"), (dict(components=2.5), "components"),
    (dict(steps=-1), "steps"), (dict(seed=-1), "seed"), (dict(per_bin=-1), "per_bin"), (dict(init="warm"), "init"),
    (dict(context=5), "context"),
])
def test_bad_refit_arguments_name_the_parameter(model, kwargs, message):
    args = {"context": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        sa.pca_refit(model, args.pop("context"), **{"steps": 1, **args})


# ----------------------------------------------------------------------------- the width-matched family

def test_width_pairs():
    assert sa.width_pairs([1, 2, 4, 8], 16) == [(1, 16), (2, 8), (4, 4), (8, 2)]
    assert sa.width_pairs((1, 4), 8) == [(1, 8), (4, 2)]
    for heads, width in (([3], 16), ([0], 16), ([], 16), ([1], 0)):
        with pytest.raises(ValueError, match="width|heads"):
            sa.width_pairs(heads, width)


SETTINGS = {"toy_heads": [1, 2], "toy_contexts": [1, 3], "toy_bins": 40, "toy_steps": 3, "toy_seeds": 2,
            "toy_restarts": 1, "toy_hidden": 4, "toy_d_head": 4, "seed": 0, "device": "cpu", "toy_width_heads": [1, 2],
            "toy_width": 4, "toy_intervention_contexts": [3], "toy_refit_steps": 2}


def test_a_width_setting_the_grid_has_reuses_its_rows_and_they_equal_training_it():
    grid, fits = parts.grid_part(SETTINGS, progress=False)
    assert parts.width_settings(SETTINGS) == [(1, 4), (2, 2)]
    reused = parts.width_setting(SETTINGS, 1, 4, grid)
    trained = parts.width_setting(SETTINGS, 1, 4)
    assert list(trained.columns) == list(sa.WIDTH_FIELDS) and (trained.d_head == 4).all()
    pd.testing.assert_frame_equal(reused, trained)
    narrow = parts.width_setting(SETTINGS, 2, 2, grid)  # not in the grid (d_head 4): trained
    assert (narrow.d_head == 2).all() and (narrow.heads == 2).all() and len(narrow) == 2 * 2
    refits = parts.intervention_part(SETTINGS, fits)
    assert len(refits) == 2 * 2 and set(refits.context) == {3}
    with pytest.raises(ValueError, match="toy_intervention_contexts"):
        parts.intervention_part({**SETTINGS, "toy_intervention_contexts": [2]}, fits)


# ----------------------------------------------------------------------------- the tables

def grid_rows() -> pd.DataFrame:
    """Kept fits: heads {1, 2, 4} x seeds 0-2 x contexts {1, 10}; test MSE = base(heads, seed) x 0.5 at context 10."""
    base = {1: [0.4, 0.2, 0.1], 2: [0.1, 0.3, 0.05], 4: [0.02, 0.04, 0.3]}
    rows = []
    for h, mses in base.items():
        for s, m in enumerate(mses):
            for c in (1, 10):
                rows.append(dict(heads=h, seed=s, restart=0, kept=True, context=c, test_mse=m * (0.5 if c == 10 else 1),
                                 pieces=10 + h + (c == 10) * (s + 1), eff_dim=1.5 + 0.1 * h * (c == 10) + 0.01 * s,
                                 rank=2 if c == 1 else 2 + h, probe_mse=0.1 * m))
            rows.append({**rows[-1], "restart": 1, "kept": False, "test_mse": 99.0})
    return pd.DataFrame(rows)


def test_heads_table_known_answers():
    rows = grid_rows()
    width = rows.assign(d_head=(8 // rows.heads))
    table = sa.heads_table(rows, width)
    assert len(table) == 2 * 2 * 2 and list(table.family.unique()) == ["grid", "width-matched"]
    row = table[(table.family == "grid") & (table.context == 10) & (table.heads == 4)].iloc[0]
    a, b = np.array([0.02, 0.04, 0.3]) * 0.5, np.array([0.4, 0.2, 0.1]) * 0.5
    value, (lo, hi) = sa.compare_restarts(a, b, "ratio")
    assert (row.ratio, row.low, row.high) == pytest.approx((value, lo, hi))
    assert row.improved == pytest.approx((a[:, None] < b[None, :]).mean())  # 7 of 9 pairs
    assert row.fewest == 1 and row.seeds == 3 and row.seeds_fewest == 3
    assert table[table.family == "width-matched"].d_head.tolist() == [4, 2, 4, 2]
    assert table[table.family == "grid"].d_head.isna().all()
    one_seed = sa.heads_table(rows[rows.seed == 0])
    assert one_seed.low.isna().all() and one_seed.ratio.notna().all()


def test_within_changes_are_each_networks_change_from_its_shortest_context():
    ch = sa.within_changes(grid_rows())
    assert len(ch) == 9 and set(ch.context) == {10}
    assert np.allclose(ch.d_log_test_mse, math.log(0.5))
    first = ch[(ch.heads == 4) & (ch.seed == 2)].iloc[0]
    assert first.d_pieces == 3 and first.d_rank == 4 and first.d_eff_dim == pytest.approx(0.4)


def test_mediation_table_spearman_and_its_jackknife():
    rows = grid_rows()
    table = sa.mediation_table(rows).set_index(["mediator", "scope"])
    kept = rows[rows.kept]
    for m in sa.MEDIATORS:
        assert table.loc[(m, "across cells"), "rho"] == pytest.approx(sst.spearmanr(kept[m], kept.test_mse).statistic)
        assert table.loc[(m, "across cells"), "networks"] == 9 and table.loc[(m, "across cells"), "cells"] == 18
    ch = sa.within_changes(rows.assign(test_mse=rows.test_mse * (1 + 0.1 * rows.seed * (rows.context == 10))))
    within = sa.mediation_table(rows.assign(test_mse=rows.test_mse * (1 + 0.1 * rows.seed * (rows.context == 10))))
    assert within.set_index(["mediator", "scope"]).loc[("pieces", "within networks"), "rho"] == pytest.approx(
        sst.spearmanr(ch.d_pieces, ch.d_log_test_mse).statistic)
    assert (within[within.scope == "within networks"].cells == 9).all()
    assert table.low.isna().all()  # 9 networks: below the jackknife's 10
    assert table.loc[("probe_mse", "across cells"), "chain_sign"] == 1
    # 12 networks: the jackknife over networks gives an interval around the estimate
    more = pd.concat([rows, rows[rows.heads == 1].assign(heads=8, pieces=rows.pieces + 5)], ignore_index=True)
    more.loc[more.context == 10, "test_mse"] *= np.linspace(0.5, 1.5, int((more.context == 10).sum()))
    table = sa.mediation_table(more)
    judged = table[table.rho.notna()]  # the probe's MSE does not change within a network here: no rho
    assert len(judged) == 7 and (judged.networks == 12).all() and judged.low.notna().all()
    assert ((judged.low <= judged.rho) & (judged.rho <= judged.high)).all()
    with pytest.raises(ValueError, match="mediators"):
        sa.mediation_table(rows, mediators=["width"])


def test_chain_findings_quote_the_rows():
    rows = grid_rows()
    width = rows.assign(d_head=(8 // rows.heads))
    refits = pd.DataFrame({"heads": [1, 1, 4, 4], "seed": [0, 1, 0, 1], "context": [1, 1, 16, 16], "components": 2,
                           "explained": [1.0, 1.0, 0.9, 0.8], "control_mse": [0.1, 0.2, 0.1, 0.2],
                           "projected_mse": [0.1, 0.2, 0.3, 0.2 * 1.5]})
    text = "\n".join(sa.chain_findings(rows, width, refits))
    assert "from context 1 to 10 the effective dimension of the MLP input rises in 100% of the 9 networks" in text
    assert "test MSE falls in 100%" in text
    assert "(intervention, context 1): refitting the MLP on the top-2 PCA projection of its input multiplies the " \
           "test MSE by 1 [1, 1]" in text and "worse in 0%" in text
    assert f"multiplies the test MSE by {math.sqrt(3 * 1.5):.3g}" in text and "carry 85.0%" in text
    assert "Heads at a fixed width (heads x d_head = 8): at context 10, 4 heads / 1" in text
    assert text.count("\n") == 4
