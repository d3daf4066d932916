from typing import Any, Mapping

from icl_geometry.bookkit.specs.schema import ChapterSpec, Param
from icl_geometry.tasks import CHAT_STYLES


def _pool_holds_the_shots(values: Mapping[str, Any]) -> None:
    """Every k-shot prompt draws its k examples from a pool of n_pool: n_pool >= the largest k."""
    largest = max((*values["shots"], *values["perturbed_shots"], *((values["fixed_k"],) if values["n_sets"] else ())))
    if largest > values["n_pool"]:
        raise ValueError(f"Parameter 'n_pool' = {values['n_pool']} is not allowed with shots = {values['shots']} "
                         f"and perturbed_shots = {values['perturbed_shots']} (and fixed_k = {values['fixed_k']}): it "
                         "must be at least the largest "
                         f"number of shots, {largest}.")


def _controls_match_shots(values: Mapping[str, Any]) -> None:
    """Random-token and shuffled contexts are compared with the examples at the same k (Fig. 7)."""
    missing = sorted(set(values["perturbed_shots"]) - set(values["shots"]))
    if missing:
        raise ValueError(f"Parameter 'perturbed_shots' = {values['perturbed_shots']} is not allowed with shots = "
                         f"{values['shots']}: every length of the random and shuffled contexts must also be in "
                         f"'shots' (missing: {missing}), so the controls have examples to be compared with.")


def _families_hold_the_pool(values: Mapping[str, Any]) -> None:
    """A family needs more than n_pool distinct questions: the pool is drawn first, test items from the rest."""
    from icl_geometry import tasks

    names = [f.strip() for f in str(values["families"]).split(",") if f.strip()]
    short = [f for f in names if f in tasks.QA_FAMILIES
             and len(tasks.make_items(f, values["n_pool"] + 1, seed=1, strict=False)) <= values["n_pool"]]
    if short:
        raise ValueError(f"Parameter 'families' = {values['families']!r} is not allowed with "
                         f"n_pool = {values['n_pool']}: "
                         f"{short} have at most {values['n_pool']} distinct questions, so no test item would be left "
                         f"after the example pool; leave them out or lower 'n_pool'.")


SPEC = ChapterSpec(
    number="04",
    paper="A",
    question=(
        'Does a larger final-layer rise of ID_eps predict that the examples added to a prompt make its '
        'answer correct?'
    ),
    answer=(
        "No: in the recorded full runs the final-layer rise does not predict a correct answer, the first "
        "layers' change is not the flat line the paper reports, and random or shuffled context does not "
        "raise the final-layer ID less than examples (three counted claims not reproduced); only the "
        "accuracy finding holds, that examples help more than random or shuffled context."
    ),
    slug="context_and_reasoning",
    title="Context and reasoning: does the last layer's intrinsic dimension predict a correct answer?",
    uses_model=True,
    params=(
        Param("families", ci="count_items,word_problems,arithmetic,sequence",
              full="word_problems,arithmetic,sequence,count_items,last_word,first_letter",
              kind="str", help="comma-separated task families (question-answer families of icl_geometry.tasks) "
                               "the questions come from; "
                               "two-option questions (compare, 'who is older') never enter the base set"),
        Param("n_candidates", ci=6, full=120, kind="int", low=2, high=100_000,
              help="questions per family answered at 0 shots; the base set is the ones answered wrongly"),
        Param("n_base", ci=8, full=300, kind="int", low=2, high=100_000,
              help="largest base set (items wrong at 0 shots, families interleaved); the paper used about 300"),
        Param("shots", ci=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), full=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), kind="ints",
              low=1, high=64, help="numbers of question-answer examples prepended (Fig. 6)"),
        Param("perturbed_shots", ci=(2, 10), full=(1, 2, 5, 10), kind="ints", low=1, high=64,
              help="lengths, in shots, of the random-token and shuffled-text contexts (Fig. 7); "
                   "these prompts share no prefix, so they cost the most"),
        Param("fixed_k", ci=4, full=4, kind="int", low=1, high=64,
              help="shots of the fixed-k design: every base item with n_sets independent example sets of this size"),
        Param("n_sets", ci=2, full=8, kind="int", low=0, high=64,
              help="independent example sets per base item at fixed_k, each beside random tokens matched to it in "
                   "turns and tokens (the conditional Figs. 6/8 test; 0: none)"),
        Param("n_pool", ci=50, full=50, kind="int", low=1, high=1000,
              help="examples per family the shots are drawn from (>= the largest k; 50 so that the contexts of "
                   "different questions differ)"),
        Param("items_per_pass", ci=0, full=10, kind="int", low=0, high=100_000,
              help="base items per pass of the context prompts; the run checkpoints after each pass and resumes "
                   "from it (0: all in one pass, no checkpoint); 10 lets a pass batch prompts of like length "
                   "(with one item per pass, every batch mixed short and long prompts and was padded to the longest)"),
        Param("eps", ci=0.1, full=0.1, kind="float", low=0.0, high=1.0,
              help="threshold of the paper's ID_eps (eq. 8)"),
        Param("n_bins", ci=5, full=8, kind="int", low=2, high=50,
              help="bins of ID change in Figs. 6-7 (equal-count bins)"),
        Param("n_boot", ci=200, full=1000, kind="int", low=20, high=100_000,
              help="bootstrap resamples (over items) for every interval"),
        Param("batch_size", ci=32, full=64, kind="int", low=1, high=4096,
              help="most prompts (packs of nested prompts) per forward pass"),
        Param("batch_tokens", ci=4096, full=32768, kind="int", low=64, high=10_000_000,
              help="most padded token positions per forward pass (memory; short prompts share a pass)"),
        Param("max_new_tokens", ci=16, full=24, kind="int", low=1, high=256,
              help="greedy answer length limit (answers stop at the end of their first line; "
                   "'The first letter of the word ... is ...' needs about 16)"),
        Param("chat_style", ci="multi_turn", full="multi_turn", kind="str", choices=CHAT_STYLES,
              help="how shots are laid out for chat models: own user/assistant turns, or one user message"),
    ),
    checks=(_pool_holds_the_shots, _controls_match_shots, _families_hold_the_pool),
)
