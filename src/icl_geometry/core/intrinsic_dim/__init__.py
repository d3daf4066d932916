"""Intrinsic dimension (ID) of point clouds: TwoNN, Levina-Bickel MLE, GRIDE over neighbour-rank scales,
and two linear (PCA) notions, all on one exact, chunked nearest-neighbour search.

Why our own code: these estimators are the geometric "intrinsic dimension" the book contrasts with the
paper's attention count, so the book explains them line by line; scikit-dimension serves as the
cross-check. The search runs in torch on the input's device; candidate neighbours come from float32
matrix products (the speed), their distances are then recomputed as norms of differences (the accuracy:
the Gram trick ||x||^2 + ||y||^2 - 2 x.y cancels catastrophically for close points, and distance ratios
of close points are exactly what the estimators read). A worst-case rounding bound certifies, row by row,
that the float32 candidates contain the true k nearest neighbours; rows it cannot certify are searched
again in float64. Likelihoods and logs are in float64. Memory stays O(chunk x n), never n x n.

Duplicate points (zero distances; common in LLM activations, e.g. identical prefixes) make the
neighbour-distance ratios 0/0 or x/0. They are either merged into one point first (`duplicates="merge"`,
the default) or their undefined statistics are skipped (`duplicates="skip"`); either way the count is
reported and the estimate stays finite.

The package, one job per module (every name below is importable from `icl_geometry.core.intrinsic_dim`):

* `neighbours`: the exact, chunked kNN search and duplicate handling (`knn`, `nearest_neighbours`);
* `pointstats`: the per-point statistics and poolings of TwoNN and MLE (`twonn_stats`, `mle_stats`, `STATS`);
* `deletions`: estimates with blocks of groups deleted and the neighbours searched again (`deleted_estimates`);
* `estimators`: TwoNN and MLE with a bootstrap or a grouped-jackknife interval (`twonn`, `mle`, `twonn_clouds`);
* `gride`: GRIDE at one scale and across scales (`gride`, `gride_scales`);
* `linear`: PCA notions (`pca_spectrum`, `pca_dim`, `participation_ratio`);
* `manifolds`: clouds of known dimension (`manifold`, `synthetic_validation`);
* `compare`: two clouds and layer profiles (`id_difference`, `per_layer`, `layer_change_correlation`), with
  grouped-jackknife intervals that recompute the neighbours (`layer_id_changes`).
"""

from __future__ import annotations

from icl_geometry.core.intrinsic_dim.compare import (IDDifference, LayerCorrelation, LayerIDChanges, id_difference,
                                                     layer_change_correlation, layer_id_changes, per_layer)
from icl_geometry.core.intrinsic_dim.deletions import deleted_estimates
from icl_geometry.core.intrinsic_dim.estimators import INTERVALS, IDEstimate, mle, twonn, twonn_clouds
from icl_geometry.core.intrinsic_dim.pointstats import (MLE_AVERAGES, STATS, TWONN_METHODS, PointStats, mle_stats,
                                                        twonn_stats)
from icl_geometry.core.intrinsic_dim.gride import ScaleProfile, gride, gride_scales
from icl_geometry.core.intrinsic_dim.linear import participation_ratio, pca_dim, pca_spectrum
from icl_geometry.core.intrinsic_dim.manifolds import MANIFOLDS, manifold, synthetic_validation
from icl_geometry.core.intrinsic_dim.neighbours import DUPLICATES, Neighbours, as_points, knn, nearest_neighbours

__all__ = [
    "DUPLICATES", "INTERVALS", "MANIFOLDS", "TWONN_METHODS", "MLE_AVERAGES", "IDEstimate", "Neighbours", "ScaleProfile",
    "as_points", "knn", "nearest_neighbours", "PointStats", "twonn_stats", "twonn", "twonn_clouds", "mle_stats",
    "mle", "STATS", "IDDifference", "id_difference", "per_layer", "gride", "gride_scales", "pca_spectrum",
    "pca_dim", "participation_ratio", "manifold", "LayerCorrelation", "layer_change_correlation", "LayerIDChanges",
    "layer_id_changes", "deleted_estimates",
    "synthetic_validation",
]
