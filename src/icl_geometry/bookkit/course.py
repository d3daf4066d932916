"""The course kit: student and instructor copies of the chapters, made from executed notebooks.

    icl-geometry course                       # from the committed chapters in book/ (nothing re-executed)
    icl-geometry course --execute --device cuda   # execute every chapter first, then make the copies

`course/student/` holds each chapter with every exercise's solution removed and a `# Your answer` code cell
in its place; `course/instructor/` keeps the solutions. Both keep the outputs of the run they were made
from (the committed `ci` run by default), so a class can read a chapter before running anything, and both
switch the explorers to live ipywidgets sliders (the rendered book shows one static figure instead).

What counts as a solution (in markdown cells):
  - a MyST directive fenced with ``` or ::: (any length, nested ones included) whose title starts with
    "Solution": ```{admonition} Solution ... :class: dropdown, ```{dropdown} Solution to 3, ...;
  - a `{solution}` directive (sphinx-exercise);
and, in code cells, a cell tagged `solution`.
Text before and after a solution stays; the solution's lines are replaced by the answer cell.
"""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from icl_geometry.bookkit.specs import all_specs
from icl_geometry.bookkit.paths import repo_root
from icl_geometry.bookkit.widgets import STATIC_ENV

ANSWER = "# Your answer"
SOLUTION_TAG = "solution"
LIVE_TAG = "course-live-widgets"
LIVE_SOURCE = (f"# Course copy: the explorers show live sliders here (the rendered book draws one static figure).\n"
               f"import os\n\nos.environ[{STATIC_ENV!r}] = \"0\"")

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[A-Za-z0-9_:-]+)\}[ \t]*(?P<title>.*?)[ \t]*$")


@dataclass
class Removed:
    """One solution taken out of a student notebook."""

    chapter: str
    cell: int
    title: str
    text: str


@dataclass
class CourseReport:
    student: list[Path] = field(default_factory=list)
    instructor: list[Path] = field(default_factory=list)
    removed: list[Removed] = field(default_factory=list)


def _is_solution(name: str, title: str) -> bool:
    return name.lower() == "solution" or re.match(r"(?i)solution\b", title) is not None


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def solution_spans(markdown: str) -> list[tuple[int, int, str]]:
    """(first line, line after the closing fence, title) of each top-level solution block in a markdown text."""
    lines = markdown.split("\n")
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        end = next((j for j in range(i + 1, len(lines)) if _closes(lines[j], fence)), len(lines) - 1)
        if _is_solution(m.group("name"), m.group("title")):
            spans.append((i, end + 1, m.group("title") or m.group("name")))
        i = end + 1
    return spans


def answer_source(title: str) -> str:
    """'# Your answer', naming the exercise when the solution's title does ('Solution to 3' -> '# Your answer to 3')."""
    rest = re.sub(r"(?i)^solution\b[\s:.-]*", "", title).strip()
    return f"{ANSWER} {rest}".rstrip() if rest else ANSWER


def _answer_cell(title: str) -> Any:
    cell = nbformat.v4.new_code_cell(answer_source(title) + "\n")
    cell.metadata["tags"] = ["your-answer"]
    return cell


def _course_common(nb: Any) -> Any:
    """Both copies: papermill's injected cell dropped (the parameters cell is the one to edit), widgets live."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    live = nbformat.v4.new_code_cell(LIVE_SOURCE)
    live.metadata["tags"] = [LIVE_TAG]
    at = next((i + 1 for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), 0)
    cells.insert(at, live)
    nb.cells = cells
    return nb


def _with_ids(nb: Any) -> Any:
    """Fresh cell ids (unique, as nbformat 4.5 wants them; split cells need their own)."""
    nb.nbformat_minor = max(nb.get("nbformat_minor", 5), 5)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def instructor_notebook(nb: Any) -> Any:
    return _with_ids(_course_common(nb))


def student_notebook(nb: Any, chapter: str = "") -> tuple[Any, list[Removed]]:
    """The student copy and the solutions it no longer contains."""
    nb = _course_common(nb)
    cells, removed = [], []
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            removed.append(Removed(chapter, len(cells), "solution (code)", cell.source))
            cells.append(_answer_cell("Solution"))
            continue
        if cell.cell_type != "markdown" or not solution_spans(cell.source):
            cells.append(cell)
            continue
        lines = cell.source.split("\n")
        start = 0
        for first, after, title in solution_spans(cell.source):
            before = "\n".join(lines[start:first]).strip("\n")
            if before.strip():
                piece = copy.deepcopy(cell)
                piece.source = before
                piece.pop("attachments", None)
                cells.append(piece)
            removed.append(Removed(chapter, len(cells), title, "\n".join(lines[first:after])))
            cells.append(_answer_cell(title))
            start = after
        tail = "\n".join(lines[start:]).strip("\n")
        if tail.strip():
            piece = copy.deepcopy(cell)
            piece.source = tail
            cells.append(piece)
    nb.cells = cells
    return _with_ids(nb), removed


def make_course(notebooks: Path | None = None, out: Path | None = None) -> CourseReport:
    """Write `out/student/` and `out/instructor/` (default `course/`) from executed chapters in `notebooks`
    (default: the committed chapters in `book/`). Executing them first is the runner's job
    (`icl-geometry course --execute` runs every chapter into `out/_executed/` and copies those)."""
    root = repo_root()
    out = out or root / "course"
    source = notebooks or root / "book"
    report = CourseReport()
    for folder in ("student", "instructor"):
        if (out / folder).exists():
            shutil.rmtree(out / folder)
        (out / folder).mkdir(parents=True)
    for number, spec in all_specs().items():
        path = source / spec.notebook
        if not path.exists():
            raise FileNotFoundError(f"No executed notebook for chapter {number} in {source}")
        nb = nbformat.read(str(path), as_version=4)
        student, removed = student_notebook(nb, number)
        report.removed += removed
        for folder, copy_nb, bucket in (("student", student, report.student),
                                         ("instructor", instructor_notebook(nb), report.instructor)):
            target = out / folder / spec.notebook
            nbformat.validate(copy_nb)
            nbformat.write(copy_nb, str(target))
            bucket.append(target)
    return report
