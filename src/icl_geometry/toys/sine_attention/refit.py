"""The intervention on the toy's chain (issue 28): keep a trained network's attention block (and embedding) as
it is, squeeze the MLP's input onto its top principal components, and refit only the MLP - against the same
refit on the unsqueezed input.

If the fit depends on the dimension of the MLP input (the paper's chain: context -> dimension -> regions ->
fit), a 2-d projection of a higher-dimensional input must fit worse than the full input, with everything else
equal: the same frozen attention, the same MLP initialisation, steps and optimiser. The control (the full input)
separates "the dimension was lost" from "an MLP refitted alone fits differently". At context 1 the input is
already planar (an ellipse), so a 2-d projection loses nothing: the two refits agree there.

- `pca_basis` / `project`: centred PCA of the MLP inputs at the training bins, and the affine projection
  mean + (z - mean) V_k V_k^T onto the top k components (applied with the same mean and V_k to any times).
- `pca_refit(model, context, components, steps, seed)`: both refits (`RefitResult`).
- `intervention_rows(fits, contexts, ...)`: one row per (heads, seed, context) of the kept fits.
- `refit_contrast` (the claim: geometric mean over networks of projected / control test MSE, Student-t interval
  on the log ratios) and `refit_table` (per heads and context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from icl_geometry.core import stats
from icl_geometry.core.checks import is_int
from icl_geometry.toys.sine_attention.measures import fine_grid, fit_error, mlp_inputs, one_thread, regions_along
from icl_geometry.toys.sine_attention.model import SineAttentionToy, split_times, target
from icl_geometry.toys.sine_attention.training import FitResult
from icl_geometry.toys.train import train as train_loop
from icl_geometry.toys.train import warmup_fraction_cosine

ARMS = ("control", "projected")  # the refit on the full MLP input, and on its projection
INITS = ("trained", "fresh")  # where both refits start: the trained MLP's weights, or a fresh draw
HURT_TOL = 1e-9  # the projection "hurts" a network when it raises its test MSE by more than this (relative)
REFIT_FIELDS = ("heads", "context", "seed", "restart", "components", "explained", "original_mse", "control_mse",
                "projected_mse", "control_train_mse", "projected_train_mse", "control_pieces", "projected_pieces")


def pca_basis(z: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Centred PCA of the rows of z (n, d): their mean, the top `components` right singular vectors (d, k) and
    the share of the variance they carry."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"z: expected an (n, d) array, got shape {z.shape}")
    if not is_int(components) or not 1 <= components <= z.shape[1]:
        raise ValueError(f"components = {components!r} is not allowed: expected an integer in [1, {z.shape[1]}] "
                         "(the MLP input's width)")
    mean = z.mean(0)
    _, s, vt = np.linalg.svd(z - mean, full_matrices=len(z) < z.shape[1])
    total = float((s ** 2).sum())
    explained = float((s[:components] ** 2).sum() / total) if total > 0 else 1.0
    return mean, vt[:components].T, explained


def project(z: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """mean + (z - mean) V V^T: the rows of z on the affine subspace of the basis V (d, k) through the mean."""
    return mean + (np.asarray(z, dtype=np.float64) - mean) @ basis @ basis.T


@dataclass
class RefitResult:
    """Both refits of one network at one context: the MLPs (control: on the full input; projected: on its
    projection), their MSEs at the training and test bins, the original network's test MSE, the PCA (mean,
    basis, variance share), and the pieces of each refit along t (-1 when not counted)."""

    context: int
    components: int
    explained: float
    mean: np.ndarray
    basis: np.ndarray
    mlps: dict[str, nn.Sequential]
    train_mse: dict[str, float]
    test_mse: dict[str, float]
    original_mse: float
    pieces: dict[str, int]

    @property
    def ratio(self) -> float:
        """Projected / control test MSE."""
        return self.test_mse["projected"] / self.test_mse["control"]


def _seed(seed: int, model: SineAttentionToy, context: int) -> int:
    return int(np.random.SeedSequence([seed, model.seed, model.restart, context]).generate_state(1)[0])


def _init(hidden: int, inputs: list[torch.Tensor], g: torch.Generator) -> list[torch.Tensor]:
    """One MLP initialisation for every arm, stacked (arms, ...): the weights drawn once, each hidden neuron's
    bias putting its hyperplane through a random point between two consecutive training bins' inputs of that
    arm (no bin on a kink, no neuron dead at the start; the chapter's toy does the same on the full network).
    A projection is affine, so the anchors of the projected arm are the projections of the control's."""
    n, d = inputs[0].shape
    dtype = inputs[0].dtype
    W1 = torch.randn(hidden, d, generator=g, dtype=dtype) * d ** -0.5
    W2 = torch.randn(1, hidden, generator=g, dtype=dtype) * hidden ** -0.5
    j = torch.randint(0, n - 1, (hidden,), generator=g)
    u = torch.rand(hidden, generator=g, dtype=dtype)[:, None]
    b1 = torch.stack([-((z[j] + u * (z[j + 1] - z[j])) * W1).sum(1) for z in inputs])
    R = len(inputs)
    return [W1.expand(R, -1, -1).clone(), b1, W2.expand(R, -1, -1).clone(), torch.zeros(R, 1, dtype=dtype)]


def _mlp(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor) -> nn.Sequential:
    d, hidden = W1.shape[1], W1.shape[0]
    mlp = nn.Sequential(nn.Linear(d, hidden, dtype=W1.dtype), nn.ReLU(), nn.Linear(hidden, 1, dtype=W1.dtype))
    with torch.no_grad():
        for dst, src in ((mlp[0].weight, W1), (mlp[0].bias, b1), (mlp[2].weight, W2), (mlp[2].bias, b2)):
            dst.copy_(src)
    return mlp.eval()


def _trained(mlp: nn.Sequential, arms: int) -> list[torch.Tensor]:
    """The trained MLP's weights as the start of every arm, stacked (arms, ...)."""
    return [p.detach().clone()[None].expand(arms, *p.shape).clone()
            for p in (mlp[0].weight, mlp[0].bias, mlp[2].weight, mlp[2].bias)]


def _check(components: int, steps: int, seed: int, per_bin: int, init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init = {init!r} is not allowed: expected one of {list(INITS)}")
    if not is_int(components) or components < 1:
        raise ValueError(f"components = {components!r} is not allowed: expected an integer in [1, d_model]")
    if not is_int(steps) or not 0 <= steps <= 10_000_000:
        raise ValueError(f"steps = {steps!r} is not allowed: expected an integer in [0, 10000000]")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed = {seed!r} is not allowed: expected an integer >= 0")
    if not is_int(per_bin) or per_bin < 0:
        raise ValueError(f"per_bin = {per_bin!r} is not allowed: expected an integer >= 0 (0: no pieces)")


def refit_many(jobs: Iterable[tuple[SineAttentionToy, int]], components: int = 2, steps: int = 500, seed: int = 0,
               per_bin: int = 0, init: str = "trained") -> list[RefitResult]:
    """`pca_refit` of every (model, context) of `jobs`, all MLPs trained together as stacked members (each gets
    exactly its own gradient and Adam update; the per-step overhead is paid once). The models must share the
    training bins, d_model, hidden width, learning rate and warm-up."""
    _check(components, steps, seed, per_bin, init)
    jobs = [(m, m._context(C)) for m, C in jobs]
    if not jobs:
        return []
    c = jobs[0][0].config
    shared = ("n_bins", "periods", "d_model", "hidden", "lr", "warmup", "dtype")
    for m, _ in jobs:
        if any(getattr(m.config, f) != getattr(c, f) for f in shared):
            raise ValueError(f"jobs: every model must share {list(shared)} with the first")
    t_train = split_times("train", c.n_bins, c.periods, torch.float64)
    t_test = split_times("test", c.n_bins, c.periods, torch.float64)
    y, y_test = target(t_train), target(t_test)
    preps, inputs, params = [], [], []
    for m, C in jobs:
        z_train = mlp_inputs(m, "train", C)
        mean, basis, explained = pca_basis(z_train, components)
        x = [torch.from_numpy(z_train), torch.from_numpy(project(z_train, mean, basis))]
        preps.append((mean, basis, explained))
        inputs += x
        params.append(_trained(m.mlp, len(x)) if init == "trained"
                      else _init(c.hidden, x, torch.Generator().manual_seed(_seed(seed, m, C))))
    with one_thread():
        X = torch.stack(inputs)  # (2 jobs, n, d): control and projected of each job in turn
        W1, b1, W2, b2 = params = [torch.cat(p).requires_grad_(True) for p in zip(*params)]

        def losses(_: int) -> torch.Tensor:
            out = torch.relu(X @ W1.transpose(1, 2) + b1[:, None]) @ W2.transpose(1, 2) + b2[:, None]
            return torch.mean((out[..., 0] - y) ** 2, dim=1)

        train_loop(params, losses, steps, warmup_fraction_cosine(c.lr, steps, c.warmup))
    results = []
    for i, ((m, C), (mean, basis, explained)) in enumerate(zip(jobs, preps)):
        arms = {"control": lambda z: np.asarray(z, dtype=np.float64), "projected": lambda z: project(z, mean, basis)}
        mlps = {a: _mlp(*(p[2 * i + k].detach() for p in params)) for k, a in enumerate(ARMS)}
        z_test = mlp_inputs(m, "test", C)
        with torch.no_grad(), one_thread():
            train_mse = {a: float(torch.mean((mlps[a](inputs[2 * i + k])[:, 0] - y) ** 2))
                         for k, a in enumerate(ARMS)}
            test_mse = {a: float(torch.mean((mlps[a](torch.from_numpy(arms[a](z_test)))[:, 0] - y_test) ** 2))
                        for a in ARMS}
        pieces = {a: -1 for a in ARMS}
        if per_bin:
            t = fine_grid(m, per_bin)
            z_fine = mlp_inputs(m, t, C)
            pieces = {a: len(regions_along(mlps[a], t.numpy(), arms[a](z_fine))[0]) + 1 for a in ARMS}
        results.append(RefitResult(context=C, components=int(components), explained=explained, mean=mean,
                                   basis=basis, mlps=mlps, train_mse=train_mse, test_mse=test_mse,
                                   original_mse=fit_error(m, "test", C)["mse"], pieces=pieces))
    return results


def pca_refit(model: SineAttentionToy, context: int, components: int = 2, steps: int = 500, seed: int = 0,
              per_bin: int = 0, init: str = "trained") -> RefitResult:
    """Freeze `model`'s attention block and embedding, read its MLP inputs z(t) at the training bins at
    `context`, project them onto their top `components` principal components (centred PCA on the training
    bins), and refit only an MLP of the model's width on them; the control refits the same MLP (the same
    initialisation, `steps`, Adam with the model's learning rate, warm-up and cosine decay, full batch) on the
    unprojected inputs. Test MSEs at the test bins (projected with the training bins' PCA). `per_bin` > 0 also
    counts each refit's pieces along t on a grid per_bin x finer than the bins. One thread, float64;
    deterministic given `seed` (combined with the model's seed, restart and the context)."""
    return refit_many([(model, context)], components, steps, seed, per_bin, init)[0]


def intervention_rows(fits: Mapping[int, FitResult] | Iterable[FitResult], contexts: Iterable[int],
                      components: int = 2, steps: int = 500, seed: int = 0, per_bin: int = 0,
                      init: str = "trained") -> list[dict[str, Any]]:
    """`pca_refit` of every kept fit (one per heads and seed) at each of `contexts`: one row per (heads, seed,
    context) with the original, control and projected test MSEs (`REFIT_FIELDS`)."""
    fits = list(fits.values()) if isinstance(fits, Mapping) else list(fits)
    contexts = [int(C) for C in contexts]
    if not contexts:
        raise ValueError("contexts: expected at least one context")
    jobs = []
    for fit in fits:
        bad = sorted(set(contexts) - set(fit.config.contexts))
        if bad:
            raise ValueError(f"contexts {bad} are not allowed: the fits were trained on {list(fit.config.contexts)}")
        jobs += [(m, C) for m in fit.kept_models for C in contexts]
    rows = []
    for (m, C), r in zip(jobs, refit_many(jobs, components, steps, seed, per_bin, init)):
        rows.append({"heads": m.config.heads, "context": C, "seed": m.seed, "restart": m.restart,
                     "components": r.components, "explained": r.explained, "original_mse": r.original_mse,
                     **{f"{a}_mse": r.test_mse[a] for a in ARMS}, **{f"{a}_train_mse": r.train_mse[a] for a in ARMS},
                     **{f"{a}_pieces": r.pieces[a] for a in ARMS}})
    return rows


def refit_contrast(rows: Any, context: int | None = None, min_n: int = 3,
                   level: float = 0.9) -> tuple[float, tuple[float, float], str] | None:
    """The intervention's effect: over every network (heads, seed) at `context` (default: the longest in the
    rows), the geometric mean of projected / control test MSE (paired: one network, one initialisation) with a
    Student-t interval on the log ratios over networks; None below `min_n` networks (or 2)."""
    df = pd.DataFrame(rows)
    if df.empty:
        return None
    C = int(df.context.max()) if context is None else int(context)
    at = df[df.context == C]
    if len(at) < max(min_n, 2):
        return None
    logs = np.log(at.projected_mse.to_numpy(float) / at.control_mse.to_numpy(float))
    mean, (lo, hi) = stats.t_interval(logs, level)
    k = int(at.components.iloc[0])
    heads = sorted(int(h) for h in at.heads.unique())
    return math.exp(mean), (math.exp(lo), math.exp(hi)), (
        f"{len(at)} networks (heads {heads[0]}-{heads[-1]} x seeds), context {C}: geometric mean of test MSE after "
        f"refitting the MLP on the top-{k} PCA projection of its input / after the same refit on the full input; "
        f"{level:.0%} Student-t interval on the log ratios over networks")


def refit_table(rows: Any) -> pd.DataFrame:
    """Per heads and context: networks, the variance share of the top components, the geometric-mean ratio
    projected / control test MSE and the share of networks the projection hurts, the control refit against the
    original fit (geometric-mean ratio), and the mean pieces of both refits. A network counts as hurt when the
    projection raises its test MSE by more than `HURT_TOL` (relative): a planar input's ratio is 1 up to round-off."""
    df = pd.DataFrame(rows)
    df = df.assign(log_ratio=np.log(df.projected_mse / df.control_mse),
                   log_control=np.log(df.control_mse / df.original_mse))
    out = df.groupby(["heads", "context"]).agg(
        networks=("seed", "size"), explained=("explained", "mean"), ratio=("log_ratio", "mean"),
        hurt=("log_ratio", lambda v: float((v > math.log1p(HURT_TOL)).mean())),
        control_vs_original=("log_control", "mean"),
        control_pieces=("control_pieces", "mean"), projected_pieces=("projected_pieces", "mean")).reset_index()
    return out.assign(ratio=np.exp(out.ratio), control_vs_original=np.exp(out.control_vs_original))
