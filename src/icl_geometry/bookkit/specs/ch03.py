from typing import Any, Mapping

from icl_geometry.bookkit.specs.schema import ChapterSpec, Param
from icl_geometry.tasks import families


def _family_holds_disjoint_shots(values: Mapping[str, Any]) -> None:
    """Disjoint shots need n_prompts x the most shots fresh questions besides the test items and the pool."""
    if not values["disjoint_shots"]:
        return
    from icl_geometry import tasks

    need = values["n_prompts"] * (1 + max(values["shots"])) + max(20, 2 * max(values["shots"]))
    if len(tasks.make_items(values["family"], need, seed=2, strict=False)) < need:
        raise ValueError(f"Parameter 'disjoint_shots' = True is not allowed with family = {values['family']!r}, "
                         f"n_prompts = {values['n_prompts']} and shots = {values['shots']}: the family has fewer "
                         f"than {need} distinct questions (test items, pool and {values['n_prompts']} x "
                         f"{max(values['shots'])} disjoint shots); set it to False or use fewer prompts.")

SPEC = ChapterSpec(
    number="03",
    paper="A",
    question=(
        "Is the paper's intrinsic dimension (eq. 8, a count of attention weights) a dimension, and do "
        'more shots raise it at the final layer?'
    ),
    answer=(
        'Eq. 8 counts attention weights above a threshold rather than estimating a geometric dimension, '
        'and on SmolLM2-135M more shots do not clearly raise it at the final layer (the counted claim is '
        'inconclusive in the ci run), while the first-layer count falls, as its ceiling forces.'
    ),
    slug="intrinsic_dimension",
    title="Intrinsic dimension: estimators you can trust, next to the paper's attention count",
    uses_model=True,
    params=(
        Param("sample_sizes", ci=(250, 1000, 4000), full=(250, 1000, 4000, 16000, 50000), kind="ints",
              low=20, high=200_000, help="numbers of points for the estimator-validation sweeps"),
        Param("ambient_dims", ci=(10, 100, 576), full=(10, 100, 576, 2048), kind="ints", low=8, high=10_000,
              help="ambient dimensions D for the bias-with-D sweep (a 5-d manifold needs D >= 8)"),
        Param("family", ci="word_problems", full="word_problems", kind="str", choices=families("qa"),
              help="question-answer task family of the prompts (icl_geometry.tasks)"),
        Param("n_prompts", ci=20, full=160, kind="int", low=8, high=5000,
              help="prompts per shot count for the LLM section (the controls' claims need 60)"),
        Param("shots", ci=(0, 2, 5, 10), full=(0, 2, 5, 10), kind="ints", low=0, high=32,
              help="numbers of in-context examples prepended to each prompt"),
        Param("tail_tokens", ci=16, full=32, kind="int", low=1, high=512,
              help="last tokens of each prompt whose MLP inputs form the per-layer point cloud"),
        Param("eps", ci=0.1, full=0.1, kind="float", low=0.0, high=1.0,
              help="threshold of the paper's ID_eps (eq. 8)"),
        Param("n_boot", ci=100, full=500, kind="int", low=10, high=10_000,
              help="bootstrap resamples for error bars"),
        Param("shuffled_control", ci=False, full=True, kind="bool",
              help="also trace the shots' own words shuffled at the most shots (same words and diversity, no task)"),
        Param("disjoint_shots", ci=False, full=True, kind="bool",
              help="also trace the most shots drawn without overlap between prompts (no example shared)"),
    ),
    checks=(_family_holds_disjoint_shots,),
)
