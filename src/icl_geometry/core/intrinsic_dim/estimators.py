"""The TwoNN and Levina-Bickel MLE estimators, their per-point statistics, and intervals over points or over
whole groups: a bootstrap of the per-point statistics with the neighbours fixed (the draws are
`core.stats.iter_cluster_resamples`; it does not cover, see `twonn`), or a grouped jackknife that recomputes the
neighbours (`interval="jackknife"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from icl_geometry.core.checks import check_choice, check_int
from icl_geometry.core.intrinsic_dim.deletions import jackknife_ci
from icl_geometry.core.intrinsic_dim.pointstats import PointStats, mle_stats, twonn_pool, twonn_stats
from icl_geometry.core.stats import iter_cluster_resamples


@dataclass(frozen=True)
class IDEstimate:
    """One intrinsic-dimension estimate and what went into it.

    `n_duplicates` counts points merged into another (`duplicates="merge"`) or points with a
    zero-distance neighbour whose statistics were skipped (`duplicates="skip"`).
    `n_used` is the number of per-point statistics the estimate averages.
    """

    estimate: float
    method: str
    n_points: int
    n_used: int
    n_duplicates: int
    ci: tuple[float, float] | None = None
    stderr: float | None = None

    def __float__(self) -> float:
        return float(self.estimate)

    def __str__(self) -> str:
        ci = "" if self.ci is None else f" [{self.ci[0]:.3g}, {self.ci[1]:.3g}]"
        return (f"{self.method}: {self.estimate:.3g}{ci} (n_used={self.n_used}, "
                f"duplicates={self.n_duplicates})")


def check_ci(ci, n_boot) -> int:
    """Check a confidence level `ci` in (0, 1) and return `n_boot` as an int >= 10 (errors name the parameter)."""
    if not (isinstance(ci, float) and 0 < ci < 1):
        raise ValueError(f"ci = {ci!r} is not allowed: expected None or a confidence level in (0, 1), e.g. 0.95")
    return check_int("n_boot", n_boot, 10)


def _bootstrap(stat: np.ndarray, estimator: Callable[[np.ndarray], float], ci: float | None,
               n_boot: int, seed: int, groups: np.ndarray | None = None) -> tuple[float, float] | None:
    """Percentile interval of `estimator` over resamples of the per-point statistics (neighbours fixed:
    resampling the points themselves would create duplicates, see `nearest_neighbours`)."""
    if ci is None:
        return None
    n_boot = check_ci(ci, n_boot)
    resamples = iter_cluster_resamples(len(stat) if groups is None else groups, n_boot, seed)
    reps = np.array([estimator(stat[i]) for i in resamples])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def check_groups(groups, n: int) -> np.ndarray | None:
    """`groups` as an array of one label per point (n of them), or None when not given."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups: expected one label per point ({n}), got shape {g.shape}")
    return g


# ----------------------------------------------------------------------------- TwoNN


INTERVALS = ("bootstrap", "jackknife")


def _estimate(st: PointStats, ci, n_boot: int, seed: int, groups, stderr: Callable[[float], float],
              undefined: str, interval: str = "bootstrap", X=None, estimator: str = "",
              kwargs: dict | None = None) -> IDEstimate:
    d = st.pool(st.values)
    if not np.isfinite(d):
        raise ValueError(undefined)
    check_choice("interval", interval, INTERVALS)
    g = check_groups(groups, st.neighbours.n_points)
    if interval == "jackknife" and ci is not None:
        check_ci(ci, n_boot)
        bounds = jackknife_ci(X, estimator, ci, g, st.neighbours.n_points, kwargs or {})
    else:
        bounds = _bootstrap(st.values, st.pool, ci, n_boot, seed, None if g is None else g[st.rows])
    return IDEstimate(d, st.method, st.neighbours.n_points, len(st.values), st.neighbours.n_duplicates,
                      bounds, stderr(d))


def twonn(X, *, discard_fraction: float = 0.1, method: str = "linear", duplicates: str = "merge",
          dup_tol: float = 1e-6, ci: float | None = None, n_boot: int = 200, seed: int = 0, groups=None,
          chunk_mb: float = 256.0, interval: str = "bootstrap") -> IDEstimate:
    """TwoNN (Facco et al. 2017): mu = r2 / r1 is Pareto(1, d) on a locally uniform d-manifold,
    so -log(1 - F(mu)) = d log mu.

    method "linear": slope through the origin of -log(1 - F_emp(mu)) against log mu, largest
    `discard_fraction` of ratios dropped (Facco's recipe, scikit-dimension's default).
    method "mle": censored maximum likelihood (k - 1) / (sum log mu + censored part).
    `ci`: an interval over points, or over whole groups when `groups` labels each row of X (e.g. the prompt
    each token came from). `interval="bootstrap"` (the default, kept for the figures that use it) resamples the
    per-point statistics with the neighbour graph frozen: it leaves out the variance of which points are
    neighbours and covers a 90% target only about 78% of the time on 2000 points of a 5-d subspace
    (tests/test_coverage.py). `interval="jackknife"` deletes blocks of points (or groups), searches the
    remaining points' neighbours again and gives a t interval (`compare.deleted_estimates`): it covers.
    """
    st = twonn_stats(X, discard_fraction=discard_fraction, method=method, duplicates=duplicates,
                     dup_tol=dup_tol, chunk_mb=chunk_mb)
    n_keep = int(len(st.values) * (1 - discard_fraction))
    kwargs = dict(discard_fraction=discard_fraction, method=method, duplicates=duplicates, dup_tol=dup_tol,
                  chunk_mb=chunk_mb)
    return _estimate(st, ci, n_boot, seed, groups, lambda d: d / np.sqrt(max(n_keep - 1, 1)),
                     "TwoNN is undefined here: every point's two nearest neighbours are equidistant",
                     interval, X, "twonn", kwargs)


def twonn_clouds(X, *, discard_fraction: float = 0.1, tol: float = 1e-6) -> np.ndarray:
    """TwoNN ("linear", as `twonn`, duplicates skipped) of each of a batch of small clouds X (..., n, D): one
    estimate per leading index, NaN where fewer than 3 points have a nonzero nearest-neighbour distance
    (relative to the cloud's RMS radius, `tol`). Exact float64 distances; for clouds of tens of points
    (e.g. the tokens of one question at one layer), where `twonn`'s per-call set-up would dominate."""
    X = torch.as_tensor(X)
    lead = X.shape[:-2]
    Xf = X.reshape(-1, *X.shape[-2:]).to(torch.float64)
    dist = torch.cdist(Xf, Xf, compute_mode="donot_use_mm_for_euclid_dist")
    dist.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
    r = dist.topk(2, dim=-1, largest=False).values.cpu().numpy()  # (batch, n, 2)
    scale = ((Xf - Xf.mean(-2, keepdim=True)) ** 2).sum(-1).mean(-1).sqrt().cpu().numpy()  # RMS radius
    out = np.full(len(r), np.nan)
    for i, (ri, s) in enumerate(zip(r, scale)):
        ok = ri[:, 0] > tol * max(s, 1e-30)
        if ok.sum() >= 3:
            out[i] = twonn_pool(np.log(ri[ok, 1] / ri[ok, 0]), discard_fraction, "linear")
    return out.reshape(lead)


# ----------------------------------------------------------------------------- Levina-Bickel MLE


def mle(X, k: int = 20, *, average: str = "inverse", unbiased: bool = False, duplicates: str = "merge",
        dup_tol: float = 1e-6, ci: float | None = None, n_boot: int = 200, seed: int = 0, groups=None,
        chunk_mb: float = 256.0, interval: str = "bootstrap") -> IDEstimate:
    """Levina-Bickel maximum likelihood with k neighbours.

    Per point, 1/m_i = (1 / (k - 1)) sum_{j<k} log(T_k / T_j) ((k - 2) if `unbiased`).
    average "inverse" (MacKay & Ghahramani): m = 1 / mean_i(1/m_i), the likelihood-consistent pooling
    and scikit-dimension's default; "direct" (Levina & Bickel's paper): m = mean_i(m_i).
    `ci`, `groups`, `interval`: as in `twonn`.
    """
    st = mle_stats(X, k, average=average, unbiased=unbiased, duplicates=duplicates, dup_tol=dup_tol,
                   chunk_mb=chunk_mb)
    n = len(st.values)
    kwargs = dict(k=k, average=average, unbiased=unbiased, duplicates=duplicates, dup_tol=dup_tol, chunk_mb=chunk_mb)
    return _estimate(st, ci, n_boot, seed, groups, lambda d: d / np.sqrt(n * (k - 1)),
                     f"MLE is undefined here: every point's {k} nearest neighbours are equidistant",
                     interval, X, "mle", kwargs)


