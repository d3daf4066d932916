"""A cloud's ID estimate with blocks of groups deleted, the neighbours searched again among the points that remain:
the replicates of the grouped jackknife that `estimators` (`interval="jackknife"`) and `compare` build intervals
from.
"""

from __future__ import annotations

import numpy as np
import torch

from icl_geometry.core.checks import check_int
from icl_geometry.core.intrinsic_dim.neighbours import as_points, knn, nearest_neighbours
from icl_geometry.core.intrinsic_dim.pointstats import STATS, mle_values, twonn_values
from icl_geometry.core.jackknife import jackknife_blocks, jackknife_t


N_BLOCKS = 20  # blocks of groups (prompts) a jackknife deletes one at a time (fewer groups: one group per block)


def _values(estimator: str, distances: np.ndarray, tol: float, kwargs: dict) -> np.ndarray:
    """The per-point statistics `STATS[estimator]` computes, from each point's ascending neighbour distances."""
    if estimator == "twonn":
        return twonn_values(distances[:, :2], tol)[0]
    return mle_values(distances[:, :kwargs.get("k", 20)], tol, kwargs.get("unbiased", False))[0]


def deleted_estimates(X, estimator: str, groups: np.ndarray, blocks: list[np.ndarray],
                      **kwargs) -> tuple[float, np.ndarray, str]:
    """The cloud's ID estimate by `estimator` ('twonn' or 'mle': exactly `twonn` / `mle` of X with `kwargs`) and,
    for each block of groups, the estimate of the cloud without those groups' points, their neighbours
    recomputed among the points that remain.

    `groups`: one integer group index per point of X (e.g. its prompt); `blocks`: arrays of group indices.
    One exact search of k + (the most points a block deletes) neighbours serves the estimate and every
    deletion: a remaining point's k nearest remaining neighbours are the first k of its list that were not
    deleted. Duplicates are handled once, on the whole cloud (as the estimate does). Returns (estimate, one
    estimate per block, the estimator's name)."""
    k = 2 if estimator == "twonn" else check_int("k", kwargs.get("k", 20), 2)
    g_all = np.asarray(groups)
    n = len(g_all)
    most = max(int(np.isin(g_all, block).sum()) for block in blocks)
    K = min(n - 1, k + most)
    search = {name: kwargs[name] for name in ("duplicates", "dup_tol", "chunk_mb") if name in kwargs}
    nb = nearest_neighbours(X, K, min_points=3, **search)
    if nb.n_duplicates and kwargs.get("duplicates", "merge") == "merge":
        # merged copies: the estimate's own (k-neighbour) merge decides which copies stay, then the kept points
        # are searched again for k + most neighbours
        st = STATS[estimator](X, **kwargs)
        nb = st.neighbours
        Xt = as_points(X)
        dist, idx = knn(Xt[torch.as_tensor(nb.kept, device=Xt.device)], min(len(nb.kept) - 1, K), **{
            name: v for name, v in search.items() if name == "chunk_mb"})
    else:
        st = STATS[estimator](X, **kwargs, neighbours=nb)
        dist, idx = nb.distances, nb.indices
    full = float(st.pool(st.values))
    g = g_all[nb.kept]  # the group of each kept point
    reps = np.empty(len(blocks))
    for b, block in enumerate(blocks):
        dead = np.isin(g, block)
        alive = ~dead
        if alive.sum() <= k:
            raise ValueError(f"jackknife: deleting a block leaves {int(alive.sum())} points, too few for k = {k}")
        valid = ~dead[idx[alive]]  # which of each remaining point's candidates remain
        first = np.argsort(~valid, axis=1, kind="stable")[:, :k]  # positions of its k nearest remaining ones
        values = _values(estimator, np.take_along_axis(dist[alive], first, axis=1), nb.tol, kwargs)
        reps[b] = st.pool(values)
    return full, reps, st.method


def jackknife_ci(X, estimator: str, ci: float, groups: np.ndarray | None, n: int, kwargs: dict) -> tuple[float, float]:
    """The grouped jackknife's t interval of one cloud's estimate (blocks of groups, or of points in their
    order; neighbours recomputed without each block: `deleted_estimates`)."""
    labels, index = np.unique(np.arange(n) if groups is None else groups, return_inverse=True)
    blocks = jackknife_blocks(len(labels), N_BLOCKS)
    full, reps, _ = deleted_estimates(X, estimator, index.ravel(), blocks, **kwargs)
    return jackknife_t(full, reps, ci)
