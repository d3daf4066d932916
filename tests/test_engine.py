"""The engine against independent computations, on tiny random Llama and Gemma-3 checkpoints loaded through
`lm.load` (fast: no bundled model). Gemma-3's sliding layers have a 16-token window here, so prompts longer
than the window take the unpacked path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icl_geometry.core import attention_graph as ag
from icl_geometry.llm import engine, lm, packing
from fixtures import tiny
from icl_geometry.core import intrinsic_dim as idm

PROMPTS = ["what is 3 + 4 ?", "Q : the cat is red ? A : yes Q : the dog is blue ? A :", "apple"]
MLP_INPUT = {"llama": "post_attention_layernorm", "gemma3": "pre_feedforward_layernorm"}


@pytest.fixture(params=tiny.ARCHITECTURES)
def model(request, tiny_models):
    return tiny_models[request.param]


def _plain(loaded, prompt):
    with torch.no_grad():
        return loaded.model(**loaded.tokenizer(prompt, return_tensors="pt"))


# ----------------------------------------------------------------------------- traces

def test_trace_logits_equal_a_plain_forward(model):
    for prompt in PROMPTS:
        tr = engine.trace(model, prompt)
        torch.testing.assert_close(tr.logits, _plain(model, prompt).logits[0, -1], rtol=0, atol=0)
        assert tr.mlp_inputs.shape == (model.n_layers, 1, model.d_model)
        assert tr.attention_rows.shape == (model.n_layers, model.n_heads, 1, tr.seq_len) and tr.attention is None


@pytest.mark.parametrize("architecture", tiny.ARCHITECTURES)
def test_mlp_inputs_equal_an_independent_hook(tiny_models, architecture):
    loaded = tiny_models[architecture]
    seen = []
    hooks = [getattr(layer, MLP_INPUT[architecture]).register_forward_hook(lambda m, a, out: seen.append(out[0]))
             for layer in loaded.model.model.layers]
    try:
        _plain(loaded, PROMPTS[1])
    finally:
        for h in hooks:
            h.remove()
    independent = torch.stack(seen)  # (layers, T, d)
    T = independent.shape[1]
    tr = engine.trace(loaded, PROMPTS[1], positions=(0, 3, -1), full_attention=True)
    assert tr.positions == [0, 3, T - 1]
    torch.testing.assert_close(tr.mlp_inputs, independent[:, [0, 3, T - 1]], rtol=0, atol=1e-6)
    for i, pos in enumerate(tr.positions):  # rows are causal, sum to one and are rows of the full maps
        row = tr.attention_rows[:, :, i]
        assert torch.all(row[..., pos + 1:] == 0) and torch.allclose(row.sum(-1), torch.ones(()), atol=1e-5)
        torch.testing.assert_close(row, tr.attention[:, :, pos])


def test_batched_traces_equal_single_ones(model):
    batch = engine.trace_batch(model, PROMPTS, positions=(0, -1), batch_size=3)
    for prompt, tb in zip(PROMPTS, batch):
        ts = engine.trace(model, prompt, positions=(0, -1))
        assert tb.token_ids == ts.token_ids and tb.prompt == prompt
        torch.testing.assert_close(tb.logits, ts.logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(tb.mlp_inputs, ts.mlp_inputs, rtol=0, atol=1e-5)
        torch.testing.assert_close(tb.attention_rows, ts.attention_rows, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="positions"):
        engine.trace(model, "apple", positions=(5,))
    with pytest.raises(ValueError, match="prompts"):
        engine.trace_batch(model, "apple")


# ----------------------------------------------------------------------------- generation and scoring

def test_generate_equals_hugging_face_greedy(model):
    prompts = PROMPTS + ["Q : 1 + 2 ? A : 3 Q : 4 + 5 ? A : 9 Q : 6 + 7 ? A :"]
    ours = engine.generate(model, prompts, max_new_tokens=8, batch_size=2, batch_tokens=40)
    tok = model.tokenizer
    for prompt, text in zip(prompts, ours):
        enc = tok(prompt, return_tensors="pt")
        out = model.model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id,
                                   top_p=None, top_k=None, temperature=None)
        assert text == tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    stopped = engine.generate(model, prompts, max_new_tokens=8, stop=lambda text: len(text.split()) >= 2)
    assert all(full.startswith(s) and len(s.split()) <= 2 for s, full in zip(stopped, ours))


def test_greedy_stops_at_eos_and_counts_steps(model):
    eos = next(iter(engine.eos_ids(model)))
    vocab = len(model.tokenizer)

    def logits_for(ids):
        out = torch.zeros(len(ids), vocab)
        out[torch.arange(len(ids)), torch.tensor(ids)] = 1.0
        return out

    script = iter([[eos, 12], [0, 13], [0, eos]])  # sequence 0 ends at once, sequence 1 after two tokens
    first = logits_for(next(script))
    texts, steps = engine.greedy(model, first, lambda ids: logits_for(next(script)), max_new_tokens=5)
    assert texts == ["", model.tokenizer.decode([12, 13])] and steps == 2


def _full_sequence_logprob(model, prompt: str, choice: str) -> float:
    """The reference: one unbatched forward over prompt + choice, the choice's tokens' log-probabilities summed."""
    ids = model.tokenizer(prompt + choice)["input_ids"]
    n = len(model.tokenizer(choice, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model.model(torch.tensor([ids])).logits[0].double(), -1)
    return sum(float(logp[p - 1, ids[p]]) for p in range(len(ids) - n, len(ids)))


def test_score_choices_equals_a_hand_computed_log_softmax_sum(model):
    prompts = ["Q : 1 + 2 ? A :", "the cat is"]
    choices = [[" 3", " 4 5", " apple tree red blue"], [" red", " the dog"]]
    got = engine.score_choices(model, prompts, choices, batch_size=3, batch_tokens=30)
    for prompt, cands, scores in zip(prompts, choices, got):
        assert scores.shape == (len(cands),)
        for choice, score in zip(cands, scores):
            assert score == pytest.approx(_full_sequence_logprob(model, prompt, choice), abs=1e-4)
    shared = engine.score_choices(model, prompts, [" red", " 3"])
    assert shared[0][1] == pytest.approx(got[0][0], abs=1e-4) and shared[1][0] == pytest.approx(got[1][0], abs=1e-4)
    with pytest.raises(ValueError, match="merges"):
        engine.score_choices(model, ["Q : 1"], [["2"]])  # '12' is one (unknown) word: no token boundary
    with pytest.raises(ValueError, match="choices"):
        engine.score_choices(model, prompts, [[" red"]])


def test_batches_respect_size_and_token_budget():
    lengths = [10, 10, 20, 30, 100, 500]
    groups = engine.batches(list(range(6)), lengths, size=3, tokens=100)
    assert groups == [[0, 1, 2], [3], [4], [5]]  # 4 x 30 > 100; a long one stands alone
    assert engine.batches(list(range(6)), lengths, size=1, tokens=10**6) == [[i] for i in range(6)]
    assert engine.batches([0, 1], [50, 10], size=5, tokens=100) == [[0, 1]]  # unsorted: counts the longest


# ----------------------------------------------------------------------------- the packed pass

QUESTION = "Q : 6 + 7 ? A :"
SHOTS = ["a is b", "c is d", "red is blue", "cat is dog", "yes is no"]


def _prompts(n_shots=range(6), question=QUESTION):
    return [" ".join([*SHOTS[:k], question]) for k in n_shots]


@pytest.mark.parametrize("architecture", tiny.ARCHITECTURES)
def test_packed_pass_equals_unpacked_and_the_plain_tracer(tiny_models, architecture):
    loaded = tiny_models[architecture]
    prompts = _prompts() + _prompts(range(3), "Q : 1 + 2 ? A :")
    tails = packing.tail_lengths(loaded, prompts, [p[p.rfind("Q :"):] for p in prompts])
    assert tails == [8] * len(prompts)
    kw = dict(max_new_tokens=3, batch_size=4, batch_tokens=200)
    packed = packing.trace_generate(loaded, prompts, tails, **kw)
    plain = packing.trace_generate(loaded, prompts, tails, pack=False, **kw)
    ids = lm.token_ids(loaded, prompts)
    if architecture == "gemma3":  # 16-token window: only prompts of <= 13 tokens (+3 new) are packed
        assert lm.sliding_window(loaded) == 16 and max(len(x) for x in ids) > 16
        assert sum(len(x) + 3 <= 16 for x in ids) >= 3
    assert packed.tokens_fed < plain.tokens_fed  # the shared shots were computed once
    assert packed.outputs == plain.outputs
    np.testing.assert_array_equal(packed.id_abs, plain.id_abs)
    np.testing.assert_array_equal(packed.id_rel, plain.id_rel)
    np.testing.assert_allclose(packed.twonn, plain.twonn, rtol=1e-5)
    np.testing.assert_allclose(packed.last_mlp.astype(np.float32), plain.last_mlp.astype(np.float32), atol=2e-3)
    traces = engine.trace_batch(loaded, prompts, positions=tuple(range(-max(tails), 0)))
    for j, tr in enumerate(traces):
        last = tr.attention_rows[:, :, -1, :]
        np.testing.assert_array_equal(ag.id_eps(last, 0.1, "absolute", "sum", head_axis=1), packed.id_abs[j])
        np.testing.assert_array_equal(ag.id_eps(last, 0.1, "relative", "sum", head_axis=1), packed.id_rel[j])
        assert packed.n_tokens[j] == tr.seq_len
        ref = [idm.twonn(tr.mlp_inputs[layer, -tails[j]:], duplicates="skip").estimate
               for layer in range(loaded.n_layers)]
        np.testing.assert_allclose(packed.twonn[j], ref, rtol=1e-5)
        np.testing.assert_allclose(packed.last_mlp[j].astype(np.float32), tr.mlp_inputs[[0, -1], -1].numpy(), atol=2e-3)
    assert packed.outputs == engine.generate(loaded, prompts, max_new_tokens=3)


CANDIDATES = [" 3", " 4 5", " apple tree red", " 1 2 3 4", " 13"]  # 1 to 4 tokens


def _choice_ids(loaded, prompts):
    """Per prompt, 2 to 5 candidates (1 to 4 tokens each) as token ids after the prompt."""
    return [engine.choice_token_ids(loaded, p, CANDIDATES[:2 + i % 4])[1] for i, p in enumerate(prompts)]


@pytest.mark.parametrize("architecture", tiny.ARCHITECTURES)
def test_choices_scored_on_the_answer_pass_equal_score_choices(tiny_models, architecture):
    """Candidates scored on the packed pass's cache (and the unpacked one's, which Gemma-3 takes past its 16-token
    window) equal `engine.score_choices`; answers and measurements do not change; SDPA where no weights are read
    agrees with eager everywhere."""
    loaded = tiny_models[architecture]
    prompts = _prompts() + _prompts(range(3), "Q : 1 + 2 ? A :") + ["Q : 5 + 5 ? A :", "a is b Q : 2 + 9 ? A :"]
    tails = packing.tail_lengths(loaded, prompts, [p[p.rfind("Q :"):] for p in prompts])
    ids = _choice_ids(loaded, prompts)
    assert {len(t) for c in ids for t in c} == {1, 2, 3, 4} and len({len(x) for x in lm.token_ids(loaded, prompts)}) > 5
    kw = dict(max_new_tokens=3, batch_size=3, batch_tokens=200)
    before = packing.trace_generate(loaded, prompts, tails, sdpa=False, **kw)  # the path without choices, eager
    runs = {(pack, sdpa): packing.trace_generate(loaded, prompts, tails, choices=ids, pack=pack, sdpa=sdpa, **kw)
            for pack in (True, False) for sdpa in (True, False)}
    reference = engine.score_choices(loaded, prompts, [CANDIDATES[:2 + i % 4] for i in range(len(prompts))])
    if architecture == "gemma3":  # both paths ran: packed prompts inside the window, plain ones past it
        lengths = [len(x) + 4 for x in lm.token_ids(loaded, prompts)]
        assert min(lengths) <= 16 < max(lengths)
    assert before.choice_scores is None
    for run in runs.values():
        assert run.outputs == before.outputs
        np.testing.assert_array_equal(run.id_abs, before.id_abs)
        np.testing.assert_array_equal(run.id_rel, before.id_rel)
        np.testing.assert_allclose(run.twonn, before.twonn, rtol=1e-5)
        np.testing.assert_allclose(run.last_mlp.astype(np.float32), before.last_mlp.astype(np.float32), atol=2e-3)
        assert [s.shape for s in run.choice_scores] == [(len(c),) for c in ids]
        for got, want in zip(run.choice_scores, reference):
            np.testing.assert_allclose(got, want, atol=1e-4)
    if architecture == "llama":  # every prompt packed: the shared shots were computed once
        assert runs[True, True].tokens_fed < runs[False, True].tokens_fed
    with pytest.raises(ValueError, match="choices"):
        packing.trace_generate(loaded, prompts, tails, choices=ids[:-1])


def test_attention_implementation_switches_and_restores(model):
    """SDPA inside the block, eager again after; hooks that read attention weights force eager inside it."""
    assert model.model.config._attn_implementation == "eager"
    seen = []
    with lm.attention_implementation(model, "sdpa"):
        assert model.model.config._attn_implementation == "sdpa"
        with lm.layer_hooks(model, on_attn=lambda layer, w: seen.append(w.shape)):
            assert model.model.config._attn_implementation == "eager"
            _plain(model, PROMPTS[0])
        assert model.model.config._attn_implementation == "sdpa"
        sdpa = _plain(model, PROMPTS[1]).logits
    assert model.model.config._attn_implementation == "eager" and len(seen) == model.n_layers
    torch.testing.assert_close(sdpa, _plain(model, PROMPTS[1]).logits, rtol=0, atol=1e-5)


def test_pack_batches_keep_packs_of_one_apart_from_large_packs():
    def pack(members, length):
        return packing.Pack(list(range(length - members)), [0] * 2, [(i, 1) for i in range(members)])

    packs = [pack(10, 60), pack(1, 20), pack(1, 40), pack(9, 50), pack(2, 30), pack(1, 10)]
    groups = packing.pack_batches(packs, batch_size=8, batch_tokens=10**6)
    assert [[(len(p.members), p.length) for p in g] for g in groups] == [
        [(1, 10), (1, 20), (1, 40)], [(2, 30)], [(9, 50), (10, 60)]]
    assert sum(len(g) for g in packing.pack_batches(packs, batch_size=1, batch_tokens=10**6)) == len(packs)


def test_make_packs_groups_nested_heads_with_a_common_tail():
    tail = [7, 8, 9]
    ids = [[1, 2] + tail, [1, 2, 3, 4] + tail, [1, 2, 3] + tail, [1, 5] + tail, [1, 2, 3, 4] + [6, 8, 9]]
    packs = packing.make_packs(ids, [3] * 5)
    assert sorted(sorted(i for i, _ in p.members) for p in packs) == [[0, 1, 2], [3], [4]]
    big = next(p for p in packs if len(p.members) == 3)
    assert big.head == [1, 2, 3, 4] and dict(big.members) == {1: 4, 2: 3, 0: 2}
    assert all(len(p.members) <= 2 for p in packing.make_packs(ids, [3] * 5, max_members=2))
    for p in packs:
        for i, cut in p.members:
            assert p.head[:cut] + p.tail == ids[i]


def test_trace_generate_rejects_bad_tails(tiny_models):
    loaded = tiny_models["llama"]
    with pytest.raises(ValueError, match="tails"):
        packing.trace_generate(loaded, ["Q : a b c"], [2])
    with pytest.raises(ValueError, match="tails"):
        packing.trace_generate(loaded, ["Q : a", "Q : b"], [3])
    with pytest.raises(ValueError, match="tails"):
        packing.trace_generate(loaded, ["a b"], [5])


def test_twonn_clouds_equals_intrinsic_dim():
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(3, 2, 25, 40)))
    got = idm.twonn_clouds(X)
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert got[i, j] == pytest.approx(idm.twonn(X[i, j]).estimate, rel=1e-9)
    X[0, 0, 1:] = X[0, 0, 0]  # all copies of one point: undefined
    assert np.isnan(idm.twonn_clouds(X)[0, 0])


@pytest.mark.parametrize("architecture", tiny.ARCHITECTURES)
def test_a_sharded_model_gives_the_same_traces_answers_and_scores(tiny_models, tmp_path, architecture):
    whole = tiny_models[architecture]
    placement = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                 "model.layers.2": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    sharded = lm.load(whole.model.name_or_path, device="cpu",
                      device_map=placement, offload_folder=tmp_path / "offload")
    assert "disk" in sharded.device_map.values()
    for a, b in zip(engine.trace_batch(whole, PROMPTS, positions=(0, -1)),
                    engine.trace_batch(sharded, PROMPTS, positions=(0, -1))):
        torch.testing.assert_close(b.mlp_inputs, a.mlp_inputs, rtol=0, atol=1e-5)
        torch.testing.assert_close(b.attention_rows, a.attention_rows, rtol=0, atol=1e-6)
    assert engine.generate(sharded, PROMPTS, max_new_tokens=4) == engine.generate(whole, PROMPTS, max_new_tokens=4)
    np.testing.assert_allclose(engine.score_choices(sharded, PROMPTS, [" red", " 3 4"]),
                               engine.score_choices(whole, PROMPTS, [" red", " 3 4"]), atol=1e-4)
    prompts = _prompts(range(3))
    tails = [8] * 3
    ids = _choice_ids(whole, prompts)
    a = packing.trace_generate(whole, prompts, tails, max_new_tokens=3, choices=ids)
    b = packing.trace_generate(sharded, prompts, tails, max_new_tokens=3, choices=ids)
    assert a.outputs == b.outputs and np.array_equal(a.id_abs, b.id_abs)
    np.testing.assert_allclose(a.twonn, b.twonn, rtol=1e-5)
    for x, y in zip(a.choice_scores, b.choice_scores):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_score_choices_on_a_cache_is_exact_past_the_sliding_window(model):
    """The prompt runs once and its key-value cache is repeated for the candidates: on prompts of different
    lengths (left padding) and longer than Gemma-3's 16-token window, each score is the full-sequence one."""
    prompts = ["the cat is " * 7 + "a", "Q : 1 + 2 ? A :", "red blue " * 12 + "the"]
    choices = [[" red", " the dog is red", " 3 4"], [" 3", " 4 5 6"], [" cat", " apple tree red blue cat", " 1"]]
    got = engine.score_choices(model, prompts, choices, batch_size=3, batch_tokens=10_000)
    for prompt, cands, scores in zip(prompts, choices, got):
        for choice, score in zip(cands, scores):
            assert score == pytest.approx(_full_sequence_logprob(model, prompt, choice), abs=1e-4), (
                prompt[:20],
                choice,
            )


def test_score_choices_with_shared_prefixes_equals_the_batched_path(model):
    """Nested prompts of one group run on one cache cropped per member; scores match the plain path, with and
    without groups mixed with ungrouped prompts, and on Gemma-3 past its 16-token window (plain fallback)."""
    shots = ["Q : 1 + 1 ? A : 2", "Q : 2 + 2 ? A : 4", "Q : 3 + 1 ? A : 4"]
    prompts = [" ".join(shots[:k] + ["Q : 1 + 2 ? A :"]) for k in (0, 1, 2, 3)] + ["the cat is"]
    choices = [[" 3", " 4 5", " red blue"]] * 4 + [[" red", " the dog"]]
    plain = engine.score_choices(model, prompts, choices)
    grouped = engine.score_choices(model, prompts, choices, groups=[0, 0, 0, 0, 1])
    for a, b in zip(plain, grouped):
        np.testing.assert_allclose(a, b, atol=1e-4)
    short = ["red blue " * k + "Q : 1 + 2 ? A :" for k in (0, 1, 2)]  # inside Gemma-3's window: shared path
    assert max(len(x) for x in lm.token_ids(model, short)) + 2 <= 16
    for a, b in zip(engine.score_choices(model, short, [" 3", " 4 5"]),
                    engine.score_choices(model, short, [" 3", " 4 5"], groups=[7, 7, 7])):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="groups"):
        engine.score_choices(model, prompts, choices, groups=[0])
