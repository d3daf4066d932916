"""The toy grid's rows read back (chapter 2): their types restored, the grid's ends, the contrast of its ends on
a column (the toy claims' measurements) and its findings as sentences quoting the run's own numbers."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from icl_geometry.core import stats
from icl_geometry.core.jackknife import jackknife_interval
from icl_geometry.toys.sine_attention.model import piece_budget, rank_bound
from icl_geometry.toys.sine_attention.sweep import compare_paired, compare_restarts

INT_FIELDS = ("heads", "d_head", "context", "seed", "restart", "pieces", "distinct", "rank")  # counts of the rows


def restore_types(df: pd.DataFrame) -> pd.DataFrame:
    """A toy table's counts as integers and `kept` as booleans (a stacked table stores them as floats/objects)."""
    return df.astype({c: int for c in INT_FIELDS if c in df.columns}).astype({"kept": bool})


def grid_ends(rows: Any) -> dict[str, int]:
    """The fewest and most heads and the shortest and longest context of the rows; with a `d_head` column (the
    width-matched family) also the head widths at the fewest and most heads (d_lo, d_hi) and heads x d_head."""
    df = pd.DataFrame(rows)
    ends = {"h_lo": int(df.heads.min()), "h_hi": int(df.heads.max()), "c_lo": int(df.context.min()),
            "c_hi": int(df.context.max())}
    if "d_head" in df.columns:
        ends.update(d_lo=int(df[df.heads == ends["h_lo"]].d_head.iloc[0]),
                    d_hi=int(df[df.heads == ends["h_hi"]].d_head.iloc[0]))
        ends["width"] = ends["h_lo"] * ends["d_lo"]
    return ends


def context_ratios(kept: pd.DataFrame, min_heads: int = 2) -> pd.DataFrame:
    """Every network with at least `min_heads` heads, read at each longer context against the shortest: one row
    per (heads, seed, context) with the same network's test MSE ratio (context C / shortest context)."""
    c_lo = int(kept.context.min())
    net = kept[kept.heads >= min_heads].pivot_table(index=["heads", "seed"], columns="context", values="test_mse")
    if c_lo not in net.columns:
        return pd.DataFrame(columns=["heads", "seed", "context", "ratio"])
    ratios = net.drop(columns=c_lo).div(net[c_lo], axis=0)
    return ratios.stack().rename("ratio").reset_index()


def context_contrast(kept: pd.DataFrame, min_heads: int = 2, min_n: int = 3,
                     level: float = 0.9) -> tuple[float, tuple[float, float], str] | None:
    """Fig. 4's context statement on the whole grid: over every network with at least `min_heads` heads, the
    geometric mean of the same network's MSE at the longest context over that at the shortest, with a Student-t
    interval on the log ratios over networks (independent: a network is one (heads, seed)); None below `min_n`
    networks or with one context."""
    ratios = context_ratios(kept, min_heads)
    longest = ratios[ratios.context == ratios.context.max()] if len(ratios) else ratios
    if len(longest) < max(min_n, 2):
        return None
    mean, (lo, hi) = stats.t_interval(np.log(longest.ratio.to_numpy(float)), level)
    heads = sorted(int(h) for h in longest.heads.unique())
    return float(np.exp(mean)), (float(np.exp(lo)), float(np.exp(hi))), (
        f"networks with {min_heads}+ heads ({len(longest)}: heads {heads[0]}-{heads[-1]} x seeds): geometric mean of "
        f"the same network's test MSE at context {int(longest.context.max())} / at {int(kept.context.min())}; "
        f"{level:.0%} Student-t interval on the log ratios over networks")


def context_table(kept: pd.DataFrame, min_heads: int = 1) -> pd.DataFrame:
    """Per heads and context: the geometric-mean MSE ratio to the shortest context (same networks) and the
    share of networks it improves: the whole grid's context contrasts, for the reader."""
    ratios = context_ratios(kept, min_heads)
    log = np.log(ratios.ratio.astype(float))
    return (ratios.assign(log=log, improved=log < 0).groupby(["heads", "context"])
            .agg(networks=("ratio", "size"), ratio=("log", lambda v: float(np.exp(v.mean()))),
                 improved=("improved", "mean")).reset_index())


def spearman_columns(a: np.ndarray) -> float:
    """Spearman's rho of the two columns of `a`."""
    from scipy.stats import spearmanr

    return float(spearmanr(a[:, 0], a[:, 1]).statistic)


def grid_contrast(kept: pd.DataFrame, col: str, knob: str, how: str, min_n: int,
                  level: float = 0.9) -> tuple[float, tuple[float, float], str] | None:
    """Column `col` of the kept fits (one per heads and seed) at the grid's two ends of `knob`: (value, interval, how
    it was measured), or None when the grid has one value of `knob` or fewer than `min_n` units.

    Context (same networks at the shortest and longest context, fewest heads): paired by seed, a Student-t interval
    over seeds (`compare_paired`). Heads (fewest and most at the longest context, different networks): Welch's
    interval (`compare_restarts`). how="spearman": Spearman(knob, col) over the grid with a jackknife over whole
    networks (all contexts of one (heads, seed) deleted together; Fisher scale)."""
    ends = grid_ends(kept)
    lo_key, hi_key = ("c_lo", "c_hi") if knob == "context" else ("h_lo", "h_hi")
    if ends[lo_key] == ends[hi_key]:
        return None

    def cell(h: int, c: int) -> np.ndarray:
        return kept[(kept.heads == h) & (kept.context == c)].sort_values("seed")[col].to_numpy(float)

    if how == "spearman":
        networks = kept.heads.astype(str) + "/" + kept.seed.astype(str)
        n_units = int(networks.nunique())
        if n_units < min_n:
            return None
        value, interval = jackknife_interval(kept[[knob, col]].to_numpy(float), spearman_columns,
                                             groups=networks.to_numpy(), level=level, scale="fisher")
        return value, interval, (f" ({len(kept)} (network, context) cells, {n_units} networks; {level:.0%} jackknife "
                                 "t interval over networks, Fisher scale)")
    if knob == "context":
        a, b = cell(ends["h_lo"], ends["c_hi"]), cell(ends["h_lo"], ends["c_lo"])
        if min(len(a), len(b)) < min_n:
            return None
        value, interval = compare_paired(a, b, how, level=level)
        return value, interval, f" ({len(a)} seeds, {level:.0%} Student-t interval over seeds, paired)"
    a, b = cell(ends["h_hi"], ends["c_hi"]), cell(ends["h_lo"], ends["c_hi"])
    if min(len(a), len(b)) < min_n:
        return None
    value, interval = compare_restarts(a, b, how, level=level)
    return value, interval, f" ({len(a)} and {len(b)} seeds, {level:.0%} Welch t interval" + (
        " on the logs)" if how == "ratio" else ")")


def contrasts(kept: pd.DataFrame, tests: Mapping[str, tuple[str, str, str, str]], min_n: Mapping[str, int],
              level: float = 0.9) -> dict[str, tuple[float, tuple[float, float], str]]:
    """`grid_contrast` of the kept fits for every test {claim id: (column, knob, how, wording)}: (value, interval,
    note), the note the wording filled from `grid_ends` plus how it was measured; a test the grid cannot judge
    (one value of its knob, fewer units than its `min_n`) is left out."""
    ends = grid_ends(kept)
    out = {}
    for cid, (col, knob, how, wording) in tests.items():
        got = grid_contrast(kept, col, knob, how, min_n[cid], level)
        if got is not None:
            value, interval, measured = got
            out[cid] = (float(value), (float(interval[0]), float(interval[1])), wording.format(**ends) + measured)
    return out


def separate_contrast(kept: pd.DataFrame, min_n: int = 3,
                      level: float = 0.9) -> tuple[float, tuple[float, float], str] | None:
    """The alternative reading's contrast (a separate network per context, kept fits): the ratio of geometric-mean
    test MSE of the networks trained for the longest context over those for the shortest, Welch's interval on
    the logs over seeds; None below `min_n` seeds a side."""
    c_lo, c_hi, h = int(kept.context.min()), int(kept.context.max()), int(kept.heads.min())
    lo, hi = (kept[kept.context == c].sort_values("seed") for c in (c_lo, c_hi))
    if min(len(lo), len(hi)) < min_n:
        return None
    value, interval = compare_restarts(hi.test_mse, lo.test_mse, "ratio", level=level)
    return value, interval, (f"{h} head(s), separate networks per context: geometric mean test MSE at context {c_hi} "
                             f"/ at {c_lo} ({len(hi)} seeds each, {level:.0%} Welch t interval on the logs)")


def findings(rows: Any, hidden: int = 8, d_head: int = 8) -> list[str]:
    """The toy's results link by link (dimension, budget, fit), as sentences generated from the toy grid's rows
    (kept fits, medians over seeds), so that the chapter's reading of a run - the ci run or a recorded one -
    quotes that run's numbers and never typed-in ones."""
    df = pd.DataFrame(rows)
    k = df[df.kept.astype(bool)]
    e = grid_ends(k)
    h_lo, h_hi, c_lo, c_hi = e["h_lo"], e["h_hi"], e["c_lo"], e["c_hi"]
    budget = piece_budget(hidden, 2)

    def med(h: int, c: int, col: str) -> float:
        return float(k[(k.heads == h) & (k.context == c)][col].median())

    def change(a: float, b: float, fmt: str) -> str:
        word = "rises" if b > a else "falls" if b < a else "stays"
        return f"{word} ({a:{fmt}} -> {b:{fmt}})"

    lines = []
    for h in dict.fromkeys((h_lo, h_hi)):
        lines.append(f"Dimension, {h} head(s): from context {c_lo} to {c_hi} the median rank of the MLP input "
                     f"{change(med(h, c_lo, 'rank'), med(h, c_hi, 'rank'), 'g')} (bound {rank_bound(h, d_head, c_lo)} "
                     f"-> {rank_bound(h, d_head, c_hi)} with d_head {d_head}) and its effective dimension "
                     f"{change(med(h, c_lo, 'eff_dim'), med(h, c_hi, 'eff_dim'), '.2f')}.")
    longer = k[k.context > c_lo]
    over = longer.pieces > budget
    by_heads = ", ".join(f"{h} head(s): {int(g.sum())} of {len(g)}" for h, g in over.groupby(longer.heads))
    lines.append(f"Budget: at context {c_lo} the input is planar, so no fit has more than {budget} pieces; the kept "
                 f"fits there have a median of {med(h_lo, c_lo, 'pieces'):g} ({h_lo} head(s)) and "
                 f"{med(h_hi, c_lo, 'pieces'):g} ({h_hi} heads). At longer contexts {int(over.sum())} of {len(longer)} "
                 f"kept fits use more than {budget} pieces ({by_heads}); the most is {int(k.pieces.max())}.")
    for h in dict.fromkeys((h_lo, h_hi)):
        a, b = med(h, c_lo, "test_mse"), med(h, c_hi, "test_mse")
        verb = "improves" if b < a else "worsens"
        lines.append(f"Fit, {h} head(s): reading {c_hi} tokens instead of {c_lo} {verb} the same networks' median "
                     f"test MSE ({a:.2g} -> {b:.2g}); median pieces {med(h, c_lo, 'pieces'):g} -> "
                     f"{med(h, c_hi, 'pieces'):g}.")
    if h_hi != h_lo:
        lines.append(f"Heads: at context {c_hi}, {h_hi} heads instead of {h_lo} take the median test MSE from "
                     f"{med(h_lo, c_hi, 'test_mse'):.2g} to {med(h_hi, c_hi, 'test_mse'):.2g} "
                     "and the median pieces from "
                     f"{med(h_lo, c_hi, 'pieces'):g} to {med(h_hi, c_hi, 'pieces'):g}.")
    if len(k) >= 4:
        rho, (lo, hi) = stats.spearman_interval(k.pieces, k.test_mse)
        lines.append(f"Pieces and fit: over the {len(k)} kept (network, context) cells, Spearman(pieces, test MSE) = "
                     f"{rho:.2f} [{lo:.2f}, {hi:.2f}] (negative: more pieces, better fit).")
    return lines
