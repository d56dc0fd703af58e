"""The optimizers' update rules as plain functions: the reading surface of docs/derivations/opt.md.

Each function updates the arrays it is given **in place** (the parameter and the optimizer's state
for that parameter) and returns nothing; :mod:`npae.training.optim` holds the classes that keep the state and
call these. Scalars stay Python floats, so a float32 parameter is updated in float32.
"""
import math

import numpy as np


def weight_decay(g, p, wd):
    """The gradient of ``loss + (wd / 2) ||p||²``: ``g + wd · p`` [OPT-1] (``g`` itself when wd = 0)."""
    return g + wd * p if wd else g  # [OPT-1]


def sgd_update(p, g, lr):
    """p ← p − lr · g [OPT-2]."""
    p -= lr * g  # [OPT-2]


def momentum_update(p, g, v, lr, momentum, nesterov=False):
    """Heavy ball: v ← μ v + g, p ← p − lr · v [OPT-3]; Nesterov: p ← p − lr · (g + μ v) [OPT-4]."""
    v *= momentum
    v += g  # [OPT-3]
    if nesterov:
        p -= lr * (g + momentum * v)  # [OPT-4]
    else:
        p -= lr * v  # [OPT-3]


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """One Adam step (Kingma & Ba) for step number ``t`` >= 1, on ``p``, ``m``, ``v`` in place.

    Written with the bias corrections folded into the step size and eps, which is algebraically
    the textbook ``p -= lr * m̂ / (sqrt(v̂) + eps)`` with m̂ = m/(1-β1^t), v̂ = v/(1-β2^t).
    The reference of the fused backend's Adam kernel (:func:`npae.fast.kernels.adam`).
    """
    m *= beta1
    m += (1.0 - beta1) * g  # [OPT-5]
    v *= beta2
    v += (1.0 - beta2) * (g * g)  # [OPT-6]
    step = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)  # [OPT-7]
    eps_hat = eps * math.sqrt(1.0 - beta2 ** t)  # [OPT-7]
    p -= step * m / (np.sqrt(v) + eps_hat)  # [OPT-7]


def adagrad_update(p, g, G, lr, eps):
    """Adagrad: G ← G + g², p ← p − lr · g / (sqrt(G) + eps) [OPT-8]."""
    G += g * g  # [OPT-8]
    p -= lr * g / (np.sqrt(G) + eps)  # [OPT-8]


def rmsprop_update(p, g, s, lr, rho, eps):
    """RMSprop: s ← ρ s + (1 − ρ) g², p ← p − lr · g / (sqrt(s) + eps) [OPT-9]."""
    s *= rho
    s += (1.0 - rho) * (g * g)  # [OPT-9]
    p -= lr * g / (np.sqrt(s) + eps)  # [OPT-9]
