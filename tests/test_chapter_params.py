"""Every chapter declares its parameters once (its spec): the notebook's `parameters` cell and its
`profiles.resolve` call must name exactly those parameters, with the spec's defaults (fast: reads JSON)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from icl_geometry.bookkit.specs import all_specs

BOOK = Path(__file__).resolve().parents[1] / "book"
COMMON_DEFAULTS = {"profile": "ci", "device": "auto", "seed": 0}


def _cells(spec) -> list[dict]:
    return json.loads((BOOK / spec.notebook).read_text())["cells"]


def _tagged(cells: list[dict], tag: str) -> list[int]:
    return [i for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("number", list(all_specs()))
def test_parameters_cell_matches_the_spec(number):
    spec = all_specs()[number]
    cells = _cells(spec)
    tagged = _tagged(cells, "parameters")
    assert len(tagged) == 1, f"{spec.notebook}: expected one cell tagged 'parameters', found {len(tagged)}"
    tree = ast.parse("".join(cells[tagged[0]]["source"]))
    assigned = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert list(assigned) == list(spec.parameter_names()), f"{spec.notebook}: parameters cell names"
    for name, value in assigned.items():
        assert value == COMMON_DEFAULTS.get(name), (
            f"{spec.notebook}: {name} = {value!r}; knobs default to None (the profile's value lives in the spec)")


@pytest.mark.parametrize("number", list(all_specs()))
def test_resolve_call_passes_every_parameter(number):
    spec = all_specs()[number]
    cells = _cells(spec)
    first = _tagged(cells, "parameters")[0]
    calls = []
    for cell in cells[first + 1:]:
        if cell["cell_type"] != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        tree = ast.parse("".join(cell["source"]))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and n.func.attr == "resolve" and getattr(n.func.value, "id", "") == "profiles"]
        break  # the first code cell after the parameters must resolve them
    assert len(calls) == 1, f"{spec.notebook}: the first code cell after 'parameters' must call profiles.resolve"
    call = calls[0]
    assert [ast.literal_eval(a) for a in call.args] == [spec.number]
    passed = {k.arg: k.value.id for k in call.keywords if isinstance(k.value, ast.Name)}
    assert passed == {name: name for name in spec.parameter_names()}, f"{spec.notebook}: resolve(...) arguments"
