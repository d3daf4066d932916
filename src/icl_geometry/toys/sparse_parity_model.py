"""Chapter 6's transformers: a family of two-layer models, one per (number of heads, seed), trained side by side.

Layer 1 is token-wise: `features='learned'` is an MLP with a residual, z(x) = [x, relu(W_1 x + b_1)] (width W per
model); `features='fixed'` is the bank of every k-parity, z(x) = (chi_S(x))_{|S| = k}, the analysable case.
Layer 2 is attention from the query token over the N context tokens, m heads of width one: head h has query
q_h = u_h^T z(x_q), keys k_h(x_i) = v_h^T z(x_i) and reads the label channel, value y_i; the prediction is
y_hat = sum_h w_h o_h with

    linear attention:  o_h = q_h (1/N) sum_i k_h(x_i) y_i            (the model class of the closed form)
    softmax attention: o_h = sum_i softmax_i(q_h k_h(x_i)) y_i        (a standard transformer head)

Values read only the label: a path from x_q alone to the output could also predict from the prior over tasks
(in-weights learning), which is a different mechanism from the one studied here.

Inputs take only 2^d values, so layer 1 is evaluated once per step on all of them (`tables`) and every token
looks its features up: exactly the per-token computation (`forward_literal` does it literally, for the tests and
the benchmark) at a fraction of the cost. The same tables give each linear model's matrix A in the parity basis.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from icl_geometry.core.checks import check_int
from icl_geometry.toys import sparse_parity as sp
from icl_geometry.toys.train import TrainResult
from icl_geometry.toys.train import train as train_loop
from icl_geometry.toys.train import warmup_steps_cosine

ATTENTIONS: tuple[str, ...] = ("linear", "softmax")
FEATURES: tuple[str, ...] = ("learned", "fixed")


class ParityFamily(nn.Module):
    """Models with `heads[j]` attention heads for each of `n_seeds` initialisations (member seed * len(heads) + j)."""

    def __init__(self, d: int, heads: Sequence[int], n_seeds: int = 1, attention: str = "softmax",
                 features: str = "learned", width: int = 64, k: int = 2, init_out: float = 1.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.d = check_int("d", d, 1, sp.MAX_D)
        self.heads = sp.check_heads(heads)
        self.n_seeds = check_int("n_seeds", n_seeds, 1)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention = {attention!r} is not allowed: expected one of {list(ATTENTIONS)}")
        if features not in FEATURES:
            raise ValueError(f"features = {features!r} is not allowed: expected one of {list(FEATURES)}")
        self.attention, self.features = attention, features
        self.width = check_int("width", width, 1)
        self.k = check_int("k", k, 1, d)
        self.n_members = self.n_seeds * len(self.heads)
        member = [s * len(self.heads) + j for s in range(self.n_seeds) for j, m in enumerate(self.heads)
                  for _ in range(m)]
        self.register_buffer("member", torch.tensor(member))
        self.register_buffer("x_table", sp.input_table(d, dtype))  # (2^d, d)
        g = torch.Generator().manual_seed(int(seed))

        def gauss(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g, dtype=dtype) * scale)

        M, Hmax = self.n_members, max(self.heads)
        slot = [s for _ in range(self.n_seeds) for m in self.heads for s in range(m)]
        self.register_buffer("slot", torch.tensor(slot))  # head h is slot[h] of member[h]'s heads
        if features == "learned":
            self.W1 = gauss(M, self.width, d, scale=1 / math.sqrt(d))
            self.b1 = gauss(M, self.width, scale=0.5)
            n_feat = d + self.width
        else:
            self.bank = tuple(itertools.combinations(range(d), self.k))
            self.register_buffer("bank_table", sp.parity_table([sp.mask_of(s) for s in self.bank], d, dtype).T)
            n_feat = len(self.bank)
        # Per member, max(heads) head slots (padded: slots >= m are never read and get no gradient).
        self.U = gauss(M, Hmax, n_feat, scale=1 / math.sqrt(n_feat))  # query projections
        self.V = gauss(M, Hmax, n_feat, scale=1 / math.sqrt(n_feat))  # key projections
        self.w = gauss(M, Hmax, scale=init_out)  # output weight of each head
        with torch.no_grad():
            used = torch.zeros(M, Hmax, dtype=torch.bool)
            used[self.member, self.slot] = True
            for p in (self.U, self.V, self.w):
                p[~used] = 0

    @property
    def head_w(self) -> torch.Tensor:
        """(H,) the output weight of every head."""
        return self.w[self.member, self.slot]

    # ------------------------------------------------------------------ layer 1
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Layer 1 on +-1 inputs x (..., d): features z (M, ..., F) for every member."""
        if self.features == "fixed":
            return self.bank_table[sp.encode(x)].expand(self.n_members, *x.shape[:-1], -1)
        h = torch.relu(torch.einsum("mwd,...d->m...w", self.W1, x)
                       + self.b1.reshape(self.n_members, *([1] * (x.dim() - 1)), self.width))
        return torch.cat([x.expand(self.n_members, *x.shape), h], -1)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Query and key features of every head on every input code: (q (H, 2^d), k (H, 2^d))."""
        z = self.bank_table.expand(self.n_members, -1, -1) if self.features == "fixed" else self.embed(self.x_table)
        q = torch.bmm(self.U, z.transpose(1, 2))  # (M, Hmax, 2^d)
        k = torch.bmm(self.V, z.transpose(1, 2))
        return q[self.member, self.slot], k[self.member, self.slot]

    # ------------------------------------------------------------------ layer 2
    def attend(self, q: torch.Tensor, k: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Head outputs o (H, B) from queries q (H, B), keys k (H, B, N) and context labels y (B, N)."""
        if self.attention == "linear":
            return q * (k * y).mean(-1)
        return (torch.softmax(q[..., None] * k, -1) * y).sum(-1)

    def combine(self, o: torch.Tensor) -> torch.Tensor:
        """sum_h w_h o_h within each member: (H, B) -> (M, B)."""
        out = o.new_zeros(self.n_members, o.shape[-1])
        return out.index_add(0, self.member, self.head_w[:, None] * o)

    def forward(self, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predictions (M, B) for prompts given as input codes (B, N+1) and labels (B, N+1) (the query's is unused)."""
        qt, kt = self.tables()
        q, yc = qt[:, codes[:, -1]], y[:, :-1].to(qt.dtype)
        if self.attention == "linear":  # sum_i k(x_i) y_i = sum_c k(c) Y_c with Y_c the label sum at input code c
            Y = yc.new_zeros(len(codes), kt.shape[1]).scatter_add_(1, codes[:, :-1], yc)
            return self.combine(q * (kt @ Y.T) / yc.shape[1])
        return self.combine(self.attend(q, kt[:, codes[:, :-1]], yc))

    def forward_literal(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The same predictions computed token by token from +-1 inputs x (B, N+1, d), no lookup tables."""
        z = self.embed(x.to(self.x_table.dtype))[self.member]  # (H, B, N+1, F)
        U, V = self.U[self.member, self.slot], self.V[self.member, self.slot]
        q = torch.einsum("hbf,hf->hb", z[:, :, -1], U)
        k = torch.einsum("hbnf,hf->hbn", z[:, :, :-1], V)
        return self.combine(self.attend(q, k, y[:, :-1].to(q.dtype)))

    # ------------------------------------------------------------------ readouts
    def member_heads(self, j: int) -> torch.Tensor:
        """Indices of member j's heads."""
        return torch.nonzero(self.member == j)[:, 0]

    def head_walsh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Parity-basis coefficients of every head's query and key feature: (F (H, 2^d), G (H, 2^d))."""
        qt, kt = self.tables()
        return sp.walsh(qt), sp.walsh(kt)

    def walsh_matrices(self) -> torch.Tensor:
        """A (M, 2^d, 2^d) = sum_h w_h F_h G_h^T per member: a linear model is y_hat = chi(x_q)^T A c_hat."""
        Fq, Gk = self.head_walsh()
        outer = self.head_w[:, None, None] * Fq[:, :, None] * Gk[:, None, :]
        n = Fq.shape[-1]
        return outer.new_zeros(self.n_members, n, n).index_add(0, self.member, outer)

    def head_matrices(self, j: int) -> torch.Tensor:
        """(m, 2^d, 2^d): each of member j's heads' share w_h F_h G_h^T of its matrix A (linear attention)."""
        Fq, Gk = self.head_walsh()
        h = self.member_heads(j)
        return self.head_w[h, None, None] * Fq[h, :, None] * Gk[h, None, :]

    def predictor(self, j: int | None = None, drop: int | None = None):
        """A `noise_sweep` predictor (codes, y) -> (P, n) on CPU tensors: every member (j None), or member j alone,
        or (with `drop`) member j with and without its head number `drop` (2, n)."""
        dev = self.x_table.device

        def predict(codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            out = self(codes.to(dev), y.to(dev))
            if j is None:
                return out.cpu()
            if drop is None:
                return out[j:j + 1].cpu()
            h = int(self.member_heads(j)[drop])
            w = self.w.data[self.member[h], self.slot[h]].clone()
            self.w.data[self.member[h], self.slot[h]] = 0
            try:
                ablated = self(codes.to(dev), y.to(dev))[j]
            finally:
                self.w.data[self.member[h], self.slot[h]] = w
            return torch.stack([out[j], ablated]).cpu()

        return predict

    def member_model(self, j: int) -> "ParityFamily":
        """A copy of member j alone (a family of one model), e.g. to probe it cheaply."""
        m = self.heads[j % len(self.heads)]
        one = ParityFamily(self.d, (m,), 1, attention=self.attention, features=self.features, width=self.width,
                           k=self.k, dtype=self.x_table.dtype).to(self.x_table.device)
        with torch.no_grad():
            if self.features == "learned":
                one.W1[0], one.b1[0] = self.W1[j], self.b1[j]
            for name in ("U", "V", "w"):
                getattr(one, name)[0] = getattr(self, name)[j, :m]
        return one

    def label(self, j: int) -> str:
        return f"m = {self.heads[j % len(self.heads)]}, seed {j // len(self.heads)}"


def coverage(model: ParityFamily, subsets: Sequence[Sequence[int]], weights: Any, N: int) -> np.ndarray:
    """(M, K): each linear member's gain on each task subset over the clean-optimal one, A[t, t] / gamma_t
    (1: covered as the optimum does, 0: not covered). Head-mixing invariant, unlike what single heads read."""
    subsets = sp.check_subsets(subsets, model.d)
    idx = torch.tensor([sp.mask_of(s) for s in subsets])
    with torch.no_grad():
        A = model.walsh_matrices()
    return A[:, idx, idx].cpu().numpy() / sp.optimal_gains(weights, N)


def subset_reading(model: ParityFamily, subsets: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, K): how much of each head's key feature lies on each task subset's parity, as the share of the feature's
    variance (its Walsh coefficients squared, the constant left out), times the same share of its query feature:
    1 when both features are that one parity, near 0 when the head reads something else."""
    subsets = sp.check_subsets(subsets, model.d)
    with torch.no_grad():
        Fq, Gk = model.head_walsh()
    idx = torch.tensor([sp.mask_of(s) for s in subsets])

    def share(c: torch.Tensor) -> torch.Tensor:
        c2 = c[:, 1:] ** 2
        return (c[:, idx] ** 2) / c2.sum(-1, keepdim=True).clamp_min(1e-300)

    return (share(Fq) * share(Gk)).sqrt().cpu().numpy()


# ----------------------------------------------------------------------------- training

def train(model: ParityFamily, subsets: Sequence[Sequence[int]], weights: Any, N: int, steps: int, batch: int,
          lr: float = 0.01, seed: int = 0, warmup: int | None = None, log_every: int = 50,
          progress: bool = False) -> TrainResult:
    """Minimise every member's squared loss on fresh clean prompts (all members see the same prompts), with Adam,
    a linear warm-up and a cosine decay to 0."""
    subsets = sp.check_subsets(subsets, model.d)
    pi = torch.as_tensor(sp.check_weights(weights))
    steps, batch = check_int("steps", steps, 1), check_int("batch", batch, 1)
    N = check_int("N", N, 1)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr = {lr!r} is not allowed: expected a number > 0")
    warmup = max(1, steps // 20) if warmup is None else check_int("warmup", warmup, 0, steps)
    chi = sp.parity_table([sp.mask_of(s) for s in subsets], model.d, model.x_table.dtype)
    g = torch.Generator().manual_seed(int(seed))

    def member_losses(_: int) -> torch.Tensor:
        codes, y = sp.clean_batch(g, batch, N, chi, pi)
        codes, y = codes.to(model.x_table.device), y.to(model.x_table.device)
        return ((model(codes, y) - y[:, -1]) ** 2).mean(-1)

    log = train_loop(model.parameters(), member_losses, steps, warmup_steps_cosine(lr, steps, warmup),
                     log_every=log_every, progress=progress,
                     desc=f"train {model.attention} heads {model.heads} x {model.n_seeds} seeds")
    return TrainResult(model, log.steps, log.loss, log.seconds)


def fit_family(d: int, subsets: Sequence[Sequence[int]], weights: Any, N: int, heads: Sequence[int], n_seeds: int,
               steps: int, batch: int, attention: str = "softmax", features: str = "learned", width: int = 64,
               lr: float = 0.01, seed: int = 0, dtype: torch.dtype = torch.float64, device: str = "cpu",
               progress: bool = False) -> TrainResult:
    """Build a family (see `ParityFamily`) and train it on clean prompts (see `train`)."""
    k = len(sp.check_subsets(subsets, d)[0])
    model = ParityFamily(d, heads, n_seeds, attention=attention, features=features, width=width, k=k, seed=seed,
                         dtype=dtype).to(device)
    return train(model, subsets, weights, N, steps, batch, lr=lr, seed=seed + 1, progress=progress)
