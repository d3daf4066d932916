"""Chapter 4's machinery: known answers for the statistics on synthetic data, exactness of prompt packing
(packed = unpacked = the plain tracer), and a small run of the experiment on the real chat model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from icl_geometry import attention_graph as ag
from icl_geometry import context_geometry as cg
from icl_geometry import intrinsic_dim as idm
from icl_geometry import lm, stats, tasks


# ----------------------------------------------------------------------------- statistics, known answers

@pytest.mark.parametrize("s, n, lo, hi", [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0)])
def test_wilson_interval_matches_published_values(s, n, lo, hi):
    got = stats.wilson_interval(s, n, level=0.95)
    assert got == pytest.approx((lo, hi), abs=5e-4)


def test_binned_accuracy_on_a_step():
    x = np.arange(100.0)
    table = stats.binned_accuracy(x, x >= 50, bins=4)
    assert table["n"].tolist() == [25, 25, 25, 25]
    assert table["accuracy"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()


def test_binned_accuracy_edges_ties_and_the_last_edge():
    x = np.array([0, 0, 0, 0, 1, 1, 2, 3])
    assert stats.bin_edges(x, 4).tolist() == [0, 0.5, 1.25, 3]  # the two tied 0-quantiles merged
    table = stats.binned_accuracy(x, x > 0, bins=[0, 1, 3])
    assert table["n"].tolist() == [4, 4]  # 3 sits on the last edge and is kept
    table = stats.binned_accuracy([-5.0, 0.5, 9.0], [True, True, True], bins=[0, 1])
    assert table["n"].tolist() == [1]  # outside the given edges: dropped
    with pytest.raises(ValueError, match="bins"):
        stats.binned_accuracy(x, x > 0, bins=[1, 0])


def test_bootstrap_correlation_perfect_and_null():
    x = np.arange(50.0)
    r, (lo, hi) = stats.bootstrap_correlation(x, x ** 3, n_boot=200)
    assert r == pytest.approx(1.0) and lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    r, (lo, hi) = stats.bootstrap_correlation(rng.normal(size=2000), rng.normal(size=2000), n_boot=300)
    assert lo < 0 < hi and abs(r) < 0.06


def test_cluster_bootstrap_is_wider_for_repeated_items():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=40)
    x10, y10, g10 = np.repeat(x, 10), np.repeat(y, 10), np.repeat(np.arange(40), 10)
    _, rows = stats.bootstrap_correlation(x10, y10, method="pearson", n_boot=400)
    _, items = stats.bootstrap_correlation(x10, y10, groups=g10, method="pearson", n_boot=400)
    _, once = stats.bootstrap_correlation(x, y, method="pearson", n_boot=400)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(items) > 2 * width(rows)
    assert width(items) == pytest.approx(width(once), rel=0.3)


def _simulate(n, a, b, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(a + b * x)))
    return x, y


def test_logistic_recovers_known_coefficients():
    x, y = _simulate(20000, -0.5, 1.2)
    fit = stats.fit_logistic({"x": x}, y)
    assert fit.converged
    assert fit.coef[0] / fit.scale[0] == pytest.approx(1.2, abs=0.06)  # per raw unit
    assert fit.intercept - fit.coef[0] * x.mean() / fit.scale[0] == pytest.approx(-0.5, abs=0.05)
    assert fit.stderr[0] < 0.05


def test_logistic_matches_scikit_learn_and_bootstrap_covers():
    from sklearn.linear_model import LogisticRegression

    x, y = _simulate(400, 0.3, 0.8, seed=2)
    z = 2 * x + 7
    fit = stats.fit_logistic({"z": z, "noise": np.random.default_rng(3).normal(size=400)}, y, n_boot=300, ridge=0.0)
    sk = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(
        np.column_stack([z, np.random.default_rng(3).normal(size=400)]), y)
    assert fit.coef / fit.scale == pytest.approx(sk.coef_[0], rel=1e-4)
    lo, hi = fit.ci[0] / fit.scale[0]
    assert lo < 0.4 < hi  # the true slope per unit of z is 0.8 / 2
    assert fit.names == ("z", "noise") and fit.odds_ratio("z") > 1


def test_logistic_stays_finite_under_separation_and_rejects_one_class():
    x = np.arange(20.0)
    fit = stats.fit_logistic({"x": x}, x >= 10)
    assert np.isfinite(fit.coef).all() and fit.coef[0] > 3
    with pytest.raises(ValueError, match="both outcomes"):
        stats.fit_logistic({"x": x}, np.zeros(20, bool))


def test_layer_profile_finds_the_layer_that_separates():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 5)
    correct = rng.random(150) < 0.5
    delta = rng.normal(size=(150, 3)) * 0.1
    delta[:, 2] += correct  # only the last layer differs between correct and incorrect rows
    prof = stats.layer_profile(delta, correct, groups, n_boot=200).set_index(["group", "layer"])
    diff = prof.loc["correct - incorrect"]
    assert diff.loc[2, "mean"] == pytest.approx(1.0, abs=0.05) and diff.loc[2, "ci_low"] > 0.9
    assert abs(diff.loc[0, "mean"]) < 0.06 and diff.loc[0, "ci_high"] - diff.loc[0, "ci_low"] < 0.15


def _fake_run(n_items=12, ks=(1, 2), L=3, seed=0):
    """A ContextRun with known structure: 'shots' values exceed 'random' ones by exactly 2."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    spec = [(i, c, k) for i in range(n_items) for c in ("shots", "random") for k in ks]
    rows = pd.DataFrame({"item": [i for i, _, _ in spec], "family": ["capitals" if i % 2 else "arithmetic" for i, _, _ in spec],
                         "context": [c for _, c, _ in spec], "k": [k for _, _, k in spec],
                         "correct": rng.random(len(spec)) < 0.5})
    base = rng.normal(size=(n_items, L))
    vals = np.array([base[i] + (2.0 if c == "shots" else 0.0) + k for i, c, k in spec])
    return cg.ContextRun("fake", L, 0.1, None, [None] * n_items, rows, {"id_abs": vals}, {"id_abs": base},
                         np.zeros((len(spec), 1, 2)), np.zeros((n_items, 1, 2)), (0,))


def test_context_contrast_and_delta_on_a_known_run():
    run = _fake_run()
    d = run.delta("id_abs")
    assert np.allclose(d[run.mask("random")], np.repeat(run.rows.k[run.mask("random")].to_numpy()[:, None], 3, 1))
    mean, (lo, hi), n = cg.context_contrast(run, d[:, -1], "shots", "random", n_boot=100)
    assert n == 12 and mean == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    with pytest.raises(ValueError, match="share no"):
        cg.context_contrast(run, d[:, -1], "shots", "shuffled")


def test_family_dummies_and_layer_correlations():
    dummies = stats.family_dummies(["a", "b", "c", "b"])
    assert list(dummies) == ["family=b", "family=c"] and dummies["family=b"].tolist() == [0, 1, 0, 1]
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.5
    delta = np.column_stack([rng.normal(size=200), correct + 0.1 * rng.normal(size=200)])
    table = stats.layer_correlations(delta, correct, np.arange(200) // 4, n_boot=100)
    assert table.loc[1, "r"] > 0.8 and table.loc[1, "ci_low"] > 0.7 and table.loc[0, "ci_low"] < 0 < table.loc[0, "ci_high"]


def test_parse_families():
    assert cg.parse_families(" capitals, sequence ") == ("capitals", "sequence")
    for bad in ("", "capitals,poetry", "capitals,capitals", ["capitals"]):
        with pytest.raises(ValueError, match="families"):
            cg.parse_families(bad)


# ----------------------------------------------------------------------------- TwoNN and packing

def test_token_cloud_twonn_equals_intrinsic_dim():
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(3, 2, 25, 40)))
    got = cg.token_cloud_twonn(X)
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert got[i, j] == pytest.approx(idm.twonn(X[i, j]).estimate, rel=1e-9)
    X[0, 0, 1:] = X[0, 0, 0]  # all copies of one point: undefined
    assert np.isnan(cg.token_cloud_twonn(X)[0, 0])


def test_make_packs_groups_nested_heads_with_a_common_tail():
    tail = [7, 8, 9]
    ids = [[1, 2] + tail, [1, 2, 3, 4] + tail, [1, 2, 3] + tail, [1, 5] + tail, [1, 2, 3, 4] + [6, 8, 9]]
    packs = cg.make_packs(ids, [3] * 5)
    by_members = sorted(sorted(i for i, _ in p.members) for p in packs)
    assert by_members == [[0, 1, 2], [3], [4]]
    big = next(p for p in packs if len(p.members) == 3)
    assert big.head == [1, 2, 3, 4] and dict(big.members) == {1: 4, 2: 3, 0: 2}
    assert all(len(p.members) <= 2 for p in cg.make_packs(ids, [3] * 5, max_members=2))


@given(st.lists(st.tuples(st.lists(st.integers(0, 2), max_size=4), st.sampled_from([(7, 8, 9), (6, 8, 9)])),
                min_size=1, max_size=8))
def test_every_prompt_is_in_exactly_one_pack_and_reconstructs(spec):
    ids = [list(head) + list(tail) for head, tail in spec]
    packs = cg.make_packs(ids, [3] * len(ids))
    assert sorted(i for p in packs for i, _ in p.members) == list(range(len(ids)))
    for p in packs:
        for i, cut in p.members:
            assert p.head[:cut] + p.tail == ids[i]


# ----------------------------------------------------------------------------- the real chat model

@pytest.fixture(scope="module")
def tiny(smollm2):
    test, pool = tasks.split("capitals", 2, 6, seed=0)
    prompts, items = [], []
    for i, it in enumerate(test):
        for ctx, k in (("shots", 0), ("shots", 1), ("shots", 3), ("random", 2)):
            prompts.append(tasks.format_prompt(smollm2, it, tasks.choose_shots(pool, k, 0, i), ctx, 0))
            items.append(it)
    tails = cg.tail_lengths(smollm2, prompts, [cg.question_marker(it) for it in items])
    return prompts, items, tails


@pytest.mark.slow
def test_tail_is_the_question(smollm2, tiny):
    prompts, items, tails = tiny
    ids = lm.token_ids(smollm2, prompts)
    for x, it, t in zip(ids, items, tails):
        text = smollm2.tokenizer.decode(x[-t:])
        assert text.startswith(f"Q: {it.question}") and len(set(tails[:3])) == 1


@pytest.mark.slow
def test_packed_pass_equals_unpacked_and_the_plain_tracer(smollm2, tiny):
    prompts, items, tails = tiny
    packed = cg.trace_generate(smollm2, prompts, tails, max_new_tokens=6, batch_size=3)
    assert len(cg.make_packs(lm.token_ids(smollm2, prompts), tails)) < len(prompts)  # packing happened
    plain = cg.trace_generate(smollm2, prompts, tails, max_new_tokens=6, batch_size=3, pack=False)
    assert packed.outputs == plain.outputs
    assert packed.tokens_fed < plain.tokens_fed  # the shared shots were computed once
    assert np.mean(packed.id_abs == plain.id_abs) > 0.99 and np.mean(packed.id_rel == plain.id_rel) > 0.99
    np.testing.assert_allclose(packed.twonn, plain.twonn, rtol=1e-3)
    traces = lm.trace_batch(smollm2, prompts, positions=tuple(range(-max(tails), 0)), batch_size=4)
    for j, tr in enumerate(traces):
        last = tr.attention_rows[:, :, -1, :]
        assert np.mean(ag.id_eps(last, 0.1, "absolute", "sum", head_axis=1) == packed.id_abs[j]) > 0.95
        assert packed.n_tokens[j] == tr.seq_len
        ref = [idm.twonn(tr.mlp_inputs[layer, -tails[j]:]).estimate for layer in (0, smollm2.n_layers - 1)]
        np.testing.assert_allclose(packed.twonn[j, [0, -1]], ref, rtol=1e-3)
        np.testing.assert_allclose(packed.last_mlp[j, -1].astype(np.float32), tr.mlp_inputs[-1, -1].numpy(),
                                   atol=0.05, rtol=0.01)
    generated = lm.generate(smollm2, prompts, max_new_tokens=6)
    for ours, theirs in zip(packed.outputs, generated):
        assert theirs.startswith(ours)  # the same greedy tokens, ours stop at the end of the first line


@pytest.mark.slow
def test_trace_generate_rejects_bad_tails(smollm2):
    with pytest.raises(ValueError, match="tails"):
        cg.trace_generate(smollm2, ["Q: a b c"], [2])
    with pytest.raises(ValueError, match="tails"):
        cg.trace_generate(smollm2, ["Q: a", "Q: b"], [3])


@pytest.mark.slow
def test_run_experiment_small(smollm2):
    run = cg.run_experiment(smollm2, ["capitals"], n_candidates=6, shots=(1, 2), perturbed_shots=(1,),
                            n_base=2, n_pool=4, max_new_tokens=6)
    assert len(run.candidates) == 6 and len(run.items) == min(2, int((~run.candidates.correct).sum()))
    assert all(q in set(run.candidates.question[~run.candidates.correct]) for q in [it.question for it in run.items])
    n = len(run.items)
    assert len(run.rows) == n * 4 and set(run.rows.context) == {"shots", "random", "shuffled"}
    d = run.delta("id_abs")
    first = run.rows.index[0]
    assert np.array_equal(d[first], run.values["id_abs"][first] - run.zero["id_abs"][run.rows.item[first]])
    assert d.shape == (len(run.rows), smollm2.n_layers) and run.last_mlp.shape[1] == 2
    assert run.tokens_fed > 0 and set(run.seconds) == {"zero_shot_pass", "context_pass"}
    with pytest.raises(ValueError, match="measure"):
        run.delta("mle")
    with pytest.raises(ValueError, match="k must be >= 1"):
        cg.run_experiment(smollm2, ["capitals"], n_candidates=2, shots=(0, 1))


def test_batches_respect_size_and_token_budget():
    lengths = [10, 10, 20, 30, 100, 500]
    batches = cg._batches(list(range(6)), lengths, size=3, tokens=100)
    assert batches == [[0, 1, 2], [3], [4], [5]]  # 4 x 30 > 100; a long one stands alone
    assert sum(batches, []) == list(range(6))
    assert cg._batches(list(range(6)), lengths, size=1, tokens=10**6) == [[i] for i in range(6)]


def test_item_mean_weighs_items_equally():
    mean, (lo, hi), n = stats.item_mean_interval([1.0, 1.0, 3.0], ["a", "a", "b"], n_boot=200)
    assert mean == pytest.approx(2.0) and n == 2  # not the row mean 5/3
    assert 1.0 <= lo <= mean <= hi <= 3.0
    assert np.isnan(stats.item_mean_interval([4.0, 6.0], [0, 0])[1][0])
    with pytest.raises(ValueError, match="group labels"):
        stats.item_mean_interval([1.0, 2.0], [0])


def test_slope_difference_is_paired():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = rng.random(200) < 1 / (1 + np.exp(-2 * x))
    g = np.repeat(np.arange(50), 4)
    fit = stats.fit_logistic({"x": x}, y, g, n_boot=100)
    value, (lo, hi) = stats.slope_difference(fit, fit)
    assert value == 0.0 and lo == 0.0 and hi == 0.0  # the same resamples: every paired difference is 0
    other = stats.fit_logistic({"x": -x}, y, g, n_boot=100)
    value, (lo, hi) = stats.slope_difference(fit, other)
    assert value == pytest.approx(2 * fit.coef[0]) and lo <= value <= hi
    assert np.isnan(stats.slope_difference(fit, stats.fit_logistic({"x": x}, y, g))[1][0])
