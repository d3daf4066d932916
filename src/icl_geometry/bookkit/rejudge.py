"""Bring a recorded run's results JSON in line with its chapter's current declarations, from its committed rows.

A recorded run (`book/recorded/NN_<profile>_<model>.json`) is never re-executed: it took hours, or a GPU. When a
chapter changes how a claim is declared or measured (a role, a confound, a minimum size, an interval method that
now covers), its claims are recomputed here from the run's own rows with the chapter's `claim_values`, judged
under the chapter's current declaration (`claims_for(config)` where the chapter has one, else `CLAIMS`) through
`ClaimBook.record_all`, never edited by hand:

- a claim the rows give: value, interval, verdict and note recomputed; the value must equal the recorded one
  (the rows must give the number the run recorded: otherwise nothing is written), the interval may change only
  when `new_intervals=True` (a method changed), and every change is listed;
- a claim the rows cannot give, in a run marked `partial_rows` (recorded before its chapter kept every part in
  its rows): its recorded value and interval kept, its declared fields refreshed and its verdict re-judged;
- a declared claim the run does not judge: listed under `not_judged` (too few units for its `min_n`, or not
  measured);
- the run facts a chapter computes from its rows (`facts(rows, config)`) recomputed.

Every other field (config, sizes, wall_s, compute_s, machine, commit) stays as recorded.

    .venv/bin/python -m icl_geometry.bookkit.rejudge [--check] [--new-intervals] book/recorded/04_*.json

tests/test_recorded.py then checks that every recomputable verdict follows from the rows.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from icl_geometry.bookkit.claims import ClaimBook
from icl_geometry.bookkit.specs import get_spec
from icl_geometry.core.verdicts import Measured, judge_claim
from icl_geometry.experiments import base

DECLARED = ("kind", "role", "basis", "forced_by", "confounded_by", "against", "section", "null_margin", "exact",
            "statement", "source")
TOL = 1e-9


class _Config:
    """A recorded run's config as `ClaimBook` reads one (its chapter, and its settings as a dict)."""

    def __init__(self, chapter: str, fields: dict[str, Any]) -> None:
        self.chapter, self._fields = chapter, dict(fields)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._fields)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TOL, abs_tol=1e-12)


def rejudge(path: Path, new_intervals: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The recorded results JSON at `path` with its claims re-recorded from its rows, and what changed."""
    data = json.loads(Path(path).read_text())
    mod = importlib.import_module(f"icl_geometry.experiments.{get_spec(data['chapter']).slug}")
    specs = mod.claims_for(data["config"]) if hasattr(mod, "claims_for") else mod.CLAIMS
    rows = base.load_rows(Path(path))
    values = mod.claim_values(rows, data["config"])
    with tempfile.TemporaryDirectory() as tmp:
        book = ClaimBook(_Config(data["chapter"], data["config"]), Path(tmp) / "run.json")
        book.record_all(specs, values)
    old = {c["claim_id"]: c for c in data["claims"]}
    claims, not_judged, changes = [], {}, []
    for cid, spec in specs.items():
        if cid in book.claims:
            c = asdict(book.claims[cid])
            if cid not in old:
                changes.append(f"{cid}: new claim ({c['kind']}, {c['verdict']})")
            else:
                if not _same(old[cid]["value"], c["value"]):
                    raise SystemExit(f"{Path(path).name}: {cid} recomputes as {c['value']!r}, recorded "
                                     f"{old[cid]['value']!r}: the rows do not give the recorded number; "
                                     "nothing written")
                if not all(_same(old[cid][k], c[k]) for k in ("low", "high")):
                    if not new_intervals:
                        raise SystemExit(f"{Path(path).name}: {cid}'s interval recomputes as [{c['low']}, {c['high']}],"
                                         f" recorded [{old[cid]['low']}, {old[cid]['high']}] (pass --new-intervals "
                                         "when a method changed); nothing written")
                    changes.append(f"{cid}: interval [{old[cid]['low']:.3g}, {old[cid]['high']:.3g}] -> "
                                   f"[{c['low']:.3g}, {c['high']:.3g}]")
                changes += [f"{cid}: {k} {old[cid].get(k)!r} -> {c[k]!r}" for k in ("verdict", "kind", "role")
                            if old[cid].get(k) != c[k]]
            claims.append(c)
        elif cid in old and data.get("partial_rows"):  # the rows cannot give it: keep its numbers
            c = dict(old[cid])
            interval = None if c.get("low") is None else (c["low"], c["high"])
            verdict, c["expectation"] = judge_claim(spec, Measured(c["value"], interval))
            if verdict != c["verdict"]:
                changes.append(f"{cid}: verdict {c['verdict']!r} -> {verdict!r} (recorded value kept)")
            c["verdict"] = verdict
            c.update({name: getattr(spec, name) for name in DECLARED}, paper=spec.paper)
            c["forced_by"] = spec.forced_by.format_map(data["config"])
            claims.append(c)
        else:
            not_judged[cid] = book.not_judged.get(cid, "not measured by this run")
            if cid in old:
                changes.append(f"{cid}: no longer judged ({not_judged[cid]})")
    out = {k: v for k, v in data.items() if k not in ("claims", "not_judged", "rejudged")}
    if hasattr(mod, "facts"):  # run facts the chapter computes from its rows (e.g. chapter 7's smaller_model_wins)
        for key, value in json.loads(json.dumps(mod.facts(rows, data["config"]), default=str)).items():
            if out.get(key) != value:
                changes.append(f"fact {key}: {'recomputed' if key in out else 'added'} from the rows")
            out[key] = value
    out["claims"] = claims
    if not_judged:
        out["not_judged"] = not_judged
    out["rejudged"] = ("claims recomputed from the committed rows under the chapter's current declarations by "
                       "icl_geometry.bookkit.rejudge")
    return out, changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="recorded results JSONs, e.g. book/recorded/04_*.json")
    parser.add_argument("--check", action="store_true", help="report what would change, write nothing")
    parser.add_argument("--new-intervals", action="store_true",
                        help="allow intervals to change (a chapter's interval method changed)")
    args = parser.parse_args(argv)
    for path in args.paths:
        data, changes = rejudge(path, args.new_intervals)
        roles = [c.get("role") or "-" for c in data["claims"]]
        print(f"{path.name}: {len(data['claims'])} claims ({roles.count('primary')} primary), "
              f"{len(data.get('not_judged', {}))} not judged; {len(changes)} changes")
        for line in changes:
            print(f"  {line}")
        if not args.check:
            path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
