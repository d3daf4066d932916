"""Exact linear regions along a segment, in any input dimension: the breakpoints and each piece's pattern.
"""

from __future__ import annotations

import numpy as np

from icl_geometry.core.partition.network import Affine, input_dim, layers_of
from icl_geometry.core.partition.planes import as_array


def regions_1d(mlp, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Exact linear regions along the segment from a to b (any input dimension).

    Returns the breakpoints t in (0, 1) where the pattern changes (x = a + t (b - a)), sorted, and the
    (n_pieces, n_neurons) activation pattern of each piece.
    """
    steps = layers_of(mlp)
    pa, pb = as_array(a, "a").ravel(), as_array(b, "b").ravel()
    D = input_dim(steps)
    if pa.shape != pb.shape or (D is not None and pa.shape[0] != D):
        raise ValueError(f"a, b: expected two points of dimension {D}, got shapes {pa.shape} and {pb.shape}")
    lo, hi = np.zeros(1), np.ones(1)
    A, c = (pb - pa)[None], pa[None]  # features = t A + c per interval
    pat = np.zeros((1, 0), bool)
    eps = 1e-12
    for step in steps:
        if isinstance(step, Affine):
            A, c = A @ step.W.T, c @ step.W.T + step.b
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = -c / A
        tol = eps * (np.abs(A) + np.abs(c)) / np.maximum(np.abs(A), 1e-300)
        inside = (A != 0) & (roots > lo[:, None] + np.maximum(tol, eps)) & (roots < hi[:, None] - np.maximum(tol, eps))
        R = np.sort(np.where(inside, roots, np.inf), axis=1)
        k = inside.sum(1)
        m = R.shape[1]
        B = np.concatenate([lo[:, None], R, np.full((len(lo), 1), np.inf)], axis=1)
        B[np.arange(len(lo)), k + 1] = hi
        left, right = B[:, :-1], B[:, 1:]
        with np.errstate(invalid="ignore"):  # inf - inf in the padding, masked out by the first test
            keep = (np.arange(m + 1)[None, :] <= k[:, None]) & (right - left > eps)
        owner = np.broadcast_to(np.arange(len(lo))[:, None], keep.shape)[keep]
        lo, hi = left[keep], right[keep]
        A, c, pat = A[owner], c[owner], pat[owner]
        mid = (lo + hi) / 2
        z = mid[:, None] * A + c
        on = z > 0
        pat = np.concatenate([pat, on], axis=1)
        gain = np.where(on, 1.0, step.slope)
        A, c = A * gain, c * gain
    return lo[1:].copy(), pat


def count_regions_1d(mlp, a, b) -> int:
    """Exact number of linear regions the segment from a to b passes through (any input dimension)."""
    return len(regions_1d(mlp, a, b)[0]) + 1
