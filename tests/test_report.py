"""The replication report (known answers on hand-made results): one count per distinct primary paper claim,
judged by the largest-scale run; two tallies never added; chance and Holm numbers; "not judged at this size";
the heading slugs MyST computes; the model column for toys."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import pytest

from icl_geometry.bookkit import report
from icl_geometry.core.verdicts import ClaimSpec


@pytest.fixture(autouse=True)
def _no_declarations(monkeypatch):
    """Hand-made results only: the chapters' real CLAIMS (edited elsewhere) do not leak into these tests."""
    monkeypatch.setattr(report, "_declared", lambda chapter: {})


@pytest.mark.parametrize("text, place", [
    ("A, Fig. 6", "Fig. 6"), ("Figure 8 shows", "Fig. 8"), ("Figs. 4-5", "Figs. 4-5"), ("A, Figs. 1, 3", "Figs. 1, 3"),
    ("Theorem 2.1 bounds the dimension", "Theorem 2.1"), ("Thm 2.1 (ii)", "Theorem 2.1"),
    ("eq. 8, absolute reading", "eq. 8"), ("Section 3's conclusion", "Section 3"), ("Sec. 3 observation", "Section 3"),
    ("A, section 3", "Section 3"), ("no place named", ""),
])
def test_place_in_paper(text, place):
    assert report.place_in_paper(text) == place


def _write(folder: Path, name: str, chapter: str, claims, profile="ci", model="smollm2-135m", units=0,
           not_judged=None):
    folder.mkdir(parents=True, exist_ok=True)
    data = {"chapter": chapter, "config": {"profile": profile, "model": model}, "claims": claims}
    if not_judged:
        data["not_judged"] = not_judged
    (folder / f"{name}.json").write_text(json.dumps(data))
    if units:
        with gzip.open(folder / f"{name}_rows.csv.gz", "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["item", "note"])
            w.writerows([[i, "a\nb"] for i in range(units)])  # a quoted newline is one row, not two


def _claim(cid, verdict="reproduced", kind="paper", role="primary", basis="empirical", value=0.5, low=0.1,
           high=0.9, expectation="> 0", paper="A, Fig. 6: the rise predicts", **extra):
    return {"claim_id": cid, "value": value, "verdict": verdict, "expectation": expectation, "paper": paper,
            "note": "", "low": low, "high": high, "kind": kind, "null_margin": None, "forced_by": "", "exact": "",
            "confounded_by": "", "role": role, "basis": basis, "against": "", "section": "", **extra}


# ---- the largest-scale rule --------------------------------------------------------------------------------------

def test_units_count_rows_not_lines(tmp_path):
    _write(tmp_path, "04", "04", [], units=7)
    assert report.count_units(tmp_path / "04.json") == 7
    assert report.count_units(tmp_path / "missing.json") == 0


def test_largest_scale_rule(tmp_path):
    """Recorded over committed; among recorded: full over other profiles, then more rows, then the larger model
    (BUNDLED order, hub ids after the bundled ones)."""
    c = [_claim("fig6")]
    _write(tmp_path / "results", "04", "04", c, units=500)  # the committed run, even with the most rows
    rec = tmp_path / "recorded"
    _write(rec, "04_ci_gemma3-270m", "04", [_claim("fig6", verdict="inconclusive")], profile="ci", units=400,
           model="gemma3-270m")
    _write(rec, "04_full_smollm2-135m", "04", [_claim("fig6", verdict="not reproduced")], profile="full", units=300)
    _write(rec, "04_full_gemma3-270m", "04", [_claim("fig6", verdict="no effect")], profile="full", units=300,
           model="gemma3-270m")
    views = report.claim_views(report.load_rows(tmp_path / "results", rec))
    assert len(views) == 1 and views[0].judge["run"] == "04_full_gemma3-270m.json"  # tie on rows: larger model
    assert [r["run"] for r in views[0].runs] == ["04.json", "04_ci_gemma3-270m.json", "04_full_gemma3-270m.json",
                                                 "04_full_smollm2-135m.json"]  # every run shown beside it
    _write(rec, "04_full_smollm2-135m", "04", [_claim("fig6", verdict="not reproduced")], profile="full", units=301)
    views = report.claim_views(report.load_rows(tmp_path / "results", rec))
    assert views[0].judge["run"] == "04_full_smollm2-135m.json"  # more rows beat the larger model
    row = {"recorded": True, "profile": "full", "units": 300, "run": "x"}
    assert report.scale({**row, "models": ("meta-llama/Llama-3-8B",)}) > report.scale(
        {**row, "models": ("gemma3-270m",)}
    )
    assert report.model_rank(("smollm2-135m", "gemma3-270m")) == report.model_rank(("gemma3-270m",))  # the larger
    # with no recorded run the committed run judges
    only = report.claim_views(report.load_rows(tmp_path / "results"))
    assert only[0].judge["run"] == "04.json"


# ---- one count per distinct primary claim; two tallies ---------------------------------------------------------

def _book(tmp_path):
    res, rec = tmp_path / "results", tmp_path / "recorded"
    _write(res, "04", "04", [
        _claim("fig6", verdict="inconclusive", low=-0.1, high=0.9),
        _claim("fig6_choice", role="supporting"),
        _claim("sec3", verdict="not reproduced", forced_by="capped at 9 keys"),
        _claim("fig7", confounded_by="two families"),
        _claim("ours_one", kind="ours", role="", basis=""),
        _claim("check_one", kind="check", role="", basis=""),
    ], not_judged={"fig8": "not judged at this size (needs 30 units)"})
    _write(rec, "04_full_gemma3-270m", "04", [_claim("fig6", low=0.2, high=0.4), _claim("fig8", verdict="inconclusive",
                                                                                       low=-0.2, high=0.2)],
           profile="full", model="gemma3-270m", units=50)
    _write(rec, "04_full_smollm2-135m", "04", [_claim("fig6", verdict="not reproduced", value=-0.3, low=-0.4,
                                                      high=-0.2)], profile="full", units=50)
    _write(res, "05", "05", [_claim("clean", basis="derived", paper="Shi et al. 2024, linear regression setting: x"),
                             _claim("noise", basis="derived", paper="Shi et al. 2024, linear regression setting: y")],
           model=None)
    _write(res, "06", "06", [_claim("old", role="", basis="", paper="Shi et al. 2024, sparse parity setting: z")],
           model=None)
    return report.load_rows(res, rec)


def test_distinct_primary_claims_counted_once_in_two_tallies(tmp_path):
    views = {v.claim_id: v for v in report.claim_views(_book(tmp_path))}
    assert {cid for cid, v in views.items() if v.counted} == {"fig6", "fig8", "clean", "noise", "old"}
    assert views["fig6"].judge["run"] == "04_full_gemma3-270m.json" and views["fig6"].judge["verdict"] == "reproduced"
    assert views["fig6_choice"].why_not == "a supporting view"
    assert views["sec3"].why_not == "forced: capped at 9 keys" and views["fig7"].why_not == "confounded: two families"
    t = report.tallies(views.values())
    assert set(t) == {"empirical", "derived", ""}  # derived and empirical apart; unlabelled counted as before
    assert t["empirical"]["claims"] == 2 and t["empirical"]["verdicts"] == {"reproduced": 1, "inconclusive": 1}
    assert t["derived"]["claims"] == 2 and t["derived"]["verdicts"] == {"reproduced": 2}
    assert t[""]["claims"] == 1
    line = report.counts_line(_book(tmp_path))
    assert "**Empirical replications:** 2 claims: 1 reproduced, 1 inconclusive" in line
    assert "**Theory re-derived:** 2 claims: 2 reproduced" in line
    assert "5 claims" not in line and "judged" in line  # never added


def test_not_judged_at_this_size(tmp_path, monkeypatch):
    rows = _book(tmp_path)
    views = {v.claim_id: v for v in report.claim_views(rows)}
    fig8 = views["fig8"]
    assert [r["verdict"] for r in fig8.runs] == [report.NOT_JUDGED, "inconclusive"]
    assert report._verdicts(fig8, values=False)[0] == "ci, smollm2-135m: not judged at this size (needs 30 units)"
    # a primary claim no run could judge: counted among the claims, shown as not judged
    monkeypatch.setattr(report, "_declared", lambda ch: {"fig9": ClaimSpec(
        "within-item rise", source="A, Fig. 6", kind="paper", role="primary", basis="empirical",
        direction="greater", min_n=30, section="Correlations")} if ch == "04" else {})
    _write(tmp_path / "results", "04", "04", [_claim("fig6")], not_judged={"fig9": "not judged at this size (needs "
                                                                                    "30 units)"})
    views = {v.claim_id: v for v in report.claim_views(report.load_rows(tmp_path / "results"))}
    assert views["fig9"].judge is None and views["fig9"].counted
    t = report.tallies(views.values())["empirical"]
    assert t["claims"] == 2 and t["not_judged"] == 1 and t["verdicts"] == {"reproduced": 1}
    assert "2 claims: 1 reproduced, 1 not judged at this size" in report.counts_line(
        report.load_rows(tmp_path / "results"))


def test_chance_and_holm_known_answers(tmp_path):
    assert report.holm([0.001, 0.02, 0.03, 0.5]) == [True, False, False, False]  # 0.02 > 0.05 / 3
    assert report.holm([0.04, 0.01, 0.02]) == [True, True, True]  # 0.01 <= .05/3, 0.02 <= .05/2, 0.04 <= .05
    assert report.holm([]) == []
    se = 0.4 / (2 * 1.6448536269514722)
    p = report.p_value({"value": 0.3, "low": 0.1, "high": 0.5, "expectation": "> 0", "verdict": "reproduced"})
    assert p == pytest.approx(0.5 * math.erfc(0.3 / se / math.sqrt(2)), rel=1e-12) and p == pytest.approx(
        0.00680, abs=1e-5
    )
    assert report.p_value({"value": 0.8, "low": 0.6, "high": 1.0, "expectation": "< 1", "verdict": "reproduced"}) \
        == pytest.approx(0.5 * math.erfc(0.2 / (0.4 / 3.2897) / math.sqrt(2)), rel=1e-4)
    tost = report.p_value({"value": 0.0, "low": -0.05, "high": 0.05, "expectation": "within 0 ± 0.1",
                           "verdict": "reproduced"})
    assert tost == pytest.approx(0.5 * math.erfc(0.1 / (0.1 / 3.2897) / math.sqrt(2)), rel=1e-4)
    assert report.p_value({"value": 3, "low": None, "high": None, "expectation": "> 0", "verdict": "reproduced"}) == 0
    assert (
        report.p_value({"value": 0, "low": None, "high": None, "expectation": "0 ± 0", "verdict": "not reproduced"})
        == 1
    )
    # four counted empirical claims: p = 0.0068, 0.0068, ~0.5 and 1 - 0.0068 (the wrong side)
    res = tmp_path / "r"
    _write(res, "04", "04", [_claim("a", value=0.3, low=0.1, high=0.5), _claim("b", value=0.3, low=0.1, high=0.5),
                             _claim("c", verdict="inconclusive", value=0.0, low=-0.2, high=0.2),
                             _claim("d", verdict="not reproduced", value=-0.3, low=-0.5, high=-0.1)])
    t = report.tallies(report.claim_views(report.load_rows(res)))["empirical"]
    assert t["chance"] == pytest.approx(0.2) and t["with_interval"] == 4
    assert t["holm"] == 2  # 0.0068 <= 0.05/4 and 0.0068 <= 0.05/3; 0.5 > 0.05/2
    _write(res, "04", "04", [_claim(x, value=0.3, low=0.24, high=0.5) for x in "abcdefghij"]
           + [_claim("k", value=0.3, low=0.01, high=0.8)])  # ten p ~ 8e-5, one p ~ 0.1
    t = report.tallies(report.claim_views(report.load_rows(res)))["empirical"]
    assert t["verdicts"]["reproduced"] == 11 and t["holm"] == 10 and t["chance"] == pytest.approx(0.55)


# ---- the page ----------------------------------------------------------------------------------------------------

def test_slugs_are_myst_slugs(tmp_path):
    """The slugs `heading_slugs` gives a notebook's headings are those MyST computes for the same markdown."""
    import docutils.core
    import nbformat
    from myst_parser.parsers.docutils_ import Parser

    cells = ["# Chapter 4: Context", "## 2. Fitting $\\sin$ (Fig. 2)\n\ntext", "## A b", "## A, b!",
             "### The `foo` bar, *emphasis*", "## A b", "#### too deep", "## Figs. 4–5: it's 3.1"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(c) for c in cells]
                                  + [nbformat.v4.new_code_cell("# a comment, not a heading")])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    ours = report.heading_slugs(tmp_path / "nb.ipynb")
    doc = docutils.core.publish_doctree("\n\n".join(cells), parser=Parser(), settings_overrides={
        "myst_heading_anchors": 3, "myst_enable_extensions": ["dollarmath", "amsmath", "colon_fence", "deflist"],
        "report_level": 5})
    assert list(dict.fromkeys(ours.values())) == [s for s in doc.myst_slugs if s != "a-b-1-2"]
    assert ours["2. Fitting $\\sin$ (Fig. 2)"] == "2-fitting--fig-2" == ours["2. Fitting (Fig. 2)"]
    assert (
        ours["A b"] == "a-b"
        and ours["A, b!"] == "a-b-1"
        and ours["The `foo` bar, *emphasis*"] == "the-foo-bar-emphasis"
    )
    assert "too deep" not in ours and ours["Figs. 4–5: it's 3.1"] == "figs-45-its-31"
    assert report.slugify("Fig. 6: the ID's rise") == "fig-6-the-ids-rise"


def test_page_summary_detail_and_links(tmp_path):
    import nbformat

    rows = _book(tmp_path)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter 4\n\n## 3. The paper's figures")])
    nbformat.write(nb, nbs / "04_context_and_reasoning.ipynb")
    for row in rows:
        if row["claim_id"] == "fig6":
            row["section"] = "3. The paper's figures"
    page = report.render(rows, nbs)
    a, b, detail = page.index("## Paper A"), page.index("## Paper B"), page.index("## Detail by chapter")
    assert a < b < detail and page.count(":class: report-table report-summary") == 2
    summary_a = page[a:b]
    assert "[the rise predicts](04_context_and_reasoning.ipynb#3-the-papers-figures)" in summary_a  # deep link
    assert "[the rise predicts](04_context_and_reasoning.ipynb) (`sec3`" in summary_a  # no section: the page
    assert "**full, gemma3-270m: reproduced**" in summary_a and "full, smollm2-135m: not reproduced" in summary_a
    assert "ci, smollm2-135m: inconclusive" in summary_a and "1 supporting view below" in summary_a
    assert "not counted: forced (see the detail)" in summary_a and "not counted: confounded" in summary_a
    assert "`fig6_choice`" not in summary_a  # supporting views: in the detail only
    summary_b = page[b:detail]
    assert "Setting 1 ([chapter 5](05_icl_linear_regression.ipynb))" in summary_b
    assert "Judged by: toy trained in the chapter, ci" in summary_b and "smollm2" not in summary_b
    assert "**Theory re-derived:** 2 claims: 2 reproduced (chance alone would give about 0.1" in page
    assert "SE = (high − low) / (2 × 1.645)" in page
    rest = page[detail:]
    assert "### Chapter 4:" in rest and "`fig6_choice`" in rest and "`check_one`" in rest
    assert "**full, gemma3-270m: 0.5 [0.2, 0.4], reproduced**".replace("[", "\\[").replace("]", "\\]") in rest
    assert "forced: capped at 9 keys" in rest
    assert "$" not in page  # no stray TeX delimiter for the browser test to find


def test_model_column_for_toys():
    row = {"model": "smollm2-135m"}
    assert report.model_cell("05", "clean_loss_falls_with_rank", row) == report.TOY
    assert report.model_cell("06", "x", row) == report.TOY
    assert report.model_cell("01", "sine_mse_ratio_wide_vs_narrow", row) == report.TOY
    assert report.model_cell("01", "regions_grow_with_d_spearman", row) == "random nets built in the chapter"
    assert report.model_cell("01", "llm_gate_sign_mismatch", row) == "smollm2-135m"
    assert report.model_cell("02", "toy_mse_ratio_context", row) == report.TOY
    assert report.model_cell("02", "first_layer_attention_more_uniform", row) == "smollm2-135m"
    assert report.model_cell("07", "x", {"model": "smollm2-135m vs gemma3-270m"}) == "smollm2-135m vs gemma3-270m"


def test_glance_box_reads_the_chapter_verdicts(tmp_path):
    rows = [r for r in _book(tmp_path) if r["chapter"] == "04"]
    from icl_geometry.bookkit.glance import glance

    box = glance("Does context help?", rows)
    assert box.startswith(":::{admonition} At a glance") and box.endswith(":::")
    assert "Does context help?" in box and "gemma3-270m, smollm2-135m" in box
    assert "2 empirical replications" in box and box.count("- **reproduced**:") == 1
    assert box.count("- **inconclusive**:") == 1
    assert "**Our own claims** (not counted): 1" in box
    assert "- **not reproduced** (forced)" in box and "- **reproduced** (confounded)" in box  # primary, not counted
    assert "1 supporting view of the papers' claims and 1 check that cannot fail" in box
    toy = glance("Toy?", [], answer="Yes, mostly.")
    assert "trained from scratch" in toy and "**Answer.** Yes, mostly." in toy
    assert " 0 " not in toy and "Our own claims" not in toy  # no zero counts


def test_every_chapter_names_a_paper_the_report_knows():
    from icl_geometry.bookkit.specs import all_specs

    assert {number: spec.paper in report.PAPERS for number, spec in all_specs().items()} == {
        number: True for number in all_specs()}


def test_every_declared_section_is_a_heading_of_its_chapter(monkeypatch):
    """Each claim's `section` (declared, and as the committed and recorded results hold it) names a heading of
    its notebook, so the report's deep link reaches it."""
    from icl_geometry.bookkit import recorded as rec
    from icl_geometry.bookkit.specs import all_specs

    monkeypatch.undo()
    root = Path(__file__).resolve().parents[1]
    missing = []
    for number, spec in all_specs().items():
        sections = {c.section for c in report._declared(number).values()}
        for folder in (root / "book" / "results", root / "book" / "recorded"):
            sections |= {c.get("section", "") for d in rec.runs(None, folder).values()
                         if str(d.get("chapter")) == number for c in d["claims"]}
        doc = spec.notebook.removesuffix(".ipynb")
        missing += [f"{number}: {s!r}" for s in sorted(sections - {"", None})
                    if not report.section_link(doc, s, root / "book")]
    assert not missing, missing


def test_paper_b_settings_show_where_the_smaller_model_wins(tmp_path, monkeypatch):
    """The run fact `smaller_model_wins` of the largest-scale run that records it, in the chapter's own words."""
    from types import SimpleNamespace

    res = tmp_path / "results"
    _write(res, "05", "05", [_claim("noise", basis="derived", paper="Shi et al. 2024, linear regression setting: y")],
           model=None)
    data = json.loads((res / "05.json").read_text())
    data["smaller_model_wins"] = {"label": {"measured": [1.7, 3.7], "unit": "standard deviation of y"}}
    (res / "05.json").write_text(json.dumps(data))
    monkeypatch.setattr(report, "_module", lambda ch: SimpleNamespace(regime_text=lambda fact: [
        f"{k} noise: {v['measured'][0]} to {v['measured'][1]} times the {v['unit']}" for k, v in fact.items()]))
    page = report.render(report.load_rows(res))
    assert "- Setting 1: linear regression, size = rank of the attention (chapter 5): label noise: 1.7 to 3.7 times " \
           "the standard deviation of y (05.json, ci)." in page
    assert "(chapter 6): not recorded by its runs." in page
    monkeypatch.setattr(report, "_module", lambda ch: None)  # no chapter words: the fact as recorded
    assert "label: {'measured': [1.7, 3.7]" in report.render(report.load_rows(res)).replace("\\", "")
