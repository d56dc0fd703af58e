"""The using surface: thin classes over the pure pairs in :mod:`npae.functional`.

Each layer keeps the cache of its last ``forward`` and, after ``backward``, holds ``grads[name]``
(overwritten, never accumulated: every layer runs once per step; the fused :class:`DenseAct`
overwrites the same arrays in place). ``params`` dicts hold the very arrays the layer computes
with, so editing one in place changes the layer, and optimizers update them in place.
:class:`FlatParams` makes all of a model's parameters views of one array, and its gradients views
of another.
"""
import numpy as np

from . import functional as F
from . import kernels
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

    def backward(self, dy, input_grad=True):
        """Fill ``grads`` and return ``dx``; ``input_grad=False`` skips ``dx`` (returns None), the
        largest product of a first layer's backward."""
        if input_grad:
            dx, self.grads["W"], self.grads["b"] = F.dense_backward(dy, self.cache)
            return dx
        x, _ = self.cache
        self.grads["W"] = x.T @ dy  # (n_in, n_out) [DENSE-3]
        self.grads["b"] = dy.sum(axis=0)  # (n_out,) [DENSE-4]
        return None

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


class DenseAct:
    """A :class:`Dense` layer and the ReLU / leaky ReLU after it (or none), run as one step.

    Forward: ``x @ W`` on BLAS, then bias + activation in one fused pass
    (:func:`npae.kernels.bias_act_forward`). Backward: activation gradient and bias gradient in one
    pass (:func:`npae.kernels.act_backward`), then the two products. It writes the caches, ``pre``
    and ``grads`` that the two layers write themselves, so the rest of npae cannot tell the
    difference. :class:`Sequential` builds these when ``kernels.ENABLED``.
    """

    def __init__(self, dense, act=None):
        self.dense, self.act = dense, act
        self.code = kernels.ACT_CODES[act.name] if act is not None else 0
        self.slope = act.hyper.get("slope", 0.0) if act is not None else 0.0

    def forward(self, x):
        W, b = self.dense.params["W"], self.dense.params["b"]
        a = x @ W  # (B, n_out) becomes the pre-activation in place
        h = a if self.act is None else np.empty_like(a)  # (B, n_out)
        kernels.bias_act_forward(a, b, h, self.code, kernels.scalar(self.slope, a))  # [DENSE-1]
        self.dense.cache = (x, W)
        if self.act is not None:  # the caches relu_forward / leaky_relu_forward return
            self.act.cache = a if self.code == 1 else (a, self.slope)
            self.act.pre = a
        return h

    def backward(self, dh, input_grad=True):
        """Write ``grads["W"]`` and ``grads["b"]`` **in place** (the arrays are made once, or given
        by :class:`FlatParams`, and overwritten by every backward) and return ``dx``."""
        x, W = self.dense.cache
        dW, db = self._grad_arrays()
        if self.act is None:
            da = dh  # (B, n_out)
            np.sum(dh, axis=0, out=db)  # (n_out,) [DENSE-4]
        else:
            a = self.act.pre
            da = np.empty_like(a)  # (B, n_out)
            kernels.act_backward(np.ascontiguousarray(dh), a, da, db, self.code,
                                 kernels.scalar(self.slope, a))  # [ACT-3] [DENSE-4]
        np.matmul(x.T, da, out=dW)  # (n_in, n_out) [DENSE-3]
        return da @ W.T if input_grad else None  # (B, n_in) [DENSE-2]

    def _grad_arrays(self):
        """The layer's gradient arrays for W and b: the ones it holds when they fit (shape, dtype,
        C order), else new ones, kept for the next step."""
        grads = self.dense.grads
        for key, p in self.dense.params.items():
            g = grads.get(key)
            if g is None or g.shape != p.shape or g.dtype != p.dtype or not g.flags.c_contiguous:
                grads[key] = np.empty_like(p, order="C")
        return grads["W"], grads["b"]

    def __repr__(self):
        return f"DenseAct({self.dense!r}, {self.act!r})"


def fuse_layers(layers):
    """Group each Dense with a following ReLU / leaky ReLU into a :class:`DenseAct`; every other
    Dense becomes a DenseAct of its own, every other layer is kept as it is."""
    steps, k = [], 0
    while k < len(layers):
        layer = layers[k]
        nxt = layers[k + 1] if k + 1 < len(layers) else None
        if isinstance(layer, Dense):
            fusable = isinstance(nxt, Activation) and nxt.name in ("relu", "leaky_relu")
            steps.append(DenseAct(layer, nxt if fusable else None))
            k += 2 if fusable else 1
        else:
            steps.append(layer)
            k += 1
    return steps


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
        # what forward/backward run: the same layers, fused in pairs when the kernels are on
        self.steps = fuse_layers(self.layers) if kernels.ENABLED else self.layers

    @property
    def entries(self):
        """``(name, layer, key)`` for every parameter, in forward order."""
        return list(self._names)

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
        for step in self.steps:
            x = step.forward(x)
        return x

    def backward(self, dy, input_grad=True):
        """Backpropagate ``dy`` and return dL/dx; ``input_grad=False`` returns None and skips the
        first layer's ``dx`` product (a model's encoder never needs it)."""
        for k in range(len(self.steps) - 1, -1, -1):
            step = self.steps[k]
            if k == 0 and not input_grad and isinstance(step, (Dense, DenseAct)):
                return step.backward(dy, input_grad=False)
            dy = step.backward(dy)
        return dy

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class FlatParams:
    """The parameters of some chains in one contiguous 1-D array, and their gradients in another.

    ``params[name]`` and ``grads[name]`` are views of ``param_data`` and ``grad_data`` (forward
    order, each parameter's entries in C order) and they become the layers' own ``params[key]`` and
    ``grads[key]``: the layers compute with them, fused layers write their gradients into them
    (:meth:`DenseAct.backward`), and the optimizer updates them in place. Training can then run Adam
    as one fused pass over the whole model (:class:`npae.optim.Adam`) and the divergence check as
    one dot product (:func:`npae.training.check_step`), with no gradient array allocated per step.
    """

    def __init__(self, chains):
        entries = [entry for chain in chains for entry in chain.entries]
        dtypes = {layer.params[key].dtype for _, layer, key in entries}
        if len(dtypes) != 1:
            raise ValueError(f"FlatParams needs one dtype for all parameters, got {sorted(map(str, dtypes))}")
        self.layout, offset = [], 0  # (name, offset, shape)
        for name, layer, key in entries:
            shape = layer.params[key].shape
            self.layout.append((name, offset, shape))
            offset += int(np.prod(shape))
        self.param_data = np.empty(offset, dtype=dtypes.pop())
        self.grad_data = np.zeros_like(self.param_data)
        self.params, self.grads = self.split(self.param_data), self.split(self.grad_data)
        for name, layer, key in entries:
            self.params[name][...] = layer.params[key]
            layer.params[key], layer.grads[key] = self.params[name], self.grads[name]

    def split(self, data):
        """``{name: view}`` of a 1-D array laid out like ``param_data``."""
        return {name: data[offset:offset + int(np.prod(shape))].reshape(shape)
                for name, offset, shape in self.layout}

    def holds(self, params, grads):
        """True when ``params`` and ``grads`` are exactly these views, still backed by the flat
        arrays (a model may return a gradient of its own, e.g. plus a penalty; in NumPy mode the
        layers make new gradient arrays; a deep copy of a model holds copies)."""
        if len(grads) != len(self.grads) or len(params) != len(self.params):
            return False
        for name, g in self.grads.items():
            p = self.params[name]
            if (grads.get(name) is not g or params.get(name) is not p or g.base is not self.grad_data
                    or p.base is not self.param_data):
                return False
        return True
