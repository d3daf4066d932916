"""One registry for every task family: question-answer (`qa`) and two-way classification (`classification`).

`FAMILIES` maps each name to its family; `kind_of` says which kind it is; `check_family`, `parse_families`,
`split` and `choose_examples` work on either kind (a classification split is balanced; its examples are chosen
half of each class; question-answer examples are nested in k).
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Mapping, Sequence

from icl_geometry.tasks.classification import (CLASSIFICATION_FAMILIES, DemoFamily, Example, choose_balanced,
                                               classification_family, split_balanced)
from icl_geometry.tasks.qa import QA_FAMILIES, Family, Item, choose_nested, qa_family, split_qa

KINDS = ("qa", "classification")
# A live view of both registries (a family added to either is seen here).
FAMILIES: Mapping[str, Family | DemoFamily] = ChainMap(QA_FAMILIES, CLASSIFICATION_FAMILIES)


def kind_of(name: str) -> str:
    """'qa' or 'classification', or a ValueError naming every known family."""
    if name in QA_FAMILIES:
        return "qa"
    if name in CLASSIFICATION_FAMILIES:
        return "classification"
    raise ValueError(f"Task family {name!r} is not known: expected one of {list(FAMILIES)}.")


def families(kind: str | None = None) -> tuple[str, ...]:
    """The names of every family of `kind` ('qa', 'classification'; None: both), in registry order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(KINDS)} or None")
    names = [*QA_FAMILIES, *CLASSIFICATION_FAMILIES]
    return tuple(n for n in names if kind is None or kind_of(n) == kind)


def check_family(name: str, kind: str | None = None) -> Family | DemoFamily:
    """The family `name` (of `kind`, when given), or a ValueError naming the allowed ones."""
    if kind == "qa":
        return qa_family(name)
    if kind == "classification":
        return classification_family(name)
    return qa_family(name) if kind_of(name) == "qa" else classification_family(name)


def parse_families(value: Any, kind: str | None = None) -> tuple[str, ...]:
    """A comma-separated list of distinct family names (of `kind`), validated: 'sentiment, category_foobar'."""
    names = tuple(v.strip() for v in str(value).split(",") if v.strip()) if isinstance(value, str) else ()
    allowed = families(kind)
    bad = [v for v in names if v not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"Parameter 'families' = {value!r} is not allowed: expected distinct comma-separated "
                         f"names from {list(allowed)}.")
    return names


def split(family: str, n_test: int, n_pool: int, seed: int = 0,
          strict: bool = True) -> tuple[list[Item], list[Item]] | tuple[list[Example], list[Example]]:
    """Test items and a disjoint pool the examples are drawn from. Question-answer: `strict=False` returns fewer
    test items when a small family runs out. Classification: balanced classes, always complete."""
    if kind_of(family) == "qa":
        return split_qa(family, n_test, n_pool, seed, strict)
    return split_balanced(family, n_test, n_pool, seed)


def choose_examples(pool: Sequence[Item] | Sequence[Example], k: int, seed: int, index: int) -> list:
    """k examples from `pool` for test item `index`: question-answer shots nested in k (the first k of a per-item
    permutation); classification demonstrations half of each class, in a random order."""
    if pool and isinstance(pool[0], Example):
        return choose_balanced(pool, k, seed, index)
    return choose_nested(pool, k, seed, index)
