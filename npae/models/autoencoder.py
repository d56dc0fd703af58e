"""The deterministic autoencoder of the lectures: x → encoder → z → decoder → x̃.

Deep (``hidden=(64, 32)``) or linear (``hidden=()``, identity code, identity output, MSE), with the
methods of scikit-learn's PCA (``fit_transform``, ``transform``, ``inverse_transform``) so that one
can stand in for the other, in a ``Pipeline`` too.
"""
import numpy as np

from npae.constants import BATCH_SIZE, EPOCHS, LR, OPTIMIZER, VERBOSE
from npae.pairs import functional as F
from npae.fast.backends import ops
from npae.init import make_rng
from npae.models.architectures import build_chains
from npae.models.layers import ACTIVATION_NAMES, DenseAct, FlatParams, build_mlp  # noqa: F401 (re-exported)
from npae.models.model import Model, fresh_grads
from npae.models.sklearn_protocol import shared_docs
from npae.pairs.penalties import NOISES, contractive_penalty_deep_forward, corrupt
from npae.validation import InputError, check_array, check_choice, check_dtype, check_scalar, check_sizes

#: Rows of one chunk of :meth:`Autoencoder.jacobian_frobenius` are chosen so that its largest
#: per-example array, (rows, widest layer, code width), holds at most this many numbers (16 MB in
#: float64): MNIST's 10,000 held-out images with a 784-128-32 encoder go through in chunks of 256.
JACOBIAN_CHUNK_NUMBERS = 2 ** 21


@shared_docs
class Autoencoder(Model):
    """Deterministic autoencoder.

    Parameters
    ----------
    input_dim : int or None
        Number of input features; None: learned from the data at ``fit`` (``n_features_in_``).
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
        ``output="sigmoid"`` and training data in [0, 1]; it is computed from the logits (stable
        form).
    .. shared:: dtype; seed; slope, alpha
    init : "auto" or an initializer name (glorot_uniform, glorot_normal, he_uniform, he_normal).
    arch : "mlp" | "conv"
        ``"mlp"``: dense layers of widths ``hidden``. ``"conv"``: for images, strided 3x3
        convolutions (32, 64 channels) before ``hidden`` in the encoder and transposed
        convolutions after it in the decoder (see :mod:`npae.models.architectures`, docs/conv.md).
    encoder_layers, decoder_layers : list or None
        A stack of your own for that side, in the JSON-able spec language of
        :mod:`npae.models.architectures`, e.g. ``[["conv2d", {"out": 32, "kernel": 3, "stride": 2,
        "padding": 1}], ["relu"], ["flatten"]]``; the model adds the code layer (and the output
        layer). Replaces ``arch`` and ``hidden`` on that side.
    image_shape : None, (H, W) or (C, H, W)
        Shape of the images, for convolutions; None: square one-channel images (784 -> 28x28).
    .. shared:: random_state; warm_start; training

    Attributes
    ----------
    params : dict
        ``encoder.<k>.W``, ``encoder.<k>.b``, then ``decoder.<k>.W``, ... in forward order; editing an
        array in place changes the model.
    n_features_in_ : int
    history_ : dict of per-epoch lists, after ``fit``.
    """

    def __init__(self, input_dim=None, hidden=(64,), latent_dim=2, activation="relu",
                 code_activation="identity", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, slope=0.01, alpha=1.0, init="auto", random_state=None, warm_start=False,
                 arch="mlp", encoder_layers=None, decoder_layers=None, image_shape=None,

                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self.arch, self.encoder_layers, self.decoder_layers = arch, encoder_layers, decoder_layers
        self.image_shape = image_shape
        self.input_dim, self.hidden, self.latent_dim = input_dim, hidden, latent_dim
        self.activation, self.code_activation, self.output, self.loss = (activation, code_activation,
                                                                         output, loss)
        self.dtype, self.seed, self.slope, self.alpha, self.init = dtype, seed, slope, alpha, init
        self.random_state, self.warm_start = random_state, warm_start
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.verbose, self.callbacks = verbose, callbacks

    # ------------------------------------------------------------------ building
    def _check_params(self):
        """Check the hyperparameters shared by the family; returns the hidden widths."""
        hidden = check_sizes("hidden", self.hidden)
        check_scalar("latent_dim", self.latent_dim, low=1, integer=True)
        check_choice("activation", self.activation, ACTIVATION_NAMES)
        check_choice("code_activation", self.code_activation, ACTIVATION_NAMES)
        check_choice("output", self.output, ("sigmoid", "identity"))
        check_choice("loss", self.loss, ("bce", "mse"))
        if self.loss == "bce" and self.output != "sigmoid":
            raise InputError("loss='bce' needs output='sigmoid' (cross-entropy compares probabilities); "
                             "use loss='mse' with output='identity'")
        check_scalar("slope", self.slope, low=0.0)
        check_scalar("alpha", self.alpha, low=0.0, low_open=True)
        check_dtype(self.dtype)
        return hidden

    def _build(self, n_features):
        hidden = self._check_params()
        self.needs_unit_targets = self.loss == "bce"
        self.rng = make_rng(self._seed(), self._seed_name())
        kw = dict(rng=self.rng, dtype=check_dtype(self.dtype), slope=self.slope, alpha=self.alpha,
                  init=self.init)
        self.encoder, self.decoder = build_chains(
            self.arch, n_features, self.latent_dim, self.latent_dim, hidden=hidden,
            activation=self.activation, code_activation=self.code_activation,
            image_shape=self.image_shape, encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers, **kw)
        self.flat_params = FlatParams([self.encoder, self.decoder])  # one array each, see FlatParams
        self.params = dict(self.flat_params.params)

    # ------------------------------------------------------------------ reconstruction head
    def _recon_loss(self, logits, x):
        """(value, dlogits) of the reconstruction loss; value is a per-example sum, batch mean."""
        if self.loss == "bce":
            return ops.bce_with_logits_loss(logits, x)
        if self.output == "sigmoid":
            pred, cache = F.sigmoid_forward(logits)  # (B, D)
            value, dpred = F.mse_loss(pred, x)
            return value, F.sigmoid_backward(dpred, cache)
        return F.mse_loss(logits, x)

    def _recon_per_example(self, logits, x):
        """Per-example reconstruction loss (sum over features), shape (B,)."""
        if self.loss == "bce":
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

    def _loss_terms(self, x, *, rng):
        """Forward only: ``{"loss"}``, the batch mean of the per-example reconstruction loss."""
        logits = self.decoder.apply(self.encoder.apply(x))  # (B, D)
        return {"loss": float(np.mean(self._recon_per_example(logits, x)))}

    def loss_and_grads(self, x):
        """Loss and gradients on the batch ``x`` (B, n_features).

        Returns ``(loss, grads)``: ``loss`` is the mean over the batch of the per-example
        reconstruction loss summed over features; ``grads`` has the keys and shapes of ``params``.
        """
        return fresh_grads(self._loss_and_grads(self._check_X(x, "x")))

    # ------------------------------------------------------------------ using the model
    def encode(self, X):
        """Codes z of shape (N, latent_dim); any finite X (no [0, 1] check: nothing is reconstructed)."""
        return self.encoder.apply(self._check_X(X, targets=False))

    def decode(self, Z):
        """Reconstructions (probabilities for ``output="sigmoid"``) of the codes ``Z``."""
        self._require_built()
        Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype,
                        owner=f"{type(self).__name__}.decode")
        return self._output(self.decoder.apply(Z))

    def reconstruct(self, X):
        """decode(encode(X))."""
        return self._output(self.decoder.apply(self.encoder.apply(self._check_X(X, targets=False))))

    def reconstruction_error(self, X):
        """Per-example reconstruction loss (the training loss before the batch mean), shape (N,)."""
        X = self._check_X(X)
        return self._recon_per_example(self.decoder.apply(self.encoder.apply(X)), X)

    # ------------------------------------------------------------------ the lessons' measures
    def _encoder_affine_layers(self):
        """``(Ws, bs, activations)`` of the encoder, one entry per Dense layer, bottom first, for
        the Jacobian pairs of :mod:`npae.pairs.penalties`; an encoder made of anything else (a
        convolution) is refused."""
        Ws, bs, activations = [], [], []
        for step in self.encoder.steps:
            if not isinstance(step, DenseAct):
                raise InputError(f"the encoder's Jacobian is implemented for encoders made of dense "
                                 f"layers and activations; this {type(self).__name__}'s encoder has "
                                 f"{step!r}")
            Ws.append(step.dense.params["W"])
            bs.append(step.dense.params["b"])
            activations.append(step.act_name)
        return Ws, bs, activations

    def jacobian_frobenius(self, X):
        """Per-example squared Frobenius norm of the encoder's Jacobian, ``||∂z/∂x (x_i)||²_F``,
        shape (N,): exact, forward only, for any depth and any of the seven activations.

        Computed from the encoder's current weights by
        :func:`npae.pairs.penalties.contractive_penalty_deep_forward` (with λ = 1), which accumulates
        ``J_i = W_1 D_1 ⋯ W_L D_L`` from the code side [CONTRACTIVE-9 .. CONTRACTIVE-11]; no (D, Z)
        Jacobian is formed. Rows go through in chunks (``JACOBIAN_CHUNK_NUMBERS``) so memory stays
        bounded on MNIST. The mean of the result is what a ``ContractiveAutoencoder`` penalizes,
        divided by its weight; for a plain autoencoder it is the same measure, for comparison. No
        gradient buffer, cache or random stream is touched.

        X : (N, n_features) array, any finite values (nothing is reconstructed).

        Derivation: docs/derivations/contractive.md#contractive-9
        """
        X = self._check_X(X, targets=False)
        Ws, bs, activations = self._encoder_affine_layers()
        widest, code = max(W.shape[1] for W in Ws), Ws[-1].shape[1]
        rows = max(1, JACOBIAN_CHUNK_NUMBERS // (widest * code))
        out = np.empty(X.shape[0], dtype=X.dtype)  # (N,)
        for start in range(0, X.shape[0], rows):
            _, cache = contractive_penalty_deep_forward(X[start:start + rows], Ws, bs, activations, 1.0,
                                                        slope=self.slope, alpha=self.alpha)
            P1, R = cache[4][0], cache[6]  # (B, n_1, Z): P_1 and G P_1, so ||J_i||²_F = <P_1i, G P_1i>
            out[start:start + rows] = np.sum(P1 * R, axis=(1, 2))
        return out

    def _training_corruption(self):
        """``(noise, noise_level)`` the model is trained with; None: it reads clean inputs."""
        return None

    def denoising_error(self, X, seed=None, *, noise=None, noise_level=None):
        """The denoising lesson's measure, forward only: the reconstruction loss of the **clean**
        ``X`` from a corrupted copy of it, beside the loss from ``X`` itself.

        The corruption is the model's training corruption (a ``DenoisingAutoencoder``) unless
        ``noise`` / ``noise_level`` are given; a plain autoencoder needs both, so that it can be
        measured under the corruption a denoising one was trained with. The noise comes from the
        evaluation stream (``evaluation_rng(seed)``: two models given the same ``seed`` see the
        same corrupted inputs), never from the training generator.

        Returns a dict: ``error_from_corrupted_input`` and ``error_from_clean_input`` (batch means of
        the per-example loss, nats per example for ``loss="bce"``, squared error for ``"mse"``),
        ``noise``, ``noise_level``.
        """
        X = self._check_X(X)
        trained = self._training_corruption()
        if noise is None and trained is not None:
            noise = trained[0]
        if noise_level is None and trained is not None:
            noise_level = trained[1]
        if noise is None or noise_level is None:
            raise InputError(f"this {type(self).__name__} is not trained on corrupted inputs: give "
                             f"noise= ({', '.join(map(repr, NOISES))}) and noise_level=")
        noisy = corrupt(X, noise, noise_level, self.evaluation_rng(seed))  # (N, D)
        from_noisy = self._recon_per_example(self.decoder.apply(self.encoder.apply(noisy)), X)  # (N,)
        from_clean = self._recon_per_example(self.decoder.apply(self.encoder.apply(X)), X)  # (N,)
        return {"error_from_corrupted_input": float(np.mean(from_noisy)),
                "error_from_clean_input": float(np.mean(from_clean)),
                "noise": noise, "noise_level": noise_level}

    # scikit-learn's names
    def transform(self, X):
        """Same as :meth:`encode` (``sklearn.decomposition.PCA.transform``)."""
        return self.encode(X)

    def inverse_transform(self, Z):
        """Same as :meth:`decode` (``sklearn.decomposition.PCA.inverse_transform``)."""
        return self.decode(Z)

    def fit_transform(self, X, y=None, **fit_kwargs):
        """``fit(X, y, **fit_kwargs)`` then ``transform(X)``."""
        return self.fit(X, y, **fit_kwargs).transform(X)
