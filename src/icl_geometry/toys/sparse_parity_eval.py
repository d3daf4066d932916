"""Monte Carlo for chapter 6 (in-context sparse parity): the optimal parity predictor computed from raw prompts,
losses and accuracies along a flip-rate grid on common prompts, measured crossovers, intervals over seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from icl_geometry.toys.sparse_parity import (NOISE_KINDS, CleanPrompts, _check_rate, input_table, optimal_gains)


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
    rates = np.array([_check_rate(f"{kind}_flip", r) for r in rates])
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


def measured_crossover(rates: Sequence[float], small: Sequence[float], large: Sequence[float]) -> float:
    """The first rate at which `large` rises to `small` (linear interpolation between grid points); nan if never."""
    r, diff = np.asarray(rates, float), np.asarray(large, float) - np.asarray(small, float)
    for i in range(len(r) - 1):
        if diff[i] < 0 <= diff[i + 1]:
            return float(r[i] + (r[i + 1] - r[i]) * (-diff[i]) / (diff[i + 1] - diff[i]))
    return math.nan


def t_interval(values: Sequence[float], level: float = 0.9) -> tuple[float, tuple[float, float]]:
    """Mean of a few independent values (seeds) and its Student-t interval; nan values are dropped."""
    from scipy import stats as st

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        raise ValueError(f"t_interval: need at least 2 finite values, got {len(v)}")
    half = float(st.t.ppf(0.5 + level / 2, len(v) - 1)) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), (float(v.mean() - half), float(v.mean() + half))
