"""The paper's attention + MLP toy (paper A, Figs. 4-5): fit sin(t) over 1000 time bins with an embedding,
one multi-head attention block (eq. 3) and a one-hidden-layer ReLU MLP, then count the MLP's linear regions
along the input and measure the fit.

The paper gives neither the embedding's formula nor the widths, optimiser or number of steps. Our choices:

* Task. N = 1000 time bins t_n evenly spaced on [-P pi, P pi] with P = 5 periods, target sin(t). (Fig. 2 uses
  P = 2; with 8 neurons every variant fits 2 periods well and nothing can be compared. 5 periods are 10
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
  A consequence worth knowing: the MLP input lies in the span of the H output maps O_h, a space of
  dimension at most min(H d_head, d_model); with one head it is a curve in a plane, whatever the context.
* MLP: d_model = 16 -> hidden = 8 ReLU neurons -> 1.
* Training: full batch, mean squared error, Adam (lr 1e-2, linear warm-up over the first 10% of the steps,
  cosine decay to 0), float32, Gaussian fan-in initialisation from a seeded generator; each hidden neuron's
  bias is set so its hyperplane passes through the initial MLP input of a random time bin (no neuron starts
  dead). `restarts` > 1 keeps the restart with the lowest training loss: the fits are noisy across seeds,
  and the best of a few restarts is a better estimate of what the architecture can express.
  Speed: the tokens are (clock, position code) with the position code the same for every time bin, so the
  scores and the value mixing are computed from the 2 clock channels and a (C, d_head) table per head,
  never from the (n_bins, C, d_model) token tensor (`mlp_input`, checked against the plain formula
  `attention` in the tests). One fit of 1000 bins, C = 100, H = 10 then costs ~30 ms a step on one CPU core;
  `train` runs on one thread (faster for these small ops, and the result does not depend on the core count).

"Regions along the input". The input of the whole model is the time t; the MLP's input z(t) is a curve in
R^d_model, not a line. We follow it on a grid of t (`per_bin` points per bin) and count, with
`partition.regions_1d`, the MLP's exact linear regions along each straight segment between consecutive grid
points (for a one-hidden-layer MLP a neuron can switch inside a segment only if its sign differs at the two
ends, so only segments whose end patterns differ need the exact count). `pieces` = the number of intervals of
t on which the MLP applies one affine map (the analogue of Fig. 2's "regions along the input"; exact for the
polyline, and equal to brute-force sampling of the curve once the grid is fine, see the tests); `distinct` =
the number of different activation patterns, i.e. of the MLP's linear regions of R^d that the curve visits
(a curve can re-enter a region, so distinct <= pieces).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from icl_geometry import partition

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("cpu", "cuda")


# ----------------------------------------------------------------------------- configuration

def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


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
    lr: float = 1e-2
    warmup: float = 0.1
    restarts: int = 1
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        ints = {"context": (1, 10_000), "heads": (1, 1_000), "d_head": (1, 1_024), "hidden": (1, 100_000),
                "n_bins": (2, 10_000_000), "steps": (0, 10_000_000), "restarts": (1, 1_000),
                "seed": (0, 2**63 - 1)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if not _is_int(v) or not lo <= v <= hi:
                raise ValueError(f"{name} = {v!r} is not allowed: expected an integer in [{lo}, {hi}]")
        d = self.d_model
        if not _is_int(d) or d < 4 or d % 2:
            raise ValueError(f"d_model = {d!r} is not allowed: expected an even integer >= 4 "
                             "(2 clock channels + an even number of position channels)")
        for name in ("periods", "pe_base", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} = {v!r} is not allowed: expected a number > 0")
        w = self.warmup
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < 1:
            raise ValueError(f"warmup = {w!r} is not allowed: expected a fraction of the steps in [0, 1)")
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


def clocks(t: torch.Tensor, context: int, periods: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin(w_p t), cos(w_p t)), each (len(t), context): the time-dependent part of the tokens."""
    phase = t[:, None] * clock_frequencies(context, periods, t.dtype).to(t.device)[None, :]
    return torch.sin(phase), torch.cos(phase)


def embed(t: torch.Tensor, context: int, d_model: int = 16, periods: float = 5.0,
          pe_base: float = 100.0) -> torch.Tensor:
    """(len(t), context, d_model): for each time, C clock tokens (sin w_p t, cos w_p t) + the position code."""
    t = torch.as_tensor(t)
    if t.ndim != 1:
        raise ValueError(f"t: expected a 1-d tensor of times, got shape {tuple(t.shape)}")
    s, c = clocks(t, context, periods)
    pos = position_code(context, d_model - 2, pe_base, t.dtype).to(t.device)
    return torch.cat([torch.stack([s, c], dim=-1), pos.expand(len(t), -1, -1)], dim=-1)


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
        """(len(t), C, d_model) tokens of each time (the plain embedding, for `attention`)."""
        c = self.config
        return embed(t.to(self.W_q), c.context, c.d_model, c.periods, c.pe_base)

    def attention(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention weights of the last token (len(t), H, C) and the MLP input MHA(X)_last (len(t), d_model),
        by the plain formula of eq. 3 on the full tokens (the reference for the fast `mlp_input`)."""
        X = self.tokens(t)
        q = torch.einsum("nd,hdk->nhk", X[:, -1], self.W_q)
        keys = torch.einsum("npd,hdk->nhpk", X, self.W_k)
        weights = torch.softmax(torch.einsum("nhk,nhpk->nhp", q, keys) / math.sqrt(self.config.d_head), dim=-1)
        values = torch.einsum("npd,hdk->nhpk", X, self.W_v)
        heads = torch.einsum("nhp,nhpk->nhk", weights, values)
        return weights, torch.einsum("nhk,hke->ne", heads, self.W_o)

    def mlp_input_from_clocks(self, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        """MHA(X)_last from the clock channels (n, C) alone: the training loop's hot path.

        The query is affine in u = (sin, cos, 1) of the last token and every token is (clock, position code),
        so the scores are  alpha_h sin_p + beta_h cos_p + u . P[:, h, p]  with small (3, H, C) tables, and the
        output is (sum_p w sin_p) (V O)_sin + (sum_p w cos_p) (V O)_cos + sum_{h,p} w_hp (pos_p V_h O_h):
        two matrix products and a few elementwise passes over (n, H, C).
        """
        c = self.config
        H, C, D = c.heads, c.context, c.d_model
        pos = position_code(C, D - 2, c.pe_base, self.W_q.dtype).to(self.W_q.device)
        Wq, Wk, Wv, Wo = self.W_q, self.W_k, self.W_v, self.W_o
        q_tab = torch.stack([Wq[:, 0], Wq[:, 1], pos[-1] @ Wq[:, 2:]]) / math.sqrt(c.d_head)  # (3, H, k)
        n = sin.shape[0]
        u = torch.stack([sin[:, -1], cos[:, -1], torch.ones_like(sin[:, -1])], dim=1)  # (n, 3)
        q = torch.einsum("ni,ihk->nhk", u, q_tab)
        alpha, beta = (q * Wk[:, 0]).sum(-1), (q * Wk[:, 1]).sum(-1)  # (n, H)
        pos_k = torch.einsum("pd,hdk->hkp", pos, Wk[:, 2:])  # (H, k, C)
        P = torch.einsum("ihk,hkp->ihp", q_tab, pos_k).reshape(3, H * C)
        scores = (u @ P).view(n, H, C) + alpha[..., None] * sin[:, None, :] + beta[..., None] * cos[:, None, :]
        w = torch.softmax(scores, dim=-1)
        vo_sin = torch.einsum("hk,hke->he", Wv[:, 0], Wo)  # (H, D)
        vo_cos = torch.einsum("hk,hke->he", Wv[:, 1], Wo)
        vo_pos = torch.einsum("pd,hdk,hke->hpe", pos, Wv[:, 2:], Wo).reshape(H * C, D)
        return ((w * sin[:, None, :]).sum(-1) @ vo_sin + (w * cos[:, None, :]).sum(-1) @ vo_cos
                + w.reshape(n, H * C) @ vo_pos)

    def mlp_input(self, t: torch.Tensor) -> torch.Tensor:
        """(len(t), d_model): what the MLP receives at each time."""
        c = self.config
        return self.mlp_input_from_clocks(*clocks(torch.as_tensor(t).to(self.W_q), c.context, c.periods))

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


def _lr_factor(i: int, steps: int, warmup: float) -> float:
    warm = max(1, round(warmup * steps))
    return min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1)))


def _train_one(config: ToyConfig, restart: int, device: str) -> tuple[SineAttentionToy, np.ndarray]:
    model = SineAttentionToy(config, restart).to(device)
    t = time_grid(config.n_bins, config.periods, config.torch_dtype).to(device)
    y = target(t)
    sin, cos = clocks(t, config.context, config.periods)  # the embedding is fixed: build it once
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(i, config.steps, config.warmup))
    losses = torch.empty(config.steps, dtype=torch.float64)
    for i in range(config.steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model.mlp(model.mlp_input_from_clocks(sin, cos)).squeeze(-1) - y) ** 2)
        loss.backward()
        opt.step()
        sched.step()
        losses[i] = loss.detach()
    return model.eval(), losses.numpy()


def train(config: ToyConfig | None = None, *, device: str = "cpu", **overrides: Any) -> FitResult:
    """Train the toy (full batch) and return the best of `config.restarts` restarts by final training loss.

    `overrides` replace fields of `config` (or of the default `ToyConfig()`), e.g. train(context=100, heads=10).
    """
    if config is not None and not isinstance(config, ToyConfig):
        raise ValueError(f"config: expected a ToyConfig or None, got {type(config).__name__}")
    unknown = set(overrides) - set(ToyConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown ToyConfig fields {sorted(unknown)}; allowed: {list(ToyConfig.__dataclass_fields__)}")
    config = replace(config or ToyConfig(), **overrides)
    if device not in DEVICES:
        raise ValueError(f"device = {device!r} is not allowed: expected one of {list(DEVICES)}")
    start = time.perf_counter()
    best, finals = None, []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ops are small: one thread is faster, and the result cannot depend on the core count
    try:
        for r in range(config.restarts):
            model, losses = _train_one(config, r, device)
            final = float(fit_error(model)["mse"])
            finals.append(final)
            if best is None or final < best[2]:
                best = (model, losses, final)
    finally:
        torch.set_num_threads(threads)
    return FitResult(model=best[0], config=config, losses=best[1], restart_losses=np.array(finals),
                     seconds=time.perf_counter() - start, device=device)


# ----------------------------------------------------------------------------- evaluation

def _times(model: SineAttentionToy, t) -> torch.Tensor:
    c = model.config
    if t is None:
        t = time_grid(c.n_bins, c.periods, c.torch_dtype)
    return torch.as_tensor(t).to(model.W_q)


@torch.no_grad()
def predict(model: SineAttentionToy, t: torch.Tensor | None = None) -> torch.Tensor:
    """The toy's prediction at times t (default: the training bins), on the CPU."""
    return model(_times(model, t)).cpu()


@torch.no_grad()
def fit_error(model: SineAttentionToy, t: torch.Tensor | None = None) -> dict[str, float]:
    """Mean squared error, largest absolute error, and fraction of variance unexplained of the fit."""
    t = _times(model, t)
    err = model(t) - target(t)
    mse = float(torch.mean(err.double() ** 2))
    return {"mse": mse, "max_abs": float(err.abs().max()), "fvu": mse / float(torch.var(target(t).double(), unbiased=False))}


def _float64(model: SineAttentionToy) -> SineAttentionToy:
    """A float64 copy on the CPU (region boundaries are located in float64)."""
    if model.W_q.dtype == torch.float64 and model.W_q.device.type == "cpu":
        return model
    return copy.deepcopy(model).to("cpu", torch.float64)


@torch.no_grad()
def mlp_inputs(model: SineAttentionToy, t: torch.Tensor | None = None) -> np.ndarray:
    """(len(t), d_model) float64 MLP inputs (default: at the training bins)."""
    m = _float64(model)
    return m.mlp_input(_times(m, t)).numpy()


@torch.no_grad()
def linear_probe_error(model: SineAttentionToy, t: torch.Tensor | None = None) -> float:
    """MSE of the best affine read-out of sin(t) from the MLP input: how much the attention block already fits
    before the MLP's regions are used (0.5 = nothing, the variance of sin)."""
    z = torch.from_numpy(mlp_inputs(model, t))
    Z = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
    y = target(_times(_float64(model), t))[:, None]
    coef = torch.linalg.lstsq(Z, y, driver="gelsd").solution
    return float(torch.mean((Z @ coef - y) ** 2))


def mlp_input_rank(model: SineAttentionToy, t: torch.Tensor | None = None, rtol: float = 1e-6) -> int:
    """Linear dimension of the set of MLP inputs over the bins: singular values of the centred matrix above
    rtol x the largest (Theorem 2.1 bounds it by the heads' summed hull dimensions, and by H d_head)."""
    z = mlp_inputs(model, t)
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


def activation_patterns(model: SineAttentionToy, t: torch.Tensor | None = None) -> np.ndarray:
    """(len(t), hidden) booleans: which hidden ReLU neurons are on at the MLP input of each time."""
    return partition.activation_patterns(model.mlp, mlp_inputs(model, t))


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


def count_regions(model: SineAttentionToy, per_bin: int = 20) -> RegionCount:
    """Exact regions of the MLP along the polyline through z(t) on a grid per_bin x finer than the bins.

    Segments whose end patterns differ are split exactly by `partition.regions_1d`; with one hidden layer the
    other segments cannot contain a switch. Deeper MLPs get the exact count on every segment.
    """
    if not _is_int(per_bin) or per_bin < 1:
        raise ValueError(f"per_bin = {per_bin!r} is not allowed: expected an integer >= 1")
    t = fine_grid(model, per_bin)
    Z = mlp_inputs(model, t)
    P = partition.activation_patterns(model.mlp, Z)
    one_layer = sum(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.mlp.modules()) == 1
    todo = np.nonzero((P[1:] != P[:-1]).any(1))[0] if one_layer else np.arange(len(Z) - 1)
    tt = t.numpy()
    breaks, patterns = [], [P[:1]]
    for i in todo:
        where, pats = partition.regions_1d(model.mlp, Z[i], Z[i + 1])
        breaks.append(tt[i] + where * (tt[i + 1] - tt[i]))
        patterns.append(pats)
    boundaries = np.concatenate(breaks) if breaks else np.zeros(0)
    return RegionCount(pieces=len(boundaries) + 1, distinct=partition.count_distinct(np.vstack(patterns)),
                       distinct_on_bins=partition.count_distinct(activation_patterns(model)),
                       boundaries=boundaries, n_grid=len(t))


def summarise(fit: FitResult, per_bin: int = 20) -> dict[str, Any]:
    """One row of numbers for a trained toy: config knobs, fit error, regions, probe error, rank, time."""
    regions = count_regions(fit.model, per_bin)
    err = fit_error(fit.model)
    return {"context": fit.config.context, "heads": fit.config.heads, "mse": err["mse"], "max_abs": err["max_abs"],
            "pieces": regions.pieces, "distinct": regions.distinct, "distinct_on_bins": regions.distinct_on_bins,
            "linear_probe_mse": linear_probe_error(fit.model), "rank": mlp_input_rank(fit.model),
            "restart_mse": fit.restart_losses.tolist(), "seconds": fit.seconds}


def sweep(heads: Iterable[int], contexts: Iterable[int], config: ToyConfig | None = None, *,
          device: str = "cpu", progress: bool = True, keep: bool = False,
          **overrides: Any) -> list[dict[str, Any]]:
    """Train and summarise the toy on every (heads, context) pair: the data of the paper's Fig. 5 heat map.

    keep=True adds the FitResult to each row (key "fit"), e.g. to draw some of the fits.
    """
    pairs = [(int(h), int(c)) for h in heads for c in contexts]
    if not pairs:
        raise ValueError("heads, contexts: expected at least one value each")
    base = replace(config or ToyConfig(), **overrides)
    iterator: Iterable = pairs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(pairs, desc="toy fits")
    rows = []
    for h, c in iterator:
        fit = train(replace(base, heads=h, context=c), device=device)
        row = summarise(fit)
        if keep:
            row["fit"] = fit
        rows.append(row)
    return rows


def config_dict(config: ToyConfig) -> dict[str, Any]:
    """The config as a plain dict (for tables and the chapter's 'what we chose' cell)."""
    return asdict(config)
