"""One model's answers under noisy demonstrations (chapter 7) and their statistics over queries: accuracy curves,
slopes, paired differences between models asked the same queries, the following rate, and the distraction
correlation; every interval a bootstrap over queries (`stats.cluster_resamples`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry.core.stats import cluster_resamples


@dataclass
class NoisyRun:
    """One model's measurements: one row per (query, condition) and per-row arrays aligned with `rows`."""

    model: str
    n_layers: int
    n_heads: int
    k: int
    eps: float
    # DataFrame: family, item, text (the query), true_label, noise, rate, pred, correct, follows_flipped,
    # margin, n_tokens
    rows: Any
    logprobs: np.ndarray  # (n_rows, 2) label words' log-probabilities
    attention_mass: np.ndarray  # (n_rows, n_layers, 3): head-mean mass of the last token on label / input / other
    id_sum: np.ndarray  # (n_rows, n_layers) eq. 8 summed over heads
    id_head: np.ndarray  # (n_rows, n_layers) eq. 8 per head, averaged over heads
    mlp: np.ndarray  # (n_rows, n_layers, d_model) last token's MLP input
    examples: list[str] = field(default_factory=list)  # one clean and one noisy prompt, for display
    seconds: float = 0.0

    def select(self, noise: str, rate: float) -> np.ndarray:
        """Row indices of one condition, in item order."""
        r = self.rows
        return np.flatnonzero((r.noise == noise).to_numpy() & np.isclose(r.rate.to_numpy(), rate))

    def correct_matrix(self, noise: str, rates: Sequence[float]) -> np.ndarray:
        """(n_items, n_rates) correctness; rate 0 is the clean condition."""
        cols = [self.rows.correct.to_numpy()[self.select("clean" if r == 0 else noise, r)] for r in rates]
        return np.stack(cols, 1).astype(float)


def percentile(boot: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` interval of bootstrap values (percentiles, nan ignored)."""
    a = (1 - level) / 2
    return float(np.nanquantile(boot, a)), float(np.nanquantile(boot, 1 - a))


def accuracy_curve(run: NoisyRun, noise: str, rates: Sequence[float], n_boot: int = 1000, level: float = 0.9,
                   seed: int = 0):
    """Accuracy at each rate (0 = clean) with a bootstrap interval over queries. Returns a DataFrame."""
    c = run.correct_matrix(noise, rates)
    boot = np.stack([c[idx].mean(0) for idx in cluster_resamples(len(c), n_boot, seed)])
    rows = []
    for j, r in enumerate(rates):
        lo, hi = percentile(boot[:, j], level)
        rows.append({"model": run.model, "noise": noise, "rate": r, "n": len(c), "n_correct": int(c[:, j].sum()),
                     "accuracy": float(c[:, j].mean()), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def slope(rates: Sequence[float], acc: np.ndarray) -> np.ndarray:
    """Least-squares slope of accuracy on rate (accuracy per unit noise); acc (..., n_rates)."""
    x = np.asarray(rates, float)
    x = x - x.mean()
    return (np.asarray(acc, float) * x).sum(-1) / (x * x).sum()


@dataclass
class Slope:
    value: float
    interval: tuple[float, float]
    boot: np.ndarray = field(repr=False)


def noise_slope(run: NoisyRun, noise: str, rates: Sequence[float], n_boot: int = 1000, level: float = 0.9,
                seed: int = 0) -> Slope:
    """Slope of accuracy vs noise rate (negative: accuracy falls) with a bootstrap over queries; the
    resamples depend only on (n_items, n_boot, seed), so two models measured on the same queries pair up."""
    c = run.correct_matrix(noise, rates)
    boot = np.array([slope(rates, c[idx].mean(0)) for idx in cluster_resamples(len(c), n_boot, seed)])
    return Slope(float(slope(rates, c.mean(0))), percentile(boot, level), boot)


def accuracy_at(run: NoisyRun, noise: str, rate: float, n_boot: int = 1000, level: float = 0.9,
                seed: int = 0) -> Slope:
    """Accuracy in one condition (rate 0: clean) with a bootstrap over queries, paired like `noise_slope`
    (compare two models with `paired_difference`)."""
    c = run.correct_matrix(noise, [rate])[:, 0]
    boot = np.array([c[idx].mean() for idx in cluster_resamples(len(c), n_boot, seed)])
    return Slope(float(c.mean()), percentile(boot, level), boot)


def same_queries(a: NoisyRun, b: NoisyRun) -> None:
    """Raise unless two runs asked the same queries in the same order (needed for paired comparisons)."""
    qa = a.rows[a.rows.noise == "clean"][["family", "text"]].to_numpy().tolist()
    qb = b.rows[b.rows.noise == "clean"][["family", "text"]].to_numpy().tolist()
    if qa != qb:
        raise ValueError(f"runs of {a.model} and {b.model} asked different queries: compare only runs with the "
                         f"same families, n_items, n_pool and seed")


def paired_difference(a: Slope, b: Slope, level: float = 0.9) -> tuple[float, tuple[float, float]]:
    """b - a with an interval from the paired resamples (same queries, n_boot and seed)."""
    if len(a.boot) != len(b.boot):
        raise ValueError("paired_difference: the two bootstraps have different sizes")
    return b.value - a.value, percentile(b.boot - a.boot, level)


def following_rate(run: NoisyRun, rate: float = 1.0, n_boot: int = 1000, level: float = 0.9,
                   seed: int = 0) -> Slope:
    """Fraction of queries answered with the flipped label when a fraction `rate` of demonstration labels are
    flipped (Wei et al.: rate 1), with a bootstrap over queries (same pairing as `noise_slope`)."""
    f = run.rows.follows_flipped.to_numpy()[run.select("label", rate)].astype(float)
    boot = np.array([f[idx].mean() for idx in cluster_resamples(len(f), n_boot, seed)])
    return Slope(float(f.mean()), percentile(boot, level), boot)


def distraction_correlation(runs: Sequence[NoisyRun], noise: str, rate: float, n_boot: int = 1000,
                            level: float = 0.9, seed: int = 0, reading: str = "sum",
                            ) -> tuple[float, tuple[float, float], list[float]]:
    """Does the geometry change predict distraction? Per model, Spearman's rho over queries between the change
    of eq. 8 (averaged over layers) from clean to noisy and the drop of the true label's margin (log-prob of
    the true label minus the other's); returns the mean rho over models, its bootstrap interval (queries
    resampled jointly for all models) and each model's rho."""
    from scipy.stats import spearmanr

    def rho(x: np.ndarray, y: np.ndarray) -> float:
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return np.nan
        return float(spearmanr(x, y).statistic)

    xs, ys = [], []
    for run in runs:
        arr = run.id_sum if reading == "sum" else run.id_head
        a, b = run.select("clean", 0.0), run.select(noise, rate)
        margin = run.rows.margin.to_numpy()
        xs.append(arr[b].mean(1) - arr[a].mean(1))
        ys.append(margin[a] - margin[b])
    n = len(xs[0])
    if any(len(x) != n for x in xs):
        raise ValueError("distraction_correlation: runs must have the same queries")
    per_model = [rho(x, y) for x, y in zip(xs, ys)]
    boot = np.array([np.nanmean([rho(x[idx], y[idx]) for x, y in zip(xs, ys)])
                     for idx in cluster_resamples(n, n_boot, seed)])
    return float(np.nanmean(per_model)), percentile(boot, level), per_model
