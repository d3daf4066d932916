"""Chapter 4's two bundled models compared: the larger model's statistic minus the smaller's, from two runs'
rows tables (different base items, so each run is resampled on its own).

Two kinds of rows: the raw ones (every base family; the Fig. 8 slope alone) and the adjusted ones (only the
families where both models have headroom, `headroom_families`, with k and family in the logistic fit), since
the models' base sets differ in family mix and a family at the floor carries no correctness to relate. Every
row carries `MODEL_CONFOUND`: SmolLM2-135M-Instruct and Gemma-3-270M differ in much more than size, so none is
counted as a replication of a size effect.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from icl_geometry.core import stats
from icl_geometry.core.verdicts import judge
from icl_geometry.tasks.context_contrasts import contrast_pairs, table_deltas

SIZE_MARGINS = {"within_item": 0.1, "fig8_slope": 0.25, "accuracy_gain": 0.05}  # declared beforehand
HEADROOM = (0.05, 0.95)  # a family is compared only where each model's accuracy with examples lies inside this
MIN_FAMILY_ITEMS = 10  # ... and each model has at least this many base items of it (declared beforehand)
MODEL_CONFOUND = ("model family, training data, tokenizer and chat tuning (SmolLM2-135M-Instruct vs Gemma-3-270M "
                  "base): a difference between them is not a size effect alone")


def headroom_families(*tables: pd.DataFrame, column: str = "correct") -> list[str]:
    """Families where every table (a run's rows) has at least `MIN_FAMILY_ITEMS` base items and an accuracy with
    examples (context 'shots', `column`) inside `HEADROOM`: the families a comparison of the runs can use."""
    keep = None
    for t in tables:
        shots = t[t["context"] == "shots"]
        per = shots.groupby("family").agg(items=("item", "nunique"), accuracy=(column, "mean"))
        ok = set(per.index[(per["items"] >= MIN_FAMILY_ITEMS) & (per["accuracy"] > HEADROOM[0])
                           & (per["accuracy"] < HEADROOM[1])])
        keep = ok if keep is None else keep & ok
    return sorted(keep or ())


def size_comparison(small: pd.DataFrame, large: pd.DataFrame, readings: Mapping[str, str],
                    scorings: Mapping[str, str], min_within: int, n_boot: int = 1000, level: float = 0.9,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Larger model minus smaller, from two runs' rows tables (`readings`: claim key -> measure; `scorings`:
    name -> correctness column; `min_within`: items that vary within, below which a within-item difference is
    left out).

    Returns dicts like `claim_values` (kind 'ours', direction 'greater': the larger model shows more of it;
    'no effect' when the interval lies within the margin of `SIZE_MARGINS`, declared before any full run), each
    with `confounded_by` = `MODEL_CONFOUND`: the within-item correlation (both readings, both scorings), the
    Fig. 8 final-layer slope (both readings, greedy) raw and adjusted (k and family, headroom families only),
    and the accuracy gain of examples over random tokens (both scorings)."""
    out: list[dict[str, Any]] = []
    boot = dict(n_boot=n_boot, level=level, seed=seed)

    def add(claim_id: str, value: float, interval: Any, margin: float, note: str) -> None:
        out.append({"claim_id": claim_id, "value": float(value), "interval": tuple(float(v) for v in interval),
                    "kind": "ours", "direction": "greater", "null_margin": margin, "confounded_by": MODEL_CONFOUND,
                    "paper": "not in the paper: does the larger bundled model show it more?",
                    "note": note + ", larger minus smaller model, each run resampled over its own items"})

    def rows_of(t: pd.DataFrame, scoring: str) -> np.ndarray:
        shots = (t["context"] == "shots").to_numpy()
        return shots & (t["choice_base"].to_numpy(bool) if scoring == "choice" else True)

    deltas = [table_deltas(t) for t in (small, large)]
    fams = headroom_families(small, large)
    for scoring, column in scorings.items():
        sfx = "" if scoring == "greedy" else "_choice"
        for key, m in readings.items():
            per = []
            for t, d in zip((small, large), deltas):
                r = rows_of(t, scoring)
                per.append(stats.per_item_correlations(d[m][r, -1], t[column].to_numpy(float)[r],
                                                       t["item"].to_numpy()[r]))
            if min(len(p) for p in per) >= min_within:
                value, ci = stats.independent_difference(per[0], per[1], **boot)
                add(f"size_within_item_{key}{sfx}", value, ci, SIZE_MARGINS["within_item"],
                    f"Fig. 6 within-item rho, {key} reading, {scoring} ({len(per[0])} and {len(per[1])} items)")
            if scoring != "greedy":
                continue
            for adjusted in (False, True):
                fits = []
                for offset, (t, d) in enumerate(zip((small, large), deltas)):
                    r = rows_of(t, scoring)
                    if adjusted:
                        r = r & t["family"].isin(fams).to_numpy()
                    y = t[column].to_numpy(float)[r]
                    if len(y) < 4 or np.ptp(y) == 0:
                        break
                    preds = {"change": d[m][r, -1]}
                    if adjusted:
                        preds |= {"k": t["k"].to_numpy(float)[r], **stats.family_dummies(t["family"].to_numpy()[r])}
                    fits.append(stats.fit_logistic(preds, y, t["item"].to_numpy()[r], n_boot, level, seed + offset))
                if len(fits) < 2:
                    continue
                value, ci = stats.slope_difference(fits[1], fits[0], level, paired=False)
                if adjusted:
                    add(f"size_fig8_{key}_final_slope_adjusted", value, ci, SIZE_MARGINS["fig8_slope"],
                        f"Fig. 8 final-layer logistic slope per SD with k and family, {key} reading, greedy, "
                        f"families where both models have headroom: {', '.join(fams) or 'none'}")
                else:
                    add(f"size_fig8_{key}_final_slope", value, ci, SIZE_MARGINS["fig8_slope"],
                        f"Fig. 8 final-layer logistic slope per SD, {key} reading, greedy, every base family")
        if {"random"} <= set(small["context"]) & set(large["context"]):
            per = []
            for t in (small, large):
                sel = t["choice_base"].to_numpy(bool) if scoring == "choice" else None
                diffs, items = contrast_pairs(t, t[column].to_numpy(float), "shots", "random", sel)
                per.append(np.array([diffs[items == i].mean() for i in np.unique(items)]))
            value, ci = stats.independent_difference(per[0], per[1], **boot)
            add(f"size_accuracy_shots_minus_random{sfx}", value, ci, SIZE_MARGINS["accuracy_gain"],
                f"Fig. 7 accuracy, examples minus random tokens (same item and k), {scoring}")
    return out


def size_table(comparison: list[dict[str, Any]]) -> pd.DataFrame:
    """`size_comparison`'s rows judged (`core.verdicts.judge`): claim, value, interval, verdict, expectation,
    note (the confound is the same for every row: the chapter states it once above the table)."""
    recs = []
    for c in comparison:
        verdict, expect = judge(c["value"], interval=c["interval"], direction=c["direction"],
                                null_margin=c["null_margin"])
        recs.append({"claim": c["claim_id"], "larger minus smaller": c["value"], "low": c["interval"][0],
                     "high": c["interval"][1], "verdict": verdict, "expected": expect, "note": c["note"]})
    return pd.DataFrame(recs)
