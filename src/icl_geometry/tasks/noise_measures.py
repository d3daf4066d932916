"""One model's answers under noisy demonstrations (chapter 7) and their statistics.

First pass (kept for the figures and the coverage table): per model, accuracy curves, slopes, paired differences
and the following rate, every interval a bootstrap over queries (`stats.cluster_resamples`); where the last
token's attention goes, eq. 8's change and TwoNN per layer. Second pass (issue 26): the rows of several models
scored three ways (`SCORINGS`: contextually calibrated argmax, raw argmax, and the AUC of the label margin),
every interval from a two-level bootstrap, families then queries (`resampling.hierarchical_intervals`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry.core.stats import cluster_resamples
from icl_geometry.tasks.classification import GROUPS


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


# ---------------------------------------------------------------- attention and geometry, per layer
def mass_profile(run: NoisyRun, cond: Sequence[tuple[str, float]]):
    """Long DataFrame: model, condition, layer, group, mean attention mass of the last token (over queries)."""
    out = []
    for noise, rate in cond:
        m = run.attention_mass[run.select(noise, rate)].mean(0)
        for layer in range(run.n_layers):
            for g, name in enumerate(GROUPS):
                out.append({"model": run.model, "condition": f"{noise} {rate:g}" if noise != "clean" else "clean",
                            "layer": layer, "depth": layer / max(run.n_layers - 1, 1), "group": name,
                            "mass": float(m[layer, g])})
    return pd.DataFrame(out)


def geometry_change(run: NoisyRun, noise: str, rate: float, n_boot: int = 1000, level: float = 0.9, seed: int = 0):
    """Per layer: mean eq. 8 (both readings) clean and noisy, and the item-paired change with its bootstrap
    interval over queries. Returns a DataFrame."""
    a, b = run.select("clean", 0.0), run.select(noise, rate)
    rows = []
    resamples = cluster_resamples(len(a), n_boot, seed)
    for name, arr in (("sum", run.id_sum), ("per_head", run.id_head)):
        d = arr[b] - arr[a]
        boot = np.stack([d[idx].mean(0) for idx in resamples])
        for layer in range(run.n_layers):
            lo, hi = percentile(boot[:, layer], level)
            rows.append({"model": run.model, "reading": name, "layer": layer,
                         "depth": layer / max(run.n_layers - 1, 1), "clean": float(arr[a, layer].mean()),
                         "noisy": float(arr[b, layer].mean()), "change": float(d[:, layer].mean()),
                         "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def twonn_profile(run: NoisyRun, cond: Sequence[tuple[str, float]], layers: Sequence[int] | None = None,
                  level: float = 0.9, n_boot: int = 100, seed: int = 0):
    """TwoNN of the last token's MLP inputs over queries, per layer and condition (one point per query),
    with its bootstrap interval over queries."""
    from icl_geometry.core.intrinsic_dim import twonn

    layers = range(run.n_layers) if layers is None else layers
    out = []
    for noise, rate in cond:
        idx = run.select(noise, rate)
        for layer in layers:
            est = twonn(run.mlp[idx, layer].astype(np.float64), ci=level, n_boot=n_boot, seed=seed)
            out.append({"model": run.model, "condition": f"{noise} {rate:g}" if noise != "clean" else "clean",
                        "layer": layer, "depth": layer / max(run.n_layers - 1, 1), "twonn": float(est.estimate),
                        "ci_low": float(est.ci[0]), "ci_high": float(est.ci[1])})
    return pd.DataFrame(out)


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


# ===================================== chapter 7, second pass: three scorings, families then queries (issue 26)

SCORINGS = ("calibrated", "argmax", "auc")  # calibrated is chapter 7's primary scoring (declared in its CLAIMS)
_COLUMNS = {"calibrated": ("correct_cal", "follows_flipped_cal", "margin_cal"),
            "argmax": ("correct", "follows_flipped", "margin")}
MEASURES = ("clean", "label_slope", "input_slope", "follow")


def conditions(flip_rates: Sequence[float], noise_rates: Sequence[float]) -> list[tuple[str, float]]:
    """('clean', 0) first, then ('label', p) for every p > 0 and ('input', q) for every q > 0."""
    out = [("clean", 0.0)]
    for noise, rates in (("label", flip_rates), ("input", noise_rates)):
        for r in rates:
            if not 0.0 <= float(r) <= 1.0:
                raise ValueError(f"{noise} noise rate {r!r} is not allowed: expected numbers in [0, 1]")
            if float(r) > 0 and (noise, float(r)) not in out:
                out.append((noise, float(r)))
    return out


def label_score(rows: pd.DataFrame) -> np.ndarray:
    """Per row, log p(label 1) - log p(label 0) (the score the AUC ranks): from `lp1 - lp0`, or, in rows kept
    before those columns (chapter 7's first pass), from the true label's margin and the true label."""
    if "lp1" in rows:
        return (rows.lp1 - rows.lp0).to_numpy(float)
    sign = np.where(rows.true_label.to_numpy() == 1, 1.0, -1.0)
    return sign * rows.margin.to_numpy(float)


def family_auc(family: np.ndarray, true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per column of `scores` (rows, C): the AUC of the scores against `true` within each family, averaged over
    the families weighted by their rows (a family drawn twice by a resample counts twice); families with one
    class only are skipped (NaN when none has both)."""
    from scipy.stats import rankdata

    total, weight = np.zeros(scores.shape[1]), 0
    for f in np.unique(family):
        m = family == f
        pos = true[m] == 1
        n1, n0 = int(pos.sum()), int((~pos).sum())
        if n1 == 0 or n0 == 0:
            continue
        ranks = rankdata(scores[m], axis=0)
        total += m.sum() * (ranks[pos].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)
        weight += m.sum()
    return total / weight if weight else np.full(scores.shape[1], np.nan)


def query_columns(rows: pd.DataFrame, model: str, families: Sequence[str], conds: Sequence[tuple[str, float]],
                  column: str | np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """(queries, conditions) values of `column` (a column name, or one value per row of `rows`) for one model
    on `families`, in item order, and the queries (family, item, true_label) they belong to."""
    col = rows[column].to_numpy(float) if isinstance(column, str) else np.asarray(column, float)
    mine = (rows.model == model).to_numpy() & rows.family.isin(list(families)).to_numpy()
    out, queries = [], None
    for noise, rate in conds:
        sel = np.flatnonzero(mine & (rows.noise == noise).to_numpy() & np.isclose(rows.rate.to_numpy(), rate))
        sel = sel[np.argsort(rows.item.to_numpy()[sel], kind="stable")]
        q = rows.iloc[sel][["family", "item", "true_label"]].reset_index(drop=True)
        if queries is not None and not q.equals(queries):
            raise ValueError(f"query_columns: {model}'s condition {noise} {rate:g} has other queries than clean")
        queries = q
        out.append(col[sel])
    return np.stack(out, 1), queries


def summarise(rows: pd.DataFrame, models: Sequence[str], families: Sequence[str], flip_rates: Sequence[float],
              noise_rates: Sequence[float], scoring: str = "calibrated", n_boot: int = 1000, level: float = 0.9,
              seed: int = 0) -> dict[tuple[str, str], tuple[float, tuple[float, float]]]:
    """Chapter 7's measures under one scoring on `families`, for the first and last of `models` (same queries):
    (measure, model) and (measure, 'difference': last minus first) -> (value, interval) for measure in
    `MEASURES` (clean accuracy or AUC; the least-squares slopes on the label-noise and input-noise rates, 0 =
    clean; the rate of answering the flipped label at the largest flip rate: not for the AUC). Every interval
    from one two-level bootstrap (families, then queries: `resampling.hierarchical_intervals`, t over families),
    so the models' resamples pair up."""
    from icl_geometry.core.resampling import hierarchical_intervals

    if scoring not in SCORINGS:
        raise ValueError(f"scoring = {scoring!r} is not allowed: expected one of {list(SCORINGS)}")
    small, large = models[0], models[-1]
    conds = conditions(flip_rates, noise_rates)
    idx = {n: [0] + [j for j, c in enumerate(conds) if c[0] == n] for n in ("label", "input")}
    rates = {n: [conds[j][1] for j in idx[n]] for n in idx}
    p_max = ("label", max(flip_rates))
    auc = scoring == "auc"
    blocks, queries = [], None
    for m in (small, large):
        block, queries = query_columns(rows, m, families, conds, label_score(rows) if auc else _COLUMNS[scoring][0])
        follow = (np.full((len(block), 1), np.nan) if auc
                  else query_columns(rows, m, families, [p_max], _COLUMNS[scoring][1])[0])
        blocks += [block, follow]
    codes = pd.factorize(queries.family)[0]
    values = np.column_stack([codes, queries.true_label.to_numpy(), *blocks])
    n_c = len(conds)

    def stat(x: np.ndarray) -> np.ndarray:
        per = []
        for j in range(2):
            y = x[:, 2 + j * (n_c + 1): 2 + j * (n_c + 1) + n_c]
            acc = family_auc(x[:, 0], x[:, 1], y) if auc else y.mean(0)
            per.append([acc[0], slope(rates["label"], acc[idx["label"]]), slope(rates["input"], acc[idx["input"]]),
                        x[:, 2 + j * (n_c + 1) + n_c].mean()])
        per = np.asarray(per)
        return np.concatenate([per[0], per[1], per[1] - per[0]])

    est, low, high = hierarchical_intervals(values, stat, codes, queries.item.to_numpy(), n_boot, level, seed)
    keys = [(w, who) for who in (small, large, "difference") for w in MEASURES]
    return {k: (float(e), (float(lo), float(hi))) for k, e, lo, hi in zip(keys, est, low, high)
            if not (auc and k[0] == "follow")}


def distraction(rows: pd.DataFrame, models: Sequence[str], families: Sequence[str], rate: float,
                margin: str = "margin_cal", n_boot: int = 1000, level: float = 0.9,
                seed: int = 0) -> tuple[float, tuple[float, float], list[float]]:
    """Does the change of eq. 8 predict distraction? Per model, Spearman's rho over queries between the change of
    eq. 8 (summed over heads, averaged over layers: `id_sum_mean`) from clean to label noise at `rate` and the
    drop of the true label's `margin`; the mean over models with its two-level bootstrap interval (families, then
    queries), and each model's rho."""
    from scipy.stats import spearmanr

    from icl_geometry.core.resampling import hierarchical_intervals

    cols, queries = [], None
    for m in models:
        ids, queries = query_columns(rows, m, families, [("clean", 0.0), ("label", rate)], "id_sum_mean")
        mg, _ = query_columns(rows, m, families, [("clean", 0.0), ("label", rate)], margin)
        cols += [ids[:, 1] - ids[:, 0], mg[:, 0] - mg[:, 1]]
    x = np.column_stack(cols)

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        return np.nan if np.ptp(a) == 0 or np.ptp(b) == 0 else float(spearmanr(a, b).statistic)

    def stat(v: np.ndarray) -> np.ndarray:
        each = [rho(v[:, 2 * j], v[:, 2 * j + 1]) for j in range(len(models))]
        return np.array([np.nanmean(each) if np.isfinite(each).any() else np.nan, *each])

    codes = pd.factorize(queries.family)[0]
    est, low, high = hierarchical_intervals(x, stat, codes, queries.item.to_numpy(), n_boot, level, seed)
    return float(est[0]), (float(low[0]), float(high[0])), [float(e) for e in est[1:]]


def curve(rows: pd.DataFrame, model: str, families: Sequence[str], noise: str, rates: Sequence[float],
          scoring: str = "calibrated", n_boot: int = 1000, level: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """One model's accuracy (or AUC) at each rate of one noise (0 = clean) on `families`, with two-level
    bootstrap intervals (families, then queries). Returns a DataFrame: model, noise, scoring, rate, value,
    ci_low, ci_high, n."""
    from icl_geometry.core.resampling import hierarchical_intervals

    conds = [("clean", 0.0) if r == 0 else (noise, float(r)) for r in rates]
    auc = scoring == "auc"
    block, queries = query_columns(rows, model, families, conds, label_score(rows) if auc else _COLUMNS[scoring][0])
    codes = pd.factorize(queries.family)[0]
    values = np.column_stack([codes, queries.true_label.to_numpy(), block])

    def stat(x: np.ndarray) -> np.ndarray:
        return family_auc(x[:, 0], x[:, 1], x[:, 2:]) if auc else x[:, 2:].mean(0)

    est, low, high = hierarchical_intervals(values, stat, codes, queries.item.to_numpy(), n_boot, level, seed)
    return pd.DataFrame({"model": model, "noise": noise, "scoring": scoring, "rate": list(rates), "value": est,
                         "ci_low": low, "ci_high": high, "n": len(block)})
