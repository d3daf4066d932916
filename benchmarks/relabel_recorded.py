"""Bring recorded runs' claims in line with their chapter's current declaration, recomputed from their rows.

A recorded run (`book/recorded/NN_<profile>_<model>.json`) is never re-executed. When a chapter re-labels its
`CLAIMS` (role, basis, against, section, forced_by, confounded_by, min_n, a statement or its source), this script
recomputes every claim of the run from its committed rows with the chapter's own `claim_values`, judges it under
the chapter's current declaration (`claims_for(config)` where the chapter has one, else `CLAIMS`) through the
book's own `ClaimBook.record_all`, and rewrites only `claims` and `not_judged` of the JSON, and the run facts a
chapter computes from its rows (`facts(rows, config)`, e.g. chapter 7's `smaller_model_wins`). Every other field
(config, sizes, wall_s, compute_s, machine, commit) stays as recorded, and no number is written by hand: the
script stops without writing when a recomputed value or interval differs from the recorded one (the rows must
give the numbers the run recorded), and prints every verdict, kind or id that changes.

    .venv/bin/python benchmarks/relabel_recorded.py 04 07          # rewrite chapters 4 and 7's recorded runs
    .venv/bin/python benchmarks/relabel_recorded.py --check 04 07  # report what would change, write nothing
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from icl_geometry.bookkit.claims import ClaimBook
from icl_geometry.bookkit.specs import get_spec
from icl_geometry.experiments import base

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "book" / "recorded"
TOL = 1e-9


class _Config:
    """What `ClaimBook` reads of a config: the chapter and the settings, as recorded."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.chapter = str(data["chapter"])
        self._settings = dict(data["config"])

    def as_dict(self) -> dict[str, Any]:
        return dict(self._settings)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TOL, abs_tol=1e-12)


def relabel(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The run's JSON with its claims re-recorded under the chapter's current declaration, and what changed."""
    data = json.loads(path.read_text())
    mod = importlib.import_module(f"icl_geometry.experiments.{get_spec(data['chapter']).slug}")
    specs = mod.claims_for(data["config"]) if hasattr(mod, "claims_for") else mod.CLAIMS
    values = mod.claim_values(base.load_rows(path), data["config"])
    with tempfile.TemporaryDirectory() as tmp:
        book = ClaimBook(_Config(data), Path(tmp) / path.name)
        book.record_all(specs, values)
    old = {c["claim_id"]: c for c in data["claims"]}
    new = {cid: asdict(c) for cid, c in book.claims.items()}
    changes = []
    for cid, c in new.items():
        if cid not in old:
            changes.append(f"{cid}: new claim ({c['kind']}, {c['verdict']})")
            continue
        for key in ("value", "low", "high"):
            if not _same(old[cid][key], c[key]):
                raise SystemExit(f"{path.name}: {cid}.{key} recomputes as {c[key]!r}, recorded {old[cid][key]!r}: "
                                 "the rows do not give the recorded number; nothing written")
        for key in ("verdict", "kind"):
            if old[cid].get(key) != c[key]:
                changes.append(f"{cid}: {key} {old[cid].get(key)!r} -> {c[key]!r}")
    changes += [f"{cid}: no longer judged ({book.not_judged.get(cid, 'not declared')})" for cid in old if cid not in new]
    out = {k: v for k, v in data.items() if k not in ("claims", "not_judged")}
    if hasattr(mod, "facts"):  # run facts the chapter computes from its rows (e.g. chapter 7's smaller_model_wins)
        for key, value in json.loads(json.dumps(mod.facts(base.load_rows(path), data["config"]), default=str)).items():
            if out.get(key) != value:
                changes.append(f"fact {key}: {'recomputed' if key in out else 'added'} from the rows")
            out[key] = value
    out["claims"] = list(new.values())
    if book.not_judged:
        out["not_judged"] = dict(book.not_judged)
    return out, changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="+", help="chapter numbers, e.g. 04 07")
    parser.add_argument("--check", action="store_true", help="report what would change, write nothing")
    args = parser.parse_args(argv)
    for chapter in args.chapters:
        paths = sorted(RECORDED.glob(f"{chapter}_*.json"))
        if not paths:
            print(f"{chapter}: no recorded run")
        for path in paths:
            data, changes = relabel(path)
            roles = [c.get("role") or "-" for c in data["claims"]]
            print(f"{path.name}: {len(data['claims'])} claims ({roles.count('primary')} primary), "
                  f"{len(data.get('not_judged', {}))} not judged; {len(changes)} verdict/kind/id changes")
            for line in changes:
                print(f"  {line}")
            if not args.check:
                path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
