"""Question-answer task families for the LLM chapters: seeded item generators, no download.

Every family generates (question, gold answer) items in code from a seed, so the suite is identical on every
machine. Families range from one-step lookups a 135M model knows to short word problems in the spirit of
GSM8K-Zero (answers readable from the question or one small step away). Which families have in-context
headroom for a given model is measured, not assumed (benchmarks/task_headroom.py and chapter 4). The registry
of every family, question-answer and classification, is `tasks.registry`.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Callable, Sequence

@dataclass(frozen=True)
class Item:
    """One question with its gold answer; `options` lists the answers a reader could pick from,
    `aliases` other spellings or equally right answers that also score as correct."""

    family: str
    question: str
    answer: str
    options: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """A generator of items of one kind, with the instruction shown above the questions."""

    name: str
    description: str
    instruction: str
    make: Callable[[random.Random], Item] = field(repr=False)
    numeric: bool = False


# ---------------------------------------------------------------------------------------------
# Data the generators draw from (vocabulary, not results).
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Egypt": "Cairo", "Russia": "Moscow", "Greece": "Athens", "Austria": "Vienna", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Poland": "Warsaw", "Portugal": "Lisbon",
    "Ireland": "Dublin", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana",
    "Thailand": "Bangkok", "Hungary": "Budapest", "Denmark": "Copenhagen", "Belgium": "Brussels",
    "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Canada": "Ottawa", "Australia": "Canberra",
    "China": "Beijing", "India": "New Delhi", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad",
    "Vietnam": "Hanoi", "Colombia": "Bogota", "Nigeria": "Abuja", "Ghana": "Accra",
    "Morocco": "Rabat", "Czechia": "Prague", "Romania": "Bucharest", "Bulgaria": "Sofia",
    "Netherlands": "Amsterdam", "Switzerland": "Bern", "Scotland": "Edinburgh", "Wales": "Cardiff",
    "Iceland": "Reykjavik", "Ukraine": "Kyiv", "Serbia": "Belgrade", "Croatia": "Zagreb",
}
ANTONYMS = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
    "early": "late", "strong": "weak", "rich": "poor", "old": "young", "open": "closed",
    "full": "empty", "high": "low", "hard": "soft", "wet": "dry", "long": "short", "thick": "thin",
    "loud": "quiet", "clean": "dirty", "first": "last", "true": "false", "win": "lose",
    "buy": "sell", "push": "pull", "inside": "outside", "before": "after", "day": "night",
    "left": "right", "love": "hate", "begin": "end", "asleep": "awake", "cheap": "expensive",
    "friend": "enemy", "heavy": "light", "north": "south", "east": "west", "question": "answer",
    "above": "below", "enter": "exit", "give": "take", "accept": "refuse", "remember": "forget",
}
# Equally right answers a judge model would accept; scoring only (prompts and shots use the gold answer).
CAPITAL_ALIASES = {"Kyiv": ("Kiev",), "Beijing": ("Peking",)}
COUNTRY_ALIASES = {"Czechia": ("Czech Republic",), "Turkey": ("Turkiye",), "Netherlands": ("Holland",)}
ANTONYM_ALIASES = {
    "old": ("new",), "light": ("heavy",), "hard": ("easy",), "loud": ("soft",), "big": ("little",),
    "happy": ("unhappy",), "open": ("shut",), "give": ("receive",), "accept": ("reject", "decline"),
    "enter": ("leave",), "begin": ("finish",), "friend": ("foe",), "true": ("untrue",), "win": ("loss",),
}
NAMES = ("Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jack", "Kira",
         "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera")
OBJECTS = ("apple", "book", "marble", "pencil", "coin", "card", "shell", "sticker", "cookie", "stamp",
           "balloon", "ribbon", "button", "candle", "orange", "egg")
WORDS = ("pen", "cup", "bird", "lamp", "tree", "door", "fish", "rope", "milk", "sock", "coat", "leaf",
         "ring", "drum", "kite", "boat", "star", "hill", "nest", "road", "salt", "wolf", "bell", "corn")
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}


def _arithmetic(rng: random.Random) -> Item:
    a, b = rng.randint(10, 49), rng.randint(10, 49)
    if rng.random() < 0.5:
        return Item("arithmetic", f"What is {a} + {b}?", str(a + b))
    a, b = max(a, b), min(a, b)
    return Item("arithmetic", f"What is {a} - {b}?", str(a - b))


def _compare(rng: random.Random) -> Item:
    a, b = rng.sample(range(10, 100), 2)
    word = rng.choice(("larger", "smaller"))
    gold = max(a, b) if word == "larger" else min(a, b)
    return Item("compare", f"Which number is {word}: {a} or {b}?", str(gold), (str(a), str(b)))


def _next_letter(rng: random.Random) -> Item:
    letters = string.ascii_uppercase
    if rng.random() < 0.5:
        i = rng.randrange(0, 25)
        return Item("next_letter", f"Which letter comes right after {letters[i]} in the alphabet?", letters[i + 1])
    i = rng.randrange(1, 26)
    return Item("next_letter", f"Which letter comes right before {letters[i]} in the alphabet?", letters[i - 1])


def _capital(rng: random.Random) -> Item:
    country = rng.choice(sorted(CAPITALS))
    city = CAPITALS[country]
    return Item("capitals", f"What is the capital of {country}?", city, aliases=CAPITAL_ALIASES.get(city, ()))


def _antonym(rng: random.Random) -> Item:
    word = rng.choice(sorted(ANTONYMS))
    return Item("antonyms", f"What is the opposite of '{word}'?", ANTONYMS[word], aliases=ANTONYM_ALIASES.get(word, ()))


def _last_word(rng: random.Random) -> Item:
    words = rng.sample(WORDS, rng.randint(3, 6))
    return Item("last_word", f"What is the last word in this list: {', '.join(words)}?", words[-1], tuple(words))


def _count_items(rng: random.Random) -> Item:
    words = rng.sample(WORDS, rng.randint(2, 7))
    return Item("count_items", f"How many words are in this list: {', '.join(words)}?", str(len(words)))


def _word_problem(rng: random.Random) -> Item:
    """Short word problems whose answer is read off or one small step away (GSM8K-Zero in spirit)."""
    n1, n2 = rng.sample(NAMES, 2)
    obj = rng.choice(OBJECTS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    kind = rng.randrange(6)
    if kind == 0:
        return Item("word_problems", f"{n1} has {a} {obj}s. {n2} gives {n1} {b} more {obj}s. "
                    f"How many {obj}s does {n1} have now?", str(a + b))
    if kind == 1:
        big, small = max(a, b) + 1, min(a, b)
        return Item("word_problems", f"There are {big} {obj}s in a box. {n1} takes out {small} of them. "
                    f"How many {obj}s are left in the box?", str(big - small))
    if kind == 2:
        age1, age2 = rng.sample(range(6, 60), 2)
        gold = n1 if age1 > age2 else n2
        return Item("word_problems", f"{n1} is {age1} years old. {n2} is {age2} years old. Who is older?",
                    gold, (n1, n2))
    if kind == 3:
        return Item("word_problems", f"A shop sells one {obj} for {a} dollars. {n1} buys one {obj}. "
                    f"How many dollars does {n1} pay?", str(a))
    if kind == 4:
        return Item("word_problems", f"{n1} had {a} {obj}s and gave all of them to {n2}. "
                    f"How many {obj}s does {n1} have left?", "0")
    return Item("word_problems", f"{n1} has {a} {obj}s. {n2} has twice as many {obj}s as {n1}. "
                f"How many {obj}s does {n2} have?", str(2 * a))


def _sequence(rng: random.Random) -> Item:
    """Continue an arithmetic progression: induction from the pattern, no knowledge needed."""
    step = rng.choice((1, 2, 3, 4, 5, 10))
    start = rng.randint(1, 30)
    terms = [start + i * step for i in range(4)]
    return Item("sequence", f"What number comes next: {', '.join(map(str, terms))}, ...?", str(start + 4 * step))


def _country_of(rng: random.Random) -> Item:
    """The capitals lookup run backwards (city -> country): same facts, a less practised direction."""
    country = rng.choice(sorted(CAPITALS))
    return Item("country_of", f"{CAPITALS[country]} is the capital of which country?", country,
                aliases=COUNTRY_ALIASES.get(country, ()))


def _first_letter(rng: random.Random) -> Item:
    word = rng.choice(sorted(set(WORDS + OBJECTS) | set(ANTONYMS)))
    return Item("first_letter", f"What is the first letter of the word '{word}'?", word[0].upper(),
                aliases=(word[0],))


QA_FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("arithmetic", "two-digit addition or subtraction", "Answer with a number.", _arithmetic, True),
    Family("compare", "pick the larger or smaller of two numbers", "Answer with a number.", _compare, True),
    Family("next_letter", "the letter after or before a given letter", "Answer with a single letter.", _next_letter),
    Family("capitals", "capital city of a country", "Answer with the name of a city.", _capital),
    Family("antonyms", "opposite of a word", "Answer with one word.", _antonym),
    Family("last_word", "last element of a short list", "Answer with one word.", _last_word),
    Family("count_items", "length of a short list", "Answer with a number.", _count_items, True),
    Family("word_problems", "one-step word problems (GSM8K-Zero style)", "Answer with a number or a name.",
           _word_problem),
    Family("sequence", "next term of an arithmetic progression", "Answer with a number.", _sequence, True),
    Family("country_of", "country whose capital a city is", "Answer with the name of a country.", _country_of),
    Family("first_letter", "first letter of a word", "Answer with a single letter.", _first_letter),
)}


def qa_family(name: str) -> Family:
    """The question-answer family `name`, or a ValueError naming the known ones."""
    if name not in QA_FAMILIES:
        raise ValueError(f"Task family {name!r} is not known: expected one of {list(QA_FAMILIES)}.")
    return QA_FAMILIES[name]


def make_items(family: str, n: int, seed: int = 0, exclude: Sequence[Item] = (), strict: bool = True) -> list[Item]:
    """`n` distinct items of a family, seeded; questions in `exclude` are never repeated.

    Small families (e.g. 48 capitals) run out: `strict=False` returns the distinct items found instead of failing.
    """
    fam = qa_family(family)
    if n < 0:
        raise ValueError(f"n = {n} is not allowed: expected an integer >= 0.")
    rng = random.Random(f"{family}:{seed}")
    seen = {it.question for it in exclude}
    items: list[Item] = []
    for _ in range(200 * n + 100):
        if len(items) == n:
            break
        item = fam.make(rng)
        if item.question not in seen:
            seen.add(item.question)
            items.append(item)
    if len(items) < n and strict:
        raise ValueError(f"Family {family!r} has only {len(items)} distinct items for seed {seed}; asked for {n}.")
    return items


def split_qa(family: str, n_test: int, n_pool: int, seed: int = 0,
             strict: bool = True) -> tuple[list[Item], list[Item]]:
    """Test items and a disjoint pool from which few-shot examples are drawn (`strict=False`: fewer test
    items when the family runs out; the pool is always complete)."""
    pool = make_items(family, n_pool, seed=seed + 1)
    test = make_items(family, n_test, seed=seed, exclude=pool, strict=strict)
    return test, pool



def choose_nested(pool: Sequence[Item], k: int, seed: int, index: int) -> list[Item]:
    """k shots for test item `index`: the first k of a per-item permutation, so shots are nested in k."""
    if not 0 <= k <= len(pool):
        raise ValueError(f"shots k = {k} is not allowed: expected 0 <= k <= pool size {len(pool)}.")
    order = list(range(len(pool)))
    random.Random(f"shots:{seed}:{index}").shuffle(order)
    return [pool[i] for i in order[:k]]
