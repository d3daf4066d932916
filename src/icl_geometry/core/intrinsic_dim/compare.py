"""Comparing clouds: the ID difference of two clouds with a (paired) grouped-jackknife interval, one estimate
per layer, and the across-layer correlation of ID changes with another per-group quantity.

Intervals here come from a grouped jackknife that recomputes the nearest neighbours without each deleted block
of groups (prompts): a point's statistic depends on which other points are its neighbours, and those come from
other prompts too, so resampling the per-point statistics with the neighbour graph frozen (the bootstrap used
before) leaves out part of the estimate's variance and covered a 90% target only 69-87% of the time on clouds
the size of chapter 3's (benchmarks/coverage_table.py). The jackknife's variance is biased upwards for any
symmetric statistic of independent units (Efron-Stein), and its t interval covers at those sizes
(tests/test_coverage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from icl_geometry.core.checks import check_choice
from icl_geometry.core.intrinsic_dim.deletions import N_BLOCKS, deleted_estimates
from icl_geometry.core.intrinsic_dim.estimators import check_groups, mle, twonn
from icl_geometry.core.intrinsic_dim.gride import gride
from icl_geometry.core.intrinsic_dim.neighbours import as_points
from icl_geometry.core.intrinsic_dim.pointstats import STATS
from icl_geometry.core.jackknife import jackknife_blocks, jackknife_se, jackknife_t
from icl_geometry.core.stats import t_bounds


def _check_level(ci) -> float:
    if not (isinstance(ci, float) and 0 < ci < 1):
        raise ValueError(f"ci = {ci!r} is not allowed: expected a confidence level in (0, 1), e.g. 0.9")
    return ci


@dataclass(frozen=True)
class IDDifference:
    """estimate(B) - estimate(A), with a grouped-jackknife t interval (paired when both clouds share group
    labels), its standard error and the number of deleted blocks."""

    difference: float
    ci: tuple[float, float]
    a: float
    b: float
    method: str
    se: float = float("nan")
    n_blocks: int = 0


def _group_index(groups, n: int) -> tuple[np.ndarray, np.ndarray]:
    labels, inverse = np.unique(check_groups(groups, n), return_inverse=True)
    return labels, inverse.ravel()


def id_difference(X_a, X_b, *, method: str = "twonn", groups_a=None, groups_b=None, ci: float = 0.9,
                  n_blocks: int = N_BLOCKS, **kwargs) -> IDDifference:
    """How much the ID of cloud B exceeds that of cloud A, with a grouped-jackknife t interval.

    With `groups_a` and `groups_b` (e.g. the prompt of each token, the same prompts in both clouds), the same
    block of groups is deleted from A and from B (a paired jackknife; `n_blocks` blocks, t with blocks - 1
    degrees of freedom). Without them, each cloud's points are deleted in `n_blocks` contiguous blocks of its
    own (in the points' order) and the two standard errors combine (Welch's degrees of freedom). Either way the
    neighbours are recomputed without the deleted points (`deleted_estimates`).
    """
    check_choice("method", method, tuple(STATS))
    ci = _check_level(ci)
    if (groups_a is None) != (groups_b is None):
        raise ValueError("groups_a, groups_b: give both (a paired jackknife) or neither")
    n_a, n_b = len(as_points(X_a, "X_a")), len(as_points(X_b, "X_b"))
    if groups_a is None:
        blocks_a, blocks_b = jackknife_blocks(n_a, n_blocks), jackknife_blocks(n_b, n_blocks)
        d_a, reps_a, name = deleted_estimates(X_a, method, np.arange(n_a), blocks_a, **kwargs)
        d_b, reps_b, _ = deleted_estimates(X_b, method, np.arange(n_b), blocks_b, **kwargs)
        se_a, se_b = jackknife_se(reps_a), jackknife_se(reps_b)
        se = float(np.hypot(se_a, se_b))
        df = (se**4 / (se_a**4 / (len(blocks_a) - 1) + se_b**4 / (len(blocks_b) - 1)) if se > 0
              else len(blocks_a) + len(blocks_b) - 2)
        interval = t_bounds(d_b - d_a, se, df, ci)
        return IDDifference(d_b - d_a, interval, d_a, d_b, name, se, len(blocks_a))
    la, ia = _group_index(groups_a, n_a)
    lb, ib = _group_index(groups_b, n_b)
    labels = np.union1d(la, lb)
    blocks = jackknife_blocks(len(labels), n_blocks)
    d_a, reps_a, name = deleted_estimates(X_a, method, np.searchsorted(labels, la)[ia], blocks, **kwargs)
    d_b, reps_b, _ = deleted_estimates(X_b, method, np.searchsorted(labels, lb)[ib], blocks, **kwargs)
    reps = reps_b - reps_a
    interval = jackknife_t(d_b - d_a, reps, ci)
    return IDDifference(d_b - d_a, interval, d_a, d_b, name, jackknife_se(reps), len(blocks))


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
class LayerIDChanges:
    """Every layer's ID change (B - A) on the full sample and without each deleted block of groups: what
    `layer_change_correlation` correlates with another quantity (computed once, reusable for several)."""

    labels: np.ndarray  # the distinct group labels, sorted
    blocks: list  # arrays of indices into `labels`, deleted one block at a time
    change: np.ndarray  # (n_layers,)
    replicates: np.ndarray  # (n_blocks, n_layers)


def layer_id_changes(clouds_a, clouds_b, groups, *, method: str = "twonn", n_blocks: int = N_BLOCKS,
                     **kwargs) -> LayerIDChanges:
    """The ID change of every layer of two (n_layers, n_points, D) stacks whose points belong to `groups`, on
    the full sample and without each block of groups (neighbours recomputed, `deleted_estimates`)."""
    check_choice("method", method, tuple(STATS))
    n_layers = len(clouds_a)
    if len(clouds_b) != n_layers:
        raise ValueError(f"clouds_a, clouds_b: expected the same number of layers, got {n_layers} and {len(clouds_b)}")
    labels, index = _group_index(groups, len(groups))
    blocks = jackknife_blocks(len(labels), n_blocks)
    change, reps = np.empty(n_layers), np.empty((len(blocks), n_layers))
    for layer in range(n_layers):
        a, reps_a, _ = deleted_estimates(clouds_a[layer], method, index, blocks, **kwargs)
        b, reps_b, _ = deleted_estimates(clouds_b[layer], method, index, blocks, **kwargs)
        change[layer], reps[:, layer] = b - a, reps_b - reps_a
    return LayerIDChanges(labels, blocks, change, reps)


@dataclass(frozen=True)
class LayerCorrelation:
    """Spearman's rho across layers between the change (B - A) of a geometric ID and of a per-group quantity,
    with a grouped-jackknife t interval over groups (Fisher scale) that recomputes every layer's changes, and
    their neighbours, without each deleted block."""

    rho: float
    ci: tuple[float, float]
    id_change: np.ndarray  # (n_layers,) ID(B) - ID(A) on the full sample
    other_change: np.ndarray  # (n_layers,) mean over groups of other_b - other_a
    replicates: np.ndarray  # rho without each block of groups


def layer_change_correlation(clouds_a, clouds_b, other_a, other_b, groups, *, method: str = "twonn",
                             ci: float = 0.9, n_blocks: int = N_BLOCKS, changes: LayerIDChanges | None = None,
                             **kwargs) -> LayerCorrelation:
    """Across layers, does the change of the geometric ID follow the change of another quantity?

    clouds_a, clouds_b: (n_layers, n_points, D) stacks (conditions A and B, e.g. 0 and 10 shots) whose rows
    belong to the groups `groups` (one label per point, the same labelling in both, e.g. the prompt).
    other_a, other_b: (n_groups, n_layers) per-group values of the other quantity (e.g. an attention count
    per prompt and layer), rows in the order of np.unique(groups). `changes`: the clouds' `layer_id_changes`,
    when already computed (several quantities against the same clouds).

    The layers of one model are not independent samples (neighbouring layers share most of their residual
    stream), so a Fisher-z interval with n = n_layers is not honest. Here the random unit is the group: the
    same block of groups is deleted from every layer and both conditions, each layer's ID is re-estimated
    on the remaining points (neighbours recomputed, `deleted_estimates`) and the other quantity re-averaged,
    and rho recomputed over the whole layer profile; the interval is the jackknife's t interval on Fisher's
    z scale. It is about *these* layers of *this* model under resampling of prompts; it says nothing about
    layers as draws from a population.
    """
    check_choice("method", method, tuple(STATS))
    ci = _check_level(ci)
    oa, ob = np.asarray(other_a, dtype=np.float64), np.asarray(other_b, dtype=np.float64)
    n_layers = len(clouds_a)
    if len(clouds_b) != n_layers or oa.shape != ob.shape or oa.ndim != 2 or oa.shape[1] != n_layers:
        raise ValueError(f"clouds_a, clouds_b, other_a, other_b: expected {n_layers} layers in each and "
                         f"other_* of shape (n_groups, {n_layers}); got {len(clouds_b)} layers and shapes "
                         f"{oa.shape}, {ob.shape}")
    labels = np.unique(np.asarray(groups))
    if len(labels) != len(oa):
        raise ValueError(f"groups: {len(labels)} distinct labels but other_a has {len(oa)} rows")
    if changes is None:
        changes = layer_id_changes(clouds_a, clouds_b, groups, method=method, n_blocks=n_blocks, **kwargs)
    diff = ob - oa
    other_change = diff.mean(0)
    rho = _spearman(changes.change, other_change)
    reps = np.array([_spearman(changes.replicates[j], np.delete(diff, block, axis=0).mean(0))
                     for j, block in enumerate(changes.blocks)])
    if not (np.isfinite(rho) and np.all(np.isfinite(reps))):
        return LayerCorrelation(rho, (np.nan, np.nan), changes.change, other_change, reps)
    return LayerCorrelation(rho, jackknife_t(rho, reps, ci, scale="fisher"), changes.change, other_change, reps)
