"""Training in `toys.linear_icl`: every rank trained side by side on fresh clean prompts (Adam or SGD, linear
warm-up then cosine decay), the distance to the closed-form optimum logged as it goes."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from icl_geometry.toys.linear_icl.checks import OPTIMIZERS, QUERIES, Array, check_int
from icl_geometry.toys.linear_icl.model import LinearSelfAttention, PromptSampler
from icl_geometry.toys.linear_icl.theory import optimal_gamma
from icl_geometry.toys.train import TrainResult
from icl_geometry.toys.train import train as train_loop
from icl_geometry.toys.train import warmup_steps_cosine


def train(model: LinearSelfAttention, sampler: PromptSampler, steps: int, batch: int, lr: float = 0.02,
          optimizer: str = "adam", warmup: int | None = None, query: str = "integrate", log_every: int = 50,
          progress: bool = False) -> TrainResult:
    """Minimise the clean-prompt MSE on fresh prompts (contexts and tasks) every step, all ranks on the same prompts.

    query 'sample': the literal objective, one random query per prompt. query 'integrate': the same expected
    loss with the query averaged out exactly, E_xq (a^T x_q - w^T x_q)^2 = (a - w)^T Lambda (a - w) (the model
    is linear in x_q); at equal cost its gradient is far less noisy (about 4x closer to the optimum in chapter 5).
    Adam (or SGD) with a linear warm-up and a cosine decay to 0.
    """
    if query not in QUERIES:
        raise ValueError(f"query = {query!r} is not allowed: expected one of {list(QUERIES)}")
    steps = check_int("steps", steps, 1)
    batch = check_int("batch", batch, 1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer = {optimizer!r} is not allowed: expected one of {list(OPTIMIZERS)}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr = {lr!r} is not allowed: expected a number > 0")
    if sampler.d != model.d:
        raise ValueError(f"sampler has d = {sampler.d} but the model has d = {model.d}")
    warmup = max(1, steps // 20) if warmup is None else check_int("warmup", warmup, 0, steps)
    target = torch.stack([torch.as_tensor(optimal_gamma(sampler.Lambda, sampler.N, r)) for r in model.ranks])
    tnorm = target.flatten(1).norm(dim=1)

    def member_losses(_: int) -> torch.Tensor:
        G, w, xq = sampler.clean_gram(batch)
        if query == "sample":
            return ((model.forward_gram(G, xq) - (w * xq).sum(-1)) ** 2).mean(-1)
        e = model.readout(G) - w
        return ((e @ sampler.Lambda) * e).sum(-1).mean(-1)

    def distance(_: int) -> np.ndarray:
        return ((model.gamma() - target).flatten(1).norm(dim=1) / tnorm).cpu().numpy()

    log = train_loop(model.parameters(), member_losses, steps, warmup_steps_cosine(lr, steps, warmup),
                     optimizer=optimizer, log_every=log_every, observe=distance, progress=progress,
                     desc=f"train ranks {model.ranks}")
    return TrainResult(model, log.steps, log.loss, log.seconds, rel_dist=log.observed)


def fit_ranks(Lambda: Array, N: int, ranks: Sequence[int], steps: int, batch: int, lr: float = 0.02,
              seed: int = 0, device: str = "cpu", optimizer: str = "adam", init_scale: float = 0.1,
              init: str = "zfb", query: str = "integrate", progress: bool = False) -> TrainResult:
    """Train one model per rank on fresh clean prompts from N(0, Lambda); see `train`."""
    sampler = PromptSampler(Lambda, N, seed=seed + 1, device=device)
    model = LinearSelfAttention(int(Lambda.shape[0]), ranks, init_scale=init_scale, init=init, seed=seed,
                                device=device)
    return train(model, sampler, steps, batch, lr=lr, optimizer=optimizer, query=query, progress=progress)
