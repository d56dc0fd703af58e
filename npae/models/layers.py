"""The using surface: thin classes over the pure pairs in :mod:`npae.pairs.functional`.

Each layer keeps the cache of its last ``forward`` and, after ``backward``, holds ``grads[name]``
(overwritten, never accumulated: every layer runs once per step). ``apply`` is the forward pass
without a cache (evaluation). ``params`` dicts hold the very arrays the layer computes with, so
editing one in place changes the layer, and optimizers update them in place.

A :class:`Sequential` runs its layers as steps: each Dense with the activation after it is one
:class:`DenseAct`, which calls the backend's dense+activation unit (:mod:`npae.backend`) and writes
its gradients in place. :class:`FlatParams` makes all of a model's parameters views of one array,
and its gradients views of another. :func:`build_mlp` builds the chains every model uses.
"""
import contextlib
import copy

import numpy as np

from npae.pairs import conv
from npae.pairs import functional as F
from npae.fast.backends import ops
from npae.init import CONV_INITIALIZERS, INITIALIZERS, make_rng
from npae.validation import InputError, check_choice, check_dtype, check_scalar

ACTIVATION_NAMES = tuple(F.ACTIVATIONS)
_RELU_LIKE = ("relu", "leaky_relu", "elu")

_SHAPES_ONLY = [False]


@contextlib.contextmanager
def shapes_only():
    """Build layers whose parameters are shapes only: zero-stride read-only views of one number
    (``np.broadcast_to``), no memory. What a model file's config declares can then be read off
    the built model before anything large is allocated (``npae.models.model``'s ``_declared_shapes``)."""
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
    (if any) into a :class:`DenseAct`, each convolution followed by an activation into a
    :class:`ConvAct`; every other layer kept as it is."""
    steps, k = [], 0
    while k < len(layers):
        layer = layers[k]
        nxt = layers[k + 1] if k + 1 < len(layers) else None
        if isinstance(layer, Dense):
            joined = isinstance(nxt, Activation)
            steps.append(DenseAct(layer, nxt if joined else None))
            k += 2 if joined else 1
        elif isinstance(layer, ConvLayer) and isinstance(nxt, Activation):
            steps.append(ConvAct(layer, nxt))  # a lone convolution is its own step
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


# ==================================================================================================
# Images: convolution layers, flatten / reshape, and the flat-row-to-image layer (issue 13).
# Convolutions call the backend's convolution+activation units (npae.fast.backends), so under
# ``reference`` they run the pairs of npae.pairs.conv; each one followed by an activation becomes one
# ConvAct step of a Sequential, as a Dense and its activation become one DenseAct.
# ==================================================================================================
def _conv_arg(name, value, minimum):
    """An int or an (h, w) pair of ints >= ``minimum`` as an (h, w) tuple (npae.InputError
    naming ``name`` otherwise)."""
    try:
        return conv._pair(value, name, minimum)
    except ValueError as err:
        raise InputError(str(err)) from None


def _as_pair_or_int(pair):
    return pair[0] if pair[0] == pair[1] else pair


class ConvLayer:
    """What :class:`Conv2D` and :class:`ConvTranspose2D` share: ``params`` ``W`` and ``b``,
    gradients written **in place** into the arrays ``grads`` holds (made once, or views given by
    :class:`FlatParams`), and the three calls of every layer: ``forward`` (keeps the cache),
    ``apply`` (forward only), ``backward(dy, input_grad=True)``. Alone in a :class:`Sequential` a
    convolution is its own step (no activation); followed by an activation it becomes a
    :class:`ConvAct`."""

    transposed = False
    act_name = "identity"  # alone, a convolution has no activation (see ConvAct)

    def _setup(self, in_channels, out_channels, kernel, stride, padding, weight_shape, init, rng,
               dtype):
        check_scalar("in_channels", in_channels, low=1, integer=True)
        check_scalar("out_channels", out_channels, low=1, integer=True)
        check_choice("init", init, tuple(CONV_INITIALIZERS))
        dt = check_dtype(dtype)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel = _conv_arg("kernel", kernel, 1)
        self.stride = _conv_arg("stride", stride, 1)
        self.padding = _conv_arg("padding", padding, 0)
        shape = weight_shape + self.kernel
        self.params = {"W": param_array(shape, dt, lambda: CONV_INITIALIZERS[init](shape, make_rng(rng), dt,
                                                                                   **self._fans())),
                       "b": param_array((self.out_channels,), dt,
                                        lambda: np.zeros(self.out_channels, dtype=dt))}
        self.grads = {}
        self.cache = None

    def _fans(self):
        """How :func:`npae.init.conv_fans` counts this weight's fans for its initializer."""
        return {"transposed": False, "stride": self.stride}

    # the unit of the backend this layer runs, with an activation (``"identity"`` when alone)
    def _unit_forward(self, x, act, hyper, reuse):
        raise NotImplementedError

    def _unit_backward(self, dh, cache, input_grad):
        raise NotImplementedError

    def _check_input(self, x):
        if np.ndim(x) != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"{self!r}: x must be (B, {self.in_channels}, H, W), got shape {np.shape(x)}")

    def _grad_arrays(self):
        """The gradient arrays for W and b: the ones held when they fit (shape, dtype, C order),
        else new ones, kept for the next step (as :meth:`DenseAct._grad_arrays`)."""
        for key, p in self.params.items():
            g = self.grads.get(key)
            if g is None or g.shape != p.shape or g.dtype != p.dtype or not g.flags.c_contiguous:
                self.grads[key] = np.empty_like(p, order="C")
        return self.grads["W"], self.grads["b"]

    @property
    def pre(self):
        """The output of the last forward before any activation (None before any)."""
        return None if self.cache is None else self.cache.a

    def forward(self, x):
        """Forward for training: keeps the cache the backward needs (and recycles the scratch
        arrays of the previous one)."""
        self._check_input(x)
        h, self.cache = self._unit_forward(x, "identity", {}, self.cache)
        return h

    def apply(self, x):
        """Forward only (evaluation): keeps nothing."""
        self._check_input(x)
        return self._unit_forward(x, "identity", {}, None)[0]

    def backward(self, dy, input_grad=True):
        """Write ``grads["W"]`` and ``grads["b"]`` in place and return ``dx`` (None when
        ``input_grad`` is False, and then not computed by the fused backend)."""
        return self._unit_backward(dy, self.cache, input_grad)

    def output_shape(self, shape):
        """The ``(C_out, Ho, Wo)`` this layer makes of an input ``(C_in, H, W)`` (no batch axis)."""
        raise NotImplementedError


class Conv2D(ConvLayer):
    """2-D convolution (cross-correlation) of NCHW images [CONV-1], ``W`` (C_out, C_in, kH, kW) in
    PyTorch's layout, ``b`` (C_out,), zero padding on each side, over the backend's
    ``conv2d_act_*`` units (reference: :func:`npae.pairs.conv.conv2d_forward` / ``conv2d_backward``).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel, stride : int or (h, w), >= 1
    padding : int or (h, w), >= 0
    init : glorot_uniform | glorot_normal | he_uniform | he_normal
        Drawn with the fans of :func:`npae.init.conv_fans` [CONV-13].
    rng : int, None or np.random.Generator
    dtype : "float64" | "float32"
    """

    def __init__(self, in_channels, out_channels, kernel, stride=1, padding=0, *,
                 init="glorot_uniform", rng=None, dtype="float64"):
        self._setup(in_channels, out_channels, kernel, stride, padding,
                    (int(out_channels), int(in_channels)), init, rng, dtype)

    def _unit_forward(self, x, act, hyper, reuse):
        p = self.params
        return ops.conv2d_act_forward(x, p["W"], p["b"], self.stride, self.padding, act, hyper, reuse)

    def _unit_backward(self, dh, cache, input_grad):
        dW, db = self._grad_arrays()
        return ops.conv2d_act_backward(dh, cache, dW, db, input_grad)

    def output_shape(self, shape):
        try:
            Ho, Wo = conv.conv_output_size(tuple(shape[1:]), self.kernel, self.stride, self.padding)
        except ValueError as err:
            raise InputError(f"{self!r} on a {tuple(shape)} input: {err}") from None
        return (self.out_channels, Ho, Wo)

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, {_as_pair_or_int(self.kernel)}, "
                f"stride={_as_pair_or_int(self.stride)}, padding={_as_pair_or_int(self.padding)})")


class ConvTranspose2D(ConvLayer):
    """2-D transposed convolution [CONV-8], the adjoint of a :class:`Conv2D` from ``out_channels``
    to ``in_channels`` plus a bias: ``W`` (C_in, C_out, kH, kW) in PyTorch's layout, over the
    backend's ``conv_transpose2d_act_*`` units (reference:
    :func:`npae.pairs.conv.conv_transpose2d_forward` / ``conv_transpose2d_backward``).

    Parameters as :class:`Conv2D`, plus ``output_padding`` (int or (h, w), 0 <= output_padding <
    stride): which of the ``stride`` sizes a convolution maps to the input size the output takes
    [CONV-9].

    Initialization: the fans are counted as PyTorch counts them for this weight, fan_in =
    C_out·kH·kW and fan_out = C_in·kH·kW (the fans of the adjoint convolution), not as the terms
    one output of this layer sums, C_in·kH·kW/(sH·sW) [CONV-13]: on MNIST the conv VAE of
    :mod:`npae.models.architectures` trained better from the former in 5 of 6 runs (docs/conv.md).
    """

    transposed = True

    def __init__(self, in_channels, out_channels, kernel, stride=1, padding=0, output_padding=0, *,
                 init="glorot_uniform", rng=None, dtype="float64"):
        self.output_padding = _conv_arg("output_padding", output_padding, 0)
        stride2 = _conv_arg("stride", stride, 1)
        for axis, op, s in zip("hw", self.output_padding, stride2):
            if op >= s:
                raise InputError(f"output_padding {op} must be smaller than the stride {s} (axis {axis})")
        self._setup(in_channels, out_channels, kernel, stride, padding,
                    (int(in_channels), int(out_channels)), init, rng, dtype)

    def _fans(self):
        """PyTorch's count: the weight (C_in, C_out, kH, kW) read as a stride-1 convolution's
        (out, in, kH, kW), i.e. fan_in = C_out·kH·kW, fan_out = C_in·kH·kW."""
        return {"transposed": False, "stride": 1}

    def _unit_forward(self, x, act, hyper, reuse):
        p = self.params
        return ops.conv_transpose2d_act_forward(x, p["W"], p["b"], self.stride, self.padding,
                                                self.output_padding, act, hyper, reuse)

    def _unit_backward(self, dh, cache, input_grad):
        dW, db = self._grad_arrays()
        return ops.conv_transpose2d_act_backward(dh, cache, dW, db, input_grad)

    def output_shape(self, shape):
        try:
            Ho, Wo = conv.conv_transpose_output_size(tuple(shape[1:]), self.kernel, self.stride,
                                                     self.padding, self.output_padding)
        except ValueError as err:
            raise InputError(f"{self!r} on a {tuple(shape)} input: {err}") from None
        return (self.out_channels, Ho, Wo)

    def __repr__(self):
        return (f"ConvTranspose2D({self.in_channels}, {self.out_channels}, "
                f"{_as_pair_or_int(self.kernel)}, stride={_as_pair_or_int(self.stride)}, "
                f"padding={_as_pair_or_int(self.padding)}, "
                f"output_padding={_as_pair_or_int(self.output_padding)})")


class ConvAct:
    """One step of a :class:`Sequential`: a :class:`Conv2D` or :class:`ConvTranspose2D` and the
    activation after it, run through the backend's convolution+activation unit (under
    ``reference`` the convolution pair then the activation's pair; under ``fused`` bias and
    ReLU / leaky ReLU ride along the layout pass). Keeps the unit's cache, exposes the
    pre-activation as ``pre`` and writes the convolution's gradients **in place** into
    ``conv.grads``, as :class:`DenseAct` does for a Dense layer."""

    def __init__(self, conv_layer, act):
        self.conv, self.act = conv_layer, act
        self.act_name = act.name
        self.hyper = dict(act.hyper)
        self.cache = None

    @property
    def params(self):
        return self.conv.params

    @property
    def pre(self):
        """The pre-activation of the last forward (None before any)."""
        return None if self.cache is None else self.cache.a

    def forward(self, x):
        """Forward for training: keeps the cache (its scratch arrays recycled from the last one)."""
        self.conv._check_input(x)
        h, self.cache = self.conv._unit_forward(x, self.act_name, self.hyper, self.cache)
        return h

    def apply(self, x):
        """Forward only (evaluation): keeps nothing."""
        self.conv._check_input(x)
        return self.conv._unit_forward(x, self.act_name, self.hyper, None)[0]

    def backward(self, dh, input_grad=True):
        """Write the convolution's ``grads`` in place; return ``dx`` (None when ``input_grad`` is
        False)."""
        return self.conv._unit_backward(dh, self.cache, input_grad)

    def __repr__(self):
        return f"ConvAct({self.conv!r}, {self.act!r})"


class Flatten:
    """``(B, C, H, W) -> (B, C·H·W)`` in C order [CONV-12], over :func:`npae.pairs.conv.flatten_forward`
    / ``flatten_backward`` (the same pair in both backends: it only renames entries). No
    parameters."""

    def __init__(self):
        self.params, self.grads, self.cache = {}, {}, None

    def forward(self, x):
        y, self.cache = conv.flatten_forward(x)
        return y

    def apply(self, x):
        return conv.flatten_forward(x)[0]

    def backward(self, dy, input_grad=True):
        return conv.flatten_backward(dy, self.cache) if input_grad else None

    @staticmethod
    def output_shape(shape):
        return (int(np.prod(shape)),)

    def __repr__(self):
        return "Flatten()"


class Reshape:
    """``(B, C·H·W) -> (B, C, H, W)`` with ``shape = (C, H, W)`` [CONV-12], over
    :func:`npae.pairs.conv.reshape_forward` / ``reshape_backward``: where a decoder's dense output becomes
    an image for its transposed convolutions. No parameters."""

    def __init__(self, shape):
        try:
            self.shape = tuple(int(check_scalar("each entry of shape", s, low=1, integer=True))
                               for s in shape)
        except TypeError:
            raise InputError(f"shape must be a tuple of positive integers, got {shape!r}") from None
        self.params, self.grads, self.cache = {}, {}, None

    def forward(self, x):
        y, self.cache = conv.reshape_forward(x, self.shape)
        return y

    def apply(self, x):
        return conv.reshape_forward(x, self.shape)[0]

    def backward(self, dy, input_grad=True):
        return conv.reshape_backward(dy, self.cache) if input_grad else None

    def output_shape(self, shape):
        if int(np.prod(shape)) != int(np.prod(self.shape)):
            raise InputError(f"{self!r} cannot take an input of shape {tuple(shape)} "
                             f"({int(np.prod(shape))} numbers, {int(np.prod(self.shape))} needed)")
        return self.shape

    def __repr__(self):
        return f"Reshape({self.shape})"


def image_planes_forward(xc, image_shape, n_cond=0):
    """A flat row ``[x | c]`` read as an image with its condition as constant planes [CONV-14]:
    ``y[n, :C] = x[n]`` reshaped to (C, H, W), and ``y[n, C + k, h, w] = c[n, k]`` at every pixel.

    This is how a conditional model's convolutional encoder sees the label: each one-hot entry is
    one more input channel, constant over the image, so the first convolution adds
    ``Σ_k c_k · (Σ_taps W[f, C + k])`` to every output it computes (a class-dependent bias, except
    near the border where the padding's zeros enter).

    Parameters
    ----------
    xc : (B, C·H·W + n_cond) array
    image_shape : (C, H, W)
    n_cond : int >= 0

    Returns
    -------
    y : (B, C + n_cond, H, W) array
    cache : for :func:`image_planes_backward`

    Derivation: docs/derivations/conv.md#conv-14
    """
    C, H, W = image_shape
    D = C * H * W
    if np.ndim(xc) != 2 or xc.shape[1] != D + n_cond:
        raise ValueError(f"image planes: x must be (B, {D} + {n_cond}), got shape {np.shape(xc)}")
    B = xc.shape[0]
    y = np.empty((B, C + n_cond, H, W), dtype=xc.dtype)  # (B, C + n_cond, H, W)
    y[:, :C] = xc[:, :D].reshape(B, C, H, W)  # [CONV-14]
    y[:, C:] = xc[:, D:, None, None]  # [CONV-14] every pixel of plane k holds c_k
    return y, (tuple(image_shape), n_cond)


def image_planes_backward(dy, cache):
    """Gradient of :func:`image_planes_forward` [CONV-14]: the image part reshaped back, and for
    each condition entry the sum of its plane (every pixel of plane k is a copy of ``c_k``).

    Returns ``dxc`` (B, C·H·W + n_cond).

    Derivation: docs/derivations/conv.md#conv-14
    """
    (C, H, W), n_cond = cache
    B = dy.shape[0]
    dxc = np.empty((B, C * H * W + n_cond), dtype=dy.dtype)  # (B, C·H·W + n_cond)
    dxc[:, :C * H * W] = dy[:, :C].reshape(B, -1)  # [CONV-14]
    dxc[:, C * H * W:] = dy[:, C:].sum(axis=(2, 3))  # (B, n_cond) [CONV-14] a copy's gradients add
    return dxc


class ImagePlanes:
    """The first layer of a convolutional encoder: a flat row ``[x | c]`` (B, C·H·W + n_cond) as an
    image (B, C + n_cond, H, W), the condition (a conditional VAE's one-hot label) broadcast as
    constant planes [CONV-14]; over :func:`image_planes_forward` / :func:`image_planes_backward`.
    With ``n_cond=0`` it is a reshape. No parameters.
    """

    def __init__(self, image_shape, n_cond=0):
        try:
            self.image_shape = tuple(int(check_scalar("each entry of image_shape", s, low=1, integer=True))
                                     for s in image_shape)
        except TypeError:
            raise InputError(f"image_shape must be (C, H, W), got {image_shape!r}") from None
        if len(self.image_shape) != 3:
            raise InputError(f"image_shape must be (C, H, W), got {image_shape!r}")
        self.n_cond = int(check_scalar("n_cond", n_cond, low=0, integer=True))
        self.params, self.grads, self.cache = {}, {}, None

    def forward(self, xc):
        y, self.cache = image_planes_forward(xc, self.image_shape, self.n_cond)
        return y

    def apply(self, xc):
        return image_planes_forward(xc, self.image_shape, self.n_cond)[0]

    def backward(self, dy, input_grad=True):
        return image_planes_backward(dy, self.cache) if input_grad else None

    def output_shape(self, shape):
        C, H, W = self.image_shape
        if tuple(shape) != (C * H * W + self.n_cond,):
            raise InputError(f"{self!r} needs rows of {C * H * W} + {self.n_cond} numbers, got "
                             f"{tuple(shape)}")
        return (C + self.n_cond, H, W)

    def __repr__(self):
        return f"ImagePlanes({self.image_shape}, n_cond={self.n_cond})"
