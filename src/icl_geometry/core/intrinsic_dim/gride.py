"""GRIDE (Denti et al. 2022): the ID from ratios of farther neighbour distances, at one scale or across
neighbour-rank scales (one kNN search).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from icl_geometry.core.checks import check_int
from icl_geometry.core.intrinsic_dim.estimators import IDEstimate
from icl_geometry.core.intrinsic_dim.neighbours import as_points, nearest_neighbours


@dataclass(frozen=True)
class ScaleProfile:
    """GRIDE estimates at neighbour ranks (n1, n2 = 2 n1); `radius` is the mean distance to the n2-th neighbour."""

    n1: np.ndarray
    n2: np.ndarray
    estimate: np.ndarray
    stderr: np.ndarray
    radius: np.ndarray
    n_used: np.ndarray
    n_points: int
    n_duplicates: int

    def as_frame(self):
        import pandas as pd

        return pd.DataFrame({"n1": self.n1, "n2": self.n2, "radius": self.radius,
                             "estimate": self.estimate, "stderr": self.stderr, "n_used": self.n_used})


def _gride_mle(log_mu: np.ndarray, n1: int, n2: int) -> tuple[float, float]:
    """Root of the GRIDE score (Denti et al. 2022) and 1/sqrt(observed information).

    mu = r_{n2} / r_{n1} has density d (mu^d - 1)^(n2-n1-1) / (B(n2-n1, n1) mu^((n2-1) d + 1)); as in
    DADApy the log-likelihood uses (N - 1) log d, which makes (n1, n2) = (1, 2) the unbiased TwoNN MLE.
    """
    N = len(log_mu)
    s = float(log_mu.sum())

    def score(d: float) -> float:
        return (N - 1) / d + (n2 - n1 - 1) * float(np.sum(log_mu / -np.expm1(-d * log_mu))) - (n2 - 1) * s

    hi = 1.0
    while score(hi) > 0 and hi < 1e6:
        hi *= 2
    if score(hi) > 0:
        raise ValueError(f"GRIDE ({n1}, {n2}): the likelihood still rises at d = {hi:g}; the neighbour-distance "
                         f"ratios are ~1 (points at equal distances), so no finite ID fits")
    d = brentq(score, 1e-8, hi, xtol=1e-12, rtol=1e-12)
    info = N / d**2 + (n2 - n1 - 1) * float(np.sum((log_mu / (2 * np.sinh(d * log_mu / 2))) ** 2))
    return float(d), float(1 / np.sqrt(info))


def _gride_log_mu(dist: np.ndarray, n1: int, n2: int, tol: float) -> np.ndarray:
    r1, r2 = dist[:, n1 - 1], dist[:, n2 - 1]
    ok = (r1 > tol) & (r2 > r1)  # ties (r2 == r1) make the score 0/0; they carry no scale information
    return np.log(r2[ok] / r1[ok])


def gride(X, n1: int = 1, n2: int | None = None, *, duplicates: str = "merge", dup_tol: float = 1e-6,
          chunk_mb: float = 256.0) -> IDEstimate:
    """GRIDE at one scale: the ID from the ratio of each point's n2-th to n1-th neighbour distance."""
    n1 = check_int("n1", n1, 1)
    n2 = 2 * n1 if n2 is None else check_int("n2", n2, n1 + 1)
    nb = nearest_neighbours(X, n2, duplicates=duplicates, dup_tol=dup_tol, chunk_mb=chunk_mb)
    log_mu = _gride_log_mu(nb.distances, n1, n2, nb.tol)
    if len(log_mu) < 2:
        raise ValueError(f"Too few usable points for GRIDE: {len(log_mu)} of {nb.n_points}")
    d, err = _gride_mle(log_mu, n1, n2)
    return IDEstimate(d, f"gride-{n1}-{n2}", nb.n_points, len(log_mu), nb.n_duplicates, None, err)


def gride_scales(X, max_rank: int = 64, *, duplicates: str = "merge", dup_tol: float = 1e-6,
                 chunk_mb: float = 256.0) -> ScaleProfile:
    """ID against scale: GRIDE at (n1, 2 n1) for n1 = 1, 2, 4, ... with 2 n1 <= max_rank (one kNN search).

    Small n1 probes the smallest distances (sensitive to noise and duplicates); large n1 averages over
    bigger neighbourhoods (sensitive to curvature and density changes). A plateau is the ID one reports.
    """
    max_rank = check_int("max_rank", max_rank, 2)
    Xt = as_points(X)
    max_rank = min(max_rank, len(Xt) - 1)
    if max_rank < 2:
        raise ValueError(f"Too few points for GRIDE: got {len(Xt)}, need at least 3")
    nb = nearest_neighbours(Xt, max_rank, duplicates=duplicates, dup_tol=dup_tol, chunk_mb=chunk_mb)
    n1s = 2 ** np.arange(int(np.log2(nb.distances.shape[1])))
    rows = []
    for a in n1s:
        log_mu = _gride_log_mu(nb.distances, int(a), int(2 * a), nb.tol)
        d, err = _gride_mle(log_mu, int(a), int(2 * a)) if len(log_mu) >= 2 else (np.nan, np.nan)
        rows.append((d, err, nb.distances[:, 2 * a - 1].mean(), len(log_mu)))
    est, err, rad, used = map(np.array, zip(*rows))
    return ScaleProfile(n1s, 2 * n1s, est, err, rad, used.astype(int), nb.n_points, nb.n_duplicates)
