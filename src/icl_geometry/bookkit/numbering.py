"""A Sphinx extension (listed in _config.yml): figures, tables, theorems and definitions numbered per chapter.

With `numfig` on and no numbered toctree, Sphinx numbers every enumerable node (figures, tables, code
blocks, sphinx-proof's theorems and definitions) continuously across the whole book. This renumbers them
within each chapter page and prefixes the chapter's number, read from its file name
(`book/02_attention_graphs` -> "Figure 2.1", "Figure 2.2", ...): the caption and every `{numref}` show
the same number. Pages without a chapter number (the report, the glossary) number from 1.
"""

from __future__ import annotations

import re
from typing import Any

CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]*$")


def chapter_of(docname: str) -> int | None:
    """The chapter number in a page's name (`book/05_icl_linear_regression` -> 5), or None."""
    m = CHAPTER.search(docname)
    return int(m.group(1)) if m else None


def renumber(app: Any, env: Any) -> list[str]:
    """Rewrite `env.toc_fignumbers` per chapter. Runs on `env-get-updated` after Sphinx's TocTreeCollector
    (priority 500) has assigned the book-wide numbers (that event comes after `env-updated`)."""
    for docname, by_type in env.toc_fignumbers.items():
        chapter = chapter_of(docname)
        for figtype, numbers in by_type.items():
            ordered = sorted(numbers, key=lambda key: numbers[key])
            for k, key in enumerate(ordered, start=1):
                numbers[key] = (chapter, k) if chapter is not None else (k,)
    return []


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-get-updated", renumber, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
