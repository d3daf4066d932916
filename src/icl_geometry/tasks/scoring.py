"""Scoring answers without a judge model: extraction from free text, the admissible choices of a question, and
for classification prompts the label words' log-probabilities and which tokens are labels or inputs.
"""

from __future__ import annotations

import functools
import random
import re
import string
import unicodedata
from typing import Any, Sequence

import numpy as np

from icl_geometry.llm import engine, lm
from icl_geometry.tasks.classification import GROUPS
from icl_geometry.tasks.prompts import DemoPrompt
from icl_geometry.tasks.qa import (ANTONYM_ALIASES, ANTONYMS, CAPITAL_ALIASES, CAPITALS, COUNTRY_ALIASES,
                                   NUMBER_WORDS, Item)


def first_line(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^(A|Answer)\s*:\s*", "", text, flags=re.IGNORECASE)
    return text.split("\n", 1)[0].strip()


def stop_at_newline(text: str) -> bool:
    """The stop rule of greedy decoding: the answer is complete once a line with some text (other than an
    'A:' label) has ended; `first_line` reads only that line."""
    text = re.sub(r"^\s*(A|Answer)\s*:", "", text, flags=re.IGNORECASE)
    return re.search(r"\S[^\n]*\n", text) is not None


def extract_number(text: str) -> str | None:
    """The first integer in the first line, digits or a number word (zero to twenty).

    A worked line such as '38 - 13 = 25' is read after its last '='.
    """
    line = first_line(text).replace(",", "")
    if "=" in line:
        line = line.rsplit("=", 1)[1]
    for tok in re.findall(r"-?\d+|[A-Za-z]+", line):
        if re.fullmatch(r"-?\d+", tok):
            return str(int(tok))
        if tok.lower() in NUMBER_WORDS:
            return str(NUMBER_WORDS[tok.lower()])
    return None


def fold(text: str) -> str:
    """Lower case without accents ('Bogotá' -> 'bogota'), for comparing names."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _find(phrase: str, line: str, case: bool = False) -> int | None:
    """Start of `phrase` as a whole word in `line`, or None."""
    hay, needle = (line, phrase) if case else (fold(line), fold(phrase))
    m = re.search(rf"(?<![\w]){re.escape(needle)}(?![\w])", hay)
    return m.start() if m else None


def _first_option(line: str, options: Sequence[str]) -> str | None:
    best, where = None, len(line) + 1
    for opt in options:
        at = _find(opt, line)
        if at is not None and at < where:
            best, where = opt, at
    return best


# A reply that restates the question ("The capital of Peru is Lima.") is read after its "is": per family,
# because the same words can be the answer elsewhere ("The capital of Peru is Lima" answers country_of).
_RESTATEMENTS = {
    "capitals": r"capital", "antonyms": r"(?:opposite|antonym)", "next_letter": r"(?:next |previous )?letter",
    "first_letter": r"first letter", "last_word": r"last word",
}


def _after_restatement(family: str, line: str) -> str:
    noun = _RESTATEMENTS.get(family)
    if noun is None:
        return line
    m = re.match(rf"^(?:the\s+)?{noun}\b.*?\s(?:is|are)\s+(.*)$", line, flags=re.IGNORECASE)
    return m.group(1) if m else line


@functools.cache
def _vocabulary(family: str) -> tuple[str, ...]:
    """Every answer the family's generator can produce, longest first (what 'first named' is taken among)."""
    words: set[str] = set()
    if family == "country_of":
        words = set(CAPITALS) | {a for v in COUNTRY_ALIASES.values() for a in v}
    elif family == "capitals":
        words = set(CAPITALS.values()) | {a for v in CAPITAL_ALIASES.values() for a in v}
    elif family == "antonyms":
        words = set(ANTONYMS) | set(ANTONYMS.values()) | {a for v in ANTONYM_ALIASES.values() for a in v}
    return tuple(sorted(words, key=lambda w: (-len(w), w)))


def extract_answer(item: Item, text: str) -> str | None:
    """The model's answer to `item` read from its continuation, or None when there is none.

    Rules (no judge model: every item has one short gold answer): items with options take the option
    named first; numeric answers take the first number (after a trailing '='); other answers are read
    from the first line of at most 12 words, after a restatement of the question ('The opposite of
    hot is cold' -> 'cold'), as the first answer of the family's vocabulary named there (the gold, an
    alias, or a wrong answer), else the first word. Accents and case are ignored, except for
    single letters, which are case-sensitive.
    """
    line = first_line(text)
    if item.options:
        return _first_option(line, item.options)
    if re.fullmatch(r"-?\d+", item.answer):
        return extract_number(text)
    if len(line.split()) > 12:
        return None
    span = _after_restatement(item.family, line)
    accepted = (item.answer, *item.aliases)
    case = len(item.answer) == 1
    candidates = [(at, a) for a in accepted if (at := _find(a, span, case)) is not None]
    candidates += [(at, w) for w in _vocabulary(item.family) if (at := _find(w, span, case)) is not None]
    if candidates:
        return min(candidates, key=lambda c: c[0])[1]
    words = span.split()
    return words[0].strip(string.punctuation + "'\"") if words else None


def is_correct(item: Item, text: str) -> bool:
    """Whether the extracted answer is the gold answer or one of its aliases (see `extract_answer`)."""
    return _is_gold(item, extract_answer(item, text))


def _is_gold(item: Item, pred: str | None) -> bool:
    if pred is None:
        return False
    if len(item.answer) == 1:
        return pred in (item.answer, *item.aliases)
    return fold(pred) in {fold(a) for a in (item.answer, *item.aliases)}


OUTCOMES = ("correct", "no answer", "wrong answer")


def outcome(item: Item, text: str) -> str:
    """Why a reply scored as it did, one of `OUTCOMES`: 'correct' (`is_correct`), 'no answer'
    (`extract_answer` finds none, e.g. a reply cut before any number) or 'wrong answer'."""
    pred = extract_answer(item, text)
    if pred is None:
        return OUTCOMES[1]
    return OUTCOMES[0] if _is_gold(item, pred) else OUTCOMES[2]


_NUMBER_OFFSETS = (1, 2, 3, 10)


def choices(item: Item, n: int = 4) -> tuple[str, ...]:
    """The admissible answers a constrained-choice scorer compares: the gold answer and distractors, distinct
    after `fold`, in a seeded shuffled order (the gold is not always first).

    Items with `options` (compare, 'who is older' word problems, last_word lists): all the options (`n` is
    ignored). Integer answers: the gold and n-1 distinct non-negative integers near it (gold ±1, ±2, ±3,
    ±10; further offsets only if these run out). Single letters: the gold and n-1 other capital letters
    within ±3 in the alphabet (wider only if these run out). Families with a vocabulary (capitals,
    country_of, antonyms): the gold and n-1 other words of the family's vocabulary that are not the gold or
    one of its aliases. Among the choices `is_correct` holds for the gold alone. Seeded by the question.
    """
    rng = random.Random(f"choices:{item.question}")
    if item.options:
        out = list(item.options)
    else:
        if n < 2:
            raise ValueError(f"n = {n} is not allowed: expected an integer >= 2 (the gold and a distractor).")
        if re.fullmatch(r"-?\d+", item.answer):
            gold = int(item.answer)
            near = [gold + s * d for d in _NUMBER_OFFSETS for s in (-1, 1) if gold + s * d >= 0]
            d = 4
            while len(near) < n - 1:
                near += [v for v in (gold - d, gold + d) if v >= 0 and d not in _NUMBER_OFFSETS]
                d += 1
            out = [item.answer, *map(str, rng.sample(near, n - 1))]
        elif len(item.answer) == 1 and item.answer.isalpha() and item.answer.isascii():
            letters, gold = string.ascii_uppercase, string.ascii_uppercase.index(item.answer.upper())
            if n > len(letters):
                raise ValueError(f"n = {n} is not allowed for a letter answer: expected at most {len(letters)}.")
            width = 3
            while True:
                near = [letters[i] for i in range(gold - width, gold + width + 1)
                        if 0 <= i < len(letters) and i != gold]
                if len(near) >= n - 1:
                    break
                width += 1
            out = [item.answer, *rng.sample(near, n - 1)]
        elif _vocabulary(item.family):
            taken = {fold(a) for a in (item.answer, *item.aliases)}
            others = sorted({fold(w): w for w in _vocabulary(item.family) if fold(w) not in taken}.values())
            if len(others) < n - 1:
                raise ValueError(f"n = {n} is not allowed for family {item.family!r}: its vocabulary has only "
                                 f"{len(others)} other answers.")
            out = [item.answer, *rng.sample(others, n - 1)]
        else:
            raise ValueError(f"choices: family {item.family!r} has no options, integer, letter or vocabulary "
                             f"answers to draw distractors from (answer {item.answer!r}).")
    rng.shuffle(out)
    return tuple(out)


def two_option(item: Item) -> bool:
    """Whether the item offers two choices (`choices`): a coin flip, which chapter 4 leaves out of its base set."""
    return len(choices(item)) == 2


def token_groups(loaded: Any, prompt: DemoPrompt) -> np.ndarray:
    """One group per prompt token (as `lm.token_ids` tokenises it): 0 = a demonstration's label, 1 = a
    demonstration's input, 2 = everything else (template, separators, query, special tokens). A token
    belongs to a span when it overlaps it."""
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


def label_logprobs(loaded: Any, prompts: Sequence[DemoPrompt], last_logits: Sequence[Any] | None = None,
                   batch_size: int = 32, batch_tokens: int = 8192) -> np.ndarray:
    """(n, 2) log-probability of each label word after each prompt. When every label word is one token, read
    from the last-token logits (`last_logits`, e.g. the traces'): the same number `engine.score_choices`
    computes; otherwise (or without logits) `engine.score_choices` itself."""
    single = last_logits is not None and all(
        all(len(t) == 1 for t in engine.choice_token_ids(loaded, p.text, p.choices)[1]) for p in prompts[:1]) and all(
        p.choices == prompts[0].choices for p in prompts)
    if single:
        ids = [t[0] for t in engine.choice_token_ids(loaded, prompts[0].text, prompts[0].choices)[1]]
        if len(set(ids)) < len(ids):
            raise ValueError(f"label words {prompts[0].choices} are the same token for {loaded.name}: "
                             f"their choice is undefined")
        out = np.zeros((len(prompts), len(ids)))
        for n, logits in enumerate(last_logits):
            logp = np.asarray(logits, dtype=np.float64)
            logp = logp - (logp.max() + np.log(np.exp(logp - logp.max()).sum()))
            out[n] = logp[ids]
        return out
    scores = engine.score_choices(loaded, [p.text for p in prompts], [list(p.choices) for p in prompts],
                                  batch_size=batch_size, batch_tokens=batch_tokens)
    return np.stack(scores)
