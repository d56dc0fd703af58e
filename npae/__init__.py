"""npae: autoencoders and variational autoencoders in NumPy, every backward pass derived by hand.

Reading surface: :mod:`npae.functional`, :mod:`npae.latent`, :mod:`npae.penalties` and
:mod:`npae.updates` (pure forward/backward pairs and update rules). Using surface: the classes
re-exported here. The backend (:func:`set_backend`, ``NPAE_BACKEND``) picks which implementation
of the fused units runs: ``reference`` (those pairs) or ``fused`` (numba). Derivations:
``docs/derivations/``; the map of modules: ``docs/architecture.md``.
"""
from .version import __version__

from . import conv, datasets, functional, gradcheck, latent, optim, penalties, updates
from .backends import backend, get_backend, set_backend
from .validation import InputError
from .io import ModelFileError
from .training import DivergenceError, TrainingInterrupted
from .model import load
from .autoencoder import Autoencoder
from .variants import ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder
from .pca import PCA, principal_angles, subspace_angles
from .classifier import Classifier
from .pretrain import greedy_pretrain, init_autoencoder_from_stack, stack_encoder
from .vae import VAE, ConditionalVAE
from .hvae import TwoLayerVAE
from .semisup import SemiSupervisedVAE
from .layers import (ELU, Conv2D, ConvTranspose2D, Dense, Flatten, Identity, ImagePlanes, LeakyReLU,
                     ReLU, Reshape, Sequential, Sigmoid, Softplus, Tanh, make_activation)

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
    """``npae.plotting`` on first use: matplotlib is imported only when a figure is asked for."""
    if name == "plotting":
        import importlib
        return importlib.import_module(".plotting", __name__)
    raise AttributeError(f"module 'npae' has no attribute {name!r}")
