"""The chapter protocol every experiment module follows, and what they share: rows I/O and one checkpoint format.

An experiment module `experiments/<chapter slug>.py` exposes

- `run(config, checkpoint=None) -> rows`: the chapter's whole computation, returning a DataFrame with one row
  per unit the statistics resample (item, prompt, query, fit, seed). A chapter made of several parts (a sweep,
  a set of fits, a check) stacks them in one table with a `part` column naming the part; `part(rows, name)`
  reads one back. A notebook may call, section by section, the steps `run` is made of (to show what each
  computes as it goes); `stack(...)` then assembles the very same rows.
- `CLAIMS`: `{claim_id: core.verdicts.ClaimSpec}`, declared before the run that judges them.
- `claim_values(rows, config) -> {claim_id: core.verdicts.Measured}`: pure, from the rows alone (and the
  config: a resolved `Config` or the `config` dict of a results JSON), so a test recomputes any committed or
  recorded verdict without re-running the chapter.

Rows are saved beside the chapter's results JSON as `<chapter>_rows.csv.gz` (`save_rows`, `load_rows`). A long
run checkpoints after each unit with `Checkpoint` (pickle, atomic write, keyed by every setting) and resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

ROWS_SUFFIX = "_rows.csv.gz"  # a run's rows, beside its results JSON (`04.json` -> `04_rows.csv.gz`)
PART = "part"  # the column naming the part of a chapter a row belongs to


def settings(config: Any) -> dict[str, Any]:
    """A run's settings as a plain dict, from a resolved `Config` (`as_dict`) or a results JSON's `config`."""
    if hasattr(config, "as_dict"):
        return dict(config.as_dict())
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config: expected a resolved Config or a mapping of settings, got {type(config).__name__}")


def rows_path(results_json: str | Path) -> Path:
    """Where the rows of the run whose results are `results_json` live."""
    results_json = Path(results_json)
    return results_json.with_name(results_json.stem + ROWS_SUFFIX)


def save_rows(rows: pd.DataFrame, results_json: str | Path) -> Path:
    """Write `rows` beside a chapter's results JSON; returns the path. Floats keep every digit (`repr`); the
    gzip header carries no time stamp, so the same rows give the same file."""
    path = rows_path(results_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})
    return path


def load_rows(path: str | Path) -> pd.DataFrame:
    """A saved rows table, given its path or the path of the results JSON it sits beside."""
    path = Path(path)
    if path.suffix == ".json":
        path = rows_path(path)
    return pd.read_csv(path)


def stack(**parts: pd.DataFrame) -> pd.DataFrame:
    """One rows table from a chapter's parts: each part's rows, labelled in the `part` column, in order."""
    frames = []
    for name, frame in parts.items():
        if PART in frame.columns:
            raise ValueError(f"part {name!r} already has a {PART!r} column")
        frames.append(frame.assign(**{PART: name}))
    table = pd.concat(frames, ignore_index=True, sort=False)
    return table[[PART, *[c for c in table.columns if c != PART]]]


def part(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one part (see `stack`), with the columns only other parts use dropped."""
    if PART not in rows.columns:
        raise ValueError(f"rows have no {PART!r} column: not a stacked table")
    sel = rows[rows[PART] == name].drop(columns=PART).reset_index(drop=True)
    if sel.empty:
        raise ValueError(f"rows have no part {name!r}: expected one of {sorted(rows[PART].unique())}")
    sel = sel.dropna(axis=1, how="all")
    for c in sel.columns:  # a part's bool column is stored as object beside the other parts' empty cells
        if sel[c].dtype == object and sel[c].map(lambda v: isinstance(v, (bool, np.bool_))).all():
            sel[c] = sel[c].astype(bool)
    return sel


def checkpoint_key(**settings: Any) -> str:
    """A digest of every setting a run's checkpoint depends on (a checkpoint of other settings is ignored)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Checkpoint:
    """A long run's saved progress: one pickle file, written atomically (beside, then renamed), valid only
    for the `key` it was written with. `path=None` keeps nothing (a run that cannot resume)."""

    def __init__(self, path: str | Path | None, key: str) -> None:
        self.path = None if path is None else Path(path)
        self.key = key

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it was written for other settings."""
        if self.path is None or not self.path.exists():
            return None
        with open(self.path, "rb") as fh:
            state = pickle.load(fh)
        return state if isinstance(state, dict) and state.get("key") == self.key else None

    def save(self, state: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({**state, "key": self.key}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)


def as_float_array(values: Iterable[Any]) -> np.ndarray:
    """A float array from a column or list (NaN where a value is missing)."""
    return np.asarray(pd.to_numeric(pd.Series(list(values)), errors="coerce"), dtype=float)
