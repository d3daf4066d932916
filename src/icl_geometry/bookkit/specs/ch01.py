from typing import Any, Mapping

from icl_geometry.bookkit.specs.schema import ChapterSpec, Param


def _three_positions(values: Mapping[str, Any]) -> None:
    """Section 4's plane passes through the MLP inputs of exactly three tokens."""
    if len(values["positions"]) != 3:
        raise ValueError(f"Parameter 'positions' = {values['positions']!r} is not allowed: expected exactly three "
                         f"token positions (they define a plane).")

SPEC = ChapterSpec(
    number="01",
    paper="A",
    question=(
        'Does a ReLU network cut its input into as many linear regions as the theory says, does a wider '
        "one fit better, and do regions grow with the data's intrinsic dimension?"
    ),
    answer=(
        "The region counts match the theorems exactly and regions do grow with the input's intrinsic "
        'dimension (by construction, so not counted), but the one counted claim, that the 500-neuron MLP '
        "fits the sine better than the 50-neuron one, is inconclusive at the ci run's two seeds per "
        'width.'
    ),
    slug="partition_geometry",
    title="Partition geometry of MLPs: exact linear regions, and why intrinsic dimension multiplies them",
    uses_model=True,
    default_model="smollm2-135m",
    params=(
        Param("fig1_width", ci=12, full=12, kind="int", low=1, high=200,
              help="neurons of the one-hidden-layer 2-D nets of Fig. 1"),
        Param("deep_widths", ci=(16, 16, 16), full=(32, 32, 32, 32), kind="ints", low=1, high=256,
              help="hidden widths of the deeper 2-D net drawn next to Fig. 1"),
        Param("box", ci=3.0, full=3.0, kind="float", low=0.1, high=1000.0,
              help="half side of the square drawn in section 1"),
        Param("sine_widths", ci=(3, 5, 10, 20, 50, 100, 200, 500), full=(3, 5, 10, 20, 50, 100, 200, 500, 1000),
              kind="ints", low=1, high=5000, help="hidden widths of the sine fits (Fig. 2 uses 50 and 500)"),
        Param("sine_seeds", ci=2, full=5, kind="int", low=1, high=100, help="fits per width (seeds 0..n-1)"),
        Param("sine_steps", ci=1500, full=10000, kind="int", low=1, high=1_000_000,
              help="full-batch Adam steps per sine fit"),
        Param("sine_points", ci=500, full=1000, kind="int", low=10, high=1_000_000,
              help="training points on [-2 pi, 2 pi]"),
        Param("knot_width", ci=20, full=50, kind="int", low=2, high=5000,
              help="width of the separating experiment's fits (section 2: equal width, different regions)"),
        Param("knot_outside", ci=(0.0, 0.25, 0.5, 0.75), full=(0.0, 0.25, 0.5, 0.75), kind="floats", low=0.0,
              high=0.95, help="shares of knots started outside the domain (one set of fits per share)"),
        Param("knot_seeds", ci=3, full=8, kind="int", low=1, high=100, help="fits per share (seeds 0..n-1)"),
        Param("dims", ci=(1, 2, 3, 4, 5, 6, 8), full=(1, 2, 3, 4, 5, 6, 7, 8, 10, 12), kind="ints", low=1,
              high=64, help="intrinsic dimensions d of the data in section 3"),
        Param("ambient_dim", ci=16, full=16, kind="int", low=2, high=4096,
              help="input dimension D of the section-3 MLPs (d <= D)"),
        Param("dim_width", ci=32, full=64, kind="int", low=1, high=4096,
              help="neurons per hidden layer of the section-3 MLPs"),
        Param("dim_depths", ci=(1, 2), full=(1, 2, 3), kind="ints", low=1, high=8,
              help="hidden layers of the section-3 MLPs"),
        Param("sample_sizes", ci=(1000, 20000), full=(1000, 20000, 200000), kind="ints", low=10,
              high=10_000_000, help="points sampled on each d-dimensional data set"),
        Param("text", ci="The cat sat on the mat while the dog slept by the warm fire.",
              full="The cat sat on the mat while the dog slept by the warm fire.", kind="str",
              help="user message whose token representations define the planes of section 4"),
        Param("positions", ci=(-20, -16, -13), full=(-20, -16, -13), kind="ints", low=-4096, high=4096,
              help="three token positions of the chat-formatted text (negative: from the end)"),
        Param("llm_layers", ci=(1, 28), full=(1, 8, 15, 22, 28), kind="ints", low=-64, high=200,
              help="decoder layers whose gate arrangement is counted (early and late; negative from the last)"),
        Param("window_margin", ci=0.25, full=0.25, kind="float", low=0.0, high=10.0,
              help="the plane window: the three points' bounding box widened by this x its side"),
        Param("raster", ci=250, full=600, kind="int", low=20, high=4000,
              help="pixels per side of the region pictures (and of the grid sample count)"),
        Param("n_boot", ci=200, full=2000, kind="int", low=10, high=100_000,
              help="bootstrap resamples for intervals on correlations"),
    ),
    checks=(_three_positions,),
)
