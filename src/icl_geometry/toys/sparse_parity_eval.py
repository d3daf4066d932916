"""Monte Carlo for chapter 6 (in-context sparse parity): the optimal parity predictor computed from raw prompts,
losses and accuracies along a flip-rate grid on common prompts, measured crossovers, intervals over seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from icl_geometry.core.stats import t_interval  # noqa: F401  (chapter 6 calls it as ev.t_interval)
from icl_geometry.toys.sparse_parity import (NOISE_KINDS, CleanPrompts, check_rate, input_table, optimal_gains)


# ----------------------------------------------------------------------------- Monte Carlo

def optimal_predictor(subsets: Sequence[Sequence[int]], weights: Any, N: int, heads: Sequence[int],
                      gains: Any = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A predictor (x (n, N+1, d), y (n, N+1)) -> (len(heads), n): the m-head parity model for each m in `heads`,
    y_hat = sum_{t < m} gamma_t chi_t(x_q) c_t with c_t = mean_i chi_t(x_i) y_i, computed from the raw +-1 inputs."""
    subsets = [list(s) for s in subsets]
    g = torch.as_tensor(optimal_gains(weights, N) if gains is None else np.asarray(gains, dtype=np.float64))
    heads = [int(m) for m in heads]

    def predict(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        chi = torch.stack([x[..., s].prod(-1) for s in subsets])  # (K, n, N+1)
        terms = g[:, None].to(x.dtype) * chi[..., -1] * (chi[..., :-1] * y[None, :, :-1]).mean(-1)  # (K, n)
        cum = terms.cumsum(0)
        return torch.stack([cum[m - 1] if m else torch.zeros_like(cum[0]) for m in heads])

    return predict


@dataclass
class Sweep:
    """Monte Carlo losses and accuracies of P predictors at L noise levels on the same prompts.

    loss, acc (P, L) means; loss_se, acc_se (P, L) standard errors; pair_se[(i, j)] (L,) the standard error of the
    paired loss difference loss[j] - loss[i] (common random numbers make it far smaller than either SE).
    """

    rates: np.ndarray
    kind: str
    loss: np.ndarray
    loss_se: np.ndarray
    acc: np.ndarray
    acc_se: np.ndarray
    pair_se: dict
    n: int


def noise_sweep(predict: Callable[..., torch.Tensor], prompts: CleanPrompts, rates: Sequence[float],
                kind: str = "label", pairs: Sequence[tuple[int, int]] = (), chunk: int = 8192,
                inputs: str = "x") -> Sweep:
    """Mean squared loss and accuracy (sign(y_hat) == y_q, ties count 1/2) of `predict` at each flip rate.

    `predict` takes (x (n, N+1, d) +-1 inputs, y (n, N+1)) if inputs == 'x', or (codes (n, N+1), y) if 'codes',
    and returns (P, n). The same prompts are read at every rate.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    rates = np.array([check_rate(f"{kind}_flip", r) for r in rates])
    n, d = len(prompts), prompts.input_u.shape[-1]
    table = input_table(d, prompts.chi.dtype)
    sums: dict[str, Any] = {}

    def add(key: str, v: torch.Tensor) -> None:
        v = v.double().cpu().numpy()
        sums[key] = v if key not in sums else sums[key] + v

    with torch.no_grad():
        for lo in range(0, n, chunk):
            part = CleanPrompts(prompts.codes[lo:lo + chunk], prompts.task[lo:lo + chunk],
                                prompts.label_rank[lo:lo + chunk], prompts.input_u[lo:lo + chunk], prompts.chi)
            errs, hits = [], []
            for r in rates:
                codes, y = part.read(r, 0.0) if kind == "label" else part.read(0.0, r)
                y_hat = predict(table[codes] if inputs == "x" else codes, y)
                errs.append((y_hat - y[:, -1]) ** 2)
                hits.append((1 + torch.sign(y_hat) * y[:, -1]) / 2)
            e, h = torch.stack(errs, -1), torch.stack(hits, -1)  # (P, n, L)
            for key, v in (("e", e), ("h", h)):
                add(key, v.sum(1))
                add(key + "2", (v ** 2).sum(1))
            for i, j in pairs:
                diff = e[j] - e[i]
                add(f"d{i},{j}", diff.sum(0))
                add(f"dd{i},{j}", (diff ** 2).sum(0))

    def sem(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        mean = s1 / n
        return np.sqrt(np.maximum(s2 / n - mean ** 2, 0) / (n - 1))

    pair_se = {(i, j): sem(sums[f"d{i},{j}"], sums[f"dd{i},{j}"]) for i, j in pairs}
    return Sweep(rates, kind, sums["e"] / n, sem(sums["e"], sums["e2"]), sums["h"] / n, sem(sums["h"], sums["h2"]),
                 pair_se, n)


def measured_crossover(rates: Sequence[float], small: Sequence[float], large: Sequence[float],
                       diff_se: Sequence[float] | None = None) -> float | tuple[float, float]:
    """The first rate at which `large` rises to `small` (linear interpolation between grid points); nan if never.

    With `diff_se` (the standard error of large - small at each rate) also returns the delta-method standard error
    of the crossing: the difference's SE at the crossing over the slope of the difference there."""
    r, diff = np.asarray(rates, float), np.asarray(large, float) - np.asarray(small, float)
    x, se = math.nan, math.nan
    for i in range(len(r) - 1):
        if diff[i] < 0 <= diff[i + 1]:
            frac = -diff[i] / (diff[i + 1] - diff[i])
            x = float(r[i] + (r[i + 1] - r[i]) * frac)
            if diff_se is not None:
                e = np.asarray(diff_se, float)
                se = float((e[i] + frac * (e[i + 1] - e[i])) * (r[i + 1] - r[i]) / (diff[i + 1] - diff[i]))
            break
    return x if diff_se is None else (x, se)


def seed_intervals(values: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and its Student-t interval, elementwise: (mean, low, high); nan entries dropped."""
    from scipy import stats as st

    v = np.asarray(values, dtype=np.float64)
    n = np.isfinite(v).sum(0)
    mean = np.nanmean(v, 0)
    sd = np.nanstd(v, 0, ddof=1) if v.shape[0] > 1 else np.full(mean.shape, np.nan)
    half = st.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
    half = np.where(n >= 2, half, np.nan)
    return mean, mean - half, mean + half


def crossover_rows(rates: Sequence[float], loss: Any, heads: Sequence[int], predicted: dict, pair_se: Any = None,
                   level: float = 0.9) -> list[dict]:
    """Measured crossovers of adjacent sizes: `loss` (seeds, M, L) along `rates`, `pair_se` (seeds, M - 1, L) the
    standard errors of the adjacent loss differences on the (shared) test prompts, `predicted[(m_s, m_l)]` the closed
    form. One row per pair: the mean over the seeds whose curves cross and its interval, which adds the seeds' t
    half-width and the test prompts' Monte Carlo half-width (delta method, averaged over seeds: the prompts are shared,
    so their errors are not averaged away) in quadrature."""
    from scipy import stats as st

    loss = np.asarray(loss, dtype=np.float64)
    z = float(st.norm.ppf(0.5 + level / 2))
    rows = []
    for j in range(len(heads) - 1):
        per_seed, ses = [], []
        for s in range(len(loss)):
            if pair_se is None:
                per_seed.append(measured_crossover(rates, loss[s, j], loss[s, j + 1]))
                ses.append(0.0)
            else:
                x, e = measured_crossover(rates, loss[s, j], loss[s, j + 1], np.asarray(pair_se)[s, j])
                per_seed.append(x)
                ses.append(e)
        per_seed, ses = np.array(per_seed), np.array(ses)
        ok = np.isfinite(per_seed)
        mean, lo, hi = (float(per_seed[ok].mean()) if ok.any() else math.nan), math.nan, math.nan
        if ok.sum() >= 2:
            _, (tlo, thi) = t_interval(per_seed[ok], level)
            half = math.hypot((thi - tlo) / 2, z * float(ses[ok].mean()))
            lo, hi = mean - half, mean + half
        rows.append({"small m": heads[j], "large m": heads[j + 1], "predicted": predicted[(heads[j], heads[j + 1])],
                     "measured": mean, "low": lo, "high": hi, "seeds crossing": f"{int(ok.sum())}/{len(per_seed)}"})
    return rows


def per_task(predict: Callable[..., torch.Tensor], prompts: CleanPrompts, n_tasks: int,
             inputs: str = "codes") -> tuple[np.ndarray, np.ndarray]:
    """Clean accuracy and loss of each predictor on the prompts of each task: ((P, K), (P, K))."""
    codes, y = prompts.read()
    with torch.no_grad():
        y_hat = predict(codes if inputs == "codes" else input_table(prompts.input_u.shape[-1], y.dtype)[codes], y)
    hit = ((1 + torch.sign(y_hat) * y[:, -1]) / 2).double().numpy()
    err = ((y_hat - y[:, -1]) ** 2).double().numpy()
    task = prompts.task.numpy()
    acc = np.stack([hit[:, task == t].mean(1) for t in range(n_tasks)], 1)
    loss = np.stack([err[:, task == t].mean(1) for t in range(n_tasks)], 1)
    return acc, loss


def head_ablation(predict_without: Callable[[int], Callable[..., torch.Tensor]], n_heads: int,
                  prompts: CleanPrompts, rates: Sequence[float], kind: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo change in loss when each head is removed, (effect, SE), each (n_heads, L): loss without head h
    minus loss with all heads, on common prompts. `predict_without(h)` is a predictor (codes, y) -> (2, n) giving
    the full model's and the ablated model's predictions."""
    eff, se = np.zeros((n_heads, len(rates))), np.zeros((n_heads, len(rates)))
    for h in range(n_heads):
        sw = noise_sweep(predict_without(h), prompts, rates, kind, pairs=[(0, 1)], inputs="codes")
        eff[h], se[h] = sw.loss[1] - sw.loss[0], sw.pair_se[(0, 1)]
    return eff, se


def subset_values(A: Any, subsets: Sequence[Sequence[int]], weights: Any, N: int, rates: Sequence[float],
                  kind: str = "label") -> np.ndarray:
    """(K, L): how much a linear model's expected loss rises when its parity-basis entry for task subset t is removed
    (row and column t of A set to 0), at each flip rate; negative where covering that subset hurts."""
    from icl_geometry.toys.sparse_parity import bilinear_loss, mask_of

    A = np.asarray(A, dtype=np.float64)
    out = np.zeros((len(subsets), len(rates)))
    for i, r in enumerate(rates):
        lf, inf = (r, 0.0) if kind == "label" else (0.0, r)
        base = float(bilinear_loss(A, subsets, weights, N, lf, inf))
        for t, s in enumerate(subsets):
            B = A.copy()
            B[mask_of(s), :] = 0
            B[:, mask_of(s)] = 0
            out[t, i] = float(bilinear_loss(B, subsets, weights, N, lf, inf)) - base
    return out


def accuracy_crossover(rates: Sequence[float], acc: Any, se: Any, level: float = 0.9) -> dict[str, Any]:
    """The first rate at which the largest size's accuracy (`acc` (seeds, M, L) along `rates`, SEs `se`) falls to
    the smallest's (linear interpolation), per seed and as a mean over seeds with an interval: the seeds' Student-t
    half-width and the test prompts' Monte Carlo half-width (delta method on the accuracy difference, SE
    sqrt(se_small^2 + se_large^2), averaged over seeds) in quadrature, as for the loss crossovers. A seed whose
    curves do not cross counts at 1/2: there every model is at chance and the curves meet (for label flips, beyond
    it the larger model follows the flipped labels more: the models are odd in the labels)."""
    from scipy import stats as st

    z = float(st.norm.ppf(0.5 + level / 2))
    per_seed, ses = [], []
    for s in range(len(acc)):  # the first rate where acc(smallest) - acc(largest) turns >= 0
        x, e = measured_crossover(rates, acc[s, -1], acc[s, 0], np.hypot(se[s, 0], se[s, -1]))
        per_seed.append(x if np.isfinite(x) else 0.5)
        ses.append(e if np.isfinite(x) else 0.0)
    mean, (lo, hi) = t_interval(per_seed, level) if len(acc) >= 2 else (per_seed[0], (np.nan, np.nan))
    half = float(np.hypot((hi - lo) / 2, z * np.mean(ses)))
    return {"measured": mean, "low": mean - half, "high": mean + half,
            "seeds crossing": f"{sum(x < 0.5 for x in per_seed)}/{len(acc)}",
            "per seed": [round(float(x), 6) for x in per_seed]}
