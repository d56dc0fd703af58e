"""The image layers: :class:`Conv2D` and :class:`ConvTranspose2D` (what they share is
:class:`ConvLayer`), :class:`ConvAct` (a convolution and the activation after it, one step of a
:class:`~npae.models.layers.Sequential`), :class:`Flatten`, :class:`Reshape`, and
:class:`ImagePlanes` (a flat row, with a conditional model's one-hot label, made into an image).

Convolutions call the backend's convolution+activation units (:mod:`npae.fast.backends`), so under
``reference`` they run the pairs of :mod:`npae.pairs.conv`; each one followed by an activation
becomes one :class:`ConvAct` step of a Sequential, as a Dense and its activation become one
:class:`~npae.models.layers.DenseAct`. They keep their caches and write their gradients as the
dense layers of :mod:`npae.models.layers` do. Derivations: docs/derivations/conv.md.
"""
import numpy as np

from npae.pairs import conv
from npae.fast.backends import ops
from npae.init import CONV_INITIALIZERS, make_rng
from npae.models.layers import param_array
from npae.validation import InputError, check_choice, check_dtype, check_scalar


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

    def with_activation(self, act):
        """The :class:`ConvAct` step this layer and the activation ``act`` after it make in a
        :class:`~npae.models.layers.Sequential` (see :func:`npae.models.layers.compile_steps`)."""
        return ConvAct(self, act)


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
