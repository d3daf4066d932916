"""Point clouds on manifolds whose dimension we know, and how far TwoNN and MLE recover it on clouds of a
given size.
"""

from __future__ import annotations

import numpy as np

from icl_geometry.core.checks import check_choice, check_int
from icl_geometry.core.intrinsic_dim.estimators import mle, twonn

MANIFOLDS = ("subspace", "sphere", "swiss_roll", "curved")


def manifold(name: str, n: int, d: int = 2, D: int = 3, *, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """n points on a d-dimensional manifold in R^D whose dimension we know, randomly rotated into R^D.

    "subspace": Gaussian on a random d-dim linear subspace. "sphere": uniform on S^d (needs D > d).
    "swiss_roll": the 2-d rolled sheet (d must be 2, D >= 3). "curved": sin of random affine features of
    a uniform d-cube, a smooth curved d-manifold that fills many ambient directions. `noise` adds
    isotropic Gaussian noise of that standard deviation in all D directions.
    """
    check_choice("name", name, MANIFOLDS)
    n, d, D = check_int("n", n, 1), check_int("d", d, 1), check_int("D", D, 1)
    rng = np.random.default_rng(seed)
    if name == "subspace":
        if d > D:
            raise ValueError(f"d = {d} is not allowed: a subspace of R^{D} has dimension <= {D}")
        X = rng.standard_normal((n, d)) @ np.linalg.qr(rng.standard_normal((D, d)))[0].T
    elif name == "curved":
        z = rng.uniform(-1, 1, (n, d))
        X = np.sin(z @ rng.standard_normal((d, D)) + rng.uniform(0, 2 * np.pi, D))
    else:
        if name == "swiss_roll" and d != 2:
            raise ValueError(f"d = {d} is not allowed for the swiss roll: it is 2-dimensional")
        if D < d + 1:
            raise ValueError(f"D = {D} is not allowed: {name} with d = {d} needs D >= {d + 1}")
        if name == "sphere":
            Y = rng.standard_normal((n, d + 1))
            Y /= np.linalg.norm(Y, axis=1, keepdims=True)
        else:
            t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
            Y = np.column_stack([t * np.cos(t), 21 * rng.uniform(size=n), t * np.sin(t)])
        X = Y @ np.linalg.qr(rng.standard_normal((D, Y.shape[1])))[0].T
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return X


def synthetic_validation(n: int, D: int, dims=(5, 10, 20), *, names=("subspace", "curved"), noise: float = 0.0,
                         seeds=range(5), k: int = 10):
    """TwoNN and MLE (k neighbours) on `n` points of known-dimension manifolds (`manifold`) in R^D, one row per
    (manifold, d, seed): how far estimates on clouds of that size can be trusted. Seeded, float64.

    Returns a DataFrame with columns manifold, d, seed, TwoNN, MLE.
    """
    import pandas as pd

    n, D, k = check_int("n", n, 3), check_int("D", D, 1), check_int("k", k, 2)
    rows = []
    for name in names:
        for d in dims:
            for s in seeds:
                X = manifold(name, n, d, D, noise=noise, seed=int(s))
                rows.append({"manifold": name, "d": int(d), "seed": int(s), "TwoNN": twonn(X).estimate,
                             f"MLE k={k}": mle(X, k).estimate})
    return pd.DataFrame(rows)
