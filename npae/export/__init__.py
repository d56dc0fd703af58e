"""npae models outside npae: a PyTorch module to train on (GPU, DistributedDataParallel), an ONNX
graph to serve, and the way back.

* :func:`to_torch` ``(model) -> torch.nn.Module``: encoder, decoder and training loss equal to npae's;
  :func:`from_torch` ``(module_or_state_dict, model)``: PyTorch weights into an npae model.
* :func:`to_onnx` ``(model, part="encoder" | "decoder") -> onnx.ModelProto``: the encoder's or the
  decoder's graph, built with the ``onnx`` package alone (no PyTorch).

Supported: :class:`npae.Autoencoder`, :class:`npae.VAE` and :class:`npae.ConditionalVAE` (dense and
convolutional chains, every activation; Bernoulli and Gaussian decoders with every variance; the
ELBO objective, any ``k``). Anything else is refused by name (:mod:`npae.export.kinds`).

PyTorch, onnx and onnxruntime are optional (``pip install npae[export]``) and imported only when
one of these functions is called. The numbers: docs/outgrowing-a-cpu.md.
"""
from npae.validation import InputError


def _need(module, purpose):
    """Import ``module`` or raise npae.InputError saying which extra brings it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{purpose} needs the package {module!r}: pip install npae[export]") from None


def to_torch(model):
    """A ``torch.nn.Module`` computing what ``model`` computes, with its current weights.

    The module (:class:`npae.export.torch_module.NpaeModule`) has ``encode(x, y=None)``,
    ``decode(z, y=None)``, ``encode_stats`` (a VAE's clamped ``(mu, logvar)``) and
    ``loss(x, y=None, eps=None)``, which is also ``forward``: npae's training loss in nats per
    example (``eps`` (B, Z) or (L, B, Z) fixes a VAE's noise; omitted, ``torch.randn`` draws it).
    Its dtype is the model's. Train it with any torch optimizer; :func:`from_torch` brings the
    weights back. ``module.param_map``: npae parameter name -> (state_dict key, transposed).
    """
    _need("torch", "npae.export.to_torch")
    from npae.export import torch_module
    return torch_module.to_torch(model)


def from_torch(source, model):
    """Write the weights of ``source`` (a module made by :func:`to_torch`, or its ``state_dict``)
    into ``model`` (built, of the same architecture) in place and return ``model``. Every array is
    checked (names, shapes, finite) before the first is written."""
    _need("torch", "npae.export.from_torch")
    from npae.export import torch_module
    return torch_module.from_torch(source, model)


def to_onnx(model, part="encoder", *, opset=17):
    """The encoder's (``part="encoder"``: x -> the code or the posterior's ``mu`` and ``logvar``)
    or the decoder's (``part="decoder"``: z -> what ``decode`` returns) graph as an
    ``onnx.ModelProto``, with the model's current weights as initializers, checked by
    ``onnx.checker``. Inputs have a free batch axis. See :mod:`npae.export.onnx_graph`."""
    _need("onnx", "npae.export.to_onnx")
    from npae.export import onnx_graph
    return onnx_graph.to_onnx(model, part, opset=opset)


__all__ = ["to_torch", "from_torch", "to_onnx"]
