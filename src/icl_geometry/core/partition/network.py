"""A piecewise-linear MLP as float64 affine steps and activations, and as a function of a plane's coordinates.

`layers_of` reads a torch network of Linear and ReLU/LeakyReLU layers into `Affine` and `Act` steps
(consecutive affine maps composed into one); every exact and sampled count works on these steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from torch import nn

from icl_geometry.core.partition.planes import Plane


@dataclass(frozen=True)
class Affine:
    W: np.ndarray  # (out, in) float64
    b: np.ndarray  # (out,)


@dataclass(frozen=True)
class Act:
    slope: float  # slope where the pre-activation is negative: 0 for ReLU


def _flatten(modules: Iterable[nn.Module]) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in modules:
        out.extend(_flatten(m) if isinstance(m, nn.Sequential) else [m])
    return out


def layers_of(mlp: nn.Module | Sequence[nn.Module]) -> list[Affine | Act]:
    """The network as float64 affine maps and activations (consecutive affine maps composed into one)."""
    if isinstance(mlp, nn.Sequential) or isinstance(mlp, (list, tuple)):
        modules = _flatten(mlp)
    elif isinstance(mlp, (nn.Linear, nn.ReLU, nn.LeakyReLU)):
        modules = [mlp]
    else:
        raise ValueError(f"mlp: expected a torch.nn.Sequential of Linear and ReLU/LeakyReLU layers, "
                         f"got {type(mlp).__name__}")
    steps: list[Affine | Act] = []
    for m in modules:
        if isinstance(m, nn.Linear):
            W = m.weight.detach().cpu().double().numpy()
            b = (m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(W.shape[0]))
            if steps and isinstance(steps[-1], Affine):
                prev = steps.pop()
                W, b = W @ prev.W, W @ prev.b + b
            steps.append(Affine(W, b))
        elif isinstance(m, nn.ReLU):
            steps.append(Act(0.0))
        elif isinstance(m, nn.LeakyReLU):
            steps.append(Act(float(m.negative_slope)))
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        else:
            raise ValueError(f"mlp: layer {type(m).__name__} is not supported; allowed layers: Linear, ReLU, "
                             f"LeakyReLU (and Identity/Dropout, which are skipped)")
    if not any(isinstance(s, Act) for s in steps):
        raise ValueError("mlp: the network has no ReLU/LeakyReLU layer, so it has a single linear region")
    return steps


def input_dim(steps: Sequence[Affine | Act]) -> int | None:
    """The input dimension the first affine map expects (None if the net starts with an activation)."""
    return steps[0].W.shape[1] if isinstance(steps[0], Affine) else None


def n_neurons(mlp: nn.Module | Sequence[nn.Module]) -> int:
    """Number of piecewise-linear neurons (one bit each in an activation pattern)."""
    steps = layers_of(mlp)
    width, total = input_dim(steps), 0
    for s in steps:
        if isinstance(s, Affine):
            width = s.W.shape[0]
        else:
            total += width
    return total


def initial_map(steps, plane: Plane | None) -> tuple[np.ndarray, np.ndarray]:
    """The input as an affine function of the plane coordinates: x = (u, v) A + c."""
    D = input_dim(steps)
    if plane is None:
        if D is not None and D != 2:
            raise ValueError(f"mlp: the network takes {D}-dimensional inputs; pass plane=... (see "
                             f"plane_through) to cut a plane of its input space, or use a 2-input network")
        return np.eye(2)[None], np.zeros((1, 2))
    if D is not None and D != plane.dim:
        raise ValueError(f"plane: lies in R^{plane.dim} but the network takes {D}-dimensional inputs")
    return plane.basis[None].copy(), plane.origin[None].copy()


def on_plane(steps: list[Affine | Act], plane: Plane | None) -> list[Affine | Act]:
    """The network as a function of plane coordinates (u, v): the plane folded into the first affine map."""
    if plane is None:
        return steps
    D = input_dim(steps)
    if D is None:
        return [Affine(plane.basis.T.copy(), plane.origin.copy()), *steps]
    if D != plane.dim:
        raise ValueError(f"plane: lies in R^{plane.dim} but the network takes {D}-dimensional inputs")
    first = steps[0]
    return [Affine(first.W @ plane.basis.T, first.W @ plane.origin + first.b), *steps[1:]]
