"""Decoder likelihoods with a variance, importance-weighted objectives and their log densities.

Pure pairs (no state, no randomness: the noise ``eps`` is an argument), each ``y, cache = *_forward(...)``
and ``grads = *_backward(dy, cache)``:

* :func:`gaussian_nll_forward` / :func:`gaussian_nll_backward`: per-example NLL of N(x; mean,
  diag exp(logvar)) with ``logvar`` shared, per feature or per example [GAUSSDEC-1..4].
* :func:`logvar_floor_forward` / :func:`logvar_floor_backward`: the smooth floor
  ``floor + softplus(raw − floor)`` that keeps a learned variance away from 0 [GAUSSDEC-5], [GAUSSDEC-6].
* :func:`iwae_objective_forward` / :func:`iwae_objective_backward`: −(1/B) Σ_b logmeanexp_k logw_kb,
  and :func:`multisample_elbo_forward` / :func:`multisample_elbo_backward`: −(1/(K·B)) Σ logw
  [IWAE-4..7]. Both in nats per example.
* :func:`log_normal_backward` and :func:`log_standard_normal_backward`: the gradients [IWAE-8],
  [IWAE-9] of the densities [GAUSS-1], [GAUSS-2], whose forwards live in :mod:`npae.pairs.latent`
  (importable from here too: ``bounds.log_normal_forward``).
* :func:`reparam_log_ratio_forward` / :func:`reparam_log_ratio_backward` (node by node) and
  :func:`reparam_log_ratio_backward_fused` (simplified): the sample z = mu + std·eps together with
  ``log p(z) − log q(z|x)``, the latent part of one log-weight [IWAE-10], [IWAE-11].
* :func:`hierarchical_log_weight_forward` / :func:`hierarchical_log_weight_backward`: the five
  density terms of a two-stochastic-layer model's log-weight [HIER-1..3].

Shapes: ``B`` examples, ``D`` features, ``Z`` latents; a leading axis ``L`` (or ``K``) holds
Monte-Carlo draws per example. Derivations: docs/derivations/gaussdec.md, iwae.md, hier.md.
"""
import numpy as np

from npae.pairs import functional as F
from npae.constants import DECODER_LOGVAR_FLOOR
from npae.pairs.latent import (LOG_2PI, log_normal_forward, log_standard_normal_forward,
                               reparameterize_backward, reparameterize_forward)


#: How ``variance=...`` of a Gaussian decoder maps onto the pairs (docs/derivations/gaussdec.md):
#: "fixed": logvar = 0, no parameter; "shared": one logvar, shape (1,); "per_feature": shape (D,);
#: "learned": a second decoder head, shape (B, D) (or (L, B, D)), passed through the floor.
VARIANCES = ("fixed", "shared", "per_feature", "learned")


def _sum_to_shape(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched, so it gets ``shape``.

    A parameter used for many entries collects the sum of their gradients (a shared logvar gets
    Σ over every example and feature, a per-feature logvar Σ over examples and draws).
    """
    g = np.asarray(g)
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g


# --------------------------------------------------------------------------------------------------
# Gaussian decoder with a variance
# --------------------------------------------------------------------------------------------------
def gaussian_nll_forward(mean, logvar, x):
    """Per-example NLL of a diagonal Gaussian decoder, summed over features [GAUSSDEC-1].

    ``nll = 0.5 Σ_d (log 2π + logvar_d + (x_d − mean_d)² exp(−logvar_d))``, in nats, one number per
    example (and per draw); no batch mean here.

    Parameters
    ----------
    mean : (B, D) or (L, B, D) array
        Decoder mean; a leading axis holds L draws of z per example.
    logvar : array broadcastable to ``mean``
        log σ² of the decoder: () or (1,) shared by all features, (D,) per feature, (B, D) or
        (L, B, D) per example (a second decoder head).
    x : (B, D) array
        Data.

    Returns
    -------
    nll : array of shape ``mean.shape[:-1]``, (B,) or (L, B)
    cache : for :func:`gaussian_nll_backward`

    Derivation: docs/derivations/gaussdec.md#gaussdec-1
    """
    logvar = np.asarray(logvar)
    diff = mean - x  # (L, B, D) or (B, D)
    prec = np.exp(-logvar)  # logvar's shape: 1/σ²
    sq = diff * diff * prec  # (L, B, D) or (B, D): squared standardised residual
    nll = 0.5 * np.sum(LOG_2PI + logvar + sq, axis=-1)  # (L, B) or (B,) [GAUSSDEC-1]
    return nll, (diff, prec, sq, np.shape(mean), logvar.shape)


def gaussian_nll_backward(dnll, cache):
    """Gradients of the per-example Gaussian NLL [GAUSSDEC-2], [GAUSSDEC-3], [GAUSSDEC-4].

    ``dmean = dnll · (mean − x) exp(−logvar)``;
    ``dlogvar = dnll · 0.5 (1 − (x − mean)² exp(−logvar))``
    summed over the entries that share one logvar, so ``dlogvar`` has logvar's own shape.

    Returns ``(dmean, dlogvar)``.

    Derivation: docs/derivations/gaussdec.md#gaussdec-2
    """
    diff, prec, sq, mean_shape, logvar_shape = cache
    dnll = np.asarray(dnll)[..., None]  # (L, B, 1) or (B, 1)
    dmean = _sum_to_shape(dnll * diff * prec, mean_shape)  # mean's shape [GAUSSDEC-2]
    dlogvar_each = dnll * 0.5 * (1.0 - sq)  # (L, B, D) or (B, D) [GAUSSDEC-3]
    dlogvar = _sum_to_shape(dlogvar_each, logvar_shape)  # logvar's shape [GAUSSDEC-4]
    return dmean, dlogvar


def logvar_floor_forward(raw, floor=DECODER_LOGVAR_FLOOR):
    """Smooth floor on a learned log-variance: ``logvar = floor + softplus(raw − floor)`` [GAUSSDEC-5].

    Always above ``floor`` (so σ² > exp(floor) and exp(−logvar) stays finite), equal to ``raw`` up
    to ``log1p(exp(−(raw − floor)))`` once raw is a few units above the floor, and with gradient
    σ(raw − floor) > 0 everywhere (a hard clamp has gradient 0 below it).

    Returns ``(logvar, cache)``, ``logvar`` shaped like ``raw``.

    Derivation: docs/derivations/gaussdec.md#gaussdec-5
    """
    sp, a = F.softplus_forward(raw - floor)  # raw's shape, a = raw − floor
    logvar = floor + sp  # raw's shape [GAUSSDEC-5]
    return logvar, a


def logvar_floor_backward(dlogvar, cache):
    """``draw = dlogvar · σ(raw − floor)`` [GAUSSDEC-6].

    Derivation: docs/derivations/gaussdec.md#gaussdec-6
    """
    return F.softplus_backward(dlogvar, cache)  # raw's shape [GAUSSDEC-6]


# --------------------------------------------------------------------------------------------------
# Objectives over K log-weights per example
# --------------------------------------------------------------------------------------------------
def iwae_objective_forward(logw):
    """Negative IWAE-K bound, averaged over the batch [IWAE-4], in nats per example.

    ``value = −(1/B) Σ_b log((1/K) Σ_k exp(logw_kb))``, evaluated with the maximum over k taken out
    so that nothing overflows ([IWAE-2]). The normalised importance weights ``w̃ = softmax_k(logw)``
    come out of the same shifted exponentials and go into the cache.

    Parameters
    ----------
    logw : (K, B) array
        Log importance weights ``log p(x, z_k) − log q(z_k|x)`` of K draws for each of B examples.

    Returns
    -------
    value : float
    cache : for :func:`iwae_objective_backward`

    Derivation: docs/derivations/iwae.md#iwae-4
    """
    K, B = logw.shape
    m = logw.max(axis=0)  # (B,)
    e = np.exp(logw - m)  # (K, B), the largest entry of each column is exp(0) = 1
    s = e.sum(axis=0)  # (B,), >= 1
    lme = m + np.log(s) - np.log(K)  # (B,) [IWAE-2]
    value = -float(np.sum(lme)) / B  # [IWAE-4]
    w_tilde = e / s  # (K, B), columns sum to 1 [IWAE-5]
    return value, (w_tilde, B)


def iwae_objective_backward(dvalue, cache):
    """``dlogw = −dvalue · w̃ / B`` with w̃ the normalised weights (softmax over k) [IWAE-5].

    Each column sums to ``−dvalue / B``. Returns a (K, B) array.

    Derivation: docs/derivations/iwae.md#iwae-5
    """
    w_tilde, B = cache
    return -dvalue * w_tilde / B  # (K, B) [IWAE-5]


def multisample_elbo_forward(logw):
    """Negative K-sample ELBO, averaged over the batch [IWAE-6], in nats per example.

    ``value = −(1/(K·B)) Σ_k Σ_b logw_kb``: the mean of the log-weights instead of the log of their
    mean. ``logw`` is (K, B). Returns ``(value, cache)``.

    Derivation: docs/derivations/iwae.md#iwae-6
    """
    K, B = logw.shape
    value = -float(np.sum(logw)) / (K * B)  # [IWAE-6]
    return value, (logw.shape, logw.dtype)


def multisample_elbo_backward(dvalue, cache):
    """``dlogw = −dvalue / (K·B)`` for every entry [IWAE-7]. Returns a (K, B) array.

    Derivation: docs/derivations/iwae.md#iwae-7
    """
    shape, dtype = cache
    K, B = shape
    return np.full(shape, -dvalue / (K * B), dtype=dtype)  # (K, B) [IWAE-7]


# --------------------------------------------------------------------------------------------------
# Gradients of the log densities (forwards in npae.pairs.latent)
# --------------------------------------------------------------------------------------------------
def log_normal_backward(dlogq, cache):
    """Gradients of ``log N(z; mu, diag exp(logvar))`` [IWAE-8].

    ``dz = −dlogq (z − mu) exp(−logvar)``, ``dmu = −dz`` (summed over draws),
    ``dlogvar = −dlogq · 0.5 (1 − (z − mu)² exp(−logvar))`` (summed over draws).

    Returns ``(dz, dmu, dlogvar)`` with the shapes of ``z``, ``mu`` and ``logvar``.

    Derivation: docs/derivations/iwae.md#iwae-8
    """
    diff, prec, sq, z_shape, mu_shape, logvar_shape = cache
    dlogq = np.asarray(dlogq)[..., None]  # (L, B, 1) or (B, 1)
    dz_each = -dlogq * diff * prec  # (L, B, Z) or (B, Z) [IWAE-8]
    dz = _sum_to_shape(dz_each, z_shape)  # z's shape
    dmu = _sum_to_shape(-dz_each, mu_shape)  # mu's shape [IWAE-8]
    dlogvar = _sum_to_shape(-dlogq * 0.5 * (1.0 - sq), logvar_shape)  # logvar's shape [IWAE-8]
    return dz, dmu, dlogvar


def log_standard_normal_backward(dlogp, cache):
    """``dz = −dlogp · z`` [IWAE-9]. Derivation: docs/derivations/iwae.md#iwae-9"""
    z = cache
    return -np.asarray(dlogp)[..., None] * z  # z's shape [IWAE-9]


# --------------------------------------------------------------------------------------------------
# The latent part of one log-weight: z = mu + std·eps and log p(z) − log q(z|x)
# --------------------------------------------------------------------------------------------------
def reparam_log_ratio_forward(mu, logvar, eps):
    """The sample ``z = mu + std·eps`` and ``log p(z) − log q(z|x)`` for it [IWAE-10].

    With the decoder's ``log p(x|z)`` the caller forms ``logw = log_px + log_ratio`` [IWAE-1]. The
    mean of ``−log_ratio`` over draws is the sampled KL, whose expectation is [KL-1].

    Parameters
    ----------
    mu, logvar : (B, Z) arrays
        q(z|x) = N(mu, diag exp(logvar)).
    eps : (B, Z) or (L, B, Z) array
        Standard-normal noise.

    Returns
    -------
    (z, log_ratio) : z shaped like ``eps``; log_ratio of shape ``eps.shape[:-1]``
    cache : for :func:`reparam_log_ratio_backward` and :func:`reparam_log_ratio_backward_fused`

    Derivation: docs/derivations/iwae.md#iwae-10
    """
    z, r_cache = reparameterize_forward(mu, logvar, eps)  # (L, B, Z) or (B, Z)
    logp, p_cache = log_standard_normal_forward(z)  # (L, B) or (B,)
    logq, q_cache = log_normal_forward(z, mu, logvar)  # (L, B) or (B,)
    log_ratio = logp - logq  # (L, B) or (B,) [IWAE-10]
    return (z, log_ratio), (z, r_cache, p_cache, q_cache)


def reparam_log_ratio_backward(dout, cache):
    """Node-by-node gradients of ``(z, log p(z) − log q(z|x))`` with respect to mu and logvar [IWAE-10].

    ``dout = (dz, dlog_ratio)``: ``dz`` is what the decoder sent back to its input z, shaped like z.
    z is used three times (decoder, prior, q's evaluation point), so its gradients add; then mu and
    logvar collect the sampler's gradient plus q's direct gradient.

    Returns ``(dmu, dlogvar)``, both (B, Z).

    Derivation: docs/derivations/iwae.md#iwae-10
    """
    dz_decoder, dlog_ratio = dout
    z, r_cache, p_cache, q_cache = cache
    dz_prior = log_standard_normal_backward(dlog_ratio, p_cache)  # z's shape [IWAE-9]
    dz_q, dmu_q, dlogvar_q = log_normal_backward(-dlog_ratio, q_cache)  # [IWAE-8]
    dz = dz_decoder + dz_prior + dz_q  # z's shape: the fan-in at z [IWAE-10]
    dmu_sampler, dlogvar_sampler = reparameterize_backward(dz, r_cache)  # (B, Z) each
    dmu = dmu_sampler + dmu_q  # (B, Z): sampler + q's direct dependence [IWAE-10]
    dlogvar = dlogvar_sampler + dlogvar_q  # (B, Z) [IWAE-10]
    return dmu, dlogvar


def reparam_log_ratio_backward_fused(dout, cache):
    """The same gradients as :func:`reparam_log_ratio_backward`, simplified [IWAE-11].

    At fixed eps, ``−log q(z|x) = 0.5 Σ (log 2π + logvar + eps²)`` does not depend on mu, and its
    logvar derivative is the constant 0.5: q's through-z and direct mu gradients cancel. What is
    left is ``g = dz − dlog_ratio · z`` (decoder plus prior), and

    ``dmu = Σ_L g``,  ``dlogvar = 0.5 std Σ_L g ⊙ eps + 0.5 Σ_L dlog_ratio``.

    Returns ``(dmu, dlogvar)``, both (B, Z).

    Derivation: docs/derivations/iwae.md#iwae-11
    """
    dz_decoder, dlog_ratio = dout
    z, (eps, std), _, _ = cache
    g = dz_decoder - np.asarray(dlog_ratio)[..., None] * z  # z's shape [IWAE-11]
    g = g.reshape((-1,) + std.shape)  # (L, B, Z)
    dlog_ratio_sum = np.asarray(dlog_ratio).reshape(g.shape[:2]).sum(axis=0)  # (B,)
    dmu = g.sum(axis=0)  # (B, Z) [IWAE-11]
    dstd = np.sum(g * eps.reshape(g.shape), axis=0)  # (B, Z) [REPARAM-4]
    dlogvar = 0.5 * std * dstd + 0.5 * dlog_ratio_sum[:, None]  # (B, Z) [IWAE-11]
    return dmu, dlogvar


def reparam_log_q(logvar, eps):
    """``log q(z|x)`` at ``z = mu + std·eps``, written through eps [IWAE-11]:
    ``−0.5 Σ (log 2π + logvar + eps²)``.

    Equal to ``log_normal(z, mu, logvar)`` (up to rounding); shows why the value cannot depend on mu.
    """
    return -0.5 * np.sum(LOG_2PI + logvar + eps * eps, axis=-1)  # (L, B) or (B,) [IWAE-11]


# --------------------------------------------------------------------------------------------------
# Two stochastic layers: x → z1 → z2, p(z2) p(z1|z2) p(x|z1)
# --------------------------------------------------------------------------------------------------
def hierarchical_log_weight_forward(log_px, z1, mu1, logvar1, z2, mu2, logvar2, pmu1, plogvar1):
    """Log-weight of a two-stochastic-layer model from its five density terms [HIER-1].

    ``logw = log p(x|z1) + log p(z1|z2) + log p(z2) − log q(z1|x) − log q(z2|z1)`` with
    q(z1|x) = N(mu1, exp(logvar1)), q(z2|z1) = N(mu2, exp(logvar2)), p(z1|z2) = N(pmu1, exp(plogvar1))
    and p(z2) = N(0, I). The networks that produce the means and log-variances are the caller's.

    Parameters
    ----------
    log_px : (B,) or (K, B) array
        ``log p(x|z1)`` from the decoder.
    z1 : (B, Z1) or (K, B, Z1);  mu1, logvar1 : (B, Z1) (from x, shared by the K draws)
    z2 : (B, Z2) or (K, B, Z2);  mu2, logvar2 : shaped like z2 (they are computed from z1)
    pmu1, plogvar1 : shaped like z1 (they are computed from z2)

    Returns ``(logw, cache)``, ``logw`` shaped like ``log_px``.

    Derivation: docs/derivations/hier.md#hier-1
    """
    log_q1, q1_cache = log_normal_forward(z1, mu1, logvar1)  # log q(z1|x)
    log_q2, q2_cache = log_normal_forward(z2, mu2, logvar2)  # log q(z2|z1)
    log_p1, p1_cache = log_normal_forward(z1, pmu1, plogvar1)  # log p(z1|z2)
    log_p2, p2_cache = log_standard_normal_forward(z2)  # log p(z2)
    logw = log_px + log_p1 + log_p2 - log_q1 - log_q2  # (K, B) or (B,) [HIER-1]
    return logw, (q1_cache, q2_cache, p1_cache, p2_cache)


def hierarchical_log_weight_backward(dlogw, cache):
    """Gradients of the five density terms [HIER-2], with z1's and z2's point uses summed [HIER-3].

    Returns ``(dlog_px, dz1, dmu1, dlogvar1, dz2, dmu2, dlogvar2, dpmu1, dplogvar1)`` in the order of
    the forward's arguments. ``dz1`` and ``dz2`` hold only the gradients through the places where
    z1 and z2 are *evaluated* by a density; the caller adds what comes back through the networks
    (docs/derivations/hier.md lists all uses).

    Derivation: docs/derivations/hier.md#hier-2
    """
    q1_cache, q2_cache, p1_cache, p2_cache = cache
    dlog_px = np.array(dlogw, copy=True)  # log_px's shape [HIER-2]
    dz1_p1, dpmu1, dplogvar1 = log_normal_backward(dlogw, p1_cache)  # from +log p(z1|z2) [HIER-2]
    dz1_q1, dmu1, dlogvar1 = log_normal_backward(-dlogw, q1_cache)  # from −log q(z1|x) [HIER-2]
    dz2_q2, dmu2, dlogvar2 = log_normal_backward(-dlogw, q2_cache)  # from −log q(z2|z1) [HIER-2]
    dz2_p2 = log_standard_normal_backward(dlogw, p2_cache)  # from +log p(z2) [HIER-2]
    dz1 = dz1_p1 + dz1_q1  # z1's shape: its two uses as a density's point [HIER-3]
    dz2 = dz2_p2 + dz2_q2  # z2's shape: its two uses as a density's point [HIER-3]
    return dlog_px, dz1, dmu1, dlogvar1, dz2, dmu2, dlogvar2, dpmu1, dplogvar1
