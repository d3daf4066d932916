"""Contextual calibration, the margin's AUC and the exclusion rule (`tasks.calibration`); known answers, sklearn
for the AUC, and content-free prompts through tiny random models (fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from icl_geometry.llm import engine, lm
from icl_geometry.tasks import calibration as cal
from icl_geometry.tasks import demonstrations as dm
from icl_geometry.tasks.prompts import format_classification_prompt

from fixtures import tiny


# --------------------------------------------------------------------------------------------- AUC
@pytest.mark.parametrize("seed", range(6))
def test_auc_equals_sklearn_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)
    for s in (rng.normal(size=n), rng.integers(0, 4, n).astype(float), np.round(rng.normal(size=n), 1)):
        assert cal.auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_known_answers():
    y = np.array([0, 0, 1, 1])
    assert cal.auc([0.1, 0.2, 0.3, 0.4], y) == 1.0
    assert cal.auc([0.4, 0.3, 0.2, 0.1], y) == 0.0
    assert cal.auc([1, 1, 1, 1], y) == 0.5  # all tied: one half
    assert cal.auc([0.1, 0.5, 0.5, 0.9], y) == pytest.approx(0.875)  # one tie between classes: 3.5 / 4
    assert math.isnan(cal.auc([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match="labels"):
        cal.auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        cal.auc([0.1, np.nan], [0, 1])


# --------------------------------------------------------------------------------------------- calibration
def test_calibration_divides_out_the_content_free_distribution():
    # Zhao et al.'s example: the content-free input gets p_cf; a prompt with exactly p_cf is calibrated to uniform
    p_cf = np.array([0.9, 0.1])
    q = cal.calibrate(np.log([[0.9, 0.1], [0.95, 0.05], [0.5, 0.5]]), p_cf)
    np.testing.assert_allclose(q[0], [0.5, 0.5])
    np.testing.assert_allclose(q[1], np.array([0.95 / 0.9, 0.05 / 0.1]) / (0.95 / 0.9 + 0.05 / 0.1))
    assert q[1].argmax() == 0 and q[2].argmax() == 1  # above the bias label 0 wins, below it label 1
    np.testing.assert_allclose(q.sum(1), 1.0)
    # unnormalised label log-probabilities (the model's, over the whole vocabulary) give the same answer
    np.testing.assert_allclose(cal.calibrate(np.log([[0.09, 0.01]]), p_cf), [[0.5, 0.5]])


def test_content_free_distribution_averages_renormalised_inputs():
    cf = np.log([[0.6, 0.2], [0.1, 0.1], [0.3, 0.1]])  # renormalised: 0.75, 0.5, 0.75
    np.testing.assert_allclose(cal.content_free_distribution(cf), [2 / 3, 1 / 3])
    per_prompt = np.stack([cf, cf[::-1]])
    np.testing.assert_allclose(cal.content_free_distribution(per_prompt), [[2 / 3, 1 / 3]] * 2)


def test_a_label_word_bias_is_removed_and_logs_agree():
    rng = np.random.default_rng(0)
    n = 200
    true = rng.integers(0, 2, n)
    evidence = np.where(true == 1, 1.0, -1.0) + rng.normal(0, 0.8, n)
    bias = np.array([0.0, 3.0])  # the model leans hard to label 1 in every prompt
    lp = np.column_stack([-evidence / 2, evidence / 2]) + bias - 5.0
    cf = np.stack([np.column_stack([np.zeros(3), np.zeros(3)]) + bias - 5.0] * n)  # (n, 3, 2)
    s = cal.score(lp, cf, true)
    assert s.share_predicting_1 > 0.9 and s.accuracy < 0.6
    assert s.calibrated_accuracy > 0.8 and 0.3 < s.calibrated_share_predicting_1 < 0.7
    assert s.auc == pytest.approx(s.calibrated_auc)  # one p_cf for all: every margin moves by one constant
    q = cal.calibrate(lp, cal.content_free_distribution(cf))
    np.testing.assert_allclose(cal.calibrated_logprobs(lp, cf), np.log(q), atol=1e-12)
    np.testing.assert_allclose(cal.calibrated_logprobs(lp, cf[0]), np.log(q), atol=1e-12)  # shared (n_cf, L)


def test_a_per_prompt_content_free_distribution_can_change_the_ranking():
    lp = np.log([[0.5, 0.5], [0.5, 0.5]])
    cf = np.log([[[0.8, 0.2]], [[0.2, 0.8]]])  # (2 prompts, 1 input, 2 labels)
    q = cal.calibrated_logprobs(lp, cf)
    assert q[0].argmax() == 1 and q[1].argmax() == 0
    assert cal.margin_auc(lp, [1, 0]) == 0.5 and cal.margin_auc(q, [1, 0]) == 1.0


def test_margins_and_bad_shapes():
    lp = np.log([[0.7, 0.3], [0.2, 0.8]])
    np.testing.assert_allclose(cal.label_margin(lp, [0, 0]), [math.log(0.7 / 0.3), math.log(0.2 / 0.8)])
    np.testing.assert_allclose(cal.class_score(lp), [math.log(0.3 / 0.7), math.log(0.8 / 0.2)])
    three = np.log([[0.5, 0.3, 0.2]])
    np.testing.assert_allclose(cal.label_margin(three, [2]), [math.log(0.2 / 0.5)])
    with pytest.raises(ValueError, match="p_cf"):
        cal.calibrate(lp, [0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="positive"):
        cal.calibrate(lp, [1.0, 0.0])
    with pytest.raises(ValueError, match="n_labels"):
        cal.label_probs([0.1])


# --------------------------------------------------------------------------------------------- exclusion
def test_the_declared_rule_excludes_chance_and_ceiling_with_a_reason():
    rule = cal.ExclusionRule(chance_band=0.1, ceiling_band=0.05)
    assert rule.reason(0.55).startswith("at chance") and rule.reason(0.60).startswith("at chance")
    assert rule.reason(0.61) is None and rule.reason(0.94) is None
    assert rule.reason(0.95).startswith("at ceiling") and rule.reason(1.0).startswith("at ceiling")
    assert rule.reason(0.3).startswith("at chance")  # below chance (a reversed mapping) is no signal to measure
    assert rule.reason(math.nan).startswith("no accuracy")
    with pytest.raises(ValueError, match="no accuracy in between"):
        cal.ExclusionRule(chance_band=0.3, ceiling_band=0.25)
    with pytest.raises(ValueError, match="bands"):
        cal.ExclusionRule(chance_band=-0.1)


def test_exclusions_table_from_queries_or_from_summaries():
    rows = [{"model": m, "family": f, "calibrated_accuracy": float(c)}
            for m, f, acc in (("a", "sentiment", 1.0), ("a", "parity", 0.5), ("b", "sentiment", 0.8))
            for c in np.r_[np.ones(int(round(acc * 20))), np.zeros(20 - int(round(acc * 20)))]]
    t = cal.exclusions(rows)
    assert t[["model", "family"]].values.tolist() == [["a", "sentiment"], ["a", "parity"], ["b", "sentiment"]]
    assert t.n.tolist() == [20, 20, 20] and t.excluded.tolist() == [True, True, False]
    assert t.reason[0].startswith("at ceiling") and t.reason[1].startswith("at chance") and t.reason[2] == ""
    with pytest.raises(ValueError, match="lacks columns"):
        cal.exclusions([{"model": "a", "family": "x"}])


# --------------------------------------------------------------------------------------------- with a model
LABEL_WORDS = ("positive", "negative", "Input:", "Label:", "N/A", "[MASK]")


@pytest.fixture(scope="module", params=tiny.ARCHITECTURES)
def labelled_model(request, tmp_path_factory):
    """A tiny random model whose word-level vocabulary has the sentiment label words (one token each)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(tiny, "WORDS", tiny.WORDS + LABEL_WORDS)
    try:
        path = tiny.save_tiny_model(tmp_path_factory.mktemp(f"labelled_{request.param}"), request.param)
    finally:
        mp.undo()
    return lm.load(str(path), device="cpu")


def test_content_free_prompts_replace_only_the_query(labelled_model):
    queries, pool = dm.pool_and_queries("sentiment", 2, 8, seed=0)
    demos = dm.sample_demonstrations(pool, queries[0], 4, "sentiment")
    real = format_classification_prompt(labelled_model, "sentiment", demos, queries[0])
    cfs = cal.content_free_prompts(labelled_model, "sentiment", demos)
    assert len(cfs) == 3
    for text, p in zip(cal.CONTENT_FREE, cfs):
        assert p.spans == real.spans and p.choices == real.choices
        assert p.text == real.text.replace(f"Input: {queries[0].text}", f"Input: {text}")
    with pytest.raises(ValueError, match="at least one"):
        cal.content_free_prompts(labelled_model, "sentiment", demos, ())


def test_content_free_logprobs_are_the_engines_label_scores(labelled_model):
    queries, pool = dm.pool_and_queries("sentiment", 3, 8, seed=0)
    sets = dm.demonstration_sets("sentiment", queries, pool, 4)
    lp = cal.content_free_logprobs(labelled_model, "sentiment", sets, batch_size=4)
    assert lp.shape == (3, 3, 2) and np.all(np.isfinite(lp))
    prompts = [p for s in sets for p in cal.content_free_prompts(labelled_model, "sentiment", s)]
    ref = np.stack(engine.score_choices(labelled_model, [p.text for p in prompts], [list(p.choices) for p in prompts]))
    np.testing.assert_allclose(lp.reshape(-1, 2), ref, atol=1e-4)
    real = [format_classification_prompt(labelled_model, "sentiment", s, q) for s, q in zip(sets, queries)]
    real_lp = np.stack(engine.score_choices(labelled_model, [p.text for p in real], [list(p.choices) for p in real]))
    s = cal.score(real_lp, lp, [q.true_label for q in queries])
    assert 0 <= s.calibrated_accuracy <= 1 and 0 <= s.calibrated_auc <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_content_free_calibration_on_a_bundled_model(request, name):
    """The content-free prompts of both bundled models (chat turns for SmolLM2, plain text for Gemma-3) give
    finite label-word log-probabilities, and calibration turns them into a distribution per prompt."""
    loaded = request.getfixturevalue(name)
    queries, pool = dm.pool_and_queries("sentiment", 4, 16, seed=0)
    sets = dm.demonstration_sets("sentiment", queries, pool, 4)
    cf = cal.content_free_logprobs(loaded, "sentiment", sets)
    assert cf.shape == (4, 3, 2) and np.all(np.isfinite(cf)) and np.all(cf < 0)
    real = [format_classification_prompt(loaded, "sentiment", s, q) for s, q in zip(sets, queries)]
    lp = np.stack(engine.score_choices(loaded, [p.text for p in real], [list(p.choices) for p in real]))
    q = cal.calibrated_logprobs(lp, cf)
    np.testing.assert_allclose(np.exp(q).sum(1), 1.0)
    s = cal.score(lp, cf, [e.true_label for e in queries])
    assert 0 <= s.calibrated_accuracy <= 1
