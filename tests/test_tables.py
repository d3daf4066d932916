"""bookkit.tables: the wrapping HTML tables and the compact checked text of the chapters (fast)."""

from __future__ import annotations

import pandas as pd
import pytest

from icl_geometry.bookkit import tables
from icl_geometry.bookkit.claims import ClaimBook

LONG = ("the larger the final-layer ID increase, the more likely a correct answer, within a question, over the "
        "shot counts k of the same base item")


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "claim": ["fig6_abs_final_rise_predicts_correct_choice", "x"],
        "kind": ["paper", "ours"],
        "value": ["0.0048", "1.2e+05"],
        "expected": [LONG, "~ 1 ± 0.1"],
        "verdict": ["inconclusive", "not reproduced (forced)"],
    })


@pytest.mark.parametrize("width", [30, 40, 60, tables.TEXT_WIDTH, 120])
def test_text_lines_stay_within_the_width(width):
    out = tables.text(_frame(), width=width)
    assert max(len(line) for line in out.splitlines()) <= width
    assert len(out.splitlines()) >= 3


@pytest.mark.parametrize("width", [1, 3, 8, 20])
def test_wrap_keeps_every_character_in_order(width):
    for cell in [LONG, "fig6_abs_final_rise_predicts_correct_choice", "a  b", "x"]:
        lines = tables._wrap(cell, width)
        assert all(len(line) <= width for line in lines)
        assert "".join("".join(lines).split()) == "".join(cell.split())


def test_text_is_left_aligned_and_keeps_short_verdicts_whole():
    out = tables.text(_frame(), width=tables.TEXT_WIDTH)
    lines = out.splitlines()
    assert lines[0].startswith("claim") and "verdict" in lines[0]
    assert "inconclusive" in out and "not reproduced" in out and "(forced)" in out  # verdicts never cut
    assert "fig6_abs_final_" in out  # a long id breaks after an underscore
    header_at = lines[0].index("kind")
    assert lines[1][header_at:].startswith("paper")  # left-aligned under its header


def test_text_is_deterministic_and_fits_a_column_that_needs_no_wrapping():
    df = pd.DataFrame({"a": [1, 22], "b": ["x", "yy"]})
    assert tables.text(df) == tables.text(df.copy()) == "a   b\n1   x\n22  yy"
    assert tables.text(pd.DataFrame({"a": []})) == "a"


def test_wrap_breaks_long_words_and_keeps_short_ones():
    assert tables._wrap("abcdefghijkl", 5) == ["abcde", "fghij", "kl"]
    assert tables._wrap("one_two_three four", 8) == ["one_two_", "three", "four"]
    assert tables._wrap("", 5) == [""]


def test_show_html_is_a_fixed_layout_book_table_with_escaped_cells():
    df = pd.DataFrame({"claim": ["a<b>&c"], "n": [3], "statement": [LONG]})
    shown = tables.show(df)
    html = shown._repr_html_()
    assert html.startswith('<table class="book-table">') and "<colgroup>" in html
    assert "a&lt;b&gt;&amp;c" in html and "<b>" not in html
    assert "one_<wbr>two" in tables.show(pd.DataFrame({"id": ["one_two"]}))._repr_html_()  # ids break at _
    assert '<td class="num">3</td>' in html and '<th class="num">n</th>' in html
    widths = [float(w) for w in __import__("re").findall(r"width: ([0-9.]+)%", html)]
    assert abs(sum(widths) - 100) < 0.5 and widths[2] == max(widths)  # the long text column is the widest
    assert repr(shown) == df.to_string(index=False)


def test_show_widths_and_index():
    df = pd.DataFrame({"a": ["x"], "b": ["y"]}, index=pd.Index(["r"], name="row"))
    html = tables.show(df, widths={"a": 3, "b": 1}).__class__(df, widths={"a": 3, "b": 1})._repr_html_()
    assert "width: 75.0%" in html and "width: 25.0%" in html
    assert "<th class=\"txt\">row</th>" in tables.show(df, index=True)._repr_html_()
    with pytest.raises(ValueError, match="widths name columns"):
        tables.show(df, widths={"nope": 1})


def test_found_is_a_table_with_its_frame(tmp_path):
    from icl_geometry.bookkit import profiles

    book = ClaimBook(profiles.resolve("00", device="cpu"), path=tmp_path / "99.json")
    book.record("c", 1.0, kind="paper", direction="greater", interval=(0.5, 1.5), paper="A, Fig. 1: " + LONG)
    found = book.found()
    assert isinstance(found, tables.Table) and isinstance(found.df, pd.DataFrame)
    assert list(book.found(frame=True).columns) == ["claim", "kind", "paper", "measured", "interval", "verdict"]
    assert list(found.verdict) == ["reproduced"] and len(found) == 1  # DataFrame access passes through
    html = found._repr_html_()
    widths = [float(w) for w in __import__("re").findall(r"width: ([0-9.]+)%", html)]
    assert widths[2] == max(widths)  # the statement column is the widest
    assert isinstance(book.table(), pd.DataFrame)


def test_nullable_integer_columns_show_missing_values_as_empty_cells():
    import pandas as pd

    df = pd.DataFrame({"family": ["grid", "width-matched"], "d_head": pd.array([None, 8], dtype="Int64")})
    html_text = tables.show(df)._repr_html_()
    assert ">8<" in html_text and "<NA>" not in html_text
