"""What the exporters can carry over, and the refusal of everything else.

Both exporters (:mod:`npae.export.torch_module`, :mod:`npae.export.onnx_graph`) rebuild a model from
its layer chains and its current weights. They carry a model whose whole computation is the chains
plus a few closed-form lines (the logvar clamp, the reparameterization, the closed-form KL, the
decoder's likelihood). A model whose training adds anything else (noise of its own, a penalty, a
flow, an importance-weighted bound, a second stochastic layer, a classifier head) is refused by name
before anything is built, so a user never gets a twin that silently computes something different.
"""
from npae.models.autoencoder import Autoencoder
from npae.models.conv_layers import Conv2D, ConvTranspose2D, Flatten, ImagePlanes, Reshape
from npae.models.layers import Activation, Dense
from npae.models.vae import VAE, ConditionalVAE
from npae.validation import InputError

#: The model classes an exporter carries over, by exact class (a subclass adds training of its own).
SUPPORTED = (Autoencoder, VAE, ConditionalVAE)

#: The activations of :mod:`npae.models.layers`, all exported.
ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "elu")


def check_exportable(model, who):
    """Refuse (npae.InputError naming the kind) a model ``who`` (e.g. ``"to_torch"``) cannot carry
    over exactly; returns ``"autoencoder"`` or ``"vae"``."""
    kind = type(model).__name__
    if type(model) not in SUPPORTED:
        names = ", ".join(cls.__name__ for cls in SUPPORTED)
        raise InputError(f"npae.export.{who}: a {kind} cannot be exported (supported: {names}); "
                         f"its training adds what the exported module would not compute")
    model._require_built()  # builds a model given input_dim; NotFittedError for one never fitted
    if isinstance(model, VAE):
        if model.objective != "elbo":
            raise InputError(f"npae.export.{who}: a {kind} with objective={model.objective!r} cannot be "
                             f"exported (only the ELBO's closed form is carried over)")
        if model.flow is not None:
            raise InputError(f"npae.export.{who}: a {kind} with flow={model.flow!r} cannot be exported "
                             f"(a flow posterior has no exported form)")
        return "vae"
    return "autoencoder"


def chain_layers(seq, who):
    """``[(layer, name)]`` of an npae chain in forward order, ``name`` the prefix of its parameters
    (``"encoder.0."``) or None for a layer without; a layer of an unknown type is refused."""
    out, k = [], 0
    for layer in seq.layers:
        if isinstance(layer, (Dense, Conv2D, ConvTranspose2D)):
            out.append((layer, f"{seq.prefix}{k}."))
            k += 1
        elif isinstance(layer, (Flatten, Reshape, ImagePlanes)):
            out.append((layer, None))
        elif isinstance(layer, Activation) and layer.name in ACTIVATIONS:
            out.append((layer, None))
        else:
            raise InputError(f"npae.export.{who}: no exported form for the layer {layer!r}")
    return out
