"""Chapter 5's training step: prompts per second, against a plain batched matmul of the same size.

One training step of `linear_icl.train` draws B fresh prompts (N examples in d dimensions), forms each
prompt's context Gram matrix, runs every rank of the family on it, and takes an Adam step on the
query-averaged loss. We time, in the same run and interleaved (best of `--repeats`):

* `step`: the whole step (sampling included), as `train` runs it;
* `sample`: drawing the prompts and their Gram matrices only; `model`: forward + backward + Adam on given Gram matrices;
* `literal`: the same step with the literal attention f(E) = E + W^PV E M (E^T W^KQ E) / N on the prompt matrix
  (what a direct implementation computes), for comparison;
* `floor`: one float64 batched matmul E^T E of the prompt matrices (B, N+1, d+1), the least any step that reads
  every prompt through a matrix product pays.

Ratios are step / floor (the target: a small constant) and literal / step.

    .venv/bin/python benchmarks/bench_linear_icl.py                      # CPU, ci family (d 8, N 32, ranks 1 2 4 8)
    .venv/bin/python benchmarks/bench_linear_icl.py --device cuda --full-sweep   # also the full profile's
                                                                          # training + noise sweeps, timed, on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine_info, write_results

from icl_geometry.toys import linear_icl as li

RESULTS = Path(__file__).parent / "results" / "linear_icl.json"


def interleaved_best(fns: dict, repeats: int, sync=lambda: None) -> dict:
    """Minimum wall time of each callable over `repeats` rounds, taking turns within a round, after a warm-up."""
    for fn in fns.values():
        fn()
    sync()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def make_step(model: li.LinearSelfAttention, sampler: li.PromptSampler, batch: int):
    """The three timed pieces of one training step (query averaged out, as `train` does by default)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    G0, w0, _ = sampler.clean_gram(batch)

    def model_part(G=G0, w=w0):
        e = model.readout(G) - w
        loss = ((e @ sampler.Lambda) * e).sum(-1).mean(-1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step():
        G, w, _ = sampler.clean_gram(batch)
        model_part(G, w)

    def sample():
        sampler.clean_gram(batch)

    return step, sample, model_part


def make_literal(model: li.LinearSelfAttention, sampler: li.PromptSampler, batch: int):
    """A training step through the literal f(E) on sampled prompts (one sampled query per prompt)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def literal():
        p = sampler(batch, noise=False)
        X, y = p.context()
        y_hat = model.forward_full(X, y, p.xq)[:, :, -1, -1]
        loss = ((y_hat - p.yq) ** 2).mean(-1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return literal


def run(batches: list[int], d: int, N: int, ranks: tuple[int, ...], device: str, repeats: int,
        literal_max: int) -> list[dict]:
    lam = li.make_spectrum("power", d, 1.0)
    Lambda = li.make_covariance(lam, seed=0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for B in batches:
        sampler = li.PromptSampler(Lambda, N, seed=1, device=device)
        model = li.LinearSelfAttention(d, ranks, seed=0, device=device)
        step, sample, model_part = make_step(model, sampler, B)
        E = torch.randn(B, N + 1, d + 1, dtype=torch.float64, device=device)
        fns = {"floor": lambda: E.transpose(1, 2) @ E, "step": step, "sample": sample, "model": model_part}
        if B <= literal_max:
            fns["literal"] = make_literal(li.LinearSelfAttention(d, ranks, seed=0, device=device), sampler, B)
        t = interleaved_best(fns, repeats, sync)
        row = {"batch": B, "d": d, "N": N, "ranks": list(ranks), "device": device, "repeats": repeats,
               **{f"{k}_s": v for k, v in t.items()},
               "prompts_per_s": B / t["step"], "step_over_floor": t["step"] / t["floor"],
               "sample_share": t["sample"] / t["step"]}
        if "literal" in t:
            row["literal_over_step"] = t["literal"] / t["step"]
        rows.append(row)
        print(f"{B:>7} {device:>4} {B / t['step']:>12,.0f} {t['step'] * 1e3:9.2f} {t['floor'] * 1e3:9.3f} "
              f"{t['step'] / t['floor']:8.1f} {t['sample'] / t['step']:7.2f} "
              f"{row.get('literal_over_step', float('nan')):9.1f}", flush=True)
    return rows


def full_sweep(device: str) -> dict:
    """Time the chapter's `full` profile computations (training, Monte Carlo check, two noise sweeps)."""
    from icl_geometry.bookkit import profiles

    cfg = profiles.resolve("05", profile="full", device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    lam = li.make_spectrum(cfg.spectrum, cfg.d, cfg.decay)
    Lambda = li.make_covariance(lam, seed=0)
    t0 = time.perf_counter()
    fit = li.fit_ranks(Lambda, cfg.N, cfg.ranks, cfg.steps, cfg.batch, lr=cfg.lr, seed=0, device=device)
    sync()
    t_train = time.perf_counter() - t0
    opt_all = np.stack([li.optimal_gamma(Lambda, cfg.N, r) for r in range(cfg.d + 1)])
    predict = li.gram_predictors(model=fit.model, gammas=opt_all, Lambda=Lambda, N=cfg.N)
    test = li.PromptSampler(Lambda, cfg.N, seed=7, device=device)
    t1 = time.perf_counter()
    li.noise_sweep(predict, test, cfg.n_test, label_noise=cfg.label_noise)
    li.noise_sweep(predict, test, cfg.n_test, input_noise=cfg.input_noise)
    sync()
    t_sweep = time.perf_counter() - t1
    return {"device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
            "train_s": t_train, "sweeps_s": t_sweep, "max_rel_dist": float(fit.final_rel_dist.max()),
            "config": {k: v for k, v in cfg.as_dict().items() if k not in ("label_noise", "input_noise")}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 2048, 16384])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the chapter uses 1)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--literal-max", type=int, default=2048, help="largest batch for the literal-attention step")
    ap.add_argument("--full-sweep", action="store_true", help="also time the full profile's computations")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'batch':>7} {'dev':>4} {'prompts/s':>12} {'step ms':>9} {'floor ms':>9} {'/floor':>8} "
          f"{'sample':>7} {'literal/':>9}")
    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    rows = []
    for device in devices:
        rows += run(args.batches, args.d, args.N, tuple(args.ranks), device, args.repeats, args.literal_max)
    sweep = full_sweep(args.device) if args.full_sweep else None
    if sweep:
        print(f"full profile on {sweep['device']}: training {sweep['train_s']:.1f} s, sweeps {sweep['sweeps_s']:.1f} s")
    result = {
        "benchmark": "linear_icl", "what": __doc__.splitlines()[0],
        "settings": "float64, Adam, query averaged out; power spectrum (decay 1), seed 0",
        "machine": machine_info(),
        "rows": rows,
        "full_profile": sweep if sweep else "not run: no GPU was lent to this session (run with --device cuda "
                                            "--full-sweep on one)",
    }
    write_results(args.out, result)


if __name__ == "__main__":
    main()
