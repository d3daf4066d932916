"""Chapter 3's experiment module (experiments/intrinsic_dimension.py): the claim policy, `claim_values` on small
hand-made rows with known answers, a run's parts missing, too few prompts, the rows file round trip, and `run` on
a tiny model. Fast tier: no bundled model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from icl_geometry.core.verdicts import check_declared, judge_claim
from icl_geometry.experiments import base
from icl_geometry.experiments import intrinsic_dimension as ex

N_PROMPTS = ex.MIN_PROMPTS  # 20: the fewest prompts the LLM claims are judged on
CONFIG = {"seed": 0, "n_boot": 50, "shots": [0, 2, 10], "n_prompts": N_PROMPTS, "eps": 0.1}
LAST = 2  # layers 0, 1, 2


def _attention() -> pd.DataFrame:
    """20 prompts, 3 layers, 0/2/10 shots. At 10 shots every prompt's absolute count falls by 2 at layer 0 and is
    unchanged at the last layer; the relative count rises by 7 at the last layer and by 30 at layer 0."""
    rows = []
    for k in CONFIG["shots"]:
        for prompt in range(N_PROMPTS):
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


def _correlation() -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "attention": a, "rho": r, "low": r - 0.3, "high": r + 0.3}
                         for m, base_rho in (("twonn", 0.4), ("mle", -0.9)) for a, r in
                         (("abs", base_rho), ("rel", base_rho - 0.5), ("eff", base_rho + 0.1))])


def _rows(**drop: bool) -> pd.DataFrame:
    parts = {
        "known_answer": pd.DataFrame([{"manifold": "subspace", "d": 5, "D": 50, "n": 2000, "estimator": "TwoNN",
                                       "estimate": 5.1, "low": 4.8, "high": 5.3}]),
        "skdim": pd.DataFrame({"manifold": ["sphere", "sphere", "curved"], "d": [2, 2, 5], "D": [3, 3, 100],
                               "n": [250, 250, 250], "estimator": ["TwoNN", "MLE k=20", "TwoNN"],
                               "ours": [2.0, 2.2, 5.0], "skdim": [2.0, 2.0, 5.0]}),
        "attention": _attention(), "id_change": _id_change(), "layer_correlation": _correlation(),
    }
    return base.stack(**{name: frame for name, frame in parts.items() if not drop.get(name)})


def test_every_claim_from_full_rows_in_declared_order():
    values = ex.claim_values(_rows(), CONFIG)
    check_declared(ex.CLAIMS, values)
    assert set(values) == set(ex.CLAIMS)
    assert len(ex.CLAIMS) == 12
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
              "device": "cpu", "family": "word_problems", "n_prompts": 8, "tail_tokens": 4, "eps": 0.1}
    rows = ex.run(config)
    assert list(rows[base.PART].unique()) == ["known_answer", "skdim", "attention", "id_change", "layer_correlation"]
    assert len(base.part(rows, "attention")) == 2 * 8 * 4  # shots x prompts x layers
    assert set(ex.claim_values(rows, config)) == {"twonn_5d_subspace_in_r50", "max_rel_diff_vs_skdim"}  # 8 prompts
    monkeypatch.setattr(ex, "CLAIMS", {cid: replace(s, min_n=0) for cid, s in ex.CLAIMS.items()})
    values = ex.claim_values(rows, config)
    assert set(values) == set(ex.CLAIMS)
    assert all(np.isfinite(m.value) for m in values.values())
    assert "2 vs 0 shots" in values["twonn_last_layer_rise"].note  # ids keep their ci names for now
