"""The instructors' notes of the course kit, `course/README.md`, written by `make course` from the repository's
own records (nothing is hand-kept in course/, which is generated):

- each chapter's `ci` run time: `wall_s` in `book/results/NN.json` when the run stored it, else the duration
  papermill recorded in the executed notebook (`metadata.papermill.duration`);
- the recorded paper-scale runs (`book/recorded/NN_*.json`: `wall_s`, `compute_s`, `machine`);
- which chapters use an LLM and which models their `full` profile names (`specs`), and which hub ids need an
  access token (every hub id named by the specs, README.md and the book's pages, judged by `GATED`);
- the exercises that ask to change a parameter and re-run the chapter (read from the chapters' exercise lists).

`TEMPLATE` is the page; `instructor_readme` fills it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from icl_geometry.bookkit.run_times import duration, papermill_duration
from icl_geometry.bookkit.specs import all_specs
from icl_geometry.bookkit.myst_plain import DIRECTIVE_OPEN, TARGET, closes
from icl_geometry.llm.lm import BUNDLED

# Hub organisations (or id prefixes) whose models are gated on the Hugging Face hub: the licence must be accepted
# on the model's page with the account whose token the machine uses.
GATED = {"meta-llama/": "Meta's Llama licence", "google/gemma": "Google's Gemma terms of use",
         "mistralai/": "Mistral AI's terms (most of its checkpoints)"}
HUB_ID = re.compile(r"\b((?:meta-llama|google|HuggingFaceTB|mistralai|Qwen|microsoft|EleutherAI|openai-community|"
                    r"allenai|tiiuae)/[A-Za-z0-9][\w.-]*[A-Za-z0-9])")
RERUN_VERB = re.compile(r"(?i)\b(re-?run|run all|run the chapter|run it|run with|run on|icl-geometry run|set|change|"
                        r"increase|decrease|lower|raise|switch)\b")
FIRST_LOAD = {"gemma3-270m": "60-90 s", "smollm2-135m": "20 s"}  # dequantizing a bundled GGUF the first time


@dataclass
class Exercise:
    chapter: str
    number: str
    text: str
    params: list[str]
    rerun: bool


def ci_seconds(number: str, notebook: Path, results: Path) -> tuple[float | None, str]:
    """The chapter's last ci run time and where it was read: `wall_s` in results/NN.json, else the duration
    papermill recorded in the executed notebook (the same sources, in the same order, as the run-times page)."""
    path = results / f"{number}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    wall = data.get("wall_s")
    if isinstance(wall, (int, float)):
        machine = f"; {data['machine']}" if data.get("machine") else ""
        return float(wall), f"`wall_s` in {path.parent.name}/{number}.json{machine}"
    seconds = papermill_duration(notebook) if notebook.exists() else None
    if seconds is None:
        return None, "not measured"
    day = str(json.loads(notebook.read_text())["metadata"]["papermill"].get("start_time", ""))[:10]
    return seconds, f"papermill ({day}; machine not recorded)" if day else "papermill (machine not recorded)"


def recorded_runs(folder: Path, number: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob(f"{number}_*.json")):
        data = json.loads(path.read_text())
        config = data.get("config", {})
        out.append({"name": path.stem, "profile": config.get("profile", path.stem.split("_")[1]),
                    "models": config.get("models") or config.get("model") or "-", "device": config.get("device", "?"),
                    "wall_s": data.get("wall_s"), "compute_s": data.get("compute_s"),
                    "machine": data.get("machine", "?")})
    return out


def _exercise_items(markdown: str) -> list[tuple[str, str]]:
    """(number, question text) of each numbered exercise in an exercises section (solutions left out)."""
    items: list[tuple[str, list[str]]] = []
    fence = ""
    for line in markdown.split("\n"):
        if fence:
            fence = "" if closes(line, fence) else fence
            continue
        opened = DIRECTIVE_OPEN.match(line)
        if opened:
            fence = opened.group("fence")
            continue
        m = re.match(r"^(?:\*\*)?(\d+)\.(?:\*\*)?\s*(.*)$", line)
        if m:
            items.append((m.group(1), [m.group(2)]))
        elif items and line.strip():
            items[-1][1].append(line.strip())
    return [(n, " ".join(text)) for n, text in items]


def exercises(number: str, nb: Any, parameter_names: list[str]) -> list[Exercise]:
    """The chapter's exercises (from its "Exercises" heading to the next heading); `rerun` when the question
    names a parameter with a verb such as set or run, or asks to run the chapter."""
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    section, inside = [], False
    for line in text.split("\n"):
        heading = re.match(r"^#+\s+(.*)$", line)
        if heading and inside:
            break
        inside = inside or bool(heading and re.match(r"(?i)(\d+\.\s*)?exercises?\b", heading.group(1).strip()))
        if inside and not TARGET.match(line):
            section.append(line)
    out = []
    names = sorted(set(parameter_names) | {"model", "models", "device", "profile", "seed"}, key=len, reverse=True)
    for n, question in _exercise_items("\n".join(section)):
        code = " ".join(re.findall(r"`([^`]+)`", question))
        named = [p for p in names if re.search(rf"(?<![\w.]){re.escape(p)}\b", code)]
        asks = re.search(r"(?i)\b(re-?run|run all cells|run the chapter|icl-geometry run)\b", question)
        out.append(Exercise(number, n, question, named, bool(asks) or bool(named and RERUN_VERB.search(question))))
    return out


def hub_ids(texts: list[str]) -> list[str]:
    found: dict[str, None] = {}
    for text in texts:
        for m in HUB_ID.finditer(text):
            found[m.group(1).rstrip(".")] = None
    return sorted(found)


def gated_by(hub_id: str) -> str:
    return next((why for prefix, why in GATED.items() if hub_id.startswith(prefix)), "")


def _section(markdown: str, title: str) -> str:
    m = re.search(rf"(?ms)^##\s+{re.escape(title)}.*?(?=^##\s|\Z)", markdown)
    return m.group(0) if m else ""


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |"
                              for row in rows])


def _short(text: str, limit: int = 150) -> str:
    text = re.sub(r"\{[\w:]+\}`([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text).replace("**", "")  # roles -> their text
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def instructor_readme(root: Path, notebooks: Path, chapter_nbs: dict[str, Any], html: bool = False,
                      plain: Callable[[str], str] | None = None) -> str:
    """course/README.md, from the repository at `root` and the executed chapters the copies were made from;
    `plain` turns an exercise's MyST into the text the notes quote (default: roles -> their text)."""
    specs = all_specs()
    results = notebooks / "results" if (notebooks / "results").is_dir() else root / "book" / "results"
    recorded = root / "book" / "recorded"

    timing, gpu, rerun_rows, total, devices = [], [], [], 0.0, set()
    for number, spec in specs.items():
        seconds, source = ci_seconds(number, notebooks / spec.notebook, results)
        total += seconds or 0.0
        timing.append([f"{number} {spec.title.split(':')[0]}", duration(seconds), "yes" if spec.uses_model else "no",
                       source])
        if spec.uses_model:
            full = {p.name: p.full for p in spec.params}
            models = full.get("models") or full.get("model") or spec.default_model
            runs = recorded_runs(recorded, number)
            done = "; ".join(f"`{r['name']}` on {r['device']}: {duration(r['wall_s'])} wall"
                             + (f", {duration(r['compute_s'])} compute over sessions" if r["compute_s"] else "")
                             + f" ({r['machine']})" for r in runs) or "none recorded"
            hub = hub_ids([str(models)])
            need = ("yes: hub models" + (", the largest on several GPUs" if any("70B" in h for h in hub) else "")
                    if hub else "no: a bundled model (a GPU makes it faster)")
            gpu.append([number, f"`{models}`", need, done])
            devices |= {r["device"] for r in runs}
        for ex in exercises(number, chapter_nbs[number], list(spec.parameter_names())):
            if not ex.rerun:
                continue
            hub = hub_ids([ex.text])
            extra = [f"+ {FIRST_LOAD[m]} the first time {m} loads" for m in FIRST_LOAD
                     if m in ex.text and m != spec.default_model]
            cost = (f"needs a GPU and the hub ({', '.join(hub)})" if hub else
                    f"{duration(seconds)} (the chapter's `ci` run)" + (" " + " ".join(extra) if extra else ""))
            asks = _short(plain(ex.text) if plain else ex.text)
            rerun_rows.append([number, ex.number, asks, ", ".join(f"`{p}`" for p in ex.params) or "-", cost])

    texts = [(root / "README.md").read_text() if (root / "README.md").exists() else ""]
    texts += [str(v) for spec in specs.values() for p in spec.params for v in (p.ci, p.full)]
    texts += [p.read_text() for p in sorted((root / "book").glob("*.md"))]
    texts += [c.source for nb in chapter_nbs.values() for c in nb.cells if c.cell_type == "markdown"]
    gated = [[f"`{h}`", gated_by(h) or "no", "yes: accept the licence on the model's page, then log in"
              if gated_by(h) else "no (public)"] for h in hub_ids(texts)]
    bundled = ", ".join(f"`{name}` ({m.description})" for name, m in BUNDLED.items())
    readme_gpu = _section(texts[0], "Running chapters")
    sharding = "device_map" in readme_gpu
    return TEMPLATE.format(
        generated=dt.date.today().isoformat(), source=_rel(notebooks, root),
        timing=_table(["chapter", "`ci` run", "uses an LLM", "measured from"], timing), total=duration(total),
        gpu=_table(["chapter", "`full` profile model(s)", "GPU needed", "recorded runs (book/recorded)"], gpu),
        recorded_on=("The recorded runs all ran on a CPU (`wall_s` is the last session, `compute_s` the sum over "
                     "resumed sessions)." if devices == {"cpu"} else
                     "`wall_s` is a recorded run's last session, `compute_s` the sum over resumed sessions."),
        gated=_table(["hub id (named in the book)", "gated by", "token needed"], gated), bundled=bundled,
        sharding=("On a GPU `lm.load` places a model with accelerate's `device_map=\"auto\"`: across every visible "
                  "GPU, then CPU memory and disk, when it does not fit one (README, \"Running chapters\")."
                  if sharding else ""),
        reruns=_table(["chapter", "exercise", "what it asks", "parameters", "time to re-run"], rerun_rows)
        if rerun_rows else "No exercise asks to re-run a chapter.",
        html=HTML_BUILT if html else HTML_HOWTO)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


HTML_BUILT = ("`course/_build/html/index.html` is the student book: the chapters as rendered HTML, solutions "
              "removed (built by `make course HTML=1`); serve or zip that folder.")
HTML_HOWTO = ("`make course HTML=1` (or `icl-geometry course --html`) also renders the student copies as a book "
              "without solutions into `course/_build/html/`.")

TEMPLATE = """# Instructor notes

Generated by `make course` on {generated} from the executed chapters in `{source}/` and the repository's
records; `course/` is regenerated each time, so do not edit this file (its template is
`icl_geometry/bookkit/course_notes.py`).

- `student/`: one notebook per chapter, every exercise's solution replaced by an answer cell (a Markdown
  cell, *Your answer*, for a written answer or a proof; a `# Your answer` code cell where the solution is code).
- `instructor/`: the same notebooks with the solutions.
- Both keep the outputs of the run they were made from, so a class can read a chapter before running it; MyST
  roles and fences are turned into plain Markdown (citations as (Author Year), cross-references as their text,
  a link to another chapter's notebook, admonitions as quotes), and the explorers' sliders are live.
- {html}

## Run times (`ci` profile, the committed run)

{timing}

All chapters together: {total}. These are the wall times of the run the copies were made from (the committed
`ci` run by default), models already dequantized: the first load of a bundled model adds about 20 s (SmolLM2)
or 60-90 s (Gemma). A run that shared its CPU with other jobs took longer than it would alone; to time a chapter
on the class machines, run it there once (`icl-geometry run NN` prints its time). The book's *Run times* page
(generated from the same results when the book is built) lists them with the recorded runs. A 50-minute class
can re-run a chapter of a few minutes at its start; for the longer ones hand out the executed copies and re-run
only what an exercise asks for, or use the lighter settings in the repository README ("Teaching with it").

## What needs a GPU

Every chapter's `ci` profile runs on a CPU. The `full` profile of the chapters that use an LLM is paper scale:

{gpu}

{recorded_on}
A `full` profile that names hub models needs a GPU and the hub (and a token where the model is gated, below).
{sharding}
To run one, set `profile = "full"` and `device = "cuda"` (or leave `"auto"`) in the parameters cell, or
`icl-geometry run NN --profile full --device cuda`.

## Gated models and access tokens

The bundled models, {bundled}, need no account and no network. A hub id needs the hub; gated ones also need a
Hugging Face account that has accepted the model's licence, and a token on the machine:

{gated}

Log in once per machine (`huggingface-cli login`, which stores the token) or set `HF_TOKEN` in the environment
of the Jupyter server or the shell that runs `make`; on a shared hub, each student uses their own token (never
paste one into a notebook that is handed in). The released, unquantized weights of the bundled models
(`HuggingFaceTB/SmolLM2-135M-Instruct`, public; `google/gemma-3-270m`, gated) are used the same way.

## Exercises that re-run a chapter

An exercise that asks to change a parameter and run again costs the chapter's `ci` time again, more when the
change enlarges the run (more items, a longer context, another model's first load). The parameters cell is
the one to edit; `icl-geometry run NN -p name=value` does the same from a shell.

{reruns}

The other exercises are written answers, proofs or a few lines of code in a new cell at the end of the
chapter (seconds), or use the live explorers.

## Handing out the student copies

- Zip `course/student/` (or copy it to the hub's shared folder, or commit it to a class repository for
  nbgitpuller) and keep `course/instructor/` for yourself; the student folder holds no solution.
- A chapter needs no other file: everything it computes comes from the package and the bundled models. Install
  the package on the class machines before the class (the repository README, "Teaching with it", has the
  one-line install for JupyterHub and Colab).
- Students answer in the answer cells; written answers go in the Markdown ones (double-click to edit).
- Each run writes its results JSON to `runs/<profile>/results/` of the checkout it runs in, or under the
  working directory outside one (`ICL_GEOMETRY_RESULTS` chooses another folder).
"""
