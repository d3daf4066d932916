"""Headroom of chapter 7's in-context classification families: clean accuracy (constrained choice between the
two label words) at k = 0, 4, 8 and 16 demonstrations, on both bundled models, for every family and its
foo/bar version. Chapter 7 keeps the families clearly above chance (0.5) with clean demonstrations.
Writes benchmarks/results/demo_headroom.json.

    .venv/bin/python benchmarks/demo_headroom.py [n_items]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from _common import machine_info, write_results


from icl_geometry import tasks
from icl_geometry.llm import lm

from icl_geometry.core import stats

SHOTS = (0, 4, 8, 16)
N_POOL = 16  # 8 per class: enough for k = 16 balanced demonstrations
SEED = 0
MODELS = ("smollm2-135m", "gemma3-270m")


def main(n: int = 12) -> None:
    rows = []
    for name in MODELS:
        loaded = lm.load(name, "cpu")
        for family in tasks.CLASSIFICATION_FAMILIES:
            t0 = time.perf_counter()
            c = tasks.clean_accuracy(loaded, family, n, N_POOL, SHOTS, seed=SEED)
            acc = {str(k): round(float(c[:, j].mean()), 3) for j, k in enumerate(SHOTS)}
            ci = {str(k): [round(v, 3) for v in stats.wilson_interval(int(c[:, j].sum()), n)]
                  for j, k in enumerate(SHOTS)}
            rows.append({"model": name, "family": family, "labels": list(tasks.CLASSIFICATION_FAMILIES[family].labels),
                         "n_items": n, "accuracy": acc, "wilson_90": ci, "wall_s": round(time.perf_counter() - t0, 1)})
            print(name, family, acc, flush=True)
    write_results(Path(__file__).parent / "results" / "demo_headroom.json",
                  {"benchmark": "demo_headroom", "shots": list(SHOTS), "n_pool": N_POOL, "seed": SEED,
                   "machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
