"""The parameter schema of every chapter: `Param` (one knob, its value per profile, what is allowed) and
`ChapterSpec` (a chapter's identity, knobs and the checks that involve several knobs).

Each chapter declares its knobs once, in `icl_geometry/bookkit/specs/chNN.py`; `icl_geometry.bookkit.profiles.resolve`
validates a notebook's parameters against that declaration. This module imports nothing from the package
except `lm`'s default model name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from icl_geometry.llm.lm import DEFAULT_MODEL

PROFILES: tuple[str, ...] = ("ci", "full")
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
    default_model: str = DEFAULT_MODEL
    paper: str = ""  # which paper the chapter replicates: "A" or "B" (the report groups claims by it)
    question: str = ""  # the question the chapter asks ("at a glance" box; the title when empty)
    answer: str = ""  # its answer in one sentence, consistent with the verdicts (the "at a glance" box)
    # Checks that involve several knobs: each takes the validated values and raises ValueError naming them.
    checks: tuple[Callable[[Mapping[str, Any]], None], ...] = ()

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
