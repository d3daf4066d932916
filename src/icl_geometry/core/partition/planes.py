"""Boxes and planes of an input space: the (u, v) coordinates in which regions are counted exactly.

A `Plane` is origin + u e1 + v e2 of the input space (any dimension); `plane_through` builds one from three
points, `affine_span` finds the span of a point cloud; `Bounds` is a box (xmin, xmax, ymin, ymax) of a plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

Bounds = tuple[float, float, float, float]


def as_array(x, name: str) -> np.ndarray:
    """`x` (array-like or torch tensor, any device) as a float64 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def check_bounds(bounds) -> Bounds:
    """The box (xmin, xmax, ymin, ymax) as four floats, or a ValueError naming `bounds` and what is allowed."""
    try:
        x0, x1, y0, y1 = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds = {bounds!r} is not allowed: expected (xmin, xmax, ymin, ymax)") from None
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or not (x0 < x1 and y0 < y1):
        raise ValueError(f"bounds = {bounds!r} is not allowed: expected finite xmin < xmax and ymin < ymax")
    return x0, x1, y0, y1


@dataclass(frozen=True)
class Plane:
    """The affine plane origin + u e1 + v e2 of an input space (e1, e2 orthonormal), and points on it."""

    origin: np.ndarray  # (D,)
    basis: np.ndarray  # (2, D), orthonormal rows
    coords: np.ndarray  # (k, 2): (u, v) of the points that defined the plane

    @property
    def dim(self) -> int:
        return self.origin.shape[0]

    def lift(self, uv: np.ndarray) -> np.ndarray:
        """(..., 2) plane coordinates -> (..., D) points of the input space."""
        return self.origin + np.asarray(uv, dtype=np.float64) @ self.basis

    def project(self, X: np.ndarray) -> np.ndarray:
        """(..., D) points -> (..., 2) coordinates of their orthogonal projection onto the plane."""
        return (np.asarray(X, dtype=np.float64) - self.origin) @ self.basis.T

    def window(self, margin: float = 0.25) -> Bounds:
        """The bounding box of the defining points, widened by `margin` x its larger side on each side."""
        if not margin >= 0:
            raise ValueError(f"margin = {margin!r} is not allowed: expected a number >= 0")
        lo, hi = self.coords.min(0), self.coords.max(0)
        pad = margin * float((hi - lo).max())
        return (float(lo[0] - pad), float(hi[0] + pad), float(lo[1] - pad), float(hi[1] + pad))


def plane_through(p0, p1, p2) -> Plane:
    """The plane through three points (any dimension), centred at their centroid, orthonormal axes."""
    P = np.stack([as_array(p, "point").ravel() for p in (p0, p1, p2)])
    origin = P.mean(0)
    Q, R = np.linalg.qr((P[1:] - P[0]).T)
    if abs(R[1, 1]) <= 1e-12 * max(abs(R[0, 0]), 1e-300):
        raise ValueError("plane_through: the three points are (nearly) collinear, so they span no plane")
    basis = Q.T
    return Plane(origin=origin, basis=basis, coords=(P - origin) @ basis.T)


def affine_span(X: np.ndarray, rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Mean and orthonormal basis (d, D) of the affine span of the rows of X."""
    X = as_array(X, "X")
    mean = X.mean(0)
    _, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    d = int((s > rtol * s[0]).sum()) if len(s) and s[0] > 0 else 0
    return mean, Vt[:d]
