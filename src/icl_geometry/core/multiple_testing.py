"""Bonferroni bounds for a family of two-sided z tests (the closed-form checks of chapters 5 and 6)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import norm

FAMILY_WISE = 0.01  # the checks allow a 1% family-wise false alarm (two-sided)


def bonferroni_z(n: int, family_wise: float = FAMILY_WISE) -> float:
    """The |z| a two-sided test must exceed for n tests to raise a false alarm with probability at most
    `family_wise` (Bonferroni)."""
    return float(norm.ppf(1 - family_wise / 2 / n))


def z_summary(z: Any) -> tuple[float, int, float]:
    """(max |z|, number of comparisons, its Bonferroni bound) of a set of z values."""
    z = np.abs(np.asarray(z, dtype=float))
    return float(z.max()), len(z), bonferroni_z(len(z))
