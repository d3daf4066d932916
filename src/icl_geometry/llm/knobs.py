"""Size knobs inside one real model (chapter 8, paper B's two notions of size): fewer attention heads, and a
lower rank of each head's value-output map, with everything else fixed.

- Heads kept (paper B's setting 2, size = number of heads): `mean_ablation` replaces chosen heads' outputs,
  just before the output projection o_proj, by their mean over a reference set of prompts (`head_means`), so
  an ablated head still adds its average contribution and nothing that depends on the prompt. Which heads go
  first: `head_importance` (the drop in the correct label's log-probability when one head is mean-ablated, on
  held-out prompts) and `ablation_order` (least important first, or at random as the control).
- Rank kept (setting 1, size = a rank constraint): `rank_truncation` replaces each query head's value-output map
  M_h = V_h O_h (grouped-query heads expanded, `attention_block.head_maps`) by its best rank-r approximation
  M_h,r (SVD). It acts on the head's output z_h before o_proj: z_h -> z_h P_h with P_h = V_h^+ M_h,r O_h^+,
  which gives V_h P_h O_h = M_h,r exactly (the top-r singular vectors of M_h lie in the column space of V_h
  and the row space of O_h). A value bias is folded into V_h as a constant row, as `attention_block` does.

Both knobs are forward pre-hooks on o_proj inside a context manager: the weights are never written, leaving
the context removes the hooks, and a knob that changes nothing (no heads, r at or above a head's rank)
registers no hook, so the model computes bit for bit what it computed before. Hooks see each layer's own
device and dtype, so the knobs work on a model sharded by accelerate's device_map (CPU, GPUs, disk offload).
"""

from __future__ import annotations

import random
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from icl_geometry.llm import engine, lm
from icl_geometry.llm.attention_block import head_maps

Head = tuple[int, int]  # (decoder layer, query head)
ORDERS = ("least_important", "random")


def _o_proj(loaded: lm.LoadedModel, layer: int) -> torch.nn.Module:
    attn = lm.attention_module(loaded.layers[layer])
    if not hasattr(attn, "o_proj"):
        raise NotImplementedError(f"{type(attn).__name__} has no o_proj: only separate q/k/v/o projections (Llama, "
                                  "Gemma, Qwen, Mistral families) are supported")
    return attn.o_proj


def head_dim(loaded: lm.LoadedModel) -> int:
    """The width of one head's output (o_proj takes n_heads x head_dim inputs)."""
    return int(_o_proj(loaded, 0).in_features) // loaded.n_heads


def all_heads(loaded: lm.LoadedModel) -> list[Head]:
    return [(layer, h) for layer in range(loaded.n_layers) for h in range(loaded.n_heads)]


def _check_heads(loaded: lm.LoadedModel, heads: Iterable[Head]) -> dict[int, list[int]]:
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        if not (0 <= int(layer) < loaded.n_layers and 0 <= int(h) < loaded.n_heads):
            raise ValueError(f"head ({layer}, {h}) is not allowed: expected layer in [0, {loaded.n_layers - 1}] and "
                             f"head in [0, {loaded.n_heads - 1}]")
        by_layer.setdefault(int(layer), [])
        if int(h) not in by_layer[int(layer)]:
            by_layer[int(layer)].append(int(h))
    return by_layer


@contextmanager
def _o_proj_hooks(loaded: lm.LoadedModel, edits: dict[int, Callable[[torch.Tensor], torch.Tensor]]) -> Iterator[None]:
    """While the block runs, o_proj of each layer in `edits` takes edit(input) instead of its input."""
    def make(edit: Callable[[torch.Tensor], torch.Tensor]):
        def pre_hook(_module, args):
            return (edit(args[0]), *args[1:])
        return pre_hook

    handles = []
    try:
        for layer, edit in edits.items():
            handles.append(_o_proj(loaded, layer).register_forward_pre_hook(make(edit)))
        yield
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------------------------- heads kept
@torch.no_grad()
def head_means(loaded: lm.LoadedModel, prompts: Sequence[str], batch_size: int = 16,
               where: str = "all") -> torch.Tensor:
    """(n_layers, n_heads, head_dim) float64 on the CPU: each head's output before o_proj averaged over the
    reference `prompts`, over every real token (`where='all'`; left padding excluded) or over each prompt's last
    token (`where='last'`, where a classification prompt is scored)."""
    if where not in ("all", "last"):
        raise ValueError(f"where = {where!r} is not allowed: expected 'all' or 'last'")
    if not prompts:
        raise ValueError("head_means: give at least one reference prompt")
    dh = head_dim(loaded)
    total = torch.zeros(loaded.n_layers, loaded.n_heads * dh, dtype=torch.float64)
    count = 0.0
    seen: dict[int, torch.Tensor] = {}
    hooks = {layer: (lambda x, layer=layer: seen.__setitem__(layer, x.detach()) or x)
             for layer in range(loaded.n_layers)}
    for start in range(0, len(prompts), batch_size):
        enc = lm.encode(loaded, prompts[start:start + batch_size])
        with _o_proj_hooks(loaded, hooks):
            loaded.model(**enc, use_cache=False)
        mask = enc["attention_mask"].to(torch.float64).cpu()
        if where == "last":
            mask = torch.zeros_like(mask)
            mask[:, -1] = 1.0  # left padding: the last position is every prompt's last token
        for layer, x in seen.items():
            total[layer] += torch.einsum("bt,btd->d", mask, x.to("cpu", torch.float64))
        count += float(mask.sum())
    return (total / count).reshape(loaded.n_layers, loaded.n_heads, dh)


@contextmanager
def mean_ablation(loaded: lm.LoadedModel, heads: Iterable[Head], means: torch.Tensor) -> Iterator[None]:
    """Within the block, each head in `heads` outputs its mean (`head_means`) instead of its own output, at every
    token. No heads: no hook, the model unchanged bit for bit; on leaving, the hooks are removed."""
    by_layer = _check_heads(loaded, heads)
    dh = head_dim(loaded)
    if tuple(means.shape) != (loaded.n_layers, loaded.n_heads, dh):
        raise ValueError(f"means: expected shape {(loaded.n_layers, loaded.n_heads, dh)} (`head_means`), got "
                         f"{tuple(means.shape)}")

    def edit_for(layer: int, hs: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        value = torch.cat([means[layer, h] for h in hs])
        cols = torch.cat([torch.arange(h * dh, (h + 1) * dh) for h in hs])

        def edit(x: torch.Tensor) -> torch.Tensor:
            y = x.clone()
            y[..., cols.to(x.device)] = value.to(x.device, x.dtype)
            return y
        return edit

    with _o_proj_hooks(loaded, {layer: edit_for(layer, hs) for layer, hs in by_layer.items()}):
        yield


def correct_label_logprobs(loaded: lm.LoadedModel, prompts: Sequence[str], choices: Sequence[Sequence[str]],
                           answers: Sequence[int], over_labels: bool = False, batch_size: int = 16) -> np.ndarray:
    """Per prompt, the log-probability of its correct choice (`engine.score_choices`); with `over_labels`,
    renormalised over the prompt's choices (the label words), so only how the labels compare counts."""
    scores = engine.score_choices(loaded, list(prompts), [list(c) for c in choices], batch_size=batch_size)
    out = np.empty(len(prompts))
    for i, (s, a) in enumerate(zip(scores, answers, strict=True)):
        s = np.asarray(s, dtype=np.float64)
        out[i] = s[a] - (np.logaddexp.reduce(s) if over_labels else 0.0)
    return out


def head_importance(loaded: lm.LoadedModel, prompts: Sequence[str], choices: Sequence[Sequence[str]],
                    answers: Sequence[int], means: torch.Tensor, heads: Sequence[Head] | None = None,
                    over_labels: bool = False, batch_size: int = 16, progress: bool = False) -> np.ndarray:
    """(n_layers, n_heads): the mean drop, over the held-out `prompts`, of the correct choice's log-probability
    (`correct_label_logprobs`) when that one head is mean-ablated (positive: the head helps). Heads not in
    `heads` (default: all) are NaN. One pass of the prompts per head."""
    base = correct_label_logprobs(loaded, prompts, choices, answers, over_labels, batch_size)
    out = np.full((loaded.n_layers, loaded.n_heads), np.nan)
    todo = all_heads(loaded) if heads is None else list(heads)
    for head in engine.progress_bar(todo, progress, f"head importance {loaded.name}", unit="head"):
        with mean_ablation(loaded, [head], means):
            ablated = correct_label_logprobs(loaded, prompts, choices, answers, over_labels, batch_size)
        out[head] = float(np.mean(base - ablated))
    return out


def ablation_order(importance: np.ndarray, how: str = "least_important", seed: int = 0) -> list[Head]:
    """Every head with a finite importance, in the order they are ablated: least important first (ties by layer,
    then head), or a seeded random order (the control)."""
    if how not in ORDERS:
        raise ValueError(f"how = {how!r} is not allowed: expected one of {list(ORDERS)}")
    imp = np.asarray(importance, dtype=np.float64)
    heads = [(int(layer), int(h)) for layer, h in zip(*np.nonzero(np.isfinite(imp)))]
    if how == "random":
        random.Random(f"ablation-order:{seed}").shuffle(heads)
        return heads
    return sorted(heads, key=lambda lh: (imp[lh], lh))


def heads_to_ablate(order: Sequence[Head], keep: float) -> list[Head]:
    """The first round((1 - keep) n) heads of `order` (n = len(order)): what keeping a share `keep` removes."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep = {keep!r} is not allowed: expected a share in [0, 1]")
    return list(order[:int(np.floor((1 - keep) * len(order) + 0.5))])


# --------------------------------------------------------------------------------------------- rank kept
def _factored_svd(W_v: np.ndarray, W_o: np.ndarray):
    """The thin SVD of M = W_v W_o (d_in x d_model, rank <= d_head) through QR factors, O(d d_head^2) instead of
    O(d^3): W_v = Q_v R_v, W_o^T = Q_o R_o, so M = Q_v (R_v R_o^T) Q_o^T and the small core's SVD gives M's.
    Returns (Q_v, R_v, Q_o, R_o, U_c, s, Vt_c) with M = (Q_v U_c) diag(s) (Vt_c Q_o^T)."""
    Q_v, R_v = np.linalg.qr(np.asarray(W_v, np.float64))
    Q_o, R_o = np.linalg.qr(np.asarray(W_o, np.float64).T)
    U_c, s, Vt_c = np.linalg.svd(R_v @ R_o.T)
    return Q_v, R_v, Q_o, R_o, U_c, s, Vt_c


def truncated_map(W_v: np.ndarray, W_o: np.ndarray, r: int) -> np.ndarray:
    """The best rank-r approximation (SVD, Eckart-Young) of one head's value-output map M = W_v W_o."""
    Q_v, _, Q_o, _, U_c, s, Vt_c = _factored_svd(W_v, W_o)
    return (Q_v @ (U_c[:, :r] * s[:r])) @ (Vt_c[:r] @ Q_o.T)


def truncation_projector(W_v: np.ndarray, W_o: np.ndarray, r: int) -> np.ndarray:
    """P (d_head, d_head) with W_v P W_o = the rank-r truncation of W_v W_o: P = W_v^+ M_r W_o^+, computed on the
    QR factors (W_v^+ = R_v^+ Q_v^T, W_o^+ = Q_o (R_o^T)^+), so P = R_v^+ C_r (R_o^T)^+ with C_r the core's
    rank-r truncation."""
    _, R_v, _, R_o, U_c, s, Vt_c = _factored_svd(W_v, W_o)
    return np.linalg.pinv(R_v) @ ((U_c[:, :r] * s[:r]) @ Vt_c[:r]) @ np.linalg.pinv(R_o.T)


def _rank_of(ranks: int | None | dict[int, int | None], layer: int) -> int | None:
    return ranks.get(layer) if isinstance(ranks, dict) else ranks


@contextmanager
def rank_truncation(loaded: lm.LoadedModel, r: int | None | dict[int, int | None],
                    heads: Iterable[Head] | None = None) -> Iterator[None]:
    """Within the block, every query head (or those in `heads`) acts through the rank-`r` truncation of its
    value-output map (`truncation_projector`); `r` one rank for every layer, or {layer: rank}; None, or r at or
    above head_dim, leaves a head unchanged (no hook where nothing changes). The projectors are computed in
    float64 from the layer's weights on entering (`layer_head_maps`: offloaded weights are read from their
    store) and applied in each layer's device and dtype."""
    chosen = _check_heads(loaded, all_heads(loaded) if heads is None else heads)
    dh = head_dim(loaded)
    for layer in chosen:
        rank = _rank_of(r, layer)
        if rank is not None and (not isinstance(rank, (int, np.integer)) or rank < 0):
            raise ValueError(f"r = {rank!r} is not allowed: expected None or an integer >= 0")
    todo = {layer: hs for layer, hs in chosen.items() if _rank_of(r, layer) is not None and _rank_of(r, layer) < dh}

    def edit_for(layer: int, hs: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        W_v, W_o, _ = layer_head_maps(loaded, layer)
        P = torch.from_numpy(np.stack([truncation_projector(W_v[h], W_o[h], _rank_of(r, layer)) for h in hs]))
        on: dict[tuple[Any, Any], torch.Tensor] = {}

        def edit(x: torch.Tensor) -> torch.Tensor:
            key = (x.device, x.dtype)
            if key not in on:
                on[key] = P.to(x.device, x.dtype)
            y = x.clone()
            for i, h in enumerate(hs):
                sl = slice(h * dh, (h + 1) * dh)
                y[..., sl] = x[..., sl] @ on[key][i]
            return y
        return edit

    with _o_proj_hooks(loaded, {layer: edit_for(layer, hs) for layer, hs in todo.items()}):
        yield


def layer_head_maps(loaded: lm.LoadedModel, layer: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """`attention_block.head_maps` on any placement: a layer whose weights accelerate offloaded (CPU or disk: they
    sit on the meta device between forward passes) is brought in for the read (`align_module_device`) and put
    back."""
    attn = lm.attention_module(loaded.layers[layer])
    with ExitStack() as stack:
        for name in ("v_proj", "o_proj"):
            module = getattr(attn, name, None)
            if module is not None and any(p.device.type == "meta" for p in module.parameters()):
                from accelerate.utils import align_module_device

                stack.enter_context(align_module_device(module))
        return head_maps(loaded, layer)


def effective_maps(loaded: lm.LoadedModel, layer: int, r: int | None) -> np.ndarray:
    """(n_heads, d_in, d_model): each head's value-output map as `rank_truncation(loaded, r)` leaves it."""
    W_v, W_o, _ = layer_head_maps(loaded, layer)
    if r is None or r >= W_v.shape[-1]:
        return W_v @ W_o
    return np.stack([W_v[h] @ truncation_projector(W_v[h], W_o[h], r) @ W_o[h] for h in range(len(W_v))])


def knob_summary(loaded: lm.LoadedModel) -> dict[str, Any]:
    """What the knobs turn: heads per layer, total heads, head_dim (the largest rank of a head's map)."""
    return {"layers": loaded.n_layers, "heads_per_layer": loaded.n_heads, "heads": loaded.n_layers * loaded.n_heads,
            "kv_heads": loaded.n_kv_heads, "head_dim": head_dim(loaded)}
