"""Exact k nearest neighbours of a point cloud, chunked, with (near-)duplicates merged or flagged.

Candidate neighbours come from float32 matrix products on centred data (the speed); their distances are
recomputed as norms of differences (the accuracy: the Gram trick cancels catastrophically for close
points, and distance ratios of close points are what the estimators read). A worst-case rounding bound
certifies, row by row, that the candidates contain the true k nearest; rows it cannot certify are
searched again in float64. Memory stays O(chunk x n), never n x n.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from icl_geometry.core.checks import check_choice, check_int

DUPLICATES = ("merge", "skip")


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


def _centred(X: torch.Tensor) -> torch.Tensor:
    """Centred copy in X's dtype: centring shrinks |x|^2, the size of the Gram trick's rounding error."""
    return X - X.mean(0, dtype=torch.float64).to(X.dtype)


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
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
            with torch_threads(matmul_threads):
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
        with torch_threads(matmul_threads):
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
    with torch_threads(1) if X.device.type == "cpu" else nullcontext():
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
    k = check_int("k", k, 1)
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
    check_choice("duplicates", duplicates, DUPLICATES)
    k = check_int("k", k, 1)
    if not (isinstance(dup_tol, (int, float)) and 0 <= dup_tol < 1):
        raise ValueError(f"dup_tol = {dup_tol!r} is not allowed: expected a number in [0, 1)")
    need = k + 1 if min_points is None else max(min_points, k + 1)
    threads = torch.get_num_threads()
    on_gpu = isinstance(X, torch.Tensor) and X.device.type != "cpu"
    with nullcontext() if on_gpu else torch_threads(1):
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
