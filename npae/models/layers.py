"""The using surface: thin classes over the pure pairs in :mod:`npae.pairs.functional`.

Each layer keeps the cache of its last ``forward`` and, after ``backward``, holds ``grads[name]``
(overwritten, never accumulated: every layer runs once per step). ``apply`` is the forward pass
without a cache (evaluation). ``params`` dicts hold the very arrays the layer computes with, so
editing one in place changes the layer, and optimizers update them in place.

A :class:`Sequential` runs its layers as steps: each Dense with the activation after it is one
:class:`DenseAct`, which calls the backend's dense+activation unit (:mod:`npae.backend`) and writes
its gradients in place. :class:`FlatParams` makes all of a model's parameters views of one array,
and its gradients views of another. :func:`build_mlp` builds the chains every model uses.
The image layers (convolutions, flatten, reshape, image planes) are in :mod:`npae.models.conv_layers`.
"""
import contextlib
import copy

import numpy as np

from npae.pairs import functional as F
from npae.fast.backends import ops
from npae.init import INITIALIZERS, make_rng
from npae.validation import check_choice, check_dtype, check_scalar

ACTIVATION_NAMES = tuple(F.ACTIVATIONS)
_RELU_LIKE = ("relu", "leaky_relu", "elu")

_SHAPES_ONLY = [False]


@contextlib.contextmanager
def shapes_only():
    """Build layers whose parameters are shapes only: zero-stride read-only views of one number
    (``np.broadcast_to``), no memory. What a model file's config declares can then be read off
    the built model before anything large is allocated (:mod:`npae.models.sizing`)."""
    _SHAPES_ONLY[0] = True
    try:
        yield
    finally:
        _SHAPES_ONLY[0] = False


def is_shapes_only():
    """True inside :func:`shapes_only`."""
    return _SHAPES_ONLY[0]


def param_array(shape, dtype, make):
    """``make()`` (the real, initialised array), or a shape-only stand-in under :func:`shapes_only`."""
    if _SHAPES_ONLY[0]:
        return np.broadcast_to(np.zeros((), dtype=dtype), tuple(int(n) for n in shape))
    return make()


class Dense:
    """Fully connected layer ``y = x W + b`` (W: (n_in, n_out), b: (n_out,)), over
    :func:`~npae.pairs.functional.dense_forward` / :func:`~npae.pairs.functional.dense_backward`."""

    def __init__(self, n_in, n_out, *, init="glorot_uniform", rng=None, dtype="float64"):
        check_choice("init", init, tuple(INITIALIZERS))
        dt = check_dtype(dtype)
        rng = make_rng(rng)
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.params = {"W": param_array((self.n_in, self.n_out), dt,
                                        lambda: INITIALIZERS[init](self.n_in, self.n_out, rng, dt)),
                       "b": param_array((self.n_out,), dt, lambda: np.zeros(self.n_out, dtype=dt))}
        self.grads = {}
        self.cache = None

    def forward(self, x):
        y, self.cache = F.dense_forward(x, self.params["W"], self.params["b"])
        return y

    def apply(self, x):
        return F.dense_forward(x, self.params["W"], self.params["b"])[0]

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
        self.hyper = hyper
        self.params, self.grads, self.cache, self.pre = {}, {}, None, None

    @property
    def fwd(self):
        return getattr(F, f"{self.name}_forward")

    @property
    def bwd(self):
        return getattr(F, f"{self.name}_backward")

    def forward(self, a):
        h, self.cache = self.fwd(a, **self.hyper)
        self.pre = a  # kept for inspection (tests keep inputs off kinks)
        return h

    def apply(self, a):
        return self.fwd(a, **self.hyper)[0]

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
    """One step of a :class:`Sequential`: a :class:`Dense` layer and the activation after it (or
    none), run through the backend's dense+activation unit (:mod:`npae.backend`).

    Under ``reference`` the unit is :func:`~npae.pairs.functional.dense_forward` followed by the
    activation's pair; under ``fused`` it is a numba kernel for bias + activation. Either way the
    step keeps the unit's cache for its backward, exposes the pre-activation as ``pre``, and writes
    the Dense layer's gradients **in place** into ``dense.grads`` (arrays made once, or given by
    :class:`FlatParams`, and overwritten by every backward).
    """

    def __init__(self, dense, act=None):
        self.dense, self.act = dense, act
        self.act_name = act.name if act is not None else "identity"
        self.hyper = dict(act.hyper) if act is not None else {}
        self.cache = None

    @property
    def params(self):
        return self.dense.params

    @property
    def pre(self):
        """The pre-activation ``x W + b`` of the last forward (None before any)."""
        return None if self.cache is None else self.cache.a

    def forward(self, x):
        """Forward for training: keeps the cache the backward needs."""
        p = self.dense.params
        h, self.cache = ops.dense_act_forward(x, p["W"], p["b"], self.act_name, self.hyper)
        return h

    def apply(self, x):
        """Forward only (evaluation): keeps nothing."""
        p = self.dense.params
        return ops.dense_act_forward(x, p["W"], p["b"], self.act_name, self.hyper)[0]

    def backward(self, dh, input_grad=True):
        """Write ``grads["W"]`` and ``grads["b"]`` in place and return ``dx`` (None when
        ``input_grad`` is False: a first layer's input gradient is never needed)."""
        dW, db = self._grad_arrays()
        return ops.dense_act_backward(dh, self.cache, dW, db, input_grad)

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


def compile_steps(layers):
    """The steps a :class:`Sequential` runs: each Dense joined with the activation right after it
    (if any) into a :class:`DenseAct`, each layer that offers ``with_activation`` (a convolution,
    :mod:`npae.models.conv_layers`) followed by an activation into the step that method makes (a
    ``ConvAct``); every other layer kept as it is."""
    steps, k = [], 0
    while k < len(layers):
        layer = layers[k]
        nxt = layers[k + 1] if k + 1 < len(layers) else None
        if isinstance(layer, Dense):
            joined = isinstance(nxt, Activation)
            steps.append(DenseAct(layer, nxt if joined else None))
            k += 2 if joined else 1
        elif hasattr(layer, "with_activation") and isinstance(nxt, Activation):
            steps.append(layer.with_activation(nxt))  # a lone convolution is its own step
            k += 2
        else:
            steps.append(layer)
            k += 1
    return steps


class Sequential:
    """A chain of layers. ``params``/``grads`` are named ``<prefix><k>.W`` / ``<prefix><k>.b`` with
    ``k`` counting the layers that have parameters, in forward order (``encoder.0.W``,
    ``encoder.1.W``, ...). ``forward`` keeps what ``backward`` needs; ``apply`` is forward only."""

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
        self.steps = compile_steps(self.layers)  # what forward/backward run

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
        """Forward for training (every step keeps its cache)."""
        for step in self.steps:
            x = step.forward(x)
        return x

    def apply(self, x):
        """Forward only, for evaluation: no cache is kept, nothing a training step uses changes."""
        for step in self.steps:
            x = step.apply(x)
        return x

    def backward(self, dy, input_grad=True):
        """Backpropagate ``dy`` and return dL/dx; ``input_grad=False`` returns None and skips the
        input gradient of the first step with parameters (a model's encoder never needs it), and
        every parameter-free step before it (an image layer, say) has nothing left to compute."""
        first = 0
        if not input_grad:
            first = next((k for k, step in enumerate(self.steps) if step.params), len(self.steps))
        for k in range(len(self.steps) - 1, first - 1, -1):
            step = self.steps[k]
            if k == first and not input_grad:
                step.backward(dy, input_grad=False)
                return None
            dy = step.backward(dy)
        return None if not input_grad else dy

    def __repr__(self):
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class FreeParams:
    """Parameters that belong to no layer (a decoder's log-variance, a flow's vectors): ``params``
    and ``grads`` dicts under names ``<prefix><key>``, shaped as given, in the order given. It has
    the ``entries`` of a chain, so :class:`FlatParams` takes it beside the encoder and decoder; the
    model that owns it writes ``grads[key]`` in place."""

    def __init__(self, arrays, prefix=""):
        self.prefix = prefix
        self.params = {key: value if _SHAPES_ONLY[0] else np.array(value, copy=True)
                       for key, value in arrays.items()}
        self.grads = dict(self.params) if _SHAPES_ONLY[0] else \
            {key: np.zeros_like(value) for key, value in self.params.items()}

    @property
    def entries(self):
        return [(f"{self.prefix}{key}", self, key) for key in self.params]

    def __repr__(self):
        return f"FreeParams({', '.join(f'{self.prefix}{k}{v.shape}' for k, v in self.params.items())})"


class FlatParams:
    """The parameters of some chains in one contiguous 1-D array, and their gradients in another.

    ``params[name]`` and ``grads[name]`` are views of ``param_data`` and ``grad_data`` (forward
    order, each parameter's entries in C order) and they become the layers' own ``params[key]`` and
    ``grads[key]``: the layers compute with them, fused layers write their gradients into them
    (:meth:`DenseAct.backward`), and the optimizer updates them in place. Training can then run Adam
    as one fused pass over the whole model (:class:`npae.training.optim.Adam`) and the divergence check as
    one dot product (:func:`npae.training.loop.check_step`), with no gradient array allocated per step.
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
        if _SHAPES_ONLY[0]:  # shapes only: the layers' stand-ins are the parameters
            self.param_data = self.grad_data = None
            self.params = {name: layer.params[key] for name, layer, key in entries}
            self.grads = dict(self.params)
            return
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


def build_mlp(sizes, activation, last_activation, *, rng, dtype, prefix, slope=0.01, alpha=1.0,
              init="auto"):
    """Dense layers through ``sizes`` with ``activation`` between them and ``last_activation`` after
    the last (identity layers are left out). ``init="auto"`` picks He for ReLU-like activations
    and Glorot otherwise, per layer, by the activation that follows it."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        act = activation if k < len(sizes) - 2 else last_activation
        layer_init = init if init != "auto" else ("he_uniform" if act in _RELU_LIKE else "glorot_uniform")
        layers.append(Dense(n_in, n_out, init=layer_init, rng=rng, dtype=dtype))
        if act != "identity":
            layers.append(make_activation(act, slope=slope, alpha=alpha))
    return Sequential(layers, prefix=prefix)


def clone_chain(chain, *, prefix="encoder.", dtype=None):
    """A new :class:`Sequential` of copies of ``chain``'s layers (its arrays copied, in ``dtype`` if
    given; no cache, no gradient), named with ``prefix``. ``chain``: a Sequential or a list of them,
    joined in order. The source never changes."""
    chains = chain if isinstance(chain, (list, tuple)) else [chain]
    layers = []
    for seq in chains:
        for layer in seq.layers:
            new = copy.copy(layer)
            new.params = {k: np.array(v, dtype=dtype or v.dtype, copy=True) for k, v in layer.params.items()}
            new.grads, new.cache = {}, None
            layers.append(new)
    return Sequential(layers, prefix=prefix)
