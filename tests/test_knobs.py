"""Size knobs inside one model (`llm.knobs`), on tiny random Llama and Gemma-3 checkpoints (grouped-query: 4
query heads share 2 key/value heads; head_dim 8): ablating nothing is the model bit for bit, leaving a knob
restores it exactly, a truncated map has the declared rank, and the knobs work on a sharded model (fast)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from icl_geometry.llm import knobs, lm
from icl_geometry.llm.attention_block import head_maps

from fixtures import tiny

PROMPTS = ["what is 3 + 4 ?", "Q : the cat is red ? A : yes Q : the dog is blue ? A :", "a b c d"]
REFERENCE = ["Q : what is 1 + 2 ? A : 3", "the apple tree is red", "Q : is the cat blue ? A : no", "c d a b"]


@pytest.fixture(params=tiny.ARCHITECTURES)
def model(request, tiny_models):
    return tiny_models[request.param]


@torch.no_grad()
def _logits(loaded, prompts=PROMPTS):
    return loaded.model(**lm.encode(loaded, prompts), use_cache=False).logits.cpu()


def _weights(loaded):
    return {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ablating_nothing_and_full_rank_are_the_model_bit_for_bit(model):
    means = knobs.head_means(model, REFERENCE)
    before, w = _logits(model), _weights(model)
    with knobs.mean_ablation(model, [], means):
        assert torch.equal(_logits(model), before)
    with knobs.rank_truncation(model, None), knobs.rank_truncation(model, knobs.head_dim(model)):
        assert torch.equal(_logits(model), before)
    with knobs.rank_truncation(model, 10_000, heads=[(0, 1)]):
        assert torch.equal(_logits(model), before)
    assert _same_weights(_weights(model), w)


def test_leaving_a_knob_restores_the_model_exactly(model):
    means = knobs.head_means(model, REFERENCE)
    before, w = _logits(model), _weights(model)
    with knobs.mean_ablation(model, [(0, 0), (1, 3), (2, 1)], means):
        ablated = _logits(model)
    with knobs.rank_truncation(model, 2):
        truncated = _logits(model)
    assert not torch.allclose(ablated, before) and not torch.allclose(truncated, before)
    assert torch.equal(_logits(model), before) and _same_weights(_weights(model), w)
    for layer in model.layers:  # no hook left behind
        assert not lm.attention_module(layer).o_proj._forward_pre_hooks
    with pytest.raises(RuntimeError), knobs.mean_ablation(model, [(0, 0)], means):
        raise RuntimeError("an error inside the block still removes the hooks")
    assert torch.equal(_logits(model), before)


def test_head_means_skip_padding_and_every_ablated_head_outputs_its_mean(model):
    together = knobs.head_means(model, REFERENCE, batch_size=4)
    one_by_one = knobs.head_means(model, REFERENCE, batch_size=1)
    torch.testing.assert_close(together, one_by_one, rtol=0, atol=1e-5)
    dh = knobs.head_dim(model)
    assert together.shape == (model.n_layers, model.n_heads, dh) and together.dtype == torch.float64
    last = knobs.head_means(model, REFERENCE, where="last")
    assert not torch.allclose(last, together)
    seen = {}
    layer = 1
    o_proj = lm.attention_module(model.layers[layer]).o_proj
    with knobs.mean_ablation(model, [(layer, h) for h in range(model.n_heads)], together):
        handle = o_proj.register_forward_pre_hook(lambda _m, args: seen.__setitem__("x", args[0].detach()))
        try:
            _logits(model, PROMPTS[:1])
        finally:
            handle.remove()
    expect = together[layer].reshape(-1).to(torch.float32)
    torch.testing.assert_close(seen["x"][0], expect.expand_as(seen["x"][0]), rtol=0, atol=0)


def test_heads_are_checked(model):
    means = knobs.head_means(model, REFERENCE[:1])
    with pytest.raises(ValueError, match="head"):
        with knobs.mean_ablation(model, [(0, model.n_heads)], means):
            pass
    with pytest.raises(ValueError, match="means"):
        with knobs.mean_ablation(model, [(0, 0)], means[:1]):
            pass
    with pytest.raises(ValueError, match="r = -1"):
        with knobs.rank_truncation(model, -1):
            pass


@pytest.mark.parametrize("r", [0, 1, 3, 7])
def test_a_truncated_map_has_the_declared_rank_and_full_rank_is_the_original(model, r):
    W_v, W_o, _ = head_maps(model, 0)
    dh = W_v.shape[-1]
    full = knobs.effective_maps(model, 0, None)
    np.testing.assert_allclose(knobs.effective_maps(model, 0, dh), full)
    maps = knobs.effective_maps(model, 0, r)
    for h in range(model.n_heads):
        assert np.linalg.matrix_rank(full[h]) == dh
        assert np.linalg.matrix_rank(maps[h], tol=1e-8 * np.abs(full[h]).max()) == r
        np.testing.assert_allclose(maps[h], knobs.truncated_map(W_v[h], W_o[h], r), atol=1e-10)
        s_full, s_r = np.linalg.svd(full[h], compute_uv=False), np.linalg.svd(maps[h], compute_uv=False)
        np.testing.assert_allclose(s_r[:r], s_full[:r], rtol=1e-9)  # the top r singular values are kept
    np.testing.assert_allclose(knobs.truncation_projector(W_v[0], W_o[0], dh) @ W_o[0], W_o[0], atol=1e-9)


def test_the_rank_hook_equals_editing_the_output_projection(model):
    r = 2
    edited = copy.deepcopy(model)
    with torch.no_grad():
        for layer in range(model.n_layers):
            W_v, W_o, _ = head_maps(model, layer)
            o = lm.attention_module(edited.layers[layer]).o_proj.weight
            dh = W_v.shape[-1]
            for h in range(model.n_heads):
                P = torch.from_numpy(knobs.truncation_projector(W_v[h], W_o[h], r)).to(o.dtype)
                o[:, h * dh:(h + 1) * dh] = o[:, h * dh:(h + 1) * dh] @ P.T
    with knobs.rank_truncation(model, r):
        hooked = _logits(model)
    torch.testing.assert_close(hooked, _logits(edited), rtol=0, atol=1e-4)
    with knobs.rank_truncation(model, {0: 1, 2: None}, heads=[(0, 2), (2, 0)]):  # per layer, chosen heads
        only_one = _logits(model)
    assert not torch.equal(only_one, _logits(model))


def test_head_importance_is_the_drop_when_one_head_goes(model):
    prompts = ["Q : what is 3 + 4 ? A :", "Q : is the cat red ? A :"]
    choices = [[" 7", " 8"], [" yes", " no"]]
    answers = [0, 1]
    means = knobs.head_means(model, REFERENCE)
    heads = [(0, 0), (2, 3)]
    imp = knobs.head_importance(model, prompts, choices, answers, means, heads=heads)
    assert imp.shape == (model.n_layers, model.n_heads) and np.isfinite(imp).sum() == 2
    base = knobs.correct_label_logprobs(model, prompts, choices, answers)
    with knobs.mean_ablation(model, [(2, 3)], means):
        ablated = knobs.correct_label_logprobs(model, prompts, choices, answers)
    assert imp[2, 3] == pytest.approx(float(np.mean(base - ablated)))
    over = knobs.correct_label_logprobs(model, prompts, choices, answers, over_labels=True)
    assert np.all(over <= 0) and np.all(over >= base)


def test_ablation_orders():
    imp = np.array([[0.3, -0.1], [0.0, np.nan]])
    assert knobs.ablation_order(imp) == [(0, 1), (1, 0), (0, 0)]
    rand = knobs.ablation_order(imp, "random", seed=3)
    assert sorted(rand) == [(0, 0), (0, 1), (1, 0)] and rand == knobs.ablation_order(imp, "random", seed=3)
    order = knobs.ablation_order(np.arange(8.0).reshape(2, 4))
    assert [len(knobs.heads_to_ablate(order, k)) for k in (1.0, 0.75, 0.5, 0.25, 0.0)] == [0, 2, 4, 6, 8]
    assert knobs.heads_to_ablate(order, 0.5) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    with pytest.raises(ValueError, match="how"):
        knobs.ablation_order(imp, "most_important")
    with pytest.raises(ValueError, match="keep"):
        knobs.heads_to_ablate(order, 1.5)


@pytest.mark.parametrize("architecture", tiny.ARCHITECTURES)
def test_the_knobs_work_on_a_sharded_model(tmp_path, architecture):
    whole, sharded = tiny.whole_and_offloaded(tmp_path, architecture)
    assert next(sharded.layers[1].parameters()).device.type == "meta"
    means_a, means_b = knobs.head_means(whole, REFERENCE), knobs.head_means(sharded, REFERENCE)
    torch.testing.assert_close(means_b, means_a, rtol=0, atol=1e-5)
    heads = [(0, 1), (1, 0), (2, 3)]
    with knobs.mean_ablation(whole, heads, means_a):
        a = _logits(whole)
    with knobs.mean_ablation(sharded, heads, means_b):
        b = _logits(sharded)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    with knobs.rank_truncation(whole, 2):
        a = _logits(whole)
    with knobs.rank_truncation(sharded, 2):
        b = _logits(sharded)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    assert not torch.allclose(a, _logits(whole))
    torch.testing.assert_close(_logits(sharded), _logits(whole), rtol=0, atol=1e-5)  # restored


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_the_knobs_on_a_bundled_model(request, name):
    """On the bundled models (grouped-query: SmolLM2 9 query heads over 3 key/value heads, head_dim 64; Gemma-3
    4 over 1, head_dim 256): nothing ablated is the model bit for bit, a truncated map has its rank, and
    leaving the knobs restores the logits exactly."""
    loaded = request.getfixturevalue(name)
    prompts = ["Input: The movie was great.\nLabel: positive\n\nInput: The meal was awful.\nLabel:"]
    means = knobs.head_means(loaded, REFERENCE + prompts)
    before = _logits(loaded, prompts)
    with knobs.mean_ablation(loaded, [], means), knobs.rank_truncation(loaded, None):
        assert torch.equal(_logits(loaded, prompts), before)
    with knobs.mean_ablation(loaded, [(0, 0), (loaded.n_layers - 1, 1)], means), knobs.rank_truncation(loaded, 8):
        assert not torch.allclose(_logits(loaded, prompts), before)
    assert torch.equal(_logits(loaded, prompts), before)
    full = knobs.effective_maps(loaded, 0, None)
    maps = knobs.effective_maps(loaded, 0, 8)
    for h in (0, loaded.n_heads - 1):
        assert np.linalg.matrix_rank(maps[h], tol=1e-8 * np.abs(full[h]).max()) == 8
    assert knobs.knob_summary(loaded)["head_dim"] == {"smollm2": 64, "gemma3": 256}[name]
