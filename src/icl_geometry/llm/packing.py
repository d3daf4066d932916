"""Trace and answer many prompts in one go (`trace_generate`): hooks on the forward pass measure every layer
at the last prompt token, and greedy decoding (`engine.greedy`) continues from the same key-value cache.

Per prompt and layer it keeps the paper's ID_eps at the last prompt token (both readings of eq. 8, summed
over heads), the TwoNN dimension of the MLP inputs of the prompt's tail tokens (its question), and the last
token's MLP input at a few layers. Prompts that differ only by how many nested examples precede the same
question (k-shot prompts of one question, k = 1..10) are packed into one sequence under a block attention
mask with each prompt's own position ids: exact, and about 3-4x fewer tokens. Candidate answers (constrained
choice) are scored on the same key-value cache, and every forward whose attention weights are not read runs SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from icl_geometry.core import attention_graph as ag
from icl_geometry.core.intrinsic_dim import twonn_clouds
from icl_geometry.llm.engine import (Stop, add_logprobs, batches, continue_greedy, greedy, pad_id, progress_bar,
                                     score_candidates)
from icl_geometry.llm.lm import (LoadedModel, attention_implementation, encode, layer_hooks, sliding_window,
                                 token_ids)

Choices = Sequence[Sequence[Sequence[int]]]  # per prompt, each candidate's token ids after the prompt


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
    tokens_fed: int = 0  # token positions the model computed (prefill, decoding, candidates; padding included)
    choice_scores: list[np.ndarray] | None = None  # per prompt, each candidate's summed log-probability (float64)


def tail_lengths(loaded: LoadedModel, prompts: Sequence[str], markers: Sequence[str]) -> list[int]:
    """Tokens from the last occurrence of `markers[i]` in prompt i to its end (e.g. from 'Q: <question>')."""
    out = []
    for prompt, marker in zip(prompts, markers, strict=True):
        start = prompt.rfind(marker)
        if start < 0:
            raise ValueError(f"markers: {marker!r} does not occur in the prompt")
        enc = loaded.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        out.append(sum(1 for a, b in enc["offset_mapping"] if b > start))
    return out


@dataclass
class Pack:
    """Prompts that share their tail (the question) and whose heads are prefixes of one longest head:
    prompt j = head[:cut_j] + tail. One sequence holds the head once and a copy of the tail per prompt."""

    head: list[int]
    tail: list[int]
    members: list[tuple[int, int]]  # (prompt index, cut_j)

    @property
    def length(self) -> int:  # tokens in the prefill sequence (each tail's last token comes in the first step)
        return len(self.head) + len(self.members) * (len(self.tail) - 1)


def make_packs(ids: Sequence[Sequence[int]], tails: Sequence[int], max_members: int = 16) -> list[Pack]:
    """Group prompts (token ids) that can share one forward pass: same tail tokens, nested heads.

    k-shot prompts of one question with nested shots (`tasks.choose_examples`) form one pack; a prompt
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
            packs.append(Pack(head, list(tail), [(i, len(ids[i]) - len(tail)) for i in inside]))
            left = rest
    return packs


def pack_batches(packs: Sequence[Pack], batch_size: int, batch_tokens: int) -> list[list[Pack]]:
    """`engine.batches` of packs, shortest first, each batch holding packs of about as many prompts (1, 2-3, 4-7,
    8-15, 16): a decoding step computes one query per slot of its batch's largest pack, so a pack of one beside
    a pack of ten would cost ten (chapter 4's full run mixes one nested pack of ten with single prompts)."""
    out: list[list[Pack]] = []
    for size in sorted({len(p.members).bit_length() for p in packs}):
        same = sorted((p for p in packs if len(p.members).bit_length() == size), key=lambda p: p.length)
        out += batches(same, [p.length for p in same], batch_size, batch_tokens)
    return out


@torch.no_grad()
def trace_generate(loaded: LoadedModel, prompts: Sequence[str], tails: Sequence[int], *, eps: float = 0.1,
                   max_new_tokens: int = 16, batch_size: int = 32, batch_tokens: int = 4096,
                   stop: Stop | None = None, mlp_layers: Sequence[int] = (0, -1), choices: Choices | None = None,
                   pack: bool = True, sdpa: bool = True, progress: bool = False) -> PromptPass:
    """Trace and answer prompts in one go; results are in input order.

    tails[i]: how many final tokens of prompt i (its question) form its TwoNN cloud (>= 3).
    A batch holds at most `batch_size` packs and `batch_tokens` padded token positions (one pack if it is
    longer): short prompts go in large batches, which saves the per-call cost of every decoding step; packs
    go with packs of about as many prompts (`pack_batches`).
    An answer ends at EOS, after `max_new_tokens`, or once `stop(text)` holds (`tasks.stop_at_newline`).
    pack=True: prompts that differ only by how many nested shots precede the same question are computed in
    one sequence with a block attention mask and their true position ids, so the shared shots are processed
    once (about 4x fewer tokens for k = 1..10). Each prompt sees exactly its own tokens at their own
    positions, so the result is the unpacked one up to floating-point rounding (`pack=False` checks it; in
    float32 the answers agree, in bfloat16 rounding can flip a near-tied greedy token or a weight at eps).
    Prompts too long for a sliding-window model's window are never packed.

    choices[i] (optional): candidate continuations of prompt i as token ids after its tokens
    (`engine.choice_token_ids`); their summed log-probabilities (`engine.score_choices`' numbers, up to
    rounding) come back in `choice_scores`, computed on the answer pass's key-value cache instead of a second
    prefill. sdpa=True: only the forward whose attention weights are measured runs eager attention; the
    prefill, decoding and candidates run SDPA (faster; the same up to rounding; False runs all of it eager).
    """
    n, L = len(prompts), loaded.n_layers
    if len(tails) != n:
        raise ValueError(f"tails: expected one length per prompt ({n}), got {len(tails)}")
    if any(int(t) < 3 for t in tails):
        raise ValueError("tails: TwoNN needs at least 3 tail tokens per prompt")
    if choices is not None and (len(choices) != n or any(len(c) == 0 or any(len(t) == 0 for t in c)
                                                         for c in choices)):
        raise ValueError(f"choices: expected one non-empty list of non-empty token-id lists per prompt ({n})")
    layers_kept = tuple(sorted({m % L for m in mlp_layers}))
    res = PromptPass([""] * n, np.zeros((n, L), np.int64), np.zeros((n, L), np.int64), np.full((n, L), np.nan),
                     np.zeros(n, np.int64), np.asarray(tails, np.int64),
                     np.zeros((n, len(layers_kept), loaded.d_model), np.float16), layers_kept)
    cands = [[list(map(int, t)) for t in c] for c in choices] if choices is not None else None
    if cands is not None:
        res.choice_scores = [np.zeros(len(c)) for c in cands]
    ids = token_ids(loaded, prompts)
    if any(int(t) > len(x) for t, x in zip(tails, ids)):
        raise ValueError("tails: a tail is longer than its prompt")
    res.n_tokens[:] = [len(x) for x in ids]
    window = sliding_window(loaded)
    extra = [max(max_new_tokens, max(len(t) for t in cands[i]) if cands else 0) for i in range(n)]
    packable = [i for i in range(n) if window is None or len(ids[i]) + extra[i] <= window]
    plain = sorted(set(range(n)) - set(packable), key=lambda i: len(ids[i]))
    if pack:
        packs = make_packs([ids[i] for i in packable], [int(tails[i]) for i in packable])
        packs = [Pack(p.head, p.tail, [(packable[i], c) for i, c in p.members]) for p in packs]
    else:
        packs = [Pack(ids[i][:len(ids[i]) - int(tails[i])], ids[i][len(ids[i]) - int(tails[i]):],
                      [(i, len(ids[i]) - int(tails[i]))]) for i in packable]
    jobs: list[tuple[str, Any]] = [("pack", b) for b in pack_batches(packs, batch_size, batch_tokens)]
    jobs += [("plain", b) for b in batches(plain, [len(ids[i]) for i in plain], batch_size, batch_tokens)]
    with attention_implementation(loaded, "sdpa" if sdpa else "eager"):
        for kind, job in progress_bar(jobs, progress, f"trace + generate ({loaded.name})"):
            if kind == "pack":
                _run_packs(loaded, job, res, eps, max_new_tokens, stop, layers_kept, cands)
            else:
                _run_plain(loaded, [prompts[i] for i in job], np.asarray([int(tails[i]) for i in job]),
                           np.asarray(job), res, eps, max_new_tokens, stop, layers_kept, cands)
    return res


def _measure_attention(res: PromptPass, idx: np.ndarray, layer: int, rows: torch.Tensor, eps: float) -> None:
    """rows (n, heads, keys): the last prompt token's attention weights of prompts idx at one layer."""
    res.id_abs[idx, layer] = ag.id_eps(rows, eps, "absolute", "sum", head_axis=1)
    res.id_rel[idx, layer] = ag.id_eps(rows, eps, "relative", "sum", head_axis=1)


def _additive(mask: np.ndarray, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """A boolean (B, queries, keys) mask as the 4D additive float mask the model takes (0 or dtype's min: finite,
    so a masked key never turns a row into NaN)."""
    m = torch.zeros(mask.shape, dtype=dtype)
    m.masked_fill_(~torch.from_numpy(np.ascontiguousarray(mask)), torch.finfo(dtype).min)
    return m[:, None].to(device)


def _run_packs(loaded: LoadedModel, packs: list[Pack], res: PromptPass, eps: float, max_new_tokens: int,
               stop: Stop | None, layers_kept: tuple[int, ...], cands: list[list[list[int]]] | None) -> None:
    """Prefill: heads plus every tail but its last token; step 0: the tails' last tokens (measured), whose
    logits start `engine.greedy` (and score the candidates' first tokens); each later step feeds one new token
    per prompt."""
    from transformers import DynamicCache

    dev, dtype = loaded.device, next(loaded.model.parameters()).dtype
    B, J = len(packs), max(len(p.members) for p in packs)
    W = max(p.length for p in packs)
    pad = pad_id(loaded)
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

    bi, ji = np.nonzero(who >= 0)  # live slots, row-major; in step 0, slot (b, j) is query j of row b
    idx = who[bi, ji]
    live = torch.from_numpy(who >= 0)  # logits_to_keep: the live slots' logits, in the order of (bi, ji)
    live_b, live_j = torch.from_numpy(bi), torch.from_numpy(ji)
    T = np.array([len(packs[b].tail) for b in bi])
    groups = {int(t): np.flatnonzero(T == t) for t in np.unique(T)}
    gather = {t: (torch.from_numpy(bi[sel])[:, None],
                  torch.from_numpy(np.stack([tail_cols[bi[s], ji[s]] for s in sel]))) for t, sel in groups.items()}
    tails_x: dict[tuple[int, int], torch.Tensor] = {}

    def keep_tails(layer: int, x: torch.Tensor) -> None:  # prefill: MLP inputs of the tails' tokens
        for t, (rows, cols) in gather.items():
            tails_x[layer, t] = x[rows.to(x.device), cols.to(x.device)]

    def measure_mlp(layer: int, x: torch.Tensor) -> None:  # step 0: the last prompt token of each slot
        last = x[live_b.to(x.device), live_j.to(x.device)]
        if layer in layers_kept:
            res.last_mlp[idx, layers_kept.index(layer)] = last.float().cpu().numpy().astype(np.float16)
        for t, sel in groups.items():
            prev = tails_x.pop((layer, t))
            cloud = torch.cat([prev, last[torch.from_numpy(sel).to(x.device), None].to(prev.device)], 1)
            res.twonn[idx[sel], layer] = twonn_clouds(cloud)

    def measure_attn(layer: int, w: torch.Tensor) -> None:
        _measure_attention(res, idx, layer, w[live_b.to(w.device), :, live_j.to(w.device)].float().cpu(), eps)

    cache = DynamicCache()  # plain full-attention layers: the block mask decides what each query sees
    res.tokens_fed += B * W
    with layer_hooks(loaded, on_mlp=keep_tails):
        loaded.model(input_ids=torch.from_numpy(input_ids).to(dev), attention_mask=_additive(allowed, dtype, dev),
                     position_ids=torch.from_numpy(positions).to(dev), past_key_values=cache, use_cache=True,
                     logits_to_keep=1)

    eye = np.broadcast_to(np.eye(J, dtype=bool), (B, J, J))
    state = {"mask": step_allowed, "pos": step_pos}

    def forward(ids: np.ndarray) -> torch.Tensor:  # one query per slot; logits of the live slots
        state["mask"] = np.concatenate([state["mask"], eye], axis=2)  # each query also sees its earlier ones
        res.tokens_fed += B * J
        out = loaded.model(input_ids=torch.from_numpy(ids).to(dev), attention_mask=_additive(state["mask"], dtype, dev),
                           position_ids=torch.from_numpy(state["pos"]).to(dev), past_key_values=cache,
                           use_cache=True, logits_to_keep=live.to(dev))
        return out.logits

    def step(ids: torch.Tensor) -> torch.Tensor:
        state["pos"] = state["pos"] + 1
        grid = np.full((B, J), pad, np.int64)
        grid[bi, ji] = ids.numpy()
        return forward(grid)

    with layer_hooks(loaded, measure_mlp, measure_attn):
        first = forward(step_ids)
    if cands is not None:
        scores = [res.choice_scores[i] for i in idx]
        res.tokens_fed += _score_packed(loaded, cache, first, state["mask"], step_pos, bi, ji,
                                        [cands[i] for i in idx], scores)
    texts, _ = greedy(loaded, first, step, max_new_tokens, stop)
    for i, text in zip(idx, texts):
        res.outputs[i] = text


def _score_packed(loaded: LoadedModel, cache: Any, first: torch.Tensor, seen: np.ndarray, last_pos: np.ndarray,
                  bi: np.ndarray, ji: np.ndarray, cands: list[list[list[int]]], scores: list[np.ndarray],
                  max_logits: int = 1 << 26) -> int:
    """Add each live slot's candidate log-probabilities to `scores` (slot s = (bi[s], ji[s])); returns the token
    positions fed. first (slots, vocab): the step-0 logits, which score every first token. The candidates'
    other tokens (all but the last) go in one block of columns per pack row, on the cache after step 0: each
    sees what its slot's step-0 query saw (`seen` (B, J, C): its prompt columns and its own step-0 column) and
    its candidate's earlier tokens, at its true positions (`last_pos`: each slot's last prompt position). The
    block runs in column chunks that keep at most `max_logits` logits; the cache is cropped back after."""
    dev, dtype = loaded.device, next(loaded.model.parameters()).dtype
    owners = [(s, c) for s, cs in enumerate(cands) for c in range(len(cs))]
    add_logprobs(first[[s for s, _ in owners]], [cands[s][c][0] for s, c in owners], owners, scores)
    B, _, C = seen.shape
    fill = np.zeros(B, np.int64)
    entries = []  # (row, column, slot j, candidate start column, token, position, target, owner); row-major
    for s, (b, j) in enumerate(zip(bi, ji)):
        for c, t in enumerate(cands[s]):
            start = fill[b]
            for m in range(len(t) - 1):
                entries.append((b, fill[b], j, start, t[m], last_pos[b, j] + 1 + m, t[m + 1], (s, c)))
                fill[b] += 1
    Q = int(fill.max())
    if Q == 0:
        return 0
    ids = np.full((B, Q), pad_id(loaded), np.int64)
    pos = np.zeros((B, Q), np.int64)
    mask = np.zeros((B, Q, C + Q), bool)
    mask[:, np.arange(Q), C + np.arange(Q)] = True  # each column sees itself (padding columns: no empty rows)
    keep = np.zeros((B, Q), bool)
    for b, q, j, start, tok, p, _, _ in entries:
        ids[b, q], pos[b, q], keep[b, q] = tok, p, True
        mask[b, q, :C] = seen[b, j]
        mask[b, q, C + start:C + q] = True
    vocab = loaded.model.config.get_text_config().vocab_size
    width = max(1, max_logits // (B * vocab))
    for lo in range(0, Q, width):
        hi = min(Q, lo + width)
        out = loaded.model(input_ids=torch.from_numpy(ids[:, lo:hi]).to(dev),
                           attention_mask=_additive(mask[:, lo:hi, :C + hi], dtype, dev),
                           position_ids=torch.from_numpy(pos[:, lo:hi]).to(dev), past_key_values=cache,
                           use_cache=True, logits_to_keep=torch.from_numpy(keep[:, lo:hi]).to(dev))
        part = [e for e in entries if lo <= e[1] < hi]  # row-major, as logits_to_keep orders the logits
        add_logprobs(out.logits, [e[6] for e in part], [e[7] for e in part], scores)
    cache.crop(-Q)
    return B * Q


def _run_plain(loaded: LoadedModel, prompts: list[str], tails: np.ndarray, idx: np.ndarray, res: PromptPass,
               eps: float, max_new_tokens: int, stop: Stop | None, layers_kept: tuple[int, ...],
               cands: list[list[list[int]]] | None) -> None:
    """The unpacked path: one left-padded batch, the model's own masks (sliding windows included); candidates
    run on a copy of the prefill's cache (`engine.score_candidates`)."""
    import copy

    enc = encode(loaded, prompts)
    mask = enc["attention_mask"]
    B, W = mask.shape
    tail_max = int(tails.max())

    def measure_mlp(layer: int, x: torch.Tensor) -> None:
        tail = x[:, W - tail_max:].float()  # prompt b uses its last tails[b] rows
        for t in np.unique(tails):
            rows = np.flatnonzero(tails == t)
            res.twonn[idx[rows], layer] = twonn_clouds(tail[torch.from_numpy(rows).to(x.device), tail_max - t:])
        if layer in layers_kept:
            res.last_mlp[idx, layers_kept.index(layer)] = x[:, -1].float().cpu().numpy().astype(np.float16)

    def measure_attn(layer: int, w: torch.Tensor) -> None:
        _measure_attention(res, idx, layer, w[:, :, -1, :].float().cpu(), eps)  # padded keys have weight 0

    with layer_hooks(loaded, measure_mlp, measure_attn):
        out = loaded.model(**enc, use_cache=True, logits_to_keep=1)
    if cands is not None:
        mine = [cands[i] for i in idx]
        score_candidates(loaded, out.logits[:, -1], copy.deepcopy(out.past_key_values), mask,
                         enc["position_ids"][:, -1], mine, [res.choice_scores[i] for i in idx])
        res.tokens_fed += B * max(len(c) for c in mine) * (max(len(t) for c in mine for t in c) - 1)
    texts, steps = continue_greedy(loaded, out, mask, enc["position_ids"], max_new_tokens, stop)
    res.tokens_fed += B * (W + steps)
    for i, text in zip(idx, texts):
        res.outputs[i] = text
