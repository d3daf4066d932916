"""A question's context as point clouds (chapter 3): k-shot prompts and their controls of the same turns and token
counts, traced in batches; per prompt, the MLP inputs of its last tokens and the last token's attention counts
(the paper's ID_eps, eq. 8, in both readings, and the effective degree), stacked into one cloud per condition.

The controls (`control_prompts`, all at k shots) differ from the shots in what they keep:

- 'random': each question's own random-token turns (`prompts.chat_messages(context='random')`), drawn
  independently per question, so two prompts never share context, while their shots come from one pool (10 of
  20 items: any two prompts share about 5). Same length, no task, far more diverse across prompts.
- 'matched_random': one random-token example per pool item (`prompts.random_examples`), each prompt the random
  examples of exactly the pool indices its shots use, in the same order: prompts share random examples exactly
  where they share shots. Same length, no task, the shots' diversity across prompts.
- 'shuffled': the words of the prompt's own shots pooled over its turns, shuffled and dealt back
  (`context='shuffled'`): the same words (so the same vocabulary shared across prompts as the shots), no task;
  a few tokens longer or shorter, as words split differently in a new order.
- 'disjoint_shots' (not a control: a second shots condition): k examples per prompt from a pool of
  n_prompts x k fresh items, no example shared by two prompts (`disjoint_shot_prompts`).

Then chapter 3's rows from the clouds and counts: `attention_rows` and `control_attention_rows` (the counts per
prompt and layer), `geometry_changes` and `control_changes` (the `id_change` rows: paired jackknife over prompts),
`change_correlations`, `per_layer_table`; `trace_controls` runs every control from prompts to rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from icl_geometry.core import attention_graph as ag
from icl_geometry.core import intrinsic_dim as idm
from icl_geometry.llm import engine
from icl_geometry.tasks.evaluation import few_shot_prompts
from icl_geometry.tasks.prompts import format_examples_prompt, format_prompt, random_examples
from icl_geometry.tasks.qa import Item, choose_nested, make_items
from icl_geometry.tasks.registry import split

BATCH = 8  # prompts per traced batch
LEVEL = 0.9  # every interval of chapter 3 is a 90% interval
CONTROLS = ("random", "matched_random", "shuffled")
CONTEXTS = (*CONTROLS, "disjoint_shots")
COUNTS = {"abs": "ID_eps absolute", "rel": "ID_eps relative", "eff": "effective degree"}
RANDOM = "random control"
# How the rows name each context other than 'k shots' (the `id_change` conditions, the `control_attention` rows).
CONTEXT_LABELS = {"random": RANDOM, "matched_random": "matched random control", "shuffled": "shuffled control",
                  "disjoint_shots": "disjoint shots"}
N_POOL = 20  # the fewest pool items the shots are drawn from (more when 2 x the most shots is larger)


def make_prompts(loaded: Any, family: str, n_prompts: int, shots: Sequence[int],
                 seed: int) -> tuple[list, list, dict[int, list[str]], dict[int, list[int]]]:
    """The test questions, the pool of examples, each question's prompt with k examples for every k in `shots`
    (nested), and every prompt's token count."""
    test_items, pool = split(family, n_prompts, n_pool=max(N_POOL, 2 * max(shots)), seed=seed)
    prompts = {k: few_shot_prompts(loaded, test_items, pool, k, seed=seed) for k in shots}
    return test_items, pool, prompts, {k: token_counts(loaded, ps) for k, ps in prompts.items()}


def token_counts(loaded: Any, prompts: Sequence[str]) -> list[int]:
    """Every prompt's token count, as the model reads it (special tokens added)."""
    return [len(loaded.tokenizer(p, add_special_tokens=True)["input_ids"]) for p in prompts]


def shot_indices(pool: Sequence[Item], k: int, seed: int, index: int) -> list[int]:
    """The pool positions of test item `index`'s k shots (`qa.choose_nested`, the draw `few_shot_prompts`
    makes), in prompt order."""
    where = {id(it): j for j, it in enumerate(pool)}
    return [where[id(s)] for s in choose_nested(pool, k, seed, index)]


def matched_random_prompts(loaded: Any, test_items: Sequence[Item], pool: Sequence[Item], k: int,
                           seed: int) -> list[str]:
    """The diversity-matched random control: for each question, the random-token examples
    (`prompts.random_examples`, one per pool item) of exactly the pool indices its k shots use, in their order."""
    examples = random_examples(loaded.tokenizer, pool, seed)
    return [format_examples_prompt(loaded, item, [examples[j] for j in shot_indices(pool, k, seed, i)])
            for i, item in enumerate(test_items)]


def disjoint_pool(family: str, test_items: Sequence[Item], pool: Sequence[Item], n: int, seed: int) -> list[Item]:
    """`n` fresh items of `family`, none a test question or an item of the shared `pool`."""
    return make_items(family, n, seed=seed + 2, exclude=[*test_items, *pool])


def disjoint_shot_prompts(loaded: Any, test_items: Sequence[Item], pool: Sequence[Item], k: int,
                          seed: int) -> list[str]:
    """k shots per question drawn without overlap between prompts: question i gets items i*k .. i*k + k - 1 of a
    fresh pool of len(test_items) x k items (`disjoint_pool`), so no two prompts share an example."""
    if not test_items:
        return []
    fresh = disjoint_pool(test_items[0].family, test_items, pool, len(test_items) * k, seed)
    return [format_prompt(loaded, item, fresh[i * k:(i + 1) * k], seed=seed) for i, item in enumerate(test_items)]


def control_prompts(loaded: Any, test_items: Sequence[Item], pool: Sequence[Item], k: int, seed: int,
                    context: str = "random") -> list[str]:
    """The same questions after k turns of a control of the same turns (see the module docstring): 'random',
    'matched_random' or 'shuffled'; or 'disjoint_shots', k real examples per question shared with no other."""
    if context not in CONTEXTS:
        raise ValueError(f"context = {context!r} is not allowed: expected one of {list(CONTEXTS)}.")
    if context == "matched_random":
        return matched_random_prompts(loaded, test_items, pool, k, seed)
    if context == "disjoint_shots":
        return disjoint_shot_prompts(loaded, test_items, pool, k, seed)
    return few_shot_prompts(loaded, test_items, pool, k, seed=seed, context=context)


def summarise(tr: Any, tail_tokens: int, eps: float) -> dict[str, Any]:
    """The chapter's view of one traced prompt: MLP inputs of the tail tokens, and the paper's counts (both
    readings, summed over heads and per head) and the effective degree of the last token's rows."""
    last = tr.attention_rows[:, :, -1, :]  # (layers, heads, seq_len): the last token's attention rows
    return {"mlp": tr.mlp_inputs[:, -tail_tokens:],
            "abs": ag.id_eps(last, eps, "absolute", "sum", head_axis=1),
            "rel": ag.id_eps(last, eps, "relative", "sum", head_axis=1),
            "abs_head": ag.id_eps(last, eps, "absolute", "per_head", head_axis=1),
            "eff": ag.effective_degree(last, "sum", head_axis=1)}


def trace_prompts(loaded: Any, prompts: Sequence[str], tail_tokens: int, eps: float, *, prefix: int = 0,
                  progress: bool = False, desc: str = "") -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
    """Every prompt's `summarise`, traced in batches of `BATCH`; with `prefix` > 0 also the MLP inputs of its
    first `prefix` positions (layers, prefix, d_model), for the duplicates section. The output head runs at the
    last token only (`last_logits_only`: the layers' activations are bit for bit the same, about 20% faster)."""
    tail = tuple(range(-tail_tokens, 0))
    positions = tuple(range(prefix)) + tail
    starts = range(0, len(prompts), BATCH)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc)
    summaries, states = [], []
    for start in starts:
        for tr in engine.trace_batch(loaded, prompts[start:start + BATCH], positions=positions, batch_size=BATCH,
                                     last_logits_only=True):
            if prefix:
                states.append(tr.mlp_inputs[:, :prefix])
            summaries.append(summarise(tr, tail_tokens, eps))
    return summaries, states


def cloud(summaries: Sequence[Mapping[str, Any]], n_layers: int, d_model: int) -> torch.Tensor:
    """The per-layer point clouds of one condition: (layers, prompts x tail tokens, d_model)."""
    return torch.stack([s["mlp"] for s in summaries], 1).reshape(n_layers, -1, d_model)


def counts(summaries: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The attention counts of one condition: (prompts, layers[, heads]) per name."""
    return {name: np.stack([s[name] for s in summaries]) for name in ("abs", "rel", "abs_head", "eff")}


def prompt_groups(n_prompts: int, tail_tokens: int) -> np.ndarray:
    """Which prompt each point of a cloud came from (its `tail_tokens` tokens in a row)."""
    return np.repeat(np.arange(n_prompts), tail_tokens)


def shared_examples(index_sets: Sequence[Sequence[Any]]) -> np.ndarray:
    """How many examples every two prompts share: (prompts, prompts) counts of common entries of their index
    (or content) sets, the diagonal each prompt's own count. The shared-draw structure the controls keep."""
    sets = [set(s) for s in index_sets]
    return np.array([[len(a & b) for b in sets] for a in sets])


# ----------------------------------------------------------------------------- names and rows

def mle_k(n_prompts: int) -> int:
    """MLE's neighbour count on the LLM clouds: below the size of one token's cluster (`n_prompts` points)."""
    return min(20, int(n_prompts) // 2)


def mle_label(n_prompts: int) -> str:
    """How tables and notes name the MLE estimate of the LLM section."""
    return f"MLE k={mle_k(n_prompts)}"


def shots_label(k: int) -> str:
    """A condition's name in the `id_change` rows: 'k shots' (`CONTEXT_LABELS` name the others)."""
    return f"{int(k)} shots"


def _count_rows(a: Mapping[str, np.ndarray], **key: Any) -> pd.DataFrame:
    """One condition's counts as rows: the `key` columns, then prompt, layer and every count of `COUNTS`."""
    n_prompts, n_layers = a["abs"].shape
    prompt, layer = np.meshgrid(np.arange(n_prompts), np.arange(n_layers), indexing="ij")
    return pd.DataFrame({**key, "prompt": prompt.ravel(), "layer": layer.ravel(),
                         **{name: a[name].ravel() for name in COUNTS}})


def attention_rows(attn: Mapping[int, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """The `attention` rows: one per (shots, prompt, layer) with the summed counts and the effective degree."""
    return pd.concat([_count_rows(a, shots=int(k)) for k, a in attn.items()], ignore_index=True)


def control_attention_rows(attn: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """The `control_attention` rows: one per (context, prompt, layer), `attn` keyed by the context's label."""
    return pd.concat([_count_rows(a, context=label) for label, a in attn.items()], ignore_index=True)


def _id_change(cloud_a: torch.Tensor, cloud_b: torch.Tensor, a: str, b: str, layer: int, method: str,
               groups: np.ndarray, k: int, level: float = LEVEL) -> dict[str, Any]:
    """One `id_change` row: the geometric ID of cloud b minus cloud a, paired jackknife over prompts."""
    kw = {"k": k} if method == "mle" else {}
    dd = idm.id_difference(cloud_a, cloud_b, method=method, groups_a=groups, groups_b=groups, ci=level, **kw)
    return {"method": method, "layer": layer, "condition_a": a, "condition_b": b, "change": dd.difference,
            "low": dd.ci[0], "high": dd.ci[1], "id_a": dd.a, "id_b": dd.b}


def count_label(key: str, eps: float) -> str:
    """How tables and figures name an attention count ('abs', 'rel' carry their eps; 'eff' has none)."""
    return COUNTS[key] + (f" (eps={eps:g})" if key in ("abs", "rel") else "")


def per_layer_table(clouds: Mapping[int, torch.Tensor], attn: Mapping[int, Mapping[str, np.ndarray]], k_mle: int,
                    eps: float) -> pd.DataFrame:
    """Every layer's geometric estimates (TwoNN, MLE, participation ratio) and mean attention counts, per shot
    count: layer, estimate, shots, measure (and the estimators' own columns, e.g. n_duplicates)."""
    frames = []
    for k, c in clouds.items():
        n_layers = len(c)
        frames.append(idm.per_layer(c, "twonn").assign(shots=k, measure="TwoNN"))
        frames.append(idm.per_layer(c, "mle", k=k_mle).assign(shots=k, measure=f"MLE k={k_mle}"))
        pr = [idm.participation_ratio(c[layer]) for layer in range(n_layers)]
        frames.append(pd.DataFrame({"layer": range(n_layers), "estimate": pr, "shots": k,
                                    "measure": "participation ratio"}))
        for key in COUNTS:
            frames.append(pd.DataFrame({"layer": range(n_layers), "estimate": attn[k][key].mean(0), "shots": k,
                                        "measure": count_label(key, eps)}))
    return pd.concat(frames, ignore_index=True)


def geometry_changes(clouds: Mapping[int, torch.Tensor], groups: np.ndarray, k_mle: int) -> pd.DataFrame:
    """The `id_change` rows of every shot count against the fewest shots, at the first and the last layer,
    for TwoNN and MLE (`k_mle` neighbours)."""
    shots = list(clouds)
    k0 = min(shots)
    last = len(clouds[k0]) - 1
    rows = [_id_change(clouds[k0][layer], clouds[k][layer], shots_label(k0), shots_label(k), layer, method,
                       groups, k_mle)
            for layer in (0, last) for k in shots if k != k0 for method in ("twonn", "mle")]
    return pd.DataFrame(rows)


def control_changes(clouds: Mapping[int, torch.Tensor], control: torch.Tensor, groups: np.ndarray,
                    k_mle: int, label: str = RANDOM) -> pd.DataFrame:
    """The `id_change` rows of one control (named `label`) at the last layer: the control minus the fewest
    shots, and the most shots minus the control, for TwoNN and MLE. `control` is (layers, points, d_model), or
    its last layer alone (points, d_model)."""
    k0, k_max = min(clouds), max(clouds)
    last = len(clouds[k0]) - 1
    ctrl = control[-1] if control.ndim == 3 else control
    rows = []
    for method in ("twonn", "mle"):
        for a, cloud_a, b, cloud_b in ((shots_label(k0), clouds[k0][last], label, ctrl),
                                       (label, ctrl, shots_label(k_max), clouds[k_max][last])):
            rows.append(_id_change(cloud_a, cloud_b, a, b, last, method, groups, k_mle))
    return pd.DataFrame(rows)


def change_correlations(clouds: Mapping[int, torch.Tensor], attn: Mapping[int, Mapping[str, np.ndarray]],
                        groups: np.ndarray, k_mle: int) -> pd.DataFrame:
    """The `layer_correlation` rows: across layers, Spearman's rho between the change with context (most vs
    fewest shots) of TwoNN or MLE and of each attention count, paired jackknife over prompts."""
    k0, k_max = min(clouds), max(clouds)
    rows = []
    for method in ("twonn", "mle"):
        kw = {"k": k_mle} if method == "mle" else {}
        id_changes = idm.layer_id_changes(clouds[k0], clouds[k_max], groups, method=method, **kw)  # once per method
        for key in COUNTS:
            lc = idm.layer_change_correlation(clouds[k0], clouds[k_max], attn[k0][key], attn[k_max][key], groups,
                                              method=method, ci=LEVEL, changes=id_changes)
            rows.append({"method": method, "attention": key, "rho": lc.rho, "low": lc.ci[0], "high": lc.ci[1]})
    return pd.DataFrame(rows)


def trace_controls(loaded: Any, test_items: Sequence[Item], pool: Sequence[Item], clouds: Mapping[int, torch.Tensor],
                   groups: np.ndarray, k_mle: int, *, seed: int, tail_tokens: int, eps: float,
                   contexts: Sequence[str] = CONTROLS, progress: bool = False,
                   ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[int]]]:
    """Every context of `contexts` at the most shots of `clouds`, traced like the shots: its `id_change` rows at
    the last layer (`control_changes`; 'disjoint_shots' also minus the random control when both are traced), its
    attention counts (`control_attention_rows`), and its prompts' token counts (by label, for the length check).
    Only each context's last-layer cloud is kept, so memory holds one traced context at a time."""
    k_max = max(clouds)
    changes, attn, tokens, last = [], {}, {}, {}
    for context in contexts:
        label = CONTEXT_LABELS[context]
        texts = control_prompts(loaded, test_items, pool, k_max, seed, context)
        tokens[label] = token_counts(loaded, texts)
        summaries = trace_prompts(loaded, texts, tail_tokens, eps, progress=progress, desc=label)[0]
        last[label] = cloud(summaries, loaded.n_layers, loaded.d_model)[-1].clone()
        attn[label] = counts(summaries)
        changes.append(control_changes(clouds, last[label], groups, k_mle, label))
        del summaries
    pair = CONTEXT_LABELS["random"], CONTEXT_LABELS["disjoint_shots"]
    if all(p in last for p in pair):
        layer = len(clouds[k_max]) - 1
        changes.append(pd.DataFrame([_id_change(last[pair[0]], last[pair[1]], *pair, layer, method, groups, k_mle)
                                     for method in ("twonn", "mle")]))
    return pd.concat(changes, ignore_index=True), control_attention_rows(attn), tokens
