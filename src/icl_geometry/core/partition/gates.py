"""A real LLM's SwiGLU gate read as a ReLU: its exact sign-pattern regions on a plane, a check that the line
model is the gate's own, and how much of the gate sits where SiLU is close to ReLU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from icl_geometry.core.partition.lines import count_line_regions, first_layer_lines
from icl_geometry.core.partition.planes import Bounds, Plane, as_array


def silu_relu_gap(threshold: float) -> float:
    """Largest |SiLU(z) - ReLU(z)| / |z| over |z| >= threshold: sigmoid(-threshold).

    SiLU(z) = z sigmoid(z), so ReLU(z) - SiLU(z) = |z| sigmoid(-|z|) on both sides of 0; relative to |z|
    it is sigmoid(-|z|), which falls with |z|. At threshold 3 it is 4.7 %, at 2 it is 11.9 %.
    """
    t = float(threshold)
    if not (t >= 0 and math.isfinite(t)):
        raise ValueError(f"threshold = {threshold!r} is not allowed: expected a finite number >= 0")
    return 1.0 / (1.0 + math.exp(t))


def relu_like_fraction(pre, threshold: float = 3.0) -> float:
    """Fraction of pre-activations with |z| > threshold, where SiLU(z) is within `silu_relu_gap` of ReLU(z).

    Used on a SwiGLU gate's pre-activations to measure how much of the gate the ReLU (sign-pattern) reading
    describes well: near z = 0 SiLU is smooth and the sign says little.
    """
    z = as_array(pre, "pre").ravel()
    silu_relu_gap(threshold)  # validates threshold
    if z.size == 0:
        raise ValueError("pre: expected at least one pre-activation")
    return float((np.abs(z) > float(threshold)).mean())


def gate_regions_on_plane(gate: nn.Linear, plane: Plane, bounds: Bounds) -> int:
    """Exact number of sign-pattern regions the gate pre-activations gate(x) cut a window of a plane into.

    For a SwiGLU/GeGLU MLP, gate = mlp.gate_proj and x the MLP input (after the RMS norm). The sign of
    gate(x) is the on/off pattern a ReLU reading of the gate would have; the lines are exact because
    gate is linear, and (no bias) scaling x by a positive number, as RMS normalisation does, keeps the
    pattern, so a plane through normalised points slices the cone of residual-stream vectors faithfully.
    """
    if not isinstance(gate, nn.Linear):
        raise ValueError(f"gate: expected an nn.Linear (e.g. layer.mlp.gate_proj), got {type(gate).__name__}")
    a, c = first_layer_lines(gate, plane)
    return count_line_regions(a, c, bounds)


def gate_sign_mismatch(gate: nn.Linear, plane: Plane, uv: np.ndarray) -> float:
    """Fraction of (point, neuron) signs where the model's own `gate` module disagrees with our line model.

    The check that the line arrangement is the gate's: lift plane points to the input space, run the
    real module (its dtype and device), and compare signs with a_j . (u, v) + c_j.
    """
    a, c = first_layer_lines(gate, plane)
    ours = np.asarray(uv, dtype=np.float64) @ a.T + c > 0
    w = gate.weight
    X = torch.as_tensor(plane.lift(uv), dtype=w.dtype, device=w.device)
    with torch.no_grad():
        theirs = (gate(X) > 0).cpu().numpy()
    return float((ours != theirs).mean())


def gate_smoothness(gate: nn.Linear, points, margin: float, n_grid: int = 80) -> dict[str, float]:
    """How ReLU-like a gate is on the plane through three MLP inputs `points` (3, d): the fraction of its
    pre-activations with |z| > 2 and > 3 (where SiLU is close to ReLU, so the sign pattern describes the gate
    well) at the three points and over an `n_grid` x `n_grid` grid of the plane's window (widened by `margin`),
    and the median |z| at the points. Pre-activations on the plane are exactly a . (u, v) + c (float64)."""
    from icl_geometry.core.partition.planes import plane_through

    plane = plane_through(*points)
    a, c = first_layer_lines(gate, plane)
    W = plane.window(margin)
    uv = np.stack(np.meshgrid(np.linspace(W[0], W[1], n_grid), np.linspace(W[2], W[3], n_grid)), -1).reshape(-1, 2)
    pre_tokens = plane.coords @ a.T + c  # (3 tokens, gate neurons)
    pre_window = uv @ a.T + c  # (n_grid^2 points, gate neurons)
    row = {"gate neurons": a.shape[0], "median |z| at tokens": float(np.median(np.abs(pre_tokens)))}
    for t in (2.0, 3.0):
        row[f"|z|>{t:g} at tokens"] = relu_like_fraction(pre_tokens, t)
        row[f"|z|>{t:g} in window"] = relu_like_fraction(pre_window, t)
    return row
