"""Staging the book: the source tree jupyter-book renders, assembled from the executed chapters.

`stage_book(notebooks, stage)` copies the config, the prose pages and the CSS, writes the generated pages
(the replication report, the run-times page, placeholders for reference pages not written yet) and a
presented copy of every chapter (`present_notebook`): cells folded by `fold_cells`, the "at a glance" box
after the title, and each figure given a display width from its pixel density (the book's PNGs are drawn
at 2x: `plotting.use_style`), so they stay sharp and are neither blown up nor shrunk.
The committed notebooks are never changed.
"""

from __future__ import annotations

import ast
import base64
import shutil
import struct
from pathlib import Path
from typing import Any

from icl_geometry.bookkit.paths import repo_root
from icl_geometry.bookkit.glance import glance
from icl_geometry.bookkit.report import counts_line, load_rows, render
from icl_geometry.bookkit.run_times import run_times_page
from icl_geometry.bookkit.specs import all_specs

BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
BOOK_STATIC = "_static"  # the book's CSS (copied into the staged tree; see _config.yml)
REPORT_COUNTS = "<!-- report-counts -->"  # in book/intro.md: replaced by the report's counts at build time
# Reference pages other sessions write; a minimal page stands in while one is missing, so the build works.
PLACEHOLDERS = {
    "glossary.md": "# Glossary\n\nThe terms the chapters use, with where each is defined.\n\n"
                   ":::{glossary}\nbase item\n  A question-answer item before any context is added.\n:::\n",
    "quantization.md": "# A note on quantization\n\nThe chapters run the models in full precision on CPU; "
                       "4-bit loading is optional on a GPU.\n",
}
CSS_PX_PER_INCH = 100  # display size: a figure drawn at `dpi` shows at figsize x 100 CSS px (7 in -> 700 px)


def stage_book(notebooks: Path, stage: Path) -> Path:
    """Assemble a jupyter-book source tree: config, toc, prose pages, generated pages and the presented
    chapters."""
    root = repo_root()
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "book").mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, stage / name)
    shutil.copytree(root / BOOK_STATIC, stage / BOOK_STATIC)  # CSS; jupyter-book includes every .css in it
    for page in (root / "book").iterdir():
        if page.suffix in (".md", ".png", ".svg") or page.is_dir() and page.name in ("images", "figures"):
            (shutil.copytree if page.is_dir() else shutil.copy2)(page, stage / "book" / page.name)
    for name, text in PLACEHOLDERS.items():
        if not (stage / "book" / name).exists():
            (stage / "book" / name).write_text(text)
    # The report, the landing page's counts and each chapter's "at a glance" box read the results of the run
    # being rendered (beside its notebooks; book/results for the committed chapters) and the recorded runs.
    results = notebooks / "results" if (notebooks / "results").is_dir() else root / "book" / "results"
    recorded = root / "book" / "recorded"
    rows = load_rows(results, recorded)
    (stage / "book" / "report.md").write_text(render(rows, notebooks))  # links to the sections rendered
    (stage / "book" / "run_times.md").write_text(run_times_page(results, notebooks, recorded))
    intro = stage / "book" / "intro.md"
    intro.write_text(intro.read_text().replace(REPORT_COUNTS, counts_line(rows)))
    for spec in all_specs().values():
        nb = notebooks / spec.notebook
        if not nb.exists():
            raise FileNotFoundError(f"No executed notebook for chapter {spec.number} in {notebooks}: "
                                    f"run `icl-geometry run {spec.number}` first")
        box = glance(spec.question or spec.title, [r for r in rows if r["chapter"] == spec.number],
                     answer=spec.answer)
        present_notebook(nb, stage / "book" / spec.notebook, box)
    return stage


# ---- Readable pages: which cells the rendered book folds (tags added to the staged copies only) ----------------
#
# The committed notebooks stay as they are; `stage_book` tags its copies for jupyter-book:
#   - the papermill `injected-parameters` cell is removed (the set-up cell prints the resolved parameters);
#   - the `parameters` cell is folded (`hide-input`: the knobs stay one click away);
#   - the set-up cell (the first code cell after `parameters`, which resolves and validates the parameters
#     and imports what the chapter uses) is folded; its printed parameters stay visible;
#   - a cell whose code is only imports is folded;
#   - a cell whose first line is the comment `# hide-input` is folded;
#   - a plotting cell is folded: it creates a matplotlib figure (plt.subplots / plt.figure / plt.subplot_mosaic)
#     and calls nothing from the package except `plotting` (reading an UPPER_CASE constant is fine), records no
#     claim, defines no function or class (explorers stay visible) and is not an nbval-checked cell.
# Every cell that calls the package's computations stays visible.
# A cell the author already tagged (hide-input, remove-input, remove-cell, show-input, ...) is left alone.

FOLD_TAG = "hide-input"
FOLD_MARK = "# hide-input"
AUTHOR_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell", "show-input", "full-width", "margin"}
FIGURE_CALLS = {"subplots", "figure", "subplot_mosaic"}


def _package_aliases(nb: Any) -> set[str]:
    """Names a notebook binds to modules of icl_geometry (`from icl_geometry import lm`, `... as cg`)."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("icl_geometry"):
                names.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.asname or a.name.split(".")[0] for a in node.names
                             if a.name.startswith("icl_geometry"))
    return names


def _only_imports(tree: ast.Module) -> bool:
    return bool(tree.body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)


def _is_plotting(tree: ast.Module, source: str, package: set[str]) -> bool:
    if "NBVAL" in source or not tree.body:
        return False
    makes_figure = False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return False
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner in package and owner != "plotting" and not attr.isupper():
                return False  # a computation of the package (constants such as tasks.CONTEXTS are fine)
            if owner == "book":
                return False  # records a claim
            if owner == "plt" and attr in FIGURE_CALLS:
                makes_figure = True
        if isinstance(node, ast.Name) and node.id in package and node.id != "plotting" \
                and isinstance(node.ctx, ast.Load) and not _is_attribute_owner(tree, node):
            return False  # a package object used directly
    return makes_figure


def _is_attribute_owner(tree: ast.Module, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Attribute) and n.value is name for n in ast.walk(tree))


def fold_cells(nb: Any) -> list[tuple[int, str, str]]:
    """Tag a notebook's cells for the rendered book (in place); return (cell index, tag, reason) for each change."""
    changes: list[tuple[int, str, str]] = []
    package = _package_aliases(nb)
    after_parameters = False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = list(cell.metadata.get("tags", []))
        reason, tag = None, FOLD_TAG
        if "injected-parameters" in tags:
            reason, tag = "papermill's injected parameters", "remove-cell"
        elif AUTHOR_TAGS & set(tags):
            reason, after_parameters = None, False  # the author decided (for the set-up cell too)
        elif "parameters" in tags:
            reason = "parameters"
            after_parameters = True
        elif after_parameters:
            reason = "set-up (resolves the parameters)"
            after_parameters = False
        else:
            first = cell.source.lstrip().splitlines()[0].strip() if cell.source.strip() else ""
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:  # IPython magics: leave visible
                tree = None
            if first.lower() == FOLD_MARK:
                reason = "marked # hide-input"
            elif tree is not None and _only_imports(tree):
                reason = "imports only"
            elif tree is not None and _is_plotting(tree, cell.source, package):
                reason = "plotting only"
        if reason is not None and tag not in tags:
            cell.metadata["tags"] = tags + [tag]
            changes.append((i, tag, reason))
    return changes


def png_size(data: str | bytes) -> tuple[int, int, float | None]:
    """A PNG's pixel width and height and its density in dots per inch (None when the file does not say),
    from its base64 text (as a notebook stores it) or bytes."""
    raw = base64.b64decode(data) if isinstance(data, str) else data
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", raw[16:24])
    dpi = None
    pos = 8
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        if kind == b"pHYs":
            x, _, unit = struct.unpack(">IIB", raw[pos + 8:pos + 17])
            dpi = x * 0.0254 if unit == 1 else None
            break
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return width, height, dpi


def display_width(data: str | bytes) -> int:
    """The CSS width (px) to show a PNG at: its size in inches x 100 (its pixel width x 100 / dpi; a PNG
    without a density is taken as drawn at 100 dpi), so a 2x-density figure is shown at half its pixels."""
    width, _, dpi = png_size(data)
    return max(1, round(width * CSS_PX_PER_INCH / dpi)) if dpi else width


def size_figures(nb: Any) -> int:
    """Give every PNG output of `nb` a display width (output metadata `image/png: {width}`; myst-nb writes it
    on the <img>) unless it has one; returns how many it sized."""
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            png = out.get("data", {}).get("image/png") if out.get("output_type") in ("display_data",
                                                                                    "execute_result") else None
            if not png:
                continue
            meta = out.setdefault("metadata", {}).setdefault("image/png", {})
            if "width" not in meta:
                try:
                    meta["width"] = display_width(png)
                except (ValueError, struct.error):
                    continue
                n += 1
    return n


RICH = ("display_data", "execute_result")


def split_figure_cells(nb: Any) -> int:
    """A figure cell (myst-nb metadata `mystnb.figure`) keeps one rich output, its first image: myst-nb wraps
    every display output of such a cell in the figure, so a table printed after it (or a second image) would
    repeat the figure's label. The other rich outputs move to a cell of their own right after it (input
    removed, no caption). Returns how many cells were split."""
    import nbformat

    n, i = 0, 0
    while i < len(nb.cells):
        cell = nb.cells[i]
        i += 1
        if cell.cell_type != "code" or not cell.metadata.get("mystnb", {}).get("figure"):
            continue
        rich = [o for o in cell.get("outputs", []) if o.get("output_type") in RICH]
        image = next((o for o in rich if any(k.startswith("image/") for k in o.get("data", {}))), None)
        if len(rich) < 2 or image is None:
            continue
        moved = [o for o in rich if o is not image]
        cell.outputs = [o for o in cell.outputs if all(o is not m for m in moved)]
        extra = nbformat.v4.new_code_cell("", metadata={"tags": ["remove-input"]})
        extra.outputs = moved
        nb.cells.insert(i, extra)
        i += 1
        n += 1
    return n


def present_notebook(source: Path, target: Path, glance_box: str = "") -> list[tuple[int, str, str]]:
    """Copy an executed notebook into the staged book with its cells tagged by `fold_cells`, one rich output
    per figure cell (`split_figure_cells`), its figures sized by `size_figures`, and the "at a glance" box
    (MyST markdown) right after its title cell."""
    import nbformat

    nb = nbformat.read(str(source), as_version=4)
    changes = fold_cells(nb)
    split_figure_cells(nb)
    size_figures(nb)
    if glance_box:
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
        nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(glance_box))
    nbformat.write(nb, str(target))
    return changes
