"""The one cluster resampler: bootstrap draws of whole groups of rows, at one level (items) or two (families,
then queries within each drawn family), and the hierarchical interval built from the two-level draws.

Observations that share an item (the k-shot prompts of one question, the layers of one prompt) are not
independent, so every bootstrap in the package draws whole groups with replacement through `cluster_resamples`
(`iter_cluster_resamples` yields the same draws lazily). Queries that share a family (its templates, its label
words, its demonstration pool) are not independent either: with `within`, a resample first draws families with
replacement, then, inside each drawn family, its units (queries) with replacement (the two-stage bootstrap of
Davison & Hinkley 1997, sec. 3.8). `hierarchical_interval` turns those draws into an interval for a statistic.
Pure numpy/scipy; `stats` re-exports the resampler under its old names.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from icl_geometry.core.checks import check_choice

HIERARCHICAL_INTERVALS = ("t", "percentile")


def cluster_resamples(groups: Sequence[Any] | int, n_boot: int, seed: int = 0,
                      within: Sequence[Any] | None = None) -> list[np.ndarray]:
    """Row indices of `n_boot` resamples that draw whole groups with replacement.

    `groups`: one label per row, or an int n for n independent rows (each row its own group). `within`: a
    second label per row (e.g. the query inside a family): each resample then draws groups, and inside each
    drawn group its units (rows sharing a `within` label) with replacement (see `iter_cluster_resamples`)."""
    return list(iter_cluster_resamples(groups, n_boot, seed, within))


def _members(labels: np.ndarray) -> tuple[int, list[np.ndarray]]:
    """(number of distinct labels, the row indices of each label in sorted label order, increasing)."""
    uniq, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")  # rows grouped by label, increasing within each group
    return len(uniq), np.split(order, np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1])


def iter_cluster_resamples(groups: Sequence[Any] | int, n_boot: int, seed: int = 0,
                           within: Sequence[Any] | None = None) -> Iterator[np.ndarray]:
    """`cluster_resamples` one resample at a time (the same draws; memory for one resample, not n_boot).

    One level (`within=None`): each resample is one call rng.integers(0, n_groups, n_groups) of numpy's default
    generator seeded with `seed`, the drawn groups' rows concatenated (each group's rows in increasing order).
    Without labels (an int n) every group is one row, so a resample is the drawn row indices themselves.

    Two levels (`within` given, one label per row): units are the rows sharing a (group, within) pair. Each
    resample is one call rng.integers(0, G, G) for the groups (in sorted label order), then, for each drawn
    group in turn, one call rng.integers(0, m, m) for its m units (in sorted `within` order); the drawn units'
    rows are concatenated (a group drawn twice has its units drawn afresh each time). The draws depend only on
    the labels, n_boot and seed, so two statistics (two models asked the same queries) resampled with the same
    labels and seed pair up draw by draw."""
    if within is None:
        yield from _one_level(groups, n_boot, seed)
        return
    g = np.arange(groups) if isinstance(groups, (int, np.integer)) else np.asarray(groups)
    w = np.asarray(within)
    if g.ndim != 1 or w.shape != g.shape:
        raise ValueError(f"cluster_resamples: groups and within need one label per row, got {g.shape} and {w.shape}")
    n_groups, rows_of_group = _members(g)
    units = []  # per group: the row indices of each of its units
    for rows in rows_of_group:
        _, unit_rows = _members(w[rows])
        units.append([rows[u] for u in unit_rows])
    single = all(len(u) == 1 for per in units for u in per)
    flat = [np.concatenate(per) for per in units] if single else None
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        pieces = []
        for f in rng.integers(0, n_groups, n_groups):
            m = len(units[f])
            draw = rng.integers(0, m, m)
            pieces.append(flat[f][draw] if single else np.concatenate([units[f][u] for u in draw]))
        yield np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def _one_level(groups: Sequence[Any] | int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    groups = np.arange(groups) if isinstance(groups, (int, np.integer)) else np.asarray(groups)
    labels, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    rng = np.random.default_rng(seed)
    if 0 < len(labels) == len(inverse):  # every group a single row: index instead of concatenating n pieces
        for _ in range(n_boot):
            yield order[rng.integers(0, len(labels), len(labels))]
        return
    members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    for _ in range(n_boot):
        yield np.concatenate([members[g] for g in rng.integers(0, len(labels), len(labels))])


def hierarchical_bootstrap(values: Any, statistic: Callable[[np.ndarray], float] | None, groups: Sequence[Any],
                           within: Sequence[Any], n_boot: int = 1000, seed: int = 0) -> tuple[float, np.ndarray]:
    """A statistic of `values` (rows; default the mean over axis 0) and its `n_boot` two-level bootstrap
    replicates (families, then queries within each drawn family: `iter_cluster_resamples(groups, ..., within)`).
    Replicates that are not finite (a resample where the statistic is undefined) are kept as NaN."""
    x = np.asarray(values, dtype=float)
    g = np.asarray(groups)
    if x.ndim == 0 or len(x) != len(g):
        raise ValueError(f"hierarchical_bootstrap: {len(np.atleast_1d(x))} rows but {len(g)} group labels")
    stat = statistic or (lambda a: float(a.mean()))
    boots = np.array([stat(x[rows]) for rows in iter_cluster_resamples(g, n_boot, seed, within)], dtype=float)
    return float(stat(x)), boots


def hierarchical_interval(values: Any, statistic: Callable[[np.ndarray], float] | None = None,
                          groups: Sequence[Any] = (), within: Sequence[Any] = (), n_boot: int = 1000,
                          level: float = 0.9, seed: int = 0,
                          interval: str = "t") -> tuple[float, tuple[float, float]]:
    """A statistic of `values` and its interval from the two-level bootstrap (`hierarchical_bootstrap`): whole
    families (`groups`) are drawn with replacement, then the queries (`within`) of each drawn family.

    `interval='t'` (the default): estimate -/+ t_{G-1} x the bootstrap standard deviation, G the number of
    families. With 5-8 families a percentile interval is too narrow when families differ (the bootstrap's
    spread reaches only about sqrt((G - 1) / G) of the between-family part, and a normal quantile stands in
    for Student's with G - 1 degrees of freedom); resampling the queries too puts their variance in twice,
    which keeps the t interval at or above its level when families differ little. `interval='percentile'`:
    the bootstrap's central `level` quantiles, for comparison (tests/test_coverage.py measures both).
    NaN replicates are dropped; NaN interval when fewer than 2 families or 2 finite replicates."""
    check_choice("interval", interval, HIERARCHICAL_INTERVALS)
    if not 0 < level < 1:
        raise ValueError(f"hierarchical_interval: level = {level!r} is not allowed: expected a number in (0, 1)")
    value, boots = hierarchical_bootstrap(values, statistic, groups, within, n_boot, seed)
    boots = boots[np.isfinite(boots)]
    n_groups = len(np.unique(np.asarray(groups)))
    if n_groups < 2 or len(boots) < 2:
        return value, (math.nan, math.nan)
    if interval == "percentile":
        lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
        return value, (float(lo), float(hi))
    from scipy import stats as st

    half = float(st.t.ppf(0.5 + level / 2, n_groups - 1)) * float(boots.std(ddof=1))
    return value, (value - half, value + half)
