"""The data and the model of `toys.linear_icl`: prompts x ~ N(0, Lambda), w ~ N(0, I) from a seeded sampler,
and one layer of linear self-attention per rank (see `theory` for the reduction to y_hat = x_q^T Gamma h)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from icl_geometry.toys.linear_icl.checks import INITS, Array, check_cov, check_int, check_noise, is_torch


@dataclass
class Prompts:
    """A batch of B prompts, kept in parts so the same prompts can be re-read at any noise level.

    X (B, N, d) clean context inputs, w (B, d) tasks, xq (B, d) queries, eps (B, N) and xi (B, N, d)
    standard-normal label and input noise (scaled only when a context is read).
    """

    X: torch.Tensor
    w: torch.Tensor
    xq: torch.Tensor
    eps: torch.Tensor
    xi: torch.Tensor

    @property
    def yq(self) -> torch.Tensor:
        """The clean target w^T x_q, (B,)."""
        return (self.xq * self.w).sum(-1)

    def context(self, label_noise: float = 0.0, input_noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """What the model sees: (inputs (B, N, d), labels (B, N)) with the given noise standard deviations."""
        sigma, tau = check_noise("label_noise", label_noise), check_noise("input_noise", input_noise)
        y = torch.einsum("bnd,bd->bn", self.X, self.w)
        y = y + sigma * self.eps if sigma else y
        X = self.X + tau * self.xi if tau else self.X
        return X, y

    def __len__(self) -> int:
        return len(self.X)


class PromptSampler:
    """Draws fresh prompts x ~ N(0, Lambda), w ~ N(0, I) from its own seeded generator, on any device."""

    def __init__(self, Lambda: Array, N: int, seed: int = 0, device: str = "cpu",
                 dtype: torch.dtype = torch.float64) -> None:
        check_cov(Lambda)
        self.N = check_int("N", N, 1)
        self.d = int(Lambda.shape[0])
        self.device, self.dtype = torch.device(device), dtype
        L = torch.as_tensor(np.asarray(Lambda.detach().cpu() if is_torch(Lambda) else Lambda), dtype=torch.float64)
        lam, V = torch.linalg.eigh((L + L.T) / 2)
        root = (V * lam.clamp_min(0).sqrt()) @ V.T  # symmetric square root: works for singular Lambda too
        self.root = root.to(self.device, dtype)
        self.Lambda = L.to(self.device, dtype)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    def _randn(self, *shape: int) -> torch.Tensor:
        # float32 draws cast to the working dtype: torch's float64 normal sampler is ~5x slower on a CPU
        z = torch.randn(*shape, generator=self.generator, device=self.device, dtype=torch.float32)
        return z.to(self.dtype)

    def clean_gram(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G (B, d+1, d+1), w (B, d), xq (B, d)) of `batch` fresh clean prompts, the fast path for training.

        Same distribution as `context_gram(*self(batch).context())`: S = root (Z^T Z / N) root from raw normals
        Z (B, N, d), then h = S w and mean y^2 = w^T S w, so no N x d product is formed.
        """
        B, N, d = check_int("batch", batch, 1), self.N, self.d
        Z = self._randn(B, N, d)
        S = self.root @ (Z.transpose(1, 2) @ Z / N) @ self.root
        w = self._randn(B, d)
        xq = self._randn(B, d) @ self.root
        h = (S @ w[..., None])[..., 0]
        G = torch.cat([torch.cat([S, h[..., None]], -1),
                       torch.cat([h, (h * w).sum(-1, keepdim=True)], -1)[:, None]], 1)
        return G, w, xq

    def __call__(self, batch: int, noise: bool = True) -> Prompts:
        """`batch` fresh prompts; `noise=False` skips drawing eps and xi (zeros; for clean training)."""
        B, N, d = check_int("batch", batch, 1), self.N, self.d
        X = self._randn(B, N, d) @ self.root
        xq = self._randn(B, d) @ self.root
        w = self._randn(B, d)
        if noise:
            eps, xi = self._randn(B, N), self._randn(B, N, d)
        else:
            eps = torch.zeros(B, N, device=self.device, dtype=self.dtype)
            xi = torch.zeros(1, 1, d, device=self.device, dtype=self.dtype).expand(B, N, d)
        return Prompts(X=X, w=w, xq=xq, eps=eps, xi=xi)


# ----------------------------------------------------------------------------- model

class LinearSelfAttention(nn.Module):
    """A family of one-layer single-head linear self-attention models, one per rank, trained side by side.

    Model m has W^KQ = W_K^T W_Q with W_K, W_Q in R^{r_m x (d+1)} (rows beyond r_m are masked to zero),
    and a full W^PV in R^{(d+1) x (d+1)}. Only W^PV's last row and W^KQ's first d columns reach the
    prediction; the rest is kept so that `forward_full` is the literal f(E).

    init 'zfb' (Zhang-Frei-Bartlett): W^PV = [[0, 0], [0, init_scale]] and the label column of W_K, W_Q zero,
    so u = b = 0 at the start (and stay 0 in expectation: their gradients are odd in w). init 'random':
    every entry N(0, init_scale^2 / (d+1)); from there a model can stall in a rank-1 trap where
    Gamma = b u^T is carried by the label channel (v ~ 0), see chapter 5.
    """

    def __init__(self, d: int, ranks: int | Sequence[int], init_scale: float = 0.1, init: str = "zfb",
                 seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.d = check_int("d", d, 1)
        ranks = (ranks,) if isinstance(ranks, (int, np.integer)) else tuple(ranks)
        if not ranks:
            raise ValueError("ranks: expected at least one rank")
        self.ranks = tuple(check_int("rank", r, 1, d) for r in ranks)
        if init not in INITS:
            raise ValueError(f"init = {init!r} is not allowed: expected one of {list(INITS)}")
        if not (isinstance(init_scale, (int, float)) and init_scale > 0):
            raise ValueError(f"init_scale = {init_scale!r} is not allowed: expected a number > 0")
        M, R, D1 = len(self.ranks), max(self.ranks), d + 1
        g = torch.Generator().manual_seed(int(seed))

        def gauss(*shape: int) -> nn.Parameter:
            return nn.Parameter((torch.randn(*shape, generator=g, dtype=dtype) * init_scale / math.sqrt(D1)).to(device))

        mask = (torch.arange(R)[None, :] < torch.tensor(self.ranks)[:, None]).to(dtype)[:, :, None]
        self.register_buffer("mask", mask.to(device))
        self.W_K, self.W_Q, self.W_PV = gauss(M, R, D1), gauss(M, R, D1), gauss(M, D1, D1)
        with torch.no_grad():
            self.W_K.mul_(self.mask)
            self.W_Q.mul_(self.mask)
            if init == "zfb":  # W^PV = [[0, 0], [0, v]], label column of W_K and W_Q zero: u = b = 0
                self.W_PV.zero_()
                self.W_PV[:, d, d] = init_scale
                self.W_K[:, :, d] = 0
                self.W_Q[:, :, d] = 0

    @property
    def W_KQ(self) -> torch.Tensor:
        """(M, d+1, d+1): W_K^T W_Q, rank <= r_m."""
        return (self.W_K * self.mask).transpose(1, 2) @ (self.W_Q * self.mask)

    def forward(self, X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """Predictions (M, B) = f(E)[d, N] for contexts X (B, N, d), labels y (B, N) and queries xq (B, d)."""
        return self.forward_gram(context_gram(X, y), xq)

    def forward_gram(self, G: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """Predictions (M, B) = w_pv^T G W^KQ e_q from the prompts' context Gram matrices G (B, d+1, d+1).

        G = (1/N) sum_i z_i z_i^T is all the model reads from a context; it is data (no gradient), computed
        once per batch for every rank, so a training step costs O(B N d^2) once plus O(M B d^2).
        """
        return (self.readout(G) * xq).sum(-1)

    def readout(self, G: torch.Tensor) -> torch.Tensor:
        """(M, B, d): the vector a with y_hat = a^T x_q, a = W^KQ[:, :d]^T G w_pv (the whole model is linear in x_q)."""
        t = (G @ self.W_PV[:, -1].T).permute(2, 0, 1)  # (M, B, d+1): G w_pv (G is symmetric)
        return t @ self.W_KQ[:, :, : self.d]

    def forward_full(self, X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
        """The literal f(E) = E + W^PV E M (E^T W^KQ E) / N, (M, B, d+1, N+1) (for checking the reduction)."""
        B, N, _ = X.shape
        E = torch.cat([torch.cat([X, y[..., None]], -1), torch.cat([xq, torch.zeros_like(xq[:, :1])], -1)[:, None]], 1)
        E = E.transpose(1, 2)  # (B, d+1, N+1)
        Mask = torch.ones(N + 1, dtype=E.dtype, device=E.device)
        Mask[-1] = 0
        attn = torch.einsum("bin,mij,bjk->mbnk", E, self.W_KQ, E) * Mask[:, None]  # E^T W^KQ E with query row masked
        return E[None] + torch.einsum("mij,bjn,mbnk->mbik", self.W_PV, E, attn) / N

    def gamma(self) -> torch.Tensor:
        """(M, d, d) effective Gamma = v A^T + b u^T, so that the odd-in-w part of y_hat is x_q^T Gamma h."""
        d, KQ, PV = self.d, self.W_KQ, self.W_PV
        A, b = KQ[:, :d, :d], KQ[:, d, :d]
        u, v = PV[:, d, :d], PV[:, d, d]
        return v[:, None, None] * A.transpose(1, 2) + b[:, :, None] * u[:, None, :]

    def even_weights(self) -> torch.Tensor:
        """(M,) norms |u| + |b|: the weights of the even-in-w terms that only add error (0 at the optimum)."""
        d = self.d
        return self.W_PV[:, d, :d].norm(dim=-1) + self.W_KQ[:, d, :d].norm(dim=-1)


def context_gram(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """G = (1/N) sum_i z_i z_i^T with z_i = (x_i, y_i): (B, d+1, d+1) = [[S, h], [h^T, mean y^2]]."""
    Z = torch.cat([X, y[..., None]], dim=-1)
    return Z.transpose(1, 2) @ Z / Z.shape[1]


def h_vector(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """h = (1/N) sum_i y_i x_i, (B, d)."""
    return torch.einsum("bn,bnd->bd", y, X) / X.shape[1]


def predict_gamma(Gamma: torch.Tensor, X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """y_hat = x_q^T Gamma h for Gamma (d, d) -> (B,) or (M, d, d) -> (M, B)."""
    Gamma = torch.as_tensor(Gamma, dtype=X.dtype, device=X.device)
    h = h_vector(X, y)
    if Gamma.ndim == 2:
        return torch.einsum("bi,ij,bj->b", xq, Gamma, h)
    return torch.einsum("bi,mij,bj->mb", xq, Gamma, h)
