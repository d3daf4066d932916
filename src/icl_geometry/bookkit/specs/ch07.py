from typing import Any, Mapping

from icl_geometry.bookkit.specs.schema import ChapterSpec, Param


def _models_and_families(values: Mapping[str, Any]) -> None:
    """Every name in `models` is a bundled model, a local directory or a hub id; `families` are known; there
    are at least two models to compare."""
    from icl_geometry import tasks
    from icl_geometry.llm import lm

    names = lm.parse_models(values["models"])
    if len(names) < 2:
        raise ValueError(f"Parameter 'models' = {values['models']!r} is not allowed: the chapter compares sizes, "
                         f"give at least two comma-separated models (smaller first)")
    tasks.parse_families(values["families"], "classification")


def _families_hold_pool_and_queries(values: Mapping[str, Any]) -> None:
    """Each family has the inputs for its pool (n_pool, balanced) and its n_items queries: per class at least
    ceil(n_pool / 2) and ceil(n_items / 2) inputs (queries beyond the inputs outside the pool come from the pool,
    never as their own demonstration: `tasks.demonstrations`)."""
    from icl_geometry import tasks

    for family in tasks.parse_families(values["families"], "classification"):
        fam = tasks.CLASSIFICATION_FAMILIES[family]
        need = max((values["n_pool"] + 1) // 2, (values["n_items"] + 1) // 2)
        if min(len(c) for c in fam.inputs) < need:
            raise ValueError(f"Parameters 'families', 'n_pool' = {values['n_pool']} and 'n_items' = "
                             f"{values['n_items']} are not allowed together: family {family!r} has "
                             f"{min(len(c) for c in fam.inputs)} inputs in its smaller class, {need} are needed")


def _pool_holds_the_demonstrations(values: Mapping[str, Any]) -> None:
    """k balanced demonstrations need ceil(k/2) pool examples of each class: n_pool >= k + (k odd)."""
    k, n_pool = values["k"], values["n_pool"]
    if n_pool < k + k % 2:
        raise ValueError(f"Parameters 'k' = {k} and 'n_pool' = {n_pool} are not allowed together: k balanced "
                         f"demonstrations need n_pool >= {k + k % 2}")


def _rates_start_clean(values: Mapping[str, Any]) -> None:
    """Both noise grids hold 0 (the clean condition the slopes start from) and at least one rate above it."""
    for name in ("flip_rates", "noise_rates"):
        rates = values[name]
        if 0.0 not in rates or max(rates) <= 0:
            raise ValueError(f"Parameter {name!r} = {rates} is not allowed: it must contain 0 and a rate above 0")


SPEC = ChapterSpec(
    number="07",
    paper="B",
    question=(
        'Is the larger of two real LLMs more easily distracted by noisy demonstrations, as paper B '
        'predicts?'
    ),
    answer=(
        'Not answerable with the bundled pair: scored fairly (contextual calibration, each query its own '
        'demonstrations, intervals over families), few families leave both models room to lose accuracy, '
        'and SmolLM2-135M and Gemma-3-270M differ in family, data, tokenizer and chat tuning as well as in '
        'size, so no comparison of them counts; the Llama sizes on a GPU can answer it.'
    ),
    slug="noisy_demonstrations",
    title="Real LLMs under noisy demonstrations: is the larger model more easily distracted?",
    uses_model=True,
    params=(
        Param("models", ci="smollm2-135m,gemma3-270m",
              full="meta-llama/Llama-3.2-1B,meta-llama/Llama-3.2-3B,meta-llama/Llama-3.1-8B,meta-llama/Llama-3.1-70B",
              kind="str", help="comma-separated models, smallest first: bundled names, local checkpoints or hub ids "
                               "(the `model` parameter is not used by this chapter)"),
        Param("families", ci="plural,names,sentiment_foobar,names_foobar",
              full="sentiment,category,plural,names,language,question,sentiment_foobar,names_foobar",
              kind="str",
              help="comma-separated classification families (classification families of icl_geometry.tasks); "
                   "meaningful-label and foo/bar families are reported apart"),
        Param("k", ci=6, full=8, kind="int", low=1, high=64,
              help="demonstrations per prompt, drawn per query from its family's pool"),
        Param("n_items", ci=8, full=48, kind="int", low=4, high=1000, help="clean queries per family (balanced)"),
        Param("n_pool", ci=24, full=64, kind="int", low=2, high=1000,
              help="demonstration pool per family (each query draws its own k from it, never itself)"),
        Param("flip_rates", ci=(0.0, 0.5, 1.0), full=(0.0, 0.25, 0.5, 0.75, 1.0), kind="floats",
              low=0.0, high=1.0,
              help="fractions p of demonstration labels flipped (p = 1: Wei et al.'s flipped labels)"),
        Param("noise_rates", ci=(0.0, 0.5, 1.0), full=(0.0, 0.5, 1.0), kind="floats", low=0.0,
              high=1.0, help="fractions q of demonstration inputs replaced by random text of the same token length"),
        Param("eps", ci=0.1, full=0.1, kind="float", low=0.0, high=1.0, help="threshold of paper A's ID_eps (eq. 8)"),
        Param("n_boot", ci=500, full=2000, kind="int", low=20, high=100_000,
              help="bootstrap resamples (families, then queries) for every interval"),
        Param("batch_size", ci=16, full=32, kind="int", low=1, high=4096, help="most prompts per forward pass"),
        Param("batch_tokens", ci=4096, full=32768, kind="int", low=64, high=10_000_000,
              help="most padded token positions per forward pass"),
    ),
    checks=(_models_and_families, _pool_holds_the_demonstrations, _families_hold_pool_and_queries,
            _rates_start_clean),
)
