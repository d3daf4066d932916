"""bookkit.staging and the pages it generates: figure sizes, the glance box's place, placeholders, run times,
per-chapter numbering (fast: no Sphinx build)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from icl_geometry.bookkit import numbering, run_times, staging
from icl_geometry.bookkit.specs import all_specs

ROOT = Path(__file__).resolve().parents[1]


def _png(width_in: float = 3.0, dpi: int = 200) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width_in, 1.0), dpi=dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def test_png_size_reads_pixels_and_density():
    import base64

    raw = _png(3.0, 200)
    width, height, dpi = staging.png_size(raw)
    assert (width, height) == (600, 200) and dpi == pytest.approx(200, abs=0.5)
    assert staging.png_size(base64.b64encode(raw).decode()) == (width, height, dpi)
    assert staging.display_width(raw) == 300  # 3 inches at 100 CSS px per inch: half the pixels at 2x density
    with pytest.raises(ValueError):
        staging.png_size(b"GIF89a" + bytes(30))


def _notebook_with_figure(tmp_path: Path) -> Path:
    import base64

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter 9: a title"), nbformat.v4.new_markdown_cell("Intro."),
                nbformat.v4.new_code_cell("fig, ax = plt.subplots()")]
    png = base64.b64encode(_png(7.0, 200)).decode()
    nb.cells[2].outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
                           nbformat.v4.new_output("display_data", data={"image/png": png},
                                                  metadata={"image/png": {"width": 123}})]
    path = tmp_path / "09_x.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_present_notebook_puts_the_box_after_the_title_and_sizes_figures(tmp_path):
    import nbformat

    source = _notebook_with_figure(tmp_path)
    before = source.read_text()
    staging.present_notebook(source, tmp_path / "out.ipynb", ":::{admonition} At a glance\nbox\n:::")
    assert source.read_text() == before  # the committed notebook is never changed
    nb = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    assert nb.cells[0].source.startswith("# Chapter 9") and nb.cells[1].source.startswith(":::{admonition} At a")
    outputs = nb.cells[3].outputs
    assert outputs[0].metadata["image/png"]["width"] == 700  # 1400 px drawn at 200 dpi: shown at 700 CSS px
    assert outputs[1].metadata["image/png"]["width"] == 123  # a width the chapter set is kept
    assert "hide-input" in nb.cells[3].metadata.get("tags", [])  # a plotting cell is folded


def test_stage_book_writes_generated_pages_and_placeholders(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(staging, "present_notebook", lambda nb, target, box: calls.append((nb, target, box)))
    stage = staging.stage_book(ROOT / "book", tmp_path / "stage")
    toc = yaml.safe_load((stage / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert (stage / f"{f}.md").exists() or f.split("/")[-1] + ".ipynb" in {Path(c[1]).name for c in calls}, f
    assert {"book/glossary", "book/quantization", "book/run_times", "book/report"} <= set(files)
    assert "{glossary}" in (stage / "book" / "glossary.md").read_text()  # {term} roles need the directive
    for name in ("glossary.md", "quantization.md"):  # the authored page when there is one
        if (ROOT / "book" / name).exists():
            assert (stage / "book" / name).read_text() == (ROOT / "book" / name).read_text()
    assert len(calls) == len(all_specs())
    for (_, target, box), spec in zip(calls, all_specs().values()):
        assert target.name == spec.notebook and spec.answer in " ".join(box.split())
        assert " 0 " not in box.replace("\n", " ")  # no "0 sanity checks" lines
    page = (stage / "book" / "run_times.md").read_text()
    assert page.startswith("# Run times") and page.count("\n| 0") == len(all_specs())


def test_run_times_prefers_the_results_then_papermill(tmp_path):
    nb = tmp_path / "a.ipynb"
    nb.write_text(json.dumps({"metadata": {"papermill": {"duration": 125.0}}}))
    assert run_times.timing({"wall_s": 30.0, "machine": "m"}, nb) == ("30 s", "", "m")
    assert run_times.timing({}, nb) == ("2.1 min (papermill)", "", "not recorded")
    assert run_times.timing({}, tmp_path / "none.ipynb") == (run_times.NOT_MEASURED, "", "")
    assert run_times.duration(7371.2) == "2.05 h" and run_times.duration(None) == run_times.NOT_MEASURED


def test_chapter_numbering_restarts_per_chapter():
    assert numbering.chapter_of("book/02_attention_graphs") == 2 and numbering.chapter_of("book/report") is None
    env = SimpleNamespace(toc_fignumbers={
        "book/02_attention_graphs": {"figure": {"fig-a": (7,), "fig-b": (9,)}, "theorem": {"t": (1,)}},
        "book/05_icl": {"figure": {"fig-c": (12,)}},
        "book/glossary": {"figure": {"g": (13,)}},
    })
    numbering.renumber(None, env)
    assert env.toc_fignumbers["book/02_attention_graphs"]["figure"] == {"fig-a": (2, 1), "fig-b": (2, 2)}
    assert env.toc_fignumbers["book/02_attention_graphs"]["theorem"] == {"t": (2, 1)}
    assert env.toc_fignumbers["book/05_icl"]["figure"] == {"fig-c": (5, 1)}
    assert env.toc_fignumbers["book/glossary"]["figure"] == {"g": (1,)}


def test_config_numbers_figures_and_loads_the_extensions():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    assert sphinx["config"]["numfig"] is True
    assert {"sphinx_proof", "icl_geometry.bookkit.numbering"} <= set(sphinx["extra_extensions"])


def test_plotting_draws_at_twice_the_density():
    import matplotlib

    from icl_geometry.bookkit import plotting

    with matplotlib.rc_context():  # the style is restored afterwards (other tests draw at the default)
        plotting.use_style()
        assert matplotlib.rcParams["figure.dpi"] == 200


def test_a_figure_cell_keeps_one_rich_output():
    import nbformat

    nb = nbformat.v4.new_notebook()
    fig = {"mystnb": {"figure": {"caption": "c", "name": "fig-09-x"}, "image": {"alt": "a"}}}
    cell = nbformat.v4.new_code_cell("plot()", metadata=fig)
    cell.outputs = [nbformat.v4.new_output("stream", text="log\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": "AAAA"}),
                    nbformat.v4.new_output("execute_result", data={"text/html": "<table></table>"}, execution_count=1)]
    plain = nbformat.v4.new_code_cell("x")
    plain.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "AAAA"})] * 2
    nb.cells = [cell, plain]
    assert staging.split_figure_cells(nb) == 1
    assert [o.output_type for o in nb.cells[0].outputs] == ["stream", "display_data"]
    assert nb.cells[1].metadata["tags"] == ["remove-input"] and "mystnb" not in nb.cells[1].metadata
    assert [o.output_type for o in nb.cells[1].outputs] == ["execute_result"]
    assert nb.cells[2] is plain and len(plain.outputs) == 2  # cells without a figure are left alone
    nbformat.validate(nb)
