"""The course kit: student and instructor copies of the chapters, made from executed notebooks.

    icl-geometry course                       # from the committed chapters in book/ (nothing re-executed)
    icl-geometry course --execute --device cuda   # execute every chapter first, then make the copies

    icl-geometry course --html                # also render the student copies as a book: course/_build/html

`course/student/` holds each chapter with every exercise's solution removed and an answer cell in its place:
a Markdown cell (*Your answer:*) for a written answer or a proof (a solution with no code in it), a
`# Your answer` code cell for a solution with code. `course/instructor/` keeps the solutions. Both keep the
outputs of the run they were made from (the committed `ci` run by default), so a class can read a chapter
before running anything; both switch the explorers to live ipywidgets sliders (the rendered book shows one
static figure instead), and both are plain Markdown that Jupyter renders: MyST roles, fences and targets are
converted (`icl_geometry.bookkit.myst_plain`), each captioned figure gets its caption in a Markdown cell below
it, and the book's prose pages are copied beside the notebooks (converted the same way) so that links resolve.
`course/README.md` is the instructors' notes (`icl_geometry.bookkit.course_notes`).

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
from typing import Any, Callable

import nbformat

from icl_geometry.bookkit.course_notes import instructor_readme
from icl_geometry.bookkit.myst_plain import (CODE_FENCE, DIRECTIVE_OPEN, MystContext, closing_line, figure_of,
                                             split_options, to_plain)
from icl_geometry.bookkit.specs import all_specs
from icl_geometry.bookkit.paths import repo_root
from icl_geometry.bookkit.widgets import STATIC_ENV

ANSWER = "# Your answer"
WRITTEN = "*Your answer:*"
ANSWER_TAG = "your-answer"
CAPTION_TAG = "course-caption"
SOLUTION_TAG = "solution"
CODE_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode"}
# Pages the book generates when it is built (not copied beside the course notebooks): what a {doc} link reads.
GENERATED_PAGES = {"report": "the book's replication report", "run_times": "the book's Run times page"}
LIVE_TAG = "course-live-widgets"
LIVE_SOURCE = (f"# Course copy: the explorers show live sliders here (the rendered book draws one static figure).\n"
               f"import os\n\nos.environ[{STATIC_ENV!r}] = \"0\"")


@dataclass
class Removed:
    """One solution taken out of a student notebook."""

    chapter: str
    cell: int
    title: str
    text: str
    written: bool = False  # answered in a Markdown cell (no code in the solution)


@dataclass
class CourseReport:
    student: list[Path] = field(default_factory=list)
    instructor: list[Path] = field(default_factory=list)
    removed: list[Removed] = field(default_factory=list)
    pages: list[Path] = field(default_factory=list)
    readme: Path | None = None
    html: Path | None = None


def _is_solution(name: str, title: str) -> bool:
    return name.lower() == "solution" or re.match(r"(?i)solution\b", title) is not None


def solution_spans(markdown: str) -> list[tuple[int, int, str]]:
    """(first line, line after the closing fence, title) of each top-level solution block in a markdown text."""
    lines = markdown.split("\n")
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines):
        m = DIRECTIVE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        end = closing_line(lines, i, m.group("fence"))
        if _is_solution(m.group("name"), m.group("title")):
            spans.append((i, end + 1, m.group("title") or m.group("name")))
        i = end + 1
    return spans


def has_code(solution: str) -> bool:
    """Whether a solution (its fenced block, as `solution_spans` finds it) holds code: a code fence (```python,
    ~~~, {code-block}) or an indented code block (four spaces at the start of the body or after a blank line, not
    inside a list). Prose and proofs (maths included) hold none."""
    lines = solution.split("\n")
    indent = DIRECTIVE_OPEN.match(lines[0]).group("indent") if DIRECTIVE_OPEN.match(lines[0]) else ""
    _, body = split_options([x[len(indent):] if x.startswith(indent) else x for x in lines[1:-1]])
    previous = ""
    for i, line in enumerate(body):
        opened = DIRECTIVE_OPEN.match(line)
        if CODE_FENCE.match(line) or opened and opened.group("name").lower() in CODE_DIRECTIVES:
            return True
        if re.match(r"^( {4,}|\t)\S", line) and (i == 0 or not body[i - 1].strip()) \
                and not re.match(r"^\s*([-*+]|\d+[.)])\s", previous):
            return True
        if line.strip() and not line[:1].isspace():
            previous = line
    return False


def answer_source(title: str, written: bool = False) -> str:
    """'# Your answer' (code) or '*Your answer:*' (Markdown), naming the exercise when the solution's title does
    ('Solution to 3' -> '# Your answer to 3', '*Your answer to 3:*')."""
    rest = re.sub(r"(?i)^solution\b[\s:.-]*", "", title).strip()
    if written:
        return f"*Your answer {rest}:*" if rest else WRITTEN
    return f"{ANSWER} {rest}".rstrip() if rest else ANSWER


def _answer_cell(title: str, written: bool = False) -> Any:
    if written:
        cell = nbformat.v4.new_markdown_cell(answer_source(title, written=True))
    else:
        cell = nbformat.v4.new_code_cell(answer_source(title) + "\n")
    cell.metadata["tags"] = [ANSWER_TAG]
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


def plain_markdown(nb: Any, ctx: MystContext) -> Any:
    """Every Markdown cell as plain Markdown, and each captioned figure's caption in a Markdown cell below it."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = to_plain(cell.source, ctx)
        cells.append(cell)
        figure = figure_of(cell)
        if figure and figure[1]:
            label = ctx.labels.get(figure[0])
            number = f" {label.number}" if label and label.number else ""
            caption = nbformat.v4.new_markdown_cell(f"*Figure{number}.* {to_plain(figure[1], ctx)}")
            caption.metadata["tags"] = [CAPTION_TAG]
            cells.append(caption)
    nb.cells = cells
    return nb


def instructor_notebook(nb: Any, ctx: MystContext | None = None, plain: bool = True) -> Any:
    nb = _course_common(nb)
    return _with_ids(plain_markdown(nb, ctx or MystContext()) if plain else nb)


def student_notebook(nb: Any, chapter: str = "", ctx: MystContext | None = None,
                     plain: bool = True) -> tuple[Any, list[Removed]]:
    """The student copy and the solutions it no longer contains (plain Markdown unless `plain` is False: the
    student book keeps MyST for jupyter-book)."""
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
            text = "\n".join(lines[first:after])
            written = not has_code(text)
            removed.append(Removed(chapter, len(cells), title, text, written))
            cells.append(_answer_cell(title, written))
            start = after
        tail = "\n".join(lines[start:]).strip("\n")
        if tail.strip():
            piece = copy.deepcopy(cell)
            piece.source = tail
            cells.append(piece)
    nb.cells = cells
    if plain:
        nb = plain_markdown(nb, ctx or MystContext())
    return _with_ids(nb), removed


def course_context(root: Path, notebooks: dict[str, Any]) -> MystContext:
    """What the MyST conversion needs: the chapters (by document stem), the prose pages and references.bib."""
    ctx = MystContext.build({Path(stem).stem: nb for stem, nb in notebooks.items()}, prose_pages(root),
                            root / "references.bib")
    ctx.elsewhere.update(GENERATED_PAGES)
    return ctx


def prose_pages(root: Path) -> dict[str, str]:
    """The book's prose pages (book/*.md but the landing page), by stem: copied beside the course notebooks."""
    return {p.stem: p.read_text() for p in sorted((root / "book").glob("*.md")) if p.stem != "intro"}


def make_course(notebooks: Path | None = None, out: Path | None = None,
                build: Callable[[Path, Path], Path] | None = None) -> CourseReport:
    """Write `out/student/`, `out/instructor/` and `out/README.md` (default `course/`) from executed chapters in
    `notebooks` (default: the committed chapters in `book/`). With `build` (the runner's book builder:
    `build(sources, html_folder) -> index.html`), also the student book in `out/_build/html`. Executing the
    chapters first is the runner's job too (`icl-geometry course --execute` runs every chapter into
    `out/_executed/` and copies those)."""
    root = repo_root()
    out = out or root / "course"
    source = notebooks or root / "book"
    report = CourseReport()
    for folder in ("student", "instructor"):
        if (out / folder).exists():
            shutil.rmtree(out / folder)
        (out / folder).mkdir(parents=True)
    chapters = {}
    for number, spec in all_specs().items():
        path = source / spec.notebook
        if not path.exists():
            raise FileNotFoundError(f"No executed notebook for chapter {number} in {source}")
        chapters[number] = nbformat.read(str(path), as_version=4)
    ctx = course_context(root, {all_specs()[n].notebook: nb for n, nb in chapters.items()})
    for number, nb in chapters.items():
        spec = all_specs()[number]
        student, removed = student_notebook(nb, number, ctx)
        report.removed += removed
        for folder, copy_nb, bucket in (("student", student, report.student),
                                         ("instructor", instructor_notebook(nb, ctx), report.instructor)):
            target = out / folder / spec.notebook
            nbformat.validate(copy_nb)
            nbformat.write(copy_nb, str(target))
            bucket.append(target)
    for stem, text in prose_pages(root).items():
        for folder in ("student", "instructor"):
            (out / folder / f"{stem}.md").write_text(to_plain(text, ctx))
        report.pages.append(out / "student" / f"{stem}.md")
    if build is not None:
        staged = stage_student(chapters, source, out / "_build" / "student_src")
        report.html = build(staged, out / "_build" / "html")
    report.readme = out / "README.md"
    report.readme.write_text(instructor_readme(root, source, chapters, html=build is not None,
                                               plain=lambda t: to_plain(t, ctx)))
    return report


def stage_student(chapters: dict[str, Any], source: Path, folder: Path) -> Path:
    """The student chapters as jupyter-book sources (MyST kept, solutions replaced, explorers static) in `folder`,
    with the results of the run they come from when `source` has them."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for number, nb in chapters.items():
        student, _ = student_notebook(nb, number, plain=False)
        student.cells = [c for c in student.cells if LIVE_TAG not in c.metadata.get("tags", [])]
        nbformat.write(student, str(folder / all_specs()[number].notebook))
    if (source / "results").is_dir():
        shutil.copytree(source / "results", folder / "results")
    return folder
