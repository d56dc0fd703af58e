"""Data sets. The default is bundled, so everything runs offline.

``load_digits()``: the UCI 8x8 handwritten digits (1,797 images, 10 classes; E. Alpaydin and
C. Kaynak, CC BY 4.0), shipped as ``npae/data/digits.npz`` (pixel counts 0..16).
"""
from importlib import resources

import numpy as np

from .init import make_rng
from .validation import check_scalar


def load_digits():
    """Return ``(X, y)``: X (1797, 64) float64 in [0, 1] (pixel counts / 16), y (1797,) int64."""
    with resources.files("npae").joinpath("data/digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            X = data["images"].astype(np.float64) / 16.0
            y = data["labels"].astype(np.int64)
    return X, y


def make_moons(n_samples=500, noise=0.05, seed=0):
    """Two interleaving half circles in 2-D; returns ``(X, y)`` with X (n, 2) and y (n,) in {0, 1}."""
    check_scalar("n_samples", n_samples, low=2, integer=True)
    check_scalar("noise", noise, low=0.0)
    rng = make_rng(seed)
    n0 = n_samples // 2
    n1 = n_samples - n0
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    X = X + noise * rng.standard_normal(X.shape)
    perm = rng.permutation(n_samples)
    return X[perm], y[perm]
