"""Chapter 7's experiment on the engine (fast: tiny random checkpoints) and its statistics (synthetic)."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
import torch


from icl_geometry import tasks
from icl_geometry.llm import engine, lm
from icl_geometry.experiments import base
from icl_geometry.experiments import noisy_demonstrations as nd

# The tiny tokenizer knows few words: a family whose label words and inputs are in its vocabulary.
TINY = tasks.DemoFamily("tiny", "numbers 0-19, even or odd", ("yes", "no"),
                        (tuple(str(i) for i in range(0, 20, 2)), tuple(str(i) for i in range(1, 20, 2))))


def test_conditions_and_models():
    assert nd.conditions((0, 0.5, 1), (0.5,)) == [("clean", 0.0), ("label", 0.5), ("label", 1.0), ("input", 0.5)]
    with pytest.raises(ValueError, match="label noise rate"):
        nd.conditions((1.5,), ())
    assert lm.parse_models("smollm2-135m, org/model") == ["smollm2-135m", "org/model"]
    with pytest.raises(ValueError, match="Parameter 'models'"):
        lm.parse_models("smollm2-135m,not a model")
    with pytest.raises(ValueError, match="at least one"):
        lm.parse_models(" , ")


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_last_logits_only_matches_full_trace(tiny_models, arch):
    loaded = tiny_models[arch]
    prompts = ["Input: cat\nLabel: animal\n\nInput: dog\nLabel:", "Input: bread\nLabel:"]
    full = engine.trace_batch(loaded, prompts)
    last = engine.trace_batch(loaded, prompts, last_logits_only=True)
    for a, b in zip(full, last):
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.attention_rows, b.attention_rows) and torch.equal(a.mlp_inputs, b.mlp_inputs)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_label_logprobs_equal_score_choices(tiny_models, arch, monkeypatch):
    loaded = tiny_models[arch]
    monkeypatch.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny", TINY)
    test, pool = tasks.split("tiny", 3, 8)
    prompts = [tasks.format_classification_prompt(loaded, "tiny", tasks.choose_examples(pool, 4, 0, i), q, chat=False)
               for i, q in enumerate(test)]
    traces, _ = tasks.trace_all(loaded, [p.text for p in prompts])
    fast = tasks.label_logprobs(loaded, prompts, [t.logits for t in traces])
    slow = tasks.label_logprobs(loaded, prompts)  # engine.score_choices
    np.testing.assert_allclose(fast, slow, atol=1e-4)


def test_attention_mass_sums_to_one():
    rng = np.random.default_rng(0)
    rows = rng.random((3, 2, 10))
    rows /= rows.sum(-1, keepdims=True)
    groups = np.array([2, 1, 1, 0, 2, 1, 0, 2, 2, 2])
    m = nd.attention_mass(rows, groups)
    assert m.shape == (3, 3)
    np.testing.assert_allclose(m.sum(-1), 1)
    np.testing.assert_allclose(m[:, 0], rows.mean(1)[:, [3, 6]].sum(-1))


@pytest.fixture(scope="module")
def tiny_run(tiny_models):
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny", TINY)
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny_foobar", TINY)
        yield nd.run_experiment(tiny_models["llama"], ["tiny", "tiny_foobar"], 6, 8, 4, (0.5, 1.0), (1.0,),
                                seed=0, batch_size=5, batch_tokens=400)


def test_run_experiment_shapes_and_bookkeeping(tiny_run, tiny_models):
    run, loaded = tiny_run, tiny_models["llama"]
    n = 12 * 4
    assert len(run.rows) == n and run.rows.item.nunique() == 12
    assert run.attention_mass.shape == (n, loaded.n_layers, 3) and run.mlp.shape[:2] == (n, loaded.n_layers)
    np.testing.assert_allclose(run.attention_mass.sum(-1), 1, atol=1e-5)
    assert (run.attention_mass[..., 0] > 0).all() and (run.attention_mass[..., 1] > 0).all()
    assert run.id_sum.shape == run.id_head.shape == (n, loaded.n_layers)
    r = run.rows
    assert (r.follows_flipped == ~r.correct).all()  # two labels
    assert np.allclose(r.margin > 0, r.correct)
    assert list(run.select("label", 1.0)) == list(range(2, n, 4))
    # the same queries in every condition, demonstrations differing only by the corruption
    assert (r.text.to_numpy()[run.select("clean", 0)] == r.text.to_numpy()[run.select("input", 1.0)]).all()
    # batching does not change a prompt's result
    assert np.abs(r.margin).min() > 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny", TINY)
        one = nd.run_experiment(loaded, ["tiny"], 6, 8, 4, (0.5, 1.0), (1.0,), seed=0, batch_size=1)
    np.testing.assert_allclose(one.logprobs, run.logprobs[:24], atol=1e-4)
    with pytest.raises(ValueError, match="same token"):
        tasks.label_logprobs(
            loaded,
            [tasks.format_classification_prompt(loaded, "category", [], tasks.split("category", 1, 2)[0][0])],
            [one.logprobs[0]],
        )


def test_statistics_on_the_tiny_run(tiny_run):
    curve = nd.accuracy_curve(tiny_run, "label", (0, 0.5, 1.0), n_boot=50)
    assert list(curve.rate) == [0, 0.5, 1.0] and (curve.ci_low <= curve.accuracy).all()
    assert (curve.accuracy <= curve.ci_high).all() and (curve.n == 12).all()
    s = nd.noise_slope(tiny_run, "label", (0, 0.5, 1.0), n_boot=50)
    c = tiny_run.correct_matrix("label", (0, 0.5, 1.0)).mean(0)
    assert s.value == pytest.approx(np.polyfit([0, 0.5, 1.0], c, 1)[0])
    diff, (lo, hi) = nd.paired_difference(s, s)
    assert diff == 0 and lo == hi == 0
    f = nd.following_rate(tiny_run, 1.0, n_boot=50)
    assert f.value == pytest.approx(1 - c[-1])
    prof = nd.mass_profile(tiny_run, [("clean", 0.0), ("label", 1.0)])
    assert np.allclose(prof.groupby(["condition", "layer"]).mass.sum(), 1, atol=1e-5)
    geo = nd.geometry_change(tiny_run, "label", 1.0, n_boot=50)
    assert set(geo.reading) == {"sum", "per_head"} and np.allclose(geo.change, geo.noisy - geo.clean)
    tw = nd.twonn_profile(tiny_run, [("clean", 0.0)], layers=[0], n_boot=20)
    assert len(tw) == 1 and np.isfinite(tw.twonn).all()
    rho, (lo, hi), per_model = nd.distraction_correlation([tiny_run, tiny_run], "label", 1.0, n_boot=50)
    assert len(per_model) == 2 and (np.isnan(rho) or -1 <= lo <= hi <= 1)
    nd.same_queries(tiny_run, tiny_run)


def _fake_run(correct_by_rate: np.ndarray, rates=(0, 0.5, 1.0)) -> nd.NoisyRun:
    n = correct_by_rate.shape[0]
    rows = []
    for i in range(n):
        for j, r in enumerate(rates):
            rows.append({"family": "f", "item": i, "text": str(i), "true_label": 0,
                         "noise": "clean" if r == 0 else "label", "rate": float(r),
                         "correct": bool(correct_by_rate[i, j]), "follows_flipped": not correct_by_rate[i, j],
                         "margin": 1.0 if correct_by_rate[i, j] else -1.0})
    z = np.zeros((len(rows), 2))
    return nd.NoisyRun("fake", 2, 1, 4, 0.1, pd.DataFrame(rows), z, np.zeros((len(rows), 2, 3)),
                       np.zeros((len(rows), 2)), np.zeros((len(rows), 2)), np.zeros((len(rows), 2, 3)))


def test_slope_difference_detects_a_steeper_model():
    rng = np.random.default_rng(1)
    n = 200
    robust = np.stack([rng.random(n) < p for p in (0.9, 0.85, 0.8)], 1)
    fragile = np.stack([rng.random(n) < p for p in (0.95, 0.6, 0.2)], 1)
    a = nd.noise_slope(_fake_run(robust), "label", (0, 0.5, 1.0), n_boot=300)
    b = nd.noise_slope(_fake_run(fragile), "label", (0, 0.5, 1.0), n_boot=300)
    diff, (lo, hi) = nd.paired_difference(a, b)
    assert diff < 0 and hi < 0 and lo < diff < hi
    assert b.interval[1] < a.interval[0]
    nd.same_queries(_fake_run(robust), _fake_run(fragile))
    with pytest.raises(ValueError, match="different queries"):
        nd.same_queries(_fake_run(robust), _fake_run(fragile[:10]))


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_run, tiny_models, tmp_path):
    """Kill a run after two batches; the next call skips what was saved and ends with the same numbers as a run
    that was never interrupted."""
    loaded, ckpt = tiny_models["llama"], tmp_path / "run.pkl"
    real = engine.trace_batch
    calls = {"n": 0}

    def dies_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    args = (loaded, ["tiny", "tiny_foobar"], 6, 8, 4, (0.5, 1.0), (1.0,))
    kw = dict(seed=0, batch_size=5, batch_tokens=400, checkpoint=ckpt, checkpoint_every=0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny", TINY)
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny_foobar", TINY)
        mp.setattr(engine, "trace_batch", dies_after_two)
        with pytest.raises(KeyboardInterrupt):
            nd.run_experiment(*args, **kw)
        with open(ckpt, "rb") as fh:
            saved = int(pickle.load(fh)["done"].sum())
        assert saved == 10  # two batches of 5
        calls["n"] = -100  # no more interruptions; count the batches traced on resume
        resumed = nd.run_experiment(*args, **kw)
        n_batches = calls["n"] + 100
        assert n_batches == -(-(len(resumed.rows) - saved) // 5)
        np.testing.assert_allclose(resumed.logprobs, tiny_run.logprobs, atol=1e-5)
        np.testing.assert_allclose(resumed.id_sum, tiny_run.id_sum)
        np.testing.assert_allclose(resumed.mlp, tiny_run.mlp, atol=1e-5)
        # another eps is another experiment: the checkpoint is not reused
        calls["n"] = -100
        nd.run_experiment(*args, **{**kw, "eps": 0.2})
        assert calls["n"] + 100 == -(-len(resumed.rows) // 5)


def test_accuracy_at_pairs_with_the_other_statistics(tiny_run):
    clean = nd.accuracy_at(tiny_run, "label", 0.0, n_boot=200, seed=3)
    curve = nd.accuracy_curve(tiny_run, "label", (0.0, 1.0), n_boot=200, seed=3)
    assert clean.value == curve.accuracy.iloc[0]
    assert clean.interval == (curve.ci_low.iloc[0], curve.ci_high.iloc[0])  # the same resampled queries
    value, interval = nd.paired_difference(clean, clean)
    assert value == 0 and interval == (0.0, 0.0)


def test_claims_recomputed_from_the_kept_rows_equal_the_live_ones(tiny_run, tiny_models, tmp_path):
    """What a recorded run commits (rows_table) is enough to recompute every claim of the chapter."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny", TINY)
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny_foobar", TINY)
        other = nd.run_experiment(tiny_models["gemma3"], ["tiny", "tiny_foobar"], 6, 8, 4, (0.5, 1.0), (1.0,),
                                  seed=0, batch_size=5, batch_tokens=400)
    live = nd.size_comparison(tiny_run, other, (0.0, 0.5, 1.0), (0.0, 1.0), n_boot=100, seed=1)
    assert set(live["claims"]) == set(nd.CLAIMS)
    path = base.save_rows(nd.rows_table([tiny_run, other]), tmp_path / "results" / "07.json")
    assert path.name == "07_rows.csv.gz"
    config = {"models": f"{tiny_run.model},{other.model}", "flip_rates": [0.0, 0.5, 1.0], "noise_rates": [0.0, 1.0],
              "n_boot": 100, "seed": 1}
    rows = base.load_rows(path)
    assert nd.claim_values(rows, config) == {}  # 12 queries: below MIN_QUERIES, nothing is judged
    with pytest.MonkeyPatch.context() as mp:  # the same rows, judged as if 12 queries were enough
        mp.setattr(nd, "CLAIMS", {cid: dataclasses.replace(s, min_n=12) for cid, s in nd.CLAIMS.items()})
        again = nd.claim_values(rows, config)
    assert list(again) == list(nd.CLAIMS)
    regime = nd.facts(rows, config)["smaller_model_wins"]
    assert set(regime) == {"label", "input"} and set(regime["label"]["rates"]) <= {0.0, 0.5, 1.0}
    assert regime["input"]["of"] == [0.0, 1.0] and regime["label"]["smaller"] == tiny_run.model
    assert [line.split(":")[0] for line in nd.regime_text(regime)] == ["label noise", "input noise"]
    for cid, (value, interval) in live["claims"].items():
        v2, i2 = again[cid].value, again[cid].interval
        np.testing.assert_allclose([v2, *i2], [value, *interval], rtol=1e-12, atol=1e-12, equal_nan=True,
                                   err_msg=cid)


def test_the_size_claims_are_confounded_only_across_families():
    """A comparison of two model families (the bundled pair) carries `confounded_by` and is not counted; two
    sizes of one family (the full profile's Llama models) carry none; one family with and without chat tuning
    names the tuning. Only the size claims depend on the models."""
    assert nd.model_family("smollm2-135m") == ("smollm2", True) and nd.model_family("gemma3-270m") == ("gemma-3", False)
    assert (
        nd.model_family("meta-llama/Llama-3.2-1B") == nd.model_family("meta-llama/Llama-3.1-70B") == ("llama-3", False)
    )
    assert nd.model_family("/models/SmolLM2-360M-Instruct/") == ("smollm2", True)
    assert "family" in nd.size_confound("smollm2-135m,gemma3-270m")
    llama = "meta-llama/Llama-3.2-1B,meta-llama/Llama-3.2-3B,meta-llama/Llama-3.1-8B,meta-llama/Llama-3.1-70B"
    assert nd.size_confound(llama) == ""
    assert nd.size_confound("meta-llama/Llama-3.2-1B,meta-llama/Llama-3.1-8B-Instruct").startswith("chat tuning")
    bundled, family = nd.claims_for({"models": "smollm2-135m,gemma3-270m"}), nd.claims_for({"models": llama})
    assert list(bundled) == list(family) == list(nd.CLAIMS) and bundled == nd.CLAIMS
    for cid in nd.CLAIMS:
        assert bool(bundled[cid].confounded_by) == (cid in nd.SIZE_CLAIMS), cid
        assert not family[cid].confounded_by, cid
        assert dataclasses.replace(bundled[cid], confounded_by="") == family[cid]  # the same claim and judging


def test_claims_carry_the_policy_fields():
    """One primary per paper statement (its source); Wei et al.'s following rate is a supporting view of the
    label-noise claim (with two labels it is 1 - accuracy at p = 1); every claim has a section, what would count
    against it and a minimum number of queries."""
    from collections import Counter

    paper = {cid: s for cid, s in nd.CLAIMS.items() if s.kind == "paper"}
    assert set(paper) == set(nd.SIZE_CLAIMS)
    assert Counter(s.source for s in paper.values() if s.role == "primary") == Counter(
        {s.source: 1 for s in paper.values()})
    follow = paper["larger_follows_flipped_more"]
    assert follow.role == "supporting" and "Wei et al. 2023" in follow.statement
    assert follow.source == paper["larger_falls_more_label_noise"].source
    for cid, spec in nd.CLAIMS.items():
        assert spec.against and spec.section in nd.SECTIONS.values() and spec.min_n == nd.MIN_QUERIES, cid
        assert spec.kind != "paper" or spec.basis == "empirical"


def test_recorded_runs_carry_the_current_labels():
    """The recorded run's claims carry the declaration for its own models (`claims_for`: the bundled pair is
    confounded) and its run fact `smaller_model_wins`, as benchmarks/relabel_recorded.py writes them from the
    rows; test_recorded.py recomputes their values and verdicts."""
    import json
    from pathlib import Path

    runs = sorted((Path(__file__).resolve().parents[1] / "book" / "recorded").glob("07_*.json"))
    assert runs
    for path in runs:
        data = json.loads(path.read_text())
        declared = nd.claims_for(data["config"])
        assert set(data["smaller_model_wins"]) == {"label", "input"}
        for c in data["claims"]:
            spec = declared[c["claim_id"]]
            got = {k: c[k] for k in ("role", "basis", "paper", "against", "section", "confounded_by")}
            want = {"role": spec.role, "basis": spec.basis, "paper": spec.paper, "against": spec.against,
                    "section": spec.section, "confounded_by": spec.confounded_by}
            assert got == want, (path.name, c["claim_id"])
