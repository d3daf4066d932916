"""Offline task suites for the LLM chapters: seeded item generators, few-shot prompts, perturbed
contexts (random tokens, shuffled text), and answer scoring without a judge model.

Every family generates (question, gold answer) items in code from a seed, so the suite needs no
download and is identical on every machine. Families range from one-step lookups a 135M model
knows to short word problems in the spirit of GSM8K-Zero (answers readable from the question
or one small step away). Which families have in-context headroom for a given model is measured,
not assumed: see `headroom` and chapter 4.
"""

from __future__ import annotations

import functools
import random
import re
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

CONTEXTS = ("shots", "random", "shuffled")


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


FAMILIES: dict[str, Family] = {f.name: f for f in (
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


def check_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"Task family {name!r} is not known: expected one of {list(FAMILIES)}.")
    return FAMILIES[name]


def make_items(family: str, n: int, seed: int = 0, exclude: Sequence[Item] = (), strict: bool = True) -> list[Item]:
    """`n` distinct items of a family, seeded; questions in `exclude` are never repeated.

    Small families (e.g. 48 capitals) run out: `strict=False` returns the distinct items found instead of failing.
    """
    fam = check_family(family)
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


def split(family: str, n_test: int, n_pool: int, seed: int = 0, strict: bool = True) -> tuple[list[Item], list[Item]]:
    """Test items and a disjoint pool from which few-shot examples are drawn (`strict=False`: fewer test
    items when the family runs out; the pool is always complete)."""
    pool = make_items(family, n_pool, seed=seed + 1)
    test = make_items(family, n_test, seed=seed, exclude=pool, strict=strict)
    return test, pool


# ---------------------------------------------------------------------------------------------
# Prompts.
def qa_block(item: Item) -> str:
    return f"Q: {item.question}\nA: {item.answer}"


def choose_shots(pool: Sequence[Item], k: int, seed: int, index: int) -> list[Item]:
    """k shots for test item `index`: the first k of a per-item permutation, so shots are nested in k."""
    if not 0 <= k <= len(pool):
        raise ValueError(f"shots k = {k} is not allowed: expected 0 <= k <= pool size {len(pool)}.")
    order = list(range(len(pool)))
    random.Random(f"shots:{seed}:{index}").shuffle(order)
    return [pool[i] for i in order[:k]]


def random_token_text(tokenizer: Any, n_tokens: int, rng: random.Random) -> str:
    """Text of random vocabulary words that re-tokenizes to exactly `n_tokens` tokens.

    "Same length" means the same number of tokens: `tokenizer(text, add_special_tokens=False)` gives exactly
    `n_tokens` ids (checked here by re-encoding). The words are word-initial vocabulary pieces (a leading
    'Ġ' or '▁'; whole words for a word-level tokenizer) that are ASCII alphabetic, 2-10 letters, joined by
    spaces, so neighbouring words do not merge. The first word has no leading space and may split in two:
    a fresh draw is tried (`_TOKEN_TEXT_DRAWS` in all), then words are dropped or added until the count is
    exact. Raises ValueError when no such text is found.
    """
    if n_tokens < 0:
        raise ValueError(f"n_tokens = {n_tokens} is not allowed: expected an integer >= 0.")
    if n_tokens == 0:
        return ""
    words = _plain_vocab(tokenizer)
    if not words:
        raise ValueError("random_token_text: the tokenizer has no plain alphabetic vocabulary words to draw from")

    def count(ws: list[str]) -> int:
        return len(tokenizer(" ".join(ws), add_special_tokens=False)["input_ids"])

    def draw(n: int) -> list[str]:
        return [words[rng.randrange(len(words))] for _ in range(n)]

    picked = draw(n_tokens)
    for _ in range(_TOKEN_TEXT_DRAWS - 1):
        if count(picked) == n_tokens:
            return " ".join(picked)
        picked = draw(n_tokens)
    for _ in range(4 * n_tokens + 20):  # adjust the last draw: drop or add one word at a time
        have = count(picked)
        if have == n_tokens:
            return " ".join(picked)
        if have > n_tokens and len(picked) > 1:
            picked = picked[:-1]
        elif have > n_tokens:  # one word too long for the count: another first word
            picked = draw(1)
        else:
            picked = picked + draw(1)
    raise ValueError(f"random_token_text: found no text of random vocabulary words that re-tokenizes to exactly "
                     f"{n_tokens} tokens with this tokenizer")


_TOKEN_TEXT_DRAWS = 20
_PLAIN_VOCAB: dict[int, tuple[Any, list[str]]] = {}


def _plain_vocab(tokenizer: Any) -> list[str]:
    """The tokenizer's word-initial vocabulary pieces that are plain ASCII words (2-10 letters), without their
    'Ġ'/'▁' marker, sorted; a word-level tokenizer (no marked pieces) gives its alphabetic words."""
    key = id(tokenizer)
    cached = _PLAIN_VOCAB.get(key)
    if cached is None or cached[0] is not tokenizer:
        special = set(getattr(tokenizer, "all_special_ids", []))
        marked, plain = set(), set()
        for tok, i in tokenizer.get_vocab().items():
            if i in special:
                continue
            if tok[:1] in ("Ġ", "▁"):
                body, bucket = tok[1:], marked
            else:
                body, bucket = tok, plain
            if body.isascii() and body.isalpha() and 2 <= len(body) <= 10:
                bucket.add(body)
        cached = _PLAIN_VOCAB[key] = (tokenizer, sorted(marked or plain))
    return cached[1]


def shuffle_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def context_block(item: Item, shots: Sequence[Item] = (), context: str = "shots", tokenizer: Any = None,
                  seed: int = 0) -> str:
    """The plain-text block that precedes the question (base models, chat_style='single_turn'): the k
    question-answer pairs ('shots'), random vocabulary words of the same length ('random'), or the pairs'
    words in a random order ('shuffled').

    Same length: the random text re-tokenizes to exactly as many tokens as the whole shots block has alone
    (`tokenizer(block, add_special_tokens=False)`, see `random_token_text`); the shuffled block has the same
    words (whitespace-split), so the same word count. Seeded by (context, seed, item.question).
    """
    if context not in CONTEXTS:
        raise ValueError(f"context = {context!r} is not allowed: expected one of {list(CONTEXTS)}.")
    block = "\n\n".join(qa_block(s) for s in shots)
    if shots and context != "shots":
        rng = random.Random(f"{context}:{seed}:{item.question}")
        if context == "shuffled":
            block = shuffle_words(block, rng)
        else:
            if tokenizer is None:
                raise ValueError("context='random' needs the model's tokenizer")
            block = random_token_text(tokenizer, _n_tokens(tokenizer, block), rng)
    return block


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def build_prompt(item: Item, shots: Sequence[Item] = (), context: str = "shots", tokenizer: Any = None,
                 seed: int = 0, instruction: bool = True) -> str:
    """Plain-text prompt: instruction, a context block (`context_block`), then `Q: question` / `A:`.

    This is the prompt of base models; `format_prompt` builds the chat version for instruct models.
    """
    head = check_family(item.family).instruction if instruction else ""
    block = context_block(item, shots, context, tokenizer, seed)
    parts = [p for p in (head, block, f"Q: {item.question}\nA:") if p]
    return "\n\n".join(parts)


CHAT_STYLES = ("multi_turn", "single_turn")


def chat_messages(item: Item, shots: Sequence[Item] = (), context: str = "shots", tokenizer: Any = None,
                  seed: int = 0, instruction: bool = True) -> list[dict[str, str]]:
    """Chat messages for an instruct model: each shot is a user turn `Q: ...` and an assistant turn `A: ...`
    (few-shot as multi-turn, like lm-evaluation-harness's `fewshot_as_multiturn`), then the question's user
    turn `Q: ...`. The instruction opens the first user turn, followed by a blank line.

    The controls keep exactly this layout (the same roles in the same order, the instruction and the final
    question turn verbatim) and replace only the content of every shot turn:
    'random': random vocabulary words that re-tokenize to as many tokens as the content they replace
    (`tokenizer(content, add_special_tokens=False)`, per turn; see `random_token_text`); with SmolLM2's
    template the whole chat prompt then has exactly the shots prompt's token count. 'shuffled': the words
    (whitespace-split) of all shot turns pooled, shuffled and dealt back, each turn keeping its word count
    (its token count moves by a few tokens, as words split differently in a new order). Seeded by
    (context, seed, item.question), like `context_block`.
    """
    if context not in CONTEXTS:
        raise ValueError(f"context = {context!r} is not allowed: expected one of {list(CONTEXTS)}.")
    head = check_family(item.family).instruction if instruction else ""
    turns = [t for s in shots for t in (("user", f"Q: {s.question}"), ("assistant", f"A: {s.answer}"))]
    if turns and context != "shots":
        rng = random.Random(f"{context}:{seed}:{item.question}")
        contents = [c for _, c in turns]
        if context == "shuffled":
            words = [w for c in contents for w in c.split()]
            rng.shuffle(words)
            sizes, contents, at = [len(c.split()) for c in contents], [], 0
            for n in sizes:
                contents.append(" ".join(words[at:at + n]))
                at += n
        else:
            if tokenizer is None:
                raise ValueError("context='random' needs the model's tokenizer")
            contents = [random_token_text(tokenizer, _n_tokens(tokenizer, c), rng) for c in contents]
        turns = [(role, c) for (role, _), c in zip(turns, contents)]
    turns.append(("user", f"Q: {item.question}"))
    if head:
        turns[0] = (turns[0][0], f"{head}\n\n{turns[0][1]}")
    return [{"role": role, "content": content} for role, content in turns]


def format_prompt(loaded: Any, item: Item, shots: Sequence[Item] = (), context: str = "shots", seed: int = 0,
                  chat_style: str = "multi_turn", chat: bool | None = None) -> str:
    """The prompt a model sees: `build_prompt` for base models, the chat template for instruct models.

    chat_style='multi_turn' (default) gives each shot its own user/assistant turns; 'single_turn' puts the
    whole plain-text prompt (shots and a trailing `A:`) in one user message. A small chat model reads the
    single turn as several questions and often answers one of the shots instead (chapter 4 measures this).
    """
    if chat_style not in CHAT_STYLES:
        raise ValueError(f"chat_style = {chat_style!r} is not allowed: expected one of {list(CHAT_STYLES)}.")
    from icl_geometry.llm import lm

    use_chat = loaded.chat if chat is None else chat
    if not use_chat or chat_style == "single_turn":
        return lm.format_prompt(loaded, build_prompt(item, shots, context, loaded.tokenizer, seed), chat=use_chat)
    messages = chat_messages(item, shots, context, loaded.tokenizer, seed)
    return loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------------------------------------
# Scoring.
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
                near = [letters[i] for i in range(gold - width, gold + width + 1) if 0 <= i < len(letters) and i != gold]
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


@dataclass
class Evaluation:
    """Per-item outcomes of one model on one set of prompts."""

    items: list[Item]
    prompts: list[str]
    outputs: list[str]
    correct: list[bool]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(len(self.correct), 1)


def few_shot_prompts(loaded: Any, items: Sequence[Item], pool: Sequence[Item], k: int, seed: int = 0,
                     context: str = "shots", chat_style: str = "multi_turn") -> list[str]:
    """Formatted k-shot prompts for every item (`format_prompt`: chat template where the model has one)."""
    return [format_prompt(loaded, it, choose_shots(pool, k, seed, i), context, seed, chat_style)
            for i, it in enumerate(items)]


def evaluate(loaded: Any, items: Sequence[Item], pool: Sequence[Item], k: int, seed: int = 0,
             context: str = "shots", max_new_tokens: int = 16, batch_size: int = 16,
             progress: bool = False, chat_style: str = "multi_turn") -> Evaluation:
    """Greedy answers (`engine.generate`) of a model to k-shot prompts, scored by `is_correct` (which reads
    the first line; numeric answers take the first number anywhere, so answers are not cut at a newline).

    16 new tokens fit a restated answer ("The first letter of the word 'balloon' is 'B'."); with 10, such
    answers were cut before the answer and scored wrong.
    """
    from icl_geometry.llm import engine

    prompts = few_shot_prompts(loaded, items, pool, k, seed, context, chat_style)
    outputs = engine.generate(loaded, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                              progress=progress)
    return Evaluation(list(items), prompts, outputs, [is_correct(it, o) for it, o in zip(items, outputs)])
