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


def test_new_families_have_right_answers():
    for it in tasks.make_items("sequence", 30, seed=0):
        terms = [int(t) for t in it.question.split(": ")[1].split(", ")[:4]]
        step = terms[1] - terms[0]
        assert all(b - a == step for a, b in zip(terms, terms[1:])) and int(it.answer) == terms[-1] + step
    for it in tasks.make_items("country_of", 20, seed=0):
        assert tasks.CAPITALS[it.answer] == it.question.split(" is the capital")[0]
    for it in tasks.make_items("first_letter", 20, seed=0):
        word = it.question.split("'")[1]
        assert it.answer == word[0].upper() and it.aliases == (word[0],)


@pytest.mark.parametrize("family, text, ok", [
    ("capitals", "The capital of Colombia is Bogotá.", True),  # accents are ignored
    ("capitals", "The capital of Spain is Madrid, and the capital of Colombia is Bogota", False),  # first named
    ("capitals", "Paris or Bogota", False),
    ("antonyms", "The opposite of 'hot' is 'cold'.", True),
    ("antonyms", "The opposite of 'cold' is 'hot'.", False),  # a restatement is read after its "is"
    ("country_of", "The capital of Germany is Berlin.", True),  # no restatement rule for this family
    ("country_of", "Berlin is the capital of France.", False),
])
def test_extractor_reads_restatements_and_names(family, text, ok):
    gold = {"capitals": ("What is the capital of Colombia?", "Bogota"),
            "antonyms": ("What is the opposite of 'hot'?", "cold"),
            "country_of": ("Berlin is the capital of which country?", "Germany")}[family]
    assert tasks.is_correct(tasks.Item(family, *gold), text) is ok


def test_aliases_count_as_correct():
    kyiv = tasks.Item("capitals", "What is the capital of Ukraine?", "Kyiv", aliases=("Kiev",))
    assert tasks.is_correct(kyiv, "The capital of Ukraine is Kiev.") and not tasks.is_correct(kyiv, "Lviv")
    letter = tasks.Item("first_letter", "What is the first letter of the word 'egg'?", "E", aliases=("e",))
    assert tasks.is_correct(letter, "e") and tasks.is_correct(letter, "E") and not tasks.is_correct(letter, "g")
    assert [it for it in tasks.make_items("capitals", 48, seed=0) if it.answer == "Kyiv"][0].aliases == ("Kiev",)


def test_stop_rule():
    assert not tasks.stop_at_newline("Paris") and tasks.stop_at_newline("Paris\nQ")


class _Tok:
    """Just enough of a chat tokenizer to see the messages the prompt builder sends."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


class _Chat:
    chat, tokenizer = True, _Tok()


def test_chat_prompts_are_multi_turn_and_nested():
    test, pool = tasks.split("capitals", 1, 6, seed=0)
    item = test[0]
    msgs = tasks.chat_messages(item, pool[:3])
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 3 + ["user"]
    assert msgs[0]["content"].startswith("Answer with the name of a city.\n\nQ: ")
    assert msgs[1]["content"] == f"A: {pool[0].answer}" and msgs[-1]["content"] == f"Q: {item.question}"
    prompts = [tasks.format_prompt(_Chat(), item, pool[:k]) for k in range(1, 4)]
    tail = f"Q: {item.question}</user><assistant>"
    heads = [p[: -len(tail)] for p in prompts]
    assert all(p.endswith(tail) for p in prompts)
    assert all(heads[i + 1].startswith(heads[i]) for i in range(2))  # shots are nested: one pass can share them
    single = tasks.format_prompt(_Chat(), item, pool[:2], chat_style="single_turn")
    assert single == f"<user>{tasks.build_prompt(item, pool[:2])}</user><assistant>"
    shuffled = tasks.chat_messages(item, pool[:2], context="shuffled")
    assert len(shuffled) == 1 and shuffled[0]["content"].endswith(f"\n\nQ: {item.question}")
    with pytest.raises(ValueError, match="chat_style"):
        tasks.format_prompt(_Chat(), item, chat_style="json")


@pytest.mark.parametrize("text, stop", [("\n A: Par", False), ("Paris\n", True), ("A:\n", False), ("A:\nParis", False),
                                        ("A:\nParis\n", True), ("\n\n", False)])
def test_stop_rule_cases(text, stop):
    assert tasks.stop_at_newline(text) is stop


def test_small_families_can_run_out_gracefully():
    with pytest.raises(ValueError, match="distinct items"):
        tasks.split("capitals", 40, 20)
    test, pool = tasks.split("capitals", 40, 20, strict=False)
    assert len(pool) == 20 and len(test) == len(tasks.CAPITALS) - 20
