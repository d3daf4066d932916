"""In-context classification with (possibly noisy) demonstrations, for chapter 7 (paper B's LLM experiments,
after Wei et al. 2023).

A *family* is a two-way classification of short inputs generated in code (no download): templated sentiment,
animal or food, number magnitude, number parity, country to continent. Each family has its natural label
words and an *unrelated-label* version (`<name>_foobar`, labels `foo` / `bar`) in which the mapping can only
come from the demonstrations.

A prompt is k demonstrations (input, label) and a clean query. Two manipulations of the demonstrations:
- label noise (`flip_rate` p): round(p k) demonstration labels are flipped (p = 1 is Wei et al.'s
  flipped-label setting);
- input noise (`noise_rate` q): round(q k) demonstration inputs are replaced by random vocabulary text of the
  same token length (`tasks.random_token_text`); their labels stay.
Which demonstrations are corrupted follows one fixed permutation per query, so the corrupted sets are nested
in p (and in q) and conditions compare item by item.

`format_demo_prompt` lays the demonstrations out as chat turns for instruct models (one user turn
`Input: ...` and one assistant turn with the label per demonstration; see FACTS.md on why multi-turn) and as
plain text `Input: ... / Label: ...` blocks for base models, and returns the character spans of every
demonstration's input and label; `token_groups` maps them to tokens (label / input / other), for the
attention-mass measurement.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from icl_geometry.tasks import random_token_text

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
FAMILIES: dict[str, DemoFamily] = {**BASE_FAMILIES, **{
    f"{name}_foobar": replace(f, name=f"{name}_foobar", description=f"{f.description}; labels foo / bar",
                              labels=UNRELATED)
    for name, f in BASE_FAMILIES.items()}}


def check_family(name: str) -> DemoFamily:
    if name not in FAMILIES:
        raise ValueError(f"family = {name!r} is not allowed: expected one of {list(FAMILIES)}.")
    return FAMILIES[name]


def parse_families(text: str) -> list[str]:
    """'sentiment, category_foobar' -> ['sentiment', 'category_foobar'], each checked."""
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    if not names:
        raise ValueError(f"families = {text!r}: expected at least one family, from {list(FAMILIES)}")
    for n in names:
        check_family(n)
    return names


# --------------------------------------------------------------------------------------------- items
def split(family: str, n_test: int, n_pool: int, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Balanced test queries and a demonstration pool with no input in common (both classes alternate).

    The same texts for a family and its foo/bar version (the split keys on the base family)."""
    fam = check_family(family)
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


def choose_demos(pool: Sequence[Example], k: int, seed: int, index: int) -> list[Example]:
    """k demonstrations for query `index`: half of each class (the odd one at random), in a random order."""
    by_class = [[e for e in pool if e.true_label == c] for c in (0, 1)]
    rng = random.Random(f"demos:{seed}:{index}")
    first = rng.randrange(2)
    counts = [k // 2 + (k % 2 if c == first else 0) for c in (0, 1)]
    for c in (0, 1):
        if counts[c] > len(by_class[c]):
            raise ValueError(f"demos: k = {k} needs {counts[c]} pool examples of class {c}, the pool has "
                             f"{len(by_class[c])}")
    chosen = [e for c in (0, 1) for e in rng.sample(by_class[c], counts[c])]
    rng.shuffle(chosen)
    return chosen


def n_corrupted(rate: float, k: int) -> int:
    """How many of k demonstrations a rate corrupts: round(rate k), halves rounded up."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate = {rate!r} is not allowed: expected a number in [0, 1]")
    return min(k, int(np.floor(rate * k + 0.5)))


def corrupt(demos: Sequence[Example], flip_rate: float = 0.0, noise_rate: float = 0.0, tokenizer: Any = None,
            seed: int = 0, index: int = 0) -> list[Example]:
    """The demonstrations with round(p k) labels flipped and round(q k) inputs replaced by random text of the
    same token length (needs the model's `tokenizer`). The corrupted positions are the first of two fixed
    per-query permutations (one for flips, one for inputs), so they are nested in p and in q."""
    k = len(demos)
    n_flip, n_noise = n_corrupted(flip_rate, k), n_corrupted(noise_rate, k)
    if n_noise and tokenizer is None:
        raise ValueError("corrupt: input noise needs the model's tokenizer (random text of the same token length)")
    flip_order = list(range(k))
    random.Random(f"flip:{seed}:{index}").shuffle(flip_order)
    noise_order = list(range(k))
    random.Random(f"noise:{seed}:{index}").shuffle(noise_order)
    flip, noise = set(flip_order[:n_flip]), set(noise_order[:n_noise])
    out = []
    for j, e in enumerate(demos):
        text, noisy = e.text, False
        if j in noise:
            n_tok = len(tokenizer(e.text, add_special_tokens=False)["input_ids"])
            text = random_token_text(tokenizer, n_tok, random.Random(f"noise-text:{seed}:{index}:{j}"))
            noisy = True
        out.append(Example(text, e.true_label, 1 - e.label if j in flip else e.label, noisy))
    return out


# --------------------------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class DemoPrompt:
    """A formatted prompt, the label words to score after it (`choices`, in class order), and the character
    spans (start, end, group) of every demonstration's input and label."""

    text: str
    choices: tuple[str, str]
    spans: tuple[tuple[int, int, str], ...]


def _find(text: str, needle: str, start: int) -> tuple[int, int]:
    i = text.find(needle, start)
    if i < 0:
        raise ValueError(f"format_demo_prompt: {needle!r} not found in the rendered prompt")
    return i, i + len(needle)


def format_demo_prompt(loaded: Any, family: str, demos: Sequence[Example], query: Example,
                       chat: bool | None = None) -> DemoPrompt:
    """The prompt a model sees. Chat models: per demonstration a user turn `Input: <text>` and an assistant
    turn `<label>`, then the query's user turn and the generation prompt (choices are the bare label words).
    Base models: blocks `Input: <text>\\nLabel: <label>` separated by blank lines, then `Input: <query>\\nLabel:`
    (choices are ' <label>'). No instruction: the label set comes from the demonstrations alone."""
    fam = check_family(family)
    tok = loaded.tokenizer
    use_chat = loaded.chat if chat is None else chat
    spans: list[tuple[int, int, str]] = []
    if use_chat:
        messages = []
        for e in demos:
            messages += [{"role": "user", "content": f"Input: {e.text}"},
                         {"role": "assistant", "content": fam.labels[e.label]}]
        messages.append({"role": "user", "content": f"Input: {query.text}"})
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        cursor = 0
        for e in demos:
            s, cursor = _find(text, f"Input: {e.text}", cursor)
            spans.append((s + len("Input: "), cursor, "input"))
            s, cursor = _find(text, fam.labels[e.label], cursor)
            spans.append((s, cursor, "label"))
        return DemoPrompt(text, tuple(fam.labels), tuple(spans))
    parts, pos = [], 0
    for e in demos:
        block = f"Input: {e.text}\nLabel: {fam.labels[e.label]}"
        a = pos + len("Input: ")
        spans.append((a, a + len(e.text), "input"))
        b = pos + len(block) - len(fam.labels[e.label])
        spans.append((b, b + len(fam.labels[e.label]), "label"))
        parts.append(block)
        pos += len(block) + 2
    parts.append(f"Input: {query.text}\nLabel:")
    return DemoPrompt("\n\n".join(parts), tuple(f" {w}" for w in fam.labels), tuple(spans))


def token_groups(loaded: Any, prompt: DemoPrompt) -> np.ndarray:
    """One group per prompt token (as `lm.token_ids` tokenises it): 0 = a demonstration's label, 1 = a
    demonstration's input, 2 = everything else (template, separators, query, special tokens). A token
    belongs to a span when it overlaps it."""
    from icl_geometry.llm import lm

    tok = loaded.tokenizer
    enc = tok(prompt.text, add_special_tokens=lm.needs_special_tokens(tok, [prompt.text]),
              return_offsets_mapping=True)
    groups = np.full(len(enc["input_ids"]), 2, dtype=np.int64)
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        if b <= a:
            continue
        for s, e, g in prompt.spans:
            if a < e and b > s:
                groups[t] = GROUPS.index(g)
                break
    return groups
