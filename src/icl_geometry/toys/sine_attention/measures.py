"""What is measured on a trained toy network: its prediction and errors, its MLP input (rank, effective
dimension, linear read-out), and the exact linear regions of its MLP along the input t (`count_regions`)."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from icl_geometry.core import partition
from icl_geometry.core.checks import is_int
from icl_geometry.toys.sine_attention.model import SineAttentionToy, split_times, target, time_grid

EVAL_ELEMENTS = 250_000  # evaluate the MLP input in chunks of times x heads x context below this


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: the toy's ops are small (a second thread only adds contention, up to 10x on a
    busy 2-core machine), and the results then cannot depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- evaluation

def _times(model: SineAttentionToy, t) -> torch.Tensor:
    c = model.config
    if t is None:
        t = split_times("train", c.n_bins, c.periods, c.torch_dtype)
    elif isinstance(t, str):
        t = split_times(t, c.n_bins, c.periods, c.torch_dtype)
    return torch.as_tensor(t).to(model.W_q)


@torch.no_grad()
def predict(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None) -> torch.Tensor:
    """The toy's prediction at times t (default: the training bins; or "val" / "test") reading `context`
    tokens (default: the longest), on the CPU."""
    with one_thread():
        return model(_times(model, t), context).cpu()


@torch.no_grad()
def fit_error(model: SineAttentionToy, t: torch.Tensor | str | None = None,
              context: int | None = None) -> dict[str, float]:
    """Mean squared error, largest absolute error, and fraction of variance unexplained of the fit at times t
    (default: the training bins; "val" / "test": the held-out times) reading `context` tokens."""
    t = _times(model, t)
    err = model(t, context) - target(t)
    mse = float(torch.mean(err.double() ** 2))
    var = float(torch.var(target(t).double(), unbiased=False))
    return {"mse": mse, "max_abs": float(err.abs().max()), "fvu": mse / var}


def _float64(model: SineAttentionToy) -> SineAttentionToy:
    """A float64 copy on the CPU (region boundaries are located in float64)."""
    if model.W_q.dtype == torch.float64 and model.W_q.device.type == "cpu":
        return model
    return copy.deepcopy(model).to("cpu", torch.float64)


@torch.no_grad()
def mlp_inputs(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None) -> np.ndarray:
    """(len(t), d_model) float64 MLP inputs (default: at the training bins, longest context), in chunks of
    times whose (times, heads, context) attention tensors stay cache-sized."""
    m = _float64(model)
    t = _times(m, t)
    C = m._context(context)
    step = max(16, EVAL_ELEMENTS // (m.config.heads * C))
    with one_thread():
        return torch.cat([m.mlp_input(t[i:i + step], C) for i in range(0, len(t), step)]).numpy()


@torch.no_grad()
def linear_probe_error(model: SineAttentionToy, t: torch.Tensor | str | None = None,
                       context: int | None = None) -> float:
    """MSE of the best affine read-out of sin(t) from the MLP input: how much the attention block already fits
    before the MLP's regions are used (0.5 = nothing, the variance of sin)."""
    z = torch.from_numpy(mlp_inputs(model, t, context))
    Z = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
    y = target(_times(_float64(model), t))[:, None]
    coef = torch.linalg.lstsq(Z, y, driver="gelsd").solution
    return float(torch.mean((Z @ coef - y) ** 2))


def singular_values(z: np.ndarray) -> np.ndarray:
    return np.linalg.svd(z - z.mean(0), compute_uv=False)


def mlp_input_rank(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None,
                   rtol: float = 1e-6) -> int:
    """Linear dimension of the set of MLP inputs over the times: singular values of the centred matrix above
    rtol x the largest (Theorem 2.1 bounds it; see the module docstring for min(d_model, H min(d_head, C + 1)))."""
    s = singular_values(mlp_inputs(model, t, context))
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


def effective_dim(z: np.ndarray) -> float:
    """Participation ratio (sum s^2)^2 / sum s^4 of the centred rows' singular values s: the number of
    directions that carry the variance (1 for a segment, 2 for a circle, d for an isotropic cloud)."""
    s2 = singular_values(np.asarray(z, dtype=np.float64)) ** 2
    return float(s2.sum() ** 2 / (s2 ** 2).sum()) if s2.sum() > 0 else 0.0


def activation_patterns(model: SineAttentionToy, t: torch.Tensor | str | None = None,
                        context: int | None = None) -> np.ndarray:
    """(len(t), hidden) booleans: which hidden ReLU neurons are on at the MLP input of each time."""
    return partition.activation_patterns(model.mlp, mlp_inputs(model, t, context))


@dataclass(frozen=True)
class RegionCount:
    """The MLP's regions along the input t (see the module docstring)."""

    pieces: int  # maximal t-intervals with one activation pattern (exact along the polyline of z)
    distinct: int  # different patterns along the polyline = linear regions the curve z(t) visits
    distinct_on_bins: int  # different patterns at the n_bins training times
    boundaries: np.ndarray  # t where the pattern changes
    n_grid: int


def fine_grid(model: SineAttentionToy, per_bin: int = 20) -> torch.Tensor:
    """A grid per_bin times finer than the bins, on the same interval (the embedding is defined for all t)."""
    c = model.config
    return time_grid((c.n_bins - 1) * per_bin + 1, c.periods, torch.float64)


def regions_along(mlp: nn.Module, t: torch.Tensor | np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact regions of `mlp` along the polyline through the points Z (len(t), d) at the times t: the t where the
    activation pattern changes, and the pattern of every piece (stacked in order).

    Segments whose end patterns differ are split exactly by `partition.regions_1d`; with one hidden layer the
    other segments cannot contain a switch. Deeper MLPs get the exact count on every segment."""
    tt = np.asarray(t, dtype=np.float64)
    if Z.ndim != 2 or len(Z) != len(tt):
        raise ValueError(f"Z: expected one row per time ({len(tt)}), got shape {Z.shape}")
    P = partition.activation_patterns(mlp, Z)
    one_layer = sum(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in mlp.modules()) == 1
    todo = np.nonzero((P[1:] != P[:-1]).any(1))[0] if one_layer else np.arange(len(Z) - 1)
    breaks, patterns = [], [P[:1]]
    for i in todo:
        where, pats = partition.regions_1d(mlp, Z[i], Z[i + 1])
        breaks.append(tt[i] + where * (tt[i + 1] - tt[i]))
        patterns.append(pats)
    return (np.concatenate(breaks) if breaks else np.zeros(0)), np.vstack(patterns)


def count_regions(model: SineAttentionToy, context: int | None = None, per_bin: int = 20) -> RegionCount:
    """Exact regions of the MLP along the polyline through z(t) (reading `context` tokens) on a grid per_bin x
    finer than the bins (`regions_along`)."""
    if not is_int(per_bin) or per_bin < 1:
        raise ValueError(f"per_bin = {per_bin!r} is not allowed: expected an integer >= 1")
    t = fine_grid(model, per_bin)
    boundaries, patterns = regions_along(model.mlp, t.numpy(), mlp_inputs(model, t, context))
    return RegionCount(pieces=len(boundaries) + 1, distinct=partition.count_distinct(patterns),
                       distinct_on_bins=partition.count_distinct(activation_patterns(model, None, context)),
                       boundaries=boundaries, n_grid=len(t))
