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
    assert (r.follows_flipped == ~r.correct).all() and (r.follows_flipped_cal == ~r.correct_cal).all()  # two labels
    assert np.allclose(r.margin > 0, r.correct) and np.allclose(r.margin_cal > 0, r.correct_cal)
    # calibration divides out the content-free prompt's label distribution, per prompt
    shift = (r.cf0 - r.cf1).to_numpy() * np.where(r.true_label == 1, 1, -1)
    np.testing.assert_allclose(r.margin_cal, r.margin + shift, atol=1e-9)
    assert ((r.cf0.map(np.exp) + r.cf1.map(np.exp)) - 1).abs().max() < 1e-9

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


def test_each_query_has_its_own_demonstrations_and_content_free_prompts(tiny_models):
    """Per query a fresh balanced draw from the pool (never the query), the same in every condition; per prompt
    one content-free prompt per `CONTENT_FREE` input: the same text up to the query's input (the sampler itself:
    tests/test_demonstrations.py)."""
    loaded = tiny_models["llama"]
    conds = nd.conditions((0.5, 1.0), (1.0,))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(tasks.CLASSIFICATION_FAMILIES, "tiny", TINY)
        meta, prompts, cf = nd.build_prompts(loaded, ["tiny"], 6, 8, 4, conds, seed=0)
    assert len(prompts) == 6 * len(conds) and len(cf) == len(prompts) * len(nd.CONTENT_FREE)
    head = [p.text.rsplit("Input:", 1)[0] for p in prompts]
    clean = [head[i] for i, m in enumerate(meta) if m["noise"] == "clean"]
    assert len(set(clean)) > 1  # not one demonstration set for the whole family
    for p, m, c in zip(prompts, meta, cf):
        assert c.text.rsplit("Input:", 1)[0] == p.text.rsplit("Input:", 1)[0]
        assert c.text.rsplit("Input:", 1)[1].startswith(" N/A") and p.text.rsplit("Input:", 1)[1].startswith(
            f" {m['text']}")


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
        n_prompts = len(resumed.rows) * (1 + len(nd.CONTENT_FREE))  # each prompt and its content-free ones
        assert n_batches == -(-(n_prompts - saved) // 5)
        np.testing.assert_allclose(resumed.logprobs, tiny_run.logprobs, atol=1e-5)
        np.testing.assert_allclose(resumed.id_sum, tiny_run.id_sum)
        np.testing.assert_allclose(resumed.mlp, tiny_run.mlp, atol=1e-5)
        # another eps is another experiment: the checkpoint is not reused
        calls["n"] = -100
        nd.run_experiment(*args, **{**kw, "eps": 0.2})
        assert calls["n"] + 100 == -(-n_prompts // 5)


def test_accuracy_at_pairs_with_the_other_statistics(tiny_run):
    clean = nd.accuracy_at(tiny_run, "label", 0.0, n_boot=200, seed=3)
    curve = nd.accuracy_curve(tiny_run, "label", (0.0, 1.0), n_boot=200, seed=3)
    assert clean.value == curve.accuracy.iloc[0]
    assert clean.interval == (curve.ci_low.iloc[0], curve.ci_high.iloc[0])  # the same resampled queries
    value, interval = nd.paired_difference(clean, clean)
    assert value == 0 and interval == (0.0, 0.0)


class _KeepAll:
    """An exclusion rule that keeps every (model, family): random tiny models sit at chance."""

    def reason(self, accuracy: float) -> None:
        return None


def test_claims_recomputed_from_the_kept_rows_equal_the_live_ones(tiny_models, tmp_path):
    """What a recorded run commits (rows_table) is enough to recompute every claim of the chapter."""
    fams = ["tiny", "tiny2", "tiny_foobar", "tiny2_foobar"]
    with pytest.MonkeyPatch.context() as mp:
        for name in fams:
            mp.setitem(tasks.CLASSIFICATION_FAMILIES, name, dataclasses.replace(TINY, name=name))
        runs = [nd.run_experiment(tiny_models[arch], fams, 6, 8, 4, (0.5, 1.0), (1.0,), seed=0, batch_size=8,
                                  batch_tokens=800) for arch in ("llama", "gemma3")]
    live = nd.rows_table(runs)
    path = base.save_rows(live, tmp_path / "results" / "07.json")
    assert path.name == "07_rows.csv.gz"
    config = {"models": f"{runs[0].model},{runs[1].model}", "flip_rates": [0.0, 0.5, 1.0], "noise_rates": [0.0, 1.0],
              "n_boot": 100, "seed": 1}
    rows = base.load_rows(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nd, "RULE", _KeepAll())
        assert nd.claim_values(rows, config) == {}  # 12 queries per group: below MIN_QUERIES, nothing is judged
        mp.setattr(nd, "CLAIMS", {cid: dataclasses.replace(s, min_n=12) for cid, s in nd.CLAIMS.items()})
        again, first = nd.claim_values(rows, config), nd.claim_values(live, config)
        regime = nd.facts(rows, config)["smaller_model_wins"]
    assert list(again) == list(nd.CLAIMS)
    assert set(regime) == {"label", "input"} and set(regime["label"]["rates"]) <= {0.0, 0.5, 1.0}
    assert regime["input"]["of"] == [0.0, 1.0] and regime["label"]["smaller"] == runs[0].model
    assert [line.split(":")[0] for line in nd.regime_text(regime)] == ["label noise", "input noise"]
    for cid, m in first.items():
        np.testing.assert_allclose([again[cid].value, *again[cid].interval], [m.value, *m.interval], rtol=1e-12,
                                   atol=1e-12, equal_nan=True, err_msg=cid)
    assert nd.claim_values(live.drop(columns=["correct_cal"]), config) == {}  # first-pass rows: no calibration


def synthetic_rows(n_items: int = 16, bias: float = 6.0) -> pd.DataFrame:
    """Rows of two models on 3 meaningful and 2 foo/bar families whose answers are known: every query's label-1
    score is +-1 (its true label's sign) plus a label-word bias of `bias` nats towards label 0 that the content-free
    prompt measures exactly, so argmax always answers label 0 (accuracy 0.5) while calibration recovers every answer.
    Label noise at rate p moves the score towards the flipped label by about 1.5p (smaller model) or 4p (larger),
    more for class-1 queries: the calibrated accuracy is 1, 1, 0 (smaller) and 1, 0, 0 (larger) at p = 0, 0.5, 1.
    Input noise changes nothing; eq. 8 changes by p (class 0) or 2p (class 1), in step with the margin's drop."""
    from icl_geometry.tasks import calibration

    fams = ["sentiment", "names", "plural", "sentiment_foobar", "names_foobar"]
    out, item = [], 0
    for f in fams:
        for i in range(n_items):
            t = i % 2
            for noise, rate in nd.conditions((0.5, 1.0), (0.5, 1.0)):
                for m, pull in (("smollm2-135m", 1.5), ("gemma3-270m", 4.0)):
                    moved = (1 - pull * rate * (1.01 + 0.2 * t)) if noise == "label" else 1.0
                    score = (2 * t - 1) * moved
                    out.append({"model": m, "family": f, "item": item, "text": f"{f} {i}", "true_label": t,
                                "noise": noise, "rate": rate, "lp": [bias - score / 2, score / 2],
                                "cf": [[bias, 0.0]]})
            item += 1
    rows = pd.DataFrame(out)
    cols = calibration.score_columns(np.array(list(rows.lp)) - 5.0, np.array(list(rows.cf)),
                                     rows.true_label.to_numpy())
    rows = rows.drop(columns=["lp", "cf"]).assign(**cols, n_tokens=50)
    x = np.where(rows.noise == "label", rows.rate, 0.0) * np.where(rows.true_label == 1, 2.0, 1.0)
    return rows.assign(id_sum_mean=x, id_head_mean=x)


def test_claim_values_from_synthetic_rows():
    """Calibration changes the verdicts: argmax sees a model at chance (label-word bias), calibration the true
    answers; the exclusion rule leaves out the families at ceiling; every claim from the primary scoring."""
    rows = synthetic_rows()
    config = {"models": "smollm2-135m,gemma3-270m", "flip_rates": [0.0, 0.5, 1.0], "noise_rates": [0.0, 0.5, 1.0],
              "n_boot": 200, "seed": 0}
    assert (rows.pred == 0).all() and rows.correct.mean() == 0.5
    ex = nd.exclusions(rows)
    assert ex.excluded.all() and set(ex.group) == {"meaningful", "foo/bar"}  # clean calibrated accuracy 1: ceiling
    # every meaningful family excluded: only the foo/bar claims (on every foo/bar family, excluded or not) remain
    assert set(nd.claim_values(rows, config)) == {"foobar_mapping_learned_smaller", "foobar_mapping_learned_larger"}
    assert nd.facts(rows, config)["excluded"][0]["reason"].startswith("at ceiling")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nd, "RULE", _KeepAll())
        values = nd.claim_values(rows, config)
        table = nd.scoring_table(rows, config)
    assert list(values) == list(nd.CLAIMS)
    small = nd.slope([0, 0.5, 1], [1, 1, 0])
    large = nd.slope([0, 0.5, 1], [1, 0, 0])
    assert values["label_noise_hurts_smaller"].value == pytest.approx(small)
    assert values["label_noise_hurts_larger"].value == pytest.approx(large)
    assert values["larger_falls_more_label_noise"].value == pytest.approx(large - small)
    assert values["larger_falls_more_input_noise"].value == 0 == values["larger_clean_accuracy_higher"].value
    assert values["larger_follows_flipped_more"].value == 0  # both follow every flip at p = 1
    assert values["foobar_mapping_learned_smaller"].value == pytest.approx(0.5)
    assert values["eq8_change_predicts_distraction"].value == pytest.approx(1.0)
    for m in values.values():
        assert m.interval[0] <= m.value + 1e-12 and m.value <= m.interval[1] + 1e-12
    argmax = table[(table.scoring == "argmax") & (table.model == "smollm2-135m")].set_index("measure").value
    assert argmax["clean"] == 0.5 and argmax["label_slope"] == 0  # the bias hides everything from argmax
    auc = table[(table.scoring == "auc") & (table.model == "gemma3-270m")].set_index("measure").value
    assert auc["clean"] == 1.0 and auc["label_slope"] < 0 and "follow" not in auc


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
    label-noise claim (with two labels it is 1 - accuracy at p = 1), attributed to Wei et al. 2023; every claim
    has a section, what would count against it and a minimum number of queries; calibrated scoring is primary."""
    from collections import Counter

    paper = {cid: s for cid, s in nd.CLAIMS.items() if s.kind == "paper"}
    assert set(paper) == set(nd.SIZE_CLAIMS)
    primary = [s for s in paper.values() if s.role == "primary"]
    assert Counter(s.source for s in primary) == Counter({s.source: 1 for s in primary}) and len(primary) == 3
    follow = paper["larger_follows_flipped_more"]
    assert follow.role == "supporting" and follow.source.startswith("Wei et al. 2023")
    assert nd.PRIMARY_SCORING == "calibrated" == nd.SCORINGS[0]
    assert all("calibrated" in s.statement for s in primary[1:])
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


def test_family_auc_and_curve_on_synthetic_rows():
    """The AUC view averages each family's AUC (weighted by its rows); `curve` gives a value per rate with its
    two-level interval, the same as `summarise` reads."""
    from icl_geometry.tasks import calibration
    from icl_geometry.tasks.noise_measures import family_auc

    rows = synthetic_rows()
    fam = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    true = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    scores = np.array([[0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.3, 0.5]]).T
    both = [calibration.auc(scores[fam == f, 0], true[fam == f]) for f in (0, 1)]
    assert family_auc(fam, true, scores)[0] == pytest.approx(np.mean(both))
    assert np.isnan(family_auc(fam, np.zeros(8), scores)[0])  # one class only: undefined
    c = nd.curve(rows, "gemma3-270m", ["sentiment", "names", "plural"], "label", [0.0, 0.5, 1.0], n_boot=100)
    assert list(c.value) == [1.0, 0.0, 0.0] and (c.ci_low <= c.value + 1e-12).all()
    a = nd.curve(rows, "gemma3-270m", ["sentiment", "names", "plural"], "label", [0.0, 1.0], "auc", n_boot=100)
    assert a.value.iloc[0] == 1.0 and a.value.iloc[1] == 0.0
    with pytest.raises(ValueError, match="scoring"):
        nd.summarise(rows, ["smollm2-135m", "gemma3-270m"], ["names"], [0, 1.0], [0, 1.0], "logit")
