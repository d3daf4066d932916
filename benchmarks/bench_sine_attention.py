"""Speed of the sine-attention toy's training step (`toys.sine_attention`), as ratios.

Per (heads, context): milliseconds per full-batch Adam step of the structured forward `mha_last` (one model),
the same step through the plain eq.-3 formula on the full (n_bins, C, d_model) tokens (`attention`), and
R = 3 restarts trained as one stacked model. Reported: plain / structured (the speed-up of the hot path)
and stacked / (R x single) (what `train` with R restarts costs relative to R single fits; it stacks
small models and trains large ones one at a time, see `sine_attention.training.STACK_ELEMENTS`), and float64 / float32
(`train`, one restart: the price of fits that do not depend on the CPU's round-off; float64 is the default).
One CPU thread, float64 unless stated, 500 bins, best of `--repeats` timings of `--steps` steps.

    .venv/bin/python benchmarks/bench_sine_attention.py
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from _common import machine_info, write_results

from icl_geometry.toys import sine_attention as sa

RESULTS = Path(__file__).parent / "results" / "sine_attention.json"


def step_ms(config: sa.ToyConfig, plain: bool, steps: int, repeats: int) -> float:
    model = sa.SineAttentionToy(config)
    t = sa.time_grid(config.n_bins, config.periods, config.torch_dtype)
    y = sa.target(t)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)

    def loss() -> torch.Tensor:
        z = model.attention(t)[1] if plain else model.mlp_input(t)
        return torch.mean((model.mlp(z).squeeze(-1) - y) ** 2)

    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss().backward()
            opt.step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return 1000 * best


def train_ms(config: sa.ToyConfig, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sa.train(config)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / config.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for heads, context in [(1, 10), (1, 100), (10, 10), (10, 100)]:
        config = sa.ToyConfig(heads=heads, contexts=(context,), n_bins=500, steps=args.steps)
        fast = step_ms(config, False, args.steps, args.repeats)
        plain = step_ms(config, True, args.steps, args.repeats)
        single = train_ms(replace(config, restarts=1), args.repeats)
        stacked = train_ms(replace(config, restarts=3), args.repeats)
        single32 = train_ms(replace(config, restarts=1, dtype="float32"), args.repeats)
        rows.append({"heads": heads, "context": context, "ms_per_step_structured": round(fast, 2),
                     "ms_per_step_plain": round(plain, 2), "plain_over_structured": round(plain / fast, 2),
                     "ms_per_step_train_1_restart": round(single, 2), "ms_per_step_train_3_restarts": round(stacked, 2),
                     "stacked_over_3_single": round(stacked / (3 * single), 2),
                     "ms_per_step_train_1_restart_float32": round(single32, 2),
                     "float64_over_float32": round(single / single32, 2)})
        print(rows[-1])
    write_results(args.out, {"benchmark": "sine_attention", "machine": machine_info(), "rows": rows})


if __name__ == "__main__":
    main()
