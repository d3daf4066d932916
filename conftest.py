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


# Run by tests/test_portability.py with AVX2 kernels forced (its CHAPTERS): when that test is collected, nbval's
# plain run of these chapters is deselected, so each chapter is executed once per `make test`.
PORTABILITY_CHAPTERS = ("01_partition_geometry.ipynb", "02_attention_graphs.ipynb", "05_icl_linear_regression.ipynb")

# `make test` runs in two processes (pytest-xdist, --dist loadscope --no-loadscope-reorder): each file goes whole
# to one of them, in this order. The longest files first (measured on 2 cores), so that no long one starts last
# while the other process sits idle; every other file keeps its place after them.
LONGEST_FIRST = ("tests/test_portability.py", "book/07_", "book/04_", "book/00_", "book/06_", "book/03_",
                 "tests/test_coverage.py", "tests/test_rendered_book.py", "tests/test_runner.py",
                 "tests/test_course.py", "tests/test_context_geometry.py")


def _rank(item: pytest.Item) -> int:
    path = item.path.relative_to(ROOT).as_posix() if item.path.is_relative_to(ROOT) else str(item.path)
    return next((i for i, start in enumerate(LONGEST_FIRST) if path.startswith(start)), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
    if any(item.path.name == "test_portability.py" for item in items):
        twice = [item for item in items if item.path.suffix == ".ipynb" and item.path.name in PORTABILITY_CHAPTERS]
        if twice:
            config.hook.pytest_deselected(items=twice)
            items[:] = [item for item in items if item not in twice]
    items[:] = sorted(items, key=_rank)  # stable: a file's tests (a notebook's cells) stay in order
