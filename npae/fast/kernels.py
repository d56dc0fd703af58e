"""Fused loops of the ``fused`` backend, compiled with numba. The only module that imports numba.

Every kernel below is a plain-Python loop body, jitted at import with ``njit(cache=True,
fastmath=SAFE_FASTMATH)`` (minitorch's pattern; no fast-math flag at all, see below). Each one fuses
elementwise passes that NumPy would run one temporary at a time; matrix products stay on BLAS
(``@``) in the callers. Model code never calls these: :class:`npae.backend.FusedOps` does, and each
kernel's docstring names the reference unit it replaces and the equation tags it computes (the tags
themselves sit on the reference code, the code the derivations describe). ``tests/test_kernels.py``
and ``tests/test_backend.py`` check the two agree (float64 to rtol 1e-12 per call, 1e-10 after
training).

Switches:

* ``NPAE_JIT=0`` in the environment, or numba missing: ``ENABLED`` is False and only the
  ``reference`` backend exists (:mod:`npae.fast.backends`).
* ``NUMBA_DISABLE_JIT=1``: numba runs these loops as Python (slow, but the library stays correct:
  that is how coverage sees the loop bodies).

Dtypes: every kernel computes in the dtype of its arrays; scalars are passed already cast to that
dtype (:func:`scalar`), so a float32 step never widens an array to float64. Loss values are summed
in a float64 accumulator (``float(...)``: a scalar, not an array, and the same with NUMBA_DISABLE_JIT=1),
which is more accurate than NumPy's float32 sum.
"""
import math
import os

import numpy as np


#: fastmath flags of every kernel: none. Each flag lets LLVM rewrite floating-point arithmetic in
#: ways that depend on the machine code it chooses, so the same kernel gave other bits depending on
#: how it was compiled: "contract" (a*b + c fused into one FMA) made a kernel compiled in the running
#: process and the same kernel loaded from numba's cache train 1 ulp apart; "reassoc" lets a sum's
#: order follow the vectorizer, which differs between specializations of one kernel (C-contiguous
#: against strided arrays: 26 of 50 loss sums differed in the last bit, measured with numba 0.68),
#: and it made a run killed on a cold cache resume with another loss history on CI. "nsz", "arcp" and
#: "afn" (signed zeros, reciprocals, approximate functions) are transformations of the same kind.
#: Without any of them every sum runs in the order the loop is written, on any machine and from any
#: cache; the cost was within the noise of the main job and the MNIST-size step (docs/performance.md).
#: tests/test_cache_bits.py compiles in one process with an empty cache, loads in another and
#: compares the bits of every kernel's results, and checks that no kernel's result depends on its
#: specialization.
SAFE_FASTMATH = False

try:
    if os.environ.get("NPAE_JIT", "1") == "0":
        raise ImportError("NPAE_JIT=0")
    from numba import njit
    # numba's products (np.dot in a jitted function) call SciPy's BLAS, a second OpenBLAS beside
    # NumPy's. Load it now, with numba, so that the thread limit of fit (npae.fast.threads, applied
    # after the kernels are imported) reaches it from the first step on; loaded later, inside the
    # limit, it kept its default threads (tests/test_threads.py).
    import scipy.linalg.cython_blas  # noqa: F401
    ENABLED = True
except ImportError:  # the NumPy reference paths take over
    ENABLED = False

#: activation name -> integer code of the activations the kernels fuse (one compiled kernel for all).
ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2}


def scalar(value, like):
    """``value`` as a NumPy scalar of ``like``'s dtype (keeps float32 kernels in float32)."""
    return like.dtype.type(value)


# --------------------------------------------------------------------------------------------------
# Loop bodies (plain Python). Reference units: npae.backend.ReferenceOps.
# --------------------------------------------------------------------------------------------------
def _bias_act_forward(a, b, h, act, slope):
    """In place ``a += b`` [DENSE-1], then ``h = f(a)`` for activation code ``act`` (0 identity,
    1 relu, 2 leaky_relu with ``slope``); ``h`` may be ``a`` itself for the identity. The
    activation is chosen outside the loops, so each loop vectorizes.

    ``a``: (B, n) product ``x @ W``, becomes the pre-activation. Only the piecewise-linear
    activations are fused: without a vector math library numba calls exp/tanh one number at a
    time, slower than NumPy's SIMD ufuncs, so the others stay on the NumPy path.
    Reference: functional.dense_forward followed by relu_forward / leaky_relu_forward.
    """
    B, n = a.shape
    if act == 1:
        for i in range(B):
            for j in range(n):
                s = a[i, j] + b[j]
                a[i, j] = s
                h[i, j] = max(s, 0)
    elif act == 2:
        for i in range(B):
            for j in range(n):
                s = a[i, j] + b[j]
                a[i, j] = s
                h[i, j] = s if s > 0 else slope * s
    else:  # the identity: h is a, or a copy of it (two stores to one address stop the vectorizer)
        for i in range(B):
            for j in range(n):
                a[i, j] = a[i, j] + b[j]
        if h.ctypes.data != a.ctypes.data:
            for i in range(B):
                for j in range(n):
                    h[i, j] = a[i, j]


def _act_backward(dh, a, da, db, act, slope):
    """``da = dh · f'(a)`` written into ``da`` (B, n), and the bias gradient ``db = Σ_rows da``
    [DENSE-4] (n,), in one pass. ``a``: the pre-activation of the forward; codes as in
    :func:`_bias_act_forward`. Reference: relu_backward / leaky_relu_backward, then
    ``dy.sum(axis=0)`` of dense_backward.
    """
    B, n = dh.shape
    db[:] = 0
    for i in range(B):
        for j in range(n):
            g = dh[i, j]
            if act == 1:
                g = g if a[i, j] > 0 else 0 * g
            elif act == 2:
                g = g if a[i, j] > 0 else slope * g
            da[i, j] = g
            db[j] += g


def _bce_with_logits(s, t, e, log1p_e, ds, scale):
    """Binary cross-entropy from logits, value and gradient in one pass.

    Takes ``e = exp(−|s|)`` and ``log1p_e = log1p(e)`` (B, D), computed by NumPy's vectorized
    ufuncs; returns ``Σ_ij max(s, 0) − s t + log1p(e)`` [LOSS-5] (a float64 sum over the whole
    batch: divide by B for the per-example mean) and writes ``ds = scale · (σ(s) − t)`` [LOSS-6],
    with σ(s) = 1/(1+e) for s ≥ 0 and e/(1+e) otherwise [ACT-6].
    Reference: functional.bce_with_logits_loss (with scale = 1/B).
    """
    B, n = s.shape
    total = 0.0
    for i in range(B):
        row = 0.0
        for j in range(n):
            x = s[i, j]
            row += float(max(x, 0) - x * t[i, j] + log1p_e[i, j])
            p = (1 if x >= 0 else e[i, j]) / (1 + e[i, j])
            ds[i, j] = scale * (p - t[i, j])
        total += row
    return total


def _adam(p, g, m, v, coef):
    """One Adam step on flat arrays, in place: moments [OPT-5], [OPT-6] and the bias-corrected
    update with the corrections folded into ``step`` and ``eps_hat`` [OPT-7]. Returns how many
    entries came out NaN or inf (in ``m``, ``v`` or ``p``): 0 on every healthy step. The check runs
    in the same pass on values still in registers (no second pass over memory; the loop still
    vectorizes), so that the caller can undo the step.

    ``coef = [step, eps_hat, β1, β2, 1 − β1, 1 − β2]`` in the arrays' dtype (one array: fewer
    arguments to unbox per call), from :func:`adam_coefficients`; ``1 − β`` is computed in float64
    and then rounded, as NumPy does (1 − float32(β2) would be off by 1e-5).
    Reference: npae.pairs.updates.adam_update.
    """
    step, eps_hat, beta1, beta2, c1, c2 = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5]
    bad = 0
    for k in range(p.shape[0]):
        gk = g[k]
        mk = beta1 * m[k] + c1 * gk
        vk = beta2 * v[k] + c2 * (gk * gk)
        pk = p[k] - step * mk / (math.sqrt(vk) + eps_hat)
        m[k] = mk
        v[k] = vk
        p[k] = pk
        # |x| < inf is False for NaN and ±inf (a comparison, whatever the compiler flags)
        if not (abs(mk) < math.inf and abs(vk) < math.inf and abs(pk) < math.inf):
            bad += 1
    return bad


def _reparam_kl_forward(mu, logvar, eps, std, em1, z):
    """``z = mu + std · eps`` [REPARAM-2] written into ``z`` (B, Z); returns the closed-form KL
    summed over the batch and latents [KL-1] (float64; divide by B for ``kl_mean``).

    ``std = exp(0.5 logvar)`` and ``em1 = expm1(logvar)`` (B, Z) come from NumPy's vectorized
    ufuncs (:func:`reparam_kl_forward_fused`): numba would call exp one number at a time, which
    made this kernel 4× slower. Reference: latent.reparameterize_forward and
    latent.gaussian_kl_forward.
    """
    B, Z = mu.shape
    total = 0.0
    for i in range(B):
        for j in range(Z):
            z[i, j] = mu[i, j] + std[i, j] * eps[i, j]
            total += 0.5 * float(mu[i, j] * mu[i, j] + em1[i, j] - logvar[i, j])
    return total


def _reparam_kl_backward(dz, eps, std, em1, dlogvar_sampler, dlogvar_kl):
    """The two logvar gradients of the sampler and of ``Σ KL``, written into ``dlogvar_sampler`` and
    ``dlogvar_kl`` (B, Z) in one pass: ``dz · eps · ½ std`` ([REPARAM-4]) and ``½ (exp(logvar) − 1)``
    ([KL-3]; ``em1`` = expm1(logvar) from the forward). The mu gradients need no arithmetic
    (``dz`` [REPARAM-3] and ``mu`` [KL-2]); the caller sums sampler and KL parts on its fan-in
    line [ELBO-5]. Reference: latent.reparameterize_backward and latent.gaussian_kl_backward.
    """
    B, Z = dz.shape
    for i in range(B):
        for j in range(Z):
            dlogvar_sampler[i, j] = dz[i, j] * eps[i, j] * 0.5 * std[i, j]
            dlogvar_kl[i, j] = 0.5 * em1[i, j]


def _neg_abs(s, out):
    """``out = −|s|`` over 1-D views, one pass (NumPy takes two: abs, then negative)."""
    for k in range(s.shape[0]):
        out[k] = -abs(s[k])


def _sum8(v):
    """``Σ v`` over a 1-D array in float64, as eight interleaved partial sums combined in a fixed
    order. Without fast-math flags a sum runs in the order it is written, and one running sum
    waits on each addition in turn (about four cycles); eight keep the adder busy, and since the
    order is written out the bits do not depend on the compiler (tests/test_cache_bits.py)."""
    n = v.shape[0]
    n8 = n - n % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for k in range(0, n8, 8):
        a0 += float(v[k])
        a1 += float(v[k + 1])
        a2 += float(v[k + 2])
        a3 += float(v[k + 3])
        a4 += float(v[k + 4])
        a5 += float(v[k + 5])
        a6 += float(v[k + 6])
        a7 += float(v[k + 7])
    for k in range(n8, n):
        a0 += float(v[k])
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


def _bernoulli_rows(s, t, l1p, out):
    """``out[k, b] = −Σ_d [max(s, 0) − s t + log1p(e^{−|s|})]`` for logits ``s`` (K, B, D), targets
    ``t`` (B, D) shared by the K draws and ``l1p = log1p(e^{−|s|})`` (K, B, D) from NumPy's
    vectorized ufuncs: the per-example Bernoulli log-likelihood of K decodings. Per row, the terms
    are formed in the arrays' dtype (a loop the compiler vectorizes), then summed in float64 by
    :func:`sum8` (the row pass 4.4 -> 2.8 ms for 4.2 M logits). Reference:
    ``−functional.bce_with_logits_sum(s, t)`` ([LOSS-5]).
    """
    K, B, D = s.shape
    v = np.empty(D, dtype=s.dtype)
    for k in range(K):
        for b in range(B):
            for d in range(D):
                x = s[k, b, d]
                v[d] = (x if x > 0 else 0 * x) - x * t[b, d] + l1p[k, b, d]
            out[k, b] = -sum8(v)


# --------------------------------------------------------------------------------------------------
# Jitted versions, made at import. cache=True stores the machine code in __pycache__, so only the
# first run after an edit pays for compilation. error_model="numpy" lets a division return inf
# instead of testing for zero (that test is what stops LLVM from vectorizing the loops).
# --------------------------------------------------------------------------------------------------
if ENABLED:
    def _jit(fn):
        return njit(cache=True, fastmath=SAFE_FASTMATH, error_model="numpy")(fn)
else:
    def _jit(fn):
        return fn

bias_act_forward = _jit(_bias_act_forward)
act_backward = _jit(_act_backward)
bce_with_logits = _jit(_bce_with_logits)
adam = _jit(_adam)
reparam_kl_forward = _jit(_reparam_kl_forward)
reparam_kl_backward = _jit(_reparam_kl_backward)
sum8 = _jit(_sum8)  # also called from inside other kernels (compiled into them)
bernoulli_rows = _jit(_bernoulli_rows)
neg_abs = _jit(_neg_abs)


# --------------------------------------------------------------------------------------------------
# Drop-in versions of the NumPy references, same signatures and results.
# --------------------------------------------------------------------------------------------------
def bce_with_logits_loss(logits, target):
    """Same as :func:`npae.pairs.functional.bce_with_logits_loss` (value per example, batch mean;
    ``dlogits = (σ(s) − t) / B``), with one exp and one log1p per entry and the rest fused."""
    B = logits.shape[0]
    logits = np.ascontiguousarray(logits)
    target = np.ascontiguousarray(target, dtype=logits.dtype)
    e = np.exp(-np.abs(logits))  # (B, D)
    log1p_e = np.log1p(e)  # (B, D)
    dlogits = np.empty_like(logits)  # (B, D)
    total = bce_with_logits(logits, target, e, log1p_e, dlogits, scalar(1.0 / B, logits))
    return float(total) / B, dlogits


def bernoulli_log_likelihood(logits, target):
    """Same as ``−functional.bce_with_logits_sum(logits, target)``: ``log p(x | z)`` per row of
    logits (..., B, D) against targets (B, D) broadcast over the leading axes: −|s| in one pass, the
    SIMD ufuncs exp and log1p in place, then one fused pass for the rest."""
    s = np.ascontiguousarray(logits)
    shape = s.shape
    s3 = s.reshape((-1,) + shape[-2:])  # (K, B, D)
    t = np.ascontiguousarray(np.broadcast_to(target, shape[-2:]), dtype=s.dtype)
    l1p = np.empty_like(s3)  # (K, B, D)
    neg_abs(s3.reshape(-1), l1p.reshape(-1))
    np.exp(l1p, out=l1p)
    np.log1p(l1p, out=l1p)
    out = np.empty(s3.shape[:2], dtype=np.float64)
    bernoulli_rows(s3, t, l1p, out)
    return out.astype(s.dtype, copy=False).reshape(shape[:-1])


def adam_coefficients(lr, beta1, beta2, eps, t, dtype):
    """The ``coef`` array of :func:`adam` for step ``t`` in ``dtype``:
    ``[step, eps_hat, β1, β2, 1 − β1, 1 − β2]`` with the bias corrections folded in [OPT-7]."""
    step = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    eps_hat = eps * math.sqrt(1.0 - beta2 ** t)
    return np.array([step, eps_hat, beta1, beta2, 1.0 - beta1, 1.0 - beta2], dtype=dtype)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t, coef=None):
    """Same as :func:`npae.pairs.updates.adam_update` (``p``, ``m``, ``v`` C-contiguous, updated in place).
    ``coef``: :func:`adam_coefficients` of this step, to compute it once for all arrays. Returns the
    number of entries of ``m``, ``v``, ``p`` that came out NaN or inf (see :func:`adam`)."""
    if coef is None:
        coef = adam_coefficients(lr, beta1, beta2, eps, t, p.dtype)
    return int(adam(p.reshape(-1), np.ascontiguousarray(g).reshape(-1), m.reshape(-1), v.reshape(-1),
                    coef))


def reparam_kl_forward_fused(mu, logvar, eps):
    """``z = mu + exp(0.5 logvar) · eps`` and the KL summed over the batch, in one pass.

    Same as ``ReferenceOps.reparam_kl_forward`` of :mod:`npae.fast.backends` (latent.reparameterize_forward
    and ``gaussian_kl_forward(...)[0].sum()``) for one sample per example.
    Returns ``(z, kl_sum, cache)``; ``cache`` feeds :func:`reparam_kl_backward_fused`.
    """
    mu, logvar = np.ascontiguousarray(mu), np.ascontiguousarray(logvar)
    eps = np.ascontiguousarray(eps, dtype=mu.dtype)
    std = np.exp(0.5 * logvar)  # (B, Z)
    em1 = np.expm1(logvar)  # (B, Z): exp(logvar) − 1 without cancellation near 0
    z = np.empty_like(mu)  # (B, Z)
    kl_sum = float(reparam_kl_forward(mu, logvar, eps, std, em1, z))
    return z, kl_sum, (eps, std, mu, em1)


def reparam_kl_backward_fused(dz, cache):
    """Same as ``ReferenceOps.reparam_kl_backward`` of :mod:`npae.fast.backends` for one sample per
    example: ``(dmu_sampler, dlogvar_sampler, dmu_kl, dlogvar_kl)``, the gradients of the sampler and
    of ``Σ_i KL_i`` kept apart (the model weights and sums them on its [ELBO-5] lines).
    ``dmu_sampler`` is ``dz`` and ``dmu_kl`` is ``mu``, returned as they are."""
    eps, std, mu, em1 = cache
    dz = np.ascontiguousarray(dz)
    dlogvar_sampler, dlogvar_kl = np.empty_like(mu), np.empty_like(mu)  # (B, Z) each
    reparam_kl_backward(dz, eps, std, em1, dlogvar_sampler, dlogvar_kl)
    return dz, dlogvar_sampler, mu, dlogvar_kl
