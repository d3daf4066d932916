"""Chapter 3's experiment module (experiments/intrinsic_dimension.py): the claim policy, `claim_values` on small
hand-made rows with known answers, a run's parts missing, too few prompts, the rows file round trip, and `run` on
a tiny model. Fast tier: no bundled model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from icl_geometry.core.verdicts import check_declared, judge_claim
from icl_geometry.experiments import base
from icl_geometry.experiments import intrinsic_dimension as ex

N_PROMPTS = ex.MIN_PROMPTS  # 20: the fewest prompts the LLM claims are judged on
CONFIG = {"seed": 0, "n_boot": 50, "shots": [0, 2, 10], "n_prompts": N_PROMPTS, "eps": 0.1}
LAST = 2  # layers 0, 1, 2


def _attention(n_prompts: int = N_PROMPTS) -> pd.DataFrame:
    """20 prompts, 3 layers, 0/2/10 shots. At 10 shots every prompt's absolute count falls by 2 at layer 0 and is
    unchanged at the last layer; the relative count rises by 7 at the last layer and by 30 at layer 0."""
    rows = []
    for k in CONFIG["shots"]:
        for prompt in range(n_prompts):
            for layer in range(3):
                grow = k // 10  # 1 at 10 shots, 0 otherwise
                rows.append({"shots": k, "prompt": prompt, "layer": layer,
                             "abs": 5 + prompt - 2 * grow * (layer == 0),
                             "rel": 10 + prompt + grow * (30 if layer == 0 else 7 if layer == LAST else 0),
                             "eff": 1.5 + 0.25 * prompt + grow})
    return pd.DataFrame(rows)


def _id_change() -> pd.DataFrame:
    rows = []
    for layer in (0, LAST):
        for k in (2, 10):
            for method, change in (("twonn", 0.5 + k / 10), ("mle", -0.25 + layer)):
                rows.append({"method": method, "layer": layer, "condition_a": "0 shots",
                             "condition_b": f"{k} shots", "change": change, "low": change - 0.5,
                             "high": change + 0.5, "id_a": 4.0, "id_b": 4.0 + change})
    for method, (a, b, change) in (("twonn", ("0 shots", ex.RANDOM, 3.0)), ("twonn", (ex.RANDOM, "10 shots", -1.0)),
                                   ("mle", ("0 shots", ex.RANDOM, 1.0)), ("mle", (ex.RANDOM, "10 shots", 0.5))):
        rows.append({"method": method, "layer": LAST, "condition_a": a, "condition_b": b, "change": change,
                     "low": change - 0.1, "high": change + 0.2, "id_a": 5.0, "id_b": 5.0 + change})
    return pd.DataFrame(rows)


MATCHED, SHUFFLED = ex.CONTEXT_LABELS["matched_random"], ex.CONTEXT_LABELS["shuffled"]
# 10 shots minus each control at the last layer: TwoNN, MLE (the id_change rows) and ID_eps absolute (per prompt)
CONTROL_CHANGES = {ex.RANDOM: (-1.0, 0.5, 4), MATCHED: (0.1, 0.75, 3), SHUFFLED: (2.0, -0.5, 0)}


def _control_rows(n_prompts: int = N_PROMPTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The controls' `id_change` rows (matched and shuffled; the random ones are in `_id_change`) and their
    `control_attention` rows: every prompt's absolute count at the last layer is the 10-shot one minus the
    control's entry of CONTROL_CHANGES, its relative count the 10-shot one minus 1."""
    geo = []
    for label in (MATCHED, SHUFFLED):
        for method, change in zip(("twonn", "mle"), CONTROL_CHANGES[label][:2]):
            geo += [{"method": method, "layer": LAST, "condition_a": "0 shots", "condition_b": label, "change": 0.1,
                     "low": -0.4, "high": 0.6, "id_a": 4.0, "id_b": 4.1},
                    {"method": method, "layer": LAST, "condition_a": label, "condition_b": "10 shots",
                     "change": change, "low": change - 0.2, "high": change + 0.2, "id_a": 5.0, "id_b": 5.0 + change}]
    shots = _attention(n_prompts)
    shots = shots[shots.shots == 10].drop(columns="shots")
    frames = []
    for label, (_, _, drop) in CONTROL_CHANGES.items():
        last = shots.layer == LAST
        frames.append(shots.assign(abs=np.where(last, shots["abs"] - drop, shots["abs"]),
                                   rel=np.where(last, shots["rel"] - 1, shots["rel"])).assign(context=label))
    attention = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(geo), attention[["context", "prompt", "layer", "abs", "rel", "eff"]]


def _correlation() -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "attention": a, "rho": r, "low": r - 0.3, "high": r + 0.3}
                         for m, base_rho in (("twonn", 0.4), ("mle", -0.9)) for a, r in
                         (("abs", base_rho), ("rel", base_rho - 0.5), ("eff", base_rho + 0.1))])


def _rows(n_prompts: int = N_PROMPTS, **drop: bool) -> pd.DataFrame:
    ctrl_geo, ctrl_attention = _control_rows(n_prompts)
    parts = {
        "known_answer": pd.DataFrame([{"manifold": "subspace", "d": 5, "D": 50, "n": 2000, "estimator": "TwoNN",
                                       "estimate": 5.1, "low": 4.8, "high": 5.3}]),
        "skdim": pd.DataFrame({"manifold": ["sphere", "sphere", "curved"], "d": [2, 2, 5], "D": [3, 3, 100],
                               "n": [250, 250, 250], "estimator": ["TwoNN", "MLE k=20", "TwoNN"],
                               "ours": [2.0, 2.2, 5.0], "skdim": [2.0, 2.0, 5.0]}),
        "attention": _attention(n_prompts), "id_change": pd.concat([_id_change(), ctrl_geo], ignore_index=True),
        "layer_correlation": _correlation(), "control_attention": ctrl_attention,
    }
    return base.stack(**{name: frame for name, frame in parts.items() if not drop.get(name)})


N_CONTROL = ex.MIN_CONTROL_PROMPTS  # 60: the fewest prompts the diversity-matched control claims are judged on
CONFIG_60 = {**CONFIG, "n_prompts": N_CONTROL}
CONTROL_CLAIMS = {f"{m}_last_layer_shots_minus_{c}" for m in ("twonn", "mle", "id_eps_abs")
                  for c in ("matched_random", "shuffled")}


def test_every_claim_from_full_rows_in_declared_order():
    values = ex.claim_values(_rows(N_CONTROL), CONFIG_60)
    check_declared(ex.CLAIMS, values)
    assert set(values) == set(ex.CLAIMS)
    assert len(ex.CLAIMS) == 18
    at_20 = ex.claim_values(_rows(), CONFIG)  # the controls' claims need 60 prompts; the others keep their 20
    assert set(at_20) == set(ex.CLAIMS) - CONTROL_CLAIMS
    assert list(ex.CLAIMS)[:2] == ["twonn_5d_subspace_in_r50", "max_rel_diff_vs_skdim"]


def test_known_answer_and_the_largest_relative_difference_to_skdim():
    values = ex.claim_values(_rows(), CONFIG)
    assert values["twonn_5d_subspace_in_r50"].value == 5.1
    assert values["twonn_5d_subspace_in_r50"].interval == (4.8, 5.3)
    assert values["max_rel_diff_vs_skdim"].value == pytest.approx(0.1)  # |2.2 - 2| / 2
    assert values["max_rel_diff_vs_skdim"].interval is None
    assert judge_claim(ex.CLAIMS["max_rel_diff_vs_skdim"], values["max_rel_diff_vs_skdim"])[0] == "not reproduced"


def test_attention_count_changes_are_paired_over_prompts():
    """Every prompt moves by the same amount, so the mean and both ends of the bootstrap interval equal it."""
    values = ex.claim_values(_rows(), CONFIG)
    expect = {"id_eps_abs_first_layer_rise": -2.0, "id_eps_abs_last_layer_rise": 0.0,
              "id_eps_rel_first_layer_rise": 30.0, "id_eps_rel_last_layer_rise": 7.0}
    for cid, v in expect.items():
        assert values[cid].value == v and values[cid].interval == (v, v), cid
        assert "10 vs 0 shots" in values[cid].note
    first_abs = ex.CLAIMS["id_eps_abs_first_layer_rise"]
    assert first_abs.forced_by and first_abs.kind == "paper"
    assert judge_claim(first_abs, values["id_eps_abs_first_layer_rise"])[0] == "not reproduced"
    assert judge_claim(ex.CLAIMS["id_eps_abs_last_layer_rise"],
                       values["id_eps_abs_last_layer_rise"])[0] == "inconclusive"  # interval (0, 0)
    assert judge_claim(ex.CLAIMS["id_eps_rel_last_layer_rise"],
                       values["id_eps_rel_last_layer_rise"])[0] == "reproduced"


def test_geometric_claims_pick_the_right_comparison():
    values = ex.claim_values(_rows(), CONFIG)
    assert values["twonn_last_layer_rise"].value == 1.5  # 0.5 + 10 / 10, last layer, 10 vs 0 shots
    assert values["twonn_last_layer_rise"].interval == (1.0, 2.0)
    assert values["mle_last_layer_rise"].value == -0.25 + LAST
    assert values["twonn_last_layer_shots_minus_random"].value == -1.0
    assert values["twonn_last_layer_shots_minus_random"].interval == (-1.1, -0.8)
    assert values["mle_last_layer_shots_minus_random"].value == 0.5
    assert "MLE k=10 of the last layer" in values["mle_last_layer_shots_minus_random"].note  # 20 prompts
    assert values["spearman_twonn_change_vs_id_eps_change_abs"].value == 0.4  # TwoNN rows only, not MLE's
    assert values["spearman_twonn_change_vs_id_eps_change_rel"].value == pytest.approx(-0.1)
    assert "over the 3 layers" in values["spearman_twonn_change_vs_id_eps_change_abs"].note


def test_missing_parts_give_only_the_claims_they_allow():
    only_skdim = ex.claim_values(base.stack(skdim=base.part(_rows(), "skdim")), CONFIG)
    assert set(only_skdim) == {"max_rel_diff_vs_skdim"}
    no_attention = ex.claim_values(_rows(attention=True), CONFIG)
    assert {"twonn_last_layer_shots_minus_random", "mle_last_layer_shots_minus_random",
            "spearman_twonn_change_vs_id_eps_change_abs"} <= set(no_attention)
    assert not any(cid.startswith(("id_eps_", "twonn_last_layer_rise", "mle_last_layer_rise")) for cid in no_attention)
    assert "over the layers" in no_attention["spearman_twonn_change_vs_id_eps_change_abs"].note
    no_llm = ex.claim_values(_rows(attention=True, id_change=True, layer_correlation=True), CONFIG)
    assert set(no_llm) == {"twonn_5d_subspace_in_r50", "max_rel_diff_vs_skdim"}


def test_changes_table_order_and_base():
    table = ex.changes_table(_attention(), _id_change(), CONFIG)
    assert list(table.measure[:5]) == ["ID_eps absolute", "ID_eps relative", "effective degree", "TwoNN", "MLE k=10"]
    assert len(table) == 2 * 2 * 5  # layers 0 and last, 2 and 10 shots, five measures
    first = table[(table.layer == 0) & (table.shots == 10)].set_index("measure")
    assert first.loc["ID_eps absolute", "base"] == 14.5  # mean of 5, 6, ..., 24 at 0 shots
    assert first.loc["effective degree", "change"] == pytest.approx(1.0)
    assert first.loc["TwoNN", "base"] == 4.0


def test_length_control_table():
    table = ex.length_control_table(_id_change(), CONFIG)
    assert list(table.comparison) == ["random control minus 0 shots", "10 shots minus random control"] * 2
    assert list(table.measure) == ["TwoNN", "TwoNN", "MLE k=10", "MLE k=10"]


def test_rows_file_round_trip(tmp_path):
    rows = _rows()
    path = base.save_rows(rows, tmp_path / "03.json")
    again = ex.claim_values(base.load_rows(path), json.loads(json.dumps(CONFIG)))
    for cid, m in ex.claim_values(rows, CONFIG).items():
        assert again[cid].value == pytest.approx(m.value, rel=1e-12, abs=1e-15), cid
        if m.interval is not None:
            assert again[cid].interval == pytest.approx(m.interval, rel=1e-12, abs=1e-15), cid


def test_the_claim_policy():
    """Paper claims: the absolute reading (the paper's text) is primary, the relative one supporting; every claim
    says what would have counted against it and where it is measured; the LLM claims need 20 prompts; shots
    minus random tokens is confounded by the control's diversity."""
    for cid, spec in ex.CLAIMS.items():
        assert spec.against and spec.section in ex.SECTIONS.values(), cid
        if spec.kind == "paper":
            assert spec.basis == "empirical" and spec.min_n == ex.MIN_PROMPTS, cid
            assert spec.role == ("primary" if "_abs_" in cid else "supporting"), cid
    assert all(ex.CLAIMS[f"{m}_last_layer_shots_minus_random"].confounded_by for m in ("twonn", "mle"))
    for cid in CONTROL_CLAIMS:  # issue 28: matched in diversity, so not confounded by it; judged from 60 prompts
        spec = ex.CLAIMS[cid]
        assert spec.kind == "ours" and not spec.confounded_by and spec.min_n == 60 and spec.null_margin, cid
        assert spec.role == ("primary" if "matched" in cid else "supporting") and spec.direction == "greater", cid
    counted = [cid for cid, s in ex.CLAIMS.items() if s.kind == "paper" and s.role == "primary" and not s.forced_by
               and not s.confounded_by]
    assert counted == ["id_eps_abs_last_layer_rise"]


def test_too_few_prompts_leave_the_llm_claims_unjudged():
    rows = _rows()
    attention = base.part(rows, "attention")
    fewer = base.stack(**{name: (attention[attention.prompt < N_PROMPTS - 1] if name == "attention"
                                 else base.part(rows, name)) for name in rows[base.PART].unique()})
    values = ex.claim_values(fewer, {**CONFIG, "n_prompts": N_PROMPTS - 1})
    assert set(values) == {"twonn_5d_subspace_in_r50", "max_rel_diff_vs_skdim"}


def test_run_on_a_tiny_model_gives_rows_claim_values_accepts(tmp_path, monkeypatch):
    """The whole chapter on a tiny random Llama (tests/fixtures) and the smallest sizes: every part is there
    and every claim comes out (values of a random model mean nothing; the shape of the protocol does)."""
    from fixtures import tiny

    model = tiny.save_tiny_model(tmp_path / "tiny", "llama", layers=4)
    config = {"seed": 0, "n_boot": 10, "shots": [0, 2], "sample_sizes": [250], "model": str(model),
              "device": "cpu", "family": "word_problems", "n_prompts": 8, "tail_tokens": 4, "eps": 0.1,
              "disjoint_shots": True}
    rows = ex.run(config)
    assert list(rows[base.PART].unique()) == ["known_answer", "skdim", "attention", "id_change", "layer_correlation",
                                              "control_attention"]
    assert len(base.part(rows, "attention")) == 2 * 8 * 4  # shots x prompts x layers
    ctrl = base.part(rows, "control_attention")
    disjoint = ex.CONTEXT_LABELS["disjoint_shots"]
    assert list(ctrl.context.unique()) == [ex.RANDOM, MATCHED, SHUFFLED, disjoint] and len(ctrl) == 4 * 8 * 4
    ic = base.part(rows, "id_change")
    assert list(ic.condition_b.unique()) == ["2 shots", ex.RANDOM, MATCHED, SHUFFLED, disjoint]
    assert len(ex.control_table(rows, config)) == 5 * 4  # 4 contexts and disjoint minus random, 4 measures
    assert set(ex.claim_values(rows, config)) == {"twonn_5d_subspace_in_r50", "max_rel_diff_vs_skdim"}  # 8 prompts
    monkeypatch.setattr(ex, "CLAIMS", {cid: replace(s, min_n=0) for cid, s in ex.CLAIMS.items()})
    values = ex.claim_values(rows, config)
    assert set(values) == set(ex.CLAIMS)
    assert all(np.isfinite(m.value) for m in values.values())
    assert "2 vs 0 shots" in values["twonn_last_layer_rise"].note  # ids keep their ci names for now


def test_control_claims_pick_their_comparison():
    values = ex.claim_values(_rows(N_CONTROL), CONFIG_60)
    for label, control in ((MATCHED, "matched_random"), (SHUFFLED, "shuffled")):
        twonn, mle, drop = CONTROL_CHANGES[label]
        assert values[f"twonn_last_layer_shots_minus_{control}"].value == twonn
        assert values[f"twonn_last_layer_shots_minus_{control}"].interval == (twonn - 0.2, twonn + 0.2)
        assert values[f"mle_last_layer_shots_minus_{control}"].value == mle
        abs_claim = values[f"id_eps_abs_last_layer_shots_minus_{control}"]
        assert abs_claim.value == drop and abs_claim.interval == (drop, drop), control  # every prompt moves alike
        assert f"10 shots minus the {label}" in abs_claim.note and "60 prompts" in abs_claim.note
    assert "MLE k=20" in values["mle_last_layer_shots_minus_matched_random"].note  # 60 prompts: k = 20
    verdicts = {cid: judge_claim(ex.CLAIMS[cid], values[cid])[0] for cid in CONTROL_CLAIMS}
    assert verdicts == {"twonn_last_layer_shots_minus_matched_random": "no effect",  # [-0.1, 0.3] inside 0.5
                        "mle_last_layer_shots_minus_matched_random": "reproduced",
                        "id_eps_abs_last_layer_shots_minus_matched_random": "reproduced",
                        "twonn_last_layer_shots_minus_shuffled": "reproduced",
                        "mle_last_layer_shots_minus_shuffled": "not reproduced",
                        "id_eps_abs_last_layer_shots_minus_shuffled": "no effect"}  # (0, 0) inside 1


def test_control_table_every_context_and_measure():
    table = ex.control_table(_rows(N_CONTROL), CONFIG_60)
    comparisons = [f"10 shots minus {label}" for label in (ex.RANDOM, MATCHED, SHUFFLED)]
    assert list(dict.fromkeys(table.comparison)) == comparisons
    assert list(table.measure[:4]) == ["ID_eps absolute", "ID_eps relative", "TwoNN", "MLE k=20"]
    assert len(table) == 3 * 4 and set(table.n_prompts) == {N_CONTROL}
    rel = table[table.measure == "ID_eps relative"]
    assert list(rel.change) == [1.0] * 3  # the relative count is one key lower in every control
    random_abs = table[(table.context == ex.RANDOM) & (table.measure == "ID_eps absolute")].iloc[0]
    assert random_abs.change == 4 and random_abs.level_b - random_abs.level_a == 4
    assert random_abs.level_b == np.mean(5 + np.arange(N_CONTROL))  # 10 shots, last layer: 5 + prompt
    geo = table[(table.context == ex.RANDOM) & (table.measure == "TwoNN")].iloc[0]
    assert (geo.change, geo.low, geo.high, geo.level_a) == (-1.0, -1.1, -0.8, 5.0)  # the random id_change row


def test_control_table_and_findings_from_older_rows():
    """Rows without the controls' attention (an older run): the geometric rows of the random control only."""
    rows = _rows(control_attention=True)
    ic = base.part(rows, "id_change")
    older = base.stack(**{name: (ic[~ic.condition_a.isin([MATCHED, SHUFFLED])] if name == "id_change"
                                 else base.part(rows, name)) for name in rows[base.PART].unique()})
    table = ex.control_table(older, CONFIG)
    assert list(table.measure) == ["TwoNN", "MLE k=10"] and set(table.context) == {ex.RANDOM}
    assert ex.findings(older, CONFIG)[0].startswith("10 shots minus random control (20 prompts, last layer): TwoNN")
    assert ex.findings(base.stack(skdim=base.part(rows, "skdim")), CONFIG) == []


def test_findings_quote_the_run_and_read_the_controls():
    lines = ex.findings(_rows(N_CONTROL), CONFIG_60)
    assert lines[0].startswith("10 shots minus random control (60 prompts, last layer): ID_eps absolute +4.00 "
                               "[+4.00, +4.00]")
    by_measure = {line.split(":")[0]: line for line in lines[3:-1]}
    assert "goes away once the diversity is matched" in by_measure["TwoNN"]  # -1 [-1.1, -0.8] vs 0.1 [-0.1, 0.3]
    assert "lie below the independent random control and are not separated from the diversity" in by_measure["TwoNN"]
    assert "holds with the diversity matched" in by_measure["MLE k=20"]  # 0.5 [0.4, 0.7] and 0.75 [0.55, 0.95]
    assert "holds with the diversity matched" in by_measure["ID_eps absolute"]
    assert lines[-1] == ("Against their own words shuffled (the same words, no task) the shots are not separated from "
                         "them for ID_eps absolute; lie above them for ID_eps relative; lie above them for TwoNN; lie "
                         "below them for MLE k=20.")
    assert not any("preview" in line for line in lines)
    assert "fewer than the 60" in ex.findings(_rows(), CONFIG)[-1]


def test_disjoint_shots_are_compared_with_the_random_control():
    rows = _rows(N_CONTROL)
    disjoint = ex.CONTEXT_LABELS["disjoint_shots"]
    ic, ctrl = base.part(rows, "id_change"), base.part(rows, "control_attention")
    extra = pd.DataFrame([{"method": m, "layer": LAST, "condition_a": a, "condition_b": b, "change": 0.3, "low": 0.1,
                           "high": 0.5, "id_a": 5.0, "id_b": 5.3}
                          for m in ("twonn", "mle") for a, b in ((disjoint, "10 shots"), (ex.RANDOM, disjoint))])
    more = base.stack(**{**{n: base.part(rows, n) for n in rows[base.PART].unique()},
                         "id_change": pd.concat([ic, extra], ignore_index=True),
                         "control_attention": pd.concat([ctrl, ctrl[ctrl.context == ex.RANDOM].assign(
                             context=disjoint, abs=lambda f: f["abs"] + 1)], ignore_index=True)})
    table = ex.control_table(more, CONFIG_60)
    assert list(dict.fromkeys(table.comparison))[-2:] == ["10 shots minus disjoint shots",
                                                          "disjoint shots minus random control"]
    last = table[table.comparison == "disjoint shots minus random control"].set_index("measure")
    assert last.loc["ID_eps absolute", "change"] == 1 and last.loc["TwoNN", "change"] == 0.3
    assert ex.contexts({"disjoint_shots": True})[-1] == "disjoint_shots" and ex.contexts({}) == ex.CONTROLS


def test_control_changes_name_the_control_and_take_its_last_layer():
    rng = np.random.default_rng(0)
    clouds = {k: torch.as_tensor(rng.normal(size=(2, 8 * 4, 6)), dtype=torch.float32) for k in (0, 10)}
    control = torch.as_tensor(rng.normal(size=(2, 8 * 4, 6)), dtype=torch.float32)
    groups = ex.prompt_groups(8, 4)
    rows = ex.control_changes(clouds, control, groups, 4, MATCHED)
    assert list(rows.condition_a) == ["0 shots", MATCHED] * 2 and list(rows.condition_b) == [MATCHED, "10 shots"] * 2
    assert set(rows.layer) == {1}
    again = ex.control_changes(clouds, control[-1], groups, 4, MATCHED)  # the last layer alone: the same rows
    pd.testing.assert_frame_equal(rows, again)


def test_profiles_judge_the_controls_at_full_and_check_disjoint_shots():
    """The full profile has the prompts the controls' claims need and traces every control and disjoint shots; ci
    leaves the shuffled words out unless asked; a family too small
    for them fails in the first cell, naming the parameter."""
    from icl_geometry.bookkit import profiles

    full = profiles.resolve("03", "full", device="cpu")
    assert full.n_prompts >= ex.MIN_CONTROL_PROMPTS and full.disjoint_shots
    assert ex.contexts(full) == (*ex.CONTROLS, "disjoint_shots")
    # ci traces the two random controls only (the shuffled words are a supporting view, about 35 s)
    assert ex.contexts(profiles.resolve("03", "ci", device="cpu")) == ("random", "matched_random")
    assert ex.contexts(profiles.resolve("03", "ci", device="cpu", shuffled_control=True)) == ex.CONTROLS
    with pytest.raises(ValueError, match="disjoint_shots"):
        profiles.resolve("03", "ci", device="cpu", family="capitals", disjoint_shots=True)


def test_findings_judge_the_controls_on_the_most_shots_rows_not_on_disjoint_shots(monkeypatch):
    import pandas as pd

    def row(comparison, context, low, high):
        return {"comparison": comparison, "context": context, "measure": "TwoNN", "change": (low + high) / 2,
                "low": low, "high": high, "level_a": 7.0, "level_b": 7.0, "n_prompts": 80}

    table = pd.DataFrame([row("10 shots minus random control", ex.RANDOM, -1.0, 2.5),
                          row("10 shots minus matched random control", "matched random control", 0.2, 2.8),
                          row("disjoint shots minus random control", ex.RANDOM, 1.2, 4.9)])
    monkeypatch.setattr(ex, "control_table", lambda rows, config: table)
    lines = ex.findings(None, {})
    assert any(line.startswith("TwoNN: the shots are not separated from the independent random control and lie "
                               "above the diversity-matched one") for line in lines), lines
