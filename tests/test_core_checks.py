"""`icl_geometry.core.checks`: one integer check and one choice check, whose errors name the parameter, the
value given and what is allowed; and the core modules that use them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from icl_geometry.core import attention_graph as ag
from icl_geometry.core import intrinsic_dim as idm
from icl_geometry.core import partition, stats
from icl_geometry.core.checks import check_choice, check_int


@pytest.mark.parametrize("value", [0, 3, 7, np.int64(5), np.int32(0), np.uint8(7)])
def test_check_int_accepts_integers_in_range_and_returns_python_ints(value):
    got = check_int("k", value, 0, 7)
    assert got == int(value) and type(got) is int


@pytest.mark.parametrize("value, low, high, allowed", [
    (0, 1, math.inf, "expected an integer >= 1"),
    (-3, 0, math.inf, "expected an integer >= 0"),
    (9, 1, 8, r"expected an integer in \[1, 8\]"),
    (2.0, 1, math.inf, "expected an integer >= 1"),
    (True, 0, math.inf, "expected an integer >= 0"),  # a bool is not a count
    ("3", 1, 5, r"expected an integer in \[1, 5\]"),
    (None, 1, math.inf, "expected an integer >= 1"),
])
def test_check_int_names_the_parameter_the_value_and_the_allowed_range(value, low, high, allowed):
    with pytest.raises(ValueError, match=rf"^n_boot = {value!r} is not allowed: {allowed}$"):
        check_int("n_boot", value, low, high)


def test_check_int_allow_none():
    assert check_int("top_k", None, 1, allow_none=True) is None
    assert check_int("top_k", 4, 1, allow_none=True) == 4
    with pytest.raises(ValueError, match=r"^top_k = 0 is not allowed: expected None or an integer >= 1$"):
        check_int("top_k", 0, 1, allow_none=True)
    with pytest.raises(ValueError, match=r"expected None or an integer in \[1, 3\]"):
        check_int("top_k", 4, 1, 3, allow_none=True)


def test_check_choice_names_the_parameter_and_lists_the_allowed_values():
    assert check_choice("method", "mle", ("twonn", "mle")) == "mle"
    with pytest.raises(ValueError, match=r"^method = 'pca' is not allowed: expected one of \['twonn', 'mle'\]$"):
        check_choice("method", "pca", ("twonn", "mle"))
    with pytest.raises(ValueError, match=r"expected one of \['a', 'b'\]"):
        check_choice("x", "c", {"a": 1, "b": 2})  # a dict's keys are its choices


@pytest.mark.parametrize("call, message", [
    (lambda: idm.knn(np.zeros((5, 2)), 0), r"k = 0 is not allowed: expected an integer >= 1"),
    (lambda: idm.manifold("cube", 10), r"name = 'cube' is not allowed: expected one of \['subspace'"),
    (lambda: idm.twonn(np.random.default_rng(0).normal(size=(50, 3)), method="fit"),
     r"method = 'fit' is not allowed: expected one of \['linear', 'mle'\]"),
    (lambda: idm.twonn(np.random.default_rng(0).normal(size=(50, 3)), ci=0.9, n_boot=5),
     r"n_boot = 5 is not allowed: expected an integer >= 10"),
    (lambda: partition.regions_bound(-1, 2), r"n_neurons = -1 is not allowed: expected an integer >= 0"),
    (lambda: partition.random_mlp(2, [4, 0]), r"widths\[1\] = 0 is not allowed: expected an integer >= 1"),
    (lambda: partition.raster_patterns(partition.random_mlp(2, [3]), (-1, 1, -1, 1), resolution=1),
     r"resolution = 1 is not allowed: expected an integer >= 2"),
    (lambda: partition.count_regions_2d(partition.random_mlp(2, [3]), method="grid"),
     r"method = 'grid' is not allowed: expected one of \['auto', 'polygons', 'lines'\]"),
    (lambda: ag.id_eps(np.ones((2, 3)) / 3, mode="fraction"),
     r"mode = 'fraction' is not allowed: expected one of \['absolute', 'relative'\]"),
    (lambda: ag.id_eps(np.ones((2, 3)) / 3, reduce="mean"),
     r"reduce = 'mean' is not allowed: expected one of \['sum', 'per_head'\]"),
    (lambda: ag.causal_attention(np.eye(3), np.ones((1, 3, 2)), np.ones((1, 3, 2)), top_k=0),
     r"top_k = 0 is not allowed: expected None or an integer >= 1"),
    (lambda: stats.bootstrap_correlation([1, 2, 3, 4], [1, 2, 3, 5], method="kendall"),
     r"method = 'kendall' is not allowed: expected one of \['spearman', 'pearson'\]"),
    (lambda: stats.bin_edges(np.arange(10.0), 3, strategy="kmeans"),
     r"strategy = 'kmeans' is not allowed: expected one of \['quantile', 'uniform'\]"),
])
def test_core_modules_report_bad_inputs_through_the_shared_checks(call, message):
    with pytest.raises(ValueError, match=message):
        call()
