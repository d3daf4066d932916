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
  cosine decay to 0), float64, Gaussian fan-in initialisation from a seeded generator; each hidden neuron's
  bias is set so its hyperplane passes through the initial MLP input of a random time between two bins
  (uniform in the gap; no neuron starts dead). `restarts` > 1 keeps the restart with the lowest training
  loss as "the" fit (figures), and `summarise` reports every restart: the fits are noisy across seeds, so
  settings are compared through all their restarts (`compare_restarts`), not through one kept fit each.
* Reproducibility across machines. A fit must not depend on round-off, which differs between CPUs (vector
  kernels, summation order). Two choices make it so, measured with `nudge_sensitivity` (every starting weight
  moved one unit in the last place): (1) hyperplanes anchored *between* bins, not on a bin (`anchors="on"`
  puts a bin exactly on each neuron's kink at step 0, so round-off picks the side of the ReLU and hence the
  first gradient; with float32 a one-ulp nudge then changed a restart's final MSE up to 26x, and different
  CPUs gave fits 10x apart); (2) float64 (with anchors between bins a one-ulp nudge still moves float32 fits
  by a few percent, float64 fits by ~1e-14; AVX-512, AVX2 and scalar kernels agree to ~1e-12, below any
  printed digit). float64 costs ~1.7x the float32 time.
  Speed: the tokens are (clock, position code) with the position code the same for every time bin, so the
  scores and the value mixing are computed from the 2 clock channels and small per-head tables, never from
  the (n_bins, C, d_model) token tensor (`mha_last`, checked against the plain formula `attention` in the
  tests), and the restarts are trained together as one stacked model. `train` runs on one thread (faster
  for these small ops, and the result does not depend on the core count).

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
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from icl_geometry import partition, stats

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
ANCHORS = ("between", "on")
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
    dtype: str = "float64"
    anchors: str = "between"  # where each hidden neuron's initial hyperplane crosses the curve: between bins or on one

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
        if self.anchors not in ANCHORS:
            raise ValueError(f"anchors = {self.anchors!r} is not allowed: expected one of {list(ANCHORS)}")

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

def mha_last(W_q: torch.Tensor, W_k: torch.Tensor, W_v: torch.Tensor, W_o: torch.Tensor, sin: torch.Tensor,
             cos: torch.Tensor, pos: torch.Tensor, d_head: int) -> torch.Tensor:
    """MHA(X)_last for R stacked models at once: W_q, W_k, W_v (R, H, D, k), W_o (R, H, k, D), clocks (n, C),
    position code pos (C, D - 2). Returns (R, n, D). The training loop's hot path.

    The query is affine in u = (sin, cos, 1) of the last token and every token is (clock, position code),
    so the scores are  alpha_h sin_p + beta_h cos_p + u . P[:, h, p]  with small (3, H, C) tables, and the
    output is (sum_p w sin_p) (V O)_sin + (sum_p w cos_p) (V O)_cos + sum_{h,p} w_hp (pos_p V_h O_h):
    a few matrix products and elementwise passes over (n, H, C), never the (n, C, D) tokens.
    """
    R, H, _, _ = W_q.shape
    n, C = sin.shape
    q_tab = torch.stack([W_q[:, :, 0], W_q[:, :, 1], torch.einsum("d,rhdk->rhk", pos[-1], W_q[:, :, 2:])],
                        dim=1) / math.sqrt(d_head)  # (R, 3, H, k)
    u = torch.stack([sin[:, -1], cos[:, -1], torch.ones_like(sin[:, -1])], dim=1)  # (n, 3)
    q = torch.einsum("ni,rihk->rnhk", u, q_tab)
    alpha = (q * W_k[:, None, :, 0]).sum(-1)  # (R, n, H): query . (sin row of W_k)
    beta = (q * W_k[:, None, :, 1]).sum(-1)
    pos_k = torch.einsum("pd,rhdk->rhkp", pos, W_k[:, :, 2:])
    P = torch.einsum("rihk,rhkp->rihp", q_tab, pos_k).reshape(R, 3, H * C)
    scores = (u @ P).view(R, n, H, C) + alpha[..., None] * sin[None, :, None, :] + beta[..., None] * cos[None, :, None, :]
    w = torch.softmax(scores, dim=-1)
    vo_sin = torch.einsum("rhk,rhke->rhe", W_v[:, :, 0], W_o)  # (R, H, D)
    vo_cos = torch.einsum("rhk,rhke->rhe", W_v[:, :, 1], W_o)
    vo_pos = torch.einsum("pd,rhdk,rhke->rhpe", pos, W_v[:, :, 2:], W_o).reshape(R, H * C, -1)
    return ((w * sin[None, :, None, :]).sum(-1) @ vo_sin + (w * cos[None, :, None, :]).sum(-1) @ vo_cos
            + w.reshape(R, n, H * C) @ vo_pos)


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
            # anchors="between": each hyperplane passes through the MLP input of a random time strictly between
            # two bins (uniform in the gap: no bin, and no point of a regular finer grid, sits on a kink).
            # anchors="on" puts it through a bin, whose ReLU then starts exactly on its kink: which side it is on,
            # and so the first gradient, is decided by round-off (the fits then differ from CPU to CPU)
            t = time_grid(c.n_bins, c.periods, dtype)
            if c.anchors == "between":
                j = torch.randint(0, c.n_bins - 1, (c.hidden,), generator=g)
                u = torch.rand(c.hidden, generator=g, dtype=dtype)
                anchors = self.mlp_input(t[j] + u * (t[j + 1] - t[j]))
            else:
                anchors = self.mlp_input(t)[torch.randint(0, c.n_bins, (c.hidden,), generator=g)]
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

    def position_code(self) -> torch.Tensor:
        c = self.config
        return position_code(c.context, c.d_model - 2, c.pe_base, self.W_q.dtype).to(self.W_q.device)

    def mlp_input_from_clocks(self, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
        """MHA(X)_last from the clock channels (n, C) alone (see `mha_last`)."""
        params = (self.W_q[None], self.W_k[None], self.W_v[None], self.W_o[None])
        return mha_last(*params, sin, cos, self.position_code(), self.config.d_head)[0]

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
    restart_models: list[SineAttentionToy] = field(default_factory=list)  # every restart, in restart order

    @property
    def loss(self) -> float:
        """Final training MSE of the kept restart."""
        return float(self.restart_losses.min())


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: the toy's ops are small (a second thread only adds contention, up to 10x on a
    busy 2-core machine), and the results then cannot depend on the core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _lr_factor(i: int, steps: int, warmup: float) -> float:
    warm = max(1, round(warmup * steps))
    return min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1)))


STACK_ELEMENTS = 250_000  # stack restarts while R x n_bins x heads x context stays below this (CPU cache)
EVAL_ELEMENTS = 250_000  # evaluate the MLP input in chunks of times x heads x context below this


def _train_restarts(config: ToyConfig, device: str, nudge: int = 0) -> tuple[list[SineAttentionToy], np.ndarray]:
    """Train the restarts in stacked groups: their parameters are stacked on a leading axis and the loss is
    the sum of their MSEs, so each restart gets exactly its own gradient and its own (elementwise) Adam
    update - the same optimisation as training them one by one, for the per-step overhead of one group.
    Small models are stacked (the step is overhead-bound); large ones on the CPU are trained one at a time
    (stacking them only spills the cache; see benchmarks/bench_sine_attention.py)."""
    size = config.n_bins * config.heads * config.context
    group = config.restarts if device == "cuda" else max(1, min(config.restarts, STACK_ELEMENTS // size))
    models, losses = [], []
    for first in range(0, config.restarts, group):
        m, l = _train_group(config, range(first, min(first + group, config.restarts)), device, nudge)
        models += m
        losses.append(l)
    return models, np.concatenate(losses, axis=1)


def _train_group(config: ToyConfig, restarts: range, device: str,
                 nudge: int = 0) -> tuple[list[SineAttentionToy], np.ndarray]:
    models = [SineAttentionToy(config, r).to(device) for r in restarts]
    if nudge:  # move every initial weight `nudge` representable numbers up (see `nudge_sensitivity`)
        with torch.no_grad():
            for m in models:
                for p in m.parameters():
                    for _ in range(nudge):
                        p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))
    t = time_grid(config.n_bins, config.periods, config.torch_dtype).to(device)
    y = target(t)
    sin, cos = clocks(t, config.context, config.periods)  # the embedding is fixed: build it once
    pos = models[0].position_code()

    def stack(get) -> torch.Tensor:
        return torch.stack([get(m).detach() for m in models]).clone().requires_grad_(True)

    Wq, Wk, Wv, Wo = (stack(lambda m, a=a: getattr(m, a)) for a in ("W_q", "W_k", "W_v", "W_o"))
    W1, b1 = stack(lambda m: m.mlp[0].weight), stack(lambda m: m.mlp[0].bias)
    W2, b2 = stack(lambda m: m.mlp[2].weight), stack(lambda m: m.mlp[2].bias)
    params = [Wq, Wk, Wv, Wo, W1, b1, W2, b2]
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(i, config.steps, config.warmup))
    losses = torch.empty(config.steps, len(models), dtype=torch.float64)
    for i in range(config.steps):
        opt.zero_grad(set_to_none=True)
        z = mha_last(Wq, Wk, Wv, Wo, sin, cos, pos, config.d_head)  # (R, n, D)
        out = torch.relu(z @ W1.transpose(1, 2) + b1[:, None]) @ W2.transpose(1, 2) + b2[:, None]
        per_restart = torch.mean((out[..., 0] - y) ** 2, dim=1)
        per_restart.sum().backward()
        opt.step()
        sched.step()
        losses[i] = per_restart.detach()
    with torch.no_grad():
        for r, m in enumerate(models):
            for dst, src in ((m.W_q, Wq), (m.W_k, Wk), (m.W_v, Wv), (m.W_o, Wo), (m.mlp[0].weight, W1),
                             (m.mlp[0].bias, b1), (m.mlp[2].weight, W2), (m.mlp[2].bias, b2)):
                dst.copy_(src[r])
    return [m.eval() for m in models], losses.numpy()


def train(config: ToyConfig | None = None, *, device: str = "cpu", nudge: int = 0, **overrides: Any) -> FitResult:
    """Train the toy (full batch) and return the best of `config.restarts` restarts by final training loss
    (all restarts are kept in `restart_models`).

    `overrides` replace fields of `config` (or of the default `ToyConfig()`), e.g. train(context=100, heads=10).
    The restarts are trained together (see `_train_restarts`); restart r starts from seed x 1000003 + r.
    `nudge` > 0 moves every initial weight that many representable numbers up before training, a change of
    the size of a different CPU's round-off (see `nudge_sensitivity`).
    """
    if config is not None and not isinstance(config, ToyConfig):
        raise ValueError(f"config: expected a ToyConfig or None, got {type(config).__name__}")
    unknown = set(overrides) - set(ToyConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown ToyConfig fields {sorted(unknown)}; allowed: {list(ToyConfig.__dataclass_fields__)}")
    config = replace(config or ToyConfig(), **overrides)
    if device not in DEVICES:
        raise ValueError(f"device = {device!r} is not allowed: expected one of {list(DEVICES)}")
    if not _is_int(nudge) or not 0 <= nudge <= 1000:
        raise ValueError(f"nudge = {nudge!r} is not allowed: expected an integer in [0, 1000]")
    start = time.perf_counter()
    best, finals = None, []
    with _one_thread():
        models, losses = _train_restarts(config, device, int(nudge))
        for r, model in enumerate(models):
            final = float(fit_error(model)["mse"])
            finals.append(final)
            if best is None or final < best[2]:
                best = (model, losses[:, r], final)
    return FitResult(model=best[0], config=config, losses=best[1], restart_losses=np.array(finals),
                     seconds=time.perf_counter() - start, device=device, restart_models=models)


def nudge_sensitivity(config: ToyConfig | None = None, *, device: str = "cpu", nudge: int = 1,
                      **overrides: Any) -> dict[str, np.ndarray]:
    """How much a round-off-sized change of the starting point changes a fit: every restart is trained twice,
    from its initialisation and from the same initialisation with every weight moved `nudge` representable
    numbers up (one unit in the last place for nudge = 1). Returns the final training MSE of each restart
    both ways ("mse", "mse_nudged") and their ratio. A different CPU (other vector kernels, another summation
    order) changes the training by round-off of this size at every step, so a large ratio here means the
    toy's individual fits cannot be reproduced across machines, only their distribution."""
    if not _is_int(nudge) or not 1 <= nudge <= 1000:
        raise ValueError(f"nudge = {nudge!r} is not allowed: expected an integer in [1, 1000]")
    plain = train(config, device=device, **overrides)
    moved = train(plain.config, device=device, nudge=nudge)
    return {"restart": np.arange(plain.config.restarts), "mse": plain.restart_losses,
            "mse_nudged": moved.restart_losses, "ratio": moved.restart_losses / plain.restart_losses}


# ----------------------------------------------------------------------------- evaluation

def _times(model: SineAttentionToy, t) -> torch.Tensor:
    c = model.config
    if t is None:
        t = time_grid(c.n_bins, c.periods, c.torch_dtype)
    return torch.as_tensor(t).to(model.W_q)


@torch.no_grad()
def predict(model: SineAttentionToy, t: torch.Tensor | None = None) -> torch.Tensor:
    """The toy's prediction at times t (default: the training bins), on the CPU."""
    with _one_thread():
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
    """(len(t), d_model) float64 MLP inputs (default: at the training bins), in chunks of times whose
    (times, heads, context) attention tensors stay cache-sized (4x faster than one pass on fine grids)."""
    m = _float64(model)
    t = _times(m, t)
    c = m.config
    step = max(16, EVAL_ELEMENTS // (c.heads * c.context))
    with _one_thread():
        return torch.cat([m.mlp_input(t[i:i + step]) for i in range(0, len(t), step)]).numpy()


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
    """One row of numbers for a trained toy: config knobs, fit error, regions, probe error, rank, time (of the
    kept restart), and the MSE, pieces and distinct regions of every restart (`restart_*`, restart order)."""
    with _one_thread():
        regions = count_regions(fit.model, per_bin)
        err = fit_error(fit.model)
        each = [count_regions(m, per_bin) for m in fit.restart_models] if fit.restart_models else [regions]
        probe, rank = linear_probe_error(fit.model), mlp_input_rank(fit.model)
    return {"context": fit.config.context, "heads": fit.config.heads, "mse": err["mse"], "max_abs": err["max_abs"],
            "pieces": regions.pieces, "distinct": regions.distinct, "distinct_on_bins": regions.distinct_on_bins,
            "linear_probe_mse": probe, "rank": rank,
            "restart_mse": fit.restart_losses.tolist(), "restart_pieces": [r.pieces for r in each],
            "restart_distinct": [r.distinct for r in each], "seconds": fit.seconds}


def restart_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (heads, context, restart) from `summarise` / `sweep` rows: its final MSE, pieces, distinct."""
    return [{"heads": r["heads"], "context": r["context"], "restart": i, "mse": m, "pieces": p, "distinct": d}
            for r in rows for i, (m, p, d) in enumerate(zip(r["restart_mse"], r["restart_pieces"], r["restart_distinct"]))]


def compare_restarts(a: Sequence[float], b: Sequence[float], how: str = "ratio", level: float = 0.9,
                     n_boot: int = 2000, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Compare two settings through all their restarts, not through one kept fit: median(a) / median(b)
    (how="ratio", e.g. MSEs) or median(a) - median(b) (how="difference", e.g. pieces), with a percentile
    bootstrap interval that resamples each setting's restarts independently. The restarts of a setting are
    independent fits, so the interval shows how much of a difference between settings is restart luck."""
    if how not in ("ratio", "difference"):
        raise ValueError(f"how = {how!r} is not allowed: expected 'ratio' or 'difference'")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"a, b: expected two 1-d sequences of at least 2 restarts each, got {a.shape} and {b.shape}")

    def stat(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.median(x) / np.median(y) if how == "ratio" else np.median(x) - np.median(y))

    ra, rb = stats.cluster_resamples(len(a), n_boot, seed), stats.cluster_resamples(len(b), n_boot, seed + 1)
    boots = np.array([stat(a[i], b[j]) for i, j in zip(ra, rb)])
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return stat(a, b), (float(lo), float(hi))


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
