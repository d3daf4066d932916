"""Input checks shared by the package: one integer check and one choice check, whose errors name the parameter,
the value given and what is allowed (e.g. "k = 0 is not allowed: expected an integer >= 1")."""

from __future__ import annotations

import math
from typing import Any, Collection

import numpy as np


def _integer_range(low: int, high: float) -> str:
    return f"an integer >= {low}" if high == math.inf else f"an integer in [{low}, {int(high)}]"


def is_int(value: Any) -> bool:
    """Whether `value` is an integer (numpy integers included) and not a bool (True would pass as 1)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_int(name: str, value: Any, low: int, high: float = math.inf, allow_none: bool = False) -> int | None:
    """`value` as a Python int in [low, high], or None when it is None and `allow_none`; otherwise a ValueError
    naming `name` and the allowed range. Booleans are not integers here (True would pass as 1)."""
    if value is None and allow_none:
        return None
    if not is_int(value) or not low <= value <= high:
        allowed = ("None or " if allow_none else "") + _integer_range(low, high)
        raise ValueError(f"{name} = {value!r} is not allowed: expected {allowed}")
    return int(value)


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> Any:
    """`value` if it is one of `allowed`; otherwise a ValueError naming `name` and listing the allowed values."""
    if value not in allowed:
        raise ValueError(f"{name} = {value!r} is not allowed: expected one of {list(allowed)}")
    return value
