"""How many regions n neurons can make: the hyperplane-arrangement maxima (Zaslavsky 1975).
"""

from __future__ import annotations

import math

from icl_geometry.core.checks import check_int


def regions_bound(n_neurons: int, dim: int) -> int:
    """Most regions n hyperplanes can cut R^dim into: sum_{k=0}^{dim} C(n, k) (Zaslavsky 1975).

    Reached by one hidden layer of n neurons in general position; exponential in dim while dim < n.
    """
    for name, v in (("n_neurons", n_neurons), ("dim", dim)):
        check_int(name, v, 0)
    return sum(math.comb(int(n_neurons), k) for k in range(int(dim) + 1))


def central_regions_bound(n_neurons: int, dim: int) -> int:
    """Most regions n hyperplanes *through the origin* cut R^dim into: 2 sum_{i<dim} C(n-1, i).

    A central arrangement (no bias, as in the gate of a Llama-style SwiGLU MLP) in general position has
    this many regions (Zaslavsky 1975; Cover 1965 counts the same cones as dichotomies); it equals 2^n
    while n <= dim, and 2n lines through one point of the plane make 2n cones.
    """
    for name, v in (("n_neurons", n_neurons), ("dim", dim)):
        check_int(name, v, 0)
    if n_neurons == 0:
        return 1
    return 2 * sum(math.comb(int(n_neurons) - 1, i) for i in range(int(dim)))
