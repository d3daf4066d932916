"""Where the smaller model wins, read from a sweep of every predictor (chapter 5): the predictors' layout, the
crossings and margins of measured curves beside the closed form, and that regime in the data's own units."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from icl_geometry.toys.linear_icl.sweep import Sweep, crossover_margin, measured_crossover
from icl_geometry.toys.linear_icl.theory import crossover, smaller_model_regime

BASELINES = ("least squares", "Bayes ridge", "one GD step")  # `gram_predictors`' baselines, in this order
MARGIN = "margin x_0 - x_c"  # `margin_table`'s margin column
UNITS = {"label": "standard deviation of y", "input": "RMS standard deviation of an input coordinate"}


def layout(M: int, D: int) -> tuple[dict[str, int], list[tuple[int, int]], list[tuple[int, int]]]:
    """A sweep's predictors are M trained ranks, Gamma*_0..D from M, then the baselines: (the baselines' indices,
    the pairs with paired SEs (adjacent trained ranks, smallest vs largest, adjacent optima), Gamma*_0 vs each rank)."""
    pairs = [(a, a + 1) for a in range(M - 1)] + [(0, M - 1)] + [(M + r - 1, M + r) for r in range(1, D + 1)]
    return {name: M + D + 1 + i for i, name in enumerate(BASELINES)}, pairs, [(M, k) for k in range(M)]


def curve(kind: str, arr: np.ndarray) -> np.ndarray:
    """A sweep's array along one noise axis: (P, L, 1) for label noise, (P, 1, I) for input noise."""
    return arr[..., 0] if kind == "label" else arr[..., 0, :]


def sweep_table(ranks: Sequence[int], D: int, grids: Mapping[str, np.ndarray],
                sweeps: Mapping[str, Sweep]) -> pd.DataFrame:
    """One row per (noise kind, predictor, noise level): loss, SE, and the paired SEs against the next smaller
    rank of its kind, against predicting 0 (trained ranks) and against the smallest trained rank (the largest)."""
    M = len(ranks)
    names = {i: name for name, i in layout(M, D)[0].items()}
    rows = []
    for kind, sw in sweeps.items():
        grid, loss, se = grids[kind], curve(kind, sw.loss), curve(kind, sw.se)
        for p in range(len(loss)):
            model = "trained" if p < M else names.get(p, "Gamma*")
            rank = ranks[p] if p < M else (p - M if model == "Gamma*" else np.nan)
            pair = {"SE vs previous": None if p in (0, M) or p > M + D else (p - 1, p),
                    "SE vs 0": (M, p) if p < M else None, "SE vs smallest": (0, p) if 0 < p == M - 1 else None}
            for j, level in enumerate(grid):
                rows.append({"noise": kind, "predictor": p, "model": model, "rank": rank, "noise std": level,
                             "loss": loss[p, j], "SE": se[p, j],
                             **{c: np.nan if ij is None else curve(kind, sw.pair_se[ij])[j] for c, ij in pair.items()}})
    return pd.DataFrame(rows)


def crossover_table(lam: np.ndarray, N: int, ranks: Sequence[int], grids: Mapping[str, np.ndarray],
                    sweeps: Mapping[str, Sweep]) -> pd.DataFrame:
    """Every crossing of a larger and a smaller model (trained pairs, and each direction of the optima),
    predicted and measured, with its delta-method SE, relative error and z; `grids`: each kind's noise levels."""
    M, rows = len(ranks), []
    for kind, sw in sweeps.items():
        grid, loss = grids[kind], curve(kind, sw.loss)
        for i, j in layout(M, len(lam))[1]:
            trained = j < M
            rs, rl = (ranks[i], ranks[j]) if trained else (i - M, j - M)
            pred = crossover(lam, N, rs, rl, kind)
            meas, se = measured_crossover(grid, loss[i], loss[j], curve(kind, sw.pair_se[(i, j)]))
            rows.append({"noise": kind, "models": "trained" if trained else "Gamma*", "small r": rs, "large r": rl,
                         "predicted": pred, "measured": meas, "SE": se, "rel. error": abs(meas - pred) / pred,
                         "z": (meas - pred) / se})
    return pd.DataFrame(rows)


def margin_table(lam: np.ndarray, N: int, ranks: Sequence[int], grids: Mapping[str, np.ndarray],
                 sweeps: Mapping[str, Sweep]) -> pd.DataFrame:
    """For each pair of adjacent trained ranks: x_c (the larger starts losing), x_0 (the smaller becomes worse
    than predicting 0), measured and predicted, and the margin x_0 - x_c with its SE bound se(x_0) + se(x_c)."""
    M, rows = len(ranks), []
    for kind, sw in sweeps.items():
        grid, loss = grids[kind], curve(kind, sw.loss)
        for a in range(M - 1):
            rs, rl = ranks[a], ranks[a + 1]
            margin, margin_se, xc, x0, xc_se = crossover_margin(grid, loss[M], loss[a], loss[a + 1], curve(
                kind, sw.pair_se[(M, a)]), curve(kind, sw.pair_se[(a, a + 1)]))
            rows.append({"noise": kind, "small r": rs, "large r": rl, "x_c measured": xc, "x_c SE": xc_se,
                         "x_c predicted": crossover(lam, N, rs, rl, kind), "x_0 measured": x0,
                         "x_0 predicted": crossover(lam, N, 0, rs, kind), MARGIN: margin,
                         "margin SE": margin_se})
    return pd.DataFrame(rows)


def unit(kind: str, lam: np.ndarray) -> float:
    """The data's own scale of a noise kind: sd(y) = sqrt(tr Lambda) (Var(y) = tr Lambda, the Var(y) check confirms
    it by Monte Carlo) for label noise; sqrt(tr Lambda / d), the RMS standard deviation of an input coordinate, for
    input noise."""
    return float(np.sqrt(lam.sum()) if kind == "label" else np.sqrt(lam.sum() / len(lam)))


def finite(v: float) -> float | None:
    """v as a float, or None where it is not finite (a bound the grid does not reach)."""
    return float(v) if np.isfinite(v) else None


def smaller_wins(margins: pd.DataFrame, lam: np.ndarray, N: int, ranks: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Where the smaller model wins, per noise kind, in the data's own units (`UNITS`): the noise range in which the
    best trained model is neither the largest rank nor worse than predicting 0. From the first measured crossing of
    adjacent trained ranks (min of x_c over the pairs) to where the smallest rank becomes worse than predicting 0
    (its x_0), measured on the run's test prompts (`margin_table`), beside the closed form for the trained ranks and
    for every rank 1..d (the span of the per-direction thresholds). A bound the grid does not reach is None."""
    out = {}
    for kind in ("label", "input"):
        scale = unit(kind, lam)
        sub = margins[margins["noise"] == kind] if len(margins) else margins
        xc = sub["x_c measured"].to_numpy(float) if len(sub) else np.array([np.nan])
        lo = float(np.nanmin(xc)) if np.isfinite(xc).any() else np.nan
        smallest = sub[sub["small r"] == ranks[0]] if len(sub) else sub
        hi = float(smallest["x_0 measured"].iloc[0]) if len(smallest) else np.nan
        pred = smaller_model_regime(lam, N, ranks, kind)
        every = smaller_model_regime(lam, N, range(1, len(lam) + 1), kind)
        out[kind] = {"unit": UNITS[kind], "unit value": scale,
                     "measured": [finite(lo / scale), finite(hi / scale)],
                     "predicted": [pred[0] / scale, pred[1] / scale],
                     "every rank (closed form)": [every[0] / scale, every[1] / scale],
                     "ranks": ranks}
    return out


def regime_text(wins: dict[str, dict[str, Any]], sig: int = 2) -> list[str]:
    """One line per noise kind: the measured regime, the closed form's and the span over every rank."""
    def pair(v: list) -> str:
        if None in v:
            return "not reached on the grid"
        return " to ".join(format(float(f"{x:.{sig}g}"), "g") for x in v)

    return [f"{kind} noise: the smaller model wins for a noise std of {pair(w['measured'])} times the {w['unit']} "
            f"(closed form {pair(w['predicted'])}; with every rank 1..d: {pair(w['every rank (closed form)'])})"
            for kind, w in wins.items()]
