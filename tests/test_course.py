"""The course kit (icl_geometry.bookkit.course): student notebooks hold no solution and an answer cell for each
one removed (Markdown for a written answer, code for code); instructor notebooks keep them; both keep the
committed outputs, make widgets live and are plain Markdown (icl_geometry.bookkit.myst_plain, one test per
construct); course/README.md holds the instructors' notes; the student book (HTML) has no solution.

The fast tests run on the committed chapters without executing anything. A student copy runs exactly the
code its chapter runs: `test_student_code_is_the_chapters_code` checks, for every chapter, that its code cells
are the chapter's own in order, plus the live-widgets cell and answer cells that hold only a comment (the
solutions are Markdown), and nbval executes every chapter in `make test`. So the slow test executes one student
notebook top to bottom with papermill (ci profile, CPU), chapter 05, the cheapest (about 45 s on 2 cores), for
what only a student copy has: its folder, its parameters cell without the injected one, its answer cells.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from icl_geometry.bookkit import course, myst_plain, widgets
from icl_geometry.bookkit.myst_plain import MystContext, to_plain
from icl_geometry.bookkit.specs import all_specs

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ("05",)  # executed by the slow test
# what it checks is that every cell runs, not the results: fewer training steps (100 s -> about 30 s on 2 busy cores)
SMALL = {"05": {"steps": 100}}
SOLUTION_DIRECTIVE = re.compile(r"(?im)^[ \t]*(`{3,}|:{3,})\{[\w:-]+\}[ \t]*solution|\{solution\}")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    return out, course.make_course(ROOT / "book", out)


def _text(nb) -> str:
    """Every cell's source and every output's text."""
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            for key, value in output.get("data", {}).items():
                if key.startswith("text/"):
                    parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def _solution_lines(text: str, plain: bool = False) -> list[str]:
    """The lines that carry a solution's content (not its fences or options), as MyST or converted to plain."""
    lines = [line.strip() for line in text.split("\n")[1:-1]
             if len(line.strip()) >= 25 and not line.strip().startswith(":")]
    return [myst_plain.roles_to_plain(line, CTX) for line in lines] if plain else lines


CTX = course.course_context(ROOT, {spec.notebook: nbformat.read(str(ROOT / "book" / spec.notebook), as_version=4)
                                   for spec in all_specs().values()})


def _outputs(nb) -> int:
    return sum(len(c.get("outputs", [])) for c in nb.cells if c.cell_type == "code")


def test_every_chapter_has_a_student_and_an_instructor_copy(kit):
    out, report = kit
    names = sorted(spec.notebook for spec in all_specs().values())
    assert sorted(p.name for p in report.student) == names == sorted(p.name for p in report.instructor)
    for path in report.student + report.instructor:
        nbformat.validate(nbformat.read(str(path), as_version=4))


@pytest.mark.parametrize("number", list(all_specs()))
def test_student_notebook_has_no_solution_and_an_answer_cell_for_each(kit, number):
    out, report = kit
    spec = all_specs()[number]
    source = nbformat.read(str(ROOT / "book" / spec.notebook), as_version=4)
    student = nbformat.read(str(out / "student" / spec.notebook), as_version=4)
    instructor = nbformat.read(str(out / "instructor" / spec.notebook), as_version=4)
    removed = [r for r in report.removed if r.chapter == number]

    has_exercises = any(c.cell_type == "markdown" and re.search(r"(?m)^#+ .*Exercises", c.source) for c in source.cells)
    assert removed or not has_exercises, f"chapter {number} has exercises but no solution was found to remove"
    student_text, instructor_text = _text(student), _text(instructor)
    assert not SOLUTION_DIRECTIVE.search(student_text)
    assert not any("solution" in c.metadata.get("tags", []) for c in student.cells)
    for r in removed:
        lines = _solution_lines(r.text)
        assert lines, r
        leaked = [line for line in lines + _solution_lines(r.text, plain=True) if line in student_text]
        assert not leaked, f"chapter {number}: solution text left in the student notebook: {leaked[:2]}"
        kept = _solution_lines(r.text, plain=True)
        assert all(line in instructor_text for line in kept)  # the instructor keeps every solution (plain)

    answers = [c for c in student.cells if course.ANSWER_TAG in c.metadata.get("tags", [])]
    assert [c.cell_type for c in answers] == ["markdown" if r.written else "code" for r in removed]
    assert all(c.source.startswith(course.ANSWER if c.cell_type == "code" else "*Your answer") for c in answers)
    assert _outputs(student) == _outputs(instructor) == _outputs(source)  # the committed outputs are kept

    for nb in (student, instructor):
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert not any("injected-parameters" in t for t in tags)
        at = next(i for i, t in enumerate(tags) if "parameters" in t)
        assert course.LIVE_TAG in tags[at + 1]


def test_solution_forms_are_found_and_other_directives_kept():
    text = "\n".join([
        "**1.** Prove it.", "",
        "```{admonition} Solution", ":class: dropdown", "Because $x$.", "```", "",
        "````{dropdown} Solution to 2", "Nested:", "```python", "print(1)", "```", "````", "",
        ":::{admonition} Solution", ":class: dropdown tip", "Colon fence.", ":::", "",
        "```{solution} ex-3", "Sphinx-exercise form.", "```", "",
        "```{admonition} Hint", ":class: dropdown", "Not a solution.", "```", "",
        "```{note}", "A note.", "```", "end",
    ])
    spans = course.solution_spans(text)
    assert [title for _, _, title in spans] == ["Solution", "Solution to 2", "Solution", "ex-3"]
    lines = text.split("\n")
    assert lines[spans[1][1] - 1] == "````"  # the nested ``` block does not close the outer fence
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
    student, removed = course.student_notebook(nb, "99")
    assert len(removed) == 4
    kept = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert not any(gone in kept for gone in ("Because", "Nested", "Colon fence", "Sphinx-exercise"))
    assert "Not a solution." in kept and "A note." in kept and "**1.** Prove it." in kept and kept.endswith("end")
    answers = [(c.cell_type, c.source) for c in student.cells if course.ANSWER_TAG in c.metadata.get("tags", [])]
    assert answers == [("markdown", "*Your answer:*"), ("code", "# Your answer to 2\n"),
                       ("markdown", "*Your answer:*"), ("markdown", "*Your answer ex-3:*")]  # prose: Markdown


def test_code_cells_tagged_solution_are_replaced():
    cell = nbformat.v4.new_code_cell("x = secret_answer()")
    cell.metadata["tags"] = ["solution"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Q?"), cell])
    student, removed = course.student_notebook(nb, "99")
    assert "secret_answer" not in _text(student) and len(removed) == 1
    assert student.cells[-1].source.startswith(course.ANSWER)


def test_the_live_cell_turns_the_static_fallback_off(monkeypatch):
    import IPython

    monkeypatch.setenv(widgets.STATIC_ENV, "1")  # as the Makefile exports it
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": object()})())
    assert widgets.is_static()
    exec(course.LIVE_SOURCE, {})
    assert os.environ[widgets.STATIC_ENV] == "0" and not widgets.is_static()


@pytest.mark.slow
@pytest.mark.parametrize("number", CHEAP)
def test_student_notebook_executes_top_to_bottom(kit, number, tmp_path, monkeypatch):
    """A student who runs every cell in order gets no error.

    Executed headless, the explorers draw their static figure: a live ipywidgets explorer under papermill, with
    no front end, stalled intermittently (0 % CPU for 10+ min, twice in three fresh-clone runs), so the copy
    executed here has the course's live-widgets cell removed; that the student copies carry it is checked by
    `test_student_copies_turn_the_explorers_live` (fast)."""
    out, _ = kit
    spec = all_specs()[number]
    monkeypatch.setenv("ICL_GEOMETRY_RESULTS", str(tmp_path / "results"))
    nb = nbformat.read(str(out / "student" / spec.notebook), as_version=4)
    nb.cells = [c for c in nb.cells if course.LIVE_TAG not in c.metadata.get("tags", [])]
    headless = tmp_path / f"headless_{spec.notebook}"
    nbformat.write(nb, str(headless))
    executed = tmp_path / spec.notebook
    small = [a for name, value in SMALL.get(number, {}).items() for a in ("-p", name, str(value))]
    cmd = [sys.executable, "-m", "papermill", str(headless), str(executed),
           "-p", "profile", "ci", "-p", "device", "cpu", *small, "--cwd", str(out / "student"), "-k", "python3",
           "--no-progress-bar", "--execution-timeout", "600"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "ICL_GEOMETRY_STATIC": "1"})
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.parametrize("number", list(all_specs()))
def test_student_code_is_the_chapters_code(kit, number):
    """What a student executes is what nbval executes: the chapter's code cells in order (papermill's injected
    cell aside), plus the live-widgets cell and answer cells whose code is only a comment."""
    out, _ = kit
    spec = all_specs()[number]
    source = nbformat.read(str(ROOT / "book" / spec.notebook), as_version=4)
    student = nbformat.read(str(out / "student" / spec.notebook), as_version=4)
    own = [c.source for c in source.cells
           if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    kept, extra = [], []
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if course.LIVE_TAG in tags:
            extra.append(cell.source)
        elif course.ANSWER_TAG in tags:
            assert all(not line.strip() or line.lstrip().startswith("#") for line in cell.source.split("\n")), (
                f"chapter {number}: an answer cell runs code: {cell.source!r}")
        else:
            kept.append(cell.source)
    assert kept == own, f"chapter {number}: the student copy's code differs from the chapter's"
    assert extra == [course.LIVE_SOURCE]


def test_student_copies_turn_the_explorers_live(kit):
    out, _ = kit
    for spec in all_specs().values():
        nb = nbformat.read(str(out / "student" / spec.notebook), as_version=4)
        live = [c for c in nb.cells if course.LIVE_TAG in c.metadata.get("tags", [])]
        assert len(live) == 1 and live[0].source == course.LIVE_SOURCE, spec.notebook


@pytest.mark.parametrize("body, code", [
    ("Because $x > 0$, the sum is $\\sum_i x_i$.", False),
    ("Proof: by induction.\n\n1. Base case.\n\n    continued item text\n", False),
    ("Run this:\n```python\nprint(1)\n```", True),
    ("    for eps in (0.1, 0.3):\n        print(eps)\n\nThe ceiling moves.", True),
    ("Text.\n\n    x = 1\n", True),
    ("```{code-block} python\nx = 1\n```", True),
])
def test_a_solution_without_code_gets_a_markdown_answer_cell(body, code):
    fence = "````" if "```" in body else "```"
    text = f"**1.** Q?\n\n{fence}{{admonition}} Solution to 1\n:class: dropdown\n{body}\n{fence}"
    student, removed = course.student_notebook(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]))
    assert course.has_code(removed[0].text) is code and removed[0].written is not code
    answer = next(c for c in student.cells if course.ANSWER_TAG in c.metadata.get("tags", []))
    assert (answer.cell_type, answer.source) == (("code", "# Your answer to 1\n") if code
                                                 else ("markdown", "*Your answer to 1:*"))


# ---- MyST -> plain Markdown (fast: one test per construct) --------------------------------------------------------

BIB = """@article{cosentino2024reasoning,
  title = {Reasoning in Large Language Models},
  author = {Cosentino, Romain and Shekkizhar, Sarath},
  year = {2024}
}
@inproceedings{shi2024why, author = {Shi, Zhenmei and Wei, Junyi and Xu, Zhuoyan and Liang, Yingyu}, year = {2024}}
@book{montufar2014number,
  author = {Mont{\\'u}far, Guido},
  year = 2014
}
@misc{gemma2025gemma3, author = {{Gemma Team}}, year = {2025}}
"""


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    bib = tmp_path_factory.mktemp("bib") / "references.bib"
    bib.write_text(BIB)
    chapter = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Chapter 2: Attention graphs\n\n(sec-bound)=\n## The Minkowski bound\n"),
        nbformat.v4.new_markdown_cell("```{prf:theorem} Minkowski sum\n:label: thm-mink\nThe sum.\n```"),
        nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"figure": {"name": "fig-a", "caption": "A."}}}),
        nbformat.v4.new_code_cell("plot()", metadata={"mystnb": {"figure": {"name": "fig-b", "caption": "B."}}}),
    ])
    pages = {"glossary": "# Glossary\n\n```{glossary}\nTwoNN\n  An estimator.\n```\n"}
    ctx = MystContext.build({"02_attention_graphs": chapter}, pages, bib)
    ctx.elsewhere["run_times"] = "the book's Run times page"
    return ctx


@pytest.mark.parametrize("myst, plain", [
    ("as {cite}`cosentino2024reasoning` show", "as (Cosentino & Shekkizhar 2024) show"),
    ("{cite}`shi2024why,gemma2025gemma3`", "(Shi et al. 2024; Gemma Team 2025)"),
    ("{cite:p}`montufar2014number`", "(Montúfar 2014)"),
    ("{cite:t}`cosentino2024reasoning` show", "Cosentino & Shekkizhar (2024) show"),
    ("{cite}`nobody2099`", "[nobody2099]"),
    ("see {doc}`chapter 2 <02_attention_graphs>`", "see [chapter 2](02_attention_graphs.ipynb)"),
    ("see {doc}`02_attention_graphs`", "see [Chapter 2: Attention graphs](02_attention_graphs.ipynb)"),
    ("see {doc}`the glossary <glossary>`", "see [the glossary](glossary.md)"),
    ("see {doc}`report`", "see report"),
    ("see {doc}`run_times`", "see the book's Run times page"),
    ("in {ref}`the bound <sec-bound>`", "in the bound"),
    ("in {ref}`sec-bound`", "in The Minkowski bound"),
    ("{numref}`fig-b`", "Figure 2.2"),
    ("{numref}`Fig. %s <fig-a>` shows", "Fig. 2.1 shows"),
    ("a {term}`TwoNN` estimate", "a TwoNN estimate"),
    ("the {term}`estimators <TwoNN>`", "the estimators"),
    ("{prf:ref}`thm-mink`", "Theorem 2.1"),
    ("{prf:ref}`the theorem <thm-mink>`", "the theorem"),
    ("{math}`\\varepsilon = 0.1`", "$\\varepsilon = 0.1$"),
    ("`{cite}`x`` stays code", "`{cite}`x`` stays code"),
])
def test_roles_become_their_text(ctx, myst, plain):
    assert to_plain(myst, ctx) == plain


def test_targets_are_removed(ctx):
    assert to_plain("(sec-bound)=\n## The bound\ntext", ctx) == "## The bound\ntext"


@pytest.mark.parametrize("myst, plain", [
    (":::{admonition} At a glance\n:class: tip\nOne {cite}`shi2024why`.\n:::",
     "> **At a glance**\n>\n> One (Shi et al. 2024)."),
    ("```{note}\nA note.\n\nTwo paragraphs.\n```", "> **Note**\n>\n> A note.\n>\n> Two paragraphs."),
    ("```{warning} Careful\nHot.\n```", "> **Careful**\n>\n> Hot."),
    ("````{dropdown} Solution to 2\nCode:\n```python\nx = 1\n```\n````",
     "> **Solution to 2**\n>\n> Code:\n> ```python\n> x = 1\n> ```"),
    ("```{prf:theorem} Minkowski sum\n:label: thm-mink\nThe sum of hulls.\n```",
     "**Theorem 2.1 (Minkowski sum).**\nThe sum of hulls."),
    ("```{prf:definition}\n:label: def-x\nA cloud.\n```", "**Definition.**\nA cloud."),
    ("```{prf:proof}\nObvious.\n```", "*Proof.*\nObvious.\n\n∎"),
    ("```{math}\n:label: eq-1\nx = y\n```", "$$\nx = y\n$$"),
    ("```{figure} images/a.png\n:name: fig-x\nA caption.\n```", "![A caption.](images/a.png)\n\n*A caption.*"),
    ("```{glossary}\nTwoNN\n  An estimator\n  of dimension.\nID\n  A count.\n```",
     "**TwoNN**: An estimator of dimension.\n\n**ID**: A count."),
    ("```{bibliography}\n```", ""),
    ("- item\n\n  ```{note}\n  Indented.\n  ```", "- item\n\n  > **Note**\n  >\n  > Indented."),
    (":::{admonition} Outer\n```{note}\nInner.\n```\n:::", "> **Outer**\n>\n> > **Note**\n> >\n> > Inner."),
])
def test_fences_become_quotes_or_titled_paragraphs(ctx, myst, plain):
    assert to_plain(myst, ctx) == plain


def test_code_fences_and_maths_are_left_alone(ctx):
    text = "```python\n{cite}`x`\n(label)=\n```\n$$\n\\{a\\}\n$$"
    assert to_plain(text, ctx) == text


def test_copies_are_plain_markdown_with_figure_captions(kit):
    out, _ = kit
    role = re.compile(r"\{[a-z:]+\}`|^[ \t]*(`{3,}|:{3,})\{|^\([\w:.-]+\)=[ \t]*$", re.M)
    for folder in ("student", "instructor"):
        for spec in all_specs().values():
            nb = nbformat.read(str(out / folder / spec.notebook), as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    bare = re.sub(r"(?ms)^```(?!\{).*?^```", "", cell.source)  # code fences may show MyST
                    assert not role.search(bare), (folder, spec.notebook, role.search(bare).group(0))
            figures = [c for c in nb.cells if myst_plain.figure_of(c)]
            captions = [c for c in nb.cells if course.CAPTION_TAG in c.metadata.get("tags", [])]
            assert len(captions) == len([f for f in figures if myst_plain.figure_of(f)[1]])


# ---- the instructors' notes and the student book ----------------------------------------------------------------


def test_instructor_readme_has_each_chapter_time_gpu_tokens_and_reruns(kit):
    out, report = kit
    text = (out / "README.md").read_text()
    assert report.readme == out / "README.md"
    timing = text.split("## Run times")[1].split("##")[0]
    for number, spec in all_specs().items():
        row = next(line for line in timing.splitlines() if line.startswith(f"| {number} "))
        assert re.search(r"\| \d+(\.\d+)? (s|min|h) \|", row), row  # a measured time for every chapter
    assert "HF_TOKEN" in text and "huggingface-cli login" in text
    gated = text.split("## Gated models")[1].split("##")[0]
    assert re.search(r"`meta-llama/[^`]+` \| Meta's Llama licence \| yes", gated)
    assert "`HuggingFaceTB/SmolLM2-135M-Instruct` | no | no (public)" in gated
    assert "## Exercises that re-run a chapter" in text and "## Handing out the student copies" in text
    assert "## What needs a GPU" in text and "07_full_" in text  # the recorded runs are listed


def test_ci_time_falls_back_from_results_to_papermill(tmp_path):
    from icl_geometry.bookkit.course_notes import ci_seconds

    nb = tmp_path / "00_x.ipynb"
    nb.write_text('{"metadata": {"papermill": {"duration": 12.5, "start_time": "2026-12-06T01:00:00"}}}')
    assert ci_seconds("00", nb, tmp_path) == (12.5, "papermill (2026-12-06; machine not recorded)")
    (tmp_path / "00.json").write_text('{"wall_s": 99.0, "machine": "2 CPUs"}')
    assert ci_seconds("00", nb, tmp_path) == (99.0, "`wall_s` in " + tmp_path.name + "/00.json; 2 CPUs")


def _outside_solutions() -> str:
    """Every chapter's text with its solutions cut out (a phrase found here is not solution text)."""
    parts = []
    for spec in all_specs().values():
        for cell in nbformat.read(str(ROOT / "book" / spec.notebook), as_version=4).cells:
            lines = cell.source.split("\n")
            for first, after, _ in reversed(course.solution_spans(cell.source) if cell.cell_type == "markdown" else []):
                lines[first:after] = []
            parts.append("\n".join(lines))
    return "\n".join(parts)


def _solution_fragments(report) -> list[str]:
    """Prose runs of 25+ characters from the removed solutions (no maths, code or markup) that appear nowhere
    else in the chapters."""
    out, outside = [], _outside_solutions()
    for r in report.removed:
        for line in _solution_lines(r.text):
            out += [p.strip() for p in re.split(r"\$[^$]*\$|`[^`]*`|\*+|\{[^}]*\}|[()\[\]]", line)
                    if len(p.strip()) >= 25 and p.strip() not in outside]
    return out


def test_student_staging_has_no_solution_text(kit, tmp_path):
    from icl_geometry.bookkit.runner import stage_book

    _, report = kit
    chapters = {n: nbformat.read(str(ROOT / "book" / s.notebook), as_version=4) for n, s in all_specs().items()}
    source = course.stage_student(chapters, ROOT / "book", tmp_path / "student_src")
    stage = stage_book(source, tmp_path / "stage")
    text = "\n".join(p.read_text() for p in stage.rglob("*") if p.suffix in (".ipynb", ".md"))
    fragments = _solution_fragments(report)
    assert len(fragments) > 50
    leaked = [f for f in fragments if f in text]
    assert not leaked, leaked[:3]
    assert not SOLUTION_DIRECTIVE.search(text)


@pytest.mark.slow
def test_student_html_has_no_solution_text(tmp_path):
    """The student book, built once (about as long as `make book`'s build step)."""
    import html

    from icl_geometry.bookkit.runner import build_book

    report = course.make_course(ROOT / "book", tmp_path, build=lambda sources, out: build_book(sources, out=out))
    pages = sorted((tmp_path / "_build" / "html").rglob("*.html"))
    assert report.html == tmp_path / "_build" / "html" / "index.html" and report.html.exists()
    assert {p.name for p in pages} >= {spec.notebook.replace(".ipynb", ".html") for spec in all_specs().values()}
    text = " ".join(re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", p.read_text()))) for p in pages)
    leaked = [f for f in _solution_fragments(report) if re.sub(r"\s+", " ", f) in text]
    assert not leaked, leaked[:3]
    assert "Your answer" in text


def test_exercises_that_rerun_a_chapter_are_found():
    from icl_geometry.bookkit.course_notes import exercises

    md = "\n".join([
        "## 4. Claims, exercises, and what we found", "", "### Exercises", "",
        "**1.** Prove that $x > 0$.", "", "```{admonition} Solution", ":class: dropdown", "Set `n = 3`.", "```", "",
        "**2. Bigger.** Set `n_items = 40` in the parameters cell and run all cells.", "",
        "**3.** Why is `n_items` even?", "", "(found)=", "### What we found vs the paper", "",
        "**4.** Not an exercise: set `n_items = 1` and re-run.",
    ])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md)])
    found = exercises("09", nb, ["n_items", "n"])
    assert [(e.number, e.rerun, e.params) for e in found] == [("1", False, []), ("2", True, ["n_items"]),
                                                              ("3", False, ["n_items"])]
    assert found[1].text.startswith("Bigger.** Set")
