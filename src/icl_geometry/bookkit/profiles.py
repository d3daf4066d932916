"""Resolve a notebook's parameters into a validated `Config` (`ci`: CPU in minutes, `full`: GPU at paper scale).

The knobs are declared once per chapter, in `icl_geometry/bookkit/specs/chNN.py` (schema in
`icl_geometry.bookkit.specs.schema`). `resolve` turns the values of a notebook's `parameters` cell into a
`Config`: a knob left as `None` takes the profile's value; anything else is checked, then the spec's
checks that involve several knobs run, so bad input fails in the first cell, before any work, with a
message that names the parameter and what it may be.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from icl_geometry.llm import lm
from icl_geometry.bookkit.specs import get_spec
from icl_geometry.bookkit.specs.schema import PROFILES


@dataclass(frozen=True)
class Config:
    """A validated, resolved set of chapter parameters (attribute access for every knob)."""

    chapter: str
    profile: str
    device: str
    seed: int
    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "values")
        if name in values:
            return values[name]
        raise AttributeError(f"Config of chapter {self.chapter} has no parameter {name!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "profile": self.profile, "device": self.device,
                "seed": self.seed, **self.values}


def check_profile(profile: Any) -> str:
    if profile not in PROFILES:
        raise ValueError(f"Parameter 'profile' = {profile!r} is not allowed: expected one of {list(PROFILES)}.")
    return profile


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so a profile gives the same outputs each run.

    (Python's string hashing is fixed by PYTHONHASHSEED before the interpreter starts: the Makefile sets it.)
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve(chapter: str, profile: str = "ci", device: str = "auto", seed: int = 0, **knobs: Any) -> Config:
    """Validate a chapter's parameters, fill `None` knobs from the profile, run the spec's checks, seed."""
    spec = get_spec(chapter)
    profile = check_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Parameter 'seed' = {seed!r} is not allowed: expected an integer >= 0.")
    unknown = sorted(set(knobs) - set(spec.parameter_names()))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for chapter {spec.number}; "
                         f"allowed: {list(spec.parameter_names())}.")
    values: dict[str, Any] = {}
    if spec.uses_model:
        model = knobs.get("model")
        values["model"] = lm.check_model(spec.default_model if model is None else model)
    for p in spec.params:
        given = knobs.get(p.name)
        values[p.name] = p.validate(p.default(profile) if given is None else given)
    for check in spec.checks:
        check(values)
    device = lm.resolve_device(device)
    seed_everything(int(seed))
    return Config(chapter=spec.number, profile=profile, device=device, seed=int(seed), values=values)
