from math import comb

from icl_geometry.bookkit.specs.schema import ChapterSpec, Param


def _grid(stop: float, step: float) -> tuple[float, ...]:
    return tuple(round(i * step, 6) for i in range(int(round(stop / step)) + 1))


def _check(v: dict) -> None:
    """Checks that involve several knobs (each message names them)."""
    if v["k"] > v["d"]:
        raise ValueError(f"Parameters 'k' = {v['k']} and 'd' = {v['d']}: a task reads k of the d coordinates, "
                         f"so k must be <= d.")
    if v["n_subsets"] > comb(v["d"], v["k"]):
        raise ValueError(f"Parameters 'n_subsets' = {v['n_subsets']}, 'd' = {v['d']}, 'k' = {v['k']}: there are "
                         f"only C(d, k) = {comb(v['d'], v['k'])} subsets of k coordinates.")
    heads = v["heads"]
    if any(b <= a for a, b in zip(heads, heads[1:])) or heads[-1] > v["n_subsets"]:
        raise ValueError(f"Parameters 'heads' = {heads!r} and 'n_subsets' = {v['n_subsets']}: expected strictly "
                         f"increasing head counts, the largest <= n_subsets.")
    for name in ("label_flip", "input_flip"):
        g = v[name]
        if len(g) < 3 or g[0] != 0 or any(b <= a for a, b in zip(g, g[1:])):
            raise ValueError(f"Parameter {name!r} = {g!r} is not allowed: expected at least 3 increasing flip rates "
                             f"in [0, 1] starting at 0.")
    if max(v["label_flip"]) < 0.5:
        raise ValueError(f"Parameter 'label_flip' = {v['label_flip']!r}: the grid must reach 0.5 (every "
                         f"crossover lies below it).")


SPEC = ChapterSpec(
    number="06",
    paper="B",
    question=(
        'Does a transformer with more attention heads learn sparse parity better in context, and is it '
        'more easily distracted by noisy demonstrations?'
    ),
    answer=(
        'Mostly yes: with more heads the clean loss falls, fewer heads cover only the most important '
        'tasks and the largest model falls below the smallest under label noise (three counted claims '
        'reproduced), but under input noise the two do not cross (no effect).'
    ),
    slug="sparse_parity",
    title="In-context sparse parity: why more attention heads are more easily distracted",
    uses_model=False,
    params=(
        Param("d", ci=8, full=10, kind="int", low=2, high=10, help="input dimension (inputs in {-1, +1}^d)"),
        Param("k", ci=2, full=3, kind="int", low=1, high=10, help="coordinates per parity (task subset size)"),
        Param("n_subsets", ci=16, full=16, kind="int", low=1, high=252, help="task subsets K (hidden features)"),
        Param("decay", ci=0.8, full=0.8, kind="float", low=0.05, high=1.0,
              help="importance of subset t is proportional to decay^t (geometric)"),
        Param("N", ci=32, full=64, kind="int", low=2, high=4096, help="context examples per prompt"),
        Param("heads", ci=(1, 2, 4, 8, 16), full=(1, 2, 4, 8, 16), kind="ints", low=1, high=252,
              help="attention heads m of the models (sizes), increasing, each <= n_subsets"),
        Param("seeds", ci=3, full=8, kind="int", low=2, high=64, help="trained initialisations per size"),
        Param("width", ci=64, full=128, kind="int", low=1, high=4096, help="hidden width of the learned first layer"),
        Param("steps", ci=2000, full=20000, kind="int", low=1, high=10_000_000, help="training steps"),
        Param("batch", ci=512, full=4096, kind="int", low=1, high=1_000_000,
              help="fresh prompts per step (linear-attention families)"),
        Param("softmax_batch", ci=256, full=4096, kind="int", low=1, high=1_000_000,
              help="fresh prompts per step (softmax family)"),
        Param("lr", ci=0.01, full=0.01, kind="float", low=1e-6, high=1.0, help="Adam peak learning rate"),
        Param("label_flip", ci=_grid(0.5, 1 / 32) + (0.625, 0.75, 0.875, 1.0),
              full=_grid(0.5, 1 / 64) + (0.625, 0.75, 0.875, 1.0), kind="floats", low=0.0, high=1.0,
              help="test-time fractions of flipped context labels (increasing from 0; rounded to whole labels)"),
        Param("input_flip", ci=_grid(0.5, 0.025), full=_grid(0.5, 0.0125), kind="floats", low=0.0, high=1.0,
              help="test-time probabilities of flipping each context coordinate (increasing from 0)"),
        Param("n_test", ci=16000, full=100_000, kind="int", low=100, high=100_000_000,
              help="test prompts for every Monte Carlo estimate"),
    ),
    checks=(_check,),
)
