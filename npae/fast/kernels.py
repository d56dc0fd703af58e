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
import contextlib
import math
import os

import numpy as np

from npae.pairs.conv import _check_arrays, _pair, conv_output_size, conv_transpose_output_size, nchw_to_rows

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
    from numba import njit, objmode
    # numba's products (np.dot in a jitted function) call SciPy's BLAS, a second OpenBLAS beside
    # NumPy's. Load it now, with numba, so that the thread limit of fit (npae.fast.threads, applied
    # after the kernels are imported) reaches it from the first step on; loaded later, inside the
    # limit, it kept its default threads (tests/test_threads.py).
    import scipy.linalg.cython_blas  # noqa: F401
    ENABLED = True
except ImportError:  # the NumPy reference paths take over
    ENABLED = False
    objmode = contextlib.nullcontext

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
    1 relu, 2 leaky_relu with ``slope``); ``h`` may be ``a`` itself for the identity.

    ``a``: (B, n) product ``x @ W``, becomes the pre-activation. Only the piecewise-linear
    activations are fused: without a vector math library numba calls exp/tanh one number at a
    time, slower than NumPy's SIMD ufuncs, so the others stay on the NumPy path.
    Reference: functional.dense_forward followed by relu_forward / leaky_relu_forward.
    """
    B, n = a.shape
    for i in range(B):
        for j in range(n):
            s = a[i, j] + b[j]
            a[i, j] = s
            if act == 1:
                h[i, j] = max(s, 0)
            elif act == 2:
                h[i, j] = s if s > 0 else slope * s
            else:
                h[i, j] = s


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


def _bernoulli_rows(s, t, l1p, out):
    """``out[k, b] = −Σ_d [max(s, 0) − s t + log1p(e^{−|s|})]`` for logits ``s`` (K, B, D), targets
    ``t`` (B, D) shared by the K draws and ``l1p = log1p(e^{−|s|})`` (K, B, D) from NumPy's
    vectorized ufuncs: the per-example Bernoulli log-likelihood of K decodings, one pass, the sum in
    float64. Reference: ``−functional.bce_with_logits_sum(s, t)`` ([LOSS-5])."""
    K, B, D = s.shape
    for k in range(K):
        for b in range(B):
            acc = 0.0
            for d in range(D):
                x = s[k, b, d]
                acc += float(max(x, 0) - x * t[b, d] + l1p[k, b, d])
            out[k, b] = -acc


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
bernoulli_rows = _jit(_bernoulli_rows)


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
    logits (..., B, D) against targets (B, D) broadcast over the leading axes; two SIMD ufunc
    passes (exp, log1p) and one fused pass for the rest."""
    s = np.ascontiguousarray(logits)
    shape = s.shape
    s3 = s.reshape((-1,) + shape[-2:])  # (K, B, D)
    t = np.ascontiguousarray(np.broadcast_to(target, shape[-2:]), dtype=s.dtype)
    l1p = np.abs(s3)
    np.negative(l1p, out=l1p)
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


# ==================================================================================================
# The compiled epoch: every step of one epoch of an MLP autoencoder or VAE in one numba call.
# Reference: the per-step path (npae.training.loop.fit_loop calling the model's step, the backend units,
# npae.training.loop.check_step and the optimizer), which it must reproduce, the same random numbers in
# the same order included (tests/test_compiled_epoch.py). Layer table ``lay`` (one row per Dense
# layer, int64): offW, offb, n_in, n_out, activation code, offA, offH, offD — offsets into the flat
# parameters (W, b; also into the flat gradients) and into the workspace ``ws`` (pre-activation A,
# post-activation H (== A for the identity), input gradient D); ``hyp`` the layer's slope / alpha.
# ==================================================================================================
#: activation name -> code of the compiled epoch's elementwise loops
EPOCH_ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4, "softplus": 5,
                   "elu": 6}


def exp_neg_abs_log1p(s, e, l1p):
    """``e = exp(−|s|)`` and ``l1p = log1p(e)`` by NumPy's SIMD ufuncs, in place (plain Python).
    The compiled epochs call it through ``objmode`` (about 1 µs per call): numba's scalar
    ``math.exp`` and ``math.log1p`` took 80 µs for a 64 × 64 batch of logits where NumPy takes 6,
    and were most of the compiled epoch's time (docs/performance.md). The per-step BCE kernel uses
    the same two ufuncs, so both paths see the same values."""
    np.abs(s, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.log1p(e, out=l1p)


def _ep_view(ws, off, rows, cols):
    return ws[off:off + rows * cols].reshape((rows, cols))


def _ep_act_forward(A, H, code, p):
    """H = f(A) elementwise (reference: the activation pairs of npae.pairs.functional)."""
    B, n = A.shape
    for i in range(B):
        for j in range(n):
            a = A[i, j]
            if code == 0:
                h = a
            elif code == 1:
                h = a if a > 0 else 0 * a
            elif code == 2:
                h = a if a > 0 else p * a
            elif code == 3:
                e = math.exp(-abs(a))
                h = 1 / (1 + e) if a >= 0 else e / (1 + e)
            elif code == 4:
                h = math.tanh(a)
            elif code == 5:
                h = max(a, 0) + math.log1p(math.exp(-abs(a)))
            else:
                h = a if a > 0 else p * math.expm1(min(a, 0))
            H[i, j] = h


def _ep_act_backward(D, A, H, DA, code, p):
    """DA = D · f'(A) elementwise (reference: the activation pairs' backward)."""
    B, n = D.shape
    for i in range(B):
        for j in range(n):
            d = D[i, j]
            a = A[i, j]
            if code == 0:
                g = d
            elif code == 1:
                g = d if a > 0 else 0 * d
            elif code == 2:
                g = d if a > 0 else p * d
            elif code == 3:
                g = d * H[i, j] * (1 - H[i, j])
            elif code == 4:
                g = d * (1 - H[i, j] * H[i, j])
            elif code == 5:
                e = math.exp(-abs(a))
                g = d * (1 / (1 + e) if a >= 0 else e / (1 + e))
            else:
                g = d if a > 0 else d * (H[i, j] + p)
            DA[i, j] = g


def _ep_forward(x, theta, ws, lay, hyp, l0, l1, B, Bmax):
    """Dense layers l0..l1−1 on the batch x (B rows); returns the last layer's output (a view)."""
    h = x
    for layer in range(l0, l1):
        row = lay[layer]
        offW, offb, nin, nout, code, offA, offH = row[0], row[1], row[2], row[3], row[4], row[5], row[6]
        W = theta[offW:offW + nin * nout].reshape((nin, nout))
        A = ep_view(ws, offA, Bmax, nout)[:B]
        np.dot(h, W, A)
        for i in range(B):
            for j in range(nout):
                A[i, j] += theta[offb + j]
        if code == 0:
            h = A
        else:
            H = ep_view(ws, offH, Bmax, nout)[:B]
            ep_act_forward(A, H, code, hyp[layer])
            h = H
    return h


def _ep_backward(dout, x, theta, grad, ws, lay, hyp, l0, l1, B, Bmax, input_grad):
    """Backpropagate ``dout`` (gradient of the last layer's output) through layers l1−1..l0,
    writing dW and db into ``grad``; returns the gradient of the chain's input when
    ``input_grad`` (else the last computed one)."""
    d = dout
    for layer in range(l1 - 1, l0 - 1, -1):
        row = lay[layer]
        offW, offb, nin, nout, code, offA, offH, offD = (row[0], row[1], row[2], row[3], row[4], row[5],
                                                         row[6], row[7])
        A = ep_view(ws, offA, Bmax, nout)[:B]
        if code == 0:
            da = d
        else:
            H = ep_view(ws, offH, Bmax, nout)[:B]
            da = ep_view(ws, offH + Bmax * nout, Bmax, nout)[:B]
            ep_act_backward(d, A, H, da, code, hyp[layer])
        if layer > l0:
            prev = lay[layer - 1]
            h_in = ep_view(ws, prev[6], Bmax, nin)[:B]
        else:
            h_in = x
        W = theta[offW:offW + nin * nout].reshape((nin, nout))
        dW = grad[offW:offW + nin * nout].reshape((nin, nout))
        np.dot(h_in.T, da, dW)
        for j in range(nout):
            s = 0 * da[0, 0]
            for i in range(B):
                s += da[i, j]
            grad[offb + j] = s
        if layer > l0 or input_grad:
            D = ep_view(ws, offD, Bmax, nin)[:B]
            np.dot(da, W.T, D)
            d = D
    return d


def _ep_update(theta, grad, m, v, opt, c, wd, sq, clip):
    """Clip by the global norm (``sq`` = Σ g²) and take one optimizer step on the flat arrays.
    ``opt``: 0 SGD, 1 momentum, 2 Nesterov, 3 Adam; ``c``: this step's coefficients (Adam:
    step, eps_hat, β1, β2, 1 − β1, 1 − β2; SGD/momentum: lr, μ). Returns how many parameters the
    update made NaN or inf. Reference: check_step's clipping [CLIP-2], npae.pairs.updates (weight decay
    [OPT-1] first)."""
    if clip > 0:
        norm = math.sqrt(sq)
        if norm > clip:
            scale = clip / norm
            for k in range(grad.shape[0]):
                grad[k] *= scale
    bad = 0
    for k in range(theta.shape[0]):
        g = grad[k] + wd * theta[k] if wd != 0 else grad[k]
        if opt == 3:
            mk = c[2] * m[k] + c[4] * g
            vk = c[3] * v[k] + c[5] * (g * g)
            m[k] = mk
            v[k] = vk
            p = theta[k] - c[0] * mk / (math.sqrt(vk) + c[1])
        elif opt == 0:
            p = theta[k] - c[0] * g
        else:
            vk = m[k] * c[1] + g
            m[k] = vk
            if opt == 2:
                p = theta[k] - c[0] * (g + c[1] * vk)
            else:
                p = theta[k] - c[0] * vk
        theta[k] = p
        if not abs(p) < math.inf:  # NaN or ±inf, by a comparison that fast-math keeps
            bad += 1
    return bad


def _ep_gather(X, perm, start, B, xb):
    D = X.shape[1]
    for i in range(B):
        r = perm[start + i]
        for j in range(D):
            xb[i, j] = X[r, j]


def _ep_finite(x):
    """x is neither NaN nor ±inf, by comparisons only (numba's math.isfinite is x − x == 0, which a
    fast-math flag such as 'reassoc' would fold to True)."""
    return x == x and x != math.inf and x != -math.inf


def _ep_sq(grad):
    s = 0.0
    for k in range(grad.shape[0]):
        s += float(grad[k] * grad[k])
    return s


def _ep_output_loss(out, xb, ws, offs, Bmax, kind, dout):
    """The reconstruction loss of the batch, summed over its rows (the caller divides by B), with
    its gradient with respect to the decoder output ``out`` (B, D), already divided by B, written
    into ``dout``. ``kind``: 0 BCE from logits, 1 MSE on σ(logits), 2 MSE on the logits, 3 the
    unit-variance Gaussian negative log-likelihood. The exp(−|s|) and log1p the first two need come
    from NumPy (:func:`exp_neg_abs_log1p`, into the workspace blocks ``offs[7]`` and ``offs[8]``).
    References: functional.bce_with_logits_loss, functional.mse_loss, VAE's Gaussian [ELBO-3]."""
    B, D = out.shape
    eb = ep_view(ws, offs[7], Bmax, D)[:B]
    l1pb = ep_view(ws, offs[8], Bmax, D)[:B]
    if kind <= 1:  # log1p is not needed for MSE on σ(s), but one objmode block keeps LLVM happy
        with objmode():
            exp_neg_abs_log1p(out, eb, l1pb)
    log2pi = math.log(2 * math.pi)
    total = 0.0
    for i in range(B):
        row = 0.0
        for j in range(D):
            s = out[i, j]
            t = xb[i, j]
            if kind == 0:
                e = eb[i, j]
                row += float(max(s, 0) - s * t + l1pb[i, j])
                p = (1 if s >= 0 else e) / (1 + e)
                dout[i, j] = (p - t) / B
            elif kind == 1:
                e = eb[i, j]
                p = 1 / (1 + e) if s >= 0 else e / (1 + e)
                r = p - t
                row += float(r * r)
                dout[i, j] = (2 * r / B) * p * (1 - p)
            elif kind == 2:
                r = s - t
                row += float(r * r)
                dout[i, j] = 2 * r / B
            else:
                r = s - t
                row += 0.5 * float(log2pi + r * r)
                dout[i, j] = r / B
        total += row
    return total


def _ep_stopped(loss, b, theta, grad, m, v, opt, coef, wd, clip, limit, counts):
    """The end of step ``b``: the divergence checks, then the update. True when the epoch stops
    here, with ``counts[2:4]`` saying where and why (see :func:`_vae_epoch`); reference:
    npae.training.loop.check_step and the optimizer."""
    sq = ep_sq(grad)
    if not ep_finite(loss) or not ep_finite(sq) or loss > limit:
        counts[2] = b
        counts[3] = 1 if not ep_finite(loss) else (2 if not ep_finite(sq) else 3)
        return True
    if ep_update(theta, grad, m, v, opt, coef, wd, sq, clip) > 0:
        counts[2] = b
        counts[3] = 4
        return True
    return False


def _vae_epoch(X, perm, eps, Bsz, theta, grad, m, v, ws, lay, hyp, n_enc, Z, lik, beta, offs,
               opt, coefs, wd, clip, limit, terms, counts):
    """One epoch of VAE steps (closed-form KL, one sample, Bernoulli (``lik`` 0) or unit-variance
    Gaussian (``lik`` 1) decoder). Reference: VAE._elbo_step through the backend units, batch by
    batch. ``eps`` (N, Z): the epoch's noise in draw order; ``offs``: workspace offsets of the
    batch, dh, dout, z, the clamp mask, ½σ·eps and ½expm1(logvar); ``terms`` (n_batches, 3)
    receives loss, recon, kl; ``limit`` the runaway-loss bound [CLIP-3]; ``counts``: [clamped,
    entries, first bad batch (−1), bad kind (1 non-finite loss, 2 non-finite gradient, 3 a loss
    past ``limit``: that step not taken; 4 an update that wrote NaN or inf: that step taken)].
    Returns the number of steps taken before the bad one (all of them when none)."""
    N, D = X.shape
    n_layers = lay.shape[0]
    Bmax = Bsz
    nb = (N + Bsz - 1) // Bsz
    for b in range(nb):
        start = b * Bsz
        B = min(Bsz, N - start)
        xb = ep_view(ws, offs[0], Bmax, D)[:B]
        ep_gather(X, perm, start, B, xb)
        h = ep_forward(xb, theta, ws, lay, hyp, 0, n_enc, B, Bmax)  # (B, 2Z): [mu | logvar_raw]
        zb = ep_view(ws, offs[3], Bmax, Z)[:B]
        mask = ep_view(ws, offs[4], Bmax, Z)[:B]
        half_std_eps = ep_view(ws, offs[5], Bmax, Z)[:B]
        half_em1 = ep_view(ws, offs[6], Bmax, Z)[:B]
        kl = 0.0
        clamped = 0
        for i in range(B):
            for j in range(Z):
                lv = h[i, Z + j]
                inside = 1
                if lv < -30.0:
                    lv = -30.0
                    inside = 0
                elif lv > 30.0:
                    lv = 30.0
                    inside = 0
                clamped += 1 - inside
                mu = h[i, j]
                std = math.exp(0.5 * lv)
                em1 = math.expm1(lv)
                e = eps[start + i, j]
                zb[i, j] = mu + std * e
                kl += 0.5 * float(mu * mu + em1 - lv)
                mask[i, j] = inside
                half_std_eps[i, j] = 0.5 * std * e
                half_em1[i, j] = 0.5 * em1
        counts[0] += clamped
        counts[1] += B * Z
        out = ep_forward(zb, theta, ws, lay, hyp, n_enc, n_layers, B, Bmax)  # (B, D)
        dout = ep_view(ws, offs[2], Bmax, D)[:B]
        recon = ep_output_loss(out, xb, ws, offs, Bmax, 0 if lik == 0 else 3, dout)
        recon /= B
        kl_mean = kl / B
        loss = recon + beta * kl_mean
        terms[b, 0] = loss
        terms[b, 1] = recon
        terms[b, 2] = kl_mean
        dzc = ep_backward(dout, zb, theta, grad, ws, lay, hyp, n_enc, n_layers, B, Bmax, True)
        dh = ep_view(ws, offs[1], Bmax, 2 * Z)[:B]
        w = beta / B
        for i in range(B):
            for j in range(Z):
                dz = dzc[i, j]
                dh[i, j] = dz + w * h[i, j]  # the fan-in: sampler + KL
                dh[i, Z + j] = (dz * half_std_eps[i, j] + w * half_em1[i, j]) * mask[i, j]
        ep_backward(dh, xb, theta, grad, ws, lay, hyp, 0, n_enc, B, Bmax, False)
        if ep_stopped(loss, b, theta, grad, m, v, opt, coefs[b], wd, clip, limit, counts):
            return b
    return nb


def _ae_epoch(X, perm, Bsz, theta, grad, m, v, ws, lay, hyp, n_enc, loss_kind, offs, opt, coefs, wd,
              clip, limit, terms, counts):
    """One epoch of Autoencoder steps: ``loss_kind`` 0 BCE from logits, 1 MSE on σ(logits),
    2 MSE on the logits. Reference: Autoencoder._loss_and_grads through the backend units."""
    N, D = X.shape
    n_layers = lay.shape[0]
    Bmax = Bsz
    nb = (N + Bsz - 1) // Bsz
    for b in range(nb):
        start = b * Bsz
        B = min(Bsz, N - start)
        xb = ep_view(ws, offs[0], Bmax, D)[:B]
        ep_gather(X, perm, start, B, xb)
        z = ep_forward(xb, theta, ws, lay, hyp, 0, n_enc, B, Bmax)
        out = ep_forward(z, theta, ws, lay, hyp, n_enc, n_layers, B, Bmax)
        dout = ep_view(ws, offs[2], Bmax, D)[:B]
        total = ep_output_loss(out, xb, ws, offs, Bmax, loss_kind, dout)
        loss = total / B
        terms[b, 0] = loss
        dz = ep_backward(dout, z, theta, grad, ws, lay, hyp, n_enc, n_layers, B, Bmax, True)
        ep_backward(dz, xb, theta, grad, ws, lay, hyp, 0, n_enc, B, Bmax, False)
        if ep_stopped(loss, b, theta, grad, m, v, opt, coefs[b], wd, clip, limit, counts):
            return b
    return nb


ep_view = _jit(_ep_view)
ep_act_forward = _jit(_ep_act_forward)
ep_act_backward = _jit(_ep_act_backward)
ep_forward = _jit(_ep_forward)
ep_backward = _jit(_ep_backward)
ep_update = _jit(_ep_update)
ep_gather = _jit(_ep_gather)
ep_sq = _jit(_ep_sq)
ep_finite = _jit(_ep_finite)
ep_output_loss = _jit(_ep_output_loss)
ep_stopped = _jit(_ep_stopped)
vae_epoch = _jit(_vae_epoch)
ae_epoch = _jit(_ae_epoch)


# ==================================================================================================
# Convolution (npae.pairs.conv): im2col, col2im and the NCHW <-> rows passes as loops; products on BLAS.
# Reference pairs: conv.conv2d_forward/backward and conv.conv_transpose2d_forward/backward. The
# fused functions take and return the same caches as the references, so the two can be mixed;
# tests/test_conv.py checks they agree (float64 to rtol 1e-12, float32 to 2e-6).
# ==================================================================================================


def _im2col(x, kH, kW, sH, sW, pH, pW, cols):
    """Write every receptive field of ``x`` (B, C, H, W) as one row of ``cols``
    (B·Ho·Wo, C·kH·kW) [CONV-3], reading zeros outside the image instead of padding it first.
    Reference: conv.im2col.
    """
    B, C, H, W = x.shape
    Ho = (H + 2 * pH - kH) // sH + 1
    Wo = (W + 2 * pW - kW) // sW + 1
    for n in range(B):
        for i in range(Ho):
            for j in range(Wo):
                row = (n * Ho + i) * Wo + j
                for c in range(C):
                    for u in range(kH):
                        h = i * sH + u - pH
                        for v in range(kW):
                            w = j * sW + v - pW
                            inside = h >= 0 and h < H and w >= 0 and w < W
                            cols[row, (c * kH + u) * kW + v] = x[n, c, h, w] if inside else 0


def _col2im_add(cols, kH, kW, sH, sW, pH, pW, out):
    """Add every row of ``cols`` (B·Ho·Wo, C·kH·kW) back onto its patch of ``out`` (B, C, H, W),
    in place [CONV-7]; taps that fall in the padding are dropped. ``out`` holds zeros (an input
    gradient) or the bias (a transposed convolution). Each pixel's contributions arrive in kernel
    order (u, v), as in the reference. Reference: conv.col2im.
    """
    B, C, H, W = out.shape
    Ho = (H + 2 * pH - kH) // sH + 1
    Wo = (W + 2 * pW - kW) // sW + 1
    for n in range(B):
        for c in range(C):
            for u in range(kH):
                for v in range(kW):
                    col = (c * kH + u) * kW + v
                    for i in range(Ho):
                        h = i * sH + u - pH
                        if h < 0 or h >= H:
                            continue
                        for j in range(Wo):
                            w = j * sW + v - pW
                            if w >= 0 and w < W:
                                out[n, c, h, w] += cols[(n * Ho + i) * Wo + j, col]


def _rows_to_nchw_bias(rows, b, y):
    """``y[n, c, i, j] = rows[(n·Ho + i)·Wo + j, c] + b[c]``: the product's rows (B·Ho·Wo, C) laid
    out as an image (B, C, Ho, Wo) with the bias added [CONV-1] in the same pass (``b`` zeros for
    none). Reference: conv.rows_to_nchw followed by ``y += b.reshape(-1, 1, 1)``.
    """
    B, C, Ho, Wo = y.shape
    for n in range(B):
        for c in range(C):
            bc = b[c]
            for i in range(Ho):
                for j in range(Wo):
                    y[n, c, i, j] = rows[(n * Ho + i) * Wo + j, c] + bc


def _nchw_to_rows_sum(dy, rows, db):
    """``rows[(n·Ho + i)·Wo + j, c] = dy[n, c, i, j]`` (B·Ho·Wo, C) and the bias gradient
    ``db[c] = Σ_{n,i,j} dy[n, c, i, j]`` [CONV-5] in one pass. Reference: conv.nchw_to_rows and
    ``dy.sum(axis=(0, 2, 3))``.
    """
    B, C, Ho, Wo = dy.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            acc = 0 * db[c]
            for i in range(Ho):
                for j in range(Wo):
                    g = dy[n, c, i, j]
                    rows[(n * Ho + i) * Wo + j, c] = g
                    acc += g
            db[c] += acc


im2col = _jit(_im2col)
col2im_add = _jit(_col2im_add)
rows_to_nchw_bias = _jit(_rows_to_nchw_bias)
nchw_to_rows_sum = _jit(_nchw_to_rows_sum)


def conv2d_forward_fused(x, W, b, stride=1, padding=0):
    """Drop-in for :func:`npae.pairs.conv.conv2d_forward` (reference pair conv2d_forward /
    conv2d_backward): same arguments, same ``(y, cache)``.

    im2col with the padding read as zeros (no padded copy), one BLAS product [CONV-1], then the
    NCHW layout and the bias in one pass.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 1, "conv2d")
    x = np.ascontiguousarray(x)
    B = x.shape[0]
    C_out, C_in, kH, kW = W.shape
    Ho, Wo = conv_output_size(x.shape[2:], (kH, kW), stride, padding)
    cols = np.empty((B * Ho * Wo, C_in * kH * kW), dtype=x.dtype)  # (B·Ho·Wo, C_in·kH·kW)
    im2col(x, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    y_rows = cols @ W.reshape(C_out, -1).T  # (B·Ho·Wo, C_out)
    y = np.empty((B, C_out, Ho, Wo), dtype=y_rows.dtype)  # (B, C_out, Ho, Wo)
    rows_to_nchw_bias(y_rows, np.ascontiguousarray(b, dtype=y.dtype), y)
    return y, (x.shape, cols, W, stride, padding)


def conv2d_backward_fused(dy, cache):
    """Drop-in for :func:`npae.pairs.conv.conv2d_backward` (reference pair conv2d_forward /
    conv2d_backward): ``(dx, dW, db)`` from ``dy`` and the cache of either forward.

    One pass lays ``dy`` out as rows and sums ``db`` [CONV-5]; two BLAS products give ``dW``
    [CONV-4] and the patch gradients [CONV-6]; col2im adds these into ``dx`` [CONV-7].
    """
    x_shape, cols, W, stride, padding = cache
    dy = np.ascontiguousarray(dy)
    B, C_out, Ho, Wo = dy.shape
    kH, kW = W.shape[2:]
    dy_rows = np.empty((B * Ho * Wo, C_out), dtype=dy.dtype)  # (B·Ho·Wo, C_out)
    db = np.empty(C_out, dtype=dy.dtype)  # (C_out,)
    nchw_to_rows_sum(dy, dy_rows, db)
    dW = (dy_rows.T @ cols).reshape(W.shape)  # (C_out, C_in, kH, kW)
    dcols = dy_rows @ W.reshape(C_out, -1)  # (B·Ho·Wo, C_in·kH·kW)
    dx = np.zeros(x_shape, dtype=dcols.dtype)  # (B, C_in, H, W)
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], dx)
    return dx, dW, db


def conv_transpose2d_forward_fused(x, W, b, stride=1, padding=0, output_padding=0):
    """Drop-in for :func:`npae.pairs.conv.conv_transpose2d_forward` (reference pair
    conv_transpose2d_forward / conv_transpose2d_backward): same arguments, same ``(y, cache)``.

    One BLAS product, then col2im adds the stamps onto an output that starts as the bias [CONV-8].
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 0, "conv_transpose2d")
    B = x.shape[0]
    C_in, C_out, kH, kW = W.shape
    Ho, Wo = conv_transpose_output_size(x.shape[2:], (kH, kW), stride, padding,
                                        output_padding)
    dcols = nchw_to_rows(x) @ W.reshape(C_in, -1)  # (B·H·W, C_out·kH·kW)
    y = np.empty((B, C_out, Ho, Wo), dtype=dcols.dtype)  # (B, C_out, Ho, Wo)
    y[...] = np.reshape(b, (-1, 1, 1))
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], y)
    return y, (x, W, stride, padding)


def conv_transpose2d_backward_fused(dy, cache):
    """Drop-in for :func:`npae.pairs.conv.conv_transpose2d_backward` (reference pair
    conv_transpose2d_forward / conv_transpose2d_backward): ``(dx, dW, db)``.

    im2col of ``dy`` and one BLAS product give ``dx`` [CONV-10], a conv2d forward with no bias;
    the same im2col matrix gives ``dW`` [CONV-11].
    """
    x, W, stride, padding = cache
    dy = np.ascontiguousarray(dy)
    B, C_in, H, W_in = x.shape
    C_out, kH, kW = W.shape[1:]
    cols = np.empty((B * H * W_in, C_out * kH * kW), dtype=dy.dtype)  # (B·H·W, C_out·kH·kW)
    im2col(dy, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    dx_rows = cols @ W.reshape(C_in, -1).T  # (B·H·W, C_in)
    dx = np.empty(x.shape, dtype=dx_rows.dtype)  # (B, C_in, H, W)
    rows_to_nchw_bias(dx_rows, np.zeros(C_in, dtype=dx.dtype), dx)  # no bias
    dW = (nchw_to_rows(x).T @ cols).reshape(W.shape)  # (C_in, C_out, kH, kW)
    db = dy.sum(axis=(0, 2, 3))  # (C_out,)
    return dx, dW, db


# ==================================================================================================
# Convolution steps with their activation (npae.fast.backends: FusedOps.conv2d_act_* and
# conv_transpose2d_act_*). Bias and a piecewise-linear activation ride along the passes that lay
# the product's rows out as an image (forward) and back (backward); products stay on BLAS, and the
# large scratch matrices (im2col, patch gradients, rows) are recycled from one step to the next
# through a ``work`` dict that the layer's cache carries. Reference units:
# npae.fast.backends.ReferenceOps.conv2d_act_forward / _backward and
# conv_transpose2d_act_forward / _backward (conv pairs of npae.pairs.conv, then the activation's pair).
# ==================================================================================================
def _rows_bias_act(rows, b, a, h, act, slope):
    """``a[n, c, i, j] = rows[(n·Ho + i)·Wo + j, c] + b[c]`` and ``h = f(a)`` (codes of
    :data:`ACT_CODES`; ``h`` may be ``a`` itself for the identity), one pass. ``rows``:
    (B·Ho·Wo, C), the product ``cols @ W_matᵀ``. Reference: conv.rows_to_nchw, the bias line of
    conv.conv2d_forward, then relu_forward / leaky_relu_forward.
    """
    B, C, Ho, Wo = a.shape
    for n in range(B):
        for c in range(C):
            bc = b[c]
            for i in range(Ho):
                for j in range(Wo):
                    s = rows[(n * Ho + i) * Wo + j, c] + bc
                    a[n, c, i, j] = s
                    if act == 1:
                        h[n, c, i, j] = max(s, 0)
                    elif act == 2:
                        h[n, c, i, j] = s if s > 0 else slope * s
                    else:
                        h[n, c, i, j] = s


def _act_forward_flat(a, h, act, slope):
    """``h = f(a)`` elementwise over 1-D views (codes of :data:`ACT_CODES`). Reference:
    relu_forward / leaky_relu_forward."""
    for k in range(a.shape[0]):
        s = a[k]
        if act == 1:
            h[k] = max(s, 0)
        elif act == 2:
            h[k] = s if s > 0 else slope * s
        else:
            h[k] = s


def _act_backward_rows(dh, a, rows, db, act, slope):
    """``rows[(n·Ho + i)·Wo + j, c] = dh[n, c, i, j] · f'(a[n, c, i, j])`` (B·Ho·Wo, C) and the
    bias gradient ``db[c]`` = the sum of those entries, in one pass over the image. Reference:
    relu_backward / leaky_relu_backward, then conv.nchw_to_rows and the db line of
    conv.conv2d_backward.
    """
    B, C, Ho, Wo = dh.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            acc = 0 * db[c]
            for i in range(Ho):
                for j in range(Wo):
                    g = dh[n, c, i, j]
                    if act == 1:
                        g = g if a[n, c, i, j] > 0 else 0 * g
                    elif act == 2:
                        g = g if a[n, c, i, j] > 0 else slope * g
                    rows[(n * Ho + i) * Wo + j, c] = g
                    acc += g
            db[c] += acc


def _act_backward_image(dh, a, da, db, act, slope):
    """``da = dh · f'(a)`` (B, C, H, W) and ``db[c] = Σ_{n,h,w} da[n, c]``, one pass. Reference:
    relu_backward / leaky_relu_backward, then the db line of conv.conv_transpose2d_backward."""
    B, C, H, W = dh.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            acc = 0 * db[c]
            for i in range(H):
                for j in range(W):
                    g = dh[n, c, i, j]
                    if act == 1:
                        g = g if a[n, c, i, j] > 0 else 0 * g
                    elif act == 2:
                        g = g if a[n, c, i, j] > 0 else slope * g
                    da[n, c, i, j] = g
                    acc += g
            db[c] += acc


rows_bias_act = _jit(_rows_bias_act)
act_forward_flat = _jit(_act_forward_flat)
act_backward_rows = _jit(_act_backward_rows)
act_backward_image = _jit(_act_backward_image)


def scratch(work, key, shape, dtype):
    """An uninitialised array of ``shape`` and ``dtype`` for temporary use: ``work[key]`` when it
    fits, else a new one stored there. ``work``: a dict carried from one step's cache to the next,
    or None (nothing kept: evaluation)."""
    shape = tuple(int(s) for s in shape)
    if work is None:
        return np.empty(shape, dtype=dtype)
    buf = work.get(key)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = work[key] = np.empty(shape, dtype=dtype)
    return buf


def _x_rows(x, work):
    """``x`` (B, C, H, W) as (B·H·W, C) rows (conv.nchw_to_rows) written into a scratch array."""
    B, C, H, W = x.shape
    rows = scratch(work, "x_rows", (B * H * W, C), x.dtype)
    rows.reshape(B, H, W, C)[...] = x.transpose(0, 2, 3, 1)
    return rows


def conv2d_act_forward_fused(x, W, b, stride, padding, act, slope, work):
    """Fused ``h = f(conv2d(x, W) + b)`` for an activation code ``act`` of :data:`ACT_CODES`.

    im2col reading the padding as zeros, one BLAS product into a recycled rows array, then the
    NCHW layout, bias and activation in one pass (:func:`rows_bias_act`). Returns
    ``(h, a, conv_cache)``: ``a`` the pre-activation (``h is a`` for the identity), ``conv_cache``
    the cache of conv.conv2d_forward (its im2col matrix lives in ``work`` and is reused by the
    next call). Reference: npae.fast.backends.ReferenceOps.conv2d_act_forward.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 1, "conv2d")
    x = np.ascontiguousarray(x)
    B = x.shape[0]
    C_out, C_in, kH, kW = W.shape
    Ho, Wo = conv_output_size(x.shape[2:], (kH, kW), stride, padding)
    cols = scratch(work, "cols", (B * Ho * Wo, C_in * kH * kW), x.dtype)  # (B·Ho·Wo, C_in·kH·kW)
    im2col(x, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    rows = scratch(work, "rows", (B * Ho * Wo, C_out), x.dtype)  # (B·Ho·Wo, C_out)
    np.matmul(cols, W.reshape(C_out, -1).T, out=rows)
    a = np.empty((B, C_out, Ho, Wo), dtype=x.dtype)  # (B, C_out, Ho, Wo)
    h = a if act == 0 else np.empty_like(a)  # (B, C_out, Ho, Wo)
    rows_bias_act(rows, np.ascontiguousarray(b, dtype=x.dtype), a, h, act, scalar(slope, a))
    return h, a, (x.shape, cols, W, stride, padding)


def conv2d_act_backward_fused(dh, a, act, slope, conv_cache, dW, db, input_grad, work):
    """Backward of :func:`conv2d_act_forward_fused`: writes ``dW`` and ``db`` in place, returns
    ``dx`` (None when ``input_grad`` is False: the patch gradients and col2im are skipped).

    One pass applies f' to ``dh``, lays it out as rows and sums ``db``
    (:func:`act_backward_rows`); ``dW = rowsᵀ cols`` goes straight into ``dW``; the patch gradients
    ``rows W_mat`` go into a recycled array that col2im adds into a zero ``dx``.
    Reference: npae.fast.backends.ReferenceOps.conv2d_act_backward.
    """
    x_shape, cols, W, stride, padding = conv_cache
    dh = np.ascontiguousarray(dh, dtype=a.dtype)
    B, C_out, Ho, Wo = dh.shape
    kH, kW = W.shape[2:]
    rows = scratch(work, "rows", (B * Ho * Wo, C_out), dh.dtype)  # (B·Ho·Wo, C_out)
    act_backward_rows(dh, a, rows, db, act, scalar(slope, a))
    np.matmul(rows.T, cols, out=dW.reshape(C_out, -1))  # (C_out, C_in·kH·kW)
    if not input_grad:
        return None
    dcols = scratch(work, "dcols", cols.shape, dh.dtype)  # (B·Ho·Wo, C_in·kH·kW)
    np.matmul(rows, W.reshape(C_out, -1), out=dcols)
    dx = np.zeros(x_shape, dtype=dh.dtype)  # (B, C_in, H, W)
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], dx)
    return dx


def conv_transpose2d_act_forward_fused(x, W, b, stride, padding, output_padding, act, slope, work):
    """Fused ``h = f(conv_transpose2d(x, W) + b)`` for an activation code ``act``.

    One BLAS product of the input rows into a recycled patch matrix, col2im adds the stamps onto an
    output that starts as the bias, then one pass for the activation. Returns
    ``(h, a, conv_cache)`` as :func:`conv2d_act_forward_fused` (the cache of
    conv.conv_transpose2d_forward). Reference: npae.fast.backends.ReferenceOps.conv_transpose2d_act_forward.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 0, "conv_transpose2d")
    B = x.shape[0]
    C_in, C_out, kH, kW = W.shape
    Ho, Wo = conv_transpose_output_size(x.shape[2:], (kH, kW), stride, padding, output_padding)
    x_rows = _x_rows(x, work)  # (B·H·W, C_in)
    dcols = scratch(work, "dcols", (x_rows.shape[0], C_out * kH * kW), x.dtype)  # (B·H·W, C_out·kH·kW)
    np.matmul(x_rows, W.reshape(C_in, -1), out=dcols)
    a = np.empty((B, C_out, Ho, Wo), dtype=x.dtype)  # (B, C_out, Ho, Wo)
    a[...] = np.reshape(b, (-1, 1, 1))
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], a)
    h = a
    if act != 0:
        h = np.empty_like(a)  # (B, C_out, Ho, Wo)
        act_forward_flat(a.reshape(-1), h.reshape(-1), act, scalar(slope, a))
    return h, a, (x, W, stride, padding)


def conv_transpose2d_act_backward_fused(dh, a, act, slope, conv_cache, dW, db, input_grad, work):
    """Backward of :func:`conv_transpose2d_act_forward_fused`: writes ``dW`` and ``db`` in place,
    returns ``dx`` (None when ``input_grad`` is False).

    One pass gives ``da = dh · f'(a)`` and ``db`` (:func:`act_backward_image`); im2col of ``da``
    into a recycled matrix serves both ``dW = x_rowsᵀ cols`` (into ``dW``) and
    ``dx = cols W_matᵀ``, a conv2d forward without bias. Reference:
    npae.fast.backends.ReferenceOps.conv_transpose2d_act_backward.
    """
    x, W, stride, padding = conv_cache
    dh = np.ascontiguousarray(dh, dtype=a.dtype)
    B, C_in, H, W_in = x.shape
    C_out, kH, kW = W.shape[1:]
    da = scratch(work, "da", dh.shape, dh.dtype)  # (B, C_out, Ho, Wo)
    act_backward_image(dh, a, da, db, act, scalar(slope, a))
    cols = scratch(work, "cols", (B * H * W_in, C_out * kH * kW), dh.dtype)  # (B·H·W, C_out·kH·kW)
    im2col(da, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    np.matmul(_x_rows(x, work).T, cols, out=dW.reshape(C_in, -1))  # (C_in, C_out·kH·kW)
    if not input_grad:
        return None
    dx_rows = scratch(work, "rows", (B * H * W_in, C_in), dh.dtype)  # (B·H·W, C_in)
    np.matmul(cols, W.reshape(C_in, -1).T, out=dx_rows)
    dx = np.empty(x.shape, dtype=dh.dtype)  # (B, C_in, H, W)
    rows_to_nchw_bias(dx_rows, np.zeros(C_in, dtype=dh.dtype), dx)
    return dx
