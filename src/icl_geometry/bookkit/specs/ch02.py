from icl_geometry.bookkit.specs.schema import ChapterSpec, Param

SPEC = ChapterSpec(
    number="02",
    paper="A",
    question=(
        "Does denser attention (a longer context, more heads) raise the dimension of the MLP's input, and "
        'so its regions and its fit?'
    ),
    answer=(
        "Theorem 2.1's Minkowski-sum bound holds exactly and first-layer attention is near-uniform as the "
        'paper observes (reproduced), but in the trained attention + MLP toy a longer context gives no '
        'clear gain in fit, regions or input dimension (three counted claims inconclusive in the full '
        'run).'
    ),
    slug="attention_graphs",
    title="Attention as a graph: density, the Minkowski-sum bound, and the attention + MLP toy",
    uses_model=True,
    default_model="smollm2-135m",
    params=(
        Param("prompt", ci="Q: What is 12 + 30?\nA: 42\nQ: What is 21 + 13?\nA: 34\nQ: What is 45 + 11?\nA:",
              full="Q: What is 12 + 30?\nA: 42\nQ: What is 21 + 13?\nA: 34\nQ: What is 45 + 11?\nA:", kind="str",
              help="plain-text prompt whose attention graphs section 1 draws (no chat template)"),
        Param("graph_layers", ci=(0, 20), full=(0, 20), kind="ints", low=-64, high=200,
              help="two decoder layers drawn as graphs (negative: from the last)"),
        Param("graph_head", ci=0, full=0, kind="int", low=0, high=256, help="head drawn in section 1"),
        Param("eps", ci=0.1, full=0.1, kind="float", low=0.0, high=1.0,
              help="edge threshold on attention weights (the paper's eps of eq. 8)"),
        Param("n_queries", ci=2000, full=10000, kind="int", low=50, high=200_000,
              help="queries reading the fixed context in section 2 (points of each MLP-input cloud)"),
        Param("heads_list", ci=(1, 2, 4), full=(1, 2, 4, 8), kind="ints", low=1, high=64,
              help="numbers of heads in the section-2 experiments"),
        Param("keys_list", ci=(1, 2, 3, 5, 9), full=(1, 2, 3, 5, 9, 17), kind="ints", low=1, high=32,
              help="fixed supports: each head attends to the last k tokens of a 32-token context"),
        Param("temperatures", ci=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
              full=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0), kind="floats", low=1e-4, high=1e4,
              help="softmax temperatures of the density sweep"),
        Param("top_ks", ci=(2, 4, 8, 16), full=(2, 3, 4, 6, 8, 12, 16, 24), kind="ints", low=1, high=32,
              help="top-k masks (data-dependent supports) of section 2"),
        Param("toy_heads", ci=(1, 4), full=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), kind="ints", low=1, high=64,
              help="heads of the toy's heat map (Fig. 5); Fig. 4 and the claims use the fewest and the most"),
        Param("toy_contexts", ci=(1, 4, 16), full=(1, 2, 5, 10, 20, 50, 100), kind="ints", low=1, high=1000,
              help="context lengths of the toy: one network per heads and seed reads the first C tokens, "
                   "trained on all of them together and evaluated at each"),
        Param("toy_steps", ci=500, full=800, kind="int", low=1, high=1_000_000,
              help="full-batch Adam steps per toy network (each step's loss is the mean over toy_contexts)"),
        Param("toy_seeds", ci=3, full=8, kind="int", low=2, high=100,
              help="seeds per heads setting: independent kept fits, the units of the claims' intervals"),
        Param("toy_restarts", ci=2, full=1, kind="int", low=1, high=100,
              help="restarts per seed; the kept one has the lowest validation MSE (full: 8 seeds x 1 restart, "
                   "the grid sized to about an hour on one core)"),
        Param("toy_bins", ci=400, full=1000, kind="int", low=50, high=100_000,
              help="time bins of the toy's series (the paper: 1000)"),
        Param("toy_hidden", ci=8, full=8, kind="int", low=1, high=4096,
              help="ReLU neurons of the toy's MLP (a planar input allows 2 x toy_hidden + 1 pieces)"),
        Param("toy_d_head", ci=8, full=8, kind="int", low=1, high=64,
              help="width of each attention head of the toy (one head's input dimension <= min(d_head, C + 1))"),
        Param("toy_width_heads", ci=(1, 4), full=(1, 2, 4, 8), kind="ints", low=1, high=64,
              help="heads of the width-matched family (each must divide toy_width); d_head = toy_width / heads"),
        Param("toy_width", ci=8, full=16, kind="int", low=1, high=1024,
              help="heads x d_head of the width-matched family: every setting has the same attention parameters "
                   "(a setting equal to one of the grid's reuses its fits)"),
        Param("toy_intervention_contexts", ci=(1, 16), full=(1, 10, 100), kind="ints", low=1, high=1000,
              help="contexts (some of toy_contexts) at which each kept fit's MLP is refitted on the top-2 PCA "
                   "projection of its input and on the full input; the claim reads the longest"),
        Param("toy_refit_steps", ci=300, full=800, kind="int", low=1, high=1_000_000,
              help="full-batch Adam steps of each MLP refit of the intervention (from the trained MLP's weights)"),
    ),
)
