"""Two-way classification task families for chapter 7 (paper B's LLM experiments, after Wei et al. 2023).

A family is a two-way classification of short inputs generated in code (no download): templated sentiment,
animal or food, number magnitude, number parity, country to continent. Each has its natural label words and
an *unrelated-label* version (`<name>_foobar`, labels `foo` / `bar`) in which the mapping can only come from
the demonstrations. Noise on demonstrations is `tasks.noise`; their prompt layout `tasks.prompts`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Sequence

GROUPS = ("label", "input", "other")
UNRELATED = ("foo", "bar")


@dataclass(frozen=True)
class DemoFamily:
    """A two-way classification: `inputs[c]` are the inputs of class c, `labels[c]` its label word."""

    name: str
    description: str
    labels: tuple[str, str]
    inputs: tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Example:
    """One demonstration or query: its input text and true class; `label` is the class shown (differs from
    `true_label` when flipped); `noisy_input` marks an input replaced by random text."""

    text: str
    true_label: int
    label: int
    noisy_input: bool = False

    @property
    def flipped(self) -> bool:
        return self.label != self.true_label


# --------------------------------------------------------------------------------------------- families
_NOUNS = ("movie", "meal", "hotel", "concert", "book", "service", "trip", "game", "show", "class", "party", "song")
_GOOD = ("wonderful", "excellent", "delightful", "great", "fantastic", "lovely", "superb", "brilliant", "amazing")
_BAD = ("terrible", "awful", "horrible", "dreadful", "boring", "disappointing", "poor", "bad", "miserable")
_ANIMALS = ("dog", "cat", "horse", "tiger", "lion", "rabbit", "elephant", "wolf", "bear", "monkey", "giraffe",
            "zebra", "sheep", "goat", "mouse", "deer", "fox", "camel", "donkey", "squirrel", "leopard", "kangaroo",
            "hamster", "otter")
_FOODS = ("bread", "cheese", "pasta", "rice", "soup", "cake", "pizza", "butter", "banana", "carrot", "potato",
          "sandwich", "cookie", "yogurt", "noodles", "salad", "pie", "omelette", "pancake", "porridge", "burrito",
          "muffin", "lasagna", "sausage")
_EUROPE = ("France", "Germany", "Italy", "Spain", "Poland", "Sweden", "Norway", "Greece", "Portugal", "Austria",
           "Ireland", "Finland", "Denmark", "Hungary", "Belgium", "Netherlands", "Romania", "Switzerland",
           "Croatia", "Bulgaria", "Czechia", "Serbia", "Ukraine", "Iceland")
_ASIA = ("Japan", "China", "India", "Thailand", "Vietnam", "Korea", "Indonesia", "Malaysia", "Nepal", "Pakistan",
         "Mongolia", "Cambodia", "Philippines", "Bangladesh", "Laos", "Singapore", "Myanmar", "Sri Lanka",
         "Afghanistan", "Kazakhstan", "Uzbekistan", "Bhutan", "Taiwan", "Iran")


def _sentences(adjectives: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"The {n} was {a}." for n in _NOUNS for a in adjectives)


BASE_FAMILIES: dict[str, DemoFamily] = {f.name: f for f in (
    DemoFamily("sentiment", "templated review sentences", ("positive", "negative"),
               (_sentences(_GOOD), _sentences(_BAD))),
    DemoFamily("category", "a word naming an animal or a food", ("animal", "food"), (_ANIMALS, _FOODS)),
    DemoFamily("magnitude", "a number from 1 to 99, below 40 or above 60", ("low", "high"),
               (tuple(str(i) for i in range(1, 40)), tuple(str(i) for i in range(61, 100)))),
    DemoFamily("parity", "a number from 10 to 99, even or odd", ("even", "odd"),
               (tuple(str(i) for i in range(10, 100, 2)), tuple(str(i) for i in range(11, 100, 2)))),
    DemoFamily("continent", "a country in Europe or Asia", ("Europe", "Asia"), (_EUROPE, _ASIA)),
)}
CLASSIFICATION_FAMILIES: dict[str, DemoFamily] = {**BASE_FAMILIES, **{
    f"{name}_foobar": replace(f, name=f"{name}_foobar", description=f"{f.description}; labels foo / bar",
                              labels=UNRELATED)
    for name, f in BASE_FAMILIES.items()}}


def classification_family(name: str) -> DemoFamily:
    """The classification family `name`, or a ValueError naming the known ones."""
    if name not in CLASSIFICATION_FAMILIES:
        raise ValueError(f"family = {name!r} is not allowed: expected one of {list(CLASSIFICATION_FAMILIES)}.")
    return CLASSIFICATION_FAMILIES[name]


# --------------------------------------------------------------------------------------------- items
def split_balanced(family: str, n_test: int, n_pool: int, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Balanced test queries and a demonstration pool with no input in common (both classes alternate).

    The same texts for a family and its foo/bar version (the split keys on the base family)."""
    fam = classification_family(family)
    if n_test < 1 or n_pool < 2:
        raise ValueError(f"split: n_test = {n_test} and n_pool = {n_pool}: expected n_test >= 1, n_pool >= 2")
    rng = random.Random(f"demos:{family.removesuffix('_foobar')}:{seed}")
    per_class = []
    for c in (0, 1):
        texts = list(fam.inputs[c])
        rng.shuffle(texts)
        per_class.append(texts)
    need = [(n_test + 1 - c) // 2 + (n_pool + 1 - c) // 2 for c in (0, 1)]
    for c in (0, 1):
        if need[c] > len(per_class[c]):
            raise ValueError(f"split: family {family!r} has {len(per_class[c])} inputs of class {c}; "
                             f"n_test = {n_test} and n_pool = {n_pool} need {need[c]}")
    test = [Example(per_class[i % 2][i // 2], i % 2, i % 2) for i in range(n_test)]
    t = [(n_test + 1) // 2, n_test // 2]
    pool = [Example(per_class[i % 2][t[i % 2] + i // 2], i % 2, i % 2) for i in range(n_pool)]
    return test, pool


def choose_balanced(pool: Sequence[Example], k: int, seed: int, index: int) -> list[Example]:
    """k demonstrations for query `index`: half of each class (the odd one at random), in a random order."""
    by_class = [[e for e in pool if e.true_label == c] for c in (0, 1)]
    return draw_balanced(by_class, k, random.Random(f"demos:{seed}:{index}"), "demos", "")


def draw_balanced(by_class: Sequence[Sequence[Example]], k: int, rng: random.Random, who: str,
                  besides: str) -> list[Example]:
    """k examples, half from each class list (the odd one to a class drawn at random), in a random order: the one
    balanced draw behind both demonstration samplers. `who` and `besides` word the error when a class is short."""
    first = rng.randrange(2)
    counts = [k // 2 + (k % 2 if c == first else 0) for c in (0, 1)]
    for c in (0, 1):
        if counts[c] > len(by_class[c]):
            raise ValueError(f"{who}: k = {k} needs {counts[c]} pool examples of class {c}, the pool has "
                             f"{len(by_class[c])}{besides}")
    chosen = [e for c in (0, 1) for e in rng.sample(list(by_class[c]), counts[c])]
    rng.shuffle(chosen)
    return chosen
