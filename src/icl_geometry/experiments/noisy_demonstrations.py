"""Chapter 7's experiment (paper B's LLM experiments, after Wei et al. 2023): in-context classification with
noisy demonstrations, on any causal LM, through the engine.

For every query (balanced, clean) of every family, its own k balanced demonstrations are drawn from the family's
pool (`tasks.demonstrations`); for every condition (clean; label noise at each flip rate p; input noise at each
rate q) the prompt goes through `engine.trace_batch` once: the label words' log-probabilities at the last prompt
token, and per layer the last token's attention row (its mass on demonstration labels, inputs and everything
else; paper A's eq. 8 in both readings) and its MLP input (TwoNN over queries). The same prompt with the
content-free input 'N/A' in the query slot gives the label bias that contextual calibration (Zhao et al. 2021,
`tasks.calibration`) divides out: calibrated accuracy is the primary scoring, raw argmax and the AUC of the
margins are shown beside it. A declared rule (`RULE`) leaves out a (model, family) at chance or at ceiling
when clean; meaningful-label and foo/bar families are reported apart. Every interval of a claim resamples
families, then queries (`noise_measures.summarise`).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry import tasks
from icl_geometry.core.attention_graph import id_eps
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.llm import engine, lm
from icl_geometry.tasks import calibration, demonstrations
from icl_geometry.tasks.noise_measures import (SCORINGS, NoisyRun, accuracy_at, accuracy_curve,  # noqa: F401
                                               conditions, curve, distraction, distraction_correlation,
                                               following_rate, geometry_change, mass_profile, noise_slope,
                                               paired_difference, percentile, query_columns, same_queries, slope,
                                               summarise, twonn_profile)

NOISES = ("label", "input")


CONTENT_FREE = ("N/A",)  # the content-free input of the calibration (one per prompt: each costs a forward pass)


def build_prompts(loaded: Any, families: Sequence[str], n_items: int, n_pool: int, k: int,
                  conds: Sequence[tuple[str, float]], seed: int = 0,
                  ) -> tuple[list[dict], list[tasks.DemoPrompt], list[tasks.DemoPrompt]]:
    """Every (query, condition) prompt, its metadata and its content-free prompts (`CONTENT_FREE` in the query
    slot, the same demonstrations). Each query has its own k demonstrations (`demonstrations.sample_demonstrations`
    from the family's pool of `n_pool`), the same in every condition (clean, then corrupted)."""
    meta, prompts, cf = [], [], []
    item = 0
    for family in families:
        queries, pool = demonstrations.pool_and_queries(family, n_items, n_pool, seed)
        for i, query in enumerate(queries):
            clean = demonstrations.sample_demonstrations(pool, query, k, family, seed)
            for noise, rate in conds:
                shown = tasks.corrupt(clean, rate if noise == "label" else 0.0, rate if noise == "input" else 0.0,
                                      loaded.tokenizer, seed, i)
                prompts.append(tasks.format_classification_prompt(loaded, family, shown, query))
                cf += calibration.content_free_prompts(loaded, family, shown, CONTENT_FREE)
                meta.append({"family": family, "item": item, "text": query.text, "true_label": query.true_label,
                             "noise": noise, "rate": rate})
            item += 1
    return meta, prompts, cf


def attention_mass(rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """rows (n_layers, n_heads, T): one token's attention rows; groups (T,) in 0..2 (`tasks.GROUPS`).
    Returns (n_layers, 3): the head-averaged mass on each group (sums to 1 per layer)."""
    mean = np.asarray(rows, dtype=np.float64).mean(1)
    return np.stack([mean[:, groups == g].sum(-1) for g in range(len(tasks.GROUPS))], -1)


# Per prompt, what the experiment keeps of its trace (the rest is dropped batch by batch).
_KEPT = ("logprobs", "attention_mass", "id_sum", "id_head", "mlp")
CHECKPOINT_VERSION = 3  # bump when what a checkpoint holds, or how it is computed, changes


def checkpoint_key(loaded: Any, texts: Sequence[str], eps: float) -> str:
    """A digest of everything a checkpoint's numbers depend on: model, prompts, eps, format version."""
    prompts = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    return base.checkpoint_key(version=CHECKPOINT_VERSION, model=loaded.name, n_layers=loaded.n_layers,
                               eps=repr(eps), n_prompts=len(texts), prompts=prompts)


def run_experiment(loaded: Any, families: Sequence[str], n_items: int, n_pool: int, k: int,
                   flip_rates: Sequence[float], noise_rates: Sequence[float], seed: int = 0, eps: float = 0.1,
                   batch_size: int = 16, batch_tokens: int = 4096, progress: bool = False,
                   checkpoint: str | Path | None = None, checkpoint_every: float = 60.0) -> NoisyRun:
    """Trace every (query, condition) prompt and its content-free prompts once (batches by `engine.batches`,
    shortest first), keeping per prompt only the label log-probabilities and, for the (query, condition) prompts,
    the last token's attention summaries and MLP inputs; the rows carry both scorings (`calibration.score_columns`).

    With `checkpoint` (a file, `base.Checkpoint`) the kept arrays are saved every `checkpoint_every` seconds and
    at the end; a later call with the same model, prompts and eps resumes from them (batches already done are
    skipped), so an interrupted long run loses at most a minute. Results are the same with or without resuming;
    `seconds` adds up the time of every call that worked on the run.
    """
    t0 = time.perf_counter()
    conds = conditions(flip_rates, noise_rates)
    meta, prompts, cf_prompts = build_prompts(loaded, families, n_items, n_pool, k, conds, seed)
    every = prompts + cf_prompts  # the content-free prompts after the (query, condition) ones
    texts = [p.text for p in every]
    n, n_all = len(prompts), len(every)
    lengths, groups = engine.length_batches(loaded, texts, batch_size, batch_tokens)
    saved = base.Checkpoint(checkpoint, checkpoint_key(loaded, texts, eps))
    state = saved.load()
    resumed = int(state["done"].sum()) if state is not None else 0
    if state is None:
        state = {"done": np.zeros(n_all, bool), "logprobs": np.zeros((n_all, 2)),
                 "attention_mass": np.zeros((n, loaded.n_layers, len(tasks.GROUPS))),
                 "id_sum": np.zeros((n, loaded.n_layers)), "id_head": np.zeros((n, loaded.n_layers)),
                 "mlp": np.zeros((n, loaded.n_layers, loaded.d_model), np.float32), "seconds": np.zeros(())}
    before = float(state["seconds"])  # tracing time of earlier, interrupted calls
    todo = [g for g in groups if not state["done"][g].all()]
    if resumed and progress:
        print(f"{loaded.name}: resuming from {checkpoint} ({resumed} of {n_all} prompts done)", flush=True)
    last_save = time.perf_counter()
    for group in engine.progress_bar(todo, progress, f"tracing {loaded.name}"):
        traces = engine.trace_batch(loaded, [texts[i] for i in group], batch_size=len(group), last_logits_only=True)
        state["logprobs"][group] = tasks.label_logprobs(loaded, [every[i] for i in group], [tr.logits for tr in traces])
        for i, tr in zip(group, traces):
            if i >= n:  # a content-free prompt: its label log-probabilities are all it gives
                continue
            rows_att = tr.attention_rows[:, :, -1].numpy()  # (layers, heads, T): the last token's rows
            state["attention_mass"][i] = attention_mass(rows_att, tasks.token_groups(loaded, prompts[i]))
            state["id_sum"][i] = id_eps(rows_att, eps, reduce="sum", head_axis=1)
            state["id_head"][i] = id_eps(rows_att, eps, reduce="per_head", head_axis=1).mean(-1)
            state["mlp"][i] = tr.mlp_inputs[:, -1].numpy()
        state["done"][group] = True
        state["seconds"] = np.array(before + time.perf_counter() - t0)
        if time.perf_counter() - last_save > checkpoint_every:
            saved.save(state)
            last_save = time.perf_counter()
    if todo:
        saved.save(state)
    logp = state["logprobs"][:n]
    cf = state["logprobs"][n:].reshape(n, len(CONTENT_FREE), 2)
    rows = pd.DataFrame(meta)
    for name, col in calibration.score_columns(logp, cf, rows.true_label.to_numpy()).items():
        rows[name] = col
    rows["n_tokens"] = lengths[:n]
    clean_i = int(np.flatnonzero(rows.noise == "clean")[0])
    examples = [texts[clean_i]] + [texts[clean_i + j] for j in range(1, len(conds)) if conds[j][1] == 1.0]
    return NoisyRun(loaded.name, loaded.n_layers, loaded.n_heads, k, eps, rows, logp, state["attention_mass"],
                    state["id_sum"], state["id_head"], state["mlp"], examples, before + time.perf_counter() - t0)


# ================================================================ the chapter's claims, and runs kept as rows

LEVEL = 0.9  # every interval of chapter 7 is a 90% interval

_MARGIN = 0.1  # a difference within +-0.1 (accuracy, or accuracy per unit noise) is 'no effect', declared beforehand
MIN_QUERIES = 16  # a claim is judged only on at least this many queries (`min_n`) ...
MIN_FAMILIES = 2  # ... in at least this many families (its interval, t over families, resamples them first)
PRIMARY_SCORING = "calibrated"  # declared before the second pass's runs: contextual calibration (Zhao et al. 2021)
RULE = calibration.ExclusionRule(chance_band=0.10, ceiling_band=0.05)  # on clean calibrated accuracy, declared
_B = "Shi et al. 2024 (B), LLM setting"
_WEI = "Wei et al. 2023, flipped labels (the observation B explains)"
SECTIONS = {"accuracy": "3. Accuracy under label noise and input noise",
            "geometry": "5. Geometry: eq. 8 and TwoNN, clean vs noisy"}  # the notebook's headings, exactly
SIZE_CLAIMS = ("larger_clean_accuracy_higher", "larger_falls_more_label_noise", "larger_falls_more_input_noise",
               "larger_follows_flipped_more")  # the comparisons of the first model of `models` with the last


def model_family(name: str) -> tuple[str, bool]:
    """(family, instruction-tuned) of a model, read from its name: a bundled model's released name (its
    description), a hub id's or a local directory's last part. The family is the name before its size token
    ('135m', '1b', '0.5b') cut to its first word and major version: 'Llama-3.2-1B' and 'Llama-3.1-70B' are both
    'llama-3', 'SmolLM2-135M-Instruct' is 'smollm2', 'Gemma-3-270M' 'gemma-3'; tuned when a word after the size
    is 'instruct', 'chat' or 'it'."""
    if name in lm.BUNDLED:
        full = lm.BUNDLED[name].description.split()[0]
    else:
        full = str(name).rstrip("/").split("/")[-1]
    tokens = [t for t in re.split(r"[-_\s]", full.lower()) if t]
    size = next((i for i, t in enumerate(tokens) if re.fullmatch(r"\d+(\.\d+)?[mbk]", t)), len(tokens))
    head = tokens[:size] or tokens[:1]
    version = f"-{head[1].split('.')[0]}" if len(head) > 1 and re.fullmatch(r"\d+(\.\d+)*", head[1]) else ""
    return head[0] + version, any(t in ("instruct", "chat", "it") for t in tokens[size:])


def size_confound(models: Any) -> str:
    """What a comparison of the first and the last model of `models` cannot separate from size ('' when both
    are one family with the same tuning, e.g. Llama-3.2-1B and Llama-3.1-70B): the `confounded_by` of the size
    claims for a run of those models (`claims_for`)."""
    names = lm.model_names(models) if isinstance(models, str) else [str(m) for m in models]
    small, large = names[0], names[-1]
    (fam_s, tuned_s), (fam_l, tuned_l) = model_family(small), model_family(large)
    if fam_s != fam_l:
        return (f"family, training data, tokenizer and chat tuning: {small} ({fam_s}) and {large} ({fam_l}) are "
                "two model families, so the difference is between two models, not an effect of size")
    if tuned_s != tuned_l:
        tuned = small if tuned_s else large
        return (f"chat tuning: {small} and {large} are one family ({fam_s}) but only {tuned} is instruction-tuned, "
                "so the difference mixes size with tuning")
    return ""


def _declare(confound: str) -> dict[str, ClaimSpec]:
    """Chapter 7's claims, all under the primary scoring (calibrated accuracy) on the meaningful-label families
    the exclusion rule keeps for both models; the size comparisons carry `confound` (see `size_confound`)."""
    def size(statement: str, source: str, direction: str, against: str, role: str) -> ClaimSpec:
        return ClaimSpec(statement, source, "paper", direction, null_margin=_MARGIN, confounded_by=confound,
                         role=role, basis="empirical", against=against, min_n=MIN_QUERIES,
                         section=SECTIONS["accuracy"])

    def ours(statement: str, direction: str, against: str, section: str = SECTIONS["accuracy"]) -> ClaimSpec:
        return ClaimSpec(statement, "(ours)", "ours", direction, null_margin=_MARGIN, against=against,
                         min_n=MIN_QUERIES, section=section)

    claims = {
        "larger_clean_accuracy_higher": size(
            "larger models do better with clean demonstrations (calibrated accuracy)", f"{_B} (clean demonstrations)",
            "greater", "the larger model no more accurate with clean demonstrations (the difference's interval at "
            "or below 0)", "primary"),
        "larger_falls_more_label_noise": size(
            "the larger model's calibrated accuracy falls more with label noise", f"{_B} (label noise)", "less",
            "the larger model's accuracy falling no faster with label noise (the slope difference at or above 0)",
            "primary"),
        "larger_falls_more_input_noise": size(
            "the larger model's calibrated accuracy falls more with input noise", f"{_B} (input noise)", "less",
            "the larger model's accuracy falling no faster with input noise (the slope difference at or above 0)",
            "primary"),
        "larger_follows_flipped_more": size(
            "Wei et al. 2023's measure: with every label flipped the larger model answers the flipped label more "
            "often (with two labels this is 1 - accuracy at p = 1: a supporting view of the label-noise claim)",
            _WEI, "greater", "the larger model answering the flipped label no more often at p = 1", "supporting"),
    }
    for tag in ("smaller", "larger"):
        for noise, rate in (("label", "p"), ("input", "q")):
            claims[f"{noise}_noise_hurts_{tag}"] = ours(
                f"{noise} noise lowers calibrated accuracy", "less",
                f"the {tag} model's accuracy not falling with {rate} (the slope's interval at or above 0)")
    for tag in ("smaller", "larger"):
        claims[f"foobar_mapping_learned_{tag}"] = ours(
            "with clean demonstrations the model answers foo/bar labels above chance (calibrated accuracy minus "
            "0.5): it reads an arbitrary mapping from the demonstrations", "greater",
            f"the {tag} model's calibrated accuracy on the foo/bar families at or below chance")
    claims["eq8_change_predicts_distraction"] = ours(
        "the change of eq. 8 under flipped labels predicts how far the answer moves", "greater",
        "no positive rank correlation between the change of eq. 8 and the drop of the true label's calibrated margin",
        SECTIONS["geometry"])
    return claims


# The declaration for the bundled pair (the ci run's models, smallest first); a run of other models records
# `claims_for(config)`, whose size claims carry that run's confound (none for two sizes of one family).
CLAIMS: dict[str, ClaimSpec] = _declare(size_confound(list(lm.BUNDLED)))


def claims_for(config: Any) -> dict[str, ClaimSpec]:
    """`CLAIMS` for a run of `config['models']`: the same claims and judging, with the size claims'
    `confounded_by` set from the first and last model (`size_confound`): a comparison within one family (the
    Llama sizes of the `full` profile) carries none and counts; one across families is shown, not counted."""
    return _declare(size_confound(base.settings(config)["models"]))


def is_foobar(family: str) -> bool:
    """Whether a family's labels are the unrelated words foo / bar (its mapping only the demonstrations give)."""
    fam = tasks.CLASSIFICATION_FAMILIES.get(family)
    return family.endswith("_foobar") or (fam is not None and fam.labels == tasks.UNRELATED)


def exclusions(rows: pd.DataFrame, rule: calibration.ExclusionRule | None = None) -> pd.DataFrame:
    """`rule` (default: the declared `RULE`) applied to every (model, family) of the rows on its clean calibrated
    accuracy: model, family, group ('meaningful' or 'foo/bar'), n, accuracy, excluded, reason."""
    clean = rows[rows.noise == "clean"]
    out = calibration.exclusions(clean, rule or RULE, accuracy="correct_cal")
    out.insert(2, "group", ["foo/bar" if is_foobar(f) else "meaningful" for f in out.family])
    return out


def kept_families(rows: pd.DataFrame, group: str = "meaningful") -> list[str]:
    """The families of `group` the rule keeps for every model of the run, in the run's order."""
    ex = exclusions(rows)
    mine = ex[ex.group == group]
    dropped = set(mine.family[mine.excluded])
    return [f for f in dict.fromkeys(mine.family) if f not in dropped]


def _names(config: Any) -> tuple[dict[str, Any], str, str]:
    cfg = base.settings(config)
    names = lm.model_names(cfg["models"])  # the run's models, smallest first (checked when the run was made)
    return cfg, names[0], names[-1]


def scoring_table(rows: pd.DataFrame, config: Any, group: str = "meaningful",
                  scorings: Sequence[str] = SCORINGS) -> pd.DataFrame:
    """Every measure under every scoring on the kept families of `group`: scoring, measure, model (the smaller,
    the larger, 'difference'), value, low, high (two-level bootstrap, families then queries). Empty when fewer
    than `MIN_FAMILIES` families are kept."""
    cfg, S, L = _names(config)
    fams = kept_families(rows, group)
    out = []
    if len(fams) >= MIN_FAMILIES:
        for scoring in scorings:
            numbers = summarise(rows, [S, L], fams, sorted(cfg["flip_rates"]), sorted(cfg["noise_rates"]), scoring,
                                cfg["n_boot"], LEVEL, cfg["seed"])
            out += [{"scoring": scoring, "measure": w, "model": who, "value": v, "low": lo, "high": hi}
                    for (w, who), (v, (lo, hi)) in numbers.items()]
    return pd.DataFrame(out, columns=["scoring", "measure", "model", "value", "low", "high"])


def claim_values(rows: pd.DataFrame, config: Any) -> dict[str, Measured]:
    """Every claim of chapter 7 from its rows (`rows_table`) and the run's models, rates, n_boot and seed, under
    the primary scoring on the kept meaningful-label families (the foo/bar claims on every foo/bar family): the
    size differences compare the first model of `models` (the smaller) with the last. Rows without calibrated
    columns (a run of the first pass, which asked no content-free prompts) give no claim."""
    if "correct_cal" not in rows:
        return {}
    cfg, S, L = _names(config)
    flips, noises = sorted(cfg["flip_rates"]), sorted(cfg["noise_rates"])
    fams = kept_families(rows)
    n_queries = int(((rows.model == S) & (rows.noise == "clean") & rows.family.isin(fams)).sum())
    out: dict[str, tuple[float, tuple[float, float], str]] = {}
    n_of = dict.fromkeys(CLAIMS, n_queries)  # the queries each claim is judged on (its `min_n` applies to them)
    size = f"{L} vs {S}" + ("" if not size_confound([S, L]) else " (two models, not two sizes: see confounded_by)")
    where = f"calibrated accuracy on {len(fams)} kept families ({', '.join(fams)}; {n_queries} queries)"
    if len(fams) >= MIN_FAMILIES:
        num = summarise(rows, [S, L], fams, flips, noises, PRIMARY_SCORING, cfg["n_boot"], LEVEL, cfg["seed"])
        out["larger_clean_accuracy_higher"] = (*num["clean", "difference"], f"clean {where}, larger minus smaller; "
                                               + size)
        for noise, rate in (("label", "p"), ("input", "q")):
            out[f"larger_falls_more_{noise}_noise"] = (*num[f"{noise}_slope", "difference"],
                                                       f"slope of {where} vs {rate}, larger minus smaller (negative: "
                                                       f"larger falls more); {size}")
            for tag, name in (("smaller", S), ("larger", L)):
                out[f"{noise}_noise_hurts_{tag}"] = (*num[f"{noise}_slope", name], f"{name}: slope of {where} "
                                                     f"vs {rate}")
        out["larger_follows_flipped_more"] = (*num["follow", "difference"], f"rate of answering the flipped label "
                                              f"(calibrated) at p = {max(flips):g}, larger minus smaller; {size}")
        rho, rho_ci, each = distraction(rows, [S, L], fams, max(flips), "margin_cal", cfg["n_boot"], LEVEL,
                                        cfg["seed"])
        out["eq8_change_predicts_distraction"] = (rho, rho_ci, (
            "mean over the two models of Spearman rho(change of eq. 8 summed over heads, averaged over layers; drop "
            "of the true label's calibrated margin), per query; " + ", ".join(f"{n}: {r:.2f}" for n, r in
                                                                           zip((S, L), each))))
    foobar = [f for f in dict.fromkeys(rows.family) if is_foobar(f)]
    n_foobar = int(((rows.model == S) & (rows.noise == "clean") & rows.family.isin(foobar)).sum())
    n_of.update({f"foobar_mapping_learned_{tag}": n_foobar for tag in ("smaller", "larger")})
    if len(foobar) >= MIN_FAMILIES:
        num = summarise(rows, [S, L], foobar, flips, noises, PRIMARY_SCORING, cfg["n_boot"], LEVEL, cfg["seed"])
        for tag, name in (("smaller", S), ("larger", L)):
            v, (lo, hi) = num["clean", name]
            out[f"foobar_mapping_learned_{tag}"] = (v - 0.5, (lo - 0.5, hi - 0.5), (
                f"{name}: clean calibrated accuracy minus 0.5 on {', '.join(foobar)} ({n_foobar} queries)"))
    return {cid: Measured(float(out[cid][0]), tuple(float(x) for x in out[cid][1]), out[cid][2]) for cid in CLAIMS
            if cid in out and n_of[cid] >= CLAIMS[cid].min_n}


def smaller_wins(rows: pd.DataFrame, config: Any) -> dict[str, dict[str, Any]]:
    """The regime where the smaller model wins, in the run's own units: per noise ('label': flip rate p, 'input':
    input-noise rate q), the rates (0: clean) at which the first model of `models` has the higher calibrated
    accuracy on the kept meaningful-label families (point estimates, no interval), with the two models and
    whether they are one family (`size_confound`). The run fact `smaller_model_wins` of the results JSON."""
    cfg, S, L = _names(config)
    fams = kept_families(rows)
    out = {}
    for noise, unit, rates in (("label", "flip rate p", sorted(cfg["flip_rates"])),
                               ("input", "input-noise rate q", sorted(cfg["noise_rates"]))):
        conds = [("clean", 0.0) if r == 0 else (noise, r) for r in rates]
        acc_s, acc_l = (query_columns(rows, m, fams, conds, "correct_cal")[0].mean(0) if fams else [np.nan] * len(rates)
                        for m in (S, L))
        out[noise] = {"unit": unit, "rates": [float(r) for r, a, b in zip(rates, acc_s, acc_l) if a > b],
                      "of": [float(r) for r in rates], "smaller": S, "larger": L,
                      "one family": not size_confound([S, L])}
    return out


def regime_text(wins: dict[str, dict[str, Any]]) -> list[str]:
    """One line per noise kind: the rates at which the smaller model answers more queries correctly."""
    lines = []
    for noise, w in wins.items():
        rates = ", ".join(f"{r:g}" for r in w["rates"]) or "none"
        lines.append(f"{noise} noise: {w['smaller']} beats {w['larger']} at {w['unit']} = {rates} (of "
                     f"{', '.join(f'{r:g}' for r in w['of'])})"
                     + ("" if w["one family"] else "; two model families, not a size effect"))
    return lines


def facts(rows: pd.DataFrame, config: Any) -> dict[str, Any]:
    """The run facts chapter 7 records beside its claims, from the rows alone: `excluded` (the (model, family)
    pairs the declared rule leaves out, with the reason) and `smaller_model_wins`. None from first-pass rows."""
    if "correct_cal" not in rows:
        return {}
    ex = exclusions(rows)
    return {"excluded": [{"model": r.model, "family": r.family, "group": r.group, "reason": r.reason}
                         for r in ex[ex.excluded].itertuples()],
            "smaller_model_wins": smaller_wins(rows, config)}


def rows_table(runs: Sequence[NoisyRun]) -> pd.DataFrame:
    """One row per (model, query, condition): what every claim is computed from (both scorings' answers and
    margins, the label and content-free log-probabilities, and eq. 8 averaged over layers), compact enough to
    commit with a recorded run so that a test can recompute its verdicts without the models."""
    return pd.concat([run.rows.assign(model=run.model, id_sum_mean=run.id_sum.mean(1), id_head_mean=run.id_head.mean(1))
                      for run in runs], ignore_index=True)


def run(config: Any, checkpoints: str | Path | None = None, *, progress: bool = False) -> pd.DataFrame:
    """Chapter 7's whole experiment for `config`: every model of `models` in turn (loaded, traced, released),
    same queries; the rows of `rows_table`. `checkpoints`: a folder for one checkpoint per model."""
    import gc

    cfg = base.settings(config)
    out = []
    for name in lm.parse_models(cfg["models"]):
        loaded = lm.load(name, cfg["device"])
        ckpt = Path(checkpoints) / f"{name.replace('/', '__')}.pkl" if checkpoints else None
        out.append(run_experiment(loaded, tasks.parse_families(cfg["families"]), cfg["n_items"], cfg["n_pool"],
                                  cfg["k"], sorted(cfg["flip_rates"]), sorted(cfg["noise_rates"]), seed=cfg["seed"],
                                  eps=cfg["eps"], batch_size=cfg["batch_size"], batch_tokens=cfg["batch_tokens"],
                                  progress=progress, checkpoint=ckpt))
        del loaded
        gc.collect()
    same_queries(out[0], out[-1])
    return rows_table(out)
