"""One real decoder layer's attention block written as Theorem 2.1's objects: the block's input rows X, each
query head's value map V_h and output map O_h, and its attention weights A_h, so that
`attention_graph.minkowski_dimension_check` can test the theorem on a pretrained model, not only on random
layers.

Grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads; Gemma-3-270M: 4 share 1) is
expanded: query head h uses the value projection of its key/value group, h // (H / H_kv), and its own slice of
the output projection, so V_h O_h is a (d_model, d_model) map of rank at most d_head. Rotary embeddings and
query/key norms act only on scores, not on values, so they enter through A and nothing else. A value bias (as
in Qwen2) is folded in by appending a constant 1 to every row of X; an output bias is subtracted from the
block's output. `reconstruction_error` checks that sum_h A_h X V_h O_h rebuilds the block's own output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from icl_geometry.core import attention_graph as ag
from icl_geometry.llm import lm


@dataclass
class BlockIO:
    """What one attention block saw and produced on one prompt (float64 numpy arrays)."""

    layer: int
    tokens: list[str]
    X: np.ndarray  # (T, d_in) block input (after the layer's input norm), plus a column of ones with a value bias
    W_v: np.ndarray  # (H, d_in, d_head) value map of every query head (GQA expanded)
    W_o: np.ndarray  # (H, d_head, d_model) output map of every query head
    attention: np.ndarray  # (H, T, T) causal weights
    output: np.ndarray  # (T, d_model) the block's output, minus the output projection's bias if it has one

    @property
    def head_ranks(self) -> np.ndarray:
        """rank(V_h O_h) per head: the most dimensions one head can add (Theorem 2.1's per-head cap)."""
        return np.array([ag.product_rank(self.W_v[h], self.W_o[h]) for h in range(len(self.W_v))])


def head_maps(loaded: lm.LoadedModel, layer: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(W_v (H, d_in, d_head), W_o (H, d_head, d_model), has_value_bias) of decoder layer `layer`."""
    attn = lm.attention_module(loaded.layers[layer])
    for name in ("v_proj", "o_proj"):
        if not hasattr(attn, name):
            raise NotImplementedError(f"{type(attn).__name__} has no {name}: only separate q/k/v/o projections "
                                      "(Llama, Gemma, Qwen, Mistral families) are supported")
    H, H_kv = loaded.n_heads, loaded.n_kv_heads
    v = attn.v_proj.weight.detach().double().cpu()  # (H_kv d_head, d_model)
    o = attn.o_proj.weight.detach().double().cpu()  # (d_model, H d_head)
    d_head = v.shape[0] // H_kv
    if o.shape[1] != H * d_head:
        raise ValueError(f"o_proj takes {o.shape[1]} inputs, expected H x d_head = {H} x {d_head}")
    group = H // H_kv
    W_v = torch.stack([v[(h // group) * d_head:(h // group + 1) * d_head].T for h in range(H)])  # (H, d, d_head)
    bias = attn.v_proj.bias
    if bias is not None:
        b = bias.detach().double().cpu()
        rows = torch.stack([b[(h // group) * d_head:(h // group + 1) * d_head] for h in range(H)])  # (H, d_head)
        W_v = torch.cat([W_v, rows[:, None, :]], dim=1)
    W_o = torch.stack([o[:, h * d_head:(h + 1) * d_head].T for h in range(H)])  # (H, d_head, d_model)
    return W_v.numpy(), W_o.numpy(), bias is not None


def block_io(loaded: lm.LoadedModel, prompt: str, layer: int) -> BlockIO:
    """Run `prompt` (used as given: no chat template) and capture decoder layer `layer`'s attention block."""
    if not -loaded.n_layers <= layer < loaded.n_layers:
        raise ValueError(f"layer = {layer!r} is not allowed: expected an integer in [{-loaded.n_layers}, "
                         f"{loaded.n_layers - 1}]")
    layer = layer % loaded.n_layers
    attn = lm.attention_module(loaded.layers[layer])
    seen: dict[str, torch.Tensor] = {}

    def hook(_module, args, kwargs, output):
        seen["x"] = (args[0] if args else kwargs["hidden_states"])[0].detach()
        seen["out"], seen["a"] = output[0][0].detach(), output[1][0].detach()

    enc = lm.encode(loaded, [prompt])
    handle = attn.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            loaded.model(**{k: v.to(loaded.device) for k, v in enc.items()})
    finally:
        handle.remove()
    W_v, W_o, value_bias = head_maps(loaded, layer)
    X = seen["x"].double().cpu().numpy()
    if value_bias:
        X = np.hstack([X, np.ones((len(X), 1))])
    out = seen["out"].double().cpu()
    if attn.o_proj.bias is not None:
        out = out - attn.o_proj.bias.detach().double().cpu()
    ids = enc["input_ids"][0].tolist()
    return BlockIO(layer=layer, tokens=loaded.tokenizer.convert_ids_to_tokens(ids), X=X, W_v=W_v, W_o=W_o,
                   attention=seen["a"].double().cpu().numpy(), output=out.numpy())


def reconstruction_error(io: BlockIO) -> float:
    """max |sum_h A_h X V_h O_h - block output| / max |block output|: ~1e-6 (float32 round-off) when the
    decomposition is right."""
    rebuilt = np.einsum("hij,jd,hdv,hvo->io", io.attention, io.X, io.W_v, io.W_o, optimize=True)
    return float(np.abs(rebuilt - io.output).max() / np.abs(io.output).max())


def minkowski_table(ios: dict[int, BlockIO], eps_values: tuple[float, ...] = (0.0, 0.1),
                    queries: str = "quarters"):
    """Theorem 2.1 per query row of real layers (`attention_graph.minkowski_dimension_check`, a head without an
    edge contributing the origin): one row per (layer, query, eps) with the edges (the paper's count), heads
    without an edge, affine dimension, tight bound, distinct input rows among the tokens seen and the residual
    relative to the row's L1 norm. `queries='quarters'`: a quarter of the way in, halfway and the last token."""
    import pandas as pd

    if queries != "quarters":
        raise ValueError(f"queries = {queries!r} is not allowed: expected 'quarters'")
    recs = []
    for layer, io in ios.items():
        T = len(io.tokens)
        rows = sorted({T // 4, T // 2, T - 1})
        for eps in eps_values:
            chk = ag.minkowski_dimension_check(io.X, io.W_v, io.W_o, io.attention, rows=rows, eps=eps, empty="origin")
            for r, i in enumerate(chk.rows):
                recs.append({"layer": layer, "tokens seen": int(i) + 1, "eps": eps, "edges": int(chk.bound[r]),
                             "heads without an edge": int((chk.support[r] == 0).sum()),
                             "affine dimension": int(chk.dimension[r]), "tight bound": int(chk.tight_bound[r]),
                             "distinct input rows": len(np.unique(io.X[: i + 1], axis=0)),
                             "relative residual": float(chk.residual[r] / np.abs(chk.outputs[r]).sum())})
    return pd.DataFrame(recs)
