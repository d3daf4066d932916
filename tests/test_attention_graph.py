"""Hand counts for ID_eps and graph statistics; Theorem 2.1 checked on random multi-head layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from icl_geometry import attention_graph as ag


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
    assert np.all(check.dimension <= check.tight_bound)
    assert np.all(check.dimension <= min(d_out, H * d_v))


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
    from icl_geometry import lm

    loaded = lm.load("smollm2-135m", "cpu")
    tr = lm.trace(loaded, "Q: What is 12 + 30?\nA: 42\n\nQ: What is 21 + 13?\nA:")
    last = tr.attention_rows[:, :, -1, :]  # (layers, heads, seq_len)
    np.testing.assert_allclose(last.sum(-1).numpy(), 1, atol=1e-4)
    per_head = ag.id_eps(last, 0.1, "absolute", "per_head", head_axis=1)
    assert per_head.shape == (loaded.n_layers, loaded.n_heads) and per_head.max() <= 9
    rel = ag.id_eps(last, 0.1, "relative", "per_head", head_axis=1)
    assert rel.min() >= 1 and np.all(rel >= per_head)  # row max <= 1, so eps x max <= eps
    np.testing.assert_array_equal(ag.id_eps(last, 0.1, head_axis=1), per_head.sum(1))
    eff = ag.effective_degree(last, head_axis=1)
    assert np.all(eff >= 1 - 1e-6) and np.all(eff <= tr.seq_len + 1e-6)
