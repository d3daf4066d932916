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
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from icl_geometry.bookkit.paths import results_dir
from icl_geometry.core.verdicts import KINDS, ClaimSpec, Measured, check_declared, finite, judge


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
    kind: str | None = None  # one of KINDS
    null_margin: float | None = None  # smallest effect of interest, declared before measuring
    forced_by: str = ""  # why the outcome is forced by how the measure is built (then it is no evidence)
    exact: str = ""  # why the value has no sampling uncertainty (then it needs no interval)
    confounded_by: str = ""  # what the comparison cannot separate by design (then it is shown, not counted)
    role: str = ""  # primary | supporting (core.verdicts.ROLES)
    basis: str = ""  # derived | empirical (core.verdicts.BASES)
    against: str = ""  # what outcome would have counted against the claim
    section: str = ""  # the heading of the chapter section that measured it
    source: str = ""  # where the claim comes from ('A, Fig. 6', 'ours', ...); `paper` is "source: statement"
    statement: str = ""  # the claim in words

    @property
    def counts(self) -> bool:
        """Whether this claim enters the replication count: a paper claim whose outcome was not forced."""
        return self.kind == "paper" and self.role != "supporting" and not self.forced_by and not self.confounded_by


class ClaimBook:
    """The claims one chapter run records; saved to `results/<chapter>.json` after every record."""

    def __init__(self, cfg: Any, path: Path | None = None) -> None:
        self.chapter = str(cfg.chapter)
        self.meta = cfg.as_dict() if hasattr(cfg, "as_dict") else dict(cfg)
        self.path = Path(path) if path else results_dir(str(self.meta.get("profile", "ci"))) / f"{self.chapter}.json"
        self.claims: dict[str, Claim] = {}
        self.facts: dict[str, Any] = {}  # run facts saved at the top level of the JSON (e.g. n_base_items)
        self.not_judged: dict[str, str] = {}  # declared claims this run could not judge, and why

    def add_facts(self, **facts: Any) -> None:
        """Keep facts about the run (sizes, counts) in the results JSON, beside config and claims."""
        reserved = {"chapter", "config", "claims", "not_judged"} & set(facts)
        if reserved:
            raise ValueError(f"claims: {sorted(reserved)} are reserved keys of the results JSON")
        self.facts.update(facts)
        self.save()

    def record(self, claim_id: str, value: Any, *, kind: str | None = None, expected: float | None = None,
               tolerance: float | None = None, direction: str | None = None, threshold: float = 0.0,
               interval: tuple[float, float] | None = None, null_margin: float | None = None,
               paper: str = "", note: str = "", forced_by: str = "", exact: str = "", confounded_by: str = "",
               role: str = "", basis: str = "", against: str = "", section: str = "", source: str = "",
               statement: str = "") -> Claim:
        """Judge `value` (see `judge`) and save it; returns the recorded claim.

        kind: 'paper', 'ours' or 'check' (see KINDS). A paper or ours claim judged by a direction needs an
        `interval`, unless `exact` says why the value has no sampling uncertainty. `forced_by` says why
        the outcome could not have come out otherwise (such a claim is shown, never counted).
        """
        if not claim_id or not isinstance(claim_id, str):
            raise ValueError(f"claims: claim_id must be a non-empty string, got {claim_id!r}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"claims: kind = {kind!r} is not allowed: expected one of {list(KINDS)}")
        value = finite("value", value)
        if interval is not None:
            interval = (finite("interval[0]", interval[0]), finite("interval[1]", interval[1]))
        if kind in ("paper", "ours") and direction is not None and interval is None and not exact:
            raise ValueError(f"claims: {claim_id!r} is a data-dependent verdict: give its `interval` "
                             f"(seeds, restarts or bootstrap), or say in `exact` why it has none")
        verdict, expectation = judge(value, expected=expected, tolerance=tolerance, direction=direction,
                                     threshold=threshold, interval=interval, null_margin=null_margin)
        claim = Claim(claim_id, value, verdict, expectation, paper, note,
                      *(sorted(interval) if interval else (None, None)), kind, null_margin, forced_by, exact,
                      confounded_by, role, basis, against, section, source, statement)
        self.claims[claim_id] = claim
        self.save()
        return claim

    def record_all(self, claims: Mapping[str, ClaimSpec], values: Mapping[str, Measured]) -> list[Claim]:
        """Record every declared claim the run measured, in the order `claims` declares them.

        `values` is a chapter's `claim_values(rows, config)`; a claim it leaves out was not judged by this run
        (too few units for its `min_n`, or a part the run did not measure): it is listed under `not_judged` in
        the results JSON instead. A note in a spec may name config fields (`{n_items}`)."""
        check_declared(claims, values)
        fields = dict(self.meta)
        out = []
        for cid, spec in claims.items():
            if cid not in values:
                self.not_judged[cid] = (f"not judged at this size (needs {spec.min_n} units)" if spec.min_n
                                        else "not measured by this run")
                continue
            m = Measured(*values[cid]) if not isinstance(values[cid], Measured) else values[cid]
            out.append(self.record(
                cid, m.value, kind=spec.kind, expected=spec.expected,
                tolerance=spec.tolerance if m.tolerance is None else m.tolerance,
                direction=spec.direction, threshold=spec.threshold if m.threshold is None else m.threshold,
                interval=m.interval, null_margin=spec.null_margin, paper=spec.paper,
                note=m.note or spec.note.format_map(fields), forced_by=spec.forced_by.format_map(fields),
                exact=spec.exact, confounded_by=spec.confounded_by, role=spec.role, basis=spec.basis,
                against=spec.against, section=spec.section, source=spec.source, statement=spec.statement))
        self.save()
        return out

    def false_positive_note(self, level: float = 0.9) -> str:
        """How many paper claims this run judges, and how many would come out 'reproduced' by chance alone
        if every paper claim were false (each one-sided interval at `level` excludes the threshold on the
        claimed side with probability (1 - level) / 2 under the null)."""
        judged = [c for c in self.claims.values() if c.counts and c.low is not None]
        n = len(judged)
        chance = n * (1 - level) / 2
        at_least_one = 1 - (1 - (1 - level) / 2) ** n if n else 0.0
        return (f"{n} paper claims judged with {level:.0%} intervals: if all were false, about {chance:.1f} "
                f"would still come out 'reproduced' by chance (at least one with probability {at_least_one:.0%}).")

    def save(self) -> None:
        payload = {"chapter": self.chapter, "config": self.meta, **self.facts,
                   "claims": [asdict(c) for c in self.claims.values()]}
        if self.not_judged:
            payload["not_judged"] = self.not_judged
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

        rows = [{"claim": c.claim_id, "kind": c.kind or "", "value": shown(c.value), "expected": c.expectation,
                 "verdict": c.verdict + (" (forced)" if c.forced_by else "")} for c in self.claims.values()]
        columns = ["claim", "kind", "value", "expected", "verdict"]
        if not any(row["kind"] for row in rows):  # chapters not yet labelled print as before
            columns.remove("kind")
        return pd.DataFrame(rows, columns=["claim", "kind", "value", "expected", "verdict"])[columns]


    def found(self, digits: int = 2, frame: bool = False):
        """The "what we found" table every chapter ends with: claim, kind, the paper's statement, the measured
        value and its interval (`digits` significant figures), and the verdict.

        Returns a `tables.Table` (a wrapping HTML table in the book; the statement column widest, the verdict
        never clipped); its DataFrame is `.df` (column access such as `.verdict` reaches it too), or pass
        `frame=True` for the DataFrame itself."""
        import pandas as pd

        from icl_geometry.bookkit import tables

        rows = [{"claim": c.claim_id, "kind": c.kind or "", "paper": c.paper, "measured": f"{c.value:.{digits}g}",
                 "interval": "" if c.low is None else f"[{c.low:.{digits}g}, {c.high:.{digits}g}]",
                 "verdict": c.verdict + (f" (forced: {c.forced_by})" if c.forced_by else "")}
                for c in self.claims.values()]
        df = pd.DataFrame(rows, columns=["claim", "kind", "paper", "measured", "interval", "verdict"])
        if frame:
            return df
        return tables.show(df, widths=FOUND_WIDTHS)


# relative widths: at 1280 px "kind" and "measured" fit their header, an interval its two numbers, a verdict wraps
# at most once; the statement gets the rest (checked in headless Chromium)
FOUND_WIDTHS = {"claim": 3.1, "kind": 1.6, "paper": 5.3, "measured": 2.5, "interval": 2.8, "verdict": 2.6}


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
