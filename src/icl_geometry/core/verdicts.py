"""What a claim is and how a measured value is judged against it: pure, so a chapter's experiment module can
declare its `CLAIMS` without importing the book machinery.

- `ClaimSpec`: one declared claim (statement, source, kind, how it is judged, what would count against it).
- `Measured`: what `claim_values(rows, config)` returns per claim id: the value, its interval, a note.
- `judge`: the verdict of one value; `judge_claim` applies a spec to a measurement.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "no effect")
DIRECTIONS = ("greater", "less", "none")  # "none": the claim is that there is no effect (within null_margin)
# paper: a statement the paper makes; ours: the book's own derivation, extension or control;
# check: an identity or self-consistency check that cannot fail with correct code (never a replication).
KINDS = ("paper", "ours", "check")
ROLES = ("primary", "supporting")  # primary: the one claim counted for a paper statement; supporting: shown
BASES = ("derived", "empirical")  # derived: a theorem of the paper re-derived; empirical: measured
CLAIM_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def judge(value: float, *, expected: float | None = None, tolerance: float | None = None,
          direction: str | None = None, threshold: float = 0.0,
          interval: tuple[float, float] | None = None, null_margin: float | None = None) -> tuple[str, str]:
    """Verdict and a readable expectation for one value.

    - `expected` + `tolerance`: reproduced when |value - expected| <= tolerance.
    - `direction` ('greater'/'less') + `threshold`: reproduced when value lies on that side.
      With an `interval` (e.g. a bootstrap CI), an interval that straddles the threshold is
      'inconclusive' rather than a verdict either way, unless a `null_margin` d was declared and the
      interval lies inside [threshold - d, threshold + d]: then the verdict is 'no effect'.
    - `direction='none'` (the claim is that there is no effect) + `null_margin` + `interval`: reproduced
      when the interval lies inside the margin, not reproduced when it excludes the threshold,
      inconclusive otherwise.
    """
    if (expected is None) == (direction is None):
        raise ValueError("claims: give exactly one of `expected` (with `tolerance`) or `direction`")
    if null_margin is not None and (direction is None or not null_margin > 0):
        raise ValueError(f"claims: `null_margin` must be a number > 0 and goes with `direction`, got {null_margin!r}")
    if expected is not None:
        if tolerance is None or tolerance < 0:
            raise ValueError(f"claims: `tolerance` must be a number >= 0 with `expected`, got {tolerance!r}")
        ok = abs(value - expected) <= tolerance
        return ("reproduced" if ok else "not reproduced"), f"{expected:g} ± {tolerance:g}"
    if direction not in DIRECTIONS:
        raise ValueError(f"claims: `direction` = {direction!r} is not allowed: expected one of {list(DIRECTIONS)}")
    lo, hi = sorted(interval) if interval is not None else (value, value)
    inside = null_margin is not None and threshold - null_margin <= lo and hi <= threshold + null_margin
    if direction == "none":
        if null_margin is None or interval is None:
            raise ValueError("claims: direction='none' (no effect) needs a `null_margin` and an `interval`")
        text = f"within {threshold:g} ± {null_margin:g}"
        if inside:
            return "reproduced", text
        return ("inconclusive" if lo <= threshold <= hi else "not reproduced"), text
    sign = ">" if direction == "greater" else "<"
    text = f"{sign} {threshold:g}" + (f" (no effect: within ± {null_margin:g})" if null_margin is not None else "")
    if inside:
        return "no effect", text
    if interval is not None and lo <= threshold <= hi:
        return "inconclusive", text
    ok = value > threshold if direction == "greater" else value < threshold
    return ("reproduced" if ok else "not reproduced"), text


@dataclass(frozen=True)
class ClaimSpec:
    """One declared claim of a chapter (DESIGN.md, "Claims"), written before the run that judges it.

    statement: the claim in words. source: where it comes from ('A, Fig. 6', 'B, section 4', 'ours', or another
    paper by name). kind: 'paper', 'ours' or 'check'. Judged by `direction` (+ `threshold`, optional
    `null_margin`) or by `expected` + `tolerance`. `forced_by`: why the outcome could not have come out otherwise
    (then it is shown, never counted); `confounded_by`: what the comparison cannot separate by design; `exact`:
    why the value has no sampling uncertainty; `against`: what outcome would have counted against the claim.
    `role` ('primary': the one claim counted for a paper statement; 'supporting': shown), `basis` ('derived':
    a theorem of the paper re-derived; 'empirical': measured), `min_n` (below it the claim is not judged),
    `section` (the heading of the chapter section that measures it).
    `note` and `forced_by` may hold `{name}` fields filled from the run's config (a note a measurement gives
    takes precedence).
    """

    statement: str
    source: str = "ours"
    kind: str = "ours"
    direction: str | None = None
    threshold: float = 0.0
    expected: float | None = None
    tolerance: float | None = None
    null_margin: float | None = None
    forced_by: str = ""
    confounded_by: str = ""
    exact: str = ""
    against: str = ""
    role: str = ""
    basis: str = ""
    min_n: int = 0
    note: str = ""
    section: str = ""  # the heading of the chapter section that measures it (the report links there)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"ClaimSpec: kind = {self.kind!r} is not allowed: expected one of {list(KINDS)}")
        if self.role and self.role not in ROLES:
            raise ValueError(f"ClaimSpec: role = {self.role!r} is not allowed: expected one of {list(ROLES)}")
        if self.basis and self.basis not in BASES:
            raise ValueError(f"ClaimSpec: basis = {self.basis!r} is not allowed: expected one of {list(BASES)}")
        if (self.expected is None) == (self.direction is None):
            raise ValueError(f"ClaimSpec {self.statement!r}: give exactly one of `expected` or `direction`")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(f"ClaimSpec: direction = {self.direction!r} is not allowed: expected one of "
                             f"{list(DIRECTIONS)}")

    @property
    def paper(self) -> str:
        """The statement with its source, as the results JSON and the report show it."""
        return f"{self.source}: {self.statement}" if self.source else self.statement


class Measured(NamedTuple):
    """One claim's measurement from a run's rows: the value, its interval (None where the value is exact or the
    claim is a check), a note on how it was measured, and a threshold or tolerance where the spec's follows
    from the run's size (e.g. a Bonferroni bound over the run's comparisons)."""

    value: float
    interval: tuple[float, float] | None = None
    note: str = ""
    threshold: float | None = None
    tolerance: float | None = None


def judge_claim(spec: ClaimSpec, measured: Measured) -> tuple[str, str]:
    """The verdict of one measured claim under its declared spec (see `judge`)."""
    threshold = spec.threshold if measured.threshold is None else measured.threshold
    tolerance = spec.tolerance if measured.tolerance is None else measured.tolerance
    return judge(float(measured.value), expected=spec.expected, tolerance=tolerance,
                 direction=spec.direction, threshold=threshold, interval=measured.interval,
                 null_margin=spec.null_margin)


def not_snake_case(claims: Mapping[str, Any]) -> list[str]:
    """The ids that are not stable snake_case names (lower-case letters, digits and _, no values inside)."""
    return [cid for cid in claims if not CLAIM_ID.match(cid)]


def check_declared(claims: Mapping[str, ClaimSpec], values: Mapping[str, Any]) -> None:
    """Every measured id is declared: a chapter cannot record a claim its `CLAIMS` does not state."""
    undeclared = sorted(set(values) - set(claims))
    if undeclared:
        raise ValueError(f"claims measured but not declared in CLAIMS: {undeclared}")


def finite(name: str, v: Any) -> float:
    """`v` as a finite float, or a ValueError naming `name`."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"claims: {name} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"claims: {name} must be finite, got {v!r}")
    return f
