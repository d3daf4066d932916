"""Chapter 4's experiment: delta and context contrasts on a run with known structure, parameter parsing, and
(slow) the packed pass and a small run of the experiment on the real chat model. The engine's exactness
checks on tiny models are in test_engine.py, the statistics in test_stats.py."""

from __future__ import annotations

import numpy as np
import pytest

from icl_geometry.core import attention_graph as ag
from icl_geometry.experiments import context_and_reasoning as cg
from icl_geometry.llm import engine, lm, packing
from icl_geometry import tasks
from icl_geometry.core import intrinsic_dim as idm


def _fake_run(n_items=12, ks=(1, 2), L=3, seed=0):
    """A ContextRun with known structure: 'shots' values exceed 'random' ones by exactly 2."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    spec = [(i, c, k) for i in range(n_items) for c in ("shots", "random") for k in ks]
    rows = pd.DataFrame(
        {
            "item": [i for i, _, _ in spec],
            "family": ["capitals" if i % 2 else "arithmetic" for i, _, _ in spec],
            "context": [c for _, c, _ in spec],
            "k": [k for _, _, k in spec],
            "correct": rng.random(len(spec)) < 0.5,
        }
    )
    base = rng.normal(size=(n_items, L))
    vals = np.array([base[i] + (2.0 if c == "shots" else 0.0) + k for i, c, k in spec])
    return cg.ContextRun("fake", L, 0.1, None, [None] * n_items, rows, {"id_abs": vals}, {"id_abs": base},
                         np.zeros((len(spec), 1, 2)), np.zeros((n_items, 1, 2)), (0,))


def test_context_contrast_and_delta_on_a_known_run():
    run = _fake_run()
    d = run.delta("id_abs")
    assert np.allclose(d[run.mask("random")], np.repeat(run.rows.k[run.mask("random")].to_numpy()[:, None], 3, 1))
    mean, (lo, hi), n = cg.context_contrast(run.rows, d[:, -1], "shots", "random")
    assert n == 12 and mean == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    with pytest.raises(ValueError, match="share no"):
        cg.context_contrast(run.rows, d[:, -1], "shots", "shuffled")


def test_parse_families():
    assert cg.parse_families(" capitals, sequence ") == ("capitals", "sequence")
    for bad in ("", "capitals,poetry", "capitals,capitals", ["capitals"]):
        with pytest.raises(ValueError, match="families"):
            cg.parse_families(bad)


@pytest.fixture(scope="module")
def capitals(smollm2):
    test, pool = tasks.split("capitals", 2, 6, seed=0)
    prompts, items = [], []
    for i, it in enumerate(test):
        for ctx, k in (("shots", 0), ("shots", 1), ("shots", 3), ("random", 2)):
            prompts.append(tasks.format_prompt(smollm2, it, tasks.choose_examples(pool, k, 0, i), ctx, 0))
            items.append(it)
    tails = packing.tail_lengths(smollm2, prompts, [tasks.question_marker(it) for it in items])
    return prompts, items, tails


@pytest.mark.slow
def test_tail_is_the_question(smollm2, capitals):
    prompts, items, tails = capitals
    ids = lm.token_ids(smollm2, prompts)
    for x, it, t in zip(ids, items, tails):
        text = smollm2.tokenizer.decode(x[-t:])
        assert text.startswith(f"Q: {it.question}") and len(set(tails[:3])) == 1


@pytest.mark.slow
def test_packed_pass_equals_unpacked_and_the_plain_tracer(smollm2, capitals):
    prompts, items, tails = capitals
    kw = dict(max_new_tokens=6, batch_size=3, stop=tasks.stop_at_newline)
    packed = packing.trace_generate(smollm2, prompts, tails, **kw)
    assert len(packing.make_packs(lm.token_ids(smollm2, prompts), tails)) < len(prompts)  # packing happened
    plain = packing.trace_generate(smollm2, prompts, tails, pack=False, **kw)
    assert packed.outputs == plain.outputs
    assert packed.tokens_fed < plain.tokens_fed  # the shared shots were computed once
    assert np.mean(packed.id_abs == plain.id_abs) > 0.99 and np.mean(packed.id_rel == plain.id_rel) > 0.99
    np.testing.assert_allclose(packed.twonn, plain.twonn, rtol=1e-3)
    traces = engine.trace_batch(smollm2, prompts, positions=tuple(range(-max(tails), 0)), batch_size=4)
    for j, tr in enumerate(traces):
        last = tr.attention_rows[:, :, -1, :]
        assert np.mean(ag.id_eps(last, 0.1, "absolute", "sum", head_axis=1) == packed.id_abs[j]) > 0.95
        assert packed.n_tokens[j] == tr.seq_len
        ref = [idm.twonn(tr.mlp_inputs[layer, -tails[j]:]).estimate for layer in (0, smollm2.n_layers - 1)]
        np.testing.assert_allclose(packed.twonn[j, [0, -1]], ref, rtol=1e-3)
        np.testing.assert_allclose(packed.last_mlp[j, -1].astype(np.float32), tr.mlp_inputs[-1, -1].numpy(),
                                   atol=0.05, rtol=0.01)
    generated = engine.generate(smollm2, prompts, max_new_tokens=6)
    for ours, theirs in zip(packed.outputs, generated):
        assert theirs.startswith(ours)  # the same greedy tokens, ours stop at the end of the first line


@pytest.mark.slow
def test_choices_on_the_answer_pass_equal_the_separate_scoring(smollm2, capitals):
    """Chapter 4's one pass (answers, measurements and constrained choices on one key-value cache, SDPA where no
    attention weights are read) against the former path: the pass without choices, all eager, then
    `choice_scores`' second prefill. Packed and unpacked agree too."""
    prompts, items, _ = capitals
    kw = dict(max_new_tokens=6, batch_size=3)
    old, old_correct = tasks.answer(smollm2, items, prompts, sdpa=False, **kw)
    new, new_correct = tasks.answer(smollm2, items, prompts, options=True, **kw)
    plain, _ = tasks.answer(smollm2, items, prompts, options=True, pack=False, **kw)
    assert new.outputs == old.outputs == plain.outputs and np.array_equal(new_correct, old_correct)
    assert np.mean(new.id_abs == old.id_abs) > 0.99 and np.mean(new.id_rel == old.id_rel) > 0.99
    np.testing.assert_allclose(new.twonn, old.twonn, rtol=1e-3)
    prefix = tasks.answer_prefix(smollm2)
    options = [[prefix + c for c in tasks.choices(it)] for it in items]
    lengths = {len(t) for p, o in zip(prompts, options) for t in engine.choice_token_ids(smollm2, p, o)[1]}
    assert len(lengths) > 1  # candidates of different token lengths
    reference = engine.score_choices(smollm2, prompts, options)
    for run in (new, plain):
        for got, want in zip(run.choice_scores, reference):
            np.testing.assert_allclose(got, want, atol=1e-4)
    correct, margin = tasks.choice_scores(smollm2, items, prompts)
    got_correct, got_margin = tasks.choice_outcome(items, new.choice_scores)
    assert np.array_equal(got_correct, correct)
    np.testing.assert_allclose(got_margin, margin, atol=1e-4)


@pytest.mark.slow
def test_run_experiment_small(smollm2, tmp_path):
    import pickle

    ck = tmp_path / "ck.pkl"
    kw = dict(n_candidates=6, shots=(1, 2), perturbed_shots=(1,), n_base=2, n_pool=4, max_new_tokens=6)
    run = cg.run_experiment(smollm2, ["capitals"], checkpoint=ck, items_per_pass=1, **kw)
    assert len(run.candidates) == 6 and len(run.items) == min(2, int((~run.candidates.correct).sum()))
    assert all(q in set(run.candidates.question[~run.candidates.correct]) for q in [it.question for it in run.items])
    assert set(run.candidates.outcome) <= set(tasks.OUTCOMES) and (run.candidates.n_choices == 4).all()
    n = len(run.items)
    assert len(run.rows) == n * 4 and set(run.rows.context) == {"shots", "random", "shuffled"}
    assert run.rows.choice_correct.dtype == bool and np.isfinite(run.rows.choice_margin).all()
    d = run.delta("id_abs")
    first = run.rows.index[0]
    assert np.array_equal(d[first], run.values["id_abs"][first] - run.zero["id_abs"][run.rows.item[first]])
    assert d.shape == (len(run.rows), smollm2.n_layers) and run.last_mlp.shape[1] == 2
    assert run.tokens_fed > 0 and set(run.seconds) == {"zero_shot_pass", "context_pass"}
    table = cg.rows_table(run)
    assert len(table) == len(run.rows) and f"d_twonn_{smollm2.n_layers - 1}" in table
    # An interruption after the first base item: the run resumes from the checkpoint and ends the same, also when
    # resumed with another items_per_pass (the next pass starts at the first item not done).
    state = pickle.loads(ck.read_bytes())
    state["parts"], state["done"] = state["parts"][:1], 1
    ck.write_bytes(pickle.dumps(state))
    again = cg.run_experiment(smollm2, ["capitals"], checkpoint=ck, items_per_pass=2, **kw)
    assert again.rows.drop(columns="choice_margin").equals(run.rows.drop(columns="choice_margin"))
    np.testing.assert_allclose(again.rows.choice_margin, run.rows.choice_margin, atol=1e-6)
    with pytest.raises(ValueError, match="measure"):
        run.delta("mle")
    with pytest.raises(ValueError, match="k must be >= 1"):
        cg.run_experiment(smollm2, ["capitals"], n_candidates=2, shots=(0, 1))


def test_the_spec_refuses_a_pool_smaller_than_the_largest_k():
    from icl_geometry.bookkit import profiles

    assert profiles.resolve("04", device="cpu", n_pool=10).values["n_pool"] == 10
    with pytest.raises(ValueError, match="'n_pool' = 9 .*shots.*10"):
        profiles.resolve("04", device="cpu", n_pool=9, shots=(1, 2))


def _table(n_items=2 * cg.MIN_ITEMS, ks=range(1, 7), L=4, seed=0, n_varying=None, n_sets=0):
    """A rows_table with known structure: within every item, the k with the larger final-layer change are the
    right ones (both scorings); the first layer's change is noise; controls have lower final-layer change.
    `n_varying`: only the first n items are right at some k (the others wrong at every k). Every third item is
    right at 0 shots under constrained choice (not in the choice-scored base set). `n_sets`: each item also at
    k = 4 with that many example sets ('set_shots': the sets with the larger final-layer change are the right ones)
    and their random-token controls ('set_random', final-layer change 5 lower)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_items):
        cut = rng.integers(2, 6) if n_varying is None or i < n_varying else max(ks) + 1
        for c in ("shots", "random", "shuffled"):
            for k in ks:
                final = k + rng.normal(0, 0.1) - (5.0 if c != "shots" else 0.0)
                ok = bool(c == "shots" and k >= cut)
                rec = {"item": i, "family": "arithmetic" if i % 2 else "sequence", "context": c, "k": k,
                       "correct": ok, "choice_correct": ok, "n_tokens": 100 + 10 * k, "choice_base": i % 3 != 0}
                for m in cg.MEASURES:
                    for layer in range(L):
                        rec[f"d_{m}_{layer}"] = final if layer == L - 1 else rng.normal()
                recs.append(rec)
        for s in range(n_sets):
            for c in ("set_shots", "set_random"):
                final = s + rng.normal(0, 0.1) - (5.0 if c == "set_random" else 0.0)
                ok = bool(c == "set_shots" and s >= n_sets // 2)
                rec = {"item": i, "family": "arithmetic" if i % 2 else "sequence", "context": c, "k": 4, "set": s,
                       "correct": ok, "choice_correct": ok, "n_tokens": 140, "choice_base": i % 3 != 0}
                for m in cg.MEASURES:
                    for layer in range(L):
                        rec[f"d_{m}_{layer}"] = final if layer == L - 1 else rng.normal()
                recs.append(rec)
    out = pd.DataFrame(recs)
    if n_sets:
        out["set"] = out["set"].fillna(-1).astype(int)
    return out


CONFIG = {"n_boot": 200, "seed": 0}


def test_claim_values_on_a_table_with_known_answers():
    values = cg.claim_values(_table(n_items=cg.MIN_ITEMS * 3 // 2 + 1, n_sets=4), CONFIG)  # 2/3 in the choice base set
    assert list(values) == [cid for cid in cg.CLAIMS if cid in values]  # recorded in the declared order
    assert set(values) == set(cg.CLAIMS)  # enough items (all vary within): every claim is judged
    for sfx in ("", "_choice"):
        for key in ("abs", "rel"):
            within = values[f"fig6_{key}_within_item{sfx}"]
            assert within.value > 0.7 and within.interval[0] > 0.5
            assert values[f"fig8_{key}_final_slope_positive{sfx}"].interval[0] > 0
            flat = values[f"fig8_{key}_first_layer_flat{sfx}"]
            spec = cg.CLAIMS[f"fig8_{key}_first_layer_flat{sfx}"]
            assert spec.direction == "none" and spec.null_margin == cg.FIG8_FLAT_MARGIN
            assert abs(flat.value) < cg.FIG8_FLAT_MARGIN
        assert values[f"fig7_accuracy_shots_minus_random{sfx}"].value > 0
    assert values["fig7_abs_final_rise_shots_minus_shuffled"].value == pytest.approx(5.0, abs=0.1)
    assert cg.CLAIMS["first_layer_rise_any_context_abs"].forced_by
    assert {spec.kind for spec in cg.CLAIMS.values()} == {"paper", "ours"}


def test_within_item_claims_need_enough_items_that_vary():
    values = cg.claim_values(_table(n_varying=cg.MIN_WITHIN_ITEMS - 1), CONFIG)
    assert not [cid for cid in values if "within_item" in cid]
    assert "fig6_abs_final_rise_predicts_correct" in values
    values = cg.claim_values(_table(n_varying=cg.MIN_WITHIN_ITEMS), CONFIG)
    assert "fig6_abs_within_item" in values


def test_below_min_items_a_claim_is_not_judged():
    """Every claim resamples base items: a run with fewer than MIN_ITEMS judges none (the ci run's 8 items), and
    the choice-scored claims count only the items constrained choice also got wrong at 0 shots."""
    below = cg.claim_values(_table(n_items=cg.MIN_ITEMS - 1), CONFIG)
    assert below and all("_within_item" in cid for cid in below)  # 29 items that vary: only within-item claims
    values = cg.claim_values(_table(n_items=cg.MIN_ITEMS), CONFIG)  # 2/3 of the items in the choice base set
    assert "fig6_abs_final_rise_predicts_correct" in values and "first_layer_rise_any_context_abs" in values
    assert not [cid for cid in values if cid.endswith("_choice") and "_within_item" not in cid]
    assert [cid for cid in values if cid.startswith(("fig8_", "final_"))]  # the logistic slopes too (jackknife)
    assert all(cg.CLAIMS[cid].min_n >= cg.MIN_ITEMS for cid in cg.CLAIMS if "_within_item" not in cid)
    assert cg.MIN_ITEMS > cg.MIN_WITHIN_ITEMS
    assert cg.not_judged_why("fig6_abs_final_rise_predicts_correct").startswith("not judged at this size")


def test_one_primary_claim_per_paper_statement():
    """The claim policy: every paper claim has a role, a basis, what would count against it, a section and a
    minimum size; one primary per statement (source), and the primaries are the declared views."""
    from collections import Counter

    paper = {cid: s for cid, s in cg.CLAIMS.items() if s.kind == "paper"}
    for cid, spec in cg.CLAIMS.items():
        assert spec.against and spec.section in cg.SECTIONS.values() and spec.min_n > 0, cid
    for cid, spec in paper.items():
        assert spec.role in ("primary", "supporting") and spec.basis == "empirical", cid
    primaries = Counter(s.source for s in paper.values() if s.role == "primary")
    assert set(primaries) == {s.source for s in paper.values()} and set(primaries.values()) == {1}
    assert {cid for cid, s in paper.items() if s.role == "primary"} == cg.PRIMARY
    assert all(not paper[cid].forced_by for cid in cg.PRIMARY if not cid.startswith("first_layer"))
    assert all(paper[cid].role == "supporting" for cid in paper if cid.endswith("_choice") or "_rel_" in cid)


def test_claim_values_survive_the_csv_round_trip(tmp_path):
    import pandas as pd

    table = _table(n_items=cg.MIN_ITEMS)
    table.to_csv(tmp_path / "rows.csv.gz", index=False)
    again = pd.read_csv(tmp_path / "rows.csv.gz")
    a = cg.claim_values(table, {"n_boot": 50, "seed": 0})
    b = cg.claim_values(again, {"n_boot": 50, "seed": 0})
    assert a and list(a) == list(b)
    for cid in a:
        assert a[cid].value == pytest.approx(b[cid].value, abs=1e-12)
        assert a[cid].interval == pytest.approx(b[cid].interval, abs=1e-12)


def test_size_comparison_finds_the_model_whose_answers_follow_the_final_layer():
    """The larger model's table has right answers exactly at the k with larger final-layer change; the smaller
    model's answers are the same coin flips whatever the change: every within-item and slope difference is
    positive, and a model compared with itself differs by exactly 0."""
    large = _table(n_items=30, seed=0)
    small = _table(n_items=24, seed=1)
    rng = np.random.default_rng(2)
    flips = rng.random(len(small)) < 0.5
    small["correct"] = small["choice_correct"] = flips & (small["context"] == "shots").to_numpy()
    out = {c["claim_id"]: c for c in cg.size_comparison(small, large, n_boot=200)}
    for key in ("abs", "rel"):
        for sfx in ("", "_choice"):
            c = out[f"size_within_item_{key}{sfx}"]
            assert c["interval"][0] > 0.3 and c["kind"] == "ours" and c["null_margin"] == cg.SIZE_MARGINS["within_item"]
        assert out[f"size_fig8_{key}_final_slope"]["interval"][0] > 0
    same = cg.size_comparison(large, large, n_boot=50)
    assert all(c["value"] == 0.0 for c in same)


def test_a_run_without_both_outcomes_stops_with_a_clear_message():
    table = _table(n_items=4)
    cg.check_answers_vary(table)  # both outcomes: fine
    table["correct"] = False
    with pytest.raises(ValueError, match="families / n_candidates: all .* answered wrong"):
        cg.check_answers_vary(table)
    with pytest.raises(ValueError, match="no base items"):
        cg.check_answers_vary(table.iloc[0:0])


def test_recorded_runs_carry_the_current_labels():
    """The recorded full runs' claims carry this module's declaration (role, basis, source and statement, what
    would count against them, section, forced_by), as benchmarks/relabel_recorded.py writes them from the rows;
    test_recorded.py recomputes their values and verdicts."""
    import json
    from pathlib import Path

    runs = sorted((Path(__file__).resolve().parents[1] / "book" / "recorded").glob("04_*.json"))
    assert runs
    for path in runs:
        for c in json.loads(path.read_text())["claims"]:
            spec = cg.CLAIMS[c["claim_id"]]
            got = {k: c[k] for k in ("role", "basis", "paper", "against", "section", "forced_by", "confounded_by")}
            want = {"role": spec.role, "basis": spec.basis, "paper": spec.paper, "against": spec.against,
                    "section": spec.section, "forced_by": spec.forced_by, "confounded_by": spec.confounded_by}
            assert got == want, (path.name, c["claim_id"])


def test_the_last_layers_are_the_last_quarter():
    assert cg.last_layers(30).tolist() == list(range(22, 30))
    assert cg.last_layers(18).tolist() == list(range(13, 18))
    assert cg.last_layers(4).tolist() == [3] and cg.last_layers(1).tolist() == [0]
    with pytest.raises(ValueError, match="share"):
        cg.last_layers(8, share=0)


def test_table_deltas_orders_layers_numerically():
    import pandas as pd

    table = pd.DataFrame({"d_id_abs_10": [10.0], "d_id_abs_2": [2.0], "d_id_abs_0": [0.0], "item": [0]})
    assert cg.table_deltas(table)["id_abs"].tolist() == [[0.0, 2.0, 10.0]]


def test_the_premise_claims_and_layer_means_have_known_answers():
    """In `_table` the final layer (the band of 4 layers) changes by k with examples (mean over k = 1..6: 3.5)
    and by k - 5 with random tokens: the premise is +3.5 from 0 shots and +5 against random tokens."""
    table = _table(n_items=cg.MIN_ITEMS)
    values = cg.claim_values(table, CONFIG)
    for key in ("abs", "rel"):
        assert values[f"examples_raise_last_layers_id_{key}"].value == pytest.approx(3.5, abs=0.05)
        assert values[f"examples_raise_last_layers_id_{key}_vs_random"].value == pytest.approx(5.0, abs=0.05)
        lo, hi = values[f"examples_raise_last_layers_id_{key}"].interval
        assert lo < 3.5 < hi
    assert "examples_raise_last_layers_id_abs" in cg.PRIMARY
    assert cg.CLAIMS["fig8_abs_first_layer_flat"].confounded_by and "fig8_abs_first_layer_flat" not in cg.PRIMARY
    means = cg.layer_means(table, {"absolute": "id_abs"})
    final = means[(means.layer == 3)].set_index("context")["mean"]
    assert final["shots"] == pytest.approx(3.5, abs=0.05) and final["random"] == pytest.approx(-1.5, abs=0.05)
    assert means[means.last_layers].layer.unique().tolist() == [3]


def test_headroom_families_drop_a_family_at_the_floor_for_either_model():
    from icl_geometry.tasks import size_contrasts as sizes

    a, b = _table(n_items=40, seed=0), _table(n_items=40, seed=1)
    assert sizes.headroom_families(a, b) == ["arithmetic", "sequence"]
    b.loc[b.family == "sequence", "correct"] = False  # the larger model at the floor on one family
    assert sizes.headroom_families(a, b) == ["arithmetic"]
    small = a[a["item"] < 2 * sizes.MIN_FAMILY_ITEMS - 2]  # fewer than MIN_FAMILY_ITEMS items of each family
    assert sizes.headroom_families(small, b) == []


def test_every_size_row_carries_the_model_confound_and_an_adjusted_slope():
    large, small = _table(n_items=30, seed=0), _table(n_items=30, seed=1)
    out = {c["claim_id"]: c for c in cg.size_comparison(small, large, n_boot=50)}
    assert {"size_fig8_abs_final_slope_adjusted", "size_fig8_rel_final_slope_adjusted"} <= set(out)
    assert all(c["confounded_by"] for c in out.values())
    assert "arithmetic, sequence" in out["size_fig8_abs_final_slope_adjusted"]["note"]


def test_the_fixed_k_claims_have_known_answers():
    """At fixed k the example sets with the larger final-layer change are the right ones (a within-item rho near
    its maximum, about 0.87 for 4 sets split 2/2), and each set's random control is 5 lower."""
    values = cg.claim_values(_table(n_items=cg.MIN_ITEMS, n_sets=4), CONFIG)
    for key in ("abs", "rel"):
        assert values[f"fig6_{key}_fixed_k_within_item"].value > 0.8
        assert values[f"fig6_{key}_fixed_k_within_item"].interval[0] > 0.7
        assert values[f"examples_raise_last_layers_id_{key}_fixed_k_vs_random"].value == pytest.approx(5.0, abs=0.05)
    assert "fig6_abs_fixed_k_within_item" in cg.PRIMARY and "fig6_abs_final_rise_predicts_correct" not in cg.PRIMARY
    # the nested claims do not see the sets: the first-layer rise is the same with and without them
    with_sets = cg.claim_values(_table(n_items=cg.MIN_ITEMS, n_sets=4, seed=3), CONFIG)
    nested = _table(n_items=cg.MIN_ITEMS, n_sets=4, seed=3)
    nested = nested[~nested.context.str.startswith("set_")]
    without = cg.claim_values(nested, CONFIG)
    assert with_sets["first_layer_rise_any_context_abs"].value == without["first_layer_rise_any_context_abs"].value
