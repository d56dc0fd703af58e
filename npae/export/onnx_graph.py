"""An npae model's encoder or decoder as an ONNX graph, built node by node with ``onnx.helper``
(no PyTorch in the way), for serving with onnxruntime or any ONNX runtime.

Imported only by :func:`npae.export.to_onnx` (it imports onnx at its top).

The graph is float32 (what serving runtimes run everywhere; a float64 model's weights are rounded
once), its batch axis free (``"N"``). Names:

* ``part="encoder"``: input ``x`` (N, D) and, for a ConditionalVAE, ``c`` (N, n_classes), the one-hot
  label as floats; output ``z`` (autoencoder: the code) or ``mu`` and ``logvar`` (a VAE's posterior,
  logvar clamped to [LOGVAR_MIN, LOGVAR_MAX] as npae does [REPARAM-5]).
* ``part="decoder"``: input ``z`` (N, Z) (and ``c``); output ``x_hat``, what npae's ``decode``
  returns: σ(logits) for a Bernoulli decoder or an autoencoder with ``output="sigmoid"``, the mean
  of a Gaussian decoder (a learned variance's second head is left out: ``decoder_variance`` is not
  exported), the last affine output otherwise.

Dense layers are ``MatMul`` + ``Add`` with npae's ``W`` (n_in, n_out) as it is; convolutions are
``Conv`` / ``ConvTranspose`` (npae's weights already have ONNX's layout); softplus is written out as
``Relu(a) + Log(1 + Exp(−|a|))`` ([ACT-10]; finite for every float) rather than ONNX's ``Softplus``.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from npae.constants import LOGVAR_MAX, LOGVAR_MIN
from npae.export.kinds import chain_layers, check_exportable
from npae.models.conv_layers import Conv2D, ConvTranspose2D, Flatten, ImagePlanes, Reshape
from npae.models.layers import Dense
from npae.validation import InputError, check_choice
from npae.version import __version__

PARTS = ("encoder", "decoder")


class _Graph:
    """Nodes and initializers under fresh names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, stem):
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem, array):
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32)
                                                  if np.asarray(array).dtype.kind == "f"
                                                  else np.asarray(array), name))
        return name

    def op(self, op_type, inputs, stem=None, **attrs):
        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _activation(g, h, layer):
    name = layer.name
    if name == "identity":
        return h
    if name == "relu":
        return g.op("Relu", [h])
    if name == "leaky_relu":
        return g.op("LeakyRelu", [h], alpha=float(layer.hyper["slope"]))
    if name == "sigmoid":
        return g.op("Sigmoid", [h])
    if name == "tanh":
        return g.op("Tanh", [h])
    if name == "elu":
        return g.op("Elu", [h], alpha=float(layer.hyper["alpha"]))
    # softplus [ACT-10]: max(a, 0) + log(1 + exp(−|a|))
    tail = g.op("Log", [g.op("Add", [g.const("one", np.ones((), np.float32)),
                                     g.op("Exp", [g.op("Neg", [g.op("Abs", [h])])])])])
    return g.op("Add", [g.op("Relu", [h]), tail], "softplus")


def _chain(g, seq, h, params):
    """Append the layers of npae chain ``seq`` to ``g`` from the value ``h``; returns the output."""
    for layer, prefix in chain_layers(seq, "to_onnx"):
        if isinstance(layer, Dense):
            h = g.op("Add", [g.op("MatMul", [h, g.const(prefix + "W", params[prefix + "W"])]),
                             g.const(prefix + "b", params[prefix + "b"])], "dense")
        elif isinstance(layer, (Conv2D, ConvTranspose2D)):
            attrs = dict(kernel_shape=list(layer.kernel), strides=list(layer.stride),
                         pads=list(layer.padding) * 2)
            if isinstance(layer, ConvTranspose2D):
                attrs["output_padding"] = list(layer.output_padding)
            h = g.op("ConvTranspose" if isinstance(layer, ConvTranspose2D) else "Conv",
                     [h, g.const(prefix + "W", params[prefix + "W"]),
                      g.const(prefix + "b", params[prefix + "b"])], **attrs)
        elif isinstance(layer, Flatten):
            h = g.op("Flatten", [h], axis=1)
        elif isinstance(layer, Reshape):
            h = g.op("Reshape", [h, g.const("shape", np.array((-1,) + layer.shape, np.int64))])
        elif isinstance(layer, ImagePlanes):
            h = _planes(g, h, layer)
        else:
            h = _activation(g, h, layer)
    return h


def _index(g, stem, value):
    return g.const(stem, np.array([value], np.int64))


def _planes(g, xc, layer):
    """npae's ImagePlanes [CONV-14]: ``[x | c]`` (N, CHW + n) -> (N, C + n, H, W)."""
    C, H, W = layer.image_shape
    chw, n = C * H * W, layer.n_cond

    def cols(start, stop):
        return g.op("Slice", [xc, _index(g, "start", start), _index(g, "stop", stop), _index(g, "axis", 1)])

    x = g.op("Reshape", [cols(0, chw) if n else xc, g.const("shape", np.array([-1, C, H, W], np.int64))])
    if not n:
        return x
    c = g.op("Reshape", [cols(chw, chw + n), g.const("shape", np.array([-1, n, 1, 1], np.int64))])
    planes = g.op("Mul", [c, g.const("ones", np.ones((1, 1, H, W), np.float32))])  # (N, n, H, W)
    return g.op("Concat", [x, planes], axis=1)


def to_onnx(model, part, *, opset=17):
    kind = check_exportable(model, "to_onnx")
    check_choice("part", part, PARTS)
    params = {name: np.asarray(a) for name, a in model.params.items()}
    n_classes = int(getattr(model, "n_classes", 0) or 0)
    D, Z = int(model.n_features_in_), int(model.latent_dim)
    g = _Graph()
    width = D if part == "encoder" else Z
    first = "x" if part == "encoder" else "z"
    inputs = [helper.make_tensor_value_info(first, TensorProto.FLOAT, ["N", width])]
    h = first
    if n_classes:
        inputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", n_classes]))
        h = g.op("Concat", [first, "c"], axis=1)  # npae's ELBO-8
    if part == "encoder":
        out = _chain(g, model.encoder, h, params)
        if kind == "autoencoder":
            outputs = {"z": (out, Z)}
        else:
            Zs = [_index(g, s, v) for s, v in (("zero", 0), ("Z", Z), ("2Z", 2 * Z))]
            axis = _index(g, "axis", 1)
            mu = g.op("Slice", [out, Zs[0], Zs[1], axis], "mu")
            raw = g.op("Slice", [out, Zs[1], Zs[2], axis], "logvar_raw")
            logvar = g.op("Clip", [raw, g.const("low", np.array(LOGVAR_MIN, np.float32)),
                                   g.const("high", np.array(LOGVAR_MAX, np.float32))])  # npae's REPARAM-5
            outputs = {"mu": (mu, Z), "logvar": (logvar, Z)}
    else:
        out = _chain(g, model.decoder, h, params)
        sigmoid = (model.output == "sigmoid") if kind == "autoencoder" else model.likelihood == "bernoulli"
        if sigmoid:
            out = g.op("Sigmoid", [out])
        elif kind == "vae" and model.variance == "learned":  # the mean head only
            out = g.op("Slice", [out, _index(g, "zero", 0), _index(g, "D", D), _index(g, "axis", 1)])
        outputs = {"x_hat": (out, D)}
    for name, (value, _) in outputs.items():  # give the outputs their public names
        g.nodes.append(helper.make_node("Identity", [value], [name]))
    graph = helper.make_graph(
        g.nodes, f"npae_{type(model).__name__}_{part}", inputs,
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", w])
         for name, (_, w) in outputs.items()],
        g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="npae", producer_version=__version__)
    proto.ir_version = min(proto.ir_version, 10)  # readable by onnxruntime releases of the last years
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as err:  # a bug of this module, never of the user's model
        raise InputError(f"npae.export.to_onnx: the graph made for this {type(model).__name__} does not "
                         f"pass onnx.checker: {err}") from None
    return proto
