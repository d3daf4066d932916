"""Regions per second of the exact 2-D enumerator (`partition.count_regions_2d`, polygon splitting).

Random ReLU MLPs 2 -> width x depth (PyTorch's default init, seed 0), exact regions in the box
[-5, 5]^2, one CPU thread (torch and the BLAS under numpy). For each width in 16..128 and depth 1..4:
the region count, the best wall time over `--repeats` runs, and regions per second. The target: the
3-layer width-64 net (about 17k regions) in under 1 s on one core. Also, for one-layer nets, the
crossing count (`method="lines"`) against polygon splitting, as a ratio.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_partition.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # before numpy loads its BLAS

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import machine_info, write_results  # noqa: E402

from icl_geometry.core import partition as pt  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "partition.json"
BOX = (-5.0, 5.0, -5.0, 5.0)
TARGET = {"width": 64, "depth": 3, "seconds": 1.0}


def random_mlp(width: int, depth: int, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    k = 2
    for _ in range(depth):
        layers += [nn.Linear(k, width), nn.ReLU()]
        k = width
    return nn.Sequential(*layers, nn.Linear(k, 1))


def best_time(fn, repeats: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    print(f"{'width':>5} {'depth':>5} {'regions':>9} {'seconds':>8} {'regions/s':>10}")
    for width in args.widths:
        for depth in args.depths:
            net = random_mlp(width, depth)
            reps = args.repeats if width * depth <= 256 else 1
            sec, n = best_time(lambda: pt.count_regions_2d(net, BOX, method="polygons"), reps)
            rows.append({"width": width, "depth": depth, "regions": n, "seconds": sec, "regions_per_s": n / sec})
            print(f"{width:>5} {depth:>5} {n:>9} {sec:>8.3f} {n / sec:>10.0f}", flush=True)

    lines = []
    for width in args.widths:
        net = random_mlp(width, 1)
        t_poly, n_poly = best_time(lambda: pt.count_regions_2d(net, BOX, method="polygons"), args.repeats)
        t_line, n_line = best_time(lambda: pt.count_regions_2d(net, BOX, method="lines"), args.repeats)
        assert n_poly == n_line, (width, n_poly, n_line)
        lines.append({"width": width, "regions": n_poly, "polygons_s": t_poly, "lines_s": t_line,
                      "speedup_lines": t_poly / t_line})

    target = next((r for r in rows if r["width"] == TARGET["width"] and r["depth"] == TARGET["depth"]), None)
    verdict = None if target is None else target["seconds"] < TARGET["seconds"]
    print("\none layer, crossing count vs polygon splitting:")
    for r in lines:
        print(f"  width {r['width']:>4}: {r['regions']:>6} regions, polygons {r['polygons_s']:.4f} s, "
              f"lines {r['lines_s']:.4f} s ({r['speedup_lines']:.1f}x)")
    if target is not None:
        print(f"\ntarget: width {TARGET['width']} depth {TARGET['depth']}: {target['regions']} regions in "
              f"{target['seconds']:.3f} s on one thread ({'met' if verdict else 'MISSED'}: < {TARGET['seconds']} s)")
    payload = {"box": BOX, "machine": machine_info(), "rows": rows,
               "one_layer_lines_vs_polygons": lines, "target": {**TARGET, "met": verdict,
                                                                 "measured_s": target and target["seconds"]}}
    write_results(args.out, payload)


if __name__ == "__main__":
    main()
