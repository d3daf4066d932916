"""Chapter 4's experiment (paper A, section 3): does added context raise the last layer's intrinsic
dimension, and does that rise predict a correct answer?

Each base question is asked at 0 shots and with k shots (k = 1..10, nested), random-token or shuffled-text
contexts of the same length; `tasks.answer` (`packing.trace_generate`) traces every prompt at every layer and answers it
greedily in the same pass (the k-shot prompts of one question share one packed sequence). The statistics
the chapter reads off the result live in `icl_geometry.core.stats`; `context_contrast` pairs two contexts item
by item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry import tasks
from icl_geometry.core import jackknife, stats
from icl_geometry.core.stats import item_mean_interval
from icl_geometry.tasks import size_contrasts as sizes
from icl_geometry.tasks.context_contrasts import (check_answers_vary, context_contrast, last_layers,  # noqa: F401
                                                  layer_means, table_deltas)
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.llm import lm

MEASURES = ("id_abs", "id_rel", "twonn")


# ============================================================================= the experiment

@dataclass
class ContextRun:
    """Everything chapter 4 measures for one model: the 0-shot candidates, the base set (items wrong at
    0 shots), and one row per (base item, context, k) with correctness and per-layer measures."""

    model: str
    n_layers: int
    eps: float
    candidates: Any  # DataFrame: family, index, question, answer, output, correct, outcome, choice_correct, ...
    items: list[tasks.Item]  # the base set
    rows: Any  # DataFrame: item, family, context, k, correct, outcome, choice_correct, choice_margin, output, n_tokens
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
                   contexts: Sequence[str] = tasks.CONTEXTS, seed: int = 0, n_pool: int = 50, eps: float = 0.1,
                   batch_size: int = 32, batch_tokens: int = 4096, max_new_tokens: int = 16,
                   chat_style: str = "multi_turn",
                   mlp_layers: Sequence[int] = (0, -1), progress: bool = False, checkpoint: Path | str | None = None,
                   items_per_pass: int | None = None, fixed_k: int = 4, n_sets: int = 0) -> ContextRun:
    """Paper A's section-3 experiment on `loaded`.

    1. `n_candidates` test items per family (fewer if a family has fewer), answered at 0 shots, greedily and by
       constrained choice. The base set is the items answered wrongly by greedy decoding (at most `n_base`,
       families interleaved), leaving out two-option items (`tasks.two_option`: a coin flip plus format).
    2. Each base item with k shots for k in `shots` (context 'shots'), and with random tokens or shuffled shot
       text in the same turns and of the same length for k in `perturbed_shots`. Every prompt is traced at
       every layer, answered greedily and scored by constrained choice in the same pass (the choices run on
       its key-value cache).
    3. With `n_sets` > 0, each base item at `fixed_k` shots with `n_sets` independent example sets (context
       'set_shots', row column `set`), each beside random tokens matched to it in turns and tokens ('set_random'):
       the conditional test of Figs. 6/8, where the number of shots cannot explain a difference.

    `checkpoint` (a file): the run saves its state after the 0-shot pass and after every `items_per_pass` base
    items (default: all in one pass), and resumes from it when called again with the same settings (other
    settings start afresh), so an interruption loses at most `items_per_pass` items.
    """
    for c in contexts:
        if c not in tasks.CONTEXTS:
            raise ValueError(f"contexts: {c!r} is not allowed: expected some of {list(tasks.CONTEXTS)}")
    ks_all = [k for k in (*shots, *perturbed_shots)]
    if any(k < 1 for k in ks_all):
        raise ValueError("shots and perturbed_shots: every k must be >= 1 (0 shots is the baseline)")
    if ks_all and max(ks_all) > n_pool:
        raise ValueError(f"n_pool = {n_pool} is smaller than the largest k ({max(ks_all)})")
    if n_sets < 0 or (n_sets and not 1 <= fixed_k <= n_pool):
        raise ValueError(f"n_sets = {n_sets!r}, fixed_k = {fixed_k!r}: expected n_sets >= 0 and 1 <= fixed_k <= n_pool")
    if items_per_pass is not None and items_per_pass < 1:
        raise ValueError(f"items_per_pass = {items_per_pass!r} is not allowed: expected an integer >= 1 or None")
    kw = dict(eps=eps, batch_size=batch_size, batch_tokens=batch_tokens, max_new_tokens=max_new_tokens,
              mlp_layers=mlp_layers)
    saved = base.Checkpoint(checkpoint, base.checkpoint_key(
        model=loaded.name, families=list(families), n_candidates=n_candidates, shots=list(shots),
        perturbed=list(perturbed_shots), n_base=n_base, contexts=list(contexts), seed=seed, n_pool=n_pool,
        chat_style=chat_style, fixed_k=fixed_k, n_sets=n_sets, **kw))
    state = saved.load() or {"done": 0, "parts": []}
    pools, cand, cand_idx = {}, [], []
    for fam in families:
        test, pool = tasks.split(fam, n_candidates, n_pool, seed=seed, strict=False)
        pools[fam] = pool
        cand += test
        cand_idx += list(range(len(test)))
    if "zero" not in state:
        zero_prompts = tasks.prompts_for(loaded, cand, pools, cand_idx, 0, "shots", seed, chat_style)
        t0 = time.perf_counter()
        res0, correct0 = tasks.answer(loaded, cand, zero_prompts, options=True, progress=progress, **kw)
        choice0, margin0 = tasks.choice_outcome(cand, res0.choice_scores)  # scored on the answer pass's cache
        state["zero"], state["zero_seconds"] = (res0, correct0, choice0, margin0), time.perf_counter() - t0
        saved.save(state)
    res0, correct0, choice0, margin0 = state["zero"]
    candidates = pd.DataFrame({"family": [it.family for it in cand], "index": cand_idx,
                               "question": [it.question for it in cand], "answer": [it.answer for it in cand],
                               "output": res0.outputs, "correct": correct0,
                               "outcome": [tasks.outcome(it, o) for it, o in zip(cand, res0.outputs)],
                               "choice_correct": choice0, "choice_margin": margin0,
                               "n_choices": [len(tasks.choices(it)) for it in cand],
                               "two_option": [tasks.two_option(it) for it in cand]})
    base_idx = _interleave([[i for i in range(len(cand)) if cand[i].family == f and not correct0[i]
                         and not tasks.two_option(cand[i])] for f in families])
    base_idx = base_idx[:n_base] if n_base is not None else base_idx
    items = [cand[i] for i in base_idx]

    spec = [(b, c, k, -1) for b in range(len(base_idx)) for c in contexts
            for k in (shots if c == "shots" else perturbed_shots)]
    spec += [(b, f"set_{c}", fixed_k, s) for b in range(len(base_idx)) for s in range(n_sets)
             for c in ("shots", "random")]
    step, first = items_per_pass or max(len(base_idx), 1), min(state["done"], len(base_idx))  # first not done
    chunks = [(lo, [r for r in spec if lo <= r[0] < lo + step]) for lo in range(first, len(base_idx), step)]
    bar = None
    if progress and len(chunks) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(base_idx), initial=first, desc=f"base items ({loaded.name})",
                   unit="item")
    for lo, chunk in chunks:
        if not chunk:
            continue
        t1 = time.perf_counter()
        prompts = [tasks.prompts_for(loaded, [items[b]], pools, [cand_idx[base_idx[b]]], k, c.removeprefix("set_"),
                                     seed if s < 0 else seed + 1 + s, chat_style)[0] for b, c, k, s in chunk]
        chunk_items = [items[b] for b, *_ in chunk]
        res, correct = tasks.answer(loaded, chunk_items, prompts, options=True, progress=progress and bar is None,
                                    **kw)
        choice, margin = tasks.choice_outcome(chunk_items, res.choice_scores)
        state["parts"].append((chunk, res, correct, choice, margin, time.perf_counter() - t1))
        state["done"] = min(lo + step, len(base_idx))
        saved.save(state)
        if bar is not None:
            bar.update(len({b for b, *_ in chunk}))
    if bar is not None:
        bar.close()
    parts = state["parts"]
    spec_done = [r for part in parts for r in part[0]]
    L = loaded.n_layers
    cat = (lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape))
    outputs = [o for part in parts for o in part[1].outputs]
    rows = pd.DataFrame({"item": [r[0] for r in spec_done], "family": [items[r[0]].family for r in spec_done],
                         "context": [r[1] for r in spec_done], "k": [r[2] for r in spec_done],
                         "set": [r[3] for r in spec_done],
                         "correct": cat([p[2] for p in parts], (0,)).astype(bool),
                         "outcome": [tasks.outcome(items[r[0]], o) for r, o in zip(spec_done, outputs)],
                         "choice_correct": cat([p[3] for p in parts], (0,)).astype(bool),
                         "choice_margin": cat([p[4] for p in parts], (0,)),
                         "output": outputs, "n_tokens": cat([p[1].n_tokens for p in parts], (0,)).astype(int)})
    values = {m: cat([getattr(p[1], m) for p in parts], (0, L)) for m in MEASURES}
    zero = {m: getattr(res0, m)[base_idx] for m in MEASURES}
    last_mlp = cat([p[1].last_mlp for p in parts], (0, len(res0.mlp_layers), loaded.d_model)).astype(np.float16)
    return ContextRun(loaded.name, L, eps, candidates, items, rows, values, zero, last_mlp, res0.last_mlp[base_idx],
                      res0.mlp_layers, res0.tokens_fed + sum(p[1].tokens_fed for p in parts),
                      int(res0.n_tokens.sum() + sum(p[1].n_tokens.sum() for p in parts)),
                      {"zero_shot_pass": state["zero_seconds"], "context_pass": sum(p[5] for p in parts)})


def parse_families(value: Any) -> tuple[str, ...]:
    """The chapter's `families` parameter: comma-separated question-answer families, validated."""
    return tasks.parse_families(value, "qa")


# ============================================================================= the claims, from per-prompt rows

READINGS = {"abs": "id_abs", "rel": "id_rel"}  # the two readings of eq. 8 (claim ids use the short key)
SCORINGS = {"greedy": "correct", "choice": "choice_correct"}  # greedy extraction, constrained choice
FIG8_FLAT_MARGIN = 0.25  # |logistic slope per SD| below this is 'no effect' at the first layer, declared beforehand
MIN_WITHIN_ITEMS = 15  # a within-item claim is judged only on at least this many items that vary within: its
#                        bootstrap over items covers 80% at 10 such items, 87% at 15 (nominal 90%;
#                        tests/test_coverage.py)


def rows_table(run: ContextRun) -> pd.DataFrame:
    """One row per context prompt: item, family, context, k, both correctness scorings, `choice_base` (the
    item was also wrong at 0 shots under constrained choice), n_tokens, and every measure's change from 0
    shots at every layer (`d_<measure>_<layer>`). Every claim of `claim_values` is computed from this table
    alone, so a recorded run can commit it and a test can recompute its verdicts without the model."""
    wrong_choice0 = {q for q, ok in zip(run.candidates.question, run.candidates.choice_correct) if not ok}
    item_wrong_choice0 = np.array([it.question in wrong_choice0 for it in run.items], bool)
    r = run.rows
    base = r[["item", "family", "context", "k", "set", "correct", "choice_correct", "n_tokens"]].copy()
    base["choice_base"] = item_wrong_choice0[r["item"].to_numpy()] if len(r) else np.zeros(0, bool)
    cols = {f"d_{m}_{layer}": run.delta(m)[:, layer] for m in MEASURES for layer in range(run.n_layers)}
    return pd.concat([base.reset_index(drop=True), pd.DataFrame(cols)], axis=1)


SIZE_MARGINS = sizes.SIZE_MARGINS  # larger minus smaller model: the margins declared before any full run


def size_comparison(small: pd.DataFrame, large: pd.DataFrame, n_boot: int = 1000, level: float = 0.9,
                    seed: int = 0) -> list[dict[str, Any]]:
    """Larger model minus smaller from two runs' `rows_table`s (`tasks.size_contrasts`, this chapter's settings)."""
    return sizes.size_comparison(small, large, READINGS, SCORINGS, MIN_WITHIN_ITEMS, n_boot, level, seed)


LEVEL = 0.9  # every interval of chapter 4 is a 90% interval
# Every claim resamples base items and is judged only from its `min_n` of them (fewer: "not judged at this size"),
# where its interval covers (tests/test_coverage.py; the chapter's "Minimum size" gives the numbers).
MIN_ITEMS = 30  # every claim but the within-item ones
LAST_SHARE_WORDS = "quarter of the layers"  # tasks.context_contrasts.LAST_LAYERS_SHARE, in words

# The notebook sections that measure the claims (their headings, exactly).
SECTIONS = {"accuracy": "The base set, and one pass per question",
            "changes": "2. What is measured: three notions of dimension, as changes from 0 shots",
            "figures": "3. The paper's figures, and what they leave out",
            "fits": "Correlations and logistic fits",
            "twonn": "4. The geometric ID beside the attention count"}
# One primary claim per paper statement, declared before the runs that judge it (the notebook's table says why
# each): Fig. 6, Fig. 7 (accuracy; final-layer ID), Fig. 8 (its first-layer half), Sec. 3 (forced either way).
# Fig. 7's premise (examples raise the last layers' ID), Fig. 8's first-layer half with k and family held fixed
# (the first-layer change alone mostly counts added tokens) and Fig. 6 at fixed k across independent example sets
# (the pooled and nested views tie the change to k) were declared before the fixed-k runs (issue 27).
PRIMARY = {"fig6_abs_fixed_k_within_item", "fig7_accuracy_shots_minus_random",
           "fig7_abs_final_rise_shots_minus_random", "fig8_abs_first_layer_flat_controlling_k_family",
           "first_layer_rise_any_context_abs", "examples_raise_last_layers_id_abs"}
LENGTH_CONFOUND = ("prompt length: with nested shots the first-layer change mostly counts the tokens added (section 2 "
                   "shows its rank correlation with k), so its slope alone mixes length with correctness")

_FIG = {
    "fig6_{key}_final_rise_predicts_correct{sfx}": (
        "A, Fig. 6", "the larger the final-layer ID increase, the more likely a correct answer", {},
        "prompts with a larger final-layer ID increase no more often correct (the interval of rho at or below 0)",
        SECTIONS["fits"]),
    "fig6_{key}_within_item{sfx}": (
        "A, Fig. 6", "the larger the final-layer ID increase, the more likely a correct answer (within a question: "
        "the k with a larger increase are the ones answered right)", {},
        "within a question, the k with a larger final-layer increase no more often right (interval at or below 0)",
        SECTIONS["fits"]),
    "fig8_{key}_final_slope_positive{sfx}": (
        "A, Fig. 8", "the last layers' ID change is informative of correctness (Fig. 6's final-layer association, "
        "as a logistic slope)", {},
        "correctness not rising with the final-layer change (the slope's interval at or below 0)", SECTIONS["fits"]),
    "fig8_{key}_first_layer_flat{sfx}": (
        "A, Fig. 8", "the first layers' ID change is not informative of correctness",
        {"direction": "none", "null_margin": FIG8_FLAT_MARGIN, "confounded_by": LENGTH_CONFOUND},
        f"the first-layer change predicting correctness (the slope's interval outside ±{FIG8_FLAT_MARGIN} per SD "
        "and away from 0)", SECTIONS["fits"]),
}
_FORCED = {
    "abs": "the absolute reading counts at most ceil(1/eps) - 1 keys per head above eps (9 at eps = 0.1); longer "
           "context spreads first-layer attention below eps, so it must fall",
    "rel": "relative reading counts keys above eps x the row maximum; on near-uniform first-layer attention "
           "that is roughly every added token, so it must rise",
}
_CONTROL = {"random": "random tokens", "shuffled": "shuffled example text"}


def min_items(claim_id: str) -> int:
    """A claim's `min_n`: items that vary within (within-item claims), else base items."""
    return MIN_WITHIN_ITEMS if "_within_item" in claim_id else MIN_ITEMS


def _declare() -> dict[str, ClaimSpec]:
    """Chapter 4's claims, in the order the chapter records them (scorings, then readings, then controls)."""
    claims: dict[str, ClaimSpec] = {}

    def paper(cid: str, statement: str, source: str, against: str, section: str, **how: Any) -> None:
        min_n = min_items(cid)
        claims[cid] = ClaimSpec(statement, source, "paper", **{"direction": "greater", **how},
                                role="primary" if cid in PRIMARY else "supporting", basis="empirical",
                                against=against, min_n=min_n, section=section)

    for scoring in SCORINGS:
        sfx = "" if scoring == "greedy" else "_choice"
        for key in READINGS:
            for pattern, (source, statement, how, against, section) in _FIG.items():
                paper(pattern.format(key=key, sfx=sfx), statement, source, against, section, **how)
        for other in ("random", "shuffled"):
            paper(f"fig7_accuracy_shots_minus_{other}{sfx}", "random or shuffled context helps less than examples",
                  "A, Fig. 7 (accuracy)", f"{_CONTROL[other]} of the same length helping as much as examples "
                  "(the interval of the accuracy difference at or below 0)", SECTIONS["accuracy"])
    for key in READINGS:
        paper(f"first_layer_rise_any_context_{key}", "prepending any tokens raises the first-layer ID", "A, Sec. 3",
              "the first-layer count not rising when tokens are prepended (the interval at or below 0)",
              SECTIONS["changes"], forced_by=_FORCED[key])
        for other in ("random", "shuffled"):
            paper(f"fig7_{key}_final_rise_shots_minus_{other}",
                  "random or shuffled context raises the final-layer ID less than examples do",
                  "A, Fig. 7 (final-layer ID)", f"{_CONTROL[other]} raising the final-layer ID as much as examples "
                  "(the interval of the difference at or below 0)", SECTIONS["figures"])
    for key in READINGS:
        paper(f"examples_raise_last_layers_id_{key}", "examples raise the last layers' ID (the premise of Figs. 6-8)",
              "A, Fig. 7 (premise)", f"the mean change from 0 shots over the last {LAST_SHARE_WORDS} at or below 0",
              SECTIONS["changes"])
        paper(f"examples_raise_last_layers_id_{key}_vs_random", "examples raise the last layers' ID more than random "
              "tokens of the same length", "A, Fig. 7 (premise)", f"the change over the last {LAST_SHARE_WORDS} with "
              "examples at or below that with random tokens (same item and k)", SECTIONS["changes"])
        for scoring in SCORINGS:
            sfx = "" if scoring == "greedy" else "_choice"
            paper(f"fig6_{key}_fixed_k_within_item{sfx}", "the larger the last layers' ID increase, the more likely a "
                  "correct answer (within a question at fixed k: across independent example sets)", "A, Fig. 6",
                  f"within a question, the example sets with a larger change over the last {LAST_SHARE_WORDS} no "
                  "more often right (the interval at or below 0)", SECTIONS["fits"])
        paper(f"examples_raise_last_layers_id_{key}_fixed_k_vs_random", "examples raise the last layers' ID more "
              "than random tokens of the same length (at fixed k, each example set against its own control)",
              "A, Fig. 7 (premise)", f"the change over the last {LAST_SHARE_WORDS} with examples at or below that "
              "with matched random tokens", SECTIONS["changes"])
        paper(f"fig8_{key}_first_layer_flat_controlling_k_family", "the first layers' ID change is not informative "
              "of correctness (with k and family held fixed)", "A, Fig. 8",
              f"the first-layer change predicting correctness beyond k and family (the slope's interval outside "
              f"±{FIG8_FLAT_MARGIN} per SD and away from 0)", SECTIONS["fits"], direction="none",
              null_margin=FIG8_FLAT_MARGIN)
    for key in (*READINGS, "twonn"):
        claims[f"final_{key}_slope_controlling_k_family"] = ClaimSpec(
            "does the final-layer change predict beyond k and family?", "not in the paper", "ours", "greater",
            against="no slope beyond k and family (the interval at or below 0): a pooled association would then "
                    "come from k or the family", min_n=MIN_ITEMS, section=SECTIONS["fits"])
    claims["fig6_twonn_final_rise_predicts_correct"] = ClaimSpec(
        "Fig. 6 with a geometric ID (TwoNN)", "not in the paper", "ours", "greater",
        against="prompts with a larger final-layer TwoNN increase no more often correct", min_n=MIN_ITEMS,
        section=SECTIONS["twonn"])
    claims["fig6_twonn_within_item"] = ClaimSpec(
        "Fig. 6 with a geometric ID (TwoNN), within a question", "not in the paper", "ours", "greater",
        against="within a question, the k with a larger final-layer TwoNN increase no more often right",
        min_n=MIN_WITHIN_ITEMS, section=SECTIONS["twonn"])
    return claims


CLAIMS: dict[str, ClaimSpec] = _declare()


def claim_values(rows: pd.DataFrame, config: Any) -> dict[str, Measured]:
    """Every claim of chapter 4 from a `rows_table` alone (and the run's `n_boot` and `seed`).

    Greedy-scored claims use every base item; choice-scored ones (suffix `_choice`) the base items that
    constrained choice also got wrong at 0 shots. Correlations and slopes use the prompts with examples. A claim
    is judged only on at least its `min_n` items (`MIN_ITEMS` base items; the within-item claims
    `MIN_WITHIN_ITEMS` items whose correctness varies over k): below that it is left out ("not judged at this
    size"), since a bootstrap over a handful of items gives intervals far too narrow to mean anything."""
    cfg = base.settings(config)
    table = rows
    delta = table_deltas(table)
    L = delta["id_abs"].shape[1]
    last = L - 1
    shots = (table["context"] == "shots").to_numpy()
    in_sets = table["context"].astype(str).str.startswith("set_").to_numpy()  # the fixed-k example sets
    groups = table["item"].to_numpy()
    contexts = set(table["context"])
    boot = dict(n_boot=cfg["n_boot"], level=LEVEL, seed=cfg["seed"])
    out: dict[str, Measured] = {}

    def add(claim_id: str, value: float, interval: Any, note: str, n_items: int) -> None:
        if n_items >= CLAIMS[claim_id].min_n:
            out[claim_id] = Measured(float(value), tuple(float(v) for v in interval), note)

    def n_of(sel: np.ndarray) -> int:
        return int(len(np.unique(groups[sel])))

    for scoring, column in SCORINGS.items():
        sfx = "" if scoring == "greedy" else "_choice"
        sel = shots & (table["choice_base"].to_numpy(bool) if scoring == "choice" else True)
        y = table[column].to_numpy(float)
        how = "greedy answers" if scoring == "greedy" else "constrained choice among the family's answers"
        n_sel = n_of(sel)
        if sel.sum() < 4 or np.ptp(y[sel]) == 0:
            continue
        for key, m in READINGS.items():
            x = delta[m][:, last]
            rho, ci = stats.bootstrap_correlation(x[sel], y[sel], groups[sel], **boot)
            add(f"fig6_{key}_final_rise_predicts_correct{sfx}", rho, ci,
                f"Spearman rho over prompts with examples (pooled), eq. 8 {key} reading, {how}, {n_sel} items", n_sel)
            r_w, ci_w, n_w = stats.within_item_correlation(x[sel], y[sel], groups[sel], **boot)
            add(f"fig6_{key}_within_item{sfx}", r_w, ci_w,
                f"mean over {n_w} items of the within-item Spearman rho over k, {key} reading, {how}", n_w)
            if n_sel >= MIN_ITEMS:  # a jackknife refits once per item: only where the claims are judged
                fits = {layer: jackknife.logistic_slope_interval({"change": delta[m][sel, layer]}, y[sel],
                                                                 groups[sel], LEVEL) for layer in (0, last)}
                add(f"fig8_{key}_final_slope_positive{sfx}", *fits[last], f"logistic slope per SD of the "
                    f"final-layer change, {key} reading, {how}, {n_sel} items, jackknife over items", n_sel)
                add(f"fig8_{key}_first_layer_flat{sfx}", *fits[0], f"logistic slope per SD of the first-layer "
                    f"change, {key} reading, {how}, {n_sel} items, jackknife over items", n_sel)
        for other in ("random", "shuffled"):
            if other in contexts:
                only = table["choice_base"].to_numpy(bool) if scoring == "choice" else None
                value, ci, n_items = context_contrast(table, y, "shots", other, LEVEL, rows=only)
                add(f"fig7_accuracy_shots_minus_{other}{sfx}", value, ci,
                    f"fraction correct, same item and k, {n_items} items, {how}", n_items)
    band = last_layers(L)
    for key, m in READINGS.items():
        in_band = delta[m][:, band].mean(1)
        value, ci, n_items = item_mean_interval(in_band[shots], groups[shots], level=LEVEL)
        add(f"examples_raise_last_layers_id_{key}", value, ci, f"eq. 8 {key} reading, mean change from 0 shots over "
            f"layers {band[0]}-{band[-1]} and every k, {n_items} items", n_items)
        if "random" in contexts:
            value, ci, n_items = context_contrast(table, in_band, "shots", "random", LEVEL)
            add(f"examples_raise_last_layers_id_{key}_vs_random", value, ci, f"eq. 8 {key} reading, layers "
                f"{band[0]}-{band[-1]}, examples minus random tokens, same item and k, {n_items} items", n_items)
        if in_sets.any():
            value, ci, n_items = context_contrast(table, in_band, "set_shots", "set_random", LEVEL)
            add(f"examples_raise_last_layers_id_{key}_fixed_k_vs_random", value, ci, f"eq. 8 {key} reading, layers "
                f"{band[0]}-{band[-1]}, each example set minus its random tokens, {n_items} items", n_items)
            for scoring, column in SCORINGS.items():
                sfx = "" if scoring == "greedy" else "_choice"
                sel = (table["context"] == "set_shots").to_numpy() & (
                    table["choice_base"].to_numpy(bool) if scoring == "choice" else True)
                r_w, ci_w, n_w = stats.within_item_correlation(in_band[sel], table[column].to_numpy(float)[sel],
                                                               groups[sel], **boot)
                add(f"fig6_{key}_fixed_k_within_item{sfx}", r_w, ci_w, f"mean over {n_w} items of the Spearman rho "
                    f"across example sets at fixed k, layers {band[0]}-{band[-1]}, {key} reading, {scoring}", n_w)
        value, ci, n_items = item_mean_interval(delta[m][~in_sets, 0], groups[~in_sets], level=LEVEL)
        add(f"first_layer_rise_any_context_{key}", value, ci,
            f"eq. 8 {key} reading, layer 0, mean change over all context prompts, {n_items} items", n_items)
        for other in ("random", "shuffled"):
            if other in contexts:
                value, ci, n_items = context_contrast(table, delta[m][:, last], "shots", other, LEVEL)
                add(f"fig7_{key}_final_rise_shots_minus_{other}", value, ci,
                    f"eq. 8 {key} reading, final layer, same item and k, {n_items} items", n_items)
    y = table["correct"].to_numpy(float)
    if shots.sum() >= 4 and np.ptp(y[shots]) > 0:
        k = table["k"].to_numpy(float)[shots]
        fam = stats.family_dummies(table["family"].to_numpy()[shots])
        n_shots = n_of(shots)
        for key, m in (*READINGS.items(), ("twonn", "twonn")) if n_shots >= MIN_ITEMS else ():
            value, ci = jackknife.logistic_slope_interval({"change": delta[m][shots, last], "k": k, **fam},
                                                          y[shots], groups[shots], LEVEL)
            add(f"final_{key}_slope_controlling_k_family", value, ci, f"{key}: logistic slope per SD, with k and "
                "family covariates, greedy answers, jackknife over items", n_shots)
            if key in READINGS:
                value, ci = jackknife.logistic_slope_interval({"change": delta[m][shots, 0], "k": k, **fam},
                                                              y[shots], groups[shots], LEVEL)
                add(f"fig8_{key}_first_layer_flat_controlling_k_family", value, ci, f"{key}: first-layer logistic "
                    "slope per SD, with k and family covariates, greedy answers, jackknife over items", n_shots)
        rho, ci = stats.bootstrap_correlation(delta["twonn"][shots, last], y[shots], groups[shots], **boot)
        add("fig6_twonn_final_rise_predicts_correct", rho, ci,
            "Spearman rho, TwoNN of the question tokens' MLP inputs at the final layer, greedy answers", n_shots)
        r_w, ci_w, n_w = stats.within_item_correlation(delta["twonn"][shots, last], y[shots], groups[shots], **boot)
        add("fig6_twonn_within_item", r_w, ci_w, f"mean over {n_w} items of the within-item Spearman rho over k, "
            "TwoNN at the final layer, greedy answers", n_w)
    return {cid: out[cid] for cid in CLAIMS if cid in out}


def size_table(small: pd.DataFrame, large: pd.DataFrame, n_boot: int = 1000, level: float = LEVEL,
               seed: int = 0) -> pd.DataFrame:  # `size_comparison` judged, as a table
    return sizes.size_table(size_comparison(small, large, n_boot, level, seed))


WITHIN_ITEM_IDS = {scoring: {name: f"fig6_{key}_within_item{'' if scoring == 'greedy' else '_choice'}"
                             for key, name in (("abs", "absolute"), ("rel", "relative"))} for scoring in SCORINGS}
NOT_JUDGED_WHY = f"fewer than {MIN_WITHIN_ITEMS} items whose answers vary with k"


def not_judged_why(claim_id: str) -> str:
    """Why a run leaves a claim out: too few base items (or, within items, too few items that vary)."""
    if "_within_item" in claim_id:  # nested: answers vary with k; fixed k: they differ across example sets
        return "not judged at this size: " + NOT_JUDGED_WHY.replace(
            "with k", "across example sets" if "_fixed_k" in claim_id else "with k")
    return f"not judged at this size: fewer than {CLAIMS[claim_id].min_n} base items"


def run(config: Any, checkpoint: str | Path | None = None, *, loaded: Any = None,
        progress: bool = False) -> pd.DataFrame:
    """Chapter 4's whole experiment for `config` (a resolved Config or its dict): the rows of `rows_table`.
    `loaded`: the model, when the caller has it loaded already (else `config['model']` is loaded)."""
    cfg = base.settings(config)
    loaded = loaded if loaded is not None else lm.load(cfg["model"], cfg["device"])
    result = run_experiment(loaded, parse_families(cfg["families"]), cfg["n_candidates"], cfg["shots"],
                            cfg["perturbed_shots"], n_base=cfg["n_base"], seed=cfg["seed"], n_pool=cfg["n_pool"],
                            eps=cfg["eps"], batch_size=cfg["batch_size"], batch_tokens=cfg["batch_tokens"],
                            max_new_tokens=cfg["max_new_tokens"], chat_style=cfg["chat_style"],
                            progress=progress, checkpoint=checkpoint,
                            items_per_pass=cfg["items_per_pass"] or None, fixed_k=cfg["fixed_k"],
                            n_sets=cfg["n_sets"])
    check_answers_vary(result.rows)
    return rows_table(result)
