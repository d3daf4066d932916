"""In-context sparse parity with multi-head attention (paper B's second setting): data and the closed form.

Monte Carlo lives in `sparse_parity_eval`, the trained transformers in `sparse_parity_model`.

Data. Inputs x in {-1, +1}^d, uniform. A task is one subset B_t from a list of K subsets of k coordinates,
drawn with probability pi_t (its *importance*); the label is the parity chi_B(x) = prod_{j in B} x_j. A prompt is
N context pairs (x_i, y_i) of one task and a query x_q. Test-time noise acts on the context only: `label_flip`
flips exactly round(label_flip N) context labels (positions at random), `input_flip` flips each context
coordinate with that probability (the label was made from the clean input); the query label is always clean.

Model class (ours). A prediction that is linear in the context labels, read through m heads of one feature each:
y_hat = sum_h w_h q_h(x_q) c_h, c_h = (1/N) sum_i k_h(x_i) y_i, with any functions q_h, k_h of one input (the first
layer's features). In the parity (Walsh) basis, q_h = sum_S F_h(S) chi_S and k_h = sum_S G_h(S) chi_S, so
y_hat = chi(x_q)^T A c_hat with A = sum_h w_h F_h G_h^T (rank <= m) and c_hat_S = (1/N) sum_i chi_S(x_i) y_i.

Closed form (derived in chapter 6; all steps ours). Distinct parities are orthogonal and independent inputs make
c_hat's moments exact. With a = 1 - 2 n_flip / N and b_S = (1 - 2 input_flip)^{|S|}:

    E[chi_S(x_q) y_q c_hat_S' | t] = a b_t [S = S' = B_t],
    E[c_hat c_hat^T | t] = I / N + b_t^2 (a^2 - 1/N) e_t e_t^T,

    L(A) = E (y_hat - y_q)^2
         = 1 - 2 a sum_t pi_t b_t A[t, t] + ||A||_F^2 / N + (a^2 - 1/N) sum_t pi_t b_t^2 ||A[:, t]||^2.

Clean (a = b = 1): L = 1 - 2 tr(A Pi) + tr(A H A^T) with H = I/N + (1 - 1/N) Pi diagonal, so by Eckart-Young the best
rank-m A keeps the m most important subsets with gains gamma_t = N pi_t / (1 + (N - 1) pi_t); subset t lowers the
loss by N pi_t^2 / (1 + (N - 1) pi_t), increasing in pi_t. With these clean gains, head t changes the noisy loss by

    D_t(a, b) = -2 a b gamma_t pi_t + gamma_t^2 [1/N + pi_t b^2 (a^2 - 1/N)],

which turns positive (the head hurts) once N pi b^2 a^2 - 2 a b (1 + (N - 1) pi) + 1 - pi b^2 > 0: for label flips
beyond rho_t = (1 - a_t) / 2, a_t = (1 - pi_t) / (1 + (N-1) pi_t + sqrt(1 + (N-2) pi_t + ((N-1)^2 + N) pi_t^2)),
which rises from 1/4 (pi -> 0) to 1/2 (pi = 1): the less important the subset, the less noise it takes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from icl_geometry.core.checks import check_int

NOISE_KINDS: tuple[str, ...] = ("label", "input")
MAX_D = 16  # tables over all 2^d inputs


# ----------------------------------------------------------------------------- validation helpers

def check_rate(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v <= 1:
        raise ValueError(f"{name} = {v!r} is not allowed: expected a flip rate in [0, 1]")
    return float(v)


def check_weights(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0 or not np.all(np.isfinite(w)) or np.any(w <= 0) or abs(w.sum() - 1) > 1e-9:
        raise ValueError(f"weights = {weights!r} is not allowed: expected positive task probabilities summing to 1")
    return w


def check_subsets(subsets: Sequence[Sequence[int]], d: int) -> tuple[tuple[int, ...], ...]:
    """Distinct, non-empty subsets of range(d), all of one size k; returned sorted within each subset."""
    try:
        out = tuple(tuple(sorted(int(j) for j in s)) for s in subsets)
    except TypeError:
        raise ValueError(f"subsets = {subsets!r} is not allowed: expected a list of coordinate lists") from None
    if (not out or any(not s or len(set(s)) != len(s) or s[0] < 0 or s[-1] >= d for s in out)
            or len(set(out)) != len(out) or len({len(s) for s in out}) != 1):
        raise ValueError(f"subsets = {subsets!r} is not allowed: expected distinct subsets of range({d}), "
                         f"all of the same size k >= 1")
    return out


def check_heads(heads: Sequence[int], n_subsets: int | None = None) -> tuple[int, ...]:
    """Chapter-level check: strictly increasing head counts >= 1 (each <= the number of subsets, if given)."""
    h = tuple(heads) if isinstance(heads, (list, tuple)) else (heads,)
    top = n_subsets if n_subsets is not None else math.inf
    if (not h or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in h)
            or any(not 1 <= v <= top for v in h) or any(b <= a for a, b in zip(h, h[1:]))):
        bound = f" and <= n_subsets = {n_subsets}" if n_subsets is not None else ""
        raise ValueError(f"Parameter 'heads' = {heads!r} is not allowed: expected strictly increasing integers "
                         f">= 1{bound}.")
    return tuple(int(v) for v in h)


def check_flip_grid(name: str, grid: Sequence[float]) -> np.ndarray:
    """Chapter-level check: at least 3 increasing flip rates in [0, 1] starting at 0."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or len(g) < 3 or g[0] != 0 or np.any(np.diff(g) <= 0) or g[-1] > 1:
        raise ValueError(f"Parameter {name!r} = {grid!r} is not allowed: expected at least 3 increasing flip "
                         f"rates in [0, 1] starting at 0.")
    return g


# ----------------------------------------------------------------------------- subsets, weights, tables

def make_subsets(d: int, k: int, n_subsets: int, seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """`n_subsets` distinct k-subsets of range(d), drawn at random (seeded); the list order is the importance order."""
    d, k = check_int("d", d, 1, MAX_D), check_int("k", k, 1, d)
    pool = list(itertools.combinations(range(d), k))
    n = check_int("n_subsets", n_subsets, 1, len(pool))
    pick = np.random.default_rng(seed).choice(len(pool), n, replace=False)
    return tuple(pool[i] for i in pick)


def make_weights(n_subsets: int, decay: float) -> np.ndarray:
    """Geometric importances pi_t ~ decay^t (t = 0 .. K-1), summing to 1; decay = 1 gives uniform tasks."""
    n = check_int("n_subsets", n_subsets, 1)
    if isinstance(decay, bool) or not isinstance(decay, (int, float, np.number)) or not 0 < decay <= 1:
        raise ValueError(f"decay = {decay!r} is not allowed: expected a number in (0, 1]")
    w = float(decay) ** np.arange(n, dtype=np.float64)
    return w / w.sum()


def mask_of(subset: Sequence[int]) -> int:
    """The subset as a bit mask (the index of its parity in the Walsh basis)."""
    return int(sum(1 << int(j) for j in subset))


def popcount(v: torch.Tensor) -> torch.Tensor:
    """Number of set bits of each entry of an integer tensor (entries < 2^16)."""
    v = v.to(torch.int64)
    out = torch.zeros_like(v)
    for j in range(MAX_D):
        out += (v >> j) & 1
    return out


def input_table(d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """All 2^d inputs as a (2^d, d) table of +-1: input code c has x_j = 1 - 2 * bit_j(c)."""
    d = check_int("d", d, 1, MAX_D)
    c = torch.arange(2 ** d)[:, None]
    return (1 - 2 * ((c >> torch.arange(d)) & 1)).to(dtype)


def encode(x: torch.Tensor) -> torch.Tensor:
    """Codes (int64) of +-1 inputs x (..., d); the inverse of `input_table`."""
    bits = (x < 0).to(torch.int64)
    return (bits << torch.arange(x.shape[-1])).sum(-1)


def parity_table(masks: Sequence[int] | torch.Tensor, d: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """chi_S(x) for each mask S and every input code: (len(masks), 2^d) of +-1."""
    m = torch.as_tensor(masks, dtype=torch.int64)[:, None]
    return (1 - 2 * (popcount(m & torch.arange(2 ** d)[None]) & 1)).to(dtype)


def walsh(f: torch.Tensor) -> torch.Tensor:
    """Walsh (parity-basis) coefficients along the last axis: f_hat(S) = 2^-d sum_c f(c) chi_S(c), so that
    f = sum_S f_hat(S) chi_S (a fast Walsh-Hadamard transform)."""
    n = f.shape[-1]
    d = n.bit_length() - 1
    if n != 1 << d:
        raise ValueError(f"walsh: the last axis must have length 2^d, got {n}")
    shape = f.shape
    g = f.reshape(-1, n)
    for j in range(d):  # butterfly on bit j
        g = g.reshape(-1, n >> (j + 1), 2, 1 << j)
        g = torch.stack([g[:, :, 0] + g[:, :, 1], g[:, :, 0] - g[:, :, 1]], 2)
    return g.reshape(shape) / n


# ----------------------------------------------------------------------------- prompts

class PromptSet(NamedTuple):
    """x (n, N+1, d) and y (n, N+1) in {-1, +1} (query last, its label clean), task (n,) subset indices."""

    x: torch.Tensor
    y: torch.Tensor
    task: torch.Tensor


@dataclass
class CleanPrompts:
    """Clean prompts kept with their noise draws, so the same prompts can be re-read at any flip rate.

    codes (n, N+1) input codes (query last), task (n,), label_rank (n, N) a random permutation of 0..N-1 per prompt
    (label i is flipped when label_rank < n_flip: nested in the rate), input_u (n, N, d) uniforms (coordinate j of
    context input i is flipped when input_u < input_flip).
    """

    codes: torch.Tensor
    task: torch.Tensor
    label_rank: torch.Tensor
    input_u: torch.Tensor
    chi: torch.Tensor  # (K, 2^d) parity of each task subset on every input

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def n_context(self) -> int:
        return self.codes.shape[1] - 1

    def read(self, label_flip: float = 0.0, input_flip: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """What the model sees: (codes (n, N+1), labels (n, N+1)), context noisy, query clean."""
        rho, q = check_rate("label_flip", label_flip), check_rate("input_flip", input_flip)
        y = self.chi[self.task[:, None], self.codes]  # clean labels, made from the clean inputs
        n_flip = flip_count(self.n_context, rho)
        if n_flip:
            y = y.clone()
            y[:, :-1] *= 1 - 2 * (self.label_rank < n_flip).to(y.dtype)
        codes = self.codes
        if q > 0:
            flips = ((self.input_u < q).to(torch.int64) << torch.arange(self.input_u.shape[-1])).sum(-1)
            codes = codes.clone()
            codes[:, :-1] ^= flips
        return codes, y


def flip_count(n_context: int, label_flip: float) -> int:
    """How many of the N context labels a flip rate flips: round(rate * N), halves rounded up."""
    return int(math.floor(check_rate("label_flip", label_flip) * n_context + 0.5))


def draw_prompts(n_prompts: int, n_context: int, d: int, subsets: Sequence[Sequence[int]], weights: Any,
                 seed: int = 0, dtype: torch.dtype = torch.float64) -> CleanPrompts:
    """`n_prompts` clean prompts and their noise draws from a seeded generator (see `CleanPrompts`)."""
    n, N = check_int("n_prompts", n_prompts, 1), check_int("n_context", n_context, 1)
    d = check_int("d", d, 1, MAX_D)
    subsets = check_subsets(subsets, d)
    pi = check_weights(weights)
    if len(pi) != len(subsets):
        raise ValueError(f"weights: expected {len(subsets)} task probabilities (one per subset), got {len(pi)}")
    g = torch.Generator().manual_seed(int(seed))
    task = torch.multinomial(torch.as_tensor(pi), n, replacement=True, generator=g)
    codes = torch.randint(0, 2 ** d, (n, N + 1), generator=g)
    label_rank = torch.rand(n, N, generator=g).argsort(-1).argsort(-1)
    input_u = torch.rand(n, N, d, generator=g)
    chi = parity_table([mask_of(s) for s in subsets], d, dtype)
    return CleanPrompts(codes, task, label_rank, input_u, chi)


def sample_prompts(n_prompts: int, n_context: int, d: int, subsets: Sequence[Sequence[int]], weights: Any,
                   label_flip: float = 0.0, input_flip: float = 0.0, seed: int = 0) -> PromptSet:
    """`n_prompts` prompts of `n_context` pairs and a query: x (n, N+1, d), y (n, N+1) in {-1, +1}, task (n,).

    Tasks follow `weights` over `subsets`; inputs are uniform; round(label_flip N) context labels and each context
    coordinate with probability `input_flip` are flipped; the query (last) is always clean.
    """
    p = draw_prompts(n_prompts, n_context, d, subsets, weights, seed=seed)
    codes, y = p.read(label_flip, input_flip)
    return PromptSet(input_table(d)[codes], y, p.task)


# ----------------------------------------------------------------------------- closed form

def optimal_gains(weights: Any, N: int) -> np.ndarray:
    """Clean-optimal gain of a head on each subset: gamma_t = N pi_t / (1 + (N - 1) pi_t)."""
    pi, N = check_weights(weights), check_int("N", N, 1)
    return N * pi / (1 + (N - 1) * pi)


def flip_factors(N: int, label_flip: Any = 0.0, input_flip: Any = 0.0, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): the label factor 1 - 2 n_flip / N and the input factor (1 - 2 input_flip)^k of a k-subset."""
    N = check_int("N", N, 1)
    rho = np.asarray(label_flip, dtype=np.float64)
    q = np.asarray(input_flip, dtype=np.float64)
    if np.any((rho < 0) | (rho > 1)) or np.any((q < 0) | (q > 1)):
        raise ValueError(f"label_flip = {label_flip!r}, input_flip = {input_flip!r}: expected flip rates in [0, 1]")
    a = 1 - 2 * np.floor(rho * N + 0.5) / N
    return a, (1 - 2 * q) ** check_int("k", k, 1)


def effects_at(weights: Any, N: int, a: Any, b: Any = 1.0, gains: Any = None) -> np.ndarray:
    """D_t at label factor a and input factor b given directly (continuous; see `flip_factors`): shape
    broadcast(a, b) + (K,). D_t = -2 a b gamma_t pi_t + gamma_t^2 [1/N + pi_t b^2 (a^2 - 1/N)]."""
    pi, N = check_weights(weights), check_int("N", N, 1)
    g = optimal_gains(pi, N) if gains is None else np.asarray(gains, dtype=np.float64)
    a, b = np.asarray(a, dtype=np.float64)[..., None], np.asarray(b, dtype=np.float64)[..., None]
    return -2 * a * b * g * pi + g ** 2 * (1 / N + pi * b ** 2 * (a ** 2 - 1 / N))


def head_effects(weights: Any, N: int, label_flip: Any = 0.0, input_flip: Any = 0.0, k: int = 1,
                 gains: Any = None) -> np.ndarray:
    """D_t: the change in expected loss from a head on subset t with gain gamma_t (default: clean-optimal),
    at each noise level; shape broadcast(label_flip, input_flip) + (K,)."""
    a, b = flip_factors(N, label_flip, input_flip, k)
    return effects_at(weights, N, a, b, gains)


def expected_loss(weights: Any, N: int, heads: int, label_flip: Any = 0.0, input_flip: Any = 0.0, k: int = 1,
                  gains: Any = None) -> np.ndarray:
    """Expected squared loss of the m-head model on the m most important subsets (gains: clean-optimal by default)."""
    pi = check_weights(weights)
    m = check_int("heads", heads, 0, len(pi))
    return 1 + head_effects(pi, N, label_flip, input_flip, k, gains)[..., :m].sum(-1)


def refit_gains(weights: Any, N: int, label_flip: float = 0.0, input_flip: float = 0.0, k: int = 1) -> np.ndarray:
    """Gains that minimise the loss *at* the given noise: a b pi_t / (1/N + pi_t b^2 (a^2 - 1/N)); with them every
    head lowers the loss by (a b pi_t)^2 / (1/N + pi_t b^2 (a^2 - 1/N)) >= 0."""
    pi = check_weights(weights)
    a, b = flip_factors(N, label_flip, input_flip, k)
    return a * b * pi / (1 / N + pi * b ** 2 * (a ** 2 - 1 / N))


def _small_root(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The smaller root of A z^2 + B z + C (A > 0, B < 0, C >= 0), written without cancellation."""
    return 2 * C / (-B + np.sqrt(B * B - 4 * A * C))


def label_threshold(weights: Any, N: int) -> np.ndarray:
    """Per subset: the label-flip fraction beyond which its clean-trained head raises the loss (continuous in the
    fraction; N of them are realisable). Between 1/4 (pi -> 0) and 1/2 (pi = 1)."""
    pi, N = check_weights(weights), check_int("N", N, 1)
    a = _small_root(N * pi, -2 * (1 + (N - 1) * pi), 1 - pi)
    return (1 - a) / 2


def input_threshold(weights: Any, N: int, k: int) -> np.ndarray:
    """Per subset: the input-flip probability beyond which its clean-trained head raises the loss (no label noise)."""
    pi, N, k = check_weights(weights), check_int("N", N, 1), check_int("k", k, 1)
    c = (N - 1) * pi
    b = _small_root(c, -2 * (1 + c), np.ones_like(c))
    return (1 - b ** (1 / k)) / 2


def crossover(weights: Any, N: int, m_small: int, m_large: int, kind: str = "label", k: int = 1) -> float:
    """The flip rate at which the optimal m_large-head model's loss rises to the m_small-head one's (clean gains).

    Both losses differ by sum_{m_small < t <= m_large} D_t, a quadratic in a (label) or b (input) that is negative
    on clean prompts and positive at a = 0 (b = 0): its smaller root, mapped back to a rate. For label flips the
    rate is continuous (between realisable fractions the loss is flat).
    """
    pi = check_weights(weights)
    m_small, m_large = check_int("m_small", m_small, 0), check_int("m_large", m_large, 1, len(pi))
    if not m_small < m_large:
        raise ValueError(f"m_small = {m_small} must be smaller than m_large = {m_large}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    g, p = optimal_gains(pi, N)[m_small:m_large], pi[m_small:m_large]
    if kind == "label":  # b = 1: D = g^2 pi a^2 - 2 g pi a + g^2 (1 - pi) / N
        a = _small_root((g ** 2 * p).sum(), -2 * (g * p).sum(), (g ** 2 * (1 - p)).sum() / N)
        return float((1 - a) / 2)
    # a = 1: D = g^2 pi (1 - 1/N) b^2 - 2 g pi b + g^2 / N
    b = _small_root((g ** 2 * p).sum() * (1 - 1 / N), -2 * (g * p).sum(), (g ** 2).sum() / N)
    return float((1 - b ** (1 / check_int("k", k, 1))) / 2)


def optimal_matrix(subsets: Sequence[Sequence[int]], weights: Any, N: int, heads: int, d: int) -> np.ndarray:
    """The optimal m-head A* in the Walsh basis: gamma_t on the diagonal at the top-m subsets' masks, 0 elsewhere."""
    subsets, pi = check_subsets(subsets, d), check_weights(weights)
    m = check_int("heads", heads, 0, len(pi))
    A = np.zeros((2 ** d, 2 ** d))
    g = optimal_gains(pi, N)
    for t in range(m):
        A[mask_of(subsets[t]), mask_of(subsets[t])] = g[t]
    return A


def loss_terms(A: Any, subsets: Sequence[Sequence[int]], weights: Any) -> tuple[Any, Any, Any]:
    """(s1, s2, s3) of any A (..., 2^d, 2^d) in the Walsh basis (rows: query parities, columns: context parities):
    s1 = sum_t pi_t A[t, t], s2 = ||A||_F^2, s3 = sum_t pi_t ||A[:, t]||^2, so that the expected loss is
    L = 1 - 2 a b s1 + s2 / N + (a^2 - 1/N) b^2 s3 (see the module docstring). numpy or torch (differentiable)."""
    torch_in = isinstance(A, torch.Tensor)
    At = A if torch_in else torch.as_tensor(np.asarray(A, dtype=np.float64))
    n = At.shape[-1]
    d = n.bit_length() - 1
    if At.dim() < 2 or At.shape[-2:] != (n, n) or n != 1 << d:
        raise ValueError(f"A: expected (..., 2^d, 2^d), got {tuple(At.shape)}")
    subsets, pi = check_subsets(subsets, d), check_weights(weights)
    if len(pi) != len(subsets):
        raise ValueError(f"weights: expected {len(subsets)} task probabilities (one per subset), got {len(pi)}")
    idx = torch.tensor([mask_of(s) for s in subsets])
    pit = torch.as_tensor(pi, dtype=At.dtype, device=At.device)
    terms = ((pit * At[..., idx, idx]).sum(-1), (At ** 2).sum((-1, -2)), (pit * (At[..., :, idx] ** 2).sum(-2)).sum(-1))
    return terms if torch_in else tuple(t.numpy() for t in terms)


def bilinear_loss(A: Any, subsets: Sequence[Sequence[int]], weights: Any, N: int, label_flip: float = 0.0,
                  input_flip: float = 0.0) -> Any:
    """Expected squared loss of y_hat = chi(x_q)^T A c_hat for any A (..., 2^d, 2^d) in the Walsh basis, at the
    given noise (label flips rounded to whole labels). numpy or torch (differentiable)."""
    s1, s2, s3 = loss_terms(A, subsets, weights)
    a, b = flip_factors(N, label_flip, input_flip, len(check_subsets(subsets, A.shape[-1].bit_length() - 1)[0]))
    a, b = float(a), float(b)
    return 1 - 2 * a * b * s1 + s2 / N + (a * a - 1 / N) * b * b * s3


def matrix_crossover(A_small: Any, A_large: Any, subsets: Sequence[Sequence[int]], weights: Any, N: int,
                     kind: str = "label") -> float:
    """The flip rate at which the model A_large's loss rises to A_small's (continuous in the rate: a = 1 - 2 rate,
    b = (1 - 2 rate)^k); nan if A_large is not better on clean prompts or never gets worse below rate 1/2.

    Along label flips (b = 1) a loss is 1 + (s2 - s3) / N - 2 s1 a + s3 a^2; along input flips (a = 1) it is
    1 + s2 / N - 2 s1 b + s3 (1 - 1/N) b^2: the difference of two models is a quadratic with a root in (0, 1)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind = {kind!r} is not allowed: expected one of {list(NOISE_KINDS)}")
    s = [np.asarray(x, dtype=np.float64) for x in loss_terms(A_small, subsets, weights)]
    t = [np.asarray(x, dtype=np.float64) for x in loss_terms(A_large, subsets, weights)]
    ds1, ds2, ds3 = (float(t[i] - s[i]) for i in range(3))
    if kind == "label":
        coef = (ds3, -2 * ds1, (ds2 - ds3) / N)
    else:
        coef = (ds3 * (1 - 1 / N), -2 * ds1, ds2 / N)
    at_one, at_zero = sum(coef), coef[2]
    if not (at_one < 0 < at_zero):
        return math.nan
    roots = np.roots(coef) if abs(coef[0]) > 1e-14 * max(abs(c) for c in coef) else np.array([-coef[2] / coef[1]])
    z = float(max(r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and 0 < r.real < 1))
    if kind == "label":
        return (1 - z) / 2
    d = A_small.shape[-1].bit_length() - 1
    return (1 - z ** (1 / len(check_subsets(subsets, d)[0]))) / 2

def clean_batch(generator: torch.Generator, n_prompts: int, n_context: int, chi: torch.Tensor,
                task_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training fast path: (codes (n, N+1), labels (n, N+1)) of fresh clean prompts, no noise draws.
    Same distribution as `draw_prompts(...).read()`."""
    task = torch.multinomial(task_probs, n_prompts, replacement=True, generator=generator)
    codes = torch.randint(0, chi.shape[1], (n_prompts, n_context + 1), generator=generator)
    return codes, chi[task[:, None], codes]
