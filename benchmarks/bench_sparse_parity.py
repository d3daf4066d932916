"""Chapter 6's training step: prompts per second, against a plain batched matmul of the same size.

One training step of `sparse_parity_model.train` draws B fresh clean prompts (N context examples and a query in
d bits), runs every member of a family (heads 1, 2, 4, 8, 16 x seeds) on them and takes an Adam step. Layer 1 runs
once per step on all 2^d inputs and tokens look their features up. We time, in the same run and interleaved (best
of `--repeats`), for each family (fixed parities + linear attention, learned MLP + linear, learned MLP + softmax):

* `step`: the whole step (sampling included), as `train` runs it;
* `literal`: the same step with layer 1 applied token by token (`forward_literal`), what a direct implementation
  computes;
* `floor`: one float64 batched matmul of every token through a layer of the first layer's width, per member,
  (M, B (N+1), d) @ (M, d, W), into a kept buffer: the least a step that reads every token through a learned layer
  pays.

Ratios are step / floor and literal / step. The lookup step evaluates layer 1 on the 2^d inputs instead of the
B (N+1) tokens, so for large batches it can cost less than the floor (ratio < 1).

    .venv/bin/python benchmarks/bench_sparse_parity.py            # CPU, the ci family (d 8, k 2, N 32, 3 seeds)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from _common import machine_info, write_results

from icl_geometry.toys import sparse_parity as sp
from icl_geometry.toys import sparse_parity_model as spm

RESULTS = Path(__file__).parent / "results" / "sparse_parity.json"
FAMILIES = {"fixed-linear": ("fixed", "linear"), "learned-linear": ("learned", "linear"),
            "learned-softmax": ("learned", "softmax")}


def interleaved_best(fns: dict, repeats: int) -> dict:
    """Minimum wall time of each callable over `repeats` rounds, taking turns within a round, after a warm-up."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def make_steps(model: spm.ParityFamily, subsets, weights, N: int, batch: int):
    """(step, literal): one Adam step on fresh prompts through the lookup forward and through the literal one."""
    chi = sp.parity_table([sp.mask_of(s) for s in subsets], model.d)
    pi = torch.as_tensor(weights)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    table = sp.input_table(model.d)

    def run(literal: bool):
        codes, y = sp.clean_batch(g, batch, N, chi, pi)
        y_hat = model.forward_literal(table[codes], y) if literal else model(codes, y)
        loss = ((y_hat - y[:, -1]) ** 2).mean(-1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return (lambda: run(False)), (lambda: run(True))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--literal-max", type=int, default=128,
                    help="largest batch for the literal step (it materialises every head's token features)")
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--n-subsets", type=int, default=16)
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--heads", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the chapter uses 1)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    subsets = sp.make_subsets(args.d, args.k, args.n_subsets, seed=0)
    weights = sp.make_weights(args.n_subsets, 0.8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'family':>16} {'batch':>6} {'prompts/s':>11} {'step ms':>9} {'floor ms':>9} {'/floor':>7} {'literal/':>9}")
    rows = []
    for B in args.batches:
        models = {name: spm.ParityFamily(args.d, args.heads, args.seeds, attention=att, features=feat,
                                         width=args.width, k=args.k, seed=0)
                  for name, (feat, att) in FAMILIES.items()}
        M = models["learned-linear"].n_members
        X = torch.randn(M, B * (args.N + 1), args.d, dtype=torch.float64)
        W = torch.randn(M, args.d, args.width, dtype=torch.float64)
        out = torch.empty(M, B * (args.N + 1), args.width, dtype=torch.float64)
        fns = {"floor": lambda: torch.bmm(X, W, out=out)}  # into a kept buffer: no allocation timed
        for name, model in models.items():
            step, literal = make_steps(model, subsets, weights, args.N, B)
            fns[f"{name}:step"] = step
            if B <= args.literal_max:
                fns[f"{name}:literal"] = literal
        t = interleaved_best(fns, args.repeats)
        for name in FAMILIES:
            s, lit = t[f"{name}:step"], t.get(f"{name}:literal", float("nan"))
            row = {"family": name, "batch": B, "d": args.d, "k": args.k, "N": args.N, "heads": args.heads,
                   "seeds": args.seeds, "members": M, "width": args.width, "repeats": args.repeats,
                   "step_s": s, "floor_s": t["floor"], "prompts_per_s": B / s, "step_over_floor": s / t["floor"]}
            if lit == lit:
                row.update(literal_s=lit, literal_over_step=lit / s)
            rows.append(row)
            print(f"{name:>16} {B:>6} {B / s:>11,.0f} {s * 1e3:9.2f} {t['floor'] * 1e3:9.3f} {s / t['floor']:7.1f} "
                  f"{lit / s:9.1f}", flush=True)
    result = {
        "benchmark": "sparse_parity", "what": __doc__.splitlines()[0],
        "settings": "float64, Adam, squared loss, clean prompts; geometric importances (decay 0.8), seed 0",
        "machine": machine_info(),
        "rows": rows,
        "full_profile": "not run: no GPU was lent to this session",
    }
    write_results(args.out, result)


if __name__ == "__main__":
    main()
