"""Chapter 3's experiment (paper A, Theorem 2.1, eq. 8 and section 3): geometric intrinsic dimension next to the
paper's attention count ID_eps.

Two halves. First the estimators against known answers: TwoNN on a 5-d subspace, and TwoNN and MLE against
scikit-dimension on the same samples. Then a real LLM: for every prompt of `tasks` with each number of
in-context examples in `shots` (and a random-token context of the same length), the MLP inputs of the last
`tail_tokens` tokens form one point cloud per layer, and the last token's attention rows give the paper's count
in both readings of eq. 8 and the effective degree. The changes with context are compared over prompts: a paired
bootstrap for the attention counts (a mean over prompts), a paired grouped jackknife for the geometric IDs (whose
nearest neighbours cross prompts, so they are recomputed without each deleted block of prompts).

Rows (`run`, or the steps below stacked with `base.stack`), one part each:

- `known_answer`: the TwoNN fit on the known 5-d subspace (estimate and its bootstrap interval over points);
- `skdim`: one row per (sample, estimator) compared with scikit-dimension (ours, theirs);
- `attention`: one row per (shots, prompt, layer): the paper's count (absolute, relative) and the effective
  degree of the last token, summed over heads;
- `id_change`: one row per comparison of two clouds' geometric ID (condition b minus condition a, one layer, one
  estimator), with its paired jackknife interval over prompts (`intrinsic_dim.id_difference`);
- `layer_correlation`: one row per (geometric estimator, attention count): Spearman's rho across layers of the
  two changes with context, with its paired jackknife over prompts (`intrinsic_dim.layer_change_correlation`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from icl_geometry import tasks
from icl_geometry.core import attention_graph as ag
from icl_geometry.core import intrinsic_dim as idm
from icl_geometry.core import stats
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.llm import engine, lm

LEVEL = 0.9  # every interval of the chapter is a 90% interval
BATCH = 8  # prompts per traced batch
CASES = (("subspace", 5, 50), ("sphere", 2, 3), ("swiss_roll", 2, 3), ("curved", 6, 120))  # known-d manifolds
SWEEP_DIMS = (2, 5, 10)  # true d of the curved manifolds in the sample-size sweep
SKDIM_MAX_N = 4000  # scikit-dimension's TwoNN sorts full distance rows: compared up to this many points
COUNTS = {"abs": "ID_eps absolute", "rel": "ID_eps relative", "eff": "effective degree"}
RANDOM = "random control"

_SHOTS_NOTE = "{measure}, mean over prompts, {k_max} vs {k0} shots; 90% paired bootstrap over prompts"
_FORCED = {  # why the first-layer counts cannot come out otherwise (exercise 3)
    "abs": "the absolute reading is capped at ceil(1/eps) - 1 keys per head; longer context spreads first-layer "
           "attention below eps, so it must fall",
    "rel": "relative reading counts keys above eps x the row maximum; on near-uniform first-layer attention "
           "that is roughly every added token, so it must rise",
}
MIN_PROMPTS = 20  # every LLM claim: at least 20 prompts (the size at which its interval's coverage is checked)
# The headings of the notebook sections that measure the claims (the report links there).
SECTIONS = {
    "known": "1. What intrinsic dimension is, and estimators you can check",
    "skdim": "Manifolds of known dimension, next to scikit-dimension",
    "context": "How both change with context",
    "control": "Is it the examples, or just a longer prompt?",
    "related": "Are the two notions related?",
}
_LAST = ("A, Sec. 3", "more shots raise ID_eps at the final layer")
_FIRST = ("A, Sec. 3", "prepending tokens raises the first-layer ID")
_GEO_RISE = "more examples in the prompt raise the geometric ID of the last layer's MLP inputs"
_NOT_LENGTH = "the rise with shots comes from the examples, not from prompt length"
_BOUNDS = "Thm 2.1 + eq. 8: the attention count bounds the MLP input's dimension"
_DIVERSITY = ("the random-token context differs from the examples in how varied its tokens are as well as in "
              "carrying no task: random vocabulary tokens are far more diverse than the examples' text, so a "
              "difference in the geometric ID of the tail tokens cannot be credited to the examples' content "
              "rather than to the context's diversity")


def _paper(statement: tuple[str, str], key: str, role: str, forced_by: str = "") -> ClaimSpec:
    where = "final layer" if "final" in statement[1] else "first layer"
    return ClaimSpec(statement[1], source=statement[0], kind="paper", direction="greater", role=role,
                     basis="empirical", min_n=MIN_PROMPTS, section=SECTIONS["context"], forced_by=forced_by,
                     against=f"the last token's ID_eps ({key} reading) at the {where} lower with the most shots than "
                             "with none: mean change over prompts below 0, its interval below 0")


CLAIMS: dict[str, ClaimSpec] = {
    "twonn_5d_subspace_in_r50": ClaimSpec(
        "known answer", source="Facco et al. 2017", kind="check", expected=5, tolerance=0.5,
        note="2000 points, 5-d linear subspace of R^50; 90% jackknife over blocks of points", section=SECTIONS["known"],
        against="an estimate more than 0.5 from 5"),
    "max_rel_diff_vs_skdim": ClaimSpec(
        "cross-check", source="scikit-dimension, Bac et al. 2021", kind="check", expected=0.0, tolerance=0.02,
        note="TwoNN and MLE, same samples, same settings", section=SECTIONS["skdim"],
        against="an estimate more than 2% from scikit-dimension's on the same sample"),
    "id_eps_abs_last_layer_rise": _paper(_LAST, "absolute", "primary"),
    "id_eps_abs_first_layer_rise": _paper(_FIRST, "absolute", "primary", forced_by=_FORCED["abs"]),
    "id_eps_rel_last_layer_rise": _paper(_LAST, "relative", "supporting"),
    "id_eps_rel_first_layer_rise": _paper(_FIRST, "relative", "supporting", forced_by=_FORCED["rel"]),
    "twonn_last_layer_rise": ClaimSpec(_GEO_RISE, direction="greater", min_n=MIN_PROMPTS, section=SECTIONS["context"],
                                       against="a lower TwoNN of the last layer's MLP inputs with the most shots"),
    "mle_last_layer_rise": ClaimSpec(_GEO_RISE, direction="greater", min_n=MIN_PROMPTS, section=SECTIONS["context"],
                                     against="a lower MLE of the last layer's MLP inputs with the most shots"),
    "twonn_last_layer_shots_minus_random": ClaimSpec(
        _NOT_LENGTH, direction="greater", min_n=MIN_PROMPTS, section=SECTIONS["control"], confounded_by=_DIVERSITY,
        against="TwoNN with the examples no higher than with the random-token context of the same length"),
    "mle_last_layer_shots_minus_random": ClaimSpec(
        _NOT_LENGTH, direction="greater", min_n=MIN_PROMPTS, section=SECTIONS["control"], confounded_by=_DIVERSITY,
        against="MLE with the examples no higher than with the random-token context of the same length"),
    "spearman_twonn_change_vs_id_eps_change_abs": ClaimSpec(
        _BOUNDS, direction="greater", min_n=MIN_PROMPTS, section=SECTIONS["related"],
        against="across layers, TwoNN's change with context not rising with the absolute count's change (rho <= 0)"),
    "spearman_twonn_change_vs_id_eps_change_rel": ClaimSpec(
        _BOUNDS, direction="greater", min_n=MIN_PROMPTS, section=SECTIONS["related"],
        against="across layers, TwoNN's change with context not rising with the relative count's change (rho <= 0)"),
}


# ----------------------------------------------------------------------------- small shared rules

def mle_k(n_prompts: int) -> int:
    """MLE's neighbour count on the LLM clouds: below the size of one token's cluster (`n_prompts` points)."""
    return min(20, int(n_prompts) // 2)


def mle_label(n_prompts: int) -> str:
    """How tables and notes name the MLE estimate of the LLM section."""
    return f"MLE k={mle_k(n_prompts)}"


def shots_label(k: int) -> str:
    """A condition's name in the `id_change` rows: 'k shots' (or `RANDOM` for the random-token control)."""
    return f"{int(k)} shots"


def prompt_groups(n_prompts: int, tail_tokens: int) -> np.ndarray:
    """Which prompt each point of a cloud came from (its `tail_tokens` tokens in a row)."""
    return np.repeat(np.arange(n_prompts), tail_tokens)


# ----------------------------------------------------------------------------- section 1: the estimators

def known_answer(seed: int, n_boot: int) -> tuple[idm.IDEstimate, idm.PointStats, pd.DataFrame]:
    """TwoNN on 2000 points of a 5-d subspace of R^50 with its jackknife interval over blocks of points
    (neighbours recomputed: a bootstrap of the per-point statistics with the neighbours fixed covers a 90% target
    only about 78% of the time here, tests/test_coverage.py), the per-point statistics behind it (for the
    figure), and the `known_answer` rows. `n_boot` is kept for the signature and not used."""
    X = idm.manifold("subspace", 2000, d=5, D=50, seed=seed)
    est = idm.twonn(X, ci=LEVEL, n_boot=n_boot, seed=seed, interval="jackknife")
    rows = pd.DataFrame([{"manifold": "subspace", "d": 5, "D": 50, "n": 2000, "estimator": "TwoNN",
                          "estimate": est.estimate, "low": est.ci[0], "high": est.ci[1]}])
    return est, idm.twonn_stats(X), rows


def _skdim(X: np.ndarray, mle: bool = True) -> tuple[float, float | None]:
    """scikit-dimension's TwoNN and (optionally) MLE with 20 neighbours on the same sample, warnings muted."""
    import skdim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        twonn = skdim.id.TwoNN().fit(X).dimension_
        mle_ = skdim.id.MLE().fit(X, n_neighbors=20).dimension_ if mle else None
    return twonn, mle_


def known_manifolds(sample_sizes: Sequence[int], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every estimator on manifolds of known dimension (`CASES`), next to scikit-dimension: the table the
    chapter shows, and the `skdim` rows (ours and theirs per sample and estimator)."""
    n = min(max(sample_sizes), 2000)
    shown, compared = [], []
    for name, d, D in CASES:
        X = idm.manifold(name, n, d, D, seed=seed)
        sk_twonn, sk_mle = _skdim(X)
        ours_twonn, ours_mle = idm.twonn(X).estimate, idm.mle(X, 20).estimate
        compared += [{"manifold": name, "d": d, "D": D, "n": n, "estimator": "TwoNN", "ours": ours_twonn,
                      "skdim": sk_twonn},
                     {"manifold": name, "d": d, "D": D, "n": n, "estimator": "MLE k=20", "ours": ours_mle,
                      "skdim": sk_mle}]
        shown.append({"manifold": name, "d": d, "D": D, "TwoNN": ours_twonn, "TwoNN (skdim)": sk_twonn,
                      "MLE k=20": ours_mle, "MLE (skdim)": sk_mle, "GRIDE n1=4": idm.gride(X, 4).estimate,
                      "PCA 90%": idm.pca_dim(X, 0.9).estimate, "participation ratio": idm.participation_ratio(X)})
    return pd.DataFrame(shown), pd.DataFrame(compared)


def sample_size_sweep(sample_sizes: Sequence[int], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """TwoNN and MLE on curved d-manifolds in R^100 against the number of points (the bias figure), and the
    `skdim` rows of the samples small enough for scikit-dimension's TwoNN."""
    sweep, compared = [], []
    for d in SWEEP_DIMS:
        for n in sample_sizes:
            X = idm.manifold("curved", n, d, 100, seed=seed + n)
            row = {"d": d, "n": n, "TwoNN": idm.twonn(X).estimate, "MLE k=20": idm.mle(X, min(20, n - 1)).estimate}
            if n <= SKDIM_MAX_N:
                compared.append({"manifold": "curved", "d": d, "D": 100, "n": n, "estimator": "TwoNN",
                                 "ours": row["TwoNN"], "skdim": _skdim(X, mle=False)[0]})
            sweep.append(row)
    return pd.DataFrame(sweep), pd.DataFrame(compared)


# ----------------------------------------------------------------------------- sections 2-3: a real LLM

def make_prompts(loaded: Any, family: str, n_prompts: int, shots: Sequence[int],
                 seed: int) -> tuple[list, list, dict[int, list[str]], dict[int, list[int]]]:
    """The test questions, the pool of examples, each question's prompt with k examples for every k in `shots`
    (nested), and every prompt's token count."""
    test_items, pool = tasks.split(family, n_prompts, n_pool=max(20, 2 * max(shots)), seed=seed)
    prompts = {k: tasks.few_shot_prompts(loaded, test_items, pool, k, seed=seed) for k in shots}
    n_tokens = {k: [len(loaded.tokenizer(p, add_special_tokens=True)["input_ids"]) for p in ps]
                for k, ps in prompts.items()}
    return test_items, pool, prompts, n_tokens


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
    first `prefix` positions (layers, prefix, d_model), for the duplicates section."""
    tail = tuple(range(-tail_tokens, 0))
    positions = tuple(range(prefix)) + tail
    starts = range(0, len(prompts), BATCH)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc)
    summaries, states = [], []
    for start in starts:
        for tr in engine.trace_batch(loaded, prompts[start:start + BATCH], positions=positions, batch_size=BATCH):
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


def attention_rows(attn: Mapping[int, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """The `attention` rows: one per (shots, prompt, layer) with the summed counts and the effective degree."""
    frames = []
    for k, a in attn.items():
        n_prompts, n_layers = a["abs"].shape
        prompt, layer = np.meshgrid(np.arange(n_prompts), np.arange(n_layers), indexing="ij")
        frames.append(pd.DataFrame({"shots": int(k), "prompt": prompt.ravel(), "layer": layer.ravel(),
                                    **{name: a[name].ravel() for name in COUNTS}}))
    return pd.concat(frames, ignore_index=True)


def _id_change(cloud_a: torch.Tensor, cloud_b: torch.Tensor, a: str, b: str, layer: int, method: str,
               groups: np.ndarray, k: int) -> dict[str, Any]:
    """One `id_change` row: the geometric ID of cloud b minus cloud a, paired jackknife over prompts."""
    kw = {"k": k} if method == "mle" else {}
    dd = idm.id_difference(cloud_a, cloud_b, method=method, groups_a=groups, groups_b=groups, ci=LEVEL, **kw)
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


def relation_table(per_layer: pd.DataFrame, correlations: pd.DataFrame,
                   config: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The levels of every measure per (shots, layer) side by side, and the table relating the two notions:
    per (geometric estimator, attention count) the rank correlation of levels across (layer, shots), a
    description without interval (layers are not independent samples), and of changes with its interval
    (the `layer_correlation` rows)."""
    s = base.settings(config)
    wide = per_layer.pivot_table(index=["shots", "layer"], columns="measure", values="estimate").reset_index()
    geo = {"twonn": "TwoNN", "mle": mle_label(int(s["n_prompts"]))}
    rows = []
    for r in correlations.itertuples(index=False):
        g, a = geo[r.method], count_label(r.attention, float(s["eps"]))
        rows.append({"geometric": g, "attention": a, "rho levels": stats.spearman_interval(wide[g], wide[a])[0],
                     "rho changes": r.rho, "changes low": r.low, "changes high": r.high})
    return wide, pd.DataFrame(rows)


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


def control_prompts(loaded: Any, test_items: Sequence, pool: Sequence, k: int, seed: int) -> list[str]:
    """The length control: the same questions after k turns of random vocabulary tokens of the same lengths."""
    return tasks.few_shot_prompts(loaded, test_items, pool, k, seed=seed, context="random")


def control_changes(clouds: Mapping[int, torch.Tensor], control: torch.Tensor, groups: np.ndarray,
                    k_mle: int) -> pd.DataFrame:
    """The `id_change` rows of the length control at the last layer: random control minus the fewest shots,
    and the most shots minus random control, for TwoNN and MLE."""
    k0, k_max = min(clouds), max(clouds)
    last = len(control) - 1
    rows = []
    for method in ("twonn", "mle"):
        for a, cloud_a, b, cloud_b in ((shots_label(k0), clouds[k0], RANDOM, control),
                                       (RANDOM, control, shots_label(k_max), clouds[k_max])):
            rows.append(_id_change(cloud_a[last], cloud_b[last], a, b, last, method, groups, k_mle))
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


def run(config: Any, checkpoint: str | Path | None = None, *, progress: bool = False) -> pd.DataFrame:
    """The chapter's whole computation: its rows (see the module docstring), in the notebook's order.

    `checkpoint` is accepted for the protocol and not used: a ci run takes about a minute, and the only long
    step, tracing, keeps every prompt's activations in memory (too large to pickle at the full profile)."""
    s = base.settings(config)
    seed, n_boot, shots = int(s["seed"]), int(s["n_boot"]), [int(k) for k in s["shots"]]
    _, _, known = known_answer(seed, n_boot)
    _, sk_known = known_manifolds(s["sample_sizes"], seed)
    _, sk_sweep = sample_size_sweep(s["sample_sizes"], seed)
    loaded = lm.load(s["model"], s["device"])
    test_items, pool, prompts, _ = make_prompts(loaded, s["family"], int(s["n_prompts"]), shots, seed)
    summaries = {k: trace_prompts(loaded, prompts[k], int(s["tail_tokens"]), float(s["eps"]), progress=progress,
                                  desc=f"{k} shots")[0] for k in shots}
    clouds = {k: cloud(summaries[k], loaded.n_layers, loaded.d_model) for k in shots}
    attn = {k: counts(summaries[k]) for k in shots}
    groups = prompt_groups(int(s["n_prompts"]), int(s["tail_tokens"]))
    k_mle = mle_k(int(s["n_prompts"]))
    geo = geometry_changes(clouds, groups, k_mle)
    ctrl = trace_prompts(loaded, control_prompts(loaded, test_items, pool, max(shots), seed),
                         int(s["tail_tokens"]), float(s["eps"]), progress=progress, desc=RANDOM)[0]
    ctrl_geo = control_changes(clouds, cloud(ctrl, loaded.n_layers, loaded.d_model), groups, k_mle)
    corr = change_correlations(clouds, attn, groups, k_mle)
    return base.stack(known_answer=known, skdim=pd.concat([sk_known, sk_sweep], ignore_index=True),
                      attention=attention_rows(attn), id_change=pd.concat([geo, ctrl_geo], ignore_index=True),
                      layer_correlation=corr)


# ----------------------------------------------------------------------------- from rows to claims

def changes_table(attention: pd.DataFrame, id_change: pd.DataFrame, config: Any) -> pd.DataFrame:
    """Every measure's change from the fewest shots, at the first and the last layer: the attention counts
    (mean over prompts of the paired difference, bootstrap over prompts) and the geometric IDs (the
    `id_change` rows against the fewest shots). Columns layer, shots, measure, change, low, high, base."""
    s = base.settings(config)
    n_boot, seed = int(s["n_boot"]), int(s["seed"])
    shots = sorted(int(k) for k in s["shots"])
    k0, last = shots[0], int(attention["layer"].max())
    names = {**COUNTS, "twonn": "TwoNN", "mle": mle_label(int(s["n_prompts"]))}
    geo = id_change[id_change["condition_a"] == shots_label(k0)].set_index(["layer", "condition_b", "method"])

    def per_prompt(k: int, layer: int, name: str) -> np.ndarray:
        sel = attention[(attention["shots"] == k) & (attention["layer"] == layer)].sort_values("prompt")
        values = sel[name].to_numpy()
        return values.astype(np.int64) if name in ("abs", "rel") else values  # the counts are integers

    rows = []
    for layer in (0, last):
        for k in shots[1:]:
            for name in COUNTS:
                a, b = per_prompt(k0, layer, name), per_prompt(k, layer, name)
                mean, (low, high) = stats.bootstrap_interval(b - a, n_boot=n_boot, level=LEVEL, seed=seed)
                rows.append({"layer": layer, "shots": k, "measure": name, "change": mean, "low": low, "high": high,
                             "base": a.mean()})
            for method in ("twonn", "mle"):
                r = geo.loc[(layer, shots_label(k), method)]
                rows.append({"layer": layer, "shots": k, "measure": method, "change": r["change"],
                             "low": r["low"], "high": r["high"], "base": r["id_a"]})
    table = pd.DataFrame(rows)
    table["measure"] = table["measure"].map(names)
    return table


def length_control_table(id_change: pd.DataFrame, config: Any) -> pd.DataFrame:
    """The length-control comparisons as the chapter shows them: measure, comparison ('b minus a'), change and
    its interval."""
    names = {"twonn": "TwoNN", "mle": mle_label(int(base.settings(config)["n_prompts"]))}
    sel = id_change[(id_change["condition_a"] == RANDOM) | (id_change["condition_b"] == RANDOM)]
    return pd.DataFrame({"measure": sel["method"].map(names).to_numpy(),
                         "comparison": (sel["condition_b"] + " minus " + sel["condition_a"]).to_numpy(),
                         "change": sel["change"].to_numpy(), "low": sel["low"].to_numpy(),
                         "high": sel["high"].to_numpy()})


def _parts(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The parts present in `rows` (an older run may have saved only some)."""
    return {name: base.part(rows, name) for name in rows[base.PART].unique()}


def claim_values(rows: pd.DataFrame, config: Any) -> dict[str, Measured]:
    """Every claim of `CLAIMS` the present parts of `rows` allow, from the rows and the run's settings alone; the
    LLM claims only with at least their `min_n` prompts (fewer: not judged at this size)."""
    s = base.settings(config)
    parts = _parts(rows)
    shots = sorted(int(k) for k in s["shots"])
    k0, k_max = shots[0], shots[-1]
    out: dict[str, Measured] = {}
    if "known_answer" in parts:
        r = parts["known_answer"].iloc[0]
        out["twonn_5d_subspace_in_r50"] = Measured(float(r["estimate"]), (float(r["low"]), float(r["high"])))
    if "skdim" in parts:
        sk = parts["skdim"]
        rel = (sk["ours"] - sk["skdim"]).abs() / sk["skdim"]
        out["max_rel_diff_vs_skdim"] = Measured(float(rel.max()))
    if "attention" in parts and "id_change" in parts:
        changes = changes_table(parts["attention"], parts["id_change"], s)
        last = int(parts["attention"]["layer"].max())

        def change(measure: str, layer: int) -> tuple[float, tuple[float, float]]:
            r = changes[(changes.measure == measure) & (changes.layer == layer) & (changes.shots == k_max)].iloc[0]
            return float(r["change"]), (float(r["low"]), float(r["high"]))

        for key in ("abs", "rel"):
            note = _SHOTS_NOTE.format(measure=COUNTS[key], k_max=k_max, k0=k0)
            for layer, where in ((last, "last"), (0, "first")):
                value, interval = change(COUNTS[key], layer)
                out[f"id_eps_{key}_{where}_layer_rise"] = Measured(value, interval, note)
        for key, measure in (("twonn", "TwoNN"), ("mle", mle_label(int(s["n_prompts"])))):
            value, interval = change(measure, last)
            out[f"{key}_last_layer_rise"] = Measured(
                value, interval, f"geometric ID of the last layer's MLP inputs, {k_max} vs {k0} shots; 90% paired "
                                 "jackknife over prompts, neighbours recomputed")
    if "id_change" in parts:
        ic = parts["id_change"]
        labels = {"twonn": "TwoNN", "mle": mle_label(int(s["n_prompts"]))}
        for method in ("twonn", "mle"):
            sel = ic[(ic.method == method) & (ic.condition_a == RANDOM) & (ic.condition_b == shots_label(k_max))]
            if sel.empty:
                continue
            r = sel.iloc[0]
            out[f"{method}_last_layer_shots_minus_random"] = Measured(
                float(r["change"]), (float(r["low"]), float(r["high"])),
                f"{labels[method]} of the last layer's MLP inputs, {k_max} shots minus a random-token context of the "
                "same turns and token counts; 90% paired jackknife over prompts, neighbours recomputed")
    if "layer_correlation" in parts:
        lc = parts["layer_correlation"]
        n_layers = int(parts["attention"]["layer"].nunique()) if "attention" in parts else None
        over = f"the {n_layers} layers" if n_layers else "the layers"
        for key in ("abs", "rel"):
            r = lc[(lc.method == "twonn") & (lc.attention == key)].iloc[0]
            out[f"spearman_twonn_change_vs_id_eps_change_{key}"] = Measured(
                float(r["rho"]), (float(r["low"]), float(r["high"])),
                f"rank correlation over {over} of the change with context ({k_max} vs {k0} shots) of TwoNN and of "
                "ID_eps; 90% paired jackknife over prompts (Fisher scale), every layer and its neighbours recomputed "
                "without each deleted block (layers are not independent samples)")
    n_prompts = int(parts["attention"]["prompt"].nunique()) if "attention" in parts else int(s["n_prompts"])
    return {cid: m for cid, m in out.items() if n_prompts >= CLAIMS[cid].min_n}
