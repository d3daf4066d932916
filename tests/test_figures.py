"""Every figure committed in a chapter fits the book's text column: shown at most 850 px wide (a figsize of
about 8.5 in: the book draws at 200 dpi and shows a figure at its size in inches x 100 CSS px,
`staging.display_width`), so it is shown at its own size, with fonts as large as the body text, instead of
being shrunk to fit."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import nbformat
import pytest

from icl_geometry.bookkit.staging import display_width

BOOK = Path(__file__).resolve().parents[1] / "book"
MAX_WIDTH_PX = 850


def _png_sizes(path: Path) -> list[tuple[int, int, int]]:
    """(cell index, display width, pixel height) of every PNG output of a notebook (the display width as the
    book shows it: pixel width x 100 / the PNG's density)."""
    nb = nbformat.read(str(path), as_version=4)
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = o.get("data", {}).get("image/png")
            if png:
                raw = base64.b64decode(png)
                out.append((i, display_width(raw), struct.unpack(">II", raw[16:24])[1]))
    return out


@pytest.mark.parametrize("chapter", sorted(p.name for p in BOOK.glob("[0-9][0-9]_*.ipynb")))
def test_figures_fit_the_text_column(chapter):
    too_wide = [(i, w, h) for i, w, h in _png_sizes(BOOK / chapter) if w > MAX_WIDTH_PX]
    assert not too_wide, (f"{chapter}: figures wider than {MAX_WIDTH_PX} px (cell, width, height): {too_wide}; "
                          f"use figsize width <= 8 in (stack panels in rows if needed)")
