"""Fresh demonstrations per query (`tasks.demonstrations`): balanced, never the query, deterministic (fast)."""

from __future__ import annotations

import pytest

from icl_geometry.tasks import demonstrations as dm
from icl_geometry.tasks.classification import BASE_FAMILIES, Example


def test_pool_and_queries_are_balanced_and_queries_come_from_outside_first():
    queries, pool = dm.pool_and_queries("sentiment", 48, 64, seed=0)
    assert len(queries) == 48 and len(pool) == 64
    assert [e.true_label for e in pool].count(0) == 32 and [e.true_label for e in queries].count(1) == 24
    assert all(e.label == e.true_label and not e.flipped for e in pool + queries)
    assert len({e.text for e in pool}) == 64 and len({e.text for e in queries}) == 48
    assert dm.queries_outside_pool(queries, pool) == 48  # sentiment has 108 inputs per class: no overlap


def test_a_short_family_lets_queries_come_from_the_pool():
    assert dm.max_pool("continent") == 48
    queries, pool = dm.pool_and_queries("magnitude", 48, 64, seed=0)  # 39 inputs per class
    inside = 48 - dm.queries_outside_pool(queries, pool)
    assert inside == 2 * (24 - (39 - 32))  # per class: 24 queries, 7 inputs outside the pool
    with pytest.raises(ValueError, match="class"):
        dm.pool_and_queries("continent", 48, 64)


@pytest.mark.parametrize("k", [0, 1, 8, 15, 16])
def test_each_query_draws_its_own_balanced_demonstrations_without_itself(k):
    queries, pool = dm.pool_and_queries("magnitude", 48, 64, seed=1)
    sets = dm.demonstration_sets("magnitude", queries, pool, k, seed=1)
    for q, demos in zip(queries, sets, strict=True):
        assert len(demos) == k and q.text not in {d.text for d in demos}
        counts = [sum(d.true_label == c for d in demos) for c in (0, 1)]
        assert abs(counts[0] - counts[1]) <= 1 and sum(counts) == k
        assert len({d.text for d in demos}) == k and all(d in pool for d in demos)
    if k >= 8:
        assert len({tuple(d.text for d in s) for s in sets}) == len(sets)  # fresh per query, not one shared set


def test_odd_k_puts_the_extra_label_either_way():
    queries, pool = dm.pool_and_queries("sentiment", 40, 64, seed=0)
    extra = {sum(d.true_label for d in dm.sample_demonstrations(pool, q, 5, "sentiment")) for q in queries}
    assert extra == {2, 3}


def test_draws_are_deterministic_in_seed_family_and_query():
    queries, pool = dm.pool_and_queries("parity", 20, 64, seed=0)
    q = queries[3]
    a = dm.sample_demonstrations(pool, q, 8, "parity", seed=0)
    assert a == dm.sample_demonstrations(pool, q, 8, "parity", seed=0)
    assert a == dm.demonstration_sets("parity", [queries[0], q], pool, 8)[1]  # whatever else is asked
    assert a == dm.sample_demonstrations(pool, q, 8, "parity_foobar", seed=0)  # the foo/bar version: same texts
    assert a != dm.sample_demonstrations(pool, q, 8, "parity", seed=1)
    assert a != dm.sample_demonstrations(pool, queries[4], 8, "parity", seed=0)
    assert dm.pool_and_queries("parity", 20, 64, seed=0) == (queries, pool)
    assert dm.pool_and_queries("parity", 20, 64, seed=2) != (queries, pool)


def test_a_query_in_the_pool_is_left_out_and_a_too_small_pool_is_named():
    pool = [Example(t, c, c) for c in (0, 1) for t in BASE_FAMILIES["category"].inputs[c][:3]]
    q = pool[0]
    for seed in range(20):
        assert q.text not in {d.text for d in dm.sample_demonstrations(pool, q, 4, "category", seed)}
    with pytest.raises(ValueError, match="besides the query"):
        dm.sample_demonstrations(pool, q, 6, "category")
    with pytest.raises(ValueError, match="family"):
        dm.sample_demonstrations(pool, q, 2, "no_such_family")
    with pytest.raises(ValueError, match="k = -1"):
        dm.sample_demonstrations(pool, q, -1, "category")
