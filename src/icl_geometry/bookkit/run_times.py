"""The run-times page (`book/run_times.md`, generated at staging time like the report): how long each chapter's
committed ci run and each recorded run took, and on what machine.

Sources, first found wins: the results JSON's `wall_s` and `machine` (written by `icl-geometry run` and
`icl-geometry record`; recorded runs also sum `compute_s` over sessions), else papermill's `duration` in the
executed notebook's metadata (no machine then), else "not measured".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from icl_geometry.bookkit.specs import all_specs

NOT_MEASURED = "not measured"


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def papermill_duration(notebook: Path) -> float | None:
    """Seconds papermill took to execute `notebook` (its metadata), or None."""
    meta = _load(notebook).get("metadata", {}).get("papermill", {})
    value = meta.get("duration")
    return float(value) if isinstance(value, (int, float)) else None


def duration(seconds: Any) -> str:
    """'45 s', '6.0 min', '2.05 h' (or `NOT_MEASURED`)."""
    if not isinstance(seconds, (int, float)):
        return NOT_MEASURED
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def timing(data: dict[str, Any], notebook: Path | None) -> tuple[str, str, str]:
    """(wall time, compute time, machine) of one run, from its results JSON or else its notebook."""
    wall, source = data.get("wall_s"), ""
    if wall is None and notebook is not None and notebook.exists():
        wall = papermill_duration(notebook)
        source = " (papermill)" if wall is not None else ""
    compute = data.get("compute_s")
    machine = data.get("machine") or ("not recorded" if wall is not None else "")
    return duration(wall) + source, duration(compute) if compute is not None else "", machine


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") or " " for c in cells) + " |"


def run_times_page(results: Path, notebooks: Path, recorded: Path) -> str:
    """The page's MyST markdown."""
    lines = ["# Run times", "",
             "How long each chapter took to execute: the committed `ci` run the book shows (re-run by "
             "`icl-geometry run NN`), and every recorded paper-scale run (`icl-geometry record NN`). Wall time is "
             "the last session's; compute time sums every session of a run that was paused and resumed. "
             "A time read from the notebook's papermill metadata is marked (papermill); "
             f"\"{NOT_MEASURED}\" means the run stored no time.", "",
             "## The ci runs", "",
             _row(["chapter", "title", "wall time", "machine"]), _row(["---"] * 4)]
    for spec in all_specs().values():
        data = _load(Path(results) / f"{spec.number}.json")
        wall, _, machine = timing(data, Path(notebooks) / spec.notebook)
        lines.append(_row([spec.number, f"{{doc}}`{spec.title} <{spec.notebook[:-6]}>`", wall, machine]))
    lines += ["", "## Recorded runs", ""]
    files = sorted(Path(recorded).glob("*.json")) if Path(recorded).is_dir() else []
    if not files:
        lines.append("No recorded run yet.")
    else:
        lines += [_row(["run", "profile", "wall time", "compute time", "machine"]), _row(["---"] * 5)]
        for f in files:
            data = _load(f)
            wall, compute, machine = timing(data, f.with_suffix(".ipynb"))
            profile = str(data.get("config", {}).get("profile", ""))
            lines.append(_row([f"`{f.stem}`", profile, wall, compute or "not recorded", machine]))
    return "\n".join(lines) + "\n"
