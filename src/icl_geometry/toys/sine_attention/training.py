"""Training the toy: every (seed, restart) of a config trained together as stacked models (full batch, Adam
with warm-up and cosine decay, loss = mean over the contexts of the MSE), the kept restart of each seed chosen
on validation data (`train`), and how much a round-off-sized nudge of the start changes a fit
(`nudge_sensitivity`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch

from icl_geometry.toys.sine_attention.measures import fit_error, one_thread
from icl_geometry.core.checks import is_int
from icl_geometry.toys.sine_attention.model import (DEVICES, SineAttentionToy, ToyConfig, clocks, mha_last,
                                                    seeds_and_restarts, split_times, target)
from icl_geometry.toys.train import train as train_loop
from icl_geometry.toys.train import warmup_fraction_cosine


@dataclass
class FitResult:
    """The trained networks of one heads setting: every (seed, restart), and the kept restart of each seed."""

    config: ToyConfig
    models: list[SineAttentionToy]  # seed-major: index s * restarts + r
    losses: np.ndarray  # (steps, n_models) training loss (mean over contexts of the MSE)
    val_mse: np.ndarray  # (n_models,) validation MSE, mean over contexts
    kept: np.ndarray  # (seeds,) index into models of each seed's kept restart
    seconds: float
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kept_models(self) -> list[SineAttentionToy]:
        return [self.models[i] for i in self.kept]

    @property
    def model(self) -> SineAttentionToy:
        """The kept fit of the first seed."""
        return self.models[int(self.kept[0])]


STACK_ELEMENTS = 250_000  # stack models while R x n_bins x heads x sum(contexts) stays below this (CPU cache)


def _train_all(config: ToyConfig, device: str, nudge: int = 0) -> tuple[list[SineAttentionToy], np.ndarray]:
    """Train every (seed, restart) in stacked groups: their parameters are stacked on a leading axis and the
    loss is the sum of their losses, so each network gets exactly its own gradient and its own (elementwise)
    Adam update - the same optimisation as training them one by one, for the per-step overhead of one group.
    Small models are stacked (the step is overhead-bound); large ones on the CPU one at a time."""
    size = config.n_bins * config.heads * sum(config.contexts)
    members = seeds_and_restarts(config)
    group = len(members) if device == "cuda" else max(1, min(len(members), STACK_ELEMENTS // size))
    models, losses = [], []
    for first in range(0, len(members), group):
        m, l = _train_group(config, members[first:first + group], device, nudge)
        models += m
        losses.append(l)
    return models, np.concatenate(losses, axis=1)


def _train_group(config: ToyConfig, members: Sequence[tuple[int, int]], device: str,
                 nudge: int = 0) -> tuple[list[SineAttentionToy], np.ndarray]:
    models = [SineAttentionToy(config, s, r).to(device) for s, r in members]
    if nudge:  # move every initial weight `nudge` representable numbers up (see `nudge_sensitivity`)
        with torch.no_grad():
            for m in models:
                for p in m.parameters():
                    for _ in range(nudge):
                        p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))
    t = split_times("train", config.n_bins, config.periods, config.torch_dtype).to(device)
    y = target(t)
    sin, cos = clocks(t, config.max_context, config.periods)  # the embedding is fixed: build it once
    pos = models[0].position_code()

    def stack(get) -> torch.Tensor:
        return torch.stack([get(m).detach() for m in models]).clone().requires_grad_(True)

    Wq, Wk, Wv, Wo = (stack(lambda m, a=a: getattr(m, a)) for a in ("W_q", "W_k", "W_v", "W_o"))
    W1, b1 = stack(lambda m: m.mlp[0].weight), stack(lambda m: m.mlp[0].bias)
    W2, b2 = stack(lambda m: m.mlp[2].weight), stack(lambda m: m.mlp[2].bias)
    params = [Wq, Wk, Wv, Wo, W1, b1, W2, b2]

    def member_losses(i: int) -> torch.Tensor:
        per_model = 0
        used = config.contexts if config.mixture == "all" else (config.contexts[i % len(config.contexts)],)
        for C in used:
            z = mha_last(Wq, Wk, Wv, Wo, sin[:, :C], cos[:, :C], pos[:C], config.d_head)  # (R, n, D)
            out = torch.relu(z @ W1.transpose(1, 2) + b1[:, None]) @ W2.transpose(1, 2) + b2[:, None]
            per_model = per_model + torch.mean((out[..., 0] - y) ** 2, dim=1)
        return per_model / len(used)

    log = train_loop(params, member_losses, config.steps,
                     warmup_fraction_cosine(config.lr, config.steps, config.warmup))
    losses = log.loss if config.steps else np.empty((0, len(models)))
    with torch.no_grad():
        for r, m in enumerate(models):
            for dst, src in ((m.W_q, Wq), (m.W_k, Wk), (m.W_v, Wv), (m.W_o, Wo), (m.mlp[0].weight, W1),
                             (m.mlp[0].bias, b1), (m.mlp[2].weight, W2), (m.mlp[2].bias, b2)):
                dst.copy_(src[r])
    return [m.eval() for m in models], losses


def train(config: ToyConfig | None = None, *, device: str = "cpu", nudge: int = 0, **overrides: Any) -> FitResult:
    """Train every (seed, restart) of a config once, on all its contexts, and keep per seed the restart with
    the lowest validation MSE (mean over contexts).

    `overrides` replace fields of `config` (or of the default `ToyConfig()`), e.g. train(heads=10, seeds=4).
    `nudge` > 0 moves every initial weight that many representable numbers up before training, a change of
    the size of a different CPU's round-off (see `nudge_sensitivity`).
    """
    if config is not None and not isinstance(config, ToyConfig):
        raise ValueError(f"config: expected a ToyConfig or None, got {type(config).__name__}")
    unknown = set(overrides) - set(ToyConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown ToyConfig fields {sorted(unknown)}; allowed: {list(ToyConfig.__dataclass_fields__)}")
    if "contexts" in overrides and isinstance(overrides["contexts"], (list, range)):
        overrides["contexts"] = tuple(overrides["contexts"])
    config = replace(config or ToyConfig(), **overrides)
    if device not in DEVICES:
        raise ValueError(f"device = {device!r} is not allowed: expected one of {list(DEVICES)}")
    if not is_int(nudge) or not 0 <= nudge <= 1000:
        raise ValueError(f"nudge = {nudge!r} is not allowed: expected an integer in [0, 1000]")
    start = time.perf_counter()
    with one_thread():
        models, losses = _train_all(config, device, int(nudge))
        val = np.array([np.mean([fit_error(m, "val", C)["mse"] for C in config.contexts]) for m in models])
    kept = np.array([s * config.restarts + int(np.argmin(val[s * config.restarts:(s + 1) * config.restarts]))
                     for s in range(config.seeds)])
    return FitResult(config=config, models=models, losses=losses, val_mse=val, kept=kept,
                     seconds=time.perf_counter() - start, device=device)


def nudge_sensitivity(config: ToyConfig | None = None, *, device: str = "cpu", nudge: int = 1,
                      **overrides: Any) -> dict[str, np.ndarray]:
    """How much a round-off-sized change of the starting point changes a fit: every network is trained twice,
    from its initialisation and from the same initialisation with every weight moved `nudge` representable
    numbers up (one unit in the last place for nudge = 1). Returns the final training loss of each network
    both ways ("mse", "mse_nudged") and their ratio. A different CPU (other vector kernels, another summation
    order) changes the training by round-off of this size at every step, so a large ratio here means the
    toy's individual fits cannot be reproduced across machines, only their distribution."""
    if not is_int(nudge) or not 1 <= nudge <= 1000:
        raise ValueError(f"nudge = {nudge!r} is not allowed: expected an integer in [1, 1000]")
    plain = train(config, device=device, **overrides)
    moved = train(plain.config, device=device, nudge=nudge)
    final = plain.losses[-1] if len(plain.losses) else np.full(len(plain.models), np.nan)
    final_moved = moved.losses[-1] if len(moved.losses) else np.full(len(moved.models), np.nan)
    members = seeds_and_restarts(plain.config)
    return {"seed": np.array([s for s, _ in members]), "restart": np.array([r for _, r in members]),
            "mse": final, "mse_nudged": final_moved, "ratio": final_moved / final}
