"""Greedy layer-wise pretraining: a stack of one-hidden-layer autoencoders, each trained on the codes
of the one below, then stacked into a deep encoder.

Layer k is an autoencoder ``h_{k−1} → h_k → ĥ_{k−1}`` with ``h_0 = x``; once trained, its codes
``h_k = f(h_{k−1} W_k + b_k)`` [PRETRAIN-1] are the data of layer k + 1. The deep encoder is the
composition ``x ↦ f(… f(x W_1 + b_1) … W_L + b_L)`` [PRETRAIN-2] of the trained encoders.

Derivation: docs/derivations/pretrain.md
"""
import numpy as np

from npae.models.autoencoder import Autoencoder
from npae.models.layers import ACTIVATION_NAMES, clone_chain
from npae.validation import InputError, InputTypeError, check_array, check_choice, check_sizes


def greedy_pretrain(X, sizes, *, activation="sigmoid", loss="bce", autoencoder=Autoencoder,
                    epochs=10, batch_size=64, lr=1e-3, optimizer="adam", dtype="float64", seed=0,
                    progress=False, **ae_kwargs):
    """Train one autoencoder per entry of ``sizes``, each on the codes of the previous one.

    Parameters
    ----------
    X : (N, D) array
    sizes : tuple of int
        Code widths of the stacked layers, e.g. ``(48, 32)``: 64 → 48 → 32.
    activation : str
        Code activation of every layer (it becomes the deep encoder's activation).
    loss : "bce" | "mse"
        Reconstruction loss of the **first** layer (``"bce"``: X in [0, 1], sigmoid output).
        Upper layers reconstruct codes: ``"bce"`` with a sigmoid output when ``activation="sigmoid"``
        (codes in (0, 1)), otherwise ``"mse"`` with an identity output.
    autoencoder : class
        :class:`npae.Autoencoder` or one of its variants (e.g. ``DenoisingAutoencoder``); extra
        keyword arguments (``noise_level=...``, ``sparsity_weight=...``) go to its constructor.
    epochs, batch_size, lr, optimizer, progress : passed to each ``fit``.
    dtype, seed : layer k is seeded with ``seed + k``.

    Returns
    -------
    stack : list of fitted autoencoders (each with ``hidden=()``), bottom first.
    """
    sizes = check_sizes("sizes", sizes)
    if not sizes:
        raise InputError("sizes must name at least one layer, got ()")
    check_choice("activation", activation, ACTIVATION_NAMES)
    check_choice("loss", loss, ("bce", "mse"))
    if not (isinstance(autoencoder, type) and issubclass(autoencoder, Autoencoder)):
        raise InputTypeError(f"autoencoder must be npae.Autoencoder or a subclass, got {autoencoder!r}")
    H = check_array(X, "X", dtype=np.dtype(dtype))  # (N, D)
    stack = []
    for k, width in enumerate(sizes):
        if k == 0:
            layer_loss = loss
        else:
            layer_loss = "bce" if activation == "sigmoid" else "mse"
        output = "sigmoid" if layer_loss == "bce" else "identity"
        ae = autoencoder(H.shape[1], (), width, activation, activation, output, layer_loss, dtype,
                         seed + k, **ae_kwargs)
        ae.fit(H, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
               progress=progress)
        stack.append(ae)
        H = ae.encode(H)  # (N, width) [PRETRAIN-1]
    return stack


def stack_encoder(stack, prefix="encoder."):
    """A deep encoder (Sequential) made of copies of the stack's encoders, bottom first [PRETRAIN-2].

    Its parameters are named ``encoder.0.W``, ``encoder.1.W``, ... in forward order; the stack is not
    modified. Pass it to :class:`npae.Classifier` or to :func:`init_autoencoder_from_stack`.
    """
    if not stack:
        raise InputError("stack is empty")
    for k, ae in enumerate(stack):
        if k and ae.encoder.dense_layers[0].n_in != stack[k - 1].latent_dim:
            raise InputError(f"layer {k} reads {ae.encoder.dense_layers[0].n_in} features but layer "
                             f"{k - 1} writes {stack[k - 1].latent_dim}")
    return clone_chain([ae.encoder for ae in stack], prefix=prefix)  # [PRETRAIN-2]


def init_autoencoder_from_stack(model, stack):
    """Copy a pretrained stack into a deep :class:`npae.Autoencoder`, in place, and return it.

    The model must have ``hidden = sizes[:-1]``, ``latent_dim = sizes[-1]`` (the stack's code
    widths) and the stack's activation for hidden and code layers. Encoder layer k takes stack layer
    k's encoder; decoder layer k takes the decoder of stack layer ``L − 1 − k`` (the stack unrolled,
    top first), so the initial deep model reconstructs through every pretrained layer.
    """
    enc, dec = model.encoder.dense_layers, model.decoder.dense_layers
    if len(enc) != len(stack):
        raise InputError(f"the model has {len(enc)} encoder layers; the stack has {len(stack)}")
    for k, ae in enumerate(stack):
        src_enc, src_dec = ae.encoder.dense_layers[0], ae.decoder.dense_layers[0]
        dst_enc, dst_dec = enc[k], dec[len(stack) - 1 - k]
        for src, dst in ((src_enc, dst_enc), (src_dec, dst_dec)):
            for key in ("W", "b"):
                if src.params[key].shape != dst.params[key].shape:
                    raise InputError(f"layer {k}: stack {key} has shape {src.params[key].shape}, "
                                     f"the model's {dst.params[key].shape}")
                dst.params[key][...] = src.params[key]
    return model
