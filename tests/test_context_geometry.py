"""Chapter 4's experiment: delta and context contrasts on a run with known structure, parameter parsing, and
(slow) the packed pass and a small run of the experiment on the real chat model. The engine's exactness
checks on tiny models are in test_engine.py, the statistics in test_stats.py."""

from __future__ import annotations

import numpy as np
import pytest

from icl_geometry import attention_graph as ag
from icl_geometry import context_geometry as cg
from icl_geometry import engine, lm, packing, tasks
from icl_geometry import intrinsic_dim as idm


def _fake_run(n_items=12, ks=(1, 2), L=3, seed=0):
    """A ContextRun with known structure: 'shots' values exceed 'random' ones by exactly 2."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    spec = [(i, c, k) for i in range(n_items) for c in ("shots", "random") for k in ks]
    rows = pd.DataFrame({"item": [i for i, _, _ in spec], "family": ["capitals" if i % 2 else "arithmetic" for i, _, _ in spec],
                         "context": [c for _, c, _ in spec], "k": [k for _, _, k in spec],
                         "correct": rng.random(len(spec)) < 0.5})
    base = rng.normal(size=(n_items, L))
    vals = np.array([base[i] + (2.0 if c == "shots" else 0.0) + k for i, c, k in spec])
    return cg.ContextRun("fake", L, 0.1, None, [None] * n_items, rows, {"id_abs": vals}, {"id_abs": base},
                         np.zeros((len(spec), 1, 2)), np.zeros((n_items, 1, 2)), (0,))


def test_context_contrast_and_delta_on_a_known_run():
    run = _fake_run()
    d = run.delta("id_abs")
    assert np.allclose(d[run.mask("random")], np.repeat(run.rows.k[run.mask("random")].to_numpy()[:, None], 3, 1))
    mean, (lo, hi), n = cg.context_contrast(run, d[:, -1], "shots", "random", n_boot=100)
    assert n == 12 and mean == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    with pytest.raises(ValueError, match="share no"):
        cg.context_contrast(run, d[:, -1], "shots", "shuffled")


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
            prompts.append(tasks.format_prompt(smollm2, it, tasks.choose_shots(pool, k, 0, i), ctx, 0))
            items.append(it)
    tails = packing.tail_lengths(smollm2, prompts, [cg.question_marker(it) for it in items])
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
def test_run_experiment_small(smollm2):
    run = cg.run_experiment(smollm2, ["capitals"], n_candidates=6, shots=(1, 2), perturbed_shots=(1,),
                            n_base=2, n_pool=4, max_new_tokens=6)
    assert len(run.candidates) == 6 and len(run.items) == min(2, int((~run.candidates.correct).sum()))
    assert all(q in set(run.candidates.question[~run.candidates.correct]) for q in [it.question for it in run.items])
    n = len(run.items)
    assert len(run.rows) == n * 4 and set(run.rows.context) == {"shots", "random", "shuffled"}
    d = run.delta("id_abs")
    first = run.rows.index[0]
    assert np.array_equal(d[first], run.values["id_abs"][first] - run.zero["id_abs"][run.rows.item[first]])
    assert d.shape == (len(run.rows), smollm2.n_layers) and run.last_mlp.shape[1] == 2
    assert run.tokens_fed > 0 and set(run.seconds) == {"zero_shot_pass", "context_pass"}
    with pytest.raises(ValueError, match="measure"):
        run.delta("mle")
    with pytest.raises(ValueError, match="k must be >= 1"):
        cg.run_experiment(smollm2, ["capitals"], n_candidates=2, shots=(0, 1))


def test_the_spec_refuses_a_pool_smaller_than_the_largest_k():
    from icl_geometry import profiles

    assert profiles.resolve("04", device="cpu", n_pool=10).values["n_pool"] == 10
    with pytest.raises(ValueError, match="'n_pool' = 9 .*shots.*10"):
        profiles.resolve("04", device="cpu", n_pool=9, shots=(1, 2))
