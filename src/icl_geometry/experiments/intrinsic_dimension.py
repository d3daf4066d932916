"""Chapter 3's experiment (paper A, Theorem 2.1, eq. 8 and section 3): geometric intrinsic dimension next to the
paper's attention count ID_eps.

Two halves. First the estimators against known answers: TwoNN on a 5-d subspace, and TwoNN and MLE against
scikit-dimension on the same samples. Then a real LLM: for every prompt of `tasks` with each number of
in-context examples in `shots` (and, at the most shots, the controls of `tasks.context_clouds`: independent random
tokens, random tokens shared across prompts like the shots, the shots' words shuffled; optionally shots shared by
no two prompts), the MLP inputs of the last `tail_tokens` tokens form one point cloud per layer, and the last
token's attention rows give the paper's count in both readings of eq. 8 and the effective degree. The changes with
context are compared over prompts: a paired bootstrap for the attention counts (a mean over prompts), a paired
grouped jackknife for the geometric IDs (whose nearest neighbours cross prompts, so they are recomputed without
each deleted block of prompts). The LLM steps live in `tasks.context_clouds` and are re-exported here.

Rows (`run`, or the steps below stacked with `base.stack`), one part each:

- `known_answer`: the TwoNN fit on the known 5-d subspace (estimate and its bootstrap interval over points);
- `skdim`: one row per (sample, estimator) compared with scikit-dimension (ours, theirs);
- `attention`: one row per (shots, prompt, layer): the paper's count (absolute, relative) and the effective
  degree of the last token, summed over heads;
- `id_change`: one row per comparison of two clouds' geometric ID (condition b minus condition a, one layer, one
  estimator), with its paired jackknife interval over prompts (`intrinsic_dim.id_difference`);
- `layer_correlation`: one row per (geometric estimator, attention count): Spearman's rho across layers of the
  two changes with context, with its paired jackknife over prompts (`intrinsic_dim.layer_change_correlation`);
- `control_attention`: one row per (context, prompt, layer) of every control, as `attention` (issue 28).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from icl_geometry.core import intrinsic_dim as idm
from icl_geometry.core import stats
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.llm import lm
# The LLM section's steps live in tasks/context_clouds; the notebook calls them by these names.
from icl_geometry.tasks.context_clouds import (BATCH, CONTEXT_LABELS, CONTROLS, COUNTS, LEVEL, RANDOM,  # noqa: F401
                                               attention_rows, change_correlations, cloud, control_attention_rows,
                                               control_changes, control_prompts, count_label, counts,
                                               geometry_changes, make_prompts, mle_k, mle_label, per_layer_table,
                                               prompt_groups, shots_label, summarise, trace_controls, trace_prompts)

CASES = (("subspace", 5, 50), ("sphere", 2, 3), ("swiss_roll", 2, 3), ("curved", 6, 120))  # known-d manifolds
SWEEP_DIMS = (2, 5, 10)  # true d of the curved manifolds in the sample-size sweep
SKDIM_MAX_N = 4000  # scikit-dimension's TwoNN sorts full distance rows: compared up to this many points

_SHOTS_NOTE = "{measure}, mean over prompts, {k_max} vs {k0} shots; 90% paired bootstrap over prompts"
_FORCED = {  # why the first-layer counts cannot come out otherwise (exercise 3)
    "abs": "the absolute reading is capped at ceil(1/eps) - 1 keys per head; longer context spreads first-layer "
           "attention below eps, so it must fall",
    "rel": "relative reading counts keys above eps x the row maximum; on near-uniform first-layer attention "
           "that is roughly every added token, so it must rise",
}
MIN_PROMPTS = 20  # every LLM claim: at least 20 prompts (the size at which its interval's coverage is checked)
MIN_CONTROL_PROMPTS = 60  # the diversity-matched controls (issue 28): judged from 60 prompts, their coverage size
# "no effect" below half a dimension (TwoNN, MLE) or one attended key over all heads (ID_eps, absolute)
NULL_MARGINS = {"twonn": 0.5, "mle": 0.5, "id_eps_abs": 1.0}
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


_WHAT = {"twonn": "TwoNN of the last layer's MLP inputs", "mle": "MLE of the last layer's MLP inputs",
         "id_eps_abs": "the last token's ID_eps (absolute) at the final layer"}
_CONTROL = {  # what each control keeps of the shots and what it takes away
    "matched_random": ("random-token examples shared across prompts exactly where the shots are (the same turns, "
                       "token counts and diversity across prompts, no task)"),
    "shuffled": "the same shots' words in a random order (the same words and diversity, no task)",
}


def _control_claim(measure: str, control: str) -> ClaimSpec:
    """Shots minus a diversity-matched control at the last layer: the examples, not the context's diversity."""
    fig7 = "; A, Fig. 7's comparison, the control's diversity matched" if measure == "id_eps_abs" else ""
    return ClaimSpec(
        f"the examples themselves, not the context's diversity: {_WHAT[measure]} is higher after the shots than "
        f"after {_CONTROL[control]}{fig7}", direction="greater", null_margin=NULL_MARGINS[measure],
        role="primary" if control == "matched_random" else "supporting", min_n=MIN_CONTROL_PROMPTS,
        section=SECTIONS["control"],
        against=f"{_WHAT[measure]} after the shots at or below its level after {_CONTROL[control].split(' (')[0]}: "
                f"the difference's interval below 0, or inside +-{NULL_MARGINS[measure]:g} (no effect)")


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
    **{f"{measure}_last_layer_shots_minus_{control}": _control_claim(measure, control)
       for control in ("matched_random", "shuffled") for measure in ("twonn", "mle", "id_eps_abs")},
}


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
    ctrl_geo, ctrl_attn, _ = trace_controls(loaded, test_items, pool, clouds, groups, k_mle, seed=seed,
                                            tail_tokens=int(s["tail_tokens"]), eps=float(s["eps"]),
                                            contexts=contexts(s), progress=progress)
    corr = change_correlations(clouds, attn, groups, k_mle)
    return base.stack(known_answer=known, skdim=pd.concat([sk_known, sk_sweep], ignore_index=True),
                      attention=attention_rows(attn), id_change=pd.concat([geo, ctrl_geo], ignore_index=True),
                      layer_correlation=corr, control_attention=ctrl_attn)


def contexts(config: Any) -> tuple[str, ...]:
    """The contexts a run traces beside the shots: the two random controls, the shuffled words when
    `shuffled_control` (default on), and disjoint shots when `disjoint_shots`."""
    s = base.settings(config)
    return (*(c for c in CONTROLS if c != "shuffled" or s.get("shuffled_control", True)),
            *(("disjoint_shots",) if s.get("disjoint_shots") else ()))


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


def control_table(rows: pd.DataFrame, config: Any) -> pd.DataFrame:
    """The controls side by side at the last layer: per context traced beside the shots (`CONTEXT_LABELS`, in that
    order) and per measure, the most shots minus that context ('disjoint shots' also minus the random control):
    ID_eps absolute and relative as the mean over prompts of the paired difference (90% bootstrap over prompts,
    as `changes_table`; needs the `attention` and `control_attention` parts), TwoNN and MLE from the `id_change`
    rows (90% paired jackknife over prompts). Columns comparison, context, measure, change, low, high, level_a
    (the context's), level_b (the shots'), n_prompts."""
    s = base.settings(config)
    parts = _parts(rows)
    k_max = max(int(k) for k in s["shots"])
    names = {"abs": COUNTS["abs"], "rel": COUNTS["rel"], "twonn": "TwoNN", "mle": mle_label(int(s["n_prompts"]))}
    ic = parts.get("id_change")
    att, ctrl = parts.get("attention"), parts.get("control_attention")
    shots = shots_label(k_max)
    present = set(ctrl["context"]) if ctrl is not None else set()
    present |= set(ic["condition_a"]) if ic is not None else set()
    pairs = [(label, shots) for label in CONTEXT_LABELS.values() if label in present]
    if {RANDOM, CONTEXT_LABELS["disjoint_shots"]} <= present:
        pairs.append((RANDOM, CONTEXT_LABELS["disjoint_shots"]))

    def per_prompt(label: str, key: str) -> np.ndarray | None:
        frame, col = (att, "shots") if label == shots else (ctrl, "context")
        if frame is None or att is None:
            return None
        sel = frame[(frame[col] == (k_max if label == shots else label)) & (frame["layer"] == att["layer"].max())]
        values = sel.sort_values("prompt")[key].to_numpy()
        return values.astype(np.int64) if key in ("abs", "rel") else values

    n_prompts = int(att["prompt"].nunique()) if att is not None else int(s["n_prompts"])
    out = []
    for a, b in pairs:
        row = {"comparison": f"{b} minus {a}", "context": a}
        for key in ("abs", "rel"):
            va, vb = per_prompt(a, key), per_prompt(b, key)
            if va is None or vb is None or len(va) != len(vb) or len(va) < 2:
                continue
            mean, (low, high) = stats.bootstrap_interval(vb - va, n_boot=int(s["n_boot"]), level=LEVEL,
                                                         seed=int(s["seed"]))
            out.append({**row, "measure": names[key], "change": mean, "low": low, "high": high,
                        "level_a": va.mean(), "level_b": vb.mean(), "n_prompts": len(va)})
        geo = ic[(ic.condition_a == a) & (ic.condition_b == b)] if ic is not None else pd.DataFrame()
        for r in geo.itertuples(index=False):
            out.append({**row, "measure": names[r.method], "change": r.change, "low": r.low, "high": r.high,
                        "level_a": r.id_a, "level_b": r.id_b, "n_prompts": n_prompts})
    return pd.DataFrame(out, columns=["comparison", "context", "measure", "change", "low", "high", "level_a",
                                      "level_b", "n_prompts"])


def findings(rows: pd.DataFrame, config: Any) -> list[str]:
    """The controls' reading as sentences generated from the run's own `control_table` (the ci run's or a recorded
    one's numbers, never typed-in ones): each comparison with its intervals, then, per measure, what matching the
    random control's diversity changes."""
    table = control_table(rows, config)
    if table.empty:
        return []

    def side(r: Any) -> int:  # +1: interval above 0, -1: below 0, 0: it holds 0
        return 1 if r.low > 0 else -1 if r.high < 0 else 0

    n = int(table["n_prompts"].max())
    lines = [f"{c} ({n} prompts, last layer): " + "; ".join(
        f"{r.measure} {r.change:+.2f} [{r.low:+.2f}, {r.high:+.2f}]" for r in g.itertuples()) + "."
        for c, g in table.groupby("comparison", sort=False)]
    where = {1: "lie above", -1: "lie below", 0: "are not separated from"}
    matched = CONTEXT_LABELS["matched_random"]
    shots_rows = ~table.comparison.str.startswith(CONTEXT_LABELS["disjoint_shots"])  # the most shots minus each
    for measure, g in table[shots_rows & table.context.isin([RANDOM, matched])].groupby("measure", sort=False):
        got = {r.context: side(r) for r in g.itertuples()}
        if len(got) < 2:
            continue
        a, b = got[RANDOM], got[matched]
        verdict = ("the difference goes away once the diversity is matched: it was the control's diversity, not "
                   "the examples" if a and not b else
                   "the difference holds with the diversity matched, so it comes from the examples" if a and a == b else
                   "only with the diversity matched do the examples stand apart" if b and not a else
                   "the two controls disagree in sign: diversity moves it more than the examples do" if a and b else
                   "neither control separates from the examples at this size")
        lines.append(f"{measure}: the shots {where[a]} the independent random control and {where[b]} the "
                     f"diversity-matched one; {verdict}.")
    shuffled = table[table.context == CONTEXT_LABELS["shuffled"]]
    if len(shuffled):
        lines.append("Against their own words shuffled (the same words, no task) the shots " + "; ".join(
            f"{where[side(r)]} them for {r.measure}" for r in shuffled.itertuples()) + ".")
    if n < MIN_CONTROL_PROMPTS:
        lines.append(f"These rest on {n} prompts, fewer than the {MIN_CONTROL_PROMPTS} the control claims are judged "
                     "on: read them as a preview.")
    return lines


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
    table = control_table(rows, s)
    for control in ("matched_random", "shuffled"):
        for key, measure in (("twonn", "TwoNN"), ("mle", mle_label(int(s["n_prompts"]))),
                             ("id_eps_abs", COUNTS["abs"])):
            sel = table[(table.context == CONTEXT_LABELS[control]) & (table.measure == measure)]
            if sel.empty:
                continue
            r = sel.iloc[0]
            how = ("mean over prompts of the paired difference; 90% bootstrap over prompts" if key == "id_eps_abs"
                   else "90% paired jackknife over prompts, neighbours recomputed")
            out[f"{key}_last_layer_shots_minus_{control}"] = Measured(
                float(r["change"]), (float(r["low"]), float(r["high"])),
                f"{measure} at the last layer, {k_max} shots minus the {CONTEXT_LABELS[control]} "
                f"({_CONTROL[control].split(' (')[0]}), {int(r['n_prompts'])} prompts; {how}")
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
