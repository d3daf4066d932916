"""Prompts for the LLM chapters: question-answer prompts with k examples (as chat turns for chat models, plain
text for base models), the controls that keep their length and layout (random tokens, shuffled text), and
classification prompts whose demonstrations' input and label spans are kept (for attention-mass measures).
A pool of random-token examples matched one to one to a pool of shots (`random_examples`) gives prompts that
share random examples exactly where they share shots (`format_examples_prompt`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from icl_geometry.tasks.classification import Example, classification_family
from icl_geometry.tasks.qa import Item, qa_family

CONTEXTS = ("shots", "random", "shuffled")


def qa_block(item: Item) -> str:
    return f"Q: {item.question}\nA: {item.answer}"


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
    head = qa_family(item.family).instruction if instruction else ""
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
    head = qa_family(item.family).instruction if instruction else ""
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


def random_examples(tokenizer: Any, pool: Sequence[Item], seed: int = 0) -> list[tuple[str, str]]:
    """One random-token example per pool item, the random counterpart of a shared pool of shots: for pool item
    i, the (user, assistant) contents of random vocabulary words that re-tokenize to as many tokens as its
    'Q: question' and 'A: answer' turns (`random_token_text`, per turn, as context='random' replaces them).
    Seeded by (seed, i, the item's question), not by the test question: every prompt that uses pool item i
    gets the same random example, so prompts share random examples exactly where they share shots."""
    out = []
    for i, s in enumerate(pool):
        rng = random.Random(f"random_example:{seed}:{i}:{s.question}")
        user, assistant = (random_token_text(tokenizer, _n_tokens(tokenizer, c), rng)
                           for c in (f"Q: {s.question}", f"A: {s.answer}"))
        out.append((user, assistant))
    return out


def example_messages(item: Item, examples: Sequence[tuple[str, str]],
                     instruction: bool = True) -> list[dict[str, str]]:
    """Chat messages with the given (user, assistant) example contents in place of the shots' turns, in
    `chat_messages`' layout: the instruction opens the first user turn, the question's user turn closes."""
    head = qa_family(item.family).instruction if instruction else ""
    turns = [t for u, a in examples for t in (("user", u), ("assistant", a))] + [("user", f"Q: {item.question}")]
    if head:
        turns[0] = (turns[0][0], f"{head}\n\n{turns[0][1]}")
    return [{"role": role, "content": content} for role, content in turns]


def format_examples_prompt(loaded: Any, item: Item, examples: Sequence[tuple[str, str]],
                           chat: bool | None = None) -> str:
    """The prompt a model sees with the given (user, assistant) example contents in place of the shots: chat
    models, `example_messages` through the chat template (multi-turn, as `format_prompt`); base models,
    `build_prompt`'s layout with each example as the block 'user\\nassistant'."""
    use_chat = loaded.chat if chat is None else chat
    if use_chat:
        return loaded.tokenizer.apply_chat_template(example_messages(item, examples), tokenize=False,
                                                    add_generation_prompt=True)
    head = qa_family(item.family).instruction
    block = "\n\n".join(f"{u}\n{a}" for u, a in examples)
    return "\n\n".join(p for p in (head, block, f"Q: {item.question}\nA:") if p)


@dataclass(frozen=True)
class DemoPrompt:
    """A formatted prompt, the label words to score after it (`choices`, in class order), and the character
    spans (start, end, group) of every demonstration's input and label."""

    text: str
    choices: tuple[str, str]
    spans: tuple[tuple[int, int, str], ...]


def _span(text: str, needle: str, start: int) -> tuple[int, int]:
    i = text.find(needle, start)
    if i < 0:
        raise ValueError(f"format_classification_prompt: {needle!r} not found in the rendered prompt")
    return i, i + len(needle)


def format_classification_prompt(loaded: Any, family: str, demos: Sequence[Example], query: Example,
                                 chat: bool | None = None) -> DemoPrompt:
    """The prompt a model sees. Chat models: per demonstration a user turn `Input: <text>` and an assistant
    turn `<label>`, then the query's user turn and the generation prompt (choices are the bare label words).
    Base models: blocks `Input: <text>\\nLabel: <label>` separated by blank lines, then `Input: <query>\\nLabel:`
    (choices are ' <label>'). No instruction: the label set comes from the demonstrations alone."""
    fam = classification_family(family)
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
            s, cursor = _span(text, f"Input: {e.text}", cursor)
            spans.append((s + len("Input: "), cursor, "input"))
            s, cursor = _span(text, fam.labels[e.label], cursor)
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
