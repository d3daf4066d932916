"""The course kit (icl_geometry.bookkit.course): student notebooks hold no solution and a `# Your answer` cell for
each one removed; instructor notebooks keep them; both keep the committed outputs and make widgets live.

The fast tests run on the committed chapters without executing anything. The slow test executes student
notebooks top to bottom with papermill (ci profile, CPU): chapters 01, 02 and 05, the three cheapest
(about 65, 45 and 50 s of chapter time on 2 cores); 00, 03 and 04 (about 160, 100 and 150 s) are executed
by nbval in `make test` from the same source notebooks, and the course copies differ from those only in
markdown cells, the dropped injected-parameters cell and the live-widgets cell.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from icl_geometry.bookkit import course, widgets
from icl_geometry.bookkit.specs import all_specs

ROOT = Path(__file__).resolve().parents[1]
CHEAP = ("01", "02", "05")  # executed by the slow test
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


def _solution_lines(text: str) -> list[str]:
    """The lines that carry a solution's content (not its fences or options)."""
    return [line.strip() for line in text.split("\n")[1:-1]
            if len(line.strip()) >= 25 and not line.strip().startswith(":")]


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
        leaked = [line for line in lines if line in student_text]
        assert not leaked, f"chapter {number}: solution text left in the student notebook: {leaked[:2]}"
        assert all(line in instructor_text for line in lines)  # the instructor keeps every solution

    answers = [c for c in student.cells if c.cell_type == "code" and c.source.startswith(course.ANSWER)]
    assert len(answers) == len(removed)
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
    assert "Because" not in kept and "Nested" not in kept and "Colon fence" not in kept and "Sphinx-exercise" not in kept
    assert "Not a solution." in kept and "A note." in kept and "**1.** Prove it." in kept and kept.endswith("end")
    answers = [c.source for c in student.cells if c.cell_type == "code" and course.LIVE_TAG not in c.metadata.tags]
    assert answers[0] == "# Your answer\n" and answers[1] == "# Your answer to 2\n"


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
    cmd = [sys.executable, "-m", "papermill", str(headless), str(executed),
           "-p", "profile", "ci", "-p", "device", "cpu", "--cwd", str(out / "student"), "-k", "python3",
           "--no-progress-bar", "--execution-timeout", "600"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "ICL_GEOMETRY_STATIC": "1"})
    assert run.returncode == 0, run.stderr[-3000:]


def test_student_copies_turn_the_explorers_live(kit):
    out, _ = kit
    for spec in all_specs().values():
        nb = nbformat.read(str(out / "student" / spec.notebook), as_version=4)
        live = [c for c in nb.cells if course.LIVE_TAG in c.metadata.get("tags", [])]
        assert len(live) == 1 and live[0].source == course.LIVE_SOURCE, spec.notebook
