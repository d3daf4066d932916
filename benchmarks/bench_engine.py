"""The packed engine (chapter 4's pass: trace every layer and answer) against the path a user would write,
and against a plain batched forward, on the same nested k-shot prompts (k = 1..10), CPU.

- naive: for each prompt, Hugging Face `model.generate` (greedy) and then one forward pass with
  `output_attentions=True` and `output_hidden_states=True` to measure eq. 8 at the last token;
- engine: `context_geometry.answer` (`packing.trace_generate`: packed prefill with hooks, greedy decoding from
  the same cache), which measures more (every layer's eq. 8 in both readings, TwoNN of the question's MLP
  inputs) in one pass;
- floor: one plain batched forward of the same prompts (no hooks, no decoding): the fastest anything that
  reads every prompt token could be.

Records `speedup_vs_naive` (naive time / engine time; target >= 3), `over_floor` (engine seconds per computed
token / floor seconds per token; target <= 1.3) and the fraction of answers that agree with the naive path.
All three timings come from the same run on the same machine, so the ratios, not the seconds, are the result.
Writes benchmarks/results/engine.json.

    .venv/bin/python benchmarks/bench_engine.py [--items 6] [--models smollm2-135m]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


def naive(loaded: lm.LoadedModel, prompts: list[str], eps: float) -> list[str]:
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
    return out


def floor(loaded: lm.LoadedModel, prompts: list[str]) -> int:
    ids = lm.token_ids(loaded, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    with torch.no_grad():
        for group in engine.batches(order, [len(ids[i]) for i in order], 32, 4096):
            loaded.model(**lm.encode(loaded, [prompts[i] for i in group]), use_cache=False, logits_to_keep=1)
    return sum(len(x) for x in ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=6, help="questions (x 10 nested prompts each)")
    ap.add_argument("--models", default="smollm2-135m")
    args = ap.parse_args()
    rows = []
    for name in args.models.split(","):
        loaded = lm.load(name.strip(), device="cpu")
        owners, prompts = nested_prompts(loaded, args.items)
        floor(loaded, prompts[:4])  # warm-up
        t0 = time.perf_counter()
        floor_tokens = floor(loaded, prompts)
        t_floor = time.perf_counter() - t0
        t0 = time.perf_counter()
        res, _ = tasks.answer(loaded, owners, prompts, eps=0.1, max_new_tokens=MAX_NEW)
        t_engine = time.perf_counter() - t0
        t0 = time.perf_counter()
        answers = naive(loaded, prompts, 0.1)
        t_naive = time.perf_counter() - t0
        agree = sum(a.strip() == b.strip() for a, b in zip(answers, res.outputs)) / len(prompts)
        rows.append({"model": name, "prompts": len(prompts), "prompt_tokens": floor_tokens,
                     "engine_tokens_fed": int(res.tokens_fed), "naive_s": round(t_naive, 2),
                     "engine_s": round(t_engine, 2), "floor_s": round(t_floor, 2),
                     "speedup_vs_naive": round(t_naive / t_engine, 2),
                     "over_floor": round((t_engine / res.tokens_fed) / (t_floor / floor_tokens), 2),
                     "answers_agree": round(agree, 3), "threads": torch.get_num_threads()})
        print(rows[-1], flush=True)
    write_results(Path(__file__).parent / "results" / "engine.json",
                  {"machine": machine_info(), "targets": {"speedup_vs_naive": ">= 3", "over_floor": "<= 1.3"},
                   "rows": rows, "speedup_vs_naive": min(r["speedup_vs_naive"] for r in rows),
                   "over_floor": max(r["over_floor"] for r in rows)})


if __name__ == "__main__":
    main()
