"""The attention + MLP sine toy (paper A, Figs. 4-5): embedding, the fast attention path against the plain
formula, training to a stated loss, determinism, region counts against brute force, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from icl_geometry import partition
from icl_geometry.toys import sine_attention as sa

# A small config that trains in a few seconds on one CPU core: 2 periods, 200 bins, 300 Adam steps.
SMALL = dict(context=8, heads=2, n_bins=200, periods=2.0, steps=300)
LOSS_THRESHOLD = 0.01  # training MSE; sin has variance 0.5, the untrained toy starts near 0.5


@pytest.fixture(scope="module")
def small_fit() -> sa.FitResult:
    return sa.train(seed=0, **SMALL)


# ----------------------------------------------------------------------------- embedding and model

def test_clocks_turn_as_documented():
    w = sa.clock_frequencies(10, periods=5.0)
    np.testing.assert_allclose(w.numpy(), np.arange(1, 11) / 50)
    span = 2 * 5.0 * math.pi  # the series covers [-5 pi, 5 pi]
    assert float(w[-1]) * span == pytest.approx(2 * math.pi)  # the fastest clock turns exactly once
    # the clocks of a context C are among those of 2C: a longer context only adds information
    w20 = sa.clock_frequencies(20, periods=5.0)
    assert all(torch.isclose(w20, v).any() for v in w)


def test_embedding_layout():
    t = sa.time_grid(7, 5.0)
    X = sa.embed(t, context=4, d_model=10)
    assert X.shape == (7, 4, 10)
    s, c = sa.clocks(t, 4, 5.0)
    torch.testing.assert_close(X[..., 0], s)
    torch.testing.assert_close(X[..., 1], c)
    pos = sa.position_code(4, 8)
    torch.testing.assert_close(X[..., 2:], pos.expand(7, -1, -1))  # the position code does not depend on t
    torch.testing.assert_close(pos[0], torch.cat([torch.zeros(4), torch.ones(4)]).double())
    with pytest.raises(ValueError, match="1-d"):
        sa.embed(t[None], 4)


@pytest.mark.parametrize("context,heads", [(1, 1), (3, 2), (12, 5)])
def test_fast_attention_matches_the_plain_formula(context, heads):
    model = sa.SineAttentionToy(sa.ToyConfig(context=context, heads=heads, dtype="float64", n_bins=50))
    t = sa.time_grid(300, 5.0)
    weights, z = model.attention(t)
    torch.testing.assert_close(model.mlp_input(t), z, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(300, heads, dtype=torch.float64))
    assert weights.shape == (300, heads, context)
    if context == 1:
        assert torch.all(weights == 1)


def test_mlp_input_rank_is_capped_by_heads_times_head_width():
    ranks = {heads: sa.mlp_input_rank(sa.SineAttentionToy(sa.ToyConfig(context=6, heads=heads, n_bins=400,
                                                                           dtype="float64")))
             for heads in (1, 3, 10)}
    assert ranks[1] == 2 and ranks[3] == 6  # generic weights attain H d_head while it is below d_model
    assert 6 < ranks[10] <= 16  # capped by d_model (directions below rtol x the largest are not counted)


def test_initial_hyperplanes_cut_the_input_curve():
    """Each neuron's bias puts its hyperplane through the MLP input of one bin: no neuron starts dead."""
    model = sa.SineAttentionToy(sa.ToyConfig(context=5, heads=2, n_bins=300))
    P = sa.activation_patterns(model)
    assert P.any(0).all() and (~P).any(0).all()


# ----------------------------------------------------------------------------- training

def test_small_config_trains_below_the_threshold(small_fit):
    assert small_fit.losses[0] > 0.3  # starts near the variance of sin (0.5)
    assert small_fit.loss < LOSS_THRESHOLD
    assert sa.fit_error(small_fit.model)["mse"] == pytest.approx(small_fit.loss)
    assert small_fit.losses.shape == (SMALL["steps"],)
    assert small_fit.config.context == 8 and small_fit.config.heads == 2


def test_training_is_deterministic(small_fit):
    again = sa.train(seed=0, **SMALL)
    np.testing.assert_array_equal(again.losses, small_fit.losses)
    other = sa.train(seed=1, **{**SMALL, "steps": 5})
    assert other.losses[0] != small_fit.losses[0]


def test_restarts_keep_the_best():
    fit = sa.train(seed=0, restarts=3, **{**SMALL, "steps": 40})
    assert fit.restart_losses.shape == (3,)
    assert fit.loss == fit.restart_losses.min()
    assert sa.fit_error(fit.model)["mse"] == pytest.approx(fit.loss)
    assert len(set(fit.restart_losses.round(8))) == 3  # the restarts start from different initialisations


def test_stacked_restarts_get_their_own_gradients():
    """Training the restarts together is training each alone: the gradient of the summed loss with respect to
    restart r's stacked parameters equals the gradient of restart r's own loss. (The trajectories still differ
    slightly: round-off decides the side of a ReLU kink, and Adam amplifies round-off in near-flat directions.)"""
    config = sa.ToyConfig(**{**SMALL, "dtype": "float64", "restarts": 3})
    models = [sa.SineAttentionToy(config, r) for r in range(3)]
    with torch.no_grad():  # at initialisation one bin sits exactly on each neuron's kink (the anchors): move off it
        for m in models:
            m.mlp[0].bias += 1e-3
    t = sa.time_grid(config.n_bins, config.periods)
    sin, cos = sa.clocks(t, config.context, config.periods)
    stacked = [torch.stack([getattr(m, a).detach() for m in models]).requires_grad_(True)
               for a in ("W_q", "W_k", "W_v", "W_o")]
    z = sa.mha_last(*stacked, sin, cos, models[0].position_code(), config.d_head)  # (3, n, D)
    losses = torch.stack([torch.mean((m.mlp(z[r]).squeeze(-1) - sa.target(t)) ** 2) for r, m in enumerate(models)])
    losses.sum().backward()
    for r, m in enumerate(models):
        own = torch.mean((m(t) - sa.target(t)) ** 2)
        assert float(own.detach()) == pytest.approx(float(losses[r].detach()), rel=1e-12)
        grads = torch.autograd.grad(own, [m.W_q, m.W_k, m.W_v, m.W_o])
        for g_stacked, g_own in zip(stacked, grads):
            torch.testing.assert_close(g_stacked.grad[r], g_own, rtol=1e-9, atol=1e-12)
    fit = sa.train(**{**SMALL, "dtype": "float64", "restarts": 3, "steps": 1})
    assert fit.restart_losses.shape == (3,)


def test_threads_are_restored():
    before = torch.get_num_threads()
    fit = sa.train(seed=0, **{**SMALL, "steps": 2})
    sa.summarise(fit)
    sa.predict(fit.model)
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------- reproducibility across machines

def _preactivations_at_bins(model: sa.SineAttentionToy) -> torch.Tensor:
    with torch.no_grad():
        return model.mlp[0](model.mlp_input(sa.time_grid(model.config.n_bins, model.config.periods)))


def test_initial_kinks_sit_between_bins_not_on_them():
    """anchors="between" (the default) keeps every bin off every neuron's kink at step 0; anchors="on" puts one
    bin exactly on each kink, where round-off decides the ReLU's side (the source of CPU-dependent fits)."""
    between = _preactivations_at_bins(sa.SineAttentionToy(sa.ToyConfig(**SMALL)))
    on = _preactivations_at_bins(sa.SineAttentionToy(sa.ToyConfig(**SMALL, anchors="on")))
    scale = float(between.abs().max())
    assert float(between.abs().min(0).values.min()) > 1e-6 * scale
    assert float(on.abs().min(0).values.max()) < 1e-12 * scale


def test_float64_fits_do_not_depend_on_round_off():
    """A one-ulp nudge of every starting weight (the size of a different CPU's round-off) leaves float64 fits
    unchanged to ~1e-12: what the chapter prints is the same on any CPU."""
    r = sa.nudge_sensitivity(sa.ToyConfig(**{**SMALL, "steps": 150, "restarts": 2}))
    assert r["mse"].shape == r["mse_nudged"].shape == (2,)
    np.testing.assert_allclose(r["ratio"], 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="nudge"):
        sa.nudge_sensitivity(sa.ToyConfig(**SMALL), nudge=0)


def test_nudge_moves_every_weight_one_ulp():
    config = sa.ToyConfig(**{**SMALL, "steps": 0, "restarts": 1})
    plain = sa.SineAttentionToy(config, 0)
    models, _ = sa._train_group(config, range(1), "cpu", nudge=1)
    for a, b in zip(plain.parameters(), models[0].parameters()):
        moved = b.detach() != a.detach()
        assert torch.equal(b.detach(), torch.nextafter(a.detach(), torch.full_like(a, math.inf)))
        assert moved.any()


def test_summarise_reports_every_restart():
    fit = sa.train(seed=0, restarts=3, **{**SMALL, "steps": 40})
    row = sa.summarise(fit, per_bin=5)
    assert len(fit.restart_models) == 3
    assert len(row["restart_mse"]) == len(row["restart_pieces"]) == len(row["restart_distinct"]) == 3
    best = int(np.argmin(row["restart_mse"]))
    assert (row["restart_pieces"][best], row["restart_distinct"][best]) == (row["pieces"], row["distinct"])
    runs = sa.restart_rows([row])
    assert [r["restart"] for r in runs] == [0, 1, 2] and runs[best]["mse"] == row["mse"]


def test_compare_restarts_known_answers():
    a, b = [1.0, 2.0, 3.0, 100.0], [4.0, 4.0, 8.0, 8.0]
    value, (lo, hi) = sa.compare_restarts(a, b, "ratio")
    assert value == pytest.approx(2.5 / 6.0)
    assert lo <= value <= hi
    value, (lo, hi) = sa.compare_restarts(a, b, "difference", level=0.5)
    assert value == pytest.approx(2.5 - 6.0) and lo <= value <= hi
    same = sa.compare_restarts([5.0, 5.0], [5.0, 5.0], "difference")
    assert same == (0.0, (0.0, 0.0))
    assert sa.compare_restarts(a, b, seed=3) == sa.compare_restarts(a, b, seed=3)  # seeded
    for bad, match in ((dict(how="mean"), "how"), (dict(a=[1.0]), "at least 2")):
        with pytest.raises(ValueError, match=match):
            sa.compare_restarts(**{"a": a, "b": b, **bad})


# ----------------------------------------------------------------------------- regions

def brute_force(model: sa.SineAttentionToy, per_bin: int) -> tuple[int, int]:
    """Pieces and distinct patterns from `partition.activation_patterns` sampled on a fine grid of t (refined
    4x, up to twice, while two neurons switch within one step)."""
    for _ in range(3):
        P = partition.activation_patterns(model.mlp, sa.mlp_inputs(model, sa.fine_grid(model, per_bin)))
        changes = (P[1:] != P[:-1]).sum(1)
        if changes.max() <= 1:
            return 1 + int(changes.sum()), partition.count_distinct(P)
        per_bin *= 4
    raise AssertionError("grid too coarse: two neurons switch within one step")


def test_region_counts_match_brute_force(small_fit):
    for model in (small_fit.model, sa.SineAttentionToy(sa.ToyConfig(**{**SMALL, "context": 3, "heads": 1}))):
        counted = sa.count_regions(model, per_bin=10)
        assert (counted.pieces, counted.distinct) == brute_force(model, per_bin=400)
        assert counted.pieces == len(counted.boundaries) + 1
        assert np.all(np.diff(counted.boundaries) > 0)
        assert counted.distinct <= counted.pieces and counted.distinct_on_bins <= counted.distinct
        assert counted.distinct <= partition.regions_bound(model.config.hidden, sa.mlp_input_rank(model))


def test_region_boundaries_are_where_a_neuron_switches(small_fit):
    model = small_fit.model
    b = sa.count_regions(model, per_bin=10).boundaries
    pre = model.mlp[0](torch.from_numpy(sa.mlp_inputs(model, torch.from_numpy(b))).to(model.W_q)).detach()
    # at each boundary one neuron's pre-activation is ~0 (up to the polyline's chord error)
    assert pre.abs().min(1).values.max() < 1e-2 * pre.abs().max()


def test_one_head_one_token_is_an_ellipse():
    """C = 1: the MLP input is an affine image of (sin t/P, cos t/P), an ellipse traced once; a line cuts it
    at most twice, so there are at most 1 + 2 x hidden pieces."""
    model = sa.SineAttentionToy(sa.ToyConfig(context=1, heads=1, n_bins=200))
    assert sa.mlp_input_rank(model) == 2
    assert sa.count_regions(model, per_bin=5).pieces <= 1 + 2 * model.config.hidden


def test_deeper_mlp_is_counted_exactly_on_every_segment():
    model = sa.SineAttentionToy(sa.ToyConfig(context=4, heads=2, n_bins=60, dtype="float64"))
    g = torch.Generator().manual_seed(0)
    model.mlp = nn.Sequential(nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    with torch.no_grad():
        for p in model.mlp.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    counted = sa.count_regions(model, per_bin=10)
    P = partition.activation_patterns(model.mlp, sa.mlp_inputs(model, sa.fine_grid(model, 2000)))
    assert counted.pieces == 1 + int((P[1:] != P[:-1]).any(1).sum())


def test_summarise_and_sweep():
    rows = sa.sweep([1, 2], [2], progress=False, keep=True, n_bins=100, periods=2.0, steps=3)
    assert [(r["heads"], r["context"]) for r in rows] == [(1, 2), (2, 2)]
    assert {"mse", "pieces", "distinct", "linear_probe_mse", "rank", "fit"} <= set(rows[0])
    assert rows[1]["fit"].config.heads == 2
    assert 0 <= rows[0]["linear_probe_mse"] <= 0.5 + 1e-9


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("field,value,message", [
    ("context", 0, "context"), ("heads", 1.5, "heads"), ("heads", True, "heads"), ("d_model", 7, "d_model"),
    ("d_model", 2, "d_model"), ("lr", -1.0, "lr"), ("periods", float("inf"), "periods"), ("steps", -1, "steps"),
    ("warmup", 1.0, "warmup"), ("dtype", "float16", "dtype"), ("n_bins", 1, "n_bins"), ("restarts", 0, "restarts"),
    ("anchors", "near", "anchors"),
])
def test_bad_config_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        sa.ToyConfig(**{field: value})


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="unknown ToyConfig fields"):
        sa.train(contxt=10)
    with pytest.raises(ValueError, match="device"):
        sa.train(device="tpu", **{**SMALL, "steps": 1})
    with pytest.raises(ValueError, match="config"):
        sa.train({"context": 3})
    model = sa.SineAttentionToy(sa.ToyConfig(**SMALL))
    with pytest.raises(ValueError, match="per_bin"):
        sa.count_regions(model, per_bin=0)
    with pytest.raises(ValueError, match="heads, contexts"):
        sa.sweep([], [1], progress=False)
