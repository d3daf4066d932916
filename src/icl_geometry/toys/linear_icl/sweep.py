"""Monte Carlo measurement in `toys.linear_icl`: the baselines (least squares, ridge, one GD step), noise sweeps
over the same prompts (common random numbers), flipped-label sweeps, the crossings read off measured curves, and
tables of the closed form against Monte Carlo."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from icl_geometry.toys.linear_icl.checks import Array, check_cov, check_int, check_noise, check_rate, is_torch
from icl_geometry.toys.linear_icl.model import LinearSelfAttention, PromptSampler, Prompts, h_vector, predict_gamma
from icl_geometry.toys.linear_icl.theory import h_moment


# ----------------------------------------------------------------------------- baselines

def least_squares(X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """x_q^T w_LS with the least-squares fit of each prompt, (B,) (minimum-norm fit when N < d)."""
    N, d = X.shape[-2:]
    if N < d:
        w = (torch.linalg.pinv(X) @ y[..., None])[..., 0]
    else:  # normal equations: batched and fast; X^T X is well conditioned for Gaussian X with N >= d
        w = torch.linalg.solve(X.transpose(1, 2) @ X, (X.transpose(1, 2) @ y[..., None]))[..., 0]
    return (xq * w).sum(-1)


def least_squares_gram(S: torch.Tensor, h: torch.Tensor, xq: torch.Tensor, N: int | None = None) -> torch.Tensor:
    """Least squares from the context statistics: w = S^+ h (S = X^T X / N, h = X^T y / N).

    With N >= d (pass N) S is invertible and a batched solve is used; otherwise (N < d, or N unknown) the
    pseudo-inverse gives the minimum-norm fit, since X^T y lies in the row space of X.
    """
    if N is not None and N >= S.shape[-1]:
        w = torch.linalg.solve(S, h[..., None])[..., 0]
    else:
        w = (torch.linalg.pinv(S, hermitian=True) @ h[..., None])[..., 0]
    return (xq * w).sum(-1)


def ridge_gram(S: torch.Tensor, h: torch.Tensor, xq: torch.Tensor, penalty_over_n: Any,
               N: int | None = None) -> torch.Tensor:
    """Ridge from the context statistics: w = (S + penalty/N I)^-1 h; penalty 0 is least squares."""
    if float(penalty_over_n) == 0:
        return least_squares_gram(S, h, xq, N)
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    return (xq * torch.linalg.solve(S + penalty_over_n * eye, h[..., None])[..., 0]).sum(-1)


def bayes_ridge_penalty(label_noise: float, input_noise: float = 0.0, d: int = 0) -> float:
    """sigma^2: the ridge penalty whose fit is the posterior mean of w ~ N(0, I) under label noise sigma.

    With input noise tau the posterior is not Gaussian; we then add tau^2 d, the variance input noise adds to
    each label on average (E |w|^2 = d), a heuristic baseline rather than the Bayes rule.
    """
    return check_noise("label_noise", label_noise) ** 2 + check_noise("input_noise", input_noise) ** 2 * d


def ridge(X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor, penalty: float) -> torch.Tensor:
    """x_q^T (X^T X + penalty I)^-1 X^T y per prompt, (B,); penalty 0 is least squares."""
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not penalty >= 0:
        raise ValueError(f"penalty = {penalty!r} is not allowed: expected a number >= 0")
    if penalty == 0:
        return least_squares(X, y, xq)
    d = X.shape[-1]
    A = X.transpose(1, 2) @ X + penalty * torch.eye(d, dtype=X.dtype, device=X.device)
    w = torch.linalg.solve(A, (X.transpose(1, 2) @ y[..., None]))[..., 0]
    return (xq * w).sum(-1)


def optimal_gd_step(Lambda: Array, N: int) -> float:
    """The best step size eta for one GD step from w = 0 (Gamma = eta I) on clean prompts:
    tr(Lambda^2) / tr(Lambda H)."""
    L = Lambda.detach().cpu().numpy() if is_torch(Lambda) else np.asarray(Lambda, dtype=np.float64)
    check_cov(L)
    return float(np.trace(L @ L) / np.trace(L @ h_moment(L, N)))


def gd_step(X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor, eta: float) -> torch.Tensor:
    """One gradient step on (1/2N) sum (y_i - w^T x_i)^2 from w = 0: y_hat = eta x_q^T h, (B,)."""
    return eta * (xq * h_vector(X, y)).sum(-1)


class NoisyGrams:
    """The context statistics of a batch of prompts at any (label, input) noise, from one product per batch.

    With inputs X + tau xi and labels X w + sigma eps, every entry of the context Gram matrix
    G = (1/N) sum_i z_i z_i^T is a polynomial in (sigma, tau) whose coefficients are inner products among
    the columns of [X, xi, Xw, eps]; those are computed once (one batched matmul), so a noise sweep costs
    O(B N d^2) once plus O(B d^2) per noise level instead of O(B N d^2) per level.
    """

    def __init__(self, prompts: Prompts) -> None:
        X, xi, eps = prompts.X, prompts.xi, prompts.eps
        B, N, d = X.shape
        U = torch.cat([X, xi, torch.einsum("bnd,bd->bn", X, prompts.w)[..., None], eps[..., None]], -1)
        P = U.transpose(1, 2) @ U / N  # (B, 2d+2, 2d+2)
        self.d, self.N = d, N
        x, k, y0, e = slice(0, d), slice(d, 2 * d), 2 * d, 2 * d + 1
        self.XX, self.Xk, self.kk = P[:, x, x], P[:, x, k], P[:, k, k]
        self.Xy, self.Xe, self.ky, self.ke = P[:, x, y0], P[:, x, e], P[:, k, y0], P[:, k, e]
        self.yy, self.ye, self.ee = P[:, y0, y0], P[:, y0, e], P[:, e, e]

    def gram(self, label_noise: float = 0.0, input_noise: float = 0.0) -> torch.Tensor:
        """G (B, d+1, d+1) of the contexts read with label-noise std `label_noise` and input-noise std `input_noise`."""
        s, t = check_noise("label_noise", label_noise), check_noise("input_noise", input_noise)
        S = self.XX + t * (self.Xk + self.Xk.transpose(1, 2)) + t * t * self.kk
        h = self.Xy + s * self.Xe + t * self.ky + s * t * self.ke
        yy = self.yy + 2 * s * self.ye + s * s * self.ee
        return torch.cat([torch.cat([S, h[..., None]], -1), torch.cat([h, yy[:, None]], -1)[:, None]], 1)


@dataclass
class Sweep:
    """Monte Carlo losses of P predictors over a (label, input) noise grid, on the same prompts."""

    label_noise: np.ndarray  # (L,)
    input_noise: np.ndarray  # (I,)
    loss: np.ndarray  # (P, L, I) mean squared error against w^T x_q
    se: np.ndarray  # (P, L, I) its standard error
    pair_se: dict[tuple[int, int], np.ndarray]  # (i, j) -> (L, I) standard error of loss[j] - loss[i] (paired)
    n_prompts: int


def noise_sweep(predict: Callable[..., torch.Tensor], sampler: PromptSampler, n_prompts: int,
                label_noise: Sequence[float] = (0.0,), input_noise: Sequence[float] = (0.0,),
                pairs: Sequence[tuple[int, int]] = (), chunk: int = 8192) -> Sweep:
    """Monte Carlo loss of P predictors on the same n_prompts prompts at every (label, input) noise pair.

    `predict(G, xq, label_noise, input_noise)` maps context Gram matrices G (B, d+1, d+1) (see `context_gram`;
    every predictor here reads a context only through G) and queries (B, d) to (P, B) predictions. The prompts
    are drawn once and re-read at each noise level (common random numbers), so differences between noise
    levels and between predictors are measured with far less noise than the losses themselves; `pairs` of
    predictor indices get the standard error of their paired loss difference.
    """
    n_prompts, chunk = check_int("n_prompts", n_prompts, 2), check_int("chunk", chunk, 1)
    sig = np.array([check_noise("label_noise", v) for v in label_noise])
    tau = np.array([check_noise("input_noise", v) for v in input_noise])
    pairs = [tuple(map(int, pr)) for pr in pairs]
    sums: dict[str, Any] = {}

    def add(key: str, value: torch.Tensor) -> None:
        v = value.double().cpu().numpy()
        sums[key] = v if key not in sums else sums[key] + v

    done = 0
    with torch.no_grad():
        while done < n_prompts:
            p = sampler(min(chunk, n_prompts - done))
            grams, yq = NoisyGrams(p), p.yq
            errs = torch.stack([torch.stack([
                (torch.as_tensor(predict(grams.gram(s_, t_), p.xq, s_, t_)).reshape(-1, len(p)) - yq) ** 2
                for t_ in tau], -1) for s_ in sig], -2)  # (P, B, L, I)
            add("e", errs.sum(1))
            add("e2", (errs ** 2).sum(1))
            for i, j in pairs:
                diff = errs[j] - errs[i]
                add(f"d{i},{j}", diff.sum(0))
                add(f"dd{i},{j}", (diff ** 2).sum(0))
            done += len(p)

    def sem(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        mean = s1 / n_prompts
        var = (s2 / n_prompts - mean ** 2) * n_prompts / (n_prompts - 1)
        return np.sqrt(np.maximum(var, 0) / n_prompts)

    pair_se = {(i, j): sem(sums[f"d{i},{j}"], sums[f"dd{i},{j}"]) for i, j in pairs}
    return Sweep(sig, tau, sums["e"] / n_prompts, sem(sums["e"], sums["e2"]), pair_se, n_prompts)


def gram_predictors(model: LinearSelfAttention | None = None, gammas: Array | None = None, Lambda: Array | None = None,
                    N: int | None = None, baselines: bool = True) -> Callable[..., torch.Tensor]:
    """A `noise_sweep` predictor stacking: the model's ranks, then x_q^T Gamma h for each Gamma in `gammas`,
    then (if `baselines`) least squares, ridge at `bayes_ridge_penalty` and one GD step at `optimal_gd_step`."""
    if baselines and (Lambda is None or N is None):
        raise ValueError("gram_predictors: baselines=True needs Lambda and N (for the GD step size and ridge)")
    eta = optimal_gd_step(Lambda, N) if baselines else 0.0

    def predict(G: torch.Tensor, xq: torch.Tensor, label_noise: float, input_noise: float) -> torch.Tensor:
        d = G.shape[-1] - 1
        S, h = G[:, :d, :d], G[:, :d, d]
        out = []
        if model is not None:
            out.append(model.forward_gram(G, xq))
        if gammas is not None:
            out.append(torch.einsum("bi,mij,bj->mb", xq, torch.as_tensor(gammas, dtype=G.dtype, device=G.device), h))
        if baselines:
            n = G.new_tensor(float(N))
            out.append(least_squares_gram(S, h, xq, N)[None])
            out.append(ridge_gram(S, h, xq, bayes_ridge_penalty(label_noise, input_noise, d) / n, N)[None])
            out.append(eta * (xq * h).sum(-1)[None])
        return torch.cat(out)

    return predict


def mc_loss(y_hat: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo mean squared error over the last axis and its standard error."""
    e = ((y_hat - target) ** 2).detach().double().cpu().numpy()
    n = e.shape[-1]
    return e.mean(-1), e.std(-1, ddof=1) / math.sqrt(n)


# ----------------------------------------------------------------------------- flipped labels

def flip_signs(batch: int, N: int, flip_rate: float, u: torch.Tensor | None = None, seed: int = 0,
               device: str = "cpu") -> torch.Tensor:
    """(B, N) signs s_i = -1 where a uniform draw u < p (pass the same `u` for common random numbers)."""
    p = float(check_rate(flip_rate))
    if u is None:
        g = torch.Generator(device=device).manual_seed(int(seed))
        u = torch.rand(batch, N, generator=g, device=device, dtype=torch.float64)
    return 1.0 - 2.0 * (u < p).to(u.dtype)


def flip_sweep(gammas: Array, sampler: PromptSampler, n_prompts: int, flip_rates: Sequence[float],
               seed: int = 0, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monte Carlo loss of x_q^T Gamma_m h for each Gamma_m at each flip rate, on the same prompts and draws.

    Returns (loss (M, F), se (M, F), adjacent-difference SE (M-1, F): SE of loss[m+1] - loss[m], paired).
    """
    n_prompts = check_int("n_prompts", n_prompts, 2)
    rates = [float(check_rate(p)) for p in flip_rates]
    G = torch.as_tensor(np.asarray(gammas), dtype=sampler.dtype, device=sampler.device)
    g = torch.Generator(device=sampler.device).manual_seed(int(seed))
    s1 = s2 = d1 = d2 = 0.0
    done = 0
    with torch.no_grad():
        while done < n_prompts:
            p = sampler(min(chunk, n_prompts - done), noise=False)
            X, y = p.context()
            u = torch.rand(*y.shape, generator=g, device=sampler.device, dtype=torch.float64)
            errs = torch.stack([(predict_gamma(G, X, y * flip_signs(0, 0, q, u=u).to(y.dtype), p.xq) - p.yq) ** 2
                                for q in rates], -1).double().cpu().numpy()  # (M, B, F)
            diff = errs[1:] - errs[:-1]
            s1, s2 = s1 + errs.sum(1), s2 + (errs ** 2).sum(1)
            d1, d2 = d1 + diff.sum(1), d2 + (diff ** 2).sum(1)
            done += len(p)
    n = n_prompts

    def sem(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        m = a / n
        return np.sqrt(np.maximum((b / n - m ** 2) * n / (n - 1), 0) / n)

    return s1 / n, sem(s1, s2), sem(d1, d2)


# ----------------------------------------------------------------------------- crossings of measured curves

def measured_crossover(noise: Array, loss_small: Array, loss_large: Array,
                       diff_se: Array | None = None) -> tuple[float, float]:
    """Where a measured loss-difference curve first changes sign, interpolated linearly in the noise variance.

    The expected difference loss_large - loss_small is linear in the variance, so the interpolation adds no
    bias. With `diff_se` (the standard error of the paired difference on the grid) the second value is the
    crossover's standard error by the delta method (SE of the difference at the crossing / its slope in the
    noise std); otherwise nan. (nan, nan) when the curves do not cross on the grid.
    """
    noise = np.asarray(noise, dtype=np.float64)
    diff = np.asarray(loss_large, dtype=np.float64) - np.asarray(loss_small, dtype=np.float64)
    if noise.ndim != 1 or diff.shape != noise.shape or np.any(np.diff(noise) <= 0):
        raise ValueError("noise: expected an increasing 1-d grid with one loss per point for each model")
    idx = np.nonzero((diff[:-1] < 0) & (diff[1:] >= 0))[0]
    if len(idx) == 0:
        return math.nan, math.nan
    k = idx[0]
    v0, v1 = noise[k] ** 2, noise[k + 1] ** 2
    frac = -diff[k] / (diff[k + 1] - diff[k])
    x = math.sqrt(v0 + (v1 - v0) * frac)
    if diff_se is None:
        return x, math.nan
    se = np.asarray(diff_se, dtype=np.float64)
    se_at = se[k] + (se[k + 1] - se[k]) * frac
    slope = (diff[k + 1] - diff[k]) / (v1 - v0) * 2 * x  # d diff / d std at the crossing
    return x, float(se_at / slope)


def crossover_margin(noise: Array, loss_zero: Array, loss_small: Array, loss_large: Array,
                     se_small_zero: Array | None = None, se_large_small: Array | None = None
                     ) -> tuple[float, float, float, float, float]:
    """How far below the "useless" point the larger model starts losing to the smaller one, measured.

    x_c: where loss_large first exceeds loss_small (the size crossover); x_0: where loss_small first exceeds
    loss_zero (the smaller model becomes worse than predicting 0). Returns (x_0 - x_c, its SE, x_c, x_0,
    se of x_c). A positive margin means there is a noise range where the small model is still useful and
    the large one is already worse: the regime in which "larger models are more easily distracted" means
    something. The SE of the margin is se(x_0) + se(x_c), an upper bound whatever the correlation of the
    two estimates (they come from the same prompts). nan where a curve does not cross on the grid.
    """
    xc, sc = measured_crossover(noise, loss_small, loss_large, se_large_small)
    x0, s0 = measured_crossover(noise, loss_zero, loss_small, se_small_zero)
    return x0 - xc, s0 + sc, xc, x0, sc


# ----------------------------------------------------------------------------- closed form against Monte Carlo

def comparison_rows(ranks: Sequence[int], level: str, levels: Sequence[float], cf: np.ndarray, mc: np.ndarray,
                    se: np.ndarray, pair_se: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """Closed form `cf` against Monte Carlo `mc` (SE `se`), arrays (ranks, levels): one row per (rank, level) with
    its z, and the z of the difference to the rank before (paired SE `pair_se[k - 1]` for the k-th rank)."""
    return [{"rank": r, level: levels[s], "closed form": cf[k, s], "Monte Carlo": mc[k, s], "SE": se[k, s],
             "z": (mc[k, s] - cf[k, s]) / se[k, s], "SE vs previous": pair_se[k - 1][s] if k else np.nan,
             "z vs previous": ((mc[k, s] - mc[k - 1, s]) - (cf[k, s] - cf[k - 1, s])) / pair_se[k - 1][s]
             if k else np.nan} for k, r in enumerate(ranks) for s in range(len(levels))]


def comparison_z(frame: Any) -> np.ndarray:
    """Every z of a `comparison_rows` table: each loss, then each difference to the rank before."""
    return np.r_[frame["z"].to_numpy(float), frame.loc[frame["rank"] > 0, "z vs previous"].to_numpy(float)]
