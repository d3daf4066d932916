"""The one cluster resampler (`core.resampling`): one level keeps its draws (recorded verdicts re-judge with
the same numbers), two levels draw families then queries within each drawn family (fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from icl_geometry.core import resampling, stats


def _old_draws(groups, n_boot, seed):
    """The one-level resampler as it was in core/stats.py (before the move): the reference draws."""
    groups = np.arange(groups) if isinstance(groups, int) else np.asarray(groups)
    labels, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    rng = np.random.default_rng(seed)
    if len(labels) == len(inverse):
        return [order[rng.integers(0, len(labels), len(labels))] for _ in range(n_boot)]
    members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    return [np.concatenate([members[g] for g in rng.integers(0, len(labels), len(labels))]) for _ in range(n_boot)]


@pytest.mark.parametrize("groups", [7, ["b", "a", "b", "c", "a", "a"], [3, 1, 2, 0]])
def test_one_level_draws_are_unchanged_and_re_exported(groups):
    assert stats.cluster_resamples is resampling.cluster_resamples
    assert stats.iter_cluster_resamples is resampling.iter_cluster_resamples
    new = resampling.cluster_resamples(groups, 20, seed=3)
    for a, b in zip(new, _old_draws(groups, 20, 3), strict=True):
        np.testing.assert_array_equal(a, b)


def _design():
    """3 families with 4, 2 and 3 queries; query 'q1' of family 'b' has two rows."""
    fam = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 3)
    query = np.array(["q0", "q1", "q2", "q3", "q0", "q1", "q1", "q0", "q1", "q2"])
    return fam, query


def test_two_levels_draw_families_then_whole_queries_within_them():
    fam, query = _design()
    for rows in resampling.cluster_resamples(fam, 200, seed=1, within=query):
        f, q = fam[rows], query[rows]
        b_q1 = int(((f == "b") & (q == "q1")).sum())
        assert b_q1 % 2 == 0  # both rows of the query (b, q1) or neither
        units = {"a": int((f == "a").sum()), "b": int(((f == "b") & (q == "q0")).sum()) + b_q1 // 2,
                 "c": int((f == "c").sum())}
        for name, n_queries in (("a", 4), ("b", 2), ("c", 3)):
            assert units[name] % n_queries == 0  # a drawn family brings as many queries as it has
        assert sum(units[name] // n for name, n in (("a", 4), ("b", 2), ("c", 3))) == 3  # 3 families drawn


def test_two_level_draws_follow_the_documented_calls():
    fam = np.repeat([0, 1, 2], 5)
    query = np.tile(np.arange(5), 3)
    got = resampling.cluster_resamples(fam, 5, seed=11, within=query)
    rng = np.random.default_rng(11)
    for rows in got:
        want = np.concatenate([f * 5 + rng.integers(0, 5, 5) for f in rng.integers(0, 3, 3)])
        np.testing.assert_array_equal(rows, want)


def test_two_level_draws_are_deterministic_and_pair_up():
    fam, query = _design()
    a = resampling.cluster_resamples(fam, 30, seed=4, within=query)
    b = resampling.cluster_resamples(fam, 30, seed=4, within=query)
    c = resampling.cluster_resamples(fam, 30, seed=5, within=query)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_two_levels_vary_more_than_one_when_families_differ():
    rng = np.random.default_rng(0)
    fam = np.repeat(np.arange(6), 48)
    y = rng.normal(0, 1, 6)[fam] + rng.normal(0, 1, len(fam))
    _, two = resampling.hierarchical_bootstrap(y, None, fam, np.arange(len(y)), n_boot=400, seed=0)
    one = np.array([y[r].mean() for r in resampling.cluster_resamples(len(y), 400, seed=0)])
    assert two.std() > 2 * one.std()


def test_hierarchical_interval_contains_the_estimate_and_t_is_wider_than_percentile():
    rng = np.random.default_rng(2)
    fam = np.repeat(np.arange(5), 48)
    y = rng.normal(0, 0.3, 5)[fam] + rng.normal(0, 1, len(fam))
    v, (lo, hi) = resampling.hierarchical_interval(y, groups=fam, within=np.arange(len(y)), n_boot=300)
    vp, (plo, phi) = resampling.hierarchical_interval(y, groups=fam, within=np.arange(len(y)), n_boot=300,
                                                      interval="percentile")
    assert v == vp == pytest.approx(y.mean()) and lo < v < hi
    assert hi - lo > phi - plo


def test_hierarchical_interval_edge_cases():
    y = np.arange(6.0)
    v, ci = resampling.hierarchical_interval(y, groups=np.zeros(6), within=np.arange(6), n_boot=10)
    assert v == 2.5 and all(math.isnan(c) for c in ci)  # one family: no interval
    with pytest.raises(ValueError, match="interval"):
        resampling.hierarchical_interval(y, groups=np.arange(6) % 2, within=np.arange(6), interval="bca")
    with pytest.raises(ValueError, match="level"):
        resampling.hierarchical_interval(y, groups=np.arange(6) % 2, within=np.arange(6), level=90)
    with pytest.raises(ValueError, match="one label per row"):
        resampling.cluster_resamples(np.arange(6) % 2, 3, within=np.arange(5))
