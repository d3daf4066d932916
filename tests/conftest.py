"""Shared fixtures: the bundled models are loaded once per test session (they are real, never mocked).

Markers are kept true: a test that is not marked `slow` and still tries to load a bundled model fails with
a message saying so (the fast tier, `make check`, must never dequantize a model)."""

from __future__ import annotations

import pytest
from hypothesis import settings


@pytest.fixture(scope="session")
def smollm2():
    from icl_geometry.llm import lm

    return lm.load("smollm2-135m", device="cpu")


@pytest.fixture(scope="session")
def gemma3():
    from icl_geometry.llm import lm

    return lm.load("gemma3-270m", device="cpu")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random Llama and Gemma-3 checkpoints (`tests/fixtures/tiny.py`), written and loaded through `lm.load`
    once per session: {"llama": LoadedModel, "gemma3": LoadedModel}. Fast tier."""
    from icl_geometry.llm import lm
    from fixtures import tiny

    root = tmp_path_factory.mktemp("tiny_models")
    return {a: lm.load(str(tiny.save_tiny_model(root / a, a)), device="cpu") for a in tiny.ARCHITECTURES}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if {"smollm2", "gemma3"} & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"tests using a bundled-model fixture must be marked slow: {unmarked}")


@pytest.fixture(autouse=True)
def _bundled_models_only_in_slow_tests(request, monkeypatch):
    if request.node.get_closest_marker("slow") is not None:
        return
    from icl_geometry.llm import lm

    def refuse(entry):
        raise RuntimeError(f"{request.node.nodeid} loads the bundled model {entry.name!r} but is not marked "
                           "@pytest.mark.slow (the fast tier never loads a bundled model)")

    monkeypatch.setattr(lm, "_materialise_bundled", refuse)


# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; speed lives in benchmarks/.
settings.register_profile("book", deadline=None, derandomize=True)
settings.load_profile("book")
