"""Linear regions of piecewise-linear MLPs: exact on planes and segments, sampled in any dimension.

A network built from `Linear` layers and `ReLU`/`LeakyReLU` activations is a continuous piecewise-affine
map. Its *activation pattern* (which neurons are on) is constant on convex polyhedral cells, the linear
regions, and the map is affine on each. This module counts them:

* `regions_2d` / `count_regions_2d`: **exact** enumeration of the cells that a network cuts a box of a
  plane into (the input plane itself for 2-D networks, or any plane of a higher-dimensional input
  space, e.g. the plane through three real token representations; see `Plane`). The box is split
  layer by layer: inside a cell of the previous layers every neuron of the next layer is affine, so its
  zero set is a straight line there, and the cell is cut along it. No grid is involved. Geometry is in
  float64; a vertex closer to a line than a relative tolerance counts as lying on it, which handles
  lines through vertices, concurrent lines (zero bias), parallel lines, and neurons whose line misses
  the box. The splitting is vectorised over all polygons: in round r every polygon is cut by the r-th
  line that crosses its parent cell, so no round spends work on lines that cannot cut.
* `count_line_regions`: the exact count for one layer (a line arrangement) by counting crossings,
  O(n^2) instead of splitting, for the 1536 gate lines of a real LLM's MLP.
* `count_regions_1d` / `regions_1d`: exact count along a segment in any input dimension.
* `activation_patterns`, `sample_patterns`: the patterns that sample points hit (a lower bound on the
  regions they visit), in any dimension; `visited_regions` adds the exact count when the points span a
  line or a plane.
* `regions_bound(n, d)`: the hyperplane-arrangement maximum sum_{k<=d} C(n, k) (Zaslavsky);
  `central_regions_bound(n, d)`: the same for hyperplanes through the origin (no bias).
* `relu_like_fraction`, `silu_relu_gap`: how much of a SiLU gate sits where SiLU is close to ReLU.

The count is of activation regions (one per pattern). Two neighbouring regions can carry the same
affine map (e.g. when the neuron that switches feeds only dead neurons); they are still counted twice,
as in the literature on counting linear regions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

RTOL = 1e-9  # a vertex within RTOL x (scale of the line's values) of a line lies on it
CHUNK = 4096  # polygons split together; bounds memory at (CHUNK x 5 vertices x width) floats
METHODS = ("auto", "polygons", "lines")

Bounds = tuple[float, float, float, float]


# ----------------------------------------------------------------------------- the network as affine steps

@dataclass(frozen=True)
class _Affine:
    W: np.ndarray  # (out, in) float64
    b: np.ndarray  # (out,)


@dataclass(frozen=True)
class _Act:
    slope: float  # slope where the pre-activation is negative: 0 for ReLU


def _flatten(modules: Iterable[nn.Module]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in modules:
        out.extend(_flatten(m) if isinstance(m, nn.Sequential) else [m])
    return out


def layers_of(mlp: nn.Module | Sequence[nn.Module]) -> list[_Affine | _Act]:
    """The network as float64 affine maps and activations (consecutive affine maps composed into one)."""
    if isinstance(mlp, nn.Sequential) or isinstance(mlp, (list, tuple)):
        modules = _flatten(mlp)
    elif isinstance(mlp, (nn.Linear, nn.ReLU, nn.LeakyReLU)):
        modules = [mlp]
    else:
        raise ValueError(f"mlp: expected a torch.nn.Sequential of Linear and ReLU/LeakyReLU layers, "
                         f"got {type(mlp).__name__}")
    steps: list[_Affine | _Act] = []
    for m in modules:
        if isinstance(m, nn.Linear):
            W = m.weight.detach().cpu().double().numpy()
            b = (m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(W.shape[0]))
            if steps and isinstance(steps[-1], _Affine):
                prev = steps.pop()
                W, b = W @ prev.W, W @ prev.b + b
            steps.append(_Affine(W, b))
        elif isinstance(m, nn.ReLU):
            steps.append(_Act(0.0))
        elif isinstance(m, nn.LeakyReLU):
            steps.append(_Act(float(m.negative_slope)))
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise ValueError(f"mlp: layer {type(m).__name__} is not supported; allowed layers: Linear, ReLU, "
                             f"LeakyReLU (and Identity/Dropout, which are skipped)")
    if not any(isinstance(s, _Act) for s in steps):
        raise ValueError("mlp: the network has no ReLU/LeakyReLU layer, so it has a single linear region")
    return steps


def input_dim(steps: Sequence[_Affine | _Act]) -> int | None:
    """The input dimension the first affine map expects (None if the net starts with an activation)."""
    return steps[0].W.shape[1] if isinstance(steps[0], _Affine) else None


def n_neurons(mlp: nn.Module | Sequence[nn.Module]) -> int:
    """Number of piecewise-linear neurons (one bit each in an activation pattern)."""
    steps = layers_of(mlp)
    width, total = input_dim(steps), 0
    for s in steps:
        if isinstance(s, _Affine):
            width = s.W.shape[0]
        else:
            total += width
    return total


# ----------------------------------------------------------------------------- planes in input space

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


def _as_array(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def plane_through(p0, p1, p2) -> Plane:
    """The plane through three points (any dimension), centred at their centroid, orthonormal axes."""
    P = np.stack([_as_array(p, "point").ravel() for p in (p0, p1, p2)])
    origin = P.mean(0)
    Q, R = np.linalg.qr((P[1:] - P[0]).T)
    if abs(R[1, 1]) <= 1e-12 * max(abs(R[0, 0]), 1e-300):
        raise ValueError("plane_through: the three points are (nearly) collinear, so they span no plane")
    basis = Q.T
    return Plane(origin=origin, basis=basis, coords=(P - origin) @ basis.T)


# ----------------------------------------------------------------------------- exact 2-D enumeration

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


def _check_bounds(bounds) -> Bounds:
    try:
        x0, x1, y0, y1 = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds = {bounds!r} is not allowed: expected (xmin, xmax, ymin, ymax)") from None
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or not (x0 < x1 and y0 < y1):
        raise ValueError(f"bounds = {bounds!r} is not allowed: expected finite xmin < xmax and ymin < ymax")
    return x0, x1, y0, y1


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


def _run(steps: Sequence[_Affine | _Act], verts: np.ndarray, counts: np.ndarray, A: np.ndarray,
         c: np.ndarray, pat: np.ndarray | None, i: int, scale: float, out: list[_Cells]) -> None:
    """Push polygons through steps[i:], depth first in chunks of CHUNK polygons, appending results to out."""
    last_act = max(k for k, s in enumerate(steps) if isinstance(s, _Act))
    while i < len(steps):
        step = steps[i]
        if isinstance(step, _Affine):
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


def _initial_map(steps, plane: Plane | None) -> tuple[np.ndarray, np.ndarray]:
    """The input as an affine function of the plane coordinates: x = (u, v) A + c."""
    D = input_dim(steps)
    if plane is None:
        if D is not None and D != 2:
            raise ValueError(f"mlp: the network takes {D}-dimensional inputs; pass plane=... (see "
                             f"plane_through) to cut a plane of its input space, or use a 2-input network")
        return np.eye(2)[None], np.zeros((1, 2))
    if D is not None and D != plane.dim:
        raise ValueError(f"plane: lies in R^{plane.dim} but the network takes {D}-dimensional inputs")
    return plane.basis[None].copy(), plane.origin[None].copy()


def _enumerate(mlp, bounds, plane: Plane | None, patterns: bool) -> list[_Cells]:
    steps = layers_of(mlp)
    x0, x1, y0, y1 = _check_bounds(bounds)
    verts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    A, c = _initial_map(steps, plane)
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
    if method not in METHODS:
        raise ValueError(f"method = {method!r} is not allowed: expected one of {list(METHODS)}")
    steps = layers_of(mlp)
    acts = [k for k, s in enumerate(steps) if isinstance(s, _Act)]
    single = len(acts) == 1 and acts[0] <= 1
    if method == "lines" and not single:
        raise ValueError("method = 'lines' is not allowed for this network: it needs exactly one activation "
                         "layer, right after the first Linear; use 'polygons' or 'auto'")
    if method == "lines" or (method == "auto" and single):
        a, c = first_layer_lines(mlp, plane)
        return count_line_regions(a, c, bounds)
    return int(sum(len(cells.counts) for cells in _enumerate(mlp, bounds, plane, patterns=False)))


# ----------------------------------------------------------------------------- one layer: line arrangements

def first_layer_lines(mlp, plane: Plane | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The zero lines a_j . (u, v) + c_j = 0 of the first layer's neurons, on the input plane or on `plane`.

    Works on a bare `nn.Linear` too (e.g. a SwiGLU MLP's `gate_proj`: its sign pattern is what a
    ReLU-like reading of the gate switches on).
    """
    steps = layers_of(mlp if not isinstance(mlp, nn.Linear) else nn.Sequential(mlp, nn.ReLU()))
    A, c = _initial_map(steps, plane)
    A, c = A[0], c[0]
    if isinstance(steps[0], _Affine):
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
    x0, x1, y0, y1 = _check_bounds(bounds)
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


# ----------------------------------------------------------------------------- exact 1-D counts

def regions_1d(mlp, a, b) -> tuple[np.ndarray, np.ndarray]:
    """Exact linear regions along the segment from a to b (any input dimension).

    Returns the breakpoints t in (0, 1) where the pattern changes (x = a + t (b - a)), sorted, and the
    (n_pieces, n_neurons) activation pattern of each piece.
    """
    steps = layers_of(mlp)
    pa, pb = _as_array(a, "a").ravel(), _as_array(b, "b").ravel()
    D = input_dim(steps)
    if pa.shape != pb.shape or (D is not None and pa.shape[0] != D):
        raise ValueError(f"a, b: expected two points of dimension {D}, got shapes {pa.shape} and {pb.shape}")
    lo, hi = np.zeros(1), np.ones(1)
    A, c = (pb - pa)[None], pa[None]  # features = t A + c per interval
    pat = np.zeros((1, 0), bool)
    eps = 1e-12
    for step in steps:
        if isinstance(step, _Affine):
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


# ----------------------------------------------------------------------------- sampled patterns

def activation_patterns(mlp, X) -> np.ndarray:
    """(N, n_neurons) booleans: which neurons are on (pre-activation > 0) at each row of X, in float64."""
    return _patterns(layers_of(mlp), X)


def _on_plane(steps: list[_Affine | _Act], plane: Plane | None) -> list[_Affine | _Act]:
    """The network as a function of plane coordinates (u, v): the plane folded into the first affine map."""
    if plane is None:
        return steps
    D = input_dim(steps)
    if D is None:
        return [_Affine(plane.basis.T.copy(), plane.origin.copy()), *steps]
    if D != plane.dim:
        raise ValueError(f"plane: lies in R^{plane.dim} but the network takes {D}-dimensional inputs")
    first = steps[0]
    return [_Affine(first.W @ plane.basis.T, first.W @ plane.origin + first.b), *steps[1:]]


def _patterns(steps: Sequence[_Affine | _Act], X) -> np.ndarray:
    X = _as_array(X, "X")
    if X.ndim == 1:
        X = X[:, None]
    D = input_dim(steps)
    if X.ndim != 2 or (D is not None and X.shape[1] != D):
        raise ValueError(f"X: expected an (N, {D}) array of inputs, got shape {X.shape}")
    bits = []
    for step in steps:
        if isinstance(step, _Affine):
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


def affine_span(X: np.ndarray, rtol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Mean and orthonormal basis (d, D) of the affine span of the rows of X."""
    X = _as_array(X, "X")
    mean = X.mean(0)
    _, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    d = int((s > rtol * s[0]).sum()) if len(s) and s[0] > 0 else 0
    return mean, Vt[:d]


def visited_regions(mlp, X, exact_up_to: int = 2) -> Visits:
    """Distinct regions that the points X visit (sampled), plus the exact count over the smallest segment
    (span dimension 1) or box (dimension 2) of their span that holds them; exact >= sampled."""
    X = _as_array(X, "X")
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


# ----------------------------------------------------------------------------- the bound

def regions_bound(n_neurons: int, dim: int) -> int:
    """Most regions n hyperplanes can cut R^dim into: sum_{k=0}^{dim} C(n, k) (Zaslavsky 1975).

    Reached by one hidden layer of n neurons in general position; exponential in dim while dim < n.
    """
    for name, v in (("n_neurons", n_neurons), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} = {v!r} is not allowed: expected an integer >= 0")
    return sum(math.comb(int(n_neurons), k) for k in range(int(dim) + 1))


def central_regions_bound(n_neurons: int, dim: int) -> int:
    """Most regions n hyperplanes *through the origin* cut R^dim into: 2 sum_{i<dim} C(n-1, i).

    A central arrangement (no bias, as in the gate of a Llama-style SwiGLU MLP) in general position has
    this many regions (Zaslavsky 1975; Cover 1965 counts the same cones as dichotomies); it equals 2^n
    while n <= dim, and 2n lines through one point of the plane make 2n cones.
    """
    for name, v in (("n_neurons", n_neurons), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} = {v!r} is not allowed: expected an integer >= 0")
    if n_neurons == 0:
        return 1
    return 2 * sum(math.comb(int(n_neurons) - 1, i) for i in range(int(dim)))


def silu_relu_gap(threshold: float) -> float:
    """Largest |SiLU(z) - ReLU(z)| / |z| over |z| >= threshold: sigmoid(-threshold).

    SiLU(z) = z sigmoid(z), so ReLU(z) - SiLU(z) = |z| sigmoid(-|z|) on both sides of 0; relative to |z|
    it is sigmoid(-|z|), which falls with |z|. At threshold 3 it is 4.7 %, at 2 it is 11.9 %.
    """
    t = float(threshold)
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"threshold = {threshold!r} is not allowed: expected a finite number >= 0")
    return 1.0 / (1.0 + math.exp(t))


def relu_like_fraction(pre, threshold: float = 3.0) -> float:
    """Fraction of pre-activations with |z| > threshold, where SiLU(z) is within `silu_relu_gap` of ReLU(z).

    Used on a SwiGLU gate's pre-activations to measure how much of the gate the ReLU (sign-pattern) reading
    describes well: near z = 0 SiLU is smooth and the sign says little.
    """
    z = _as_array(pre, "pre").ravel()
    silu_relu_gap(threshold)  # validates threshold
    if z.size == 0:
        raise ValueError("pre: expected at least one pre-activation")
    return float((np.abs(z) > float(threshold)).mean())


def active_counts(a: np.ndarray, c: np.ndarray, u: np.ndarray, v: np.ndarray, chunk: int = 8) -> np.ndarray:
    """(len(v), len(u)) grid: how many lines a_j . (u, v) + c_j are > 0 at each point (neurons on)."""
    a, c = np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64)
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    out = np.empty((len(v), len(u)), dtype=np.int64)
    for i0 in range(0, len(v), chunk):
        pre = u[None, :, None] * a[:, 0] + v[i0:i0 + chunk, None, None] * a[:, 1] + c
        out[i0:i0 + chunk] = (pre > 0).sum(-1)
    return out


# ----------------------------------------------------------------------------- a real LLM's gate on a plane

def gate_regions_on_plane(gate: nn.Linear, plane: Plane, bounds: Bounds) -> int:
    """Exact number of sign-pattern regions the gate pre-activations gate(x) cut a window of a plane into.

    For a SwiGLU/GeGLU MLP, gate = mlp.gate_proj and x the MLP input (after the RMS norm). The sign of
    gate(x) is the on/off pattern a ReLU reading of the gate would have; the lines are exact because
    gate is linear, and (no bias) scaling x by a positive number, as RMS normalisation does, keeps the
    pattern, so a plane through normalised points slices the cone of residual-stream vectors faithfully.
    """
    if not isinstance(gate, nn.Linear):
        raise ValueError(f"gate: expected an nn.Linear (e.g. layer.mlp.gate_proj), got {type(gate).__name__}")
    a, c = first_layer_lines(gate, plane)
    return count_line_regions(a, c, bounds)


def gate_sign_mismatch(gate: nn.Linear, plane: Plane, uv: np.ndarray) -> float:
    """Fraction of (point, neuron) signs where the model's own `gate` module disagrees with our line model.

    The check that the line arrangement is the gate's: lift plane points to the input space, run the
    real module (its dtype and device), and compare signs with a_j . (u, v) + c_j.
    """
    a, c = first_layer_lines(gate, plane)
    ours = np.asarray(uv, dtype=np.float64) @ a.T + c > 0
    w = gate.weight
    X = torch.as_tensor(plane.lift(uv), dtype=w.dtype, device=w.device)
    with torch.no_grad():
        theirs = (gate(X) > 0).cpu().numpy()
    return float((ours != theirs).mean())


def raster_patterns(mlp, bounds: Bounds, resolution: int = 300,
                    plane: Plane | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region labels on a resolution x resolution grid of the box (for pictures; counts come from the exact
    functions). Returns grid u, grid v and an integer label per pixel (equal label = equal pattern)."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise ValueError(f"resolution = {resolution!r} is not allowed: expected an integer >= 2")
    x0, x1, y0, y1 = _check_bounds(bounds)
    u = np.linspace(x0, x1, resolution)
    v = np.linspace(y0, y1, resolution)
    U, V = np.meshgrid(u, v)
    uv = np.stack([U.ravel(), V.ravel()], 1)
    net = nn.Sequential(mlp, nn.ReLU()) if isinstance(mlp, nn.Linear) else mlp
    P = _patterns(_on_plane(layers_of(net), plane), uv)
    packed = np.ascontiguousarray(np.packbits(P, axis=1))
    _, labels = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_inverse=True)
    return u, v, labels.reshape(resolution, resolution)


# ----------------------------------------------------------------------------- building and drawing

def random_mlp(d_in: int, widths: Sequence[int], *, bias: bool = True, seed: int = 0,
               leaky: float | None = None, d_out: int = 1) -> nn.Sequential:
    """d_in -> widths... -> d_out, ReLU (or LeakyReLU(leaky)) after each hidden layer, PyTorch's default init."""
    for name, v in (("d_in", d_in), ("d_out", d_out), *((f"widths[{i}]", w) for i, w in enumerate(widths))):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} = {v!r} is not allowed: expected an integer >= 1")
    if len(widths) == 0:
        raise ValueError("widths: expected at least one hidden layer")
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        layers: list[nn.Module] = []
        k = int(d_in)
        for w in widths:
            layers += [nn.Linear(k, int(w), bias=bias), nn.ReLU() if leaky is None else nn.LeakyReLU(leaky)]
            k = int(w)
        layers.append(nn.Linear(k, int(d_out), bias=bias))
        return nn.Sequential(*layers)


def draw_regions(ax, mlp, bounds: Bounds = (-1.0, 1.0, -1.0, 1.0), plane: Plane | None = None, *,
                 cmap: str = "viridis", seed: int = 0, edgecolor: str = "white", linewidth: float = 0.3) -> int:
    """Fill every exact region with its own colour (shuffled colour map) on a matplotlib axis; return the count."""
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection

    verts, counts, _ = region_arrays(mlp, bounds, plane)
    ends = np.cumsum(counts)
    polys = [verts[e - k:e] for e, k in zip(ends, counts)]
    shade = np.random.default_rng(seed).permutation(len(polys)) / max(len(polys) - 1, 1)
    ax.add_collection(PolyCollection(polys, facecolors=colormaps[cmap](shade), edgecolors=edgecolor,
                                     linewidths=linewidth))
    x0, x1, y0, y1 = _check_bounds(bounds)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    return len(polys)


def lines_crossing_window(a: np.ndarray, c: np.ndarray, window: Sequence[float]) -> int:
    """How many lines a . x + c = 0 (rows of `a`, entries of `c`) cut the box (xmin, xmax, ymin, ymax)."""
    x0, x1, y0, y1 = window
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    v = corners @ np.asarray(a, dtype=np.float64).T + np.asarray(c, dtype=np.float64)
    return int(((v.max(0) > 0) & (v.min(0) < 0)).sum())
