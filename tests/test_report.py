"""The replication report: only unforced paper claims are counted; figures are read from the claim text."""

from __future__ import annotations

import json

import pytest

from icl_geometry.bookkit import report


@pytest.mark.parametrize("text, place", [
    ("Fig. 6: the larger the final-layer ID increase ...", "Fig. 6"),
    ("Figure 8 shows", "Fig. 8"),
    ("Theorem 2.1 bounds the dimension", "Theorem 2.1"),
    ("eq. 8, absolute reading", "eq. 8"),
    ("Section 3's conclusion", "Section 3"),
    ("no place named", ""),
])
def test_place_in_paper(text, place):
    assert report.place_in_paper(text) == place


def _write(folder, chapter, claims, profile="ci"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{chapter}.json").write_text(json.dumps(
        {"chapter": chapter, "config": {"profile": profile, "model": "smollm2-135m"}, "claims": claims}))


def _claim(cid, verdict, kind, paper="Fig. 6: x", forced_by="", low=None, high=None):
    return {"claim_id": cid, "value": 0.5, "verdict": verdict, "expectation": "> 0", "paper": paper, "note": "",
            "low": low, "high": high, "kind": kind, "null_margin": None, "forced_by": forced_by, "exact": ""}


def test_counts_and_page(tmp_path):
    _write(tmp_path / "results", "04", [
        _claim("a", "reproduced", "paper", low=0.1, high=0.9),
        _claim("b", "not reproduced", "paper", paper="Fig. 8: y"),
        _claim("c", "not reproduced", "paper", forced_by="capped at 9 keys"),
        _claim("d", "reproduced", "ours"),
        _claim("e", "reproduced", "check"),
    ])
    _write(tmp_path / "recorded", "04", [_claim("a", "inconclusive", "paper")], profile="full")
    rows = report.load_rows(tmp_path / "results", tmp_path / "recorded", tmp_path / "missing")
    assert report.counts(rows) == {"reproduced": 1, "not reproduced": 1, "inconclusive": 1}
    assert report.counts_line(rows).startswith("3 claims of the papers judged: 1 reproduced, 1 not reproduced")
    page = report.render(rows)
    assert "## Paper A" in page and "## Paper B" not in page
    assert "## The book's own claims" in page and "## Sanity checks" in page
    assert "forced: capped at 9 keys; not counted" in page
    assert "{doc}`04 <04_context_and_reasoning>`" in page and "[0.1, 0.9]" in page
    assert page.index("Fig. 6") < page.index("Fig. 8")


def test_glance_box_reads_the_chapter_verdicts(tmp_path):
    _write(tmp_path, "04", [_claim("a", "reproduced", "paper", low=0.1, high=0.9),
                            _claim("c", "not reproduced", "paper", forced_by="capped"),
                            _claim("d", "reproduced", "ours"), _claim("e", "reproduced", "check")])
    box = report.glance("Does context help?", report.load_rows(tmp_path))
    assert box.startswith(":::{admonition} At a glance") and box.endswith(":::")
    assert "Does context help?" in box and "smollm2-135m" in box and "(ci run): 1 reproduced." in box
    assert "1 claims of our own and 1 sanity checks" in box
    assert "trained from scratch" in report.glance("Toy?", [])


def test_every_chapter_names_a_paper_the_report_knows():
    from icl_geometry.bookkit.specs import all_specs

    assert {number: spec.paper in report.PAPERS for number, spec in all_specs().items()} == {
        number: True for number in all_specs()}
