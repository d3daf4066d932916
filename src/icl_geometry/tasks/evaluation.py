"""A model answering a task: greedy answers to k-shot question prompts scored by extraction (`evaluate`);
questions traced and answered in one packed pass and scored by constrained choice on the same pass (`answer`
with options, `choice_outcome`; chapter 4) or separately (`choice_scores`); classification prompts traced in
length-sorted batches and scored by the label words (`clean_accuracy`, the headroom benchmark's measurement).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from icl_geometry.llm import engine
from icl_geometry.llm.packing import PromptPass, tail_lengths, trace_generate
from icl_geometry.tasks.classification import choose_balanced, split_balanced
from icl_geometry.tasks.prompts import format_classification_prompt, format_prompt
from icl_geometry.tasks.qa import Item, choose_nested
from icl_geometry.tasks.scoring import choices, is_correct, label_logprobs, stop_at_newline


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
    return [format_prompt(loaded, it, choose_nested(pool, k, seed, i), context, seed, chat_style)
            for i, it in enumerate(items)]


def evaluate(loaded: Any, items: Sequence[Item], pool: Sequence[Item], k: int, seed: int = 0,
             context: str = "shots", max_new_tokens: int = 16, batch_size: int = 16,
             progress: bool = False, chat_style: str = "multi_turn") -> Evaluation:
    """Greedy answers (`engine.generate`) of a model to k-shot prompts, scored by `is_correct` (which reads
    the first line; numeric answers take the first number anywhere, so answers are not cut at a newline).

    16 new tokens fit a restated answer ("The first letter of the word 'balloon' is 'B'."); with 10, such
    answers were cut before the answer and scored wrong.
    """
    prompts = few_shot_prompts(loaded, items, pool, k, seed, context, chat_style)
    outputs = engine.generate(loaded, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                              progress=progress)
    return Evaluation(list(items), prompts, outputs, [is_correct(it, o) for it, o in zip(items, outputs)])


def trace_all(loaded: Any, texts: Sequence[str], batch_size: int = 16, batch_tokens: int = 4096,
              progress: bool = False) -> tuple[list[Any], list[int]]:
    """`engine.trace_batch` (last-token logits only) on every prompt, in batches formed by `engine.batches`
    (shortest first); returns the traces in input order and the prompts' token counts."""
    lengths, groups = engine.length_batches(loaded, texts, batch_size, batch_tokens)
    traces: list[Any] = [None] * len(texts)
    for group in engine.progress_bar(groups, progress, f"tracing {loaded.name}"):
        out = engine.trace_batch(loaded, [texts[i] for i in group], batch_size=len(group), last_logits_only=True)
        for i, tr in zip(group, out):
            traces[i] = tr
    return traces, lengths


def clean_accuracy(loaded: Any, family: str, n_items: int, n_pool: int, shots: Sequence[int], seed: int = 0,
                   batch_size: int = 16, batch_tokens: int = 4096) -> np.ndarray:
    """(n_items, len(shots)) correctness with clean demonstrations at each k (constrained choice); the
    headroom benchmark's measurement."""
    test, pool = split_balanced(family, n_items, n_pool, seed)
    prompts = [format_classification_prompt(loaded, family, choose_balanced(pool, k, seed, i), q)
               for i, q in enumerate(test) for k in shots]
    traces, _ = trace_all(loaded, [p.text for p in prompts], batch_size, batch_tokens)
    pred = label_logprobs(loaded, prompts, [tr.logits for tr in traces]).argmax(1)
    true = np.repeat([q.true_label for q in test], len(shots))
    return (pred == true).reshape(n_items, len(shots))


# Answering questions in one packed pass, and scoring their admissible choices (chapter 4).

def question_marker(item: Item) -> str:
    """Where a prompt's tail (its TwoNN cloud) starts: the question line, the same text in every prompt."""
    return f"Q: {item.question}"


def prompts_for(loaded: Any, items: Sequence[Item], pools: dict[str, Sequence[Item]],
                indices: Sequence[int], k: int, context: str = "shots", seed: int = 0,
                chat_style: str = "multi_turn") -> list[str]:
    """k-shot prompts (`prompts.format_prompt`) whose shots come from each item's own family pool, chosen
    by `qa.choose_nested` with the item's stable index, so the shots are nested in k."""
    return [format_prompt(loaded, it, choose_nested(pools[it.family], k, seed, i), context, seed,
                                chat_style) for it, i in zip(items, indices, strict=True)]


def answer(loaded: Any, items: Sequence[Item], prompts: Sequence[str], options: bool = False,
           **kwargs: Any) -> tuple[PromptPass, np.ndarray]:
    """`packing.trace_generate` on prompts whose tails are the items' questions, answers stopped at the end of
    their first line (`stop_at_newline`); returns the pass and correctness.

    options=True also scores each item's admissible answers (`scoring.choices` after `answer_prefix`) on the
    same pass's key-value cache (`res.choice_scores`; `choice_outcome` reads them): the numbers of
    `choice_scores`, without its second prefill of every prompt."""
    tails = tail_lengths(loaded, prompts, [question_marker(it) for it in items])
    if options:
        prefix = answer_prefix(loaded)
        kwargs["choices"] = [engine.choice_token_ids(loaded, p, [prefix + c for c in choices(it)])[1]
                             for it, p in zip(items, prompts, strict=True)]
    res = trace_generate(loaded, prompts, tails, **{"stop": stop_at_newline, **kwargs})
    return res, np.array([is_correct(it, o) for it, o in zip(items, res.outputs)], bool)


def answer_prefix(loaded: Any) -> str:
    """What a scored answer starts with after the prompt: `A: ` in a chat model's turn (the shots' assistant
    turns read `A: <answer>`), a space after the plain prompt's trailing `A:`. The prefix is the same for
    every choice, so it shifts all their log-probabilities by one amount and never changes which is chosen."""
    return "A: " if loaded.chat else " "


def choice_scores(loaded: Any, items: Sequence[Item], prompts: Sequence[str], batch_size: int = 32,
                  batch_tokens: int = 4096, groups: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Constrained choice: the model's summed log-probability of each admissible answer (`scoring.choices`:
    the gold and its family's distractors) after each prompt (`engine.score_choices`; `groups` marks prompts
    that share their examples, scored on one cache). Returns whether the gold scored highest, and its margin
    over the best distractor (log-probability, natural log)."""
    prefix = answer_prefix(loaded)
    scores = engine.score_choices(loaded, prompts, [[prefix + c for c in choices(it)] for it in items],
                                  batch_size=batch_size, batch_tokens=batch_tokens, groups=groups)
    return choice_outcome(items, scores)


def choice_outcome(items: Sequence[Item], scores: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """From each item's scores of its admissible answers (in `scoring.choices` order): whether the gold scored
    highest, and its margin over the best distractor (log-probability, natural log)."""
    correct, margin = np.zeros(len(items), bool), np.zeros(len(items))
    for n, (it, s) in enumerate(zip(items, scores, strict=True)):
        g = choices(it).index(it.answer)
        best_other = max(s[j] for j in range(len(s)) if j != g)
        correct[n], margin[n] = s[g] > best_other, s[g] - best_other
    return correct, margin
