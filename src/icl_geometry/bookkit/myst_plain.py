"""MyST turned into plain Markdown that Jupyter renders (the course copies are read in Jupyter, not Sphinx).

    ctx = MystContext.build({"01_partition_geometry": nb, ...}, bib=Path("references.bib"))
    plain = to_plain(markdown, ctx)

Roles:
  {cite}`a,b` (and {cite:p})      -> "(Cosentino & Shekkizhar 2024; Shi et al. 2024)" from references.bib; an
                                     unknown key -> "[key]"; {cite:t} -> "Cosentino & Shekkizhar (2024)"
  {doc}`text <target>`            -> text, a relative link `[text](NN_topic.ipynb)` when the target is a chapter
  {ref} {term}                    -> their text (explicit, else the target's heading or title)
  {numref} {prf:ref}              -> their text, else "Figure 2.3" / "Theorem 2.1": numbered per chapter and kind
                                     as the book numbers them (bookkit.numbering); "%s" in a numref's text too
  {math}`x`                       -> $x$; any other role -> its text
Fences (``` or :::, nested ones included; their :option: lines dropped):
  admonitions ({note}, {tip}, {admonition} Title, {dropdown} Title, ...) -> a blockquote with a bold title;
  {prf:theorem}, {prf:definition}, ... -> a bold-titled paragraph; {prf:proof} -> "*Proof.* ... ∎";
  {math} -> $$ ... $$; {figure} -> an image and an italic caption; {glossary} -> bold terms; others -> a bold
  title and their body.
MyST targets, `(label)=` lines, are removed. Plain code fences (```python) and inline code are left as they are.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIRECTIVE_OPEN = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[A-Za-z0-9_:+-]+)\}[ \t]*(?P<title>.*?)[ \t]*$")
TARGET = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$")
CODE_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})")
OPTION = re.compile(r"^[ \t]*:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
# A role or an inline code span, whichever starts first: roles inside inline code are left alone.
ROLE_OR_CODE = re.compile(r"\{(?P<name>[A-Za-z][\w:+-]*)\}`(?P<body>[^`]*)`|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)")
TEXT_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)

ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
               "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error",
               "seealso": "See also", "admonition": "", "dropdown": "", "sidebar": "", "margin": "", "topic": "",
               "epigraph": "", "pull-quote": "", "highlights": "", "card": ""}
DROPPED = {"bibliography", "tableofcontents", "toctree", "contents", "raw", "only"}
CODE_DIRECTIVES = {"code", "code-block", "sourcecode", "code-cell"}
PROOF_PREFIX = "prf:"


def closes(line: str, fence: str) -> bool:
    """Whether `line` closes a fence opened with `fence` (same character, at least as long)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def closing_line(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the fence opened at `start` (the last line when it is never closed)."""
    return next((j for j in range(start + 1, len(lines)) if closes(lines[j], fence)), len(lines) - 1)


# ---- references.bib -> "Author Year" ---------------------------------------------------------------------------


def _braced(text: str, start: int) -> tuple[str, int]:
    """The text inside the braces opening at `start` (nested braces kept) and the index after them."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i], i + 1
    return text[start + 1:], len(text)


def _field(entry: str, name: str) -> str:
    m = re.search(rf"(?i)(?<![\w-]){name}\s*=\s*", entry)
    if not m:
        return ""
    rest = entry[m.end():]
    if rest.startswith("{"):
        value, _ = _braced(rest, 0)
    else:
        value = re.match(r'"?([^",\n]*)', rest).group(1)
    return " ".join(value.split())


def _surname(person: str) -> str:
    person = person.strip()
    if person.startswith("{") and person.endswith("}"):
        return person[1:-1]  # an organisation: {Gemma Team}
    if "," in person:
        return person.split(",")[0].strip().strip("{}")
    return person.split()[-1].strip("{}") if person.split() else person


def author_year(entry: str) -> tuple[str, str]:
    """('Cosentino & Shekkizhar', '2024') from one BibTeX entry's text."""
    people = [p for p in re.split(r"\s+and\s+", _field(entry, "author")) if p.strip()]
    names = [_surname(p) for p in people]
    if not names:
        who = _field(entry, "title").strip("{}") or "?"
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2 and names[1] != "others":
        who = f"{names[0]} & {names[1]}"
    else:
        who = f"{names[0]} et al."
    return latex_text(who), _field(entry, "year").strip("{}") or "n.d."


ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "c": "\u0327", "v": "\u030c"}


def latex_text(text: str) -> str:
    """BibTeX's accents and braces as plain text: Mont{\\'u}far -> Montúfar."""
    text = re.sub(r"\\([`'^\"~cv])\{?([A-Za-z])\}?", lambda m: m.group(2) + ACCENTS[m.group(1)], text)
    return unicodedata.normalize("NFC", text.replace("{", "").replace("}", ""))


def read_bib(path: Path | None) -> dict[str, tuple[str, str]]:
    """key -> (authors, year) for every entry of a BibTeX file (empty when there is none)."""
    if path is None or not Path(path).exists():
        return {}
    text = Path(path).read_text()
    out: dict[str, tuple[str, str]] = {}
    for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,", text):
        body, _ = _braced(text, text.index("{", m.start()))
        out[m.group(1)] = author_year(body)
    return out


# ---- what roles point at ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """A MyST target: the heading or directive it names, in which chapter, its kind and number there."""

    text: str
    doc: str = ""
    kind: str = "section"
    number: str = ""  # "2.3": the chapter's number and the order of its kind there, as the book numbers them


@dataclass
class MystContext:
    bib: dict[str, tuple[str, str]] = field(default_factory=dict)
    chapters: dict[str, str] = field(default_factory=dict)  # document stem -> its title (the first heading)
    pages: dict[str, str] = field(default_factory=dict)  # prose page stem -> its title (a .md beside the copies)
    elsewhere: dict[str, str] = field(default_factory=dict)  # pages not copied (generated ones) -> words for them
    labels: dict[str, Label] = field(default_factory=dict)

    @classmethod
    def build(cls, notebooks: dict[str, Any], pages: dict[str, str] | None = None,
              bib: Path | None = None) -> "MystContext":
        """From chapter notebooks (document stem -> notebook), prose pages (stem -> text) and a BibTeX file."""
        ctx = cls(bib=read_bib(bib))
        for stem, text in (pages or {}).items():
            ctx.pages[stem] = _title(text, stem)
            ctx.labels.update(index_labels(text, stem))
        for stem, nb in notebooks.items():
            ctx.chapters[stem] = _title("\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown"), stem)
            counts: dict[str, int] = {}
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    ctx.labels.update(index_labels(cell.source, stem, counts))
                elif figure_of(cell):
                    name, caption = figure_of(cell)
                    counts["figure"] = counts.get("figure", 0) + 1
                    ctx.labels[name] = Label(caption, stem, "figure", numbered(stem, counts["figure"]))
        return ctx


def _title(markdown: str, default: str) -> str:
    heading = re.search(r"(?m)^#\s+(.+)$", markdown)
    return heading.group(1).strip() if heading else default


def figure_of(cell: Any) -> tuple[str, str] | None:
    """(name, caption) of a code cell whose figure myst-nb captions (`metadata.mystnb.figure`), else None."""
    figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}) if cell.cell_type == "code" else {}
    return (figure.get("name", ""), figure.get("caption", "")) if figure.get("name") else None


def index_labels(markdown: str, doc: str = "", counts: dict[str, int] | None = None) -> dict[str, Label]:
    """Every `(label)=` target (named by the heading or directive after it) and every directive with a
    `:label:` or `:name:` option, numbered by kind in order of appearance."""
    lines = markdown.split("\n")
    labels: dict[str, Label] = {}
    counts = {} if counts is None else counts
    for i, line in enumerate(lines):
        target = TARGET.match(line)
        if target:
            nxt = next((x for x in lines[i + 1:] if x.strip()), "")
            heading = re.match(r"^#+\s+(.+)$", nxt.strip())
            opened = DIRECTIVE_OPEN.match(nxt)
            if heading:
                labels[target.group("label")] = Label(heading.group(1).strip(), doc)
            elif opened:
                labels[target.group("label")] = _directive_label(opened, counts, doc)
            else:
                labels[target.group("label")] = Label(target.group("label"), doc)
            continue
        opened = DIRECTIVE_OPEN.match(line)
        if opened:
            end = closing_line(lines, i, opened.group("fence"))
            options = dict((m.group("key"), m.group("value").strip())
                           for m in map(OPTION.match, lines[i + 1:end]) if m)
            name = options.get("label") or options.get("name")
            if name:
                labels[name] = _directive_label(opened, counts, doc)
    return labels


def _directive_label(opened: re.Match, counts: dict[str, int], doc: str) -> Label:
    kind = opened.group("name").lower().removeprefix(PROOF_PREFIX)
    kind = {"glue:figure": "figure", "list-table": "table", "math": "equation"}.get(kind, kind)
    counts[kind] = counts.get(kind, 0) + 1
    return Label(opened.group("title").strip() or kind.capitalize(), doc, kind, numbered(doc, counts[kind]))


def numbered(doc: str, k: int) -> str:
    """'2.3' for the third of its kind in `02_attention_graphs` (bookkit.numbering: per chapter, its number
    first); '3' on a page without a chapter number."""
    m = re.match(r"^(\d\d)_", Path(doc).name)
    return f"{int(m.group(1))}.{k}" if m else str(k)


# ---- roles -----------------------------------------------------------------------------------------------------


def _text_and_target(body: str) -> tuple[str, str]:
    m = TEXT_TARGET.match(body.strip())
    return (m.group("text").strip(), m.group("target").strip()) if m else ("", body.strip())


def _doc_stem(target: str) -> str:
    return Path(target.split("#")[0]).with_suffix("").name if target.split("#")[0] else ""


def _cite(keys: str, variant: str, ctx: MystContext) -> str:
    found = [(k.strip(), ctx.bib.get(k.strip())) for k in keys.split(",") if k.strip()]
    if variant in ("t", "ts", "alt", "alts"):
        return ", ".join(f"{v[0]} ({v[1]})" if v else f"[{k}]" for k, v in found)
    if variant == "author":
        return ", ".join(v[0] if v else f"[{k}]" for k, v in found)
    if variant == "year":
        return ", ".join(v[1] if v else f"[{k}]" for k, v in found)
    known = [f"{v[0]} {v[1]}" for _, v in found if v]
    unknown = [f"[{k}]" for k, v in found if not v]
    return " ".join(([f"({'; '.join(known)})"] if known else []) + unknown)


def _labelled(body: str, ctx: MystContext, with_number: bool = False) -> str:
    text, target = _text_and_target(body)
    label = ctx.labels.get(target)
    if text:
        if "%s" in text or "{number}" in text:
            number = label.number if label else ""
            text = re.sub(r"\s+", " ", text.replace("%s", number).replace("{number}", number)).strip()
        return text
    if label is None:
        return target
    if with_number and label.number:
        return f"{label.kind.capitalize()} {label.number}"
    return label.text


def role(name: str, body: str, ctx: MystContext) -> str:
    """Plain Markdown for one MyST role."""
    name = name.lower()
    if name == "cite" or name.startswith("cite:"):
        return _cite(body, name.partition(":")[2], ctx)
    if name == "math":
        return f"${body}$"
    if name == "doc":
        text, target = _text_and_target(body)
        stem = _doc_stem(target)
        if stem in ctx.chapters:
            return f"[{text or ctx.chapters[stem]}]({stem}.ipynb)"
        if stem in ctx.pages:
            return f"[{text or ctx.pages[stem]}]({stem}.md)"
        return text or ctx.elsewhere.get(stem, target)
    if name in ("ref", "prf:ref", "term", "numref", "eq", "download", "any", "external"):
        if name == "eq" and body.strip() in ctx.labels:
            return f"({ctx.labels[body.strip()].number})"
        return _labelled(body, ctx, with_number=name in ("numref", "prf:ref"))
    if name == "abbr":
        return re.sub(r"\s*\(.*\)\s*$", "", body)
    if name in ("sub", "sup", "kbd"):
        return f"<{name}>{body}</{name}>"
    text, target = _text_and_target(body)
    return text or target


def roles_to_plain(line: str, ctx: MystContext) -> str:
    def one(m: re.Match) -> str:
        return m.group(0) if m.group("ticks") else role(m.group("name"), m.group("body"), ctx)

    return ROLE_OR_CODE.sub(one, line)


# ---- fences ----------------------------------------------------------------------------------------------------


def split_options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive's `:key: value` lines (or a `---` YAML block) at its start, and the rest of its body."""
    options: dict[str, str] = {}
    i = 0
    if body and body[0].strip() == "---":
        end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), None)
        if end is not None:
            for line in body[1:end]:
                key, _, value = line.partition(":")
                options[key.strip()] = value.strip()
            i = end + 1
    while i < len(body) and OPTION.match(body[i]):
        m = OPTION.match(body[i])
        options[m.group("key")] = m.group("value").strip()
        i += 1
    return options, body[i:]


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _quote(title: str, body: list[str]) -> list[str]:
    head = [f"> **{title}**"] if title else []
    if head and body:
        head.append(">")
    return head + [f"> {line}" if line.strip() else ">" for line in body]


def _glossary(body: list[str]) -> list[str]:
    out: list[str] = []
    for line in body:
        if line.strip() and not line[:1].isspace():
            out += (["", f"**{line.strip()}**:"] if out else [f"**{line.strip()}**:"])
        elif line.strip():
            out[-1] += " " + line.strip()
    return out


def directive(name: str, title: str, options: dict[str, str], body: list[str], ctx: MystContext) -> list[str]:
    """Plain Markdown lines for one directive whose body is already plain."""
    low = name.lower()
    title = roles_to_plain(title, ctx)
    body = _trim(body)
    if low in DROPPED:
        return []
    if low in ADMONITIONS:
        return _quote(title or ADMONITIONS[low] or low.capitalize(), body)
    if low.startswith(PROOF_PREFIX):
        kind = low.removeprefix(PROOF_PREFIX)
        if kind == "proof":
            return ["*Proof.*", *body, "", "∎"] if body else ["*Proof.* ∎"]
        label = ctx.labels.get(options.get("label", ""))
        number = f" {label.number}" if label and label.number and label.kind == kind else ""
        head = kind.capitalize() + number + (f" ({title})" if title else "")
        return [f"**{head}.**", *body]
    if low == "math":
        return ["$$", *body, "$$"]
    if low in CODE_DIRECTIVES:
        return [f"```{title}", *body, "```"]
    if low in ("figure", "image"):
        caption = " ".join(line.strip() for line in body if line.strip())
        alt = options.get("alt", caption) or Path(title).stem
        return [f"![{alt}]({title})"] + (["", f"*{caption}*"] if caption and low == "figure" else [])
    if low.startswith("glue"):
        return [f"*{' '.join(line.strip() for line in body if line.strip())}*"] if body else []
    if low == "glossary":
        return _glossary(body)
    head = title or low.capitalize()
    return [f"**{head}**", "", *body] if body else [f"**{head}**"]


def to_plain(markdown: str, ctx: MystContext | None = None) -> str:
    """The same text with every MyST role, fence and target turned into plain Markdown (see the module doc)."""
    ctx = ctx or MystContext()
    lines = markdown.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if TARGET.match(line):
            i += 1
            continue
        opened = DIRECTIVE_OPEN.match(line)
        if opened:
            end = closing_line(lines, i, opened.group("fence"))
            closed = end > i and closes(lines[end], opened.group("fence"))
            raw = lines[i + 1:end] if closed else lines[i + 1:]
            indent = opened.group("indent")
            raw = [x[len(indent):] if x.startswith(indent) else x.lstrip() for x in raw]
            options, body = split_options(raw)
            inner = to_plain("\n".join(body), ctx).split("\n") if body else []
            plain = directive(opened.group("name"), opened.group("title"), options, inner, ctx)
            out += [indent + x if x else x for x in plain]
            i = end + 1
            continue
        code = CODE_FENCE.match(line)
        if code:
            end = closing_line(lines, i, code.group("fence"))
            out += lines[i:end + 1]
            i = end + 1
            continue
        out.append(roles_to_plain(line, ctx))
        i += 1
    return "\n".join(out)
