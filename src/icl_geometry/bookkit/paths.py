"""Where the book's files live: the repository root and the folder a run writes its results to."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "ICL_GEOMETRY_RESULTS"


def repo_root(start: Path | None = None) -> Path:
    """The nearest directory above `start` (default: cwd) that holds pyproject.toml, else cwd."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").exists():
            return d
    return here


def results_dir(profile: str = "ci") -> Path:
    """$ICL_GEOMETRY_RESULTS, else `runs/<profile>/results/` at the repository root."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser() if env else repo_root() / "runs" / profile / "results"
