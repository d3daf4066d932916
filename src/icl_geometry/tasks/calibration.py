"""Scoring label words beyond argmax (chapter 7, second pass): contextual calibration, a rank measure, and the
declared rule that leaves out a (model, family) with nothing to measure.

- Contextual calibration (Zhao et al. 2021, "Calibrate before use", arXiv 2102.09690): a few-shot prompt
  biases a model towards some label words (frequent, recent, first in the demonstrations). The bias is read
  from content-free inputs ('N/A', '', '[MASK]') put in the query slot of the *same* prompt (the same
  demonstrations): their label distributions, renormalised over the label words and averaged, give p_cf; each
  prompt's label probabilities p are then mapped by W = diag(p_cf)^-1 (b = 0) and renormalised,
  q = normalise(p / p_cf). The calibrated prediction is argmax q.
- AUC of the label margin: how well log q_1 - log q_0 ranks the class-1 queries above the class-0 ones (the
  Mann-Whitney statistic, ties counted one half). A model that always says one label can still rank its
  queries; argmax accuracy alone calls that chance. With one p_cf for every prompt the calibration shifts every
  margin by one constant and leaves the AUC unchanged; with a p_cf per prompt (each query its own
  demonstrations) it can change it.
- Exclusion: a (model, family) whose clean calibrated accuracy is within a declared band of chance or of the
  ceiling has no room for noise to act on (or nothing learnt to lose): it is left out, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from icl_geometry.tasks.classification import Example
from icl_geometry.tasks.prompts import DemoPrompt, format_classification_prompt

CONTENT_FREE = ("N/A", "", "[MASK]")


# --------------------------------------------------------------------------------------------- calibration
def label_probs(logprobs: Any) -> np.ndarray:
    """Label-word log-probabilities (..., n_labels) -> probabilities renormalised over the label words."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim == 0 or lp.shape[-1] < 2:
        raise ValueError(f"label_probs: expected (..., n_labels >= 2) log-probabilities, got shape {lp.shape}")
    z = lp - lp.max(-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(-1, keepdims=True)


def content_free_distribution(cf_logprobs: Any) -> np.ndarray:
    """p_cf: the label distributions of the content-free inputs, each renormalised over the label words, averaged
    over the inputs (axis -2). (n_cf, L) -> (L,): one prompt's context; (n, n_cf, L) -> (n, L): one per prompt."""
    p = label_probs(cf_logprobs)
    if p.ndim < 2:
        raise ValueError(f"content_free_distribution: expected (..., n_cf, n_labels), got shape {p.shape}")
    return p.mean(-2)


def calibrate(logprobs: Any, p_cf: Any) -> np.ndarray:
    """Calibrated label probabilities q = normalise(diag(p_cf)^-1 p) (Zhao et al.'s W = diag(p_cf)^-1, b = 0).

    `logprobs` (n, L) label-word log-probabilities of the prompts; `p_cf` (L,) one content-free distribution for
    all, or (n, L) one per prompt (`content_free_distribution`). Returns (n, L) probabilities."""
    p = label_probs(logprobs)
    cf = np.asarray(p_cf, dtype=np.float64)
    if cf.shape[-1] != p.shape[-1] or cf.ndim > p.ndim or (cf.ndim == p.ndim and cf.shape != p.shape):
        raise ValueError(f"calibrate: p_cf has shape {cf.shape}; expected ({p.shape[-1]},) or {p.shape}")
    if np.any(~np.isfinite(cf)) or np.any(cf <= 0):
        raise ValueError("calibrate: p_cf must be positive and finite (a probability of every label word)")
    q = p / cf
    return q / q.sum(-1, keepdims=True)


def calibrated_logprobs(logprobs: Any, cf_logprobs: Any) -> np.ndarray:
    """log q from the prompts' label log-probabilities (n, L) and their content-free ones ((n, n_cf, L) per
    prompt, or (n_cf, L) shared): `calibrate(logprobs, content_free_distribution(cf_logprobs))` in logs.
    Exactly log p - log p_cf renormalised, so a margin moves by log(p_cf,0 / p_cf,1)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    lcf = np.log(content_free_distribution(cf_logprobs))
    z = lp - lcf
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def label_margin(logprobs: Any, true: Sequence[int]) -> np.ndarray:
    """Per prompt, log-probability of the true label minus the best other label (two labels: minus the other)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    t = np.asarray(true, dtype=int)
    if lp.ndim != 2 or len(t) != len(lp):
        raise ValueError(f"label_margin: expected (n, L) log-probabilities and n labels, got {lp.shape}, {t.shape}")
    rows = np.arange(len(t))
    other = lp.copy()
    other[rows, t] = -np.inf
    return lp[rows, t] - other.max(1)


def class_score(logprobs: Any, positive: int = 1) -> np.ndarray:
    """Per prompt, log p(label `positive`) minus the best other label: the score the AUC ranks (two labels:
    log p_1 - log p_0)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    return label_margin(lp, np.full(len(lp), positive))


# --------------------------------------------------------------------------------------------- AUC
def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve of `scores` for the binary `labels` (1 = positive): P(score of a positive >
    score of a negative) + P(tie) / 2, from midranks (the Mann-Whitney U / (n_1 n_0)). NaN when a class is
    absent; NaN scores are not allowed. Equals sklearn.metrics.roc_auc_score (tests/test_calibration.py)."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"auc: scores and labels must be 1-d of one length, got {s.shape} and {y.shape}")
    if np.any(np.isnan(s)):
        raise ValueError("auc: NaN scores")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"auc: labels must be 0 or 1, got {sorted(set(y.tolist()))[:5]}")
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(s)  # midranks: ties share their average rank
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def margin_auc(logprobs: Any, true: Sequence[int]) -> float:
    """AUC of the label margin log p_1 - log p_0 (`class_score`) against the true labels (two labels)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[1] != 2:
        raise ValueError(f"margin_auc: expected (n, 2) label log-probabilities, got {lp.shape}")
    return auc(class_score(lp), np.asarray(true, dtype=int))


@dataclass(frozen=True)
class Scores:
    """One set of prompts scored three ways: argmax of the raw label probabilities, argmax after contextual
    calibration, and the AUC of the (raw and calibrated) margins."""

    accuracy: float
    calibrated_accuracy: float
    auc: float
    calibrated_auc: float
    share_predicting_1: float  # raw argmax: the fraction of prompts answered with label 1 (label-word bias)
    calibrated_share_predicting_1: float


def score(logprobs: Any, cf_logprobs: Any, true: Sequence[int]) -> Scores:
    """`Scores` of prompts with two labels from their label log-probabilities (n, 2), their content-free ones
    ((n, n_cf, 2) or (n_cf, 2)) and the true labels."""
    lp = np.asarray(logprobs, dtype=np.float64)
    t = np.asarray(true, dtype=int)
    cal = calibrated_logprobs(lp, cf_logprobs)
    raw_pred, cal_pred = lp.argmax(1), cal.argmax(1)
    return Scores(float((raw_pred == t).mean()), float((cal_pred == t).mean()), margin_auc(lp, t),
                  margin_auc(cal, t), float((raw_pred == 1).mean()), float((cal_pred == 1).mean()))


# --------------------------------------------------------------------------------------------- exclusion
@dataclass(frozen=True)
class ExclusionRule:
    """Declared before a run: a (model, family) is left out when its clean calibrated accuracy is at most
    chance + `chance_band` (nothing learnt for noise to take away) or at least 1 - `ceiling_band` (no errors to
    rank, a slope squeezed by the ceiling)."""

    chance_band: float = 0.10
    ceiling_band: float = 0.05
    n_labels: int = 2

    def __post_init__(self) -> None:
        chance = 1 / self.n_labels
        if self.n_labels < 2 or self.chance_band < 0 or self.ceiling_band < 0:
            raise ValueError(f"ExclusionRule: n_labels >= 2 and bands >= 0 expected, got {self}")
        if chance + self.chance_band >= 1 - self.ceiling_band:
            raise ValueError(f"ExclusionRule: the bands leave no accuracy in between ({chance} + {self.chance_band} "
                             f">= 1 - {self.ceiling_band})")

    @property
    def chance(self) -> float:
        return 1 / self.n_labels

    def reason(self, accuracy: float) -> str | None:
        """Why an accuracy is excluded ('at chance: ...', 'at ceiling: ...'), or None when it is kept."""
        if not math.isfinite(accuracy):
            return "no accuracy (no clean queries)"
        if accuracy <= self.chance + self.chance_band + 1e-12:
            return (f"at chance: clean calibrated accuracy {accuracy:.3f} is within {self.chance_band:g} of "
                    f"chance ({self.chance:g})")
        if accuracy >= 1 - self.ceiling_band - 1e-12:
            return f"at ceiling: clean calibrated accuracy {accuracy:.3f} is within {self.ceiling_band:g} of 1"
        return None


def exclusions(clean: Any, rule: ExclusionRule = ExclusionRule(), accuracy: str = "calibrated_accuracy"):
    """Apply `rule` to a table of clean results with columns model, family and `accuracy` (one row per (model,
    family); or one row per query with a 0/1 `accuracy` column, averaged here). Returns a DataFrame: model,
    family, n, accuracy, excluded (bool), reason ('' when kept), in the input's order of (model, family)."""
    import pandas as pd

    df = pd.DataFrame(clean)
    missing = {"model", "family", accuracy} - set(df.columns)
    if missing:
        raise ValueError(f"exclusions: the table lacks columns {sorted(missing)}")
    g = df.groupby(["model", "family"], sort=False)[accuracy]
    out = pd.DataFrame({"n": g.size(), "accuracy": g.mean().astype(float)}).reset_index()
    reasons = [rule.reason(a) for a in out.accuracy]
    out["excluded"] = [r is not None for r in reasons]
    out["reason"] = [r or "" for r in reasons]
    return out


# --------------------------------------------------------------------------------------------- prompts
def content_free_prompts(loaded: Any, family: str, demos: Sequence[Example],
                         content_free: Sequence[str] = CONTENT_FREE, chat: bool | None = None) -> list[DemoPrompt]:
    """The prompt of `demos` (`prompts.format_classification_prompt`) with each content-free input in the query
    slot: the same demonstrations, the same layout, only the query's text replaced."""
    if not content_free:
        raise ValueError("content_free_prompts: give at least one content-free input")
    return [format_classification_prompt(loaded, family, demos, Example(text, 0, 0), chat) for text in content_free]


def content_free_logprobs(loaded: Any, family: str, demo_sets: Sequence[Sequence[Example]],
                          content_free: Sequence[str] = CONTENT_FREE, batch_size: int = 16,
                          batch_tokens: int = 4096) -> np.ndarray:
    """(n, n_cf, 2) label-word log-probabilities after each demonstration set's content-free prompts (traced
    last-token logits, `evaluation.trace_all`; read as `scoring.label_logprobs` reads them)."""
    from icl_geometry.tasks.evaluation import trace_all
    from icl_geometry.tasks.scoring import label_logprobs

    prompts = [p for demos in demo_sets for p in content_free_prompts(loaded, family, demos, content_free)]
    traces, _ = trace_all(loaded, [p.text for p in prompts], batch_size, batch_tokens)
    lp = label_logprobs(loaded, prompts, [tr.logits for tr in traces])
    return lp.reshape(len(demo_sets), len(content_free), -1)
