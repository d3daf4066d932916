"""In-context linear regression with one layer of linear self-attention (paper B's first setting).

Data. A prompt holds N pairs (x_i, y_i) and a query x_q. Inputs x ~ N(0, Lambda) with
Lambda = V diag(lambda) V^T (a chosen spectrum, a Haar-random rotation V); the task w ~ N(0, I_d) is
fresh for every prompt; y_i = w^T x_i. At test time the context may carry label noise
(y_i + sigma eps_i, eps_i ~ N(0, 1)) and input noise (the model sees x_i + tau xi_i, xi_i ~ N(0, I_d),
while y_i was made from the clean x_i); the query is always clean and the target is w^T x_q.

Model. E = [[x_1 .. x_N, x_q], [y_1 .. y_N, 0]] in R^{(d+1) x (N+1)} and
f(E) = E + W^PV E M (E^T W^KQ E) / N, M = diag(1, .., 1, 0) (the query is not a key); the prediction is
f(E)[d, N]. Size is the key/query width r: W^KQ = W_K^T W_Q with W_K, W_Q in R^{r x (d+1)}, so
rank W^KQ <= r. Write the last row of W^PV as (u^T, v) and the first d columns of W^KQ as [[A], [b^T]].
With G = (1/N) sum_i z_i z_i^T, z_i = (x_i, y_i), and h = (1/N) sum_i y_i x_i:

    y_hat = (u, v)^T G W^KQ[:, :d] x_q = x_q^T Gamma h + [u^T S A x_q + v (mean y^2) b^T x_q],
    Gamma = v A^T + b u^T = W_Q[:, :d]^T (v W_K[:, :d] + W_K[:, d] u^T)   (so rank Gamma <= r),

with S = (1/N) sum_i x_i x_i^T. The bracket is even in w while the target is odd, so it only adds
error; at the optimum u = b = 0 and the model is y_hat = x_q^T Gamma h.

Closed form (derived in chapter 5). For a clean query the loss of any Gamma is

    L(Gamma) = E (x_q^T Gamma h - w^T x_q)^2 = tr(Gamma^T Lambda Gamma H) - 2 tr(Lambda Gamma Lambda) + tr Lambda,
    H = E[h h^T] = [(N+1) Lambda^2 + (T + sigma^2) Lambda + tau^2 (T + sigma^2) I] / N,  T = tr Lambda,

because E[h w^T] = Lambda whatever the noise. Derivation of H: h = S w + (1/N) sum_i [xi_i x_i^T w tau
+ eps_i sigma (x_i + tau xi_i)]; the three parts are uncorrelated; E[S^2] = ((N+1) Lambda^2 + T Lambda)/N
(Isserlis: E[x x^T x x^T] = 2 Lambda^2 + T Lambda); the input-noise part gives
tau^2 E[(w^T x)^2] I / N = tau^2 T I / N; the label-noise part gives sigma^2 (Lambda + tau^2 I) / N.
Minimising over rank(Gamma) <= r (Eckart-Young on Lambda^{1/2} Gamma H^{1/2}; the target's singular values
lambda_i (N / ((N+1) lambda_i + T))^{1/2} increase with lambda_i) keeps the top-r eigen-directions of
Lambda with gains gamma_i = N / ((N+1) lambda_i + T). Per kept direction i the clean loss falls by
N lambda_i^2 / ((N+1) lambda_i + T) and the noise adds gamma_i^2 lambda_i [sigma^2 lambda_i + tau^2 (T + sigma^2)] / N,
so direction r pays off only while sigma^2 < (N+1) lambda_r + T (label noise) and
tau^2 < lambda_r ((N+1) lambda_r + T) / T (input noise, no label noise). Since Var(y) = tr Lambda = T, the label
threshold is Var(y) + (N+1) lambda_r: additive noise must exceed the label variance before a larger model loses.

Flipped labels (y_i -> -y_i with probability p, c = 1 - 2p) are not zero-mean noise: E[h w^T] = c Lambda and
H_p = [(2 + (N-1) c^2) Lambda^2 + T Lambda] / N; direction r stops paying above a flip rate p_r < 1/2
(`flip_threshold`), and any two ranks cross at `flip_crossover`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from icl_geometry.toys.linear_icl.checks import (NOISE_KINDS, SPECTRA, Array, check_cov, check_int, check_noise,
                                                 check_rate, is_torch)


# ----------------------------------------------------------------------------- data

def make_spectrum(kind: str, d: int, decay: float = 1.0) -> np.ndarray:
    """Eigenvalues lambda_1 >= .. >= lambda_d of Lambda, scaled so that tr Lambda = d.

    'power': lambda_i ~ i^-decay; 'geometric': lambda_i ~ exp(-decay (i - 1)); 'flat': all 1 (decay unused;
    every rank-r optimum is then one of many, since tied directions are interchangeable).
    """
    d = check_int("d", d, 1)
    if kind not in SPECTRA:
        raise ValueError(f"spectrum = {kind!r} is not allowed: expected one of {list(SPECTRA)}")
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.number)) or not 0 <= decay < 1e3:
        raise ValueError(f"decay = {decay!r} is not allowed: expected a number in [0, 1000)")
    i = np.arange(1, d + 1, dtype=np.float64)
    lam = {"power": i ** -float(decay), "geometric": np.exp(-float(decay) * (i - 1)), "flat": np.ones(d)}[kind]
    return lam * d / lam.sum()


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A Haar-random d x d orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    d = check_int("d", d, 1)
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def make_covariance(lam: Array, rotation: Array | None = None, seed: int = 0) -> np.ndarray:
    """Lambda = V diag(lam) V^T, with V = `rotation` or a Haar-random rotation drawn from `seed`."""
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim != 1 or np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise ValueError("lam: expected a 1-d array of finite eigenvalues >= 0")
    V = random_rotation(len(lam), seed) if rotation is None else np.asarray(rotation, dtype=np.float64)
    L = (V * lam) @ V.T
    return (L + L.T) / 2


def eigh_desc(Lambda: Array) -> tuple[Array, Array]:
    """Eigenvalues in decreasing order and the matching eigenvectors (columns), numpy or torch."""
    if is_torch(Lambda):
        lam, V = torch.linalg.eigh(Lambda)
        return lam.flip(-1), V.flip(-1)
    lam, V = np.linalg.eigh(np.asarray(Lambda, dtype=np.float64))
    return lam[::-1].copy(), V[:, ::-1].copy()


# ----------------------------------------------------------------------------- closed form

def h_moment(Lambda: Array, N: int, label_noise: float = 0.0, input_noise: float = 0.0) -> Array:
    """E[h h^T] = [(N+1) Lambda^2 + (T + sigma^2) Lambda + tau^2 (T + sigma^2) I] / N (see the module docstring)."""
    N = check_int("N", N, 1)
    s2, t2 = check_noise("label_noise", label_noise) ** 2, check_noise("input_noise", input_noise) ** 2
    T = Lambda.diagonal().sum()
    eye = torch.eye(Lambda.shape[0], dtype=Lambda.dtype, device=Lambda.device) if is_torch(Lambda) \
        else np.eye(Lambda.shape[0])
    return ((N + 1) * Lambda @ Lambda + (T + s2) * Lambda + t2 * (T + s2) * eye) / N


def expected_loss(Gamma: Array, Lambda: Array, N: int, label_noise: float = 0.0, input_noise: float = 0.0) -> Array:
    """Population MSE of x_q^T Gamma h against w^T x_q for a clean query, noise given as standard deviations.

    L = tr(Gamma^T Lambda Gamma H) - 2 tr(Lambda Gamma Lambda) + tr Lambda with H = `h_moment`. Gamma may carry
    leading batch dimensions (..., d, d); numpy in, numpy out; torch in (either argument), torch out.
    """
    check_cov(Lambda)
    if tuple(Gamma.shape[-2:]) != tuple(Lambda.shape):
        raise ValueError(f"Gamma: expected shape (..., {Lambda.shape[0]}, {Lambda.shape[0]}), got {tuple(Gamma.shape)}")
    if is_torch(Gamma, Lambda):
        ref = Gamma if is_torch(Gamma) else Lambda
        Gamma = torch.as_tensor(Gamma, dtype=ref.dtype, device=ref.device)
        Lambda = torch.as_tensor(Lambda, dtype=ref.dtype, device=ref.device)
        ein = torch.einsum
    else:
        Gamma, Lambda = np.asarray(Gamma, dtype=np.float64), np.asarray(Lambda, dtype=np.float64)
        ein = np.einsum
    H = h_moment(Lambda, N, label_noise, input_noise)
    quad = ein("...ji,jk,...kl,li->...", Gamma, Lambda, Gamma, H)  # tr(Gamma^T Lambda Gamma H)
    cross = ein("ij,...jk,ki->...", Lambda, Gamma, Lambda)  # tr(Lambda Gamma Lambda)
    return quad - 2 * cross + Lambda.diagonal().sum()


def optimal_gains(lam: Array, N: int) -> Array:
    """gamma_i = N / ((N+1) lambda_i + tr Lambda) for eigenvalues `lam`."""
    N = check_int("N", N, 1)
    return N / ((N + 1) * lam + lam.sum())


def optimal_gamma(Lambda: Array, N: int, rank: int) -> Array:
    """The loss-minimising Gamma of rank <= `rank`: V_r diag(gamma_1..gamma_r) V_r^T (top-r eigen-directions).

    The optimum is trained on clean prompts; it does not depend on the noise met at test time.
    """
    check_cov(Lambda)
    d = Lambda.shape[0]
    rank = check_int("rank", rank, 0, d)
    lam, V = eigh_desc(Lambda)
    g = optimal_gains(lam, N)[:rank]
    Vr = V[:, :rank]
    return (Vr * g) @ Vr.T


def optimal_loss(lam: Array, N: int, rank: int, label_noise: Array = 0.0, input_noise: Array = 0.0) -> np.ndarray:
    """The loss of `optimal_gamma` from the eigenvalues alone, broadcast over arrays of noise levels.

    tr Lambda - sum_{i<=r} N lambda_i^2 / ((N+1) lambda_i + T)
              + sum_{i<=r} gamma_i^2 lambda_i [sigma^2 lambda_i + tau^2 (T + sigma^2)] / N.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    rank = check_int("rank", rank, 0, len(lam))
    N = check_int("N", N, 1)
    s2, t2 = np.asarray(label_noise, dtype=np.float64) ** 2, np.asarray(input_noise, dtype=np.float64) ** 2
    T, g, top = lam.sum(), optimal_gains(lam, N)[:rank], lam[:rank]
    clean = T - np.sum(N * top ** 2 / ((N + 1) * top + T))
    a, b = np.sum(g ** 2 * top ** 2) / N, np.sum(g ** 2 * top) / N  # noise coefficients
    return clean + s2 * a + t2 * (T + s2) * b


def direction_threshold(lam: Array, N: int, r: int, kind: str = "label") -> float:
    """Noise standard deviation above which adding direction r (1-based) to the rank-(r-1) optimum hurts.

    label: sigma^2 = (N+1) lambda_r + T;  input (no label noise): tau^2 = lambda_r ((N+1) lambda_r + T) / T.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    r = check_int("r", r, 1, len(lam))
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    T, lr = lam.sum(), lam[r - 1]
    return float(math.sqrt((N + 1) * lr + T) if kind == "label" else math.sqrt(lr * ((N + 1) * lr + T) / T))


def crossover(lam: Array, N: int, r_small: int, r_large: int, kind: str = "label") -> float:
    """Noise standard deviation at which the optimal rank-r_small and rank-r_large models have equal loss.

    Both losses are linear in the noise variance (the other noise at 0), so the crossing is exact;
    inf when the larger model never loses (no extra direction with lambda > 0).
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    if not 0 <= r_small < r_large:
        raise ValueError(f"r_small = {r_small!r}, r_large = {r_large!r}: expected 0 <= r_small < r_large")
    sigma, tau = (1.0, 0.0) if kind == "label" else (0.0, 1.0)

    def clean(r: int) -> float:
        return float(optimal_loss(lam, N, r))

    def per_variance(r: int) -> float:  # extra loss per unit noise variance
        return float(optimal_loss(lam, N, r, sigma, tau)) - clean(r)

    gain = clean(r_small) - clean(r_large)  # clean advantage of the larger model
    slope = per_variance(r_large) - per_variance(r_small)
    return float(math.sqrt(gain / slope)) if slope > 0 else math.inf


def smaller_model_regime(lam: Array, N: int, ranks: Sequence[int], kind: str = "label") -> tuple[float, float]:
    """The noise range (standard deviations) where the best of the optimal models of `ranks` is a smaller one: from
    the first crossing of adjacent ranks (min over pairs of `crossover`) to the noise at which the smallest rank
    becomes worse than predicting 0 (`crossover(0, ranks[0])`). Below it the largest rank is best, above it
    predicting 0 is. With ranks 1..d it spans the per-direction thresholds, from direction d's to direction 1's.

    The range is never empty: any crossing x_c(r_s, r_l)^2 is a weighted mean of the per-direction thresholds
    sigma_i^2 of the directions r_s < i <= r_l (the weights are their noise slopes), which decrease with i, so it
    lies below x_0(r_s)^2, a weighted mean of those of the directions i <= r_s."""
    ranks = [check_int("rank", r, 1, len(np.asarray(lam))) for r in ranks]
    if not ranks or any(b <= a for a, b in zip(ranks, ranks[1:])):
        raise ValueError(f"ranks = {ranks!r}: expected one or more increasing ranks")
    upper = crossover(lam, N, 0, ranks[0], kind)
    lower = min((crossover(lam, N, a, b, kind) for a, b in zip(ranks, ranks[1:])), default=upper)
    return float(lower), float(upper)


def label_noise_condition(lam: Array, N: int, r: int) -> float:
    """Excess noise variance needed for direction r (1-based) to hurt, beyond Var(y) = tr Lambda.

    The label-noise threshold is sigma_r^2 = (N+1) lambda_r + T and Var(y) = E (w^T x)^2 = tr Lambda = T, so
    the larger model is worse only when sigma^2 > Var(y) + (N+1) lambda_r: the noise variance must exceed
    the label variance itself, by an amount that grows with the context length N. Returns (N+1) lambda_r.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    r = check_int("r", r, 1, len(lam))
    return float(direction_threshold(lam, N, r, "label") ** 2 - lam.sum())


# ----------------------------------------------------------------------------- flipped labels

def flip_h_moment(Lambda: Array, N: int, flip_rate: float) -> np.ndarray:
    """E[h h^T] when each context label is flipped, y_i -> -y_i, independently with probability p.

    h = (1/N) sum_i s_i y_i x_i with s_i = -1 w.p. p: s_i^2 = 1 and E s_i = c = 1 - 2p, so the N diagonal
    terms give E[x x^T w w^T x x^T] = 2 Lambda^2 + T Lambda and the N(N-1) off-diagonal ones c^2 Lambda^2:
    H = [(2 + (N-1) c^2) Lambda^2 + T Lambda] / N. Flips are not zero-mean noise: E[h w^T] = c Lambda.
    """
    N = check_int("N", N, 1)
    c = 1 - 2 * float(check_rate(flip_rate))
    L = np.asarray(Lambda, dtype=np.float64)
    return ((2 + (N - 1) * c * c) * L @ L + np.trace(L) * L) / N


def flip_expected_loss(Gamma: Array, Lambda: Array, N: int, flip_rate: float) -> Array:
    """Population MSE of x_q^T Gamma h (clean query) with flip rate p: tr(G^T L G H_p) - 2c tr(L G L) + T."""
    check_cov(Lambda)
    G, L = np.asarray(Gamma, dtype=np.float64), np.asarray(Lambda, dtype=np.float64)
    c = 1 - 2 * float(check_rate(flip_rate))
    H = flip_h_moment(L, N, flip_rate)
    quad = np.einsum("...ji,jk,...kl,li->...", G, L, G, H)
    cross = np.einsum("ij,...jk,ki->...", L, G, L)
    return quad - 2 * c * cross + np.trace(L)


def flip_optimal_loss(lam: Array, N: int, rank: int, flip_rate: Array = 0.0) -> np.ndarray:
    """Loss of the (clean-trained) rank-r optimum at flip rate p, from the eigenvalues; broadcasts over p.

    T + sum_{i<=r} [gamma_i^2 lambda_i ((2 + (N-1) c^2) lambda_i^2 + T lambda_i) / N - 2 c gamma_i lambda_i^2].
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    rank = check_int("rank", rank, 0, len(lam))
    N = check_int("N", N, 1)
    c = 1 - 2 * check_rate(flip_rate)
    T, g, top = lam.sum(), optimal_gains(lam, N)[:rank], lam[:rank]
    a2 = np.sum(g ** 2 * top ** 3) / N  # coefficient of (2 + (N-1) c^2)
    a0 = np.sum(g ** 2 * top ** 2) * T / N
    a1 = np.sum(g * top ** 2)
    return T + (2 + (N - 1) * c * c) * a2 + a0 - 2 * c * a1


def flip_threshold(lam: Array, N: int, r: int) -> float:
    """Flip rate above which adding direction r (1-based) to the rank-(r-1) optimum hurts.

    Direction r helps iff gamma_r [(2 + (N-1) c^2) lambda_r + T] / N < 2c, i.e.
    (N-1) lambda_r c^2 - 2 b c + e < 0 with b = (N+1) lambda_r + T, e = 2 lambda_r + T. The smaller root is
    c_r = e / (b + sqrt(b^2 - (N-1) lambda_r e)) (the larger one exceeds 1), so the threshold is
    p_r = (1 - c_r) / 2 < 1/2: every direction, and so every larger model, loses once p > p_r, and all of
    them lose for p >= 1/2, where the context points towards -w on average.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    r = check_int("r", r, 1, len(lam))
    N = check_int("N", N, 1)
    T, lr = lam.sum(), lam[r - 1]
    b, e = (N + 1) * lr + T, 2 * lr + T
    c = e / (b + math.sqrt(b * b - (N - 1) * lr * e))
    return float((1 - c) / 2)


def flip_crossover(lam: Array, N: int, r_small: int, r_large: int) -> float:
    """Flip rate at which the clean-trained rank-r_small and rank-r_large optima have equal loss.

    In c = 1 - 2p the loss difference is a quadratic, (N-1) dA2 c^2 - 2 dA1 c + (2 dA2 + dA0), positive at
    c = 0 (no sign information: the larger model only adds variance) and negative at c = 1 (clean), so it has
    exactly one root in (0, 1); r_small = 0 gives the flip rate where the rank-r_large model becomes worse
    than predicting 0.
    """
    if not 0 <= r_small < r_large:
        raise ValueError(f"r_small = {r_small!r}, r_large = {r_large!r}: expected 0 <= r_small < r_large")
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    check_int("r_large", r_large, 1, len(lam))
    N = check_int("N", N, 1)
    T, g = lam.sum(), optimal_gains(lam, N)
    sl = slice(r_small, r_large)  # the directions the larger model adds
    a2 = np.sum(g[sl] ** 2 * lam[sl] ** 3) / N
    a0 = np.sum(g[sl] ** 2 * lam[sl] ** 2) * T / N
    a1 = np.sum(g[sl] * lam[sl] ** 2)
    qa, qb, qc = (N - 1) * a2, -2 * a1, 2 * a2 + a0
    if qa == 0:
        c = -qc / qb
    else:
        c = (-qb - math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)  # the smaller root; the larger one exceeds 1
    return float((1 - c) / 2)


def flip_window_rate(lam: Array, N: int, r_small: int, r_large: int, points: int = 101) -> float:
    """The flip rate in (p_c, p_0) where the larger of two optima loses to the smaller by the most while the smaller
    still beats predicting 0: between the size crossover p_c = `flip_crossover(r_small, r_large)` and
    p_0 = `flip_crossover(0, r_small)`, on `points` rates, where the smaller of the two predicted margins peaks."""
    p_try = np.linspace(flip_crossover(lam, N, r_small, r_large), flip_crossover(lam, N, 0, r_small), points)
    loss_s = flip_optimal_loss(lam, N, r_small, p_try)
    return float(p_try[np.argmax(np.minimum(flip_optimal_loss(lam, N, 0, p_try) - loss_s,
                                            flip_optimal_loss(lam, N, r_large, p_try) - loss_s))])


def eigen_projection(Gamma: Array, Lambda: Array) -> np.ndarray:
    """V^T Gamma V in the eigenbasis of Lambda (decreasing eigenvalues), (..., d, d) numpy."""
    G = Gamma.detach().cpu().numpy() if is_torch(Gamma) else np.asarray(Gamma)
    L = Lambda.detach().cpu().numpy() if is_torch(Lambda) else np.asarray(Lambda)
    _, V = eigh_desc(L)
    return np.einsum("ji,...jk,kl->...il", V, G, V)


def top_mass(Gamma: Array, Lambda: Array, r: int) -> np.ndarray:
    """Fraction of ||Gamma||_F^2 inside the top-r eigen-block of Lambda (1 for the optimum)."""
    P = eigen_projection(Gamma, Lambda)
    return (P[..., :r, :r] ** 2).sum((-1, -2)) / (P ** 2).sum((-1, -2))
