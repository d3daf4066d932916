"""Two linear (PCA) notions of dimension: components for a fraction of the variance, and the participation
ratio of the covariance spectrum.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from icl_geometry.core.intrinsic_dim.estimators import IDEstimate
from icl_geometry.core.intrinsic_dim.neighbours import as_points, torch_threads


def pca_spectrum(X) -> np.ndarray:
    """Fractions of variance along the principal axes, descending (float64; n x n Gram when n < D)."""
    Xt = as_points(X).double()
    if len(Xt) < 2:
        raise ValueError(f"Too few points: got {len(Xt)}, PCA needs at least 2")
    Xc = Xt - Xt.mean(0)
    gram = Xc @ Xc.T if len(Xc) < Xc.shape[1] else Xc.T @ Xc
    # LAPACK's eigensolver barely gains from a second CPU thread and loses 10x+ when the cores are busy
    with torch_threads(1) if gram.device.type == "cpu" else nullcontext():
        ev = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0).cpu().numpy()
    total = ev.sum()
    if total <= 0:
        raise ValueError("X: all points are identical, so there is no variance to explain")
    return ev / total


def pca_dim(X, variance: float = 0.9) -> IDEstimate:
    """Number of principal components needed to explain the fraction `variance` of the total variance."""
    if not (isinstance(variance, (int, float)) and 0 < variance <= 1):
        raise ValueError(f"variance = {variance!r} is not allowed: expected a fraction in (0, 1]")
    Xt = as_points(X)
    frac = pca_spectrum(Xt)
    d = int(np.searchsorted(np.cumsum(frac), variance - 1e-12) + 1)
    return IDEstimate(float(min(d, len(frac))), f"pca-{variance:g}", len(Xt), len(Xt), 0)


def participation_ratio(X) -> float:
    """(sum lambda)^2 / sum lambda^2 of the covariance eigenvalues: a smooth linear dimension."""
    frac = pca_spectrum(X)
    return float(1.0 / np.sum(frac**2))
