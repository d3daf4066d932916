"""Theorem 2.1 on random attention layers (chapter 2, section 2): random causal layers checked row by row
(`minkowski_trials`), and the controlled experiments on a fixed synthetic context read by many queries - every
head on a fixed support of the last k tokens (`fixed_support`), a fixed support at each softmax temperature
(`temperature_sweep`) and per-query top-k supports (`top_k_sweep`), each setting one row of measures of its
cloud of outputs (`measure`: rank, TwoNN, eq. 8's ID_eps, effective degree). Pure numpy on `core`; the chapter's
claims on these rows live in `icl_geometry.experiments.attention_graphs`."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from icl_geometry.core import attention_graph as ag
from icl_geometry.core import intrinsic_dim as idm

N_TRIALS = 20  # random causal layers of the Minkowski check
T_CTX, D_MODEL, D_KEY, D_VALUE, D_OUT = 32, 64, 16, 16, 64  # the controlled experiments' context and layer sizes
SWEEP_HEADS, SWEEP_KEYS = 2, 8  # heads of the temperature and top-k sweeps, keys of the temperature sweep


def minkowski_trials(seed: int, n_trials: int = N_TRIALS) -> pd.DataFrame:
    """Theorem 2.1 on `n_trials` random causal layers (wide and narrow value/output maps, full and top-2 supports):
    one row per output row with its support, Minkowski-sum membership (LP), dimension and bounds."""
    rows, rng = [], np.random.default_rng(seed)
    for trial in range(n_trials):
        T_s, H_s, d_s = int(rng.integers(2, 7)), int(rng.integers(1, 4)), 8
        d_v, d_out = (8, 24) if trial % 2 == 0 else (2, 5)  # wide (generic) and narrow projections
        X_s = rng.standard_normal((T_s, d_s))
        Wq, Wk = rng.standard_normal((H_s, d_s, 4)), rng.standard_normal((H_s, d_s, 4))
        Wv, Wo = rng.standard_normal((H_s, d_s, d_v)), rng.standard_normal((H_s, d_v, d_out))
        top_k = [None, 2][trial % 4 // 2]
        chk = ag.minkowski_dimension_check(X_s, Wv, Wo, ag.causal_attention(X_s, Wq, Wk, top_k=top_k))
        for r in range(len(chk.rows)):
            rows.append({"trial": trial, "T": T_s, "H": H_s, "d_v": d_v, "d_out": d_out, "top_k": top_k,
                         "row": int(chk.rows[r]), "support per head": chk.support[r].tolist(),
                         "in Minkowski sum": bool(chk.in_minkowski_sum[r]), "L1 residual": chk.residual[r],
                         "dimension": int(chk.dimension[r]), "tight bound": int(chk.tight_bound[r]),
                         "theorem bound": int(chk.bound[r]), "linear dim": int(chk.linear_dimension[r])})
    return pd.DataFrame(rows)


def synthetic_context(seed: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The controlled experiments' fixed context (T_CTX tokens) and the `n_queries` queries that read it."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T_CTX, D_MODEL)), rng.standard_normal((n_queries, D_MODEL))


def layer_weights(seed: int, heads: int, draw: int) -> tuple[np.ndarray, ...]:
    """Random query, key, value and output maps of an attention layer with `heads` heads (draw `draw`)."""
    r = np.random.default_rng([seed, heads, draw])
    return (r.standard_normal((heads, D_MODEL, D_KEY)) / np.sqrt(D_MODEL),
            r.standard_normal((heads, D_MODEL, D_KEY)) / np.sqrt(D_MODEL),
            r.standard_normal((heads, D_MODEL, D_VALUE)) / np.sqrt(D_MODEL),
            r.standard_normal((heads, D_VALUE, D_OUT)) / np.sqrt(D_VALUE))


def id_eps_column(eps: float) -> str:
    """The column holding eq. 8's ID_eps at threshold eps."""
    return f"ID_eps (eps={eps:g})"


def twonn_or_zero(points: np.ndarray) -> float:
    """TwoNN of a cloud; 0 for a single point (k = 1: no neighbours to compare)."""
    return idm.twonn(points).estimate if ag.affine_rank(points) > 0 else 0.0


def measure(heads: int, weights: np.ndarray, out: np.ndarray, eps: float, **setting: Any) -> dict[str, Any]:
    """One setting's row: the cloud's rank and TwoNN, and the mean ID_eps and effective degree of its rows."""
    return {"H": heads, **setting, "rank": ag.affine_rank(out), "TwoNN": twonn_or_zero(out),
            id_eps_column(eps): ag.id_eps(weights, eps, head_axis=1).mean(),
            "effective degree": ag.effective_degree(weights, reduce="sum", head_axis=1).mean()}


def fixed_support(context: np.ndarray, queries: np.ndarray, heads_list: Iterable[int], keys_list: Iterable[int],
                  seed: int, eps: float) -> pd.DataFrame:
    """Every head attends to the last k tokens: one row per (H, k) with the measures and both bounds."""
    fixed = []
    for H in heads_list:
        W = layer_weights(seed, H, 0)
        for k in keys_list:
            w, out = ag.read_context(context, queries, *W, keys=k)
            fixed.append({**measure(H, w, out, eps, k=k), "theorem bound": H * k,
                          "tight bound": min(H * (k - 1), H * D_VALUE, D_OUT)})
    return pd.DataFrame(fixed)


def temperature_sweep(context: np.ndarray, queries: np.ndarray, temperatures: Iterable[float], seed: int,
                      eps: float) -> pd.DataFrame:
    """SWEEP_HEADS heads on a fixed support of SWEEP_KEYS keys at each softmax temperature: one row per tau."""
    W = layer_weights(seed, SWEEP_HEADS, 1)
    return pd.DataFrame([measure(SWEEP_HEADS, *ag.read_context(context, queries, *W, keys=SWEEP_KEYS, temperature=tau),
                                 eps, tau=tau) for tau in temperatures])


def top_k_sweep(context: np.ndarray, queries: np.ndarray, top_ks: Iterable[int], seed: int,
                eps: float) -> pd.DataFrame:
    """SWEEP_HEADS heads with top-k masks (each query keeps its own k keys): one row per k."""
    W = layer_weights(seed, SWEEP_HEADS, 1)
    return pd.DataFrame([{**measure(SWEEP_HEADS, *ag.read_context(context, queries, *W, top_k=k), eps), "k": k,
                          "per-query theorem bound": SWEEP_HEADS * k} for k in top_ks])
