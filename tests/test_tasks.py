"""Task suites: seeded and disjoint items, prompt builders, and the answer extractor."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from icl_geometry import tasks


@pytest.mark.parametrize("family", list(tasks.FAMILIES))
def test_items_are_seeded_distinct_and_disjoint_from_the_pool(family):
    test, pool = tasks.split(family, n_test=15, n_pool=10, seed=3)
    assert test == tasks.split(family, n_test=15, n_pool=10, seed=3)[0]
    questions = [it.question for it in test + pool]
    assert len(set(questions)) == len(questions)
    for it in test:
        assert it.family == family and it.answer
        assert tasks.is_correct(it, it.answer)  # the gold answer scores as correct
        assert tasks.is_correct(it, f"{it.answer}\nQ: something else")


def test_word_problem_answers_are_right():
    for it in tasks.make_items("word_problems", 60, seed=0):
        q = it.question
        if "gives" in q and "more" in q:
            nums = [int(s) for s in q.replace(".", " ").split() if s.isdigit()]
            assert int(it.answer) == nums[0] + nums[1]
        if "Who is older" in q:
            (n1, a1), (n2, a2) = [(s.split()[0], int(s.split()[2])) for s in q.split(". ")[:2]]
            assert it.answer == (n1 if a1 > a2 else n2)


@pytest.mark.parametrize("text, gold, ok", [
    ("25", "25", True), ("The answer is 25.", "25", True), ("38 - 13 = 25", "25", True),
    ("twenty-five", "25", False), ("five", "5", True), ("2", "25", False),
    ("Paris", "Paris", True), ("The capital of France is Paris.", "Paris", True),
    ("Lyon", "Paris", False), ("A: Paris", "Paris", True),
])
def test_extractor(text, gold, ok):
    item = tasks.Item("capitals" if not gold.isdigit() else "arithmetic", "q?", gold)
    assert tasks.is_correct(item, text) is ok


def test_single_letters_are_case_sensitive():
    item = tasks.Item("next_letter", "Which letter comes right after H in the alphabet?", "I")
    assert tasks.is_correct(item, "I")
    assert not tasks.is_correct(item, "i think it is J")


def test_options_take_the_first_named():
    item = tasks.Item("compare", "Which number is larger: 47 or 74?", "74", ("47", "74"))
    assert tasks.is_correct(item, "74 is larger than 47")
    assert not tasks.is_correct(item, "47 is smaller than 74")


def test_shots_are_nested_in_k():
    pool = tasks.make_items("capitals", 12, seed=1)
    assert tasks.choose_shots(pool, 5, seed=0, index=2)[:3] == tasks.choose_shots(pool, 3, seed=0, index=2)
    with pytest.raises(ValueError, match="shots k"):
        tasks.choose_shots(pool, 13, seed=0, index=0)


def test_prompt_contexts():
    test, pool = tasks.split("capitals", 2, 6, seed=0)
    shots = tasks.choose_shots(pool, 3, 0, 0)
    plain = tasks.build_prompt(test[0], shots)
    assert plain.endswith(f"Q: {test[0].question}\nA:") and plain.count("Q: ") == 4
    shuffled = tasks.build_prompt(test[0], shots, context="shuffled")
    assert sorted(shuffled.split()) == sorted(plain.split()) and shuffled != plain
    assert tasks.build_prompt(test[0], [], context="random") == tasks.build_prompt(test[0], [])
    with pytest.raises(ValueError, match="tokenizer"):
        tasks.build_prompt(test[0], shots, context="random")
    with pytest.raises(ValueError, match="context"):
        tasks.build_prompt(test[0], shots, context="noise")


@given(st.text(min_size=1, max_size=80), st.integers(0, 100))
def test_shuffle_keeps_the_words(text, seed):
    assert sorted(tasks.shuffle_words(text, random.Random(seed)).split()) == sorted(text.split())


def test_unknown_family():
    with pytest.raises(ValueError, match="next_letter"):
        tasks.make_items("poetry", 3)
