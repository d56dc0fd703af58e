"""The regularized autoencoders of the lectures: denoising, sparse (L1 or KL-ρ) and contractive.

Each is an :class:`npae.Autoencoder` whose step adds one thing: a corrupted encoder input, or a
penalty on the code. Every loss is **the mean over the batch of the per-example reconstruction sum,
plus the weighted penalty**; each class says how its penalty is scaled. After every step
``last_terms = {"loss", "recon", "penalty"}`` (``loss = recon + penalty``).

The penalties and corruptions are the pure functions of :mod:`npae.penalties`.
"""
import numpy as np

from .autoencoder import Autoencoder
from .model import fresh_grads
from .penalties import (CONTRACTIVE_ACTIVATIONS, NOISES, contractive_penalty_backward,
                        contractive_penalty_forward, corrupt, kl_sparsity_backward,
                        kl_sparsity_forward, l1_penalty_backward, l1_penalty_forward)
from .validation import InputError, check_array, check_choice, check_scalar


class DenoisingAutoencoder(Autoencoder):
    """Autoencoder that encodes a corrupted input x̃ and reconstructs the clean x [DENOISE-4].

    ``loss = (1/B) Σ_i recon(decoder(encoder(x̃_i)), x_i)`` (per-example sum over features, batch
    mean); there is no penalty term (``last_terms["penalty"]`` is 0.0). Corruption (see
    :mod:`npae.penalties`):

    * ``"gaussian"``: ``x̃ = x + σ ε`` with σ = ``noise_level`` >= 0;
    * ``"masking"``: each entry zeroed with probability ``noise_level`` in [0, 1];
    * ``"salt_pepper"``: each entry set to 0 or 1 with probability ``noise_level`` in [0, 1].

    Parameters are those of :class:`npae.Autoencoder` plus ``noise`` and ``noise_level``
    (keyword-only). ``loss_and_grads(x, x_noisy)`` takes the corruption explicitly (deterministic);
    without it, and during ``fit``, x̃ is drawn from the model's seeded generator ``self.rng``.

    Derivation: docs/derivations/denoise.md#denoise-4
    """

    stochastic_inputs = ("x_noisy",)

    def __init__(self, input_dim=None, hidden=(64,), latent_dim=2, activation="relu",
                 code_activation="identity", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, noise="gaussian", noise_level=0.3, slope=0.01, alpha=1.0, init="auto",
                 random_state=None, warm_start=False, arch="mlp", encoder_layers=None,
                 decoder_layers=None, image_shape=None):
        self.noise, self.noise_level = noise, noise_level
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init, random_state=random_state,
                         warm_start=warm_start, arch=arch, encoder_layers=encoder_layers,
                         decoder_layers=decoder_layers, image_shape=image_shape)

    def _check_params(self):
        check_choice("noise", self.noise, tuple(NOISES))
        if self.noise == "gaussian":
            check_scalar("noise_level", self.noise_level, low=0.0)
        else:
            check_scalar("noise_level", self.noise_level, low=0.0, high=1.0)
        return super()._check_params()

    def corrupt(self, X, seed=None):
        """A corrupted copy of ``X`` (the training corruption), drawn from the evaluation stream (or
        ``seed``); training draws its own from ``self.rng``."""
        return corrupt(self._check_X(X), self.noise, self.noise_level, self._eval_rng(seed))

    def _loss_and_grads(self, x, x_noisy=None):
        if x_noisy is None:
            x_noisy = corrupt(x, self.noise, self.noise_level, self.rng)  # (B, D)
        z = self.encoder.forward(x_noisy)  # (B, Z) the code of the corrupted input
        logits = self.decoder.forward(z)  # (B, D)
        recon, dlogits = self._recon_loss(logits, x)  # [DENOISE-4] target: the clean x
        dz = self.decoder.backward(dlogits)  # (B, Z)
        self.encoder.backward(dz, input_grad=False)
        self.last_terms = {"loss": recon, "recon": recon, "penalty": 0.0}
        return recon, self._grads()

    def _loss_terms(self, x, *, rng):
        """Forward only: the denoising loss of the clean ``x`` from a corruption drawn from ``rng``."""
        x_noisy = corrupt(x, self.noise, self.noise_level, rng)  # (B, D)
        logits = self.decoder.apply(self.encoder.apply(x_noisy))  # (B, D)
        recon = float(np.mean(self._recon_per_example(logits, x)))  # against the clean x
        return {"loss": recon, "recon": recon, "penalty": 0.0}

    def loss_and_grads(self, x, x_noisy=None):
        """Loss and gradients on the clean batch ``x`` (B, input_dim) and its corruption ``x_noisy``.

        ``x_noisy`` (same shape, any finite values) makes the call deterministic (gradient checks);
        ``None`` draws it from ``self.rng``. Returns ``(loss, grads)``: the mean over the batch of the
        per-example reconstruction sum of the clean ``x`` from ``x_noisy``.
        """
        x = self._check_X(x, "x")
        if x_noisy is not None:
            x_noisy = check_array(x_noisy, "x_noisy", n_features=self.n_features_in_, dtype=self.dtype)
            if x_noisy.shape != x.shape:
                raise InputError(f"x_noisy has shape {x_noisy.shape}; expected the shape of x, {x.shape}")
        return fresh_grads(self._loss_and_grads(x, x_noisy))


class SparseAutoencoder(Autoencoder):
    """Autoencoder with a sparsity penalty on the code z (the output of ``code_activation``).

    * ``penalty="l1"``: ``penalty = λ · (1/B) Σ_i ||z_i||_1`` (per-example sum, batch mean) [SPARSE-1].
    * ``penalty="kl"``: ``penalty = λ · Σ_j KL(ρ || ρ̂_j)`` with ρ̂_j the batch mean of z_·j,
      charged **once per batch** (not per example) [SPARSE-3, SPARSE-4]. Needs
      ``code_activation="sigmoid"`` (ρ̂ must lie in (0, 1)).

    ``loss = (1/B) Σ_i recon_i + penalty`` with λ = ``sparsity_weight`` >= 0 and ρ = ``rho`` in (0, 1).
    The code's default activation here is ``"sigmoid"``. Other parameters: as :class:`npae.Autoencoder`.

    Derivation: docs/derivations/sparse.md#sparse-7
    """

    def __init__(self, input_dim=None, hidden=(64,), latent_dim=2, activation="relu",
                 code_activation="sigmoid", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, penalty="l1", sparsity_weight=1e-3, rho=0.05, slope=0.01, alpha=1.0, init="auto",
                 random_state=None, warm_start=False, arch="mlp", encoder_layers=None,
                 decoder_layers=None, image_shape=None):
        self.penalty, self.sparsity_weight, self.rho = penalty, sparsity_weight, rho
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init, random_state=random_state,
                         warm_start=warm_start, arch=arch, encoder_layers=encoder_layers,
                         decoder_layers=decoder_layers, image_shape=image_shape)

    def _check_params(self):
        check_choice("penalty", self.penalty, ("l1", "kl"))
        check_scalar("sparsity_weight", self.sparsity_weight, low=0.0)
        check_scalar("rho", self.rho, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.penalty == "kl" and self.code_activation != "sigmoid":
            raise InputError(f"penalty='kl' needs code activations in (0, 1), i.e. "
                             f"code_activation='sigmoid'; got code_activation={self.code_activation!r} "
                             f"(use penalty='l1' for other activations)")
        return super()._check_params()

    def _penalty(self, z):
        """(value, dz) of the sparsity penalty on the codes ``z``."""
        if self.penalty == "l1":
            value, cache = l1_penalty_forward(z, self.sparsity_weight)
            return value, l1_penalty_backward(1.0, cache)
        value, cache = kl_sparsity_forward(z, self.rho, self.sparsity_weight)
        return value, kl_sparsity_backward(1.0, cache)

    def _loss_and_grads(self, x):
        z = self.encoder.forward(x)  # (B, Z)
        logits = self.decoder.forward(z)  # (B, D)
        recon, dlogits = self._recon_loss(logits, x)
        penalty, dz_penalty = self._penalty(z)  # dz_penalty: (B, Z)
        dz_recon = self.decoder.backward(dlogits)  # (B, Z)
        dz = dz_recon + dz_penalty  # (B, Z) [SPARSE-7] z feeds the decoder and the penalty
        self.encoder.backward(dz, input_grad=False)
        loss = recon + penalty  # [SPARSE-7]
        self.last_terms = {"loss": loss, "recon": recon, "penalty": penalty}
        return loss, self._grads()

    def _loss_terms(self, x, *, rng):
        """Forward only: reconstruction, penalty and their sum on the batch."""
        z = self.encoder.apply(x)  # (B, Z)
        recon = float(np.mean(self._recon_per_example(self.decoder.apply(z), x)))
        penalty = self._penalty(z)[0]
        return {"loss": recon + penalty, "recon": recon, "penalty": penalty}


class ContractiveAutoencoder(Autoencoder):
    """Autoencoder with the contractive penalty on the encoder's Jacobian [CONTRACTIVE-7].

    ``penalty = λ · (1/B) Σ_i ||∂z_i/∂x_i||²_F`` (per-example sum, batch mean), λ =
    ``contractive_weight`` >= 0, and ``loss = (1/B) Σ_i recon_i + penalty``.

    Only the closed form of a **one-layer encoder** is implemented: ``hidden=()`` and
    ``code_activation`` in sigmoid, tanh, relu, softplus (default sigmoid); then
    ``||J_i||²_F = Σ_j f'(a_ij)² ||W_{:,j}||²``. Any other configuration is refused at construction
    (ValueError); nothing is approximated. The decoder is one affine layer.

    Derivation: docs/derivations/contractive.md#contractive-7
    """

    def __init__(self, input_dim=None, hidden=(), latent_dim=2, activation="relu",
                 code_activation="sigmoid", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, contractive_weight=1e-2, slope=0.01, alpha=1.0, init="auto", random_state=None,
                 warm_start=False):
        self.contractive_weight = contractive_weight
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init, random_state=random_state,
                         warm_start=warm_start)

    def _check_params(self):
        check_scalar("contractive_weight", self.contractive_weight, low=0.0)
        hidden = super()._check_params()
        if hidden:
            raise InputError(f"ContractiveAutoencoder implements the closed-form Jacobian penalty of a "
                             f"one-layer encoder only: it needs hidden=(), got hidden={self.hidden!r}")
        if self.code_activation not in CONTRACTIVE_ACTIVATIONS:
            raise InputError(f"the contractive penalty is implemented for code_activation in "
                             f"{', '.join(map(repr, CONTRACTIVE_ACTIVATIONS))}; got "
                             f"{self.code_activation!r}")
        return hidden

    def _penalty_forward(self, x):
        dense = self.encoder.dense_layers[0]
        return contractive_penalty_forward(x, dense.params["W"], dense.params["b"],
                                           self.code_activation, self.contractive_weight)

    def _loss_and_grads(self, x):
        z = self.encoder.forward(x)  # (B, Z)
        logits = self.decoder.forward(z)  # (B, D)
        recon, dlogits = self._recon_loss(logits, x)
        dz = self.decoder.backward(dlogits)  # (B, Z)
        self.encoder.backward(dz, input_grad=False)
        penalty, cache = self._penalty_forward(x)
        _, dW_penalty, db_penalty = contractive_penalty_backward(1.0, cache)
        grads = self._grads()
        grads["encoder.0.W"] += dW_penalty  # (D, Z) [CONTRACTIVE-7] W feeds the code and the penalty
        grads["encoder.0.b"] += db_penalty  # (Z,) [CONTRACTIVE-7]
        loss = recon + penalty  # [CONTRACTIVE-7]
        self.last_terms = {"loss": loss, "recon": recon, "penalty": penalty}
        return loss, grads

    def _loss_terms(self, x, *, rng):
        """Forward only: reconstruction, penalty and their sum on the batch."""
        recon = float(np.mean(self._recon_per_example(self.decoder.apply(self.encoder.apply(x)), x)))
        penalty = self._penalty_forward(x)[0]
        return {"loss": recon + penalty, "recon": recon, "penalty": penalty}
