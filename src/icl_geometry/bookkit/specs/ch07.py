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
        'Partly: Gemma3-270M loses more accuracy than SmolLM2-135M under label noise and follows flipped '
        'labels more, but it is no better on clean demonstrations and the input-noise difference is '
        'inconclusive; none of this is counted, since the two models differ in family and training as '
        'well as in size.'
    ),
    slug="noisy_demonstrations",
    title="Real LLMs under noisy demonstrations: is the larger model more easily distracted?",
    uses_model=True,
    params=(
        Param("models", ci="smollm2-135m,gemma3-270m",
              full="meta-llama/Llama-3.2-1B,meta-llama/Llama-3.2-3B,meta-llama/Llama-3.1-8B,meta-llama/Llama-3.1-70B",
              kind="str", help="comma-separated models, smallest first: bundled names, local checkpoints or hub ids "
                               "(the `model` parameter is not used by this chapter)"),
        Param("families", ci="sentiment,category,continent",
              full="sentiment,category,continent,magnitude,sentiment_foobar,category_foobar,continent_foobar",
              kind="str",
              help="comma-separated classification families (classification families of icl_geometry.tasks)"),
        Param("k", ci=8, full=16, kind="int", low=1, high=64, help="demonstrations per prompt"),
        Param("n_items", ci=10, full=24, kind="int", low=4, high=1000, help="clean queries per family (balanced)"),
        Param("n_pool", ci=12, full=16, kind="int", low=2, high=1000,
              help="demonstration pool per family (no input in common with the queries)"),
        Param("flip_rates", ci=(0.0, 0.25, 0.5, 0.75, 1.0), full=(0.0, 0.25, 0.5, 0.75, 1.0), kind="floats",
              low=0.0, high=1.0,
              help="fractions p of demonstration labels flipped (p = 1: Wei et al.'s flipped labels)"),
        Param("noise_rates", ci=(0.0, 0.25, 0.5, 0.75, 1.0), full=(0.0, 0.25, 0.5, 0.75, 1.0), kind="floats", low=0.0,
              high=1.0, help="fractions q of demonstration inputs replaced by random text of the same token length"),
        Param("eps", ci=0.1, full=0.1, kind="float", low=0.0, high=1.0, help="threshold of paper A's ID_eps (eq. 8)"),
        Param("n_boot", ci=500, full=2000, kind="int", low=20, high=100_000,
              help="bootstrap resamples (over queries) for every interval"),
        Param("batch_size", ci=16, full=32, kind="int", low=1, high=4096, help="most prompts per forward pass"),
        Param("batch_tokens", ci=4096, full=32768, kind="int", low=64, high=10_000_000,
              help="most padded token positions per forward pass"),
    ),
    checks=(_models_and_families, _pool_holds_the_demonstrations, _rates_start_clean),
)
