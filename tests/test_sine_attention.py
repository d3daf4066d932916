"""The attention + MLP sine toy (paper A, Figs. 4-5): embedding and splits, the fast attention path against the
plain formula, the dimension bound per (heads, context), training to a stated loss with the kept restart chosen
on validation data, determinism and round-off, region counts against brute force, the contrasts of two settings
(known answers), and clear errors. The chapter's claims on the toy's rows are tested in
tests/test_experiment_attention_graphs.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from icl_geometry.core import stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from icl_geometry.core import partition
from icl_geometry.toys import sine_attention as sa
from icl_geometry.toys.sine_attention import training

# A small config that trains in a few seconds on one CPU core: 2 periods, 200 bins (50 train), 2 contexts.
SMALL = dict(contexts=(1, 4), heads=2, d_head=4, n_bins=200, periods=2.0, steps=300)
LOSS_THRESHOLD = 0.01  # test MSE; sin has variance 0.5, the untrained toy starts near 0.5


@pytest.fixture(scope="module")
def small_fit() -> sa.FitResult:
    return sa.train(seed=0, **SMALL)


# ----------------------------------------------------------------------------- embedding, splits, budget

def test_clocks_turn_as_documented_and_do_not_depend_on_the_context():
    w = sa.clock_frequencies(10, periods=5.0)
    np.testing.assert_allclose(w.numpy(), 1 / (5.0 * np.arange(1, 11)))
    span = 2 * 5.0 * math.pi  # the series covers [-5 pi, 5 pi]
    assert float(w[0]) * span == pytest.approx(2 * math.pi)  # token 0, in every context, turns exactly once
    torch.testing.assert_close(sa.clock_frequencies(100)[:10], w)  # context C = the first C tokens
    t = sa.time_grid(7, 5.0)
    torch.testing.assert_close(sa.embed(t, 4), sa.embed(t, 9)[:, :4])


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


@settings(max_examples=30, deadline=None)
@given(n_bins=st.integers(8, 500))
def test_splits_partition_the_bins(n_bins):
    parts = {s: sa.split_times(s, n_bins) for s in sa.SPLITS}
    joined = torch.sort(torch.cat(list(parts.values()))).values
    torch.testing.assert_close(joined, sa.time_grid(n_bins))  # disjoint, and together every bin
    assert len(parts["train"]) == math.ceil(n_bins / 4)
    t = sa.time_grid(n_bins)
    assert torch.equal(parts["train"], t[::4]) and torch.equal(parts["val"], t[2::4])


def test_piece_budget_known_answers():
    assert [sa.piece_budget(8, r) for r in (0, 1, 2, 3)] == [1, 9, 17, -1]
    with pytest.raises(ValueError, match="piece_budget"):
        sa.piece_budget(0, 2)


def test_effective_dim_known_answers():
    a = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    circle = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)
    assert sa.effective_dim(circle) == pytest.approx(2.0)
    assert sa.effective_dim(np.outer(np.linspace(-1, 1, 50), [1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert sa.effective_dim(np.eye(5)) == pytest.approx(4.0)  # 5 points: a regular simplex spans 4 directions
    assert sa.effective_dim(np.ones((4, 3))) == 0.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3))
def test_effective_dim_ignores_rotation_scale_and_shift(seed, scale):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((60, 4)) * [3.0, 1.0, 0.5, 0.1]
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    assert sa.effective_dim(scale * z @ q + 7.0) == pytest.approx(sa.effective_dim(z), rel=1e-9)
    assert 1.0 <= sa.effective_dim(z) <= 4.0


# ----------------------------------------------------------------------------- model and the dimension bound

@pytest.mark.parametrize("context,heads", [(1, 1), (3, 2), (12, 5)])
def test_fast_attention_matches_the_plain_formula(context, heads):
    model = sa.SineAttentionToy(sa.ToyConfig(contexts=(1, 12), heads=heads, n_bins=50))
    t = sa.time_grid(300, 5.0)
    weights, z = model.attention(t, context)
    torch.testing.assert_close(model.mlp_input(t, context), z, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(300, heads, dtype=torch.float64))
    assert weights.shape == (300, heads, context)
    if context == 1:
        assert torch.all(weights == 1)


def test_rank_bound_known_answers():
    assert [sa.rank_bound(1, 8, c) for c in (1, 2, 5, 7, 10, 100)] == [2, 3, 6, 8, 8, 8]
    assert [sa.rank_bound(h, 8, 1) for h in (1, 4, 10)] == [2, 2, 2]  # one token: 2 for any number of heads
    assert [sa.rank_bound(h, 8, 5) for h in (1, 2, 3, 10)] == [6, 12, 16, 16]  # capped by d_model
    assert [sa.rank_bound(1, 2, c) for c in (1, 2, 100)] == [2, 2, 2]  # d_head = 2 pins one head to a plane
    with pytest.raises(ValueError, match="context"):
        sa.rank_bound(1, 8, 0)


@pytest.mark.parametrize("heads,d_head", [(1, 8), (3, 8), (3, 4), (10, 8), (1, 2)])
def test_mlp_input_rank_respects_the_bound(heads, d_head):
    """At initialisation the measured rank never exceeds the bound, reaches it at context 1 (and 2, few heads), and with
    d_head > 2 one head's rank grows with the context (smooth attention leaves some directions below 1e-6 of the
    largest at longer contexts, so the bound is not always reached there)."""
    model = sa.SineAttentionToy(sa.ToyConfig(contexts=(1, 100), heads=heads, d_head=d_head, n_bins=2000))
    ranks = {c: sa.mlp_input_rank(model, None, c) for c in (1, 2, 5, 10, 100)}
    for c, r in ranks.items():
        assert r <= sa.rank_bound(heads, d_head, c), (c, r)
    assert ranks[1] == 2
    if heads <= 3:  # (with 10 heads the 30 attention-weight functions are numerically dependent at 1e-6)
        assert ranks[2] == sa.rank_bound(heads, d_head, 2)
    if d_head > 2 and heads == 1:
        assert ranks[10] > ranks[2] > ranks[1]
    elif d_head == 2:
        assert set(ranks.values()) == {2}


def test_context_one_is_an_ellipse_within_the_planar_budget():
    model = sa.SineAttentionToy(sa.ToyConfig(contexts=(1, 10), heads=4, n_bins=200))
    assert sa.mlp_input_rank(model, None, 1) == 2
    assert sa.count_regions(model, 1, per_bin=5).pieces <= sa.piece_budget(model.config.hidden, 2)


def test_initial_hyperplanes_touch_the_input_curve():
    """Each neuron's hyperplane passes through the MLP input, at one of the contexts, of a time between two bins
    (no neuron starts dead at every context): its pre-activation changes sign within a bin of that time."""
    model = sa.SineAttentionToy(sa.ToyConfig(contexts=(1, 5), heads=2, n_bins=400))
    t = sa.time_grid(400, 5.0)
    with torch.no_grad():
        pre = torch.stack(
            [model.mlp[0](model.mlp_input(t, c)) for c in model.config.contexts]
        )  # (contexts, bins, hidden)
    closest = pre.abs().amin(dim=(0, 1))
    assert bool((closest < 1e-2 * pre.abs().max()).all())
    P = np.concatenate([sa.activation_patterns(model, t, c) for c in model.config.contexts])
    assert P.any(0).sum() >= model.config.hidden - 1  # (a hyperplane can touch the curve nearly tangentially)


# ----------------------------------------------------------------------------- training and selection

def test_small_config_trains_below_the_threshold(small_fit):
    assert small_fit.losses[0, 0] > 0.3  # starts near the variance of sin (0.5)
    for c in SMALL["contexts"]:
        assert sa.fit_error(small_fit.model, "test", c)["mse"] < LOSS_THRESHOLD
    assert small_fit.losses.shape == (SMALL["steps"], 1)
    mean_train = np.mean([sa.fit_error(small_fit.model, "train", c)["mse"] for c in SMALL["contexts"]])
    assert mean_train == pytest.approx(small_fit.losses[-1, 0], rel=0.05)  # the loss is the mean over contexts


def test_training_is_deterministic(small_fit):
    again = sa.train(seed=0, **SMALL)
    np.testing.assert_array_equal(again.losses, small_fit.losses)
    other = sa.train(seed=1, **{**SMALL, "steps": 5})
    assert other.losses[0, 0] != small_fit.losses[0, 0]


def test_kept_restart_is_chosen_on_validation_data():
    fit = sa.train(seed=3, seeds=2, restarts=3, **{**SMALL, "steps": 40})
    assert len(fit.models) == 6 and fit.losses.shape == (40, 6)
    assert [(m.seed, m.restart) for m in fit.models] == [(s, r) for s in (3, 4) for r in range(3)]
    for i, m in enumerate(fit.models):
        assert fit.val_mse[i] == pytest.approx(np.mean([sa.fit_error(m, "val", c)["mse"] for c in SMALL["contexts"]]))
    np.testing.assert_array_equal(fit.kept, [int(np.argmin(fit.val_mse[:3])), 3 + int(np.argmin(fit.val_mse[3:]))])
    assert len(set(np.round(fit.val_mse, 8))) == 6  # every network starts from its own initialisation
    # a network's initialisation depends on (seed, restart) only, not on how many seeds or restarts are trained
    alone = sa.SineAttentionToy(sa.ToyConfig(**SMALL, seed=4), seed=4, restart=2)
    torch.testing.assert_close(alone.W_q, sa.SineAttentionToy(fit.config, 4, 2).W_q)


def test_stacked_models_get_their_own_gradients():
    """Training the networks together is training each alone: the gradient of the summed loss with respect to
    network r's stacked parameters equals the gradient of network r's own loss (mean over contexts)."""
    config = sa.ToyConfig(**{**SMALL, "restarts": 3})
    models = [sa.SineAttentionToy(config, 0, r) for r in range(3)]
    t = sa.split_times("train", config.n_bins, config.periods)
    sin, cos = sa.clocks(t, config.max_context, config.periods)
    pos = models[0].position_code()
    stacked = [torch.stack([getattr(m, a).detach() for m in models]).requires_grad_(True)
               for a in ("W_q", "W_k", "W_v", "W_o")]
    losses = 0
    for C in config.contexts:
        z = sa.mha_last(*stacked, sin[:, :C], cos[:, :C], pos[:C], config.d_head)  # (3, n, D)
        losses = losses + torch.stack([torch.mean((m.mlp(z[r]).squeeze(-1) - sa.target(t)) ** 2)
                                       for r, m in enumerate(models)])
    (losses / len(config.contexts)).sum().backward()
    for r, m in enumerate(models):
        own = sum(torch.mean((m(t, C) - sa.target(t)) ** 2) for C in config.contexts) / len(config.contexts)
        grads = torch.autograd.grad(own, [m.W_q, m.W_k, m.W_v, m.W_o])
        for g_stacked, g_own in zip(stacked, grads):
            torch.testing.assert_close(g_stacked.grad[r], g_own, rtol=1e-9, atol=1e-12)


def test_cycle_mixture_trains_one_context_per_step():
    fit = sa.train(**{**SMALL, "steps": 4, "mixture": "cycle"})
    assert fit.losses.shape == (4, 1)


def test_threads_are_restored():
    before = torch.get_num_threads()
    fit = sa.train(seed=0, **{**SMALL, "steps": 2})
    sa.evaluate(fit, per_bin=2)
    sa.predict(fit.model, "test", 1)
    assert torch.get_num_threads() == before


# ----------------------------------------------------------------------------- reproducibility across machines

def _min_preactivation_at_training_bins(model: sa.SineAttentionToy) -> np.ndarray:
    """Per neuron, the smallest |pre-activation| over the training bins and the contexts."""
    t = sa.split_times("train", model.config.n_bins, model.config.periods)
    with torch.no_grad():
        pre = torch.stack([model.mlp[0](model.mlp_input(t, c)).abs().min(0).values for c in model.config.contexts])
    return pre.min(0).values.numpy(), float(pre.max())


def test_initial_kinks_sit_between_bins_not_on_them():
    """anchors="between" (the default) keeps every training bin off every neuron's kink at step 0; anchors="on"
    puts one training bin exactly on each kink, where round-off decides the ReLU's side."""
    between, scale = _min_preactivation_at_training_bins(sa.SineAttentionToy(sa.ToyConfig(**SMALL)))
    on, _ = _min_preactivation_at_training_bins(sa.SineAttentionToy(sa.ToyConfig(**SMALL, anchors="on")))
    assert between.min() > 1e-6 * scale
    assert on.max() < 1e-12 * scale


def test_float64_fits_do_not_depend_on_round_off():
    """A one-ulp nudge of every starting weight (the size of a different CPU's round-off) leaves float64 fits
    unchanged to ~1e-12: what the chapter prints is the same on any CPU."""
    r = sa.nudge_sensitivity(sa.ToyConfig(**{**SMALL, "steps": 150, "restarts": 2}))
    assert r["mse"].shape == r["mse_nudged"].shape == (2,)
    np.testing.assert_allclose(r["ratio"], 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="nudge"):
        sa.nudge_sensitivity(sa.ToyConfig(**SMALL), nudge=0)


def test_nudge_moves_every_weight_one_ulp():
    config = sa.ToyConfig(**{**SMALL, "steps": 0})
    plain = sa.SineAttentionToy(config, 0, 0)
    models, _ = training._train_group(config, [(0, 0)], "cpu", nudge=1)
    for a, b in zip(plain.parameters(), models[0].parameters()):
        assert torch.equal(b.detach(), torch.nextafter(a.detach(), torch.full_like(a, math.inf)))


# ----------------------------------------------------------------------------- rows and contrasts

def test_evaluate_gives_a_row_per_network_and_context():
    fit = sa.train(seed=0, seeds=2, restarts=2, **{**SMALL, "steps": 20})
    rows = pd.DataFrame(sa.evaluate(fit, per_bin=2))
    assert list(rows.columns) == list(sa.ROW_FIELDS)
    assert len(rows) == 2 * 2 * len(SMALL["contexts"])
    assert rows.groupby(["seed", "context"]).kept.sum().eq(1).all()  # one kept restart per seed, at every context
    assert (rows[~rows.kept].pieces == -1).all() and rows[~rows.kept].eff_dim.isna().all()
    k = rows[rows.kept]
    assert (k.pieces >= 1).all() and (k.distinct <= k.pieces).all() and (k["rank"] >= 1).all()
    model = fit.models[int(fit.kept[0])]
    first = k[(k.seed == 0) & (k.context == 4)].iloc[0]
    assert first.test_mse == pytest.approx(sa.fit_error(model, "test", 4)["mse"])
    assert first.pieces == sa.count_regions(model, 4, per_bin=2).pieces


def test_compare_restarts_known_answers():
    """Independent fits: the ratio of geometric means (MSEs) or the difference of means, with Welch's interval."""
    a, b = [1.0, 2.0, 3.0, 100.0], [4.0, 4.0, 8.0, 8.0]
    value, (lo, hi) = sa.compare_restarts(a, b, "ratio")
    assert value == pytest.approx(np.exp(np.mean(np.log(a)) - np.mean(np.log(b))))
    assert lo < value < hi
    assert (value, (lo, hi)) == stats.welch_interval(b, a, 0.9, log=True)
    value, (lo, hi) = sa.compare_restarts(a, b, "difference", level=0.5)
    assert value == pytest.approx(np.mean(a) - np.mean(b)) and lo < value < hi
    assert sa.compare_restarts([5.0, 5.0], [5.0, 5.0], "difference") == (0.0, (0.0, 0.0))
    for bad, match in ((dict(how="mean"), "how"), (dict(a=[1.0]), "at least 2")):
        with pytest.raises(ValueError, match=match):
            sa.compare_restarts(**{"a": a, "b": b, **bad})
    with pytest.raises(ValueError, match="positive"):
        sa.compare_restarts([0.0, 1.0], [1.0, 2.0], "ratio")


def test_compare_paired_known_answers():
    """The same networks at two readings: the geometric mean of the ratios (or the mean difference), t over
    networks; a constant within-pair ratio or difference has a zero-width interval."""
    value, (lo, hi) = sa.compare_paired([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], "ratio")
    assert (value, lo, hi) == pytest.approx((2.0, 2.0, 2.0))
    assert sa.compare_paired([3.0, 5.0, 9.0], [1.0, 3.0, 7.0], "difference") == (2.0, (2.0, 2.0))
    value, (lo, hi) = sa.compare_paired([3.0, 5.0, 10.0], [1.0, 3.0, 7.0], "difference")
    d = np.array([2.0, 2.0, 3.0])
    half = 2.919986 * d.std(ddof=1) / np.sqrt(3)  # t_{0.95, 2}
    assert value == pytest.approx(d.mean()) and (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half))
    with pytest.raises(ValueError, match="same length"):
        sa.compare_paired([1.0, 2.0], [1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- regions

def brute_force(model: sa.SineAttentionToy, context: int, per_bin: int) -> tuple[int, int]:
    """Pieces and distinct patterns from `partition.activation_patterns` sampled on a fine grid of t (refined
    4x, up to twice, while two neurons switch within one step)."""
    for _ in range(3):
        P = partition.activation_patterns(model.mlp, sa.mlp_inputs(model, sa.fine_grid(model, per_bin), context))
        changes = (P[1:] != P[:-1]).sum(1)
        if changes.max() <= 1:
            return 1 + int(changes.sum()), partition.count_distinct(P)
        per_bin *= 4
    raise AssertionError("grid too coarse: two neurons switch within one step")


def test_region_counts_match_brute_force(small_fit):
    untrained = sa.SineAttentionToy(sa.ToyConfig(**{**SMALL, "heads": 1}))
    for model, context in ((small_fit.model, 4), (small_fit.model, 1), (untrained, 4)):
        counted = sa.count_regions(model, context, per_bin=10)
        assert (counted.pieces, counted.distinct) == brute_force(model, context, per_bin=400)
        assert counted.pieces == len(counted.boundaries) + 1
        assert np.all(np.diff(counted.boundaries) > 0)
        assert counted.distinct <= counted.pieces and counted.distinct_on_bins <= counted.distinct
        assert counted.distinct <= partition.regions_bound(model.config.hidden, sa.mlp_input_rank(model, None, context))


def test_region_boundaries_are_where_a_neuron_switches(small_fit):
    model = small_fit.model
    b = sa.count_regions(model, 4, per_bin=10).boundaries
    pre = model.mlp[0](torch.from_numpy(sa.mlp_inputs(model, torch.from_numpy(b), 4)).to(model.W_q)).detach()
    # at each boundary one neuron's pre-activation is ~0 (up to the polyline's chord error)
    assert pre.abs().min(1).values.max() < 1e-2 * pre.abs().max()


def test_deeper_mlp_is_counted_exactly_on_every_segment():
    model = sa.SineAttentionToy(sa.ToyConfig(contexts=(4,), heads=2, n_bins=60))
    g = torch.Generator().manual_seed(0)
    model.mlp = nn.Sequential(nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 1)).double()
    with torch.no_grad():
        for p in model.mlp.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    counted = sa.count_regions(model, 4, per_bin=10)
    P = partition.activation_patterns(model.mlp, sa.mlp_inputs(model, sa.fine_grid(model, 2000), 4))
    assert counted.pieces == 1 + int((P[1:] != P[:-1]).any(1).sum())


def test_sweep():
    rows, fits = sa.sweep([1, 2], progress=False, per_bin=2, contexts=[1, 2], n_bins=40, periods=2.0, steps=3)
    assert sorted({(r["heads"], r["context"]) for r in rows}) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert fits[2].config.heads == 2 and fits[2].config.contexts == (1, 2)
    assert all(0 <= r["probe_mse"] <= 0.5 + 1e-9 for r in rows if r["kept"])


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("field,value,message", [
    ("contexts", (), "contexts"), ("contexts", (4, 1), "contexts"), ("contexts", (0, 2), "contexts"),
    ("contexts", [1, 2], "contexts"), ("contexts", (1, 1), "contexts"), ("heads", 1.5, "heads"),
    ("heads", True, "heads"), ("d_model", 7, "d_model"), ("d_model", 2, "d_model"), ("lr", -1.0, "lr"),
    ("periods", float("inf"), "periods"), ("steps", -1, "steps"), ("warmup", 1.0, "warmup"),
    ("dtype", "float16", "dtype"), ("n_bins", 4, "n_bins"), ("restarts", 0, "restarts"), ("seeds", 0, "seeds"),
    ("anchors", "near", "anchors"), ("mixture", "random", "mixture"),
])
def test_bad_config_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        sa.ToyConfig(**{field: value})


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match="unknown ToyConfig fields"):
        sa.train(context=10)
    with pytest.raises(ValueError, match="device"):
        sa.train(device="tpu", **{**SMALL, "steps": 1})
    with pytest.raises(ValueError, match="config"):
        sa.train({"contexts": (3,)})
    model = sa.SineAttentionToy(sa.ToyConfig(**SMALL))
    with pytest.raises(ValueError, match="per_bin"):
        sa.count_regions(model, 4, per_bin=0)
    with pytest.raises(ValueError, match="context"):
        model.mlp_input(sa.time_grid(5), 5)  # longer than the longest trained context
    with pytest.raises(ValueError, match="split"):
        sa.split_times("holdout")
    with pytest.raises(ValueError, match="heads"):
        sa.sweep([], progress=False)
    with pytest.raises(ValueError, match="regions"):
        sa.evaluate(sa.train(**{**SMALL, "steps": 1}), regions="some")
