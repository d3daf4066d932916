"""The replication report: one book page built from the results of the committed ci run (`book/results/`)
and of the recorded paper-scale runs (`book/recorded/`).

Only `paper` claims whose outcome was not forced by how the measure is built enter the replication
count; the book's own claims (`ours`) and sanity checks (`check`) get short tables of their own.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from icl_geometry.bookkit import recorded
from icl_geometry.bookkit.specs import all_specs

PAPERS = {
    "A": "Cosentino & Shekkizhar, *Reasoning in LLMs: A Geometric Perspective* (arXiv 2407.02678)",
    "B": "Shi, Wei, Xu & Liang, *Why Larger Language Models Do In-context Learning Differently?* (ICML 2024)",
}
VERDICT_ORDER = ("reproduced", "not reproduced", "no effect", "inconclusive")
_PLACE = re.compile(r"\b(Fig(?:ure)?s?\.?\s*\d+|Theorem\s*\d+(?:\.\d+)?|[Ee]q(?:uation)?s?\.?\s*\(?\d+\)?|"
                    r"Section\s*\d+(?:\.\d+)?|Table\s*\d+)")


def place_in_paper(text: str) -> str:
    """The figure, theorem, equation or section a claim's `paper` text names first ('Fig. 6'), else ''."""
    m = _PLACE.search(text or "")
    if not m:
        return ""
    place = re.sub(r"\s+", " ", m.group(1))
    return re.sub(r"^Fig(?:ure)?s?\.?\s*", "Fig. ", place)


def load_rows(*folders: Path) -> list[dict[str, Any]]:
    """One row per claim in every `*.json` results file of `folders` (missing folders are skipped)."""
    specs = all_specs()
    rows = []
    for folder in folders:
        for f, data in recorded.runs(None, Path(folder)).items():
            chapter = str(data.get("chapter", f.stem[:2]))
            spec = specs.get(chapter)
            cfg = data.get("config", {})
            for c in data.get("claims", []):
                rows.append({**c, "chapter": chapter, "paper_key": spec.paper if spec else "",
                             "doc": Path(spec.notebook).stem if spec else "", "profile": cfg.get("profile", ""),
                             "model": cfg.get("models") or cfg.get("model") or "", "source": f.name,
                             "place": place_in_paper(c.get("paper", ""))})
    return rows


def counts(rows: Iterable[dict[str, Any]]) -> Counter:
    """Verdicts of the claims that count as replications: kind 'paper', outcome not forced."""
    return Counter(r["verdict"] for r in rows if r.get("kind") == "paper" and not r.get("forced_by"))


def counts_line(rows: Iterable[dict[str, Any]]) -> str:
    c = counts(rows)
    total = sum(c.values())
    parts = [f"{c[v]} {v}" for v in VERDICT_ORDER if c[v]]
    return f"{total} claims of the papers judged: " + (", ".join(parts) if parts else "none yet") + "."


def _number(v: Any) -> str:
    return "" if v is None else f"{float(v):.2g}"


def _table(rows: list[dict[str, Any]], with_place: bool) -> list[str]:
    head = (["where"] if with_place else []) + ["claim", "chapter", "model", "profile", "value", "interval",
                                                  "verdict"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        interval = "" if r.get("low") is None else f"[{_number(r['low'])}, {_number(r['high'])}]"
        verdict = r["verdict"] + (f" (forced: {r['forced_by']}; not counted)" if r.get("forced_by") else "")
        link = f"{{doc}}`{r['chapter']} <{r['doc']}>`" if r["doc"] else r["chapter"]
        cells = ([r["place"] or "general"] if with_place else []) + [
            f"`{r['claim_id']}`", link, r["model"] or "-", r["profile"], _number(r["value"]), interval, verdict]
        out.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    return out


def render(rows: list[dict[str, Any]]) -> str:
    """The report page as MyST markdown."""
    lines = ["# Replication report", "",
             "Every number below was computed when its chapter ran: the `ci` rows by the committed run of each",
             "chapter (CPU, minutes), the `full` rows by recorded paper-scale runs. Only claims the papers make",
             "(kind `paper`) count as replications, and not those whose outcome is forced by how the measure is",
             "built. Verdicts: *reproduced* / *not reproduced* (the interval excludes the threshold on one side),",
             "*inconclusive* (the interval contains it), *no effect* (the interval lies inside a margin declared",
             "before measuring).", "", f"**{counts_line(rows)}**", ""]
    for key, title in PAPERS.items():
        mine = [r for r in rows if r.get("kind") == "paper" and r["paper_key"] == key]
        if not mine:
            continue
        c = counts(mine)
        lines += [f"## Paper {key}: {title}", "",
                  ", ".join(f"{c[v]} {v}" for v in VERDICT_ORDER if c[v]) or "no counted claims", ""]
        mine.sort(key=lambda r: (r["place"] or "~", r["chapter"], r["profile"], r["claim_id"]))
        lines += _table(mine, with_place=True) + [""]
    for kind, title, why in (("ours", "The book's own claims", "derivations, extensions and controls of ours"),
                             ("check", "Sanity checks", "identities that cannot fail with correct code; "
                              "they are tests, shown for teaching, never counted"),
                             (None, "Claims not yet labelled", "recorded without a kind")):
        mine = [r for r in rows if r.get("kind") == kind]
        if mine:
            lines += [f"## {title}", "", f"({why})", ""] + _table(mine, with_place=False) + [""]
    return "\n".join(lines)


def glance(title: str, rows: list[dict[str, Any]], models: Iterable[str] = ()) -> str:
    """The "at a glance" box a chapter page opens with (MyST): its question, its models, and its verdicts
    on the papers' claims, read from its results."""
    models = sorted({m for m in models if m} | {r["model"] for r in rows if r.get("model")})
    c = counts(rows)
    verdicts = ", ".join(f"{c[v]} {v}" for v in VERDICT_ORDER if c[v]) or "no claim of the papers judged here"
    ours = sum(1 for r in rows if r.get("kind") == "ours")
    checks = sum(1 for r in rows if r.get("kind") == "check")
    profiles = sorted({r["profile"] for r in rows if r.get("profile")})
    lines = [":::{admonition} At a glance", ":class: tip", "",
             f"**Question.** {title}", "",
             f"**Models.** {', '.join(models) if models else 'small models trained from scratch in this chapter'}.",
             "", f"**The papers' claims** ({', '.join(profiles) or 'no'} run): {verdicts}."]
    if ours or checks:
        lines += ["", f"Also {ours} claims of our own and {checks} sanity checks."]
    lines += ["", "Every verdict, with its value and interval: the {doc}`replication report <report>`.", ":::"]
    return "\n".join(lines)
