from icl_geometry.profiles import ChapterSpec, Param

SPEC = ChapterSpec(
    number="00",
    slug="inside_a_small_llm",
    title="Inside a small LLM",
    uses_model=True,
    params=(
        Param("shots", ci=(0, 1, 2, 4, 8), full=(0, 1, 2, 4, 8, 16), kind="ints", low=0, high=64,
              help="numbers of in-context examples to evaluate"),
        Param("n_items", ci=40, full=200, kind="int", low=4, high=5000,
              help="test questions per shot count"),
        Param("heatmap_layers", ci=(0, 14, 29), full=(0, 14, 29), kind="ints", low=-100, high=200,
              help="layers whose attention maps are drawn (negative counts from the last)"),
    ),
)
