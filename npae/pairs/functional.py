"""The reading surface: pure forward/backward pairs for dense layers, activations and losses.

Conventions (see docs/notation.md):

* Batches are rows: ``x`` is ``(B, D)``, a dense layer's ``W`` is ``(n_in, n_out)``.
* ``dX`` is dL/dX and has X's shape.
* ``*_forward(...) -> (out, cache)``; ``*_backward(dout, cache) -> gradients of the inputs``.
  No state, no randomness, fresh arrays out.
* Losses return ``(value, dpred)``. The reduction of every loss is **sum over features, mean over
  the batch** ("per example"), stated again in each docstring.

Each line that implements an equation carries a tag such as ``[DENSE-2]``; the derivation is in
``docs/derivations/<prefix>.md`` under the same tag.
"""
import numpy as np


# --------------------------------------------------------------------------------------------------
# Dense layer
# --------------------------------------------------------------------------------------------------
def dense_forward(x, W, b):
    """Affine map ``y = x W + b`` [DENSE-1].

    Parameters
    ----------
    x : (B, n_in) array
    W : (n_in, n_out) array
    b : (n_out,) array

    Returns
    -------
    y : (B, n_out) array
    cache : tuple, for :func:`dense_backward`

    Derivation: docs/derivations/dense.md#dense-1
    """
    y = x @ W + b  # (B, n_out) [DENSE-1]
    return y, (x, W)


def dense_backward(dy, cache, input_grad=True):
    """Gradients of the affine map: ``dx = dy Wᵀ``, ``dW = xᵀ dy``, ``db = Σ_rows dy``.

    Returns ``(dx, dW, db)`` with the shapes of ``x``, ``W`` and ``b``; ``dx`` is None when
    ``input_grad`` is False (a first layer's input is the data: its gradient is never used).

    Derivation: docs/derivations/dense.md#dense-2
    """
    x, W = cache
    dx = dy @ W.T if input_grad else None  # (B, n_in) [DENSE-2]
    dW = x.T @ dy  # (n_in, n_out) [DENSE-3]
    db = dy.sum(axis=0)  # (n_out,) [DENSE-4]
    return dx, dW, db


# --------------------------------------------------------------------------------------------------
# Activations: h = f(a), elementwise. Backward: da = dh * f'(a).
# --------------------------------------------------------------------------------------------------
def sigmoid(a):
    """Logistic function 1 / (1 + e^{-a}) without overflow for any finite ``a`` [ACT-6]."""
    e = np.exp(-np.abs(a))  # (..) in (0, 1], never overflows
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))  # [ACT-6]


def identity_forward(a):
    """h = a [ACT-1]. Derivation: docs/derivations/act.md#act-1"""
    return a.copy(), None  # [ACT-1]


def identity_backward(dh, cache):
    """da = dh [ACT-1]."""
    return dh.copy()


def relu_forward(a):
    """h = max(a, 0) [ACT-2]. Derivation: docs/derivations/act.md#act-2"""
    h = np.maximum(a, 0)  # [ACT-2]
    return h, a


def relu_backward(dh, a):
    """da = dh · 1[a > 0] [ACT-3] (the kink a = 0 gets derivative 0)."""
    return dh * (a > 0)  # [ACT-3]


def leaky_relu_forward(a, slope=0.01):
    """h = a if a > 0 else slope·a [ACT-4]. Derivation: docs/derivations/act.md#act-4"""
    h = np.where(a > 0, a, slope * a)  # [ACT-4]
    return h, (a, slope)


def leaky_relu_backward(dh, cache):
    """da = dh · (1 if a > 0 else slope) [ACT-5]."""
    a, slope = cache
    return dh * np.where(a > 0, 1.0, slope).astype(dh.dtype)  # [ACT-5]


def sigmoid_forward(a):
    """h = σ(a) [ACT-6]. Derivation: docs/derivations/act.md#act-6"""
    h = sigmoid(a)
    return h, h


def sigmoid_backward(dh, h):
    """da = dh · h (1 − h) [ACT-7]: σ' written through the output, no second exp."""
    return dh * h * (1.0 - h)  # [ACT-7]


def tanh_forward(a):
    """h = tanh(a) [ACT-8]. Derivation: docs/derivations/act.md#act-8"""
    h = np.tanh(a)  # [ACT-8]
    return h, h


def tanh_backward(dh, h):
    """da = dh · (1 − h²) [ACT-9]."""
    return dh * (1.0 - h * h)  # [ACT-9]


def softplus_forward(a):
    """h = log(1 + e^a) = max(a, 0) + log1p(e^{−|a|}) [ACT-10], finite for every finite a."""
    h = np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))  # [ACT-10]
    return h, a


def softplus_backward(dh, a):
    """da = dh · σ(a) [ACT-11]."""
    return dh * sigmoid(a)  # [ACT-11]


def elu_forward(a, alpha=1.0):
    """h = a if a > 0 else α (e^a − 1) [ACT-12]. Derivation: docs/derivations/act.md#act-12"""
    h = np.where(a > 0, a, alpha * np.expm1(np.minimum(a, 0)))  # [ACT-12]
    return h, (a, h, alpha)


def elu_backward(dh, cache):
    """da = dh · (1 if a > 0 else h + α) [ACT-13]: for a ≤ 0, α e^a = h + α."""
    a, h, alpha = cache
    return dh * np.where(a > 0, 1.0, h + alpha).astype(dh.dtype)  # [ACT-13]


def activation_pair(name):
    """The ``(forward, backward)`` pair of activation ``name``, looked up in this module when called
    (not at import), so that the pair a reader edits, or a test replaces, is the pair that runs."""
    return globals()[f"{name}_forward"], globals()[f"{name}_backward"]


#: name -> (forward, backward, names of hyperparameters)
ACTIVATIONS = {
    "identity": (identity_forward, identity_backward, ()),
    "relu": (relu_forward, relu_backward, ()),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward, ("slope",)),
    "sigmoid": (sigmoid_forward, sigmoid_backward, ()),
    "tanh": (tanh_forward, tanh_backward, ()),
    "softplus": (softplus_forward, softplus_backward, ()),
    "elu": (elu_forward, elu_backward, ("alpha",)),
}


# --------------------------------------------------------------------------------------------------
# Dense layer + activation: the backend's unit under ``reference`` (CS231n's affine_relu_forward)
# --------------------------------------------------------------------------------------------------
class DenseActCache:
    """What :func:`dense_act_backward` needs: the input ``x``, the weights ``W``, the pre-activation
    ``a = x W + b``, the activation's name, hyperparameters and cache. The fused unit
    (:mod:`npae.fast.backends`) keeps the same fields, so the two backends' caches mix."""

    __slots__ = ("x", "W", "a", "act", "hyper", "act_cache")

    def __init__(self, x, W, a, act, hyper, act_cache):
        self.x, self.W, self.a, self.act, self.hyper, self.act_cache = x, W, a, act, hyper, act_cache


def dense_act_forward(x, W, b, act, hyper):
    """``h = f(x W + b)``: :func:`dense_forward` [DENSE-1] then activation ``act``'s forward [ACT-*]
    with its hyperparameters ``hyper`` (a dict). Returns ``(h, cache)``."""
    a, _ = dense_forward(x, W, b)  # (B, n_out)
    h, act_cache = activation_pair(act)[0](a, **hyper)  # (B, n_out)
    return h, DenseActCache(x, W, a, act, hyper, act_cache)


def dense_act_backward(dh, cache, dW, db, input_grad=True):
    """The activation's backward then :func:`dense_backward` [DENSE-2..4]. As the backend's unit it
    writes ``dW`` and ``db`` in place (the layer's gradient arrays) and returns ``dx`` (None when
    ``input_grad`` is False)."""
    da = activation_pair(cache.act)[1](dh, cache.act_cache)  # (B, n_out)
    dx, dW[...], db[...] = dense_backward(da, (cache.x, cache.W), input_grad)
    return dx


# --------------------------------------------------------------------------------------------------
# Losses. Reduction everywhere: sum over features, mean over the batch ("per example").
# --------------------------------------------------------------------------------------------------
def mse_loss(pred, target):
    """Squared error, summed over features and averaged over the batch [LOSS-1].

    ``value = (1/B) Σ_i Σ_j (pred_ij − target_ij)²`` (no factor 1/2, as in the lectures).

    Returns ``(value, dpred)`` with ``dpred = 2 (pred − target) / B`` [LOSS-2].

    Derivation: docs/derivations/loss.md#loss-1
    """
    B = pred.shape[0]
    diff = pred - target  # (B, D)
    value = float(np.sum(diff * diff)) / B  # [LOSS-1]
    dpred = (2.0 / B) * diff  # (B, D) [LOSS-2]
    return value, dpred


def bce_with_logits_sum(logits, target):
    """Per-example binary cross-entropy from logits, summed over the last axis (no batch mean).

    Elementwise ``max(s, 0) − s t + log1p(e^{−|s|})`` [LOSS-5], which equals
    ``−[t log σ(s) + (1 − t) log(1 − σ(s))]`` and is finite for every finite ``s``.
    Returns an array of shape ``logits.shape[:-1]``: the negative Bernoulli log-likelihood in nats.
    """
    s = logits
    return np.sum(np.maximum(s, 0) - s * target + np.log1p(np.exp(-np.abs(s))), axis=-1)  # [LOSS-5]


def bce_with_logits_loss(logits, target):
    """Binary cross-entropy computed from logits, summed over features, averaged over the batch.

    ``value = (1/B) Σ_i bce_with_logits_sum(s_i, t_i)`` [LOSS-5]; the sigmoid is folded in.

    Returns ``(value, dlogits)`` with ``dlogits = (σ(s) − t) / B`` [LOSS-6].

    Derivation: docs/derivations/loss.md#loss-5
    """
    B = logits.shape[0]
    value = float(np.sum(bce_with_logits_sum(logits, target))) / B
    dlogits = (sigmoid(logits) - target) / B  # (B, D) [LOSS-6]
    return value, dlogits


def bce_with_logits_unit(logits, target):
    """The backend's BCE unit under ``reference``: :func:`bce_with_logits_loss`, looked up when called
    (so the pair a reader edits, or a test replaces, is the one that runs)."""
    return bce_with_logits_loss(logits, target)


def bernoulli_log_likelihood(logits, target):
    """``log p(x | z) = −bce_with_logits_sum(logits, target)`` per row [LOSS-5], forward only;
    ``target`` broadcasts over leading sample axes (the IWAE estimate's hot loop)."""
    return -bce_with_logits_sum(logits, target)


def log_softmax(logits):
    """Row-wise log-softmax, shifted by the row maximum so that exp never overflows [LOSS-7]."""
    shifted = logits - logits.max(axis=-1, keepdims=True)  # (B, K)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))  # [LOSS-7]


def softmax_cross_entropy_loss(logits, labels):
    """Cross-entropy of a softmax classifier, averaged over the batch.

    ``value = −(1/B) Σ_i log softmax(s_i)[y_i]`` [LOSS-7].

    Parameters
    ----------
    logits : (B, K) array
    labels : (B,) int array with values in 0..K−1

    Returns ``(value, dlogits)`` with ``dlogits = (softmax(s) − onehot(y)) / B`` [LOSS-8].

    Derivation: docs/derivations/loss.md#loss-7
    """
    B = logits.shape[0]
    logp = log_softmax(logits)  # (B, K)
    rows = np.arange(B)
    value = -float(np.sum(logp[rows, labels])) / B
    dlogits = np.exp(logp)  # (B, K) softmax
    dlogits[rows, labels] -= 1.0  # [LOSS-8]
    dlogits /= B
    return value, dlogits
