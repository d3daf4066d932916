"""A real attention block written as Theorem 2.1's (X, V_h, O_h, A), on tiny random Llama and Gemma-3
checkpoints (grouped-query: 4 query heads share 2 key/value heads) and a Qwen2 one with value biases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_geometry.llm import attention_block as ab
from icl_geometry.core import attention_graph as ag
from icl_geometry.llm import lm
from fixtures import tiny

PROMPT = "Q : what is 3 + 4 ? A : 7 Q : what is 5 + 1 ? A :"


@pytest.fixture(params=tiny.ARCHITECTURES)
def model(request, tiny_models):
    return tiny_models[request.param]


@pytest.mark.parametrize("layer", [0, -1])
def test_heads_rebuild_the_block_output(model, layer):
    io = ab.block_io(model, PROMPT, layer)
    T = len(io.tokens)
    assert io.X.shape == (T, model.d_model) and io.attention.shape == (model.n_heads, T, T)
    assert io.W_v.shape[0] == io.W_o.shape[0] == model.n_heads
    assert ab.reconstruction_error(io) < 1e-5
    np.testing.assert_allclose(io.attention.sum(-1), 1.0, atol=1e-5)


def test_grouped_query_heads_share_their_value_map(model):
    W_v, W_o, bias = ab.head_maps(model, 0)
    group = model.n_heads // model.n_kv_heads
    assert not bias and group == 2
    np.testing.assert_array_equal(W_v[0], W_v[1])
    assert not np.array_equal(W_v[0], W_v[group]) and not np.array_equal(W_o[0], W_o[1])


def test_value_bias_is_folded_into_a_constant_column(tmp_path):
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for layer in m.model.layers:
            layer.self_attn.v_proj.bias.normal_()
    m.save_pretrained(tmp_path)
    tiny.tiny_tokenizer().save_pretrained(tmp_path)
    loaded = lm.load(str(tmp_path), device="cpu")
    io = ab.block_io(loaded, PROMPT, 1)
    assert io.X.shape[1] == loaded.d_model + 1 and np.all(io.X[:, -1] == 1.0)
    assert ab.reconstruction_error(io) < 1e-5


def test_theorem_holds_exactly_at_eps_zero_and_the_threshold_leaves_a_residual(model):
    io = ab.block_io(model, PROMPT, -1)
    T = len(io.tokens)
    exact = ag.minkowski_dimension_check(io.X, io.W_v, io.W_o, io.attention, rows=[T - 1])
    assert exact.holds and exact.support[0].tolist() == [T] * model.n_heads
    cut = ag.minkowski_dimension_check(io.X, io.W_v, io.W_o, io.attention, rows=[T - 1], eps=0.3, empty="origin")
    assert (cut.support <= exact.support).all() and cut.residual[0] > exact.residual[0]


def test_bad_layer_is_named(model):
    with pytest.raises(ValueError, match="layer"):
        ab.block_io(model, PROMPT, model.n_layers)


def test_minkowski_table_counts_distinct_rows_and_the_threshold_residual(model):
    ios = {layer: ab.block_io(model, PROMPT, layer) for layer in (0, model.n_layers - 1)}
    table = ab.minkowski_table(ios, (0.0, 0.3))
    assert len(table) == 2 * 2 * 3 and set(table.eps) == {0.0, 0.3}
    exact = table[table.eps == 0]
    assert (exact["relative residual"] < 1e-6).all()
    assert (exact["edges"] <= model.n_heads * exact["tokens seen"]).all()  # a sliding window (Gemma-3) sees fewer
    last = exact[exact.layer == model.n_layers - 1]  # full attention in both tiny layouts
    assert (last["edges"] == model.n_heads * last["tokens seen"]).all()
    assert (exact["affine dimension"] <= exact["tight bound"]).all()
    first = exact[exact.layer == 0]  # layer 0: repeated words are identical rows of X
    assert (first["distinct input rows"] < first["tokens seen"]).any()
    with pytest.raises(ValueError, match="queries"):
        ab.minkowski_table(ios, queries="all")
