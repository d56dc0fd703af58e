"""Synthetic data sets, made from a seed: two interleaving half circles (:func:`make_moons`), a
sheet rolled up in 3-D (:func:`make_swiss_roll`), Gaussian clusters (:func:`make_blobs`). Each
returns ``(X, y)``; public through :mod:`npae.datasets`.
"""
import numpy as np

from npae.init import make_rng
from npae.validation import check_scalar


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


def make_swiss_roll(n_samples=1000, noise=0.05, seed=0):
    """A 2-D sheet rolled up in 3-D: t ~ U(1.5π, 4.5π), h ~ U(0, 21),
    x = (t cos t, h, t sin t) + noise. Returns ``(X (n, 3), t (n,))``: ``t``, the position along the
    roll, is the one coordinate a good 1-D or 2-D code should recover (use it to colour plots)."""
    check_scalar("n_samples", n_samples, low=1, integer=True)
    check_scalar("noise", noise, low=0.0)
    rng = make_rng(seed)
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n_samples))  # (n,)
    h = 21.0 * rng.uniform(size=n_samples)  # (n,)
    X = np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1)  # (n, 3)
    X = X + noise * rng.standard_normal(X.shape)
    return X, t


def make_blobs(n_samples=500, n_features=2, centers=3, cluster_std=1.0, box=10.0, seed=0):
    """Isotropic Gaussian clusters: centres drawn uniformly in [-box, box]^d, equal class sizes
    (up to one). Returns ``(X (n, n_features), y (n,))``."""
    check_scalar("n_samples", n_samples, low=1, integer=True)
    check_scalar("n_features", n_features, low=1, integer=True)
    check_scalar("centers", centers, low=1, integer=True)
    check_scalar("cluster_std", cluster_std, low=0.0)
    check_scalar("box", box, low=0.0)
    rng = make_rng(seed)
    means = rng.uniform(-box, box, size=(centers, n_features))  # (C, d)
    y = np.arange(n_samples, dtype=np.int64) % centers  # (n,)
    X = means[y] + cluster_std * rng.standard_normal((n_samples, n_features))  # (n, d)
    perm = rng.permutation(n_samples)
    return X[perm], y[perm]
