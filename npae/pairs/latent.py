"""The latent layer of a VAE as pure functions, and tools for exploring a latent space.

Pairs (no state, no randomness: the noise ``eps`` is an argument):

* :func:`logvar_clamp_forward` / :func:`logvar_clamp_backward`: keep ``logvar`` inside
  ``[LOGVAR_MIN, LOGVAR_MAX]`` [REPARAM-5], [REPARAM-6].
* :func:`reparameterize_forward` / :func:`reparameterize_backward`: ``z = mu + std * eps``
  [REPARAM-1..4]. ``std = exp(0.5 * logvar)`` is computed here and, on the
  fused path, in :func:`npae.fast.kernels.reparam_kl_forward_fused` (same expression).
* :func:`gaussian_kl_forward` / :func:`gaussian_kl_backward`: closed-form
  ``KL(N(mu, diag exp(logvar)) || N(0, I))`` per example, summed over latents [KL-1..3].
* :func:`fullcov_kl_forward` / :func:`fullcov_kl_backward`: the same KL for a full covariance
  ``Sigma = L Lᵀ`` (lower-triangular ``L``, diagonal through exp) [KL-4], [KL-5]; taught beside
  the diagonal one, used by no model (every npae posterior is diagonal or a flow).
* :func:`reparam_kl_forward` / :func:`reparam_kl_backward`: the two composed, the backend's
  sampler+KL unit under ``reference``.

Log densities as pairs' forwards [GAUSS-1], [GAUSS-2] (their backwards are in
:mod:`npae.pairs.bounds`). Helpers: log-mean-exp, plain and streaming [IWAE-2], [IWAE-3];
interpolation, attribute vectors and the inverse-CDF manifold grid [LATENT-1..4].

Shapes: ``mu`` and ``logvar`` are ``(B, Z)``; ``eps`` and ``z`` are ``(B, Z)`` or ``(L, B, Z)`` for
``L`` Monte-Carlo samples per example.
"""
from statistics import NormalDist

import numpy as np

from npae.constants import ACTIVE_UNIT_THRESHOLD, LOGVAR_MAX, LOGVAR_MIN  # noqa: F401 (re-exported)
from npae.validation import check_array, check_scalar

LOG_2PI = float(np.log(2.0 * np.pi))
_STANDARD_NORMAL = NormalDist(0.0, 1.0)  # its inv_cdf is Φ⁻¹ of the manifold grid


# --------------------------------------------------------------------------------------------------
# logvar clamp
# --------------------------------------------------------------------------------------------------
def logvar_clamp_forward(logvar_raw, low=LOGVAR_MIN, high=LOGVAR_MAX):
    """Clip the encoder's raw log-variance to ``[low, high]`` [REPARAM-5].

    Returns ``(logvar, inside)``: ``inside`` is the boolean mask of entries the clamp left alone;
    ``(~inside).sum()`` is how many entries it changed.

    Derivation: docs/derivations/reparam.md#reparam-5
    """
    logvar = np.clip(logvar_raw, low, high)  # (B, Z) [REPARAM-5]
    inside = (logvar_raw >= low) & (logvar_raw <= high)  # (B, Z)
    return logvar, inside


def logvar_clamp_backward(dlogvar, inside):
    """Gradient of the clamp: 1 inside the range, 0 outside [REPARAM-6]."""
    return dlogvar * inside  # (B, Z) [REPARAM-6]


# --------------------------------------------------------------------------------------------------
# Reparameterization
# --------------------------------------------------------------------------------------------------
def reparameterize_forward(mu, logvar, eps):
    """Sample ``z = mu + std * eps`` with ``std = exp(0.5 * logvar)`` [REPARAM-1], [REPARAM-2].

    Parameters
    ----------
    mu, logvar : (B, Z) arrays
        Mean and log-variance (log σ²) of the diagonal Gaussian q(z|x).
    eps : (B, Z) or (L, B, Z) array
        Standard-normal noise; a leading axis gives ``L`` samples per example.

    Returns
    -------
    z : array shaped like ``eps``
    cache : (eps, std) for :func:`reparameterize_backward`

    Derivation: docs/derivations/reparam.md#reparam-1
    """
    std = np.exp(0.5 * logvar)  # (B, Z) [REPARAM-1]
    z = mu + std * eps  # (B, Z) or (L, B, Z) [REPARAM-2]
    return z, (eps, std)


def reparameterize_backward(dz, cache):
    """Gradients of ``z = mu + exp(0.5 logvar) * eps`` with respect to ``mu`` and ``logvar``.

    Node by node: ``dstd = Σ_L dz * eps``, ``dlogvar = dstd * 0.5 * std``; ``dmu = Σ_L dz``
    [REPARAM-3], [REPARAM-4]. The sums run over the sample axis ``L`` when there is one.

    Returns ``(dmu, dlogvar)``, both (B, Z).

    Derivation: docs/derivations/reparam.md#reparam-3
    """
    eps, std = cache
    dz = dz.reshape((-1,) + std.shape)  # (L, B, Z), L = 1 without a sample axis
    eps = eps.reshape(dz.shape)  # (L, B, Z)
    dmu = dz.sum(axis=0)  # (B, Z) [REPARAM-3]
    dstd = np.sum(dz * eps, axis=0)  # (B, Z) [REPARAM-4]
    dlogvar = dstd * 0.5 * std  # (B, Z) [REPARAM-4]
    return dmu, dlogvar


# --------------------------------------------------------------------------------------------------
# Closed-form KL to the standard normal prior
# --------------------------------------------------------------------------------------------------
def gaussian_kl_terms(mu, logvar):
    """Per-coordinate ``KL(N(mu_j, exp(logvar_j)) || N(0, 1))``, shape of ``mu`` [KL-1].

    ``0.5 (mu² + expm1(logvar) − logvar)``: expm1 keeps ``exp(v) − 1 − v`` exact near v = 0,
    where the plain form rounds to a tiny negative number.
    """
    return 0.5 * (mu * mu + (np.expm1(logvar) - logvar))  # [KL-1]


def gaussian_kl_forward(mu, logvar):
    """Per-example ``KL(N(mu, diag exp(logvar)) || N(0, I))``, summed over latents [KL-1].

    ``kl_i = 0.5 Σ_j (mu_ij² + exp(logvar_ij) − 1 − logvar_ij)`` (in nats; ≥ 0, and 0 exactly at
    mu = 0, logvar = 0), computed by :func:`gaussian_kl_terms`. No batch mean here: the caller
    chooses the reduction.

    Returns ``(kl, cache)`` with ``kl`` of shape (B,).

    Derivation: docs/derivations/kl.md#kl-1
    """
    kl = np.sum(gaussian_kl_terms(mu, logvar), axis=-1)  # (B,) [KL-1]
    return kl, (mu, logvar)


def gaussian_kl_backward(dkl, cache):
    """Gradients of the per-example KL: ``dmu = dkl · mu`` [KL-2],
    ``dlogvar = dkl · 0.5 (exp(logvar) − 1)`` [KL-3]. ``dkl`` is (B,); returns two (B, Z) arrays.

    Derivation: docs/derivations/kl.md#kl-2
    """
    mu, logvar = cache
    dkl = dkl[..., None]  # (B, 1)
    dmu = dkl * mu  # (B, Z) [KL-2]
    dlogvar = dkl * 0.5 * np.expm1(logvar)  # (B, Z) [KL-3]
    return dmu, dlogvar


# --------------------------------------------------------------------------------------------------
# Closed-form KL of a full-covariance Gaussian to the standard normal prior
# --------------------------------------------------------------------------------------------------
def fullcov_scale_tril(L_raw):
    """The Cholesky factor ``L`` of ``Sigma = L Lᵀ`` from its unconstrained parameter ``L_raw``
    (..., D, D): the strictly lower triangle as given, the diagonal ``exp(diag(L_raw))`` (so it is
    positive and ``log det Sigma = 2 Σ_j diag(L_raw)_j``), the upper triangle ignored (zero).
    Forward only: the KL pair below differentiates with respect to ``L_raw`` directly."""
    L_raw = np.asarray(L_raw)
    D = L_raw.shape[-1]
    low = np.tril(L_raw, k=-1)  # (..., D, D)
    return low + np.exp(np.diagonal(L_raw, axis1=-2, axis2=-1))[..., None] * np.eye(D)


def fullcov_kl_forward(mu, L_raw):
    """Per-example ``KL(N(mu, L Lᵀ) || N(0, I))`` [KL-4], ``L`` = :func:`fullcov_scale_tril` (L_raw).

    ``½ (Tr Sigma + muᵀmu − D − log det Sigma)``, with ``Tr Sigma = ‖L‖²_F`` and
    ``log det Sigma = 2 Σ_j s_j`` (``s = diag(L_raw)``), written as
    ``½ (Σ_{i>j} A_ij² + Σ_j mu_j² + Σ_j (exp(2 s_j) − 1 − 2 s_j))`` (A the strictly lower part of
    L_raw), which is ≥ 0 term by term. With A = 0 and s = logvar / 2 it is :func:`gaussian_kl_forward`.

    Parameters
    ----------
    mu : (B, D) array
    L_raw : (B, D, D) array; its upper triangle does not enter (and gets a zero gradient).

    Returns ``(kl, cache)``, ``kl`` of shape (B,), nats per example (no batch mean).

    Derivation: docs/derivations/kl.md#kl-4
    """
    A = np.tril(L_raw, k=-1)  # (B, D, D) strictly lower part of L
    s = np.diagonal(L_raw, axis1=-2, axis2=-1)  # (B, D) log of L's diagonal
    off = np.sum(A * A, axis=(-2, -1))  # (B,) Σ_{i>j} L_ij², part of Tr Sigma [KL-4]
    diag = np.sum(np.expm1(2.0 * s) - 2.0 * s, axis=-1)  # (B,) Σ_j (L_jj² − 1 − log L_jj²) [KL-4]
    kl = 0.5 * (off + np.sum(mu * mu, axis=-1) + diag)  # (B,) [KL-4]
    return kl, (mu, A, s)


def fullcov_kl_backward(dkl, cache):
    """Gradients of :func:`fullcov_kl_forward`: ``dmu = dkl · mu`` [KL-5],
    ``dL_raw`` = ``dkl · A`` below the diagonal, ``dkl · (exp(2 s) − 1)`` on it, 0 above [KL-5].
    ``dkl`` is (B,); returns ``(dmu, dL_raw)``, (B, D) and (B, D, D).

    Derivation: docs/derivations/kl.md#kl-5
    """
    mu, A, s = cache
    dkl = np.asarray(dkl)[..., None]  # (B, 1)
    dmu = dkl * mu  # (B, D) [KL-5]
    dL_raw = dkl[..., None] * A  # (B, D, D) strictly lower part [KL-5]
    ds = dkl * np.expm1(2.0 * s)  # (B, D) diagonal [KL-5]
    idx = np.arange(s.shape[-1])
    dL_raw[..., idx, idx] = ds  # (B, D, D)
    return dmu, dL_raw


# --------------------------------------------------------------------------------------------------
# Sampler + KL: the backend's unit under ``reference``
# --------------------------------------------------------------------------------------------------
def reparam_kl_forward(mu, logvar, eps):
    """:func:`reparameterize_forward` [REPARAM-2] and :func:`gaussian_kl_forward` [KL-1] of one
    posterior: ``(z, kl_sum, cache)``, ``kl_sum`` the KL summed over the batch (a float)."""
    z, rep_cache = reparameterize_forward(mu, logvar, eps)  # (B, Z) or (L, B, Z)
    kl, kl_cache = gaussian_kl_forward(mu, logvar)  # (B,)
    return z, float(np.sum(kl)), (rep_cache, kl_cache)


def reparam_kl_backward(dz, cache):
    """The sampler's gradient [REPARAM-3, 4] and the gradient of ``Σ_i KL_i`` [KL-2, 3], kept
    apart: ``(dmu_sampler, dlogvar_sampler, dmu_kl, dlogvar_kl)``, each (B, Z). The model weights
    the KL part and sums the two on its own tagged fan-in line [ELBO-5]."""
    rep_cache, kl_cache = cache
    dmu_sampler, dlogvar_sampler = reparameterize_backward(dz, rep_cache)  # (B, Z) each
    ones = np.ones(kl_cache[0].shape[0], dtype=kl_cache[0].dtype)  # (B,): d(Σ_i KL_i)/dKL_i
    dmu_kl, dlogvar_kl = gaussian_kl_backward(ones, kl_cache)  # (B, Z) each
    return dmu_sampler, dlogvar_sampler, dmu_kl, dlogvar_kl


# --------------------------------------------------------------------------------------------------
# Log densities (summed over the last axis)
# --------------------------------------------------------------------------------------------------
def log_normal_forward(z, mu, logvar):
    """``log N(z; mu, diag exp(logvar))`` summed over the last axis [GAUSS-1]:
    ``−0.5 Σ_j (log 2π + logvar_j + (z_j − mu_j)² exp(−logvar_j))``.

    ``z`` may carry leading sample axes that ``mu`` and ``logvar`` broadcast against. Returns
    ``(logq, cache)``, ``logq`` of shape ``z.shape[:-1]``; the backward is
    :func:`npae.pairs.bounds.log_normal_backward` [IWAE-8].

    Derivation: docs/derivations/gauss.md#gauss-1
    """
    diff = z - mu  # (L, B, Z) or (B, Z)
    prec = np.exp(-logvar)  # (B, Z): 1/σ²
    sq = diff * diff * prec  # (L, B, Z) or (B, Z)
    logq = -0.5 * np.sum(LOG_2PI + logvar + sq, axis=-1)  # (L, B) or (B,) [GAUSS-1]
    return logq, (diff, prec, sq, np.shape(z), np.shape(mu), np.shape(logvar))


def log_standard_normal_forward(z):
    """``log N(z; 0, I)`` summed over the last axis: ``−0.5 Σ_j (log 2π + z_j²)`` [GAUSS-2].
    Returns ``(logp, z)``; the backward is :func:`npae.pairs.bounds.log_standard_normal_backward`.

    Derivation: docs/derivations/gauss.md#gauss-2
    """
    logp = -0.5 * np.sum(LOG_2PI + z * z, axis=-1)  # (L, B) or (B,) [GAUSS-2]
    return logp, z


def log_normal(z, mu, logvar):
    """The value of :func:`log_normal_forward` alone (forward only)."""
    return log_normal_forward(z, mu, logvar)[0]


def log_standard_normal(z):
    """The value of :func:`log_standard_normal_forward` alone (forward only)."""
    return log_standard_normal_forward(z)[0]


# --------------------------------------------------------------------------------------------------
# log-mean-exp
# --------------------------------------------------------------------------------------------------
def logmeanexp(a, axis=0):
    """``log((1/K) Σ_k exp(a_k))`` along ``axis``, shifted by the maximum so nothing overflows [IWAE-2]."""
    a = np.asarray(a)
    m = _finite_shift(np.max(a, axis=axis, keepdims=True))
    with np.errstate(divide="ignore"):  # every a = −inf: the log of a zero mean is −inf, as it should
        out = m + np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True))  # [IWAE-2]
    return np.squeeze(out, axis=axis)


def _finite_shift(m):
    """The shift of a log-mean-exp: the maximum where it is finite, 0 where it is ±inf (all the
    log-values −inf: exp(−inf − 0) = 0, where −inf − (−inf) would be NaN)."""
    return np.where(np.isfinite(m), m, 0.0)


class StreamingLogMeanExp:
    """log-mean-exp over axis 0 of chunks that arrive one at a time, in memory of one chunk.

    Keeps the running maximum ``m`` and the shifted sum ``s = Σ_k exp(a_k − m)``; a new chunk with
    maximum ``m_new`` rescales the old sum by ``exp(m − max(m, m_new))`` [IWAE-3]. The result equals
    :func:`logmeanexp` of the concatenated chunks (up to rounding).

    Derivation: docs/derivations/iwae.md#iwae-3
    """

    def __init__(self):
        self.m = None  # running max, shape of one row
        self.s = None  # Σ exp(a − m)
        self.count = 0

    def update(self, chunk):
        """Add a chunk ``(K_chunk, ...)`` of log-values."""
        chunk = np.asarray(chunk)
        chunk_max = chunk.max(axis=0)  # (B,), −inf where every value of a column is
        if self.m is None:
            self.m = chunk_max
            self.s = np.sum(np.exp(chunk - _finite_shift(chunk_max)), axis=0)  # (B,)
        else:
            m_new = np.maximum(self.m, chunk_max)  # (B,)
            shift, old = _finite_shift(m_new), _finite_shift(self.m)
            with np.errstate(over="ignore", invalid="ignore"):  # s = 0 columns stay 0 below
                kept = np.where(self.s > 0, self.s * np.exp(old - shift), 0.0)
            self.s = kept + np.sum(np.exp(chunk - shift), axis=0)  # [IWAE-3]
            self.m = m_new
        self.count += chunk.shape[0]
        return self

    def result(self):
        """``log((1/K) Σ_k exp(a_k))`` over every row seen so far."""
        if self.count == 0:
            raise ValueError("StreamingLogMeanExp.result() called before any update()")
        with np.errstate(divide="ignore"):  # s = 0: every log-value was −inf, and so is the result
            return _finite_shift(self.m) + np.log(self.s) - np.log(self.count)  # [IWAE-3]


# --------------------------------------------------------------------------------------------------
# Exploring the latent space
# --------------------------------------------------------------------------------------------------
def _interp_inputs(z0, z1, t):
    z0 = check_array(z0, "z0", ndim=1)
    z1 = check_array(z1, "z1", ndim=1)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must have the same shape, got {z0.shape} and {z1.shape}")
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if t.ndim != 1 or not np.isfinite(t).all():
        raise ValueError(f"t must be a finite scalar or 1-D array, got shape {t.shape}")
    return z0, z1, t[:, None]


def lerp(z0, z1, t):
    """Linear interpolation ``(1 − t) z0 + t z1`` [LATENT-1].

    ``z0``, ``z1``: (Z,) codes; ``t``: scalar or (T,) array. Returns (T, Z).

    Derivation: docs/derivations/latent.md#latent-1
    """
    z0, z1, t = _interp_inputs(z0, z1, t)
    return (1.0 - t) * z0 + t * z1  # (T, Z) [LATENT-1]


def slerp(z0, z1, t):
    """Spherical interpolation along the great circle from ``z0`` to ``z1`` [LATENT-2].

    ``(sin((1 − t) γ) z0 + sin(t γ) z1) / sin γ`` with ``cos γ = ẑ0 · ẑ1``. Falls back to
    :func:`lerp` when the codes are (anti)parallel or zero (sin γ ≈ 0). Returns (T, Z).

    Derivation: docs/derivations/latent.md#latent-2
    """
    z0, z1, t = _interp_inputs(z0, z1, t)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 == 0.0 or n1 == 0.0:
        return lerp(z0, z1, t[:, 0])
    gamma = np.arccos(np.clip(np.dot(z0, z1) / (n0 * n1), -1.0, 1.0))  # the angle between the codes
    so = np.sin(gamma)
    if so < 1e-8:
        return lerp(z0, z1, t[:, 0])
    return (np.sin((1.0 - t) * gamma) * z0 + np.sin(t * gamma) * z1) / so  # (T, Z) [LATENT-2]


def attribute_vector(codes_with, codes_without):
    """Mean code of one group minus the mean code of another [LATENT-3]: ``(Z,)``.

    Add it to codes with :func:`apply_attribute` to move them toward the first group.
    """
    codes_with = check_array(codes_with, "codes_with")
    codes_without = check_array(codes_without, "codes_without", n_features=codes_with.shape[1])
    return codes_with.mean(axis=0) - codes_without.mean(axis=0)  # (Z,) [LATENT-3]


def apply_attribute(codes, vector, scale=1.0):
    """``codes + scale · vector`` (codes (N, Z), vector (Z,)) [LATENT-3]."""
    vector = check_array(vector, "vector", ndim=1)
    codes = check_array(codes, "codes", n_features=vector.shape[0])
    check_scalar("scale", scale)
    return codes + scale * vector  # (N, Z) [LATENT-3]


def manifold_grid(n, latent_dim=2, dims=(0, 1)):
    """Codes of Kingma & Welling's Fig. 4: an ``n × n`` grid of the open unit square, mapped
    through the inverse Gaussian CDF [LATENT-4].

    ``u_k = (k + 0.5) / n`` for k = 0..n−1 (never 0 or 1, so Φ⁻¹ stays finite) and
    ``z = Φ⁻¹(u)``: equal steps of prior probability mass. The two coordinates go into latent
    axes ``dims``; the other axes are 0 (the prior mean). Rows run over the first grid axis, so
    ``decode(grid)`` reshaped to ``(n, n, ...)`` is the figure, row ``r`` having ``z[dims[0]]``
    fixed.

    Returns an (n·n, latent_dim) array.

    Derivation: docs/derivations/latent.md#latent-4
    """
    check_scalar("n", n, low=1, integer=True)
    check_scalar("latent_dim", latent_dim, low=2, integer=True)
    dims = tuple(dims)
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be two different latent axes in 0..{latent_dim - 1}, got {dims}")
    u = (np.arange(n) + 0.5) / n  # (n,)
    # Φ⁻¹ from the standard library (Wichura's AS 241, to double precision; the same numbers as
    # scipy.special.ndtri within 1e-15, without importing scipy.special at start-up)
    q = np.array([_STANDARD_NORMAL.inv_cdf(float(p)) for p in u])  # (n,) [LATENT-4]
    grid = np.zeros((n, n, latent_dim))
    grid[:, :, dims[0]] = q[:, None]
    grid[:, :, dims[1]] = q[None, :]
    return grid.reshape(n * n, latent_dim)
