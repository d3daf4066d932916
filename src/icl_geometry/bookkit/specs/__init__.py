"""Registry of the book's chapters: each `chNN.py` module in this package defines one `SPEC`."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from icl_geometry.bookkit.specs.schema import ChapterSpec


@cache
def all_specs() -> dict[str, ChapterSpec]:
    """Every chapter's spec, keyed by its two-digit number, in book order."""
    specs: dict[str, ChapterSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("ch"):
            spec = importlib.import_module(f"{__name__}.{info.name}").SPEC
            specs[spec.number] = spec
    return specs


def get_spec(chapter: str | int) -> ChapterSpec:
    """Look a chapter up by number ('01', '1', 1) or notebook stem ('01_partition_geometry')."""
    specs = all_specs()
    key = str(chapter).split("_")[0].removesuffix(".ipynb")
    key = key.zfill(2) if key.isdigit() else key
    if key not in specs:
        raise ValueError(f"Unknown chapter {chapter!r}: expected one of {list(specs)}.")
    return specs[key]
