"""Tables that fit the book's text column at 1280 px: HTML that wraps, and compact text for checked cells.

    from icl_geometry.bookkit import tables
    tables.show(df)                       # in a notebook: a wrapping HTML table (text fallback: to_string)
    tables.show(df, widths={"statement": 4, "verdict": 2})
    print(tables.text(df))                # an nbval-checked summary: no line wider than TEXT_WIDTH

`show` returns a `Table`: its `_repr_html_` is a `<table class="book-table">` with a fixed layout and
relative column widths (`_static/book.css` styles it: long words and ids break, numbers right-aligned,
text left-aligned), its `__repr__` the plain `df.to_string(index=index)`. `text` lays a DataFrame out
as left-aligned columns whose long cells wrap inside their column, deterministically (the same
characters on every machine, so nbval can compare it).
"""

from __future__ import annotations

import html
import math
import numbers
from typing import Any, Mapping

import pandas as pd

# Characters of the book's output `<pre>` that fit the text column at 1280 px: measured in headless Chromium,
# 656 px inside a chapter's output <pre> at 8.43 px per character (14 px monospace) = 77.8 characters
# (tests/test_rendered_book.py re-measures it on every chapter page); a margin below that.
TEXT_WIDTH = 76
GAP = "  "  # between text columns
MIN_COL = 6  # narrowest a wrapped text column gets (characters)
SHORT = 16  # values up to this long (verdicts, numbers, intervals) are kept on one line where the width allows


class Table:
    """A DataFrame shown as a wrapping HTML table in the book (`_repr_html_`), plain text elsewhere."""

    def __init__(self, df: Any, widths: Mapping[str, float] | None = None, index: bool = False) -> None:
        self.df = df
        self.index = index
        self._shown = df.reset_index() if index else df
        self.widths = column_weights(self._shown, widths)
        self._text = df.to_string(index=index)

    def __repr__(self) -> str:
        return self._text

    def __getattr__(self, name: str) -> Any:
        """Columns and DataFrame methods (`.verdict`, `.set_index(...)`) reach the DataFrame `.df`."""
        if name.startswith("_") or name == "df":
            raise AttributeError(name)
        return getattr(self.df, name)

    def __len__(self) -> int:
        return len(self.df)

    def __getitem__(self, key: Any) -> Any:
        return self.df[key]

    def _repr_html_(self) -> str:
        return to_html(self._shown, self.widths)


def show(df: Any, widths: Mapping[str, float] | None = None, index: bool = False) -> Table:
    """`df` as a table that wraps inside the text column (see `Table`); `widths` maps columns to relative
    weights (the others get a default from their content)."""
    return Table(df, widths=widths, index=index)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _missing(value: Any) -> bool:
    """None, NaN and pandas' NA (nullable integer columns): shown as an empty cell."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _numeric_column(series: Any) -> bool:
    values = [v for v in series.tolist() if not _missing(v) and v != ""]
    return bool(values) and all(_is_number(v) for v in values)


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    return str(value)


def column_weights(df: Any, widths: Mapping[str, float] | None = None) -> dict[str, float]:
    """Relative width of each column: the caller's `widths`, else from the content (the longest cell or
    header, capped, with the square root of long text so a statement column gets most, not all, of the room)."""
    widths = dict(widths or {})
    unknown = set(widths) - {str(c) for c in df.columns}
    if unknown:
        raise ValueError(f"tables: widths name columns {sorted(unknown)} that the table does not have "
                         f"(columns: {[str(c) for c in df.columns]})")
    out = {}
    for col in df.columns:
        name = str(col)
        if name in widths:
            out[name] = float(widths[name])
            continue
        cells = [_cell(v) for v in df[col].tolist()]
        longest = max([len(name)] + [len(c) for c in cells])
        mean = sum(len(c) for c in cells) / len(cells) if cells else len(name)
        # short columns take what they need; long text grows slower than its length
        need = min(longest, 14) + max(0.0, math.sqrt(max(mean, longest / 2)) * 4 - 14)
        out[name] = max(need, 4.0)
    return out


def to_html(df: Any, weights: Mapping[str, float]) -> str:
    """The `<table class="book-table">` markup: a colgroup with percentage widths, escaped cells, numeric
    columns marked `num` (right-aligned by the CSS)."""
    total = sum(weights[str(c)] for c in df.columns) or 1.0
    numeric = {str(c): _numeric_column(df[c]) for c in df.columns}
    parts = ['<table class="book-table">', "<colgroup>"]
    for col in df.columns:
        parts.append(f'<col style="width: {100 * weights[str(col)] / total:.1f}%">')
    parts.append("</colgroup>")
    parts.append("<thead><tr>" + "".join(
        f'<th class="{"num" if numeric[str(c)] else "txt"}">{html.escape(str(c))}</th>' for c in df.columns)
        + "</tr></thead>")
    parts.append("<tbody>")
    for row in df.itertuples(index=False):
        cells = []
        for col, value in zip(df.columns, row):
            cls = "num" if numeric[str(col)] else "txt"
            text = html.escape(_cell(value))
            if cls == "txt":
                text = text.replace("_", "_<wbr>")  # claim ids break after an underscore first
            cells.append(f'<td class="{cls}">{text}</td>')
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters: words kept whole where they fit; a longer word
    (a claim id) breaks after an underscore where it can, else at the width."""
    lines: list[str] = []
    for para in text.splitlines() or [""]:
        line = ""
        for word in para.split():
            while word:
                sep = " " if line else ""
                if len(line) + len(sep) + len(word) <= width:
                    line, word = line + sep + word, ""
                    break
                if len(word) <= width and line:
                    lines.append(line)
                    line = ""
                    continue
                room = width - len(line) - len(sep)
                cut = word.rfind("_", 0, room) + 1  # break just after an underscore
                if cut <= 0:
                    if line:
                        lines.append(line)
                        line = ""
                        continue
                    cut = width
                lines.append(line + sep + word[:cut])
                line, word = "", word[cut:]
        lines.append(line)
    return lines


def _allot(natural: list[int], floor: list[int], room: int) -> list[int]:
    """Column widths summing to at most `room`: each column its natural width if all fit, else columns shrink
    one character at a time, the widest relative to the square root of its natural width first (never below
    its `floor`), deterministically."""
    widths = list(natural)
    while sum(widths) > room:  # shrink the column widest relative to its need (long text keeps more room)
        widest = max(range(len(widths)), key=lambda i: (widths[i] - floor[i] > 0,
                                                        widths[i] / max(natural[i], 1) ** 0.5, -i))
        if widths[widest] <= floor[widest]:
            break  # cannot shrink further: the table is wider than the room (too many columns)
        widths[widest] -= 1
    return widths


def text(df: Any, width: int = TEXT_WIDTH, index: bool = False) -> str:
    """`df` as compact left-aligned text whose lines stay within `width` characters: long cells wrap inside
    their column (the widest columns give way first; headers and short values such as verdicts keep their
    width where possible). The same output on every machine (no terminal or locale dependence)."""
    if index:
        df = df.reset_index()
    columns = [str(c) for c in df.columns]
    rows = [[_cell(v) for v in row] for row in df.itertuples(index=False)]
    if not columns:
        return ""
    natural = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    # a column may shrink to its header's longest word or its longest short value (a verdict: the part before
    # a parenthesis, "not reproduced (forced: ...)"), and at least MIN_COL
    floor = [min(natural[i], max(MIN_COL, max((len(w) for w in c.split()), default=1),
                                 max((len(v) for r in rows for v in (r[i], r[i].split(" (")[0]) if len(v) <= SHORT),
                                     default=0)))
             for i, c in enumerate(columns)]
    room = width - len(GAP) * (len(columns) - 1)
    widths = _allot(natural, floor, room)
    if sum(widths) > room:  # too many columns for their floors: wrap short values too (never exceed `width`)
        widths = _allot(widths, [min(w, MIN_COL) for w in widths], room)
        widths = _allot(widths, [1] * len(widths), room)

    def block(cells: list[str]) -> list[str]:
        wrapped = [_wrap(cell, w) for cell, w in zip(cells, widths)]
        height = max(len(w) for w in wrapped)
        out = []
        for k in range(height):
            parts = []
            for i, lines in enumerate(wrapped):
                piece = lines[k] if k < len(lines) else ""
                parts.append(piece.ljust(widths[i]))
            out.append(GAP.join(parts).rstrip())
        return out

    lines = block(columns)
    for r in rows:
        lines += block(r)
    return "\n".join(lines)
