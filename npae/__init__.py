"""npae: autoencoders and variational autoencoders in NumPy, every backward pass derived by hand.

The sub-packages, from the bottom up (each imports only those below it):

* :mod:`npae.pairs`: the lecture's math, pure forward/backward pairs and update rules, each line
  tagged with its equation (``docs/derivations/``). Read these first.
* :mod:`npae.fast`: speed, a layer of its own: the backend switch (:func:`set_backend`,
  ``NPAE_BACKEND``) and the numba kernels proven equal to the pairs they replace.
* :mod:`npae.data`: everything that reads or writes bytes: model files, data sets.
* :mod:`npae.training`: the minibatch loop, checkpoints, optimizers, the log line.
* :mod:`npae.models`: the using surface, thin classes over the pairs (re-exported here).
* :mod:`npae.export`: the models in PyTorch and ONNX (optional extras, imported on use).
* :mod:`npae.app`: what a person runs: the ``npae`` command, figures, the benchmark.

The map of modules: ``docs/architecture.md``.
"""
import sys

from npae.version import __version__

from npae import gradcheck
from npae.pairs import conv, functional, latent, penalties, updates
from npae.data import datasets
from npae.training import optim
from npae.fast.backends import backend, get_backend, set_backend
from npae.validation import InputError
from npae.data.io import ModelFileError
from npae.training.loop import DivergenceError, TrainingInterrupted
from npae.models.files import load
from npae.models.autoencoder import Autoencoder
from npae.models.variants import ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder
from npae.models.pca import PCA, principal_angles, subspace_angles
from npae.models.classifier import Classifier
from npae.models.pretrain import greedy_pretrain, init_autoencoder_from_stack, stack_encoder
from npae.models.vae import VAE, ConditionalVAE
from npae.models.hvae import TwoLayerVAE
from npae.models.semisup import SemiSupervisedVAE
from npae.models.layers import (ELU, Dense, Identity, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh,
                                make_activation)
from npae.models.conv_layers import Conv2D, ConvTranspose2D, Flatten, ImagePlanes, Reshape

# ``import npae.datasets`` and ``from npae.datasets import load_digits`` name the public data module,
# which lives in npae/data/ beside the model-file format.
sys.modules[__name__ + ".datasets"] = datasets

__all__ = [
    "Autoencoder",
    "DenoisingAutoencoder", "SparseAutoencoder", "ContractiveAutoencoder", "PCA", "principal_angles",
    "subspace_angles", "Classifier", "greedy_pretrain", "stack_encoder", "init_autoencoder_from_stack",
    "VAE", "ConditionalVAE", "TwoLayerVAE", "SemiSupervisedVAE",
    "load", "ModelFileError", "DivergenceError", "TrainingInterrupted", "InputError",
    "set_backend", "get_backend", "backend",
    "Dense", "Conv2D", "ConvTranspose2D", "Flatten", "Reshape", "ImagePlanes", "Identity", "ReLU",
    "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "ELU", "Sequential",
    "make_activation",
    "conv", "datasets", "functional", "gradcheck", "latent", "optim", "penalties", "updates",
    "__version__",
]


def __getattr__(name):
    """``npae.plotting`` on first use: matplotlib is imported only when a figure is asked for;
    ``npae.export`` (PyTorch / ONNX export; torch and onnx only when one of its functions runs)."""
    if name == "plotting":
        import importlib
        module = importlib.import_module("npae.app.plotting")
        sys.modules[__name__ + ".plotting"] = module
        return module
    if name == "export":
        import importlib
        return importlib.import_module("npae.export")
    raise AttributeError(f"module 'npae' has no attribute {name!r}")
