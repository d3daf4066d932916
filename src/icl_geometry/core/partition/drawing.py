"""Building small random MLPs and drawing their exact regions on a matplotlib axis.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from icl_geometry.core.checks import check_int
from icl_geometry.core.partition.planes import Bounds, Plane, check_bounds
from icl_geometry.core.partition.polygons import region_arrays


def random_mlp(d_in: int, widths: Sequence[int], *, bias: bool = True, seed: int = 0,
               leaky: float | None = None, d_out: int = 1) -> nn.Sequential:
    """d_in -> widths... -> d_out, ReLU (or LeakyReLU(leaky)) after each hidden layer, PyTorch's default init."""
    for name, v in (("d_in", d_in), ("d_out", d_out), *((f"widths[{i}]", w) for i, w in enumerate(widths))):
        check_int(name, v, 1)
    if len(widths) == 0:
        raise ValueError("widths: expected at least one hidden layer")
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        layers: list[nn.Module] = []
        k = int(d_in)
        for w in widths:
            layers += [nn.Linear(k, int(w), bias=bias), nn.ReLU() if leaky is None else nn.LeakyReLU(leaky)]
            k = int(w)
        layers.append(nn.Linear(k, int(d_out), bias=bias))
        return nn.Sequential(*layers)


def draw_regions(ax, mlp, bounds: Bounds = (-1.0, 1.0, -1.0, 1.0), plane: Plane | None = None, *,
                 cmap: str = "viridis", seed: int = 0, edgecolor: str = "white", linewidth: float = 0.3) -> int:
    """Fill every exact region with its own colour (shuffled colour map) on a matplotlib axis; return the count."""
    from matplotlib import colormaps
    from matplotlib.collections import PolyCollection

    verts, counts, _ = region_arrays(mlp, bounds, plane)
    ends = np.cumsum(counts)
    polys = [verts[e - k:e] for e, k in zip(ends, counts)]
    shade = np.random.default_rng(seed).permutation(len(polys)) / max(len(polys) - 1, 1)
    ax.add_collection(PolyCollection(polys, facecolors=colormaps[cmap](shade), edgecolors=edgecolor,
                                     linewidths=linewidth))
    x0, x1, y0, y1 = check_bounds(bounds)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    return len(polys)
