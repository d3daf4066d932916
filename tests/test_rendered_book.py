"""The rendered book as a reader sees it: built once from the committed chapters, then opened offline in
headless Chromium.

For every page: no JavaScript error, every image loaded, every formula typeset by the bundled MathJax (no raw
`\\(`, `\\[` or `$$` in the visible text), no request leaving the machine, nothing wider than the page at 1280 px.
Every internal link (table of contents, citations, cross-references) resolves to an existing file and anchor. On
the replication report, every table fits the text column at 1280 px (nothing wider than its container, no sideways
scrolling) and every deep link reaches a section of its chapter. On every chapter page (issue 29): every table
wraps inside the text column (no element wider than its container, nothing scrolling sideways), every code block
and output `<pre>` sits inside it, no code cell's input `<pre>` scrolls sideways (the chapters' code has 88
columns), an output `<pre>` holds `tables.TEXT_WIDTH` characters, every figure has a numbered caption ("Figure
N.M") and alt text that is not a file name; every {numref}, {ref}, {term}, {doc} and {prf:ref} target resolves. A
screenshot of each page goes to `_build/screens/` (the whole page, plus the first screen as `<page>-top.png`), with
`_build/screens/pages.json` recording what each page showed.

Needs Chromium and its driver from the OS packages (`apt-get install chromium chromium-driver`; `.ci/run`
installs them when missing). Where they are absent the browser test is skipped, saying so; the static
checks (links, bundled MathJax, no remote assets) still run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from icl_geometry.bookkit import runner
from icl_geometry.bookkit.specs import all_specs

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENS = ROOT / "_build" / "screens"
WIDTH, HEIGHT = 1280, 900
LOCAL_SCHEMES = ("file", "data", "blob", "about")


def _toc_pages() -> list[str]:
    """Every page of the book, as a path under _build/html, from _toc.yml (plus the generated ones)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return [f"{f}.html" for f in files] + ["index.html", "genindex.html", "search.html"]


PAGES = _toc_pages()


@pytest.fixture(scope="session")
def built_book() -> tuple[Path, str]:
    """One build of the committed chapters per test session: (the html folder, jupyter-book's log)."""
    log = ROOT / "_build" / "build.log"
    index = runner.build_book(ROOT / "book", log=log)
    return index.parent, log.read_text()


# ---- fast: the build-time presentation rules -------------------------------------------------------------------

def _notebook(*cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        markdown = source.startswith("md:")
        cell = nbformat.v4.new_markdown_cell(source[3:]) if markdown else nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    return nb


def test_fold_rules_hide_set_up_imports_and_plotting_but_not_package_calls():
    nb = _notebook(
        ("md:# Title", []),
        ("profile = 'ci'", ["parameters"]),
        ("# Parameters\nprofile = 'ci'", ["injected-parameters"]),
        ("from icl_geometry.bookkit import profiles, plotting\nfrom icl_geometry.core import partition\n"
         "cfg = profiles.resolve('01')", []),
        ("import numpy as np\nimport pandas as pd", []),
        ("regions = partition.regions_2d(net, box)\nfig, ax = plt.subplots()\nax.plot(regions)", []),
        ("fig, ax = plt.subplots()\nax.plot(x, y, color=plotting.colors(3)[0])", []),
        ("# hide-input\nx = partition.regions_2d(net, box)", []),
        ("def render(w=3):\n    fig, ax = plt.subplots()\nwidgets.explore(render, {'w': 3})", []),
        ("fig, ax = plt.subplots()\nax.plot(x)", ["remove-input"]),
        ("fig, ax = plt.subplots()\nbook.record('c', 1.0)", []),
    )
    changes = {i: (tag, reason) for i, tag, reason in runner.fold_cells(nb)}
    assert changes[2][0] == "remove-cell"                  # papermill's injected parameters
    assert {1, 3, 4, 6, 7} <= set(changes) and all(changes[i][0] == "hide-input" for i in (1, 3, 4, 6, 7))
    assert not {5, 8, 9, 10} & set(changes)                # a package call, an explorer, the author's tag, a claim
    assert nb.cells[9].metadata["tags"] == ["remove-input"]


def test_duplicate_inline_scripts_are_dropped():
    from icl_geometry.bookkit.book_html import dedupe_scripts

    class Script(str):
        def __new__(cls, name, **attributes):
            obj = super().__new__(cls, name)
            obj.filename, obj.attributes = name, attributes
            return obj

    scripts = [Script("a.js"), Script("", body="const X = 1"), Script("b.js"), Script("", body="const X = 1"),
               Script("", body="const Y = 2"), Script("a.js")]
    context = {"script_files": scripts}
    dedupe_scripts(None, "page", "page.html", context, None)
    assert [(s.filename, s.attributes.get("body")) for s in context["script_files"]] == \
        [("a.js", None), ("", "const X = 1"), ("b.js", None), ("", "const Y = 2")]


# ---- static checks of the built site --------------------------------------------------------------------------

@pytest.mark.slow
def test_book_builds_without_broken_references(built_book):
    """Sphinx warnings about references, citations or the toc fail the test; every chapter is in the toc."""
    html, log = built_book
    assert (html / "index.html").exists()
    bad = [line for line in log.splitlines() if "WARNING" in line and any(
        k in line for k in ("reference", "citation", "toctree", "not found", "undefined label", "unknown document"))]
    assert not bad, "\n".join(bad)
    index = (html / "book" / "intro.html").read_text()  # index.html redirects to the root page
    for spec in all_specs().values():
        assert f"{Path(spec.notebook).stem}.html" in index
    chapter0 = (html / "book" / "00_inside_a_small_llm.html").read_text()
    assert chapter0.count("<img") >= 4  # the figures were rendered


def _site_pages(html: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images"}
    return sorted(p for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


@pytest.mark.slow
def test_every_built_page_is_checked_in_the_browser(built_book):
    html, _ = built_book
    built = {p.relative_to(html).as_posix() for p in _site_pages(html)}
    assert built == set(PAGES), f"pages built but not in the browser test: {sorted(built - set(PAGES))}; " \
                                f"listed but not built: {sorted(set(PAGES) - built)}"


@pytest.mark.slow
def test_maths_and_assets_are_bundled(built_book):
    """MathJax is served from _static (sphinx-mathjax-offline), and no page loads a script, style or image remotely."""
    from bs4 import BeautifulSoup

    html, _ = built_book
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert (html / "_static" / "book.css").exists()
    remote = []
    for page in _site_pages(html):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
            for el in soup.find_all(tag):
                url = el.get(attr)
                rel = el.get("rel") or []
                if tag == "link" and "stylesheet" not in rel and "preload" not in rel:
                    continue
                if url and urlsplit(url).scheme in ("http", "https", "ws", "wss") or (url or "").startswith("//"):
                    remote.append(f"{page.relative_to(html)}: <{tag} {attr}={url}>")
    assert not remote, "\n".join(remote)
    chapter5 = (html / "book" / "05_icl_linear_regression.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in chapter5


@pytest.mark.slow
def test_links_resolve(built_book):
    """Every internal link on every page (table of contents, citations, cross-references) reaches a file and,
    where it names one, an anchor; citations reach a bibliography entry."""
    from bs4 import BeautifulSoup

    html, _ = built_book
    anchors: dict[Path, set[str]] = {}
    entries: dict[Path, set[str]] = {}

    def parse(page: Path):
        if page not in anchors:
            soup = BeautifulSoup(page.read_text(), "html.parser")
            anchors[page] = {el.get("id") for el in soup.find_all(id=True)} | \
                            {el.get("name") for el in soup.find_all(attrs={"name": True})}
            entries[page] = {el.get("id") for el in soup.find_all(attrs={"role": "doc-biblioentry"})}
        return anchors[page]

    broken, counts = [], {"toc": 0, "citation": 0}
    for page in _site_pages(html):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        toc_links = {id(a) for nav in soup.select("nav.bd-docs-nav, nav.bd-toc-nav, .bd-sidebar-primary nav")
                     for a in nav.find_all("a")}
        cite_links = {id(a) for span in soup.select("span.bibtex-citation") for a in span.find_all("a")}
        for a in soup.find_all("a", href=True):
            href = a["href"]
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//") or href in ("#", ""):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(html)}: {href}"
            if not target.exists():
                broken.append(f"{where} (no file)")
                continue
            kind = "toc" if id(a) in toc_links else "citation" if id(a) in cite_links else None
            if kind:
                counts[kind] += 1
            if parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target):
                    broken.append(f"{where} (no anchor #{parts.fragment})")
                elif kind == "citation" and unquote(parts.fragment) not in entries[target]:
                    broken.append(f"{where} (not a bibliography entry)")
    assert not broken, "\n".join(broken)
    assert counts["toc"] >= len(all_specs()) and counts["citation"] > 0, counts


# ---- the browser ----------------------------------------------------------------------------------------------

def _chromium() -> tuple[str | None, str | None]:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    system_driver = Path("/usr/bin/chromedriver")
    driver = shutil.which("chromedriver") or (str(system_driver) if system_driver.exists() else None)
    return browser, driver


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through the OS chromedriver, with every non-local URL blocked."""
    binary, driver_path = _chromium()
    if binary is None or driver_path is None:
        pytest.skip("Chromium and chromedriver are not installed, so the rendered book is not opened in a browser: "
                    "`apt-get install chromium chromium-driver` (.ci/run installs them when missing)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (see requirements.lock)")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={WIDTH},{HEIGHT}", "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-extensions", "--disable-sync", "--no-first-run",
                "--disable-features=Translate,OptimizationHints,MediaRouter"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_script_timeout(90)
        driver.set_page_load_timeout(90)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*",
                                                                   "ftp://*"]})
        yield driver
    finally:
        driver.quit()


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax;
if (!mj || !mj.startup || !mj.startup.promise) { done("no MathJax on this page"); return; }
mj.startup.promise.then(() => done("typeset"), (e) => done("MathJax failed: " + e));
"""

WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach((img) => { img.loading = "eager"; });
Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => { img.onload = img.onerror = r; })))
  .then(() => done(imgs.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.src)));
"""

PAGE_FACTS = r"""
const skip = "pre, code, script, style, textarea, mjx-container, mjx-assistive-mml, .MathJax";
const raw = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode, el = node.parentElement;
  if (!el || el.closest(skip) || !el.getClientRects().length) continue;   // display: none (closed dropdowns count)
  const t = node.textContent;
  // TeX delimiters, or a dollar sign: prose has none, so a visible `$` is maths that MyST did not parse
  if (/\\\(|\\\)|\\\[|\\\]|\$|\\begin\{/.test(t)) raw.push(t.trim().slice(0, 160));
}
const maths = Array.from(document.querySelectorAll(".math"));
const article = document.querySelector(".bd-article") || document.body;
const imgs = Array.from(article.querySelectorAll("img")).filter((i) => i.naturalWidth > 0);
return {
  raw_tex: raw,
  maths: maths.length,
  untypeset: maths.filter((m) => !m.querySelector("mjx-container")).map((m) => m.textContent.slice(0, 120)),
  tex_errors: Array.from(document.querySelectorAll("mjx-merror")).map((e) => e.textContent.slice(0, 120)),
  formulas: document.querySelectorAll("mjx-container").length,
  images: document.images.length,
  // a figure shown below 60% of its own size has fonts far smaller than the text (recorded, not asserted)
  image_scales: imgs.map((i) => +(i.getBoundingClientRect().width / i.naturalWidth).toFixed(2)),
  page_width: document.documentElement.scrollWidth,
  article_overflow: article.scrollWidth - article.clientWidth,
  title: document.title,
};
"""


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _screenshot(driver, name: str) -> Path:
    """The first screen as <name>-top.png and the whole page as <name>.png."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENS / f"{name}-top.png"))
    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), 30000)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        time.sleep(0.3)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path = SCREENS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_in_a_browser(built_book, browser, page):
    html, _ = built_book
    path = html / page
    assert path.exists(), f"{page} was not built"
    browser.get_log("browser"), browser.get_log("performance")  # drop what earlier pages left
    browser.get(path.as_uri())
    if page == "index.html":  # a redirect to the root page
        deadline = time.time() + 15
        while not browser.current_url.endswith("intro.html") and time.time() < deadline:
            time.sleep(0.1)
        assert browser.current_url.endswith("book/intro.html"), browser.current_url
    deadline = time.time() + 30
    while browser.execute_script("return document.readyState !== 'complete' || !document.body") \
            and time.time() < deadline:
        time.sleep(0.1)
    mathjax = browser.execute_async_script(WAIT_FOR_MATHJAX)
    broken_images = browser.execute_async_script(WAIT_FOR_IMAGES)
    facts = browser.execute_script(PAGE_FACTS)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", page.removesuffix(".html"))
    shot = _screenshot(browser, name)
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    remote = [u for u in _requests(browser) if urlsplit(u).scheme not in LOCAL_SCHEMES]

    facts.update(page=page, mathjax=mathjax, screenshot=str(shot.relative_to(ROOT)), js_errors=errors,
                 broken_images=broken_images, remote_requests=remote)
    record = SCREENS / "pages.json"
    pages = json.loads(record.read_text()) if record.exists() else {}
    pages[page] = facts
    record.write_text(json.dumps(pages, indent=1, sort_keys=True))

    problems = []
    if errors:
        problems.append(f"JavaScript errors: {errors}")
    if broken_images:
        problems.append(f"images that did not load: {broken_images}")
    if remote:
        problems.append(f"requests leaving the machine: {remote}")
    if facts["maths"] and mathjax != "typeset":
        problems.append(f"maths on the page but MathJax says: {mathjax}")
    if facts["untypeset"] or facts["raw_tex"]:
        problems.append(f"raw TeX left: {(facts['untypeset'] + facts['raw_tex'])[:5]}")
    if facts["tex_errors"]:
        problems.append(f"TeX errors: {facts['tex_errors'][:5]}")
    if facts["page_width"] > WIDTH or facts["article_overflow"] > 1:
        problems.append(f"content wider than the page at {WIDTH} px: page {facts['page_width']} px, "
                        f"article overflow {facts['article_overflow']} px")
    assert not problems, f"{page} (screenshot {shot}):\n" + "\n".join(problems)
    if page == "book/05_icl_linear_regression.html":
        assert facts["formulas"] >= 100, facts["formulas"]  # the maths-heavy chapter really is typeset


# ---- the replication report: readable at 1280 px, deep links to the sections that measured each claim -------

REPORT_FIT = r"""
const article = document.querySelector(".bd-article") || document.body;
const box = article.getBoundingClientRect();
const name = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ?
  "." + el.className.trim().split(/\s+/).join(".") : "") + " '" + (el.textContent || "").trim().slice(0, 60) + "'";
const out = {column: Math.round(box.width), tables: 0, wider: [], scrolling: [],
             page_width: document.documentElement.scrollWidth, window_width: window.innerWidth};
for (const table of article.querySelectorAll("table")) {
  out.tables += 1;
  const t = table.getBoundingClientRect();
  if (t.left < box.left - 1 || t.right > box.right + 1) out.wider.push("table wider than the column: " + name(table));
  // the table and the wrappers the theme puts around it scroll nothing sideways
  for (let el = table; el && el !== article; el = el.parentElement)
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      out.scrolling.push(name(el) + ": " + el.scrollWidth + " > " + el.clientWidth);
  // no element sticks out of its container (cells, links, claim ids, lists)
  for (const el of table.querySelectorAll("*")) {
    const r = el.getBoundingClientRect(), p = el.parentElement.getBoundingClientRect();
    if (r.width > 0 && (r.right > p.right + 1 || r.left < p.left - 1))
      out.wider.push(name(el) + ": " + Math.round(r.width) + " px in " + Math.round(p.width) + " px");
    if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== "inline")
      out.scrolling.push(name(el) + ": " + el.scrollWidth + " > " + el.clientWidth);
  }
}
return out;
"""


@pytest.mark.slow
def test_report_tables_fit_the_column(built_book, browser):
    """Every table of the report page fits the text column at 1280 px: no element wider than its container, no
    horizontal scroll (the summary tables and the per-chapter detail wrap their text)."""
    html, _ = built_book
    browser.set_window_size(WIDTH, HEIGHT)
    browser.get((html / "book" / "report.html").as_uri())
    deadline = time.time() + 30
    while browser.execute_script("return document.readyState !== 'complete'") and time.time() < deadline:
        time.sleep(0.1)
    facts = browser.execute_script(REPORT_FIT)
    summaries = browser.execute_script("return document.querySelectorAll('table.report-summary').length")
    assert summaries == 2, f"one summary table per paper expected, found {summaries}"
    assert facts["tables"] >= summaries + len(all_specs()), facts["tables"]  # and one detail table per chapter
    assert facts["page_width"] <= facts["window_width"], facts
    assert not facts["wider"] and not facts["scrolling"], \
        f"column {facts['column']} px:\n" + "\n".join((facts["wider"] + facts["scrolling"])[:20])
    _screenshot(browser, "report-fit")


@pytest.mark.slow
def test_report_deep_links_reach_the_sections(built_book):
    """The report links each claim to the section of its chapter that measured it (MyST heading anchors): every
    such link names an anchor that exists in the chapter's page, on a section or a heading, and every claim whose
    results name a section gets one."""
    from bs4 import BeautifulSoup

    from icl_geometry.bookkit import report

    html, _ = built_book
    page = html / "book" / "report.html"
    soup = BeautifulSoup(page.read_text(), "html.parser")
    chapters = {f"{Path(s.notebook).stem}.html" for s in all_specs().values()}
    deep, broken, parsed = set(), [], {}
    for a in soup.select(".bd-article a[href]"):
        parts = urlsplit(a["href"])
        if parts.scheme or Path(parts.path).name not in chapters or not parts.fragment:
            continue
        deep.add(a["href"])
        if parts.path not in parsed:  # each chapter page parsed once (about 2 s each; a link per claim)
            parsed[parts.path] = BeautifulSoup((page.parent / unquote(parts.path)).read_text(), "html.parser")
        el = parsed[parts.path].find(id=unquote(parts.fragment))
        if el is None:
            broken.append(f"{a['href']}: no such anchor")
        elif el.name != "section" and not re.fullmatch(r"h[1-6]", el.name):
            broken.append(f"{a['href']}: anchor on a <{el.name}>, not a section")
    assert not broken, "\n".join(broken)
    rows = report.load_rows(ROOT / "book" / "results", ROOT / "book" / "recorded")
    linked = {f"{Path(all_specs()[v.chapter].notebook).stem}.html" for v in report.claim_views(rows)
              if report.section_link(Path(all_specs()[v.chapter].notebook).stem, v.section, ROOT / "book")}
    assert linked <= {Path(urlsplit(h).path).name for h in deep}, sorted(linked)


# ---- chapter pages as a reader needs them (issue 29): tables and code inside the column, numbered figures ------

CHAPTERS = [f"book/{Path(s.notebook).stem}.html" for s in all_specs().values()]
HASHED = re.compile(r"^(?:[0-9a-f]{16,}|.*\.(?:png|svg|jpe?g))$", re.I)

CHAPTER_FIT = r"""
const article = document.querySelector(".bd-article") || document.body;
const box = article.getBoundingClientRect();
const name = (el) => el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ?
  "." + el.className.trim().split(/\s+/).join(".") : "") + " '" + (el.textContent || "").trim().slice(0, 50) + "'";
const outside = (r, p) => r.width > 0 && (r.right > p.right + 1 || r.left < p.left - 1);
const out = {tables: 0, pres: 0, figures: 0, images: 0, wider: [], scrolling: [], pre_scrolling: 0,
             unnumbered: [], bad_alt: [], chars: null};
for (const table of article.querySelectorAll("table")) {
  out.tables += 1;
  if (outside(table.getBoundingClientRect(), box)) out.wider.push("table wider than the column: " + name(table));
  for (let el = table; el && el !== article; el = el.parentElement)   // tables wrap: nothing scrolls sideways
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      out.scrolling.push(name(el) + ": " + el.scrollWidth + " > " + el.clientWidth);
  for (const el of table.querySelectorAll("*")) {
    if (el.closest("mjx-assistive-mml")) continue;   // MathJax's hidden copy for screen readers, clipped
    if (outside(el.getBoundingClientRect(), el.parentElement.getBoundingClientRect()))
      out.wider.push(name(el) + " sticks out of its cell");
  }
}
for (const pre of article.querySelectorAll("pre")) {          // code blocks and printed output
  out.pres += 1;
  if (!pre.getClientRects().length) continue;                  // inside a closed dropdown
  const r = pre.getBoundingClientRect();
  if (outside(r, box)) out.wider.push("pre wider than the column: " + name(pre));
  if (outside(r, pre.parentElement.getBoundingClientRect())) out.wider.push("pre wider than its box: " + name(pre));
  if (pre.scrollWidth > pre.clientWidth + 1) {
    out.pre_scrolling += 1;
    // printed output wraps at the column (book.css: pre-wrap), so an output <pre> never scrolls sideways
    if (pre.closest("div.cell_output")) out.scrolling.push("printed output scrolls sideways: " + name(pre));
  }
}
const pre = article.querySelector("div.cell_output pre");
if (pre) {   // how many characters of an output <pre> fit the column (tables.TEXT_WIDTH must stay below)
  const s = document.createElement("span"); s.textContent = "x".repeat(200); pre.appendChild(s);
  const cw = s.getBoundingClientRect().width / 200; s.remove();
  const st = getComputedStyle(pre);
  out.chars = (pre.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight)) / cw;
}
for (const img of article.querySelectorAll("img")) {
  out.images += 1;
  const fig = img.closest("figure");
  const number = fig && fig.querySelector("figcaption .caption-number");
  if (!number || !/^Figure \d+(\.\d+)?/.test(number.textContent.trim()))
    out.unnumbered.push(img.getAttribute("src").split("/").pop().slice(0, 20));
  else out.figures += 1;
  out.bad_alt.push([img.getAttribute("src").split("/").pop().slice(0, 20), (img.getAttribute("alt") || "").trim()]);
}
return out;
"""


CODE_FIT = r"""
// Every code cell's input, folded ones included (their <details> opened first): does its <pre> scroll sideways?
const article = document.querySelector(".bd-article") || document.body;
for (const d of article.querySelectorAll("details"))
  if (d.querySelector("div.cell_input")) d.open = true;
const cells = Array.from(article.querySelectorAll("div.cell"));
const out = {inputs: 0, scrolling: []};
for (const pre of article.querySelectorAll("div.cell_input pre")) {
  if (!pre.getClientRects().length) continue;
  out.inputs += 1;
  if (pre.scrollWidth > pre.clientWidth + 1) {
    const lines = pre.textContent.split("\n");
    out.scrolling.push({cell: cells.indexOf(pre.closest("div.cell")) + 1, width: pre.scrollWidth, box: pre.clientWidth,
                        first: lines[0], longest: lines.reduce((a, b) => (b.length > a.length ? b : a), "")});
  }
}
return out;
"""


@pytest.mark.slow
@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_page_fits_and_numbers_its_figures(built_book, browser, page):
    """At 1280 px every table of a chapter wraps inside the text column (nothing wider than its container,
    nothing scrolling sideways), every code block and output <pre> sits inside it, an output <pre> holds
    `tables.TEXT_WIDTH` characters, no code cell's input scrolls sideways (folded ones opened: the chapters' code
    is formatted at 88 columns, book/ruff.toml, and book.css fits about 92), and every figure has a numbered
    caption ("Figure N.M") and alt text that is not a file name. Printed output wraps at the column (book.css), so
    it never scrolls sideways either."""
    from icl_geometry.bookkit import tables

    html, _ = built_book
    browser.set_window_size(WIDTH, HEIGHT)
    browser.get((html / page).as_uri())
    deadline = time.time() + 30
    while browser.execute_script("return document.readyState !== 'complete'") and time.time() < deadline:
        time.sleep(0.1)
    browser.execute_async_script(WAIT_FOR_IMAGES)
    facts = browser.execute_script(CHAPTER_FIT)
    code = browser.execute_script(CODE_FIT)   # after CHAPTER_FIT: it opens the folded inputs
    facts.update(code_inputs=code["inputs"], code_scrolling=code["scrolling"])
    bad_alt = [src for src, alt in facts.pop("bad_alt") if not alt or HASHED.match(alt)]
    record = SCREENS / "chapters.json"
    SCREENS.mkdir(parents=True, exist_ok=True)
    seen = json.loads(record.read_text()) if record.exists() else {}
    seen[page] = {**facts, "bad_alt": bad_alt}
    record.write_text(json.dumps(seen, indent=1, sort_keys=True))
    problems = []
    if facts["wider"] or facts["scrolling"]:
        problems.append("wider than the column or scrolling sideways:\n  "
                        + "\n  ".join((facts["wider"] + facts["scrolling"])[:12]))
    if code["scrolling"]:
        problems.append(f"{len(code['scrolling'])} of {code['inputs']} code cells scroll sideways at {WIDTH} px:\n  "
                        + "\n  ".join(f"code cell {c['cell']} ({c['width']} > {c['box']} px), first line "
                                       f"{c['first']!r}, longest {c['longest']!r}" for c in code["scrolling"][:8]))
    if facts["chars"] is not None and facts["chars"] < tables.TEXT_WIDTH:
        problems.append(f"an output <pre> holds {facts['chars']:.1f} characters < tables.TEXT_WIDTH")
    if facts["unnumbered"]:
        problems.append(f"{len(facts['unnumbered'])} of {facts['images']} figures without a numbered caption: "
                        f"{facts['unnumbered'][:6]}")
    if bad_alt:
        problems.append(f"{len(bad_alt)} figures without alt text (or a file name as alt): {bad_alt[:6]}")
    assert not problems, f"{page}:\n" + "\n".join(problems)


@pytest.mark.slow
def test_cross_references_resolve(built_book):
    """Every {numref}, {ref}, {term}, {doc} and {prf:ref} target resolves: Sphinx warns about none, and no page
    shows a cross-reference left as plain text (an `xref` outside a link)."""
    from bs4 import BeautifulSoup

    html, log = built_book
    keys = ("undefined label", "term not in glossary", "unknown document", "Failed to create a cross reference",
            "numfig is disabled", "no number is assigned", "reference target not found", "prf:ref")
    bad = [line for line in log.splitlines() if "WARNING" in line and any(k in line for k in keys)]
    unresolved = []
    for page in _site_pages(html):
        soup = BeautifulSoup(page.read_text(), "html.parser")
        for el in soup.select(".bd-article .xref, .bd-article .std-numref, .bd-article .std-term"):
            if el.find_parent("a") is None:
                unresolved.append(f"{page.relative_to(html)}: {el.get_text()[:60]!r}")
    assert not bad and not unresolved, "\n".join(bad + unresolved[:30])
