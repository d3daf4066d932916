"""The one training loop of the book's toys, and the learning-rate schedules they use.

Every toy trains a family of small networks side by side: their parameters are stacked (or concatenated) so
that one loss, the sum of the members' losses, gives each member exactly its own gradient, and Adam (which
acts elementwise) gives each its own update. `train` runs that loop: set the step's learning rate, compute
the members' losses, back-propagate their sum, step, log. The schedules differ between toys and their outputs
depend on them (to the last bit), so each keeps its own formula here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch


@dataclass
class TrainLog:
    """What `train` logged: the logged steps, each member's loss at those steps (steps x members), the loop's
    wall time in seconds, and what `observe` returned at those steps (steps x ..., or None)."""

    steps: np.ndarray
    loss: np.ndarray
    seconds: float
    observed: np.ndarray | None = None


@dataclass
class TrainResult:
    """A trained family of toys: the model (every member inside it), the logged steps, each member's training loss
    at those steps (steps x members), the wall time, and, for toys whose optimum is known in closed form, each
    member's relative distance to it at the logged steps (`rel_dist`, steps x members)."""

    model: Any
    steps: np.ndarray
    loss: np.ndarray
    seconds: float
    rel_dist: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_rel_dist(self) -> np.ndarray:
        if self.rel_dist is None:
            raise ValueError("this toy logged no distance to a closed-form optimum")
        return self.rel_dist[-1]


def cosine(lr: float, steps: int) -> Callable[[int], float]:
    """Cosine decay from `lr` to 0 over `steps` (chapter 1's sine fits)."""
    return lambda i: lr * (0.5 * (1 + math.cos(math.pi * i / max(steps, 1))))


def warmup_steps_cosine(lr: float, steps: int, warmup: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 (chapters 5 and 6)."""
    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return lr_at


def warmup_fraction_cosine(lr: float, steps: int, warmup: float) -> Callable[[int], float]:
    """A linear warm-up over the first `warmup` fraction of the steps, multiplied into a cosine decay over all
    of them (chapter 2's toy)."""
    warm = max(1, round(warmup * steps))
    return lambda i: lr * (min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1))))


OPTIMIZERS = ("adam", "sgd")


def train(params: Iterable[torch.Tensor], member_losses: Callable[[int], torch.Tensor], steps: int,
          lr_at: Callable[[int], float], *, optimizer: str = "adam", log_every: int = 1,
          observe: Callable[[int], np.ndarray] | None = None, progress: bool = False,
          desc: str = "train") -> TrainLog:
    """Adam (or plain SGD) on `params` for `steps` steps: at step i the learning rate is `lr_at(i)`,
    `member_losses(i)` returns one loss per member (a 1-D tensor) and their sum is minimised. Every `log_every`
    steps and at the last one it logs each member's loss and, after the update, `observe(i)` (e.g. each
    member's distance to a known optimum; kept in `TrainLog.observed`)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer = {optimizer!r} is not allowed: expected one of {list(OPTIMIZERS)}")
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(list(params), lr=lr_at(0))
    logged: list[int] = []
    losses: list[np.ndarray] = []
    observed: list[np.ndarray] = []
    steps_iter: Sequence[int] | Iterable[int] = range(steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc=desc)
    t0 = time.perf_counter()
    for step in steps_iter:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        per_member = member_losses(step)
        opt.zero_grad(set_to_none=True)
        per_member.sum().backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            logged.append(step)
            losses.append(per_member.detach().cpu().numpy())
            if observe is not None:
                with torch.no_grad():
                    observed.append(np.asarray(observe(step)))
    loss = np.array(losses, dtype=np.float64) if losses else np.zeros((0, 0))
    return TrainLog(np.array(logged, dtype=int), loss, time.perf_counter() - t0,
                    np.array(observed) if observed else None)
