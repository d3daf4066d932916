"""A chapter's recorded paper-scale runs (`book/recorded/`), read back to be shown beside the live run.

A recorded run is the executed notebook and its results JSON, `<chapter>_<profile>_<model>.json` (see
`runner.record`). Chapters show its verdicts next to the ones they just computed; these helpers keep that
display logic out of the notebooks, and say "not judged" rather than dropping a claim one run did not judge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from icl_geometry.bookkit.paths import repo_root

NOT_JUDGED = "not judged"


def runs(chapter: str | None, folder: Path | None = None) -> dict[Path, dict[str, Any]]:
    """The results JSON of every recorded run of `chapter` ('04'; None: every chapter), by path, in name order.
    `folder` defaults to `book/recorded`; any folder of results files reads the same way (the report reads
    `book/results` with it too)."""
    folder = Path(folder) if folder else repo_root() / "book" / "recorded"
    if not folder.is_dir():
        return {}
    pattern = f"{chapter}_*.json" if chapter is not None else "*.json"
    return {f: json.loads(f.read_text()) for f in sorted(folder.glob(pattern))}


def _field(claim: Any, name: str) -> Any:
    """A field of a claim, whether a `claims.Claim` or its JSON dict."""
    return claim.get(name) if isinstance(claim, Mapping) else getattr(claim, name, None)


def phrase(claim: Any, digits: int = 2, signed: bool = False) -> str:
    """'value [low, high], verdict' for a claim (a `Claim` or its JSON dict); `NOT_JUDGED` for None."""
    if claim is None:
        return NOT_JUDGED
    fmt = f"{'+' if signed else ''}.{digits}g"
    low, high = _field(claim, "low"), _field(claim, "high")
    interval = "" if low is None else f" [{format(low, fmt)}, {format(high, fmt)}]"
    return f"{format(_field(claim, 'value'), fmt)}{interval}, {_field(claim, 'verdict')}"


def describe(path: Path, record: Mapping[str, Any]) -> str:
    """One line on a recorded run: its file, profile, model(s), size and compute time.

    `compute_s` (every pass summed over the sessions of a resumed run) is preferred; a run recorded before
    that field existed only has `wall_s`, the wall time of its last session, and the line says so."""
    cfg = record.get("config", {})
    model = cfg.get("model") or cfg.get("models") or "?"
    size = f", {record['n_base_items']} base items" if "n_base_items" in record else ""
    if "compute_s" in record:
        time = f"{record['compute_s'] / 3600:.1f} h of compute"
    else:
        time = f"{record.get('wall_s', 0) / 3600:.1f} h wall time of its last (resumed) session"
    return f"{Path(path).name}: profile {cfg.get('profile', '?')}, model {model}{size}, {time}"


def column_name(record: Mapping[str, Any]) -> str:
    """A recorded run's column heading: '<model> (<profile>)'."""
    cfg = record.get("config", {})
    return f"{cfg.get('model') or cfg.get('models') or '?'} ({cfg.get('profile', '?')})"


def verdict_table(live: Mapping[str, Any], recorded: Mapping[Path, Mapping[str, Any]],
                  live_name: str = "ci (this run)"):
    """Verdicts side by side, '<verdict> (<value>)': the live run's claims (id -> `Claim` or dict) and each
    recorded run's. Rows are every claim any run judged, in first-seen order; a claim a run did not judge
    (the within-item tests need more items than ci has) reads `NOT_JUDGED` instead of disappearing."""
    import pandas as pd

    def cell(c: Any) -> str:
        return f"{_field(c, 'verdict')} ({_field(c, 'value'):.2g})"

    columns = {live_name: {cid: cell(c) for cid, c in live.items()}}
    for rec in recorded.values():
        columns[column_name(rec)] = {c["claim_id"]: cell(c) for c in rec.get("claims", [])}
    order = list(dict.fromkeys(cid for col in columns.values() for cid in col))
    table = pd.DataFrame({name: pd.Series(col, dtype=object) for name, col in columns.items()})
    return table.reindex(order).fillna(NOT_JUDGED)


def say(claims_by_id: Mapping[str, Any], claim_id: str, why_missing: Mapping[str, str] | None = None) -> str:
    """One claim of a run (id -> `Claim` or its JSON dict) as 'value [low, high], verdict' (`phrase`), or why the
    run has none: `why_missing` maps a part of an id (e.g. 'within_item') to the reason such a claim can go
    unjudged; any other missing claim reads 'not measured in this run'."""
    c = claims_by_id.get(claim_id)
    if c is not None:
        return phrase(c)
    for part, why in (why_missing or {}).items():
        if part in claim_id:
            return f"{NOT_JUDGED} ({why})"
    return "not measured in this run"


def claim_grid(claims_by_id: Mapping[str, Any], ids: Mapping[str, Mapping[str, str]],
               why_missing: Mapping[str, str] | None = None, index_name: str = ""):
    """A table of claims phrased by `say`: `ids` maps each column to {row: claim id}."""
    import pandas as pd

    cells = {col: {row: say(claims_by_id, cid, why_missing) for row, cid in rows.items()} for col, rows in ids.items()}
    return pd.DataFrame(cells).rename_axis(index_name)
