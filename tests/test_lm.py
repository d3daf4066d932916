"""Loading, describing and encoding (`lm`), and the engine against independent computations on the real
bundled models (slow; the same checks run fast on tiny random models in test_engine.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_geometry.llm import engine, lm

PROMPTS = ["The capital of France is", "Q: Which letter comes right after K in the alphabet?\nA: L\n\n"
           "Q: Which letter comes right before D in the alphabet?\nA:"]


def _plain_last_logits(loaded, prompt):
    enc = loaded.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        return loaded.model(**enc).logits[0, -1].float()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["smollm2", "gemma3"])
def test_trace_logits_equal_plain_forward(which, request):
    loaded = request.getfixturevalue(which)
    for prompt in PROMPTS:
        tr = engine.trace(loaded, prompt)
        assert torch.allclose(tr.logits, _plain_last_logits(loaded, prompt), atol=1e-5)
        assert tr.mlp_inputs.shape == (loaded.n_layers, 1, loaded.d_model)
        assert tr.attention_rows.shape == (loaded.n_layers, loaded.n_heads, 1, tr.seq_len)
        assert tr.attention is None  # full maps only when asked


@pytest.mark.slow
def test_mlp_inputs_equal_an_independent_hook(smollm2):
    prompt = PROMPTS[1]
    seen = []
    hooks = [layer.post_attention_layernorm.register_forward_hook(lambda m, a, out: seen.append(out[0].clone()))
             for layer in smollm2.model.model.layers]
    try:
        enc = smollm2.tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            smollm2.model(**enc)
    finally:
        for h in hooks:
            h.remove()
    independent = torch.stack(seen)  # (layers, T, d)
    T = independent.shape[1]
    tr = engine.trace(smollm2, prompt, positions=(0, 3, -1))
    assert tr.positions == [0, 3, T - 1]
    assert torch.allclose(tr.mlp_inputs, independent[:, [0, 3, T - 1]], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["smollm2", "gemma3"])
def test_attention_rows_are_causal_and_sum_to_one(which, request):
    loaded = request.getfixturevalue(which)
    tr = engine.trace(loaded, PROMPTS[1], positions=(2, 10, -1), full_attention=True)
    for i, pos in enumerate(tr.positions):
        row = tr.attention_rows[:, :, i, :]
        assert torch.all(row[..., pos + 1:] == 0)
        assert torch.allclose(row.sum(-1), torch.ones(()), atol=1e-5)
        assert torch.allclose(row, tr.attention[:, :, pos, :])
    assert tr.attention.shape == (loaded.n_layers, loaded.n_heads, tr.seq_len, tr.seq_len)


@pytest.mark.slow
def test_batched_trace_equals_single_traces(smollm2):
    prompts = ["Hello there, how are you today?", "One", PROMPTS[1]]
    batch = engine.trace_batch(smollm2, prompts, positions=(0, -1), batch_size=3)
    for prompt, tb in zip(prompts, batch):
        ts = engine.trace(smollm2, prompt, positions=(0, -1))
        assert tb.token_ids == ts.token_ids
        assert torch.allclose(tb.logits, ts.logits, atol=1e-3)
        assert torch.allclose(tb.mlp_inputs, ts.mlp_inputs, atol=1e-3)
        assert torch.allclose(tb.attention_rows, ts.attention_rows, atol=1e-4)


@pytest.mark.slow
def test_out_of_range_position_is_a_clear_error(smollm2):
    with pytest.raises(ValueError, match="positions"):
        engine.trace(smollm2, "short", positions=(50,))


@pytest.mark.slow
def test_generate_is_greedy_deterministic_and_equals_hugging_face(smollm2):
    prompt = lm.format_prompt(smollm2, "What is the capital of France?")
    a = engine.generate(smollm2, [prompt, "The sky is"], max_new_tokens=6)
    b = engine.generate(smollm2, [prompt], max_new_tokens=6)
    assert a[0] == b[0] and "Paris" in a[0]
    tok = smollm2.tokenizer
    enc = lm.encode(smollm2, [prompt, "The sky is"])
    enc.pop("position_ids")
    out = smollm2.model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id,
                                 top_p=None, top_k=None, temperature=None)
    assert a == tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.mark.slow
def test_score_choices_prefers_the_right_answer(smollm2):
    prompt = lm.format_prompt(smollm2, "What is the capital of France? Answer with one word.")
    scores = engine.score_choices(smollm2, [prompt], ["Paris", "Rome", "Berlin is the capital"])[0]
    assert scores.argmax() == 0 and np.all(scores < 0)


@pytest.mark.slow
def test_describe_matches_the_loaded_model(smollm2):
    assert lm.describe("smollm2-135m") == smollm2.summary()
    assert smollm2.summary()["layers"] == 30 and smollm2.n_heads == 9 and smollm2.d_model == 576


def test_unknown_model_is_a_clear_error():
    with pytest.raises(lm.ModelNotFoundError, match="smollm2-135m") as err:
        lm.load("no-such-model")
    assert "gemma3-270m" in str(err.value)


def test_unreachable_hub_id_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: the env var is too late
    with pytest.raises(lm.ModelNotFoundError, match="Bundled|bundled"):
        lm.load("no-such-org/no-such-model-xyz")


def test_bos_is_added_only_when_no_prompt_already_starts_with_it():
    from types import SimpleNamespace

    llama_like = SimpleNamespace(bos_token="<|begin_of_text|>")
    assert not lm.needs_special_tokens(llama_like, ["<|begin_of_text|>a", "<|begin_of_text|>b"])
    assert lm.needs_special_tokens(llama_like, ["<|begin_of_text|>a", "b"])
    assert lm.needs_special_tokens(SimpleNamespace(bos_token=None), ["a"])
