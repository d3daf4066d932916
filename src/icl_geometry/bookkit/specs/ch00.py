from icl_geometry.bookkit.specs.schema import ChapterSpec, Param
from icl_geometry.tasks import families

SPEC = ChapterSpec(
    number="00",
    paper="A",
    question=(
        'What does a small pretrained LLM compute inside, and do a few solved examples in the prompt help '
        'it answer?'
    ),
    answer=(
        'The MLP inputs and attention weights of every layer can be read off one forward pass, but in the '
        'ci run a few examples raise accuracy only inconclusively and random tokens give no gain, '
        "while the paper's first-layer rise of ID_eps comes out reversed, as the count's ceiling forces "
        '(shown, not counted).'
    ),
    slug="inside_a_small_llm",
    title="Inside a small LLM",
    uses_model=True,
    params=(
        Param("family", ci="arithmetic", full="arithmetic", kind="str", choices=families("qa"),
              help="task family for the in-context learning check"),
        Param("shots", ci=(0, 1, 2, 4, 8), full=(0, 1, 2, 4, 8, 16), kind="ints", low=0, high=64,
              help="numbers of in-context examples to evaluate"),
        Param("n_items", ci=30, full=200, kind="int", low=4, high=5000,
              help="test questions per shot count"),
        Param("heatmap_layers", ci=(0, 14, -1), full=(0, 14, -1), kind="ints", low=-1000, high=1000,
              help="layers whose attention maps are drawn (negative counts from the last)"),
    ),
)
