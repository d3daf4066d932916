"""Chapter 5: in-context linear regression with one layer of linear self-attention (paper B's first setting).

The steps, in order (the notebook calls them section by section, `run` all at once): `prepare`, `closed_form_check`,
`train_runs` + `training_rows`, `recipe_comparison`, `noise_sweeps` + `sweep_rows`, `crossover_table`,
`margin_table`, `label_variance`, `few_shot`, `flipped_labels`. Their tables, stacked with `base.stack` (parts
`PARTS`), are the rows `claim_values` judges `CLAIMS` from. The closed-form check, then the label sweep, then the
input sweep read one stream of test prompts (`Setting.test_sampler`): the order is part of the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from icl_geometry.core import stats
from icl_geometry.core.multiple_testing import z_summary
from icl_geometry.core.verdicts import ClaimSpec, Measured
from icl_geometry.experiments import base
from icl_geometry.toys import linear_icl as li
from icl_geometry.toys.linear_icl import MARGIN, comparison_z, curve, layout, regime_text  # noqa: F401  (notebook)

PARTS = ("closed_form", "training", "recipes", "sweep", "crossovers", "margins", "label_variance", "few_shot",
         "flip", "flip_trained")
RECIPES = {"query averaged, ZFB init": {}, "query sampled, ZFB init": {"query": "sample"},
           "query averaged, random init": {"init": "random"}}
FLIP_RATES = np.linspace(0.0, 1.0, 11)
DIST, MASS = "||Gamma - Gamma*|| / ||Gamma*||", "fraction of ||Gamma||^2 on the top-r block"
EVEN = "|u| + |b| (even part)"


# ----------------------------------------------------------------------------- the steps

@dataclass
class Setting:
    """What every step shares: the settings, Lambda and its eigenvalues, the optima Gamma*_0..d, the middle of each
    noise grid, the few-shot length d/2, and the test prompts the closed-form check and both sweeps read in turn."""

    d: int
    N: int
    ranks: tuple[int, ...]
    sigmas: np.ndarray
    taus: np.ndarray
    n_test: int
    steps: int
    batch: int
    lr: float
    seed: int
    device: str
    lam: np.ndarray
    Lambda: np.ndarray
    opt_all: np.ndarray
    test_sampler: li.PromptSampler
    sig_mid: float
    tau_mid: float
    n_few: int

    @property
    def grids(self) -> dict[str, np.ndarray]:
        """Each noise kind's grid of noise levels."""
        return {"label": self.sigmas, "input": self.taus}


def prepare(config: Any) -> Setting:
    """The spectrum and covariance of the inputs, the optimum of every rank 0..d, and the test-prompt stream."""
    s = base.settings(config)
    d, N, seed, device = int(s["d"]), int(s["N"]), int(s["seed"]), str(s["device"])
    lam = li.make_spectrum(s["spectrum"], d, s["decay"])
    Lambda = li.make_covariance(lam, seed=seed)
    sigmas, taus = np.asarray(s["label_noise"]), np.asarray(s["input_noise"])
    return Setting(d=d, N=N, ranks=tuple(int(r) for r in s["ranks"]), sigmas=sigmas, taus=taus,
                   n_test=int(s["n_test"]), steps=int(s["steps"]), batch=int(s["batch"]), lr=s["lr"], seed=seed,
                   device=device, lam=lam, Lambda=Lambda,
                   opt_all=np.stack([li.optimal_gamma(Lambda, N, r) for r in range(d + 1)]),
                   test_sampler=li.PromptSampler(Lambda, N, seed=seed + 7, device=device),
                   sig_mid=float(np.median(sigmas)), tau_mid=float(np.median(taus)), n_few=max(1, d // 2))


def closed_form_check(st: Setting) -> pd.DataFrame:
    """The closed-form loss of Gamma*_r against Monte Carlo at the trained ranks, clean / label / input / both
    (the middle of each noise grid): one row per comparison, with its z."""
    check = li.noise_sweep(li.gram_predictors(gammas=st.opt_all[list(st.ranks)], baselines=False), st.test_sampler,
                           st.n_test, label_noise=(0.0, st.sig_mid), input_noise=(0.0, st.tau_mid))
    rows = []
    for k, r in enumerate(st.ranks):
        for a, s_ in enumerate((0.0, st.sig_mid)):
            for b, t_ in enumerate((0.0, st.tau_mid)):
                cf = float(li.expected_loss(st.opt_all[r], st.Lambda, st.N, s_, t_))
                mc, se = check.loss[k, a, b], check.se[k, a, b]
                rows.append({"rank": r, "label noise": s_, "input noise": t_, "closed form": cf, "Monte Carlo": mc,
                             "SE": se, "z": (mc - cf) / se})
    return pd.DataFrame(rows)


def train_runs(st: Setting, progress: bool = False) -> list[li.TrainResult]:
    """The chapter's fit (every rank side by side) and the same recipe from two more seeds (the training
    claims' intervals are over these three runs); `progress` shows a bar for the first."""
    fit = li.fit_ranks(st.Lambda, st.N, st.ranks, st.steps, st.batch, lr=st.lr, seed=st.seed, device=st.device,
                       progress=progress)
    return [fit, *(li.fit_ranks(st.Lambda, st.N, st.ranks, st.steps, st.batch, lr=st.lr, seed=st.seed + s,
                                device=st.device) for s in (1, 2))]


def training_rows(st: Setting, fits: Sequence[li.TrainResult]) -> pd.DataFrame:
    """One row per (training run, rank): distance to Gamma*_r, loss of the trained Gamma and of the optimum,
    the fraction of Gamma's mass on the top-r eigen-block and the even-part weights."""
    rows = []
    for run, res in enumerate(fits):
        gam = res.model.gamma().detach().cpu().numpy()
        even = res.model.even_weights().detach().cpu().numpy()
        for k, r in enumerate(st.ranks):
            rows.append({"run": run, "seed": st.seed + run, "rank": r, DIST: res.final_rel_dist[k],
                         "loss of trained Gamma": float(li.expected_loss(gam[k], st.Lambda, st.N)),
                         "optimal loss": float(li.optimal_loss(st.lam, st.N, r)),
                         MASS: float(li.top_mass(gam[k], st.Lambda, r)), EVEN: even[k]})
    return pd.DataFrame(rows)


def recipe_comparison(st: Setting) -> pd.DataFrame:
    """The recipe against sampling the query and a random init, half steps and half batch: rows per (recipe, rank)."""
    small = dict(steps=max(1, st.steps // 2), batch=max(1, st.batch // 2), lr=st.lr, seed=st.seed, device=st.device)
    rows = []
    for name, kw in RECIPES.items():
        res = li.fit_ranks(st.Lambda, st.N, st.ranks, **small, **kw)
        even = float(res.model.even_weights().detach().max())
        rows += [{"recipe": name, "rank": r, DIST: v, "max |u| + |b|": even} for r, v in zip(st.ranks,
                                                                                          res.final_rel_dist)]
    return pd.DataFrame(rows)


def recipe_table(recipes: pd.DataFrame) -> pd.DataFrame:
    """`recipe_comparison`'s rows as one row per recipe with a column per rank (for display)."""
    out = [{"recipe": name, **{f"r = {int(r)}": v for r, v in zip(g["rank"], g[DIST])},
            "max |u| + |b|": g["max |u| + |b|"].iloc[0]} for name, g in recipes.groupby("recipe", sort=False)]
    return pd.DataFrame(out).set_index("recipe")


def noise_sweeps(st: Setting, model: li.LinearSelfAttention) -> dict[str, li.Sweep]:
    """Every predictor (trained ranks, Gamma*_0..d, baselines) on the same test prompts at every label-noise
    level, then at every input-noise level, with the paired SEs of `layout`'s pairs."""
    _, pairs, zero_pairs = layout(len(st.ranks), st.d)
    predict = li.gram_predictors(model=model, gammas=st.opt_all, Lambda=st.Lambda, N=st.N)
    pairs = pairs + zero_pairs
    return {"label": li.noise_sweep(predict, st.test_sampler, st.n_test, label_noise=st.sigmas, pairs=pairs),
            "input": li.noise_sweep(predict, st.test_sampler, st.n_test, input_noise=st.taus, pairs=pairs)}


def sweep_rows(st: Setting, sweeps: dict[str, li.Sweep]) -> pd.DataFrame:
    """One row per (noise kind, predictor, noise level): loss, SE and paired SEs (`li.sweep_table`)."""
    return li.sweep_table(st.ranks, st.d, st.grids, sweeps)


def crossover_table(st: Setting, sweeps: dict[str, li.Sweep]) -> pd.DataFrame:
    """Every crossing of a larger and a smaller model, predicted and measured (`li.crossover_table`)."""
    return li.crossover_table(st.lam, st.N, st.ranks, st.grids, sweeps)


def margin_table(st: Setting, sweeps: dict[str, li.Sweep]) -> pd.DataFrame:
    """Per adjacent trained pair: x_c, x_0 and the margin x_0 - x_c with its SE bound (`li.margin_table`)."""
    return li.margin_table(st.lam, st.N, st.ranks, st.grids, sweeps)


def label_variance(st: Setting) -> pd.DataFrame:
    """Var(y) by Monte Carlo on n_test/4 fresh prompts (one row): labels within a prompt share w, so the SE is
    taken over per-prompt means of y^2."""
    prompts = li.PromptSampler(st.Lambda, st.N, seed=st.seed + 13, device=st.device)(st.n_test // 4, noise=False)
    y2 = (prompts.context()[1] ** 2).mean(-1).cpu().numpy()
    return pd.DataFrame([{"Var(y)": float(y2.mean()), "Var(y) SE": float(y2.std(ddof=1) / np.sqrt(len(y2))),
                          "prompts": len(y2), "tr Lambda": float(np.trace(st.Lambda))}])


def few_shot(st: Setting) -> tuple[pd.DataFrame, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Closed form against Monte Carlo at N = d/2 and N for the optimum of every rank 0..d at that N, label-noise
    variance 0, Var(y), 4 Var(y): rows per (N, rank, noise), and per N the (Monte Carlo, SE, closed form) arrays."""
    noise_few = np.sqrt(np.trace(st.Lambda)) * np.array([0.0, 1.0, 2.0])  # sigma^2 = 0, Var(y), 4 Var(y)
    rows, curves = [], {}
    for n_ctx in (st.n_few, st.N):
        gam_n = np.stack([li.optimal_gamma(st.Lambda, n_ctx, r) for r in range(st.d + 1)])
        sw = li.noise_sweep(li.gram_predictors(gammas=gam_n, baselines=False),
                            li.PromptSampler(st.Lambda, n_ctx, seed=st.seed + 17, device=st.device), st.n_test,
                            label_noise=noise_few, pairs=[(r, r + 1) for r in range(st.d)])
        cf = np.stack([li.optimal_loss(st.lam, n_ctx, r, noise_few) for r in range(st.d + 1)])
        mc, se = sw.loss[..., 0], sw.se[..., 0]
        curves[n_ctx] = (mc, se, cf)
        pse = [sw.pair_se[(r - 1, r)][:, 0] for r in range(1, st.d + 1)]
        rows += [{"N": n_ctx, **row} for row in li.comparison_rows(range(st.d + 1), "label noise", noise_few, cf, mc,
                                                                   se, pse)]
    return pd.DataFrame(rows), curves


def flipped_labels(st: Setting, gam: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, tuple[np.ndarray, np.ndarray]]:
    """Closed form against Monte Carlo for predicting 0 and Gamma*_r (trained ranks) over `FLIP_RATES`, then each
    adjacent pair of trained models `gam` at `li.flip_window_rate`, on 4x the prompts (the window is narrow).
    Returns (rows per rank and rate, rows per trained pair, (Monte Carlo loss, SE) arrays of the sweep)."""
    sampler = li.PromptSampler(st.Lambda, st.N, seed=st.seed + 19, device=st.device)
    stack_r = [0, *st.ranks]
    fl, fl_se, fl_dse = li.flip_sweep(st.opt_all[stack_r], sampler, st.n_test, FLIP_RATES, seed=st.seed + 19)
    fl_cf = np.stack([li.flip_optimal_loss(st.lam, st.N, r, FLIP_RATES) for r in stack_r])
    rows = li.comparison_rows(stack_r, "flip rate", FLIP_RATES, fl_cf, fl, fl_se, fl_dse)
    trained = []
    for a in range(len(st.ranks) - 1):
        rs, rl = st.ranks[a], st.ranks[a + 1]
        pc, p0 = li.flip_crossover(st.lam, st.N, rs, rl), li.flip_crossover(st.lam, st.N, 0, rs)
        p_mid = li.flip_window_rate(st.lam, st.N, rs, rl)
        loss_m, _, dse_m = li.flip_sweep(np.stack([st.opt_all[0], gam[a], gam[a + 1]]), sampler, 4 * st.n_test,
                                         [p_mid], seed=st.seed + 23 + a)
        trained.append({"small r": rs, "large r": rl, "p_c predicted": pc, "p_0 predicted": p0, "p tested": p_mid,
                        "small beats 0 by": loss_m[0, 0] - loss_m[1, 0], "SE (small vs 0)": dse_m[0, 0],
                        "large loses by": loss_m[2, 0] - loss_m[1, 0], "SE (large vs small)": dse_m[1, 0]})
    return pd.DataFrame(rows), pd.DataFrame(trained), (fl, fl_se)


def run(config: Any, checkpoint: str | Path | None = None, *, progress: bool = False) -> pd.DataFrame:
    """The whole chapter, every step in the notebook's order, stacked into the rows (parts `PARTS`). `checkpoint` (a
    file) keeps the finished parts, the test prompts' state and the fit after each step: a rerun resumes there."""
    st = prepare(config)
    saved = base.Checkpoint(checkpoint, base.checkpoint_key(**base.settings(config), rows="icl_linear_regression/1"))
    state = saved.load() or {"parts": {}}
    parts = state["parts"]
    if "sampler" in state:
        st.test_sampler.generator.set_state(state["sampler"])

    def done(**frames: pd.DataFrame) -> None:
        parts.update(frames)
        state["sampler"] = st.test_sampler.generator.get_state()
        saved.save(state)

    if "closed_form" not in parts:
        done(closed_form=closed_form_check(st))
    if "fit" not in state:
        fits = train_runs(st, progress=progress)
        state["fit"] = fits[0]
        done(training=training_rows(st, fits))
    fit = state["fit"]
    if "recipes" not in parts:
        done(recipes=recipe_comparison(st))
    if "sweep" not in parts:
        sweeps = noise_sweeps(st, fit.model)
        done(sweep=sweep_rows(st, sweeps), crossovers=crossover_table(st, sweeps), margins=margin_table(st, sweeps))
    if "label_variance" not in parts:
        done(label_variance=label_variance(st))
    if "few_shot" not in parts:
        done(few_shot=few_shot(st)[0])
    if "flip" not in parts:
        flip, flip_trained, _ = flipped_labels(st, fit.model.gamma().detach().cpu().numpy())
        done(flip=flip, flip_trained=flip_trained)
    return base.stack(**{name: parts[name] for name in PARTS})


# ----------------------------------------------------------------------------- claims

def _z_claim(z: Any, note: str) -> Measured:
    """A closed-form check: max |z| against the Bonferroni bound of its comparisons (`{n}` in `note`: their number)."""
    value, n, bound = z_summary(z)
    return Measured(value, note=note.format(n=n), threshold=bound)


PAPER = "Shi et al. 2024, linear regression setting"
BOUND = "Bonferroni bound for 1% family-wise"
OVER_RUNS = "worst rank per run, mean over {} training runs (seeds), 90% Student-t interval over runs"
ID = {  # short names of the claim ids
    "mc": "closed_form_matches_monte_carlo",
    "dist": "trained_gamma_distance_to_optimum",
    "excess": "trained_loss_excess_over_optimum",
    "clean": "clean_loss_falls_with_rank",
    **{f"{k}_{key}": f"{k}_noise_{name}" for k in ("label", "input") for key, name in (
        ("margin", "larger_rank_loses_first"), ("cross", "crossover_error"), ("dir", "direction_threshold_z"))},
    "above_var": "label_noise_crossings_above_sd_y",
    "few": "few_shot_closed_form_matches_monte_carlo",
    "flip_mc": "flipped_labels_closed_form_matches_monte_carlo",
    "flip_margin": "flipped_labels_larger_rank_loses_first",
    "mass": "trained_gamma_top_r_mass",
    "ls": "least_squares_beats_every_rank",
    "ridge": "bayes_ridge_beats_best_rank",
}
_BONFERRONI = "max |z| above the Bonferroni bound for a 1% family-wise false alarm over the run's comparisons"
MIN_RUNS = 3  # training claims: a Student-t interval over at least 3 training runs (seeds)
MIN_PROMPTS = 1000  # Monte Carlo claims judged by +-2 paired SE: at least 1000 test prompts
# The headings of the notebook sections that measure the claims (the report links there).
SECTIONS = {
    "optimum": "2. The optimum at each rank, and training converges to it",
    "noise": "3. Clean versus noisy context: where the smaller model wins",
    "margin": "The crossover itself, and the regime where it means something",
    "few": "3b. Few-shot contexts, shorter than the input dimension",
    "flip": "3c. Flipped labels",
    "directions": "4. Which directions each size looks at",
}
# Why the paper's noise claims are `derived`: x_c^2 (the size crossover) and x_0^2 (the smaller model worse than
# predicting 0) are weighted means of the per-direction thresholds sigma_i^2 = (N+1) lambda_i + tr Lambda (input
# noise: tau_i^2 = lambda_i ((N+1) lambda_i + tr Lambda) / tr Lambda), over the directions the larger model adds and
# those the smaller one keeps; the thresholds decrease with i, so x_0 > x_c for every spectrum, N and pair of ranks
# (`li.smaller_model_regime`; tests/test_linear_icl.py checks it on random spectra). The run confirms the closed form
# by Monte Carlo and by training: a replication of the theory, not a finding that could have gone the other way.
_DERIVED_MARGIN = ("the sign of x_0 - x_c is fixed by the closed form (both are weighted means of per-direction "
                   "thresholds that decrease with the direction); the run confirms it with trained models")


def _noise_claims(k: str) -> dict[str, ClaimSpec]:
    return {
        ID[f"{k}_margin"]: ClaimSpec(
            f"larger models are more easily distracted by {k} noise", PAPER, "paper", direction="greater",
            role="primary", basis="derived", min_n=MIN_PROMPTS, section=SECTIONS["margin"],
            against=f"x_0 - x_c <= 0 under {k} noise: the larger trained model loses to the smaller one only where the "
                    "smaller one is already worse than predicting 0", note=_DERIVED_MARGIN),
        ID[f"{k}_cross"]: ClaimSpec("derivation: crossing of two curves linear in the noise variance", "ours",
                                    "check", direction="less", threshold=0.1, section=SECTIONS["noise"],
                                    against="a measured crossing more than 10% from the closed form's"),
        ID[f"{k}_dir"]: ClaimSpec(
            "derivation: sigma^2 > (N+1) lambda_r + tr Lambda" if k == "label" else
            "derivation (input noise): tau^2 > lambda_r ((N+1) lambda_r + tr Lambda) / tr Lambda", "ours", "check",
            direction="less", against=_BONFERRONI, section=SECTIONS["noise"])}


CLAIMS: dict[str, ClaimSpec] = {
    ID["mc"]: ClaimSpec("derivation of the loss of any Gamma (the paper's formulas were not available)", "ours",
                        "check", direction="less", against=_BONFERRONI, section=SECTIONS["optimum"]),
    ID["dist"]: ClaimSpec("training reaches the closed-form optimum of the rank-r model", "ours", "ours",
                          direction="less", threshold=0.02, min_n=MIN_RUNS, section=SECTIONS["optimum"],
                          against="a trained Gamma more than 2% (relative Frobenius distance) from Gamma*_r"),
    ID["excess"]: ClaimSpec("training reaches the optimal loss", "ours", "ours", direction="less", threshold=0.02,
                            min_n=MIN_RUNS, section=SECTIONS["optimum"],
                            against="a trained model whose clean loss exceeds the optimum's by more than 2%"),
    ID["clean"]: ClaimSpec(
        "larger models do better on clean context", PAPER, "paper", direction="greater", role="primary",
        basis="derived", min_n=MIN_PROMPTS, section=SECTIONS["noise"],
        against="a larger trained rank with a higher clean loss than the next smaller one",
        forced_by="clean prompts are the training distribution and a rank-r model contains every rank-(r-1) model, "
                  "so the optimal clean loss cannot rise with rank"),
    **_noise_claims("label"),
    **_noise_claims("input"),
    ID["above_var"]: ClaimSpec("derivation: sigma_r^2 = Var(y) + (N+1) lambda_r > Var(y)", "ours", "check",
                               direction="greater", section=SECTIONS["margin"],
                               against="a measured per-direction crossing below the standard deviation of y"),
    ID["few"]: ClaimSpec("the derivation holds for any N >= 1", "ours", "check", direction="less",
                         against=_BONFERRONI, section=SECTIONS["few"]),
    ID["flip_mc"]: ClaimSpec("derivation of H_p", "ours", "check", direction="less", against=_BONFERRONI,
                             section=SECTIONS["flip"]),
    ID["flip_margin"]: ClaimSpec("derivation for Wei et al.'s flipped labels: p_c(r_s, r_l) < p_0(r_s) < 1/2",
                                 "ours", "check", direction="greater", section=SECTIONS["flip"],
                                 against="no flip rate where the larger trained model loses to the smaller one while "
                                         "the smaller one still beats predicting 0"),
    ID["mass"]: ClaimSpec(
        "smaller models emphasise the top eigen-directions", PAPER, "paper", direction="greater", threshold=0.99,
        role="primary", basis="derived", min_n=MIN_RUNS, section=SECTIONS["directions"],
        against="a trained Gamma with weight outside its top-r eigen-block",
        note="follows from the distance claim: Gamma*_r lies on the top-r block (Eckart-Young), so a Gamma within "
             "relative distance delta of it has at most delta^2 / (1 - delta)^2 of its mass off the block"),
    ID["ls"]: ClaimSpec(
        "least squares recovers w from N >= d noiseless labels", "ours", "check", direction="greater",
        section=SECTIONS["noise"],
        note="not a paper claim: with N >= d noiseless labels least squares recovers w exactly (loss 0); attention "
             "applies one fixed Gamma, it cannot invert S"),
    ID["ridge"]: ClaimSpec(
        "ridge at penalty sigma^2 is Bayes-optimal", "ours", "check", direction="greater",
        section=SECTIONS["noise"],
        note="not a paper claim: ridge at penalty sigma^2 is the posterior mean of w, Bayes-optimal for this prior "
             "and noise, so no predictor beats it in expectation"),
}


def _part(rows: pd.DataFrame, name: str, *columns: str) -> pd.DataFrame:
    """A part of the rows, with `columns` present even where every value is missing (NaN)."""
    frame = base.part(rows, name)
    return frame.assign(**{c: np.nan for c in columns if c not in frame.columns})


def _training_claims(tr: pd.DataFrame, lam: np.ndarray, d: int) -> dict[str, Measured]:
    """Worst rank per training run, a t interval over runs; distance and mass left out at tied eigenvalues."""
    runs = [g for _, g in tr.groupby("run", sort=True)]
    if len(runs) < MIN_RUNS:  # not judged at this size
        return {}
    note = OVER_RUNS.format(len(runs))
    excess = [float(((g["loss of trained Gamma"] - g["optimal loss"]) / g["optimal loss"]).max()) for g in runs]
    out = {ID["excess"]: Measured(*stats.t_interval(excess, level=0.9), note=note)}
    if not any(r < d and np.isclose(lam[r - 1], lam[r]) for r in tr["rank"].astype(int).unique()):
        out[ID["dist"]] = Measured(*stats.t_interval([float(g[DIST].max()) for g in runs], level=0.9), note=note)
        out[ID["mass"]] = Measured(*stats.t_interval([float(g[MASS].min()) for g in runs], level=0.9),
                                   note=f"{note}; {CLAIMS[ID['mass']].note}")
    return out


def _sweep_claims(sw: pd.DataFrame, ranks: Sequence[int], D: int) -> dict[str, Measured]:
    """Clean loss against rank (weakest adjacent pair), and least squares and Bayes ridge against every rank."""
    M = len(ranks)
    lab = sw[sw["noise"] == "label"]
    loss = lab.pivot(index="predictor", columns="noise std", values="loss").to_numpy()
    prev = lab.pivot(index="predictor", columns="noise std", values="SE vs previous").to_numpy()
    gap, gap_se = loss[: M - 1, 0] - loss[1:M, 0], prev[1:M, 0]
    k = int(np.argmin(gap))
    at = layout(M, D)[0]
    return {ID["clean"]: Measured(gap[k], stats.se_interval(gap[k], gap_se[k]), note=(
                f"weakest adjacent pair: rank {ranks[k]} -> {ranks[k + 1]}; +-2 paired SE")),
            ID["ls"]: Measured(loss[:M, 0].min() - loss[at["least squares"], 0]),
            ID["ridge"]: Measured((loss[:M].min(0) - loss[at["Bayes ridge"]]).min())}


def _margin_claim(ok: pd.DataFrame) -> Measured:
    """The weakest adjacent pair (smallest x_0 - x_c - 2 SE) of one noise kind, with a +/- 2 SE interval."""
    row = ok.iloc[int(np.argmin((ok[MARGIN] - 2 * ok["margin SE"]).to_numpy()))]
    return Measured(row[MARGIN], stats.se_interval(row[MARGIN], row["margin SE"]), note=(
        f"ranks {int(row['small r'])} vs {int(row['large r'])}: crossover x_c = {row['x_c measured']:.3g} (predicted "
        f"{row['x_c predicted']:.3g}), small model worse than 0 from x_0 = {row['x_0 measured']:.3g} (predicted "
        f"{row['x_0 predicted']:.3g}); noise std; SE bound se(x_0) + se(x_c); derived: {_DERIVED_MARGIN}"))


def _flip_margin_claim(ft: pd.DataFrame) -> Measured:
    """The weakest trained pair under flipped labels (least smaller-margin minus 2 SE): its smaller paired margin."""
    small, large = ft["small beats 0 by"], ft["large loses by"]
    fm = np.minimum((small - 2 * ft["SE (small vs 0)"]).to_numpy(), (large - 2 * ft["SE (large vs small)"]).to_numpy())
    k = int(np.argmin(fm))
    fv = float(min(small.iloc[k], large.iloc[k]))
    fse = float(ft["SE (small vs 0)"].iloc[k] if fv == small.iloc[k] else ft["SE (large vs small)"].iloc[k])
    return Measured(fv, stats.se_interval(fv, fse), note=(
        f"ranks {int(ft['small r'].iloc[k])} vs {int(ft['large r'].iloc[k])} at the flip rate between the predicted "
        "crossings that maximises the smaller predicted margin; the smaller of the two measured paired margins"))


def claim_values(rows: pd.DataFrame, config: Any) -> dict[str, Measured]:
    """Every claim of chapter 5 from the rows alone (and the run's settings); a claim whose parts are missing
    from the rows, or that the run cannot judge (no crossing on the grid, tied eigenvalues, fewer units than its
    `min_n`: training runs, test prompts), is left out."""
    s = base.settings(config)
    D = int(s["d"])
    prompts = int(s.get("n_test", 0))
    have = set(rows[base.PART].unique()) if base.PART in rows.columns else set()
    out: dict[str, Measured] = {}
    if "closed_form" in have:
        out[ID["mc"]] = _z_claim(base.part(rows, "closed_form")["z"], "{n} comparisons, " + BOUND)
    if "training" in have:
        out.update(_training_claims(base.part(rows, "training"), li.make_spectrum(s["spectrum"], D, s["decay"]), D))
    if "sweep" in have:
        out.update(_sweep_claims(_part(rows, "sweep", "SE vs previous"), [int(r) for r in s["ranks"]], D))
    cross = _part(rows, "crossovers", "measured") if "crossovers" in have else None
    for kind in ("label", "input"):
        if "margins" in have:
            ok = _part(rows, "margins", MARGIN)
            ok = ok[ok["noise"] == kind].dropna(subset=[MARGIN])
            if len(ok) and prompts >= MIN_PROMPTS:  # judged at the crossover itself, not at the end of the grid
                out[ID[f"{kind}_margin"]] = _margin_claim(ok)
        if cross is not None:
            sub = cross[cross["noise"] == kind].dropna(subset=["measured"])
            tr, per_dir = sub[sub["models"] == "trained"], sub[sub["models"] == "Gamma*"]
            if len(tr):
                out[ID[f"{kind}_cross"]] = Measured(tr["rel. error"].max(), note=f"{len(tr)} pairs of trained ranks")
            if len(per_dir):
                out[ID[f"{kind}_dir"]] = _z_claim(per_dir["z"], "{n} directions, " + BOUND)
    if cross is not None and "label_variance" in have:
        var = base.part(rows, "label_variance").iloc[0]
        var_y, var_y_se = float(var["Var(y)"]), float(var["Var(y) SE"])
        sd_y, sd_y_se = np.sqrt(var_y), var_y_se / (2 * np.sqrt(var_y))
        per_dir = cross[(cross["noise"] == "label") & (cross["models"] == "Gamma*")].dropna(subset=["measured"])
        if len(per_dir):
            above, above_se = per_dir["measured"] - sd_y, per_dir["SE"] + sd_y_se
            k = int(np.argmin((above - 2 * above_se).to_numpy()))
            out[ID["above_var"]] = Measured(above.iloc[k], stats.se_interval(above.iloc[k], above_se.iloc[k]),
                                            note=f"direction {int(per_dir['large r'].iloc[k])}; Var(y) by Monte "
                                                 "Carlo; SE bound se(x_r) + se(sd_y)")
    if "few_shot" in have:
        few = base.part(rows, "few_shot")
        lengths = " and ".join(str(int(v)) for v in few["N"].unique())
        out[ID["few"]] = _z_claim(comparison_z(few), "{n} comparisons, N = " + lengths)
    if "flip" in have:
        out[ID["flip_mc"]] = _z_claim(comparison_z(base.part(rows, "flip")), "{n} comparisons")
    if "flip_trained" in have:
        out[ID["flip_margin"]] = _flip_margin_claim(base.part(rows, "flip_trained"))
    if prompts < MIN_PROMPTS:  # the Monte Carlo paper claims are not judged at this size
        out.pop(ID["clean"], None)
    return {cid: out[cid] for cid in CLAIMS if cid in out}


# ----------------------------------------------------------------------------- the regime where the smaller wins

def smaller_wins(margins: pd.DataFrame, config: Any) -> dict[str, dict[str, Any]]:
    """Where the smaller model wins, in the data's units, from `margin_table`'s rows (`li.smaller_wins`)."""
    s = base.settings(config)
    lam = li.make_spectrum(s["spectrum"], int(s["d"]), s["decay"])
    return li.smaller_wins(margins, lam, int(s["N"]), [int(r) for r in s["ranks"]])


def regime(rows: pd.DataFrame, config: Any) -> dict[str, dict[str, Any]]:
    """`smaller_wins` from a run's rows (its `margins` part): the run fact `smaller_model_wins` of the results JSON."""
    have = set(rows[base.PART].unique()) if base.PART in rows.columns else set()
    margins = _part(rows, "margins", "x_c measured", "x_0 measured") if "margins" in have else pd.DataFrame()
    return smaller_wins(margins, config)
