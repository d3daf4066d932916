"""The coverage table of issue 25: for every interval method a `paper` or `ours` claim uses, the fraction of
simulated data sets (with a known answer, at the chapter's sizes) whose nominal interval contains the truth, for
the method as it was before issue 25 ("before") and as the chapters build it now ("after").

The cases (data designs, sizes, truths, the "after" methods) are those of tests/test_coverage.py, which checks
the "after" column in `make test`; this script also runs the cases too slow for the test (chapter 3's full
clouds, chapter 4's full logistic fits) and keeps the old implementations below for the "before" column only.

    .venv/bin/python benchmarks/coverage_table.py                 # every case, each with its own replicates
    .venv/bin/python benchmarks/coverage_table.py --only 02 03    # some chapters (their rows are updated)
    .venv/bin/python benchmarks/coverage_table.py --only 03 --in-test-only   # without the slow full-size cases

Writes benchmarks/results/coverage.json: one row per (method, chapter, profile sizes, design) with the
replicates, the coverage before and after, the nominal level and the floor (nominal - 5 points). A run of some
chapters replaces their rows and keeps the others'.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import machine_info, write_results

from icl_geometry.core import intrinsic_dim as idm
from icl_geometry.core import stats
from icl_geometry.core.intrinsic_dim import STATS
from icl_geometry.core.intrinsic_dim.estimators import check_groups

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "coverage.json"


def load_cases():
    """tests/test_coverage.py, imported as a module (its cases and helpers)."""
    sys.path.insert(0, str(ROOT / "tests"))
    return importlib.import_module("test_coverage")


# ============================================================================= the methods before issue 25
# (kept here only to measure them; the package no longer has them)


def _median_contrast(x: np.ndarray, y: np.ndarray, how: str) -> float:
    return float(np.median(x) / np.median(y) if how == "ratio" else np.median(x) - np.median(y))


def old_compare_restarts(a, b, how="ratio", level=0.9, n_boot=2000, seed=0):
    """Chapter 2's toy, heads claims: median(a) / median(b) (or the difference), percentile bootstrap resampling
    each setting's seeds on its own."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return stats.two_sample_bootstrap(a, b, lambda x, y: _median_contrast(x, y, how), n_boot, level, seed)


def old_compare_paired(a, b, how="ratio", level=0.9, n_boot=2000, seed=0):
    """Chapter 2's toy, context claims: the same statistic, the pairs (one network at two contexts) resampled
    together."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return stats.bootstrap_interval(np.stack([a, b], axis=1), lambda x: _median_contrast(x[:, 0], x[:, 1], how),
                                    n_boot=n_boot, level=level, seed=seed)


def old_id_difference(X_a, X_b, *, method="twonn", groups_a=None, groups_b=None, ci=0.9, n_boot=200, seed=0,
                      **kwargs):
    """Chapter 3: the ID difference with a paired bootstrap over groups that resamples the per-point statistics
    with the neighbour graph fixed. Returns (difference, (low, high))."""
    sa, sb = STATS[method](X_a, **kwargs), STATS[method](X_b, **kwargs)
    d_a, d_b = sa.pool(sa.values), sb.pool(sb.values)
    ga = check_groups(groups_a, sa.neighbours.n_points)[sa.rows]
    gb = check_groups(groups_b, sb.neighbours.n_points)[sb.rows]
    labels = np.union1d(ga, gb)
    by_a = {g: np.flatnonzero(ga == g) for g in labels}
    by_b = {g: np.flatnonzero(gb == g) for g in labels}
    reps = []
    for draw in stats.iter_cluster_resamples(len(labels), n_boot, seed):
        pick = labels[draw]
        ia = np.concatenate([by_a[g] for g in pick])
        ib = np.concatenate([by_b[g] for g in pick])
        reps.append(sb.pool(sb.values[ib]) - sa.pool(sa.values[ia]))
    reps = np.asarray(reps)
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return d_b - d_a, (float(lo), float(hi))


def _spearman(x, y):
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((rx @ rx) * (ry @ ry)))
    return float(rx @ ry) / denom if denom > 0 else np.nan


def old_layer_change_correlation(clouds_a, clouds_b, other_a, other_b, groups, *, method="twonn", ci=0.9,
                                 n_boot=200, seed=0, **kwargs):
    """Chapter 3: rho across layers of the two changes, paired bootstrap over groups, neighbours fixed."""
    oa, ob = np.asarray(other_a, float), np.asarray(other_b, float)
    n_layers = len(clouds_a)
    labels = np.unique(np.asarray(groups))
    pairs = []
    for layer in range(n_layers):
        pair = []
        for cloud in (clouds_a[layer], clouds_b[layer]):
            st = STATS[method](cloud, **kwargs)
            g = check_groups(groups, st.neighbours.n_points)[st.rows]
            pair.append((st, [np.flatnonzero(g == lab) for lab in labels]))
        pairs.append(pair)

    def profile(pick):
        d_id = np.empty(n_layers)
        for layer, ((sa, ma), (sb, mb)) in enumerate(pairs):
            ia = np.concatenate([ma[g] for g in pick])
            ib = np.concatenate([mb[g] for g in pick])
            d_id[layer] = sb.pool(sb.values[ib]) - sa.pool(sa.values[ia])
        return d_id, (ob[pick] - oa[pick]).mean(0)

    rho = _spearman(*profile(np.arange(len(labels))))
    reps = np.array([_spearman(*profile(d)) for d in stats.iter_cluster_resamples(len(labels), n_boot, seed)])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - ci) / 2, (1 + ci) / 2])
    return rho, (float(lo), float(hi))


def _triple(result) -> tuple[float, float, float]:
    value, (lo, hi) = result
    return float(value), float(lo), float(hi)


def before(tc, case) -> tuple[str, Callable[[Any, int], tuple[float, float, float]], Any] | None:
    """The method a case's claims used before issue 25, its interval builder and the truth of *its* statistic
    (None: the same method as now, no separate 'before' run)."""
    m, ch = case.method, case.chapter
    if m == "sine_attention.compare_paired":
        how = "ratio" if case.design.startswith("log_mse") else "difference"
        col = case.design.split(":")[0]
        pool = tc.toy_residuals()[col]["paired"]
        med = np.median(pool[:, 1]) - np.median(pool[:, 0])  # population medians of the two readings
        truth = math.exp(med) if how == "ratio" else med
        return ("median, paired percentile bootstrap (2000)",
                lambda d, b: _triple(old_compare_paired(d[0], d[1], how)), truth)
    if m == "sine_attention.compare_restarts":
        how = "ratio" if case.design.startswith("log_mse") else "difference"
        return ("median, two-sample percentile bootstrap (2000)",
                lambda d, b: _triple(old_compare_restarts(d[0], d[1], how)), 1.0 if how == "ratio" else 0.0)
    if m == "jackknife.jackknife_interval(scale='log')" and ch == "02":
        return ("stats.bootstrap_interval (ratio of means, 2000)",
                lambda d, b: _triple(stats.bootstrap_interval(d, lambda a: float(a[:, 0].mean() / a[:, 1].mean()),
                                                           n_boot=2000, level=0.9)), case.truth)
    if m == "jackknife.jackknife_interval(scale='fisher')" and ch == "02":
        return ("stats.bootstrap_correlation(groups=networks, 2000)",
                lambda d, b: _triple(stats.bootstrap_correlation(d[0], d[1], groups=d[2], n_boot=2000, level=0.9)),
                case.truth)
    if m == "stats.welch_interval(log=True)" and ch == "01":
        return ("stats.two_sample_bootstrap (ratio of medians, 2000)",
                lambda d, b: _triple(stats.two_sample_bootstrap(d[0], d[1], lambda x, y: float(np.median(x) /
                                                                                               np.median(y)),
                                                              2000, 0.9)), case.truth)
    if m == "stats.t_interval" and ch == "01":
        return ("stats.bootstrap_interval (mean over nets, 2000)",
                lambda d, b: _triple(stats.bootstrap_interval(d, n_boot=2000, level=0.9)), case.truth)
    if m == "stats.item_mean_interval" and ch == "04":
        n_boot = 200 if case.profile == "min_n" else 1000
        return (f"bootstrap over item means ({n_boot})",
                lambda d, b: _triple(stats.bootstrap_interval(
                    [d[0][d[1] == i].mean() for i in np.unique(d[1])], n_boot=n_boot, level=0.9)), case.truth)
    if m == "jackknife.logistic_slope_interval" and ch == "04":
        n_boot = 200 if case.profile == "min_n" else 1000
        return (f"stats.fit_logistic, cluster bootstrap over items ({n_boot})",
                lambda d, b: (lambda f: (f.coef[0], f.ci[0][0], f.ci[0][1]))(
                    stats.fit_logistic({"x": d[0]}, d[1], d[2], n_boot=n_boot, level=0.9)), None)
    if m.startswith("intrinsic_dim.id_difference"):
        method = "mle" if "mle" in m else "twonn"
        kw = {"k": 10 if case.profile == "ci" else 20} if method == "mle" else {}
        n_boot = 100 if case.profile == "ci" else 500
        return (f"id_difference, neighbours fixed, paired bootstrap over prompts ({n_boot})",
                lambda d, b: _triple(old_id_difference(d[0][0], d[1][0], method=method, groups_a=d[2], groups_b=d[2],
                                                    n_boot=n_boot, **kw)), case.truth)
    if m.startswith("intrinsic_dim.twonn(ci"):
        return ("twonn(ci): bootstrap of the per-point statistics, neighbours fixed (100)",
                lambda X, b: (lambda e: (e.estimate, *e.ci))(idm.twonn(X, ci=0.9, n_boot=100)), case.truth)
    if m.startswith("resampling.hierarchical_interval"):  # chapter 7's first pass: queries resampled, families not
        stat = tc.family_slope_statistic(2 if "paired" in m else 1)
        return ("percentile bootstrap over queries only (1000)",
                lambda d, b: _triple(stats.bootstrap_interval(d[0], stat, n_boot=1000, level=0.9)), case.truth)
    if m.startswith("intrinsic_dim.layer_change_correlation"):
        return ("layer_change_correlation, neighbours fixed, paired bootstrap over prompts (100)",
                lambda d, b: _triple(old_layer_change_correlation(d[0], d[1], d[2], d[3], d[4], n_boot=100)),
                case.truth)
    return None


STATUS = {  # how the "after" method relates to what the chapter uses
    "changed": "the chapter now uses the 'after' method",
    "unchanged": "the chapter's method, unchanged (before = after)",
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicates", type=int, default=None, help="replicates per case (default: each case's own)")
    ap.add_argument("--only", nargs="*", default=None, help="chapters to run (e.g. 02 03)")
    ap.add_argument("--in-test-only", action="store_true",
                    help="only the cases make test runs (skips the slow full-size ones; their rows are kept)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # thousands of small searches: one thread avoids spin-waits on a shared machine
    tc = load_cases()
    rows = []
    t_all = time.perf_counter()
    for case in tc.CASES:
        if (args.only and case.chapter not in args.only) or (args.in_test_only and not case.in_test):
            continue
        reps = args.replicates or case.replicates
        t0 = time.perf_counter()
        after = tc.coverage(case, reps)
        old = before(tc, case)
        if old is not None:
            name, build, truth = old
            prior = tc.coverage(case, reps, interval=build, truth=truth if truth is not None else after.truth)
            status, before_method, before_cov = "changed", name, prior.coverage
        else:
            status, before_method, before_cov = "unchanged", case.method, after.coverage
        row = {"method": case.method, "chapter": case.chapter, "profile": case.profile, "sizes": case.sizes,
               "design": case.design, "replicates": after.replicates, "nominal": case.level, "floor": case.floor,
               "before_method": before_method, "coverage_before": before_cov, "coverage_after": after.coverage,
               "status": status, "in_make_test": case.in_test, "mean_width_after": after.mean_width,
               "failed_after": after.failed, "truth": after.truth, "claims": case.claims,
               "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        b = "   -  " if before_cov is None else f"{before_cov:6.1%}"
        flag = "" if after.coverage >= case.floor else "  BELOW FLOOR"
        print(f"{case.chapter} {case.method[:46]:46s} {case.profile:8s} {case.sizes[:30]:30s} "
              f"{case.design[:34]:34s} R={after.replicates:4d} before {b} after {after.coverage:6.1%}"
              f"{flag} ({row['seconds']:.0f} s)", flush=True)
    # rows of cases not run now are kept from the file (a run of some chapters updates theirs), in the cases' order
    key = lambda r: (r["method"], r["chapter"], r["profile"], r["sizes"], r["design"])  # noqa: E731
    kept = {key(r): r for r in json.loads(RESULTS.read_text())["rows"]} if RESULTS.exists() else {}
    kept.update({key(r): r for r in rows})
    order = [(c.method, c.chapter, c.profile, c.sizes, c.design) for c in tc.CASES]
    merged = [kept[k] for k in order if k in kept]
    result = {"benchmark": "coverage of the book's interval methods (issue 25)", "machine": machine_info(),
              "seconds_this_run": round(time.perf_counter() - t_all), "statuses": STATUS, "rows": merged}
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
