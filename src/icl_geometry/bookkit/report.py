"""The replication report page and the landing page's count, from the results of the committed run
(`book/results/`) and of the recorded paper-scale runs (`book/recorded/`). The rules (DESIGN.md, "Claims"):
each distinct paper claim (chapter + id) counts once, judged by the largest-scale run that has it; `derived` and
`empirical` claims are two tallies, never added; each states what chance alone would give and a Holm count.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from icl_geometry.bookkit import recorded
from icl_geometry.bookkit.specs import all_specs

PAPERS = {
    "A": "Cosentino & Shekkizhar, *Reasoning in LLMs: A Geometric Perspective* (arXiv 2407.02678)",
    "B": "Shi, Wei, Xu & Liang, *Why Larger Language Models Do In-context Learning Differently?* (ICML 2024)",
}
PAPER_B_SETTINGS = {  # paper B's three settings, by the chapter that replicates each
    "05": "Setting 1: linear regression, size = rank of the attention",
    "06": "Setting 2: sparse parity, size = number of heads",
    "07": "Setting 3: LLMs under noisy demonstrations, size = parameters",
}
VERDICT_ORDER = ("reproduced", "not reproduced", "no effect", "inconclusive")
NOT_JUDGED = "not judged at this size"
TALLIES = {"empirical": "Empirical replications", "derived": "Theory re-derived",
           "": "Not yet labelled (recorded before roles existed; counted as before)"}
LEVEL, ALPHA, Z90 = 0.90, 0.05, 1.6448536269514722  # every interval is a two-sided 90% one: 5% per side
TOY = "toy trained in the chapter"
# LLM chapters that also build toys: the ids measured on the LLM (prefixes); the others on what the chapter builds
LLM_CLAIMS = {"01": ("llm_",), "02": ("first_layer_", "real_layer_")}
BUILT = {("01", ("one_layer_", "zero_bias_", "regions_")): "random nets built in the chapter",
         ("02", ("minkowski", "dimension_", "generic_", "fixed_support_", "temperature_", "top_k_")):
             "synthetic attention built in the chapter"}
_PLACE = re.compile(r"\b(Fig(?:ure)?s?\.?\s*\d+(?:\s*[-–,]\s*\d+)*|(?:Theorem|Thm)\.?\s*\d+(?:\.\d+)?|"
                    r"[Ee]q(?:uation)?s?\.?\s*\(?\d+\)?|[Ss]ec(?:tion)?s?\.?\s*\d+(?:\.\d+)?|Table\s*\d+)")
_SLUG_CLEAN = re.compile(r"[^\w\u4e00-\u9fff\- ]")  # myst_parser's default_slugify


def place_in_paper(text: str) -> str:
    """The figure, theorem, equation or section a claim's source names first ('Fig. 6', 'Section 3'), else ''."""
    m = _PLACE.search(text or "")
    if not m:
        return ""
    place = re.sub(r"\s+", " ", m.group(1))
    if place[:3].lower() == "fig":
        nums = re.sub(r"^Fig(?:ure)?s?\.?\s*", "", place)
        return ("Figs. " if re.search(r"[-–,]", nums) else "Fig. ") + nums
    place = re.sub(r"^(?:Theorem|Thm)\.?\s*", "Theorem ", place)
    return re.sub(r"^[Ss]ec(?:tion)?s?\.?\s*", "Section ", place)


def slugify(title: str) -> str:
    """MyST's default heading slug (myst_parser's `default_slugify`): GitHub's rule."""
    return _SLUG_CLEAN.sub("", title.lower().replace(" ", "-"))


@cache
def heading_slugs(notebook: Path, max_level: int = 3, _mtime: int = 0) -> dict[str, str]:
    """Every heading of a notebook's markdown cells (its source text and its plain text) -> the slug MyST
    gives it: the plain text (text and inline code, not maths) slugified, made unique in document order as
    MyST's `compute_unique_slug` does (myst-nb renders a notebook as one document)."""
    import nbformat
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    md = create_md_parser(MdParserConfig(enable_extensions={"amsmath", "colon_fence", "dollarmath", "deflist"},
                                         dmath_double_inline=True), RendererHTML)  # MyST's parser, as _config.yml
    slugs: dict[str, str] = {}
    seen: set[str] = set()
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        if cell.cell_type != "markdown" or not cell.source.strip() or \
                {"remove-cell", "remove_cell"} & set(cell.metadata.get("tags", [])):
            continue
        tokens = md.parse(cell.source)
        for tok, inline in zip(tokens, tokens[1:]):
            if tok.type != "heading_open" or int(tok.tag[1]) > max_level:
                continue
            title = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
            slug, n = slugify(title), 1
            while slug in seen:
                slug, n = f"{slug}-{n}", n + 1
            seen.add(slug)
            for key in (" ".join(inline.content.split()), " ".join(title.split())):
                slugs.setdefault(key, slug)
    return slugs


def section_link(doc: str, section: str, notebooks: Path | None) -> str:
    """`<doc>.ipynb#<slug>` for the heading `section` of chapter `doc`, or '' when the heading is not found."""
    path = (notebooks or Path("/nonexistent")) / f"{doc}.ipynb"
    if not section or notebooks is None or not path.exists():
        return ""
    slug = heading_slugs(path, 3, path.stat().st_mtime_ns).get(" ".join(section.lstrip("# ").split()))
    return f"{doc}.ipynb#{slug}" if slug else ""


def count_units(results: Path) -> int:
    """The rows (units) of a run: the lines of `<stem>_rows.csv.gz` beside its results JSON (0 if none)."""
    if not (rows := results.with_name(f"{results.stem}_rows.csv.gz")).exists():
        return 0
    with gzip.open(rows, "rt", newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def _models(cfg: dict[str, Any]) -> tuple[str, ...]:
    raw = cfg.get("models") or cfg.get("model") or ""
    raw = ",".join(raw) if isinstance(raw, (list, tuple)) else str(raw)
    return tuple(m.strip() for m in raw.split(",") if m.strip())


def model_rank(models: Sequence[str]) -> tuple[int, str]:
    """Order of model size: `llm.lm.BUNDLED` order (smallest first), hub ids and directories after them."""
    from icl_geometry.llm.lm import BUNDLED

    return max(((list(BUNDLED).index(m) if m in BUNDLED else len(BUNDLED), m) for m in models), default=(-1, ""))


def load_rows(committed: Path, *recorded_folders: Path) -> list[dict[str, Any]]:
    """One row per claim per run, from every results JSON of `committed` (the run being rendered) and of the
    recorded runs' folders (missing ones skipped); a claim a run lists under `not_judged` gets judged=False."""
    rows = []
    for is_recorded, folder in [(False, committed), *((True, f) for f in recorded_folders)]:
        for f, data in recorded.runs(None, Path(folder)).items():
            chapter = str(data.get("chapter", f.stem[:2]))
            cfg = data.get("config", {})
            run = {"chapter": chapter, "profile": cfg.get("profile", ""), "models": _models(cfg), "run": f.name,
                   "model": " vs ".join(_models(cfg)), "recorded": is_recorded, "units": count_units(f), "config": cfg,
                   "data": data}
            for i, c in enumerate(data.get("claims", [])):
                rows.append({**c, **run, "judged": True, "order": i})
            for i, (cid, why) in enumerate((data.get("not_judged") or {}).items()):
                rows.append({"claim_id": cid, "verdict": NOT_JUDGED, "why": str(why), **run, "judged": False,
                             "order": 1000 + i})
    return rows


def scale(row: dict[str, Any]) -> tuple:
    """The largest-scale rule as a sort key: recorded over committed, full profile, more units, larger model."""
    return (row["recorded"], row["profile"] == "full", row["units"], model_rank(row["models"]), row["run"])


@cache
def _module(chapter: str) -> Any:
    """The chapter's experiment module, or None if it cannot be imported (the report then reads only the JSON)."""
    try:
        return importlib.import_module(f"icl_geometry.experiments.{all_specs()[chapter].slug}")
    except Exception:  # noqa: BLE001
        return None


def _declared(chapter: str) -> dict[str, Any]:  # the chapter's declared CLAIMS
    return dict(getattr(_module(chapter), "CLAIMS", {}))


def _regime(chapter: str, rows: Iterable[dict[str, Any]]) -> str:
    """Where the smaller model wins: the run fact `smaller_model_wins` of the largest-scale run that records it,
    in the chapter's own words (its `regime_text`) where it has them."""
    runs = sorted((r for r in rows if r["chapter"] == chapter and "smaller_model_wins" in r["data"]), key=scale)
    if not runs:
        return "not recorded by its runs."
    fact, text = runs[-1]["data"]["smaller_model_wins"], getattr(_module(chapter), "regime_text", None)
    try:
        lines = text(fact) if text else [f"{kind}: {v}" for kind, v in fact.items()]
    except Exception:  # noqa: BLE001 - a fact in an older format: shown as recorded
        lines = [str(fact)]
    return _md("; ".join(lines) + f" ({runs[-1]['run']}, {runs[-1]['profile']}).")


LABELS = ("kind", "role", "basis", "forced_by", "confounded_by", "section", "against", "paper")


@dataclass
class ClaimView:
    """One distinct claim (chapter + id): labels, judging run (None: none could), every run's row."""

    chapter: str
    claim_id: str
    labels: dict[str, Any]
    judge: dict[str, Any] | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    declared: bool = True
    p: float | None = None

    def __post_init__(self) -> None:
        for name in LABELS:
            setattr(self, name, self.labels.get(name) or ("" if name != "kind" else None))
        self.key = (self.chapter, self.claim_id)
        self.source, self.statement = _split(self.paper)
        self.p = p_value(self.judge) if self.judge else None

    @property
    def counted(self) -> bool:
        """Counted: a paper claim, primary (or unlabelled), not forced, not confounded, still declared."""
        return (self.kind == "paper" and self.role in ("primary", "") and not self.forced_by
                and not self.confounded_by and self.declared)

    @property
    def why_not(self) -> str:
        if self.kind != "paper":
            return {"ours": "the book's own claim, not counted", "check": "cannot fail with correct code, never "
                    "counted"}.get(self.kind, "kind not labelled, not counted")
        return ("no longer declared by its chapter" if not self.declared else "a supporting view"
                if self.role == "supporting" else f"forced: {self.forced_by}" if self.forced_by
                else f"confounded: {self.confounded_by}")


def _split(paper: str) -> tuple[str, str]:  # 'A, Fig. 6: the statement' -> ('A, Fig. 6', 'the statement')
    source, sep, statement = (paper or "").partition(": ")
    return (source.strip(), statement.strip()) if sep else ("", source.strip())


def claim_views(rows: Iterable[dict[str, Any]]) -> list[ClaimView]:
    """One view per distinct claim, in chapter order then the order the runs declare them."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["chapter"], r["claim_id"]), []).append(r)
    relabelled = {r["chapter"] for r in rows if r["judged"] and r.get("role") and not r["recorded"]}
    views = []
    for (chapter, cid), mine in by_key.items():
        mine.sort(key=lambda r: (r["recorded"], r["run"]))
        judged = [r for r in mine if r["judged"]]
        judge = max(judged, key=scale) if judged else None
        committed = next((r for r in judged if not r["recorded"]), None)
        spec = _declared(chapter).get(cid)
        declaration = {name: getattr(spec, name) for name in LABELS} if spec is not None else None
        labels = next((x for x in (judge, committed, declaration) if x and x.get("role")), None)
        if labels is None:
            labels = judge or declaration or {}
        elif labels is not judge and judge:  # an older recording: the current declaration, its own confounds kept
            labels = {**labels, **{k: labels.get(k) or judge.get(k, "") for k in ("forced_by", "confounded_by")}}
        labels = {**labels, "section": labels.get("section") or (declaration or {}).get("section", "")}
        # a chapter re-labelled since an old recording no longer declares an id only its recordings hold
        declared = not (chapter in relabelled and cid not in _declared(chapter) and all(r["recorded"] for r in mine))
        views.append(ClaimView(chapter, cid, labels, judge, mine, declared))
    views.sort(key=lambda v: (v.chapter, min(r["order"] + 10000 * r["recorded"] for r in v.runs)))
    return views


def p_value(row: dict[str, Any]) -> float | None:
    """One-sided p-value of a judged claim from its value and 90% interval, normal approximation:
    SE = (high - low) / (2 x 1.645). A 'within' (no effect) claim takes the larger of its two one-sided
    p-values (TOST). A claim without an interval (an exact value) has p = 0 when reproduced, 1 otherwise."""
    exact = 0.0 if row.get("verdict") == "reproduced" else 1.0
    low, high, value, text = row.get("low"), row.get("high"), float(row["value"]), row.get("expectation", "")
    if low is None or high is None or not high > low:
        return exact
    se = (high - low) / (2 * Z90)
    tail = lambda z: 0.5 * math.erfc(z / math.sqrt(2))  # noqa: E731  P(Z > z)
    if m := re.match(r"^\s*([<>])\s*([-+0-9.eEinf]+)", text):
        z = (value - float(m.group(2))) / se
        return tail(z if m.group(1) == ">" else -z)
    if m := re.match(r"^\s*within\s+([-+0-9.eEinf]+)\s*±\s*([-+0-9.eEinf]+)", text):
        t, d = float(m.group(1)), float(m.group(2))
        return max(tail((value - (t - d)) / se), tail(((t + d) - value) / se))
    return exact


def holm(ps: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise error `alpha`."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out = [False] * len(ps)
    for rank, i in enumerate(order):
        if ps[i] > alpha / (len(ps) - rank):
            break
        out[i] = True
    return out


def tallies(views: Iterable[ClaimView]) -> dict[str, dict[str, Any]]:
    """Per basis (empirical, derived, '' unlabelled): the counted claims, their verdicts, how many
    'reproduced' chance alone would give (0.05 per claim judged with an interval), and how many stay
    'reproduced' after Holm's correction over the tally's judged claims."""
    out: dict[str, dict[str, Any]] = {}
    for basis in TALLIES:
        mine = [v for v in views if v.counted and (v.basis or "") == basis]
        if not mine:
            continue
        judged = [v for v in mine if v.judge is not None]
        kept = holm([v.p for v in judged])
        with_interval = sum(v.judge.get("low") is not None for v in judged)
        out[basis] = {"claims": len(mine), "verdicts": Counter(v.judge["verdict"] for v in judged),
                      "not_judged": len(mine) - len(judged), "with_interval": with_interval,
                      "chance": (1 - LEVEL) / 2 * with_interval,
                      "holm": sum(k and v.judge["verdict"] == "reproduced" for k, v in zip(kept, judged)),
                      "holm_keys": {v.key for k, v in zip(kept, judged) if k}}
    return out


def _tally_text(t: dict[str, Any], chance: bool = True) -> str:
    parts = [f"{t['verdicts'][v]} {v}" for v in VERDICT_ORDER if t["verdicts"][v]]
    if t["not_judged"]:
        parts.append(f"{t['not_judged']} {NOT_JUDGED}")
    text = f"{t['claims']} claims: " + (", ".join(parts) or "none judged")
    if chance:
        text += (f" (chance alone would give about {t['chance']:.1f} 'reproduced' among the {t['with_interval']} "
                 f"judged with an interval; after a Holm correction at family-wise 0.05: {t['holm']} reproduced)")
    return text


def counts_line(rows: Iterable[dict[str, Any]]) -> str:
    """The landing page's count (markdown): the tallies of distinct primary paper claims, never added."""
    t = tallies(claim_views(rows))
    if not t:
        return "No claim of the papers judged yet."
    return ("Each claim of the papers is counted once, judged by the largest-scale run that has it. "
            + " ".join(f"**{TALLIES[b]}:** {_tally_text(x)}." for b, x in t.items()))


# ---- the page ---------------------------------------------------------------------------------------------------

def _number(v: Any) -> str:
    return "" if v is None else f"{float(v):.2g}".replace("-", "−")


def _md(text: str) -> str:
    """Plain text made safe inside MyST markdown (no emphasis, roles, links or raw HTML by accident)."""
    return re.sub(r"([\\`*_\[\]{}<>|#])", r"\\\1", " ".join(str(text).split()))


def model_cell(chapter: str, claim_id: str, row: dict[str, Any]) -> str:
    """What a claim was measured on: the run's LLM(s), or what the chapter builds."""
    spec = all_specs().get(chapter)
    if spec is not None and not spec.uses_model:
        return TOY
    if chapter in LLM_CLAIMS and not claim_id.startswith(LLM_CLAIMS[chapter]):
        return next((w for (ch, pre), w in BUILT.items() if ch == chapter and claim_id.startswith(pre)), TOY)
    return row.get("model") or "the chapter's LLM"


def _doc(chapter: str) -> str:
    return all_specs()[chapter].notebook if chapter in all_specs() else ""

def _link(v: ClaimView, text: str, notebooks: Path | None) -> str:
    """`text` linked to the section that measured the claim, else to its chapter's page."""
    target = section_link(_doc(v.chapter).removesuffix(".ipynb"), v.section, notebooks) or _doc(v.chapter)
    return f"[{text}]({target})" if target else text


def _verdicts(v: ClaimView, values: bool) -> list[str]:
    """Each run's verdict ('full, gemma3-270m: <value [interval]>, verdict'), the judging run's in bold."""
    items = []
    for r in v.runs:
        model = model_cell(v.chapter, v.claim_id, r)
        what = r.get("why") or r["verdict"] if not r["judged"] or not values else (
            f"{_number(r['value'])}" + ("" if r.get("low") is None else
                                        f" [{_number(r['low'])}, {_number(r['high'])}]") + f", {r['verdict']}")
        text = _md(r["profile"] + ("" if model == TOY or model in BUILT.values() else f", {model}") + f": {what}")
        items.append(f"**{text}**" if r is v.judge else text)
    return items


def _status(v: ClaimView, holm_keys: set, short: bool) -> str:
    """Counted or not and why; for the summary, the judging run's regime (model, profile, rows)."""
    p = "" if v.p is None else ", one-sided p < 0.0001" if v.p < 1e-4 else f", one-sided p = {v.p:.2g}"
    why = v.why_not.split(":")[0] + (" (see the detail)" if ":" in v.why_not else "") if short else v.why_not
    text = f"counted ({v.basis or 'basis not labelled'}){p}" + (", kept by Holm" if v.key in holm_keys else "") \
        if v.counted else f"not counted: {why}"
    r = v.judge or v.runs[-1]
    if not short:
        return _md(text)
    return _md(f"{text}. Judged by: {model_cell(v.chapter, v.claim_id, r)}, {r['profile']}, {r['units']:,} rows "
               f"({'recorded' if r['recorded'] else 'committed'})")


def _table(widths: str, head: Sequence[str], body: list[list[Any]], cls: str) -> list[str]:
    """A MyST list-table; a cell is a string or a list of strings (a bullet list inside the cell)."""
    out = ["```{list-table}", ":header-rows: 1", f":widths: {widths}", f":class: report-table {cls}", ""]
    for row in [list(head), *body]:
        for j, cell in enumerate(row):
            lead = "* - " if j == 0 else "  - "
            out += ([lead + "- " + cell[0], *("    - " + x for x in cell[1:])] if cell else [lead.rstrip()]) \
                if isinstance(cell, list) else [lead + cell]
    return out + ["```", ""]


def _statement(v: ClaimView) -> str:
    place = place_in_paper(v.source)
    if all_specs()[v.chapter].paper == "B" and v.chapter in PAPER_B_SETTINGS:
        other = "" if re.search(r"Shi|Paper B|^B\b", v.source) or not v.source else v.source
        place = ", ".join(x for x in (PAPER_B_SETTINGS[v.chapter].split(":")[0], place, other) if x)
    return f"{_md(place or v.source or 'general')} ([chapter {int(v.chapter)}]({_doc(v.chapter)}))"


def _summary(views: list[ClaimView], notebooks: Path | None, holm_keys: set) -> list[str]:
    """One row per paper statement (chapter + source) and primary claim: the claim in words, each run's
    verdict, counted or not and the judging run's regime."""
    groups: dict[tuple[str, str], list[ClaimView]] = {}
    for v in views:
        groups.setdefault((v.chapter, v.source), []).append(v)
    body = []
    for group in groups.values():
        heads = [v for v in group if v.role in ("primary", "")] or group[:1]
        others = len(group) - len(heads)
        for v in heads:
            more = f"; {others} supporting view{'s' * (others > 1)} below" if others and v is heads[0] else ""
            claim = _link(v, _md(v.statement or v.claim_id), notebooks) + f" (`{v.claim_id}`{more})"
            body.append([_statement(v), claim, _verdicts(v, values=False), _status(v, holm_keys, short=True)])
    return _table("16 36 24 24", ["Paper statement", "Primary claim", "Verdict by run",
                                  "Counted? Judged by"], body, "report-summary")


def _detail(views: list[ClaimView], notebooks: Path | None, holm_keys: set) -> list[str]:
    """Every claim of a chapter (paper claims first, then ours, then checks) with each run's value."""
    kinds, roles = {"paper": 0, "ours": 1, "check": 2}, {"primary": 0, "": 1, "supporting": 2}
    body = []
    for v in sorted(views, key=lambda v: (kinds.get(v.kind, 3), roles.get(v.role, 3))):
        cell = _link(v, f"`{v.claim_id}`", notebooks) + f": {_md(v.statement or v.source)}"
        if v.kind == "paper" and v.against:
            cell += f"\n\n    *Against it:* {_md(v.against)}"
        kind = _md(" · ".join(x for x in (v.kind or "kind not labelled", v.role, v.basis) if x))
        status = _status(v, holm_keys, short=False) if v.kind == "paper" else _md(v.why_not)
        body.append([cell, f"{kind}: {status}", _verdicts(v, values=True)])
    return _table("46 22 32", ["Claim (linked to the section that measures it)", "Kind",
                               "Value [90% interval], verdict, by run"], body, "report-detail")


INTRO = """# Replication report

Each number was computed when its chapter ran, by its committed run (`ci`: CPU, minutes) or a recorded paper-scale
run (`full`). A paper claim counts once: when it is the *primary* view of a paper statement (a figure, theorem or
section, in one chapter's setting), not forced by how its measure is built, not confounded by design; judged by
the largest-scale run that has it (a recorded run over the committed one; then the `full` profile, the most rows,
the larger model), the others' verdicts beside it (the judging run's in bold), never counted. *Reproduced* / *not
reproduced*: the 90% interval excludes the threshold on one side; *inconclusive*: it contains it; *no effect*: it
lies inside a margin declared before measuring; *not judged at this size*: fewer units than the declared minimum.

## The count

Theory re-derived (a theorem of the paper re-derived, confirmed by Monte Carlo and training) and empirical
replications (measurements that could have come out otherwise) are two tallies, never added.
"""
METHOD = """Chance: were every counted claim false, each one-sided 90% interval would exclude the threshold on the
claimed side with probability 0.05: 0.05 "reproduced" per claim judged with an interval. Holm: one-sided
p-values from each claim's value and 90% interval with a normal approximation, SE = (high − low) / (2 × 1.645)
(a no-effect claim: the larger of its two one-sided p-values; an exact value: p = 0 if reproduced, else 1),
then Holm's step-down correction at family-wise 0.05 within each tally.
"""


def render(rows: list[dict[str, Any]], notebooks: Path | None = None) -> str:
    """The report page as MyST markdown; `notebooks` (the executed chapters) give the sections' anchors."""
    views = claim_views(rows)
    t = tallies(views)
    holm_keys = set().union(*(x["holm_keys"] for x in t.values()))
    lines = [INTRO, *([f"- **{TALLIES[b]}:** {_tally_text(x)}." for b, x in t.items()]
                      or ["No claim of the papers judged."]), "", METHOD]
    for key, title in PAPERS.items():
        mine = [v for v in views if v.kind == "paper" and all_specs()[v.chapter].paper == key]
        if mine:
            lines += [f"## Paper {key}: {title}", ""]
            if key == "B":
                lines += ["Its three settings, and where the smaller model wins (a fact of each chapter's run, in the "
                          "data's own units):", ""] + [f"- {s} (chapter {int(ch)}): {_regime(ch, rows)}" for ch, s in
                                                       PAPER_B_SETTINGS.items()] + [""]
            lines += ["; ".join(f"{TALLIES[b]}: {_tally_text(x, chance=False)}" for b, x in
                                tallies(mine).items()) + "." if tallies(mine) else "No counted claim.", ""]
            lines += _summary(mine, notebooks, holm_keys)
    lines += ["## Detail by chapter", "", "Every claim each chapter declares, with each run's value, 90% interval "
              "and verdict.", ""]
    for number, spec in all_specs().items():
        mine = [v for v in views if v.chapter == number]
        if mine:
            runs = {r["run"]: r for v in mine for r in v.runs}
            lines += [f"### Chapter {int(number)}: {_md(spec.title)}", "",
                      f"[The chapter]({spec.notebook}). Runs: " + "; ".join(_md(
                          f"{r['run']} ({'recorded' if r['recorded'] else 'committed'}, {r['profile']}, "
                          f"{r['model'] or TOY}, {r['units']:,} rows)") for r in runs.values()) + ".", ""]
            lines += _detail(mine, notebooks, holm_keys)
    return "\n".join(lines)
