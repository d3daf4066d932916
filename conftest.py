"""Repository-wide pytest set-up: chapter runs under nbval are `slow` (they execute a real model or a
training) and write their results to runs/nbval/results, so they never overwrite a book build's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("ICL_GEOMETRY_STATIC", "1")
os.environ.setdefault("ICL_GEOMETRY_RESULTS", str(ROOT / "runs" / "nbval" / "results"))

# A recorded run (book/recorded/) is the evidence of a past full-profile run that took an hour or more: nbval
# never re-executes it; tests/test_recorded.py recomputes its verdicts from its per-prompt rows instead.
collect_ignore = ["book/recorded"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
