"""Chapter 0's claims from hand-made rows (`experiments/inside_a_small_llm.py`): known answers, no model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icl_geometry.core.verdicts import judge_claim
from icl_geometry.experiments import base
from icl_geometry.experiments import inside_a_small_llm as ex

CONFIG = {"shots": [0, 2, 4], "seed": 0, "n_items": 20, "family": "arithmetic"}


def _rows(correct_0, correct_4, correct_random, abs0_0, abs0_4, n=20):
    answers = pd.concat([pd.DataFrame({"item": np.arange(n), "context": c, "k": k, "correct": v})
                         for c, k, v in (("shots", 0, correct_0), ("shots", 2, correct_0), ("shots", 4, correct_4),
                                         ("random", 4, correct_random))], ignore_index=True)
    edges = pd.concat([pd.DataFrame({"item": np.arange(n), "context": c, "k": k, "n_tokens": 10, "abs_0": a,
                                     "rel_0": a, "abs_1": 0.0, "rel_1": 0.0})
                       for c, k, a in (("shots", 0, abs0_0), ("shots", 4, abs0_4), ("random", 4, abs0_0))],
                      ignore_index=True)
    return base.stack(answers=answers, edges=edges)


def test_known_accuracy_gains_and_edge_change(tmp_path):
    n = 20
    zero = np.zeros(n, bool)
    half = np.arange(n) % 2 == 0  # 10 of 20 right with examples
    rows = _rows(zero, half, zero, np.full(n, 30.0), np.full(n, 20.0))
    values = ex.claim_values(rows, CONFIG)
    assert list(values) == list(ex.CLAIMS)
    assert values["icl_gain_kmax_vs_0"].value == pytest.approx(0.5)
    assert values["random_tokens_no_gain_kmax_vs_0"].value == 0 and values[
        "random_tokens_no_gain_kmax_vs_0"
    ].interval == (0, 0)
    assert (
        judge_claim(ex.CLAIMS["random_tokens_no_gain_kmax_vs_0"], values["random_tokens_no_gain_kmax_vs_0"])[0]
        == "reproduced"
    )
    first = values["first_layer_id_rises_with_context"]
    assert (
        first.value == -10 and judge_claim(ex.CLAIMS["first_layer_id_rises_with_context"], first)[0] == "not reproduced"
    )
    assert "4-shot" in values["icl_gain_kmax_vs_0"].note
    base.save_rows(rows, tmp_path / "00.json")  # the same numbers from the saved rows
    again = ex.claim_values(base.load_rows(tmp_path / "00.json"), CONFIG)
    assert {k: v[:2] for k, v in again.items()} == {k: v[:2] for k, v in values.items()}


def test_the_edges_part_keeps_every_layer():
    e = {"abs": np.arange(6.0).reshape(3, 2), "rel": np.ones((3, 2)), "n_tokens": np.array([5, 6, 7]),
         "first_heads": np.zeros((3, 4))}
    table = ex.edges_table({("shots", 0): e})
    assert list(table.columns) == ["item", "context", "k", "n_tokens", "abs_0", "abs_1", "rel_0", "rel_1"]
    assert table.abs_1.tolist() == [1.0, 3.0, 5.0]


def test_below_min_items_no_claim_is_judged():
    """Every claim is a paired bootstrap over items: with fewer than `MIN_ITEMS` items none is judged."""
    n = ex.MIN_ITEMS - 1
    rows = _rows(np.zeros(n, bool), np.arange(n) % 2 == 0, np.zeros(n, bool), np.full(n, 30.0), np.full(n, 20.0), n=n)
    assert ex.claim_values(rows, {**CONFIG, "n_items": n}) == {}
    n = ex.MIN_ITEMS
    rows = _rows(np.zeros(n, bool), np.arange(n) % 2 == 0, np.zeros(n, bool), np.full(n, 30.0), np.full(n, 20.0), n=n)
    assert list(ex.claim_values(rows, {**CONFIG, "n_items": n})) == list(ex.CLAIMS)


def test_claims_carry_the_policy_fields():
    """Section, what would count against, a minimum size; the one paper claim (Sec. 3) is primary and forced."""
    for cid, spec in ex.CLAIMS.items():
        assert spec.section == ex.SECTION and spec.against and spec.min_n == ex.MIN_ITEMS, cid
    paper = {cid: s for cid, s in ex.CLAIMS.items() if s.kind == "paper"}
    assert list(paper) == ["first_layer_id_rises_with_context"]
    spec = paper["first_layer_id_rises_with_context"]
    assert spec.role == "primary" and spec.basis == "empirical" and spec.forced_by
    assert {s.kind for s in ex.CLAIMS.values()} == {"paper", "ours"}
