"""The replication registry: verdicts, atomic results files, the report table (statistics: test_stats.py)."""

from __future__ import annotations

import json

import pytest

from icl_geometry.bookkit import claims, paths, profiles


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.RESULTS_ENV, str(tmp_path))
    return claims.ClaimBook(profiles.resolve("00", device="cpu"))


def test_verdicts(book):
    assert book.record("a", 1.05, expected=1.0, tolerance=0.1).verdict == "reproduced"
    assert book.record("b", 1.5, expected=1.0, tolerance=0.1).verdict == "not reproduced"
    assert book.record("c", 0.2, direction="greater").verdict == "reproduced"
    assert book.record("d", 0.2, direction="less").verdict == "not reproduced"
    assert book.record("e", 0.2, direction="greater", interval=(-0.1, 0.5)).verdict == "inconclusive"
    assert book.record("f", 0.2, direction="greater", interval=(0.1, 0.5)).verdict == "reproduced"
    assert list(book.table().verdict) == ["reproduced", "not reproduced", "reproduced", "not reproduced",
                                          "inconclusive", "reproduced"]


def test_results_file_is_written_and_reported(book, tmp_path):
    book.record("gain", 0.25, direction="greater", paper="A, Fig. 6", note="n=40")
    data = json.loads((tmp_path / "00.json").read_text())
    assert data["chapter"] == "00" and data["config"]["profile"] == "ci"
    assert data["claims"][0]["claim_id"] == "gain"
    report = claims.report_table(tmp_path)
    assert report.loc[0, "verdict"] == "reproduced" and report.loc[0, "model"] == "smollm2-135m"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("kwargs, pattern", [
    ({}, "exactly one"),
    ({"expected": 1.0}, "tolerance"),
    ({"expected": 1.0, "tolerance": 0.1, "direction": "greater"}, "exactly one"),
    ({"direction": "up"}, "direction"),
])
def test_bad_claims_are_refused(book, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        book.record("x", 1.0, **kwargs)


def test_non_finite_values_are_refused(book):
    with pytest.raises(ValueError, match="finite"):
        book.record("x", float("nan"), direction="greater")


@pytest.mark.parametrize("value, sig, expected", [(16916.0, 2, 17000.0), (0.012345, 2, 0.012), (-2.25, 2, -2.2),
                                                  (3.0, 3, 3.0), (0.0, 2, 0.0)])
def test_round_sig_known_values(value, sig, expected):
    assert claims.round_sig(value, sig) == expected


def test_table_with_significant_figures_prints_plain_text(book):
    book.record("tiny", 1.6e-7, expected=0.0, tolerance=1e-3)
    book.record("large", 16916.0, direction="greater")
    book.record("small", 3.6e-5, expected=0.0, tolerance=1e-3)
    values = dict(zip(book.table(sig=2).claim, book.table(sig=2).value))
    assert values == {"tiny": "0", "large": "17000", "small": "3.6e-05"}
    assert book.table(sig=2, floor=0.0).value.iloc[0] == "1.6e-07"


def test_no_effect_needs_a_margin_declared_beforehand(book):
    assert book.record("tight", 0.0, kind="paper", direction="greater", interval=(-0.7, 0.75)).verdict == "inconclusive"
    c = book.record("null", 0.0, kind="paper", direction="greater", interval=(-0.7, 0.75), null_margin=1.0)
    assert c.verdict == "no effect" and c.null_margin == 1.0
    assert (
        book.record("wide", 0.0, kind="paper", direction="greater", interval=(-2, 2), null_margin=1.0).verdict
        == "inconclusive"
    )
    assert (
        book.record("big", 3.0, kind="paper", direction="greater", interval=(2, 4), null_margin=1.0).verdict
        == "reproduced"
    )


def test_claims_of_no_effect(book):
    kw = dict(kind="paper", direction="none", null_margin=0.1)
    assert book.record("a", 0.01, interval=(-0.05, 0.05), **kw).verdict == "reproduced"
    assert book.record("b", 0.5, interval=(0.3, 0.7), **kw).verdict == "not reproduced"
    assert book.record("c", 0.05, interval=(-0.05, 0.2), **kw).verdict == "inconclusive"
    with pytest.raises(ValueError, match="null_margin"):
        book.record("d", 0.0, kind="paper", direction="none", interval=(-1, 1))


def test_kinds_intervals_and_forced_outcomes(book):
    with pytest.raises(ValueError, match="kind"):
        book.record("x", 1.0, kind="replication", direction="greater", interval=(0.5, 1.5))
    with pytest.raises(ValueError, match="interval"):
        book.record("x", 1.0, kind="paper", direction="greater")
    assert (
        book.record("exact", 3.0, kind="paper", direction="greater", exact="a count on fixed data").verdict
        == "reproduced"
    )
    check = book.record("identity", 0.0, kind="check", expected=0.0, tolerance=0.0)
    forced = book.record("capped", -5.0, kind="paper", direction="greater", interval=(-6, -4),
                         forced_by="the absolute reading is capped at 9 keys per head")
    assert not check.counts and not forced.counts and book.claims["exact"].counts
    assert "forced" in book.found().set_index("claim").loc["capped", "verdict"]
    assert book.false_positive_note().startswith("0 paper claims")  # "exact" counts but has no interval to err


def test_facts_are_saved_beside_the_claims(tmp_path):
    import json

    book = claims.ClaimBook(profiles.resolve("00", device="cpu"), path=tmp_path / "04.json")
    book.add_facts(n_base_items=300)
    book.record("x", 1.0, kind="paper", direction="greater", interval=(0.5, 1.5))
    data = json.loads((tmp_path / "04.json").read_text())
    assert data["n_base_items"] == 300 and data["claims"][0]["claim_id"] == "x"
    with pytest.raises(ValueError, match="reserved"):
        book.add_facts(claims=[])
