"""Chapter 2's experiment module (`experiments/attention_graphs.py`): the declared claims (and the claim policy:
roles, bases, confounds, minimum sizes), `claim_values` on hand-made rows (known answers for every part, the toy's
contrasts, the width-matched family and the intervention, a table without parts, missing parts, claims below their
minimum size), the rows' CSV round trip, and `run` end to end on a tiny random Llama and a tiny toy grid, resumed
from its checkpoint (fast tier)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from fixtures import tiny
from icl_geometry.core.verdicts import judge_claim, not_snake_case
from icl_geometry.experiments import attention_graphs as ex
from icl_geometry.experiments import base

RECORDED = Path(__file__).resolve().parents[1] / "book" / "recorded" / "02_full_smollm2-135m.json"
TOY_IDS = ["toy_mse_ratio_context_multihead", *ex.TOY_TESTS]
LINK_IDS = [*ex.WIDTH_TESTS, "toy_pca2_refit_mse_ratio"]  # the width-matched family and the intervention
GRAPH_IDS = ["first_layer_attention_more_uniform", "minkowski_membership_fraction", "dimension_minus_bound_max",
             "generic_dimension_equals_tight_bound", "fixed_support_rank_minus_tight_bound",
             "fixed_support_twonn_over_bound_max", "fixed_support_spearman_twonn_vs_bound", "temperature_rank_range",
             "temperature_spearman_id_eps", "top_k_cloud_rank_over_per_query_bound", "real_layer_rebuilt_from_heads",
             "real_layer_eps0_in_minkowski_sum"]
CONFIG = {"seed": 0, "eps": 0.1, "model": "tiny"}


def toy_rows() -> pd.DataFrame:
    """Kept fits of 3 seeds on heads {1, 2} x contexts {1, 10}, and one non-kept restart that must be ignored."""
    mse = {(1, 1): [0.4, 0.2, 0.3], (1, 10): [0.1, 0.1, 0.05], (2, 1): [0.3, 0.3, 0.3], (2, 10): [0.01, 0.02, 0.04]}
    pieces = {(1, 1): [15, 17, 16], (1, 10): [20, 22, 18], (2, 1): [14, 16, 15], (2, 10): [25, 30, 27]}
    rows = []
    for (h, c), values in mse.items():
        for s in range(3):
            rows.append(dict(heads=h, context=c, seed=s, restart=0, kept=True, train_mse=values[s], val_mse=values[s],
                             test_mse=values[s], pieces=pieces[(h, c)][s], distinct=pieces[(h, c)][s] - 2,
                             rank=2 if c == 1 else 8 * h, eff_dim=(1.5 + s / 10) if c == 1 else 2.5 * h, probe_mse=0.5))
            rows.append({**rows[-1], "restart": 1, "kept": False, "test_mse": 99.0, "pieces": 1000, "eff_dim": 0.0})
    return pd.DataFrame(rows)


def separate_rows() -> pd.DataFrame:
    """Separate networks (1 head) for contexts 1 and 10: median test MSE 0.2 and 0.5."""
    t = toy_rows()
    t = t[t.heads == 1].copy()
    t.loc[t.kept & (t.context == 1), "test_mse"] = [0.1, 0.2, 0.3]
    t.loc[t.kept & (t.context == 10), "test_mse"] = [0.5, 0.4, 0.9]
    return t.reset_index(drop=True)


def graph_parts() -> dict[str, pd.DataFrame]:
    """Hand-made rows of sections 1 and 2 with known answers."""
    eps_col = ex.id_eps_column(0.1)
    return {
        "uniformity": pd.DataFrame(
            {
                "head": [0, 1, 2, 3],
                "first_layer": [0.8, 0.6, 0.7, 0.5],
                "last_layer": [0.2, 0.3, 0.1, 0.2],
                "last_layer_index": 29,
            }
        ),
        "minkowski": pd.DataFrame(
            {
                "trial": [0, 0, 1, 1],
                "in Minkowski sum": [True, True, True, False],
                "dimension": [2, 3, 1, 4],
                "tight bound": [2, 3, 2, 4],
                "theorem bound": [4, 6, 2, 5],
            }
        ),
        "fixed_support": pd.DataFrame(
            {
                "H": [1, 1, 1, 1, 2, 2, 2, 2],
                "k": [1, 2, 3, 4, 1, 2, 3, 4],
                "rank": [0, 1, 2, 3, 0, 3, 4, 6],
                "TwoNN": [0.0, 1.0, 1.8, 2.5, 0.5, 3.0, 3.5, 5.5],
                "theorem bound": [1, 2, 3, 4, 2, 4, 6, 8],
                "tight bound": [0, 1, 2, 3, 0, 2, 4, 6],
            }
        ),
        "temperature": pd.DataFrame(
            {
                "H": 2,
                "tau": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0],
                "rank": [14, 14, 14, 14, 14, 13, 14],
                eps_col: [1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 16.0],
            }
        ),
        "top_k": pd.DataFrame({"H": 2, "k": [2, 4], "rank": [32, 40], "per-query theorem bound": [4, 8]}),
        "real_layers": pd.DataFrame({"layer": [0, 29], "reconstruction_error": [1e-6, 2e-4]}),
        "real_rows": pd.DataFrame(
            {
                "layer": [0, 0, 29, 29, 29],
                "eps": [0.0, 0.1, 0.0, 0.0, 0.1],
                "relative residual": [1e-9, 0.3, 1e-6, 1e-3, 0.5],
            }
        ),
    }


def width_rows() -> pd.DataFrame:
    """The width-matched family (heads x d_head = 8): the toy rows' numbers with heads 2 read as 4 heads of width 2
    and heads 1 as one head of width 8."""
    t = toy_rows()
    d_head = np.where(t.heads == 1, 8, 2)
    t = t.assign(heads=np.where(t.heads == 1, 1, 4))
    t = t.assign(eff_dim=np.where(t.context == 10, 2.0 * t.heads, t.eff_dim))  # 2 and 8 at context 10
    t.insert(1, "d_head", d_head)
    return t


REFIT_RATIOS = [1.1, 1.3, 0.9, 5.0, 8.0, 3.0]  # projected / control at context 16, heads 1 then 4, seeds 0-2


def intervention_rows() -> pd.DataFrame:
    """Refits of 6 networks (heads 1 and 4 x 3 seeds) at contexts 1 (ratio 1: a planar input) and 16."""
    rows = []
    for i, (h, seed) in enumerate((h, s) for h in (1, 4) for s in range(3)):
        for c, ratio in ((1, 1.0), (16, REFIT_RATIOS[i])):
            control = 0.01 * (i + 1)
            rows.append(dict(heads=h, context=c, seed=seed, restart=0, components=2, explained=0.9,
                             original_mse=control, control_mse=control, projected_mse=control * ratio,
                             control_train_mse=control,
                             projected_train_mse=control * ratio, control_pieces=15, projected_pieces=12))
    return pd.DataFrame(rows)


def stacked() -> pd.DataFrame:
    return base.stack(toy_grid=toy_rows(), **graph_parts(), separate=separate_rows(), width_matched=width_rows(),
                      intervention=intervention_rows())


@pytest.fixture(scope="module")
def values():
    """Every claim the hand-made stacked rows can judge (computed once)."""
    return ex.claim_values(stacked(), CONFIG)


# 2 heads x 3 seeds = 6 networks: the toy's Spearman claims need 10 (MIN_NETWORKS) and are not judged
TOO_FEW_NETWORKS = ["toy_spearman_pieces_vs_heads", "toy_spearman_pieces_vs_context"]


def test_claims_are_declared_in_the_notebooks_order():
    assert list(ex.CLAIMS) == [*GRAPH_IDS, *TOY_IDS, "toy_separate_mse_ratio_context", *LINK_IDS]
    assert not not_snake_case(ex.CLAIMS)
    assert ex.CLAIMS["toy_mse_ratio_context_multihead"].paper == (
        "A, Fig. 4: a longer context gives the same network a better fit")
    assert ex.CLAIMS["first_layer_attention_more_uniform"].paper == \
        "A, Sec. 3 (observation): first-layer attention is near-uniform (flatter than the last layer's)"
    forced = {cid for cid, s in ex.CLAIMS.items() if s.forced_by}
    assert forced == {"fixed_support_spearman_twonn_vs_bound", "temperature_spearman_id_eps"}
    kinds = pd.Series({cid: s.kind for cid, s in ex.CLAIMS.items()}).value_counts().to_dict()
    assert kinds == {"paper": 15, "check": 9, "ours": 3}


def test_the_claim_policy():
    """Every paper claim has a role, a basis, what would have counted against it, a minimum size and the section
    that measures it; the grid's heads claims are confounded (head width is not matched) and supporting, their
    width-matched versions are not confounded and primary; the toy's counted claims are its context claims (one
    network read with more tokens) and the width-matched heads claims; each paper statement has one primary."""
    paper = {cid: s for cid, s in ex.CLAIMS.items() if s.kind == "paper"}
    for cid, s in ex.CLAIMS.items():
        assert s.against and s.section in ex.SECTIONS.values(), cid
        if s.kind == "paper":
            assert s.role in ("primary", "supporting") and s.basis in ("derived", "empirical") and s.min_n, cid
    heads = {cid for cid in paper if "heads" in cid and "width_matched" not in cid}
    assert heads and all(ex.CLAIMS[cid].confounded_by and ex.CLAIMS[cid].role == "supporting" for cid in heads)
    assert all(not ex.CLAIMS[cid].confounded_by and ex.CLAIMS[cid].role == "primary" for cid in ex.WIDTH_TESTS)
    pca = ex.CLAIMS["toy_pca2_refit_mse_ratio"]
    assert pca.kind == "ours" and pca.direction == "greater" and pca.threshold == 1.0 and pca.null_margin == 0.1
    assert pca.min_n == ex.MIN_REFITS
    counted = [cid for cid, s in paper.items() if s.role == "primary" and not s.forced_by and not s.confounded_by]
    assert counted == ["first_layer_attention_more_uniform", "toy_mse_ratio_context_multihead",
                       "toy_pieces_gain_context", "toy_dim_gain_context", *ex.WIDTH_TESTS]
    primaries = pd.Series({cid: (s.source, "heads" in cid) for cid, s in paper.items() if s.role == "primary"})
    assert primaries.is_unique  # one primary per statement (source and knob)
    assert ex.CLAIMS["fixed_support_spearman_twonn_vs_bound"].basis == "derived"


def test_every_claim_from_a_stacked_table_in_claims_order(values):
    assert list(values) == [cid for cid in ex.CLAIMS if cid not in TOO_FEW_NETWORKS]
    for cid, m in values.items():
        judge_claim(ex.CLAIMS[cid], m)  # every measurement is judged under its spec without error


def test_graph_claims_known_answers(values):
    v = values
    assert v["first_layer_attention_more_uniform"].value == pytest.approx(0.65 / 0.2)
    lo, hi = v["first_layer_attention_more_uniform"].interval
    assert lo <= 0.65 / 0.2 <= hi and "4 heads" in v["first_layer_attention_more_uniform"].note
    assert v["minkowski_membership_fraction"].value == 0.75
    assert "4 rows of 2 random causal layers" in v["minkowski_membership_fraction"].note
    assert v["dimension_minus_bound_max"].value == -1.0  # max(2-4, 3-6, 1-2, 4-5)
    assert v["generic_dimension_equals_tight_bound"].value == 0.75
    assert v["fixed_support_rank_minus_tight_bound"].value == 1.0
    assert v["fixed_support_twonn_over_bound_max"].value == 0.75
    fixed = graph_parts()["fixed_support"]
    rho = sst.spearmanr(fixed["theorem bound"], fixed["TwoNN"]).statistic
    assert v["fixed_support_spearman_twonn_vs_bound"].value == pytest.approx(rho)
    assert v["temperature_rank_range"].value == 1.0
    assert v["temperature_spearman_id_eps"].value == 1.0 and v["temperature_spearman_id_eps"].interval == (1.0, 1.0)
    assert v["top_k_cloud_rank_over_per_query_bound"].value == 8.0
    assert v["top_k_cloud_rank_over_per_query_bound"].note.startswith("top-2:")
    assert v["real_layer_rebuilt_from_heads"].value == 0.5  # 2e-4 is above the 1e-4 tolerance
    assert "[0, 29]" in v["real_layer_rebuilt_from_heads"].note
    assert v["real_layer_eps0_in_minkowski_sum"].value == pytest.approx(2 / 3)  # eps = 0 rows only
    assert judge_claim(ex.CLAIMS["real_layer_eps0_in_minkowski_sum"], v["real_layer_eps0_in_minkowski_sum"])[0] == \
        "not reproduced"


def gmean(x) -> float:
    return float(np.exp(np.mean(np.log(x))))


def test_toy_claims_known_answers(values):
    """Ratios of MSEs are geometric means over seeds (paired: of each network's ratio), differences are means."""
    expect = {
        "toy_mse_ratio_context": gmean([0.1 / 0.4, 0.1 / 0.2, 0.05 / 0.3]),
        "toy_mse_ratio_heads": gmean([0.01, 0.02, 0.04]) / gmean([0.1, 0.1, 0.05]),
        "toy_pieces_gain_context": 20 - 16,
        "toy_pieces_gain_heads": 27 + 1 / 3 - 20,
        "toy_distinct_gain_heads": 27 + 1 / 3 - 20,
        "toy_dim_gain_context": 2.5 - 1.6,
        "toy_dim_gain_heads": 5.0 - 2.5,
        "toy_separate_mse_ratio_context": gmean([0.5, 0.4, 0.9]) / gmean([0.1, 0.2, 0.3]),
        "toy_mse_ratio_heads_width_matched": gmean([0.01, 0.02, 0.04]) / gmean([0.1, 0.1, 0.05]),
        "toy_pieces_gain_heads_width_matched": 27 + 1 / 3 - 20,
        "toy_dim_gain_heads_width_matched": 8.0 - 2.0,
        "toy_pca2_refit_mse_ratio": gmean(REFIT_RATIOS),
    }
    for cid, value in expect.items():
        m = values[cid]
        assert m.value == pytest.approx(value), cid
        assert m.interval[0] <= m.value <= m.interval[1], cid
    # the paired context claim: a Student-t interval on 2 degrees of freedom over the seeds' log ratios
    d = np.log([0.1 / 0.4, 0.1 / 0.2, 0.05 / 0.3])
    half = sst.t.ppf(0.95, 2) * d.std(ddof=1) / np.sqrt(3)
    assert values["toy_mse_ratio_context"].interval == pytest.approx(tuple(np.exp([d.mean() - half, d.mean() + half])))
    assert "paired" in values["toy_mse_ratio_context"].note and "Student-t" in values["toy_mse_ratio_context"].note
    assert "Welch" in values["toy_mse_ratio_heads"].note
    assert values["toy_separate_mse_ratio_context"].note.startswith("1 head(s), separate networks per context")
    assert values["toy_mse_ratio_heads_width_matched"].note.startswith(
        "context 10: geometric mean test MSE, 4 heads of width 2 / 1 of width 8 (heads x d_head = 8)")
    assert "Welch" in values["toy_mse_ratio_heads_width_matched"].note
    assert values["toy_pieces_gain_heads_width_matched"].note.startswith("context 10: mean pieces, 4 heads of width 2 "
                                                                         "minus 1 of width 8")
    # the intervention: a Student-t interval on 5 degrees of freedom over the networks' log ratios at context 16
    d = np.log(REFIT_RATIOS)
    half = sst.t.ppf(0.95, 5) * d.std(ddof=1) / np.sqrt(6)
    assert values["toy_pca2_refit_mse_ratio"].interval == pytest.approx(tuple(np.exp([d.mean() - half,
                                                                                       d.mean() + half])))
    assert "6 networks (heads 1-4 x seeds), context 16" in values["toy_pca2_refit_mse_ratio"].note
    assert not set(TOO_FEW_NETWORKS) & set(values)


def test_toy_spearman_claims_need_ten_networks_and_jackknife_over_them():
    """With 5 seeds per heads setting (10 networks) the Spearman claims are judged: the value is the Spearman over
    the kept cells, the interval a jackknife over whole networks (all contexts of one network left out together)."""
    t = toy_rows().query("kept")
    more = pd.concat([t, *(t.assign(seed=t.seed + 3 * j, pieces=t.pieces + j) for j in (1, 2))], ignore_index=True)
    more = more[more.seed < 5]
    values = ex.claim_values(more, CONFIG)
    for knob in ("heads", "context"):
        m = values[f"toy_spearman_pieces_vs_{knob}"]
        assert m.value == pytest.approx(sst.spearmanr(more[knob], more.pieces).statistic)
        assert m.interval[0] < m.value < m.interval[1] and "10 networks" in m.note and "jackknife" in m.note


def test_a_table_without_parts_is_the_toy_grid_alone(values):
    plain = ex.claim_values(toy_rows(), CONFIG)
    assert list(plain) == [cid for cid in TOY_IDS if cid not in TOO_FEW_NETWORKS]
    assert plain == {cid: m for cid, m in values.items() if cid in TOY_IDS}
    assert ex.toy_grid_rows(stacked()).equals(ex.toy_grid_rows(toy_rows()))


def test_missing_parts_and_a_single_heads_setting_leave_their_claims_out():
    some = graph_parts()
    rows = base.stack(toy_grid=toy_rows()[toy_rows().heads == 1], uniformity=some["uniformity"], top_k=some["top_k"])
    values = ex.claim_values(rows, CONFIG)
    context_claims = [cid for cid, t in ex.TOY_TESTS.items() if t[1] == "context" and cid not in TOO_FEW_NETWORKS]
    assert list(values) == ["first_layer_attention_more_uniform", "top_k_cloud_rank_over_per_query_bound",
                            *context_claims]


def test_claims_below_their_minimum_size_are_not_judged():
    """Two seeds, three heads, four settings, five refitted networks: under every minimum (3 seeds, 4 heads, 7
    settings, 6 networks)."""
    parts = graph_parts()
    rows = base.stack(toy_grid=toy_rows().query("seed < 2"), uniformity=parts["uniformity"].iloc[:3],
                      fixed_support=parts["fixed_support"].iloc[:4], temperature=parts["temperature"].iloc[:4],
                      separate=separate_rows().query("seed < 2"), width_matched=width_rows().query("seed < 2"),
                      intervention=intervention_rows().iloc[:-1])
    values = ex.claim_values(rows, CONFIG)
    assert list(values) == ["fixed_support_rank_minus_tight_bound", "fixed_support_twonn_over_bound_max",
                            "temperature_rank_range"]


def test_rows_survive_the_csv_and_give_the_same_claims(tmp_path, values):
    path = base.save_rows(stacked(), tmp_path / "02.json")
    assert path.name == "02_rows.csv.gz"
    back = base.load_rows(tmp_path / "02.json")
    assert list(back[base.PART].unique()) == ["toy_grid", *graph_parts(), "separate", "width_matched", "intervention"]
    assert ex.claim_values(back, CONFIG) == values


def test_the_recorded_full_run_recomputes_from_its_rows():
    """The recorded full run (every part, the 8-seed grid): every claim it recorded, to 1e-9."""
    data = json.loads(RECORDED.read_text())
    values = ex.claim_values(base.load_rows(RECORDED), data["config"])
    recorded = {c["claim_id"]: c for c in data["claims"]}
    assert list(values) == list(ex.CLAIMS) == list(recorded)  # 80 networks: every claim is judged
    assert set(TOY_IDS) <= set(values)
    for cid, m in values.items():
        keys = ("value", "low", "high") if m.interval is not None else ("value",)
        np.testing.assert_allclose([m.value, *(m.interval or ())], [recorded[cid][k] for k in keys],
                                   rtol=1e-9, atol=1e-12, err_msg=cid)
        assert judge_claim(ex.CLAIMS[cid], m)[0] == recorded[cid]["verdict"], cid
        assert ex.CLAIMS[cid].paper == recorded[cid]["paper"] and ex.CLAIMS[cid].kind == recorded[cid]["kind"]


def test_findings_quote_the_rows():
    text = "\n".join(ex.findings(toy_rows(), hidden=8, d_head=8))
    assert "rank of the MLP input rises (2 -> 8)" in text and "rises (2 -> 16)" in text
    assert "no fit has more than 17 pieces" in text and "6 of 6 kept fits use more than 17 pieces" in text
    assert "improves the same networks' median test MSE (0.3 -> 0.1)" in text  # heads 1, context 1 -> 10
    assert "from 0.1 to 0.02" in text  # heads 1 -> 2 at context 10


def test_run_on_a_tiny_model_and_a_tiny_toy_gives_rows_every_claim_accepts(tmp_path, monkeypatch):
    model = tiny.save_tiny_model(tmp_path / "llama", "llama")
    config = {
        "seed": 0,
        "device": "cpu",
        "model": str(model),
        "prompt": "Q : what is 3 + 4 ? A : 7 Q : what is 1 + 2 ? A :",
        "eps": 0.1,
        "n_queries": 60,
        "heads_list": [1, 2],
        "keys_list": [1, 2, 3, 4],
        "temperatures": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0],
        "top_ks": [2, 4],
        "toy_heads": [1, 2],
        "toy_contexts": [1, 3],
        "toy_steps": 3,
        "toy_seeds": 3,
        "toy_restarts": 1,
        "toy_bins": 40,
        "toy_hidden": 4,
        "toy_d_head": 4,
        "toy_width_heads": [1, 2],
        "toy_width": 4,
        "toy_intervention_contexts": [3],
        "toy_refit_steps": 3,
    }
    checkpoint = tmp_path / "02.ckpt"
    rows = ex.run(config, checkpoint)
    assert list(rows[base.PART].unique()) == list(ex.PARTS)
    grid = base.part(rows, "toy_grid")
    assert list(grid.columns) == list(ex.sa.ROW_FIELDS) and len(grid) == 2 * 2 * 3  # heads x contexts x seeds
    assert len(base.part(rows, "uniformity")) == 4  # the tiny Llama's query heads
    width = ex.sa.restore_types(base.part(rows, "width_matched"))
    assert set(width.columns) == set(ex.sa.WIDTH_FIELDS) and len(width) == 2 * 2 * 3
    assert sorted(set(zip(width.heads, width.d_head))) == [(1, 4), (2, 2)]  # heads x d_head = 4
    one_head = width[width.heads == 1][list(ex.sa.ROW_FIELDS)].reset_index(drop=True)
    assert one_head.equals(ex.sa.restore_types(grid[grid.heads == 1]).reset_index(drop=True))  # the grid's fits
    refits = base.part(rows, "intervention")
    assert len(refits) == 2 * 3 and set(refits.context) == {3} and set(refits.columns) == set(ex.sa.REFIT_FIELDS)
    values = ex.claim_values(rows, config)
    assert list(values) == [cid for cid in ex.CLAIMS if cid not in TOO_FEW_NETWORKS]
    for cid in ("minkowski_membership_fraction", "real_layer_rebuilt_from_heads", "real_layer_eps0_in_minkowski_sum"):
        assert values[cid].value == 1.0, cid  # Theorem 2.1 and eq. 3 hold in any layer

    # a rerun resumes from the checkpoint: nothing is trained or loaded again, and the rows are the same
    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a part the checkpoint holds")

    for name in ("grid_part", "width_setting", "separate_part", "intervention_part"):
        monkeypatch.setattr(ex.toy_parts, name, refuse)
    monkeypatch.setattr(ex, "minkowski_trials", refuse)
    from icl_geometry.llm import lm
    monkeypatch.setattr(lm, "load", refuse)
    pd.testing.assert_frame_equal(ex.run(config, checkpoint), rows)


def test_the_notebooks_toy_grid_and_width_family_resume_from_their_checkpoint(tmp_path, monkeypatch):
    config = {"seed": 0, "device": "cpu", "toy_heads": [1, 2], "toy_contexts": [1, 3], "toy_steps": 3,
              "toy_seeds": 2, "toy_restarts": 1, "toy_bins": 40, "toy_hidden": 4, "toy_d_head": 4,
              "toy_width_heads": [1, 2], "toy_width": 4}
    checkpoint = tmp_path / "toy.pkl"
    rows, fits = ex.toy_grid(config, progress=False, checkpoint=checkpoint)
    width = ex.width_matched(config, rows, progress=False, checkpoint=checkpoint)
    plain, _ = ex.toy_grid(config, progress=False)
    pd.testing.assert_frame_equal(rows, plain)  # the checkpointed grid is the grid

    def refuse(*args, **kwargs):
        raise AssertionError("trained a setting the checkpoint holds")

    monkeypatch.setattr(ex.toy_parts, "sweep", refuse)
    monkeypatch.setattr(ex.toy_parts, "train", refuse)
    again, fits_again = ex.toy_grid(config, progress=False, checkpoint=checkpoint)
    pd.testing.assert_frame_equal(again, rows)
    assert sorted(fits_again) == sorted(fits) == [1, 2]
    pd.testing.assert_frame_equal(ex.width_matched(config, rows, progress=False, checkpoint=checkpoint), width)
