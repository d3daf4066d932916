"""Fresh demonstrations per query (chapter 7, second pass): each query draws its own k demonstrations, half of
each label, from its family's pool, never the query itself.

Chapter 7's first pass showed every query of a family the same k demonstrations (k = the pool size), so its
intervals could not see how much a verdict owed to one demonstration set. Here a family has one pool (balanced,
at least 64 examples in the full profile) and one set of queries; a family with too few inputs for both lets
queries come from the pool, and `sample_demonstrations` leaves the query out of its own draw. Every draw is
seeded by (seed, family, query text), so a query sees the same demonstrations in every condition, every run and
whatever other queries are asked; a family and its foo/bar version (`<name>_foobar`) draw the same texts.
"""

from __future__ import annotations

import random
from typing import Sequence

from icl_geometry.tasks.classification import Example, classification_family, draw_balanced

MIN_FULL_POOL = 64  # the full profile's smallest pool per family (issue 26)


def _base(family: str) -> str:
    classification_family(family)  # a ValueError naming the known families
    return family.removesuffix("_foobar")


def _per_class(n: int) -> tuple[int, int]:
    """How n balanced examples split over the classes (0, 1): the odd one goes to class 0."""
    return (n + 1) // 2, n // 2


def pool_and_queries(family: str, n_queries: int, n_pool: int,
                     seed: int = 0) -> tuple[list[Example], list[Example]]:
    """A balanced demonstration pool of `n_pool` examples and `n_queries` balanced queries of `family`.

    Per class, the family's inputs are shuffled (seeded by the base family and `seed`); the pool takes the first
    ones, the queries the next ones and, when a class runs out, wrap around into the pool (such a query is
    still never its own demonstration: `sample_demonstrations` leaves it out). Both alternate classes 0, 1, ...
    Raises when a class has fewer inputs than the pool or the queries need."""
    fam = classification_family(family)
    if n_queries < 1 or n_pool < 2:
        raise ValueError(f"pool_and_queries: n_queries = {n_queries} and n_pool = {n_pool}: expected n_queries >= 1 "
                         "and n_pool >= 2")
    rng = random.Random(f"fresh-demos:{_base(family)}:{seed}")
    pool_n, query_n = _per_class(n_pool), _per_class(n_queries)
    texts = []
    for c in (0, 1):
        t = list(fam.inputs[c])
        rng.shuffle(t)
        if max(pool_n[c], query_n[c]) > len(t):
            raise ValueError(f"pool_and_queries: family {family!r} has {len(t)} inputs of class {c}; n_pool = {n_pool} "
                             f"needs {pool_n[c]} and n_queries = {n_queries} needs {query_n[c]}")
        texts.append(t)
    pool = [Example(texts[i % 2][i // 2], i % 2, i % 2) for i in range(n_pool)]
    order = [texts[c][pool_n[c]:] + texts[c][:pool_n[c]] for c in (0, 1)]  # outside the pool first
    queries = [Example(order[i % 2][i // 2], i % 2, i % 2) for i in range(n_queries)]
    return queries, pool


def queries_outside_pool(queries: Sequence[Example], pool: Sequence[Example]) -> int:
    """How many queries are not in the pool (by text): all of them unless the family ran short of inputs."""
    texts = {e.text for e in pool}
    return sum(q.text not in texts for q in queries)


def sample_demonstrations(pool: Sequence[Example], query: Example, k: int, family: str,
                          seed: int = 0) -> list[Example]:
    """The query's own k demonstrations from `pool`: never the query (no pool example with its text), half of
    each label (for odd k the extra one's label at random), in a random order. Deterministic in (seed, family,
    query text): the same query gets the same demonstrations whatever else is asked; a family and its foo/bar
    version get the same ones. Raises when the pool, without the query, has too few examples of a label."""
    if k < 0:
        raise ValueError(f"k = {k!r} is not allowed: expected an integer >= 0")
    rng = random.Random(f"fresh-demos:{_base(family)}:{seed}:{query.text}")
    by_class = [[e for e in pool if e.true_label == c and e.text != query.text] for c in (0, 1)]
    return draw_balanced(by_class, k, rng, "sample_demonstrations", f" besides the query {query.text!r}")


def demonstration_sets(family: str, queries: Sequence[Example], pool: Sequence[Example], k: int,
                       seed: int = 0) -> list[list[Example]]:
    """`sample_demonstrations` for every query, in order."""
    return [sample_demonstrations(pool, q, k, family, seed) for q in queries]


def max_pool(family: str) -> int:
    """The largest balanced pool the family's inputs allow (twice its smaller class)."""
    fam = classification_family(family)
    return 2 * min(len(fam.inputs[0]), len(fam.inputs[1]))
