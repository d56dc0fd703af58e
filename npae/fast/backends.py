"""The backend layer: the few units a training step is written against, in two implementations.

Model code calls ``ops.<unit>(...)`` and never asks which implementation answers (minitorch's
``SimpleOps`` / ``FastOps``). Each unit is a piece of the step that can be fused:

=====================================  ============================================================
unit                                   reference implementation (the derived pairs it composes)
=====================================  ============================================================
``dense_act_forward / _backward``      functional.dense_forward + an activation pair
                                       ([DENSE-1..4], [ACT-*])
``bce_with_logits_loss``               functional.bce_with_logits_loss ([LOSS-5], [LOSS-6])
``reparam_kl_forward / _backward``     latent.reparameterize_* + latent.gaussian_kl_* ([REPARAM-1..4],
                                       [KL-1..3]); the two gradients come back *apart*: the model
                                       sums them on its own tagged fan-in line [ELBO-5]
``adam_update``                        updates.adam_update ([OPT-5..7])
``conv2d_act_forward / _backward``     conv.conv2d_forward / _backward + an activation pair
                                       ([CONV-1..7], [ACT-*])
``conv_transpose2d_act_forward /       conv.conv_transpose2d_forward / _backward + an activation
_backward``                            pair ([CONV-8..11], [CONV-5], [ACT-*])
=====================================  ============================================================

* ``reference``: :class:`ReferenceOps`, every unit is the composition of the readable pairs
  (CS231n's ``affine_relu_forward`` pattern), looked up in their modules at call time. It runs
  exactly the code the derivations describe, tags included.
* ``fused``: :class:`FusedOps`, the numba kernels of :mod:`npae.fast.kernels` and
  :mod:`npae.fast.conv_kernels`; each is proven equal to the reference unit it replaces
  (``tests/test_backend.py``: one call, and whole models trained under both backends, float64
  parameters equal to rtol 1e-10). Where no kernel pays (smooth activations, several samples per
  example, non-contiguous arrays) a fused unit does the same NumPy arithmetic as the reference.
* ``auto`` (the default): ``reference`` everywhere, except a fit or an importance-sampled bound
  big enough that the kernels pay for their compilation within it (:func:`choose`; the rule and
  its measurements are in docs/performance.md). So the first run a student makes,
  ``npae train vae``, runs the pairs they read; ``model.backend_`` says what a fit ran.

The choice: :func:`set_backend`, the :func:`backend` context manager, or the environment variable
``NPAE_BACKEND`` (``auto`` | ``reference`` | ``fused``) read at import. Without numba (or with
``NPAE_JIT=0``) ``fused`` does not exist and ``auto`` always means ``reference``. numba itself is
imported only when a fused unit first runs, so ``import npae`` does not pay for it.
"""
import contextlib
import math
import os
import warnings

import numpy as np

from npae import constants
from npae.pairs import conv
from npae.pairs import functional as F
from npae.pairs import latent
from npae.pairs import updates
from npae.fast.threads import model_layers
from npae.validation import InputError, check_choice

BACKENDS = ("auto", "reference", "fused")


DenseActCache = F.DenseActCache  # the dense+activation cache, defined beside its reference unit


class ConvActCache:
    """What a convolution+activation unit keeps for its backward, the same fields in both backends:
    the pre-activation ``a`` (B, C_out, Ho, Wo), the activation's name, hyperparameters and cache,
    the cache of the convolution pair (:func:`npae.pairs.conv.conv2d_forward` or
    :func:`npae.pairs.conv.conv_transpose2d_forward`; the fused units' caches hold their
    channel-major scratch as well (conv2d: its patch matrix transposed, marked; transposed
    convolution: the input's planes appended), and their backwards take either), and
    ``work``: scratch arrays the fused unit recycles at the next forward (empty for ``reference``)."""

    __slots__ = ("a", "act", "hyper", "act_cache", "conv_cache", "work")

    def __init__(self, a, act, hyper, act_cache, conv_cache, work=None):
        self.a, self.act, self.hyper, self.act_cache = a, act, hyper, act_cache
        self.conv_cache, self.work = conv_cache, {} if work is None else work


def _work_of(reuse):
    """The scratch dict of a previous :class:`ConvActCache` (``reuse``), else a new one (which an
    evaluation throws away with its cache)."""
    return reuse.work if isinstance(reuse, ConvActCache) else {}


def activation_pair(name):
    """The ``(forward, backward)`` pair of activation ``name``, looked up in :mod:`npae.pairs.functional`
    now (not at import), so that the pair a reader edits is the pair that runs."""
    return getattr(F, f"{name}_forward"), getattr(F, f"{name}_backward")


# --------------------------------------------------------------------------------------------------
# reference: the derived pairs, composed
# --------------------------------------------------------------------------------------------------
class NonFiniteUpdate(FloatingPointError):
    """Raised by the ``adam_update`` units when the step wrote a NaN or an inf (``count`` entries).
    The arrays are left as written; :func:`npae.training.loop.fit_loop` puts the parameters and the
    optimizer back to their values before the step and raises ``DivergenceError``."""

    def __init__(self, message, *, count):
        super().__init__(message)
        self.count = count


class ReferenceOps:
    """Every unit as the composition of the readable pairs (see the module docstring). The units a
    model's step calls are pair functions themselves (:func:`npae.pairs.functional.dense_act_forward`,
    :func:`npae.pairs.latent.reparam_kl_forward`, ...): a step under ``reference`` never enters this
    module, and each unit looks its pairs up in their module when it runs."""

    name = "reference"

    dense_act_forward = staticmethod(F.dense_act_forward)
    dense_act_backward = staticmethod(F.dense_act_backward)
    bce_with_logits_loss = staticmethod(F.bce_with_logits_unit)
    bernoulli_log_likelihood = staticmethod(F.bernoulli_log_likelihood)
    reparam_kl_forward = staticmethod(latent.reparam_kl_forward)
    reparam_kl_backward = staticmethod(latent.reparam_kl_backward)

    @staticmethod
    def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
        """:func:`npae.pairs.updates.adam_update`, in place; raises :class:`NonFiniteUpdate` if it wrote a
        NaN or an inf into ``p``, ``m`` or ``v`` (the caller restores them: npae.training.loop)."""
        updates.adam_update(p, g, m, v, lr, beta1, beta2, eps, t)
        if math.isfinite(float(np.vdot(p, p) + np.vdot(m, m) + np.vdot(v, v))):  # one pass each
            return
        bad = sum(a.size - np.count_nonzero(np.isfinite(a)) for a in (p, m, v))  # or an overflow
        if bad:
            raise NonFiniteUpdate(f"the Adam update wrote {bad} NaN/inf entries", count=bad)

    # ---------------------------------------------------------------- convolution + activation
    @staticmethod
    def conv2d_act_forward(x, W, b, stride, padding, act, hyper, reuse=None):
        """``h = f(conv2d(x, W, b))``: :func:`npae.pairs.conv.conv2d_forward` [CONV-1] then the
        activation's forward. Returns ``(h, cache)``. ``reuse`` (the layer's previous cache) is
        ignored here; the fused unit recycles its scratch arrays."""
        fwd, _ = activation_pair(act)
        a, conv_cache = conv.conv2d_forward(x, W, b, stride, padding)  # (B, C_out, Ho, Wo)
        h, act_cache = fwd(a, **hyper)  # (B, C_out, Ho, Wo)
        return h, ConvActCache(a, act, hyper, act_cache, conv_cache)

    @staticmethod
    def conv2d_act_backward(dh, cache, dW, db, input_grad=True):
        """The activation's backward then :func:`npae.pairs.conv.conv2d_backward` [CONV-4..7]; writes
        ``dW`` and ``db`` in place and returns ``dx`` (None when ``input_grad`` is False: the pair
        still computes it, the fused unit skips it)."""
        _, bwd = activation_pair(cache.act)
        da = bwd(dh, cache.act_cache)  # (B, C_out, Ho, Wo)
        dx, dW[...], db[...] = conv.conv2d_backward(da, cache.conv_cache)
        return dx if input_grad else None

    @staticmethod
    def conv_transpose2d_act_forward(x, W, b, stride, padding, output_padding, act, hyper, reuse=None):
        """``h = f(conv_transpose2d(x, W, b))``: :func:`npae.pairs.conv.conv_transpose2d_forward`
        [CONV-8] then the activation's forward. Returns ``(h, cache)``; ``reuse`` is ignored."""
        fwd, _ = activation_pair(act)
        a, conv_cache = conv.conv_transpose2d_forward(x, W, b, stride, padding,
                                                      output_padding)  # (B, C_out, Ho, Wo)
        h, act_cache = fwd(a, **hyper)  # (B, C_out, Ho, Wo)
        return h, ConvActCache(a, act, hyper, act_cache, conv_cache)

    @staticmethod
    def conv_transpose2d_act_backward(dh, cache, dW, db, input_grad=True):
        """The activation's backward then :func:`npae.pairs.conv.conv_transpose2d_backward`
        [CONV-10, CONV-11, CONV-5]; writes ``dW`` and ``db`` in place, returns ``dx`` (None when
        ``input_grad`` is False)."""
        _, bwd = activation_pair(cache.act)
        da = bwd(dh, cache.act_cache)  # (B, C_out, Ho, Wo)
        dx, dW[...], db[...] = conv.conv_transpose2d_backward(da, cache.conv_cache)
        return dx if input_grad else None


# --------------------------------------------------------------------------------------------------
# fused: the numba kernels
# --------------------------------------------------------------------------------------------------
def _contiguous(*arrays):
    return all(a.flags.c_contiguous for a in arrays)


class FusedOps:
    """The same units from the numba kernels of :mod:`npae.fast.kernels` (see the module docstring)."""

    name = "fused"

    @staticmethod
    def dense_act_forward(x, W, b, act, hyper):
        """Replaces :meth:`ReferenceOps.dense_act_forward`: ``x @ W`` on BLAS, then bias and a
        piecewise-linear activation in one pass (:func:`npae.fast.kernels.bias_act_forward`); smooth
        activations add the bias in place and run their NumPy pair."""
        a = x @ W  # (B, n_out), becomes the pre-activation in place
        code = kernels.ACT_CODES.get(act)
        if code is None:
            a += b
            h, act_cache = activation_pair(act)[0](a, **hyper)
            return h, DenseActCache(x, W, a, act, hyper, act_cache)
        h = a if code == 0 else np.empty_like(a)  # (B, n_out)
        kernels.bias_act_forward(a, b, h, code, kernels.scalar(hyper.get("slope", 0.0), a))
        return h, DenseActCache(x, W, a, act, hyper, None)

    @staticmethod
    def dense_act_backward(dh, cache, dW, db, input_grad=True):
        """Replaces :meth:`ReferenceOps.dense_act_backward`: activation and bias gradients in one
        pass (:func:`npae.fast.kernels.act_backward`), the two products on BLAS written into ``dW``
        and ``dx``; ``dx`` is not computed when ``input_grad`` is False."""
        code = kernels.ACT_CODES.get(cache.act)
        a = cache.a
        if code is None:
            da = activation_pair(cache.act)[1](dh, cache.act_cache)  # (B, n_out)
            np.sum(da, axis=0, out=db)
        elif code == 0:
            da = dh
            np.sum(dh, axis=0, out=db)
        else:
            da = np.empty_like(a)  # (B, n_out)
            kernels.act_backward(np.ascontiguousarray(dh), a, da, db, code,
                                 kernels.scalar(cache.hyper.get("slope", 0.0), a))
        np.matmul(cache.x.T, da, out=dW)  # (n_in, n_out)
        return da @ cache.W.T if input_grad else None  # (B, n_in)

    @staticmethod
    def bce_with_logits_loss(logits, target):
        """Replaces :meth:`ReferenceOps.bce_with_logits_loss`: one exp and one log1p per entry,
        value and gradient in one pass (:func:`npae.fast.kernels.bce_with_logits_loss`)."""
        return kernels.bce_with_logits_loss(logits, target)

    @staticmethod
    def bernoulli_log_likelihood(logits, target):
        """Replaces :meth:`ReferenceOps.bernoulli_log_likelihood`: the SIMD exp and log1p in
        place, then one fused pass (:func:`npae.fast.kernels.bernoulli_log_likelihood`)."""
        return kernels.bernoulli_log_likelihood(logits, target)

    @staticmethod
    def reparam_kl_forward(mu, logvar, eps):
        """Replaces :meth:`ReferenceOps.reparam_kl_forward` for one sample per example (sampler and
        KL in one pass, :func:`npae.fast.kernels.reparam_kl_forward_fused`); several samples run the
        reference arithmetic."""
        if eps.ndim != 2:
            return ReferenceOps.reparam_kl_forward(mu, logvar, eps)
        return kernels.reparam_kl_forward_fused(mu, logvar, eps)

    @staticmethod
    def reparam_kl_backward(dz, cache):
        """Replaces :meth:`ReferenceOps.reparam_kl_backward`: the two logvar gradients in one pass
        (:func:`npae.fast.kernels.reparam_kl_backward_fused`); with one sample the mu gradients are
        ``dz`` and ``mu`` themselves (returned, not copied)."""
        if len(cache) == 2:  # the reference cache (several samples)
            return ReferenceOps.reparam_kl_backward(dz, cache)
        return kernels.reparam_kl_backward_fused(dz, cache)

    @staticmethod
    def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
        """Replaces :meth:`ReferenceOps.adam_update`: moments and step in one pass over each array
        (:func:`npae.fast.kernels.adam`), which also counts the NaN/inf entries it wrote (then
        :class:`NonFiniteUpdate`, as the reference); non-contiguous arrays run the reference."""
        g = np.ascontiguousarray(g)
        if not _contiguous(p, m, v):
            return ReferenceOps.adam_update(p, g, m, v, lr, beta1, beta2, eps, t)
        coef = kernels.adam_coefficients(lr, beta1, beta2, eps, t, p.dtype)
        bad = kernels.adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), coef)
        if bad:  # counted by the kernel in its one pass
            raise NonFiniteUpdate(f"the Adam update wrote {bad} NaN/inf entries", count=int(bad))

    # ---------------------------------------------------------------- convolution + activation
    @staticmethod
    def conv2d_act_forward(x, W, b, stride, padding, act, hyper, reuse=None):
        """Replaces :meth:`ReferenceOps.conv2d_act_forward`: im2col, one BLAS product, and the
        NCHW layout with bias and ReLU / leaky ReLU in one pass
        (:func:`npae.fast.conv_kernels.conv2d_act_forward_fused`); smooth activations run their NumPy pair
        on the convolution's output. ``reuse``: the layer's previous cache, whose scratch arrays
        (im2col matrix, rows) are written again instead of allocated (None: new ones)."""
        work = _work_of(reuse)
        code = kernels.ACT_CODES.get(act)
        h, a, conv_cache = conv_kernels.conv2d_act_forward_fused(
            x, W, b, stride, padding, 0 if code is None else code, hyper.get("slope", 0.0), work)
        act_cache = None
        if code is None:
            h, act_cache = activation_pair(act)[0](a, **hyper)
        return h, ConvActCache(a, act, hyper, act_cache, conv_cache, work)

    @staticmethod
    def conv2d_act_backward(dh, cache, dW, db, input_grad=True):
        """Replaces :meth:`ReferenceOps.conv2d_act_backward`: f', the rows layout and ``db`` in one
        pass, ``dW`` on BLAS written in place, and ``dx`` (patch gradients on BLAS, col2im) only
        when ``input_grad`` (:func:`npae.fast.conv_kernels.conv2d_act_backward_fused`)."""
        if cache.conv_cache[-1] != conv_kernels.PLANES:  # a reference forward's cache
            return ReferenceOps.conv2d_act_backward(dh, cache, dW, db, input_grad)
        code = kernels.ACT_CODES.get(cache.act)
        if code is None:
            dh, code = activation_pair(cache.act)[1](dh, cache.act_cache), 0
        return conv_kernels.conv2d_act_backward_fused(
            dh, cache.a, code, cache.hyper.get("slope", 0.0), cache.conv_cache, dW, db, input_grad,
            cache.work)

    @staticmethod
    def conv_transpose2d_act_forward(x, W, b, stride, padding, output_padding, act, hyper, reuse=None):
        """Replaces :meth:`ReferenceOps.conv_transpose2d_act_forward`: one BLAS product, col2im
        onto the bias, one activation pass (``conv_transpose2d_act_forward_fused`` of
        :mod:`npae.fast.conv_kernels`); ``reuse`` as in :meth:`conv2d_act_forward`."""
        work = _work_of(reuse)
        code = kernels.ACT_CODES.get(act)
        h, a, conv_cache = conv_kernels.conv_transpose2d_act_forward_fused(
            x, W, b, stride, padding, output_padding, 0 if code is None else code,
            hyper.get("slope", 0.0), work)
        act_cache = None
        if code is None:
            h, act_cache = activation_pair(act)[0](a, **hyper)
        return h, ConvActCache(a, act, hyper, act_cache, conv_cache, work)

    @staticmethod
    def conv_transpose2d_act_backward(dh, cache, dW, db, input_grad=True):
        """Replaces :meth:`ReferenceOps.conv_transpose2d_act_backward`: f' and ``db`` in one pass,
        one im2col of the result for both ``dW`` (in place) and ``dx`` (only when ``input_grad``)
        (:func:`npae.fast.conv_kernels.conv_transpose2d_act_backward_fused`)."""
        code = kernels.ACT_CODES.get(cache.act)
        if code is None:
            dh, code = activation_pair(cache.act)[1](dh, cache.act_cache), 0
        return conv_kernels.conv_transpose2d_act_backward_fused(
            dh, cache.a, code, cache.hyper.get("slope", 0.0), cache.conv_cache, dW, db, input_grad,
            cache.work)


# --------------------------------------------------------------------------------------------------
# the switch
# --------------------------------------------------------------------------------------------------
IMPLEMENTATIONS = {"reference": ReferenceOps, "fused": FusedOps}
UNITS = ("dense_act_forward", "dense_act_backward", "bce_with_logits_loss", "bernoulli_log_likelihood",
         "reparam_kl_forward", "reparam_kl_backward", "adam_update",
         "conv2d_act_forward", "conv2d_act_backward", "conv_transpose2d_act_forward",
         "conv_transpose2d_act_backward")

kernels = conv_kernels = None  # the numba modules, imported by _load_kernels when fused first runs


class Ops:
    """The one object model code calls (``ops.dense_act_forward(...)``). The switch copies the
    running implementation's units onto it, so a call is a plain attribute lookup. ``name`` is the
    backend asked for (``auto`` included); ``running`` the implementation whose units are here."""

    name = running = None

    def __repr__(self):
        return f"<npae ops: {self.name}>"


ops = Ops()


def _numba_installed():
    """numba can be imported (found without importing it: that takes a third of a second) and
    ``NPAE_JIT`` is not 0."""
    import importlib.util
    return os.environ.get("NPAE_JIT", "1") != "0" and importlib.util.find_spec("numba") is not None


def _load_kernels():
    """Import the kernel modules (and with them numba) the first time ``fused`` runs."""
    global kernels, conv_kernels
    if kernels is None:
        from npae.fast import conv_kernels as ck, kernels as k
        if not k.ENABLED:
            raise InputError("backend 'fused' needs numba, which failed to import; use 'reference'")
        kernels, conv_kernels = k, ck


def available():
    """The backends this installation can run: ``("auto", "reference", "fused")``, or
    ``("auto", "reference")`` without numba (or with ``NPAE_JIT=0``), where auto always picks
    reference."""
    return BACKENDS if _numba_installed() else ("auto", "reference")


def _install(impl_name):
    if impl_name == "fused":
        _load_kernels()
    impl = IMPLEMENTATIONS[impl_name]
    for unit in UNITS:
        setattr(ops, unit, getattr(impl, unit))
    ops.running = impl_name


def set_backend(name):
    """Make ``name`` (``"auto"``, ``"reference"`` or ``"fused"``) the backend behind :data:`ops`;
    returns the previous name. ``"fused"`` needs numba (and ``NPAE_JIT`` not 0). Under ``"auto"``
    what a student calls by hand (``loss_and_grads``, ``encode``, ...) runs ``reference``, and each
    fit or bound runs what :func:`choose` picks for it (:func:`for_job`)."""
    check_choice("backend", name, BACKENDS)
    if name not in available():
        raise InputError("backend 'fused' needs numba (and NPAE_JIT not set to 0); only "
                         "'auto' and 'reference' are available here")
    previous = ops.name
    _install("reference" if name == "auto" else name)
    ops.name = name
    return previous


def get_backend():
    """The name of the backend asked for: ``"auto"``, ``"reference"`` or ``"fused"``."""
    return ops.name


@contextlib.contextmanager
def backend(name):
    """``with npae.backend("reference"): ...`` runs the block under ``name``, then restores the
    backend that was active before."""
    previous = set_backend(name)
    try:
        yield ops
    finally:
        set_backend(previous)


def choose(model, rows, updates=0):
    """The implementation ``auto`` runs for a job that pushes ``rows`` examples through ``model``
    and makes ``updates`` optimizer steps (a fit: steps × batch size rows and one update a step; an
    importance-sampled bound: examples × samples rows, no update): ``"fused"`` when the kernels
    save more time in the job than loading and compiling them costs on an empty numba cache,
    ``"reference"`` otherwise.

    What the kernels save is elementwise work (bias and activation, the loss, the sampler, Adam),
    so a job is weighed by the entries that work touches: ``rows`` times the outputs of the dense
    layers, plus ``updates`` times the parameters; fused from
    :data:`npae.constants.AUTO_FUSED_MIN_ENTRIES`. A model with convolution layers runs fused
    from :data:`npae.constants.AUTO_FUSED_MIN_CONV_ROWS` rows: its im2col and col2im loops save
    far more per entry. Both thresholds are measured break-evens (docs/performance.md). The choice
    depends on the job alone, never on timing or on whether numba's cache is warm, so the same call
    gives the same numbers every time."""
    if "fused" not in available():
        return "reference"
    layers = list(model_layers(model))
    if any(hasattr(layer, "out_channels") for layer in layers):  # a convolution
        return "fused" if rows >= constants.AUTO_FUSED_MIN_CONV_ROWS else "reference"
    outputs = sum(layer.n_out for layer in layers if hasattr(layer, "n_out"))
    entries = int(rows) * outputs + int(updates) * int(getattr(model, "n_params", 0))
    return "fused" if entries >= constants.AUTO_FUSED_MIN_ENTRIES else "reference"


@contextlib.contextmanager
def for_job(model, rows, updates=0):
    """Run a fit or an estimate under the implementation the active backend gives it (``auto``:
    :func:`choose`); yields its name, which ``fit`` records as ``model.backend_``. Afterwards the
    implementation that ran before is back, so a job inside another (an estimate made while a fit
    runs) leaves the outer job's units in place."""
    if ops.name != "auto":
        yield ops.running
        return
    previous, chosen = ops.running, choose(model, rows, updates)
    _install(chosen)
    try:
        yield chosen
    finally:
        _install(previous)


def _initial_backend():
    requested = os.environ.get("NPAE_BACKEND", "").strip().lower()
    if not requested:
        return "auto"
    if requested not in available():
        warnings.warn(f"NPAE_BACKEND={requested!r} is not available here (choose from "
                      f"{', '.join(available())}); using 'auto'", stacklevel=2)
        return "auto"
    return requested


set_backend(_initial_backend())
