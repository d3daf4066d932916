"""Hand counts for ID_eps and graph statistics; Theorem 2.1 checked on random multi-head layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from icl_geometry.core import attention_graph as ag


def uniform_row(k: int, width: int) -> np.ndarray:
    row = np.zeros(width)
    row[:k] = 1.0 / k
    return row


# ----------------------------------------------------------------------------- ID_eps

@pytest.mark.parametrize("k", [1, 2, 5, 9, 10, 11, 40])
def test_uniform_rows(k):
    """Uniform over k keys: every weight is 1/k, counted iff 1/k > eps (absolute); always k (relative)."""
    row = uniform_row(k, 50)
    assert ag.id_eps(row, eps=0.1) == (k if 1 / k > 0.1 else 0)
    assert ag.id_eps(row, eps=0.1, mode="relative") == k


def test_one_hot_rows_count_one_per_head():
    rows = np.eye(6)[[0, 3, 5]]  # 3 heads, one-hot rows
    assert ag.id_eps(rows) == 3
    np.testing.assert_array_equal(ag.id_eps(rows, reduce="per_head"), [1, 1, 1])
    np.testing.assert_array_equal(ag.id_eps(rows, mode="relative", reduce="per_head"), [1, 1, 1])


def test_relative_and_absolute_readings_differ_as_counted_by_hand():
    rows = np.array([
        [0.50, 0.30, 0.12, 0.05, 0.03],  # absolute: 3 (> 0.1); relative: > 0.05 -> 3
        [0.08, 0.08, 0.08, 0.06, 0.70],  # absolute: 1; relative (> 0.07): 4
        [0.10, 0.10, 0.10, 0.10, 0.60],  # absolute: 1 (0.1 is not > 0.1); relative (> 0.06): 5
    ])
    np.testing.assert_array_equal(ag.id_eps(rows, 0.1, "absolute", "per_head"), [3, 1, 1])
    np.testing.assert_array_equal(ag.id_eps(rows, 0.1, "relative", "per_head"), [3, 4, 5])
    assert ag.id_eps(rows, 0.1, "absolute") == 5
    assert ag.id_eps(rows, 0.1, "relative") == 12


def test_trace_shaped_rows_reduce_over_heads():
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.ones(12) * 0.3, size=(4, 3, 2))  # (layers, heads, positions, keys)
    per_head = ag.id_eps(rows, reduce="per_head")
    summed = ag.id_eps(torch.from_numpy(rows).float(), reduce="sum")
    assert per_head.shape == (4, 3, 2) and summed.shape == (4, 2)
    np.testing.assert_array_equal(per_head.sum(1), summed)
    np.testing.assert_array_equal((rows > 0.1).sum(-1), per_head)
    # (heads, positions, keys) needs the head axis named
    np.testing.assert_array_equal(ag.id_eps(rows[0], head_axis=0), summed[0])


def test_bad_arguments_name_the_parameter():
    row = uniform_row(3, 5)
    for kwargs, name in [({"mode": "abs"}, "mode"), ({"reduce": "mean"}, "reduce"), ({"eps": 1.5}, "eps"),
                         ({"eps": -0.1}, "eps"), ({"head_axis": 1}, "head_axis")]:
        with pytest.raises(ValueError, match=name):
            ag.id_eps(np.stack([row, row]), **kwargs)
    with pytest.raises(ValueError, match=">= 0"):
        ag.id_eps(-row)
    with pytest.raises(ValueError, match="NaN"):
        ag.id_eps(row * np.nan)


# ----------------------------------------------------------------------------- graphs

def test_uniform_causal_attention_graph():
    T = 7
    A = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    g = ag.graph_stats(A, eps=0.0)
    np.testing.assert_array_equal(g.out_degree, np.arange(1, T + 1))
    np.testing.assert_array_equal(g.in_degree, np.arange(T, 0, -1))
    assert g.density == 1.0 and g.n_edges == T * (T + 1) // 2
    # at eps = 0.2 a query at position i (i + 1 keys) keeps its keys iff 1 / (i + 1) > 0.2
    g2 = ag.graph_stats(A[None], eps=0.2)
    np.testing.assert_array_equal(g2.out_degree[0], [1, 2, 3, 4, 0, 0, 0])
    assert g2.density[0] == pytest.approx(10 / 28)
    np.testing.assert_array_equal(g2.out_degree[0], ag.id_eps(A, 0.2, reduce="per_head", head_axis=None))
    with pytest.raises(ValueError, match="T, T"):
        ag.graph_stats(np.ones((3, 4)))


def test_effective_degree_is_exp_entropy():
    assert ag.effective_degree(uniform_row(7, 20)) == pytest.approx(7)
    assert ag.effective_degree(np.eye(5)[2]) == pytest.approx(1)
    rows = np.stack([uniform_row(2, 6), uniform_row(4, 6)])
    np.testing.assert_allclose(ag.effective_degree(rows), [2, 4])
    assert ag.effective_degree(rows, reduce="sum") == pytest.approx(6)
    assert ag.row_entropy(np.zeros(4)) == 0  # an all-zero row (padding) has no edges and no entropy


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), width=st.integers(1, 40), alpha=st.floats(0.05, 5))
def test_effective_degree_between_one_and_support(seed, width, alpha):
    row = np.random.default_rng(seed).dirichlet(np.full(width, alpha))
    eff = float(ag.effective_degree(row))
    assert 1 - 1e-9 <= eff <= (row > 0).sum() + 1e-9
    assert ag.id_eps(row, 0.0) == (row > 0).sum()
    assert ag.id_eps(row, 0.1, mode="relative") >= 1


# ----------------------------------------------------------------------------- Theorem 2.1

def random_layer(seed: int, T: int, d: int, H: int, d_v: int, d_out: int):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, d)), rng.standard_normal((H, d, 4)), rng.standard_normal((H, d, 4)),
            rng.standard_normal((H, d, d_v)), rng.standard_normal((H, d_v, d_out)))


def test_mha_output_matches_a_loop_over_heads():
    X, Q, K, V, O = random_layer(0, 5, 6, 3, 4, 7)
    A = ag.causal_attention(X, Q, K)
    expected = sum(A[h] @ X @ V[h] @ O[h] for h in range(3))
    np.testing.assert_allclose(ag.mha_output(X, V, O, A), expected, atol=1e-12)
    np.testing.assert_allclose(A.sum(-1), 1)
    assert np.all(np.triu(A, 1) == 0)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), T=st.integers(1, 6), H=st.integers(1, 3), top_k=st.sampled_from([None, 1, 2, 3]))
def test_generic_layers_attain_the_tight_bound(seed, T, H, top_k):
    """Wide projections put the vertices in generic position: the affine dimension equals
    sum_h (|S_h| - 1), H less than the theorem's sum_h |S_h|; the span of the vertices attains the latter."""
    X, Q, K, V, O = random_layer(seed, T, d=T + 2, H=H, d_v=T + 2, d_out=H * T + 3)
    A = ag.causal_attention(X, Q, K, top_k=top_k)
    check = ag.minkowski_dimension_check(X, V, O, A)
    assert check.holds
    expected_support = np.minimum(np.arange(1, T + 1), top_k or T)
    np.testing.assert_array_equal(check.support, np.repeat(expected_support[:, None], H, 1))
    np.testing.assert_array_equal(check.dimension, check.tight_bound)
    np.testing.assert_array_equal(check.dimension, check.bound - H)
    np.testing.assert_array_equal(check.linear_dimension, check.bound)
    np.testing.assert_array_equal(check.bound, ag.id_eps(A[:, check.rows], 0.0, reduce="sum", head_axis=0))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), T=st.integers(2, 8), H=st.integers(1, 4), d_v=st.integers(1, 3),
       d_out=st.integers(1, 6))
def test_bound_is_never_violated(seed, T, H, d_v, d_out):
    """Narrow projections: the dimension is capped by d_v per head and d_out overall, never above the bound."""
    X, Q, K, V, O = random_layer(seed, T, d=4, H=H, d_v=d_v, d_out=d_out)
    check = ag.minkowski_dimension_check(X, V, O, W_q=Q, W_k=K)
    assert check.holds
    assert np.all(check.dimension <= min(d_out, H * d_v))
    # generic position attains min(sum_h min(|S_h| - 1, rank(V_h O_h)), d_out), here with
    # rank(V_h O_h) = min(d_v, d_out)
    expected = np.minimum(np.minimum(check.support - 1, min(d_v, d_out)).sum(1), d_out)
    np.testing.assert_array_equal(check.dimension, expected)
    np.testing.assert_array_equal(check.tight_bound, expected)


def test_a_point_outside_the_sum_is_detected():
    X, Q, K, V, O = random_layer(1, 4, 5, 2, 5, 6)
    vertices = np.einsum("td,hdv,hvo->hto", X, V, O)
    inside = vertices[0].mean(0) + vertices[1].mean(0)
    outside = inside + 10 * np.abs(vertices).max()
    assert ag._distance_to_minkowski_sum(inside, list(vertices)) < 1e-9
    assert ag._distance_to_minkowski_sum(outside, list(vertices)) > 1


def test_thresholded_support_leaves_the_output_near_but_outside_the_sum():
    X, Q, K, V, O = random_layer(2, 6, 8, 2, 8, 12)
    A = ag.causal_attention(X, Q, K, temperature=3.0)
    check = ag.minkowski_dimension_check(X, V, O, A, eps=0.15)
    assert np.all(check.support <= np.arange(1, 7)[:, None])
    assert not check.in_minkowski_sum.all() and check.residual.max() > 0


def test_low_rank_heads_lower_the_tight_bound_not_the_theorem_bound():
    """A head whose V_h O_h has rank 1 contributes at most one direction however many tokens it attends to."""
    X, Q, K, V, O = random_layer(4, 6, 8, 2, 8, 12)
    V[1] = np.outer(V[1][:, 0], np.ones(8))  # rank-1 value map for head 1
    check = ag.minkowski_dimension_check(X, V, O, W_q=Q, W_k=K)
    assert check.holds
    np.testing.assert_array_equal(check.bound, 2 * np.arange(1, 7))
    np.testing.assert_array_equal(check.dimension, np.arange(0, 6) + np.minimum(np.arange(0, 6), 1))
    np.testing.assert_array_equal(check.dimension, check.tight_bound)


def test_window_and_top_k_masks_count_the_support():
    X, Q, K, *_ = random_layer(5, 9, 6, 3, 2, 2)
    for window, top_k in [(1, None), (3, None), (None, 2), (4, 2), (9, None)]:
        A = ag.causal_attention(X, Q, K, window=window, top_k=top_k)
        np.testing.assert_allclose(A.sum(-1), 1)
        assert np.all(np.triu(A, 1) == 0)
        i = np.arange(9)
        expected = np.minimum(np.minimum(i + 1, window or 9), top_k or 9)
        np.testing.assert_array_equal((A > 0).sum(-1), np.broadcast_to(expected, (3, 9)))
        if window is not None:  # keys older than the window get exactly 0
            assert np.all(A[:, i[:, None] - i[None, :] >= window] == 0)
    # a sharp temperature concentrates rows: the effective degree falls, the support does not
    hot, cold = ag.causal_attention(X, Q, K, temperature=10.0), ag.causal_attention(X, Q, K, temperature=0.05)
    assert (hot > 0).sum() == (cold > 0).sum()
    assert ag.effective_degree(hot[:, -1]).mean() > ag.effective_degree(cold[:, -1]).mean()
    for kwargs, name in [({"window": 0}, "window"), ({"temperature": 0.0}, "temperature"),
                         ({"temperature": float("nan")}, "temperature"), ({"top_k": 1.5}, "top_k")]:
        with pytest.raises(ValueError, match=name):
            ag.causal_attention(X, Q, K, **kwargs)


def test_affine_rank_known_answers():
    rng = np.random.default_rng(0)
    line = np.outer(rng.standard_normal(50), rng.standard_normal(7)) + rng.standard_normal(7)
    assert ag.affine_rank(line) == 1
    assert ag.affine_rank(rng.standard_normal((50, 5))) == 5
    assert ag.affine_rank(rng.standard_normal((4, 9))) == 3  # 4 points span a 3-d affine space
    assert ag.affine_rank(np.ones((10, 3))) == 0 and ag.affine_rank(np.ones((1, 3))) == 0


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), H=st.integers(1, 3), keys=st.integers(1, 5))
def test_queries_reading_a_fixed_context_stay_in_the_minkowski_sum(seed, H, keys):
    """With a fixed support of `keys` tokens per head, N queries give outputs in the Minkowski sum of the
    heads' hulls; the cloud's affine dimension is sum_h (keys - 1) (generic, wide projections), below
    the theorem's count H keys."""
    rng = np.random.default_rng(seed)
    T, d, d_k, d_v, d_out = 6, 8, 8, 8, 20
    context, queries = rng.standard_normal((T, d)), rng.standard_normal((200, d))
    Q, K = rng.standard_normal((H, d, d_k)), rng.standard_normal((H, d, d_k))
    V, O = rng.standard_normal((H, d, d_v)), rng.standard_normal((H, d_v, d_out))
    w, out = ag.read_context(context, queries, Q, K, V, O, keys=keys)
    assert w.shape == (200, H, T) and out.shape == (200, d_out)
    np.testing.assert_allclose(w.sum(-1), 1)
    assert np.all(w[..., : T - keys] == 0) and np.all(w[..., T - keys:] > 0)
    np.testing.assert_allclose(out, sum(w[:, h] @ context @ V[h] @ O[h] for h in range(H)), atol=1e-10)
    vertices = np.einsum("td,hdv,hvo->hto", context, V, O)[:, T - keys:]
    scale = np.abs(vertices).max()
    assert max(ag._distance_to_minkowski_sum(y, list(vertices)) for y in out[:5]) < 1e-7 * scale
    assert ag.affine_rank(out) == H * (keys - 1)
    assert np.array_equal(ag.id_eps(w, 0.0, head_axis=1), np.full(200, H * keys))


def test_top_k_reading_changes_the_support_with_the_query():
    """top_k selects per query: each output uses k tokens per head, but the cloud spans more than H (k - 1)."""
    rng = np.random.default_rng(1)
    T, d, H, k = 8, 8, 1, 2
    context, queries = rng.standard_normal((T, d)), rng.standard_normal((300, d))
    Q, K, V, O = (rng.standard_normal(s) for s in ((H, d, 8), (H, d, 8), (H, d, 8), (H, 8, 16)))
    w, out = ag.read_context(context, queries, Q, K, V, O, top_k=k)
    assert np.all((w > 0).sum(-1) == k)
    assert ag.affine_rank(out) > H * (k - 1)
    with pytest.raises(ValueError, match="chain"):
        ag.read_context(context, queries[:, :3], Q, K, V, O)
    with pytest.raises(ValueError, match="keys"):
        ag.read_context(context, queries, Q, K, V, O, keys=0)


def test_draw_graph_draws_every_edge_once():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, Q, K, *_ = random_layer(6, 7, 5, 1, 2, 2)
    A = ag.causal_attention(X, Q, K)[0]
    fig, ax = plt.subplots()
    n = ag.draw_graph(ax, A, tokens=list("abcdefg"), eps=0.1)
    assert n == int(ag.graph_stats(A, eps=0.1).n_edges)
    assert len(ax.collections[0].get_paths()) == int(np.tril(A > 0.1, -1).sum())
    assert ag.draw_graph(ax, A, eps=0.1, self_loops=False) == int(np.tril(A > 0.1, -1).sum())
    with pytest.raises(ValueError, match="tokens"):
        ag.draw_graph(ax, A, tokens=["a"])
    with pytest.raises(ValueError, match="one"):
        ag.draw_graph(ax, np.stack([A, A]))
    plt.close(fig)


def test_minkowski_check_rejects_bad_shapes():
    X, Q, K, V, O = random_layer(3, 4, 5, 2, 3, 6)
    with pytest.raises(ValueError, match="attention"):
        ag.minkowski_dimension_check(X, V, O)
    with pytest.raises(ValueError, match="causal"):
        ag.minkowski_dimension_check(X, V, O, np.full((2, 4, 4), 0.25))
    with pytest.raises(ValueError, match="chain"):
        ag.minkowski_dimension_check(X, V[:, :3], O, W_q=Q, W_k=K)
    with pytest.raises(ValueError, match="top_k"):
        ag.causal_attention(X, Q, K, top_k=0)


# ----------------------------------------------------------------------------- a real model

@pytest.mark.slow
def test_id_eps_on_real_attention_rows():
    """Last-token rows of SmolLM2 (eager attention): the absolute reading counts at most 9 keys per head
    (at most 9 weights of a row can exceed 0.1), the relative reading at least 1, and the summed reading
    is the per-head sum; the effective degree lies between 1 and the row's support."""
    from icl_geometry.llm import engine, lm

    loaded = lm.load("smollm2-135m", "cpu")
    tr = engine.trace(loaded, "Q: What is 12 + 30?\nA: 42\n\nQ: What is 21 + 13?\nA:")
    last = tr.attention_rows[:, :, -1, :]  # (layers, heads, seq_len)
    np.testing.assert_allclose(last.sum(-1).numpy(), 1, atol=1e-4)
    per_head = ag.id_eps(last, 0.1, "absolute", "per_head", head_axis=1)
    assert per_head.shape == (loaded.n_layers, loaded.n_heads) and per_head.max() <= 9
    rel = ag.id_eps(last, 0.1, "relative", "per_head", head_axis=1)
    assert rel.min() >= 1 and np.all(rel >= per_head)  # row max <= 1, so eps x max <= eps
    np.testing.assert_array_equal(ag.id_eps(last, 0.1, head_axis=1), per_head.sum(1))
    eff = ag.effective_degree(last, head_axis=1)
    assert np.all(eff >= 1 - 1e-6) and np.all(eff <= tr.seq_len + 1e-6)


# ----------------------------------------------------------------------------- temperature on given rows

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.2, 5.0))
def test_temper_equals_softmax_of_scaled_scores(seed, tau):
    """Known answer: tempering the rows of causal_attention equals causal_attention at that temperature."""
    rng = np.random.default_rng(seed)
    X, Wq, Wk = rng.standard_normal((6, 4)), rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    np.testing.assert_allclose(ag.temper(ag.causal_attention(X, Wq, Wk), tau),
                               ag.causal_attention(X, Wq, Wk, temperature=tau), atol=1e-10)


def test_temper_limits_and_support():
    row = np.array([0.5, 0.3, 0.2, 0.0])
    np.testing.assert_allclose(ag.temper(row, 1.0), row)
    np.testing.assert_allclose(ag.temper(row, 1e-3), [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(ag.temper(row, 1e6), [1 / 3, 1 / 3, 1 / 3, 0], atol=1e-5)
    assert (ag.temper(row, 0.1) > 0).sum() == 3  # the support (Theorem 2.1's count) does not move
    with pytest.raises(ValueError, match="temperature"):
        ag.temper(row, 0.0)


def test_a_head_with_no_edge_above_eps_contributes_the_origin():
    """Two heads on 3 tokens: head 0 one-hot on token 0, head 1 uniform (1/3 < eps). With empty='origin' head 1
    counts 0 edges and adds the point 0, so the distance to the sum is head 1's whole output, in L1."""
    X = np.eye(3)
    V = np.stack([np.eye(3), np.eye(3)])
    O = np.stack([np.eye(3), 2 * np.eye(3)])
    A = np.zeros((2, 3, 3))
    A[0, :, 0] = 1.0
    A[1] = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    with pytest.raises(ValueError, match="empty='origin'"):
        ag.minkowski_dimension_check(X, V, O, A, eps=0.5, rows=[2])
    check = ag.minkowski_dimension_check(X, V, O, A, eps=0.5, rows=[2], empty="origin")
    assert check.support.tolist() == [[1, 0]] and check.bound.tolist() == [1] and check.dimension.tolist() == [0]
    assert check.residual[0] == pytest.approx(2.0)  # head 1's output (2/3, 2/3, 2/3), L1 norm 2
    with pytest.raises(ValueError, match="empty"):
        ag.minkowski_dimension_check(X, V, O, A, eps=0.5, empty="skip")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), r=st.integers(1, 5), true_rank=st.integers(0, 5))
def test_product_rank_equals_the_rank_of_the_product(seed, r, true_rank):
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((12, r))
    O = rng.standard_normal((r, 10))
    if true_rank < r:  # make V rank-deficient
        V[:, true_rank:] = V[:, :1] if true_rank else 0.0
    assert ag.product_rank(V, O) == ag._rank(V @ O, 1e-9) == np.linalg.matrix_rank(V @ O)
