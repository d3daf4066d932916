"""Known-answer, Monte Carlo and property tests for `icl_geometry.toys.linear_icl` (chapter 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from icl_geometry.bookkit.specs import get_spec
from icl_geometry.toys import linear_icl as li

torch.set_num_threads(1)


def setting(d: int = 4, N: int = 12, kind: str = "power", decay: float = 1.0, seed: int = 0):
    lam = li.make_spectrum(kind, d, decay)
    return lam, li.make_covariance(lam, seed=seed)


def mc_optimal(Lambda, N, rank, sigma=0.0, tau=0.0, n=40_000, seed=1):
    """Monte Carlo loss of Gamma*_rank on n fresh prompts: (mean, standard error)."""
    p = li.PromptSampler(Lambda, N, seed=seed)(n)
    X, y = p.context(sigma, tau)
    return li.mc_loss(li.predict_gamma(torch.as_tensor(li.optimal_gamma(Lambda, N, rank)), X, y, p.xq), p.yq)


# ----------------------------------------------------------------------------- data

@pytest.mark.parametrize("kind", li.SPECTRA)
def test_spectrum_has_trace_d_and_decreases(kind):
    lam = li.make_spectrum(kind, 7, 0.7)
    assert lam.sum() == pytest.approx(7) and np.all(np.diff(lam) <= 1e-12) and np.all(lam > 0)


def test_covariance_has_the_spectrum_and_a_random_rotation():
    lam, L = setting(d=6)
    assert np.allclose(li.eigh_desc(L)[0], lam)
    V = li.random_rotation(6, seed=3)
    assert np.allclose(V.T @ V, np.eye(6)) and not np.allclose(np.abs(V), np.eye(6))


def test_sampler_draws_the_input_covariance():
    _, L = setting(d=3)
    p = li.PromptSampler(L, 50, seed=0)(2000)
    emp = torch.einsum("bni,bnj->ij", p.X, p.X).numpy() / (2000 * 50)
    assert np.abs(emp - L).max() < 0.05 * np.abs(L).max()


def test_noisy_context_reads_the_same_prompts():
    _, L = setting(d=3)
    p = li.PromptSampler(L, 5, seed=0)(4)
    X0, y0 = p.context()
    X1, y1 = p.context(label_noise=2.0, input_noise=0.5)
    assert torch.allclose(X1 - X0, 0.5 * p.xi) and torch.allclose(y1 - y0, 2.0 * p.eps)
    assert torch.allclose(y0, torch.einsum("bnd,bd->bn", p.X, p.w))  # labels come from the clean inputs


def test_clean_gram_fast_path_matches_the_prompts():
    _, L = setting(d=3)
    a, b = li.PromptSampler(L, 7, seed=5), li.PromptSampler(L, 7, seed=5)
    G, w, xq = a.clean_gram(16)
    # same draws in the same order: Z (as X before the root), w, xq
    Z = b._randn(16, 7, 3)
    X = Z @ b.root
    w2, xq2 = b._randn(16, 3), b._randn(16, 3) @ b.root
    assert torch.allclose(w, w2) and torch.allclose(xq, xq2)
    assert torch.allclose(G, li.context_gram(X, torch.einsum("bnd,bd->bn", X, w)), atol=1e-12)


@pytest.mark.parametrize("sigma,tau", [(0.0, 0.0), (1.5, 0.0), (0.0, 0.7), (2.0, 0.3)])
def test_noisy_grams_equal_the_gram_of_the_noisy_context(sigma, tau):
    _, L = setting(d=4)
    p = li.PromptSampler(L, 9, seed=2)(32)
    assert torch.allclose(li.NoisyGrams(p).gram(sigma, tau), li.context_gram(*p.context(sigma, tau)), atol=1e-12)


# ----------------------------------------------------------------------------- model: the reduction

@pytest.mark.parametrize("init", li.INITS)
def test_fast_forward_is_the_literal_attention_output(init):
    _, L = setting(d=5)
    p = li.PromptSampler(L, 6, seed=0)(8)
    X, y = p.context(1.0, 0.3)
    net = li.LinearSelfAttention(5, (1, 3, 5), init=init, init_scale=1.0, seed=1)
    with torch.no_grad():
        full = net.forward_full(X, y, p.xq)
        assert full.shape == (3, 8, 6, 7)
        assert torch.allclose(net(X, y, p.xq), full[:, :, -1, -1], atol=1e-10)


def test_reduction_to_gamma_holds_exactly_when_u_and_b_vanish():
    _, L = setting(d=5)
    p = li.PromptSampler(L, 6, seed=0)(8)
    X, y = p.context(1.0, 0.3)
    zfb = li.LinearSelfAttention(5, (2, 4), init="zfb", init_scale=1.0, seed=1)
    rnd = li.LinearSelfAttention(5, (2, 4), init="random", init_scale=1.0, seed=1)
    with torch.no_grad():
        assert torch.allclose(zfb(X, y, p.xq), li.predict_gamma(zfb.gamma(), X, y, p.xq), atol=1e-10)
        assert zfb.even_weights().abs().max() == 0
        # generic weights: the even part is there, and it is even in w (flip w, y and compare)
        odd = li.predict_gamma(rnd.gamma(), X, y, p.xq)
        even = rnd(X, y, p.xq) - odd
        even_flipped = rnd(X, -y, p.xq) - li.predict_gamma(rnd.gamma(), X, -y, p.xq)
        assert even.abs().max() > 1e-3 and torch.allclose(even, even_flipped, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 7), data=st.data())
def test_gamma_rank_never_exceeds_the_key_query_width(d, data):
    r = data.draw(st.integers(1, d))
    net = li.LinearSelfAttention(d, r, init="random", init_scale=1.0, seed=data.draw(st.integers(0, 100)))
    assert torch.linalg.matrix_rank(net.gamma()[0]).item() <= r


# ----------------------------------------------------------------------------- closed form

@pytest.mark.parametrize("rank", [1, 2, 4])
@pytest.mark.parametrize("sigma,tau", [(0.0, 0.0), (2.0, 0.0), (0.0, 0.8), (1.5, 0.6)],
                         ids=["clean", "label", "input", "both"])
def test_closed_form_matches_monte_carlo_within_3_se(rank, sigma, tau):
    _, L = setting(d=4, N=12)
    mean, se = mc_optimal(L, 12, rank, sigma, tau)
    cf = li.expected_loss(li.optimal_gamma(L, 12, rank), L, 12, sigma, tau)
    assert abs(mean - cf) < 3 * se, (mean, cf, se)


def test_closed_form_matches_monte_carlo_for_an_arbitrary_gamma():
    _, L = setting(d=3, N=8)
    G = np.random.default_rng(0).standard_normal((3, 3))
    p = li.PromptSampler(L, 8, seed=4)(40_000)
    X, y = p.context(1.0, 0.5)
    mean, se = li.mc_loss(li.predict_gamma(torch.as_tensor(G), X, y, p.xq), p.yq)
    assert abs(mean - li.expected_loss(G, L, 8, 1.0, 0.5)) < 3 * se


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 8), N=st.integers(1, 200), kind=st.sampled_from(li.SPECTRA),
       decay=st.floats(0, 3), sigma=st.floats(0, 10), tau=st.floats(0, 3), data=st.data())
def test_eigenvalue_formula_equals_the_matrix_formula(d, N, kind, decay, sigma, tau, data):
    r = data.draw(st.integers(0, d))
    lam, L = setting(d, N, kind, decay, seed=data.draw(st.integers(0, 50)))
    a = li.expected_loss(li.optimal_gamma(L, N, r), L, N, sigma, tau)
    b = li.optimal_loss(lam, N, r, sigma, tau)
    assert a == pytest.approx(b, rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(2, 6), N=st.integers(2, 60), seed=st.integers(0, 1000), data=st.data())
def test_no_rank_r_gamma_beats_the_optimum(d, N, seed, data):
    r = data.draw(st.integers(1, d))
    _, L = setting(d, N, "power", 1.0, seed=seed)
    best = li.expected_loss(li.optimal_gamma(L, N, r), L, N)
    rng = np.random.default_rng(seed)
    for scale in (1.0, 0.1, 0.01):  # random rank-r matrices, far from and near the optimum
        P, Q = rng.standard_normal((d, r)), rng.standard_normal((d, r))
        G = li.optimal_gamma(L, N, r) * (scale < 1) + scale * P @ Q.T
        U, s, Vt = np.linalg.svd(G)
        G = (U[:, :r] * s[:r]) @ Vt[:r]  # keep it rank r
        assert li.expected_loss(G, L, N) >= best - 1e-10


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 5), N=st.integers(1, 50), sigma=st.floats(0, 5), tau=st.floats(0, 5),
       seed=st.integers(0, 1000))
def test_expected_loss_is_a_mean_square_so_never_negative(d, N, sigma, tau, seed):
    _, L = setting(d, N, seed=seed)
    G = np.random.default_rng(seed).standard_normal((3, d, d)) * 3
    losses = li.expected_loss(G, L, N, sigma, tau)
    assert losses.shape == (3,) and np.all(losses >= -1e-9)
    assert losses[1] == pytest.approx(li.expected_loss(G[1], L, N, sigma, tau))


def test_full_rank_optimum_is_a_stationary_point_and_numpy_torch_agree():
    _, L = setting(d=4, N=10)
    G = li.optimal_gamma(L, 10, 4)
    assert np.allclose(G, L @ np.linalg.inv(li.h_moment(L, 10)))  # Gamma* = Lambda H^-1
    Gt = torch.tensor(G, requires_grad=True)
    loss = li.expected_loss(Gt, torch.as_tensor(L), 10)
    loss.backward()
    assert Gt.grad.abs().max() < 1e-10
    assert float(loss.detach()) == pytest.approx(float(li.expected_loss(G, L, 10)))
    assert np.allclose(li.optimal_gamma(torch.as_tensor(L), 10, 2).numpy(), li.optimal_gamma(L, 10, 2))


def test_optimum_keeps_the_top_eigen_directions():
    lam, L = setting(d=6, N=20)
    for r in range(1, 7):
        assert li.top_mass(li.optimal_gamma(L, 20, r), L, r) == pytest.approx(1.0)
        assert np.allclose(np.diagonal(li.eigen_projection(li.optimal_gamma(L, 20, r), L))[:r],
                           li.optimal_gains(lam, 20)[:r])


# ----------------------------------------------------------------------------- clean vs noisy ordering

def test_clean_loss_falls_and_noisy_loss_rises_with_rank():
    lam, L = setting(d=6, N=20)
    T = lam.sum()
    clean = [li.optimal_loss(lam, 20, r) for r in range(7)]
    assert np.all(np.diff(clean) < 0)
    loud = math.sqrt(1.2 * ((20 + 1) * lam[0] + T))  # beyond every direction's label threshold
    assert np.all(np.diff([li.optimal_loss(lam, 20, r, loud) for r in range(7)]) > 0)
    loud_in = 1.2 * li.direction_threshold(lam, 20, 1, "input")
    assert np.all(np.diff([li.optimal_loss(lam, 20, r, 0.0, loud_in) for r in range(7)]) > 0)


def test_ordering_in_rank_is_measured_by_monte_carlo():
    lam, L = setting(d=4, N=12)
    loud = 1.3 * math.sqrt(13 * lam[0] + lam.sum())
    sw = li.noise_sweep(li.gram_predictors(gammas=np.stack([li.optimal_gamma(L, 12, r) for r in (1, 2, 4)]),
                                           baselines=False),
                        li.PromptSampler(L, 12, seed=9), 20_000, label_noise=(0.0, loud), pairs=[(0, 1), (1, 2)])
    clean, noisy = sw.loss[:, 0, 0], sw.loss[:, 1, 0]
    for i, j in [(0, 1), (1, 2)]:
        se = sw.pair_se[(i, j)][:, 0]
        assert clean[j] - clean[i] < -3 * se[0]  # larger rank better on clean prompts
        assert noisy[j] - noisy[i] > 3 * se[1]  # and worse under heavy label noise


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 8), N=st.integers(1, 100), kind=st.sampled_from(("power", "geometric")),
       decay=st.floats(0.1, 2), kind_noise=st.sampled_from(li.NOISE_KINDS), data=st.data())
def test_crossover_is_where_the_two_losses_meet(d, N, kind, decay, kind_noise, data):
    lam = li.make_spectrum(kind, d, decay)
    rs = data.draw(st.integers(0, d - 1))
    rl = data.draw(st.integers(rs + 1, d))
    x = li.crossover(lam, N, rs, rl, kind_noise)
    s, t = (x, 0.0) if kind_noise == "label" else (0.0, x)
    a, b = li.optimal_loss(lam, N, rs, s, t), li.optimal_loss(lam, N, rl, s, t)
    assert a == pytest.approx(b, rel=1e-9)
    if rl == rs + 1:  # adjacent ranks: the per-direction thresholds
        assert x == pytest.approx(li.direction_threshold(lam, N, rl, kind_noise))
        if kind_noise == "label":
            assert x ** 2 == pytest.approx((N + 1) * np.sort(lam)[::-1][rl - 1] + lam.sum())


def test_measured_crossover_recovers_an_exact_crossing_and_its_se():
    grid = np.linspace(0, 5, 11)
    small, large = 3.0 + 0.2 * grid ** 2, 1.0 + 0.5 * grid ** 2  # cross at variance 2/0.3
    x, se = li.measured_crossover(grid, small, large, diff_se=np.full(11, 0.01))
    assert x == pytest.approx(math.sqrt(2 / 0.3), rel=1e-12)
    assert se == pytest.approx(0.01 / (0.3 * 2 * x), rel=1e-9)
    assert all(math.isnan(v) for v in li.measured_crossover(grid, large, large + 1))


# ----------------------------------------------------------------------------- baselines

def test_least_squares_beats_every_rank_on_clean_well_conditioned_prompts():
    lam, L = setting(d=4, N=64, decay=0.5)  # N >> d, condition number 2
    p = li.PromptSampler(L, 64, seed=3)(5000)
    X, y = p.context()
    ls, _ = li.mc_loss(li.least_squares(X, y, p.xq), p.yq)
    for r in range(1, 5):
        mean, se = li.mc_loss(li.predict_gamma(torch.as_tensor(li.optimal_gamma(L, 64, r)), X, y, p.xq), p.yq)
        assert ls < 1e-20 < mean - 3 * se


def test_least_squares_under_label_noise_matches_its_known_risk():
    _, L = setting(d=3, N=20)
    sigma = 1.5
    p = li.PromptSampler(L, 20, seed=6)(40_000)
    X, y = p.context(sigma)
    mean, se = li.mc_loss(li.least_squares(X, y, p.xq), p.yq)
    assert abs(mean - sigma ** 2 * 3 / (20 - 3 - 1)) < 3 * se  # E tr(Lambda (X^T X)^-1) = d / (N - d - 1)


def test_gram_baselines_equal_the_direct_ones():
    _, L = setting(d=4, N=9)
    p = li.PromptSampler(L, 9, seed=1)(64)
    X, y = p.context(1.0, 0.2)
    G = li.context_gram(X, y)
    S, h = G[:, :4, :4], G[:, :4, 4]
    assert torch.allclose(li.least_squares_gram(S, h, p.xq, 9), li.least_squares(X, y, p.xq), atol=1e-9)
    assert torch.allclose(li.least_squares_gram(S, h, p.xq), li.least_squares(X, y, p.xq), atol=1e-8)
    assert torch.allclose(li.ridge_gram(S, h, p.xq, 2.0 / 9), li.ridge(X, y, p.xq, 2.0), atol=1e-9)
    short = li.PromptSampler(L, 2, seed=1)(8)  # N < d: minimum-norm fits agree too
    Xs, ys = short.context()
    Gs = li.context_gram(Xs, ys)
    assert torch.allclose(li.least_squares_gram(Gs[:, :4, :4], Gs[:, :4, 4], short.xq),
                          li.least_squares(Xs, ys, short.xq), atol=1e-8)


def test_ridge_is_the_posterior_mean_and_beats_least_squares_under_label_noise():
    _, L = setting(d=4, N=6)
    p = li.PromptSampler(L, 6, seed=2)(20_000)
    X, y = p.context(2.0)
    ls, _ = li.mc_loss(li.least_squares(X, y, p.xq), p.yq)
    rg, se = li.mc_loss(li.ridge(X, y, p.xq, li.bayes_ridge_penalty(2.0)), p.yq)
    assert rg + 3 * se < ls


def test_one_gd_step_uses_the_best_step_size():
    _, L = setting(d=4, N=10)
    eta = li.optimal_gd_step(L, 10)
    f = [li.expected_loss(e * np.eye(4), L, 10) for e in (0.99 * eta, eta, 1.01 * eta)]
    assert f[1] < f[0] and f[1] < f[2]
    p = li.PromptSampler(L, 10, seed=0)(4)
    X, y = p.context()
    assert torch.allclose(li.gd_step(X, y, p.xq, eta), li.predict_gamma(torch.eye(4) * eta, X, y, p.xq))


# ----------------------------------------------------------------------------- training

def test_training_converges_to_the_closed_form_at_the_ci_setting():
    spec = get_spec("05")
    ci = {p.name: p.ci for p in spec.params}
    lam = li.make_spectrum(ci["spectrum"], ci["d"], ci["decay"])
    L = li.make_covariance(lam, seed=0)
    fit = li.fit_ranks(L, ci["N"], ci["ranks"], ci["steps"], ci["batch"], lr=ci["lr"], seed=0)
    assert fit.final_rel_dist.max() < 0.02, fit.final_rel_dist
    gam = fit.model.gamma().detach().numpy()
    for g, r in zip(gam, ci["ranks"]):
        assert li.expected_loss(g, L, ci["N"]) < 1.02 * li.optimal_loss(lam, ci["N"], r)
        assert li.top_mass(g, L, r) > 0.99


def test_small_training_run_with_sampled_queries_and_sgd_gets_close():
    lam, L = setting(d=3, N=16, decay=0.5)
    fit = li.fit_ranks(L, 16, (1, 3), 300, 512, lr=0.02, seed=1, query="sample")
    assert fit.final_rel_dist.max() < 0.1 and fit.rel_dist[0].min() > 0.5
    sgd = li.fit_ranks(L, 16, (1, 3), 300, 512, lr=0.05, seed=1, optimizer="sgd", init_scale=1.0)
    assert sgd.final_rel_dist.max() < 0.1


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("call,match", [
    (lambda: li.make_spectrum("zipf", 4), "spectrum"),
    (lambda: li.make_spectrum("power", 0), "d = 0"),
    (lambda: li.optimal_gamma(np.eye(3), 5, 4), "rank = 4"),
    (lambda: li.optimal_gamma(np.eye(3), 0, 1), "N = 0"),
    (lambda: li.expected_loss(np.eye(3), np.eye(3), 5, label_noise=-1.0), "label_noise"),
    (lambda: li.expected_loss(np.eye(2), np.eye(3), 5), "Gamma"),
    (lambda: li.expected_loss(np.eye(3), -np.eye(3), 5), "positive semi-definite"),
    (lambda: li.expected_loss(np.eye(3), np.ones((3, 2)), 5), "square"),
    (lambda: li.LinearSelfAttention(3, (1, 4)), "rank = 4"),
    (lambda: li.LinearSelfAttention(3, 1, init="xavier"), "init"),
    (lambda: li.crossover(np.ones(3), 5, 2, 1), "r_small"),
    (lambda: li.direction_threshold(np.ones(3), 5, 1, "both"), "kind"),
])
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_chapter_spec_resolves_and_rejects_bad_knobs():
    from icl_geometry.bookkit import profiles

    cfg = profiles.resolve("05", profile="ci", device="cpu")
    assert cfg.ranks[-1] <= cfg.d and cfg.label_noise[0] == cfg.input_noise[0] == 0
    for bad, name in (
        (dict(ranks=(1, 4, 2)), "'ranks'"),
        (dict(ranks=(1, 9)), "'ranks'"),
        (dict(label_noise=(0.5, 1.0, 2.0)), "'label_noise'"),
        (dict(input_noise=(0.0, 1.0)), "'input_noise'"),
        (dict(input_noise=(0.0, 2.0, 1.0)), "'input_noise'"),
    ):
        with pytest.raises(ValueError, match=name):  # the spec's checks, in the chapter's first cell
            profiles.resolve("05", profile="ci", device="cpu", **bad)
    with pytest.raises(ValueError, match="'spectrum'"):
        profiles.resolve("05", profile="ci", device="cpu", spectrum="zipf")


# ----------------------------------------------------------------------------- the crossover itself, N < d, flips

def test_crossover_margin_recovers_two_exact_crossings():
    grid = np.linspace(0, 6, 13)
    zero = np.full(13, 10.0)
    small, large = 4.0 + 0.5 * grid ** 2, 2.0 + 1.0 * grid ** 2  # small meets 0 at v = 12, large meets small at v = 4
    m, se, xc, x0, sc = li.crossover_margin(grid, zero, small, large, np.full(13, 0.02), np.full(13, 0.01))
    assert xc == pytest.approx(2.0) and x0 == pytest.approx(math.sqrt(12))
    assert m == pytest.approx(math.sqrt(12) - 2.0)
    assert sc == pytest.approx(0.01 / (0.5 * 2 * xc)) and se == pytest.approx(sc + 0.02 / (0.5 * 2 * x0))


@settings(max_examples=40, deadline=None)
@given(d=st.integers(2, 8), N=st.integers(1, 100), kind=st.sampled_from(("power", "geometric")),
       decay=st.floats(0.1, 2), data=st.data())
def test_larger_model_loses_only_when_label_noise_variance_exceeds_var_y(d, N, kind, decay, data):
    lam = li.make_spectrum(kind, d, decay)
    T = lam.sum()  # Var(y) = E (w^T x)^2 = tr Lambda
    rs = data.draw(st.integers(0, d - 1))
    rl = data.draw(st.integers(rs + 1, d))
    assert li.crossover(lam, N, rs, rl, "label") ** 2 > T
    at_var_y = [li.optimal_loss(lam, N, r, math.sqrt(T)) for r in range(d + 1)]
    assert np.all(np.diff(at_var_y) < 0)  # at sigma^2 = Var(y) every larger rank still wins
    for r in range(1, d + 1):
        assert li.label_noise_condition(lam, N, r) == pytest.approx((N + 1) * lam[r - 1])


def test_var_y_is_tr_lambda_by_monte_carlo():
    _, L = setting(d=5, N=3)
    p = li.PromptSampler(L, 3, seed=5)(40_000)
    _, y = p.context()
    y = y.flatten().numpy()
    assert abs(y.var() - np.trace(L)) < 3 * y.var() * math.sqrt(2 / len(y)) * 2  # correlated within prompts


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_closed_form_holds_in_the_few_shot_regime(rank):
    _, L = setting(d=6, N=3)  # N < d: S is singular, the closed form does not need it inverted
    mean, se = mc_optimal(L, 3, rank, sigma=1.5)
    assert abs(mean - li.expected_loss(li.optimal_gamma(L, 3, rank), L, 3, 1.5)) < 3 * se


def test_flip_formulas_reduce_to_the_clean_ones_and_agree_with_each_other():
    lam, L = setting(d=5, N=7)
    for r in range(6):
        G = li.optimal_gamma(L, 7, r)
        assert li.flip_expected_loss(G, L, 7, 0.0) == pytest.approx(li.expected_loss(G, L, 7), rel=1e-12)
        for p in (0.1, 0.5, 0.9):
            assert li.flip_expected_loss(G, L, 7, p) == pytest.approx(li.flip_optimal_loss(lam, 7, r, p), rel=1e-12)
    # p = 1/2: labels carry no sign information, c = 0, and every direction only adds variance
    assert np.all(np.diff([li.flip_optimal_loss(lam, 7, r, 0.5) for r in range(6)]) > 0)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 8), N=st.integers(1, 200), decay=st.floats(0, 2), data=st.data())
def test_flip_threshold_is_where_adding_a_direction_stops_paying(d, N, decay, data):
    lam = li.make_spectrum("power", d, decay)
    r = data.draw(st.integers(1, d))
    p = li.flip_threshold(lam, N, r)
    assert 0 < p < 0.5
    f = [li.flip_optimal_loss(lam, N, r, q) - li.flip_optimal_loss(lam, N, r - 1, q) for q in (p - 1e-3, p, p + 1e-3)]
    assert f[0] < 0 < f[2] and abs(f[1]) < 1e-9 * lam.sum()


def test_flip_loss_matches_monte_carlo():
    _, L = setting(d=4, N=6)
    G = np.stack([li.optimal_gamma(L, 6, r) for r in (1, 2, 4)])
    loss, se, dse = li.flip_sweep(G, li.PromptSampler(L, 6, seed=3), 30_000, (0.0, 0.2, 0.45), seed=3)
    cf = np.array([[li.flip_expected_loss(g, L, 6, p) for p in (0.0, 0.2, 0.45)] for g in G])
    assert np.all(np.abs(loss - cf) < 3.5 * se)
    assert np.all(np.abs((loss[1:] - loss[:-1]) - (cf[1:] - cf[:-1])) < 3.5 * dse)
    assert loss.shape == se.shape == (3, 3) and dse.shape == (2, 3)


def test_flips_are_not_zero_mean_noise():
    _, L = setting(d=3, N=5)
    p = li.PromptSampler(L, 5, seed=8)(40_000)
    X, y = p.context()
    s = li.flip_signs(len(y), 5, 0.3, seed=1).to(y.dtype)
    h = li.h_vector(X, y * s)
    hw = torch.einsum("bi,bj->ij", h, p.w).numpy() / len(y)  # E[h w^T] = (1 - 2p) Lambda
    assert np.abs(hw - 0.4 * L).max() < 0.05
    assert float((s == -1).double().mean()) == pytest.approx(0.3, abs=0.01)
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="flip_rate"):
            li.flip_optimal_loss(np.ones(3), 5, 1, bad)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 8), N=st.integers(1, 200), decay=st.floats(0.1, 2), data=st.data())
def test_flip_crossover_is_where_the_two_losses_meet(d, N, decay, data):
    lam = li.make_spectrum("geometric", d, decay)
    rs = data.draw(st.integers(0, d - 1))
    rl = data.draw(st.integers(rs + 1, d))
    p = li.flip_crossover(lam, N, rs, rl)
    assert 0 < p < 0.5
    assert li.flip_optimal_loss(lam, N, rs, p) == pytest.approx(li.flip_optimal_loss(lam, N, rl, p), rel=1e-9)
    if rl == rs + 1:
        assert p == pytest.approx(li.flip_threshold(lam, N, rl), rel=1e-9)


def test_flip_window_rate_lies_where_the_larger_loses_and_the_smaller_still_beats_zero():
    lam = li.make_spectrum("power", 8, 1.0)
    for rs, rl in ((1, 2), (2, 4), (4, 8)):
        pc, p0 = li.flip_crossover(lam, 32, rs, rl), li.flip_crossover(lam, 32, 0, rs)
        p = li.flip_window_rate(lam, 32, rs, rl)
        assert pc < p < p0 < 0.5
        small = li.flip_optimal_loss(lam, 32, rs, p)
        margin = min(li.flip_optimal_loss(lam, 32, 0, p) - small, li.flip_optimal_loss(lam, 32, rl, p) - small)
        assert margin > 0
        for q in np.linspace(pc, p0, 11):  # no other rate of the window does better (up to the search grid)
            s = li.flip_optimal_loss(lam, 32, rs, q)
            other = min(li.flip_optimal_loss(lam, 32, 0, q) - s, li.flip_optimal_loss(lam, 32, rl, q) - s)
            assert other <= margin + 1e-12


# ----------------------------------------------------------------------------- the regime where the smaller wins

def _random_spectrum(rng: np.random.Generator, d: int) -> np.ndarray:
    """Any positive spectrum (not only the book's shapes), normalised to trace d, in decreasing order."""
    lam = np.sort(rng.lognormal(0.0, rng.uniform(0.1, 3.0), d))[::-1]
    return lam * d / lam.sum()


@pytest.mark.parametrize("kind", li.NOISE_KINDS)
def test_margin_x0_minus_xc_is_positive_for_every_spectrum_n_and_pair(kind):
    """Why chapter 5's noise claims are `derived`: x_c(r_s, r_l)^2 and x_0(r_s)^2 = x_c(0, r_s)^2 are weighted means
    of the per-direction thresholds (weights: the directions' noise slopes) over the directions r_s < i <= r_l and
    i <= r_s, and the thresholds decrease with i; so x_0 > x_c whatever the spectrum, N and ranks (2000 cases)."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        d = int(rng.integers(2, 17))
        lam, N = _random_spectrum(rng, d), int(rng.integers(1, 513))
        rs = int(rng.integers(1, d))
        rl = int(rng.integers(rs + 1, d + 1))
        xc, x0 = li.crossover(lam, N, rs, rl, kind), li.crossover(lam, N, 0, rs, kind)
        thr = [li.direction_threshold(lam, N, r, kind) for r in range(1, d + 1)]
        assert thr[rl - 1] <= xc * (1 + 1e-6) and xc <= thr[rs] * (1 + 1e-6)  # within its directions' thresholds
        assert thr[rs - 1] * (1 - 1e-6) <= x0 <= thr[0] * (1 + 1e-6)
        assert x0 - xc > -1e-6 * x0, (d, N, rs, rl)  # (crossover subtracts losses: 1e-9 round-off)


def test_smaller_model_regime_spans_the_thresholds_and_is_where_a_smaller_rank_is_best():
    lam = li.make_spectrum("power", 8, 1.0)
    lo, hi = li.smaller_model_regime(lam, 32, range(1, 9), "label")
    assert lo == pytest.approx(li.direction_threshold(lam, 32, 8))
    assert hi == pytest.approx(li.direction_threshold(lam, 32, 1))
    assert (lo / math.sqrt(8), hi / math.sqrt(8)) == pytest.approx((1.5867, 3.6252), abs=1e-4)  # units of sd(y)
    ranks = (1, 2, 4, 8)
    for kind in li.NOISE_KINDS:
        lo, hi = li.smaller_model_regime(lam, 32, ranks, kind)
        assert lo == pytest.approx(min(li.crossover(lam, 32, a, b, kind) for a, b in zip(ranks, ranks[1:])))
        assert hi == pytest.approx(li.crossover(lam, 32, 0, 1, kind))
        for x in np.linspace(0.0, 1.5 * hi, 61):
            s, t = (x, 0.0) if kind == "label" else (0.0, x)
            loss = [li.optimal_loss(lam, 32, r, s, t) for r in (0, *ranks)]
            best = int(np.argmin(loss))  # 0: predicting 0; len(ranks): the largest rank
            inside = lo * (1 + 1e-9) < x < hi * (1 - 1e-9)
            outside = x < lo * (1 - 1e-9) or x > hi * (1 + 1e-9)
            assert not inside or 0 < best < len(ranks), (kind, x)
            assert not outside or best in (0, len(ranks)), (kind, x)
    with pytest.raises(ValueError, match="increasing"):
        li.smaller_model_regime(lam, 32, (2, 1))
