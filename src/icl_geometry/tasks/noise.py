"""Noise on demonstrations (chapter 7): flipped labels and inputs replaced by random text of the same length.

- label noise (`flip_rate` p): round(p k) demonstration labels are flipped (p = 1 is Wei et al.'s
  flipped-label setting);
- input noise (`noise_rate` q): round(q k) demonstration inputs are replaced by random vocabulary text of the
  same token length (`prompts.random_token_text`); their labels stay.
Which demonstrations are corrupted follows one fixed permutation per query, so the corrupted sets are nested
in p (and in q) and conditions compare item by item.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np

from icl_geometry.tasks.classification import Example
from icl_geometry.tasks.prompts import random_token_text


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
