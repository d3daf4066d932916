"""Linear regions of piecewise-linear MLPs: exact on planes and segments, sampled in any dimension.

A network built from `Linear` layers and `ReLU`/`LeakyReLU` activations is a continuous piecewise-affine
map. Its *activation pattern* (which neurons are on) is constant on convex polyhedral cells, the linear
regions, and the map is affine on each. This module counts them:

* `regions_2d` / `count_regions_2d`: **exact** enumeration of the cells that a network cuts a box of a
  plane into (the input plane itself for 2-D networks, or any plane of a higher-dimensional input
  space, e.g. the plane through three real token representations; see `Plane`). The box is split
  layer by layer: inside a cell of the previous layers every neuron of the next layer is affine, so its
  zero set is a straight line there, and the cell is cut along it. No grid is involved. Geometry is in
  float64; a vertex closer to a line than a relative tolerance counts as lying on it, which handles
  lines through vertices, concurrent lines (zero bias), parallel lines, and neurons whose line misses
  the box. The splitting is vectorised over all polygons: in round r every polygon is cut by the r-th
  line that crosses its parent cell, so no round spends work on lines that cannot cut.
* `count_line_regions`: the exact count for one layer (a line arrangement) by counting crossings,
  O(n^2) instead of splitting, for the 1536 gate lines of a real LLM's MLP.
* `count_regions_1d` / `regions_1d`: exact count along a segment in any input dimension.
* `activation_patterns`, `sample_patterns`: the patterns that sample points hit (a lower bound on the
  regions they visit), in any dimension; `visited_regions` adds the exact count when the points span a
  line or a plane.
* `regions_bound(n, d)`: the hyperplane-arrangement maximum sum_{k<=d} C(n, k) (Zaslavsky);
  `central_regions_bound(n, d)`: the same for hyperplanes through the origin (no bias).
* `relu_like_fraction`, `silu_relu_gap`: how much of a SiLU gate sits where SiLU is close to ReLU.

The count is of activation regions (one per pattern). Two neighbouring regions can carry the same
affine map (e.g. when the neuron that switches feeds only dead neurons); they are still counted twice,
as in the literature on counting linear regions.

The package, one job per module (every name above is importable from `icl_geometry.core.partition`):

* `planes`: boxes (`Bounds`) and planes of an input space (`Plane`, `plane_through`, `affine_span`);
* `network`: the network as float64 affine steps and activations (`layers_of`, `n_neurons`);
* `polygons`: exact regions on a plane by splitting polygons (`regions_2d`, `count_regions_2d`);
* `lines`: one layer as a line arrangement (`count_line_regions`, `first_layer_lines`);
* `segments`: exact regions along a segment (`regions_1d`, `count_regions_1d`);
* `sampling`: patterns at sample points (`activation_patterns`, `visited_regions`, `raster_patterns`);
* `bounds`: the arrangement maxima (`regions_bound`, `central_regions_bound`);
* `gates`: a real LLM's SwiGLU gate (`gate_regions_on_plane`, `relu_like_fraction`);
* `drawing`: random MLPs and pictures of their regions (`random_mlp`, `draw_regions`).
"""

from __future__ import annotations

from icl_geometry.core.partition.bounds import central_regions_bound, regions_bound
from icl_geometry.core.partition.drawing import draw_regions, random_mlp
from icl_geometry.core.partition.gates import (gate_regions_on_plane, gate_sign_mismatch, gate_smoothness,
                                               relu_like_fraction, silu_relu_gap)
from icl_geometry.core.partition.lines import (RTOL, active_counts, arrangement_bounds, count_line_regions,
                                               first_layer_lines, in_general_position, lines_crossing_window)
from icl_geometry.core.partition.network import input_dim, layers_of, n_neurons
from icl_geometry.core.partition.planes import Bounds, Plane, affine_span, plane_through
from icl_geometry.core.partition.polygons import (CHUNK, METHODS, Region, count_regions_2d, polygon_areas,
                                                  region_arrays, regions_2d)
from icl_geometry.core.partition.sampling import (Visits, activation_patterns, count_distinct, raster_patterns,
                                                  sample_patterns, visited_regions)
from icl_geometry.core.partition.segments import count_regions_1d, regions_1d

__all__ = [
    "RTOL", "CHUNK", "METHODS", "Bounds", "layers_of", "input_dim", "n_neurons", "Plane", "plane_through",
    "affine_span", "Region", "regions_2d", "region_arrays", "polygon_areas", "count_regions_2d",
    "first_layer_lines", "count_line_regions", "arrangement_bounds", "in_general_position",
    "lines_crossing_window", "active_counts", "regions_1d", "count_regions_1d", "activation_patterns",
    "count_distinct", "sample_patterns", "Visits", "visited_regions", "raster_patterns", "regions_bound",
    "central_regions_bound", "silu_relu_gap", "relu_like_fraction", "gate_regions_on_plane",
    "gate_sign_mismatch", "random_mlp", "draw_regions",
]
