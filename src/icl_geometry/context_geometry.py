"""Chapter 4's experiment (paper A, section 3): does added context raise the last layer's intrinsic
dimension, and does that rise predict a correct answer?

Each base question is asked at 0 shots and with k shots (k = 1..10, nested), random-token or shuffled-text
contexts of the same length; `packing.trace_generate` traces every prompt at every layer and answers it
greedily in the same pass (the k-shot prompts of one question share one packed sequence). The statistics
the chapter reads off the result live in `icl_geometry.stats`; `context_contrast` pairs two contexts item
by item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from icl_geometry import tasks
from icl_geometry.packing import PromptPass, tail_lengths, trace_generate
from icl_geometry.stats import item_mean_interval

MEASURES = ("id_abs", "id_rel", "twonn")


# ============================================================================= the experiment

def question_marker(item: tasks.Item) -> str:
    """Where a prompt's tail (its TwoNN cloud) starts: the question line, the same text in every prompt."""
    return f"Q: {item.question}"


def prompts_for(loaded: Any, items: Sequence[tasks.Item], pools: dict[str, Sequence[tasks.Item]],
                indices: Sequence[int], k: int, context: str = "shots", seed: int = 0,
                chat_style: str = "multi_turn") -> list[str]:
    """k-shot prompts (`tasks.format_prompt`) whose shots come from each item's own family pool, chosen
    by `tasks.choose_shots` with the item's stable index, so the shots are nested in k."""
    return [tasks.format_prompt(loaded, it, tasks.choose_shots(pools[it.family], k, seed, i), context, seed,
                                chat_style) for it, i in zip(items, indices, strict=True)]


def answer(loaded: Any, items: Sequence[tasks.Item], prompts: Sequence[str], **kwargs: Any) -> tuple[PromptPass, np.ndarray]:
    """`packing.trace_generate` on prompts whose tails are the items' questions, answers stopped at the end of
    their first line (`tasks.stop_at_newline`); returns the pass and correctness."""
    tails = tail_lengths(loaded, prompts, [question_marker(it) for it in items])
    res = trace_generate(loaded, prompts, tails, **{"stop": tasks.stop_at_newline, **kwargs})
    return res, np.array([tasks.is_correct(it, o) for it, o in zip(items, res.outputs)])


@dataclass
class ContextRun:
    """Everything chapter 4 measures for one model: the 0-shot candidates, the base set (items wrong at
    0 shots), and one row per (base item, context, k) with correctness and per-layer measures."""

    model: str
    n_layers: int
    eps: float
    candidates: Any  # DataFrame: family, index, question, answer, output, correct (0 shots)
    items: list[tasks.Item]  # the base set
    rows: Any  # DataFrame: item, family, context, k, correct, output, n_tokens
    values: dict[str, np.ndarray]  # measure -> (n_rows, n_layers)
    zero: dict[str, np.ndarray]  # measure -> (n_items, n_layers), the base items at 0 shots
    last_mlp: np.ndarray  # (n_rows, len(mlp_layers), d_model) float16
    zero_last_mlp: np.ndarray  # (n_items, len(mlp_layers), d_model)
    mlp_layers: tuple[int, ...]
    tokens_fed: int = 0  # token positions computed, both passes (packing makes this far less than prompt_tokens)
    prompt_tokens: int = 0  # the prompts' lengths summed: what unpacked passes would compute, decoding aside
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of the 0-shot pass and the context pass

    def delta(self, measure: str) -> np.ndarray:
        """(n_rows, n_layers): each row's value minus its item's 0-shot value (the paper's 'ID change')."""
        if measure not in self.values:
            raise ValueError(f"measure = {measure!r} is not allowed: expected one of {list(self.values)}")
        return self.values[measure] - self.zero[measure][self.rows["item"].to_numpy()]

    def mask(self, context: str | None = None) -> np.ndarray:
        return np.ones(len(self.rows), bool) if context is None else (self.rows["context"] == context).to_numpy()


def _interleave(groups: list[list[int]]) -> list[int]:
    out, i = [], 0
    while any(i < len(g) for g in groups):
        out += [g[i] for g in groups if i < len(g)]
        i += 1
    return out


def run_experiment(loaded: Any, families: Sequence[str], n_candidates: int, shots: Sequence[int],
                   perturbed_shots: Sequence[int] = (), n_base: int | None = None,
                   contexts: Sequence[str] = tasks.CONTEXTS, seed: int = 0, n_pool: int = 20, eps: float = 0.1,
                   batch_size: int = 32, batch_tokens: int = 4096, max_new_tokens: int = 16, chat_style: str = "multi_turn",
                   mlp_layers: Sequence[int] = (0, -1), progress: bool = False) -> ContextRun:
    """Paper A's section-3 experiment on `loaded`.

    1. `n_candidates` test items per family (fewer if a family has fewer), answered at 0 shots; the base set is the items answered wrongly
       (at most `n_base`, families interleaved). 2. Each base item with k shots for k in `shots`
       (context 'shots'), and with random tokens or shuffled shot text of the same length for k in
       `perturbed_shots`. Every prompt is traced at every layer and answered greedily in the same pass.
    """
    import pandas as pd

    for c in contexts:
        if c not in tasks.CONTEXTS:
            raise ValueError(f"contexts: {c!r} is not allowed: expected some of {list(tasks.CONTEXTS)}")
    ks_all = [k for k in (*shots, *perturbed_shots)]
    if any(k < 1 for k in ks_all):
        raise ValueError("shots and perturbed_shots: every k must be >= 1 (0 shots is the baseline)")
    if ks_all and max(ks_all) > n_pool:
        raise ValueError(f"n_pool = {n_pool} is smaller than the largest k ({max(ks_all)})")
    kw = dict(eps=eps, batch_size=batch_size, batch_tokens=batch_tokens, max_new_tokens=max_new_tokens,
              mlp_layers=mlp_layers, progress=progress)
    pools, cand, cand_idx = {}, [], []
    for fam in families:
        test, pool = tasks.split(fam, n_candidates, n_pool, seed=seed, strict=False)
        pools[fam] = pool
        cand += test
        cand_idx += list(range(len(test)))
    zero_prompts = prompts_for(loaded, cand, pools, cand_idx, 0, "shots", seed, chat_style)
    t0 = time.perf_counter()
    res0, correct0 = answer(loaded, cand, zero_prompts, **kw)
    t1 = time.perf_counter()
    candidates = pd.DataFrame({"family": [it.family for it in cand], "index": cand_idx,
                               "question": [it.question for it in cand], "answer": [it.answer for it in cand],
                               "output": res0.outputs, "correct": correct0})
    base = _interleave([[i for i in range(len(cand)) if cand[i].family == f and not correct0[i]] for f in families])
    base = base[:n_base] if n_base is not None else base
    items = [cand[i] for i in base]

    spec = [(b, c, k) for b in range(len(base)) for c in contexts
            for k in (shots if c == "shots" else perturbed_shots)]
    prompts = [prompts_for(loaded, [items[b]], pools, [cand_idx[base[b]]], k, c, seed, chat_style)[0]
               for b, c, k in spec]
    res, correct = answer(loaded, [items[b] for b, _, _ in spec], prompts, **kw) if spec else (None, np.zeros(0, bool))
    t2 = time.perf_counter()
    rows = pd.DataFrame({"item": [b for b, _, _ in spec], "family": [items[b].family for b, _, _ in spec],
                         "context": [c for _, c, _ in spec], "k": [k for _, _, k in spec], "correct": correct,
                         "output": res.outputs if res else [], "n_tokens": res.n_tokens if res else []})
    L = loaded.n_layers
    values = {m: getattr(res, m) if res else np.zeros((0, L)) for m in MEASURES}
    zero = {m: getattr(res0, m)[base] for m in MEASURES}
    return ContextRun(loaded.name, L, eps, candidates, items, rows, values, zero,
                      res.last_mlp if res else np.zeros((0, len(res0.mlp_layers), loaded.d_model), np.float16),
                      res0.last_mlp[base], res0.mlp_layers, res0.tokens_fed + (res.tokens_fed if res else 0),
                      int(res0.n_tokens.sum() + (res.n_tokens.sum() if res else 0)),
                      {"zero_shot_pass": t1 - t0, "context_pass": t2 - t1})


def parse_families(value: Any) -> tuple[str, ...]:
    """The chapter's `families` parameter: comma-separated names of `tasks.FAMILIES`, validated."""
    names = tuple(v.strip() for v in str(value).split(",") if v.strip()) if isinstance(value, str) else ()
    bad = [v for v in names if v not in tasks.FAMILIES]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"Parameter 'families' = {value!r} is not allowed: expected distinct comma-separated "
                         f"names from {list(tasks.FAMILIES)}.")
    return names


# ============================================================================= chapter-level summaries

def context_contrast(run: ContextRun, values: np.ndarray, a: str, b: str, n_boot: int = 1000, level: float = 0.9,
                     seed: int = 0) -> tuple[float, tuple[float, float], int]:
    """Mean of values[context a] - values[context b] over the (item, k) pairs both contexts have, averaged
    within items first, with a bootstrap interval over items. Returns (mean, interval, n_items)."""
    r = run.rows
    key = list(zip(r["item"], r["k"]))
    va = {kk: v for kk, v, m in zip(key, values, run.mask(a)) if m}
    vb = {kk: v for kk, v, m in zip(key, values, run.mask(b)) if m}
    both = sorted(set(va) & set(vb))
    if not both:
        raise ValueError(f"context_contrast: contexts {a!r} and {b!r} share no (item, k) pair")
    diffs = [float(va[pair]) - float(vb[pair]) for pair in both]
    return item_mean_interval(diffs, [item for item, _ in both], n_boot=n_boot, level=level, seed=seed)
