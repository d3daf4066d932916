"""Headroom of chapter 7's in-context classification families on both bundled models, scored three ways.

For every family (meaningful labels, and the foo/bar versions asked for) and every k in `SHOTS`: n balanced
queries, each with its own k balanced demonstrations drawn from a pool of `N_POOL` (`tasks.demonstrations`, the
chapter's sampler), the label words' log-probabilities after the prompt and after the same prompt with each
content-free input in the query slot (`tasks.calibration`). Per cell: argmax accuracy, contextually calibrated
accuracy (Zhao et al. 2021, from the content-free input 'N/A', as the chapter does), the AUC of the raw
margin, the share of queries answered with label 1 (label-word bias), and whether chapter 7's declared exclusion rule
(`calibration.ExclusionRule`, on the calibrated accuracy) keeps the (model, family) at the chapter's k.
Writes benchmarks/results/demo_headroom.json (the table chapter 7 prints).

    nice -n 10 .venv/bin/python benchmarks/demo_headroom.py [n_queries] [family,...] [model,...]  (default: 16
    queries, every family of FAMILIES, both models; other cells already in the results file are kept)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine_info, write_results

from icl_geometry import tasks
from icl_geometry.llm import lm
from icl_geometry.tasks import calibration as cal
from icl_geometry.tasks import demonstrations as demos
from icl_geometry.tasks.evaluation import trace_all

SHOTS = (8, 16)  # the ci and full profiles' k
N_POOL = 64  # the full profile's pool (32 per class); a family with fewer inputs uses its largest balanced pool
SEED = 0
MODELS = ("smollm2-135m", "gemma3-270m")
FAMILIES = ("sentiment", "category", "tense", "plural", "hundreds", "comparison", "language", "names", "question",
            "sentiment_foobar", "names_foobar")
CONTENT_FREE = ("N/A",)  # the chapter's content-free input (one per prompt: each costs a forward pass)
RESULTS = Path(__file__).parent / "results" / "demo_headroom.json"


def measure(loaded: lm.LoadedModel, family: str, n: int) -> dict:
    """One (model, family): the three scorings at every k of `SHOTS` on n queries (see the module docstring)."""
    pool_n = min(N_POOL, demos.max_pool(family))
    queries, pool = demos.pool_and_queries(family, n, pool_n, SEED)
    true = np.array([q.true_label for q in queries])
    texts, prompts = [], []
    for k in SHOTS:
        for q in queries:
            shown = demos.sample_demonstrations(pool, q, k, family, SEED)
            ps = [tasks.format_classification_prompt(loaded, family, shown, q),
                  *cal.content_free_prompts(loaded, family, shown, CONTENT_FREE)]
            prompts += ps
            texts += [p.text for p in ps]
    t0 = time.perf_counter()
    traces, lengths = trace_all(loaded, texts, 16, 4096)
    lp = tasks.label_logprobs(loaded, prompts, [tr.logits for tr in traces])
    wall = time.perf_counter() - t0
    per = 1 + len(CONTENT_FREE)
    lp = lp.reshape(len(SHOTS), n, per, 2)
    out = {"model": loaded.name, "family": family, "labels": list(tasks.CLASSIFICATION_FAMILIES[family].labels),
           "n_queries": n, "n_pool": pool_n, "queries_outside_pool": demos.queries_outside_pool(queries, pool),
           "wall_s": round(wall, 1), "mean_tokens": round(float(np.mean(lengths)), 1)}
    for j, k in enumerate(SHOTS):
        s = cal.score(lp[j, :, 0], lp[j, :, 1:], true)
        out[str(k)] = {"accuracy": round(s.accuracy, 3), "calibrated_accuracy": round(s.calibrated_accuracy, 3),
                       "auc": round(s.auc, 3),
                       "calibrated_auc": round(s.calibrated_auc, 3), "share_label_1": round(s.share_predicting_1, 3),
                       "calibrated_share_label_1": round(s.calibrated_share_predicting_1, 3)}
        out[str(k)]["excluded"] = cal.ExclusionRule().reason(s.calibrated_accuracy) or ""
    return out


def main(n: int = 16, families: tuple[str, ...] = FAMILIES, models: tuple[str, ...] = MODELS) -> None:
    torch.set_num_threads(1)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rows = [r for r in old.get("rows", [])  # keep the other (model, family) cells of this benchmark
            if "n_pool" in r and not (r["model"] in models and r["family"] in families)]
    for name in models:
        loaded = lm.load(name, "cpu")
        for family in families:
            r = measure(loaded, family, n)
            rows.append(r)
            print(name, family, {k: (r[str(k)]["accuracy"], r[str(k)]["calibrated_accuracy"], r[str(k)]["auc"])
                                 for k in SHOTS}, f"{r['wall_s']} s", flush=True)
            write_results(RESULTS, {"benchmark": "demo_headroom", "shots": list(SHOTS), "n_pool": N_POOL,
                                    "seed": SEED, "content_free": list(CONTENT_FREE),
                                    "exclusion": {"chance_band": cal.ExclusionRule().chance_band,
                                                  "ceiling_band": cal.ExclusionRule().ceiling_band},
                                    "machine": machine_info(), "rows": rows})
        del loaded


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16,
         tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else FAMILIES,
         tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else MODELS)
