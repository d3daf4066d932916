"""`engine.trace` against a plain forward pass on the bundled models, 512-token prompt, CPU.

Reports the wall time of each and the ratio (target <= 1.2x: the hooks copy only the rows asked for).
Writes benchmarks/results/trace.json.

    .venv/bin/python benchmarks/bench_trace.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from _common import machine_info, write_results

from icl_geometry.llm import engine, lm

from icl_geometry import tasks


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def prompt_of(loaded: lm.LoadedModel, n_tokens: int) -> str:
    text = " ".join(tasks.qa_block(it) for it in tasks.make_items("word_problems", 200, seed=0))
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"][: n_tokens - 1]
    return loaded.tokenizer.decode(ids)


def main() -> None:
    rows = []
    for name in lm.BUNDLED:
        loaded = lm.load(name, device="cpu")
        prompt = prompt_of(loaded, 512)
        enc = loaded.tokenizer(prompt, return_tensors="pt")
        n = enc["input_ids"].shape[1]

        def plain():
            with torch.no_grad():
                loaded.model(**enc, use_cache=False)

        plain()
        t_plain = best_of(plain)
        t_trace = best_of(lambda: engine.trace(loaded, prompt))
        rows.append({"model": name, "tokens": n, "plain_s": round(t_plain, 3), "trace_s": round(t_trace, 3),
                     "ratio": round(t_trace / t_plain, 3), "threads": torch.get_num_threads()})
        print(rows[-1], flush=True)
    write_results(Path(__file__).parent / "results" / "trace.json", {"machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
