"""The pairs of the semi-supervised model M2 of Kingma, Rezende, Mohamed & Welling (2014).

Generative model ``p(x|y,z) p(y) p(z)`` with a uniform class prior ``p(y) = 1/K`` and
``p(z) = N(0, I)``; inference model ``q(z|x,y) q(y|x)``, where the classifier ``q(y|x)`` is a
softmax over ``K`` logits. The pairs, to be composed with the VAE pairs of :mod:`npae.pairs.latent`
(reparameterization, Gaussian KL) and :mod:`npae.pairs.functional`:

* :func:`labelled_bound_forward` / :func:`labelled_bound_backward`:
  ``−L(x, y) = E_q(z|x,y)[−log p(x|y,z)] + KL(q(z|x,y) || p(z)) + log K`` [M2-1, M2-2].
* :func:`categorical_entropy_forward` / :func:`categorical_entropy_backward`:
  ``H(q(y|x)) = −Σ_y q log q`` from the logits [M2-3, M2-4].
* :func:`unlabelled_bound_forward` / :func:`unlabelled_bound_backward`:
  ``−U(x) = Σ_y q(y|x) (−L(x, y)) − H(q(y|x))`` [M2-5 .. M2-8].
* :func:`m2_objective_forward` / :func:`m2_objective_backward`: the whole objective of a mixed
  batch (labelled rows ``y >= 0``, unlabelled rows ``y = −1``) with the α-weighted classification
  term [M2-9 .. M2-12].
* Helpers: :func:`one_hot`, :func:`enumerate_classes` (every example paired with every class, the
  rows an unlabelled bound needs) [M2-13], :func:`paper_alpha` (the paper's α in npae's scaling).

:class:`npae.SemiSupervisedVAE` (npae/models/semisup.py) composes them with dense chains, the
sampler and KL pairs of :mod:`npae.pairs.latent` and the Bernoulli (or Gaussian) likelihood into a
trainable model with scikit-learn's conventions [M2-14 .. M2-16].

Reduction, stated once and again in each docstring: the pairs of one example's bound return one
value per row, ``(B,)`` or ``(B, K)``, in nats, with no batch mean; the objective is **nats per
example** of the batch, ``J = (1/B) Σ_i (row i's bound + α · 1[labelled] · CE_i)``.

Nothing here holds state or draws noise: ``eps`` of the sampler is an argument of the caller.

Derivations: docs/derivations/m2.md.
"""
from typing import NamedTuple

import numpy as np

from npae.pairs import functional as F
from npae.validation import check_scalar

#: label that marks a row of a mixed batch as unlabelled
UNLABELLED = -1


# --------------------------------------------------------------------------------------------------
# Class enumeration (not differentiated: the labels fed to q(z|x,y) and p(x|y,z) are constants)
# --------------------------------------------------------------------------------------------------
def one_hot(y, n_classes, dtype=np.float64):
    """``(B, K)`` one-hot rows of integer labels ``y`` in ``0..K−1`` [M2-13]."""
    y = np.asarray(y)
    out = np.zeros((y.shape[0], n_classes), dtype=dtype)  # (B, K)
    out[np.arange(y.shape[0]), y] = 1  # [M2-13]
    return out


def enumerate_classes(x, n_classes):
    """Pair every row of ``x`` with every class [M2-13]: the inputs of ``−L(x, y)`` for all y.

    Returns ``(x_rep, y_rep)``: ``x_rep`` is ``(K·B, D)``, ``y_rep`` the ``(K·B, K)`` one-hot labels,
    in class-major order (row ``k·B + i`` is example i with class k). Per-row results of the
    encoder/decoder on these rows, shape ``(K·B,)``, become the ``(B, K)`` table of
    :func:`unlabelled_bound_forward` with ``values.reshape(K, B).T``; gradients go back with
    ``dvalues.T.reshape(-1)``.

    Derivation: docs/derivations/m2.md#m2-13
    """
    B = x.shape[0]
    x_rep = np.tile(x, (n_classes, 1))  # (K·B, D) [M2-13]
    y_rep = one_hot(np.repeat(np.arange(n_classes), B), n_classes, dtype=x.dtype)  # (K·B, K) [M2-13]
    return x_rep, y_rep


# --------------------------------------------------------------------------------------------------
# The labelled bound −L(x, y)
# --------------------------------------------------------------------------------------------------
def labelled_bound_forward(nll, kl, n_classes):
    """Negative labelled bound [M2-1]: ``−L(x, y) = nll + kl + log K``.

    ``nll`` is the (Monte-Carlo) reconstruction term ``−log p(x|y,z)`` with z drawn from
    q(z|x,y), ``kl`` the closed form ``KL(q(z|x,y) || p(z))`` [KL-1], both per row and in nats.
    ``−log p(y) = log K`` is the uniform prior: a constant, with no gradient and no parameter.
    ``log p(x, y) ≥ L(x, y)``, so the value is an upper bound on ``−log p(x, y)``.

    Parameters
    ----------
    nll, kl : arrays of the same shape (rows, e.g. (B,) or (K·B,))
    n_classes : int, K >= 1

    Returns ``(neg_L, cache)`` with ``neg_L`` shaped like ``nll`` (no batch mean).

    Derivation: docs/derivations/m2.md#m2-1
    """
    check_scalar("n_classes", n_classes, low=1, integer=True)
    log_K = float(np.log(n_classes))  # −log p(y) of the uniform prior, a constant
    neg_L = nll + kl + log_K  # (rows,) [M2-1]
    return neg_L, np.shape(neg_L)


def labelled_bound_backward(dneg_L, cache):
    """``dnll = dkl = dneg_L`` [M2-2]: a sum passes its gradient to both terms; log K gets none.

    Returns ``(dnll, dkl)``.

    Derivation: docs/derivations/m2.md#m2-2
    """
    shape = cache
    dneg_L = np.broadcast_to(dneg_L, shape)
    return dneg_L.copy(), dneg_L.copy()  # [M2-2]


# --------------------------------------------------------------------------------------------------
# Entropy of the classifier q(y|x)
# --------------------------------------------------------------------------------------------------
def categorical_entropy_forward(logits):
    """Entropy of ``q = softmax(logits)`` per row [M2-3]: ``H = −Σ_k q_k log q_k``, in nats.

    ``log q`` comes from the shifted log-softmax [LOSS-7], finite for every finite logit; where
    ``q_k`` underflows to 0 the product ``q_k log q_k`` is exactly 0 (its limit). ``0 <= H <= log K``.

    Parameters
    ----------
    logits : (B, K) array

    Returns ``(H, cache)`` with ``H`` of shape (B,) (no batch mean).

    Derivation: docs/derivations/m2.md#m2-3
    """
    logq = F.log_softmax(logits)  # (B, K) [LOSS-7]
    q = np.exp(logq)  # (B, K)
    H = -np.sum(q * logq, axis=-1)  # (B,) [M2-3]
    return H, (q, logq, H)


def categorical_entropy_backward(dH, cache):
    """``dlogits = −dH · q ⊙ (log q + H)`` [M2-4] (through the softmax; rows of dlogits sum to 0).

    Derivation: docs/derivations/m2.md#m2-4
    """
    q, logq, H = cache
    dH = np.broadcast_to(dH, H.shape)[:, None]  # (B, 1)
    return -dH * q * (logq + H[:, None])  # (B, K) [M2-4]


# --------------------------------------------------------------------------------------------------
# The unlabelled bound −U(x)
# --------------------------------------------------------------------------------------------------
def unlabelled_bound_forward(logits_y, neg_L):
    """Negative unlabelled bound [M2-5]: ``−U(x) = Σ_y q(y|x) (−L(x, y)) − H(q(y|x))``.

    The label is summed out exactly: ``neg_L[i, k]`` is ``−L(x_i, k)`` for every class k (see
    :func:`enumerate_classes`), ``q = softmax(logits_y)``. ``log p(x) ≥ U(x)``; the value lies
    between ``−logsumexp_k(−neg_L[i, k])`` (reached when q ∝ exp(L)) and ``max_k neg_L[i, k]``.

    Parameters
    ----------
    logits_y : (B, K) array, the classifier's logits
    neg_L : (B, K) array, the labelled bound of each (example, class) pair

    Returns ``(neg_U, cache)`` with ``neg_U`` of shape (B,), in nats (no batch mean).

    Derivation: docs/derivations/m2.md#m2-5
    """
    H, entropy_cache = categorical_entropy_forward(logits_y)  # (B,)
    q = entropy_cache[0]  # (B, K) q(y|x)
    expected = np.sum(q * neg_L, axis=-1)  # (B,) E_q(y|x)[−L(x, y)] [M2-5]
    neg_U = expected - H  # (B,) [M2-5]
    return neg_U, (q, neg_L, expected, entropy_cache)


def unlabelled_bound_backward(dneg_U, cache):
    """Gradients ``(dlogits_y, dneg_L)`` of :func:`unlabelled_bound_forward`.

    Node by node, for each row: ``dneg_L = dneg_U · q`` [M2-6] (each row of weights sums to
    ``dneg_U``); the expectation sends ``dneg_U · q ⊙ (neg_L − E)`` to the logits [M2-7]; the entropy
    sends :func:`categorical_entropy_backward` of ``−dneg_U``; the logits add the two [M2-8]. Fused:
    ``dlogits_y = dneg_U · q ⊙ (neg_L + log q − neg_U)``.

    Derivation: docs/derivations/m2.md#m2-6
    """
    q, neg_L, expected, entropy_cache = cache
    dneg_U = np.broadcast_to(dneg_U, expected.shape)[:, None]  # (B, 1)
    dneg_L = dneg_U * q  # (B, K) [M2-6]
    dlogits_expected = dneg_U * q * (neg_L - expected[:, None])  # (B, K) [M2-7]
    dlogits_entropy = categorical_entropy_backward(-dneg_U[:, 0], entropy_cache)  # (B, K)
    dlogits_y = dlogits_expected + dlogits_entropy  # (B, K) [M2-8] q(y|x) is used twice
    return dlogits_y, dneg_L


# --------------------------------------------------------------------------------------------------
# The whole objective of a mixed batch
# --------------------------------------------------------------------------------------------------
def paper_alpha(n_total, n_labelled, fraction=0.1):
    """npae's per-labelled-example α equal to the paper's ``α = 0.1 · N`` [M2-9].

    The paper adds ``α_paper · E_labelled[−log q(y|x)]`` to a *sum* over all N training rows; npae's
    objective is a mean over rows with α on each labelled row, so ``α = α_paper / N_l =
    fraction · N / N_l`` (the authors' code: ``alpha · n_tot / n_labeled``). MNIST with 50,000
    training rows and 100 labels gives α = 50.

    Derivation: docs/derivations/m2.md#m2-9
    """
    check_scalar("n_total", n_total, low=1, integer=True)
    check_scalar("n_labelled", n_labelled, low=1, high=n_total, integer=True)
    check_scalar("fraction", fraction, low=0.0)
    return float(fraction) * n_total / n_labelled  # [M2-9]


def _check_mixed_labels(y, B, K):
    y = np.asarray(y)
    if y.shape != (B,):
        raise ValueError(f"y must have shape ({B},), one label per row of logits_y; got {y.shape}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"y must hold integer labels (and {UNLABELLED} for unlabelled rows), "
                        f"got dtype {y.dtype}")
    if y.size and (y.min() < UNLABELLED or y.max() >= K):
        raise ValueError(f"y must lie in {UNLABELLED}..{K - 1} ({UNLABELLED} = unlabelled), got values in "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


class M2ObjectiveCache(NamedTuple):
    """What :func:`m2_objective_backward` needs, plus ``terms`` for logging: the three parts of J
    (``"labelled"``, ``"unlabelled"``, ``"classification"``), each already divided by B."""
    terms: dict
    labelled: np.ndarray
    y: np.ndarray
    alpha: float
    shape: tuple
    unlabelled_cache: tuple
    dlogits_ce: np.ndarray


def m2_objective_forward(logits_y, neg_L, y, alpha):
    """The M2 objective of a mixed batch, in nats per example [M2-10]:

    ``J = (1/B) [Σ_{i labelled} −L(x_i, y_i) + Σ_{i unlabelled} −U(x_i)
    + α Σ_{i labelled} −log q(y_i|x_i)]``.

    Rows with ``y_i >= 0`` are labelled and read only ``neg_L[i, y_i]`` (the other entries of the
    row are ignored and get zero gradient); rows with ``y_i = −1`` are unlabelled and use their whole
    row [M2-5]. The classification term [M2-9] is the softmax cross-entropy
    (:func:`npae.pairs.functional.softmax_cross_entropy_loss`) of the labelled rows, weighted α per
    labelled row; :func:`paper_alpha` converts the paper's ``α = 0.1 · N``.

    Parameters
    ----------
    logits_y : (B, K) array, the classifier's logits for every row
    neg_L : (B, K) array, ``−L(x_i, k)`` (see :func:`labelled_bound_forward`)
    y : (B,) int array in ``−1..K−1``
    alpha : float >= 0

    Returns ``(J, cache)``; ``cache.terms`` holds the three parts of J.

    Derivation: docs/derivations/m2.md#m2-10
    """
    B, K = logits_y.shape
    if neg_L.shape != (B, K):
        raise ValueError(f"neg_L must have the shape of logits_y, {(B, K)}; got {neg_L.shape}")
    y = _check_mixed_labels(y, B, K)
    check_scalar("alpha", alpha, low=0.0)
    labelled = y >= 0  # (B,)
    rows = np.flatnonzero(labelled)  # (B_l,)
    neg_L_labelled = neg_L[rows, y[rows]]  # (B_l,) −L(x_i, y_i)
    neg_U, unlabelled_cache = unlabelled_bound_forward(logits_y[~labelled], neg_L[~labelled])  # (B_u,)
    if rows.size:
        ce_mean, dlogits_ce = F.softmax_cross_entropy_loss(logits_y[rows], y[rows])  # [M2-9] mean over B_l
    else:
        ce_mean, dlogits_ce = 0.0, np.zeros((0, K), dtype=logits_y.dtype)
    terms = {"labelled": float(np.sum(neg_L_labelled)) / B,
             "unlabelled": float(np.sum(neg_U)) / B,
             "classification": float(alpha) * ce_mean * rows.size / B}  # [M2-9] α per labelled row
    J = terms["labelled"] + terms["unlabelled"] + terms["classification"]  # [M2-10]
    return J, M2ObjectiveCache(terms, labelled, y, float(alpha), (B, K), unlabelled_cache, dlogits_ce)


def m2_objective_backward(dJ, cache):
    """Gradients ``(dlogits_y, dneg_L)`` of :func:`m2_objective_forward`, both (B, K).

    ``dneg_L``: ``dJ/B`` at ``(i, y_i)`` of a labelled row, ``dJ · q(·|x_i)/B`` on an unlabelled row
    [M2-11]. ``dlogits_y``: from the unlabelled bound on unlabelled rows and from the α-weighted
    cross-entropy on labelled rows, summed on one line [M2-12]. With α = 0 the labelled rows give the
    classifier no gradient at all.

    Derivation: docs/derivations/m2.md#m2-11
    """
    B, K = cache.shape
    labelled, y = cache.labelled, cache.y
    rows = np.flatnonzero(labelled)
    dtype = cache.dlogits_ce.dtype
    dneg_L = np.zeros((B, K), dtype=dtype)  # (B, K)
    dneg_L[rows, y[rows]] = dJ / B  # [M2-11] labelled rows: one entry each
    dlogits_from_U, dneg_L_unlabelled = unlabelled_bound_backward(
        np.full(B - rows.size, dJ / B), cache.unlabelled_cache)  # (B_u, K) each
    dneg_L[~labelled] = dneg_L_unlabelled  # [M2-11] unlabelled rows: weights q(y|x)/B
    dlogits_unlabelled = np.zeros((B, K), dtype=dtype)  # (B, K), zero on labelled rows
    dlogits_unlabelled[~labelled] = dlogits_from_U
    dlogits_classification = np.zeros((B, K), dtype=dtype)  # (B, K), zero on unlabelled rows
    # softmax_cross_entropy_loss returned (softmax − onehot)/B_l; the term is α (B_l/B) · its mean
    dlogits_classification[rows] = (dJ * cache.alpha * rows.size / B) * cache.dlogits_ce  # [M2-9]
    dlogits_y = dlogits_unlabelled + dlogits_classification  # (B, K) [M2-12] the fan-in at q(y|x)
    return dlogits_y, dneg_L
