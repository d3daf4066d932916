"""Run the book's chapters for a profile and device, and build the HTML book from executed notebooks.

    icl-geometry list
    icl-geometry run 00 --profile ci --device auto -p model=gemma3-270m -p shots=[0,4]
    icl-geometry run all --profile full --device cuda
    icl-geometry build --notebooks runs/ci

`run` executes `book/NN_*.ipynb` with papermill into `runs/<profile>/` (or back into `book/` with
`--inplace`, which is how the committed `ci` outputs are refreshed). Parameter names are checked
before a kernel starts; their values are checked by the chapter's first cell, so a bad value fails
there with the chapter's own message.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from icl_geometry.chapters import all_specs, get_spec
from icl_geometry.claims import RESULTS_ENV, repo_root
from icl_geometry.chapters.schema import PROFILES
from icl_geometry.lm import DEVICES
from icl_geometry.report import counts_line, load_rows, write_report
from icl_geometry.widgets import STATIC_ENV

BOOK_FILES = ("_config.yml", "_toc.yml", "references.bib")
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


def stage_book(notebooks: Path, stage: Path) -> Path:
    """Assemble a jupyter-book source tree: config, toc, prose pages, and the executed notebooks."""
    root = repo_root()
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "book").mkdir(parents=True)
    for name in BOOK_FILES:
        shutil.copy2(root / name, stage / name)
    for page in (root / "book").iterdir():
        if page.suffix in (".md", ".png", ".svg") or page.is_dir() and page.name in ("images", "figures"):
            (shutil.copytree if page.is_dir() else shutil.copy2)(page, stage / "book" / page.name)
    write_report(root / "book", stage / "book" / "report.md")
    intro = stage / "book" / "intro.md"
    intro.write_text(intro.read_text().replace(REPORT_COUNTS, counts_line(load_rows(root / "book" / "results",
                                                                                     root / "book" / "recorded"))))
    for spec in all_specs().values():
        nb = notebooks / spec.notebook
        if not nb.exists():
            raise FileNotFoundError(f"No executed notebook for chapter {spec.number} in {notebooks}: "
                                    f"run `icl-geometry run {spec.number}` first")
        shutil.copy2(nb, stage / "book" / spec.notebook)
    return stage


def build_book(notebooks: Path, strict: bool = False) -> Path:
    """Render the HTML book into `_build/html` from executed notebooks (execution is off in _config.yml)."""
    root = repo_root()
    stage = stage_book(notebooks, root / "_build" / ".stage")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(stage), "--path-output", str(stage), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
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
    build = sub.add_parser("build", help="render the HTML book from executed notebooks")
    build.add_argument("--notebooks", type=Path, default=None, help="folder of executed notebooks (default book/)")
    build.add_argument("--strict", action="store_true", help="turn Sphinx warnings into errors")
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
        elif args.command == "build":
            index = build_book(args.notebooks or book_dir(), strict=args.strict)
            print(f"book: {index}")
    except (ValueError, FileNotFoundError, ChapterFailed) as err:
        print(f"icl-geometry: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
