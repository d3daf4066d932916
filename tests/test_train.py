"""The one training loop of the toys (`toys/train.py`): schedules with known values, each member's own
gradient, the same updates as PyTorch's own scheduler, logging and observing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from icl_geometry.toys import train as tr


def test_schedules_known_values():
    cos = tr.cosine(0.1, 100)
    assert cos(0) == 0.1 and cos(50) == pytest.approx(0.05) and cos(100) == pytest.approx(0.0, abs=1e-15)
    warm = tr.warmup_steps_cosine(0.1, 100, 10)
    assert warm(0) == pytest.approx(0.01) and warm(9) == pytest.approx(0.1) and warm(10) == pytest.approx(0.1)
    assert warm(99) == pytest.approx(0.5 * 0.1 * (1 + math.cos(math.pi * 89 / 90)))
    frac = tr.warmup_fraction_cosine(0.1, 100, 0.1)
    assert frac(0) == pytest.approx(0.1 * 0.1 * 1.0) and frac(50) == pytest.approx(0.1 * 0.5)


def test_the_loop_matches_adam_with_pytorchs_own_scheduler_bit_for_bit():
    """The toys used torch's LambdaLR before the loop was shared: the same learning rates, the same floats."""
    def run(shared: bool) -> np.ndarray:
        torch.manual_seed(0)
        w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        x = torch.randn(16, 4, dtype=torch.float64)

        def losses(_: int) -> torch.Tensor:
            return ((x @ w.T) ** 2).mean(0)

        if shared:
            tr.train([w], losses, 25, tr.cosine(0.05, 25))
        else:
            opt = torch.optim.Adam([w], lr=0.05)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / 25)))
            for i in range(25):
                opt.zero_grad()
                losses(i).sum().backward()
                opt.step()
                sched.step()
        return w.detach().numpy().copy()

    np.testing.assert_array_equal(run(True), run(False))


def test_members_train_independently_and_the_log_has_every_member():
    """Two members in one tensor: each one's update depends only on its own loss."""
    target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    log = tr.train([w], lambda _: (w - target) ** 2, 300, tr.warmup_steps_cosine(0.1, 300, 10), log_every=100,
                   observe=lambda _: (w - target).abs().detach().numpy())
    assert list(log.steps) == [0, 100, 200, 299] and log.loss.shape == (4, 2) and log.observed.shape == (4, 2)
    np.testing.assert_allclose(w.detach().numpy(), target.numpy(), atol=1e-3)
    assert (log.observed[-1] < log.observed[0]).all()


def test_sgd_and_bad_optimizer():
    w = torch.ones(1, requires_grad=True)
    tr.train([w], lambda _: w ** 2, 1, lambda _: 0.25, optimizer="sgd")
    assert w.item() == pytest.approx(0.5)  # one step of w - 0.25 * 2w
    with pytest.raises(ValueError, match="optimizer = 'lbfgs'"):
        tr.train([w], lambda _: w ** 2, 1, lambda _: 0.1, optimizer="lbfgs")


def test_train_result_final_distance():
    res = tr.TrainResult(None, np.array([0, 1]), np.zeros((2, 1)), 0.0, rel_dist=np.array([[0.5], [0.1]]))
    assert res.final_rel_dist.tolist() == [0.1]
    with pytest.raises(ValueError, match="no distance"):
        _ = tr.TrainResult(None, np.array([0]), np.zeros((1, 1)), 0.0).final_rel_dist
