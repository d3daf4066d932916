"""A run's questions asked in several contexts (examples, random tokens or shuffled text of the same length, at k
shots), compared prompt by prompt: the (item, k) pairs two contexts share, their differences, the mean over items
with its interval; a rows table's per-layer changes, the band of last layers and their per-layer means; and the
check that a run's answers vary at all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from icl_geometry.core.stats import item_mean_interval

LAST_LAYERS_SHARE = 0.25  # "the last layers" (paper A, Figs. 7-8): the last quarter, declared before the runs


def table_deltas(table: Any) -> dict[str, np.ndarray]:
    """measure -> (n_rows, n_layers) from a rows table's `d_<measure>_<layer>` columns (change from 0 shots)."""
    by: dict[str, list[tuple[int, str]]] = {}
    for c in table.columns:
        if c.startswith("d_") and c.rsplit("_", 1)[-1].isdigit():
            measure, layer = c[2:].rsplit("_", 1)
            by.setdefault(measure, []).append((int(layer), c))
    return {m: table[[c for _, c in sorted(cols)]].to_numpy(float) for m, cols in by.items()}


def last_layers(n_layers: int, share: float = LAST_LAYERS_SHARE) -> np.ndarray:
    """The band of "last layers": the last ceil(share x n_layers) layer indices (at least one)."""
    if not 0 < share <= 1:
        raise ValueError(f"share = {share!r} is not allowed: expected a number in (0, 1]")
    return np.arange(n_layers - max(1, math.ceil(share * n_layers)), n_layers)


def layer_means(table: Any, measures: dict[str, str], contexts: tuple[str, ...] = ("shots", "random"),
                level: float = 0.9) -> pd.DataFrame:
    """Per measure (label -> measure), context and layer: the mean change from 0 shots over items (each item's
    rows averaged first, non-finite values left out) with its Student-t interval (`item_mean_interval`); the band
    of last layers flagged."""
    deltas, recs = table_deltas(table), []
    items = table["item"].to_numpy()
    for label, m in measures.items():
        band = set(last_layers(deltas[m].shape[1]).tolist())
        for ctx in contexts:
            sel = (table["context"] == ctx).to_numpy()
            if not sel.any():
                continue
            for layer in range(deltas[m].shape[1]):
                ok = sel & np.isfinite(deltas[m][:, layer])  # TwoNN is undefined on a degenerate cloud
                if not ok.any():
                    continue
                mean, (lo, hi), n = item_mean_interval(deltas[m][ok, layer], items[ok], level=level)
                recs.append({"measure": label, "context": ctx, "layer": layer, "mean": mean, "low": lo, "high": hi,
                             "items": n, "last_layers": layer in band})
    return pd.DataFrame(recs)


def contrast_pairs(table: Any, values: np.ndarray, a: str, b: str,
                   rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """values[context a] - values[context b] for every (item, k) pair both contexts have (item, k, example set
    where the table has a `set` column: each set against its own control), and the pair's item."""
    sel = np.ones(len(table), bool) if rows is None else rows
    key = list(zip(table["item"], table["k"], table["set"] if "set" in table.columns else [-1] * len(table)))
    ctx = table["context"].to_numpy()
    va = {kk: v for kk, v, c, s in zip(key, values, ctx, sel) if c == a and s}
    vb = {kk: v for kk, v, c, s in zip(key, values, ctx, sel) if c == b and s}
    both = sorted(set(va) & set(vb))
    if not both:
        raise ValueError(f"context contrast: contexts {a!r} and {b!r} share no (item, k) pair")
    return np.array([float(va[p]) - float(vb[p]) for p in both]), np.array([p[0] for p in both])


def context_contrast(table: Any, values: np.ndarray, a: str, b: str, level: float = 0.9,
                     rows: np.ndarray | None = None) -> tuple[float, tuple[float, float], int]:
    """Mean of values[context a] - values[context b] over the (item, k) pairs both have (in `table`, a run's
    rows or a `rows_table`; optionally only `rows`), averaged within items first, with a Student-t interval
    over items (`stats.item_mean_interval`). Returns (mean, interval, n_items)."""
    diffs, items = contrast_pairs(table, values, a, b, rows)
    return item_mean_interval(diffs, items, level=level)
def check_answers_vary(rows: Any) -> None:
    """Stop with a clear message when a run cannot relate correctness to ID changes: no base items, or every
    prompt with examples answered the same way (all wrong or all right), as small or two-option settings give."""
    shots = rows[rows["context"] == "shots"] if len(rows) else rows
    if len(shots) == 0:
        raise ValueError("families / n_candidates: this run has no base items (no item answered wrongly at 0 shots "
                         "outside the two-option families); add families or raise n_candidates")
    n_right = int(shots["correct"].sum())
    if n_right in (0, len(shots)):
        how = "wrong" if n_right == 0 else "right"
        raise ValueError(f"families / n_candidates: all {len(shots)} prompts with examples ({shots['item'].nunique()} "
                         f"base items) were answered {how}, so nothing can be related to correctness; add families, "
                         "raise n_candidates or use more shot counts")
