"""Where the smaller model wins in the sparse-parity toy (chapter 6), in flip rates: the closed form's range, the
range measured from a run's loss curves, and one line of text per noise kind."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from icl_geometry.toys.sparse_parity import crossover, input_threshold, label_threshold
from icl_geometry.toys.sparse_parity_eval import measured_crossover

UNITS = {"label": "fraction of the context labels flipped", "input": "probability of flipping each context bit"}


def finite(v: float) -> float | None:
    """v as a float, or None where it is not finite (a bound the grid does not reach)."""
    return float(v) if np.isfinite(v) else None


def closed_form_regime(weights: Any, N: int, k: int, heads: Sequence[int], kind: str) -> dict[str, Any]:
    """One noise kind's regime entry before measurement: the closed form's range for the sizes `heads` (first
    crossover of adjacent sizes to where the smallest size's loss rises to that of predicting 0) and for every size
    1..K (the span of the per-subset thresholds); `measured` and `accuracy` are left for the run to fill in."""
    thresholds = label_threshold(weights, N) if kind == "label" else input_threshold(weights, N, k)
    first = min(crossover(weights, N, a, b, kind, k) for a, b in zip(heads, heads[1:]))
    return {"unit": UNITS[kind], "heads": list(heads),
            "predicted": [first, crossover(weights, N, 0, heads[0], kind, k)],
            "every size (closed form)": [float(thresholds.min()), float(thresholds[0])], "measured": {}, "accuracy": {}}


def loss_regime(crossings: np.ndarray, rates: np.ndarray, smallest_loss: np.ndarray) -> list[float | None]:
    """The measured range in loss: from the first measured crossover of adjacent sizes (`crossings`) to the mean
    over seeds of the rate at which the smallest size's loss (`smallest_loss`, (seeds, rates)) rises to 1."""
    useless = [measured_crossover(rates, np.ones(len(rates)), loss) for loss in smallest_loss]
    lo = float(np.nanmin(crossings)) if np.isfinite(crossings).any() else np.nan
    hi = float(np.nanmean(useless)) if np.isfinite(useless).any() else np.nan
    return [finite(lo), finite(hi)]


def regime_text(wins: dict[str, dict[str, Any]], family: str, null: float, sig: int = 2) -> list[str]:
    """One line per noise kind for one family: the measured loss regime, the closed form's, the span over every
    size, and where the largest model's accuracy is below the smallest's (an accuracy crossover within `null` of
    1/2 reads as never)."""
    def pair(v: Sequence) -> str:
        if None in v:
            return "not reached on the grid"
        return " to ".join(format(float(f"{x:.{sig}g}"), "g") for x in v)

    lines = []
    for kind, w in wins.items():
        if family not in w["measured"]:
            continue
        acc = w["accuracy"][family]
        in_acc = ("never below 1/2" if acc[0] is None or acc[0] >= 0.5 - null else f"{pair(acc)}")
        lines.append(f"{kind} flips ({family}): in loss the smaller model wins at rates {pair(w['measured'][family])} "
                     f"(closed form {pair(w['predicted'])}; with every size 1..K: "
                     f"{pair(w['every size (closed form)'])}); in accuracy the largest is below the smallest: {in_acc}")
    return lines
