"""The paper's attention + MLP toy (paper A, Figs. 4-5): fit sin(t) over 1000 time bins with an embedding,
one multi-head attention block (eq. 3) and a one-hidden-layer ReLU MLP, then count the MLP's linear regions
along the input and measure the fit.

The paper gives neither the embedding's formula nor the widths, optimiser or number of steps. Our choices:

* Task. N = 1000 time bins t_n evenly spaced on [-P pi, P pi] with P = 5 periods, target sin(t). (Fig. 2 uses
  P = 2; with 8 neurons every variant fits 2 periods to ~1e-4 and nothing can be compared. 5 periods are 10
  half-waves: an 8-neuron MLP on a straight 1-D input has at most 9 pieces, too few for a good fit, so the fit
  depends on the geometry the attention block gives the MLP input - the question the toy asks.)
* Embedding: a context of C tokens per time bin. Token p = 0..C-1 is a "clock": the point
  (sin(w_p t), cos(w_p t)) with w_p = (p + 1) / (C P), so token p turns (p + 1) / C times over the whole
  series - the frequency depends on the position p and on the context length C, as the paper says. The
  fastest clock turns once (the target turns P times: no token is the answer, the nonlinearities must build
  it), and the clocks of a context C are among those of any context that is a multiple of C, so a longer
  context can only add information. The remaining d_model - 2 channels carry a fixed sinusoidal code of the
  position p (Vaswani et al. with base 100), so attention can tell positions apart.
* Attention: eq. 3 with H heads of width d_head = 2 (query, key and value), fixed per head so that each
  added head adds one convex hull to Theorem 2.1's Minkowski sum; softmax scaled by 1 / sqrt(d_head).
  The prediction is read at the last token (causal: it sees all C tokens), and the MLP receives
  MHA(X)_last = sum_h Attn_h V_h O_h directly - no residual, no LayerNorm - so the theorem applies exactly.
* MLP: d_model = 16 -> hidden = 8 ReLU neurons -> 1.
* Training: full batch, mean squared error, Adam (lr 3e-3, 200 linear warm-up steps, cosine decay to 0),
  2000 steps, float64 (results then agree across thread counts), Gaussian fan-in initialisation from a seeded
  generator; each hidden neuron's bias is set so its hyperplane passes through the initial MLP input of a
  random time bin (no neuron starts dead). `restarts` > 1 keeps the restart with the lowest training loss:
  the fits are noisy across seeds, and the best of a few restarts is a better estimate of what the
  architecture can express.

"Regions along the input". The input of the whole model is the time t; the MLP's input z(t) is a curve in
R^d_model, not a line. Along a fine grid of t we record the MLP's activation pattern (which neurons are on).
`pieces` = 1 + the number of pattern changes = the number of intervals of t on which the MLP applies one
affine map to z(t) (the analogue of Fig. 2's "regions along the input"; a lower bound that converges as the
grid is refined); `distinct` = the number of different patterns, i.e. of the MLP's linear regions of R^d that
the curve visits (a curve can re-enter a region, so distinct <= pieces).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ----------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class ToyConfig:
    """Everything that defines one fit of the toy (see the module docstring for why these defaults)."""

    context: int = 10
    heads: int = 1
    d_model: int = 16
    d_head: int = 2
    hidden: int = 8
    n_bins: int = 1000
    periods: float = 5.0
    pe_base: float = 100.0
    steps: int = 2000
    lr: float = 3e-3
    warmup: int = 200
    restarts: int = 1
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self) -> None:
        ints = {"context": (1, 10_000), "heads": (1, 1_000), "d_head": (1, 1_024), "hidden": (1, 100_000),
                "n_bins": (2, 10_000_000), "steps": (0, 10_000_000), "warmup": (0, 10_000_000),
                "restarts": (1, 1_000), "seed": (0, 2**63 - 1)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ValueError(f"{name} = {v!r} is not allowed: expected an integer in [{lo}, {hi}]")
        d = self.d_model
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 4 or d % 2:
            raise ValueError(f"d_model = {d!r} is not allowed: expected an even integer >= 4 "
                             "(2 clock channels + an even number of position channels)")
        for name in ("periods", "pe_base", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} = {v!r} is not allowed: expected a number > 0")
        if self.dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype = {self.dtype!r} is not allowed: expected one of {list(FLOAT_DTYPES)}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return FLOAT_DTYPES[self.dtype]


# ----------------------------------------------------------------------------- task and embedding

def time_grid(n_bins: int = 1000, periods: float = 5.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n_bins time bins, evenly spaced on [-periods pi, periods pi]."""
    return torch.linspace(-periods * math.pi, periods * math.pi, n_bins, dtype=dtype)


def target(t: torch.Tensor) -> torch.Tensor:
    """What the toy fits: sin(t)."""
    return torch.sin(t)


def clock_frequencies(context: int, periods: float = 5.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """w_p = (p + 1) / (context periods): token p turns (p + 1) / context times over the series."""
    return (torch.arange(context, dtype=dtype) + 1) / (context * periods)


def position_code(context: int, channels: int, base: float = 100.0,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(context, channels) fixed sinusoidal position code: sin/cos of p / base^(2k / channels)."""
    if channels % 2:
        raise ValueError(f"channels = {channels!r} is not allowed: expected an even number")
    p = torch.arange(context, dtype=dtype)[:, None]
    freq = base ** (-2 * torch.arange(channels // 2, dtype=dtype) / channels)
    return torch.cat([torch.sin(p * freq), torch.cos(p * freq)], dim=1)


def embed(t: torch.Tensor, context: int, d_model: int = 16, periods: float = 5.0,
          pe_base: float = 100.0) -> torch.Tensor:
    """(len(t), context, d_model): for each time, C clock tokens (sin w_p t, cos w_p t) + the position code."""
    t = torch.as_tensor(t)
    if t.ndim != 1:
        raise ValueError(f"t: expected a 1-d tensor of times, got shape {tuple(t.shape)}")
    phase = t[:, None] * clock_frequencies(context, periods, t.dtype)[None, :]
    clocks = torch.stack([torch.sin(phase), torch.cos(phase)], dim=-1)
    pos = position_code(context, d_model - 2, pe_base, t.dtype).to(t.device)
    return torch.cat([clocks, pos.expand(len(t), -1, -1)], dim=-1)


# ----------------------------------------------------------------------------- model

class SineAttentionToy(nn.Module):
    """Embedding -> one multi-head causal attention block (read at the last token) -> ReLU MLP -> sin(t)."""

    def __init__(self, config: ToyConfig, restart: int = 0):
        super().__init__()
        self.config = config
        c, dtype = config, config.torch_dtype
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + restart)

        def gauss(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g, dtype=dtype) * scale)

        D, H, k = c.d_model, c.heads, c.d_head
        self.W_q, self.W_k, self.W_v = (gauss(H, D, k, scale=D ** -0.5) for _ in range(3))
        self.W_o = gauss(H, k, D, scale=(H * k) ** -0.5)
        self.mlp = nn.Sequential(nn.Linear(D, c.hidden, dtype=dtype), nn.ReLU(), nn.Linear(c.hidden, 1, dtype=dtype))
        with torch.no_grad():
            self.mlp[0].weight.copy_(torch.randn(c.hidden, D, generator=g, dtype=dtype) * D ** -0.5)
            self.mlp[2].weight.copy_(torch.randn(1, c.hidden, generator=g, dtype=dtype) * c.hidden ** -0.5)
            self.mlp[2].bias.zero_()
            z0 = self.mlp_input(time_grid(c.n_bins, c.periods, dtype))
            anchors = z0[torch.randint(0, c.n_bins, (c.hidden,), generator=g)]
            self.mlp[0].bias.copy_(-(anchors * self.mlp[0].weight).sum(1))

    def tokens(self, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        return embed(t.to(self.W_q), c.context, c.d_model, c.periods, c.pe_base)

    def attention(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention weights of the last token (len(t), H, C) and the MLP input MHA(X)_last (len(t), d_model)."""
        X = self.tokens(t)
        q = torch.einsum("nd,hdk->nhk", X[:, -1], self.W_q)
        qk = torch.einsum("nhk,hek->neh", q, self.W_k)  # X_last Q_h K_h^T, so scores are one batched matmul
        weights = torch.softmax((X @ qk).transpose(1, 2) / math.sqrt(self.config.d_head), dim=-1)
        mixed = weights @ X  # (n, H, D): each head's convex combination of the tokens
        return weights, torch.einsum("nhd,hdk,hke->ne", mixed, self.W_v, self.W_o)

    def mlp_input(self, t: torch.Tensor) -> torch.Tensor:
        return self.attention(t)[1]

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.mlp_input(t)).squeeze(-1)


# ----------------------------------------------------------------------------- training

@dataclass
class FitResult:
    """A trained toy: the kept model, its training-loss curve and the final losses of all restarts."""

    model: SineAttentionToy
    config: ToyConfig
    losses: np.ndarray  # training MSE per step of the kept restart
    restart_losses: np.ndarray  # final training MSE of each restart
    seconds: float
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> float:
        """Final training MSE of the kept restart."""
        return float(self.restart_losses.min())


def _train_one(config: ToyConfig, restart: int, device: str) -> tuple[SineAttentionToy, np.ndarray]:
    model = SineAttentionToy(config, restart).to(device)
    t = time_grid(config.n_bins, config.periods, config.torch_dtype).to(device)
    y = target(t)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    warm, total = max(config.warmup, 1), max(config.steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * i / total)))
    losses = torch.empty(config.steps, dtype=torch.float64)
    X = model.tokens(t)  # the embedding is fixed: build it once
    for i in range(config.steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((_forward_tokens(model, X) - y) ** 2)
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.detach()
    return model.eval(), losses.numpy()


def _forward_tokens(model: SineAttentionToy, X: torch.Tensor) -> torch.Tensor:
    """forward() on pre-built tokens (the training loop's hot path)."""
    q = torch.einsum("nd,hdk->nhk", X[:, -1], model.W_q)
    qk = torch.einsum("nhk,hek->neh", q, model.W_k)
    weights = torch.softmax((X @ qk).transpose(1, 2) / math.sqrt(model.config.d_head), dim=-1)
    z = torch.einsum("nhd,hdk,hke->ne", weights @ X, model.W_v, model.W_o)
    return model.mlp(z).squeeze(-1)


def train(config: ToyConfig | None = None, *, device: str = "cpu", **overrides: Any) -> FitResult:
    """Train the toy (full batch) and return the best of `config.restarts` restarts by final training loss.

    `overrides` replace fields of `config` (or of the default `ToyConfig()`), e.g. train(context=100, heads=10).
    """
    config = replace(config or ToyConfig(), **overrides)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device = {device!r} is not allowed: expected 'cpu' or 'cuda'")
    start = time.perf_counter()
    best, finals = None, []
    for r in range(config.restarts):
        model, losses = _train_one(config, r, device)
        final = float(fit_error(model)["mse"])
        finals.append(final)
        if best is None or final < best[2]:
            best = (model, losses, final)
    return FitResult(model=best[0], config=config, losses=best[1], restart_losses=np.array(finals),
                     seconds=time.perf_counter() - start, device=device)


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model: SineAttentionToy, t: torch.Tensor | None = None) -> torch.Tensor:
    """The toy's prediction at times t (default: the training bins), on the CPU."""
    t = _times(model, t)
    return model(t).cpu()


def _times(model: SineAttentionToy, t) -> torch.Tensor:
    c = model.config
    if t is None:
        t = time_grid(c.n_bins, c.periods, c.torch_dtype)
    return torch.as_tensor(t, dtype=c.torch_dtype).to(model.W_q.device)


@torch.no_grad()
def fit_error(model: SineAttentionToy, t: torch.Tensor | None = None) -> dict[str, float]:
    """Mean squared error, largest absolute error, and fraction of variance unexplained of the fit."""
    t = _times(model, t)
    err = model(t) - target(t)
    mse = float(torch.mean(err ** 2))
    return {"mse": mse, "max_abs": float(err.abs().max()), "fvu": mse / float(torch.var(target(t), unbiased=False))}


@torch.no_grad()
def linear_probe_error(model: SineAttentionToy, t: torch.Tensor | None = None) -> float:
    """MSE of the best affine read-out of sin(t) from the MLP input: how much the attention block already fits
    before the MLP's regions are used (0.5 = nothing, the variance of sin)."""
    t = _times(model, t)
    z = model.mlp_input(t).cpu().double()
    Z = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
    y = target(t).cpu().double()[:, None]
    coef = torch.linalg.lstsq(Z, y, driver="gelsd").solution
    return float(torch.mean((Z @ coef - y) ** 2))


@torch.no_grad()
def mlp_input_rank(model: SineAttentionToy, t: torch.Tensor | None = None, rtol: float = 1e-6) -> int:
    """Linear dimension of the set of MLP inputs over the bins: singular values of the centred matrix above
    rtol x the largest (Theorem 2.1 bounds it by the heads' summed hull dimensions, and by H d_head)."""
    z = model.mlp_input(_times(model, t)).cpu().double()
    s = torch.linalg.svdvals(z - z.mean(0))
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


@torch.no_grad()
def activation_patterns(model: SineAttentionToy, t: torch.Tensor | None = None) -> torch.Tensor:
    """(len(t), hidden) booleans: which hidden ReLU neurons are on at the MLP input of each time."""
    z = model.mlp_input(_times(model, t))
    return (model.mlp[0](z) > 0).cpu()


@dataclass(frozen=True)
class RegionCount:
    """The MLP's regions along the input t (see the module docstring)."""

    pieces: int  # maximal t-intervals with one activation pattern (1 + pattern changes)
    distinct: int  # different patterns along the fine grid = linear regions the curve z(t) visits
    distinct_on_bins: int  # different patterns at the n_bins training times
    boundaries: np.ndarray  # t at the midpoint of each grid step where the pattern changes
    n_grid: int


def fine_grid(model: SineAttentionToy, per_bin: int = 20) -> torch.Tensor:
    """A grid per_bin times finer than the bins, on the same interval (the embedding is defined for all t)."""
    c = model.config
    return time_grid((c.n_bins - 1) * per_bin + 1, c.periods, c.torch_dtype)


def count_regions(model: SineAttentionToy, per_bin: int = 20) -> RegionCount:
    """Count pieces and distinct activation patterns of the MLP along a grid per_bin x finer than the bins."""
    if isinstance(per_bin, bool) or not isinstance(per_bin, int) or per_bin < 1:
        raise ValueError(f"per_bin = {per_bin!r} is not allowed: expected an integer >= 1")
    t = fine_grid(model, per_bin)
    P = activation_patterns(model, t)
    change = (P[1:] != P[:-1]).any(dim=1)
    mid = ((t[1:] + t[:-1]) / 2)[change].numpy()
    on_bins = activation_patterns(model)
    return RegionCount(pieces=int(change.sum()) + 1, distinct=len(torch.unique(P, dim=0)),
                       distinct_on_bins=len(torch.unique(on_bins, dim=0)), boundaries=mid, n_grid=len(t))


def summarise(fit: FitResult, per_bin: int = 20) -> dict[str, Any]:
    """One row of numbers for a trained toy: config knobs, fit error, regions, probe error, rank, time."""
    regions = count_regions(fit.model, per_bin)
    err = fit_error(fit.model)
    return {"context": fit.config.context, "heads": fit.config.heads, "mse": err["mse"], "max_abs": err["max_abs"],
            "pieces": regions.pieces, "distinct": regions.distinct, "distinct_on_bins": regions.distinct_on_bins,
            "linear_probe_mse": linear_probe_error(fit.model), "rank": mlp_input_rank(fit.model),
            "restart_mse": fit.restart_losses.tolist(), "seconds": fit.seconds}


def sweep(heads: Iterable[int], contexts: Iterable[int], config: ToyConfig | None = None, *,
          device: str = "cpu", progress: bool = True, **overrides: Any) -> list[dict[str, Any]]:
    """Train and summarise the toy on every (heads, context) pair: the data of the paper's Fig. 5 heat map."""
    pairs = [(int(h), int(c)) for h in heads for c in contexts]
    if not pairs:
        raise ValueError("heads, contexts: expected at least one value each")
    base = replace(config or ToyConfig(), **overrides)
    iterator: Iterable = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="toy fits")
    return [summarise(train(replace(base, heads=h, context=c), device=device)) for h, c in iterator]


def config_dict(config: ToyConfig) -> dict[str, Any]:
    """The config as a plain dict (for tables and the chapter's 'what we chose' cell)."""
    return asdict(config)
