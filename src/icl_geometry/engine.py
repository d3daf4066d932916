"""The one way prompts go through a language model: traced forward passes (MLP inputs and attention
rows per layer), greedy generation, and scoring of candidate continuations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from .lm import LoadedModel, encode, layer_hooks


@dataclass
class Trace:
    """What one forward pass left behind, for one prompt (tensors on the CPU, float32)."""

    prompt: str
    token_ids: list[int]
    tokens: list[str]
    positions: list[int]  # absolute token positions captured (negative positions resolved)
    mlp_inputs: torch.Tensor  # (n_layers, n_positions, d_model)
    attention_rows: torch.Tensor  # (n_layers, n_heads, n_positions, seq_len)
    logits: torch.Tensor  # (vocab,) at the last token
    attention: torch.Tensor | None = field(default=None, repr=False)  # (n_layers, n_heads, T, T) if asked

    @property
    def seq_len(self) -> int:
        return len(self.token_ids)


def _resolve_positions(positions: Sequence[int], length: int) -> list[int]:
    out = []
    for p in positions:
        q = p + length if p < 0 else p
        if not 0 <= q < length:
            raise ValueError(f"positions: {p} is out of range for a prompt of {length} tokens "
                             f"(allowed: {-length}..{length - 1})")
        out.append(q)
    return out


@torch.no_grad()
def trace_batch(loaded: LoadedModel, prompts: Sequence[str], positions: Sequence[int] = (-1,),
                full_attention: bool = False, batch_size: int = 8,
                progress: bool = False) -> list[Trace]:
    """Trace several prompts in left-padded batches; same result as `trace` on each, faster."""
    if isinstance(prompts, str):
        raise ValueError("prompts: expected a sequence of strings; use trace() for one prompt")
    if len(positions) == 0:
        raise ValueError("positions: expected at least one token position, e.g. (-1,) for the last token")
    chunks = [prompts[i:i + batch_size] for i in range(0, len(prompts), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"tracing {loaded.name}", unit="batch")
    traces: list[Trace] = []
    for chunk in chunks:
        traces.extend(_trace_chunk(loaded, list(chunk), list(positions), full_attention))
    return traces


def trace(loaded: LoadedModel, prompt: str, positions: Sequence[int] = (-1,),
          full_attention: bool = False) -> Trace:
    """One forward pass; per layer, the MLP input and the attention rows of `positions` (default: last token).

    Full T x T attention maps are kept only with `full_attention=True`.
    """
    return trace_batch(loaded, [prompt], positions, full_attention=full_attention)[0]


def _trace_chunk(loaded: LoadedModel, prompts: list[str], positions: list[int],
                 full_attention: bool) -> list[Trace]:
    enc = encode(loaded, prompts)
    mask = enc["attention_mask"].bool().cpu()
    batch, width = mask.shape
    lengths = mask.sum(-1).tolist()
    # Positions are counted per prompt; in the padded batch prompt b starts at column width - lengths[b].
    resolved = [_resolve_positions(positions, n) for n in lengths]
    cols = torch.tensor([[width - n + q for q in res] for n, res in zip(lengths, resolved)])
    rows_index = torch.arange(batch)[:, None]

    mlp_in: list[torch.Tensor] = []
    att_rows: list[torch.Tensor] = []
    att_full: list[torch.Tensor] = []

    def on_mlp(_layer: int, x: torch.Tensor) -> None:
        mlp_in.append(x[rows_index, cols.to(x.device)].float().cpu())

    def on_attn(_layer: int, weights: torch.Tensor) -> None:
        att_rows.append(weights[rows_index, :, cols.to(weights.device)].float().cpu())  # (B, P, H, W)
        if full_attention:
            att_full.append(weights.float().cpu())

    with layer_hooks(loaded, on_mlp, on_attn):
        out = loaded.model(**enc, use_cache=False)

    logits = out.logits[:, -1].float().cpu()
    mlp = torch.stack(mlp_in, dim=1)  # (B, L, P, D)
    rows = torch.stack(att_rows, dim=1).permute(0, 1, 3, 2, 4)  # (B, L, H, P, W)
    ids = enc["input_ids"].cpu()
    traces = []
    for b, prompt in enumerate(prompts):
        start = width - lengths[b]
        token_ids = ids[b, start:].tolist()
        full = torch.stack(att_full, 1)[b, :, :, start:, start:].contiguous() if full_attention else None
        traces.append(Trace(
            prompt=prompt, token_ids=token_ids,
            tokens=loaded.tokenizer.convert_ids_to_tokens(token_ids), positions=resolved[b],
            mlp_inputs=mlp[b].contiguous(), attention_rows=rows[b, ..., start:].contiguous(),
            logits=logits[b], attention=full))
    return traces
