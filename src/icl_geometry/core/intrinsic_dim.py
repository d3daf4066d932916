"""Intrinsic dimension (ID) of point clouds: TwoNN, Levina-Bickel MLE, GRIDE over neighbour-rank scales,
and two linear (PCA) notions, all on one exact, chunked nearest-neighbour search.

Why our own code: these estimators are the geometric "intrinsic dimension" the book contrasts with the
paper's attention count, so the book explains them line by line; scikit-dimension serves as the
cross-check. The search runs in torch on the input's device; candidate neighbours come from float32
matrix products (the speed), their distances are then recomputed as norms of differences (the accuracy:
the Gram trick ||x||^2 + ||y||^2 - 2 x.y cancels catastrophically for close points, and distance ratios
of close points are exactly what the estimators read). A worst-case rounding bound certifies, row by row,
that the float32 candidates contain the true k nearest neighbours; rows it cannot certify are searched
again in float64. Likelihoods and logs are in float64. Memory stays O(chunk x n), never n x n.

Duplicate points (zero distances; common in LLM activations, e.g. identical prefixes) make the
neighbour-distance ratios 0/0 or x/0. They are either merged into one point first (`duplicates="merge"`,
the default) or their undefined statistics are skipped (`duplicates="skip"`); either way the count is
reported and the estimate stays finite.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

DUPLICATES = ("merge", "skip")
MANIFOLDS = ("subspace", "sphere", "swiss_roll", "curved")
TWONN_METHODS = ("linear", "mle")
MLE_AVERAGES = ("inverse", "direct")


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


@dataclass(frozen=True)
class Neighbours:
    """Exact k nearest neighbours of the kept points (self excluded), distances in float64, ascending.

    `kept` indexes the original rows; `indices` index into the kept points.
    """

    distances: np.ndarray  # (n_kept, k)
    indices: np.ndarray  # (n_kept, k)
    kept: np.ndarray  # (n_kept,)
    n_points: int
    n_duplicates: int
    tol: float  # absolute distance at or below which two points count as duplicates


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


# ----------------------------------------------------------------------------- input and neighbours

def as_points(X, name: str = "X") -> torch.Tensor:
    """An (n, D) float tensor on X's own device (numpy -> CPU): float64 stays float64, anything else becomes
    float32 (half precisions are upcast, so differences of activations are exact). Rejects other shapes
    and non-finite values."""
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(X))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name}: expected an (n, D) numeric array or tensor, got {type(X).__name__}") from err
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in _INTS):
        raise ValueError(f"{name}: expected real numbers, got dtype {t.dtype}")
    t = t.to(torch.float64 if t.dtype in _INTS or t.dtype == torch.float64 else torch.float32)
    if t.ndim != 2 or t.shape[1] < 1:
        raise ValueError(f"{name}: expected an (n, D) array of n points in D >= 1 dimensions, "
                         f"got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t


_INTS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} = {value!r} is not allowed: expected one of {list(allowed)}")


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} = {value!r} is not allowed: expected an integer >= {low}")
    return int(value)


def _centred(X: torch.Tensor) -> torch.Tensor:
    """Centred copy in X's dtype: centring shrinks |x|^2, the size of the Gram trick's rounding error."""
    return X - X.mean(0, dtype=torch.float64).to(X.dtype)


@contextmanager
def _threads(n: int) -> Iterator[int]:
    """Temporarily use `n` CPU threads in torch; yields the previous count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield old
    finally:
        torch.set_num_threads(old)


def _block_size(Xf: torch.Tensor, chunk_mb: float) -> int:
    cap = 2048 if Xf.device.type == "cpu" else 8192  # CPU: blocks that stay cache-friendly
    return int(max(1, min(len(Xf), cap, (max(chunk_mb, 0.01) * 2**20 / Xf.element_size()) ** 0.5)))


def _candidates(Xf: torch.Tensor, m: int, chunk_mb: float,
                matmul_threads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, m) indices of each row's m nearest other rows by squared distance from matrix products, and
    those (n, m) squared distances as computed (float32 when Xf is float32: approximate).

    Works on square blocks (I, J) with J >= I: one product X_I X_J^T serves the rows of I (top-m along
    the block's rows) and, transposed, the rows of J; running top-m lists are merged block by block.
    Half the matrix products of the plain row sweep; memory is one block, never n x n.
    Only the products use `matmul_threads`; the caller runs everything else on one thread.
    """
    n = len(Xf)
    sq = (Xf * Xf).sum(1)
    bs = _block_size(Xf, chunk_mb)
    best_v = torch.full((n, m), float("inf"), device=Xf.device, dtype=Xf.dtype)
    best_i = torch.zeros((n, m), dtype=torch.long, device=Xf.device)

    def merge(a: int, b: int, block: torch.Tensor, offset: int) -> None:
        v, i = torch.topk(block, min(m, block.shape[1]), dim=1, largest=False, sorted=False)
        v = torch.cat([best_v[a:b], v], 1)
        i = torch.cat([best_i[a:b], i + offset], 1)
        v, pos = torch.topk(v, m, dim=1, largest=False, sorted=False)
        best_v[a:b], best_i[a:b] = v, torch.gather(i, 1, pos)

    starts = range(0, n, bs)
    for a in starts:
        b = min(n, a + bs)
        for c in starts:
            if c < a:
                continue
            e = min(n, c + bs)
            base = sq[a:b, None] + sq[None, c:e]
            with _threads(matmul_threads):
                block = torch.addmm(base, Xf[a:b], Xf[c:e].T, beta=1.0, alpha=-2.0)
            if c == a:
                block.fill_diagonal_(float("inf"))
            merge(a, b, block, c)
            if c != a:
                merge(c, e, block.T.contiguous(), a)
    return best_i, best_v


def _candidates_rows(Xc: torch.Tensor, rows: torch.Tensor, m: int, chunk_mb: float,
                     matmul_threads: int) -> torch.Tensor:
    """(len(rows), m) indices of the m nearest other points of the given rows, ranked in float64
    (rounding ~1e-13 of |x|^2: the fallback for rows the float32 ranking could not certify)."""
    n = len(Xc)
    Q = Xc[rows].double()
    sq_q = (Q * Q).sum(1)
    best_v = torch.full((len(rows), m), float("inf"), device=Xc.device, dtype=torch.float64)
    best_i = torch.zeros((len(rows), m), dtype=torch.long, device=Xc.device)
    bs = _block_size(Q, chunk_mb)
    for c in range(0, n, bs):
        e = min(n, c + bs)
        K = Xc[c:e].double()
        with _threads(matmul_threads):
            block = torch.addmm(sq_q[:, None] + (K * K).sum(1)[None], Q, K.T, beta=1.0, alpha=-2.0)
        own = (rows >= c) & (rows < e)
        block[own.nonzero()[:, 0], rows[own] - c] = float("inf")
        v, i = torch.topk(block, min(m, e - c), dim=1, largest=False, sorted=False)
        v, pos = torch.topk(torch.cat([best_v, v], 1), m, dim=1, largest=False, sorted=False)
        best_v, best_i = v, torch.gather(torch.cat([best_i, i + c], 1), 1, pos)
    return best_i


def _refine(X: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances from `rows` to their candidates (norms of differences in X's precision, no
    cancellation), sorted; the k smallest as float64 distances and their indices."""
    n_rows, m = cand.shape
    dim = X.shape[1]
    sub = int(max(1, 2**23 // (X.element_size() * m * dim)))  # ~8 MB gathers stay in cache
    dist = np.empty((n_rows, k), dtype=np.float64)
    idx = np.empty((n_rows, k), dtype=np.int64)
    for s in range(0, n_rows, sub):
        e = min(n_rows, s + sub)
        c = cand[s:e]
        diff = torch.index_select(X, 0, c.reshape(-1)).view(e - s, m, dim)
        diff.sub_(X[rows[s:e], None, :])
        d = torch.linalg.vector_norm(diff, dim=-1).double()
        d, order = torch.sort(d, dim=1, stable=True)
        dist[s:e] = d[:, :k].cpu().numpy()
        idx[s:e] = torch.gather(c, 1, order[:, :k]).cpu().numpy()
    return dist, idx


def _unit_roundoff() -> float:
    """Unit roundoff of float32 matrix products under torch's current precision setting (TF32/bf16 on GPUs)."""
    return {"highest": 2.0**-24, "high": 2.0**-11}.get(torch.get_float32_matmul_precision(), 2.0**-8)


def _uncertified(dist_k: np.ndarray, boundary: torch.Tensor, sq: torch.Tensor, dim: int) -> np.ndarray:
    """Rows whose float32 candidate list might miss a true k-th neighbour.

    A point j outside row i's candidates has computed squared distance >= B_i (the m-th candidate's); the
    rounding error of |c_i|^2 + |c_j|^2 - 2 c_i.c_j is at most e (|c_i|^2 + |c_j|^2) with e = (D + 8) u
    (worst case, not the typical sqrt(D) u). Either |c_j| >= |c_i| + d_k, and then d_ij >= d_k by the
    triangle inequality, or |c_j|^2 < (|c_i| + d_k)^2, and then d_ij^2 >= B_i - e (|c_i|^2 + (|c_i| + d_k)^2).
    The k found neighbours are certainly the k nearest when that lower bound is >= d_k^2.
    """
    e = (dim + 8) * _unit_roundoff()
    sq = sq.double().cpu().numpy()
    bound = boundary.double().cpu().numpy() - e * (sq + (np.sqrt(sq) + dist_k) ** 2)
    return dist_k**2 > bound


def _exact_knn(X: torch.Tensor, k: int, chunk_mb: float,
               matmul_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row of `X`, excluding the row itself.

    On a CPU only the matrix products run multi-threaded. The rest (top-k, gathers, norms) is memory-bound
    and gains little from threads, while on a shared machine every intra-op barrier can wait a whole
    scheduler slice (measured here: 2-3x slower end to end with 2 threads under load).

    Candidates: k + a margin (it absorbs rank swaps from float32 rounding) of the smallest squared
    distances from float32 matrix products on centred data. Distances to the candidates are then
    recomputed as norms of differences in X's own precision (no cancellation), returned as float64.
    Rows where a rounding-error bound cannot rule out a missed neighbour (`_uncertified`; rare: many
    points tied with the k-th neighbour to ~1e-5 of |x|^2) are searched again with float64 products.
    """
    n, dim = X.shape
    m = min(n - 1, k + 4 + k // 8)
    threads = matmul_threads or torch.get_num_threads()
    with _threads(1) if X.device.type == "cpu" else nullcontext():
        Xc = _centred(X)
        Xf = Xc.float()
        cand, cand_v = _candidates(Xf, m, chunk_mb, threads)
        everyone = torch.arange(n, device=X.device)
        dist, idx = _refine(X, everyone, cand, k)
        if m < n - 1:
            bad = _uncertified(dist[:, -1], cand_v.max(1).values, (Xf * Xf).sum(1), dim)
            if bad.any():
                rows = everyone[torch.as_tensor(bad, device=X.device)]
                cand64 = _candidates_rows(Xc, rows, m, chunk_mb, threads)
                dist[bad], idx[bad] = _refine(X, rows, cand64, k)
    return dist, idx


def knn(X, k: int, *, chunk_mb: float = 256.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-nearest-neighbour distances (float64, ascending) and indices, self excluded, chunked."""
    Xt = as_points(X)
    k = _check_int("k", k, 1)
    if k > len(Xt) - 1:
        raise ValueError(f"k = {k} is not allowed: {len(Xt)} points have at most {len(Xt) - 1} neighbours each")
    return _exact_knn(Xt, k, chunk_mb)


def nearest_neighbours(X, k: int, *, duplicates: str = "merge", dup_tol: float = 1e-6,
                       min_points: int | None = None, chunk_mb: float = 256.0) -> Neighbours:
    """Exact kNN after handling (near-)duplicates.

    Points closer than `dup_tol` x (root-mean-square distance of the points to their centroid) count as
    duplicates; chains of such pairs form one group (single linkage). "merge": each group is replaced by
    its first point and the search rerun (until no duplicates remain).
    "skip": all points are kept; estimators then skip the statistics that duplicates make undefined.
    """
    _check_choice("duplicates", duplicates, DUPLICATES)
    k = _check_int("k", k, 1)
    if not (isinstance(dup_tol, (int, float)) and 0 <= dup_tol < 1):
        raise ValueError(f"dup_tol = {dup_tol!r} is not allowed: expected a number in [0, 1)")
    need = k + 1 if min_points is None else max(min_points, k + 1)
    threads = torch.get_num_threads()
    on_gpu = isinstance(X, torch.Tensor) and X.device.type != "cpu"
    with nullcontext() if on_gpu else _threads(1):
        Xt = as_points(X)
        n = len(Xt)
        if n < need:
            raise ValueError(f"Too few points: got {n}, need at least {need} (k = {k} neighbours per point)")
        spread = (Xt - Xt.mean(0, dtype=torch.float64).to(Xt.dtype)).double().square().sum(1).mean().sqrt()
        tol = float(dup_tol * spread.item())
    dist, idx = _exact_knn(Xt, k, chunk_mb, threads)
    close = dist <= tol
    if duplicates == "skip" or not close.any():
        n_dup = int(close[:, 0].sum()) if duplicates == "skip" else 0
        return Neighbours(dist, idx, np.arange(n), n, n_dup, tol)
    kept = np.arange(n)
    while close.any():  # a group of more than k copies can split over two k-neighbour lists: repeat
        rows, cols = np.nonzero(close)
        graph = coo_matrix((np.ones(len(rows)), (rows, idx[rows, cols])), shape=(len(kept),) * 2)
        _, labels = connected_components(graph, directed=False)
        _, first = np.unique(labels, return_index=True)
        kept = kept[np.sort(first)]
        if len(kept) < need:
            raise ValueError(f"Too few distinct points: {n} points hold only {len(kept)} distinct ones "
                             f"(duplicates within {tol:.3g}); need at least {need} (k = {k})")
        dist, idx = _exact_knn(Xt[torch.as_tensor(kept, device=Xt.device)], k, chunk_mb, threads)
        close = dist <= tol
    return Neighbours(dist, idx, kept, n, n - len(kept), tol)


# ----------------------------------------------------------------------------- helpers

def _check_ci(ci, n_boot) -> int:
    if not (isinstance(ci, float) and 0 < ci < 1):
        raise ValueError(f"ci = {ci!r} is not allowed: expected None or a confidence level in (0, 1), e.g. 0.95")
    return _check_int("n_boot", n_boot, 10)


def _resamples(n: int, groups: np.ndarray | None, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of `n_boot` bootstrap resamples: of single rows, or of whole groups (e.g. prompts,
    whose tokens are not independent) when `groups` labels the rows."""
    rng = np.random.default_rng(seed)
    if groups is None:
        for _ in range(n_boot):
            yield rng.integers(0, n, n)
        return
    labels, inverse = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    for _ in range(n_boot):
        yield np.concatenate([members[g] for g in rng.integers(0, len(labels), len(labels))])


def _bootstrap(stat: np.ndarray, estimator: Callable[[np.ndarray], float], ci: float | None,
               n_boot: int, seed: int, groups: np.ndarray | None = None) -> tuple[float, float] | None:
    """Percentile interval of `estimator` over resamples of the per-point statistics (neighbours fixed:
    resampling the points themselves would create duplicates, see `nearest_neighbours`)."""
    if ci is None:
        return None
    n_boot = _check_ci(ci, n_boot)
    reps = np.array([estimator(stat[i]) for i in _resamples(len(stat), groups, n_boot, seed)])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def _groups(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups: expected one label per point ({n}), got shape {g.shape}")
    return g


# ----------------------------------------------------------------------------- TwoNN

def _twonn_from_log_mu(log_mu: np.ndarray, discard_fraction: float, method: str) -> float:
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


@dataclass(frozen=True)
class PointStats:
    """Per-point statistics an estimator pools, the rows of X they belong to, and how to pool them."""

    values: np.ndarray
    rows: np.ndarray  # indices into the original X
    pool: Callable[[np.ndarray], float]
    method: str
    neighbours: Neighbours


def twonn_stats(X, *, discard_fraction: float = 0.1, method: str = "linear", duplicates: str = "merge",
                dup_tol: float = 1e-6, chunk_mb: float = 256.0) -> PointStats:
    """log(r2 / r1) of every usable point (nonzero nearest-neighbour distance) and the TwoNN pooling."""
    _check_choice("method", method, TWONN_METHODS)
    if not (isinstance(discard_fraction, (int, float)) and 0 <= discard_fraction < 1):
        raise ValueError(f"discard_fraction = {discard_fraction!r} is not allowed: expected a number in [0, 1)")
    nb = nearest_neighbours(X, 2, duplicates=duplicates, dup_tol=dup_tol, min_points=3, chunk_mb=chunk_mb)
    r1, r2 = nb.distances[:, 0], nb.distances[:, 1]
    ok = r1 > nb.tol
    log_mu = np.log(r2[ok] / r1[ok])
    if len(log_mu) < 3:
        raise ValueError(f"Too few usable points for TwoNN: {len(log_mu)} of {nb.n_points} have a nonzero "
                         f"nearest-neighbour distance (need at least 3)")
    pool = lambda s: _twonn_from_log_mu(s, discard_fraction, method)  # noqa: E731
    return PointStats(log_mu, nb.kept[ok], pool, f"twonn-{method}", nb)


def _estimate(st: PointStats, ci, n_boot: int, seed: int, groups, stderr: Callable[[float], float],
              undefined: str) -> IDEstimate:
    d = st.pool(st.values)
    if not np.isfinite(d):
        raise ValueError(undefined)
    g = _groups(groups, st.neighbours.n_points)
    interval = _bootstrap(st.values, st.pool, ci, n_boot, seed, None if g is None else g[st.rows])
    return IDEstimate(d, st.method, st.neighbours.n_points, len(st.values), st.neighbours.n_duplicates,
                      interval, stderr(d))


def twonn(X, *, discard_fraction: float = 0.1, method: str = "linear", duplicates: str = "merge",
          dup_tol: float = 1e-6, ci: float | None = None, n_boot: int = 200, seed: int = 0, groups=None,
          chunk_mb: float = 256.0) -> IDEstimate:
    """TwoNN (Facco et al. 2017): mu = r2 / r1 is Pareto(1, d) on a locally uniform d-manifold,
    so -log(1 - F(mu)) = d log mu.

    method "linear": slope through the origin of -log(1 - F_emp(mu)) against log mu, largest
    `discard_fraction` of ratios dropped (Facco's recipe, scikit-dimension's default).
    method "mle": censored maximum likelihood (k - 1) / (sum log mu + censored part).
    `ci`: bootstrap interval over points, or over whole groups when `groups` labels each row of X
    (e.g. the prompt each token came from).
    """
    st = twonn_stats(X, discard_fraction=discard_fraction, method=method, duplicates=duplicates,
                     dup_tol=dup_tol, chunk_mb=chunk_mb)
    n_keep = int(len(st.values) * (1 - discard_fraction))
    return _estimate(st, ci, n_boot, seed, groups, lambda d: d / np.sqrt(max(n_keep - 1, 1)),
                     "TwoNN is undefined here: every point's two nearest neighbours are equidistant")


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
            out[i] = _twonn_from_log_mu(np.log(ri[ok, 1] / ri[ok, 0]), discard_fraction, "linear")
    return out.reshape(lead)


# ----------------------------------------------------------------------------- Levina-Bickel MLE

def _mle_from_inverse(inv: np.ndarray, average: str) -> float:
    if average == "inverse":
        mean = float(inv.mean())
        return 1.0 / mean if mean > 0 else np.inf
    pos = inv[inv > 0]
    return float(np.mean(1.0 / pos)) if len(pos) else np.inf


def mle_stats(X, k: int = 20, *, average: str = "inverse", unbiased: bool = False, duplicates: str = "merge",
              dup_tol: float = 1e-6, chunk_mb: float = 256.0) -> PointStats:
    """1 / m_i = mean_j log(T_k / T_j) of every usable point, and the chosen pooling."""
    _check_choice("average", average, MLE_AVERAGES)
    k = _check_int("k", k, 3 if unbiased else 2)
    nb = nearest_neighbours(X, k, duplicates=duplicates, dup_tol=dup_tol, chunk_mb=chunk_mb)
    ok = nb.distances[:, 0] > nb.tol
    T = nb.distances[ok]
    if len(T) < 2:
        raise ValueError(f"Too few usable points for MLE: {len(T)} of {nb.n_points} have a nonzero "
                         f"nearest-neighbour distance (need at least 2)")
    inv = np.log(T[:, -1:] / T[:, :-1]).sum(1) / (k - 2 if unbiased else k - 1)
    pool = lambda s: _mle_from_inverse(s, average)  # noqa: E731
    return PointStats(inv, nb.kept[ok], pool, f"mle-k{k}", nb)


def mle(X, k: int = 20, *, average: str = "inverse", unbiased: bool = False, duplicates: str = "merge",
        dup_tol: float = 1e-6, ci: float | None = None, n_boot: int = 200, seed: int = 0, groups=None,
        chunk_mb: float = 256.0) -> IDEstimate:
    """Levina-Bickel maximum likelihood with k neighbours.

    Per point, 1/m_i = (1 / (k - 1)) sum_{j<k} log(T_k / T_j) ((k - 2) if `unbiased`).
    average "inverse" (MacKay & Ghahramani): m = 1 / mean_i(1/m_i), the likelihood-consistent pooling
    and scikit-dimension's default; "direct" (Levina & Bickel's paper): m = mean_i(m_i).
    `ci`, `groups`: as in `twonn`.
    """
    st = mle_stats(X, k, average=average, unbiased=unbiased, duplicates=duplicates, dup_tol=dup_tol,
                   chunk_mb=chunk_mb)
    n = len(st.values)
    return _estimate(st, ci, n_boot, seed, groups, lambda d: d / np.sqrt(n * (k - 1)),
                     f"MLE is undefined here: every point's {k} nearest neighbours are equidistant")


# ----------------------------------------------------------------------------- comparing two clouds

STATS = {"twonn": twonn_stats, "mle": mle_stats}


@dataclass(frozen=True)
class IDDifference:
    """estimate(B) - estimate(A), with a paired bootstrap interval when both clouds share group labels."""

    difference: float
    ci: tuple[float, float]
    a: float
    b: float
    method: str


def id_difference(X_a, X_b, *, method: str = "twonn", groups_a=None, groups_b=None, ci: float = 0.9,
                  n_boot: int = 200, seed: int = 0, **kwargs) -> IDDifference:
    """How much the ID of cloud B exceeds that of cloud A, with a bootstrap interval.

    With `groups_a` and `groups_b` (e.g. the prompt of each token, the same prompts in both clouds), each
    resample draws the same groups for A and B: a paired bootstrap. Without them, points are resampled
    independently. Neighbours are fixed; only the per-point statistics are resampled.
    """
    _check_choice("method", method, tuple(STATS))
    n_boot = _check_ci(ci, n_boot)
    sa, sb = STATS[method](X_a, **kwargs), STATS[method](X_b, **kwargs)
    d_a, d_b = sa.pool(sa.values), sb.pool(sb.values)
    if (groups_a is None) != (groups_b is None):
        raise ValueError("groups_a, groups_b: give both (a paired bootstrap) or neither")
    if groups_a is None:
        reps = [sb.pool(sb.values[i]) - sa.pool(sa.values[j]) for i, j in
                zip(_resamples(len(sb.values), None, n_boot, seed), _resamples(len(sa.values), None, n_boot, seed + 1))]
    else:
        ga = _groups(groups_a, sa.neighbours.n_points)[sa.rows]
        gb = _groups(groups_b, sb.neighbours.n_points)[sb.rows]
        labels = np.union1d(ga, gb)
        rng = np.random.default_rng(seed)
        by_a = {g: np.flatnonzero(ga == g) for g in labels}
        by_b = {g: np.flatnonzero(gb == g) for g in labels}
        reps = []
        for _ in range(n_boot):
            pick = labels[rng.integers(0, len(labels), len(labels))]
            ia = np.concatenate([by_a[g] for g in pick])
            ib = np.concatenate([by_b[g] for g in pick])
            reps.append(sb.pool(sb.values[ib]) - sa.pool(sa.values[ia]))
    reps = np.asarray(reps)
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return IDDifference(d_b - d_a, (float(lo), float(hi)), d_a, d_b, sa.method)


def per_layer(clouds, method: str = "twonn", *, progress: bool = False, **kwargs):
    """One estimate per layer of an (n_layers, n_points, D) stack (e.g. MLP inputs of many tokens), as a
    DataFrame: layer, method, estimate, ci_low, ci_high, n_points, n_used, n_duplicates."""
    import pandas as pd

    fns = {"twonn": twonn, "mle": mle, "gride": gride}
    _check_choice("method", method, tuple(fns))
    if isinstance(clouds, torch.Tensor):
        clouds = clouds.detach()
    if getattr(clouds, "ndim", None) != 3:
        raise ValueError(f"clouds: expected (n_layers, n_points, D), got shape {getattr(clouds, 'shape', None)}")
    layers = range(clouds.shape[0])
    if progress:
        from tqdm.auto import tqdm

        layers = tqdm(layers, desc=f"{method} per layer")
    rows = []
    for layer in layers:
        e = fns[method](clouds[layer], **kwargs)
        lo, hi = e.ci if e.ci else (np.nan, np.nan)
        rows.append({"layer": layer, "method": e.method, "estimate": e.estimate, "ci_low": lo, "ci_high": hi,
                     "n_points": e.n_points, "n_used": e.n_used, "n_duplicates": e.n_duplicates})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- GRIDE (scale-aware)

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
    n1 = _check_int("n1", n1, 1)
    n2 = 2 * n1 if n2 is None else _check_int("n2", n2, n1 + 1)
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
    max_rank = _check_int("max_rank", max_rank, 2)
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


# ----------------------------------------------------------------------------- linear notions

def pca_spectrum(X) -> np.ndarray:
    """Fractions of variance along the principal axes, descending (float64; n x n Gram when n < D)."""
    Xt = as_points(X).double()
    if len(Xt) < 2:
        raise ValueError(f"Too few points: got {len(Xt)}, PCA needs at least 2")
    Xc = Xt - Xt.mean(0)
    gram = Xc @ Xc.T if len(Xc) < Xc.shape[1] else Xc.T @ Xc
    # LAPACK's eigensolver barely gains from a second CPU thread and loses 10x+ when the cores are busy
    with _threads(1) if gram.device.type == "cpu" else nullcontext():
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


# ----------------------------------------------------------------------------- test manifolds

def manifold(name: str, n: int, d: int = 2, D: int = 3, *, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """n points on a d-dimensional manifold in R^D whose dimension we know, randomly rotated into R^D.

    "subspace": Gaussian on a random d-dim linear subspace. "sphere": uniform on S^d (needs D > d).
    "swiss_roll": the 2-d rolled sheet (d must be 2, D >= 3). "curved": sin of random affine features of
    a uniform d-cube, a smooth curved d-manifold that fills many ambient directions. `noise` adds
    isotropic Gaussian noise of that standard deviation in all D directions.
    """
    _check_choice("name", name, MANIFOLDS)
    n, d, D = _check_int("n", n, 1), _check_int("d", d, 1), _check_int("D", D, 1)
    rng = np.random.default_rng(seed)
    if name == "subspace":
        if d > D:
            raise ValueError(f"d = {d} is not allowed: a subspace of R^{D} has dimension <= {D}")
        X = rng.standard_normal((n, d)) @ np.linalg.qr(rng.standard_normal((D, d)))[0].T
    elif name == "curved":
        z = rng.uniform(-1, 1, (n, d))
        X = np.sin(z @ rng.standard_normal((d, D)) + rng.uniform(0, 2 * np.pi, D))
    else:
        if name == "swiss_roll" and d != 2:
            raise ValueError(f"d = {d} is not allowed for the swiss roll: it is 2-dimensional")
        if D < d + 1:
            raise ValueError(f"D = {D} is not allowed: {name} with d = {d} needs D >= {d + 1}")
        if name == "sphere":
            Y = rng.standard_normal((n, d + 1))
            Y /= np.linalg.norm(Y, axis=1, keepdims=True)
        else:
            t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
            Y = np.column_stack([t * np.cos(t), 21 * rng.uniform(size=n), t * np.sin(t)])
        X = Y @ np.linalg.qr(rng.standard_normal((D, Y.shape[1])))[0].T
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return X


# ----------------------------------------------------------------------------- layer profiles and small clouds

def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((rx @ rx) * (ry @ ry)))
    return float(rx @ ry) / denom if denom > 0 else np.nan


@dataclass(frozen=True)
class LayerCorrelation:
    """Spearman's rho across layers between the change (B - A) of a geometric ID and of a per-group quantity,
    with a percentile interval from a paired bootstrap over groups that recomputes every layer's changes."""

    rho: float
    ci: tuple[float, float]
    id_change: np.ndarray  # (n_layers,) ID(B) - ID(A) on the full sample
    other_change: np.ndarray  # (n_layers,) mean over groups of other_b - other_a
    replicates: np.ndarray  # rho of each resample (finite ones)


def layer_change_correlation(clouds_a, clouds_b, other_a, other_b, groups, *, method: str = "twonn",
                             ci: float = 0.9, n_boot: int = 200, seed: int = 0, **kwargs) -> LayerCorrelation:
    """Across layers, does the change of the geometric ID follow the change of another quantity?

    clouds_a, clouds_b: (n_layers, n_points, D) stacks (conditions A and B, e.g. 0 and 10 shots) whose rows
    belong to the groups `groups` (one label per point, the same labelling in both, e.g. the prompt).
    other_a, other_b: (n_groups, n_layers) per-group values of the other quantity (e.g. an attention count
    per prompt and layer), rows in the order of np.unique(groups).

    The layers of one model are not independent samples (neighbouring layers share most of their residual
    stream), so a Fisher-z interval with n = n_layers is not honest. Here the random unit is the group: each
    resample draws groups with replacement, the same draw for every layer and both conditions, re-pools each
    layer's per-point ID statistics (neighbours fixed, as in `id_difference`) and re-averages the other
    quantity, and recomputes rho over the whole layer profile. The interval is about *these* layers of
    *this* model under resampling of prompts; it says nothing about layers as draws from a population.
    """
    _check_choice("method", method, tuple(STATS))
    n_boot = _check_ci(ci, n_boot)
    oa, ob = np.asarray(other_a, dtype=np.float64), np.asarray(other_b, dtype=np.float64)
    n_layers = len(clouds_a)
    if len(clouds_b) != n_layers or oa.shape != ob.shape or oa.ndim != 2 or oa.shape[1] != n_layers:
        raise ValueError(f"clouds_a, clouds_b, other_a, other_b: expected {n_layers} layers in each and "
                         f"other_* of shape (n_groups, {n_layers}); got {len(clouds_b)} layers and shapes "
                         f"{oa.shape}, {ob.shape}")
    labels = np.unique(np.asarray(groups))
    if len(labels) != len(oa):
        raise ValueError(f"groups: {len(labels)} distinct labels but other_a has {len(oa)} rows")
    stats_ab, members = [], []
    for layer in range(n_layers):
        pair = []
        for cloud in (clouds_a[layer], clouds_b[layer]):
            st = STATS[method](cloud, **kwargs)
            g = _groups(groups, st.neighbours.n_points)[st.rows]
            pair.append((st, [np.flatnonzero(g == lab) for lab in labels]))
        stats_ab.append(pair)

    def profile(pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d_id = np.empty(n_layers)
        for layer, ((sa, ma), (sb, mb)) in enumerate(stats_ab):
            ia = np.concatenate([ma[g] for g in pick])
            ib = np.concatenate([mb[g] for g in pick])
            d_id[layer] = sb.pool(sb.values[ib]) - sa.pool(sa.values[ia])
        return d_id, (ob[pick] - oa[pick]).mean(0)

    full = np.arange(len(labels))
    id_change, other_change = profile(full)
    rho = _spearman(id_change, other_change)
    rng = np.random.default_rng(seed)
    reps = np.array([_spearman(*profile(rng.integers(0, len(labels), len(labels)))) for _ in range(n_boot)])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return LayerCorrelation(rho, (float(lo), float(hi)), id_change, other_change, reps)


def synthetic_validation(n: int, D: int, dims=(5, 10, 20), *, names=("subspace", "curved"), noise: float = 0.0,
                         seeds=range(5), k: int = 10):
    """TwoNN and MLE (k neighbours) on `n` points of known-dimension manifolds (`manifold`) in R^D, one row per
    (manifold, d, seed): how far estimates on clouds of that size can be trusted. Seeded, float64.

    Returns a DataFrame with columns manifold, d, seed, TwoNN, MLE.
    """
    import pandas as pd

    n, D, k = _check_int("n", n, 3), _check_int("D", D, 1), _check_int("k", k, 2)
    rows = []
    for name in names:
        for d in dims:
            for s in seeds:
                X = manifold(name, n, d, D, noise=noise, seed=int(s))
                rows.append({"manifold": name, "d": int(d), "seed": int(s), "TwoNN": twonn(X).estimate,
                             f"MLE k={k}": mle(X, k).estimate})
    return pd.DataFrame(rows)
