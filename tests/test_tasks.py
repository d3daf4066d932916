"""Task suites: seeded and disjoint items, prompt builders, and the answer extractor."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

from icl_geometry import tasks


@pytest.mark.parametrize("family", list(tasks.QA_FAMILIES))
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
    assert tasks.choose_examples(pool, 5, seed=0, index=2)[:3] == tasks.choose_examples(pool, 3, seed=0, index=2)
    with pytest.raises(ValueError, match="shots k"):
        tasks.choose_examples(pool, 13, seed=0, index=0)


def test_prompt_contexts():
    test, pool = tasks.split("capitals", 2, 6, seed=0)
    shots = tasks.choose_examples(pool, 3, 0, 0)
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
    shuffled = tasks.chat_messages(item, pool[:2], context="shuffled")  # the controls keep the turns (below)
    assert [m["role"] for m in shuffled] == ["user", "assistant"] * 2 + ["user"]
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


# ---------------------------------------------------------------------------------------------
# Controls of the same length as the shots, in the same chat layout.
@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A small byte-level BPE tokenizer ('Ġ' word-initial pieces, like SmolLM2's) trained on task text: fast
    tier, no bundled model. Rare words split into several pieces, so re-tokenizing is really tested."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [tasks.qa_block(it) for f in tasks.QA_FAMILIES for it in tasks.make_items(f, 40, strict=False)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def _n_tokens(tok, text):
    return len(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("kind", ["bpe", "word_level"])
def test_random_token_text_has_exactly_n_tokens(kind, bpe_tokenizer):
    from fixtures import tiny

    tok = bpe_tokenizer if kind == "bpe" else tiny.tiny_tokenizer()
    for n in range(0, 40):
        for seed in range(3):
            text = tasks.random_token_text(tok, n, random.Random(f"{n}:{seed}"))
            assert _n_tokens(tok, text) == n, (n, seed, text)
            assert text == tasks.random_token_text(tok, n, random.Random(f"{n}:{seed}"))
            assert all(w.isascii() and w.isalpha() for w in text.split())


def test_random_token_text_says_when_it_cannot():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"<unk>": 0, "1": 1, "+": 2}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    digits_only = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")
    with pytest.raises(ValueError, match="no plain alphabetic"):
        tasks.random_token_text(digits_only, 3, random.Random(0))
    with pytest.raises(ValueError, match="n_tokens"):
        tasks.random_token_text(digits_only, -1, random.Random(0))


def _check_controls(tok, item, shots, seed=0):
    """The random and shuffled chat messages keep the shots' layout; random keeps each turn's token count,
    shuffled each turn's word count and all the words. Returns the three message lists."""
    head = tasks.QA_FAMILIES[item.family].instruction + "\n\n"
    ref = tasks.chat_messages(item, shots, "shots", tok, seed)
    out = {"shots": ref}
    for context in ("random", "shuffled"):
        msgs = tasks.chat_messages(item, shots, context, tok, seed)
        assert msgs == tasks.chat_messages(item, shots, context, tok, seed)  # deterministic
        assert [m["role"] for m in msgs] == [m["role"] for m in ref]
        assert msgs[0]["content"].startswith(head) and msgs[-1] == ref[-1]
        assert msgs[1:-1] != ref[1:-1] or msgs[0] != ref[0]
        new = [msgs[0]["content"][len(head):]] + [m["content"] for m in msgs[1:-1]]
        old = [ref[0]["content"][len(head):]] + [m["content"] for m in ref[1:-1]]
        if context == "random":
            assert [_n_tokens(tok, c) for c in new] == [_n_tokens(tok, c) for c in old], context
            assert [_n_tokens(tok, m["content"]) for m in msgs] == [_n_tokens(tok, m["content"]) for m in ref]
        else:
            assert [len(c.split()) for c in new] == [len(c.split()) for c in old]
            assert sorted(w for c in new for w in c.split()) == sorted(w for c in old for w in c.split())
        out[context] = msgs
    return out


@pytest.mark.parametrize("family", ["capitals", "arithmetic", "word_problems"])
def test_chat_controls_keep_the_shots_layout_and_length(family, bpe_tokenizer):
    test, pool = tasks.split(family, 3, 12, seed=0)
    for i, item in enumerate(test):
        for k in (1, 2, 4):
            _check_controls(bpe_tokenizer, item, tasks.choose_examples(pool, k, 0, i))
    item = test[0]
    assert tasks.chat_messages(item, [], "random", bpe_tokenizer) == tasks.chat_messages(item, [])
    with pytest.raises(ValueError, match="tokenizer"):
        tasks.chat_messages(item, pool[:2], "random")
    with pytest.raises(ValueError, match="context"):
        tasks.chat_messages(item, pool[:2], "noise")
    assert tasks.chat_messages(item, pool[:2], "shuffled", seed=1) != tasks.chat_messages(item, pool[:2], "shuffled")


def test_plain_random_block_has_the_shots_token_count(bpe_tokenizer):
    test, pool = tasks.split("capitals", 2, 10, seed=0)
    for k in (1, 3, 6):
        shots = tasks.choose_examples(pool, k, 0, 0)
        plain = tasks.context_block(test[0], shots)
        noise = tasks.context_block(test[0], shots, "random", bpe_tokenizer)
        assert _n_tokens(bpe_tokenizer, noise) == _n_tokens(bpe_tokenizer, plain)


@pytest.mark.slow
def test_smollm2_controls_match_the_shots_length(smollm2):
    """With the real SmolLM2 tokenizer and chat template: each random turn has the shots turn's token count, and
    the whole random prompt is within k tokens of the k-shot prompt (measured: equal) for k = 1..10."""
    tok = smollm2.tokenizer
    for n in range(0, 80):
        assert _n_tokens(tok, tasks.random_token_text(tok, n, random.Random(n))) == n
    gaps = {}
    for family in ("arithmetic", "capitals", "word_problems", "first_letter"):
        test, pool = tasks.split(family, 3, 20, seed=0)
        for i, item in enumerate(test):
            for k in range(1, 11):
                shots = tasks.choose_examples(pool, k, 0, i)
                if k in (1, 2, 5, 10):
                    _check_controls(tok, item, shots)
                for style in tasks.CHAT_STYLES:
                    ref = _n_tokens(tok, tasks.format_prompt(smollm2, item, shots, "shots", chat_style=style))
                    got = _n_tokens(tok, tasks.format_prompt(smollm2, item, shots, "random", chat_style=style))
                    gaps[family, i, k, style] = got - ref
    worst = max(abs(g) / k for (_, _, k, _), g in gaps.items())
    assert worst <= 1, f"random vs shots prompt token gaps exceed k: max |gap|/k = {worst}; max |gap| = " \
                       f"{max(map(abs, gaps.values()))}"


# ---------------------------------------------------------------------------------------------
# Constrained choices and outcomes.
@pytest.mark.parametrize("family", list(tasks.QA_FAMILIES))
def test_choices_hold_the_gold_once_and_are_seeded(family):
    items = tasks.make_items(family, 200, seed=0, strict=False)
    gold_first = 0
    for item in items:
        for n in (4, 3):
            c = tasks.choices(item, n)
            assert c == tasks.choices(item, n) and item.answer in c
            assert len({tasks.fold(x) for x in c}) == len(c)
            assert len(c) == (len(item.options) if item.options else n)
            if item.options:
                assert sorted(c) == sorted(item.options)
            assert [x for x in c if tasks.is_correct(item, x)] == [item.answer], (item, c)
            if re.fullmatch(r"\d+", item.answer):
                assert all(re.fullmatch(r"\d+", x) for x in c)
        gold_first += tasks.choices(item)[0] == item.answer
    assert gold_first < len(items)  # shuffled: the gold is not always first


def test_choices_are_plausible_and_say_what_they_cannot_do():
    letter = tasks.Item("next_letter", "Which letter comes right after A in the alphabet?", "B")
    assert set(tasks.choices(letter)) <= set("ABCDE")
    zero = tasks.Item("word_problems", "How many are left?", "0")
    assert set(tasks.choices(zero)) <= {"0", "1", "2", "3", "10"}
    assert len(tasks.choices(zero, 8)) == 8
    kyiv = tasks.Item("capitals", "What is the capital of Ukraine?", "Kyiv", aliases=("Kiev",))
    assert all("Kiev" not in tasks.choices(kyiv, n) for n in range(2, 30))
    with pytest.raises(ValueError, match="poetry"):
        tasks.choices(tasks.Item("poetry", "Which rhyme?", "moon"))


def test_two_option_items():
    assert all(tasks.two_option(it) for it in tasks.make_items("compare", 20))
    problems = tasks.make_items("word_problems", 60)
    assert [tasks.two_option(it) for it in problems] == ["Who is older" in it.question for it in problems]
    assert not any(tasks.two_option(it) for it in tasks.make_items("arithmetic", 20))
    assert not tasks.two_option(tasks.Item("last_word", "q?", "pen", ("cup", "bird", "pen")))


ADD = tasks.Item("arithmetic", "What is 12 + 13?", "25")
CITY = tasks.Item("capitals", "What is the capital of France?", "Paris")
PAIR = tasks.Item("compare", "Which number is larger: 47 or 74?", "74", ("47", "74"))


@pytest.mark.parametrize("item, text, expected", [
    (ADD, "25", "correct"), (ADD, "12 + 13 = 25", "correct"), (ADD, "The answer is 24.", "wrong answer"),
    (ADD, "To find the difference between the two numbers, we need to f", "wrong answer"),  # 'two' is read: 2
    (ADD, "To find the sum, we need to add the numbers", "no answer"), (ADD, "", "no answer"),
    (CITY, "The capital of France is Paris.", "correct"), (CITY, "Lyon", "wrong answer"), (CITY, "", "no answer"),
    (CITY, " ".join(["word"] * 13), "no answer"),  # a first line of more than 12 words is not read
    (PAIR, "74", "correct"), (PAIR, "47", "wrong answer"), (PAIR, "Neither of them", "no answer"),
])
def test_outcome(item, text, expected):
    assert tasks.outcome(item, text) == expected and expected in tasks.OUTCOMES
    assert (expected == "correct") is tasks.is_correct(item, text)


def test_outcomes_are_three():
    assert tasks.OUTCOMES == ("correct", "no answer", "wrong answer")


# ---------------------------------------------------------------------------------------------
# Chapter 3's controls matched in diversity (issue 28): random examples shared across prompts like the shots.
from icl_geometry.tasks import context_clouds as cc  # noqa: E402
from icl_geometry.tasks import prompts as qa_prompts  # noqa: E402


@pytest.fixture(scope="module")
def chat_model(bpe_tokenizer):
    """A stand-in for a loaded chat model: the small BPE tokenizer with a plain chat template."""
    import copy
    from types import SimpleNamespace

    tok = copy.deepcopy(bpe_tokenizer)
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    return SimpleNamespace(chat=True, tokenizer=tok)


def test_random_examples_match_each_turn_and_are_seeded(bpe_tokenizer):
    _, pool = tasks.split("word_problems", 2, 20, seed=0)
    examples = qa_prompts.random_examples(bpe_tokenizer, pool, seed=0)
    assert len(examples) == len(pool) and len(set(examples)) == len(pool)
    for (user, assistant), item in zip(examples, pool):
        assert _n_tokens(bpe_tokenizer, user) == _n_tokens(bpe_tokenizer, f"Q: {item.question}")
        assert _n_tokens(bpe_tokenizer, assistant) == _n_tokens(bpe_tokenizer, f"A: {item.answer}")
    assert qa_prompts.random_examples(bpe_tokenizer, pool, seed=0) == examples  # deterministic
    assert qa_prompts.random_examples(bpe_tokenizer, pool, seed=1) != examples
    assert qa_prompts.random_examples(bpe_tokenizer, pool[5:], seed=0)[0] != examples[5]  # seeded by the pool index


def test_matched_random_prompts_share_examples_exactly_where_shots_do(chat_model):
    test, pool = tasks.split("word_problems", 12, cc.N_POOL, seed=0)
    k, tok = 10, chat_model.tokenizer
    examples = qa_prompts.random_examples(tok, pool, seed=0)
    prompts = cc.control_prompts(chat_model, test, pool, k, 0, "matched_random")
    assert prompts == cc.control_prompts(chat_model, test, pool, k, 0, "matched_random")  # deterministic
    shots = tasks.few_shot_prompts(chat_model, test, pool, k, seed=0)
    index_sets = []
    for i, (item, text) in enumerate(zip(test, prompts)):
        idx = cc.shot_indices(pool, k, 0, i)
        assert [pool[j] for j in idx] == tasks.choose_examples(pool, k, 0, i)  # the shots' own draw
        assert text == qa_prompts.format_examples_prompt(chat_model, item, [examples[j] for j in idx])
        assert _n_tokens(tok, text) == _n_tokens(tok, shots[i])  # same turns and token count as the shots
        index_sets.append(idx)
        # which random examples the prompt holds, read from its text: exactly those of its shots' pool indices
        held = [j for j, (user, answer) in enumerate(examples) if f">{user}<" in text or f"\n\n{user}<" in text]
        assert sorted(held) == sorted(idx)
        assert all(f"<assistant>{examples[j][1]}</assistant>" in text for j in idx)
    shared = cc.shared_examples(index_sets)
    assert (shared == shared.T).all() and (np.diag(shared) == k).all()
    assert 3 <= shared[~np.eye(len(test), dtype=bool)].mean() <= 7  # 10 of 20: any two share about 5
    # prompts i and j share random examples iff (and exactly where) they share shots
    contents = [{u for u, _ in examples if f">{u}<" in t or f"\n\n{u}<" in t} for t in prompts]
    assert (cc.shared_examples(contents) == shared).all()


def test_matched_random_prompts_for_a_base_model(bpe_tokenizer):
    from types import SimpleNamespace

    base = SimpleNamespace(chat=False, tokenizer=bpe_tokenizer)
    test, pool = tasks.split("capitals", 2, 10, seed=0)
    examples = qa_prompts.random_examples(bpe_tokenizer, pool, seed=0)
    text = cc.control_prompts(base, test, pool, 3, 0, "matched_random")[0]
    idx = cc.shot_indices(pool, 3, 0, 0)
    head = tasks.QA_FAMILIES["capitals"].instruction
    assert text == "\n\n".join([head, *(f"{examples[j][0]}\n{examples[j][1]}" for j in idx),
                                f"Q: {test[0].question}\nA:"])


def test_control_prompts_and_disjoint_shots(chat_model):
    test, pool = tasks.split("word_problems", 6, cc.N_POOL, seed=0)
    for context in ("random", "shuffled"):
        assert (cc.control_prompts(chat_model, test, pool, 4, 0, context)
                == tasks.few_shot_prompts(chat_model, test, pool, 4, seed=0, context=context))
    with pytest.raises(ValueError, match="context"):
        cc.control_prompts(chat_model, test, pool, 4, 0, "noise")
    fresh = cc.disjoint_pool("word_problems", test, pool, 6 * 4, 0)
    assert not {it.question for it in fresh} & {it.question for it in [*test, *pool]}
    prompts = cc.control_prompts(chat_model, test, pool, 4, 0, "disjoint_shots")
    for i, text in enumerate(prompts):  # prompt i holds its own 4 fresh examples and no other prompt's
        assert [j for j, it in enumerate(fresh) if f"Q: {it.question}<" in text] == list(range(4 * i, 4 * i + 4))
    assert cc.control_prompts(chat_model, [], pool, 4, 0, "disjoint_shots") == []
    assert (cc.shared_examples([[1, 2], [2, 3], [4]]) == [[2, 1, 0], [1, 2, 0], [0, 0, 1]]).all()


@pytest.mark.slow
def test_smollm2_matched_random_prompts_have_the_shots_token_count(smollm2):
    """With SmolLM2's tokenizer and chat template the diversity-matched control has exactly the shots prompt's
    token count, for every k the chapter uses."""
    for family in ("word_problems", "arithmetic"):
        test, pool = tasks.split(family, 4, cc.N_POOL, seed=0)
        for k in (1, 2, 5, 10):
            shots = cc.token_counts(smollm2, tasks.few_shot_prompts(smollm2, test, pool, k, seed=0))
            assert cc.token_counts(smollm2, cc.control_prompts(smollm2, test, pool, k, 0, "matched_random")) == shots
