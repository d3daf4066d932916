"""The toy's parts of chapter 2's rows, from the chapter's settings (a plain dict of its parameters: `toy_heads`,
`toy_contexts`, `toy_bins`, ...; `experiments.attention_graphs` passes `base.settings(config)`): what is
trained and how each part's rows are built, so that the experiment module keeps only the claims and the order
of the parts.

- `grid_part`: the heads x contexts grid (one row per heads, seed, restart, context), and the fits by heads.
- `separate_part`: a separate network per context (the fewest heads, shortest and longest context).
- `width_part`: the width-matched family (heads x d_head = `toy_width`), with a `d_head` column; a setting equal
  to one of the grid's (same heads and d_head) reuses the grid's rows (the same config trains the same fits).
- `intervention_part`: `refit.intervention_rows` of the grid's kept fits at `toy_intervention_contexts`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping

import pandas as pd

from icl_geometry.toys.sine_attention.model import ToyConfig
from icl_geometry.toys.sine_attention.refit import REFIT_FIELDS, intervention_rows
from icl_geometry.toys.sine_attention.sweep import ROW_FIELDS, WIDTH_FIELDS, evaluate, sweep, width_pairs, width_rows
from icl_geometry.toys.sine_attention.training import FitResult, train

REFIT_SEED = 0  # the refits start from the trained MLP: nothing is drawn, the seed only matters for init="fresh"


def toy_config(s: Mapping[str, Any]) -> ToyConfig:
    """The toy's configuration from the chapter's settings (heads are set per grid row)."""
    return ToyConfig(contexts=tuple(sorted(s["toy_contexts"])), n_bins=s["toy_bins"], steps=s["toy_steps"],
                     seeds=s["toy_seeds"], restarts=s["toy_restarts"], hidden=s["toy_hidden"],
                     d_head=s["toy_d_head"], seed=s["seed"])


def toy_device(s: Mapping[str, Any]) -> str:
    """Where the toy trains: the GPU when the chapter runs on one, else the CPU."""
    return "cuda" if s["device"] == "cuda" else "cpu"


def regions_per_bin(s: Mapping[str, Any]) -> int:
    """Grid points per bin on which regions are counted (about 4000 times in all)."""
    return max(2, 4000 // s["toy_bins"])


def _state(store: Any) -> dict[str, Any]:
    """The saved progress of a checkpoint `store` (anything with `load()` and `save(state)`, e.g.
    `experiments.base.Checkpoint`), or a new state without one."""
    return (store.load() if store is not None else None) or {}


def grid_part(s: Mapping[str, Any], heads: Iterable[int] | None = None, progress: bool = True,
              store: Any = None) -> tuple[pd.DataFrame, dict[int, FitResult]]:
    """Every heads setting of the grid (or those of `heads`) trained once on all contexts and evaluated at each:
    the rows (one per heads, seed, restart, context) and the fits by heads. With a checkpoint `store`, each
    heads setting's rows and fits are saved once trained, and a rerun trains only the missing ones."""
    todo = [int(h) for h in (s["toy_heads"] if heads is None else heads)]
    state = _state(store)
    done = state.setdefault("grid", {})
    iterator: Iterable = todo
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(todo, desc="toy: heads settings")
    for h in iterator:
        if h not in done:
            rows, fits = sweep([h], toy_config(s), device=toy_device(s), per_bin=regions_per_bin(s), progress=False)
            done[h] = (pd.DataFrame(rows)[list(ROW_FIELDS)], fits[h])
            if store is not None:
                store.save(state)
    return pd.concat([done[h][0] for h in todo], ignore_index=True), {h: done[h][1] for h in todo}


def separate_part(s: Mapping[str, Any]) -> pd.DataFrame:
    """The alternative reading: a separate network per context, with the fewest heads, for the shortest and the
    longest context only (same clocks, seeds and steps)."""
    h_lo, c_lo, c_hi = min(s["toy_heads"]), min(s["toy_contexts"]), max(s["toy_contexts"])
    rows = []
    for c in (c_lo, c_hi):
        fit = train(toy_config(s), heads=h_lo, contexts=(c,), device=toy_device(s))
        rows += evaluate(fit, regions_per_bin(s))
    return pd.DataFrame(rows)[list(ROW_FIELDS)]


def width_settings(s: Mapping[str, Any]) -> list[tuple[int, int]]:
    """The width-matched family's (heads, d_head): heads x d_head = `toy_width` for each of `toy_width_heads`."""
    return width_pairs(s["toy_width_heads"], s["toy_width"])


def width_setting(s: Mapping[str, Any], heads: int, d_head: int, grid_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One setting of the width-matched family: trained like the grid with d_head overridden, or, when the grid
    has the same setting (heads in `toy_heads` and d_head = `toy_d_head`) and its rows are given, the grid's
    rows of those heads (the same fits: training is deterministic)."""
    if grid_rows is not None and d_head == s["toy_d_head"] and heads in set(grid_rows.heads.astype(int)):
        same = pd.DataFrame(grid_rows)
        return same[same.heads.astype(int) == heads].assign(d_head=d_head)[list(WIDTH_FIELDS)].reset_index(drop=True)
    fit = train(replace(toy_config(s), heads=heads, d_head=d_head), device=toy_device(s))
    return pd.DataFrame(width_rows(fit, regions_per_bin(s)))[list(WIDTH_FIELDS)]


def width_part(s: Mapping[str, Any], grid_rows: pd.DataFrame | None = None, progress: bool = True,
               store: Any = None) -> pd.DataFrame:
    """The width-matched family: one row per (heads, d_head, seed, restart, context), `WIDTH_FIELDS`. With a
    checkpoint `store` (see `grid_part`), each setting's rows are saved once computed."""
    pairs: Iterable = width_settings(s)
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="toy: width-matched settings")
    state = _state(store)
    done = state.setdefault("width", {})
    for h, d in pairs:
        if (h, d) not in done:
            done[h, d] = width_setting(s, h, d, grid_rows)
            if store is not None:
                store.save(state)
    return pd.concat([done[p] for p in width_settings(s)], ignore_index=True)


def intervention_contexts(s: Mapping[str, Any]) -> list[int]:
    """`toy_intervention_contexts`, each one of the grid's contexts."""
    contexts = sorted(int(c) for c in s["toy_intervention_contexts"])
    bad = sorted(set(contexts) - set(int(c) for c in s["toy_contexts"]))
    if not contexts or bad:
        raise ValueError(f"toy_intervention_contexts = {list(s['toy_intervention_contexts'])} is not allowed: expected "
                         f"some of toy_contexts {sorted(s['toy_contexts'])}")
    return contexts


def intervention_part(s: Mapping[str, Any], fits: Mapping[int, FitResult] | Iterable[FitResult]) -> pd.DataFrame:
    """The intervention on the grid's kept fits (`refit.intervention_rows`): top-2 PCA projection of the MLP input,
    the MLP refitted for `toy_refit_steps` steps from its trained weights, against the same refit unprojected;
    one row per (heads, seed, context of `toy_intervention_contexts`), `REFIT_FIELDS`."""
    rows = intervention_rows(fits, intervention_contexts(s), components=2, steps=s["toy_refit_steps"],
                             seed=REFIT_SEED, per_bin=regions_per_bin(s))
    return pd.DataFrame(rows, columns=list(REFIT_FIELDS))
