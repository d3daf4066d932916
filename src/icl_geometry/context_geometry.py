"""Chapter 4's experiment (paper A, section 3): does added context raise the last layer's intrinsic
dimension, and does that rise predict a correct answer?

One forward pass per group of prompts does everything: hooks keep, per layer, the paper's ID_eps at the
last prompt token (both readings of eq. 8, summed over heads), the TwoNN dimension of the MLP inputs of the
question's own tokens, and the last token's MLP input at a few layers; greedy decoding then reuses the
pass's key-value cache and stops each answer at its first complete line. The k-shot prompts of one question
(k = 1..10, nested shots) share their examples, so they are packed into one sequence under a block
attention mask with each prompt's own position ids: exact, and about 3-4x fewer tokens.

The analysis half works on plain arrays and is tested on synthetic data with known answers: binned
accuracy (the paper's Figs. 6-7), per-layer profiles for correct vs incorrect answers (Fig. 8), and what
the paper does not report: correlations with a bootstrap interval over items, and logistic fits of
correctness on the ID change with their uncertainty. Observations are (item, k) pairs, and the pairs of
one item are not independent, so every interval resamples whole items (a cluster bootstrap).
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from icl_geometry import attention_graph as ag
from icl_geometry import lm
from icl_geometry import tasks
from icl_geometry.stats import item_mean_interval

MEASURES = ("id_abs", "id_rel", "twonn")


# ============================================================================= one pass per prompt

@dataclass
class PromptPass:
    """What `trace_generate` returns for n prompts of a model with L layers."""

    outputs: list[str]
    id_abs: np.ndarray  # (n, L) ID_eps, absolute threshold, summed over heads, last prompt token
    id_rel: np.ndarray  # (n, L) ID_eps, threshold relative to each head's row maximum, summed over heads
    twonn: np.ndarray  # (n, L) TwoNN of the MLP inputs of the prompt's tail tokens (NaN if undefined)
    n_tokens: np.ndarray  # (n,) prompt length in tokens
    n_tail: np.ndarray  # (n,) tail tokens whose MLP inputs form the TwoNN cloud
    last_mlp: np.ndarray  # (n, len(mlp_layers), d_model) float16: the last token's MLP input at mlp_layers
    mlp_layers: tuple[int, ...] = ()
    tokens_fed: int = 0  # token positions the model actually computed (prefill and decoding, padding included)


def _eos_ids(loaded: Any) -> set[int]:
    ids: set[int] = set()
    for v in (getattr(loaded.model.generation_config, "eos_token_id", None), loaded.tokenizer.eos_token_id):
        if v is None:
            continue
        ids.update([v] if isinstance(v, int) else list(v))
    return ids


def tail_lengths(loaded: Any, prompts: Sequence[str], markers: Sequence[str]) -> list[int]:
    """Tokens from the last occurrence of `markers[i]` in prompt i to its end (e.g. from 'Q: <question>')."""
    out = []
    for prompt, marker in zip(prompts, markers, strict=True):
        start = prompt.rfind(marker)
        if start < 0:
            raise ValueError(f"markers: {marker!r} does not occur in the prompt")
        enc = loaded.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        out.append(sum(1 for a, b in enc["offset_mapping"] if b > start))
    return out


def token_cloud_twonn(X: torch.Tensor, discard_fraction: float = 0.1, tol: float = 1e-6) -> np.ndarray:
    """TwoNN (linear fit, largest `discard_fraction` of ratios dropped, as `intrinsic_dim.twonn`) of each
    of a batch of small clouds X (..., n, D), one estimate per leading index; NaN where fewer than 3 points
    have a nonzero nearest-neighbour distance."""
    from icl_geometry.intrinsic_dim import _twonn_from_log_mu

    lead = X.shape[:-2]
    Xf = X.reshape(-1, *X.shape[-2:]).to(torch.float64)
    dist = torch.cdist(Xf, Xf, compute_mode="donot_use_mm_for_euclid_dist")
    dist.diagonal(dim1=-2, dim2=-1).fill_(math.inf)
    r = dist.topk(2, dim=-1, largest=False).values.cpu().numpy()  # (batch, n, 2)
    scale = ((Xf - Xf.mean(-2, keepdim=True)) ** 2).sum(-1).mean(-1).sqrt().cpu().numpy()  # RMS radius
    out = np.full(len(r), np.nan)
    for i, (ri, s) in enumerate(zip(r, scale)):
        ok = ri[:, 0] > tol * max(s, 1e-30)
        if ok.sum() >= 3:
            out[i] = _twonn_from_log_mu(np.log(ri[ok, 1] / ri[ok, 0]), discard_fraction, "linear")
    return out.reshape(lead)


@dataclass
class _Pack:
    """Prompts that share their tail (the question) and whose heads are prefixes of one longest head:
    prompt j = head[:cut_j] + tail. One sequence holds the head once and a copy of the tail per prompt."""

    head: list[int]
    tail: list[int]
    members: list[tuple[int, int]]  # (prompt index, cut_j)

    @property
    def length(self) -> int:  # tokens in the prefill sequence (each tail's last token comes in the first step)
        return len(self.head) + len(self.members) * (len(self.tail) - 1)


def make_packs(ids: Sequence[Sequence[int]], tails: Sequence[int], max_members: int = 16) -> list[_Pack]:
    """Group prompts (token ids) that can share one forward pass: same tail tokens, nested heads.

    k-shot prompts of one question with nested shots (`tasks.choose_shots`) form one pack; a prompt
    that nests with no other is a pack of one. Token ids are compared, so a pack is exact.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (x, t) in enumerate(zip(ids, tails, strict=True)):
        groups.setdefault(tuple(x[len(x) - t:]), []).append(i)
    packs = []
    for tail, members in groups.items():
        left = sorted(members, key=lambda i: -len(ids[i]))
        while left:
            head = list(ids[left[0]][:len(ids[left[0]]) - len(tail)])
            inside, rest = [], []
            for i in left:
                h = ids[i][:len(ids[i]) - len(tail)]
                (inside if len(inside) < max_members and list(h) == head[:len(h)] else rest).append(i)
            packs.append(_Pack(head, list(tail), [(i, len(ids[i]) - len(tail)) for i in inside]))
            left = rest
    return packs


def _sliding_window(loaded: Any) -> int | None:
    cfg = loaded.model.config.get_text_config()
    window = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if window is None or (types is not None and "sliding_attention" not in types):
        return None
    return int(window)


@torch.no_grad()
def trace_generate(loaded: Any, prompts: Sequence[str], tails: Sequence[int], *, eps: float = 0.1,
                   max_new_tokens: int = 16, batch_size: int = 32, batch_tokens: int = 4096,
                   stop: Callable[[str], bool] = tasks.stop_at_newline, mlp_layers: Sequence[int] = (0, -1),
                   pack: bool = True, progress: bool = False) -> PromptPass:
    """Trace and answer prompts in one go: hooks on the forward pass measure every layer at the last prompt
    token, and greedy decoding continues from the same key-value cache. Results are in input order.

    tails[i]: how many final tokens of prompt i (its question) form its TwoNN cloud (>= 3).
    A batch holds at most `batch_size` packs and `batch_tokens` padded token positions (one pack if it is
    longer): short prompts go in large batches, which saves the per-call cost of every decoding step.
    pack=True: prompts that differ only by how many nested shots precede the same question are computed in
    one sequence with a block attention mask and their true position ids, so the shared shots are processed
    once (about 4x fewer tokens for k = 1..10). Each prompt sees exactly its own tokens at their own
    positions, so the result is the unpacked one up to floating-point rounding (`pack=False` checks it; in
    float32 the answers agree, in bfloat16 rounding can flip a near-tied greedy token or a weight at eps).
    Prompts too long for a sliding-window model's window are never packed.
    """
    n, L = len(prompts), loaded.n_layers
    if len(tails) != n:
        raise ValueError(f"tails: expected one length per prompt ({n}), got {len(tails)}")
    if any(int(t) < 3 for t in tails):
        raise ValueError("tails: TwoNN needs at least 3 tail tokens per prompt")
    layers_kept = tuple(sorted({m % L for m in mlp_layers}))
    res = PromptPass([""] * n, np.zeros((n, L), np.int64), np.zeros((n, L), np.int64), np.full((n, L), np.nan),
                     np.zeros(n, np.int64), np.asarray(tails, np.int64),
                     np.zeros((n, len(layers_kept), loaded.d_model), np.float16), layers_kept)
    ids = lm.token_ids(loaded, prompts)
    if any(int(t) > len(x) for t, x in zip(tails, ids)):
        raise ValueError("tails: a tail is longer than its prompt")
    res.n_tokens[:] = [len(x) for x in ids]
    window = _sliding_window(loaded)
    packable = [i for i in range(n) if window is None or len(ids[i]) + max_new_tokens <= window]
    plain = sorted(set(range(n)) - set(packable), key=lambda i: len(ids[i]))
    if pack:
        packs = make_packs([ids[i] for i in packable], [int(tails[i]) for i in packable])
        packs = [_Pack(p.head, p.tail, [(packable[i], c) for i, c in p.members]) for p in packs]
    else:
        packs = [_Pack(ids[i][:len(ids[i]) - int(tails[i])], ids[i][len(ids[i]) - int(tails[i]):],
                       [(i, len(ids[i]) - int(tails[i]))]) for i in packable]
    packs.sort(key=lambda p: p.length)
    jobs: list[tuple[str, Any]] = [("pack", b) for b in _batches(packs, [p.length for p in packs], batch_size, batch_tokens)]
    jobs += [("plain", b) for b in _batches(plain, [len(ids[i]) for i in plain], batch_size, batch_tokens)]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc=f"trace + generate ({loaded.name})", unit="batch")
    for kind, job in jobs:
        if kind == "pack":
            _run_packs(loaded, job, res, eps, max_new_tokens, stop, layers_kept)
        else:
            _pass_chunk(loaded, [prompts[i] for i in job], np.asarray([int(tails[i]) for i in job]),
                        np.asarray(job), res, eps, max_new_tokens, stop, layers_kept)
    return res


def _batches(things: list[Any], lengths: list[int], size: int, tokens: int) -> list[list[Any]]:
    """Consecutive groups of `things` (sorted by length) with <= size members and <= tokens padded positions."""
    out: list[list[Any]] = []
    for thing, n in zip(things, lengths):
        if out and len(out[-1]) < size and (len(out[-1]) + 1) * n <= tokens:
            out[-1].append(thing)
        else:
            out.append([thing])
    return out


def _run_packs(loaded: Any, packs: list[_Pack], res: PromptPass, eps: float, max_new_tokens: int,
               stop: Callable[[str], bool], layers_kept: tuple[int, ...]) -> None:
    """Prefill: heads plus every tail but its last token; step 0: the tails' last tokens (measured);
    steps 1..: greedy decoding, one new token per prompt per step."""
    from transformers import DynamicCache

    dev, dtype = loaded.device, next(loaded.model.parameters()).dtype
    B, J = len(packs), max(len(p.members) for p in packs)
    W = max(p.length for p in packs)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    input_ids = np.full((B, W), pad, np.int64)
    positions = np.zeros((B, W), np.int64)
    allowed = np.zeros((B, W, W), bool)
    step_allowed = np.zeros((B, J, W), bool)  # what each prompt's next query may attend to, prefill columns
    step_ids = np.full((B, J), pad, np.int64)
    step_pos = np.zeros((B, J), np.int64)
    tail_cols = np.zeros((B, J), object)  # prefill columns of each prompt's tail (all but its last token)
    who = np.full((B, J), -1, np.int64)  # prompt index of each (pack, slot); -1: an empty slot
    for b, p in enumerate(packs):
        o, H, T = W - p.length, len(p.head), len(p.tail)
        input_ids[b, o:o + H] = p.head
        positions[b, o:o + H] = np.arange(H)
        allowed[b, o:o + H, o:o + H] = np.tril(np.ones((H, H), bool))
        for j, (i, cut) in enumerate(p.members):
            s = o + H + j * (T - 1)
            cols = np.arange(s, s + T - 1)
            input_ids[b, cols] = p.tail[:-1]
            positions[b, cols] = cut + np.arange(T - 1)
            allowed[b, s:s + T - 1, o:o + cut] = True
            allowed[b, s:s + T - 1, s:s + T - 1] = np.tril(np.ones((T - 1, T - 1), bool))
            step_allowed[b, j, o:o + cut] = True
            step_allowed[b, j, cols] = True
            step_ids[b, j], step_pos[b, j] = p.tail[-1], cut + T - 1
            tail_cols[b, j], who[b, j] = cols, i
        allowed[b, np.arange(o), np.arange(o)] = True  # padding rows see themselves (no all-masked softmax rows)

    def additive(mask: np.ndarray) -> torch.Tensor:
        m = torch.zeros(mask.shape, dtype=dtype)
        m.masked_fill_(~torch.from_numpy(np.ascontiguousarray(mask)), torch.finfo(dtype).min)
        return m[:, None].to(dev)

    bi, ji = np.nonzero(who >= 0)  # live slots; in step 0, slot (b, j) is query j of row b
    idx = who[bi, ji]
    T = np.array([len(packs[b].tail) for b in bi])
    groups = {int(t): np.flatnonzero(T == t) for t in np.unique(T)}
    gather = {t: (torch.from_numpy(bi[sel])[:, None].to(dev),
                  torch.from_numpy(np.stack([tail_cols[bi[s], ji[s]] for s in sel])).to(dev))
              for t, sel in groups.items()}
    tails_x: dict[tuple[int, int], torch.Tensor] = {}

    def keep_tails(layer: int, x: torch.Tensor) -> None:  # prefill: MLP inputs of the tails' tokens
        for t, (rows, cols) in gather.items():
            tails_x[layer, t] = x[rows, cols]

    def measure_mlp(layer: int, x: torch.Tensor) -> None:  # step 0: the last prompt token of each slot
        last = x[torch.from_numpy(bi).to(dev), torch.from_numpy(ji).to(dev)]
        if layer in layers_kept:
            res.last_mlp[idx, layers_kept.index(layer)] = last.float().cpu().numpy().astype(np.float16)
        for t, sel in groups.items():
            cloud = torch.cat([tails_x.pop((layer, t)), last[torch.from_numpy(sel).to(dev), None]], 1)
            res.twonn[idx[sel], layer] = token_cloud_twonn(cloud)

    def measure_attn(layer: int, w: torch.Tensor) -> None:
        rows = w[torch.from_numpy(bi).to(dev), :, torch.from_numpy(ji).to(dev)].float().cpu()  # (n, heads, keys)
        res.id_abs[idx, layer] = ag.id_eps(rows, eps, "absolute", "sum", head_axis=1)
        res.id_rel[idx, layer] = ag.id_eps(rows, eps, "relative", "sum", head_axis=1)

    cache = DynamicCache()  # plain full-attention layers: the block mask decides what each query sees
    res.tokens_fed += B * W
    with lm.layer_hooks(loaded, on_mlp=keep_tails):
        loaded.model(input_ids=torch.from_numpy(input_ids).to(dev), attention_mask=additive(allowed),
                     position_ids=torch.from_numpy(positions).to(dev), past_key_values=cache, use_cache=True,
                     logits_to_keep=1)

    tok, eos = loaded.tokenizer, _eos_ids(loaded)
    new: dict[int, list[int]] = {int(i): [] for i in idx}
    done = who < 0
    mask = step_allowed
    eye = np.broadcast_to(np.eye(J, dtype=bool), (B, J, J))
    for step in range(max_new_tokens):
        mask = np.concatenate([mask, eye], axis=2)  # each query also sees its own earlier queries
        res.tokens_fed += B * J
        with lm.layer_hooks(loaded, measure_mlp, measure_attn) if step == 0 else nullcontext():
            out = loaded.model(input_ids=torch.from_numpy(step_ids).to(dev), attention_mask=additive(mask),
                               position_ids=torch.from_numpy(step_pos).to(dev), past_key_values=cache,
                               use_cache=True)
        nxt = out.logits.argmax(-1).cpu().numpy()  # (B, J)
        for b, j in zip(*np.nonzero(~done)):
            t, i = int(nxt[b, j]), int(who[b, j])
            if t in eos:
                done[b, j] = True
                continue
            new[i].append(t)
            if stop(tok.decode(new[i], skip_special_tokens=True)):
                done[b, j] = True
        if done.all():
            break
        step_ids = np.where(done, pad, nxt)
        step_pos = step_pos + 1
    for i, toks in new.items():
        res.outputs[i] = tok.decode(toks, skip_special_tokens=True)


def _pass_chunk(loaded: Any, prompts: list[str], tails: np.ndarray, idx: np.ndarray, res: PromptPass, eps: float,
                max_new_tokens: int, stop: Callable[[str], bool], layers_kept: tuple[int, ...]) -> None:
    """The unpacked path: one left-padded batch, the model's own masks (sliding windows included)."""
    enc = lm.encode(loaded, prompts)
    mask = enc["attention_mask"]
    B, W = mask.shape
    tail_max = int(tails.max())

    def measure_mlp(layer: int, x: torch.Tensor) -> None:
        tail = x[:, W - tail_max:].float()  # prompt b uses its last tails[b] rows
        for t in np.unique(tails):
            rows = np.flatnonzero(tails == t)
            res.twonn[idx[rows], layer] = token_cloud_twonn(tail[rows, tail_max - t:])
        if layer in layers_kept:
            res.last_mlp[idx, layers_kept.index(layer)] = x[:, -1].float().cpu().numpy().astype(np.float16)

    def measure_attn(layer: int, w: torch.Tensor) -> None:
        rows = w[:, :, -1, :].float().cpu()  # (B, heads, W): padded keys have weight 0
        res.id_abs[idx, layer] = ag.id_eps(rows, eps, "absolute", "sum", head_axis=1)
        res.id_rel[idx, layer] = ag.id_eps(rows, eps, "relative", "sum", head_axis=1)

    with lm.layer_hooks(loaded, measure_mlp, measure_attn):
        out = loaded.model(**enc, use_cache=True, logits_to_keep=1)
    texts, steps = _greedy_continue(loaded, out, mask, enc["position_ids"], max_new_tokens, stop)
    res.tokens_fed += B * (W + steps)
    for i, text in zip(idx, texts):
        res.outputs[i] = text


def _greedy_continue(loaded: Any, out: Any, mask: torch.Tensor, position_ids: torch.Tensor, max_new_tokens: int,
                     stop: Callable[[str], bool]) -> tuple[list[str], int]:
    """Greedy decoding from a prefill output; a sequence stops at an EOS token or when `stop(text)`.
    Returns the texts and the number of decoding forward passes."""
    tok = loaded.tokenizer
    eos = _eos_ids(loaded)
    B = mask.shape[0]
    cache = out.past_key_values
    pos = position_ids[:, -1:]
    new: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    nxt = out.logits[:, -1].argmax(-1)
    steps = 0
    for step in range(max_new_tokens):
        for b in range(B):
            if done[b]:
                continue
            t = int(nxt[b])
            if t in eos:
                done[b] = True
                continue
            new[b].append(t)
            if stop(tok.decode(new[b], skip_special_tokens=True)):
                done[b] = True
        if all(done) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
        pos = pos + 1
        step_ids = torch.where(torch.tensor(done, device=nxt.device), tok.pad_token_id, nxt)[:, None]
        out = loaded.model(input_ids=step_ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                           use_cache=True, logits_to_keep=1)
        steps += 1
        cache = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1)
    return [tok.decode(ids, skip_special_tokens=True) for ids in new], steps


# ============================================================================= the experiment

def question_marker(item: tasks.Item) -> str:
    """Where a prompt's tail (its TwoNN cloud) starts: the question line, the same text in every prompt."""
    return f"Q: {item.question}"


def prompts_for(loaded: Any, items: Sequence[tasks.Item], pools: dict[str, Sequence[tasks.Item]],
                indices: Sequence[int], k: int, context: str = "shots", seed: int = 0,
                chat_style: str = "multi_turn") -> list[str]:
    """k-shot prompts (`tasks.format_prompt`) whose shots come from each item's own family pool, chosen
    by `tasks.choose_shots` with the item's stable index, so the shots are nested in k."""
    return [tasks.format_prompt(loaded, it, tasks.choose_shots(pools[it.family], k, seed, i), context, seed,
                                chat_style) for it, i in zip(items, indices, strict=True)]


def answer(loaded: Any, items: Sequence[tasks.Item], prompts: Sequence[str], **kwargs: Any) -> tuple[PromptPass, np.ndarray]:
    """`trace_generate` on prompts whose tails are the items' questions; returns the pass and correctness."""
    tails = tail_lengths(loaded, prompts, [question_marker(it) for it in items])
    res = trace_generate(loaded, prompts, tails, **kwargs)
    return res, np.array([tasks.is_correct(it, o) for it, o in zip(items, res.outputs)])


@dataclass
class ContextRun:
    """Everything chapter 4 measures for one model: the 0-shot candidates, the base set (items wrong at
    0 shots), and one row per (base item, context, k) with correctness and per-layer measures."""

    model: str
    n_layers: int
    eps: float
    candidates: Any  # DataFrame: family, index, question, answer, output, correct (0 shots)
    items: list[tasks.Item]  # the base set
    rows: Any  # DataFrame: item, family, context, k, correct, output, n_tokens
    values: dict[str, np.ndarray]  # measure -> (n_rows, n_layers)
    zero: dict[str, np.ndarray]  # measure -> (n_items, n_layers), the base items at 0 shots
    last_mlp: np.ndarray  # (n_rows, len(mlp_layers), d_model) float16
    zero_last_mlp: np.ndarray  # (n_items, len(mlp_layers), d_model)
    mlp_layers: tuple[int, ...]
    tokens_fed: int = 0  # token positions computed, both passes (packing makes this far less than prompt_tokens)
    prompt_tokens: int = 0  # the prompts' lengths summed: what unpacked passes would compute, decoding aside
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of the 0-shot pass and the context pass

    def delta(self, measure: str) -> np.ndarray:
        """(n_rows, n_layers): each row's value minus its item's 0-shot value (the paper's 'ID change')."""
        if measure not in self.values:
            raise ValueError(f"measure = {measure!r} is not allowed: expected one of {list(self.values)}")
        return self.values[measure] - self.zero[measure][self.rows["item"].to_numpy()]

    def mask(self, context: str | None = None) -> np.ndarray:
        return np.ones(len(self.rows), bool) if context is None else (self.rows["context"] == context).to_numpy()


def _interleave(groups: list[list[int]]) -> list[int]:
    out, i = [], 0
    while any(i < len(g) for g in groups):
        out += [g[i] for g in groups if i < len(g)]
        i += 1
    return out


def run_experiment(loaded: Any, families: Sequence[str], n_candidates: int, shots: Sequence[int],
                   perturbed_shots: Sequence[int] = (), n_base: int | None = None,
                   contexts: Sequence[str] = tasks.CONTEXTS, seed: int = 0, n_pool: int = 20, eps: float = 0.1,
                   batch_size: int = 32, batch_tokens: int = 4096, max_new_tokens: int = 16, chat_style: str = "multi_turn",
                   mlp_layers: Sequence[int] = (0, -1), progress: bool = False) -> ContextRun:
    """Paper A's section-3 experiment on `loaded`.

    1. `n_candidates` test items per family (fewer if a family has fewer), answered at 0 shots; the base set is the items answered wrongly
       (at most `n_base`, families interleaved). 2. Each base item with k shots for k in `shots`
       (context 'shots'), and with random tokens or shuffled shot text of the same length for k in
       `perturbed_shots`. Every prompt is traced at every layer and answered greedily in the same pass.
    """
    import pandas as pd

    for c in contexts:
        if c not in tasks.CONTEXTS:
            raise ValueError(f"contexts: {c!r} is not allowed: expected some of {list(tasks.CONTEXTS)}")
    ks_all = [k for k in (*shots, *perturbed_shots)]
    if any(k < 1 for k in ks_all):
        raise ValueError("shots and perturbed_shots: every k must be >= 1 (0 shots is the baseline)")
    if ks_all and max(ks_all) > n_pool:
        raise ValueError(f"n_pool = {n_pool} is smaller than the largest k ({max(ks_all)})")
    kw = dict(eps=eps, batch_size=batch_size, batch_tokens=batch_tokens, max_new_tokens=max_new_tokens,
              mlp_layers=mlp_layers, progress=progress)
    pools, cand, cand_idx = {}, [], []
    for fam in families:
        test, pool = tasks.split(fam, n_candidates, n_pool, seed=seed, strict=False)
        pools[fam] = pool
        cand += test
        cand_idx += list(range(len(test)))
    zero_prompts = prompts_for(loaded, cand, pools, cand_idx, 0, "shots", seed, chat_style)
    t0 = time.perf_counter()
    res0, correct0 = answer(loaded, cand, zero_prompts, **kw)
    t1 = time.perf_counter()
    candidates = pd.DataFrame({"family": [it.family for it in cand], "index": cand_idx,
                               "question": [it.question for it in cand], "answer": [it.answer for it in cand],
                               "output": res0.outputs, "correct": correct0})
    base = _interleave([[i for i in range(len(cand)) if cand[i].family == f and not correct0[i]] for f in families])
    base = base[:n_base] if n_base is not None else base
    items = [cand[i] for i in base]

    spec = [(b, c, k) for b in range(len(base)) for c in contexts
            for k in (shots if c == "shots" else perturbed_shots)]
    prompts = [prompts_for(loaded, [items[b]], pools, [cand_idx[base[b]]], k, c, seed, chat_style)[0]
               for b, c, k in spec]
    res, correct = answer(loaded, [items[b] for b, _, _ in spec], prompts, **kw) if spec else (None, np.zeros(0, bool))
    t2 = time.perf_counter()
    rows = pd.DataFrame({"item": [b for b, _, _ in spec], "family": [items[b].family for b, _, _ in spec],
                         "context": [c for _, c, _ in spec], "k": [k for _, _, k in spec], "correct": correct,
                         "output": res.outputs if res else [], "n_tokens": res.n_tokens if res else []})
    L = loaded.n_layers
    values = {m: getattr(res, m) if res else np.zeros((0, L)) for m in MEASURES}
    zero = {m: getattr(res0, m)[base] for m in MEASURES}
    return ContextRun(loaded.name, L, eps, candidates, items, rows, values, zero,
                      res.last_mlp if res else np.zeros((0, len(res0.mlp_layers), loaded.d_model), np.float16),
                      res0.last_mlp[base], res0.mlp_layers, res0.tokens_fed + (res.tokens_fed if res else 0),
                      int(res0.n_tokens.sum() + (res.n_tokens.sum() if res else 0)),
                      {"zero_shot_pass": t1 - t0, "context_pass": t2 - t1})


def parse_families(value: Any) -> tuple[str, ...]:
    """The chapter's `families` parameter: comma-separated names of `tasks.FAMILIES`, validated."""
    names = tuple(v.strip() for v in str(value).split(",") if v.strip()) if isinstance(value, str) else ()
    bad = [v for v in names if v not in tasks.FAMILIES]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"Parameter 'families' = {value!r} is not allowed: expected distinct comma-separated "
                         f"names from {list(tasks.FAMILIES)}.")
    return names


# ============================================================================= chapter-level summaries

def context_contrast(run: ContextRun, values: np.ndarray, a: str, b: str, n_boot: int = 1000, level: float = 0.9,
                     seed: int = 0) -> tuple[float, tuple[float, float], int]:
    """Mean of values[context a] - values[context b] over the (item, k) pairs both contexts have, averaged
    within items first, with a bootstrap interval over items. Returns (mean, interval, n_items)."""
    r = run.rows
    key = list(zip(r["item"], r["k"]))
    va = {kk: v for kk, v, m in zip(key, values, run.mask(a)) if m}
    vb = {kk: v for kk, v, m in zip(key, values, run.mask(b)) if m}
    both = sorted(set(va) & set(vb))
    if not both:
        raise ValueError(f"context_contrast: contexts {a!r} and {b!r} share no (item, k) pair")
    diffs = [float(va[pair]) - float(vb[pair]) for pair in both]
    return item_mean_interval(diffs, [item for item, _ in both], n_boot=n_boot, level=level, seed=seed)
