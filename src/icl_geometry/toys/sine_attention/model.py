"""The toy's configuration, task, embedding and network (see the package docstring for each choice):
`ToyConfig`, the bounds of Theorem 2.1 on it (`rank_bound`, `piece_budget`), the time bins and their splits,
the clock + position-code tokens, the structured attention `mha_last` and `SineAttentionToy`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from icl_geometry.core.checks import is_int
from torch import nn

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
ANCHORS = ("between", "on")
DEVICES = ("cpu", "cuda")
SPLITS = ("train", "val", "test")
MIXTURES = ("all", "cycle")


# ----------------------------------------------------------------------------- configuration

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
    # "all": every step's loss is the mean over all contexts; "cycle": step i uses context i mod len
    mixture: str = "all"

    def __post_init__(self) -> None:
        ints = {"heads": (1, 1_000), "d_head": (1, 1_024), "hidden": (1, 100_000), "n_bins": (8, 10_000_000),
                "steps": (0, 10_000_000), "seeds": (1, 1_000), "restarts": (1, 1_000), "seed": (0, 2**40)}
        for name, (lo, hi) in ints.items():
            v = getattr(self, name)
            if not is_int(v) or not lo <= v <= hi:
                raise ValueError(f"{name} = {v!r} is not allowed: expected an integer in [{lo}, {hi}]")
        cs = self.contexts
        if (not isinstance(cs, tuple) or not cs or not all(is_int(c) and 1 <= c <= 10_000 for c in cs)
                or list(cs) != sorted(set(cs))):
            raise ValueError(f"contexts = {cs!r} is not allowed: expected a tuple of increasing integers in [1, 10000]")
        d = self.d_model
        if not is_int(d) or d < 4 or d % 2:
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
        if not is_int(v) or v < 1:
            raise ValueError(f"rank_bound: {name} = {v!r} is not allowed: expected an integer >= 1")
    return min(2, d_model) if context == 1 else min(d_model, heads * min(d_head, context + 1))


def piece_budget(hidden: int, rank: int) -> int:
    """Most pieces a one-hidden-layer MLP of `hidden` neurons can have along an input curve that is a segment
    (rank 1: hidden + 1) or an ellipse traced once (rank 2: each hyperplane crosses it at most twice,
    2 hidden + 1). Higher-dimensional curves have no such budget; returns -1 for rank > 2."""
    if not is_int(hidden) or hidden < 1 or not is_int(rank) or rank < 0:
        raise ValueError(f"piece_budget: expected hidden >= 1 and rank >= 0 integers, got {hidden!r}, {rank!r}")
    return {0: 1, 1: hidden + 1, 2: 2 * hidden + 1}.get(int(rank), -1)


# ----------------------------------------------------------------------------- task and embedding

def time_grid(n_bins: int = 1000, periods: float = 5.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n_bins time bins, evenly spaced on [-periods pi, periods pi]."""
    return torch.linspace(-periods * math.pi, periods * math.pi, n_bins, dtype=dtype)


HOLDOUT = 4  # bins j with j % 4 == 0 train the toy, j % 4 == 2 validate it, j % 4 in (1, 3) test it


def split_times(split: str, n_bins: int = 1000, periods: float = 5.0,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
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
    scores = (u @ P).view(R, n, H, C) + alpha[..., None] * sin[None, :, None, :] \
        + beta[..., None] * cos[None, :, None, :]
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
        if not is_int(c) or not 1 <= c <= self.config.max_context:
            raise ValueError(f"context = {context!r} is not allowed: expected an integer in "
                             f"[1, {self.config.max_context}]")
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


def seeds_and_restarts(config: ToyConfig) -> list[tuple[int, int]]:
    """(seed, restart) of every network of a config, seed-major."""
    return [(config.seed + s, r) for s in range(config.seeds) for r in range(config.restarts)]


def config_dict(config: ToyConfig) -> dict[str, Any]:
    """The config as a plain dict (for tables and the chapter's 'what we chose' cell)."""
    return asdict(config)
