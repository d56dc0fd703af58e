"""Optimizers. Each sees matching ``params``/``grads`` dicts and updates the arrays **in place**.

Weight decay, where given, is the L2 penalty ``(wd / 2) ||p||²`` added to the loss, i.e.
``g ← g + wd · p`` before the update [OPT-1] (coupled, as in ``torch.optim`` without the "W").
State (moments, step count) is kept per parameter name and can be saved with :meth:`state_dict`.
Derivation and update rules: docs/derivations/opt.md
"""
import math

import numpy as np

from . import kernels
from .constants import OPTIM_EPS
from .validation import check_choice, check_scalar


class Optimizer:
    """Base class: holds the learning rate, weight decay, step count and per-name state slots."""

    slots = ()

    def __init__(self, lr, weight_decay=0.0):
        self.lr = check_scalar("lr", lr, low=0.0, low_open=True)
        self.weight_decay = check_scalar("weight_decay", weight_decay, low=0.0)
        self.t = 0
        self.state = {slot: {} for slot in self.slots}

    def _slot(self, slot, name, p):
        buf = self.state[slot].get(name)
        if buf is None:
            buf = self.state[slot][name] = np.zeros_like(p)
        return buf

    def step(self, params, grads, flat=None):
        """Update every array of ``params`` in place from the matching entry of ``grads``.

        ``flat``: a :class:`npae.layers.FlatParams` whose views ``params`` and ``grads`` are (the
        training loop checks); optimizers with a fused kernel then update all parameters in one
        pass, the others ignore it.
        """
        self.t += 1
        for name, p in params.items():
            self._update(name, p, self._decayed(grads[name], p))

    def _decayed(self, g, p):
        """The gradient with the weight-decay term added (``g`` itself when there is none)."""
        return g + self.weight_decay * p if self.weight_decay else g  # [OPT-1]

    def state_dict(self):
        """Plain arrays and numbers describing the optimizer fully (for checkpoints)."""
        out = {"t": self.t}
        for slot, bufs in self.state.items():
            for name, buf in bufs.items():
                out[f"{slot}/{name}"] = buf.copy()
        return out

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        self.t = int(state["t"])
        self.state = {slot: {} for slot in self.slots}
        for key, value in state.items():
            if key == "t":
                continue
            slot, name = key.split("/", 1)
            if slot not in self.state:
                raise ValueError(f"optimizer state has unknown slot {slot!r} for {type(self).__name__}")
            self.state[slot][name] = np.array(value, copy=True)


class SGD(Optimizer):
    """p ← p − lr · g [OPT-2]."""

    def _update(self, name, p, g):
        p -= self.lr * g  # [OPT-2]


class Momentum(Optimizer):
    """Heavy-ball momentum v ← μ v + g, p ← p − lr · v [OPT-3]; with ``nesterov=True``
    p ← p − lr · (g + μ v) [OPT-4] (the look-ahead form used by PyTorch)."""

    slots = ("velocity",)

    def __init__(self, lr, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum = check_scalar("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.nesterov = bool(nesterov)

    def _update(self, name, p, g):
        v = self._slot("velocity", name, p)
        v *= self.momentum
        v += g  # [OPT-3]
        if self.nesterov:
            p -= self.lr * (g + self.momentum * v)  # [OPT-4]
        else:
            p -= self.lr * v  # [OPT-3]


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected first and second moments [OPT-5]."""

    slots = ("m", "v")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=OPTIM_EPS, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.beta1 = check_scalar("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = check_scalar("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = check_scalar("eps", eps, low=0.0, low_open=True)
        self._coefficients_for = None
        self._flat_key = self._flat_moments = None

    def step(self, params, grads, flat=None):
        if flat is None or not kernels.ENABLED:
            return super().step(params, grads)
        self.t += 1
        g = self._decayed(flat.grad_data, flat.param_data)
        m, v = self._moments_like(flat)
        coef = kernels.adam_coefficients(self.lr, self.beta1, self.beta2, self.eps, self.t, g.dtype)
        kernels.adam(flat.param_data, g, m, v, coef)  # every parameter in one fused pass

    def _moments_like(self, flat):
        """``m`` and ``v`` as 1-D arrays laid out like ``flat.param_data``; their per-parameter views
        are the optimizer's state (what :meth:`state_dict` saves and :meth:`_update` updates).
        Rebuilt, keeping the moments already held, when ``flat`` or the state dicts change
        (:meth:`load_state_dict` makes new ones)."""
        key = (flat, self.state["m"], self.state["v"])
        if self._flat_key is None or any(a is not b for a, b in zip(key, self._flat_key)):
            moments = []
            for slot in ("m", "v"):
                data = np.zeros_like(flat.param_data)
                for name, view in flat.split(data).items():
                    if name in self.state[slot]:
                        view[...] = self.state[slot][name]
                    self.state[slot][name] = view
                moments.append(data)
            self._flat_key, self._flat_moments = key, moments
        return self._flat_moments

    def _update(self, name, p, g):
        m, v = self._slot("m", name, p), self._slot("v", name, p)
        if kernels.ENABLED and p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous:
            if self._coefficients_for != (self.t, p.dtype):  # once per step, not once per array
                self._coefficients = kernels.adam_coefficients(self.lr, self.beta1, self.beta2,
                                                               self.eps, self.t, p.dtype)
                self._coefficients_for = (self.t, p.dtype)
            kernels.adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                         self._coefficients)  # one fused pass over flat views
        else:
            adam_update(p, g, m, v, self.lr, self.beta1, self.beta2, self.eps, self.t)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, t):
    """One Adam step on arrays ``p, m, v`` in place (the NumPy reference of the fused kernel).

    Written with the bias corrections folded into the step size and eps, which is algebraically
    the textbook ``p -= lr * m̂ / (sqrt(v̂) + eps)`` with m̂ = m/(1-β1^t), v̂ = v/(1-β2^t).
    Python floats for the scalars keep a float32 model in float32.
    """
    m *= beta1
    m += (1.0 - beta1) * g  # [OPT-5]
    v *= beta2
    v += (1.0 - beta2) * (g * g)  # [OPT-6]
    step = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)  # [OPT-7]
    eps_hat = eps * math.sqrt(1.0 - beta2 ** t)  # [OPT-7]
    p -= step * m / (np.sqrt(v) + eps_hat)  # [OPT-7]


class Adagrad(Optimizer):
    """Adagrad: G ← G + g², p ← p − lr · g / (sqrt(G) + eps) [OPT-8]."""

    slots = ("sum_sq",)

    def __init__(self, lr=1e-2, eps=OPTIM_EPS, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.eps = check_scalar("eps", eps, low=0.0, low_open=True)

    def _update(self, name, p, g):
        G = self._slot("sum_sq", name, p)
        G += g * g  # [OPT-8]
        p -= self.lr * g / (np.sqrt(G) + self.eps)  # [OPT-8]


class RMSprop(Optimizer):
    """RMSprop: s ← ρ s + (1 − ρ) g², p ← p − lr · g / (sqrt(s) + eps) [OPT-9]."""

    slots = ("sq_avg",)

    def __init__(self, lr=1e-3, rho=0.9, eps=OPTIM_EPS, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.rho = check_scalar("rho", rho, low=0.0, high=1.0, high_open=True)
        self.eps = check_scalar("eps", eps, low=0.0, low_open=True)

    def _update(self, name, p, g):
        s = self._slot("sq_avg", name, p)
        s *= self.rho
        s += (1.0 - self.rho) * (g * g)  # [OPT-9]
        p -= self.lr * g / (np.sqrt(s) + self.eps)  # [OPT-9]


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam, "adagrad": Adagrad, "rmsprop": RMSprop}


def get_optimizer(optimizer, lr=1e-3):
    """Return an optimizer: an instance is returned as is, a name is built with ``lr``."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a name or an npae.optim.Optimizer, got {optimizer!r}")
    check_choice("optimizer", optimizer.lower(), tuple(OPTIMIZERS))
    return OPTIMIZERS[optimizer.lower()](lr=lr)
