"""Weight initializers, each drawing from an explicit ``np.random.Generator``.

Glorot/Xavier keeps the variance of activations and of gradients roughly equal across a layer for
symmetric activations; He doubles the variance to make up for ReLU zeroing half of its inputs.
Derivation: docs/derivations/init.md
"""
import numpy as np


def make_rng(seed):
    """Return a ``np.random.Generator`` from an int seed, ``None`` or an existing Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int, None or a numpy Generator, got {seed!r}")
    return np.random.default_rng(seed)


def glorot_uniform(n_in, n_out, rng, dtype=np.float64):
    """U(−L, L) with L = sqrt(6 / (n_in + n_out)) [INIT-1]."""
    limit = np.sqrt(6.0 / (n_in + n_out))  # [INIT-1]
    return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)


def glorot_normal(n_in, n_out, rng, dtype=np.float64):
    """N(0, s²) with s = sqrt(2 / (n_in + n_out)) [INIT-2]."""
    std = np.sqrt(2.0 / (n_in + n_out))  # [INIT-2]
    return (std * rng.standard_normal((n_in, n_out))).astype(dtype)


def he_uniform(n_in, n_out, rng, dtype=np.float64):
    """U(−L, L) with L = sqrt(6 / n_in) [INIT-3]."""
    limit = np.sqrt(6.0 / n_in)  # [INIT-3]
    return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)


def he_normal(n_in, n_out, rng, dtype=np.float64):
    """N(0, s²) with s = sqrt(2 / n_in) [INIT-4]."""
    std = np.sqrt(2.0 / n_in)  # [INIT-4]
    return (std * rng.standard_normal((n_in, n_out))).astype(dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
}
