"""Chapter 7's demonstrations: families, splits, label flips and input noise, prompts and token groups (fast:
tiny random checkpoints)."""

from __future__ import annotations

import numpy as np
import pytest


from icl_geometry import tasks
from icl_geometry.llm import lm


def test_families_have_two_labels_and_foobar_versions():
    for name, fam in tasks.BASE_FAMILIES.items():
        assert len(fam.labels) == 2 and all(len(c) >= 20 for c in fam.inputs)
        assert not set(fam.inputs[0]) & set(fam.inputs[1])
        assert tasks.CLASSIFICATION_FAMILIES[f"{name}_foobar"].labels == ("foo", "bar")
        assert tasks.CLASSIFICATION_FAMILIES[f"{name}_foobar"].inputs == fam.inputs
    with pytest.raises(ValueError, match="'families' = 'sentiment, nope'.*category_foobar"):
        tasks.parse_families("sentiment, nope", "classification")
    with pytest.raises(ValueError, match="arithmetic"):  # a question-answer family is not a classification
        tasks.parse_families("sentiment, arithmetic", "classification")
    assert tasks.parse_families(" sentiment,category_foobar ") == ("sentiment", "category_foobar")


def test_split_is_balanced_disjoint_and_shared_with_foobar():
    test, pool = tasks.split("category", 9, 12, seed=3)
    assert [e.true_label for e in test].count(0) == 5 and [e.true_label for e in pool].count(0) == 6
    assert not {e.text for e in test} & {e.text for e in pool}
    assert (test, pool) == tasks.split("category_foobar", 9, 12, seed=3)
    assert test != tasks.split("category", 9, 12, seed=4)[0]
    with pytest.raises(ValueError, match="n_pool"):
        tasks.split("category", 20, 40)


def test_choose_demos_is_balanced_and_seeded():
    _, pool = tasks.split("sentiment", 4, 20)
    d = tasks.choose_examples(pool, 8, seed=0, index=1)
    assert len(d) == 8 and sum(e.true_label for e in d) == 4 and len({e.text for e in d}) == 8
    assert d == tasks.choose_examples(pool, 8, seed=0, index=1) and d != tasks.choose_examples(pool, 8, seed=0, index=2)
    with pytest.raises(ValueError, match="k = 30"):
        tasks.choose_examples(pool, 30, 0, 0)


@pytest.mark.parametrize("rate,k,n", [(0, 8, 0), (0.25, 8, 2), (0.5, 8, 4), (1, 8, 8), (0.25, 2, 1), (0.5, 3, 2)])
def test_n_corrupted(rate, k, n):
    assert tasks.n_corrupted(rate, k) == n


def test_label_flips_are_nested_and_exact():
    _, pool = tasks.split("sentiment", 2, 16)
    d = tasks.choose_examples(pool, 8, 0, 0)
    flipped = [{j for j, e in enumerate(tasks.corrupt(d, p, index=0)) if e.flipped} for p in (0, .25, .5, .75, 1)]
    assert [len(s) for s in flipped] == [0, 2, 4, 6, 8]
    assert all(a <= b for a, b in zip(flipped, flipped[1:]))
    full = tasks.corrupt(d, 1.0)
    assert all(e.label == 1 - e.true_label and e.text == o.text for e, o in zip(full, d))
    with pytest.raises(ValueError, match="rate"):
        tasks.corrupt(d, 1.5)
    with pytest.raises(ValueError, match="tokenizer"):
        tasks.corrupt(d, 0, 0.5)


def test_input_noise_keeps_token_length_and_labels(tiny_models):
    tok = tiny_models["llama"].tokenizer
    _, pool = tasks.split("sentiment", 2, 16)
    d = tasks.choose_examples(pool, 8, 0, 0)
    noisy = tasks.corrupt(d, 0, 0.5, tokenizer=tok, index=0)
    changed = [j for j, e in enumerate(noisy) if e.noisy_input]
    assert len(changed) == 4 and all(noisy[j].text != d[j].text for j in changed)
    assert [e.label for e in noisy] == [e.label for e in d]
    n_tok = [len(tok(e.text, add_special_tokens=False)["input_ids"]) for e in d]
    n_new = [len(tok(noisy[j].text, add_special_tokens=False)["input_ids"]) for j in changed]
    assert all(abs(a - n_tok[j]) <= 1 for a, j in zip(n_new, changed))  # re-tokenising may merge one pair
    assert noisy == tasks.corrupt(d, 0, 0.5, tokenizer=tok, index=0)
    assert {j for j, e in enumerate(tasks.corrupt(d, 0, 0.25, tokenizer=tok)) if e.noisy_input} <= set(changed)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("chat", [True, False])
def test_prompt_spans_and_token_groups(tiny_models, arch, chat):
    loaded = tiny_models[arch]
    if chat and loaded.tokenizer.chat_template is None:
        pytest.skip("no chat template")
    test, pool = tasks.split("category", 2, 8)
    d = tasks.corrupt(tasks.choose_examples(pool, 4, 0, 0), 0.5, index=0)
    p = tasks.format_classification_prompt(loaded, "category", d, test[0], chat=chat)
    fam = tasks.CLASSIFICATION_FAMILIES["category"]
    for (s, e, g), (s2, e2, g2) in zip(p.spans[::2], p.spans[1::2]):
        assert g == "input" and g2 == "label" and p.text[s2:e2] in fam.labels and e <= s2
    assert [p.text[s:e] for s, e, g in p.spans if g == "input"] == [x.text for x in d]
    assert [p.text[s:e] for s, e, g in p.spans if g == "label"] == [fam.labels[x.label] for x in d]
    assert p.text.rstrip().endswith("Label:") != chat
    groups = tasks.token_groups(loaded, p)
    assert len(groups) == len(lm.token_ids(loaded, [p.text])[0])
    assert (groups == 0).sum() >= 4 and (groups == 1).sum() >= 4 and (groups == 2).sum() >= 4
    assert np.all(groups[-3:] == 2)  # the query and what follows it
