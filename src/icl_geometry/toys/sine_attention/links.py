"""The toy's chain link by link on the whole grid (issue 28): the paper's mechanism reads context -> dimension of
the MLP input -> regions -> fit, and each table here asks one part of it of the kept fits (one per network, i.e.
per heads setting and seed, read at every context).

- `heads_table`: more heads against the fewest at every context, on the grid (where more heads is also a larger
  network) and on the width-matched family (heads x d_head fixed: the same attention parameters): the ratio of
  geometric-mean test MSEs over seeds with Welch's interval on the logs (`compare_restarts`: different networks)
  and the share of (network, network) pairs that the extra heads improve.
- `mediation_table`: how test MSE goes with each candidate mediator (pieces, effective dimension, rank, the
  linear read-out's MSE), two ways: across the grid's (network, context) cells, and within networks (each
  network's change from its shortest context, so that what differs between networks - its seed, its heads -
  drops out). Spearman's rho with a jackknife over whole networks (Fisher scale), the grid's one method for a
  correlation over cells that share a network (`grid_contrast(how="spearman")`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry.core.jackknife import jackknife_interval
from icl_geometry.toys.sine_attention.grid import spearman_columns
from icl_geometry.toys.sine_attention.sweep import compare_restarts

MEDIATORS = ("pieces", "eff_dim", "rank", "probe_mse")
# the sign of Spearman(mediator, test MSE) the paper's chain predicts: more pieces and a higher-dimensional input
# go with a lower MSE; a better linear read-out (lower probe MSE) with a lower MSE too
CHAIN_SIGN = {"pieces": -1, "eff_dim": -1, "rank": -1, "probe_mse": 1}
SCOPES = ("across cells", "within networks")
MIN_NETWORKS = 10  # the jackknife over networks needs this many (tests/test_coverage.py); fewer: no interval


def _kept(rows: Any) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df[df.kept.astype(bool)] if "kept" in df.columns else df


def networks(kept: pd.DataFrame) -> np.ndarray:
    """One label per row naming its network: heads (and d_head, where the rows have it) and seed."""
    label = kept.heads.astype(int).astype(str)
    if "d_head" in kept.columns:
        label = label + "x" + kept.d_head.astype(int).astype(str)
    return (label + "/" + kept.seed.astype(int).astype(str)).to_numpy()


def _heads_rows(kept: pd.DataFrame, family: str, level: float) -> list[dict[str, Any]]:
    h_lo = int(kept.heads.min())
    out = []
    for C in sorted(int(c) for c in kept.context.unique()):
        at = kept[kept.context == C]
        b = at[at.heads == h_lo].sort_values("seed").test_mse.to_numpy(float)
        for h in sorted(int(h) for h in at.heads.unique() if h > h_lo):
            cell = at[at.heads == h]
            a = cell.sort_values("seed").test_mse.to_numpy(float)
            if min(len(a), len(b)) >= 2:
                ratio, (lo, hi) = compare_restarts(a, b, "ratio", level=level)
            else:
                ratio = math.exp(np.log(a).mean() - np.log(b).mean()) if len(a) and len(b) else math.nan
                lo = hi = math.nan
            row = {"family": family, "context": C, "heads": h}
            if "d_head" in cell.columns:
                row["d_head"] = int(cell.d_head.iloc[0])
            out.append({**row, "fewest": h_lo, "seeds": len(a), "seeds_fewest": len(b), "ratio": ratio, "low": lo,
                        "high": hi, "improved": float((a[:, None] < b[None, :]).mean()) if len(a) and len(b)
                        else math.nan})
    return out


def heads_table(kept: Any, width_matched: Any = None, level: float = 0.9) -> pd.DataFrame:
    """For every context C and every heads count h above the fewest: the ratio of geometric-mean test MSE over
    seeds (h heads / the fewest; below 1: more heads fit better), Welch's `level` interval on the logs (different
    networks: `compare_restarts`; NaN with fewer than 2 seeds a side), and the share of (h-heads network,
    fewest-heads network) pairs in which the extra heads fit better. `family` says which grid: "grid" (d_head
    fixed, more heads = more parameters) or "width-matched" (the rows of `width_matched`, heads x d_head fixed;
    its `d_head` column is kept). Only kept fits are used (a `kept` column, where present, selects them)."""
    rows = _heads_rows(_kept(kept), "grid", level)
    if width_matched is not None:
        rows += _heads_rows(_kept(width_matched), "width-matched", level)
    table = pd.DataFrame(rows)
    if "d_head" in table.columns:
        table["d_head"] = table.d_head.astype("Int64")
    return table


def within_changes(kept: Any, columns: Sequence[str] = MEDIATORS) -> pd.DataFrame:
    """Each network's change from its shortest context: one row per (network, longer context) with
    d_log_test_mse = log MSE(C) - log MSE(shortest) and d_<col> = col(C) - col(shortest) for each of `columns`."""
    df = _kept(kept).assign(network=lambda d: networks(d)).sort_values(["network", "context"])
    c_lo = int(df.context.min())
    base = df[df.context == c_lo].set_index("network")
    longer = df[df.context > c_lo].copy()
    first = base.reindex(longer.network)
    out = longer[["network", "heads", "seed", "context"]].reset_index(drop=True)
    out["d_log_test_mse"] = np.log(longer.test_mse.to_numpy(float)) - np.log(first.test_mse.to_numpy(float))
    for col in columns:
        out[f"d_{col}"] = longer[col].to_numpy(float) - first[col].to_numpy(float)
    return out


def _spearman(x: np.ndarray, y: np.ndarray, groups: np.ndarray, level: float,
              min_networks: int) -> tuple[float, float, float, int, int]:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[ok], y[ok], groups[ok]
    n_net = len(set(groups))
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, math.nan, len(x), n_net
    both = np.column_stack([x, y])
    rho = spearman_columns(both)
    if n_net < max(min_networks, 2):
        return rho, math.nan, math.nan, len(x), n_net
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            _, (lo, hi) = jackknife_interval(both, spearman_columns, groups=groups, level=level, scale="fisher")
    except ValueError:  # a leave-one-network-out sample with a constant column: no interval
        lo = hi = math.nan
    return rho, lo, hi, len(x), n_net


def mediation_table(kept: Any, mediators: Sequence[str] = MEDIATORS, level: float = 0.9,
                    min_networks: int = MIN_NETWORKS) -> pd.DataFrame:
    """How the toy's test MSE goes with each candidate mediator, over the kept fits: per mediator and scope,
    Spearman's rho with a `level` jackknife interval over whole networks (Fisher scale; NaN below
    `min_networks` networks), the number of cells and networks, and the sign the paper's chain predicts.

    "across cells": Spearman(mediator, test MSE) over every (network, context) cell - differences between
    networks (seeds, heads) count too. "within networks": Spearman(change of the mediator, change of log test
    MSE) from each network's shortest context to each longer one (`within_changes`) - only what reading more
    tokens does to one network. A mediator that carries the chain has the predicted sign in both; one that only
    tracks MSE across networks (e.g. a lucky seed has both) shows it across cells alone."""
    df = _kept(kept)
    unknown = [m for m in mediators if m not in df.columns]
    if unknown:
        raise ValueError(f"mediators {unknown} are not columns of the rows: expected some of {list(MEDIATORS)}")
    groups = networks(df)
    changes = within_changes(df, mediators)
    out = []
    for m in mediators:
        for scope in SCOPES:
            if scope == SCOPES[0]:
                x, y, g = df[m].to_numpy(float), df.test_mse.to_numpy(float), groups
            else:
                x, y, g = (changes[f"d_{m}"].to_numpy(float), changes.d_log_test_mse.to_numpy(float),
                           changes.network.to_numpy())
            rho, lo, hi, cells, n_net = _spearman(x, y, g, level, min_networks)
            out.append({"mediator": m, "scope": scope, "rho": rho, "low": lo, "high": hi, "cells": cells,
                        "networks": n_net, "chain_sign": CHAIN_SIGN.get(m, 0)})
    return pd.DataFrame(out)


def chain_findings(grid: Any, width_matched: Any = None, refits: Any = None, level: float = 0.9) -> list[str]:
    """The chain link by link as sentences generated from a run's rows (the grid's, and where given the
    width-matched family's and the intervention's), so that the chapter quotes that run's numbers: context ->
    dimension (within networks), dimension -> fit (the intervention), heads at a fixed width, and which mediator
    test MSE tracks within networks."""
    from icl_geometry.toys.sine_attention.refit import HURT_TOL, refit_contrast

    kept = _kept(grid)
    c_lo, c_hi = int(kept.context.min()), int(kept.context.max())
    ch = within_changes(kept, ("eff_dim", "pieces"))
    top = ch[ch.context == c_hi]
    lines = [f"Context -> dimension: from context {c_lo} to {c_hi} the effective dimension of the MLP input rises in "
             f"{(top.d_eff_dim > 0).mean():.0%} of the {len(top)} networks (median change "
             f"{top.d_eff_dim.median():+.2f}); their pieces rise in {(top.d_pieces > 0).mean():.0%} and their test MSE "
             f"falls in {(top.d_log_test_mse < 0).mean():.0%}."]
    if refits is not None and len(pd.DataFrame(refits)):
        r = pd.DataFrame(refits)
        for C in sorted(int(c) for c in r.context.unique()):
            got = refit_contrast(r, C, min_n=2, level=level)
            at = r[r.context == C]
            if got is not None:
                hurt = (at.projected_mse > at.control_mse * (1 + HURT_TOL)).mean()
                k = int(at.components.iloc[0])
                lines.append(f"Dimension -> fit (intervention, context {C}): refitting the MLP on the top-{k} PCA "
                             f"projection of its input multiplies the test MSE by {got[0]:.3g} [{got[1][0]:.3g}, "
                             f"{got[1][1]:.3g}] (geometric mean over {len(at)} networks; worse in {hurt:.0%}); the top "
                             f"{k} components carry {at.explained.mean():.1%} of the input's variance.")
    if width_matched is not None:
        w = _kept(width_matched)
        t = heads_table(w, level=level)
        t = t[(t.context == int(w.context.max())) & (t.heads == t.heads.max())]
        if len(t):
            row = t.iloc[0]
            lines.append(f"Heads at a fixed width (heads x d_head = {int(row.heads * row.d_head)}): at context "
                         f"{int(row.context)}, {int(row.heads)} heads / {int(row.fewest)} give a test MSE ratio of "
                         f"{row.ratio:.3g} [{row.low:.3g}, {row.high:.3g}] ({row.improved:.0%} of network pairs "
                         "improved).")
    med = mediation_table(kept, level=level)
    within = med[(med.scope == "within networks") & med.rho.notna()]
    if len(within):
        best = within.loc[within.rho.abs().idxmax()]
        lines.append("Mediators (within networks, Spearman with the change of log test MSE): " + ", ".join(
            f"{r.mediator} {r.rho:+.2f}" for r in within.itertuples()) + f"; the largest in size: {best.mediator}.")
    return lines
