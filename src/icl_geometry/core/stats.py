"""Statistics behind every verdict: intervals, bootstraps, correlations, logistic fits.

Pure numpy/scipy; from the package it imports only the input checks (`core.checks`) and the one cluster
resampler (`core.resampling`). Observations that share an item (the k-shot prompts of one question, the layers
of one prompt) are not independent, so every bootstrap here (and in `core.intrinsic_dim`) draws whole groups
with replacement through one function, `cluster_resamples` (no groups: each row is its own;
`iter_cluster_resamples` yields the same draws lazily; `within=` draws queries inside drawn families), which
lives in `core.resampling` and is re-exported here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from icl_geometry.core.checks import check_choice
from icl_geometry.core.resampling import cluster_resamples, iter_cluster_resamples  # noqa: F401  (re-exported)

CORRELATIONS = ("spearman", "pearson")


def bootstrap_interval(values: Any, statistic: Any = None, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, tuple[float, float]]:
    """A statistic of `values` (default: the mean over axis 0) and its percentile bootstrap interval.

    Rows of `values` (items) are resampled with replacement; `statistic` maps a resampled array to a float.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim == 0 or len(x) < 2:
        raise ValueError(f"bootstrap_interval: need at least 2 values, got {x.shape}")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_interval: level = {level!r} is not allowed: expected a number in (0, 1)")
    stat = statistic or (lambda a: float(a.mean()))
    boots = np.array([stat(x[rows]) for rows in cluster_resamples(len(x), n_boot, seed)])
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(stat(x)), (float(lo), float(hi))


def paired_difference(a: Any, b: Any, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Mean of b - a over paired items (e.g. correct at k shots minus correct at 0) with a bootstrap interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: a and b must have the same shape, got {a.shape} and {b.shape}")
    return bootstrap_interval(b - a, n_boot=n_boot, level=level, seed=seed)


def wilson_interval(successes: int, n: int, level: float = 0.9) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sensible at 0 and n successes, unlike Wald)."""
    from scipy import stats

    if n <= 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding below 0 or above 1
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (min(lo, p), max(hi, p))


def bin_edges(x: np.ndarray, bins: int | Sequence[float] = 6, strategy: str = "quantile") -> np.ndarray:
    """Bin edges for x: given edges, or `bins` equal-width ('uniform') or equal-count ('quantile') bins.
    Quantile edges that coincide (many tied values, e.g. integer ID changes) are merged."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        raise ValueError("bin_edges: no finite values")
    if not isinstance(bins, (int, np.integer)):
        edges = np.asarray(bins, float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins: expected increasing edges, got {bins!r}")
        return edges
    if bins < 1:
        raise ValueError(f"bins = {bins!r} is not allowed: expected an integer >= 1 or a list of edges")
    if strategy == "uniform":
        lo, hi = float(x.min()), float(x.max())
        return np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    check_choice("strategy", strategy, ("quantile", "uniform"))
    edges = np.unique(np.round(np.quantile(x, np.linspace(0, 1, bins + 1)), 9))  # rounding merges float-noise ties
    return edges if len(edges) > 1 else np.array([edges[0], edges[0] + 1])


def binned_accuracy(x: Sequence[float], correct: Sequence[bool], bins: int | Sequence[float] = 6,
                    strategy: str = "quantile", level: float = 0.9):
    """% correct per bin of x (the paper's Figs. 6-7), with counts and Wilson intervals.

    Bins are closed on the left, the last also on the right; values outside given edges are dropped.
    Returns a DataFrame: bin, low, high, n, n_correct, accuracy, ci_low, ci_high.
    """
    import pandas as pd

    x, c = np.asarray(x, float), np.asarray(correct, bool)
    if x.shape != c.shape:
        raise ValueError(f"x and correct must have the same shape, got {x.shape} and {c.shape}")
    edges = bin_edges(x, bins, strategy)
    which = np.searchsorted(edges, x, side="right") - 1
    which[x == edges[-1]] = len(edges) - 2
    rows = []
    for k in range(len(edges) - 1):
        sel = (which == k) & np.isfinite(x)
        n, s = int(sel.sum()), int(c[sel].sum())
        lo, hi = wilson_interval(s, n, level)
        rows.append({"bin": f"[{edges[k]:.3g}, {edges[k + 1]:.3g}{']' if k == len(edges) - 2 else ')'}",
                     "low": edges[k], "high": edges[k + 1], "n": n, "n_correct": s,
                     "accuracy": s / n if n else math.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> float:
    from scipy import stats

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    if method == "spearman":
        return float(stats.spearmanr(x, y).statistic)
    return float(np.corrcoef(x, y)[0, 1])


def bootstrap_correlation(x: Sequence[float], y: Sequence[float], groups: Sequence[Any] | None = None,
                          method: str = "spearman", n_boot: int = 1000, level: float = 0.9,
                          seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Correlation of x and y (Spearman, or Pearson; with y binary, Pearson is the point-biserial r)
    and a percentile bootstrap interval that resamples whole `groups` (items), or rows without groups."""
    check_choice("method", method, CORRELATIONS)
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    g = np.arange(len(x)) if groups is None else np.asarray(groups)[ok]
    if len(x) < 4:
        raise ValueError(f"bootstrap_correlation: need at least 4 pairs, got {len(x)}")
    r = _corr(x, y, method)
    boots = np.array([_corr(x[i], y[i], method) for i in cluster_resamples(g, n_boot, seed)])
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return r, (math.nan, math.nan)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return r, (float(lo), float(hi))


@dataclass
class LogisticFit:
    """P(correct) = sigmoid(intercept + coef . z), z the standardised predictors (per standard deviation)."""

    names: tuple[str, ...]
    intercept: float
    coef: np.ndarray  # per standard deviation of each predictor
    stderr: np.ndarray  # Wald standard errors (rows treated as independent)
    ci: np.ndarray  # (n_predictors, 2) cluster-bootstrap percentile intervals (NaN without bootstrap)
    scale: np.ndarray  # standard deviation of each predictor (coef / scale = change per raw unit)
    n: int
    converged: bool
    boot: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)

    def odds_ratio(self, name: str) -> float:
        return float(np.exp(self.coef[self.names.index(name)]))


def _irls(X: np.ndarray, y: np.ndarray, ridge: float, max_iter: int = 100, tol: float = 1e-10):
    """Newton-Raphson for the logistic log-likelihood (column 0 = intercept, not penalised)."""
    beta = np.zeros(X.shape[1])
    pen = np.full(X.shape[1], ridge)
    pen[0] = 0.0
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(-np.clip(X @ beta, -40, 40)))
        w = p * (1 - p)
        grad = X.T @ (y - p) - pen * beta
        H = (X * w[:, None]).T @ X + np.diag(pen)
        step = np.linalg.solve(H + 1e-12 * np.eye(len(beta)), grad)
        beta += step
        if np.max(np.abs(step)) < tol:
            return beta, H, True
    return beta, H, False


def fit_logistic(predictors: dict[str, Sequence[float]], correct: Sequence[bool], groups: Sequence[Any] | None = None,
                 n_boot: int = 0, level: float = 0.9, seed: int = 0, ridge: float = 1e-3) -> LogisticFit:
    """Logistic regression of correctness on standardised predictors, by Newton's method.

    `ridge` (a tiny L2 penalty on the slopes) keeps the fit finite when a resample is perfectly
    separated; at 1e-3 it changes an unseparated fit negligibly. With `n_boot`, slopes get percentile
    intervals from a bootstrap over whole `groups` (items), which respects repeated items; the Wald
    standard errors assume independent rows.
    """
    names = tuple(predictors)
    if not names:
        raise ValueError("fit_logistic: give at least one predictor")
    y = np.asarray(correct, float)
    Z = np.column_stack([np.asarray(predictors[k], float) for k in names])
    if Z.shape[0] != len(y):
        raise ValueError(f"fit_logistic: {Z.shape[0]} predictor rows but {len(y)} outcomes")
    ok = np.all(np.isfinite(Z), axis=1)
    Z, y = Z[ok], y[ok]
    g = np.arange(len(y)) if groups is None else np.asarray(groups)[ok]
    if len(y) < 3 or y.min() == y.max():
        raise ValueError("fit_logistic: need at least 3 rows with both outcomes present")
    mean, scale = Z.mean(0), Z.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    X = np.column_stack([np.ones(len(y)), (Z - mean) / scale])
    beta, H, converged = _irls(X, y, ridge)
    stderr = np.sqrt(np.clip(np.diag(np.linalg.pinv(H)), 0, None))[1:]
    boot = np.array([_irls(X[i], y[i], ridge)[0][1:] for i in cluster_resamples(g, n_boot, seed)
                     if 0 < y[i].mean() < 1]) if n_boot else np.zeros((0, len(names)))
    ci = (np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0).T if len(boot)
          else np.full((len(names), 2), math.nan))
    return LogisticFit(names, float(beta[0]), beta[1:], stderr, ci, scale, len(y), converged, boot)


def layer_profile(delta: np.ndarray, correct: Sequence[bool], groups: Sequence[Any], n_boot: int = 500,
                  level: float = 0.9, seed: int = 0):
    """Fig. 8: mean change per layer for correct and for incorrect answers, and their difference, each
    with a bootstrap interval over whole items. delta: (n_rows, n_layers). Returns a long DataFrame."""
    import pandas as pd

    delta, c, g = np.asarray(delta, float), np.asarray(correct, bool), np.asarray(groups)
    if delta.ndim != 2 or len(delta) != len(c):
        raise ValueError(f"delta: expected (n_rows, n_layers) with n_rows = {len(c)}, got {delta.shape}")

    def stats_of(rows: np.ndarray) -> np.ndarray:
        cc = c[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m1 = np.nanmean(delta[rows][cc], 0) if cc.any() else np.full(delta.shape[1], np.nan)
            m0 = np.nanmean(delta[rows][~cc], 0) if (~cc).any() else np.full(delta.shape[1], np.nan)
        return np.stack([m1, m0, m1 - m0])

    point = stats_of(np.arange(len(c)))
    boots = np.stack([stats_of(i) for i in cluster_resamples(g, n_boot, seed)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(boots, [(1 - level) / 2, (1 + level) / 2], axis=0)
    rows = []
    for k, name in enumerate(("correct", "incorrect", "correct - incorrect")):
        for layer in range(delta.shape[1]):
            rows.append({"group": name, "layer": layer, "mean": point[k, layer], "ci_low": lo[k, layer],
                         "ci_high": hi[k, layer]})
    return pd.DataFrame(rows)


def family_dummies(families: Sequence[str]) -> dict[str, np.ndarray]:
    """One 0/1 column per family but the first (reference), to control a logistic fit for the family."""
    fam = np.asarray(families)
    levels = sorted(set(fam.tolist()))
    return {f"family={f}": (fam == f).astype(float) for f in levels[1:]}


def layer_correlations(delta: np.ndarray, correct: Sequence[bool], groups: Sequence[Any], n_boot: int = 200,
                       level: float = 0.9, seed: int = 0, method: str = "spearman"):
    """Per layer, the correlation of the change with correctness and its item-bootstrap interval."""
    import pandas as pd

    rows = []
    for layer in range(np.asarray(delta).shape[1]):
        r, (lo, hi) = bootstrap_correlation(delta[:, layer], np.asarray(correct, float), groups, method, n_boot,
                                            level, seed)
        rows.append({"layer": layer, "r": r, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def item_mean_interval(values: Sequence[float], groups: Sequence[Any],
                       level: float = 0.9) -> tuple[float, tuple[float, float], int]:
    """Mean over items of each item's mean (items weigh equally, however many rows they have), with a Student-t
    interval over the item means. Returns (mean, interval, n_items); the interval is NaN for one item.

    Not a bootstrap over items: at 30 items of 0/1 differences a percentile bootstrap covered 84% for a nominal
    90% (too narrow by about sqrt((n - 1) / n) and a normal quantile; tests/test_coverage.py)."""
    v = np.asarray(values, float)
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    if len(v) != len(inverse) or len(v) == 0:
        raise ValueError(f"item_mean_interval: {len(v)} values but {len(inverse)} group labels")
    per_item = np.array([v[inverse == g].mean() for g in range(len(labels))])
    if len(per_item) < 2:
        return float(per_item.mean()), (math.nan, math.nan), len(per_item)
    mean, ci = t_interval(per_item, level)
    return mean, ci, len(per_item)


def slope_difference(a: LogisticFit, b: LogisticFit, level: float = 0.9,
                     paired: bool = True) -> tuple[float, tuple[float, float]]:
    """First slope of fit a minus that of fit b, with a percentile interval from their bootstrap slopes
    taken pairwise. `paired=True`: both fits resampled the same items (same groups, n_boot and seed); NaN
    interval when their bootstrap sizes differ. `paired=False`: the fits are of independent samples (two
    models' runs on different items), so any pairing of their independent draws is a draw of the difference;
    the first min(len) draws of each are used."""
    value = float(a.coef[0] - b.coef[0])
    n = min(len(a.boot), len(b.boot))
    if n == 0 or (paired and len(a.boot) != len(b.boot)):
        return value, (math.nan, math.nan)
    lo, hi = np.quantile(a.boot[:n, 0] - b.boot[:n, 0], [(1 - level) / 2, (1 + level) / 2])
    return value, (float(lo), float(hi))


def independent_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 1000, level: float = 0.9,
                           seed: int = 0) -> tuple[float, tuple[float, float]]:
    """mean(b) - mean(a) for two independent samples (e.g. per-item values of two models' runs, on different
    items), with a percentile bootstrap interval that resamples each sample on its own."""
    return two_sample_bootstrap(a, b, lambda x, y: float(y.mean() - x.mean()), n_boot, level, seed)


def two_sample_bootstrap(a: Sequence[float], b: Sequence[float], statistic: Any, n_boot: int = 1000,
                         level: float = 0.9, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """statistic(a, b) of two independent samples and its percentile interval, each sample resampled on its
    own (a with `seed`, b with `seed + 1`)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"two samples: need two 1-d samples of at least 2 values each, got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"two samples: level = {level!r} is not allowed: expected a number in (0, 1)")
    ra, rb = cluster_resamples(len(a), n_boot, seed), cluster_resamples(len(b), n_boot, seed + 1)
    boots = np.array([statistic(a[i], b[j]) for i, j in zip(ra, rb)])
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(statistic(a, b)), (float(lo), float(hi))


def spearman_interval(a: Any, b: Any, level: float = 0.9) -> tuple[float, tuple[float, float]]:
    """Spearman's rho of paired samples with a Fisher-z interval (Bonett-Wright standard error)."""
    from scipy import stats

    r = float(stats.spearmanr(a, b).statistic)
    n = len(a)
    if n < 4:
        raise ValueError(f"spearman_interval: need at least 4 pairs, got {n}")
    se = np.sqrt((1 + r**2 / 2) / (n - 3))
    z = stats.norm.ppf(0.5 + level / 2)
    if abs(r) >= 1.0:
        return r, (r, r)  # a perfect ranking: the Fisher transform is infinite, the interval degenerate
    return r, (float(np.tanh(np.arctanh(r) - z * se)), float(np.tanh(np.arctanh(r) + z * se)))


def t_interval(values: Sequence[float], level: float = 0.9) -> tuple[float, tuple[float, float]]:
    """Mean of a few independent values (seeds) and its Student-t interval; nan values are dropped."""
    from scipy import stats as st

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        raise ValueError(f"t_interval: need at least 2 finite values, got {len(v)}")
    half = float(st.t.ppf(0.5 + level / 2, len(v) - 1)) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), (float(v.mean() - half), float(v.mean() + half))


def check_level(name: str, level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"{name}: level = {level!r} is not allowed: expected a number in (0, 1)")


def t_bounds(centre: float, se: float, df: float, level: float = 0.9) -> tuple[float, float]:
    """centre -/+ t_{df, (1 + level) / 2} se: a Student-t interval from an estimate and its standard error."""
    from scipy import stats as st

    half = float(st.t.ppf(0.5 + level / 2, df)) * se
    return float(centre - half), float(centre + half)


def _log_or_raw(x: np.ndarray, log: bool, name: str) -> np.ndarray:
    if log:
        if np.any(x <= 0):
            raise ValueError(f"{name}: log=True needs positive values, got {x[x <= 0][:3].tolist()}")
        return np.log(x)
    return x


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.9,
                      log: bool = False) -> tuple[float, tuple[float, float]]:
    """Mean of b - a over n pairs with its Student-t interval (n - 1 degrees of freedom); with `log=True` the
    geometric mean of b / a and its interval (the t interval of mean(log b - log a), exponentiated).

    Exact under normal pair differences for any n >= 2, where a percentile bootstrap of n = 3 pairs reaches
    only about the range of three values (at most 1 - 2 / 2^3 = 75% for a median). Its coverage under the
    book's own distributions is measured in tests/test_coverage.py."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired_t_interval: expected two 1-d samples of the same length >= 2, got {a.shape} and "
                         f"{b.shape}")
    check_level("paired_t_interval", level)
    d = _log_or_raw(b, log, "paired_t_interval") - _log_or_raw(a, log, "paired_t_interval")
    lo, hi = t_bounds(float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1, level)
    if log:
        return float(np.exp(d.mean())), (float(np.exp(lo)), float(np.exp(hi)))
    return float(d.mean()), (lo, hi)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.9,
                   log: bool = False) -> tuple[float, tuple[float, float]]:
    """mean(b) - mean(a) of two independent samples with Welch's t interval (Satterthwaite degrees of freedom);
    with `log=True` the ratio of geometric means, b over a, and its interval (Welch on the logs, exponentiated).

    For a few independent fits per setting (seeds), where a bootstrap of medians cannot reach its nominal
    level; exact in the limit of normal samples with equal variances, close to it otherwise (its coverage at
    the book's sizes: tests/test_coverage.py)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch_interval: expected two 1-d samples of at least 2 values each, got {a.shape} and "
                         f"{b.shape}")
    check_level("welch_interval", level)
    la, lb = _log_or_raw(a, log, "welch_interval"), _log_or_raw(b, log, "welch_interval")
    va, vb = la.var(ddof=1) / len(la), lb.var(ddof=1) / len(lb)
    centre = float(lb.mean() - la.mean())
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1)) if se > 0 else len(la) + len(lb) - 2
    lo, hi = t_bounds(centre, se, df, level)
    if log:
        return float(np.exp(centre)), (float(np.exp(lo)), float(np.exp(hi)))
    return centre, (lo, hi)


def se_interval(value: float, se: float, z: float = 2.0) -> tuple[float, float]:
    """value -/+ z standard errors (z = 2: about 95% for a normal estimate; the book's "2 SE" bars)."""
    if not np.isfinite(se) or se < 0:
        raise ValueError(f"se_interval: the standard error must be a finite number >= 0, got {se!r}")
    return float(value - z * se), float(value + z * se)


def per_item_correlations(x: Sequence[float], y: Sequence[float], groups: Sequence[Any],
                          method: str = "spearman") -> np.ndarray:
    """Each item's own correlation of x and y over its rows, for the items where both vary (finite pairs
    only; items in sorted label order). What `within_item_correlation` averages."""
    x, y, g = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, g = x[ok], y[ok], g[ok]
    per_item = []
    for label in np.unique(g):
        m = g == label
        if m.sum() >= 2:
            r = _corr(x[m], y[m], method)
            if np.isfinite(r):
                per_item.append(r)
    return np.asarray(per_item, float)


def within_item_correlation(x: Sequence[float], y: Sequence[float], groups: Sequence[Any], method: str = "spearman",
                            n_boot: int = 1000, level: float = 0.9,
                            seed: int = 0) -> tuple[float, tuple[float, float], int]:
    """Mean over items of each item's own correlation of x and y (e.g. over its k-shot prompts), with a
    bootstrap interval over items. Returns (mean, interval, n_items used).

    An item enters only where both x and y vary within it (an item right or wrong at every k says nothing
    about *which* of its prompts were right). Differences between items (an easy family with large changes)
    cancel, so this asks the within-item question a pooled correlation mixes with the between-item one:
    pooled and within-item correlations can have opposite signs (Simpson's paradox). NaN interval for
    fewer than 2 usable items.
    """
    check_choice("method", method, CORRELATIONS)
    x, y, g = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    if not len(x) == len(y) == len(g):
        raise ValueError(f"within_item_correlation: x, y and groups differ in length ({len(x)}, {len(y)}, {len(g)})")
    r_items = per_item_correlations(x, y, g, method)
    if len(r_items) == 0:
        return math.nan, (math.nan, math.nan), 0
    if len(r_items) < 2:
        return float(r_items[0]), (math.nan, math.nan), 1
    mean, ci = bootstrap_interval(r_items, n_boot=n_boot, level=level, seed=seed)
    return mean, ci, len(r_items)
