"""The runner and the book build, end to end on real chapters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icl_geometry.bookkit import runner
from icl_geometry.bookkit.specs import all_specs

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("icl-geometry"))


def test_parse_param():
    assert runner.parse_param("shots=[0, 2]") == ("shots", [0, 2])
    assert runner.parse_param("model=gemma3-270m") == ("model", "gemma3-270m")
    assert runner.parse_param("n_items=8") == ("n_items", 8)
    with pytest.raises(ValueError, match="name=value"):
        runner.parse_param("shots")


def test_unknown_parameter_name_fails_before_a_kernel_starts():
    out = subprocess.run([CLI, "run", "00", "-p", "no_such_knob=1"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "no_such_knob" in out.stderr and "allowed" in out.stderr


def test_list_names_every_chapter():
    out = subprocess.run([CLI, "list"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    for number in all_specs():
        assert f"\n{number}  " in "\n" + out


@pytest.mark.slow
def test_bad_model_fails_in_the_first_cell(tmp_path):
    out = subprocess.run([CLI, "run", "00", "--out", str(tmp_path), "-p", "model=no-such-model"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
    assert "failed in cell" in out.stderr and "'model' = 'no-such-model'" in out.stderr
    assert "smollm2-135m" in out.stderr


@pytest.mark.slow
def test_run_chapter_0_with_overrides_on_gemma(tmp_path, monkeypatch):
    monkeypatch.setenv("ICL_GEOMETRY_RESULTS", str(tmp_path / "results"))
    out = subprocess.run([CLI, "run", "00", "--profile", "ci", "--out", str(tmp_path), "-p", "model=gemma3-270m",
                          "-p", "shots=[0,2]", "-p", "n_items=6", "-p", "family=capitals"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "00_inside_a_small_llm.ipynb").exists()
    data = json.loads((tmp_path / "results" / "00.json").read_text())
    assert data["config"]["model"] == "gemma3-270m" and data["config"]["shots"] == [0, 2]
    # 6 items is below the claims' min_n: the run says "not judged at this size" instead of a verdict
    assert not data["claims"] and set(data["not_judged"]) == {"icl_gain_kmax_vs_0", "random_tokens_no_gain_kmax_vs_0",
                                                             "first_layer_id_rises_with_context"}


# The book build and its checks live in tests/test_rendered_book.py (one build per test session).


def test_recorded_names_follow_the_design():
    assert runner.recorded_name("7", "full", {"models": "smollm2-135m, gemma3-270m"}) == \
        "07_full_smollm2-135m+gemma3-270m"
    assert runner.recorded_name("04", "full", {"model": "meta-llama/Llama-3.2-1B"}) == \
        "04_full_meta-llama__Llama-3.2-1B"
    assert runner.recorded_name("07", "full", {}).startswith("07_full_meta-llama__Llama-3.2-1B+")


def test_record_run_keeps_the_notebook_and_results_under_book_recorded(tmp_path, monkeypatch):
    """The executing step is replaced (executing a chapter is a slow test's job); what is kept, where and under
    which name is checked."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path)

    def fake_run(chapter, profile, device, seed, params, out_dir):
        (out_dir / "results").mkdir(parents=True)
        (out_dir / "results" / "07.json").write_text(json.dumps({"chapter": "07", "claims": []}))
        (out_dir / "07_noisy_demonstrations.ipynb").write_text("{}")
        return out_dir / "07_noisy_demonstrations.ipynb"

    monkeypatch.setattr(runner, "run_chapter", fake_run)
    nb, res = runner.record_run("07", "full", "cpu", 0, {"models": "smollm2-135m,gemma3-270m"})
    assert nb == tmp_path / "book" / "recorded" / "07_full_smollm2-135m+gemma3-270m.ipynb"
    assert json.loads(res.read_text())["chapter"] == "07"
