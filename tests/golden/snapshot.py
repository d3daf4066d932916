"""The golden snapshot of the book's committed numbers: what a restructuring must leave unchanged.

`snapshot(root)` reads the committed artifacts (it runs nothing): every claim's value, interval, verdict and
kind in `book/results/*.json` and `book/recorded/*.json`, a digest of every column of every rows file, the
text of every `# NBVAL_CHECK_OUTPUT` cell and a hash of every figure in the chapters under `book/`.
`python tests/golden/snapshot.py` writes `tests/golden/golden.json`; `tests/test_golden.py` compares.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden.json")
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def _claims(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text())
    return {c["claim_id"]: {k: c.get(k) for k in ("value", "low", "high", "verdict", "kind")}
            for c in data.get("claims", [])}


def _column_digest(values: pd.Series) -> str:
    """sha256 of the column's values written canonically (numbers to 9 significant figures)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        text = [format(float(v), ".9g") for v in values.to_numpy()]
    else:  # text and bool columns; a stacked table's other parts leave missing values in them
        text = [str(v) for v in values.tolist()]
    return hashlib.sha256("\n".join(text).encode()).hexdigest()[:16]


def _rows(path: Path, first: int | None = None) -> dict:
    """The row count and a digest per column (of the first `first` rows only, when given)."""
    table = pd.read_csv(path)
    n = len(table)
    if first is not None:
        table = table.iloc[:first]
    return {"n": n, "columns": {c: _column_digest(table[c]) for c in table.columns}}


def _cell_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out["text"]))
        elif "text/plain" in out.get("data", {}):
            parts.append("".join(out["data"]["text/plain"]))
    return "".join(parts)


def _notebook(path: Path) -> tuple[list[str], list[str]]:
    cells = json.loads(path.read_text())["cells"]
    checked = [_cell_text(c) for c in cells
               if c["cell_type"] == "code" and CHECK_MARK in "".join(c["source"])]
    figures = [hashlib.sha256(base64.b64decode(out["data"]["image/png"])).hexdigest()[:16]
               for c in cells if c["cell_type"] == "code" for out in c.get("outputs", [])
               if "image/png" in out.get("data", {})]
    return checked, figures


def snapshot(root: Path = ROOT) -> dict:
    book = root / "book"
    results = [*sorted((book / "results").glob("*.json")), *sorted((book / "recorded").glob("*.json"))]
    rows = [*sorted((book / "results").glob("*_rows.csv.gz")), *sorted((book / "recorded").glob("*_rows.csv.gz"))]
    notebooks = sorted(book.glob("[0-9][0-9]_*.ipynb"))
    snap: dict = {"claims": {}, "rows": {}, "checked_text": {}, "figures": {}}
    for p in results:
        snap["claims"][str(p.relative_to(root))] = _claims(p)
    for p in rows:
        snap["rows"][str(p.relative_to(root))] = _rows(p)
    for p in notebooks:
        checked, figures = _notebook(p)
        snap["checked_text"][p.stem] = checked
        snap["figures"][p.stem] = figures
    return snap


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN
    target.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
