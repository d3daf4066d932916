"""Comparing clouds: the ID difference of two clouds with a (paired) bootstrap interval, one estimate per
layer, and the across-layer correlation of ID changes with another per-group quantity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from icl_geometry.core.checks import check_choice
from icl_geometry.core.intrinsic_dim.estimators import STATS, check_ci, check_groups, mle, twonn
from icl_geometry.core.intrinsic_dim.gride import gride
from icl_geometry.core.stats import iter_cluster_resamples


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
    check_choice("method", method, tuple(STATS))
    n_boot = check_ci(ci, n_boot)
    sa, sb = STATS[method](X_a, **kwargs), STATS[method](X_b, **kwargs)
    d_a, d_b = sa.pool(sa.values), sb.pool(sb.values)
    if (groups_a is None) != (groups_b is None):
        raise ValueError("groups_a, groups_b: give both (a paired bootstrap) or neither")
    if groups_a is None:
        resamples_b = iter_cluster_resamples(len(sb.values), n_boot, seed)
        resamples_a = iter_cluster_resamples(len(sa.values), n_boot, seed + 1)
        reps = [sb.pool(sb.values[i]) - sa.pool(sa.values[j]) for i, j in zip(resamples_b, resamples_a)]
    else:
        ga = check_groups(groups_a, sa.neighbours.n_points)[sa.rows]
        gb = check_groups(groups_b, sb.neighbours.n_points)[sb.rows]
        labels = np.union1d(ga, gb)
        by_a = {g: np.flatnonzero(ga == g) for g in labels}
        by_b = {g: np.flatnonzero(gb == g) for g in labels}
        reps = []
        for draw in iter_cluster_resamples(len(labels), n_boot, seed):  # the same groups for A and B
            pick = labels[draw]
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
    check_choice("method", method, tuple(fns))
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
    check_choice("method", method, tuple(STATS))
    n_boot = check_ci(ci, n_boot)
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
            g = check_groups(groups, st.neighbours.n_points)[st.rows]
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
    reps = np.array([_spearman(*profile(draw)) for draw in iter_cluster_resamples(len(labels), n_boot, seed)])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return LayerCorrelation(rho, (float(lo), float(hi)), id_change, other_change, reps)
