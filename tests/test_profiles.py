"""Parameter validation: every bad input fails with a message naming the parameter and the allowed values."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from icl_geometry.llm import lm

from icl_geometry.bookkit import profiles
from icl_geometry.bookkit.specs.schema import PROFILES, Param
from icl_geometry.bookkit.specs import all_specs, get_spec


def test_every_chapter_resolves_under_both_profiles():
    for number, spec in all_specs().items():
        for profile in PROFILES:
            cfg = profiles.resolve(number, profile=profile, device="cpu")
            assert cfg.profile == profile and cfg.device == "cpu"
            for p in spec.params:
                assert getattr(cfg, p.name) == p.validate(p.default(profile))


@pytest.mark.parametrize("kwargs, pattern", [
    ({"profile": "fast"}, r"'profile'.*\['ci', 'full'\]"),
    ({"device": "tpu"}, r"'device'.*\['auto', 'cpu', 'cuda'\]"),
    ({"seed": -1}, r"'seed'"),
    ({"model": "no-such-model"}, r"'model'.*smollm2-135m"),
    ({"shots": [0, -3]}, r"'shots'.*\[0, 64\]"),
    ({"n_items": 1}, r"'n_items'.*\[4, 5000\]"),
    ({"n_items": 2.5}, r"'n_items'.*integer"),
    ({"family": "poetry"}, r"'family'.*next_letter"),
    ({"no_such_knob": 1}, r"no_such_knob.*allowed"),
])
def test_bad_input_names_the_parameter(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        profiles.resolve("00", **{"device": "cpu", **kwargs})


def test_cuda_without_a_gpu_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="'device' = 'cuda'"):
        profiles.resolve("00", device="cuda")


def test_hub_ids_and_local_dirs_are_accepted(tmp_path):
    assert lm.check_model("meta-llama/Meta-Llama-3-8B-Instruct")
    assert lm.check_model(str(tmp_path)) == str(tmp_path)


def test_unknown_chapter():
    with pytest.raises(ValueError, match="Unknown chapter"):
        get_spec("99")


@given(st.integers(min_value=-10, max_value=10_000))
def test_int_param_accepts_exactly_its_range(v):
    p = Param("n", ci=5, full=5, kind="int", low=4, high=5000)
    if 4 <= v <= 5000:
        assert p.validate(v) == v
    else:
        with pytest.raises(ValueError, match="'n'"):
            p.validate(v)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=4))
def test_floats_param_rejects_non_finite(values):
    p = Param("x", ci=(0.0,), full=(0.0,), kind="floats", low=-1e9, high=1e9)
    ok = all(v == v and abs(v) <= 1e9 for v in values)
    if ok:
        assert p.validate(values) == tuple(values)
    else:
        with pytest.raises(ValueError, match="'x'"):
            p.validate(values)


def test_seeding_makes_runs_repeatable():
    import torch

    profiles.resolve("00", device="cpu", seed=3)
    a = torch.rand(3)
    profiles.resolve("00", device="cpu", seed=3)
    assert torch.equal(a, torch.rand(3))


@pytest.mark.parametrize("knobs, pattern", [
    ({"shots": [1, 2, 12], "n_pool": 10}, r"'n_pool' = 10.*at least the largest number of shots, 12"),
    ({"shots": [1, 2], "perturbed_shots": [5]}, r"'perturbed_shots' = \(5,\).*missing: \[5\]"),
])
def test_checks_across_parameters_fail_in_the_first_cell(knobs, pattern):
    with pytest.raises(ValueError, match=pattern):
        profiles.resolve("04", device="cpu", **knobs)
