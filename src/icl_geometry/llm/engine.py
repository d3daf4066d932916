"""The one way prompts go through a language model: traced forward passes (`trace`, `trace_batch`: per layer,
the MLP input and the attention rows of chosen positions), greedy answers (`generate`) and the log-probability
of candidate answers (`score_choices`).

Every path that answers decodes with the same greedy loop, `greedy`; the packed pass of chapter 4
(`icl_geometry.llm.packing.trace_generate`) uses it too, and reads candidates' log-probabilities with the same
`add_logprobs`. Batches are formed by `batches`: prompts sorted by length, at most `batch_size` per forward
pass and at most `batch_tokens` padded token positions.

Sharded models (accelerate's `device_map`, see `lm.load`) work unchanged: inputs go to `loaded.device` (the
input embedding's), and a hooked tensor is always indexed with index tensors moved to that tensor's device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from icl_geometry.llm.lm import LoadedModel, encode, layer_hooks, sliding_window, token_ids

Stop = Callable[[str], bool]


# ============================================================================= traces

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


def progress_bar(items: Any, show: bool, desc: str, unit: str = "batch") -> Any:
    """`items`, wrapped in a tqdm progress bar when `show`."""
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit)


@torch.no_grad()
def trace_batch(loaded: LoadedModel, prompts: Sequence[str], positions: Sequence[int] = (-1,),
                full_attention: bool = False, batch_size: int = 8,
                progress: bool = False, last_logits_only: bool = False) -> list[Trace]:
    """Trace several prompts in left-padded batches of `batch_size` (in input order); the same result as
    `trace` on each, faster. `last_logits_only=True` computes the output head at the last token only
    (`logits_to_keep=1`: much cheaper for large vocabularies; the last logits agree to round-off, not bit
    for bit)."""
    if isinstance(prompts, str):
        raise ValueError("prompts: expected a sequence of strings; use trace() for one prompt")
    if len(positions) == 0:
        raise ValueError("positions: expected at least one token position, e.g. (-1,) for the last token")
    chunks = [list(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)]
    traces: list[Trace] = []
    for chunk in progress_bar(chunks, progress, f"tracing {loaded.name}"):
        traces.extend(_trace_chunk(loaded, chunk, list(positions), full_attention, last_logits_only))
    return traces


def trace(loaded: LoadedModel, prompt: str, positions: Sequence[int] = (-1,),
          full_attention: bool = False) -> Trace:
    """One forward pass; per layer, the MLP input and the attention rows of `positions` (default: last token).

    Full T x T attention maps are kept only with `full_attention=True`.
    """
    return trace_batch(loaded, [prompt], positions, full_attention=full_attention)[0]


def _trace_chunk(loaded: LoadedModel, prompts: list[str], positions: list[int],
                 full_attention: bool, last_logits_only: bool = False) -> list[Trace]:
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
        mlp_in.append(x[rows_index.to(x.device), cols.to(x.device)].float().cpu())

    def on_attn(_layer: int, w: torch.Tensor) -> None:
        att_rows.append(w[rows_index.to(w.device), :, cols.to(w.device)].float().cpu())  # (B, P, H, W)
        if full_attention:
            att_full.append(w.float().cpu())

    with layer_hooks(loaded, on_mlp, on_attn):
        keep = {"logits_to_keep": 1} if last_logits_only else {}
        out = loaded.model(**enc, use_cache=False, **keep)  # by default all positions' logits: bit-identical

    logits = out.logits[:, -1].float().cpu()
    mlp = torch.stack(mlp_in, dim=1)  # (B, L, P, D)
    rows = torch.stack(att_rows, dim=1).permute(0, 1, 3, 2, 4)  # (B, L, H, P, W)
    full_maps = torch.stack(att_full, 1) if full_attention else None
    ids = enc["input_ids"].cpu()
    traces = []
    for b, prompt in enumerate(prompts):
        start = width - lengths[b]
        tids = ids[b, start:].tolist()
        full = full_maps[b, :, :, start:, start:].contiguous() if full_maps is not None else None
        traces.append(Trace(
            prompt=prompt, token_ids=tids, tokens=loaded.tokenizer.convert_ids_to_tokens(tids),
            positions=resolved[b], mlp_inputs=mlp[b].contiguous(), attention_rows=rows[b, ..., start:].contiguous(),
            logits=logits[b], attention=full))
    return traces


# ============================================================================= batching and greedy decoding

def batches(things: Sequence[Any], lengths: Sequence[int], size: int, tokens: int) -> list[list[Any]]:
    """Consecutive groups of `things` (sorted by length, ascending) with at most `size` members and at most
    `tokens` padded token positions (members x longest); a thing longer than `tokens` forms a group alone."""
    out: list[list[Any]] = []
    longest = 0
    for thing, n in zip(things, lengths, strict=True):
        if out and len(out[-1]) < size and (len(out[-1]) + 1) * max(longest, n) <= tokens:
            out[-1].append(thing)
            longest = max(longest, n)
        else:
            out.append([thing])
            longest = n
    return out


def length_batches(loaded: LoadedModel, texts: Sequence[str], batch_size: int,
                   batch_tokens: int) -> tuple[list[int], list[list[int]]]:
    """The prompts' token counts, and batches of their indices formed by `batches` (shortest first)."""
    lengths = [len(x) for x in token_ids(loaded, texts)]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    return lengths, batches(order, [lengths[i] for i in order], batch_size, batch_tokens)


def eos_ids(loaded: LoadedModel) -> set[int]:
    """Token ids that end an answer: the generation config's EOS ids and the tokenizer's."""
    ids: set[int] = set()
    for v in (getattr(loaded.model.generation_config, "eos_token_id", None), loaded.tokenizer.eos_token_id):
        if v is None:
            continue
        ids.update([v] if isinstance(v, int) else list(v))
    return ids


def pad_id(loaded: LoadedModel) -> int:
    """The id fed where there is no token (left padding, finished answers): pad, else EOS, else 0."""
    tok = loaded.tokenizer
    for v in (tok.pad_token_id, tok.eos_token_id):
        if v is not None:
            return int(v)
    return 0


def greedy(loaded: LoadedModel, logits: torch.Tensor, step: Callable[[torch.Tensor], torch.Tensor],
           max_new_tokens: int, stop: Stop | None = None) -> tuple[list[str], int]:
    """The greedy decoding loop every answering path uses.

    logits (n, vocab): the next-token logits of n sequences after their prompts. `step(ids)` feeds one token
    per sequence (a LongTensor (n,) on the CPU; finished sequences get the pad id) and returns the next
    logits (n, vocab). A sequence ends at an EOS token (not part of its text), when `stop(text)` is true, or
    after `max_new_tokens` tokens. Returns the decoded texts and the number of `step` calls.
    """
    tok, eos, pad = loaded.tokenizer, eos_ids(loaded), pad_id(loaded)
    n = logits.shape[0]
    new: list[list[int]] = [[] for _ in range(n)]
    done = np.zeros(n, bool)
    nxt = logits.argmax(-1).cpu()
    steps = 0
    for i_step in range(max_new_tokens):
        for i in np.flatnonzero(~done):
            t = int(nxt[i])
            if t in eos:
                done[i] = True
                continue
            new[i].append(t)
            if stop is not None and stop(tok.decode(new[i], skip_special_tokens=True)):
                done[i] = True
        if done.all() or i_step == max_new_tokens - 1:
            break
        nxt = step(torch.where(torch.from_numpy(done), pad, nxt)).argmax(-1).cpu()
        steps += 1
    return [tok.decode(x, skip_special_tokens=True) for x in new], steps


def continue_greedy(loaded: LoadedModel, out: Any, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                    max_new_tokens: int, stop: Stop | None = None) -> tuple[list[str], int]:
    """`greedy` from the output of a left-padded prefill (`lm.encode`'s mask and position ids, run with
    `use_cache=True`): each step feeds one token per row on the prefill's key-value cache."""
    cache = out.past_key_values
    state = {"mask": attention_mask, "pos": position_ids[:, -1:]}

    def step(ids: torch.Tensor) -> torch.Tensor:
        mask = state["mask"] = torch.cat([state["mask"], state["mask"].new_ones(len(ids), 1)], dim=1)
        pos = state["pos"] = state["pos"] + 1
        o = loaded.model(input_ids=ids[:, None].to(loaded.device), attention_mask=mask, position_ids=pos,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        return o.logits[:, -1]

    return greedy(loaded, out.logits[:, -1], step, max_new_tokens, stop)


@torch.no_grad()
def generate(loaded: LoadedModel, prompts: Sequence[str], max_new_tokens: int = 16, stop: Stop | None = None,
             batch_size: int = 16, batch_tokens: int = 8192, progress: bool = False) -> list[str]:
    """Greedy continuations of already-formatted prompts, decoded to text (special tokens dropped), in input
    order. An answer ends at EOS, after `max_new_tokens` tokens, or once `stop(text)` holds (e.g.
    `tasks.stop_at_newline`). The same tokens as Hugging Face's `model.generate(do_sample=False)`."""
    if isinstance(prompts, str):
        raise ValueError("prompts: expected a sequence of strings, not one string")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens = {max_new_tokens!r} is not allowed: expected an integer >= 1")
    lengths = [len(x) for x in token_ids(loaded, prompts)] if prompts else []
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    outputs = [""] * len(prompts)
    for chunk in progress_bar(batches(order, [lengths[i] for i in order], batch_size, batch_tokens), progress,
                              f"generating with {loaded.name}"):
        enc = encode(loaded, [prompts[i] for i in chunk])
        out = loaded.model(**enc, use_cache=True, logits_to_keep=1)
        texts, _ = continue_greedy(loaded, out, enc["attention_mask"], enc["position_ids"], max_new_tokens, stop)
        for i, text in zip(chunk, texts):
            outputs[i] = text
    return outputs


# ============================================================================= constrained choices

def choice_token_ids(loaded: LoadedModel, prompt: str, choices: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """The prompt's token ids (as `trace` and `generate` feed them) and, for each choice, the tokens that
    follow them when the text prompt + choice is tokenised. Raises ValueError when the joint tokenisation
    does not begin with the prompt's own tokens (a token spans the boundary: move the space into the
    choice, e.g. 'A:' + ' Paris') or a choice adds no token."""
    head = token_ids(loaded, [prompt])[0]
    out = []
    for choice, full in zip(choices, token_ids(loaded, [prompt + c for c in choices]), strict=True):
        if full[:len(head)] != head:
            raise ValueError(f"choices: {choice!r} merges with the end of the prompt into one token, so its "
                             f"probability after the prompt's tokens is not defined; start it at a token "
                             f"boundary (e.g. with a space)")
        if len(full) == len(head):
            raise ValueError(f"choices: {choice!r} adds no token to the prompt")
        out.append(full[len(head):])
    return head, out


@torch.no_grad()
def score_choices(loaded: LoadedModel, prompts: Sequence[str], choices: Sequence[str] | Sequence[Sequence[str]],
                  batch_size: int = 32, batch_tokens: int = 8192, progress: bool = False,
                  groups: Sequence[Any] | None = None) -> list[np.ndarray]:
    """Summed log-probability (natural log, float64) of each candidate continuation after each prompt.

    `choices`: one list of candidates for every prompt, or one list per prompt (lengths may differ). Token ids
    come from `choice_token_ids` (exact). Each prompt is computed once: a left-padded batch of prompts fills a
    key-value cache, which is repeated for the prompt's candidates, and the candidates' tokens run on it (the
    cost of one forward over the prompts plus a few tokens per candidate, instead of one full sequence per
    candidate). Returns one array per prompt, in the order of its choices; divide by
    `len(choice_token_ids(...)[1][j])` for a per-token score.

    `groups` (one label per prompt, optional): prompts of one group share a long prefix (the k-shot prompts of
    one question, nested in k). The group's longest prompt fills one cache; each member crops it to the prefix
    it shares and runs only its own remaining tokens with its candidates, so the shared examples are computed
    once. The scores are the same up to floating-point rounding. Not used on a sliding-window model whose
    window the group's prompts outgrow.
    """
    if isinstance(prompts, str):
        raise ValueError("prompts: expected a sequence of strings, not one string")
    shared = len(choices) > 0 and isinstance(choices[0], str)
    per_prompt = [list(choices)] * len(prompts) if shared else [list(c) for c in choices]
    if len(per_prompt) != len(prompts) or any(len(c) == 0 for c in per_prompt):
        raise ValueError(f"choices: expected one non-empty list of strings, or one per prompt ({len(prompts)})")
    heads, tails = [], []
    for prompt, cands in zip(prompts, per_prompt):
        head, tail = choice_token_ids(loaded, prompt, cands)
        heads.append(head)
        tails.append(tail)
    scores = [np.zeros(len(c)) for c in per_prompt]
    todo = list(range(len(prompts)))
    if groups is not None:
        if len(groups) != len(prompts):
            raise ValueError(f"groups: expected one label per prompt ({len(prompts)}), got {len(groups)}")
        window = sliding_window(loaded)
        members: dict[Any, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(g, []).append(i)
        shared = [m for m in members.values() if len(m) > 1 and (window is None or max(
            len(heads[i]) + max(len(t) for t in tails[i]) for i in m) <= window)]
        for m in progress_bar(shared, progress, f"scoring with {loaded.name} (shared prefixes)", "group"):
            _score_shared_prefix(loaded, heads, tails, m, scores)
        done = {i for m in shared for i in m}
        todo = [i for i in todo if i not in done]
    order = sorted(todo, key=lambda i: len(heads[i]))
    pad = pad_id(loaded)
    for group in progress_bar(batches(order, [len(heads[i]) for i in order], batch_size, batch_tokens), progress,
                              f"scoring with {loaded.name}"):
        width = max(len(heads[i]) for i in group)
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for b, i in enumerate(group):
            ids[b, width - len(heads[i]):] = torch.tensor(heads[i])
            mask[b, width - len(heads[i]):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = loaded.device
        out = loaded.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                           use_cache=True, logits_to_keep=1)
        score_candidates(loaded, out.logits[:, -1], out.past_key_values, mask, pos[:, -1], [tails[i] for i in group],
                         [scores[i] for i in group])
    return scores


def add_logprobs(logits: torch.Tensor, targets: Sequence[int], owners: Sequence[tuple[int, int]],
                 scores: list[np.ndarray], chunk: int = 256) -> None:
    """Add log p(targets[n]) under the next-token logits row `logits[n]` (natural log, float64) to
    `scores[b][j]` for (b, j) = owners[n]: the one place candidate scores are read off logits (the scoring
    passes here and the packed pass). Rows go through log-softmax in chunks, which bounds the float64 copy."""
    for lo in range(0, len(targets), chunk):
        rows = logits[lo:lo + chunk].double()
        target = torch.as_tensor(targets[lo:lo + chunk], device=rows.device)
        lp = torch.log_softmax(rows, dim=-1).gather(1, target[:, None])[:, 0].cpu().numpy()
        for (b, j), v in zip(owners[lo:lo + chunk], lp):
            scores[b][j] += float(v)


def score_candidates(loaded: LoadedModel, last_logits: torch.Tensor, cache: Any, mask: torch.Tensor,
                     last_pos: torch.Tensor, tails: list[list[list[int]]], scores: list[np.ndarray]) -> None:
    """Add to `scores[b][j]` the log-probability of candidate j of row b, given a left-padded forward over the
    rows' prompts: its next-token logits `last_logits` (rows, vocab), key-value `cache` (used up: repeated and
    extended), 2D attention `mask` and last position ids. The first tokens are read off the last logits; the
    rest run once on the cache, repeated for every candidate."""
    dev = loaded.device
    first = [(b, j) for b, cands in enumerate(tails) for j in range(len(cands))]
    add_logprobs(last_logits[[b for b, _ in first]], [tails[b][j][0] for b, j in first], first, scores)
    reps = max(len(c) for c in tails)
    longest = max(len(t) for c in tails for t in c)
    if longest == 1:
        return
    # Row b * reps + j: candidate j of prompt b (a prompt with fewer candidates repeats its last one).
    pad = pad_id(loaded)
    cont = torch.full((len(tails) * reps, longest - 1), pad, dtype=torch.long)
    cmask = torch.zeros_like(cont)
    for b, cands in enumerate(tails):
        for j in range(reps):
            t = cands[min(j, len(cands) - 1)]
            cont[b * reps + j, :len(t) - 1] = torch.tensor(t[:-1])
            cmask[b * reps + j, :len(t) - 1] = 1
    cache.batch_repeat_interleave(reps)
    full_mask = torch.cat([mask.to(dev).repeat_interleave(reps, 0), cmask.to(dev)], dim=1)
    cpos = last_pos.to(dev).reshape(-1, 1).repeat_interleave(reps, 0) + 1 + torch.arange(longest - 1, device=dev)
    o = loaded.model(input_ids=cont.to(dev), attention_mask=full_mask, position_ids=cpos, past_key_values=cache,
                     use_cache=False)
    rest = [(b, j, p) for b, j in first for p in range(len(tails[b][j]) - 1)]  # position p predicts token p + 1
    rows = torch.tensor([b * reps + j for b, j, _ in rest]), torch.tensor([p for _, _, p in rest])
    add_logprobs(o.logits[rows[0].to(o.logits.device), rows[1].to(o.logits.device)],
                 [tails[b][j][p + 1] for b, j, p in rest], [(b, j) for b, j, _ in rest], scores)


def _score_shared_prefix(loaded: LoadedModel, heads: list[list[int]], tails: list[list[list[int]]],
                         members: list[int], scores: list[np.ndarray]) -> None:
    """`score_choices` for prompts sharing a prefix: one cache from the longest prompt, copied and cropped to
    each member's shared prefix; the member's own tokens run on it (one row), then its candidates."""
    import copy

    ref = heads[max(members, key=lambda i: len(heads[i]))]

    def common(a: list[int]) -> int:
        n = 0
        while n < min(len(a), len(ref)) and a[n] == ref[n]:
            n += 1
        return n

    cut = {i: min(common(heads[i]), len(heads[i]) - 1) for i in members}  # >= 1 own token: its logits score the first
    dev = loaded.device
    top = max(cut.values())
    base = None
    if top > 0:
        base = loaded.model(input_ids=torch.tensor([ref[:top]], device=dev), use_cache=True,
                            logits_to_keep=1).past_key_values
    for i in sorted(members, key=lambda i: -cut[i]):
        c, own = cut[i], heads[i][cut[i]:]
        cache = None
        if c > 0:
            cache = copy.deepcopy(base)
            if c < top:
                cache.crop(c - top)  # transformers 5: a negative count of tokens to drop from the end
        mask = torch.ones((1, c + len(own)), dtype=torch.long)
        pos = torch.arange(c, c + len(own))[None]
        out = loaded.model(input_ids=torch.tensor([own], device=dev), attention_mask=mask.to(dev),
                           position_ids=pos.to(dev), past_key_values=cache, use_cache=True, logits_to_keep=1)
        score_candidates(loaded, out.logits[:, -1], out.past_key_values, mask, pos[:, -1], [tails[i]], [scores[i]])
