"""The deterministic autoencoder of the lectures: x → encoder → z → decoder → x̃.

Deep (``hidden=(64, 32)``) or linear (``hidden=()``, identity code, identity output, MSE), with the
methods of scikit-learn's PCA (``fit_transform``, ``transform``, ``inverse_transform``) so that one
can stand in for the other.
"""
import numpy as np

from . import functional as F
from . import kernels
from .init import make_rng
from .layers import Dense, FlatParams, Sequential, make_activation
from .model import Model, fresh_grads
from .validation import check_array, check_choice, check_dtype, check_scalar, check_sizes

ACTIVATION_NAMES = tuple(F.ACTIVATIONS)
_RELU_LIKE = ("relu", "leaky_relu", "elu")


def build_mlp(sizes, activation, last_activation, *, rng, dtype, prefix, slope=0.01, alpha=1.0,
              init="auto"):
    """Dense layers through ``sizes`` with ``activation`` between them and ``last_activation`` after
    the last (identity layers are left out). ``init="auto"`` picks He for ReLU-like activations
    and Glorot otherwise, per layer, by the activation that follows it."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        act = activation if k < len(sizes) - 2 else last_activation
        layer_init = init if init != "auto" else ("he_uniform" if act in _RELU_LIKE else "glorot_uniform")
        layers.append(Dense(n_in, n_out, init=layer_init, rng=rng, dtype=dtype))
        if act != "identity":
            layers.append(make_activation(act, slope=slope, alpha=alpha))
    return Sequential(layers, prefix=prefix)


class Autoencoder(Model):
    """Deterministic autoencoder.

    Parameters
    ----------
    input_dim : int
    hidden : tuple of int
        Widths of the encoder's hidden layers; the decoder mirrors them. ``()``: no hidden layer.
    latent_dim : int
        Width of the code z.
    activation : str
        Activation of the hidden layers (identity, relu, leaky_relu, sigmoid, tanh, softplus, elu).
    code_activation : str
        Activation of the code layer.
    output : "sigmoid" | "identity"
        Map from the decoder's last affine output (the logits) to the reconstruction.
    loss : "bce" | "mse"
        Reconstruction loss, **summed over features and averaged over the batch**. ``"bce"`` needs
        ``output="sigmoid"`` and data in [0, 1]; it is computed from the logits (stable form).
    dtype : "float64" | "float32"
    seed : int
        Seeds the generator used for the initial weights and the minibatch shuffling.
    slope, alpha : float
        Leak slope of ``leaky_relu`` and α of ``elu``, wherever those activations are used.
    init : "auto" or an initializer name (glorot_uniform, glorot_normal, he_uniform, he_normal).

    Attributes
    ----------
    params : dict
        ``encoder.<k>.W``, ``encoder.<k>.b``, then ``decoder.<k>.W``, ... in forward order; editing an
        array in place changes the model.
    """

    def __init__(self, input_dim, hidden=(64,), latent_dim=2, activation="relu",
                 code_activation="identity", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, slope=0.01, alpha=1.0, init="auto"):
        check_scalar("input_dim", input_dim, low=1, integer=True)
        check_scalar("latent_dim", latent_dim, low=1, integer=True)
        hidden = check_sizes("hidden", hidden)
        check_choice("activation", activation, ACTIVATION_NAMES)
        check_choice("code_activation", code_activation, ACTIVATION_NAMES)
        check_choice("output", output, ("sigmoid", "identity"))
        check_choice("loss", loss, ("bce", "mse"))
        if loss == "bce" and output != "sigmoid":
            raise ValueError("loss='bce' needs output='sigmoid' (cross-entropy compares probabilities); "
                             "use loss='mse' with output='identity'")
        check_scalar("slope", slope, low=0.0)
        check_scalar("alpha", alpha, low=0.0, low_open=True)
        self.dtype = check_dtype(dtype)
        self.config = dict(input_dim=int(input_dim), hidden=list(hidden), latent_dim=int(latent_dim),
                           activation=activation, code_activation=code_activation, output=output,
                           loss=loss, dtype=self.dtype.name, seed=seed, slope=float(slope),
                           alpha=float(alpha), init=init)
        self.input_dim, self.latent_dim, self.hidden = int(input_dim), int(latent_dim), hidden
        self.output, self.loss_name = output, loss
        self.needs_unit_targets = loss == "bce"
        self.rng = make_rng(seed)
        kw = dict(rng=self.rng, dtype=self.dtype, slope=slope, alpha=alpha, init=init)
        self.encoder = build_mlp([self.input_dim, *hidden, self.latent_dim], activation,
                                 code_activation, prefix="encoder.", **kw)
        self.decoder = build_mlp([self.latent_dim, *hidden[::-1], self.input_dim], activation,
                                 "identity", prefix="decoder.", **kw)
        self.flat_params = FlatParams([self.encoder, self.decoder])  # one array each, see FlatParams
        self.params = dict(self.flat_params.params)
        self.last_terms = {}

    # ------------------------------------------------------------------ reconstruction head
    def _recon_loss(self, logits, x):
        """(value, dlogits) of the reconstruction loss; value is a per-example sum, batch mean."""
        if self.loss_name == "bce":
            bce = kernels.bce_with_logits_loss if kernels.ENABLED else F.bce_with_logits_loss
            return bce(logits, x)
        if self.output == "sigmoid":
            pred, cache = F.sigmoid_forward(logits)  # (B, D)
            value, dpred = F.mse_loss(pred, x)
            return value, F.sigmoid_backward(dpred, cache)
        return F.mse_loss(logits, x)

    def _recon_per_example(self, logits, x):
        """Per-example reconstruction loss (sum over features), shape (B,)."""
        if self.loss_name == "bce":
            return F.bce_with_logits_sum(logits, x)
        diff = self._output(logits) - x
        return np.sum(diff * diff, axis=-1)

    def _output(self, logits):
        return F.sigmoid(logits) if self.output == "sigmoid" else logits

    # ------------------------------------------------------------------ training
    def _grads(self):
        return {**self.encoder.grads, **self.decoder.grads}

    def _loss_and_grads(self, x):
        z = self.encoder.forward(x)  # (B, Z)
        logits = self.decoder.forward(z)  # (B, D)
        loss, dlogits = self._recon_loss(logits, x)
        dz = self.decoder.backward(dlogits)  # (B, Z)
        self.encoder.backward(dz, input_grad=False)
        self.last_terms = {"loss": loss}
        return loss, self._grads()

    def loss_and_grads(self, x):
        """Loss and gradients on the batch ``x`` (B, input_dim).

        Returns ``(loss, grads)``: ``loss`` is the mean over the batch of the per-example
        reconstruction loss summed over features; ``grads`` has the keys and shapes of ``params``.
        """
        return fresh_grads(self._loss_and_grads(self._check_X(x, "x")))

    # ------------------------------------------------------------------ using the model
    def encode(self, X):
        """Codes z of shape (N, latent_dim)."""
        return self.encoder.forward(self._check_X(X))

    def decode(self, Z):
        """Reconstructions (probabilities for ``output="sigmoid"``) of the codes ``Z``."""
        Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype)
        return self._output(self.decoder.forward(Z))

    def reconstruct(self, X):
        """decode(encode(X))."""
        return self._output(self.decoder.forward(self.encoder.forward(self._check_X(X))))

    def reconstruction_error(self, X):
        """Per-example reconstruction loss (the training loss before the batch mean), shape (N,)."""
        X = self._check_X(X)
        return self._recon_per_example(self.decoder.forward(self.encoder.forward(X)), X)

    # scikit-learn's PCA names
    def transform(self, X):
        """Same as :meth:`encode` (``sklearn.decomposition.PCA.transform``)."""
        return self.encode(X)

    def inverse_transform(self, Z):
        """Same as :meth:`decode` (``sklearn.decomposition.PCA.inverse_transform``)."""
        return self.decode(Z)

    def fit_transform(self, X, **fit_kwargs):
        """``fit(X, **fit_kwargs)`` then ``transform(X)``."""
        self.fit(X, **fit_kwargs)
        return self.transform(X)

    def __repr__(self):
        c = self.config
        return (f"{type(self).__name__}(input_dim={c['input_dim']}, hidden={tuple(c['hidden'])}, "
                f"latent_dim={c['latent_dim']}, activation={c['activation']!r}, "
                f"code_activation={c['code_activation']!r}, output={c['output']!r}, "
                f"loss={c['loss']!r}, dtype={c['dtype']!r})")
