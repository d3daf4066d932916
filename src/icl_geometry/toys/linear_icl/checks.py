"""The setting's vocabulary and argument checks, shared by every part of `toys.linear_icl` (integers go
through `core.checks.check_int`, the package's one integer check)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from icl_geometry.core.checks import check_int  # noqa: F401  (re-exported: the package's one integer check)

SPECTRA: tuple[str, ...] = ("power", "geometric", "flat")
NOISE_KINDS: tuple[str, ...] = ("label", "input")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
INITS: tuple[str, ...] = ("zfb", "random")
QUERIES: tuple[str, ...] = ("integrate", "sample")
Array = Any  # numpy array or torch tensor


def check_noise(name: str, v: Any) -> float:
    """`v` as a noise standard deviation (a finite float >= 0), or a ValueError naming `name`."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} = {v!r} is not allowed: expected a standard deviation >= 0")
    return float(v)


def check_cov(Lambda: Array) -> None:
    """A ValueError unless `Lambda` is a finite, symmetric, positive semi-definite square matrix."""
    shape = tuple(Lambda.shape)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 1:
        raise ValueError(f"Lambda: expected a square d x d covariance matrix, got shape {shape}")
    L = np.asarray(Lambda.detach().cpu() if isinstance(Lambda, torch.Tensor) else Lambda, dtype=np.float64)
    scale = max(float(np.abs(L).max()), 1e-300)
    if not np.all(np.isfinite(L)) or np.abs(L - L.T).max() > 1e-8 * scale:
        raise ValueError("Lambda: expected a finite symmetric matrix")
    if np.linalg.eigvalsh(L).min() < -1e-8 * scale:
        raise ValueError("Lambda: expected a positive semi-definite matrix (it has a negative eigenvalue)")


def is_torch(*xs: Any) -> bool:
    """Whether any argument is a torch tensor (then a function answers in torch)."""
    return any(isinstance(x, torch.Tensor) for x in xs)


def check_rate(p: Any) -> np.ndarray:
    """Flip rate(s) `p` as a float array of probabilities in [0, 1], or a ValueError."""
    a = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"flip_rate = {p!r} is not allowed: expected a probability in [0, 1]")
    return a

