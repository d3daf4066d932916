"""The packed engine (chapter 4's pass: trace every layer, answer, score the constrained choices) against the
path a user would write, against the chapter's former two-pass path, and against a plain batched forward, on the
same nested k-shot prompts (k = 1..10), CPU. Rows at 20, 60 and 200 prompts (--items 2,6,20).

- naive: for each prompt, Hugging Face `model.generate` (greedy) and then one forward pass with
  `output_attentions=True` and `output_hidden_states=True` to measure eq. 8 at the last token; then
  `engine.score_choices` on every prompt (a second prefill) for the constrained choices;
- before: what chapter 4 ran before the choices moved onto the answer pass: `tasks.answer` with every forward
  eager, then `tasks.choice_scores` (its own prefill, nested prompts sharing one cache);
- engine: `tasks.answer(options=True)` (`packing.trace_generate`: packed prefill with hooks, greedy decoding and
  the candidates on the same cache, SDPA wherever no attention weights are read), which measures more (every
  layer's eq. 8 in both readings, TwoNN of the question's MLP inputs) in one pass;
- floor: one plain batched forward of the same prompts (no hooks, no decoding, the model as loaded: eager
  attention): the fastest anything that reads every prompt token could be with that attention; floor_sdpa: the
  same forward with SDPA.

Records per size `speedup_vs_naive` (naive time / engine time; target >= 3), `speedup_vs_before`,
`over_floor` (engine seconds per computed token / floor seconds per prompt token; target <= 1.3, at every size),
`over_floor_sdpa`, and the fractions of answers and choices that agree with the naive and former paths.
All timings come from the same run on the same machine, so the ratios, not the seconds, are the result.

    .venv/bin/python benchmarks/bench_engine.py [--items 2,6,20] [--models smollm2-135m] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine_info, write_results

from icl_geometry.core import attention_graph as ag
from icl_geometry.llm import engine, lm
from icl_geometry import tasks

SHOTS = tuple(range(1, 11))
MAX_NEW = 16


def nested_prompts(loaded: lm.LoadedModel, n_items: int, seed: int = 0):
    """n_items questions (two families) x k = 1..10 nested shots: the prompts chapter 4 runs."""
    items, prompts, owners = [], [], []
    for family in ("arithmetic", "word_problems"):
        pool = tasks.make_items(family, 60, seed=seed + 1)
        its = tasks.make_items(family, n_items // 2, seed=seed, exclude=pool)
        for i, it in enumerate(its):
            for k in SHOTS:
                prompts += tasks.prompts_for(loaded, [it], {family: pool}, [i], k, seed=seed)
                owners.append(it)
        items += its
    return owners, prompts


def naive(loaded: lm.LoadedModel, owners: list, prompts: list[str], eps: float) -> tuple[list[str], list]:
    """Per prompt: HF greedy generate, then a forward with every attention map; then the choices' own prefill."""
    model, tok = loaded.model, loaded.tokenizer
    out = []
    with torch.no_grad():
        for p in prompts:
            enc = lm.encode(loaded, [p])
            gen = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False, pad_token_id=engine.pad_id(loaded))
            text = tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.append(text.split("\n")[0])
            att = model(**enc, output_attentions=True, output_hidden_states=True, use_cache=False).attentions
            [ag.id_eps(a[0, :, -1].float().numpy(), eps) for a in att]
    prefix = tasks.answer_prefix(loaded)
    scores = engine.score_choices(loaded, prompts, [[prefix + c for c in tasks.choices(it)] for it in owners])
    return out, scores


def before(loaded: lm.LoadedModel, owners: list, prompts: list[str]) -> tuple[list[str], np.ndarray]:
    """Chapter 4's former path: the packed pass all eager, then `choice_scores` with its own prefill."""
    res, _ = tasks.answer(loaded, owners, prompts, eps=0.1, max_new_tokens=MAX_NEW, sdpa=False)
    groups = [it.question for it in owners]  # a question's nested k-shot prompts share their examples
    choice, _ = tasks.choice_scores(loaded, owners, prompts, groups=groups)
    return res.outputs, choice


def floor(loaded: lm.LoadedModel, prompts: list[str], attention: str = "eager") -> int:
    """One plain batched forward over every prompt (batches as the engine forms them); returns the tokens read."""
    ids = lm.token_ids(loaded, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    with torch.no_grad(), lm.attention_implementation(loaded, attention):
        for group in engine.batches(order, [len(ids[i]) for i in order], 32, 4096):
            loaded.model(**lm.encode(loaded, [prompts[i] for i in group]), use_cache=False, logits_to_keep=1)
    return sum(len(x) for x in ids)


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", default="2,6,20", help="questions (x 10 nested prompts each), one row per value")
    ap.add_argument("--models", default="smollm2-135m")
    ap.add_argument("--naive-max", type=int, default=10**6, help="skip naive above this many prompts")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine.json"))
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        loaded = lm.load(name.strip(), device="cpu")
        for n_items in [int(x) for x in args.items.split(",")]:
            owners, prompts = nested_prompts(loaded, n_items)
            floor(loaded, prompts[:4])  # warm-up
            floor_tokens, t_floor = timed(floor, loaded, prompts)
            _, t_floor_sdpa = timed(floor, loaded, prompts, "sdpa")
            (res, _), t_engine = timed(tasks.answer, loaded, owners, prompts, options=True, eps=0.1,
                                       max_new_tokens=MAX_NEW)
            choice, _ = tasks.choice_outcome(owners, res.choice_scores)
            (old_answers, old_choice), t_before = timed(before, loaded, owners, prompts)
            per_token_floor = t_floor / floor_tokens
            row = {"model": name, "prompts": len(prompts), "prompt_tokens": floor_tokens,
                   "engine_tokens_fed": int(res.tokens_fed), "engine_s": round(t_engine, 2),
                   "before_s": round(t_before, 2), "floor_s": round(t_floor, 2),
                   "floor_sdpa_s": round(t_floor_sdpa, 2),
                   "over_floor": round((t_engine / res.tokens_fed) / per_token_floor, 2),
                   "over_floor_sdpa": round((t_engine / res.tokens_fed) / (t_floor_sdpa / floor_tokens), 2),
                   "speedup_vs_before": round(t_before / t_engine, 2),
                   "answers_agree_before": round(float(np.mean([a == b for a, b in zip(old_answers, res.outputs)])), 3),
                   "choices_agree_before": round(float(np.mean(old_choice == choice)), 3),
                   "threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2)}
            if len(prompts) <= args.naive_max:
                (answers, _), t_naive = timed(naive, loaded, owners, prompts, 0.1)
                row |= {"naive_s": round(t_naive, 2), "speedup_vs_naive": round(t_naive / t_engine, 2),
                        "answers_agree": round(sum(a.strip() == b.strip() for a, b in zip(answers, res.outputs))
                                               / len(prompts), 3)}
            rows.append(row)
            print(rows[-1], flush=True)
    with_naive = [r["speedup_vs_naive"] for r in rows if "speedup_vs_naive" in r]
    write_results(Path(args.out),
                  {"machine": machine_info(), "targets": {"speedup_vs_naive": ">= 3", "over_floor": "<= 1.3"},
                   "rows": rows, "speedup_vs_naive": min(with_naive) if with_naive else None,
                   "over_floor": max(r["over_floor"] for r in rows)})


if __name__ == "__main__":
    main()
