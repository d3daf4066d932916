"""Chapter 0's experiment: a first in-context learning check on a real LLM, and the attention edges it adds.

`n_items` questions of one family are answered greedily with k solved examples for every k in `shots`, and
with `max(shots)` shots of random tokens (same turns, same token counts); the prompts at 0 shots, `max(shots)`
shots and the random control are traced, and the last token's attention edges above eps = 0.1 counted at
every layer (eq. 8, both readings). Rows: part `answers` (item, context, k, correct) and part `edges` (item,
context, k, n_tokens, the counts per layer `abs_<layer>`, `rel_<layer>`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry import tasks
from icl_geometry.core import attention_graph, stats
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.llm import engine, lm

EPS = 0.1  # the edge threshold of the chapter's counts (the paper's eps)
RANDOM_NULL_MARGIN = 0.2  # smallest accuracy change of interest for the random-token control, fixed before the run
N_BOOT, LEVEL = 2000, 0.95  # the paired bootstrap of the chapter's three claims
MIN_ITEMS = 20  # every claim is a paired bootstrap over items: judged only on at least this many (see `claim_values`)
SECTION = "A first in-context learning check"  # the notebook section that measures every claim of the chapter

CLAIMS: dict[str, ClaimSpec] = {
    "icl_gain_kmax_vs_0": ClaimSpec(
        "examples in the prompt raise accuracy",
        "premise of both papers (not a measurement they report on this model)", "ours", "greater",
        against="accuracy with max(shots) examples no higher than with none (the interval at or below 0)",
        min_n=MIN_ITEMS, section=SECTION),
    "random_tokens_no_gain_kmax_vs_0": ClaimSpec(
        "random tokens carry no task information, so they do not help", "control", "ours", "none",
        null_margin=RANDOM_NULL_MARGIN,
        against=f"random-token shots change accuracy by more than {RANDOM_NULL_MARGIN} (the interval outside the "
                "margin): the layout, not the examples' content, would then carry the gain",
        min_n=MIN_ITEMS, section=SECTION),
    "first_layer_id_rises_with_context": ClaimSpec(
        "prepending tokens raises first-layer ID_eps", "A, Sec. 3", "paper", "greater",
        forced_by="absolute reading at eps=0.1 is capped at 9 keys per head (81 per layer); first-layer "
                  "attention spreads over the added tokens, so a longer prompt lowers the count",
        role="primary", basis="empirical",
        against="the last token's first-layer edge count no higher with max(shots) examples than with none",
        min_n=MIN_ITEMS, section=SECTION),
}


def answer_all(loaded: Any, test: Sequence[tasks.Item], pool: Sequence[tasks.Item], shots: Sequence[int],
               seed: int = 0, progress: bool = False) -> dict[tuple[str, int], tasks.Evaluation]:
    """Greedy answers with k examples for every k in `shots`, then with `max(shots)` shots of random tokens:
    (context, k) -> `tasks.Evaluation`."""
    from tqdm.auto import tqdm

    results = {}
    for k in tqdm(shots, desc="shots", disable=not progress):
        results[("shots", k)] = tasks.evaluate(loaded, test, pool, k, seed=seed)
    k_max = max(shots)
    results[("random", k_max)] = tasks.evaluate(loaded, test, pool, k_max, seed=seed, context="random")
    return results


def answers_table(results: dict[tuple[str, int], tasks.Evaluation]) -> pd.DataFrame:
    """Part `answers`: one row per (context, k, item) with its correctness."""
    return pd.DataFrame([{"item": i, "context": c, "k": k, "correct": bool(ok)}
                         for (c, k), ev in results.items() for i, ok in enumerate(ev.correct)])


def trace_edges(loaded: Any, prompts: Sequence[str]) -> dict[str, np.ndarray]:
    """The last token's attention edges above `EPS` at every layer: 'abs' and 'rel' (items, layers), the
    first layer per head 'first_heads' (items, heads), and 'n_tokens' (items,). Only attention weights are read,
    so the output head runs at the last token alone (a large vocabulary's logits at every token cost more than
    the rest of the pass on Gemma-3)."""
    traces = engine.trace_batch(loaded, prompts, positions=(-1,), batch_size=8, last_logits_only=True)
    return {"abs": np.stack([attention_graph.id_eps(t.attention_rows, eps=EPS, mode="absolute", reduce="sum")[:, 0]
                             for t in traces]),
            "rel": np.stack([attention_graph.id_eps(t.attention_rows, eps=EPS, mode="relative", reduce="sum")[:, 0]
                             for t in traces]),
            "first_heads": np.stack([attention_graph.id_eps(t.attention_rows[:1], eps=EPS, mode="absolute",
                                                            reduce="per_head").ravel() for t in traces]),
            "n_tokens": np.array([t.seq_len for t in traces])}


def edges_table(edges: dict[tuple[str, int], dict[str, np.ndarray]]) -> pd.DataFrame:
    """Part `edges`: one row per (context, k, item): n_tokens and the counts per layer (`abs_<l>`, `rel_<l>`)."""
    frames = []
    for (c, k), e in edges.items():
        layers = e["abs"].shape[1]
        frame = pd.DataFrame({"item": np.arange(len(e["abs"])), "context": c, "k": k, "n_tokens": e["n_tokens"]})
        cols = {f"{m}_{layer}": e[m][:, layer] for m in ("abs", "rel") for layer in range(layers)}
        frames.append(pd.concat([frame, pd.DataFrame(cols)], axis=1))
    return pd.concat(frames, ignore_index=True)


def _column(table: pd.DataFrame, context: str, k: int, column: str) -> np.ndarray:
    sel = table[(table["context"] == context) & (table["k"] == k)].sort_values("item")
    return sel[column].to_numpy(float)


def measured(rows: pd.DataFrame, config: Any) -> tuple[dict[str, Measured], dict[str, int]]:
    """The chapter's three numbers, whatever the run's size, and the items each rests on: accuracy at max(shots)
    minus at 0 shots, random tokens minus 0 shots, and the first layer's absolute edge count at max(shots) minus
    at 0 shots (paired bootstrap over items, 95%). The notebook shows them; `claim_values` judges them."""
    cfg = base.settings(config)
    k_max, seed = max(cfg["shots"]), cfg["seed"]
    ans = base.part(rows, "answers")
    zero = _column(ans, "shots", 0, "correct")
    boot = dict(n_boot=N_BOOT, level=LEVEL, seed=seed)
    gain, gain_ci = stats.paired_difference(zero, _column(ans, "shots", k_max, "correct"), **boot)
    ctrl, ctrl_ci = stats.paired_difference(zero, _column(ans, "random", k_max, "correct"), **boot)
    edges = base.part(rows, "edges")
    first_0 = _column(edges, "shots", 0, "abs_0")
    first, first_ci = stats.paired_difference(first_0, _column(edges, "shots", k_max, "abs_0"), **boot)
    units = {"icl_gain_kmax_vs_0": len(zero), "random_tokens_no_gain_kmax_vs_0": len(zero),
             "first_layer_id_rises_with_context": len(first_0)}
    out = {
        "icl_gain_kmax_vs_0": Measured(gain, gain_ci, (
            f"accuracy({k_max}-shot) - accuracy(0-shot) on {len(zero)} '{cfg['family']}' items, "
            "paired bootstrap 95% CI")),
        "random_tokens_no_gain_kmax_vs_0": Measured(ctrl, ctrl_ci, (
            f"accuracy({k_max} random-token shots) - accuracy(0-shot), paired bootstrap 95% CI; "
            f"no effect = interval within ±{RANDOM_NULL_MARGIN} (declared before the run)")),
        "first_layer_id_rises_with_context": Measured(first, first_ci, (
            f"mean change of the last token's summed edge count at layer 0, {k_max} shots vs 0")),
    }
    return out, units


def claim_values(rows: pd.DataFrame, config: Any) -> dict[str, Measured]:
    """The claims of `measured`, each judged only on at least its `min_n` items (`MIN_ITEMS`): below that a
    percentile bootstrap of a paired mean is too narrow to be read as a 95% interval, and the claim is left out
    ("not judged at this size")."""
    out, units = measured(rows, config)
    return {cid: m for cid, m in out.items() if units[cid] >= CLAIMS[cid].min_n}


def run(config: Any, checkpoint: Any = None, *, loaded: Any = None, progress: bool = False) -> pd.DataFrame:
    """Chapter 0's whole experiment for `config`: both parts of the rows (no checkpoint: it takes minutes)."""
    cfg = base.settings(config)
    loaded = loaded if loaded is not None else lm.load(cfg["model"], cfg["device"])
    shots = list(cfg["shots"])
    test, pool = tasks.split(cfg["family"], n_test=cfg["n_items"], n_pool=max(shots) + 2, seed=cfg["seed"])
    results = answer_all(loaded, test, pool, shots, cfg["seed"], progress)
    k_max = max(shots)
    edges = {key: trace_edges(loaded, results[key].prompts) for key in [("shots", 0), ("shots", k_max),
                                                                         ("random", k_max)]}
    return base.stack(answers=answers_table(results), edges=edges_table(edges))
