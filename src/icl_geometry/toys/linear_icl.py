"""In-context linear regression with one layer of linear self-attention (paper B's first setting).

Data. A prompt holds N pairs (x_i, y_i) and a query x_q. Inputs x ~ N(0, Lambda) with
Lambda = V diag(lambda) V^T (a chosen spectrum, a Haar-random rotation V); the task w ~ N(0, I_d) is
fresh for every prompt; y_i = w^T x_i. At test time the context may carry label noise
(y_i + sigma eps_i, eps_i ~ N(0, 1)) and input noise (the model sees x_i + tau xi_i, xi_i ~ N(0, I_d),
while y_i was made from the clean x_i); the query is always clean and the target is w^T x_q.

Model. E = [[x_1 .. x_N, x_q], [y_1 .. y_N, 0]] in R^{(d+1) x (N+1)} and
f(E) = E + W^PV E M (E^T W^KQ E) / N, M = diag(1, .., 1, 0) (the query is not a key); the prediction is
f(E)[d, N]. Size is the key/query width r: W^KQ = W_K^T W_Q with W_K, W_Q in R^{r x (d+1)}, so
rank W^KQ <= r. Write the last row of W^PV as (u^T, v) and the first d columns of W^KQ as [[A], [b^T]].
With G = (1/N) sum_i z_i z_i^T, z_i = (x_i, y_i), and h = (1/N) sum_i y_i x_i:

    y_hat = (u, v)^T G W^KQ[:, :d] x_q = x_q^T Gamma h + [u^T S A x_q + v (mean y^2) b^T x_q],
    Gamma = v A^T + b u^T = W_Q[:, :d]^T (v W_K[:, :d] + W_K[:, d] u^T)   (so rank Gamma <= r),

with S = (1/N) sum_i x_i x_i^T. The bracket is even in w while the target is odd, so it only adds
error; at the optimum u = b = 0 and the model is y_hat = x_q^T Gamma h.

Closed form (derived in chapter 5). For a clean query the loss of any Gamma is

    L(Gamma) = E (x_q^T Gamma h - w^T x_q)^2 = tr(Gamma^T Lambda Gamma H) - 2 tr(Lambda Gamma Lambda) + tr Lambda,
    H = E[h h^T] = [(N+1) Lambda^2 + (T + sigma^2) Lambda + tau^2 (T + sigma^2) I] / N,  T = tr Lambda,

because E[h w^T] = Lambda whatever the noise. Derivation of H: h = S w + (1/N) sum_i [xi_i x_i^T w tau
+ eps_i sigma (x_i + tau xi_i)]; the three parts are uncorrelated; E[S^2] = ((N+1) Lambda^2 + T Lambda)/N
(Isserlis: E[x x^T x x^T] = 2 Lambda^2 + T Lambda); the input-noise part gives
tau^2 E[(w^T x)^2] I / N = tau^2 T I / N; the label-noise part gives sigma^2 (Lambda + tau^2 I) / N.
Minimising over rank(Gamma) <= r (Eckart-Young on Lambda^{1/2} Gamma H^{1/2}; the target's singular values
lambda_i (N / ((N+1) lambda_i + T))^{1/2} increase with lambda_i) keeps the top-r eigen-directions of
Lambda with gains gamma_i = N / ((N+1) lambda_i + T). Per kept direction i the clean loss falls by
N lambda_i^2 / ((N+1) lambda_i + T) and the noise adds gamma_i^2 lambda_i [sigma^2 lambda_i + tau^2 (T + sigma^2)] / N,
so direction r pays off only while sigma^2 < (N+1) lambda_r + T (label noise) and
tau^2 < lambda_r ((N+1) lambda_r + T) / T (input noise, no label noise). Since Var(y) = tr Lambda = T, the label
threshold is Var(y) + (N+1) lambda_r: additive noise must exceed the label variance before a larger model loses.

Flipped labels (y_i -> -y_i with probability p, c = 1 - 2p) are not zero-mean noise: E[h w^T] = c Lambda and
H_p = [(2 + (N-1) c^2) Lambda^2 + T Lambda] / N; direction r stops paying above a flip rate p_r < 1/2
(`flip_threshold`), and any two ranks cross at `flip_crossover`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

SPECTRA: tuple[str, ...] = ("power", "geometric", "flat")
NOISE_KINDS: tuple[str, ...] = ("label", "input")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
INITS: tuple[str, ...] = ("zfb", "random")
QUERIES: tuple[str, ...] = ("integrate", "sample")
Array = Any  # numpy array or torch tensor


# ----------------------------------------------------------------------------- validation helpers

def _check_int(name: str, v: Any, low: int, high: float = math.inf) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= high:
        hi = "inf" if high == math.inf else int(high)
        raise ValueError(f"{name} = {v!r} is not allowed: expected an integer in [{low}, {hi}]")
    return int(v)


def _check_noise(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} = {v!r} is not allowed: expected a standard deviation >= 0")
    return float(v)


def _check_cov(Lambda: Array) -> None:
    shape = tuple(Lambda.shape)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 1:
        raise ValueError(f"Lambda: expected a square d x d covariance matrix, got shape {shape}")
    L = np.asarray(Lambda.detach().cpu() if isinstance(Lambda, torch.Tensor) else Lambda, dtype=np.float64)
    scale = max(float(np.abs(L).max()), 1e-300)
    if not np.all(np.isfinite(L)) or np.abs(L - L.T).max() > 1e-8 * scale:
        raise ValueError("Lambda: expected a finite symmetric matrix")
    if np.linalg.eigvalsh(L).min() < -1e-8 * scale:
        raise ValueError("Lambda: expected a positive semi-definite matrix (it has a negative eigenvalue)")


def _is_torch(*xs: Any) -> bool:
    return any(isinstance(x, torch.Tensor) for x in xs)


# ----------------------------------------------------------------------------- data

def make_spectrum(kind: str, d: int, decay: float = 1.0) -> np.ndarray:
    """Eigenvalues lambda_1 >= .. >= lambda_d of Lambda, scaled so that tr Lambda = d.

    'power': lambda_i ~ i^-decay; 'geometric': lambda_i ~ exp(-decay (i - 1)); 'flat': all 1 (decay unused;
    every rank-r optimum is then one of many, since tied directions are interchangeable).
    """
    d = _check_int("d", d, 1)
    if kind not in SPECTRA:
        raise ValueError(f"spectrum = {kind!r} is not allowed: expected one of {list(SPECTRA)}")
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.number)) or not 0 <= decay < 1e3:
        raise ValueError(f"decay = {decay!r} is not allowed: expected a number in [0, 1000)")
    i = np.arange(1, d + 1, dtype=np.float64)
    lam = {"power": i ** -float(decay), "geometric": np.exp(-float(decay) * (i - 1)), "flat": np.ones(d)}[kind]
    return lam * d / lam.sum()


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A Haar-random d x d orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    d = _check_int("d", d, 1)
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def make_covariance(lam: Array, rotation: Array | None = None, seed: int = 0) -> np.ndarray:
    """Lambda = V diag(lam) V^T, with V = `rotation` or a Haar-random rotation drawn from `seed`."""
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim != 1 or np.any(lam < 0) or not np.all(np.isfinite(lam)):
        raise ValueError("lam: expected a 1-d array of finite eigenvalues >= 0")
    V = random_rotation(len(lam), seed) if rotation is None else np.asarray(rotation, dtype=np.float64)
    L = (V * lam) @ V.T
    return (L + L.T) / 2


def eigh_desc(Lambda: Array) -> tuple[Array, Array]:
    """Eigenvalues in decreasing order and the matching eigenvectors (columns), numpy or torch."""
    if _is_torch(Lambda):
        lam, V = torch.linalg.eigh(Lambda)
        return lam.flip(-1), V.flip(-1)
    lam, V = np.linalg.eigh(np.asarray(Lambda, dtype=np.float64))
    return lam[::-1].copy(), V[:, ::-1].copy()


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
        sigma, tau = _check_noise("label_noise", label_noise), _check_noise("input_noise", input_noise)
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
        _check_cov(Lambda)
        self.N = _check_int("N", N, 1)
        self.d = int(Lambda.shape[0])
        self.device, self.dtype = torch.device(device), dtype
        L = torch.as_tensor(np.asarray(Lambda.detach().cpu() if _is_torch(Lambda) else Lambda), dtype=torch.float64)
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
        B, N, d = _check_int("batch", batch, 1), self.N, self.d
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
        B, N, d = _check_int("batch", batch, 1), self.N, self.d
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
        self.d = _check_int("d", d, 1)
        ranks = (ranks,) if isinstance(ranks, (int, np.integer)) else tuple(ranks)
        if not ranks:
            raise ValueError("ranks: expected at least one rank")
        self.ranks = tuple(_check_int("rank", r, 1, d) for r in ranks)
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


# ----------------------------------------------------------------------------- closed form

def h_moment(Lambda: Array, N: int, label_noise: float = 0.0, input_noise: float = 0.0) -> Array:
    """E[h h^T] = [(N+1) Lambda^2 + (T + sigma^2) Lambda + tau^2 (T + sigma^2) I] / N (see the module docstring)."""
    N = _check_int("N", N, 1)
    s2, t2 = _check_noise("label_noise", label_noise) ** 2, _check_noise("input_noise", input_noise) ** 2
    T = Lambda.diagonal().sum()
    eye = torch.eye(Lambda.shape[0], dtype=Lambda.dtype, device=Lambda.device) if _is_torch(Lambda) \
        else np.eye(Lambda.shape[0])
    return ((N + 1) * Lambda @ Lambda + (T + s2) * Lambda + t2 * (T + s2) * eye) / N


def expected_loss(Gamma: Array, Lambda: Array, N: int, label_noise: float = 0.0, input_noise: float = 0.0) -> Array:
    """Population MSE of x_q^T Gamma h against w^T x_q for a clean query, noise given as standard deviations.

    L = tr(Gamma^T Lambda Gamma H) - 2 tr(Lambda Gamma Lambda) + tr Lambda with H = `h_moment`. Gamma may carry
    leading batch dimensions (..., d, d); numpy in, numpy out; torch in (either argument), torch out.
    """
    _check_cov(Lambda)
    if tuple(Gamma.shape[-2:]) != tuple(Lambda.shape):
        raise ValueError(f"Gamma: expected shape (..., {Lambda.shape[0]}, {Lambda.shape[0]}), got {tuple(Gamma.shape)}")
    if _is_torch(Gamma, Lambda):
        ref = Gamma if _is_torch(Gamma) else Lambda
        Gamma = torch.as_tensor(Gamma, dtype=ref.dtype, device=ref.device)
        Lambda = torch.as_tensor(Lambda, dtype=ref.dtype, device=ref.device)
        ein = torch.einsum
    else:
        Gamma, Lambda = np.asarray(Gamma, dtype=np.float64), np.asarray(Lambda, dtype=np.float64)
        ein = np.einsum
    H = h_moment(Lambda, N, label_noise, input_noise)
    quad = ein("...ji,jk,...kl,li->...", Gamma, Lambda, Gamma, H)  # tr(Gamma^T Lambda Gamma H)
    cross = ein("ij,...jk,ki->...", Lambda, Gamma, Lambda)  # tr(Lambda Gamma Lambda)
    return quad - 2 * cross + Lambda.diagonal().sum()


def optimal_gains(lam: Array, N: int) -> Array:
    """gamma_i = N / ((N+1) lambda_i + tr Lambda) for eigenvalues `lam`."""
    N = _check_int("N", N, 1)
    return N / ((N + 1) * lam + lam.sum())


def optimal_gamma(Lambda: Array, N: int, rank: int) -> Array:
    """The loss-minimising Gamma of rank <= `rank`: V_r diag(gamma_1..gamma_r) V_r^T (top-r eigen-directions).

    The optimum is trained on clean prompts; it does not depend on the noise met at test time.
    """
    _check_cov(Lambda)
    d = Lambda.shape[0]
    rank = _check_int("rank", rank, 0, d)
    lam, V = eigh_desc(Lambda)
    g = optimal_gains(lam, N)[:rank]
    Vr = V[:, :rank]
    return (Vr * g) @ Vr.T


def optimal_loss(lam: Array, N: int, rank: int, label_noise: Array = 0.0, input_noise: Array = 0.0) -> np.ndarray:
    """The loss of `optimal_gamma` from the eigenvalues alone, broadcast over arrays of noise levels.

    tr Lambda - sum_{i<=r} N lambda_i^2 / ((N+1) lambda_i + T)
              + sum_{i<=r} gamma_i^2 lambda_i [sigma^2 lambda_i + tau^2 (T + sigma^2)] / N.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    rank = _check_int("rank", rank, 0, len(lam))
    N = _check_int("N", N, 1)
    s2, t2 = np.asarray(label_noise, dtype=np.float64) ** 2, np.asarray(input_noise, dtype=np.float64) ** 2
    T, g, top = lam.sum(), optimal_gains(lam, N)[:rank], lam[:rank]
    clean = T - np.sum(N * top ** 2 / ((N + 1) * top + T))
    a, b = np.sum(g ** 2 * top ** 2) / N, np.sum(g ** 2 * top) / N  # noise coefficients
    return clean + s2 * a + t2 * (T + s2) * b


def direction_threshold(lam: Array, N: int, r: int, kind: str = "label") -> float:
    """Noise standard deviation above which adding direction r (1-based) to the rank-(r-1) optimum hurts.

    label: sigma^2 = (N+1) lambda_r + T;  input (no label noise): tau^2 = lambda_r ((N+1) lambda_r + T) / T.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    r = _check_int("r", r, 1, len(lam))
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    T, lr = lam.sum(), lam[r - 1]
    return float(math.sqrt((N + 1) * lr + T) if kind == "label" else math.sqrt(lr * ((N + 1) * lr + T) / T))


def crossover(lam: Array, N: int, r_small: int, r_large: int, kind: str = "label") -> float:
    """Noise standard deviation at which the optimal rank-r_small and rank-r_large models have equal loss.

    Both losses are linear in the noise variance (the other noise at 0), so the crossing is exact;
    inf when the larger model never loses (no extra direction with lambda > 0).
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    if not 0 <= r_small < r_large:
        raise ValueError(f"r_small = {r_small!r}, r_large = {r_large!r}: expected 0 <= r_small < r_large")
    sigma, tau = (1.0, 0.0) if kind == "label" else (0.0, 1.0)

    def clean(r: int) -> float:
        return float(optimal_loss(lam, N, r))

    def per_variance(r: int) -> float:  # extra loss per unit noise variance
        return float(optimal_loss(lam, N, r, sigma, tau)) - clean(r)

    gain = clean(r_small) - clean(r_large)  # clean advantage of the larger model
    slope = per_variance(r_large) - per_variance(r_small)
    return float(math.sqrt(gain / slope)) if slope > 0 else math.inf


def measured_crossover(noise: Array, loss_small: Array, loss_large: Array,
                       diff_se: Array | None = None) -> tuple[float, float]:
    """Where a measured loss-difference curve first changes sign, interpolated linearly in the noise variance.

    The expected difference loss_large - loss_small is linear in the variance, so the interpolation adds no
    bias. With `diff_se` (the standard error of the paired difference on the grid) the second value is the
    crossover's standard error by the delta method (SE of the difference at the crossing / its slope in the
    noise std); otherwise nan. (nan, nan) when the curves do not cross on the grid.
    """
    noise = np.asarray(noise, dtype=np.float64)
    diff = np.asarray(loss_large, dtype=np.float64) - np.asarray(loss_small, dtype=np.float64)
    if noise.ndim != 1 or diff.shape != noise.shape or np.any(np.diff(noise) <= 0):
        raise ValueError("noise: expected an increasing 1-d grid with one loss per point for each model")
    idx = np.nonzero((diff[:-1] < 0) & (diff[1:] >= 0))[0]
    if len(idx) == 0:
        return math.nan, math.nan
    k = idx[0]
    v0, v1 = noise[k] ** 2, noise[k + 1] ** 2
    frac = -diff[k] / (diff[k + 1] - diff[k])
    x = math.sqrt(v0 + (v1 - v0) * frac)
    if diff_se is None:
        return x, math.nan
    se = np.asarray(diff_se, dtype=np.float64)
    se_at = se[k] + (se[k + 1] - se[k]) * frac
    slope = (diff[k + 1] - diff[k]) / (v1 - v0) * 2 * x  # d diff / d std at the crossing
    return x, float(se_at / slope)


def crossover_margin(noise: Array, loss_zero: Array, loss_small: Array, loss_large: Array,
                     se_small_zero: Array | None = None, se_large_small: Array | None = None
                     ) -> tuple[float, float, float, float, float]:
    """How far below the "useless" point the larger model starts losing to the smaller one, measured.

    x_c: where loss_large first exceeds loss_small (the size crossover); x_0: where loss_small first exceeds
    loss_zero (the smaller model becomes worse than predicting 0). Returns (x_0 - x_c, its SE, x_c, x_0,
    se of x_c). A positive margin means there is a noise range where the small model is still useful and
    the large one is already worse: the regime in which "larger models are more easily distracted" means
    something. The SE of the margin is se(x_0) + se(x_c), an upper bound whatever the correlation of the
    two estimates (they come from the same prompts). nan where a curve does not cross on the grid.
    """
    xc, sc = measured_crossover(noise, loss_small, loss_large, se_large_small)
    x0, s0 = measured_crossover(noise, loss_zero, loss_small, se_small_zero)
    return x0 - xc, s0 + sc, xc, x0, sc


def label_noise_condition(lam: Array, N: int, r: int) -> float:
    """Excess noise variance needed for direction r (1-based) to hurt, beyond Var(y) = tr Lambda.

    The label-noise threshold is sigma_r^2 = (N+1) lambda_r + T and Var(y) = E (w^T x)^2 = tr Lambda = T, so
    the larger model is worse only when sigma^2 > Var(y) + (N+1) lambda_r: the noise variance must exceed
    the label variance itself, by an amount that grows with the context length N. Returns (N+1) lambda_r.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    r = _check_int("r", r, 1, len(lam))
    return float(direction_threshold(lam, N, r, "label") ** 2 - lam.sum())


# ----------------------------------------------------------------------------- flipped labels

def _check_rate(p: Any) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"flip_rate = {p!r} is not allowed: expected a probability in [0, 1]")
    return a


def flip_h_moment(Lambda: Array, N: int, flip_rate: float) -> np.ndarray:
    """E[h h^T] when each context label is flipped, y_i -> -y_i, independently with probability p.

    h = (1/N) sum_i s_i y_i x_i with s_i = -1 w.p. p: s_i^2 = 1 and E s_i = c = 1 - 2p, so the N diagonal
    terms give E[x x^T w w^T x x^T] = 2 Lambda^2 + T Lambda and the N(N-1) off-diagonal ones c^2 Lambda^2:
    H = [(2 + (N-1) c^2) Lambda^2 + T Lambda] / N. Flips are not zero-mean noise: E[h w^T] = c Lambda.
    """
    N = _check_int("N", N, 1)
    c = 1 - 2 * float(_check_rate(flip_rate))
    L = np.asarray(Lambda, dtype=np.float64)
    return ((2 + (N - 1) * c * c) * L @ L + np.trace(L) * L) / N


def flip_expected_loss(Gamma: Array, Lambda: Array, N: int, flip_rate: float) -> Array:
    """Population MSE of x_q^T Gamma h (clean query) with flip rate p: tr(G^T L G H_p) - 2c tr(L G L) + T."""
    _check_cov(Lambda)
    G, L = np.asarray(Gamma, dtype=np.float64), np.asarray(Lambda, dtype=np.float64)
    c = 1 - 2 * float(_check_rate(flip_rate))
    H = flip_h_moment(L, N, flip_rate)
    quad = np.einsum("...ji,jk,...kl,li->...", G, L, G, H)
    cross = np.einsum("ij,...jk,ki->...", L, G, L)
    return quad - 2 * c * cross + np.trace(L)


def flip_optimal_loss(lam: Array, N: int, rank: int, flip_rate: Array = 0.0) -> np.ndarray:
    """Loss of the (clean-trained) rank-r optimum at flip rate p, from the eigenvalues; broadcasts over p.

    T + sum_{i<=r} [gamma_i^2 lambda_i ((2 + (N-1) c^2) lambda_i^2 + T lambda_i) / N - 2 c gamma_i lambda_i^2].
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    rank = _check_int("rank", rank, 0, len(lam))
    N = _check_int("N", N, 1)
    c = 1 - 2 * _check_rate(flip_rate)
    T, g, top = lam.sum(), optimal_gains(lam, N)[:rank], lam[:rank]
    a2 = np.sum(g ** 2 * top ** 3) / N  # coefficient of (2 + (N-1) c^2)
    a0 = np.sum(g ** 2 * top ** 2) * T / N
    a1 = np.sum(g * top ** 2)
    return T + (2 + (N - 1) * c * c) * a2 + a0 - 2 * c * a1


def flip_threshold(lam: Array, N: int, r: int) -> float:
    """Flip rate above which adding direction r (1-based) to the rank-(r-1) optimum hurts.

    Direction r helps iff gamma_r [(2 + (N-1) c^2) lambda_r + T] / N < 2c, i.e.
    (N-1) lambda_r c^2 - 2 b c + e < 0 with b = (N+1) lambda_r + T, e = 2 lambda_r + T. The smaller root is
    c_r = e / (b + sqrt(b^2 - (N-1) lambda_r e)) (the larger one exceeds 1), so the threshold is
    p_r = (1 - c_r) / 2 < 1/2: every direction, and so every larger model, loses once p > p_r, and all of
    them lose for p >= 1/2, where the context points towards -w on average.
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    r = _check_int("r", r, 1, len(lam))
    N = _check_int("N", N, 1)
    T, lr = lam.sum(), lam[r - 1]
    b, e = (N + 1) * lr + T, 2 * lr + T
    c = e / (b + math.sqrt(b * b - (N - 1) * lr * e))
    return float((1 - c) / 2)


def flip_crossover(lam: Array, N: int, r_small: int, r_large: int) -> float:
    """Flip rate at which the clean-trained rank-r_small and rank-r_large optima have equal loss.

    In c = 1 - 2p the loss difference is a quadratic, (N-1) dA2 c^2 - 2 dA1 c + (2 dA2 + dA0), positive at
    c = 0 (no sign information: the larger model only adds variance) and negative at c = 1 (clean), so it has
    exactly one root in (0, 1); r_small = 0 gives the flip rate where the rank-r_large model becomes worse
    than predicting 0.
    """
    if not 0 <= r_small < r_large:
        raise ValueError(f"r_small = {r_small!r}, r_large = {r_large!r}: expected 0 <= r_small < r_large")
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    _check_int("r_large", r_large, 1, len(lam))
    N = _check_int("N", N, 1)
    T, g = lam.sum(), optimal_gains(lam, N)
    sl = slice(r_small, r_large)  # the directions the larger model adds
    a2 = np.sum(g[sl] ** 2 * lam[sl] ** 3) / N
    a0 = np.sum(g[sl] ** 2 * lam[sl] ** 2) * T / N
    a1 = np.sum(g[sl] * lam[sl] ** 2)
    qa, qb, qc = (N - 1) * a2, -2 * a1, 2 * a2 + a0
    if qa == 0:
        c = -qc / qb
    else:
        c = (-qb - math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)  # the smaller root; the larger one exceeds 1
    return float((1 - c) / 2)


def flip_signs(batch: int, N: int, flip_rate: float, u: torch.Tensor | None = None, seed: int = 0,
               device: str = "cpu") -> torch.Tensor:
    """(B, N) signs s_i = -1 where a uniform draw u < p (pass the same `u` for common random numbers)."""
    p = float(_check_rate(flip_rate))
    if u is None:
        g = torch.Generator(device=device).manual_seed(int(seed))
        u = torch.rand(batch, N, generator=g, device=device, dtype=torch.float64)
    return 1.0 - 2.0 * (u < p).to(u.dtype)


def flip_sweep(gammas: Array, sampler: PromptSampler, n_prompts: int, flip_rates: Sequence[float],
               seed: int = 0, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monte Carlo loss of x_q^T Gamma_m h for each Gamma_m at each flip rate, on the same prompts and draws.

    Returns (loss (M, F), se (M, F), adjacent-difference SE (M-1, F): SE of loss[m+1] - loss[m], paired).
    """
    n_prompts = _check_int("n_prompts", n_prompts, 2)
    rates = [float(_check_rate(p)) for p in flip_rates]
    G = torch.as_tensor(np.asarray(gammas), dtype=sampler.dtype, device=sampler.device)
    g = torch.Generator(device=sampler.device).manual_seed(int(seed))
    s1 = s2 = d1 = d2 = 0.0
    done = 0
    with torch.no_grad():
        while done < n_prompts:
            p = sampler(min(chunk, n_prompts - done), noise=False)
            X, y = p.context()
            u = torch.rand(*y.shape, generator=g, device=sampler.device, dtype=torch.float64)
            errs = torch.stack([(predict_gamma(G, X, y * flip_signs(0, 0, q, u=u).to(y.dtype), p.xq) - p.yq) ** 2
                                for q in rates], -1).double().cpu().numpy()  # (M, B, F)
            diff = errs[1:] - errs[:-1]
            s1, s2 = s1 + errs.sum(1), s2 + (errs ** 2).sum(1)
            d1, d2 = d1 + diff.sum(1), d2 + (diff ** 2).sum(1)
            done += len(p)
    n = n_prompts

    def sem(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        m = a / n
        return np.sqrt(np.maximum((b / n - m ** 2) * n / (n - 1), 0) / n)

    return s1 / n, sem(s1, s2), sem(d1, d2)


def eigen_projection(Gamma: Array, Lambda: Array) -> np.ndarray:
    """V^T Gamma V in the eigenbasis of Lambda (decreasing eigenvalues), (..., d, d) numpy."""
    G = Gamma.detach().cpu().numpy() if _is_torch(Gamma) else np.asarray(Gamma)
    L = Lambda.detach().cpu().numpy() if _is_torch(Lambda) else np.asarray(Lambda)
    _, V = eigh_desc(L)
    return np.einsum("ji,...jk,kl->...il", V, G, V)


def top_mass(Gamma: Array, Lambda: Array, r: int) -> np.ndarray:
    """Fraction of ||Gamma||_F^2 inside the top-r eigen-block of Lambda (1 for the optimum)."""
    P = eigen_projection(Gamma, Lambda)
    return (P[..., :r, :r] ** 2).sum((-1, -2)) / (P ** 2).sum((-1, -2))


# ----------------------------------------------------------------------------- baselines

def least_squares(X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """x_q^T w_LS with the least-squares fit of each prompt, (B,) (minimum-norm fit when N < d)."""
    N, d = X.shape[-2:]
    if N < d:
        w = (torch.linalg.pinv(X) @ y[..., None])[..., 0]
    else:  # normal equations: batched and fast; X^T X is well conditioned for Gaussian X with N >= d
        w = torch.linalg.solve(X.transpose(1, 2) @ X, (X.transpose(1, 2) @ y[..., None]))[..., 0]
    return (xq * w).sum(-1)


def least_squares_gram(S: torch.Tensor, h: torch.Tensor, xq: torch.Tensor, N: int | None = None) -> torch.Tensor:
    """Least squares from the context statistics: w = S^+ h (S = X^T X / N, h = X^T y / N).

    With N >= d (pass N) S is invertible and a batched solve is used; otherwise (N < d, or N unknown) the
    pseudo-inverse gives the minimum-norm fit, since X^T y lies in the row space of X.
    """
    if N is not None and N >= S.shape[-1]:
        w = torch.linalg.solve(S, h[..., None])[..., 0]
    else:
        w = (torch.linalg.pinv(S, hermitian=True) @ h[..., None])[..., 0]
    return (xq * w).sum(-1)


def ridge_gram(S: torch.Tensor, h: torch.Tensor, xq: torch.Tensor, penalty_over_n: Any,
               N: int | None = None) -> torch.Tensor:
    """Ridge from the context statistics: w = (S + penalty/N I)^-1 h; penalty 0 is least squares."""
    if float(penalty_over_n) == 0:
        return least_squares_gram(S, h, xq, N)
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    return (xq * torch.linalg.solve(S + penalty_over_n * eye, h[..., None])[..., 0]).sum(-1)


def bayes_ridge_penalty(label_noise: float, input_noise: float = 0.0, d: int = 0) -> float:
    """sigma^2: the ridge penalty whose fit is the posterior mean of w ~ N(0, I) under label noise sigma.

    With input noise tau the posterior is not Gaussian; we then add tau^2 d, the variance input noise adds to
    each label on average (E |w|^2 = d), a heuristic baseline rather than the Bayes rule.
    """
    return _check_noise("label_noise", label_noise) ** 2 + _check_noise("input_noise", input_noise) ** 2 * d


def ridge(X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor, penalty: float) -> torch.Tensor:
    """x_q^T (X^T X + penalty I)^-1 X^T y per prompt, (B,); penalty 0 is least squares."""
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not penalty >= 0:
        raise ValueError(f"penalty = {penalty!r} is not allowed: expected a number >= 0")
    if penalty == 0:
        return least_squares(X, y, xq)
    d = X.shape[-1]
    A = X.transpose(1, 2) @ X + penalty * torch.eye(d, dtype=X.dtype, device=X.device)
    w = torch.linalg.solve(A, (X.transpose(1, 2) @ y[..., None]))[..., 0]
    return (xq * w).sum(-1)


def optimal_gd_step(Lambda: Array, N: int) -> float:
    """The best step size eta for one GD step from w = 0 (Gamma = eta I) on clean prompts: tr(Lambda^2) / tr(Lambda H)."""
    L = Lambda.detach().cpu().numpy() if _is_torch(Lambda) else np.asarray(Lambda, dtype=np.float64)
    _check_cov(L)
    return float(np.trace(L @ L) / np.trace(L @ h_moment(L, N)))


def gd_step(X: torch.Tensor, y: torch.Tensor, xq: torch.Tensor, eta: float) -> torch.Tensor:
    """One gradient step on (1/2N) sum (y_i - w^T x_i)^2 from w = 0: y_hat = eta x_q^T h, (B,)."""
    return eta * (xq * h_vector(X, y)).sum(-1)


class NoisyGrams:
    """The context statistics of a batch of prompts at any (label, input) noise, from one product per batch.

    With inputs X + tau xi and labels X w + sigma eps, every entry of the context Gram matrix
    G = (1/N) sum_i z_i z_i^T is a polynomial in (sigma, tau) whose coefficients are inner products among
    the columns of [X, xi, Xw, eps]; those are computed once (one batched matmul), so a noise sweep costs
    O(B N d^2) once plus O(B d^2) per noise level instead of O(B N d^2) per level.
    """

    def __init__(self, prompts: Prompts) -> None:
        X, xi, eps = prompts.X, prompts.xi, prompts.eps
        B, N, d = X.shape
        U = torch.cat([X, xi, torch.einsum("bnd,bd->bn", X, prompts.w)[..., None], eps[..., None]], -1)
        P = U.transpose(1, 2) @ U / N  # (B, 2d+2, 2d+2)
        self.d, self.N = d, N
        x, k, y0, e = slice(0, d), slice(d, 2 * d), 2 * d, 2 * d + 1
        self.XX, self.Xk, self.kk = P[:, x, x], P[:, x, k], P[:, k, k]
        self.Xy, self.Xe, self.ky, self.ke = P[:, x, y0], P[:, x, e], P[:, k, y0], P[:, k, e]
        self.yy, self.ye, self.ee = P[:, y0, y0], P[:, y0, e], P[:, e, e]

    def gram(self, label_noise: float = 0.0, input_noise: float = 0.0) -> torch.Tensor:
        """G (B, d+1, d+1) of the contexts read with label-noise std `label_noise` and input-noise std `input_noise`."""
        s, t = _check_noise("label_noise", label_noise), _check_noise("input_noise", input_noise)
        S = self.XX + t * (self.Xk + self.Xk.transpose(1, 2)) + t * t * self.kk
        h = self.Xy + s * self.Xe + t * self.ky + s * t * self.ke
        yy = self.yy + 2 * s * self.ye + s * s * self.ee
        return torch.cat([torch.cat([S, h[..., None]], -1), torch.cat([h, yy[:, None]], -1)[:, None]], 1)


@dataclass
class Sweep:
    """Monte Carlo losses of P predictors over a (label, input) noise grid, on the same prompts."""

    label_noise: np.ndarray  # (L,)
    input_noise: np.ndarray  # (I,)
    loss: np.ndarray  # (P, L, I) mean squared error against w^T x_q
    se: np.ndarray  # (P, L, I) its standard error
    pair_se: dict[tuple[int, int], np.ndarray]  # (i, j) -> (L, I) standard error of loss[j] - loss[i] (paired)
    n_prompts: int


def noise_sweep(predict: Callable[..., torch.Tensor], sampler: PromptSampler, n_prompts: int,
                label_noise: Sequence[float] = (0.0,), input_noise: Sequence[float] = (0.0,),
                pairs: Sequence[tuple[int, int]] = (), chunk: int = 8192) -> Sweep:
    """Monte Carlo loss of P predictors on the same n_prompts prompts at every (label, input) noise pair.

    `predict(G, xq, label_noise, input_noise)` maps context Gram matrices G (B, d+1, d+1) (see `context_gram`;
    every predictor here reads a context only through G) and queries (B, d) to (P, B) predictions. The prompts
    are drawn once and re-read at each noise level (common random numbers), so differences between noise
    levels and between predictors are measured with far less noise than the losses themselves; `pairs` of
    predictor indices get the standard error of their paired loss difference.
    """
    n_prompts, chunk = _check_int("n_prompts", n_prompts, 2), _check_int("chunk", chunk, 1)
    sig = np.array([_check_noise("label_noise", v) for v in label_noise])
    tau = np.array([_check_noise("input_noise", v) for v in input_noise])
    pairs = [tuple(map(int, pr)) for pr in pairs]
    sums: dict[str, Any] = {}

    def add(key: str, value: torch.Tensor) -> None:
        v = value.double().cpu().numpy()
        sums[key] = v if key not in sums else sums[key] + v

    done = 0
    with torch.no_grad():
        while done < n_prompts:
            p = sampler(min(chunk, n_prompts - done))
            grams, yq = NoisyGrams(p), p.yq
            errs = torch.stack([torch.stack([
                (torch.as_tensor(predict(grams.gram(s_, t_), p.xq, s_, t_)).reshape(-1, len(p)) - yq) ** 2
                for t_ in tau], -1) for s_ in sig], -2)  # (P, B, L, I)
            add("e", errs.sum(1))
            add("e2", (errs ** 2).sum(1))
            for i, j in pairs:
                diff = errs[j] - errs[i]
                add(f"d{i},{j}", diff.sum(0))
                add(f"dd{i},{j}", (diff ** 2).sum(0))
            done += len(p)

    def sem(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        mean = s1 / n_prompts
        var = (s2 / n_prompts - mean ** 2) * n_prompts / (n_prompts - 1)
        return np.sqrt(np.maximum(var, 0) / n_prompts)

    pair_se = {(i, j): sem(sums[f"d{i},{j}"], sums[f"dd{i},{j}"]) for i, j in pairs}
    return Sweep(sig, tau, sums["e"] / n_prompts, sem(sums["e"], sums["e2"]), pair_se, n_prompts)


def gram_predictors(model: LinearSelfAttention | None = None, gammas: Array | None = None, Lambda: Array | None = None,
                    N: int | None = None, baselines: bool = True) -> Callable[..., torch.Tensor]:
    """A `noise_sweep` predictor stacking: the model's ranks, then x_q^T Gamma h for each Gamma in `gammas`,
    then (if `baselines`) least squares, ridge at `bayes_ridge_penalty` and one GD step at `optimal_gd_step`."""
    if baselines and (Lambda is None or N is None):
        raise ValueError("gram_predictors: baselines=True needs Lambda and N (for the GD step size and ridge)")
    eta = optimal_gd_step(Lambda, N) if baselines else 0.0

    def predict(G: torch.Tensor, xq: torch.Tensor, label_noise: float, input_noise: float) -> torch.Tensor:
        d = G.shape[-1] - 1
        S, h = G[:, :d, :d], G[:, :d, d]
        out = []
        if model is not None:
            out.append(model.forward_gram(G, xq))
        if gammas is not None:
            out.append(torch.einsum("bi,mij,bj->mb", xq, torch.as_tensor(gammas, dtype=G.dtype, device=G.device), h))
        if baselines:
            n = G.new_tensor(float(N))
            out.append(least_squares_gram(S, h, xq, N)[None])
            out.append(ridge_gram(S, h, xq, bayes_ridge_penalty(label_noise, input_noise, d) / n, N)[None])
            out.append(eta * (xq * h).sum(-1)[None])
        return torch.cat(out)

    return predict


def mc_loss(y_hat: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo mean squared error over the last axis and its standard error."""
    e = ((y_hat - target) ** 2).detach().double().cpu().numpy()
    n = e.shape[-1]
    return e.mean(-1), e.std(-1, ddof=1) / math.sqrt(n)


# ----------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    """A trained family: the model, the logged steps, training loss and distance to the closed form per rank."""

    model: LinearSelfAttention
    steps: np.ndarray  # (S,) logged steps
    loss: np.ndarray  # (S, M) training MSE on that step's fresh batch
    rel_dist: np.ndarray  # (S, M) ||Gamma_m - Gamma*_m||_F / ||Gamma*_m||_F
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_rel_dist(self) -> np.ndarray:
        return self.rel_dist[-1]


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train(model: LinearSelfAttention, sampler: PromptSampler, steps: int, batch: int, lr: float = 0.02,
          optimizer: str = "adam", warmup: int | None = None, query: str = "integrate", log_every: int = 50,
          progress: bool = False) -> TrainResult:
    """Minimise the clean-prompt MSE on fresh prompts (contexts and tasks) every step, all ranks on the same prompts.

    query 'sample': the literal objective, one random query per prompt. query 'integrate': the same expected
    loss with the query averaged out exactly, E_xq (a^T x_q - w^T x_q)^2 = (a - w)^T Lambda (a - w) (the model
    is linear in x_q); at equal cost its gradient is far less noisy (about 4x closer to the optimum in chapter 5).
    Adam (or SGD) with a linear warm-up and a cosine decay to 0.
    """
    if query not in QUERIES:
        raise ValueError(f"query = {query!r} is not allowed: expected one of {list(QUERIES)}")
    steps = _check_int("steps", steps, 1)
    batch = _check_int("batch", batch, 1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer = {optimizer!r} is not allowed: expected one of {list(OPTIMIZERS)}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr = {lr!r} is not allowed: expected a number > 0")
    if sampler.d != model.d:
        raise ValueError(f"sampler has d = {sampler.d} but the model has d = {model.d}")
    warmup = max(1, steps // 20) if warmup is None else _check_int("warmup", warmup, 0, steps)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
    target = torch.stack([torch.as_tensor(optimal_gamma(sampler.Lambda, sampler.N, r)) for r in model.ranks])
    tnorm = target.flatten(1).norm(dim=1)
    logged_steps, losses, dists = [], [], []
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc=f"train ranks {model.ranks}")
    t0 = time.perf_counter()
    for step in it:
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step, steps, lr, warmup)
        G, w, xq = sampler.clean_gram(batch)
        if query == "sample":
            per_model = ((model.forward_gram(G, xq) - (w * xq).sum(-1)) ** 2).mean(-1)
        else:
            e = model.readout(G) - w
            per_model = ((e @ sampler.Lambda) * e).sum(-1).mean(-1)
        opt.zero_grad(set_to_none=True)
        per_model.sum().backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            with torch.no_grad():
                dist = (model.gamma() - target).flatten(1).norm(dim=1) / tnorm
            logged_steps.append(step)
            losses.append(per_model.detach().cpu().numpy())
            dists.append(dist.cpu().numpy())
    seconds = time.perf_counter() - t0
    return TrainResult(model, np.array(logged_steps), np.array(losses), np.array(dists), seconds)


def fit_ranks(Lambda: Array, N: int, ranks: Sequence[int], steps: int, batch: int, lr: float = 0.02,
              seed: int = 0, device: str = "cpu", optimizer: str = "adam", init_scale: float = 0.1,
              init: str = "zfb", query: str = "integrate", progress: bool = False) -> TrainResult:
    """Train one model per rank on fresh clean prompts from N(0, Lambda); see `train`."""
    sampler = PromptSampler(Lambda, N, seed=seed + 1, device=device)
    model = LinearSelfAttention(int(Lambda.shape[0]), ranks, init_scale=init_scale, init=init, seed=seed,
                                device=device)
    return train(model, sampler, steps, batch, lr=lr, optimizer=optimizer, query=query, progress=progress)
