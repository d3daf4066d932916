"""`icl_geometry.core.stats` on synthetic data with known answers: intervals, bootstraps (by rows and by items),
correlations, logistic fits, layer profiles and within-item contrasts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from icl_geometry.core import jackknife, stats


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


def test_family_dummies_and_layer_correlations():
    dummies = stats.family_dummies(["a", "b", "c", "b"])
    assert list(dummies) == ["family=b", "family=c"] and dummies["family=b"].tolist() == [0, 1, 0, 1]
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.5
    delta = np.column_stack([rng.normal(size=200), correct + 0.1 * rng.normal(size=200)])
    table = stats.layer_correlations(delta, correct, np.arange(200) // 4, n_boot=100)
    assert (
        table.loc[1, "r"] > 0.8
        and table.loc[1, "ci_low"] > 0.7
        and table.loc[0, "ci_low"] < 0 < table.loc[0, "ci_high"]
    )


def test_item_mean_weighs_items_equally():
    mean, (lo, hi), n = stats.item_mean_interval([1.0, 1.0, 3.0], ["a", "a", "b"])
    assert mean == pytest.approx(2.0) and n == 2  # not the row mean 5/3
    assert (lo, hi) == pytest.approx(stats.t_interval([1.0, 3.0], 0.9)[1])  # Student-t over the item means
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


@given(st.lists(st.integers(0, 1), min_size=5, max_size=60), st.integers(0, 10))
def test_bootstrap_interval_contains_the_mean(values, seed):
    mean, (lo, hi) = stats.bootstrap_interval(values, n_boot=200, seed=seed)
    assert lo <= mean + 1e-12 and mean <= hi + 1e-12
    assert mean == pytest.approx(np.mean(values))


def test_paired_difference_known_answer():
    a = np.zeros(400)
    b = (np.arange(400) % 4 == 0).astype(float)  # 25% gain
    mean, (lo, hi) = stats.paired_difference(a, b, seed=0)
    assert mean == pytest.approx(0.25)
    assert 0.19 < lo < 0.25 < hi < 0.31  # binomial sd = sqrt(.25*.75/400) ~ 0.022


def test_spearman_interval_known_answers():
    x = np.arange(20.0)
    r, (lo, hi) = stats.spearman_interval(x, x**3)
    assert r == pytest.approx(1.0) and lo <= r <= hi
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    r, (lo, hi) = stats.spearman_interval(a, a + b)  # population rho = 6/pi asin(1/(2 sqrt 2)) ~ 0.69
    assert lo < 0.69 < hi and hi - lo < 0.2
    _, (lo50, hi50) = stats.spearman_interval(a, a + b, level=0.5)
    assert lo < lo50 < hi50 < hi
    with pytest.raises(ValueError, match="at least 4"):
        stats.spearman_interval([1, 2, 3], [3, 2, 1])


def test_t_interval_known_answer():
    """Mean 2, sd 1, n 3: half width t_{0.95, 2} / sqrt(3) = 2.919986 / 1.732051."""
    mean, (lo, hi) = stats.t_interval([1.0, 2.0, 3.0, float("nan")], level=0.9)
    assert mean == 2.0
    np.testing.assert_allclose([lo, hi], [2 - 2.919986 / 3 ** 0.5, 2 + 2.919986 / 3 ** 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        stats.t_interval([1.0])


def test_se_interval():
    assert stats.se_interval(1.0, 0.25) == (0.5, 1.5)
    with pytest.raises(ValueError, match="standard error"):
        stats.se_interval(1.0, -1.0)


def test_within_item_correlation_sees_through_simpsons_paradox():
    """Between items, high x goes with wrong answers (hard items have large x); within every item, the
    prompts with larger x are the right ones. Pooled rho is negative, the within-item mean is +1."""
    x, y, g = [], [], []
    for item in range(20):
        base = 10.0 * item  # later items: larger x ...
        for k in range(6):
            x.append(base + k)
            y.append(float(k >= 3 + item // 10 * 2))  # ... and fewer right answers; within an item, larger x is right
            g.append(item)
    pooled, _ = stats.bootstrap_correlation(x, y, g, n_boot=200)
    r, (lo, hi), n = stats.within_item_correlation(x, y, g, n_boot=200)
    assert pooled < 0
    k = np.arange(6)
    expected = (np.corrcoef(k, k >= 3)[0, 1] + np.corrcoef(k, k >= 5)[0, 1]) / 2  # half the items each
    assert r == pytest.approx(expected)
    assert n == 20 and lo > 0.5


def test_within_item_correlation_drops_items_without_variation_and_covers_zero_under_the_null():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(200), 10)
    x = rng.normal(size=g.size)
    y = (rng.random(g.size) < 0.4).astype(float)
    y[g < 20] = 1.0  # 20 items right at every k: no within-item information
    r, (lo, hi), n = stats.within_item_correlation(x, y, g, n_boot=300, level=0.9)
    assert n <= 180 and lo < 0 < hi and abs(r) < 0.1
    r1, ci1, n1 = stats.within_item_correlation([1, 2, 3], [0, 1, 1], [0, 0, 0])
    assert n1 == 1 and r1 > 0 and np.isnan(ci1[0])
    assert stats.within_item_correlation([1, 2], [1, 1], [0, 0])[2] == 0
    with pytest.raises(ValueError, match="method"):
        stats.within_item_correlation([1, 2], [0, 1], [0, 0], method="kendall")


def test_independent_difference_known_answers():
    value, (lo, hi) = stats.independent_difference([0.0, 0.0, 0.0], [1.0, 1.0], n_boot=50)
    assert value == 1.0 and lo == hi == 1.0
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 400), rng.normal(0.5, 1.0, 300)
    value, (lo, hi) = stats.independent_difference(a, b, n_boot=2000, level=0.9)
    assert value == pytest.approx(b.mean() - a.mean())
    half = 1.645 * np.sqrt(1 / 400 + 1 / 300)  # normal theory for the difference of two means
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15) and lo < 0.5 < hi
    with pytest.raises(ValueError, match="at least 2"):
        stats.independent_difference([1.0], [1.0, 2.0])


def test_per_item_correlations_are_what_within_item_averages():
    x = [1, 2, 3, 1, 2, 3, 1, 2]
    y = [0, 1, 1, 1, 0, 0, 1, 1]  # item 0: rho > 0; item 1: rho < 0; item 2: y constant (dropped)
    g = [0, 0, 0, 1, 1, 1, 2, 2]
    r = stats.per_item_correlations(x, y, g)
    assert len(r) == 2 and r[0] > 0 > r[1] and r[0] == pytest.approx(-r[1])
    assert stats.within_item_correlation(x, y, g, n_boot=20)[0] == pytest.approx(r.mean())


def test_unpaired_slope_difference_uses_independent_draws():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=300), rng.normal(size=200)
    y1 = rng.random(300) < 1 / (1 + np.exp(-2.0 * x1))
    y2 = rng.random(200) < 1 / (1 + np.exp(-0.5 * x2))
    f1 = stats.fit_logistic({"x": x1}, y1, n_boot=300, seed=0)
    f2 = stats.fit_logistic({"x": x2}, y2, n_boot=250, seed=1)
    assert np.isnan(stats.slope_difference(f1, f2)[1][0])  # paired needs equal bootstrap sizes
    value, (lo, hi) = stats.slope_difference(f1, f2, paired=False)
    assert value == pytest.approx(f1.coef[0] - f2.coef[0]) and lo < value < hi and lo > 0


def _first_cluster_resamples(groups, n_boot, seed):
    """The resampler as first written (one flatnonzero per group): the draws behind every committed interval."""
    groups = np.arange(groups) if isinstance(groups, (int, np.integer)) else np.asarray(groups)
    labels, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(labels))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[g] for g in rng.integers(0, len(labels), len(labels))]) for _ in range(n_boot)]


@given(groups=st.integers(1, 60) | st.lists(st.integers(0, 8), min_size=1, max_size=60)
       | st.lists(st.text("abc", min_size=1, max_size=2), min_size=1, max_size=30)
       | st.permutations(list(range(25))),
       n_boot=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_cluster_resamples_keep_their_draws(groups, n_boot, seed):
    """Row or group labels, repeated or all distinct: the same resamples, in the same order, as first written,
    whether taken as a list or one at a time."""
    want = _first_cluster_resamples(groups, n_boot, seed)
    got = stats.cluster_resamples(groups, n_boot, seed)
    lazy = list(stats.iter_cluster_resamples(groups, n_boot, seed))
    assert isinstance(got, list) and len(got) == len(lazy) == len(want) == n_boot
    for w, g, z in zip(want, got, lazy):
        assert w.dtype == g.dtype == z.dtype and np.array_equal(w, g) and np.array_equal(w, z)


# ----------------------------------------------------------------------------- t and jackknife intervals (issue 25)

def test_paired_t_interval_known_answers():
    from scipy import stats as sst

    a, b = np.array([1.0, 2.0, 4.0]), np.array([2.0, 3.5, 4.5])
    d = b - a
    half = sst.t.ppf(0.95, 2) * d.std(ddof=1) / np.sqrt(3)
    value, (lo, hi) = stats.paired_t_interval(a, b, 0.9)
    assert value == pytest.approx(d.mean()) and (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half))
    value, (lo, hi) = stats.paired_t_interval([1.0, 2.0, 4.0], [2.0, 4.0, 8.0], log=True)
    assert (value, lo, hi) == pytest.approx((2.0, 2.0, 2.0))  # every ratio is 2: a zero-width interval
    for bad, match in ((([1.0], [2.0]), "same length >= 2"), (([1.0, 0.0], [1.0, 2.0], 0.9, True), "positive"),
                       (([1.0, 2.0], [1.0, 2.0], 1.5), "level")):
        with pytest.raises(ValueError, match=match):
            stats.paired_t_interval(*bad)


def test_welch_interval_matches_scipy():
    from scipy import stats as sst

    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 5), rng.normal(1, 3, 7)
    value, (lo, hi) = stats.welch_interval(a, b, 0.9)
    ref = sst.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
    assert value == pytest.approx(b.mean() - a.mean()) and (lo, hi) == pytest.approx((ref.low, ref.high))
    ratio, (rlo, rhi) = stats.welch_interval(np.exp(a), np.exp(b), 0.9, log=True)
    assert (np.log(ratio), np.log(rlo), np.log(rhi)) == pytest.approx((value, lo, hi))
    assert stats.welch_interval([2.0, 2.0], [3.0, 3.0]) == (1.0, (1.0, 1.0))


def test_jackknife_of_a_mean_is_the_t_interval():
    """For the mean, leave-one-out replicates reproduce the usual standard error exactly."""
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    value, (lo, hi) = jackknife.jackknife_interval(x, level=0.9)
    tvalue, (tlo, thi) = stats.t_interval(x, 0.9)
    assert (value, lo, hi) == pytest.approx((tvalue, tlo, thi))
    blocks = jackknife.jackknife_blocks(10, 4)
    assert [len(b) for b in blocks] == [3, 3, 2, 2] and np.concatenate(blocks).tolist() == list(range(10))
    assert len(jackknife.jackknife_blocks(3, 20)) == 3  # at most one group per block


def test_jackknife_interval_deletes_whole_groups_and_its_scales():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(12), 5)
    x = np.repeat(rng.normal(size=12), 5) + 0.01 * rng.normal(size=60)
    value, (lo, hi) = jackknife.jackknife_interval(x, groups=groups)
    per_group = x.reshape(12, 5).mean(1)
    _, (tlo, thi) = stats.t_interval(per_group)
    assert value == pytest.approx(x.mean()) and (lo, hi) == pytest.approx((tlo, thi), rel=1e-3)  # 12 groups
    pos = np.abs(x) + 1
    ratio, (rlo, rhi) = jackknife.jackknife_interval(pos, scale="log")
    assert rlo < ratio < rhi and rlo > 0
    r, (flo, fhi) = jackknife.jackknife_interval(np.column_stack([x, x + rng.normal(size=60)]),
                                             lambda a: float(np.corrcoef(a.T)[0, 1]), scale="fisher")
    assert -1 < flo < r < fhi < 1
    with pytest.raises(ValueError, match="scale"):
        jackknife.jackknife_interval(x, scale="logit")
    with pytest.raises(ValueError, match="2 groups"):
        jackknife.jackknife_interval(x, groups=np.zeros(60))


def test_logistic_slope_interval_is_the_fit_with_a_jackknife_over_items():
    """The slope is `fit_logistic`'s (no resampling in the estimate); the interval is a t interval over items left
    out in turn, and it contains a known slope on a large sample."""
    from icl_geometry.core import jackknife

    rng = np.random.default_rng(3)
    items = np.repeat(np.arange(60), 10)
    x = rng.normal(size=len(items)) + 0.3 * rng.normal(size=60)[items]
    p = 1 / (1 + np.exp(-(0.2 + rng.normal(0, 0.5, 60)[items] + 1.0 * x)))
    y = rng.random(len(items)) < p
    slope, (lo, hi) = jackknife.logistic_slope_interval({"x": x}, y, items, 0.9)
    assert slope == pytest.approx(stats.fit_logistic({"x": x}, y).coef[0])
    assert lo < slope < hi and hi - lo < 1.0
    wider = jackknife.logistic_slope_interval({"x": x}, y, items, 0.99)[1]
    assert wider[0] < lo and wider[1] > hi
