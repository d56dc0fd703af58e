"""Regularizers of the autoencoder family and the corruptions of a denoising autoencoder.

Pure functions, in the style of :mod:`npae.functional`:

* ``*_penalty_forward(...) -> (value, cache)`` and ``*_penalty_backward(dvalue, cache)`` returning the
  gradients of the inputs (``dvalue`` is dL/d(value), 1.0 when the penalty is added to the loss).
  The weight λ is an argument of the forward and is part of ``value``.
* ``*_noise(x, level, rng)`` return a corrupted copy of ``x``; the randomness comes only from ``rng``.

Scaling, stated once and again in each docstring:

* L1:          ``λ · (1/B) Σ_i ||z_i||_1``               (a per-example sum, batch mean)
* KL sparsity: ``λ · Σ_j KL(ρ || ρ̂_j)``, ρ̂_j = (1/B) Σ_i h_ij  (once per batch: it is a property of
  the batch, not of an example)
* contractive: ``λ · (1/B) Σ_i ||∂h_i/∂x_i||²_F``       (a per-example sum, batch mean)

Derivations: docs/derivations/sparse.md, contractive.md, denoise.md.
"""
import numpy as np

from . import functional as F
from .constants import LOG_EPS
from .validation import check_choice, check_scalar


# --------------------------------------------------------------------------------------------------
# L1 code penalty
# --------------------------------------------------------------------------------------------------
def l1_penalty_forward(z, weight):
    """L1 penalty on the code [SPARSE-1]: ``value = λ (1/B) Σ_i Σ_j |z_ij|``.

    Parameters
    ----------
    z : (B, Z) array, the codes
    weight : float, λ >= 0

    Returns ``(value, cache)``.

    Derivation: docs/derivations/sparse.md#sparse-1
    """
    B = z.shape[0]
    value = float(weight) * float(np.sum(np.abs(z))) / B  # [SPARSE-1]
    return value, (z, float(weight))


def l1_penalty_backward(dvalue, cache):
    """``dz = dvalue · λ sign(z) / B`` [SPARSE-2] (the subgradient 0 at z = 0)."""
    z, weight = cache
    B = z.shape[0]
    dz = (float(dvalue) * weight / B) * np.sign(z)  # (B, Z) [SPARSE-2]
    return dz


# --------------------------------------------------------------------------------------------------
# KL(ρ || ρ̂) sparsity penalty through the batch mean
# --------------------------------------------------------------------------------------------------
def _kl_eps(dtype):
    return max(LOG_EPS, float(np.finfo(dtype).eps))


def kl_sparsity_forward(h, rho, weight):
    """KL sparsity penalty [SPARSE-3, SPARSE-4]: ``value = λ Σ_j KL(ρ || ρ̂_j)``, charged once per batch.

    ``ρ̂_j = (1/B) Σ_i h_ij`` is the batch-mean activation of code unit j [SPARSE-3] and
    ``KL(ρ || ρ̂) = ρ log(ρ/ρ̂) + (1 − ρ) log((1 − ρ)/(1 − ρ̂))`` [SPARSE-4], the divergence between two
    Bernoulli distributions. ``h`` must lie in (0, 1) (sigmoid codes). ρ̂ is clipped to
    ``[ε, 1 − ε]`` (ε = max(LOG_EPS, machine epsilon)) only so that the log stays finite; the backward
    evaluates its formula at the clipped value, as :func:`npae.functional.bce_loss` does. The clip
    never fires unless every example saturates a unit.

    Parameters
    ----------
    h : (B, Z) array in (0, 1)
    rho : float in (0, 1), the target mean activation
    weight : float, λ >= 0

    Returns ``(value, cache)``.

    Derivation: docs/derivations/sparse.md#sparse-3
    """
    B = h.shape[0]
    eps = _kl_eps(h.dtype)
    rho_hat = np.clip(h.mean(axis=0), eps, 1.0 - eps)  # (Z,) [SPARSE-3]
    kl = rho * np.log(rho / rho_hat) + (1.0 - rho) * np.log((1.0 - rho) / (1.0 - rho_hat))  # (Z,) [SPARSE-4]
    value = float(weight) * float(np.sum(kl))
    return value, (rho_hat, float(rho), float(weight), B)


def kl_sparsity_backward(dvalue, cache):
    """Gradient of :func:`kl_sparsity_forward` with respect to ``h``.

    Node by node: ``dρ̂_j = dvalue · λ (−ρ/ρ̂_j + (1 − ρ)/(1 − ρ̂_j))`` [SPARSE-5], then the batch mean
    hands every example the same share ``dh_ij = dρ̂_j / B`` [SPARSE-6]. Every row of ``dh`` is equal:
    the penalty sees the batch only through its mean.

    Derivation: docs/derivations/sparse.md#sparse-5
    """
    rho_hat, rho, weight, B = cache
    drho_hat = float(dvalue) * weight * (-rho / rho_hat + (1.0 - rho) / (1.0 - rho_hat))  # (Z,) [SPARSE-5]
    dh = np.broadcast_to(drho_hat / B, (B, rho_hat.shape[0])).copy()  # (B, Z) [SPARSE-6]
    return dh


# --------------------------------------------------------------------------------------------------
# Contractive penalty of a one-layer encoder h = f(x W + b)
# --------------------------------------------------------------------------------------------------
def _fprime_fsecond(name, a):
    """f'(a) and f''(a) of the code activation, elementwise [CONTRACTIVE-2]."""
    if name == "sigmoid":
        s = F.sigmoid(a)  # (B, Z)
        d1 = s * (1.0 - s)  # [CONTRACTIVE-2]
        return d1, d1 * (1.0 - 2.0 * s)  # [CONTRACTIVE-2]
    if name == "tanh":
        t = np.tanh(a)  # (B, Z)
        d1 = 1.0 - t * t  # [CONTRACTIVE-2]
        return d1, -2.0 * t * d1  # [CONTRACTIVE-2]
    if name == "softplus":
        s = F.sigmoid(a)  # (B, Z)
        return s, s * (1.0 - s)  # [CONTRACTIVE-2]
    # relu: f' = 1[a > 0], f'' = 0 away from the kink
    return (a > 0).astype(a.dtype), np.zeros_like(a)  # [CONTRACTIVE-2]


#: code activations for which the closed form below is implemented
CONTRACTIVE_ACTIVATIONS = ("sigmoid", "tanh", "relu", "softplus")


def contractive_penalty_forward(x, W, b, activation, weight):
    """Contractive penalty of a one-layer encoder ``h = f(x W + b)`` [CONTRACTIVE-1, CONTRACTIVE-3].

    The Jacobian of example i is ``J_i[j, d] = ∂h_ij/∂x_id = f'(a_ij) W_dj``, so
    ``||J_i||²_F = Σ_j f'(a_ij)² ||W_{:,j}||²`` [CONTRACTIVE-1] and
    ``value = λ (1/B) Σ_i Σ_j f'(a_ij)² c_j`` with ``c_j = Σ_d W_dj²`` [CONTRACTIVE-3]
    (a per-example sum, batch mean).

    Parameters
    ----------
    x : (B, D) array, the encoder input
    W : (D, Z) array
    b : (Z,) array
    activation : "sigmoid" | "tanh" | "relu" | "softplus"
    weight : float, λ >= 0

    Returns ``(value, cache)``.

    Derivation: docs/derivations/contractive.md#contractive-1
    """
    check_choice("activation", activation, CONTRACTIVE_ACTIVATIONS)
    B = x.shape[0]
    a, dense_cache = F.dense_forward(x, W, b)  # (B, Z)
    g, g2 = _fprime_fsecond(activation, a)  # (B, Z) f'(a), f''(a)
    c = np.sum(W * W, axis=0)  # (Z,) [CONTRACTIVE-1]
    q = g * g  # (B, Z)
    value = float(weight) * float(np.sum(q * c)) / B  # [CONTRACTIVE-3]
    return value, (dense_cache, g, g2, q, c, W, float(weight), B)


def contractive_penalty_backward(dvalue, cache):
    """Gradients ``(dx, dW, db)`` of :func:`contractive_penalty_forward`.

    Node by node, with ``s = dvalue · λ / B``:
    ``dq_ij = s c_j``, ``dc_j = s Σ_i q_ij`` [CONTRACTIVE-4];
    ``dg = 2 g dq`` and ``da = dg f''(a)`` [CONTRACTIVE-5] (f'' enters here);
    W is used twice, in ``c`` and in ``a = x W + b``: ``dW = 2 W dc + xᵀ da`` [CONTRACTIVE-6];
    ``db = Σ_i da``, ``dx = da Wᵀ`` (the dense backward).

    Derivation: docs/derivations/contractive.md#contractive-4
    """
    dense_cache, g, g2, q, c, W, weight, B = cache
    s = float(dvalue) * weight / B
    dq = s * c  # (Z,) broadcast over rows [CONTRACTIVE-4]
    dc = s * np.sum(q, axis=0)  # (Z,) [CONTRACTIVE-4]
    da = 2.0 * g * dq * g2  # (B, Z) [CONTRACTIVE-5]
    dx, dW_through_a, db = F.dense_backward(da, dense_cache)  # (B, D), (D, Z), (Z,)
    dW = 2.0 * W * dc + dW_through_a  # (D, Z) [CONTRACTIVE-6]
    return dx, dW, db


# --------------------------------------------------------------------------------------------------
# Corruptions of a denoising autoencoder (not differentiated: x̃ is an input, not a parameter)
# --------------------------------------------------------------------------------------------------
def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {rng!r}")


def gaussian_noise(x, level, rng):
    """Additive Gaussian corruption ``x̃ = x + σ ε``, ε ~ N(0, I), σ = ``level`` >= 0 [DENOISE-1]."""
    check_scalar("noise_level", level, low=0.0)
    _check_rng(rng)
    eps = rng.standard_normal(x.shape)  # (B, D)
    return (x + level * eps).astype(x.dtype, copy=False)  # [DENOISE-1]


def masking_noise(x, level, rng):
    """Masking corruption: each entry is set to 0 with probability ``level`` in [0, 1] [DENOISE-2]."""
    check_scalar("noise_level", level, low=0.0, high=1.0)
    _check_rng(rng)
    keep = rng.random(x.shape) >= level  # (B, D)
    return np.where(keep, x, 0).astype(x.dtype, copy=False)  # [DENOISE-2]


def salt_pepper_noise(x, level, rng, low=0.0, high=1.0):
    """Salt-and-pepper corruption: each entry, with probability ``level`` in [0, 1], is replaced by
    ``low`` or ``high`` (a fair coin) [DENOISE-3]."""
    check_scalar("noise_level", level, low=0.0, high=1.0)
    _check_rng(rng)
    hit = rng.random(x.shape) < level  # (B, D)
    salt = rng.random(x.shape) < 0.5  # (B, D)
    return np.where(hit, np.where(salt, high, low), x).astype(x.dtype, copy=False)  # [DENOISE-3]


NOISES = {"gaussian": gaussian_noise, "masking": masking_noise, "salt_pepper": salt_pepper_noise}


def corrupt(x, noise, level, rng):
    """Apply the corruption named ``noise`` ("gaussian" | "masking" | "salt_pepper") at ``level``."""
    check_choice("noise", noise, tuple(NOISES))
    return NOISES[noise](x, level, rng)
