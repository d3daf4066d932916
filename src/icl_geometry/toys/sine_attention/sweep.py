"""The toy's grid: one row per (seed, restart, context) of a trained heads setting (`evaluate`), every heads
setting trained and evaluated (`sweep`: the data of the paper's Fig. 5), and the two ways two settings are
compared through their fits (`compare_restarts` for independent fits, `compare_paired` for the same networks
read at two contexts), each with a t interval over seeds."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Iterable, Sequence

import numpy as np

from icl_geometry.core import stats
from icl_geometry.core.checks import is_int
from icl_geometry.toys.sine_attention.measures import (count_regions, effective_dim, fit_error, linear_probe_error,
                                                       mlp_inputs, one_thread, singular_values)
from icl_geometry.toys.sine_attention.model import SPLITS, ToyConfig, seeds_and_restarts
from icl_geometry.toys.sine_attention.training import FitResult, train

ROW_FIELDS = ("heads", "context", "seed", "restart", "kept", "train_mse", "val_mse", "test_mse", "pieces",
              "distinct", "rank", "eff_dim", "probe_mse")
WIDTH_FIELDS = ("heads", "d_head", *ROW_FIELDS[1:])  # the width-matched family's rows: d_head varies with heads


def evaluate(fit: FitResult, per_bin: int = 20, regions: str = "kept") -> list[dict[str, Any]]:
    """One row per (seed, restart, context) of a fit: heads, context, seed, restart, kept (chosen on
    validation), training / validation / test MSE at that context, and - for the kept fits (regions="kept")
    or all (regions="all") - pieces, distinct regions, rank and effective dimension of the MLP input (at the
    training bins), and the linear read-out's MSE; NaN / -1 where not measured."""
    if regions not in ("kept", "all"):
        raise ValueError(f"regions = {regions!r} is not allowed: expected 'kept' or 'all'")
    c = fit.config
    kept = set(int(i) for i in fit.kept)
    rows = []
    with one_thread():
        for i, (m, (seed, restart)) in enumerate(zip(fit.models, seeds_and_restarts(c))):
            for C in c.contexts:
                row = {"heads": c.heads, "context": C, "seed": seed, "restart": restart, "kept": i in kept,
                       **{f"{s}_mse": fit_error(m, s, C)["mse"] for s in SPLITS},
                       "pieces": -1, "distinct": -1, "rank": -1, "eff_dim": math.nan, "probe_mse": math.nan}
                if i in kept or regions == "all":
                    count = count_regions(m, C, per_bin)
                    z = mlp_inputs(m, None, C)
                    s = singular_values(z)
                    row.update(pieces=count.pieces, distinct=count.distinct,
                               rank=int((s > 1e-6 * s[0]).sum()) if s[0] > 0 else 0, eff_dim=effective_dim(z),
                               probe_mse=linear_probe_error(m, None, C))
                rows.append(row)
    return rows


def sweep(heads: Iterable[int], config: ToyConfig | None = None, *, device: str = "cpu", progress: bool = True,
          per_bin: int = 20, **overrides: Any) -> tuple[list[dict[str, Any]], dict[int, FitResult]]:
    """Train every heads setting once (all seeds and restarts, on all contexts) and evaluate each network at
    every context: the data of the paper's Fig. 5 heat map. Returns the rows (`evaluate`) and the fits by
    heads."""
    heads = [int(h) for h in heads]
    if not heads:
        raise ValueError("heads: expected at least one value")
    if "contexts" in overrides and isinstance(overrides["contexts"], (list, range)):
        overrides["contexts"] = tuple(overrides["contexts"])
    base = replace(config or ToyConfig(), **overrides)
    iterator: Iterable = heads
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(heads, desc="toy: heads settings")
    rows, fits = [], {}
    for h in iterator:
        fit = train(replace(base, heads=h), device=device)
        fits[h] = fit
        rows += evaluate(fit, per_bin)
    return rows, fits


def width_pairs(heads: Iterable[int], width: int) -> list[tuple[int, int]]:
    """The width-matched family: (heads, d_head) with heads x d_head = `width` for each heads count, so that
    every setting has the same attention parameters (query, key, value: d_model x width each; output:
    width x d_model) and more heads is not a larger network."""
    heads = [int(h) for h in heads]
    if not is_int(width) or width < 1:
        raise ValueError(f"width = {width!r} is not allowed: expected an integer >= 1 (heads x d_head)")
    if not heads or any(h < 1 or width % h for h in heads):
        raise ValueError(f"heads = {heads} is not allowed with width {width}: expected heads counts that divide it "
                         f"({[h for h in range(1, width + 1) if width % h == 0]})")
    return [(h, width // h) for h in heads]


def width_rows(fit: FitResult, per_bin: int = 20) -> list[dict[str, Any]]:
    """`evaluate` of one fit of the width-matched family, with its d_head (`WIDTH_FIELDS`)."""
    return [{"heads": r["heads"], "d_head": fit.config.d_head, **{k: r[k] for k in ROW_FIELDS[1:]}}
            for r in evaluate(fit, per_bin)]


HOW = ("ratio", "difference")


def _check(how: str) -> None:
    if how not in HOW:
        raise ValueError(f"how = {how!r} is not allowed: expected 'ratio' or 'difference'")


def compare_restarts(a: Sequence[float], b: Sequence[float], how: str = "ratio",
                     level: float = 0.9) -> tuple[float, tuple[float, float]]:
    """Compare two settings through independent fits (seeds or restarts), not through one fit each: the ratio
    of geometric means a / b (how="ratio", e.g. MSEs, whose spread over seeds spans orders of magnitude) or
    mean(a) - mean(b) (how="difference", e.g. pieces), with Welch's t interval (on the logs for a ratio).

    A few seeds cannot carry a bootstrap: with 3 per setting a percentile bootstrap of medians covered a 90%
    target 77-87% of the time; the t interval is exact for normal (log) values and its coverage under the toy's
    own spread of fits is measured in tests/test_coverage.py."""
    _check(how)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"a, b: expected two 1-d sequences of at least 2 restarts each, got {a.shape} and {b.shape}")
    return stats.welch_interval(b, a, level=level, log=how == "ratio")


def compare_paired(a: Sequence[float], b: Sequence[float], how: str = "ratio",
                   level: float = 0.9) -> tuple[float, tuple[float, float]]:
    """Like `compare_restarts` for paired fits (a[i], b[i] from the same network, e.g. one network read at two
    contexts): the geometric mean over networks of a[i] / b[i] (how="ratio") or the mean of a[i] - b[i]
    (how="difference"), with a Student-t interval over the networks (`stats.paired_t_interval`)."""
    _check(how)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a, b: expected two 1-d sequences of the same length >= 2, got {a.shape} and {b.shape}")
    return stats.paired_t_interval(b, a, level=level, log=how == "ratio")
