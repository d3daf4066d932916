"""A model sharded by accelerate's device_map (CPU and disk offload) computes exactly what the whole model
computes, and the hooks that traces and the engine use see the same tensors (fast: tiny random models)."""

from __future__ import annotations

import pytest
import torch

from icl_geometry.llm import lm

from fixtures import tiny

PROMPTS = ["what is 3 + 4 ?", "Q : the cat is red ? A : yes Q : the dog is blue ? A :"]


def _capture(loaded: lm.LoadedModel, prompts: list[str]):
    mlp: dict[int, torch.Tensor] = {}
    attn: dict[int, torch.Tensor] = {}
    with lm.layer_hooks(loaded, lambda i, x: mlp.__setitem__(i, x.detach().cpu()),
                        lambda i, w: attn.__setitem__(i, w.detach().cpu())), torch.no_grad():
        out = loaded.model(**lm.encode(loaded, prompts), use_cache=False)
    return out.logits.cpu(), mlp, attn


@pytest.mark.parametrize("architecture", tiny.ARCHITECTURES)
def test_cpu_and_disk_offload_equals_the_whole_model(tmp_path, architecture):
    whole, sharded = tiny.whole_and_offloaded(tmp_path, architecture)
    assert "disk" in sharded.device_map.values() and sharded.device == "cpu"
    offloaded = next(sharded.layers[1].parameters())
    assert offloaded.device.type == "meta"  # not in memory: accelerate reads it from disk at each forward
    logits_a, mlp_a, attn_a = _capture(whole, PROMPTS)
    logits_b, mlp_b, attn_b = _capture(sharded, PROMPTS)
    torch.testing.assert_close(logits_b, logits_a, rtol=0, atol=1e-5)
    assert sorted(mlp_b) == sorted(mlp_a) == list(range(whole.n_layers)) == sorted(attn_b)
    for i in mlp_a:
        torch.testing.assert_close(mlp_b[i], mlp_a[i], rtol=0, atol=1e-5)
        torch.testing.assert_close(attn_b[i], attn_a[i], rtol=0, atol=1e-5)


def test_input_device_follows_the_embedding(tmp_path):
    path = str(tiny.save_tiny_model(tmp_path / "model", "llama"))
    assert lm.load(path, device="cpu").device == "cpu"
    assert lm.load(path, device="cpu").device_map == {}
