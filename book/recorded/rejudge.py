"""Bring a recorded run's results JSON in line with its chapter's current declarations, from its committed rows.

A recorded run (book/recorded/NN_<profile>_<model>.json) is never re-executed: it took hours, or a GPU. When a
chapter changes how a claim is measured or declared (an interval method that now covers, a role, a confound, a
minimum size), its verdicts are recomputed here from the run's own rows with the chapter's `claim_values`, never
edited by hand:

- every claim the rows give: value, interval, verdict, expectation and note recomputed, declared fields
  (kind, role, basis, forced_by, confounded_by, against, section, the paper's statement) from `CLAIMS`;
- a claim the rows cannot give (a run recorded before its chapter kept every part in its rows): its recorded
  value and interval kept, its declared fields refreshed and its verdict re-judged under the current spec;
- a declared claim the run does not judge: listed under `not_judged` (too few units for its `min_n`, or not
  measured).

    .venv/bin/python book/recorded/rejudge.py book/recorded/02_full_smollm2-135m.json

tests/test_recorded.py then checks that every recomputable verdict follows from the rows.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from icl_geometry.bookkit.claims import ClaimBook
from icl_geometry.bookkit.specs import get_spec
from icl_geometry.core.verdicts import Measured, judge_claim
from icl_geometry.experiments import base

DECLARED = ("kind", "role", "basis", "forced_by", "confounded_by", "against", "section", "null_margin", "exact")


class _Config:
    """A recorded run's config as `ClaimBook` reads one (its chapter, and its fields as a dict)."""

    def __init__(self, chapter: str, fields: dict) -> None:
        self.chapter, self._fields = chapter, fields

    def as_dict(self) -> dict:
        return dict(self._fields)


def rejudge(path: Path) -> dict:
    """The recorded results JSON at `path`, its claims recomputed from its rows under the current `CLAIMS`."""
    data = json.loads(path.read_text())
    mod = importlib.import_module(f"icl_geometry.experiments.{get_spec(data['chapter']).slug}")
    values = mod.claim_values(base.load_rows(path), data["config"])
    with tempfile.TemporaryDirectory() as tmp:
        book = ClaimBook(_Config(data["chapter"], data["config"]), path=Path(tmp) / "run.json")
        book.record_all(mod.CLAIMS, values)
    old = {c["claim_id"]: c for c in data["claims"]}
    claims, not_judged = [], {}
    for cid, spec in mod.CLAIMS.items():
        if cid in book.claims:
            claims.append(asdict(book.claims[cid]))
        elif cid in old:  # the rows cannot give it: keep its numbers, refresh its declaration and verdict
            c = dict(old[cid])
            interval = None if c.get("low") is None else (c["low"], c["high"])
            c["verdict"], c["expectation"] = judge_claim(spec, Measured(c["value"], interval))
            c.update({name: getattr(spec, name) for name in DECLARED}, paper=spec.paper)
            c["forced_by"] = spec.forced_by.format_map(data["config"])
            claims.append(c)
        else:
            not_judged[cid] = book.not_judged.get(cid, "not measured by this run")
    data["claims"] = claims
    if not_judged:
        data["not_judged"] = not_judged
    else:
        data.pop("not_judged", None)
    data["rejudged"] = ("claims recomputed from the committed rows under the chapter's current CLAIMS by "
                        "book/recorded/rejudge.py (issue 25: intervals that cover, claim roles)")
    return data


def main(argv: list[str]) -> int:
    for name in argv:
        path = Path(name)
        data = rejudge(path)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"{path}: {len(data['claims'])} claims, {len(data.get('not_judged', {}))} not judged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
