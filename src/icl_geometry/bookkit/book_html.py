"""A Sphinx extension for the rendered book (listed in _config.yml's `sphinx: extra_extensions`).

Sphinx 7.4 writes each inline script that an extension registers after the builder started twice
(once from the builder, once from the registry). sphinx-thebe's `const THEBE_JS_URL = ...` then
raises "Identifier 'THEBE_JS_URL' has already been declared" on every page. This extension drops
exact duplicates from each page's scripts (same file and same inline body), keeping the first.
"""

from __future__ import annotations

from typing import Any


def _key(script: Any) -> tuple[str, str]:
    attrs = getattr(script, "attributes", {}) or {}
    return str(getattr(script, "filename", script) or ""), str(attrs.get("body", ""))


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, str]] = set()
    kept = []
    for script in scripts:
        key = _key(script)
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
