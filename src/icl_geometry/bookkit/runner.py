"""Run the book's chapters for a profile and device, and build the HTML book from executed notebooks.

    icl-geometry list
    icl-geometry run 00 --profile ci --device auto -p model=gemma3-270m -p shots=[0,4]
    icl-geometry run all --profile full --device cuda
    icl-geometry build --notebooks runs/ci
    icl-geometry course [--execute] [--html]

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
from icl_geometry.bookkit.staging import fold_cells, present_notebook, stage_book  # noqa: F401 (re-exported)
from icl_geometry.bookkit.widgets import STATIC_ENV


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
    t0 = time.perf_counter()
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
    stamp_results(Path(results) / f"{spec.number}.json", time.perf_counter() - t0, device)
    tidy_injected_cell(target)
    return target


def tidy_injected_cell(path: Path) -> None:
    """Papermill's injected-parameters cell ends with a newline, which `ruff format` (run on the chapters by
    `make check`) removes: strip it, so an executed chapter stays formatted."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    if any(c.source.endswith("\n") for c in cells):
        for c in cells:
            c.source = c.source.rstrip("\n")
        nbformat.write(nb, str(path))


def stamp_results(path: Path, wall_s: float, device: str = "auto") -> None:
    """Add the run's wall time and machine to its results JSON (the run-times page reads them)."""
    if not path.exists():
        return
    data = json.loads(path.read_text())
    data.update(wall_s=round(wall_s, 1), machine=machine_summary(device))
    path.write_text(json.dumps(data, indent=2, default=str))


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


def build_book(notebooks: Path, strict: bool = False, log: Path | None = None, out: Path | None = None) -> Path:
    """Render the HTML book into `out` (default `_build/html`) from executed notebooks (execution is off in
    _config.yml); the sources are staged beside it (`<out>.stage`, default `_build/.stage`).

    With `log`, jupyter-book's output (Sphinx warnings included) goes to that file instead of the terminal.
    """
    root = repo_root()
    stage = stage_book(notebooks, out.with_name(out.name + ".stage") if out else root / "_build" / ".stage")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(stage), "--path-output", str(stage), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    if log is None:
        subprocess.run(cmd, check=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as stream:
            done = subprocess.run(cmd, stdout=stream, stderr=subprocess.STDOUT)
        if done.returncode:
            tail = "\n".join(log.read_text().splitlines()[-40:])
            raise subprocess.CalledProcessError(done.returncode, cmd, output=tail)
    html = out or root / "_build" / "html"
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
    course.add_argument("--html", action="store_true",
                        help="also render the student copies (no solutions) as a book into <out>/_build/html")
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
            build = (lambda sources, html: build_book(sources, out=html)) if args.html else None
            report = make_course(notebooks, out, build=build)
            for student, instructor in zip(report.student, report.instructor):
                n = sum(r.chapter == student.name[:2] for r in report.removed)
                print(f"{student}  ({n} solutions replaced by answer cells)   {instructor}")
            print(f"instructor notes: {report.readme}" + (f"\nstudent book: {report.html}" if report.html else ""))
    except (ValueError, FileNotFoundError, ChapterFailed) as err:
        print(f"icl-geometry: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
