"""Exact enumeration of the linear regions a network cuts a box of a plane into (any depth, no grid).

The box is split layer by layer: inside a cell of the previous layers every neuron of the next layer is
affine, so its zero set is a straight line there, and the cell is cut along it (Sutherland-Hodgman,
vectorised over all polygons: in round r every polygon is cut by the r-th line that crosses its parent
cell). Geometry is in float64; a vertex closer to a line than RTOL x the scale counts as lying on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from icl_geometry.core.checks import check_choice
from icl_geometry.core.partition.lines import RTOL, count_line_regions, first_layer_lines
from icl_geometry.core.partition.network import Act, Affine, initial_map, layers_of
from icl_geometry.core.partition.planes import Bounds, Plane, check_bounds

CHUNK = 4096  # polygons split together; bounds memory at (CHUNK x 5 vertices x width) floats
METHODS = ("auto", "polygons", "lines")


@dataclass(frozen=True)
class Region:
    """One linear region in a box: a convex polygon (counter-clockwise vertices) and its activation pattern."""

    vertices: np.ndarray  # (k, 2)
    pattern: np.ndarray  # (n_neurons,) bool, layer after layer

    @property
    def area(self) -> float:
        x, y = self.vertices[:, 0], self.vertices[:, 1]
        return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))

    @property
    def centroid(self) -> np.ndarray:
        return self.vertices.mean(0)


def _starts(counts: np.ndarray) -> np.ndarray:
    s = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=s[1:])
    return s


def _cut(verts: np.ndarray, counts: np.ndarray, a: np.ndarray, c: np.ndarray,
         tol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut each convex polygon p by its own line a[p] . x + c[p] = 0 (Sutherland-Hodgman, vectorised).

    Returns the new vertices, vertex counts, and each new polygon's parent index. Polygons the line
    misses (or only touches, within `tol`) are kept whole.
    """
    P = len(counts)
    starts = _starts(counts)
    pid = np.repeat(np.arange(P), counts)
    s = verts[:, 0] * a[pid, 0] + verts[:, 1] * a[pid, 1] + c[pid]
    s[np.abs(s) <= tol[pid]] = 0.0
    split = (np.maximum.reduceat(s, starts) > 0) & (np.minimum.reduceat(s, starts) < 0)
    if not split.any():
        return verts, counts, np.arange(P)
    keep_v = ~split[pid]
    sv, ss, cs = verts[~keep_v], s[~keep_v], counts[split]
    st = _starts(cs)
    nxt = np.arange(1, len(ss) + 1)
    nxt[st + cs - 1] = st
    sn = ss[nxt]
    cross = ss * sn < 0
    t = np.where(cross, ss / np.where(cross, ss - sn, 1.0), 0.0)
    pts = np.stack([sv, sv + t[:, None] * (sv[nxt] - sv)], axis=1)  # (n, 2 slots, 2 coords)
    children_v, children_n = [verts[keep_v]], [counts[~split]]
    for side in (ss >= 0, ss <= 0):
        emit = np.stack([side, cross], axis=1)
        children_v.append(pts[emit])
        children_n.append(np.add.reduceat(emit.sum(1), st))
    idx = np.flatnonzero(split)
    parent = np.concatenate([np.flatnonzero(~split), idx, idx])
    return np.concatenate(children_v), np.concatenate(children_n), parent


def _layer_split(verts: np.ndarray, counts: np.ndarray, A: np.ndarray, c: np.ndarray,
                 scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut every polygon by all lines of one layer (pre-activations u A[p, 0] + v A[p, 1] + c[p]).

    A: (P0, 2, m), c: (P0, m). Returns vertices, counts and each final polygon's source polygon.
    """
    P0 = len(counts)
    pid = np.repeat(np.arange(P0), counts)
    S = verts[:, :1] * A[pid, 0] + verts[:, 1:] * A[pid, 1] + c[pid]  # (V0, m)
    tol0 = RTOL * ((np.abs(A[:, 0]) + np.abs(A[:, 1])) * scale + np.abs(c))  # (P0, m)
    starts = _starts(counts)
    hit = (np.maximum.reduceat(S, starts) > tol0) & (np.minimum.reduceat(S, starts) < -tol0)
    n_hit = hit.sum(1)
    rounds = int(n_hit.max()) if P0 else 0
    order = np.argsort(~hit, axis=1, kind="stable")[:, :rounds]  # the lines crossing each cell, first
    src = np.arange(P0)
    done: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for r in range(rounds):
        alive = n_hit[src] > r
        if not alive.all():
            vmask = np.repeat(alive, counts)
            done.append((verts[~vmask], counts[~alive], src[~alive]))
            verts, counts, src = verts[vmask], counts[alive], src[alive]
        j = order[src, r]
        verts, counts, parent = _cut(verts, counts, A[src, :, j], c[src, j], tol0[src, j])
        src = src[parent]
    done.append((verts, counts, src))
    return (np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done]),
            np.concatenate([d[2] for d in done]))


@dataclass
class _Cells:
    verts: np.ndarray  # (V, 2)
    counts: np.ndarray  # (P,)
    patterns: np.ndarray | None  # (P, n_bits) bool


def _run(steps: Sequence[Affine | Act], verts: np.ndarray, counts: np.ndarray, A: np.ndarray,
         c: np.ndarray, pat: np.ndarray | None, i: int, scale: float, out: list[_Cells]) -> None:
    """Push polygons through steps[i:], depth first in chunks of CHUNK polygons, appending results to out."""
    last_act = max(k for k, s in enumerate(steps) if isinstance(s, Act))
    while i < len(steps):
        step = steps[i]
        if isinstance(step, Affine):
            if i > last_act:
                break  # affine maps after the last activation cut nothing
            P, _, k = A.shape
            A = (A.reshape(2 * P, k) @ step.W.T).reshape(P, 2, -1)
            c = c @ step.W.T + step.b
            i += 1
            continue
        if len(counts) > CHUNK:
            starts = np.concatenate([_starts(counts), [counts.sum()]])
            for lo in range(0, len(counts), CHUNK):
                hi = min(lo + CHUNK, len(counts))
                _run(steps, verts[starts[lo]:starts[hi]], counts[lo:hi], A[lo:hi], c[lo:hi],
                     None if pat is None else pat[lo:hi], i, scale, out)
            return
        verts, counts, src = _layer_split(verts, counts, A, c, scale)
        if pat is None and i == last_act:
            break
        cen = np.add.reduceat(verts, _starts(counts), axis=0) / counts[:, None]
        A, c = A[src], c[src]
        on = cen[:, :1] * A[:, 0] + cen[:, 1:] * A[:, 1] + c > 0
        if pat is not None:
            pat = np.concatenate([pat[src], on], axis=1)
        if i < last_act:
            gain = np.where(on, 1.0, step.slope)
            A, c = A * gain[:, None, :], c * gain
        i += 1
    out.append(_Cells(verts, counts, pat))


def _enumerate(mlp, bounds, plane: Plane | None, patterns: bool) -> list[_Cells]:
    steps = layers_of(mlp)
    x0, x1, y0, y1 = check_bounds(bounds)
    verts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    A, c = initial_map(steps, plane)
    scale = max(abs(x0), abs(x1), abs(y0), abs(y1))
    out: list[_Cells] = []
    _run(steps, verts, np.array([4]), A, c, np.zeros((1, 0), bool) if patterns else None, 0, scale, out)
    return out


def regions_2d(mlp, bounds: Bounds = (-1.0, 1.0, -1.0, 1.0), plane: Plane | None = None) -> list[Region]:
    """Every linear region of `mlp` inside the box `bounds` = (xmin, xmax, ymin, ymax), exactly.

    With `plane`, the box is in that plane's (u, v) coordinates of a higher-dimensional input space.
    """
    regions: list[Region] = []
    for cells in _enumerate(mlp, bounds, plane, patterns=True):
        ends = np.cumsum(cells.counts)
        for k, (lo, hi) in enumerate(zip(ends - cells.counts, ends)):
            regions.append(Region(vertices=cells.verts[lo:hi], pattern=cells.patterns[k]))
    return regions


def region_arrays(mlp, bounds: Bounds = (-1.0, 1.0, -1.0, 1.0),
                  plane: Plane | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`regions_2d` as flat arrays (vertices (V, 2), vertex counts (P,), patterns (P, n)): for plotting many."""
    cells = _enumerate(mlp, bounds, plane, patterns=True)
    return (np.concatenate([c.verts for c in cells]), np.concatenate([c.counts for c in cells]),
            np.concatenate([c.patterns for c in cells]))


def polygon_areas(verts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Shoelace areas of the polygons stored flat (as returned by `region_arrays`)."""
    starts = _starts(counts)
    nxt = np.arange(1, len(verts) + 1)
    nxt[starts + counts - 1] = starts
    cross = verts[:, 0] * verts[nxt, 1] - verts[:, 1] * verts[nxt, 0]
    return 0.5 * np.add.reduceat(cross, starts)


def count_regions_2d(mlp, bounds: Bounds = (-1.0, 1.0, -1.0, 1.0), plane: Plane | None = None,
                     method: str = "auto") -> int:
    """Exact number of linear regions of `mlp` in the box (of the input plane, or of `plane`).

    method: "polygons" (split the box, any depth), "lines" (count crossings; one-activation-layer
    networks only, fast for thousands of neurons), "auto" (lines when possible, else polygons).
    """
    check_choice("method", method, METHODS)
    steps = layers_of(mlp)
    acts = [k for k, s in enumerate(steps) if isinstance(s, Act)]
    single = len(acts) == 1 and acts[0] <= 1
    if method == "lines" and not single:
        raise ValueError("method = 'lines' is not allowed for this network: it needs exactly one activation "
                         "layer, right after the first Linear; use 'polygons' or 'auto'")
    if method == "lines" or (method == "auto" and single):
        a, c = first_layer_lines(mlp, plane)
        return count_line_regions(a, c, bounds)
    return int(sum(len(cells.counts) for cells in _enumerate(mlp, bounds, plane, patterns=False)))
