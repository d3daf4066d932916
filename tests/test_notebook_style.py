"""The chapters' code as a reader sees it (issue 29): every line of every code cell fits the book's code column.

book/ruff.toml formats the chapters at 88 columns and `_static/book.css` sizes a code cell to hold about 92
characters at 1280 px; the browser test (tests/test_rendered_book.py) checks that no code cell scrolls sideways in
the built book. This is the same rule as ruff's, checked without a browser or a build, so `make check` catches a
long line the moment it is written.
"""

from __future__ import annotations

import json
import tomllib
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
LINE_LENGTH = tomllib.loads((ROOT / "book" / "ruff.toml").read_text())["line-length"]


def _width(line: str) -> int:
    """Columns a line takes in a monospace font (wide East Asian characters take two, as ruff counts them)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def test_the_code_column_is_88():
    assert LINE_LENGTH == 88  # book.css is sized for it: change both together
    assert len(CHAPTERS) >= 8


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_code_line_fits_the_column(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    long = []
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            if _width(line) > LINE_LENGTH:
                long.append(f"cell {number} (id {cell.get('id')}), {_width(line)} columns: {line}")
    assert not long, (f"{notebook.name}: code lines over {LINE_LENGTH} columns (book/ruff.toml; "
                      f"`ruff format book/` and wrap comments and strings by hand):\n" + "\n".join(long))
