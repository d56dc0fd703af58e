"""npae: autoencoders and variational autoencoders in NumPy, every backward pass derived by hand.

Reading surface: :mod:`npae.functional` (pure forward/backward pairs). Using surface: the classes
re-exported here. Derivations: ``docs/derivations/``.
"""
__version__ = "0.1.0"

from . import datasets, functional, gradcheck, optim
from .autoencoder import Autoencoder
from . import latent
from .vae import VAE, ConditionalVAE
from .io import ModelFileError, load
from .training import DivergenceError, TrainingInterrupted
from .layers import (ELU, Dense, Identity, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh,
                     make_activation)

__all__ = [
    "Autoencoder",
    "VAE", "ConditionalVAE", "latent",
    "load", "ModelFileError", "DivergenceError", "TrainingInterrupted",
    "Dense", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "ELU", "Sequential",
    "make_activation",
    "datasets", "functional", "gradcheck", "optim",
    "__version__",
]
