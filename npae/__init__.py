"""npae: autoencoders and variational autoencoders in NumPy, every backward pass derived by hand.

Reading surface: :mod:`npae.functional` (pure forward/backward pairs). Using surface: the classes
re-exported here. Derivations: ``docs/derivations/``.
"""
__version__ = "0.1.0"

from . import datasets, functional, gradcheck, optim
from .autoencoder import Autoencoder
from .variants import ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder
from .pca import PCA, principal_angles, subspace_angles
from .classifier import Classifier
from .pretrain import greedy_pretrain, init_autoencoder_from_stack, stack_encoder
from . import latent
from .vae import VAE, ConditionalVAE
from .io import ModelFileError, load
from .training import DivergenceError, TrainingInterrupted
from .layers import (ELU, Dense, Identity, LeakyReLU, ReLU, Sequential, Sigmoid, Softplus, Tanh,
                     make_activation)

__all__ = [
    "Autoencoder",
    "DenoisingAutoencoder", "SparseAutoencoder", "ContractiveAutoencoder", "PCA", "principal_angles",
    "subspace_angles", "Classifier", "greedy_pretrain", "stack_encoder", "init_autoencoder_from_stack",
    "VAE", "ConditionalVAE", "latent",
    "load", "ModelFileError", "DivergenceError", "TrainingInterrupted",
    "Dense", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "ELU", "Sequential",
    "make_activation",
    "datasets", "functional", "gradcheck", "optim",
    "__version__",
]
