"""Run the book's chapters for a profile and device, and build the HTML book from executed notebooks.

    icl-geometry list
    icl-geometry run 00 --profile ci --device auto -p model=gemma3-270m -p shots=[0,4]
    icl-geometry run all --profile full --device cuda
    icl-geometry build --notebooks runs/ci
    icl-geometry course [--execute]

`run` executes `book/NN_*.ipynb` with papermill into `runs/<profile>/` (or back into `book/` with
`--inplace`, which is how the committed `ci` outputs are refreshed). Parameter names are checked
before a kernel starts; their values are checked by the chapter's first cell, so a bad value fails
there with the chapter's own message. `course` writes the student and instructor notebooks
(`icl_geometry.bookkit.course`) from the committed chapters, or executes them first with `--execute`.
"""

from __future__ import annotations

import argparse
import json
import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from icl_geometry.bookkit.specs import all_specs, get_spec
from icl_geometry.bookkit.paths import RESULTS_ENV, repo_root
from icl_geometry.bookkit.specs.schema import PROFILES
from icl_geometry.llm.lm import DEVICES
from icl_geometry.bookkit.report import counts_line, glance, load_rows, render
from icl_geometry.bookkit.widgets import STATIC_ENV

BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
BOOK_STATIC = "_static"  # the book's CSS (copied into the staged tree; see _config.yml)
REPORT_COUNTS = "<!-- report-counts -->"  # in book/intro.md: replaced by the report's counts at build time


class ChapterFailed(RuntimeError):
    """A chapter raised while executing; the message is the chapter's own error."""


def book_dir() -> Path:
    return repo_root() / "book"


def parse_param(text: str) -> tuple[str, Any]:
    """'name=value' with value read as a Python literal when it is one (3, 0.5, [0, 2], True), else a string."""
    if "=" not in text:
        raise ValueError(f"-p {text!r}: expected name=value, e.g. -p model=gemma3-270m or -p shots=[0,4]")
    name, raw = text.split("=", 1)
    name = name.strip()
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name, value


def check_names(chapter: str, params: dict[str, Any]) -> None:
    spec = get_spec(chapter)
    unknown = sorted(set(params) - set(spec.parameter_names()) - {"profile", "device", "seed"})
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown} for chapter {spec.number}; "
                         f"allowed: {list(spec.parameter_names())}.")


def run_chapter(chapter: str, profile: str = "ci", device: str = "auto", seed: int = 0,
                params: dict[str, Any] | None = None, out_dir: Path | None = None,
                inplace: bool = False, progress: bool = True) -> Path:
    """Execute one chapter with papermill; return the executed notebook's path."""
    import papermill as pm

    if profile not in PROFILES:
        raise ValueError(f"--profile {profile!r} is not allowed: expected one of {list(PROFILES)}.")
    if device not in DEVICES:
        raise ValueError(f"--device {device!r} is not allowed: expected one of {list(DEVICES)}.")
    params = dict(params or {})
    check_names(chapter, params)
    spec = get_spec(chapter)
    source = book_dir() / spec.notebook
    if not source.exists():
        raise FileNotFoundError(f"Chapter {spec.number}: notebook {source} does not exist")
    target = source if inplace else (out_dir or repo_root() / "runs" / profile) / spec.notebook
    target.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(STATIC_ENV, "1")
    # Results land beside the executed notebook: book/results/ for the committed chapters (--inplace; the
    # report page is built from them), runs/<profile>/results/ otherwise, unless the caller chose a folder.
    results = os.environ.get(RESULTS_ENV) or str(target.parent / "results")
    saved = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = results  # the kernel inherits it
    try:
        pm.execute_notebook(str(source), str(target), parameters={"profile": profile, "device": device,
                                                                 "seed": seed, **params},
                            cwd=str(source.parent), progress_bar=progress, kernel_name="python3",
                            log_output=False)
    except pm.PapermillExecutionError as err:
        raise ChapterFailed(f"Chapter {spec.number} failed in cell {err.exec_count} "
                            f"({target}): {err.ename}: {err.evalue}") from None
    finally:
        if saved is None:
            os.environ.pop(RESULTS_ENV)
        else:
            os.environ[RESULTS_ENV] = saved
    return target


def recorded_name(chapter: str, profile: str, params: dict[str, Any]) -> str:
    """`<chapter>_<profile>_<model>` (DESIGN.md): the model is the `models` list or the `model` parameter
    (the chapter's default when neither is given), '/' written '__' and ',' written '+'."""
    spec = get_spec(chapter)
    defaults = {p.name: p.default(profile) for p in spec.params}
    model = params.get("models") or params.get("model") or defaults.get("models") or spec.default_model or "none"
    model = ",".join(m.strip() for m in str(model).split(",") if m.strip())
    return f"{spec.number}_{profile}_{model.replace('/', '__').replace(',', '+')}"


def record_run(chapter: str, profile: str = "full", device: str = "auto", seed: int = 0,
               params: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Execute a chapter (a paper-scale run, typically `full`) and keep it under book/recorded/ as
    `<chapter>_<profile>_<model>.ipynb` and `.json` (its results); the report counts recorded runs beside
    the committed ci run. The work happens in runs/recorded/<name>/ (a failed run leaves book/ untouched).
    Returns the recorded notebook's and results' paths."""
    t0 = time.perf_counter()
    params = dict(params or {})
    name = recorded_name(chapter, profile, params)
    work = repo_root() / "runs" / "recorded" / name
    saved = os.environ.pop(RESULTS_ENV, None)
    try:
        executed = run_chapter(chapter, profile, device, seed, params, out_dir=work)
    finally:
        if saved is not None:
            os.environ[RESULTS_ENV] = saved
    results = work / "results" / f"{get_spec(chapter).number}.json"
    if not results.exists():
        raise ChapterFailed(f"Chapter {chapter} ran but wrote no results ({results})")
    keep = book_dir() / "recorded"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, keep / f"{name}.ipynb")
    data = json.loads(results.read_text())
    data.update(wall_s=round(time.perf_counter() - t0, 1), machine=machine_summary(device), commit=package_commit())
    (keep / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    for extra in results.parent.glob(f"{results.stem}_*"):  # per-prompt rows and other files the chapter keeps
        shutil.copy2(extra, keep / f"{name}{extra.name[len(results.stem):]}")
    return keep / f"{name}.ipynb", keep / f"{name}.json"


def machine_summary(device: str = "auto") -> str:
    """CPU, core count and GPU in a line, for a recorded run."""
    import platform

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() and device != "cpu" else "no GPU used"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {gpu}, torch {torch.__version__}"


def package_commit() -> str:
    """The repository's commit (with '+changes' when the working tree differs), or 'unknown'."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(),
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def stage_book(notebooks: Path, stage: Path) -> Path:
    """Assemble a jupyter-book source tree: config, toc, prose pages, and the executed notebooks."""
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
    # The report, the landing page's counts and each chapter's "at a glance" box read the results of the run
    # being rendered (beside its notebooks; book/results for the committed chapters) and the recorded runs.
    results = notebooks / "results" if (notebooks / "results").is_dir() else root / "book" / "results"
    rows = load_rows(results, root / "book" / "recorded")
    (stage / "book" / "report.md").write_text(render(rows, notebooks))  # links to the sections rendered
    intro = stage / "book" / "intro.md"
    intro.write_text(intro.read_text().replace(REPORT_COUNTS, counts_line(rows)))
    for spec in all_specs().values():
        nb = notebooks / spec.notebook
        if not nb.exists():
            raise FileNotFoundError(f"No executed notebook for chapter {spec.number} in {notebooks}: "
                                    f"run `icl-geometry run {spec.number}` first")
        box = glance(spec.title, [r for r in rows if r["chapter"] == spec.number])
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


def present_notebook(source: Path, target: Path, glance_box: str = "") -> list[tuple[int, str, str]]:
    """Copy an executed notebook into the staged book with its cells tagged by `fold_cells`, and the
    "at a glance" box (MyST markdown) right after its title cell."""
    import nbformat

    nb = nbformat.read(str(source), as_version=4)
    changes = fold_cells(nb)
    if glance_box:
        first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
        nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell(glance_box))
    nbformat.write(nb, str(target))
    return changes


def build_book(notebooks: Path, strict: bool = False, log: Path | None = None) -> Path:
    """Render the HTML book into `_build/html` from executed notebooks (execution is off in _config.yml).

    With `log`, jupyter-book's output (Sphinx warnings included) goes to that file instead of the terminal.
    """
    root = repo_root()
    stage = stage_book(notebooks, root / "_build" / ".stage")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(stage), "--path-output", str(stage), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    if log is None:
        subprocess.run(cmd, check=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = "\n".join(log.read_text().splitlines()[-40:])
            raise subprocess.CalledProcessError(done.returncode, cmd, output=tail)
    html = root / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(stage / "_build" / "html", html)
    return html / "index.html"


def _list() -> None:
    for spec in all_specs().values():
        print(f"{spec.number}  {spec.title}\n    book/{spec.notebook}")
        print("    profile: one of ci, full   device: one of auto, cpu, cuda   seed: integer >= 0")
        if spec.uses_model:
            print(f"    model: bundled name, local directory or hub id (default {spec.default_model})")
        for p in spec.params:
            print(f"    {p.name}: {p.allowed()} (ci {p.ci!r}, full {p.full!r}) {p.help}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="icl-geometry", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list chapters and their parameters")
    run = sub.add_parser("run", help="execute chapters with papermill")
    run.add_argument("chapters", nargs="+", help="chapter numbers (00, 1, ...) or 'all'")
    run.add_argument("--profile", default="ci", help=f"one of {list(PROFILES)} (default ci)")
    run.add_argument("--device", default="auto", help=f"one of {list(DEVICES)} (default auto)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a chapter parameter (repeatable)")
    run.add_argument("--out", type=Path, default=None, help="output folder (default runs/<profile>)")
    run.add_argument("--inplace", action="store_true", help="write outputs back into book/")
    rec = sub.add_parser("record", help="run one chapter (default: full profile) and keep it under book/recorded/")
    rec.add_argument("chapter", help="chapter number (00, 1, ...)")
    rec.add_argument("--profile", default="full", help=f"one of {list(PROFILES)} (default full)")
    rec.add_argument("--device", default="auto", help=f"one of {list(DEVICES)} (default auto)")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a chapter parameter (repeatable), e.g. -p models=smollm2-135m,gemma3-270m")
    build = sub.add_parser("build", help="render the HTML book from executed notebooks")
    build.add_argument("--notebooks", type=Path, default=None, help="folder of executed notebooks (default book/)")
    build.add_argument("--strict", action="store_true", help="turn Sphinx warnings into errors")
    course = sub.add_parser("course", help="student (solutions removed) and instructor notebooks, widgets live")
    course.add_argument("--execute", action="store_true",
                        help="execute every chapter first (default: copy the committed ci outputs)")
    course.add_argument("--notebooks", type=Path, default=None,
                        help="folder of executed notebooks to copy (default book/; ignored with --execute)")
    course.add_argument("--out", type=Path, default=None, help="output folder (default course/)")
    course.add_argument("--profile", default="ci", help="with --execute: one of "
                        f"{list(PROFILES)} (default ci)")
    course.add_argument("--device", default="auto", help=f"with --execute: one of {list(DEVICES)} (default auto)")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            _list()
        elif args.command == "run":
            params = dict(parse_param(p) for p in args.param)
            chapters = list(all_specs()) if args.chapters == ["all"] else args.chapters
            for ch in chapters:
                check_names(ch, params) if len(chapters) == 1 else get_spec(ch)
            for ch in chapters:
                t0 = time.perf_counter()
                own = {k: v for k, v in params.items() if k in get_spec(ch).parameter_names()}
                out = run_chapter(ch, args.profile, args.device, args.seed, own, args.out, args.inplace)
                print(f"chapter {get_spec(ch).number}: {out} ({time.perf_counter() - t0:.0f} s)", flush=True)
        elif args.command == "record":
            params = dict(parse_param(p) for p in args.param)
            t0 = time.perf_counter()
            nb_path, json_path = record_run(args.chapter, args.profile, args.device, args.seed, params)
            print(f"recorded: {nb_path} and {json_path} ({time.perf_counter() - t0:.0f} s)", flush=True)
        elif args.command == "build":
            index = build_book(args.notebooks or book_dir(), strict=args.strict)
            print(f"book: {index}")
        elif args.command == "course":
            from icl_geometry.bookkit.course import make_course

            out = args.out or repo_root() / "course"
            notebooks = args.notebooks
            if args.execute:
                notebooks = out / "_executed"
                for number in all_specs():
                    run_chapter(number, profile=args.profile, device=args.device, out_dir=notebooks)
            report = make_course(notebooks, out)
            for student, instructor in zip(report.student, report.instructor):
                n = sum(r.chapter == student.name[:2] for r in report.removed)
                print(f"{student}  ({n} solutions replaced by '# Your answer' cells)   {instructor}")
    except (ValueError, FileNotFoundError, ChapterFailed) as err:
        print(f"icl-geometry: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
