"""The using surface: thin classes over the pure pairs in :mod:`npae.functional`.

Each layer keeps the cache of its last ``forward`` and, after ``backward``, holds ``grads[name]``
(overwritten, never accumulated: every layer runs once per step). ``params`` dicts hold the very
arrays the layer computes with, so editing one in place changes the layer, and optimizers update
them in place.
"""
import numpy as np

from . import functional as F
from .init import INITIALIZERS, make_rng
from .validation import check_choice, check_dtype, check_scalar


class Dense:
    """Fully connected layer ``y = x W + b`` (W: (n_in, n_out), b: (n_out,)), over
    :func:`~npae.functional.dense_forward` / :func:`~npae.functional.dense_backward`."""

    def __init__(self, n_in, n_out, *, init="glorot_uniform", rng=None, dtype="float64"):
        check_choice("init", init, tuple(INITIALIZERS))
        dt = check_dtype(dtype)
        rng = make_rng(rng)
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.params = {"W": INITIALIZERS[init](self.n_in, self.n_out, rng, dt),
                       "b": np.zeros(self.n_out, dtype=dt)}
        self.grads = {}
        self.cache = None

    def forward(self, x):
        y, self.cache = F.dense_forward(x, self.params["W"], self.params["b"])
        return y

    def backward(self, dy):
        dx, self.grads["W"], self.grads["b"] = F.dense_backward(dy, self.cache)
        return dx

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out})"


class Activation:
    """Elementwise activation over a registered forward/backward pair; no parameters."""

    name = None

    def __init__(self, **hyper):
        self.fwd, self.bwd, _ = F.ACTIVATIONS[self.name]
        self.hyper = hyper
        self.params, self.grads, self.cache = {}, {}, None

    def forward(self, a):
        h, self.cache = self.fwd(a, **self.hyper)
        self.pre = a  # kept for inspection (tests keep inputs off kinks)
        return h

    def backward(self, dh):
        return self.bwd(dh, self.cache)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args})"


class Identity(Activation):
    name = "identity"


class ReLU(Activation):
    name = "relu"


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, slope=0.01):
        check_scalar("slope", slope, low=0.0)
        super().__init__(slope=float(slope))


class Sigmoid(Activation):
    name = "sigmoid"


class Tanh(Activation):
    name = "tanh"


class Softplus(Activation):
    name = "softplus"


class ELU(Activation):
    name = "elu"

    def __init__(self, alpha=1.0):
        check_scalar("alpha", alpha, low=0.0, low_open=True)
        super().__init__(alpha=float(alpha))


ACTIVATION_CLASSES = {cls.name: cls for cls in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, Softplus, ELU)}


def make_activation(name, *, slope=0.01, alpha=1.0):
    """Build an activation layer by name; ``slope`` and ``alpha`` go to leaky_relu and elu."""
    check_choice("activation", name, tuple(ACTIVATION_CLASSES))
    if name == "leaky_relu":
        return LeakyReLU(slope)
    if name == "elu":
        return ELU(alpha)
    return ACTIVATION_CLASSES[name]()


class Sequential:
    """A chain of layers. ``params``/``grads`` are named ``<prefix><k>.W`` / ``<prefix><k>.b`` with
    ``k`` counting the Dense layers in forward order (``encoder.0.W``, ``encoder.1.W``, ...)."""

    def __init__(self, layers, prefix=""):
        self.layers = list(layers)
        self.prefix = prefix
        self._names = []  # (param name, layer, key) in forward order
        k = 0
        for layer in self.layers:
            if layer.params:
                for key in layer.params:
                    self._names.append((f"{prefix}{k}.{key}", layer, key))
                k += 1

    @property
    def dense_layers(self):
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    @property
    def params(self):
        return {name: layer.params[key] for name, layer, key in self._names}

    @property
    def grads(self):
        return {name: layer.grads[key] for name, layer, key in self._names}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"
