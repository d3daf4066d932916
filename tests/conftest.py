"""Shared fixtures: the bundled models are loaded once per test session (they are real, never mocked)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("ICL_GEOMETRY_STATIC", "1")


@pytest.fixture(scope="session")
def smollm2():
    from icl_geometry import lm

    return lm.load("smollm2-135m", device="cpu")


@pytest.fixture(scope="session")
def gemma3():
    from icl_geometry import lm

    return lm.load("gemma3-270m", device="cpu")

from hypothesis import settings  # noqa: E402

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; speed lives in benchmarks/.
settings.register_profile("book", deadline=None, derandomize=True)
settings.load_profile("book")
