"""Attention matrices read as weighted directed graphs: the paper's ID_eps (eq. 8, both readings),
degree and density at a threshold, entropy-based effective degree, and a numerical check of Theorem 2.1
(multi-head attention outputs lie in a Minkowski sum of per-head convex hulls of bounded dimension).

Conventions. An attention *row* is one query's weights over the keys (last axis). Arrays shaped like
`engine.Trace.attention_rows`, (n_layers, n_heads, n_positions, seq_len), have heads on axis 1; a 2-d array
is (n_heads, seq_len); a 1-d array is one head's row. Pass `head_axis` for any other layout.
Edges follow the paper's strict inequality: weight > eps ("absolute") or weight > eps x the row's
maximum ("relative", the authors' earlier SplineLLM code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

from icl_geometry.core.checks import check_choice, check_int

MODES = ("absolute", "relative")
REDUCES = ("sum", "per_head")


# ----------------------------------------------------------------------------- rows and thresholds

def _as_array(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array or tensor, got {type(a).__name__}") from err
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected at least one axis (the keys), got a scalar")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if arr.size and arr.min() < -1e-6:
        raise ValueError(f"{name}: attention weights must be >= 0, found {arr.min():.3g}")
    return arr


def _check(mode: str, eps: float) -> None:
    check_choice("mode", mode, MODES)
    high = 1.0
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not 0 <= eps <= high:
        raise ValueError(f"eps = {eps!r} is not allowed: expected a number in [0, 1] "
                         f"({'fraction of the row maximum' if mode == 'relative' else 'attention weight'})")


def _head_axis(ndim: int, head_axis: int | None) -> int | None:
    """Default head axis: none for one row, 0 for (heads, keys), 1 for (layers, heads, ...)."""
    if head_axis is None:
        return None if ndim == 1 else (0 if ndim == 2 else 1)
    if not isinstance(head_axis, (int, np.integer)) or not -ndim <= head_axis < ndim - 1:
        raise ValueError(f"head_axis = {head_axis!r} is not allowed: expected an axis in "
                         f"[{-ndim}, {ndim - 2}] (the last axis holds the keys)")
    return int(head_axis) % ndim


def edges(attention_rows, eps: float = 0.1, mode: str = "absolute") -> np.ndarray:
    """Boolean mask of the graph's edges: weight > eps, or weight > eps x (row maximum) in relative mode."""
    _check(mode, eps)
    a = _as_array(attention_rows, "attention_rows")
    if mode == "absolute":
        return a > eps
    return a > eps * a.max(axis=-1, keepdims=True)


def id_eps(attention_rows, eps: float = 0.1, mode: str = "absolute", reduce: str = "sum",
           head_axis: int | None = None) -> np.ndarray:
    """The paper's eq. 8: ID_eps(i) = #{j <= i : Attn(X)_{i,j} > eps}, per query row.

    reduce="per_head": one count per head (eq. 8 as printed); reduce="sum": summed over heads, the reading
    that matches Theorem 2.1. mode="relative": the threshold is eps x that head's row maximum.
    Returns an integer array with the key axis removed (and the head axis too when summed).
    """
    check_choice("reduce", reduce, REDUCES)
    mask = edges(attention_rows, eps, mode)
    axis = _head_axis(mask.ndim, head_axis)
    counts = mask.sum(axis=-1).astype(np.int64)
    if reduce == "sum" and axis is not None:
        counts = counts.sum(axis=axis)
    return counts


def temper(attention_rows, temperature: float) -> np.ndarray:
    """The rows a softmax at `temperature` would give from the same scores: a ** (1 / temperature),
    renormalised over each row's support (weights that are exactly 0, e.g. causally masked keys, stay 0).

    softmax(s / tau) is proportional to exp(s) ** (1 / tau), and exp(s) is proportional to the weights, so
    no scores are needed: tau = 1 returns the rows, tau -> 0 makes them one-hot on their maximum, tau -> inf
    uniform over their support. The support, and with it Theorem 2.1's count, never changes.
    """
    _check_temperature(temperature)
    a = _as_array(attention_rows, "attention_rows").clip(min=0.0)
    support = a > 0
    logs = np.where(support, np.log(np.where(support, a, 1.0)), -np.inf) / float(temperature)
    top = np.max(logs, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.where(support, np.exp(logs - top), 0.0)
    total = w.sum(-1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


# ----------------------------------------------------------------------------- graphs (full T x T maps)

def _square(attention) -> np.ndarray:
    a = _as_array(attention, "attention")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attention: expected (..., T, T) attention maps, got shape {a.shape}")
    return a


@dataclass(frozen=True)
class GraphStats:
    """Degrees and density of attention graphs at one threshold; leading axes as in the input."""

    out_degree: np.ndarray  # (..., T): keys each query attends to (= per-head ID_eps of each row)
    in_degree: np.ndarray  # (..., T): queries attending to each key
    density: np.ndarray  # (...): edges / allowed edges (T (T + 1) / 2 when causal)
    n_edges: np.ndarray  # (...)


def graph_stats(attention, eps: float = 0.1, mode: str = "absolute", causal: bool = True) -> GraphStats:
    """Out/in-degree and density of each (T, T) attention map (a directed graph query -> key)."""
    a = _square(attention)
    mask = edges(a, eps, mode)
    T = a.shape[-1]
    if causal:
        mask = mask & np.tril(np.ones((T, T), dtype=bool))
    n_edges = mask.sum(axis=(-2, -1))
    allowed = T * (T + 1) // 2 if causal else T * T
    return GraphStats(mask.sum(-1), mask.sum(-2), n_edges / allowed, n_edges)


def row_entropy(attention_rows) -> np.ndarray:
    """Shannon entropy (nats) of each row, renormalised to sum 1; 0 log 0 = 0."""
    a = _as_array(attention_rows, "attention_rows")
    total = a.sum(-1, keepdims=True)
    p = np.divide(a, total, out=np.zeros_like(a), where=total > 0)
    logp = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(-1)


def effective_degree(attention_rows, reduce: str = "per_head", head_axis: int | None = None) -> np.ndarray:
    """exp(row entropy): the number of equally weighted keys with the same entropy (1 for one-hot rows,
    k for uniform rows over k keys). A threshold-free companion of ID_eps; reduce="sum" adds heads."""
    check_choice("reduce", reduce, REDUCES)
    eff = np.exp(row_entropy(attention_rows))
    axis = _head_axis(eff.ndim + 1, head_axis)
    if reduce == "sum" and axis is not None:
        eff = eff.sum(axis=axis)
    return eff


# ----------------------------------------------------------------------------- Theorem 2.1

def _np(a, name: str, ndim: int) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} axes, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def _masked_softmax(scores: np.ndarray, allowed: np.ndarray, top_k: int | None) -> np.ndarray:
    """Softmax over the last axis where `allowed`; with top_k only each row's k largest allowed scores."""
    if top_k is not None:
        masked = np.where(allowed, scores, -np.inf)
        k = min(top_k, scores.shape[-1])
        kth = -np.sort(-masked, axis=-1)[..., k - 1: k]
        allowed = allowed & (masked >= kth)
    scores = np.where(allowed, scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def causal_attention(X, W_q, W_k, *, temperature: float = 1.0, top_k: int | None = None,
                     window: int | None = None) -> np.ndarray:
    """(H, T, T) causal softmax attention softmax(X Q_h (X K_h)^T / (temperature sqrt(d_k))).

    Two ways to make the attention graph sparser: top_k keeps each row's k largest scores, window keeps
    only the `window` most recent keys (j > i - window, a sliding window as in Gemma-3); the other weights
    are exactly 0. A larger temperature flattens the rows (denser at any threshold eps > 0).
    """
    X = _np(X, "X", 2)
    Q, K = _np(W_q, "W_q", 3), _np(W_k, "W_k", 3)
    if Q.shape != K.shape or Q.shape[1] != X.shape[1]:
        raise ValueError(f"W_q, W_k: expected equal shapes (H, d={X.shape[1]}, d_k), got {Q.shape} and {K.shape}")
    _check_temperature(temperature)
    top_k = check_int("top_k", top_k, 1, allow_none=True)
    window = check_int("window", window, 1, allow_none=True)
    T = X.shape[0]
    scores = np.einsum("td,hdk,hek,se->hts", X, Q, K, X, optimize=True) / (temperature * np.sqrt(Q.shape[2]))
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    allowed = (j <= i) & ((i - j < window) if window is not None else True)
    return _masked_softmax(scores, np.broadcast_to(allowed, scores.shape), top_k)


def _check_temperature(temperature) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) \
            or not np.isfinite(temperature) or not temperature > 0:
        raise ValueError(f"temperature = {temperature!r} is not allowed: expected a number > 0")


def read_context(context, queries, W_q, W_k, W_v, W_o, *, temperature: float = 1.0, top_k: int | None = None,
                 keys: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """N queries reading one fixed context of T tokens (a shared prefix in a KV cache): the controlled setting
    of Theorem 2.1, where only the attention weights change from one query to the next.

    context: (T, d) tokens; queries: (N, d) query tokens; projections as in `causal_attention` and `mha_output`.
    keys: attend only to the last `keys` tokens of the context (a fixed attention graph: every query has the
    same support); top_k: each query keeps its k largest scores (the support then changes with the query).
    Returns the weights (N, H, T) and the MHA outputs sum_h w_h X V_h O_h, (N, d_out). The queries' own
    values are not mixed in, so each output lies in the Minkowski sum of the heads' hulls over the context.
    """
    X, Y = _np(context, "context", 2), _np(queries, "queries", 2)
    Q, K, V, O = (_np(W, name, 3) for W, name in ((W_q, "W_q"), (W_k, "W_k"), (W_v, "W_v"), (W_o, "W_o")))
    d = X.shape[1]
    if Y.shape[1] != d or Q.shape != K.shape or Q.shape[1] != d or V.shape[:2] != Q.shape[:2] \
            or O.shape[:2] != (V.shape[0], V.shape[2]):
        raise ValueError(f"shapes do not chain: context {X.shape}, queries {Y.shape}, W_q {Q.shape}, W_k {K.shape}, "
                         f"W_v {V.shape}, W_o {O.shape}")
    _check_temperature(temperature)
    top_k = check_int("top_k", top_k, 1, allow_none=True)
    keys = check_int("keys", keys, 1, allow_none=True)
    T = X.shape[0]
    scores = np.einsum("nd,hdk,hek,te->nht", Y, Q, K, X, optimize=True) / (temperature * np.sqrt(Q.shape[2]))
    allowed = np.arange(T) >= T - (keys or T)
    w = _masked_softmax(scores, np.broadcast_to(allowed, scores.shape), top_k)
    return w, np.einsum("nht,td,hdv,hvo->no", w, X, V, O, optimize=True)


def affine_rank(points, rtol: float = 1e-9) -> int:
    """Dimension of the affine span of the rows of `points`: singular values of the centred matrix above
    rtol x max(shape) x (the largest singular value of the uncentred matrix), so that round-off in a
    cloud of (near-)identical points does not count as a direction. The exact 'linear' dimension."""
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    P = _np(points, "points", 2)
    if len(P) < 2 or not np.any(P):
        return 0
    with threadpool_limits(1):  # small SVDs: a second BLAS thread only adds contention on a busy machine
        top = np.linalg.norm(P, 2)
        s = np.linalg.svd(P - P.mean(0), compute_uv=False)
    return int((s > rtol * max(P.shape) * top).sum())


def mha_output(X, W_v, W_o, attention) -> np.ndarray:
    """MHA(X) = sum_h Attn_h V_h-projected values O_h: (T, d_out), in float64."""
    X, V, O, A = _np(X, "X", 2), _np(W_v, "W_v", 3), _np(W_o, "W_o", 3), _np(attention, "attention", 3)
    return np.einsum("hts,sd,hdv,hvo->to", A, X, V, O, optimize=True)


@dataclass(frozen=True)
class MinkowskiCheck:
    """Theorem 2.1 checked row by row (arrays indexed like `rows`).

    bound: sum over heads of the number of attended tokens (the theorem's count, = summed ID_eps at eps).
    tight_bound: min(sum_h min(support_h - 1, rank(V_h O_h)), d_out): each head's weights sum to 1, so its
    hull has one dimension fewer than its vertex count, and the head maps into the column space of V_h O_h;
    this is what generic position attains.
    dimension: rank of the affine span of all outputs reachable by varying each head's weights over its
    support. residual: L1 distance from the actual output row to the Minkowski sum (LP optimum).
    """

    rows: np.ndarray
    support: np.ndarray  # (n_rows, H)
    in_minkowski_sum: np.ndarray  # bool
    residual: np.ndarray
    dimension: np.ndarray
    linear_dimension: np.ndarray  # rank of the span of all vertices (weights not normalised)
    bound: np.ndarray
    tight_bound: np.ndarray
    outputs: np.ndarray  # (n_rows, d_out)

    @property
    def holds(self) -> bool:
        """Every row lies in its Minkowski sum and no dimension exceeds the bound."""
        return bool(self.in_minkowski_sum.all() and (self.dimension <= self.bound).all())


def _rank(M: np.ndarray, rtol: float) -> int:
    if M.size == 0:
        return 0
    s = np.linalg.svd(M, compute_uv=False)
    return int((s > rtol * max(M.shape) * s[0]).sum()) if s[0] > 0 else 0


def product_rank(V: np.ndarray, O: np.ndarray, rtol: float = 1e-9) -> int:
    """rank(V O) for V (d, r), O (r, d_out) from the (r, d_out) matrix R O, V = Q R: the same singular values,
    far cheaper than the SVD of the (d, d_out) product when r is small (a head's d_head)."""
    if V.shape[1] >= min(V.shape[0], O.shape[1]):
        return _rank(V @ O, rtol)
    R = np.linalg.qr(V, mode="r")
    M = R @ O
    s = np.linalg.svd(M, compute_uv=False)
    return int((s > rtol * max(V.shape[0], O.shape[1]) * s[0]).sum()) if M.size and s[0] > 0 else 0


def _distance_to_minkowski_sum(y: np.ndarray, vertex_sets: list[np.ndarray]) -> float:
    """min ||y - sum_h sum_j lam_hj p_hj||_1 over lam_h in the simplex: an LP (slack s+ - s- absorbs misfit)."""
    P = np.vstack(vertex_sets)  # (n_vertices, d_out)
    n_v, d = P.shape
    heads = np.repeat(np.arange(len(vertex_sets)), [len(v) for v in vertex_sets])
    A_eq = np.zeros((d + len(vertex_sets), n_v + 2 * d))
    A_eq[:d, :n_v] = P.T
    A_eq[:d, n_v:n_v + d] = np.eye(d)
    A_eq[:d, n_v + d:] = -np.eye(d)
    A_eq[d + heads, np.arange(n_v)] = 1.0
    b_eq = np.concatenate([y, np.ones(len(vertex_sets))])
    c = np.concatenate([np.zeros(n_v), np.ones(2 * d)])
    res = linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    return float(res.fun)


def minkowski_dimension_check(X, W_v, W_o, attention=None, *, W_q=None, W_k=None, rows=None,
                              eps: float = 0.0, mode: str = "absolute", rtol: float = 1e-9,
                              atol: float = 1e-7, empty: str = "error") -> MinkowskiCheck:
    """Verify Theorem 2.1 on one multi-head attention layer.

    X: (T, d) layer inputs; W_v: (H, d, d_v) value and W_o: (H, d_v, d_out) output projections; attention:
    (H, T, T) causal row-stochastic weights, or None to compute them from W_q, W_k (H, d, d_k).
    For each query row i: head h's support S_h = {j <= i : weight > eps} and vertices p_hj = x_j V_h O_h.
    Checks that MHA(X)_i lies in sum_h conv{p_hj : j in S_h} (LP, L1 residual <= atol x scale) and measures
    the dimension of that Minkowski sum as the rank of its affine span, against sum_h |S_h|.
    With eps > 0 the weights below eps are ignored, so the row is only near the sum (see `residual`).
    A head with no weight above eps (a flat row over many keys) raises an error with `empty='error'`; with
    `empty='origin'` it has no edge, counts 0 in the bound and contributes the point 0, as a thresholded graph
    without that head's edges would (its missing output then shows in `residual`).
    """
    check_choice("empty", empty, ("error", "origin"))
    X, V, O = _np(X, "X", 2), _np(W_v, "W_v", 3), _np(W_o, "W_o", 3)
    H, d, _ = V.shape
    if X.shape[1] != d or O.shape[0] != H or O.shape[1] != V.shape[2]:
        raise ValueError(f"shapes do not chain: X {X.shape}, W_v {V.shape} (H, d, d_v), W_o {O.shape} (H, d_v, d_out)")
    if attention is None:
        if W_q is None or W_k is None:
            raise ValueError("attention: give the (H, T, T) weights, or W_q and W_k to compute them")
        attention = causal_attention(X, W_q, W_k)
    A = _np(attention, "attention", 3)
    T = X.shape[0]
    if A.shape != (H, T, T):
        raise ValueError(f"attention: expected shape (H, T, T) = {(H, T, T)}, got {A.shape}")
    if np.any(np.triu(A, 1) > 0):
        raise ValueError("attention: expected causal weights (zero above the diagonal)")
    rows = np.arange(T) if rows is None else np.atleast_1d(np.asarray(rows)) % T
    support_mask = edges(A, eps, mode)  # (H, T, T)
    vertices = np.einsum("td,hdv,hvo->hto", X, V, O, optimize=True)  # p_hj
    outputs = mha_output(X, V, O, A)[rows]
    scale = max(1.0, float(np.abs(vertices).max()))
    head_rank = [product_rank(V[h], O[h], rtol) for h in range(H)]
    out = {k: [] for k in ("support", "inside", "residual", "dim", "lin", "bound", "tight")}
    for i in rows:
        sets = [vertices[h, : i + 1][support_mask[h, i, : i + 1]] for h in range(H)]
        sizes = [len(s) for s in sets]
        if min(sizes) == 0 and empty == "error":
            raise ValueError(f"row {i}: a head attends to no token above eps = {eps}; lower eps, or pass "
                             "empty='origin' to let that head contribute nothing")
        sets = [s if len(s) else np.zeros((1, O.shape[2])) for s in sets]
        directions = np.vstack([s[1:] - s[:1] for s in sets])
        residual = _distance_to_minkowski_sum(outputs[len(out["residual"])], sets)
        out["support"].append(sizes)
        out["residual"].append(residual)
        out["inside"].append(residual <= atol * scale * O.shape[2])
        out["dim"].append(_rank(directions, rtol))
        out["lin"].append(_rank(np.vstack(sets), rtol))
        out["bound"].append(sum(sizes))
        out["tight"].append(min(sum(min(max(n - 1, 0), r) for n, r in zip(sizes, head_rank)), O.shape[2]))
    return MinkowskiCheck(rows=rows, support=np.array(out["support"]), in_minkowski_sum=np.array(out["inside"]),
                          residual=np.array(out["residual"]), dimension=np.array(out["dim"]),
                          linear_dimension=np.array(out["lin"]), bound=np.array(out["bound"]),
                          tight_bound=np.array(out["tight"]), outputs=outputs)


# ----------------------------------------------------------------------------- drawing

def draw_graph(ax, attention, tokens=None, *, eps: float = 0.0, mode: str = "absolute", max_width: float = 6.0,
               cmap: str = "viridis", self_loops: bool = True) -> int:
    """Draw one (T, T) causal attention map as a directed graph on the axes `ax` (static, deterministic).

    Tokens sit on a horizontal line in order; each edge query i -> key j < i with weight > eps (see `edges`)
    is an arc above the line whose width and colour grow with the weight; a weight on the token itself
    (j = i) is a disc under the token when self_loops. Returns the number of edges drawn (self-loops
    included).
    """
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    A = _square(attention)
    if A.ndim != 2:
        raise ValueError(f"attention: expected one (T, T) map, got shape {A.shape}")
    T = A.shape[0]
    if tokens is not None and len(tokens) != T:
        raise ValueError(f"tokens: expected {T} labels, got {len(tokens)}")
    mask = edges(A, eps, mode) & np.tril(np.ones((T, T), dtype=bool))
    qi, kj = np.nonzero(np.tril(mask, -1))
    w = A[qi, kj]
    order = np.argsort(w, kind="stable")  # heavy edges drawn last, on top
    qi, kj, w = qi[order], kj[order], w[order]
    s = np.linspace(0.0, np.pi, 32)
    segs = [np.column_stack([(j + i) / 2 - (i - j) / 2 * np.cos(s), (i - j) / 2 * np.sin(s)]) for i, j in zip(qi, kj)]
    colour = colormaps[cmap]
    ax.add_collection(LineCollection(segs, linewidths=0.3 + max_width * w, colors=colour(w), alpha=0.8))
    diag = np.diag(A) * np.diag(mask)
    if self_loops:
        ax.scatter(np.arange(T), np.full(T, -0.6), s=80 * diag, c=colour(diag), edgecolors="none", zorder=3)
    ax.scatter(np.arange(T), np.zeros(T), s=6, color="k", zorder=4)
    if tokens is not None:
        ax.set_xticks(np.arange(T), [str(t) for t in tokens], rotation=90, fontsize="x-small")
    ax.set_xlim(-1, T)
    ax.set_ylim(-1.5, max(T / 2, 1) + 0.5)
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return int(len(w) + (np.count_nonzero(diag) if self_loops else 0))
