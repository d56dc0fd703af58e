"""The two chains a model is made of: an encoder from the data to the code and a decoder back.

:func:`build_chains` is the one entry point; :meth:`npae.Autoencoder._build` and
:meth:`npae.VAE._build` (hence every variant and the conditional VAE) call it. What it builds:

* ``arch="mlp"`` (the default): dense layers of widths ``hidden``, the decoder mirroring them,
  made by :func:`npae.models.layers.build_mlp` exactly as before (same names, same random draws).
* ``arch="conv"``: for images, in the spirit of the Keras VAE example the lectures walk through.
  Encoder: 3x3 convolutions with stride 2 to 32 and then 64 channels, flatten, the dense layers of
  ``hidden``, the code. Decoder: the code, the dense layers of ``hidden`` reversed, a dense layer to
  64 feature maps of the encoder's last size, transposed convolutions (3x3, stride 2) to 64 and
  32 channels, and a 3x3 transposed convolution with stride 1 to the image's channels: the logits.
  Paddings are 1; each ``output_padding`` is chosen so that the decoder returns exactly the sizes
  the encoder went through, so any H x W works (28x28 -> 14x14 -> 7x7 and back; 8x8 -> 4x4 ->
  2x2). :func:`conv_layers` returns these two stacks written in the spec language below.
* ``encoder_layers=`` / ``decoder_layers=``: a stack of your own for either side (the lecture's
  point that encoder and decoder are separate models), in a small JSON-able spec language; the
  side you give replaces the ``arch``/``hidden`` layers of that side.

The spec language: a list whose entries are ``[kind]`` or ``[kind, {options}]`` (a bare string
``"relu"`` also works). Sizes flow from the input, so no entry states its input size:

=====================  ===========================================================================
kind                   options (defaults)
=====================  ===========================================================================
``"conv2d"``           ``out``, ``kernel``, ``stride`` (1), ``padding`` (0), ``init`` (the model's)
``"conv_transpose2d"`` the same, plus ``output_padding`` (0)
``"dense"``            ``out``, ``init``
``"flatten"``          none
``"reshape"``          ``shape``: ``[C, H, W]``
``"image"``            none: the flat input row as an image of ``image_shape``, condition planes
                       appended (only first in an encoder; put there by itself before a first
                       convolution)
an activation name     ``slope`` (leaky_relu) or ``alpha`` (elu); default: the model's
=====================  ===========================================================================

Kernel, stride and paddings are an int or an ``[h, w]`` pair. The model completes the stacks:

* the encoder reads the flat row ``[x | c]`` (``c`` a conditional VAE's one-hot label, else
  nothing); a convolution met there gets an ``"image"`` layer in front, which also lays the label
  out as constant planes [CONV-14];
* a dense layer met by images gets a ``"flatten"`` in front;
* the encoder ends with the code layer the model needs (a dense layer to ``code_out`` units:
  ``latent_dim`` for an autoencoder, followed by its code activation; ``2·latent_dim`` for a VAE,
  ``[mu | logvar]``);
* the decoder starts from the flat code ``[z | c]`` and ends with the output: images of the data's
  size are flattened, a flat vector of another width gets a dense layer to ``n_features``. Its last
  layer gives the logits (or Gaussian means), so it must not end with an activation.

Example, the ``arch="conv"`` encoder for 28x28 images, written out::

    [["conv2d", {"out": 32, "kernel": 3, "stride": 2, "padding": 1}], ["relu"],
     ["conv2d", {"out": 64, "kernel": 3, "stride": 2, "padding": 1}], ["relu"], ["flatten"]]

Initialization ``init="auto"`` picks He for a layer followed by a ReLU-like activation and Glorot
otherwise, by the fans of its kernel (:func:`npae.init.conv_fans`), as build_mlp does for dense
layers. How-to: docs/conv.md.
"""
import math
import numbers

import numpy as np

from npae.init import INITIALIZERS
from npae.models.layers import (_RELU_LIKE, ACTIVATION_NAMES, Activation, Dense, Sequential, build_mlp,
                                make_activation)
from npae.models.conv_layers import Conv2D, ConvTranspose2D, Flatten, ImagePlanes, Reshape
from npae.validation import InputError, InputTypeError, check_choice, check_scalar, check_sizes

ARCHS = ("mlp", "conv")
#: channels of the two strided convolutions of ``arch="conv"`` (the Keras VAE example's)
CONV_CHANNELS = (32, 64)

_REQUIRED = object()
#: kind -> {option: default}; _REQUIRED marks the options that must be given
LAYER_OPTIONS = {
    "conv2d": {"out": _REQUIRED, "kernel": _REQUIRED, "stride": 1, "padding": 0, "init": None},
    "conv_transpose2d": {"out": _REQUIRED, "kernel": _REQUIRED, "stride": 1, "padding": 0,
                         "output_padding": 0, "init": None},
    "dense": {"out": _REQUIRED, "init": None},
    "flatten": {},
    "reshape": {"shape": _REQUIRED},
    "image": {},
}
_ACT_OPTIONS = {"leaky_relu": {"slope": None}, "elu": {"alpha": None}}


# --------------------------------------------------------------------------------------------------
# Image shape
# --------------------------------------------------------------------------------------------------
def resolve_image_shape(n_features, image_shape=None):
    """``(C, H, W)`` of the images whose pixels are the ``n_features`` columns of the data.

    ``image_shape``: None (a square one-channel image: 784 -> (1, 28, 28), 64 -> (1, 8, 8)),
    ``(H, W)`` (one channel) or ``(C, H, W)``; its product must be ``n_features``.
    """
    if image_shape is None:
        side = math.isqrt(int(n_features))
        if side * side != n_features:
            raise InputError(f"image_shape: {n_features} features are not a square image; give "
                             f"image_shape=(H, W) or (C, H, W)")
        return (1, side, side)
    if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__"):
        raise InputTypeError(f"image_shape must be (H, W) or (C, H, W), got {image_shape!r}")
    shape = check_sizes("image_shape", image_shape)
    if len(shape) not in (2, 3):
        raise InputError(f"image_shape must be (H, W) or (C, H, W), got {image_shape!r}")
    shape = (1,) + shape if len(shape) == 2 else shape
    if int(np.prod(shape)) != n_features:
        raise InputError(f"image_shape {tuple(image_shape)} holds {int(np.prod(shape))} pixels but "
                         f"the data has {n_features} features")
    return shape


# --------------------------------------------------------------------------------------------------
# arch="conv" as stacks of the spec language
# --------------------------------------------------------------------------------------------------
def _down(n):
    """The size a 3x3 convolution with stride 2 and padding 1 makes of ``n`` [CONV-2]."""
    return (n + 2 - 3) // 2 + 1


def conv_layers(image_shape, hidden=(), activation="relu"):
    """``(encoder_layers, decoder_layers)``: the stacks ``arch="conv"`` stands for, in the spec
    language (the model adds the code layer, the image layer in front and the final flatten).

    ``output_padding`` of each stride-2 transposed convolution is ``(n + 2p − k) mod s`` for the
    size ``n`` its mirror convolution read [CONV-9], so the decoder's sizes retrace the encoder's.
    """
    C, H, W = image_shape
    c1, c2 = CONV_CHANNELS
    sizes = [(H, W)]
    for _ in CONV_CHANNELS:
        sizes.append((_down(sizes[-1][0]), _down(sizes[-1][1])))
    strided = {"kernel": 3, "stride": 2, "padding": 1}
    encoder = [["conv2d", {"out": c1, **strided}], [activation],
               ["conv2d", {"out": c2, **strided}], [activation], ["flatten"]]
    for width in hidden:
        encoder += [["dense", {"out": int(width)}], [activation]]
    h2, w2 = sizes[2]
    decoder = []
    for width in hidden[::-1]:
        decoder += [["dense", {"out": int(width)}], [activation]]

    def restore(n):  # the output_padding that brings the size back to n (stride 2, k 3, p 1)
        return [(n[0] + 2 - 3) % 2, (n[1] + 2 - 3) % 2]

    decoder += [["dense", {"out": c2 * h2 * w2}], [activation], ["reshape", {"shape": [c2, h2, w2]}],
                ["conv_transpose2d", {"out": c2, **strided, "output_padding": restore(sizes[1])}],
                [activation],
                ["conv_transpose2d", {"out": c1, **strided, "output_padding": restore(sizes[0])}],
                [activation],
                ["conv_transpose2d", {"out": C, "kernel": 3, "stride": 1, "padding": 1}]]
    return encoder, decoder


# --------------------------------------------------------------------------------------------------
# Reading a spec
# --------------------------------------------------------------------------------------------------
def parse_layers(name, spec):
    """``spec`` (a list of ``[kind]``, ``[kind, {options}]`` or ``"kind"``) as a list of
    ``(kind, options)`` with every option checked for its name (values are checked when the layer
    is made). Raises npae.InputError naming ``name[k]``."""
    if isinstance(spec, (str, bytes, dict)) or not isinstance(spec, (list, tuple)):
        raise InputTypeError(f"{name} must be a list of layers such as [['conv2d', {{'out': 32, "
                             f"'kernel': 3}}], ['relu'], ['flatten']], got {spec!r:.80}")
    if not spec:
        raise InputError(f"{name} is empty; give None for the default layers")
    parsed = []
    for k, entry in enumerate(spec):
        where = f"{name}[{k}]"
        if isinstance(entry, str):
            entry = [entry]
        if not isinstance(entry, (list, tuple)) or not 1 <= len(entry) <= 2 or not isinstance(entry[0], str):
            raise InputError(f"{where} must be [kind] or [kind, {{options}}], got {entry!r}")
        kind = entry[0]
        options = entry[1] if len(entry) == 2 else {}
        if not isinstance(options, dict):
            raise InputError(f"{where}: the options of {kind!r} must be a dict, got {options!r}")
        allowed = LAYER_OPTIONS.get(kind, _ACT_OPTIONS.get(kind, {} if kind in ACTIVATION_NAMES else None))
        if allowed is None:
            raise InputError(f"{where}: unknown layer kind {kind!r}; expected one of "
                             f"{', '.join(map(repr, [*LAYER_OPTIONS, *ACTIVATION_NAMES]))}")
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise InputError(f"{where} ({kind!r}): unknown option(s) {unknown}; expected "
                             f"{', '.join(allowed) or 'none'}")
        missing = [key for key, default in allowed.items() if default is _REQUIRED and key not in options]
        if missing:
            raise InputError(f"{where} ({kind!r}): missing option(s) {missing}")
        parsed.append((kind, {key: options.get(key, default) for key, default in allowed.items()}))
    return parsed


def _pair_option(where, key, value):
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{where}: {key} must be an int or an [h, w] pair, got {value!r}")
    return int(value)


class _Builder:
    """Makes the layers of one chain from parsed entries, following the shape of what flows
    (``(n,)`` for flat rows, ``(C, H, W)`` for images)."""

    def __init__(self, name, shape, *, rng, dtype, init, slope, alpha):
        self.name, self.shape, self.layers = name, tuple(shape), []
        self.rng, self.dtype, self.init, self.slope, self.alpha = rng, dtype, init, slope, alpha

    def _layer_init(self, option, next_kind):
        if option is not None:
            return check_choice("init", option, tuple(INITIALIZERS))
        if self.init != "auto":
            return self.init
        return "he_uniform" if next_kind in _RELU_LIKE else "glorot_uniform"

    def add(self, layer, where):
        """Append ``layer`` and move the shape on to its output's."""
        if isinstance(layer, Dense):
            out = (layer.n_out,)
        elif isinstance(layer, Activation):
            out = self.shape
        else:
            try:
                out = layer.output_shape(self.shape)
            except InputError as err:
                raise InputError(f"{where}: {err}") from None
        self.layers.append(layer)
        self.shape = tuple(out)

    def flat(self, where):
        if len(self.shape) == 3:
            self.add(Flatten(), where)
        return self.shape[0]

    def image(self, where, kind):
        if len(self.shape) != 3:
            raise InputError(f"{where}: a {kind!r} layer needs images but receives rows of "
                             f"{self.shape[0]} numbers; put ['reshape', {{'shape': [C, H, W]}}] "
                             f"before it")
        return self.shape[0]

    def build(self, entries, *, image=None):
        """Add every entry; ``image``: ``(image_shape, n_cond)`` when this chain reads the model's
        flat input (an encoder), so that a first convolution can get its image layer."""
        for k, (kind, opt) in enumerate(entries):
            where = f"{self.name}[{k}] ({kind!r})"
            next_kind = entries[k + 1][0] if k + 1 < len(entries) else None
            try:
                self._add_entry(kind, opt, where, next_kind, image, first=not self.layers)
            except (ValueError, TypeError) as err:
                if isinstance(err, InputError) and str(err).startswith(self.name):
                    raise
                raise InputError(f"{where}: {err}") from None
        return self

    def _add_entry(self, kind, opt, where, next_kind, image, first):
        is_conv = kind in ("conv2d", "conv_transpose2d")
        at_input = first and image is not None  # the model's flat rows [x | c] arrive here
        if kind == "image" and not at_input:
            raise InputError(f"{where}: an 'image' layer can only come first in an encoder, where "
                             f"the model's flat input rows arrive")
        if kind == "image" or (is_conv and at_input):
            self.add(ImagePlanes(*image), where)  # rows as images, the condition as planes
            if kind == "image":
                return
        if is_conv:
            channels = self.image(where, kind)
            check_scalar("out", opt["out"], low=1, integer=True)
            common = dict(init=self._layer_init(opt["init"], next_kind), rng=self.rng, dtype=self.dtype)
            kernel = _pair_option(where, "kernel", opt["kernel"])
            stride = _pair_option(where, "stride", opt["stride"])
            padding = _pair_option(where, "padding", opt["padding"])
            if kind == "conv2d":
                layer = Conv2D(channels, opt["out"], kernel, stride, padding, **common)
            else:
                layer = ConvTranspose2D(channels, opt["out"], kernel, stride, padding,
                                        _pair_option(where, "output_padding", opt["output_padding"]),
                                        **common)
            self.add(layer, where)
        elif kind == "dense":
            n_in = self.flat(where)
            check_scalar("out", opt["out"], low=1, integer=True)
            self.add(Dense(n_in, opt["out"], init=self._layer_init(opt["init"], next_kind), rng=self.rng,
                           dtype=self.dtype), where)
        elif kind == "flatten":
            self.flat(where)
        elif kind == "reshape":
            shape = opt["shape"]
            if not isinstance(shape, (list, tuple)) or len(shape) != 3:
                raise InputError(f"{where}: shape must be [C, H, W], got {shape!r}")
            self.add(Reshape(shape), where)
        elif kind != "identity":  # an activation; the identity is left out, as in build_mlp
            slope = self.slope if opt.get("slope") is None else opt["slope"]
            alpha = self.alpha if opt.get("alpha") is None else opt["alpha"]
            self.add(make_activation(kind, slope=slope, alpha=alpha), where)


def _dense_stack(widths, activation):
    """Parsed entries of dense layers of ``widths``, each followed by ``activation``."""
    entries = []
    for width in widths:
        entries += [("dense", {"out": width, "init": None}),
                    (activation, {key: None for key in _ACT_OPTIONS.get(activation, {})})]
    return entries


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------
def build_chains(arch, n_features, code_out, code_in, cond_dim=0, *, hidden, activation,
                 code_activation="identity", rng, dtype, slope=0.01, alpha=1.0, init="auto",
                 image_shape=None, encoder_layers=None, decoder_layers=None, n_out=None):
    """The ``(encoder, decoder)`` :class:`~npae.models.layers.Sequential` chains of a model.

    Parameters
    ----------
    arch : "mlp" | "conv"
        The layers of the sides not given by ``encoder_layers`` / ``decoder_layers``.
    n_features : int
        Width of the data.
    n_out : int, optional
        Width of the decoder's output when it is not ``n_features``: ``2·n_features`` for a
        Gaussian decoder whose second head is its log-variance (a dense output layer only).
    code_out : int
        Width of the encoder's last layer: ``latent_dim`` (autoencoder) or ``2·latent_dim`` (VAE,
        ``[mu | logvar]``).
    code_in : int
        Width of the code the decoder reads (``latent_dim``).
    cond_dim : int
        Width of a condition joined to the encoder's input and to the code (a conditional VAE's
        one-hot label); 0 for none.
    hidden : tuple of int
        Dense widths between the encoder's features (the data for ``"mlp"``, the flattened
        feature maps for ``"conv"``) and the code; the decoder mirrors them.
    activation, code_activation : str
        The hidden layers' activation; the activation after the code layer (an autoencoder's).
    rng, dtype, slope, alpha, init
        As in :func:`npae.models.layers.build_mlp`; ``init="auto"``: He before ReLU-like activations,
        Glorot otherwise, per layer.
    image_shape : None, (H, W) or (C, H, W)
        The images' shape, needed by convolutions (None: a square one-channel image).
    encoder_layers, decoder_layers : list, optional
        Stacks in the spec language of this module's docstring; completed by the model's layers.

    Returns
    -------
    encoder, decoder : Sequential (parameters ``encoder.<k>.W``, ..., ``decoder.<k>.W``, ...)
    """
    check_choice("arch", arch, ARCHS)
    n_out = n_features if n_out is None else int(n_out)
    hidden = check_sizes("hidden", hidden)
    check_choice("activation", activation, ACTIVATION_NAMES)
    check_choice("code_activation", code_activation, ACTIVATION_NAMES)
    if init != "auto":
        check_choice("init", init, tuple(INITIALIZERS))
    enc_spec = None if encoder_layers is None else parse_layers("encoder_layers", encoder_layers)
    dec_spec = None if decoder_layers is None else parse_layers("decoder_layers", decoder_layers)
    if image_shape is not None:
        resolve_image_shape(n_features, image_shape)  # refuse a wrong one whatever the layers
    kw = dict(rng=rng, dtype=dtype, slope=slope, alpha=alpha, init=init)
    if arch == "mlp" and enc_spec is None and dec_spec is None:  # exactly the chains of build_mlp
        encoder = build_mlp([n_features + cond_dim, *hidden, code_out], activation, code_activation,
                            prefix="encoder.", **kw)
        decoder = build_mlp([code_in + cond_dim, *hidden[::-1], n_out], activation, "identity",
                            prefix="decoder.", **kw)
        return encoder, decoder

    needs_image = arch == "conv" or any(kind in ("conv2d", "conv_transpose2d", "image")
                                        for kind, _ in (enc_spec or []))
    shape = resolve_image_shape(n_features, image_shape) if needs_image else None
    if arch == "conv" and (enc_spec is None or dec_spec is None):
        conv_enc, conv_dec = conv_layers(shape, hidden, activation)
        enc_spec = enc_spec or parse_layers("arch='conv' encoder", conv_enc)
        dec_spec = dec_spec or parse_layers("arch='conv' decoder", conv_dec)

    # encoder: [x | c] -> the stack (or hidden dense layers) -> the code layer
    enc = _Builder("encoder_layers", (n_features + cond_dim,), **kw)
    if enc_spec is None:
        enc_spec = _dense_stack(hidden, activation)
    enc.build(enc_spec, image=(shape, cond_dim) if shape is not None else None)
    code_layer = [("dense", {"out": code_out, "init": None})]
    if code_activation != "identity":
        code_layer.append((code_activation, _ACT_OPTIONS.get(code_activation, {})))
    enc.name = "encoder (its code layer)"
    enc.build(code_layer)

    # decoder: [z | c] -> the stack (or hidden dense layers) -> the output
    dec = _Builder("decoder_layers", (code_in + cond_dim,), **kw)
    if dec_spec is None:
        dec_spec = _dense_stack(hidden[::-1], activation)
    dec.build(dec_spec)
    dec.name = "decoder (its output layer)"
    if len(dec.shape) == 3:
        if n_out != n_features:
            raise InputError(f"the decoder ends with images of shape {dec.shape}; a second output "
                             f"head ({n_out} outputs: a learned per-example variance) needs a dense "
                             f"output layer: use variance='shared' or 'per_feature' with this decoder")
        if int(np.prod(dec.shape)) != n_features:
            raise InputError(f"decoder_layers ends with images of shape {dec.shape} "
                             f"({int(np.prod(dec.shape))} numbers), but the data has {n_features} "
                             f"features")
        dec.flat("decoder (its output)")
    elif dec.shape[0] != n_out or not dec.layers:
        dec.build([("dense", {"out": n_out, "init": None})])
    last = [layer for layer in dec.layers if not isinstance(layer, Flatten)][-1]
    if isinstance(last, Activation):
        raise InputError(f"decoder_layers ends with the activation {last!r}: the decoder's last "
                         f"layer gives the logits (or the Gaussian means), so leave it out")
    return (Sequential(enc.layers, prefix="encoder."), Sequential(dec.layers, prefix="decoder."))
