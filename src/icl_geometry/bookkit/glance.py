"""The "at a glance" box each chapter page opens with (inserted by `staging.stage_book`): the chapter's
question, its answer in one sentence (the spec's authored `answer`), and its primary verdicts: each counted
paper claim with the verdict of the largest-scale run that judged it; the book's own claims apart; zero
counts left out."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from icl_geometry.bookkit.report import NOT_JUDGED, TALLIES, VERDICT_ORDER, claim_views


def _counts(verdicts: Iterable[str]) -> str:
    n = Counter(verdicts)
    order = [v for v in VERDICT_ORDER if n[v]] + sorted(v for v in n if v not in VERDICT_ORDER)
    return ", ".join(f"{n[v]} {v}" for v in order)


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _line(v: Any, why: str = "") -> str:
    verdict = v.judge["verdict"] if v.judge else NOT_JUDGED
    where = f"{_md(v.source)}: " if v.source else ""
    return f"- **{verdict}**{f' ({why})' if why else ''}: {where}{_md(v.statement or v.claim_id)}"


def glance(title: str, rows: list[dict[str, Any]], models: Iterable[str] = (), answer: str = "") -> str:
    """The box (MyST): question, answer, models, the counted paper claims one per line with their verdict,
    then our own claims and what else is shown (only the counts that are not zero)."""
    models = sorted({m for m in models if m} | {m for r in rows for m in r.get("models", ())})
    views = claim_views(rows)
    counted = [v for v in views if v.counted]
    lines = [":::{admonition} At a glance", ":class: tip glance", "", f"**Question.** {_md(title)}", ""]
    if answer:
        lines += [f"**Answer.** {_md(answer)}", ""]
    lines += [f"**Models.** {', '.join(models) if models else 'small models trained from scratch in this chapter'}.",
              ""]
    if counted:
        profiles = sorted({v.judge["profile"] for v in counted if v.judge and v.judge.get("profile")})
        bases = Counter(v.basis or "" for v in counted)
        kinds = " and ".join(f"{n} {TALLIES[b].split(' (')[0].lower()}" for b, n in bases.items())
        lines += [f"**The papers' claims counted here** ({kinds}; each judged by its largest-scale run"
                  f"{': ' + ', '.join(profiles) if profiles else ''}):", ""]
        lines += [_line(v) for v in counted] + [""]
    # the papers' primary claims this chapter shows but cannot count (forced or confounded by design)
    held = [v for v in views if v.kind == "paper" and v.role == "primary" and not v.counted and v.declared]
    if held:
        head = "Also measured" if counted else "The papers' claims measured here"
        lines += [f"**{head}, not counted** (the outcome is forced by the measure, or the comparison is "
                  "confounded):", ""]
        lines += [_line(v, "forced" if v.forced_by else "confounded") for v in held] + [""]
    if not counted and not held:
        lines += ["**The papers' claims counted here:** none.", ""]
    ours = [v for v in views if v.kind == "ours"]
    if ours:
        judged = [v.judge["verdict"] for v in ours if v.judge]
        lines += [f"**Our own claims** (not counted): {len(ours)}"
                  + (f" ({_counts(judged)})" if judged else "") + ".", ""]
    shown = Counter("views" if v.kind == "paper" else v.kind for v in views
                    if not v.counted and v.kind != "ours" and v not in held)
    also = [f"{shown['views']} supporting view{'s' * (shown['views'] > 1)} of the papers' claims" if shown["views"]
            else "", f"{shown['check']} check{'s' * (shown['check'] > 1)} that cannot fail with correct code"
            if shown["check"] else ""]
    if any(also):
        lines += ["Also shown, not counted: " + " and ".join(a for a in also if a) + ".", ""]
    lines += ["Every verdict, with its value and interval: the {doc}`replication report <report>`.", ":::"]
    return "\n".join(lines)
