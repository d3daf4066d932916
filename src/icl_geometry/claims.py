"""The replication registry: each chapter records what it measured next to what the paper claims.

`ClaimBook(cfg).record(...)` judges one measured value against an expectation (a target with a
tolerance, a direction, or an interval) and writes `<results>/<chapter>.json` atomically after every
record, so a chapter that dies half-way still leaves the claims it reached. Results land beside the run
(`runs/<profile>/results/` by default; the runner and the test suite point $ICL_GEOMETRY_RESULTS at their
own folders), so ci, full and nbval runs never overwrite each other. `report_table()` gathers every
results file into one table for the replication-report page.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS_ENV = "ICL_GEOMETRY_RESULTS"
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
DIRECTIONS = ("greater", "less")


def repo_root(start: Path | None = None) -> Path:
    """The nearest directory above `start` (default: cwd) that holds pyproject.toml, else cwd."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").exists():
            return d
    return here


def results_dir(profile: str = "ci") -> Path:
    """$ICL_GEOMETRY_RESULTS, else `runs/<profile>/results/` at the repository root."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser() if env else repo_root() / "runs" / profile / "results"


@dataclass(frozen=True)
class Claim:
    """One measured value judged against the paper's claim."""

    claim_id: str
    value: float
    verdict: str
    expectation: str
    paper: str = ""
    note: str = ""
    low: float | None = None  # uncertainty interval on `value`, if the chapter measured one
    high: float | None = None


def _number(name: str, v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"claims: {name} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"claims: {name} must be finite, got {v!r}")
    return f


def judge(value: float, *, expected: float | None = None, tolerance: float | None = None,
          direction: str | None = None, threshold: float = 0.0,
          interval: tuple[float, float] | None = None) -> tuple[str, str]:
    """Verdict and a readable expectation for one value.

    - `expected` + `tolerance`: reproduced when |value - expected| <= tolerance.
    - `direction` ('greater'/'less') + `threshold`: reproduced when value lies on that side.
      With an `interval` (e.g. a bootstrap CI), an interval that straddles the threshold is
      'inconclusive' rather than a verdict either way.
    """
    if (expected is None) == (direction is None):
        raise ValueError("claims: give exactly one of `expected` (with `tolerance`) or `direction`")
    if expected is not None:
        if tolerance is None or tolerance < 0:
            raise ValueError(f"claims: `tolerance` must be a number >= 0 with `expected`, got {tolerance!r}")
        ok = abs(value - expected) <= tolerance
        return ("reproduced" if ok else "not reproduced"), f"{expected:g} ± {tolerance:g}"
    if direction not in DIRECTIONS:
        raise ValueError(f"claims: `direction` = {direction!r} is not allowed: expected one of {list(DIRECTIONS)}")
    sign = ">" if direction == "greater" else "<"
    text = f"{sign} {threshold:g}"
    if interval is not None:
        lo, hi = sorted(interval)
        if lo <= threshold <= hi:
            return "inconclusive", text
    ok = value > threshold if direction == "greater" else value < threshold
    return ("reproduced" if ok else "not reproduced"), text


class ClaimBook:
    """The claims one chapter run records; saved to `results/<chapter>.json` after every record."""

    def __init__(self, cfg: Any, path: Path | None = None) -> None:
        self.chapter = str(cfg.chapter)
        self.meta = cfg.as_dict() if hasattr(cfg, "as_dict") else dict(cfg)
        self.path = Path(path) if path else results_dir(str(self.meta.get("profile", "ci"))) / f"{self.chapter}.json"
        self.claims: dict[str, Claim] = {}

    def record(self, claim_id: str, value: Any, *, expected: float | None = None,
               tolerance: float | None = None, direction: str | None = None, threshold: float = 0.0,
               interval: tuple[float, float] | None = None, paper: str = "", note: str = "") -> Claim:
        """Judge `value` (see `judge`) and save it; returns the recorded claim."""
        if not claim_id or not isinstance(claim_id, str):
            raise ValueError(f"claims: claim_id must be a non-empty string, got {claim_id!r}")
        value = _number("value", value)
        if interval is not None:
            interval = (_number("interval[0]", interval[0]), _number("interval[1]", interval[1]))
        verdict, expectation = judge(value, expected=expected, tolerance=tolerance, direction=direction,
                                     threshold=threshold, interval=interval)
        claim = Claim(claim_id, value, verdict, expectation, paper, note,
                      *(sorted(interval) if interval else (None, None)))
        self.claims[claim_id] = claim
        self.save()
        return claim

    def save(self) -> None:
        payload = {"chapter": self.chapter, "config": self.meta,
                   "claims": [asdict(c) for c in self.claims.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=str)
        os.replace(tmp, self.path)

    def table(self, digits: int = 3, sig: int | None = None, floor: float = 1e-6):
        """The recorded claims as a DataFrame with rounded values (what the summary cell prints).

        `sig` rounds to that many significant figures instead of `digits` decimals and prints them as
        text (`%g`), so a column mixing 1e-5 and 2e5 reads cleanly. With `sig`, values below `floor` in
        magnitude print as 0: round-off of that size differs between machines and must not fail nbval.
        """
        import pandas as pd

        def shown(value: float):
            if sig is None:
                return round(value, digits)
            return format(round_sig(value if abs(value) >= floor else 0.0, sig), "g")

        rows = [{"claim": c.claim_id, "value": shown(c.value), "expected": c.expectation, "verdict": c.verdict}
                for c in self.claims.values()]
        return pd.DataFrame(rows, columns=["claim", "value", "expected", "verdict"])


    def found(self, digits: int = 2):
        """The "what we found" table every chapter ends with: claim, the paper's statement, the measured
        value and its interval (`digits` significant figures), and the verdict."""
        import pandas as pd

        rows = [{"claim": c.claim_id, "paper": c.paper, "measured": f"{c.value:.{digits}g}",
                 "interval": "" if c.low is None else f"[{c.low:.{digits}g}, {c.high:.{digits}g}]",
                 "verdict": c.verdict} for c in self.claims.values()]
        return pd.DataFrame(rows, columns=["claim", "paper", "measured", "interval", "verdict"])


def report_table(directory: Path | None = None):
    """Every claim from every `results/*.json`, one row each, for the replication report."""
    import pandas as pd

    directory = Path(directory) if directory else results_dir()
    rows = []
    for f in sorted(directory.glob("*.json")):
        data = json.loads(f.read_text())
        cfg = data.get("config", {})
        for c in data.get("claims", []):
            rows.append({"chapter": data.get("chapter", f.stem), "profile": cfg.get("profile"),
                         "model": cfg.get("model"), **c})
    cols = ["chapter", "profile", "model", "claim_id", "value", "low", "high", "expectation", "verdict",
            "paper", "note"]
    return pd.DataFrame(rows, columns=cols)


def round_sig(value: float, sig: int = 2) -> float:
    """`value` rounded to `sig` significant figures (summary cells must print machine-stable numbers)."""
    return float(f"{value:.{sig}g}")
