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
