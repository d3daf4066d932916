"""Known-answer, Monte Carlo and property tests for chapter 6 (`icl_geometry.toys.sparse_parity*`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from icl_geometry.toys import sparse_parity as sp
from icl_geometry.toys import sparse_parity_eval as ev
from icl_geometry.toys import sparse_parity_model as spm

torch.set_num_threads(1)

D, K_BITS, N_SUB, N_CTX = 6, 2, 8, 12


def setting(d=D, k=K_BITS, n_subsets=N_SUB, decay=0.7, seed=0):
    return sp.make_subsets(d, k, n_subsets, seed=seed), sp.make_weights(n_subsets, decay)


def parity(x: torch.Tensor, subset) -> torch.Tensor:
    return x[..., list(subset)].prod(-1)


# ----------------------------------------------------------------------------- data

def test_sample_prompts_shapes_values_and_clean_query():
    S, pi = setting()
    x, y, task = sp.sample_prompts(500, N_CTX, D, S, pi, label_flip=0.25, input_flip=0.1, seed=3)
    assert x.shape == (500, N_CTX + 1, D) and y.shape == (500, N_CTX + 1) and task.shape == (500,)
    assert set(x.unique().tolist()) == {-1.0, 1.0} and set(y.unique().tolist()) == {-1.0, 1.0}
    assert task.dtype == torch.int64 and 0 <= task.min() and task.max() < N_SUB
    truth = torch.stack([parity(x[i, -1], S[int(t)]) for i, t in enumerate(task)])
    assert torch.equal(y[:, -1], truth)  # the query label is always clean


def test_label_flip_flips_exactly_that_fraction_of_context_labels():
    S, pi = setting()
    for rate, n_flip in ((0.0, 0), (0.25, 3), (0.5, 6), (1.0, 12)):
        x, y, task = sp.sample_prompts(300, N_CTX, D, S, pi, label_flip=rate, seed=1)
        clean = torch.stack([parity(x[i], S[int(t)]) for i, t in enumerate(task)])
        flipped = (y[:, :-1] != clean[:, :-1]).sum(1)
        assert torch.all(flipped == n_flip) and torch.equal(y[:, -1], clean[:, -1])


def test_input_flip_corrupts_context_inputs_and_keeps_clean_labels():
    S, pi = setting()
    x0, y0, t0 = sp.sample_prompts(4000, N_CTX, D, S, pi, seed=2)
    x1, y1, t1 = sp.sample_prompts(4000, N_CTX, D, S, pi, input_flip=0.2, seed=2)
    assert torch.equal(y0, y1) and torch.equal(t0, t1) and torch.equal(x0[:, -1], x1[:, -1])
    rate = (x0[:, :-1] != x1[:, :-1]).double().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / x0[:, :-1].numel())


def test_tasks_follow_the_weights_and_inputs_are_uniform():
    S, pi = setting()
    x, y, task = sp.sample_prompts(20_000, 4, D, S, pi, seed=0)
    freq = np.bincount(task.numpy(), minlength=N_SUB) / 20_000
    assert np.all(np.abs(freq - pi) < 4 * np.sqrt(pi * (1 - pi) / 20_000))
    assert abs(x.mean().item()) < 0.01


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 7), data=st.data())
def test_sample_prompts_invariants(d, data):
    k = data.draw(st.integers(1, d))
    n_sub = data.draw(st.integers(1, math.comb(d, k)))
    S = sp.make_subsets(d, k, n_sub, seed=data.draw(st.integers(0, 99)))
    pi = sp.make_weights(n_sub, data.draw(st.floats(0.1, 1.0)))
    n, N = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 16))
    rate, q = data.draw(st.floats(0, 1)), data.draw(st.floats(0, 1))
    x, y, task = sp.sample_prompts(n, N, d, S, pi, label_flip=rate, input_flip=q, seed=data.draw(st.integers(0, 99)))
    assert x.shape == (n, N + 1, d) and y.shape == (n, N + 1) and task.shape == (n,)
    assert torch.all(x.abs() == 1) and torch.all(y.abs() == 1)
    query = torch.stack([parity(x[i, -1], S[int(t)]) for i, t in enumerate(task)])
    assert torch.equal(y[:, -1], query)
    if q == 0:
        clean = torch.stack([parity(x[i, :-1], S[int(t)]) for i, t in enumerate(task)])
        assert torch.all((y[:, :-1] != clean).sum(1) == sp.flip_count(N, rate))


def test_same_seed_same_prompts_and_encode_inverts_the_input_table():
    S, pi = setting()
    a, b = sp.sample_prompts(50, 5, D, S, pi, seed=9), sp.sample_prompts(50, 5, D, S, pi, seed=9)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    table = sp.input_table(D)
    assert torch.equal(sp.encode(table), torch.arange(2 ** D)) and torch.equal(table[sp.encode(a.x)], a.x)


def test_walsh_inverts_the_parity_table_and_parities_are_orthonormal():
    T = sp.parity_table(list(range(2 ** 5)), 5)
    assert torch.allclose(T @ T.T / 32, torch.eye(32, dtype=T.dtype))
    f = torch.randn(3, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sp.walsh(f) @ T, f, atol=1e-12)
    assert torch.allclose(sp.walsh(T[7]), torch.eye(32, dtype=T.dtype)[7])


# ----------------------------------------------------------------------------- closed form vs Monte Carlo

@pytest.fixture(scope="module")
def mc_prompts():
    S, pi = setting()
    return S, pi, sp.draw_prompts(60_000, N_CTX, D, S, pi, seed=11)


@pytest.mark.parametrize("kind,rate", [("label", 0.0), ("label", 0.25), ("label", 0.75), ("input", 0.15)])
def test_closed_form_matches_monte_carlo_within_3_5_se(mc_prompts, kind, rate):
    S, pi, prompts = mc_prompts
    heads = [1, 2, 4, 8]
    sw = ev.noise_sweep(ev.optimal_predictor(S, pi, N_CTX, heads), prompts, [rate], kind)
    lf, inf = (rate, 0.0) if kind == "label" else (0.0, rate)
    cf = np.array([sp.expected_loss(pi, N_CTX, m, lf, inf, K_BITS) for m in heads])
    z = (sw.loss[:, 0] - cf) / sw.loss_se[:, 0]
    assert np.all(np.abs(z) < 3.5), z


def test_closed_form_matches_monte_carlo_for_an_arbitrary_matrix():
    S, pi = setting(d=4, n_subsets=4)
    prompts = sp.draw_prompts(40_000, 8, 4, S, pi, seed=12)
    A = torch.as_tensor(np.random.default_rng(0).standard_normal((16, 16)) * 0.1)
    T = sp.parity_table(list(range(16)), 4)

    def predict(codes, y):
        c_hat = (T[:, codes[:, :-1]] * y[None, :, :-1]).mean(-1)
        return ((A @ c_hat) * T[:, codes[:, -1]]).sum(0)[None]

    for kind, rate in (("label", 0.0), ("label", 0.5), ("input", 0.2)):
        sw = ev.noise_sweep(predict, prompts, [rate], kind, inputs="codes")
        lf, inf = (rate, 0.0) if kind == "label" else (0.0, rate)
        assert abs(sw.loss[0, 0] - sp.bilinear_loss(A, S, pi, 8, lf, inf)) < 3.5 * sw.loss_se[0, 0]


@settings(max_examples=30, deadline=None)
@given(N=st.integers(1, 200), decay=st.floats(0.2, 1.0), rate=st.floats(0, 1), q=st.floats(0, 0.5),
       data=st.data())
def test_matrix_formula_equals_the_per_head_formula(N, decay, rate, q, data):
    S, pi = setting(decay=decay)
    m = data.draw(st.integers(0, N_SUB))
    A = sp.optimal_matrix(S, pi, N, m, D)
    assert float(sp.bilinear_loss(A, S, pi, N, rate, q)) == pytest.approx(
        float(sp.expected_loss(pi, N, m, rate, q, K_BITS)), rel=1e-10, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(2, 100), seed=st.integers(0, 1000), data=st.data())
def test_no_rank_m_matrix_beats_the_optimum(N, seed, data):
    S, pi = setting(d=4, n_subsets=5)
    m = data.draw(st.integers(1, 5))
    best = sp.optimal_matrix(S, pi, N, m, 4)
    rng = np.random.default_rng(seed)
    for scale in (1.0, 0.1, 0.01):
        P, Q = rng.standard_normal((16, m)), rng.standard_normal((16, m))
        A = best * (scale < 1) + scale * P @ Q.T
        U, s, Vt = np.linalg.svd(A)
        A = (U[:, :m] * s[:m]) @ Vt[:m]  # keep rank m
        assert sp.bilinear_loss(A, S, pi, N) >= sp.bilinear_loss(best, S, pi, N) - 1e-12


def test_full_optimum_is_a_stationary_point_and_gains_increase_with_importance():
    S, pi = setting()
    A = torch.tensor(sp.optimal_matrix(S, pi, N_CTX, N_SUB, D), requires_grad=True)
    sp.bilinear_loss(A, S, pi, N_CTX).backward()
    assert A.grad.abs().max() < 1e-12
    drop = N_CTX * pi ** 2 / (1 + (N_CTX - 1) * pi)
    losses = [float(sp.expected_loss(pi, N_CTX, m)) for m in range(N_SUB + 1)]
    assert np.allclose(-np.diff(losses), drop) and np.all(np.diff(drop) < 0)


# ----------------------------------------------------------------------------- noise: thresholds and crossovers

def test_refit_gains_never_let_a_head_hurt_but_clean_gains_do():
    S, pi = setting()
    for rate in (0.0, 0.25, 0.4, 0.5, 0.75):
        refit = sp.head_effects(pi, N_CTX, rate, 0.0, K_BITS, gains=sp.refit_gains(pi, N_CTX, rate))
        assert np.all(refit <= 1e-15)
    assert np.all(sp.head_effects(pi, N_CTX, 0.5) > 0)  # a = 0: every clean-gain head only adds noise


@settings(max_examples=40, deadline=None)
@given(N=st.integers(2, 500), decay=st.floats(0.2, 0.99), k=st.integers(1, 4))
def test_thresholds_are_where_a_head_stops_paying_and_rise_with_importance(N, decay, k):
    pi = sp.make_weights(10, decay)
    rho, q = sp.label_threshold(pi, N), sp.input_threshold(pi, N, k)
    assert np.allclose(sp.effects_at(pi, N, np.diag(np.broadcast_to(1 - 2 * rho, (10, 10)))).diagonal(), 0,
                       atol=1e-12)
    b = (1 - 2 * q) ** k
    assert np.allclose(sp.effects_at(pi, N, 1.0, np.diag(np.broadcast_to(b, (10, 10)))).diagonal(), 0, atol=1e-12)
    assert np.all(np.diff(rho) <= 1e-12) and np.all(np.diff(q) <= 1e-12)  # pi decreases along the list
    assert np.all((rho > 0.25 - 1e-12) & (rho < 0.5))


@settings(max_examples=40, deadline=None)
@given(N=st.integers(2, 200), decay=st.floats(0.3, 0.95), kind=st.sampled_from(sp.NOISE_KINDS), data=st.data())
def test_crossover_is_where_the_two_losses_meet(N, decay, kind, data):
    S, pi = setting(decay=decay)
    ms = data.draw(st.integers(0, N_SUB - 1))
    ml = data.draw(st.integers(ms + 1, N_SUB))
    x = sp.crossover(pi, N, ms, ml, kind, K_BITS)
    a, b = (1 - 2 * x, 1.0) if kind == "label" else (1.0, (1 - 2 * x) ** K_BITS)
    eff = sp.effects_at(pi, N, a, b)
    assert abs(eff[ms:ml].sum()) < 1e-9 * max(1.0, np.abs(eff).sum())
    assert x == pytest.approx(sp.matrix_crossover(sp.optimal_matrix(S, pi, N, ms, D),
                                                  sp.optimal_matrix(S, pi, N, ml, D), S, pi, N, kind), rel=1e-6)
    if ml == ms + 1:
        thr = sp.label_threshold(pi, N) if kind == "label" else sp.input_threshold(pi, N, K_BITS)
        assert x == pytest.approx(thr[ml - 1], rel=1e-9)


def test_measured_crossover_interpolates_and_t_interval_covers():
    rates = np.array([0.0, 0.1, 0.2, 0.3])
    assert ev.measured_crossover(rates, [1, 1, 1, 1], [0.5, 0.8, 1.1, 1.4]) == pytest.approx(2 / 3 * 0.1 + 0.1)
    assert math.isnan(ev.measured_crossover(rates, [1, 1, 1, 1], [0, 0, 0, 0]))
    mean, (lo, hi) = ev.t_interval([1.0, 2.0, 3.0], level=0.9)
    assert mean == 2.0 and hi - 2.0 == pytest.approx(2.919986 * 1 / math.sqrt(3), rel=1e-5)


# ----------------------------------------------------------------------------- the transformers

@pytest.mark.parametrize("attention", spm.ATTENTIONS)
@pytest.mark.parametrize("features", spm.FEATURES)
def test_lookup_forward_is_the_literal_token_by_token_forward(attention, features):
    S, pi = setting()
    fam = spm.ParityFamily(D, (1, 3), n_seeds=2, attention=attention, features=features, width=8, k=K_BITS, seed=1)
    x, y, _ = sp.sample_prompts(16, 7, D, S, pi, label_flip=0.3, input_flip=0.1, seed=0)
    with torch.no_grad():
        out = fam(sp.encode(x), y)
        assert out.shape == (4, 16) and torch.allclose(out, fam.forward_literal(x, y), atol=1e-12)


def test_linear_member_is_its_walsh_matrix_and_padded_slots_stay_unused():
    S, pi = setting()
    fam = spm.ParityFamily(D, (1, 2, 4), n_seeds=1, attention="linear", width=8, k=K_BITS, seed=2)
    p = sp.draw_prompts(64, 9, D, S, pi, seed=1)
    codes, y = p.read(0.25, 0.1)
    T = sp.parity_table(list(range(2 ** D)), D)
    c_hat = (T[:, codes[:, :-1]] * y[None, :, :-1]).mean(-1)
    with torch.no_grad():
        A = fam.walsh_matrices()
        assert torch.allclose(fam(codes, y), torch.einsum("sn,mst,tn->mn", T[:, codes[:, -1]], A, c_hat), atol=1e-12)
        assert torch.linalg.matrix_rank(A).tolist() == [1, 2, 4]
    fam(codes, y).sum().backward()
    assert fam.U.grad[0, 1:].abs().max() == 0 and fam.w.grad[1, 2:].abs().max() == 0
    assert fam.U[0, 1:].abs().max() == 0


def test_gradients_match_finite_differences():
    S, pi = setting(d=4, n_subsets=3)
    for attention in spm.ATTENTIONS:
        fam = spm.ParityFamily(4, (1, 2), attention=attention, width=3, k=K_BITS, seed=0)
        x, y, _ = sp.sample_prompts(5, 4, 4, S, pi, seed=0)
        codes = sp.encode(x)
        params = {name: p.detach().clone().requires_grad_() for name, p in fam.named_parameters()}

        def f(*values):
            return torch.func.functional_call(fam, dict(zip(params, values)), (codes, y)).sum()

        assert torch.autograd.gradcheck(f, tuple(params.values()))


def test_exact_loss_of_a_linear_family_matches_monte_carlo(mc_prompts):
    S, pi, prompts = mc_prompts
    fam = spm.ParityFamily(D, (2, 4), attention="linear", width=8, k=K_BITS, seed=4, init_out=0.3)
    with torch.no_grad():
        A = fam.walsh_matrices()
    sw = ev.noise_sweep(lambda c, y: fam(c, y), prompts, [0.0, 0.25], "label", inputs="codes")
    for j in range(2):
        exact = np.array([float(sp.bilinear_loss(A[j], S, pi, N_CTX, r)) for r in (0.0, 0.25)])
        assert np.all(np.abs(sw.loss[j] - exact) < 3.5 * sw.loss_se[j])


def test_fixed_feature_training_reaches_the_optimum_and_covers_the_top_subsets():
    S, pi = sp.make_subsets(5, 2, 4, seed=0), sp.make_weights(4, 0.6)
    res = spm.fit_family(5, S, pi, 16, (1, 2, 4), 1, steps=400, batch=256, attention="linear", features="fixed",
                         lr=0.02, seed=0)
    with torch.no_grad():
        exact = sp.bilinear_loss(res.model.walsh_matrices(), S, pi, 16).numpy()
    best = np.array([sp.expected_loss(pi, 16, m) for m in (1, 2, 4)])
    assert np.all(exact < 1.02 * best) and res.loss.shape == (len(res.steps), 3)
    cov = spm.coverage(res.model, S, pi, 16)
    assert np.allclose(np.diag(cov[:, [0, 1, 3]]), 1, atol=0.05) and abs(cov[0, 1:]).max() < 0.05


def test_learned_first_layer_finds_the_top_parity():
    S, pi = sp.make_subsets(5, 2, 4, seed=0), sp.make_weights(4, 0.5)
    res = spm.fit_family(5, S, pi, 16, (1, 2), 1, steps=400, batch=256, attention="linear", width=16, lr=0.01, seed=0)
    with torch.no_grad():
        exact = sp.bilinear_loss(res.model.walsh_matrices(), S, pi, 16).numpy()
    assert np.all(exact < 1.03 * np.array([sp.expected_loss(pi, 16, m) for m in (1, 2)]))
    assert spm.subset_reading(res.model, S)[0, 0] > 0.9  # the one-head model reads the top parity


def test_subset_values_of_the_optimum_are_minus_the_head_effects():
    S, pi = setting()
    A = sp.optimal_matrix(S, pi, N_CTX, 4, D)
    rates = [0.0, 0.25, 0.5]
    vals = ev.subset_values(A, S, pi, N_CTX, rates, "label")
    eff = sp.head_effects(pi, N_CTX, np.array(rates))  # (L, K)
    assert np.allclose(vals[:4], -eff[:, :4].T, atol=1e-12) and np.allclose(vals[4:], 0)


def test_per_task_accuracy_and_ablation_of_a_one_head_model(mc_prompts):
    S, pi, prompts = mc_prompts
    acc, loss = ev.per_task(ev.optimal_predictor(S, pi, N_CTX, [1]), prompts, N_SUB, inputs="x")
    assert acc[0, 0] == 1.0 and np.all(np.abs(acc[0, 1:] - 0.5) < 0.05)  # covered task solved, the rest guessed
    fam = spm.ParityFamily(D, (1, 2), attention="softmax", width=8, k=K_BITS, seed=3)
    one = fam.member_model(1)
    codes, y = prompts.read(0.25)
    with torch.no_grad():
        assert torch.allclose(one(codes[:64], y[:64])[0], fam(codes[:64], y[:64])[1], atol=1e-12)
    eff, se = ev.head_ablation(lambda h: fam.member_model(0).predictor(0, drop=h), 1, prompts, [0.0], "label")
    sw = ev.noise_sweep(fam.member_model(0).predictor(0), prompts, [0.0], "label", inputs="codes")
    assert eff[0, 0] == pytest.approx(1 - sw.loss[0, 0]) and se.shape == (1, 1)  # without its head it predicts 0


def test_crossover_rows_combine_seed_spread_and_monte_carlo_error():
    rates = np.linspace(0, 0.5, 11)
    small = np.ones((3, 11))
    large = np.stack([0.5 + 2 * rates + e for e in (-0.01, 0.0, 0.01)])  # crosses at 0.25 -/+ 0.005
    loss = np.stack([small, large], 1)  # (seeds, M = 2, L)
    rows = ev.crossover_rows(rates, loss, (1, 2), {(1, 2): 0.25}, pair_se=np.full((3, 1, 11), 0.01))
    r = rows[0]
    assert r["measured"] == pytest.approx(0.25) and r["seeds crossing"] == "3/3"
    t_half = 2.919986 * 0.005 / math.sqrt(3)
    assert (r["high"] - r["low"]) / 2 == pytest.approx(math.hypot(t_half, 1.644854 * 0.01 / 2), rel=1e-5)
    mean, lo, hi = ev.seed_intervals(np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))
    assert np.allclose(mean, [2, 4]) and np.allclose(hi - mean, [1.685, 3.370], rtol=1e-3)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("call,match", [
    (lambda: sp.make_subsets(4, 5, 1), "k = 5"),
    (lambda: sp.make_subsets(4, 2, 7), "n_subsets = 7"),
    (lambda: sp.make_weights(3, 1.5), "decay"),
    (lambda: sp.sample_prompts(4, 3, 4, [(0, 1)], [1.0], label_flip=1.5), "label_flip"),
    (lambda: sp.sample_prompts(4, 3, 4, [(0, 1)], [1.0], input_flip=-0.1), "input_flip"),
    (lambda: sp.sample_prompts(4, 3, 4, [(0, 1), (0, 1)], [0.5, 0.5]), "subsets"),
    (lambda: sp.sample_prompts(4, 3, 4, [(0, 1), (1, 2)], [1.0]), "weights"),
    (lambda: sp.sample_prompts(4, 3, 4, [(0, 1), (1, 2, 3)], [0.5, 0.5]), "subsets"),
    (lambda: sp.crossover([0.5, 0.5], 8, 2, 1), "m_small"),
    (lambda: sp.crossover([0.5, 0.5], 8, 0, 1, kind="both"), "kind"),
    (lambda: sp.bilinear_loss(np.eye(5), [(0, 1)], [1.0], 4), "2\\^d"),
    (lambda: spm.ParityFamily(4, (1, 2), attention="relu"), "attention"),
    (lambda: spm.ParityFamily(4, (2, 1)), "'heads'"),
    (lambda: sp.check_flip_grid("label_flip", (0.1, 0.2, 0.3)), "'label_flip'"),
])
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_chapter_spec_resolves_and_rejects_bad_knobs():
    from icl_geometry.bookkit import profiles

    cfg = profiles.resolve("06", profile="ci", device="cpu")
    assert sp.check_heads(cfg.heads, cfg.n_subsets) == cfg.heads
    sp.check_flip_grid("label_flip", cfg.label_flip)
    sp.check_flip_grid("input_flip", cfg.input_flip)
    for bad, name in ((dict(k=9), "'k'"), (dict(heads=(1, 2, 32)), "'heads'"), (dict(n_subsets=40, k=1), "'n_subsets'"),
                      (dict(label_flip=(0.0, 0.1, 0.2)), "'label_flip'"), (dict(decay=2.0), "'decay'")):
        with pytest.raises(ValueError, match=name):
            profiles.resolve("06", profile="ci", device="cpu", **bad)
