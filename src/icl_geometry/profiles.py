"""Named parameter sets for chapters (`ci`: CPU in minutes, `full`: GPU at paper scale) and their validation.

Every chapter declares its knobs once, in `icl_geometry/chapters/chNN.py`, as a `ChapterSpec`.
`resolve` turns the values of a notebook's `parameters` cell into a validated `Config`: a knob left
as `None` takes the profile's value; anything else is checked, and bad input fails at once with a
message that names the parameter and what it may be.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROFILES: tuple[str, ...] = ("ci", "full")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
KINDS: tuple[str, ...] = ("int", "float", "str", "bool", "ints", "floats")
COMMON: tuple[str, ...] = ("profile", "device", "seed", "model")


@dataclass(frozen=True)
class Param:
    """One chapter knob: its value under each profile and what values are allowed."""

    name: str
    ci: Any
    full: Any
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Param {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.name in COMMON:
            raise ValueError(f"Param name {self.name!r} is reserved (common parameters: {COMMON})")

    def default(self, profile: str) -> Any:
        return self.ci if profile == "ci" else self.full

    def allowed(self) -> str:
        """The allowed values, in words, for error messages and `icl-geometry list`."""
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        if self.kind == "bool":
            return "True or False"
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        what = {"int": "an integer", "float": "a number", "str": "a string",
                "ints": "a list of integers", "floats": "a list of numbers"}[self.kind]
        if self.low is None and self.high is None:
            return what
        each = " each" if self.kind in ("ints", "floats") else ""
        return f"{what}{each} in [{lo}, {hi}]"

    def validate(self, value: Any) -> Any:
        """Return `value` normalised (lists to tuples, ints to floats where asked) or raise ValueError."""

        def fail() -> ValueError:
            return ValueError(f"Parameter {self.name!r} = {value!r} is not allowed: expected {self.allowed()}.")

        if self.kind in ("ints", "floats"):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = (value,)
            if not isinstance(value, (list, tuple)) or len(value) == 0:
                raise fail()
            return tuple(self._scalar(v, self.kind[:-1], fail) for v in value)
        return self._scalar(value, self.kind, fail)

    def _scalar(self, v: Any, kind: str, fail) -> Any:
        if kind == "bool":
            if not isinstance(v, bool):
                raise fail()
            return v
        if kind == "str":
            if not isinstance(v, str):
                raise fail()
        elif kind == "int":
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise fail()
            v = int(v)
        elif kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
                raise fail()
            v = float(v)
        if self.choices is not None and v not in self.choices:
            raise fail()
        if kind in ("int", "float"):
            if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
                raise fail()
        return v


@dataclass(frozen=True)
class ChapterSpec:
    """A chapter's identity and knobs; its notebook is `book/{number}_{slug}.ipynb`."""

    number: str
    slug: str
    title: str
    params: tuple[Param, ...] = ()
    uses_model: bool = False
    default_model: str = "smollm2-135m"

    @property
    def notebook(self) -> str:
        return f"{self.number}_{self.slug}.ipynb"

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def parameter_names(self) -> tuple[str, ...]:
        common = ("profile", "device", "seed") + (("model",) if self.uses_model else ())
        return common + tuple(p.name for p in self.params)


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


def resolve_device(device: Any) -> str:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a silent fallback."""
    if device not in DEVICES:
        raise ValueError(f"Parameter 'device' = {device!r} is not allowed: expected one of {list(DEVICES)}.")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("Parameter 'device' = 'cuda' is not allowed here: no CUDA device is available "
                         "(allowed on this machine: ['auto', 'cpu']).")
    return device


def check_model(model: Any) -> str:
    """A bundled name, an existing local directory, or something shaped like a hub id ('org/name')."""
    from icl_geometry import lm

    if not isinstance(model, str) or not model:
        raise ValueError(f"Parameter 'model' = {model!r} is not allowed: expected a model name (str).")
    if model in lm.BUNDLED or Path(model).expanduser().is_dir() or lm.looks_like_hub_id(model):
        return model
    raise ValueError(
        f"Parameter 'model' = {model!r} is not allowed: it is not a bundled model, not a local directory, "
        f"and not a Hugging Face hub id of the form 'org/name'. Bundled models: {sorted(lm.BUNDLED)}."
    )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch so a profile gives the same outputs each run."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def resolve(chapter: str, profile: str = "ci", device: str = "auto", seed: int = 0, **knobs: Any) -> Config:
    """Validate a chapter's parameters, fill `None` knobs from the profile, seed everything."""
    from icl_geometry.chapters import get_spec

    spec = get_spec(chapter)
    profile = check_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Parameter 'seed' = {seed!r} is not allowed: expected an integer >= 0.")
    allowed = set(spec.parameter_names())
    unknown = sorted(set(knobs) - allowed)
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for chapter {spec.number}; "
                         f"allowed: {list(spec.parameter_names())}.")
    values: dict[str, Any] = {}
    if spec.uses_model:
        model = knobs.get("model")
        values["model"] = check_model(spec.default_model if model is None else model)
    for p in spec.params:
        given = knobs.get(p.name)
        values[p.name] = p.validate(p.default(profile) if given is None else given)
    device = resolve_device(device)
    seed_everything(int(seed))
    return Config(chapter=spec.number, profile=profile, device=device, seed=int(seed), values=values)
