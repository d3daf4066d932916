"""Known answers and properties of `icl_geometry.core.partition`: exact regions on planes and segments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from icl_geometry.core import partition as pt

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mlp(widths: list[int], seed: int, d_in: int = 2, bias: bool = True, leaky: float | None = None) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    k = d_in
    for w in widths:
        layers += [nn.Linear(k, w, bias=bias), nn.ReLU() if leaky is None else nn.LeakyReLU(leaky)]
        k = w
    layers.append(nn.Linear(k, 1, bias=bias))
    return nn.Sequential(*layers)


def one_layer(a: np.ndarray, c: np.ndarray) -> nn.Sequential:
    lin = nn.Linear(2, len(c)).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(a))
        lin.bias.copy_(torch.as_tensor(c))
    return nn.Sequential(lin, nn.ReLU())


def box_grid(bounds, n: int) -> np.ndarray:
    x0, x1, y0, y1 = bounds
    # cell centres: never exactly on a box edge
    u = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    v = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    U, V = np.meshgrid(u, v)
    return np.stack([U.ravel(), V.ravel()], 1)


def pattern_set(P: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.packbits(P, axis=1)}


# ----------------------------------------------------------------------------- one layer: known answers

@FAST
@given(n=st.integers(1, 18), seed=st.integers(0, 10_000))
def test_one_layer_general_position_gives_one_plus_n_plus_n_choose_2(n, seed):
    net = mlp([n], seed)
    a, c = pt.first_layer_lines(net)
    assume(pt.in_general_position(a, c))
    box = pt.arrangement_bounds(a, c, margin=0.2)
    expected = 1 + n + math.comb(n, 2)
    assert pt.count_regions_2d(net, box, method="polygons") == expected
    assert pt.count_regions_2d(net, box, method="lines") == expected
    assert expected == pt.regions_bound(n, 2)


@pytest.mark.parametrize("n", [1, 2, 7, 30])
def test_zero_bias_lines_through_origin_make_2n_cones(n):
    net = mlp([n], seed=n, bias=False)
    for method in ("polygons", "lines"):
        assert pt.count_regions_2d(net, (-1, 1, -1, 1), method=method) == 2 * n


def test_lines_that_miss_the_box_do_not_cut_it():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    c = np.array([-5.0, 7.0, 20.0])  # x = 5, y = -7, x + y = -20: all outside [-1, 1]^2
    net = one_layer(a, c)
    for method in ("polygons", "lines"):
        assert pt.count_regions_2d(net, (-1, 1, -1, 1), method=method) == 1


def test_parallel_and_repeated_lines():
    # x = -0.5, x = 0, x = 0.5, and x = 0 again (a dead duplicate), y = 0: 4 strips x 2 = 8
    a = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [-3.0, 0.0], [0.0, 1.0]])
    c = np.array([0.5, 0.0, -0.5, 0.0, 0.0])
    net = one_layer(a, c)
    for method in ("polygons", "lines"):
        assert pt.count_regions_2d(net, (-1, 1, -1, 1), method=method) == 8


@FAST
@given(coef=st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-4, 4)), min_size=1,
                     max_size=14))
def test_degenerate_integer_arrangements_two_methods_agree(coef):
    """Small integer lines are full of parallel, repeated and concurrent lines and lines through vertices."""
    arr = np.array(coef, dtype=np.float64)
    net = one_layer(arr[:, :2], arr[:, 2])
    box = (-2.5, 2.5, -2.5, 2.5)
    n_poly = pt.count_regions_2d(net, box, method="polygons")
    assert n_poly == pt.count_regions_2d(net, box, method="lines")
    # the regions' patterns are all different and the grid sees no other pattern
    V, C, P = pt.region_arrays(net, box)
    assert pt.count_distinct(P) == n_poly
    # grid points lying exactly on a line get a boundary pattern (ReLU(0) = off), not a region's: drop them
    grid = box_grid(box, 101)
    pre = np.asarray(grid, dtype=np.float64) @ arr[:, :2].T + arr[:, 2]
    grid = grid[np.all(np.abs(pre) > 1e-9, axis=1)]
    assert pattern_set(pt.activation_patterns(net, grid)) <= pattern_set(P)


# ----------------------------------------------------------------------------- deep nets

@FAST
@given(widths=st.lists(st.integers(1, 12), min_size=1, max_size=4), seed=st.integers(0, 10_000),
       leaky=st.sampled_from([None, 0.1, 0.5]), bias=st.booleans())
def test_regions_tile_the_box_and_patterns_are_consistent(widths, seed, leaky, bias):
    net = mlp(widths, seed, bias=bias, leaky=leaky)
    box = (-2.0, 1.0, -1.5, 2.5)
    V, C, P = pt.region_arrays(net, box)
    areas = pt.polygon_areas(V, C)
    assert (areas > 0).all()
    assert areas.sum() == pytest.approx(12.0, rel=1e-9)
    assert pt.count_distinct(P) == len(C)  # one convex cell per pattern
    starts = np.concatenate([[0], np.cumsum(C)[:-1]])
    centroids = np.add.reduceat(V, starts, axis=0) / C[:, None]
    assert (pt.activation_patterns(net, centroids) == P).all()
    assert pt.count_regions_2d(net, box) == len(C)
    assert P.shape[1] == pt.n_neurons(net) == sum(widths)


def test_exact_count_is_at_least_the_sampled_count_and_contains_every_sampled_pattern():
    for seed in range(3):
        net = mlp([12, 12, 12], seed)
        box = (-3, 3, -3, 3)
        _, C, P = pt.region_arrays(net, box)
        grid = pt.activation_patterns(net, box_grid(box, 200))
        assert pt.count_distinct(grid) <= len(C)
        assert pattern_set(grid) <= pattern_set(P)


def test_fine_grid_finds_every_region_of_small_nets():
    """For small nets whose smallest region is many pixels wide, a fine grid sees every region."""
    checked = 0
    for seed in range(8):
        net = mlp([4, 4], seed)
        box = (-2, 2, -2, 2)
        regions = pt.regions_2d(net, box)
        n_px = 400
        px = 4.0 / n_px
        # the largest disc inside each polygon is at least area / perimeter; want > 2 pixels
        fat = all(r.area / np.linalg.norm(np.diff(np.vstack([r.vertices, r.vertices[:1]]), axis=0), axis=1).sum()
                  > 2 * px for r in regions)
        if not fat:
            continue
        checked += 1
        assert pt.count_distinct(pt.activation_patterns(net, box_grid(box, n_px))) == len(regions)
    assert checked >= 3  # the test must not pass vacuously


def test_regions_2d_returns_convex_counter_clockwise_polygons():
    net = mlp([8, 8], 3, leaky=0.2)
    for r in pt.regions_2d(net, (-1, 1, -1, 1)):
        d = np.diff(np.vstack([r.vertices, r.vertices[:2]]), axis=0)
        turn = d[:-1, 0] * d[1:, 1] - d[:-1, 1] * d[1:, 0]
        assert (turn >= -1e-12).all() and r.area > 0


# ----------------------------------------------------------------------------- planes of higher-dim inputs

def test_plane_counts_match_a_2d_net_with_the_plane_folded_in():
    net = mlp([10, 10], seed=4, d_in=7)
    rng = np.random.default_rng(0)
    plane = pt.plane_through(*rng.standard_normal((3, 7)))
    box = plane.window(0.5)
    first = net[0]
    folded = nn.Linear(2, 10).double()
    with torch.no_grad():
        W = first.weight.double()
        folded.weight.copy_(W @ torch.as_tensor(plane.basis).T)
        folded.bias.copy_(W @ torch.as_tensor(plane.origin) + first.bias.double())
    net2 = nn.Sequential(folded, *list(net)[1:])
    assert pt.count_regions_2d(net, box, plane=plane) == pt.count_regions_2d(net2, box)
    # the defining points sit at their coordinates
    assert np.allclose(plane.lift(plane.coords), plane.project(plane.lift(plane.coords)) @ plane.basis
                       + plane.origin)


def test_gate_line_model_matches_the_module_and_the_polygon_count():
    torch.manual_seed(0)
    gate = nn.Linear(12, 40, bias=False).double()
    plane = pt.plane_through(*torch.randn(3, 12))
    box = plane.window(0.25)
    uv = box_grid(box, 50)
    assert pt.gate_sign_mismatch(gate, plane, uv) == 0.0
    n = pt.gate_regions_on_plane(gate, plane, box)
    assert n == pt.count_regions_2d(nn.Sequential(gate, nn.ReLU()), box, plane=plane, method="polygons")
    # the raster (plane folded into the weights) labels pixels as the lifted points' patterns do
    u, v, labels = pt.raster_patterns(gate, box, 40, plane=plane)
    lifted = pt.activation_patterns(nn.Sequential(gate, nn.ReLU()),
                                    plane.lift(np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)))
    _, ref = np.unique(np.packbits(lifted, axis=1), axis=0, return_inverse=True)
    assert (labels.ravel() == ref.ravel()).all()
    # positive rescaling of the inputs (what RMS normalisation does) keeps every gate sign
    X = torch.as_tensor(plane.lift(uv))
    assert ((gate(X) > 0) == (gate(3.7 * X) > 0)).all()


# ----------------------------------------------------------------------------- 1-D

@FAST
@given(widths=st.lists(st.integers(1, 8), min_size=1, max_size=3), seed=st.integers(0, 10_000),
       d_in=st.integers(1, 5))
def test_1d_count_matches_brute_force(widths, seed, d_in):
    net = mlp(widths, seed, d_in=d_in, leaky=0.05 if seed % 2 else None)
    rng = np.random.default_rng(seed)
    a, b = 3 * rng.standard_normal(d_in), 3 * rng.standard_normal(d_in)
    breaks, patterns = pt.regions_1d(net, a, b)
    assert len(patterns) == len(breaks) + 1 == pt.count_regions_1d(net, a, b)
    assert (np.diff(breaks) > 0).all() and (breaks > 0).all() and (breaks < 1).all()
    knots = np.concatenate([[0.0], breaks, [1.0]])
    mids = (knots[1:] + knots[:-1]) / 2
    assert (pt.activation_patterns(net, a + mids[:, None] * (b - a)) == patterns).all()
    n = 20_001
    assume(np.diff(knots).min() > 3.0 / n)  # every piece wider than the grid step
    t = np.linspace(0, 1, n)
    P = pt.activation_patterns(net, a + t[:, None] * (b - a))
    assert 1 + int((P[1:] != P[:-1]).any(1).sum()) == len(breaks) + 1


@FAST
@given(n=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_1d_one_layer_crosses_each_hyperplane_once(n, seed):
    """A segment crosses a hyperplane at most once: regions = 1 + neurons whose sign differs at the ends."""
    net = mlp([n], seed, d_in=6)
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(6), rng.standard_normal(6)
    ends = pt.activation_patterns(net, np.stack([a, b]))
    assert pt.count_regions_1d(net, a, b) == 1 + int((ends[0] != ends[1]).sum())


# ----------------------------------------------------------------------------- sampling, visits, bound

def test_visited_regions_exact_bounds_sampled_on_lines_and_planes():
    net = mlp([12, 12], seed=2, d_in=6)
    rng = np.random.default_rng(1)
    for d in (1, 2):
        X = rng.standard_normal((3000, d)) @ np.linalg.qr(rng.standard_normal((6, d)))[0].T + 0.3
        v = pt.visited_regions(net, X)
        assert v.span_dim == d and v.exact is not None and v.exact >= v.sampled >= 1
    X = rng.standard_normal((500, 4))
    X = X @ rng.standard_normal((4, 6))
    v = pt.visited_regions(net, X)
    assert v.span_dim == 4 and v.exact is None and v.sampled >= 1


def test_sample_patterns_counts_distinct_rows():
    net = one_layer(np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2))
    X = np.array([[1, 1], [2, 3], [-1, 1], [-1, -1], [1, -2], [5, 5]], dtype=float)
    assert pt.sample_patterns(net, X) == 4
    assert pt.count_distinct(np.zeros((0, 3), bool)) == 0


def test_regions_bound_known_values():
    assert pt.regions_bound(50, 0) == 1
    assert pt.regions_bound(50, 1) == 51
    assert pt.regions_bound(50, 2) == 1276
    assert pt.regions_bound(10, 10) == 2 ** 10
    assert pt.regions_bound(10, 20) == 2 ** 10
    assert pt.regions_bound(500, 3) == 1 + 500 + math.comb(500, 2) + math.comb(500, 3)


# ----------------------------------------------------------------------------- bad input

def test_bad_input_names_the_parameter():
    net = mlp([4], 0)
    with pytest.raises(ValueError, match="bounds"):
        pt.count_regions_2d(net, (1, -1, 0, 1))
    with pytest.raises(ValueError, match="method"):
        pt.count_regions_2d(net, (-1, 1, -1, 1), method="grid")
    with pytest.raises(ValueError, match="method = 'lines'"):
        pt.count_regions_2d(mlp([4, 4], 0), (-1, 1, -1, 1), method="lines")
    with pytest.raises(ValueError, match="Conv1d"):
        pt.count_regions_2d(nn.Sequential(nn.Linear(2, 3), nn.Conv1d(1, 1, 1)))
    with pytest.raises(ValueError, match="no ReLU"):
        pt.count_regions_2d(nn.Sequential(nn.Linear(2, 3)))
    with pytest.raises(ValueError, match="plane"):
        pt.count_regions_2d(mlp([4], 0, d_in=5), (-1, 1, -1, 1))
    with pytest.raises(ValueError, match="collinear"):
        pt.plane_through([0, 0, 0], [1, 1, 1], [2, 2, 2])
    with pytest.raises(ValueError, match="n_neurons"):
        pt.regions_bound(-1, 2)
    with pytest.raises(ValueError, match="a, b"):
        pt.count_regions_1d(net, [0, 0, 0], [1, 1, 1])


# ----------------------------------------------------------------------------- the real LLM (slow)

@pytest.mark.slow
def test_smollm2_gate_arrangement_on_a_plane_through_real_tokens():
    from icl_geometry.llm import engine, lm

    loaded = lm.load("smollm2-135m", "cpu")
    tr = engine.trace(loaded, "The cat sat on the mat while the dog slept by the fire.", positions=(-9, -5, -2))
    for layer in (1, loaded.n_layers - 2):
        X = tr.mlp_inputs[layer]
        gate = loaded.layers[layer].mlp.gate_proj
        plane = pt.plane_through(*X)
        uv = box_grid(plane.window(0.25), 60)
        # the module (float32) agrees with our float64 lines except possibly within rounding of a line
        assert pt.gate_sign_mismatch(gate, plane, uv) < 1e-4
        # crossing counting = polygon splitting on a small window (thousands of regions)
        c0 = plane.coords.mean(0)
        h = 0.03 * np.ptp(plane.coords[:, 0])
        small = (c0[0] - h, c0[0] + h, c0[1] - h, c0[1] + h)
        net = nn.Sequential(gate, nn.ReLU())
        n_lines = pt.count_regions_2d(net, small, plane=plane, method="lines")
        assert n_lines > 100
        assert n_lines == pt.count_regions_2d(net, small, plane=plane, method="polygons")
        assert pt.gate_regions_on_plane(gate, plane, plane.window(0.25)) >= n_lines
        ends = pt.activation_patterns(net, X[:2])
        assert pt.count_regions_1d(net, X[0], X[1]) == 1 + int((ends[0] != ends[1]).sum())


def test_chunked_enumeration_equals_unchunked(monkeypatch):
    """Polygons are split in chunks of CHUNK; a tiny chunk size must give the same regions."""
    net = mlp([10, 10, 10], seed=5, leaky=0.1)
    box = (-2, 2, -2, 2)
    V, C, P = pt.region_arrays(net, box)
    monkeypatch.setattr(pt.polygons, "CHUNK", 7)  # read by polygons._run
    V2, C2, P2 = pt.region_arrays(net, box)
    assert len(C2) == len(C) == pt.count_regions_2d(net, box)
    assert pattern_set(P2) == pattern_set(P)
    assert pt.polygon_areas(V2, C2).sum() == pytest.approx(16.0, rel=1e-9)


def test_draw_regions_draws_every_region():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = pt.random_mlp(2, [6, 6], seed=1)
    fig, ax = plt.subplots()
    assert pt.draw_regions(ax, net, (-1, 1, -1, 1)) == pt.count_regions_2d(net, (-1, 1, -1, 1))
    assert len(ax.collections[0].get_paths()) == pt.count_regions_2d(net, (-1, 1, -1, 1))
    plt.close(fig)


def test_lines_crossing_window_counts_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    c = np.array([0.0, -5.0, 0.5, 2.0])  # x = 0 crosses, y = 5 misses, x + y = -0.5 crosses, x = -2 misses
    assert pt.lines_crossing_window(a, c, (-1, 1, -1, 1)) == 2
    assert pt.lines_crossing_window(a, c, (-3, 3, -6, 6)) == 4


def test_central_regions_bound_known_values():
    assert pt.central_regions_bound(5, 2) == 10  # 5 lines through a point: 2n cones
    assert pt.central_regions_bound(3, 3) == 8  # 3 coordinate planes: octants
    assert pt.central_regions_bound(4, 10) == 2 ** 4
    assert pt.central_regions_bound(4, 3) == 2 * (1 + 3 + 3)  # 14 regions of 4 generic planes through 0 in R^3
    assert pt.central_regions_bound(0, 3) == 1
    # a bias-free random layer on the plane: 2n cones, as counted exactly
    net = pt.random_mlp(2, [7], bias=False, seed=3)
    assert pt.count_regions_2d(net, (-1, 1, -1, 1)) == pt.central_regions_bound(7, 2)
    with pytest.raises(ValueError, match="dim"):
        pt.central_regions_bound(3, -1)


def test_relu_like_fraction_and_silu_gap_known_values():
    z = np.array([-4.0, -1.0, 0.0, 2.5, 3.5])
    assert pt.relu_like_fraction(z, 3.0) == pytest.approx(2 / 5)
    assert pt.relu_like_fraction(torch.tensor(z), 0.5) == pytest.approx(4 / 5)
    assert pt.silu_relu_gap(0.0) == pytest.approx(0.5)
    assert pt.silu_relu_gap(3.0) == pytest.approx(0.0474258732)
    zz = np.linspace(-20, 20, 40001)
    zz = zz[np.abs(zz) >= 3.0]
    silu = zz / (1 + np.exp(-zz))
    assert np.max(np.abs(silu - np.maximum(zz, 0)) / np.abs(zz)) == pytest.approx(pt.silu_relu_gap(3.0), rel=1e-6)
    with pytest.raises(ValueError, match="threshold"):
        pt.relu_like_fraction(z, -1.0)
    with pytest.raises(ValueError, match="pre"):
        pt.relu_like_fraction(np.zeros(0))


def test_active_counts_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    c = np.array([0.0, 0.0])
    u = np.array([-1.0, 1.0])
    v = np.array([-1.0, 1.0, 2.0])
    assert (pt.active_counts(a, c, u, v, chunk=2) == np.array([[0, 1], [1, 2], [1, 2]])).all()
