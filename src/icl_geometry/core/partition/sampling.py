"""Activation patterns at sample points, in any dimension: the regions a point cloud visits (a lower bound),
with the exact count when the points span a line or a plane, and region labels on a grid for pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from torch import nn

from icl_geometry.core.checks import check_int
from icl_geometry.core.partition.network import Act, Affine, input_dim, layers_of, on_plane
from icl_geometry.core.partition.planes import Bounds, Plane, affine_span, as_array, check_bounds
from icl_geometry.core.partition.polygons import count_regions_2d
from icl_geometry.core.partition.segments import count_regions_1d


def activation_patterns(mlp, X) -> np.ndarray:
    """(N, n_neurons) booleans: which neurons are on (pre-activation > 0) at each row of X, in float64."""
    return _patterns(layers_of(mlp), X)


def _patterns(steps: Sequence[Affine | Act], X) -> np.ndarray:
    X = as_array(X, "X")
    if X.ndim == 1:
        X = X[:, None]
    D = input_dim(steps)
    if X.ndim != 2 or (D is not None and X.shape[1] != D):
        raise ValueError(f"X: expected an (N, {D}) array of inputs, got shape {X.shape}")
    bits = []
    for step in steps:
        if isinstance(step, Affine):
            X = X @ step.W.T + step.b
        else:
            on = X > 0
            bits.append(on)
            X = np.where(on, X, step.slope * X)
    return np.concatenate(bits, axis=1)


def count_distinct(patterns: np.ndarray) -> int:
    """Number of distinct rows of a boolean pattern matrix."""
    patterns = np.asarray(patterns, dtype=bool)
    if patterns.ndim != 2:
        raise ValueError(f"patterns: expected a 2-d boolean array, got shape {patterns.shape}")
    if len(patterns) == 0:
        return 0
    packed = np.ascontiguousarray(np.packbits(patterns, axis=1))
    return int(len(np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel())))


def sample_patterns(mlp, X) -> int:
    """Number of distinct activation patterns hit by the points X: a lower bound on the regions they visit."""
    return count_distinct(activation_patterns(mlp, X))


@dataclass(frozen=True)
class Visits:
    """Regions visited by a point cloud: sampled always, exact when the points span a line or a plane."""

    n_points: int
    span_dim: int  # dimension of the points' affine span
    sampled: int  # distinct activation patterns among the points
    exact: int | None  # regions of the span's bounding segment / box (d <= 2), else None


def visited_regions(mlp, X, exact_up_to: int = 2) -> Visits:
    """Distinct regions that the points X visit (sampled), plus the exact count over the smallest segment
    (span dimension 1) or box (dimension 2) of their span that holds them; exact >= sampled."""
    X = as_array(X, "X")
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"X: expected an (N, D) array with N >= 2, got shape {X.shape}")
    sampled = sample_patterns(mlp, X)
    mean, basis = affine_span(X)
    d, exact = len(basis), None
    if d == 1 and exact_up_to >= 1:
        t = (X - mean) @ basis[0]
        exact = count_regions_1d(mlp, mean + t.min() * basis[0], mean + t.max() * basis[0])
    elif d == 2 and exact_up_to >= 2:
        plane = Plane(origin=mean, basis=basis, coords=(X - mean) @ basis.T)
        lo, hi = plane.coords.min(0), plane.coords.max(0)
        exact = count_regions_2d(mlp, (lo[0], hi[0], lo[1], hi[1]), plane=plane)
    elif d == 0:
        exact = 1
    return Visits(n_points=len(X), span_dim=d, sampled=sampled, exact=exact)


def raster_patterns(mlp, bounds: Bounds, resolution: int = 300,
                    plane: Plane | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region labels on a resolution x resolution grid of the box (for pictures; counts come from the exact
    functions). Returns grid u, grid v and an integer label per pixel (equal label = equal pattern)."""
    check_int("resolution", resolution, 2)
    x0, x1, y0, y1 = check_bounds(bounds)
    u = np.linspace(x0, x1, resolution)
    v = np.linspace(y0, y1, resolution)
    U, V = np.meshgrid(u, v)
    uv = np.stack([U.ravel(), V.ravel()], 1)
    net = nn.Sequential(mlp, nn.ReLU()) if isinstance(mlp, nn.Linear) else mlp
    P = _patterns(on_plane(layers_of(net), plane), uv)
    packed = np.ascontiguousarray(np.packbits(P, axis=1))
    _, labels = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_inverse=True)
    return u, v, labels.reshape(resolution, resolution)
