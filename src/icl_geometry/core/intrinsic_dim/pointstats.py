"""The per-point statistics of TwoNN (log r2 / r1) and the Levina-Bickel MLE (1 / m_i) and how each estimator
pools them: the part of an estimate that a bootstrap resamples and a jackknife recomputes (`deletions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from icl_geometry.core.checks import check_choice, check_int
from icl_geometry.core.intrinsic_dim.neighbours import Neighbours, nearest_neighbours


TWONN_METHODS = ("linear", "mle")


MLE_AVERAGES = ("inverse", "direct")


@dataclass(frozen=True)
class PointStats:
    """Per-point statistics an estimator pools, the rows of X they belong to, and how to pool them."""

    values: np.ndarray
    rows: np.ndarray  # indices into the original X
    pool: Callable[[np.ndarray], float]
    method: str
    neighbours: Neighbours


def twonn_pool(log_mu: np.ndarray, discard_fraction: float, method: str) -> float:
    """TwoNN's d from the points' log(r2 / r1), the largest `discard_fraction` left out: the slope of the empirical
    -log(1 - F) on log mu through 0 (`method="linear"`) or the Pareto maximum-likelihood estimate ("mle")."""
    N = len(log_mu)
    x = np.sort(log_mu)
    n_keep = int(N * (1 - discard_fraction))
    if method == "linear":
        n_keep = min(n_keep, N - 1)  # -log(1 - F) is infinite at F = 1
        x = x[:n_keep]
        y = -np.log1p(-np.arange(1, n_keep + 1) / N)
        denom = float(x @ x)
        return float(x @ y) / denom if denom > 0 else np.inf
    total = float(x[:n_keep].sum() + (N - n_keep) * x[n_keep - 1])
    return (n_keep - 1) / total if total > 0 else np.inf


def twonn_values(distances: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """log(r2 / r1) of the points whose nearest-neighbour distance r1 exceeds `tol`, from their ascending
    neighbour distances (n, >= 2), and which points those are (a boolean mask)."""
    r1, r2 = distances[:, 0], distances[:, 1]
    ok = r1 > tol
    return np.log(r2[ok] / r1[ok]), ok


def first_neighbours(nb: Neighbours, k: int) -> Neighbours:
    """The same search's k nearest neighbours of every kept point (a search of more neighbours, cut to k)."""
    return Neighbours(nb.distances[:, :k], nb.indices[:, :k], nb.kept, nb.n_points, nb.n_duplicates, nb.tol)


def twonn_stats(X, *, discard_fraction: float = 0.1, method: str = "linear", duplicates: str = "merge",
                dup_tol: float = 1e-6, chunk_mb: float = 256.0, neighbours: Neighbours | None = None) -> PointStats:
    """log(r2 / r1) of every usable point (nonzero nearest-neighbour distance) and the TwoNN pooling.

    `neighbours`: X's own search (`nearest_neighbours(X, k >= 2)` with the same duplicate settings), when it is
    already done, e.g. for more neighbours than TwoNN needs (`compare.deleted_estimates`)."""
    check_choice("method", method, TWONN_METHODS)
    if not (isinstance(discard_fraction, (int, float)) and 0 <= discard_fraction < 1):
        raise ValueError(f"discard_fraction = {discard_fraction!r} is not allowed: expected a number in [0, 1)")
    nb = (first_neighbours(neighbours, 2) if neighbours is not None else
          nearest_neighbours(X, 2, duplicates=duplicates, dup_tol=dup_tol, min_points=3, chunk_mb=chunk_mb))
    log_mu, ok = twonn_values(nb.distances, nb.tol)
    if len(log_mu) < 3:
        raise ValueError(f"Too few usable points for TwoNN: {len(log_mu)} of {nb.n_points} have a nonzero "
                         f"nearest-neighbour distance (need at least 3)")
    pool = lambda s: twonn_pool(s, discard_fraction, method)  # noqa: E731
    return PointStats(log_mu, nb.kept[ok], pool, f"twonn-{method}", nb)


def _mle_from_inverse(inv: np.ndarray, average: str) -> float:
    if average == "inverse":
        mean = float(inv.mean())
        return 1.0 / mean if mean > 0 else np.inf
    pos = inv[inv > 0]
    return float(np.mean(1.0 / pos)) if len(pos) else np.inf


def mle_values(distances: np.ndarray, tol: float, unbiased: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """1 / m_i = sum_{j<k} log(T_k / T_j) / (k - 1) (or k - 2 if `unbiased`) of the points whose nearest-neighbour
    distance exceeds `tol`, from their k ascending neighbour distances (n, k), and which points those are."""
    k = distances.shape[1]
    ok = distances[:, 0] > tol
    T = distances[ok]
    return np.log(T[:, -1:] / T[:, :-1]).sum(1) / (k - 2 if unbiased else k - 1), ok


def mle_stats(X, k: int = 20, *, average: str = "inverse", unbiased: bool = False, duplicates: str = "merge",
              dup_tol: float = 1e-6, chunk_mb: float = 256.0, neighbours: Neighbours | None = None) -> PointStats:
    """1 / m_i = mean_j log(T_k / T_j) of every usable point, and the chosen pooling. `neighbours`: as in
    `twonn_stats` (a search of at least k neighbours)."""
    check_choice("average", average, MLE_AVERAGES)
    k = check_int("k", k, 3 if unbiased else 2)
    nb = (first_neighbours(neighbours, k) if neighbours is not None else
          nearest_neighbours(X, k, duplicates=duplicates, dup_tol=dup_tol, chunk_mb=chunk_mb))
    inv, ok = mle_values(nb.distances, nb.tol, unbiased)
    if len(inv) < 2:
        raise ValueError(f"Too few usable points for MLE: {len(inv)} of {nb.n_points} have a nonzero "
                         f"nearest-neighbour distance (need at least 2)")
    pool = lambda s: _mle_from_inverse(s, average)  # noqa: E731
    return PointStats(inv, nb.kept[ok], pool, f"mle-k{k}", nb)


STATS = {"twonn": twonn_stats, "mle": mle_stats}
