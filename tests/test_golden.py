"""The golden test: a restructuring changes no committed number.

Every claim's value and interval (to 1e-9), verdict and kind in `book/results/` and `book/recorded/`, every
column of every rows file, the text of every `# NBVAL_CHECK_OUTPUT` cell and every figure of the chapters
must equal `tests/golden/golden.json`. The snapshot is rewritten (`python tests/golden/snapshot.py`) only in a
commit that changes numbers on purpose and says why: it was written before issue 24's restructuring (which
passed against it), and again after issue 25 (intervals that cover, claim roles and minimum sizes, chapters 5
and 6's re-expressed claims). A claim renamed on purpose is listed in `tests/golden/renamed.json` (old id ->
new id); its old id in the golden snapshot and in
the checked text reads as the new one (the checked text is then compared with runs of spaces collapsed and
lines unindented, since a table's column widths follow its longest id). Reads committed files only: fast tier.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from snapshot import GOLDEN, ROOT, _rows, snapshot  # noqa: E402

RENAMED = GOLDEN.with_name("renamed.json")
TOL = 1e-9


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def now() -> dict:
    return snapshot(ROOT)


@pytest.fixture(scope="module")
def renamed() -> dict[str, str]:
    return json.loads(RENAMED.read_text()) if RENAMED.exists() else {}


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=TOL, abs_tol=1e-12)


def test_claims_unchanged(golden, now, renamed):
    problems = []
    assert set(now["claims"]) == set(golden["claims"]), "a results file appeared or disappeared"
    for path, old in golden["claims"].items():
        new = now["claims"][path]
        old = {renamed.get(cid, cid): c for cid, c in old.items()}
        if set(new) != set(old):
            problems.append(f"{path}: ids missing {sorted(set(old) - set(new))}, new {sorted(set(new) - set(old))}")
            continue
        for cid, c in old.items():
            n = new[cid]
            for key in ("value", "low", "high"):
                if not _close(c[key], n[key]):
                    problems.append(f"{path}: {cid}.{key} {c[key]!r} -> {n[key]!r}")
            for key in ("verdict", "kind"):
                if c[key] != n[key]:
                    problems.append(f"{path}: {cid}.{key} {c[key]!r} -> {n[key]!r}")
    assert not problems, "\n".join(problems)


def test_rows_unchanged(golden, now):
    """Every golden rows file keeps its rows and columns. A chapter whose rows became a stacked table (a `part`
    column, see experiments/base.py) keeps its old rows first: those are compared, the new parts follow."""
    problems = []
    assert set(golden["rows"]) <= set(now["rows"]), "a rows file disappeared"  # chapters may gain rows files
    for path, old in golden["rows"].items():
        new = now["rows"][path]
        if "part" in new["columns"] and "part" not in old["columns"]:
            new = _rows(ROOT / path, first=old["n"])
        elif new["n"] != old["n"]:
            problems.append(f"{path}: {old['n']} rows -> {new['n']}")
        for col, digest in old["columns"].items():
            if new["columns"].get(col) != digest:
                problems.append(f"{path}: column {col!r} changed" if col in new["columns"] else
                                f"{path}: column {col!r} missing")
    assert not problems, "\n".join(problems)


def _normalise(text: str, renamed: dict[str, str]) -> str:
    for old in sorted(renamed, key=len, reverse=True):
        text = text.replace(old, renamed[old])
    if not renamed:
        return text
    return re.sub(r"^ ", "", re.sub(r"[ \t]+", " ", text), flags=re.M)  # column widths follow the longest id


def test_checked_text_unchanged(golden, now, renamed):
    assert set(now["checked_text"]) == set(golden["checked_text"]), "a chapter appeared or disappeared"
    for chapter, old in golden["checked_text"].items():
        new = now["checked_text"][chapter]
        assert len(new) == len(old), f"{chapter}: {len(old)} checked cells -> {len(new)}"
        for i, (a, b) in enumerate(zip(old, new)):
            assert _normalise(a, renamed) == _normalise(b, renamed), f"{chapter}: checked cell {i} changed"


def test_figures_unchanged(golden, now):
    for chapter, old in golden["figures"].items():
        assert now["figures"][chapter] == old, f"{chapter}: figures changed"
