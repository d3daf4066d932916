"""Chapter 7's experiment (paper B's LLM experiments, after Wei et al. 2023): in-context classification with
noisy demonstrations, on any causal LM, through the engine.

For every query (balanced, clean) and every condition (clean; label noise at each flip rate p; input noise at
each rate q), one prompt of k demonstrations (`tasks`) goes through `engine.trace_batch` once: the label words'
log-probabilities at the last prompt token (constrained choice: accuracy, and whether the answer follows the
flipped mapping), and per layer the last token's attention row (its mass on demonstration labels, inputs and
everything else; paper A's eq. 8 in both readings) and its MLP input (TwoNN over queries). Conditions share
the queries and the demonstrations, so every comparison is item by item, and every interval comes from a
bootstrap over queries (`stats.cluster_resamples`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import hashlib
import re

import numpy as np
import pandas as pd

from icl_geometry import tasks
from icl_geometry.core.attention_graph import id_eps
from icl_geometry.core.stats import cluster_resamples
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.llm import engine, lm
from icl_geometry.tasks.noise_measures import (NoisyRun, accuracy_at, accuracy_curve,  # noqa: F401  (notebook, tests)
                                               distraction_correlation, following_rate, noise_slope,
                                               paired_difference, percentile, same_queries, slope)

NOISES = ("label", "input")


def conditions(flip_rates: Sequence[float], noise_rates: Sequence[float]) -> list[tuple[str, float]]:
    """('clean', 0) first, then ('label', p) for every p > 0 and ('input', q) for every q > 0."""
    out = [("clean", 0.0)]
    for noise, rates in (("label", flip_rates), ("input", noise_rates)):
        for r in rates:
            if not 0.0 <= float(r) <= 1.0:
                raise ValueError(f"{noise} noise rate {r!r} is not allowed: expected numbers in [0, 1]")
            if float(r) > 0 and (noise, float(r)) not in out:
                out.append((noise, float(r)))
    return out


def build_prompts(loaded: Any, families: Sequence[str], n_items: int, n_pool: int, k: int,
                  conds: Sequence[tuple[str, float]], seed: int = 0) -> tuple[list[dict], list[tasks.DemoPrompt]]:
    """Every (query, condition) prompt and its metadata; queries of each family share their demonstrations
    across conditions (the same k clean demonstrations, then corrupted)."""
    meta, prompts = [], []
    item = 0
    for family in families:
        test, pool = tasks.split(family, n_items, n_pool, seed)
        for i, query in enumerate(test):
            clean = tasks.choose_examples(pool, k, seed, i)
            for noise, rate in conds:
                shown = tasks.corrupt(clean, rate if noise == "label" else 0.0, rate if noise == "input" else 0.0,
                                      loaded.tokenizer, seed, i)
                prompts.append(tasks.format_classification_prompt(loaded, family, shown, query))
                meta.append({"family": family, "item": item, "text": query.text, "true_label": query.true_label,
                             "noise": noise, "rate": rate})
            item += 1
    return meta, prompts


def attention_mass(rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """rows (n_layers, n_heads, T): one token's attention rows; groups (T,) in 0..2 (`tasks.GROUPS`).
    Returns (n_layers, 3): the head-averaged mass on each group (sums to 1 per layer)."""
    mean = np.asarray(rows, dtype=np.float64).mean(1)
    return np.stack([mean[:, groups == g].sum(-1) for g in range(len(tasks.GROUPS))], -1)


# Per prompt, what the experiment keeps of its trace (the rest is dropped batch by batch).
_KEPT = ("logprobs", "attention_mass", "id_sum", "id_head", "mlp")
CHECKPOINT_VERSION = 2  # bump when what a checkpoint holds, or how it is computed, changes


def checkpoint_key(loaded: Any, texts: Sequence[str], eps: float) -> str:
    """A digest of everything a checkpoint's numbers depend on: model, prompts, eps, format version."""
    prompts = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    return base.checkpoint_key(version=CHECKPOINT_VERSION, model=loaded.name, n_layers=loaded.n_layers,
                               eps=repr(eps), n_prompts=len(texts), prompts=prompts)


def run_experiment(loaded: Any, families: Sequence[str], n_items: int, n_pool: int, k: int,
                   flip_rates: Sequence[float], noise_rates: Sequence[float], seed: int = 0, eps: float = 0.1,
                   batch_size: int = 16, batch_tokens: int = 4096, progress: bool = False,
                   checkpoint: str | Path | None = None, checkpoint_every: float = 60.0) -> NoisyRun:
    """Trace every (query, condition) prompt once (batches by `engine.batches`, shortest first), keeping per
    prompt only the label log-probabilities and the last token's attention summaries and MLP inputs.

    With `checkpoint` (a file, `base.Checkpoint`) the kept arrays are saved every `checkpoint_every` seconds and
    at the end;
    a later call with the same model, prompts and eps resumes from them (batches already done are skipped),
    so an interrupted long run loses at most a minute. Results are the same with or without resuming;
    `seconds` adds up the time of every call that worked on the run.
    """
    t0 = time.perf_counter()
    conds = conditions(flip_rates, noise_rates)
    meta, prompts = build_prompts(loaded, families, n_items, n_pool, k, conds, seed)
    texts = [p.text for p in prompts]
    n = len(texts)
    lengths, groups = engine.length_batches(loaded, texts, batch_size, batch_tokens)
    saved = base.Checkpoint(checkpoint, checkpoint_key(loaded, texts, eps))
    state = saved.load()
    resumed = int(state["done"].sum()) if state is not None else 0
    if state is None:
        state = {"done": np.zeros(n, bool), "logprobs": np.zeros((n, 2)),
                 "attention_mass": np.zeros((n, loaded.n_layers, len(tasks.GROUPS))),
                 "id_sum": np.zeros((n, loaded.n_layers)), "id_head": np.zeros((n, loaded.n_layers)),
                 "mlp": np.zeros((n, loaded.n_layers, loaded.d_model), np.float32), "seconds": np.zeros(())}
    before = float(state["seconds"])  # tracing time of earlier, interrupted calls
    todo = [g for g in groups if not state["done"][g].all()]
    if resumed and progress:
        print(f"{loaded.name}: resuming from {checkpoint} ({resumed} of {n} prompts done)", flush=True)
    last_save = time.perf_counter()
    for group in engine.progress_bar(todo, progress, f"tracing {loaded.name}"):
        traces = engine.trace_batch(loaded, [texts[i] for i in group], batch_size=len(group), last_logits_only=True)
        logits = [tr.logits for tr in traces]
        state["logprobs"][group] = tasks.label_logprobs(loaded, [prompts[i] for i in group], logits)
        for i, tr in zip(group, traces):
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
    logp = state["logprobs"]
    rows = pd.DataFrame(meta)
    true = rows.true_label.to_numpy()
    pred = logp.argmax(1)
    rows["pred"] = pred
    rows["correct"] = pred == true
    rows["follows_flipped"] = pred == 1 - true
    rows["margin"] = logp[np.arange(len(true)), true] - logp[np.arange(len(true)), 1 - true]
    rows["n_tokens"] = lengths
    clean_i = int(np.flatnonzero(rows.noise == "clean")[0])
    examples = [texts[clean_i]] + [texts[clean_i + j] for j in range(1, len(conds)) if conds[j][1] == 1.0]
    return NoisyRun(loaded.name, loaded.n_layers, loaded.n_heads, k, eps, rows, logp, state["attention_mass"],
                    state["id_sum"], state["id_head"], state["mlp"], examples, before + time.perf_counter() - t0)


# ============================================================================= statistics

def mass_profile(run: NoisyRun, cond: Sequence[tuple[str, float]]):
    """Long DataFrame: model, condition, layer, group, mean attention mass of the last token (over queries)."""
    import pandas as pd

    out = []
    for noise, rate in cond:
        m = run.attention_mass[run.select(noise, rate)].mean(0)
        for layer in range(run.n_layers):
            for g, name in enumerate(tasks.GROUPS):
                out.append({"model": run.model, "condition": f"{noise} {rate:g}" if noise != "clean" else "clean",
                            "layer": layer, "depth": layer / max(run.n_layers - 1, 1), "group": name,
                            "mass": float(m[layer, g])})
    return pd.DataFrame(out)


def geometry_change(run: NoisyRun, noise: str, rate: float, n_boot: int = 1000, level: float = 0.9, seed: int = 0):
    """Per layer: mean eq. 8 (both readings) clean and noisy, and the item-paired change with its bootstrap
    interval over queries. Returns a DataFrame."""
    import pandas as pd

    a, b = run.select("clean", 0.0), run.select(noise, rate)
    rows = []
    resamples = cluster_resamples(len(a), n_boot, seed)
    for name, arr in (("sum", run.id_sum), ("per_head", run.id_head)):
        d = arr[b] - arr[a]
        boot = np.stack([d[idx].mean(0) for idx in resamples])
        for layer in range(run.n_layers):
            lo, hi = percentile(boot[:, layer], level)
            rows.append({"model": run.model, "reading": name, "layer": layer,
                         "depth": layer / max(run.n_layers - 1, 1), "clean": float(arr[a, layer].mean()),
                         "noisy": float(arr[b, layer].mean()), "change": float(d[:, layer].mean()),
                         "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def twonn_profile(run: NoisyRun, cond: Sequence[tuple[str, float]], layers: Sequence[int] | None = None,
                  level: float = 0.9, n_boot: int = 100, seed: int = 0):
    """TwoNN of the last token's MLP inputs over queries, per layer and condition (one point per query),
    with its bootstrap interval over queries."""
    import pandas as pd

    from icl_geometry.core.intrinsic_dim import twonn

    layers = range(run.n_layers) if layers is None else layers
    out = []
    for noise, rate in cond:
        idx = run.select(noise, rate)
        for layer in layers:
            est = twonn(run.mlp[idx, layer].astype(np.float64), ci=level, n_boot=n_boot, seed=seed)
            out.append({"model": run.model, "condition": f"{noise} {rate:g}" if noise != "clean" else "clean",
                        "layer": layer, "depth": layer / max(run.n_layers - 1, 1), "twonn": float(est.estimate),
                        "ci_low": float(est.ci[0]), "ci_high": float(est.ci[1])})
    return pd.DataFrame(out)


# ================================================================ the chapter's claims, and runs kept as rows

LEVEL = 0.9  # every interval of chapter 7 is a 90% interval

_MARGIN = 0.1  # a difference within +-0.1 (accuracy, or accuracy per unit noise) is 'no effect', declared beforehand
MIN_QUERIES = 30  # every claim is a bootstrap over queries: judged only on at least this many (`min_n`)
_B = "Shi et al. 2024 (B), LLM setting"
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
    """Chapter 7's claims; the size comparisons carry `confound` (see `size_confound`)."""
    def size(statement: str, source: str, direction: str, against: str, role: str) -> ClaimSpec:
        return ClaimSpec(statement, source, "paper", direction, null_margin=_MARGIN, confounded_by=confound,
                         role=role, basis="empirical", against=against, min_n=MIN_QUERIES,
                         section=SECTIONS["accuracy"])

    def ours(statement: str, direction: str, against: str, section: str = SECTIONS["accuracy"]) -> ClaimSpec:
        return ClaimSpec(statement, "(ours)", "ours", direction, null_margin=_MARGIN, against=against,
                         min_n=MIN_QUERIES, section=section)

    claims = {
        "larger_clean_accuracy_higher": size(
            "larger models do better with clean demonstrations", f"{_B} (clean demonstrations)", "greater",
            "the larger model no more accurate with clean demonstrations (the difference's interval at or below 0)",
            "primary"),
        "larger_falls_more_label_noise": size(
            "the larger model's accuracy falls more with label noise", f"{_B} (label noise)", "less",
            "the larger model's accuracy falling no faster with label noise (the slope difference at or above 0)",
            "primary"),
        "larger_falls_more_input_noise": size(
            "the larger model's accuracy falls more with input noise", f"{_B} (input noise)", "less",
            "the larger model's accuracy falling no faster with input noise (the slope difference at or above 0)",
            "primary"),
        "larger_follows_flipped_more": size(
            "Wei et al. 2023's measure: at p = 1 the larger model answers the flipped label more often (with two "
            "labels this is 1 - accuracy at p = 1, a view of the label-noise claim)", f"{_B} (label noise)",
            "greater", "the larger model answering the flipped label no more often at p = 1", "supporting"),
    }
    for tag in ("smaller", "larger"):
        for noise, rate in (("label", "p"), ("input", "q")):
            claims[f"{noise}_noise_hurts_{tag}"] = ours(
                f"{noise} noise lowers accuracy", "less",
                f"the {tag} model's accuracy not falling with {rate} (the slope's interval at or above 0)")
    claims["eq8_change_predicts_distraction"] = ours(
        "the change of eq. 8 under flipped labels predicts how far the answer moves", "greater",
        "no positive rank correlation between the change of eq. 8 and the drop of the true label's margin",
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


def size_comparison(small: NoisyRun, large: NoisyRun, flip_rates: Sequence[float], noise_rates: Sequence[float],
                    n_boot: int = 1000, level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Everything chapter 7's claims are read from, for the smaller and the larger model (same queries):
    per model the clean accuracy, the slopes under each noise and the following rate at the largest flip rate
    (each a `Slope` with its bootstrap over queries), and `claims`: claim id -> (value, interval), the size
    differences from the paired bootstrap and the distraction correlation (see `CLAIMS`)."""
    same_queries(small, large)
    p_max = max(flip_rates)
    out: dict[str, Any] = {"clean": {}, "slope": {}, "follow": {}}
    for run in (small, large):
        out["clean"][run.model] = accuracy_at(run, "clean", 0.0, n_boot, level, seed)
        for noise, rates in (("label", flip_rates), ("input", noise_rates)):
            out["slope"][run.model, noise] = noise_slope(run, noise, sorted(rates), n_boot, level, seed)
        out["follow"][run.model] = following_rate(run, p_max, n_boot, level, seed)
    S, L = small.model, large.model
    claims = {
        "larger_clean_accuracy_higher": paired_difference(out["clean"][S], out["clean"][L], level),
        "larger_falls_more_label_noise": paired_difference(out["slope"][S, "label"], out["slope"][L, "label"], level),
        "larger_falls_more_input_noise": paired_difference(out["slope"][S, "input"], out["slope"][L, "input"], level),
        "larger_follows_flipped_more": paired_difference(out["follow"][S], out["follow"][L], level),
    }
    for tag, name in (("smaller", S), ("larger", L)):
        for noise in NOISES:
            s = out["slope"][name, noise]
            claims[f"{noise}_noise_hurts_{tag}"] = (s.value, s.interval)
    rho, rho_ci, each = distraction_correlation([small, large], "label", p_max, n_boot, level, seed)
    claims["eq8_change_predicts_distraction"] = (rho, rho_ci)
    out["claims"], out["rho_each"] = claims, each
    return out


def rows_table(runs: Sequence[NoisyRun]) -> pd.DataFrame:
    """One row per (model, query, condition): what every claim of `size_comparison` is computed from (the
    answers, the true label's margin, and eq. 8 averaged over layers), compact enough to commit with a
    recorded run so that a test can recompute its verdicts without the models."""
    return pd.concat([run.rows.assign(model=run.model, id_sum_mean=run.id_sum.mean(1), id_head_mean=run.id_head.mean(1))
                      for run in runs], ignore_index=True)


def runs_from_rows(table: Any) -> dict[str, NoisyRun]:
    """Inverse of `rows_table` for the statistics (per-layer arrays are not kept: eq. 8 comes back as one
    layer-averaged column, which is all `distraction_correlation` uses)."""
    out = {}
    for name, df in table.groupby("model", sort=False):
        rows = df.drop(columns=["model", "id_sum_mean", "id_head_mean"]).reset_index(drop=True)
        n = len(rows)
        out[name] = NoisyRun(name, 1, 0, 0, float("nan"), rows, np.zeros((n, 2)), np.zeros((n, 1, len(tasks.GROUPS))),
                             df.id_sum_mean.to_numpy()[:, None], df.id_head_mean.to_numpy()[:, None],
                             np.zeros((n, 1, 0), np.float32))
    return out


def claim_values(rows: pd.DataFrame, config: Any) -> dict[str, Measured]:
    """Every claim of chapter 7 from its rows (`rows_table`) and the run's models, rates, n_boot and seed: the
    size differences compare the first model of `models` (the smaller) with the last."""
    cfg = base.settings(config)
    runs = runs_from_rows(rows)
    names = lm.model_names(cfg["models"])  # the run's models, smallest first (checked when the run was made)
    S, L = names[0], names[-1]
    flips, noises = sorted(cfg["flip_rates"]), sorted(cfg["noise_rates"])
    numbers = size_comparison(runs[S], runs[L], flips, noises, cfg["n_boot"], LEVEL, cfg["seed"])
    size = f"{L} vs {S}" + ("" if not size_confound(names) else " (two models, not two sizes: see confounded_by)")
    notes = {"larger_clean_accuracy_higher": f"clean accuracy, larger minus smaller; {size}",
             "larger_falls_more_label_noise": f"slope of accuracy vs p, larger minus smaller (negative: larger falls "
                                              f"more); {size}",
             "larger_falls_more_input_noise": f"slope of accuracy vs q, larger minus smaller; {size}",
             "larger_follows_flipped_more": f"rate of answering the flipped label at p = {max(flips):g}, larger minus "
                                            f"smaller; {size}",
             "eq8_change_predicts_distraction": (
                 "mean over the two models of Spearman rho(change of eq. 8 summed over heads, averaged over layers; "
                 "drop of the true label's margin), per query; "
                 + ", ".join(f"{n}: {r:.2f}" for n, r in zip((S, L), numbers["rho_each"])))}
    for tag, name in (("smaller", S), ("larger", L)):
        notes[f"label_noise_hurts_{tag}"] = f"{name}: slope of accuracy vs p"
        notes[f"input_noise_hurts_{tag}"] = f"{name}: slope of accuracy vs q"
    n_queries = len(runs[S].select("clean", 0.0))
    return {cid: Measured(float(value), tuple(float(v) for v in interval), notes[cid])
            for cid, (value, interval) in numbers["claims"].items() if n_queries >= CLAIMS[cid].min_n}


def smaller_wins(rows: pd.DataFrame, config: Any) -> dict[str, dict[str, Any]]:
    """The regime where the smaller model wins, in the run's own units: per noise ('label': flip rate p, 'input':
    input-noise rate q), the rates (0: clean) at which the first model of `models` answers more queries correctly
    than the last (point estimates on the run's queries, no interval), with the two models and whether they are
    one family (`size_confound`). The run fact `smaller_model_wins` of the results JSON (`facts`)."""
    cfg = base.settings(config)
    runs = runs_from_rows(rows)
    names = lm.model_names(cfg["models"])
    small, large = runs[names[0]], runs[names[-1]]
    confound = size_confound(names)
    out = {}
    for noise, unit, rates in (("label", "flip rate p", sorted(cfg["flip_rates"])),
                               ("input", "input-noise rate q", sorted(cfg["noise_rates"]))):
        acc_s, acc_l = (r.correct_matrix(noise, rates).mean(0) for r in (small, large))
        out[noise] = {"unit": unit, "rates": [float(r) for r, a, b in zip(rates, acc_s, acc_l) if a > b],
                      "of": [float(r) for r in rates], "smaller": names[0], "larger": names[-1],
                      "one family": not confound}
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
    """The run facts chapter 7 records beside its claims, from the rows alone (a recorded run gets them recomputed
    by benchmarks/relabel_recorded.py): `smaller_model_wins`."""
    return {"smaller_model_wins": smaller_wins(rows, config)}


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
