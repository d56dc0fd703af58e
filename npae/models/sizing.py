"""Sizing a model from its config without building it: ``{name: (shape, dtype)}`` of every array a
model file of a given class and config must hold.

:func:`npae.models.files.load` compares this with the arrays a file lists before it decompresses or
builds anything, so that a small file cannot make it build a huge network (docs/files.md), and
``Model.save`` checks it against the model's own arrays (:func:`check_declarable`). npae's MLP
families are sized from the config's numbers (:func:`mlp_declared_shapes` and one sizer per family,
``_SIZERS``); a model with convolutions or explicit layer stacks is built with shape-only stand-ins
(:func:`npae.models.layers.shapes_only`), which allocate nothing. A config that cannot be sized
raises ValueError naming the field.
"""
import numpy as np

from npae import constants
from npae.constants import DTYPES


def _class_key(cls):
    return f"{cls.__module__}:{cls.__qualname__}"


def _config_int(config, field, low=1, default=None):
    value = config.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"config field {field!r} must be an integer >= {low}, got {value!r:.60}")
    return value


def _config_sizes(config, field):
    value = config.get(field, ())
    sizes = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(sizes, list) or len(sizes) > constants.MODEL_FILE_MAX_MEMBERS:
        raise ValueError(f"config field {field!r} must be a list of layer widths, got {value!r:.60}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"config field {field!r} must hold positive integers, got {s!r:.60}")
    return sizes


def _config_dtype(config):
    dtype = config.get("dtype", "float64")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"config field 'dtype' must be one of {DTYPES}, got {dtype!r:.60}")
    return np.dtype(dtype)


def _config_arch(config):
    arch = config.get("arch", "mlp")
    if arch != "mlp":
        raise ValueError(f"config field 'arch' is {arch!r:.60}; this npae sizes only arch='mlp' from "
                         f"a config (a class with another architecture overrides _declared_shapes)")


def mlp_declared_shapes(widths, prefix, dtype):
    """``{name: (shape, dtype)}`` of the Dense layers of :func:`npae.models.layers.build_mlp` through
    ``widths``: ``<prefix><k>.W`` of shape (n_in, n_out) and ``<prefix><k>.b`` of shape (n_out,)."""
    out = {}
    for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        out[f"{prefix}{k}.W"] = ((n_in, n_out), dtype)
        out[f"{prefix}{k}.b"] = ((n_out,), dtype)
    return out


def _shapes_by_building(cls, config):
    """The arrays of a model with convolutions or explicit layer stacks (``arch="conv"``,
    ``encoder_layers=...``), read off a build under :func:`npae.models.layers.shapes_only`: every
    parameter is a zero-stride stand-in, so nothing of the declared size is allocated, whatever the
    config says. The lists of the config are bounded first (a million layers would be objects)."""
    from npae.models import layers

    for name in ("hidden", "hidden1", "hidden2", "encoder_layers", "decoder_layers", "image_shape"):
        value = config.get(name)
        if isinstance(value, list) and len(value) > constants.MODEL_FILE_MAX_MEMBERS:
            raise ValueError(f"config field {name!r} has {len(value)} entries, more than a file can hold")
    with layers.shapes_only():
        model = cls._from_config(dict(config))
        model._require_built()
        return {name: (tuple(p.shape), p.dtype) for name, p in model._saved_arrays().items()}


def _mlp_autoencoder(config, code_width, n_classes, code_extra=0, out_width=1):
    """Encoder ``[D + C, *hidden, code_width · Z + code_extra]`` and decoder
    ``[Z + C, *reversed(hidden), out_width · D]``."""
    _config_arch(config)
    D, Z = _config_int(config, "input_dim"), _config_int(config, "latent_dim")
    hidden, dtype = _config_sizes(config, "hidden"), _config_dtype(config)
    return {**mlp_declared_shapes([D + n_classes, *hidden, code_width * Z + code_extra], "encoder.", dtype),
            **mlp_declared_shapes([Z + n_classes, *hidden[::-1], out_width * D], "decoder.", dtype)}


def _autoencoder_shapes(config):
    return _mlp_autoencoder(config, 1, 0)


def _vae_shapes(config):
    """The encoder emits [mu | logvar] (2 · latent_dim), plus the IAF's context (latent_dim); a
    ConditionalVAE's one-hot label (n_classes columns) joins the encoder's input and the code; a
    Gaussian decoder with ``variance="learned"`` emits [mean | logvar] (2 · input_dim), with
    ``"shared"`` / ``"per_feature"`` it has ``decoder.logvar`` of shape (1,) / (input_dim,); a flow
    adds ``flow.<step>.<key>`` arrays (docs/derivations/flow.md)."""
    n_classes = 0 if config.get("n_classes") is None else _config_int(config, "n_classes")
    D, Z, dtype = _config_int(config, "input_dim"), _config_int(config, "latent_dim"), _config_dtype(config)
    flow, variance = config.get("flow"), config.get("variance", "fixed")
    gaussian = config.get("likelihood", "bernoulli") == "gaussian"
    if flow not in (None, "planar", "iaf") or variance not in ("fixed", "shared", "per_feature", "learned"):
        raise ValueError(f"config fields 'flow' / 'variance' are {flow!r:.20} / {variance!r:.20}")
    out = _mlp_autoencoder(config, 2, n_classes, code_extra=Z if flow == "iaf" else 0,
                           out_width=2 if gaussian and variance == "learned" else 1)
    if gaussian and variance in ("shared", "per_feature"):
        out["decoder.logvar"] = ((1,) if variance == "shared" else (D,), dtype)
    if flow is not None:
        steps = _config_int(config, "flow_steps", default=2)
        if steps > constants.MODEL_FILE_MAX_MEMBERS:
            raise ValueError(f"config field 'flow_steps' is {steps}, more than a file can hold")
        hidden = config.get("flow_hidden")
        H = max(2 * Z, 8) if hidden is None else _config_int(config, "flow_hidden")
        for t in range(steps):
            if flow == "planar":
                out.update({f"flow.{t}.u": ((Z,), dtype), f"flow.{t}.w": ((Z,), dtype),
                            f"flow.{t}.b": ((1,), dtype)})
            else:
                out.update({f"flow.{t}.W1": ((Z, H), dtype), f"flow.{t}.b1": ((H,), dtype),
                            f"flow.{t}.W2": ((H, 2 * Z), dtype), f"flow.{t}.b2": ((2 * Z,), dtype),
                            f"flow.{t}.Wc": ((Z, H), dtype)})
    return out


def _classifier_shapes(config):
    """The copied encoder (``encoder_layers``: ``["dense", n_in, n_out]`` or ``[activation,
    {...}]`` entries) then the head ``[code_dim, *hidden, n_classes]``."""
    dtype, layers = _config_dtype(config), config.get("encoder_layers")
    if not isinstance(layers, list) or len(layers) > constants.MODEL_FILE_MAX_MEMBERS:
        raise ValueError(f"config field 'encoder_layers' must be a list, got {layers!r:.60}")
    widths = []
    for spec in layers:
        if isinstance(spec, list) and len(spec) == 3 and spec[0] == "dense":
            n_in, n_out = spec[1], spec[2]
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in (n_in, n_out)):
                raise ValueError(f"config field 'encoder_layers' has a dense layer {spec!r:.60}")
            if widths and widths[-1] != n_in:
                raise ValueError(f"config field 'encoder_layers': a dense layer of {n_in} inputs "
                                 f"follows one of {widths[-1]} outputs")
            widths += [n_in, n_out] if not widths else [n_out]
        elif not (isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], str)
                  and isinstance(spec[1], dict)):
            raise ValueError(f"config field 'encoder_layers' has an entry {spec!r:.60}; expected "
                             f"['dense', n_in, n_out] or [activation, {{...}}]")
    if not widths:
        raise ValueError("config field 'encoder_layers' holds no dense layer")
    head = [widths[-1], *_config_sizes(config, "hidden"), _config_int(config, "n_classes", low=2)]
    return {**mlp_declared_shapes(widths, "encoder.", dtype),
            **mlp_declared_shapes(head, "head.", dtype)}


#: How npae's own model families lay out their arrays (classes are looked up along their MRO).
_SIZERS = {"npae.models.autoencoder:Autoencoder": _autoencoder_shapes, "npae.models.vae:VAE": _vae_shapes,
           "npae.models.classifier:Classifier": _classifier_shapes}


def check_declarable(model):
    """Refuse, before writing anything, a model whose arrays differ from what its class's
    :meth:`npae.models.model.Model._declared_shapes` says (then :func:`~npae.models.files.load`
    would refuse the file)."""
    cls = type(model)
    try:
        declared = cls._declared_shapes(model.config)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot save a {cls.__name__}: {err}") from None
    actual = {name: (p.shape, p.dtype) for name, p in model._saved_arrays().items()}
    declared = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in declared.items()}
    if declared != actual:
        diff = sorted(k for k in set(declared) | set(actual) if declared.get(k) != actual.get(k))
        raise TypeError(f"cannot save a {cls.__name__}: {cls.__name__}._declared_shapes(config) "
                        f"disagrees with its arrays in {diff[:6]} (declared "
                        f"{ {k: declared.get(k) for k in diff[:3]} }, built "
                        f"{ {k: actual.get(k) for k in diff[:3]} }), so load would refuse the file; "
                        f"the class must override Model._declared_shapes")


def footprint(declared):
    """``(bytes, width)`` of a model's declared arrays (:meth:`Model._declared_shapes`): the bytes
    of its parameters, and the sum of its layers' output widths (the lengths of their biases), the
    numbers one example's forward pass writes per sample of z. Python ints: no overflow."""
    nbytes = width = 0
    for name, (shape, dtype) in declared.items():
        size = 1
        for n in shape:
            size *= int(n)
        nbytes += size * np.dtype(dtype).itemsize
        if name.endswith(".b") and len(shape) == 1:
            width += int(shape[0])
    return nbytes, width
