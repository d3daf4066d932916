"""TwoNN and MLE: our chunked torch implementation against scikit-dimension and the matmul floor.

For each n (D = 576, a curved 10-d manifold), times `intrinsic_dim.twonn` / `intrinsic_dim.mle` (k = 20)
and scikit-dimension's TwoNN / MLE with the same settings, and one float32 n x D x n matrix product
(the floor any exact kNN by matrix products pays), all in the same run on the same machine.
Reports ratios (ours / skdim, ours / floor), the estimates side by side, and the peak resident memory
(the process's VmHWM, reset before each call, so it includes the data and the interpreter) against
the n x n float32 matrix we never build. Targets at n = 10k on a CPU: faster than skdim,
within 2x of the floor, estimates within 2% of skdim's.

    .venv/bin/python benchmarks/bench_intrinsic_dim.py                 # n = 2k, 10k, 50k on the CPU
    .venv/bin/python benchmarks/bench_intrinsic_dim.py --device cuda   # also on a GPU (skdim stays on CPU)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from _common import machine_info, write_results

from icl_geometry.core import intrinsic_dim as idm

D = 576
LATENT = 10
RESULTS = Path(__file__).parent / "results" / "intrinsic_dim.json"


def manifold(n: int, seed: int = 0) -> np.ndarray:
    """n points of a smooth curved 10-d manifold in R^576 (random sinusoidal features), float32."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, (n, LATENT))
    return np.sin(z @ rng.standard_normal((LATENT, D)) + rng.uniform(0, 2 * np.pi, D)).astype(np.float32)


def interleaved_best(fns: dict, repeats: int, sync=lambda: None,
                     warm_up: bool = True) -> tuple[dict, dict, dict]:
    """Minimum wall time of each callable over `repeats` rounds, the callables taking turns within a round
    (so a burst of load from other processes hits all of them alike), after one warm-up call each.
    Also the peak resident memory (MB) seen during each callable's calls."""
    results = {name: fn() for name, fn in fns.items()} if warm_up else {}
    sync()
    times = {name: [] for name in fns}
    peaks = {name: 0.0 for name in fns}
    gpu = torch.cuda.is_available()
    for _ in range(repeats):
        for name, fn in fns.items():
            reset_peak()
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            results[name] = fn()
            sync()
            times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks[name], peak_rss_mb())
            if gpu:
                peaks[name + "_gpu"] = max(peaks.get(name + "_gpu", 0.0), torch.cuda.max_memory_allocated() / 2**20)
    return {k: min(v) for k, v in times.items()}, results, peaks


def floor_matmul(X: torch.Tensor, chunk_mb: float = 256.0) -> None:
    """One float32 n x D x n product; row-chunked when the n x n result would not fit the chunk budget."""
    n = len(X)
    rows = n if n * n * 4 <= 2**31 else max(1, int(chunk_mb * 2**20 // (4 * n)))
    for a in range(0, n, rows):
        torch.mm(X[a:a + rows], X.T)


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0; a no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux: peak since start


def peak_rss_mb() -> float:
    """Peak resident memory since the last `reset_peak` (VmHWM), in MB."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def run(sizes: list[int], device: str, repeats: int, skdim_max_n: int) -> list[dict]:
    import skdim

    rows = []
    for n in sizes:
        X = manifold(n)
        Xt = torch.from_numpy(X).to(device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        fns = {"floor": lambda: floor_matmul(Xt),
               "twonn": lambda: idm.twonn(Xt).estimate,
               "mle": lambda: idm.mle(Xt, 20).estimate}
        with_skdim = n <= skdim_max_n
        if with_skdim:
            fns["twonn_skdim"] = lambda: skdim.id.TwoNN().fit(X).dimension_
            fns["mle_skdim"] = lambda: skdim.id.MLE().fit(X, n_neighbors=20).dimension_
        reps = repeats if n <= 10_000 else 1
        base_mb = rss_mb()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, est, peaks = interleaved_best(fns, reps, sync, warm_up=n <= 10_000)
        row = {"n": n, "D": D, "device": device, "repeats": reps, "warm_up": n <= 10_000,
               "floor_s": t["floor"], "rss_before_mb": base_mb}
        for m in ("twonn", "mle"):
            row[f"{m}_s"] = t[m]
            row[f"{m}_estimate"] = float(est[m])
            row[f"{m}_over_floor"] = t[m] / t["floor"]
            row[f"{m}_skdim_s"] = t.get(f"{m}_skdim")
            row[f"{m}_peak_rss_mb"] = peaks[m]
            row[f"{m}_skdim_peak_rss_mb"] = peaks.get(f"{m}_skdim")
            if device == "cuda":
                row[f"{m}_peak_gpu_mb"] = peaks.get(f"{m}_gpu")
            if with_skdim:
                ref = float(est[f"{m}_skdim"])
                row[f"{m}_skdim_estimate"] = ref
                row[f"{m}_over_skdim"] = t[m] / t[f"{m}_skdim"]
                row[f"{m}_rel_diff"] = abs(est[m] - ref) / ref
        if not with_skdim:
            row["note"] = (f"scikit-dimension skipped at n = {n} (> --skdim-max-n {skdim_max_n}): its TwoNN sorts "
                           f"every full distance row (minutes at this size); the floor is timed row-chunked")
        row["floor_peak_rss_mb"] = peaks["floor"]
        row["n_by_n_float32_mb"] = n * n * 4 / 2**20
        rows.append(row)
        print_row(row, flush=True)
    return rows


def print_header() -> None:
    print(f"{'n':>6} {'dev':>4} {'floor':>7} | {'TwoNN':>7} {'skdim':>7} {'/sk':>5} {'/floor':>6} "
          f"{'est':>6} {'sk est':>6} | {'MLE':>7} {'skdim':>7} {'/sk':>5} {'/floor':>6} {'est':>6} "
          f"{'sk est':>6} | {'peak MB':>7} {'sk MB':>7} {'nxn MB':>7}")


def print_row(r: dict, flush: bool = False) -> None:
    def f(v, fmt):
        return f"{v:{fmt}}" if v is not None else f"{'-':>{fmt.split('.')[0]}}"

    parts = [f"{r['n']:>6} {r['device'][:4]:>4} {r['floor_s']:7.2f}"]
    for m in ("twonn", "mle"):
        parts.append(f"{r[m + '_s']:7.2f} {f(r.get(m + '_skdim_s'), '7.2f')} {f(r.get(m + '_over_skdim'), '5.2f')} "
                     f"{r[m + '_over_floor']:6.2f} {r[m + '_estimate']:6.2f} "
                     f"{f(r.get(m + '_skdim_estimate'), '6.2f')}")
    parts.append(f"{max(r['twonn_peak_rss_mb'], r['mle_peak_rss_mb']):7.0f} "
                 f"{f(r.get('twonn_skdim_peak_rss_mb'), '7.0f')} {r['n_by_n_float32_mb']:7.0f}")
    print(" | ".join(parts), flush=flush)


def targets(rows: list[dict]) -> dict:
    """The issue's targets, checked at n = 10k on the CPU."""
    r = next((r for r in rows if r["n"] == 10_000 and r["device"] == "cpu" and r.get("twonn_skdim_s")), None)
    if r is None:
        return {}
    out = {}
    for m in ("twonn", "mle"):
        out[f"{m}_faster_than_skdim"] = bool(r[f"{m}_over_skdim"] < 1)
        out[f"{m}_within_2x_floor"] = bool(r[f"{m}_over_floor"] < 2)
        out[f"{m}_within_2pct_of_skdim"] = bool(r[f"{m}_rel_diff"] < 0.02)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000, 50_000])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (best of) for n <= 10k")
    ap.add_argument("--skdim-max-n", type=int, default=10_000, help="largest n for scikit-dimension")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if args.device == "cuda" else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    print_header()
    rows = []
    for device in devices:
        rows += run(args.sizes if device == "cpu" else [50_000], device, args.repeats,
                    args.skdim_max_n if device == "cpu" else 0)
    verdict = targets(rows)
    for k, v in verdict.items():
        print(f"{k:32s} {'PASS' if v else 'FAIL'}")
    result = {
        "benchmark": "intrinsic_dim", "what": __doc__.splitlines()[0],
        "data": f"curved {LATENT}-d manifold in R^{D} (sin of random features), float32, seed 0",
        "settings": "TwoNN: linear fit, discard 10% (skdim default); MLE: k = 20, MacKay-Ghahramani average",
        "machine": machine_info(),
        "rows": rows, "targets_at_10k": verdict,
    }
    write_results(args.out, result)


if __name__ == "__main__":
    main()
