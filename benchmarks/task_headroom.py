"""In-context headroom of every task family on both bundled models: accuracy at 0, 1, 3, 5 and 10 shots.

Chapter 4 needs items a model gets wrong at 0 shots and sometimes right with shots; this measures which
families have that headroom, on the same path the chapter uses (`context_geometry.answer`: greedy decoding
with the stop rule, `tasks.is_correct`). For the chat model it also measures the single-user-turn prompt
format, which a 135M chat model misreads (see the chapter). Writes benchmarks/results/task_headroom.json.

    .venv/bin/python benchmarks/task_headroom.py [n_items]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from _common import machine_info, write_results

from icl_geometry.llm import lm
from icl_geometry.core import stats
from icl_geometry import tasks

SHOTS = (0, 1, 3, 5, 10)
N_POOL = 12  # >= 10 shots; small families (capitals: 48 countries) need the rest for test items
SEED = 0


def measure(loaded: lm.LoadedModel, family: str, n: int, chat_style: str) -> dict:
    test, pool = tasks.split(family, n, N_POOL, seed=SEED)
    items = [it for it in test for _ in SHOTS]
    prompts = [p for i, it in enumerate(test)
               for k in SHOTS for p in tasks.prompts_for(loaded, [it], {family: pool}, [i], k, chat_style=chat_style)]
    t0 = time.perf_counter()
    res, correct = tasks.answer(loaded, items, prompts)
    wall = time.perf_counter() - t0
    c = correct.reshape(n, len(SHOTS))
    wrong0 = ~c[:, 0]
    acc = {str(k): round(float(c[:, j].mean()), 3) for j, k in enumerate(SHOTS)}
    ci = {str(k): [round(v, 3) for v in stats.wilson_interval(int(c[:, j].sum()), n)] for j, k in enumerate(SHOTS)}
    outs = np.asarray(res.outputs, dtype=object).reshape(n, len(SHOTS))
    return {
        "model": loaded.name, "family": family, "chat_style": chat_style if loaded.chat else "plain", "n_items": n,
        "accuracy": acc, "wilson_90": ci, "headroom_10_vs_0": round(float(c[:, -1].mean() - c[:, 0].mean()), 3),
        "wrong_at_0": int(wrong0.sum()),
        "fixed_at_10_of_wrong_at_0": round(float(c[wrong0, -1].mean()), 3) if wrong0.any() else None,
        "fixed_at_any_k_of_wrong_at_0": round(float(c[wrong0, 1:].any(1).mean()), 3) if wrong0.any() else None,
        "mean_tokens_10_shots": round(float(res.n_tokens.reshape(n, len(SHOTS))[:, -1].mean()), 1),
        "wall_s": round(wall, 1),
        "examples": [{"question": test[i].question, "gold": test[i].answer, "0-shot": outs[i, 0][:60],
                      "10-shot": outs[i, -1][:60]} for i in range(3)],
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    models = {name: lm.load(name, device="cpu") for name in lm.BUNDLED}
    # The chapter's prompt formats first (chat: multi-turn; base model: plain text), then the chat model's
    # single-turn format on the original eight families, for comparison.
    plan = [(name, "multi_turn", fam) for name in models for fam in tasks.QA_FAMILIES]
    plan += [(name, "single_turn", fam) for name, m in models.items() if m.chat for fam in list(tasks.QA_FAMILIES)[:8]]
    rows = []
    for name, style, family in plan:
        rows.append(measure(models[name], family, n, style))
        r = rows[-1]
        print(f"{r['model']:14} {r['chat_style']:12} {family:14} acc {r['accuracy']} "
              f"fixed@10 {r['fixed_at_10_of_wrong_at_0']} ({r['wall_s']} s)", flush=True)
        write_results(Path(__file__).parent / "results" / "task_headroom.json",
                      {"machine": machine_info(), "shots": SHOTS, "n_pool": N_POOL, "seed": SEED, "rows": rows})


if __name__ == "__main__":
    main()
