"""One layer as a line arrangement: its zero lines on a plane and the exact number of cells they cut a box into.

`count_line_regions` counts crossings, O(n^2) instead of splitting polygons, for the 1536 gate lines of a
real LLM's MLP; `first_layer_lines` gives a network's (or a bare `nn.Linear`'s) lines on a plane.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import nn

from icl_geometry.core.partition.network import Affine, initial_map, layers_of
from icl_geometry.core.partition.planes import Bounds, Plane, check_bounds

RTOL = 1e-9  # a vertex within RTOL x (scale of the line's values) of a line lies on it


def first_layer_lines(mlp, plane: Plane | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The zero lines a_j . (u, v) + c_j = 0 of the first layer's neurons, on the input plane or on `plane`.

    Works on a bare `nn.Linear` too (e.g. a SwiGLU MLP's `gate_proj`: its sign pattern is what a
    ReLU-like reading of the gate switches on).
    """
    steps = layers_of(mlp if not isinstance(mlp, nn.Linear) else nn.Sequential(mlp, nn.ReLU()))
    A, c = initial_map(steps, plane)
    A, c = A[0], c[0]
    if isinstance(steps[0], Affine):
        A, c = A @ steps[0].W.T, c @ steps[0].W.T + steps[0].b
    return A.T.copy(), c.copy()


def count_line_regions(a: np.ndarray, c: np.ndarray, bounds: Bounds) -> int:
    """Exact number of cells that the lines a_j . x + c_j = 0 cut the open box into.

    Adding the lines one by one, line j adds 1 + (number of distinct points inside the box where it
    crosses earlier lines), if it crosses the box and does not repeat an earlier line. Concurrent lines
    (several through one point) and parallel lines are handled; points are distinct when they differ
    by more than RTOL x the box's scale.
    """
    a, c = np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64).ravel()
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] != c.shape[0]:
        raise ValueError(f"a, c: expected shapes (n, 2) and (n,), got {a.shape} and {c.shape}")
    x0, x1, y0, y1 = check_bounds(bounds)
    scale = max(abs(x0), abs(x1), abs(y0), abs(y1))
    norm = np.linalg.norm(a, axis=1)
    live = norm > 0
    a, c = a[live] / norm[live, None], c[live] / norm[live]
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    vals = corners @ a.T + c
    tol = RTOL * (scale + np.abs(c))
    crosses = (vals.max(0) > tol) & (vals.min(0) < -tol)
    a, c = a[crosses], c[crosses]
    n = len(c)
    if n == 0:
        return 1
    # canonical sign so that identical lines compare equal
    flip = (a[:, 0] < 0) | ((a[:, 0] == 0) & (a[:, 1] < 0))
    a[flip], c[flip] = -a[flip], -c[flip]
    det = a[:, None, 0] * a[None, :, 1] - a[:, None, 1] * a[None, :, 0]  # (n, n)
    parallel = np.abs(det) <= 1e-12
    same = parallel & (np.abs(c[:, None] - c[None, :]) <= RTOL * (scale + np.abs(c[:, None])))
    earlier = np.tri(n, k=-1, dtype=bool)  # [j, i]: i < j
    repeat = (same & earlier).any(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = (a[:, None, 1] * c[None, :] - a[None, :, 1] * c[:, None]) / det
        py = (a[None, :, 0] * c[:, None] - a[:, None, 0] * c[None, :]) / det
    eps = RTOL * scale
    inside = (~parallel & earlier & (px > x0 + eps) & (px < x1 - eps) & (py > y0 + eps) & (py < y1 - eps))
    inside &= ~repeat[None, :]  # a repeated line's crossings are its twin's
    t = np.where(inside, -a[:, None, 1] * px + a[:, None, 0] * py, np.inf)  # position along line j
    t.sort(axis=1)
    k = inside.sum(1)
    with np.errstate(invalid="ignore"):
        gaps = np.diff(t, axis=1) > eps  # inf - inf past the last crossing is masked out below
    valid = np.arange(n - 1)[None, :] < (k[:, None] - 1)
    distinct = np.where(k > 0, 1 + (gaps & valid).sum(1), 0)
    return int(1 + ((1 + distinct) * ~repeat).sum())


def arrangement_bounds(a: np.ndarray, c: np.ndarray, margin: float = 0.2) -> Bounds:
    """A box (centred on 0) holding every pairwise crossing of the lines a_j . x + c_j = 0, widened by margin.

    In it, n lines in general position make exactly 1 + n + C(n, 2) regions.
    """
    a, c = np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64).ravel()
    det = a[:, None, 0] * a[None, :, 1] - a[:, None, 1] * a[None, :, 0]
    iu = np.triu_indices(len(c), 1)
    det = det[iu]
    ok = np.abs(det) > 1e-12 * (np.linalg.norm(a, axis=1).max() ** 2)
    px = ((a[:, None, 1] * c[None, :] - a[None, :, 1] * c[:, None])[iu])[ok] / det[ok]
    py = ((a[None, :, 0] * c[:, None] - a[:, None, 0] * c[None, :])[iu])[ok] / det[ok]
    norm2 = np.maximum((a ** 2).sum(1), 1e-300)
    feet = -c[:, None] * a / norm2[:, None]  # each line's point nearest 0: every line crosses the box
    r = float(max(np.abs(px).max(initial=1.0), np.abs(py).max(initial=1.0), np.abs(feet).max(initial=1.0)))
    r *= 1 + margin
    return (-r, r, -r, r)


def in_general_position(a: np.ndarray, c: np.ndarray, rtol: float = 1e-6) -> bool:
    """True when no two lines are parallel and no three meet in a point (up to rtol)."""
    a, c = np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64).ravel()
    n = len(c)
    det = a[:, None, 0] * a[None, :, 1] - a[:, None, 1] * a[None, :, 0]
    scale = np.linalg.norm(a, axis=1)
    if (np.abs(det[np.triu_indices(n, 1)]) <= rtol * np.outer(scale, scale)[np.triu_indices(n, 1)]).any():
        return False
    with np.errstate(divide="ignore", invalid="ignore"):
        px = (a[:, None, 1] * c[None, :] - a[None, :, 1] * c[:, None]) / det
        py = (a[None, :, 0] * c[:, None] - a[:, None, 0] * c[None, :]) / det
    i, j = np.triu_indices(n, 1)
    if n < 3:
        return True
    P = np.stack([px[i, j], py[i, j]], 1)
    resid = np.abs(P @ a.T + c) / scale  # distance of each crossing to every line
    resid[np.arange(len(i)), i] = np.inf
    resid[np.arange(len(i)), j] = np.inf
    return bool((resid > rtol * (1 + np.abs(P).max(1, keepdims=True))).all())


def lines_crossing_window(a: np.ndarray, c: np.ndarray, window: Sequence[float]) -> int:
    """How many lines a . x + c = 0 (rows of `a`, entries of `c`) cut the box (xmin, xmax, ymin, ymax)."""
    x0, x1, y0, y1 = window
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    v = corners @ np.asarray(a, dtype=np.float64).T + np.asarray(c, dtype=np.float64)
    return int(((v.max(0) > 0) & (v.min(0) < 0)).sum())


def active_counts(a: np.ndarray, c: np.ndarray, u: np.ndarray, v: np.ndarray, chunk: int = 8) -> np.ndarray:
    """(len(v), len(u)) grid: how many lines a_j . (u, v) + c_j are > 0 at each point (neurons on)."""
    a, c = np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64)
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    out = np.empty((len(v), len(u)), dtype=np.int64)
    for i0 in range(0, len(v), chunk):
        pre = u[None, :, None] * a[:, 0] + v[i0:i0 + chunk, None, None] * a[:, 1] + c
        out[i0:i0 + chunk] = (pre > 0).sum(-1)
    return out
