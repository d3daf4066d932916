"""Paper A's Fig. 2 toy: fit sin(x) on [-2 pi, 2 pi] with a one-hidden-layer ReLU MLP and count the linear
pieces it uses.

A one-hidden-layer ReLU net on a scalar input is a linear spline whose knots are the points -b_j / w_j
where a neuron switches; the knots inside the domain are the "regions along the input" of Fig. 2. The
paper gives neither optimiser nor steps. Our choices: float64, full batch on `n_train` evenly spaced
points, Adam with a cosine-decayed learning rate, PyTorch's default initialisation except that every
neuron's knot starts at a random point of the domain (so none starts dead or outside the data), and
the input rescaled to [-1, 1] during training (the returned model maps raw x to y, so region counts
are in raw x).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from icl_geometry.core.checks import check_int
from icl_geometry.toys.train import cosine, train

DOMAIN = (-2 * math.pi, 2 * math.pi)


@dataclass(frozen=True)
class SineFit:
    """A trained fit and its error on a fine test grid."""

    width: int
    seed: int
    model: nn.Sequential  # float64, maps x (N, 1) -> y (N, 1)
    losses: np.ndarray  # training MSE per step
    mse: float  # test mean squared error
    max_abs: float  # test max |f(x) - sin(x)|
    seconds: float


def make_mlp(width: int, seed: int = 0, domain: tuple[float, float] = DOMAIN,
             outside: float = 0.0) -> nn.Sequential:
    """Linear(1, width) -> ReLU -> Linear(width, 1) in float64, seeded.

    PyTorch's default init, except that each hidden neuron's knot -b_j / w_j is moved to a uniformly
    random point of the domain (b_j = -w_j u_j): no neuron starts dead or with its knot outside the
    data, as in the attention toy (`toys.sine_attention`).

    `outside` (in [0, 1)): that share of the neurons (rounded, chosen at random) instead start with their
    knot outside the domain, 0.1 to 1 domain-widths beyond either end, and oriented to be active on the
    whole domain: each still carries a gradient (none is dead) and can move its knot in, but the net
    starts with fewer regions. Same width, same parameters, fewer regions: the separating experiment of
    chapter 1 (does the error follow the regions or the width?).
    """
    check_int("width", width, 1)
    if not (isinstance(outside, (int, float)) and 0.0 <= outside < 1.0):
        raise ValueError(f"outside = {outside!r} is not allowed: expected a share in [0, 1)")
    g = torch.Generator().manual_seed(int(seed))
    lo, hi = float(domain[0]), float(domain[1])
    first, last = nn.Linear(1, int(width)).double(), nn.Linear(int(width), 1).double()
    with torch.no_grad():
        b1 = 1.0 / math.sqrt(width)
        first.weight.uniform_(-1.0, 1.0, generator=g)  # default bound 1/sqrt(fan_in) = 1
        knots = lo + (hi - lo) * torch.rand(int(width), generator=g, dtype=torch.float64)
        first.bias.copy_(-first.weight[:, 0] * knots)
        last.weight.uniform_(-b1, b1, generator=g)
        last.bias.uniform_(-b1, b1, generator=g)
        n_out = int(round(outside * width))
        if n_out:
            moved = torch.randperm(int(width), generator=g)[:n_out]
            right = torch.rand(n_out, generator=g) < 0.5
            beyond = (hi - lo) * (0.1 + 0.9 * torch.rand(n_out, generator=g, dtype=torch.float64))
            knot = torch.where(right, hi + beyond, lo - beyond)
            # active on the whole domain: w (x - knot) > 0 there, so w < 0 right of it and w > 0 left of it
            w = first.weight[moved, 0].abs() * torch.where(right, -1.0, 1.0).double()
            first.weight[moved, 0] = w
            first.bias[moved] = -w * knot
    return nn.Sequential(first, nn.ReLU(), last)


def _check_fit_args(steps: int, lr: float, domain: tuple[float, float]) -> tuple[float, float]:
    check_int("steps", steps, 0)
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr = {lr!r} is not allowed: expected a finite number > 0")
    lo, hi = float(domain[0]), float(domain[1])
    if not lo < hi:
        raise ValueError(f"domain = {domain!r} is not allowed: expected (low, high) with low < high")
    return lo, hi


def fit_sines(widths: Sequence[int], seeds: Sequence[int] = (0,), *, steps: int = 3000, lr: float = 3e-3,
              n_train: int = 1000, n_test: int = 10_000,
              domain: tuple[float, float] = DOMAIN, outside: float = 0.0) -> list[SineFit]:
    """Fit sin on `domain` with one MLP per (width, seed), all trained at once; one SineFit each.

    The nets are trained side by side as blocks of one wide hidden layer, with the loss the sum of
    their MSEs: each block's gradient is its own net's gradient and Adam acts elementwise, so this is
    exactly independent training (full batch, cosine-decayed lr), just without per-net Python overhead.
    """
    lo, hi = _check_fit_args(steps, lr, domain)
    start = time.perf_counter()
    jobs = [(int(w), int(s)) for w in widths for s in seeds]
    if not jobs:
        raise ValueError("widths, seeds: expected at least one width and one seed")
    nets = [make_mlp(w, s, domain, outside) for w, s in jobs]
    W1 = nn.Parameter(torch.cat([n[0].weight[:, 0] for n in nets]).detach().clone())
    b1 = nn.Parameter(torch.cat([n[0].bias for n in nets]).detach().clone())
    v = nn.Parameter(torch.cat([n[2].weight[0] for n in nets]).detach().clone())
    c = nn.Parameter(torch.cat([n[2].bias for n in nets]).detach().clone())
    owner = torch.repeat_interleave(torch.arange(len(jobs)), torch.tensor([w for w, _ in jobs]))
    block = torch.zeros(len(owner), len(jobs), dtype=torch.float64)
    block[torch.arange(len(owner)), owner] = 1.0
    x = torch.linspace(lo, hi, n_train, dtype=torch.float64)[:, None]
    y = torch.sin(x)
    half, mid = (hi - lo) / 2, (hi + lo) / 2
    params = [W1, b1, v, c]
    with torch.no_grad():  # train in the rescaled input s = (x - mid) / half in [-1, 1]
        b1 += W1 * mid
        W1 *= half
    s_in = (x - mid) / half
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small run fastest on one thread (several threads oversubscribe)

    def member_losses(_: int) -> torch.Tensor:
        pred = (torch.relu(s_in * W1 + b1) * v) @ block + c  # (n_train, n_models)
        return ((pred - y) ** 2).mean(0)

    try:
        log = train(params, member_losses, steps, cosine(lr, steps))
    finally:
        torch.set_num_threads(threads)
    losses = log.loss if steps else np.empty((0, len(jobs)))
    fits = []
    seconds = (time.perf_counter() - start) / len(jobs)
    for k, ((w, s), net) in enumerate(zip(jobs, nets)):
        m = owner == k
        with torch.no_grad():  # back to raw x: w x + b with w = W1 / half, b = b1 - W1 mid / half
            net[0].weight.copy_((W1[m] / half)[:, None])
            net[0].bias.copy_(b1[m] - W1[m] * mid / half)
            net[2].weight.copy_(v[m][None])
            net[2].bias.copy_(c[k:k + 1])
        net.eval()
        err = test_error(net, domain, n_test)
        fits.append(SineFit(width=w, seed=s, model=net, losses=losses[:, k].copy(), mse=err["mse"],
                            max_abs=err["max_abs"], seconds=seconds))
    return fits


def fit_sine(width: int, *, seed: int = 0, steps: int = 3000, lr: float = 3e-3, n_train: int = 1000,
             n_test: int = 10_000, domain: tuple[float, float] = DOMAIN) -> SineFit:
    """Fit one MLP of `width` neurons (see `fit_sines`)."""
    return fit_sines([width], [seed], steps=steps, lr=lr, n_train=n_train, n_test=n_test, domain=domain)[0]


@torch.no_grad()
def test_error(model: nn.Module, domain: tuple[float, float] = DOMAIN, n: int = 10_000) -> dict[str, float]:
    """MSE and max absolute error against sin on n evenly spaced points of the domain."""
    x = torch.linspace(domain[0], domain[1], n, dtype=torch.float64)[:, None]
    e = model(x) - torch.sin(x)
    return {"mse": float((e ** 2).mean()), "max_abs": float(e.abs().max())}


def interpolant_mse(pieces: Sequence[int] | np.ndarray, domain: tuple[float, float] = DOMAIN,
                    n_grid: int = 20001) -> np.ndarray:
    """The reference that needs no training: the MSE of sin's piecewise-linear interpolant with k equal pieces
    (knots at k + 1 evenly spaced points, sin's values there), for each k in `pieces`. It falls like k^-4."""
    lo, hi = float(domain[0]), float(domain[1])
    xf = np.linspace(lo, hi, n_grid)
    out = []
    for k in np.asarray(pieces, dtype=int).ravel():
        check_int("pieces", int(k), 1)
        knots = np.linspace(lo, hi, int(k) + 1)
        out.append(float(np.mean((np.interp(xf, knots, np.sin(knots)) - np.sin(xf)) ** 2)))
    return np.asarray(out)


def interpolant_reference(regions: np.ndarray, mse: np.ndarray, n_k: int = 40) -> dict[str, Any]:
    """Trained fits (their `regions` and test `mse`) against the reference that needs no training: the
    interpolant's MSE at k equal pieces (`kk`, `interp_mse`, over the fits' range of regions), its log-log
    slope (`ref_slope`, about -4), the slope of the fits with >= 10 regions (`slope`) and each fit's ratio of
    its MSE to the interpolant's with as many pieces (`gap`)."""
    regions, mse = np.asarray(regions), np.asarray(mse)
    kk = np.unique(np.geomspace(max(2, regions.min()), regions.max() * 1.2, n_k).astype(int))
    interp_mse = interpolant_mse(kk)
    good = regions >= 10
    slope = (np.polyfit(np.log(regions[good]), np.log(mse[good]), 1)[0] if len(np.unique(regions[good])) > 1
             else float("nan"))
    ref_slope = np.polyfit(np.log(kk[kk >= 10]), np.log(interp_mse[kk >= 10]), 1)[0]
    return {"kk": kk, "interp_mse": interp_mse, "slope": slope, "ref_slope": ref_slope,
            "gap": mse / np.interp(regions, kk, interp_mse)}


def knot_experiment(width: int, outside: Sequence[float], seeds: int, *, steps: int = 3000,
                    n_train: int = 1000) -> list[dict[str, float]]:
    """Fits of one `width` whose knots start partly outside the domain (each share in `outside`, `seeds` fits
    each): same width and parameters, different numbers of regions at the end. One dict per fit: width,
    outside, seed, regions (exact count on the domain), test MSE and `interp_mse`, the MSE of sin's
    equal-piece interpolant with as many pieces."""
    from icl_geometry.core import partition

    rows = []
    for share in outside:
        for f in fit_sines([int(width)], range(int(seeds)), steps=steps, n_train=n_train, outside=float(share)):
            regions = partition.count_regions_1d(f.model, *DOMAIN)
            rows.append({"width": f.width, "outside": float(share), "seed": f.seed, "regions": regions,
                         "mse": f.mse, "interp_mse": float(interpolant_mse([regions])[0])})
    return rows


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """f(x) for a 1-d array of inputs."""
    return model(torch.as_tensor(np.asarray(x, dtype=np.float64))[:, None]).numpy().ravel()
