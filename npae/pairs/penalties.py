"""Regularizers of the autoencoder family and the corruptions of a denoising autoencoder.

Pure functions, in the style of :mod:`npae.pairs.functional`:

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

from npae.pairs import functional as F
from npae.constants import LOG_EPS
from npae.validation import check_choice, check_scalar


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
    evaluates its formula at the clipped value. The clip never fires unless every example saturates
    a unit.

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


# --------------------------------------------------------------------------------------------------
# Contractive penalty of a deep encoder h = f_L(... f_1(x W_1 + b_1) ... W_L + b_L)
# --------------------------------------------------------------------------------------------------
#: activations for which the deep contractive penalty is implemented (f' and f'' known)
DEEP_CONTRACTIVE_ACTIVATIONS = ("sigmoid", "tanh", "softplus", "elu", "leaky_relu", "relu", "identity")


def _fprime_fsecond_any(name, a, slope, alpha):
    """f'(a) and f''(a) for every activation of the deep penalty [CONTRACTIVE-2, CONTRACTIVE-8]."""
    if name in CONTRACTIVE_ACTIVATIONS:
        return _fprime_fsecond(name, a)  # [CONTRACTIVE-2]
    zeros = np.zeros_like(a)  # (B, n)
    if name == "identity":
        return np.ones_like(a), zeros  # [CONTRACTIVE-8]
    if name == "leaky_relu":
        return np.where(a > 0, 1.0, slope).astype(a.dtype), zeros  # [CONTRACTIVE-8]
    # elu: f' = 1 and f'' = 0 for a > 0; f' = f'' = α e^a for a <= 0
    e = alpha * np.exp(np.minimum(a, 0))  # (B, n) α e^a, no overflow for a > 0
    return np.where(a > 0, 1.0, e).astype(a.dtype), np.where(a > 0, 0.0, e).astype(a.dtype)  # [CONTRACTIVE-8]


def _check_deep_encoder(x, Ws, bs, activations):
    if not (len(Ws) == len(bs) == len(activations)) or len(Ws) == 0:
        raise ValueError(f"Ws, bs and activations must have one entry per layer (at least one); got "
                         f"{len(Ws)}, {len(bs)} and {len(activations)}")
    n_in = x.shape[1]
    for k, (W, b, name) in enumerate(zip(Ws, bs, activations)):
        check_choice(f"activations[{k}]", name, DEEP_CONTRACTIVE_ACTIVATIONS)
        if W.ndim != 2 or W.shape[0] != n_in or b.shape != (W.shape[1],):
            raise ValueError(f"layer {k}: expected W of shape ({n_in}, n_out) and b of shape (n_out,), "
                             f"got W {W.shape} and b {b.shape}")
        n_in = W.shape[1]


def contractive_penalty_deep_forward(x, Ws, bs, activations, weight, *, slope=0.01, alpha=1.0):
    """Contractive penalty of a multi-layer encoder [CONTRACTIVE-9 .. CONTRACTIVE-11].

    ``a_k = h_{k−1} W_k + b_k``, ``h_k = f_k(a_k)``, ``h_0 = x``. In row convention the Jacobian of
    example i is ``J_i = W_1 D_1 W_2 D_2 ... W_L D_L`` (D, n_L) with ``D_k = diag f_k'(a_ik)``
    [CONTRACTIVE-9], and ``value = λ (1/B) Σ_i ||J_i||²_F`` (a per-example sum, batch mean). It is
    computed from the code side: ``P_L = D_L``, ``P_k = D_k W_{k+1} P_{k+1}`` (B, n_k, n_L)
    [CONTRACTIVE-10], and ``||J_i||²_F = ||W_1 P_1i||²_F = tr(P_1iᵀ G P_1i)`` with the Gram matrix
    ``G = W_1ᵀ W_1`` [CONTRACTIVE-11], so no (B, D, n_L) array is formed. With one layer this is the
    closed form :func:`contractive_penalty_forward`.

    Parameters
    ----------
    x : (B, D) array, the encoder input
    Ws : sequence of L arrays, ``Ws[k]`` of shape (n_{k−1}, n_k), n_0 = D
    bs : sequence of L arrays, ``bs[k]`` of shape (n_k,)
    activations : sequence of L names in ``DEEP_CONTRACTIVE_ACTIVATIONS``
    weight : float, λ >= 0
    slope, alpha : floats, the leaky_relu slope and the elu α

    Returns ``(value, cache)``.

    Derivation: docs/derivations/contractive.md#contractive-9
    """
    Ws, bs, activations = list(Ws), list(bs), list(activations)
    _check_deep_encoder(x, Ws, bs, activations)
    check_scalar("weight", weight, low=0.0)
    B, L = x.shape[0], len(Ws)
    h = x  # (B, D)
    dense_caches, fprimes, fseconds = [], [], []
    for W, b, name in zip(Ws, bs, activations):
        a, dense_cache = F.dense_forward(h, W, b)  # (B, n_k) [CONTRACTIVE-9]
        g, g2 = _fprime_fsecond_any(name, a, slope, alpha)  # (B, n_k) f_k'(a_k), f_k''(a_k)
        forward, _, hyper_names = F.ACTIVATIONS[name]
        hyper = {"slope": slope, "alpha": alpha}
        h, _ = forward(a, **{n: hyper[n] for n in hyper_names})  # (B, n_k) [CONTRACTIVE-9]
        dense_caches.append(dense_cache)
        fprimes.append(g)
        fseconds.append(g2)
    n_L = Ws[-1].shape[1]
    # code side first; list index k is layer k + 1 of the derivation
    Ps, Qs = [None] * L, [None] * L
    eye = np.eye(n_L, dtype=x.dtype)  # (n_L, n_L)
    Ps[L - 1] = fprimes[L - 1][:, :, None] * eye  # (B, n_L, n_L) P_L = D_L [CONTRACTIVE-10]
    for k in range(L - 2, -1, -1):
        Qs[k] = np.matmul(Ws[k + 1], Ps[k + 1])  # (B, n_k, n_L) W_{k+1} P_{k+1} [CONTRACTIVE-10]
        Ps[k] = fprimes[k][:, :, None] * Qs[k]  # (B, n_k, n_L) D_k W_{k+1} P_{k+1} [CONTRACTIVE-10]
    G = Ws[0].T @ Ws[0]  # (n_1, n_1) [CONTRACTIVE-11]
    R = np.matmul(G, Ps[0])  # (B, n_1, n_L) [CONTRACTIVE-11]
    value = float(weight) * float(np.sum(Ps[0] * R)) / B  # [CONTRACTIVE-11]
    return value, (Ws, dense_caches, fprimes, fseconds, Ps, Qs, R, float(weight), B)


def contractive_penalty_deep_backward(dvalue, cache):
    """Gradients ``(dx, dWs, dbs)`` of :func:`contractive_penalty_deep_forward` (lists per layer).

    Node by node, with ``s = dvalue · λ / B``: the Gram form gives ``dP_1 = 2 s G P_1`` and
    ``dW_1 += 2 W_1 (s Σ_i P_1i P_1iᵀ)`` [CONTRACTIVE-12]; each step ``P_k = D_k W_{k+1} P_{k+1}``
    sends ``d f_k' = Σ_m dP_k ⊙ Q_k``, ``dW_{k+1} += Σ_i dQ_ki P_{k+1,i}ᵀ`` and
    ``dP_{k+1} = W_{k+1}ᵀ dQ_k`` toward the code, and ``d f_L' = diag(dP_L)`` [CONTRACTIVE-13];
    ``da_k = d f_k' ⊙ f_k''(a_k)`` [CONTRACTIVE-14]; then the forward chain from the code back to x
    adds ``dh_k ⊙ f_k'(a_k)``, and each W_k sums its two uses, in a_k and in J [CONTRACTIVE-15].

    Derivation: docs/derivations/contractive.md#contractive-12
    """
    Ws, dense_caches, fprimes, fseconds, Ps, Qs, R, weight, B = cache
    L = len(Ws)
    s = float(dvalue) * weight / B
    dWs_jacobian = [None] * L
    dP = 2.0 * s * R  # (B, n_1, n_L) [CONTRACTIVE-12]
    dG = s * np.tensordot(Ps[0], Ps[0], axes=([0, 2], [0, 2]))  # (n_1, n_1) [CONTRACTIVE-12]
    dWs_jacobian[0] = 2.0 * Ws[0] @ dG  # (D, n_1) [CONTRACTIVE-12]
    dfprimes = [None] * L
    for k in range(L - 1):
        dfprimes[k] = np.sum(dP * Qs[k], axis=2)  # (B, n_k) [CONTRACTIVE-13]
        dQ = fprimes[k][:, :, None] * dP  # (B, n_k, n_L) [CONTRACTIVE-13]
        dW_next = np.tensordot(dQ, Ps[k + 1], axes=([0, 2], [0, 2]))  # (n_k, n_{k+1}) [CONTRACTIVE-13]
        dWs_jacobian[k + 1] = dW_next
        dP = np.matmul(Ws[k + 1].T, dQ)  # (B, n_{k+1}, n_L) [CONTRACTIVE-13]
    dfprimes[L - 1] = np.diagonal(dP, axis1=1, axis2=2).copy()  # (B, n_L) P_L = D_L [CONTRACTIVE-13]
    dWs, dbs = [None] * L, [None] * L
    dh = np.zeros_like(fprimes[L - 1])  # (B, n_L): the code h_L itself is not in the penalty
    for k in range(L - 1, -1, -1):
        da_from_jacobian = dfprimes[k] * fseconds[k]  # (B, n_k) [CONTRACTIVE-14] f'' enters here
        da = da_from_jacobian + dh * fprimes[k]  # (B, n_k) [CONTRACTIVE-15] a_k also feeds h_k
        dh, dW_through_a, dbs[k] = F.dense_backward(da, dense_caches[k])  # dh: (B, n_{k−1})
        dWs[k] = dW_through_a + dWs_jacobian[k]  # [CONTRACTIVE-15] W_k is in a_k and in J
    return dh, dWs, dbs
