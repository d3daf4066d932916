"""The Fig. 2 toy: batched training equals separate training; knots and regions along the input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from icl_geometry.core import partition as pt
from icl_geometry.toys import sine_mlp as sm


def test_batched_training_is_independent_training():
    together = sm.fit_sines([3, 7], [0, 1], steps=60, n_train=200, n_test=500)
    for fit in together:
        alone = sm.fit_sine(fit.width, seed=fit.seed, steps=60, n_train=200, n_test=500)
        assert fit.mse == pytest.approx(alone.mse, rel=1e-9)
        assert np.allclose(fit.losses, alone.losses, rtol=1e-9)


def test_initial_knots_lie_in_the_domain_and_regions_count_them():
    net = sm.make_mlp(40, seed=3)
    w, b = net[0].weight[:, 0].detach(), net[0].bias.detach()
    knots = (-b / w).numpy()
    assert ((knots > -2 * math.pi) & (knots < 2 * math.pi)).all()
    # one hidden layer on a line: one region per knot inside the segment, plus one
    assert pt.count_regions_1d(net, -2 * math.pi, 2 * math.pi) == 1 + len(np.unique(knots))


def test_training_lowers_the_error_and_regions_stay_within_width_plus_one():
    fit = sm.fit_sine(30, seed=0, steps=400, n_train=300)
    assert fit.losses[-1] < fit.losses[0] / 5
    assert 1 <= pt.count_regions_1d(fit.model, -2 * math.pi, 2 * math.pi) <= 31
    x = np.linspace(-6, 6, 7)
    with torch.no_grad():
        assert np.allclose(sm.predict(fit.model, x), fit.model(torch.as_tensor(x)[:, None]).numpy().ravel())


def test_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        sm.make_mlp(0)
    with pytest.raises(ValueError, match="steps"):
        sm.fit_sine(4, steps=-1)
    with pytest.raises(ValueError, match="domain"):
        sm.fit_sine(4, domain=(1.0, -1.0))


def test_knots_started_outside_are_active_on_the_whole_domain_and_fewer_regions_result():
    lo, hi = sm.DOMAIN
    inside = sm.make_mlp(40, seed=3)
    half = sm.make_mlp(40, seed=3, outside=0.5)
    knots = -half[0].bias.detach() / half[0].weight.detach()[:, 0]
    out = (knots < lo) | (knots > hi)
    assert int(out.sum()) == 20
    x = torch.linspace(lo, hi, 101, dtype=torch.float64)[:, None]
    pre = half[0](x)[:, out]
    assert bool((pre > 0).all())  # never dead on the domain: every moved neuron still has a gradient
    assert pt.count_regions_1d(half, lo, hi) < pt.count_regions_1d(inside, lo, hi)
    same = sm.make_mlp(40, seed=3, outside=0.0)  # outside = 0 draws nothing more: the nets of before
    assert torch.equal(same[0].weight, inside[0].weight) and torch.equal(same[2].bias, inside[2].bias)
    with pytest.raises(ValueError, match="outside"):
        sm.make_mlp(4, outside=1.0)


def test_interpolant_mse_falls_like_k_to_the_minus_four():
    mse = sm.interpolant_mse([20, 40, 80])
    slopes = np.diff(np.log(mse)) / np.diff(np.log([20, 40, 80]))
    assert np.allclose(slopes, -4.0, atol=0.1)
    rows = sm.knot_experiment(6, (0.0, 0.5), 2, steps=5, n_train=50)
    assert [(r["outside"], r["seed"]) for r in rows] == [(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)]
    assert all(r["interp_mse"] == pytest.approx(sm.interpolant_mse([r["regions"]])[0]) for r in rows)
