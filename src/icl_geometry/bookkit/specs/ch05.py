from typing import Any, Mapping

from icl_geometry.bookkit.specs.schema import ChapterSpec, Param


def _grid(stop: float, step: float) -> tuple[float, ...]:
    return tuple(round(i * step, 6) for i in range(int(round(stop / step)) + 1))


def _ranks_within_d(values: Mapping[str, Any]) -> None:
    """The ranks r of W^KQ are model sizes to compare: strictly increasing, each at most d."""
    r, d = values["ranks"], values["d"]
    if any(b <= a for a, b in zip(r, r[1:])) or max(r) > d:
        raise ValueError(f"Parameter 'ranks' = {r!r} is not allowed with d = {d}: expected strictly increasing "
                         f"integers in [1, d].")


def _noise_grids(values: Mapping[str, Any]) -> None:
    """Each noise grid is a sweep: at least 3 increasing standard deviations, starting at 0 (the clean case)."""
    for name in ("label_noise", "input_noise"):
        g = values[name]
        if len(g) < 3 or g[0] != 0 or any(b <= a for a, b in zip(g, g[1:])):
            raise ValueError(f"Parameter {name!r} = {g!r} is not allowed: expected at least 3 increasing "
                             f"standard deviations starting at 0.")


SPEC = ChapterSpec(
    number="05",
    paper="B",
    question=(
        'In in-context linear regression, why is a higher-rank (larger) linear attention more easily '
        'distracted by noisy demonstrations?'
    ),
    answer=(
        'Because a higher-rank model also uses the weak eigen-directions that noise overwhelms first: the '
        'closed form and training agree, and all three counted claims are reproduced (larger ranks lose '
        'first under label and under input noise; smaller ranks keep the top eigen-directions).'
    ),
    slug="icl_linear_regression",
    title="In-context linear regression: why a higher-rank attention is more easily distracted",
    uses_model=False,
    params=(
        Param("d", ci=8, full=16, kind="int", low=2, high=256, help="input dimension"),
        Param("N", ci=32, full=64, kind="int", low=2, high=100_000, help="context examples per prompt"),
        Param("ranks", ci=(1, 2, 4, 8), full=(1, 2, 4, 8, 12, 16), kind="ints", low=1, high=256,
              help="ranks r of W^KQ (model sizes) to train, increasing, each <= d"),
        Param("spectrum", ci="power", full="power", kind="str", choices=("power", "geometric", "flat"),
              help="shape of the eigenvalues of Lambda (normalised to trace d)"),
        Param("decay", ci=1.0, full=1.0, kind="float", low=0.0, high=10.0,
              help="decay of the spectrum: lambda_i ~ i^-decay (power) or exp(-decay (i-1)) (geometric)"),
        Param("label_noise", ci=_grid(12.0, 0.5), full=_grid(20.0, 0.25), kind="floats", low=0.0, high=1e3,
              help="test-time label-noise standard deviations (increasing, starting at 0)"),
        Param("input_noise", ci=_grid(7.0, 0.25), full=_grid(10.0, 0.125), kind="floats", low=0.0, high=1e3,
              help="test-time input-noise standard deviations (increasing, starting at 0)"),
        Param("steps", ci=1000, full=4000, kind="int", low=1, high=1_000_000, help="training steps"),
        Param("batch", ci=2048, full=16384, kind="int", low=1, high=10_000_000,
              help="fresh prompts per training step"),
        Param("lr", ci=0.02, full=0.02, kind="float", low=1e-6, high=1.0, help="Adam peak learning rate"),
        Param("n_test", ci=40_000, full=400_000, kind="int", low=100, high=100_000_000,
              help="test prompts for every Monte Carlo loss"),
    ),
    checks=(_ranks_within_d, _noise_grids),
)
