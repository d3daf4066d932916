"""How a chapter shows its recorded runs beside the live one (`icl_geometry.bookkit.recorded`: `say`,
`claim_grid`, with chapter 4's ids): known answers on small hand-made results, no model."""

from __future__ import annotations

import json

from icl_geometry.bookkit import claims, recorded
from icl_geometry.experiments import context_and_reasoning as cg


def _claim(cid, value, verdict, low=None, high=None):
    return {"claim_id": cid, "value": value, "verdict": verdict, "low": low, "high": high, "kind": "paper"}


def _record(model, claim_list, **facts):
    return {"chapter": "04", "config": {"profile": "full", "model": model}, "claims": claim_list, **facts}


def test_runs_reads_only_that_chapters_results(tmp_path):
    (tmp_path / "04_full_a.json").write_text(json.dumps(_record("a", [])))
    (tmp_path / "04_full_a.ipynb").write_text("{}")
    (tmp_path / "07_full_b.json").write_text(json.dumps(_record("b", [])))
    got = recorded.runs("04", tmp_path)
    assert [p.name for p in got] == ["04_full_a.json"]
    assert got[tmp_path / "04_full_a.json"]["config"]["model"] == "a"
    assert recorded.runs("02", tmp_path) == {}


def test_phrase_from_a_claim_and_from_its_json():
    c = claims.Claim("x", -0.0333, "inconclusive", "> 0", low=-0.0891, high=0.0204)
    assert recorded.phrase(c) == "-0.033 [-0.089, 0.02], inconclusive"
    assert recorded.phrase(_claim("x", -0.0333, "inconclusive", -0.0891, 0.0204), signed=True) == \
        "-0.033 [-0.089, +0.02], inconclusive"
    assert recorded.phrase(_claim("y", 1.5, "reproduced")) == "1.5, reproduced"
    assert recorded.phrase(None) == recorded.NOT_JUDGED


def test_describe_prefers_compute_time_and_says_when_it_only_has_the_last_session():
    with_compute = recorded.describe("04_full_a.json", _record("a", [], n_base_items=300, compute_s=7200, wall_s=60))
    assert with_compute == "04_full_a.json: profile full, model a, 300 base items, 2.0 h of compute"
    resumed = recorded.describe("04_full_a.json", _record("a", [], wall_s=5400))
    assert resumed.endswith("1.5 h wall time of its last (resumed) session") and "base items" not in resumed


def test_verdict_table_keeps_claims_only_a_recorded_run_judged():
    live = {"a": claims.Claim("a", 0.5, "reproduced", "> 0"), "b": claims.Claim("b", -0.1, "inconclusive", "> 0")}
    rec = {"04_full_m.json": _record("m", [_claim("a", 0.25, "reproduced"), _claim("w", 0.125, "not reproduced")])}
    table = recorded.verdict_table(live, rec)
    assert list(table.index) == ["a", "b", "w"]
    assert list(table.columns) == ["ci (this run)", "m (full)"]
    assert table.loc["w", "ci (this run)"] == recorded.NOT_JUDGED
    assert table.loc["b", "m (full)"] == recorded.NOT_JUDGED
    assert table.loc["a", "m (full)"] == "reproduced (0.25)"
    assert table.loc["a", "ci (this run)"] == "reproduced (0.5)"


WHY = {"within_item": cg.NOT_JUDGED_WHY}


def test_say_names_why_a_within_item_claim_is_missing():
    got = {
        "fig6_abs_final_rise_predicts_correct": _claim(
            "fig6_abs_final_rise_predicts_correct", 0.2, "reproduced", 0.1, 0.3
        )
    }
    assert recorded.say(got, "fig6_abs_final_rise_predicts_correct", WHY) == "0.2 [0.1, 0.3], reproduced"
    assert str(cg.MIN_WITHIN_ITEMS) in recorded.say(got, "fig6_abs_within_item", WHY)
    assert recorded.say(got, "fig6_abs_within_item", WHY).startswith(recorded.NOT_JUDGED)
    assert recorded.say(got, "no_such_claim", WHY) == "not measured in this run"


def test_within_item_grid_is_reading_by_scoring():
    got = {
        "fig6_rel_within_item_choice": _claim("fig6_rel_within_item_choice", -0.099, "not reproduced", -0.148, -0.049)
    }
    table = recorded.claim_grid(got, cg.WITHIN_ITEM_IDS, WHY, "reading")
    assert list(table.index) == ["absolute", "relative"] and list(table.columns) == ["greedy", "choice"]
    assert table.loc["relative", "choice"] == "-0.099 [-0.15, -0.049], not reproduced"
    assert table.loc["absolute", "greedy"].startswith(recorded.NOT_JUDGED)
