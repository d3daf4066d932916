"""The paper's attention + MLP toy (paper A, Figs. 4-5): fit sin(t) over 1000 time bins with an embedding,
one multi-head attention block (eq. 3) and a one-hidden-layer ReLU MLP, then count the MLP's linear regions
along the input and measure the fit - built so that it can test the mechanism the paper proposes.

The mechanism (Theorem 2.1 + section 2.1): more tokens with weight (a longer context) and more heads raise the
dimension of the MLP input; a higher-dimensional input lets the MLP's hyperplanes cut it into more pieces; more
pieces give a finer fit. The paper gives neither the embedding's formula nor the widths, optimiser or number of
steps. Our choices, each made so that one link of that chain can be seen and can fail:

* Task. N time bins t_n evenly spaced on [-P pi, P pi] with P = 5 periods, target sin(t): 10 half-waves.
* Embedding: one sequence of `max(contexts)` tokens per time bin, and "context C" = its first C tokens (the
  prediction is read at token C - 1, which under causal attention sees exactly tokens 0..C-1). Token p is a
  "clock" (sin(w_p t), cos(w_p t)) with w_p = 1 / ((p + 1) P), fixed per position, so token p turns 1 / (p + 1)
  times over the series, plus a fixed sinusoidal code of p (Vaswani et al., base 100) in the other
  d_model - 2 channels. Token 0, the fastest clock, is in every context: context 1 already identifies t (the
  clock turns once), and a longer context adds slower clocks - no new information about t, only more tokens to
  attend to, i.e. geometry. The frequencies do not depend on C, so "more context" is the same network reading
  more tokens, the paper's "context length is a knob that needs no retraining". (The paper's embedding has a
  frequency that depends on the context length too; with that, each context is a different input and needs
  its own fit - our previous design, which mixes "more information" with "more dimension".)
* Attention: eq. 3 with H heads of width d_head = 8 (query, key, value), softmax scaled by 1 / sqrt(d_head);
  the MLP receives MHA(X)_last = sum_h Attn_h V_h O_h directly (no residual, no LayerNorm), so Theorem 2.1
  applies exactly. Across times t the MLP input of one head lies in V_h O_h applied to
  span(clock channels) + conv(position codes of the C tokens): an affine dimension of at most
  min(d_head, C + 1), so at most min(d_model, H min(d_head, C + 1)) for H heads - and exactly the 2 of an
  ellipse for C = 1, whatever H (one token: no attention weight can vary). With d_head = 8 a single head's
  input can rise from 2 (C = 1) through 3, 6 (C = 2, 5) to 8 (C >= 7): context can raise the dimension at
  fixed heads. (With d_head = 2, as before, one head's input was planar for every context.)
* MLP: d_model = 16 -> hidden = 8 ReLU neurons -> 1. The region budget binds: at C = 1 the input is an
  ellipse, which crosses each of the 8 hyperplanes at most twice, so the fit has at most 2 x 8 + 1 = 17
  pieces (`piece_budget`) for 10 half-waves. Within a piece the output is an affine function of a slow clock,
  nearly a line over a half-wave, so a half-wave needs about 2 pieces; the planar fits we trained use 13 to 17
  of the 17, and a finer fit needs more pieces than a planar curve allows - reachable only if the input curve
  leaves the plane and crosses hyperplanes more often, which the extra dimensions of a longer context or more
  heads can allow.
* Training: one network per (heads, seed, restart), trained once on all the contexts of `contexts` together
  (the loss is the mean over contexts of the MSE at the training bins; `mixture="cycle"` instead uses one
  context per step, in turn), then evaluated at each context.
  Full batch, Adam (lr 1e-2, linear warm-up over the first 10% of the steps, cosine decay to 0), float64,
  Gaussian fan-in initialisation from a seeded generator; each hidden neuron's bias puts its hyperplane
  through the MLP input of a random time *between* two bins at a random context of `contexts` (no neuron
  starts dead, no bin starts on a kink). `contexts=(C,)` trains a separate network for one context.
* Held-out data and selection. Every fourth bin trains (250 of the paper's 1000); the bins halfway between
  two training bins validate and the remaining bins (next to a training bin) test (`split_times`): held-out
  times inside the series, so the toy is asked to interpolate. Of the `restarts` of a seed, the one with the
  lowest validation MSE (mean over contexts) is kept; every reported MSE is the test MSE of a kept fit at one
  context. `seeds` seeds give independent kept fits per heads setting; claims compare settings through them
  (medians, 90% bootstrap over seeds; `toy_claim_values`), paired by seed where the same networks are read at
  two contexts. Training on every fourth bin also makes a step 4x cheaper, which is what lets the paper's
  10 x 7 grid run with seeds and restarts on a CPU.
* Reproducibility across machines. A fit must not depend on round-off, which differs between CPUs (vector
  kernels, summation order). Two choices make it so, measured with `nudge_sensitivity` (every starting weight
  moved one unit in the last place): (1) hyperplanes anchored *between* bins, not on a bin (`anchors="on"`
  puts a bin exactly on each neuron's kink at step 0, so round-off picks the side of the ReLU and hence the
  first gradient; with float32 a one-ulp nudge then changed a restart's final MSE up to 26x, and different
  CPUs gave fits 10x apart); (2) float64 (with anchors between bins a one-ulp nudge still moves float32 fits
  by a few percent, float64 fits by ~1e-14; AVX-512, AVX2 and scalar kernels agree to ~1e-12). That holds
  for a few hundred steps only: training amplifies round-off roughly tenfold every 15 steps at a high
  learning rate, so on the chapter's ci grid AVX-512 and AVX2 losses agree to 1e-11 after 500 steps but end
  1.5% apart after 1200 (measured); the ci profile trains 500 steps, and longer runs are reproducible in
  distribution, not digit for digit.
  Speed: the tokens are (clock, position code) with the position code the same for every time bin, so the
  scores and the value mixing are computed from the 2 clock channels and small per-head tables, never from
  the (n_bins, C, d_model) token tensor (`mha_last`, checked against the plain formula `attention` in the
  tests), and the seeds and restarts are trained together as stacked models. `train` runs on one thread
  (faster for these small ops, and the result does not depend on the core count).

"Regions along the input". The input of the whole model is the time t; the MLP's input z(t) is a curve in
R^d_model. We follow it on a grid of t (`per_bin` points per bin) and count, with `partition.regions_1d`, the
MLP's exact linear regions along each straight segment between consecutive grid points (for a one-hidden-layer
MLP a neuron can switch inside a segment only if its sign differs at the two ends). `pieces` = the number of
intervals of t on which the MLP applies one affine map (Fig. 2's "regions along the input"); `distinct` = the
number of different activation patterns, i.e. of the MLP's linear regions of R^d the curve visits (a curve
can re-enter a region, so distinct <= pieces). The dimension of the MLP input is reported two ways: `rank`
(singular values of the centred inputs above 1e-6 x the largest: the linear dimension Theorem 2.1 bounds) and
`eff_dim` (participation ratio (sum s^2)^2 / sum s^4: how many directions carry the variance; 2 for a circle,
1 for a segment), since a direction of size 1e-6 counts for the rank but not for the fit.
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

from icl_geometry.core import partition, stats

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
ANCHORS = ("between", "on")
DEVICES = ("cpu", "cuda")
SPLITS = ("train", "val", "test")
MIXTURES = ("all", "cycle")


# ----------------------------------------------------------------------------- configuration

def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


@dataclass(frozen=True)
class ToyConfig:
    """Everything that defines the fits of one heads setting (see the module docstring for the defaults)."""

    contexts: tuple[int, ...] = (1, 10, 100)  # trained together, evaluated one by one (first C tokens)
    heads: int = 1
    d_model: int = 16
    d_head: int = 8
    hidden: int = 8
    n_bins: int = 1000
    periods: float = 5.0
    pe_base: float = 100.0
    steps: int = 2000
    lr: float = 1e-2
    warmup: float = 0.1
    seeds: int = 1  # independent kept fits
    restarts: int = 1  # per seed; the kept one has the lowest validation MSE
    seed: int = 0  # the first seed; seed s of `seeds` is seed + s
    dtype: str = "float64"
    anchors: str = "between"  # where each hidden neuron's initial hyperplane crosses the curve: between bins or on one
    mixture: str = "all"  # "all": every step's loss is the mean over all contexts; "cycle": step i uses context i mod len

    def __post_init__(self) -> None:
        ints = {"heads": (1, 1_000), "d_head": (1, 1_024), "hidden": (1, 100_000), "n_bins": (8, 10_000_000),
                "steps": (0, 10_000_000), "seeds": (1, 1_000), "restarts": (1, 1_000), "seed": (0, 2**40)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if not _is_int(v) or not lo <= v <= hi:
                raise ValueError(f"{name} = {v!r} is not allowed: expected an integer in [{lo}, {hi}]")
        cs = self.contexts
        if (not isinstance(cs, tuple) or not cs or not all(_is_int(c) and 1 <= c <= 10_000 for c in cs)
                or list(cs) != sorted(set(cs))):
            raise ValueError(f"contexts = {cs!r} is not allowed: expected a tuple of increasing integers in [1, 10000]")
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
        if self.mixture not in MIXTURES:
            raise ValueError(f"mixture = {self.mixture!r} is not allowed: expected one of {list(MIXTURES)}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return FLOAT_DTYPES[self.dtype]

    @property
    def max_context(self) -> int:
        return max(self.contexts)

    @property
    def n_models(self) -> int:
        return self.seeds * self.restarts


def rank_bound(heads: int, d_head: int, context: int, d_model: int = 16) -> int:
    """Theorem 2.1's bound on the rank (linear dimension over t) of the toy's MLP input: 2 at context 1 (one
    token, nothing to weigh: the input is linear in its clock), else min(d_model, heads min(d_head, context + 1))
    (per head: two clock directions plus the hull of the context's position codes, inside V_h O_h's range).
    Smooth attention patterns can leave directions below any fixed threshold: measured ranks can be lower."""
    for name, v in (("heads", heads), ("d_head", d_head), ("context", context), ("d_model", d_model)):
        if not _is_int(v) or v < 1:
            raise ValueError(f"rank_bound: {name} = {v!r} is not allowed: expected an integer >= 1")
    return min(2, d_model) if context == 1 else min(d_model, heads * min(d_head, context + 1))


def piece_budget(hidden: int, rank: int) -> int:
    """Most pieces a one-hidden-layer MLP of `hidden` neurons can have along an input curve that is a segment
    (rank 1: hidden + 1) or an ellipse traced once (rank 2: each hyperplane crosses it at most twice,
    2 hidden + 1). Higher-dimensional curves have no such budget; returns -1 for rank > 2."""
    if not _is_int(hidden) or hidden < 1 or not _is_int(rank) or rank < 0:
        raise ValueError(f"piece_budget: expected hidden >= 1 and rank >= 0 integers, got {hidden!r}, {rank!r}")
    return {0: 1, 1: hidden + 1, 2: 2 * hidden + 1}.get(int(rank), -1)


# ----------------------------------------------------------------------------- task and embedding

def time_grid(n_bins: int = 1000, periods: float = 5.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n_bins time bins, evenly spaced on [-periods pi, periods pi]."""
    return torch.linspace(-periods * math.pi, periods * math.pi, n_bins, dtype=dtype)


HOLDOUT = 4  # bins j with j % 4 == 0 train the toy, j % 4 == 2 validate it, j % 4 in (1, 3) test it


def split_times(split: str, n_bins: int = 1000, periods: float = 5.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The times of one split of the series' n_bins bins: "train" (every 4th bin, from the first), "val" (the
    bins halfway between two training bins) or "test" (the rest: the bins next to a training bin). Held-out
    bins lie between training bins: the toy is asked to interpolate, not to extrapolate."""
    if split not in SPLITS:
        raise ValueError(f"split = {split!r} is not allowed: expected one of {list(SPLITS)}")
    t = time_grid(n_bins, periods, dtype)
    j = torch.arange(n_bins) % HOLDOUT
    keep = {"train": j == 0, "val": j == 2, "test": (j == 1) | (j == 3)}[split]
    return t[keep]


def target(t: torch.Tensor) -> torch.Tensor:
    """What the toy fits: sin(t)."""
    return torch.sin(t)


def clock_frequencies(n_tokens: int, periods: float = 5.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """w_p = 1 / ((p + 1) periods) for p = 0..n_tokens-1: token p turns 1 / (p + 1) times over the series,
    whatever the context length (the first C of these are context C's clocks)."""
    return 1 / ((torch.arange(n_tokens, dtype=dtype) + 1) * periods)


def position_code(n_tokens: int, channels: int, base: float = 100.0,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(n_tokens, channels) fixed sinusoidal position code: sin/cos of p / base^(2k / channels)."""
    if channels % 2:
        raise ValueError(f"channels = {channels!r} is not allowed: expected an even number")
    p = torch.arange(n_tokens, dtype=dtype)[:, None]
    freq = base ** (-2 * torch.arange(channels // 2, dtype=dtype) / channels)
    return torch.cat([torch.sin(p * freq), torch.cos(p * freq)], dim=1)


def clocks(t: torch.Tensor, n_tokens: int, periods: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin(w_p t), cos(w_p t)), each (len(t), n_tokens): the time-dependent part of the tokens."""
    phase = t[:, None] * clock_frequencies(n_tokens, periods, t.dtype).to(t.device)[None, :]
    return torch.sin(phase), torch.cos(phase)


def embed(t: torch.Tensor, context: int, d_model: int = 16, periods: float = 5.0,
          pe_base: float = 100.0) -> torch.Tensor:
    """(len(t), context, d_model): for each time, the first `context` tokens: clock (sin w_p t, cos w_p t) +
    position code."""
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


def _generator_seed(seed: int, restart: int) -> int:
    return seed * 1_000_003 + restart


class SineAttentionToy(nn.Module):
    """Embedding -> one multi-head causal attention block (read at token C - 1) -> ReLU MLP -> sin(t).

    One network for every context: `forward(t, context)` reads the first `context` tokens."""

    def __init__(self, config: ToyConfig, seed: int | None = None, restart: int = 0):
        super().__init__()
        self.config = config
        self.seed = config.seed if seed is None else int(seed)
        self.restart = int(restart)
        c, dtype = config, config.torch_dtype
        g = torch.Generator().manual_seed(_generator_seed(self.seed, self.restart))

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
            # anchors="between": each hyperplane passes through the MLP input, at a random context of
            # `contexts`, of a random time strictly between two bins (no bin sits on a kink). anchors="on" puts
            # it through a bin, whose ReLU then starts exactly on its kink: round-off decides its side
            t = time_grid(c.n_bins, c.periods, dtype)
            which = torch.randint(0, len(c.contexts), (c.hidden,), generator=g)
            if c.anchors == "between":
                j = torch.randint(0, c.n_bins - 1, (c.hidden,), generator=g)
                u = torch.rand(c.hidden, generator=g, dtype=dtype)
                times = t[j] + u * (t[j + 1] - t[j])
            else:
                train_t = split_times("train", c.n_bins, c.periods, dtype)
                times = train_t[torch.randint(0, len(train_t), (c.hidden,), generator=g)]
            anchors = torch.stack([self.mlp_input(times[i:i + 1], c.contexts[int(which[i])])[0]
                                   for i in range(c.hidden)])
            self.mlp[0].bias.copy_(-(anchors * self.mlp[0].weight).sum(1))

    def _context(self, context: int | None) -> int:
        c = self.config.max_context if context is None else context
        if not _is_int(c) or not 1 <= c <= self.config.max_context:
            raise ValueError(f"context = {context!r} is not allowed: expected an integer in [1, {self.config.max_context}]")
        return int(c)

    def tokens(self, t: torch.Tensor, context: int | None = None) -> torch.Tensor:
        """(len(t), C, d_model) tokens of each time (the plain embedding, for `attention`)."""
        c = self.config
        return embed(t.to(self.W_q), self._context(context), c.d_model, c.periods, c.pe_base)

    def attention(self, t: torch.Tensor, context: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention weights of the read-out token (len(t), H, C) and the MLP input MHA(X)_last
        (len(t), d_model), by the plain formula of eq. 3 on the full tokens (the reference for `mlp_input`)."""
        X = self.tokens(t, context)
        q = torch.einsum("nd,hdk->nhk", X[:, -1], self.W_q)
        keys = torch.einsum("npd,hdk->nhpk", X, self.W_k)
        weights = torch.softmax(torch.einsum("nhk,nhpk->nhp", q, keys) / math.sqrt(self.config.d_head), dim=-1)
        values = torch.einsum("npd,hdk->nhpk", X, self.W_v)
        heads = torch.einsum("nhp,nhpk->nhk", weights, values)
        return weights, torch.einsum("nhk,hke->ne", heads, self.W_o)

    def position_code(self, context: int | None = None) -> torch.Tensor:
        c = self.config
        return position_code(self._context(context), c.d_model - 2, c.pe_base, self.W_q.dtype).to(self.W_q.device)

    def mlp_input(self, t: torch.Tensor, context: int | None = None) -> torch.Tensor:
        """(len(t), d_model): what the MLP receives at each time when the network reads `context` tokens."""
        c, C = self.config, self._context(context)
        sin, cos = clocks(torch.as_tensor(t).to(self.W_q), C, c.periods)
        params = (self.W_q[None], self.W_k[None], self.W_v[None], self.W_o[None])
        return mha_last(*params, sin, cos, self.position_code(C), c.d_head)[0]

    def forward(self, t: torch.Tensor, context: int | None = None) -> torch.Tensor:
        return self.mlp(self.mlp_input(t, context)).squeeze(-1)


# ----------------------------------------------------------------------------- training

@dataclass
class FitResult:
    """The trained networks of one heads setting: every (seed, restart), and the kept restart of each seed."""

    config: ToyConfig
    models: list[SineAttentionToy]  # seed-major: index s * restarts + r
    losses: np.ndarray  # (steps, n_models) training loss (mean over contexts of the MSE)
    val_mse: np.ndarray  # (n_models,) validation MSE, mean over contexts
    kept: np.ndarray  # (seeds,) index into models of each seed's kept restart
    seconds: float
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kept_models(self) -> list[SineAttentionToy]:
        return [self.models[i] for i in self.kept]

    @property
    def model(self) -> SineAttentionToy:
        """The kept fit of the first seed."""
        return self.models[int(self.kept[0])]


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


STACK_ELEMENTS = 250_000  # stack models while R x n_bins x heads x sum(contexts) stays below this (CPU cache)
EVAL_ELEMENTS = 250_000  # evaluate the MLP input in chunks of times x heads x context below this


def _members(config: ToyConfig) -> list[tuple[int, int]]:
    """(seed, restart) of every network of a config, seed-major."""
    return [(config.seed + s, r) for s in range(config.seeds) for r in range(config.restarts)]


def _train_all(config: ToyConfig, device: str, nudge: int = 0) -> tuple[list[SineAttentionToy], np.ndarray]:
    """Train every (seed, restart) in stacked groups: their parameters are stacked on a leading axis and the
    loss is the sum of their losses, so each network gets exactly its own gradient and its own (elementwise)
    Adam update - the same optimisation as training them one by one, for the per-step overhead of one group.
    Small models are stacked (the step is overhead-bound); large ones on the CPU one at a time."""
    size = config.n_bins * config.heads * sum(config.contexts)
    members = _members(config)
    group = len(members) if device == "cuda" else max(1, min(len(members), STACK_ELEMENTS // size))
    models, losses = [], []
    for first in range(0, len(members), group):
        m, l = _train_group(config, members[first:first + group], device, nudge)
        models += m
        losses.append(l)
    return models, np.concatenate(losses, axis=1)


def _train_group(config: ToyConfig, members: Sequence[tuple[int, int]], device: str,
                 nudge: int = 0) -> tuple[list[SineAttentionToy], np.ndarray]:
    models = [SineAttentionToy(config, s, r).to(device) for s, r in members]
    if nudge:  # move every initial weight `nudge` representable numbers up (see `nudge_sensitivity`)
        with torch.no_grad():
            for m in models:
                for p in m.parameters():
                    for _ in range(nudge):
                        p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))
    t = split_times("train", config.n_bins, config.periods, config.torch_dtype).to(device)
    y = target(t)
    sin, cos = clocks(t, config.max_context, config.periods)  # the embedding is fixed: build it once
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
        per_model = 0
        used = config.contexts if config.mixture == "all" else (config.contexts[i % len(config.contexts)],)
        for C in used:
            z = mha_last(Wq, Wk, Wv, Wo, sin[:, :C], cos[:, :C], pos[:C], config.d_head)  # (R, n, D)
            out = torch.relu(z @ W1.transpose(1, 2) + b1[:, None]) @ W2.transpose(1, 2) + b2[:, None]
            per_model = per_model + torch.mean((out[..., 0] - y) ** 2, dim=1)
        per_model = per_model / len(used)
        per_model.sum().backward()
        opt.step()
        sched.step()
        losses[i] = per_model.detach()
    with torch.no_grad():
        for r, m in enumerate(models):
            for dst, src in ((m.W_q, Wq), (m.W_k, Wk), (m.W_v, Wv), (m.W_o, Wo), (m.mlp[0].weight, W1),
                             (m.mlp[0].bias, b1), (m.mlp[2].weight, W2), (m.mlp[2].bias, b2)):
                dst.copy_(src[r])
    return [m.eval() for m in models], losses.numpy()


def train(config: ToyConfig | None = None, *, device: str = "cpu", nudge: int = 0, **overrides: Any) -> FitResult:
    """Train every (seed, restart) of a config once, on all its contexts, and keep per seed the restart with
    the lowest validation MSE (mean over contexts).

    `overrides` replace fields of `config` (or of the default `ToyConfig()`), e.g. train(heads=10, seeds=4).
    `nudge` > 0 moves every initial weight that many representable numbers up before training, a change of
    the size of a different CPU's round-off (see `nudge_sensitivity`).
    """
    if config is not None and not isinstance(config, ToyConfig):
        raise ValueError(f"config: expected a ToyConfig or None, got {type(config).__name__}")
    unknown = set(overrides) - set(ToyConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown ToyConfig fields {sorted(unknown)}; allowed: {list(ToyConfig.__dataclass_fields__)}")
    if "contexts" in overrides and isinstance(overrides["contexts"], (list, range)):
        overrides["contexts"] = tuple(overrides["contexts"])
    config = replace(config or ToyConfig(), **overrides)
    if device not in DEVICES:
        raise ValueError(f"device = {device!r} is not allowed: expected one of {list(DEVICES)}")
    if not _is_int(nudge) or not 0 <= nudge <= 1000:
        raise ValueError(f"nudge = {nudge!r} is not allowed: expected an integer in [0, 1000]")
    start = time.perf_counter()
    with _one_thread():
        models, losses = _train_all(config, device, int(nudge))
        val = np.array([np.mean([fit_error(m, "val", C)["mse"] for C in config.contexts]) for m in models])
    kept = np.array([s * config.restarts + int(np.argmin(val[s * config.restarts:(s + 1) * config.restarts]))
                     for s in range(config.seeds)])
    return FitResult(config=config, models=models, losses=losses, val_mse=val, kept=kept,
                     seconds=time.perf_counter() - start, device=device)


def nudge_sensitivity(config: ToyConfig | None = None, *, device: str = "cpu", nudge: int = 1,
                      **overrides: Any) -> dict[str, np.ndarray]:
    """How much a round-off-sized change of the starting point changes a fit: every network is trained twice,
    from its initialisation and from the same initialisation with every weight moved `nudge` representable
    numbers up (one unit in the last place for nudge = 1). Returns the final training loss of each network
    both ways ("mse", "mse_nudged") and their ratio. A different CPU (other vector kernels, another summation
    order) changes the training by round-off of this size at every step, so a large ratio here means the
    toy's individual fits cannot be reproduced across machines, only their distribution."""
    if not _is_int(nudge) or not 1 <= nudge <= 1000:
        raise ValueError(f"nudge = {nudge!r} is not allowed: expected an integer in [1, 1000]")
    plain = train(config, device=device, **overrides)
    moved = train(plain.config, device=device, nudge=nudge)
    final = plain.losses[-1] if len(plain.losses) else np.full(len(plain.models), np.nan)
    final_moved = moved.losses[-1] if len(moved.losses) else np.full(len(moved.models), np.nan)
    members = _members(plain.config)
    return {"seed": np.array([s for s, _ in members]), "restart": np.array([r for _, r in members]),
            "mse": final, "mse_nudged": final_moved, "ratio": final_moved / final}


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
    with _one_thread():
        return model(_times(model, t), context).cpu()


@torch.no_grad()
def fit_error(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None) -> dict[str, float]:
    """Mean squared error, largest absolute error, and fraction of variance unexplained of the fit at times t
    (default: the training bins; "val" / "test": the held-out times) reading `context` tokens."""
    t = _times(model, t)
    err = model(t, context) - target(t)
    mse = float(torch.mean(err.double() ** 2))
    return {"mse": mse, "max_abs": float(err.abs().max()), "fvu": mse / float(torch.var(target(t).double(), unbiased=False))}


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
    with _one_thread():
        return torch.cat([m.mlp_input(t[i:i + step], C) for i in range(0, len(t), step)]).numpy()


@torch.no_grad()
def linear_probe_error(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None) -> float:
    """MSE of the best affine read-out of sin(t) from the MLP input: how much the attention block already fits
    before the MLP's regions are used (0.5 = nothing, the variance of sin)."""
    z = torch.from_numpy(mlp_inputs(model, t, context))
    Z = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
    y = target(_times(_float64(model), t))[:, None]
    coef = torch.linalg.lstsq(Z, y, driver="gelsd").solution
    return float(torch.mean((Z @ coef - y) ** 2))


def _singular_values(z: np.ndarray) -> np.ndarray:
    return np.linalg.svd(z - z.mean(0), compute_uv=False)


def mlp_input_rank(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None,
                   rtol: float = 1e-6) -> int:
    """Linear dimension of the set of MLP inputs over the times: singular values of the centred matrix above
    rtol x the largest (Theorem 2.1 bounds it; see the module docstring for min(d_model, H min(d_head, C + 1)))."""
    s = _singular_values(mlp_inputs(model, t, context))
    return int((s > rtol * s[0]).sum()) if s[0] > 0 else 0


def effective_dim(z: np.ndarray) -> float:
    """Participation ratio (sum s^2)^2 / sum s^4 of the centred rows' singular values s: the number of
    directions that carry the variance (1 for a segment, 2 for a circle, d for an isotropic cloud)."""
    s2 = _singular_values(np.asarray(z, dtype=np.float64)) ** 2
    return float(s2.sum() ** 2 / (s2 ** 2).sum()) if s2.sum() > 0 else 0.0


def activation_patterns(model: SineAttentionToy, t: torch.Tensor | str | None = None, context: int | None = None) -> np.ndarray:
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


def count_regions(model: SineAttentionToy, context: int | None = None, per_bin: int = 20) -> RegionCount:
    """Exact regions of the MLP along the polyline through z(t) (reading `context` tokens) on a grid per_bin x
    finer than the bins.

    Segments whose end patterns differ are split exactly by `partition.regions_1d`; with one hidden layer the
    other segments cannot contain a switch. Deeper MLPs get the exact count on every segment.
    """
    if not _is_int(per_bin) or per_bin < 1:
        raise ValueError(f"per_bin = {per_bin!r} is not allowed: expected an integer >= 1")
    t = fine_grid(model, per_bin)
    Z = mlp_inputs(model, t, context)
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
                       distinct_on_bins=partition.count_distinct(activation_patterns(model, None, context)),
                       boundaries=boundaries, n_grid=len(t))


ROW_FIELDS = ("heads", "context", "seed", "restart", "kept", "train_mse", "val_mse", "test_mse", "pieces",
              "distinct", "rank", "eff_dim", "probe_mse")


def evaluate(fit: FitResult, per_bin: int = 20, regions: str = "kept") -> list[dict[str, Any]]:
    """One row per (seed, restart, context) of a fit: heads, context, seed, restart, kept (chosen on
    validation), training / validation / test MSE at that context, and - for the kept fits (regions="kept")
    or all (regions="all") - pieces, distinct regions, rank and effective dimension of the MLP input (at the
    training bins), and the linear read-out's MSE; NaN / -1 where not measured."""
    if regions not in ("kept", "all"):
        raise ValueError(f"regions = {regions!r} is not allowed: expected 'kept' or 'all'")
    c = fit.config
    kept = set(int(i) for i in fit.kept)
    rows = []
    with _one_thread():
        for i, (m, (seed, restart)) in enumerate(zip(fit.models, _members(c))):
            for C in c.contexts:
                row = {"heads": c.heads, "context": C, "seed": seed, "restart": restart, "kept": i in kept,
                       **{f"{s}_mse": fit_error(m, s, C)["mse"] for s in SPLITS},
                       "pieces": -1, "distinct": -1, "rank": -1, "eff_dim": math.nan, "probe_mse": math.nan}
                if i in kept or regions == "all":
                    count = count_regions(m, C, per_bin)
                    z = mlp_inputs(m, None, C)
                    s = _singular_values(z)
                    row.update(pieces=count.pieces, distinct=count.distinct,
                               rank=int((s > 1e-6 * s[0]).sum()) if s[0] > 0 else 0, eff_dim=effective_dim(z),
                               probe_mse=linear_probe_error(m, None, C))
                rows.append(row)
    return rows


def sweep(heads: Iterable[int], config: ToyConfig | None = None, *, device: str = "cpu", progress: bool = True,
          per_bin: int = 20, **overrides: Any) -> tuple[list[dict[str, Any]], dict[int, FitResult]]:
    """Train every heads setting once (all seeds and restarts, on all contexts) and evaluate each network at
    every context: the data of the paper's Fig. 5 heat map. Returns the rows (`evaluate`) and the fits by
    heads."""
    heads = [int(h) for h in heads]
    if not heads:
        raise ValueError("heads: expected at least one value")
    if "contexts" in overrides and isinstance(overrides["contexts"], (list, range)):
        overrides["contexts"] = tuple(overrides["contexts"])
    base = replace(config or ToyConfig(), **overrides)
    iterator: Iterable = heads
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(heads, desc="toy: heads settings")
    rows, fits = [], {}
    for h in iterator:
        fit = train(replace(base, heads=h), device=device)
        fits[h] = fit
        rows += evaluate(fit, per_bin)
    return rows, fits


# ----------------------------------------------------------------------------- claims from rows

def _median_contrast(x: np.ndarray, y: np.ndarray, how: str) -> float:
    """median(x) / median(y) (how="ratio") or median(x) - median(y) (how="difference")."""
    return float(np.median(x) / np.median(y) if how == "ratio" else np.median(x) - np.median(y))


def compare_restarts(a: Sequence[float], b: Sequence[float], how: str = "ratio", level: float = 0.9,
                     n_boot: int = 2000, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Compare two settings through independent fits (seeds or restarts), not through one fit each:
    median(a) / median(b) (how="ratio", e.g. MSEs) or median(a) - median(b) (how="difference", e.g. pieces),
    with a percentile bootstrap interval that resamples each setting's fits independently."""
    if how not in ("ratio", "difference"):
        raise ValueError(f"how = {how!r} is not allowed: expected 'ratio' or 'difference'")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"a, b: expected two 1-d sequences of at least 2 restarts each, got {a.shape} and {b.shape}")

    return stats.two_sample_bootstrap(a, b, lambda x, y: _median_contrast(x, y, how), n_boot, level, seed)


def compare_paired(a: Sequence[float], b: Sequence[float], how: str = "ratio", level: float = 0.9,
                   n_boot: int = 2000, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Like `compare_restarts` for paired fits (a[i], b[i] from the same network, e.g. one network read at two
    contexts): the pairs are resampled together (`stats.bootstrap_interval`)."""
    if how not in ("ratio", "difference"):
        raise ValueError(f"how = {how!r} is not allowed: expected 'ratio' or 'difference'")
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"a, b: expected two 1-d sequences of the same length >= 2, got {a.shape} and {b.shape}")

    return stats.bootstrap_interval(np.stack([a, b], axis=1), lambda x: _median_contrast(x[:, 0], x[:, 1], how),
                                    n_boot=n_boot, level=level, seed=seed)


# claim id -> how it is judged and what it says. "pair": which two cells of the grid (heads, context) are
# compared: the fewest and most heads ("h_lo", "h_hi") and the shortest and longest contexts ("c_lo", "c_hi").
TOY_CLAIMS: dict[str, dict[str, Any]] = {
    "toy_mse_ratio_context": dict(
        kind="paper", direction="less", threshold=1.0, column="test_mse", how="ratio", knob="context",
        paper="Figs. 4-5: longer context -> better fit",
        note="{h_lo} head(s): median test MSE at context {c_hi} / at context {c_lo} (same networks)"),
    "toy_mse_ratio_heads": dict(
        kind="paper", direction="less", threshold=1.0, column="test_mse", how="ratio", knob="heads",
        paper="Figs. 4-5: more heads -> better fit",
        note="context {c_hi}: median test MSE with {h_hi} heads / {h_lo}"),
    "toy_pieces_gain_context": dict(
        kind="paper", direction="greater", threshold=0.0, column="pieces", how="difference", knob="context",
        paper="Figs. 4-5: longer context -> more regions",
        note="{h_lo} head(s): median pieces at context {c_hi} minus {c_lo} (same networks)"),
    "toy_pieces_gain_heads": dict(
        kind="paper", direction="greater", threshold=0.0, column="pieces", how="difference", knob="heads",
        paper="Figs. 4-5: more heads -> more regions", note="context {c_hi}: median pieces, {h_hi} heads minus {h_lo}"),
    "toy_distinct_gain_heads": dict(
        kind="paper", direction="greater", threshold=0.0, column="distinct", how="difference", knob="heads",
        paper="Figs. 4-5: more heads -> more regions",
        note="context {c_hi}: median distinct regions visited, {h_hi} heads minus {h_lo}"),
    "toy_dim_gain_context": dict(
        kind="paper", direction="greater", threshold=0.0, column="eff_dim", how="difference", knob="context",
        paper="Thm 2.1 (i): a longer context raises the MLP input's dimension",
        note="{h_lo} head(s): median effective dimension (participation ratio) at context {c_hi} minus {c_lo}"),
    "toy_dim_gain_heads": dict(
        kind="paper", direction="greater", threshold=0.0, column="eff_dim", how="difference", knob="heads",
        paper="Thm 2.1 (ii): more heads raise the MLP input's dimension",
        note="context {c_hi}: median effective dimension, {h_hi} heads minus {h_lo}"),
    "toy_spearman_pieces_vs_heads": dict(
        kind="paper", direction="greater", threshold=0.0, column="pieces", knob="heads",
        paper="Fig. 5: regions grow with heads", note="Spearman over the kept fits of the grid"),
    "toy_spearman_pieces_vs_context": dict(
        kind="paper", direction="greater", threshold=0.0, column="pieces", knob="context",
        paper="Fig. 5: regions grow with context", note="Spearman over the kept fits of the grid"),
}


def grid_ends(rows: Any) -> dict[str, int]:
    """The fewest and most heads and the shortest and longest context of the rows."""
    import pandas as pd

    df = pd.DataFrame(rows)
    return {"h_lo": int(df.heads.min()), "h_hi": int(df.heads.max()), "c_lo": int(df.context.min()),
            "c_hi": int(df.context.max())}


def toy_claim_values(rows: Any, n_boot: int = 2000, level: float = 0.9, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every toy claim (`TOY_CLAIMS`) from the rows of `evaluate` / `sweep` (a list of dicts or a DataFrame):
    value, interval and the note, computed from the kept fits (one per heads and seed) only.

    Context claims read the same networks at two contexts: paired by seed (`compare_paired`). Heads claims
    compare different networks: independent resampling of seeds (`compare_restarts`). The Spearman claims
    bootstrap whole networks (all contexts of one (heads, seed) together, `stats.bootstrap_correlation`);
    they are left out when the grid has fewer than 2 heads or contexts. Claims that need two heads settings
    (or two contexts) are left out when the grid has only one."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df = df[df.kept.astype(bool)]
    ends = grid_ends(df)
    out = {}

    def cell(h: int, c: int, col: str) -> np.ndarray:
        return df[(df.heads == h) & (df.context == c)].sort_values("seed")[col].to_numpy(float)

    for cid, spec in TOY_CLAIMS.items():
        knob, col = spec["knob"], spec["column"]
        lo_key, hi_key = ("c_lo", "c_hi") if knob == "context" else ("h_lo", "h_hi")
        if ends[lo_key] == ends[hi_key]:
            continue
        if "how" not in spec:
            groups = df.heads.astype(str) + "/" + df.seed.astype(str)
            value, interval = stats.bootstrap_correlation(df[knob], df[col], groups=groups.to_numpy(),
                                                          method="spearman", n_boot=n_boot, level=level, seed=seed)
            note = spec["note"] + f" ({len(df)} (network, context) cells, {df.groupby(['heads', 'seed']).ngroups} networks; "
            note += f"{level:.0%} bootstrap over networks)"
        elif knob == "context":
            a, b = cell(ends["h_lo"], ends["c_hi"], col), cell(ends["h_lo"], ends["c_lo"], col)
            value, interval = compare_paired(a, b, spec["how"], level=level, n_boot=n_boot, seed=seed)
            note = spec["note"].format(**ends) + f" ({len(a)} seeds, {level:.0%} bootstrap over seeds, paired)"
        else:
            a, b = cell(ends["h_hi"], ends["c_hi"], col), cell(ends["h_lo"], ends["c_hi"], col)
            value, interval = compare_restarts(a, b, spec["how"], level=level, n_boot=n_boot, seed=seed)
            note = spec["note"].format(**ends) + f" ({len(a)} and {len(b)} seeds, {level:.0%} bootstrap over seeds)"
        out[cid] = {"value": float(value), "interval": (float(interval[0]), float(interval[1])), "note": note,
                    **{k: spec[k] for k in ("kind", "direction", "threshold", "paper")}}
    return out


def findings(rows: Any, hidden: int = 8, d_head: int = 8) -> list[str]:
    """The toy's results link by link (dimension, budget, fit), as sentences generated from the rows of
    `evaluate` / `sweep` (kept fits, medians over seeds), so that the chapter's reading of a run - the ci run or a
    recorded one - quotes that run's numbers and never typed-in ones."""
    import pandas as pd

    df = pd.DataFrame(rows)
    k = df[df.kept.astype(bool)]
    e = grid_ends(k)
    h_lo, h_hi, c_lo, c_hi = e["h_lo"], e["h_hi"], e["c_lo"], e["c_hi"]
    budget = piece_budget(hidden, 2)

    def med(h: int, c: int, col: str) -> float:
        return float(k[(k.heads == h) & (k.context == c)][col].median())

    def change(a: float, b: float, fmt: str) -> str:
        word = "rises" if b > a else "falls" if b < a else "stays"
        return f"{word} ({a:{fmt}} -> {b:{fmt}})"

    lines = []
    for h in dict.fromkeys((h_lo, h_hi)):
        lines.append(f"Dimension, {h} head(s): from context {c_lo} to {c_hi} the median rank of the MLP input "
                     f"{change(med(h, c_lo, 'rank'), med(h, c_hi, 'rank'), 'g')} (bound {rank_bound(h, d_head, c_lo)} -> "
                     f"{rank_bound(h, d_head, c_hi)} with d_head {d_head}) and its effective dimension "
                     f"{change(med(h, c_lo, 'eff_dim'), med(h, c_hi, 'eff_dim'), '.2f')}.")
    longer = k[k.context > c_lo]
    over = longer.pieces > budget
    by_heads = ", ".join(f"{h} head(s): {int(g.sum())} of {len(g)}" for h, g in over.groupby(longer.heads))
    lines.append(f"Budget: at context {c_lo} the input is planar, so no fit has more than {budget} pieces; the kept "
                 f"fits there have a median of {med(h_lo, c_lo, 'pieces'):g} ({h_lo} head(s)) and "
                 f"{med(h_hi, c_lo, 'pieces'):g} ({h_hi} heads). At longer contexts {int(over.sum())} of {len(longer)} "
                 f"kept fits use more than {budget} pieces ({by_heads}); the most is {int(k.pieces.max())}.")
    for h in dict.fromkeys((h_lo, h_hi)):
        a, b = med(h, c_lo, "test_mse"), med(h, c_hi, "test_mse")
        verb = "improves" if b < a else "worsens"
        lines.append(f"Fit, {h} head(s): reading {c_hi} tokens instead of {c_lo} {verb} the same networks' median "
                     f"test MSE ({a:.2g} -> {b:.2g}); median pieces {med(h, c_lo, 'pieces'):g} -> {med(h, c_hi, 'pieces'):g}.")
    if h_hi != h_lo:
        lines.append(f"Heads: at context {c_hi}, {h_hi} heads instead of {h_lo} take the median test MSE from "
                     f"{med(h_lo, c_hi, 'test_mse'):.2g} to {med(h_hi, c_hi, 'test_mse'):.2g} and the median pieces from "
                     f"{med(h_lo, c_hi, 'pieces'):g} to {med(h_hi, c_hi, 'pieces'):g}.")
    if len(k) >= 4:
        rho, (lo, hi) = stats.spearman_interval(k.pieces, k.test_mse)
        lines.append(f"Pieces and fit: over the {len(k)} kept (network, context) cells, Spearman(pieces, test MSE) = "
                     f"{rho:.2f} [{lo:.2f}, {hi:.2f}] (negative: more pieces, better fit).")
    return lines


def record_toy_claims(book: Any, rows: Any, n_boot: int = 2000, level: float = 0.9, seed: int = 0) -> list[str]:
    """Record `toy_claim_values` in a `claims.ClaimBook`; returns the claim ids."""
    values = toy_claim_values(rows, n_boot, level, seed)
    for cid, v in values.items():
        book.record(cid, v["value"], kind=v["kind"], direction=v["direction"], threshold=v["threshold"],
                    interval=v["interval"], paper=v["paper"], note=v["note"])
    return list(values)


ROWS_SUFFIX = "_rows.csv.gz"  # a run's per-fit rows, beside its results JSON


def save_rows(rows: Any, results_json: Any) -> Any:
    """Write the rows beside a chapter's results JSON (`02.json` -> `02_rows.csv.gz`); returns the path."""
    from pathlib import Path

    import pandas as pd

    results_json = Path(results_json)
    path = results_json.with_name(results_json.stem + ROWS_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows)[list(ROW_FIELDS)].to_csv(path, index=False)
    return path


def config_dict(config: ToyConfig) -> dict[str, Any]:
    """The config as a plain dict (for tables and the chapter's 'what we chose' cell)."""
    return asdict(config)
