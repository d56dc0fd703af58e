"""The regularized autoencoders of the lectures: denoising, sparse (L1 or KL-ρ) and contractive.

Each is an :class:`npae.Autoencoder` whose step adds one thing: a corrupted encoder input, or a
penalty on the code. Every loss is **the mean over the batch of the per-example reconstruction sum,
plus the weighted penalty**; each class says how its penalty is scaled. After every step
``last_terms = {"loss", "recon", "penalty"}`` (``loss = recon + penalty``).

The penalties and corruptions are the pure functions of :mod:`npae.penalties`.
"""
from .autoencoder import ACTIVATION_NAMES, Autoencoder
from .model import fresh_grads
from .penalties import (CONTRACTIVE_ACTIVATIONS, NOISES, contractive_penalty_backward,
                        contractive_penalty_forward, corrupt, kl_sparsity_backward,
                        kl_sparsity_forward, l1_penalty_backward, l1_penalty_forward)
from .validation import check_array, check_choice, check_scalar, check_sizes


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

    def __init__(self, input_dim, hidden=(64,), latent_dim=2, activation="relu",
                 code_activation="identity", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, noise="gaussian", noise_level=0.3, slope=0.01, alpha=1.0, init="auto"):
        check_choice("noise", noise, tuple(NOISES))
        if noise == "gaussian":
            check_scalar("noise_level", noise_level, low=0.0)
        else:
            check_scalar("noise_level", noise_level, low=0.0, high=1.0)
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init)
        self.noise, self.noise_level = noise, float(noise_level)
        self.config.update(noise=noise, noise_level=float(noise_level))

    def corrupt(self, X):
        """A corrupted copy of ``X``, drawn from ``self.rng``."""
        return corrupt(self._check_X(X), self.noise, self.noise_level, self.rng)

    def _loss_and_grads(self, x, x_noisy=None):
        if x_noisy is None:
            x_noisy = corrupt(x, self.noise, self.noise_level, self.rng)  # (B, D)
        z = self.encoder.forward(x_noisy)  # (B, Z) the code of the corrupted input
        logits = self.decoder.forward(z)  # (B, D)
        recon, dlogits = self._recon_loss(logits, x)  # [DENOISE-4] target: the clean x
        dz = self.decoder.backward(dlogits)  # (B, Z)
        self.encoder.backward(dz)
        self.last_terms = {"loss": recon, "recon": recon, "penalty": 0.0}
        return recon, self._grads()

    def loss_and_grads(self, x, x_noisy=None):
        """Loss and gradients on the clean batch ``x`` (B, input_dim) and its corruption ``x_noisy``.

        ``x_noisy`` (same shape, any finite values) makes the call deterministic (gradient checks);
        ``None`` draws it from ``self.rng``. Returns ``(loss, grads)``: the mean over the batch of the
        per-example reconstruction sum of the clean ``x`` from ``x_noisy``.
        """
        x = self._check_X(x, "x")
        if x_noisy is not None:
            x_noisy = check_array(x_noisy, "x_noisy", n_features=self.input_dim, dtype=self.dtype)
            if x_noisy.shape != x.shape:
                raise ValueError(f"x_noisy has shape {x_noisy.shape}; expected the shape of x, {x.shape}")
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

    def __init__(self, input_dim, hidden=(64,), latent_dim=2, activation="relu",
                 code_activation="sigmoid", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, penalty="l1", sparsity_weight=1e-3, rho=0.05, slope=0.01, alpha=1.0, init="auto"):
        check_choice("penalty", penalty, ("l1", "kl"))
        check_scalar("sparsity_weight", sparsity_weight, low=0.0)
        check_scalar("rho", rho, low=0.0, high=1.0, low_open=True, high_open=True)
        if penalty == "kl" and code_activation != "sigmoid":
            raise ValueError(f"penalty='kl' needs code activations in (0, 1), i.e. "
                             f"code_activation='sigmoid'; got code_activation={code_activation!r} "
                             f"(use penalty='l1' for other activations)")
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init)
        self.penalty, self.sparsity_weight, self.rho = penalty, float(sparsity_weight), float(rho)
        self.config.update(penalty=penalty, sparsity_weight=float(sparsity_weight), rho=float(rho))

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
        self.encoder.backward(dz)
        loss = recon + penalty  # [SPARSE-7]
        self.last_terms = {"loss": loss, "recon": recon, "penalty": penalty}
        return loss, self._grads()


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

    def __init__(self, input_dim, hidden=(), latent_dim=2, activation="relu",
                 code_activation="sigmoid", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, contractive_weight=1e-2, slope=0.01, alpha=1.0, init="auto"):
        check_scalar("contractive_weight", contractive_weight, low=0.0)
        if check_sizes("hidden", hidden):
            raise ValueError(f"ContractiveAutoencoder implements the closed-form Jacobian penalty of a "
                             f"one-layer encoder only: it needs hidden=(), got hidden={hidden!r}")
        check_choice("code_activation", code_activation, ACTIVATION_NAMES)
        if code_activation not in CONTRACTIVE_ACTIVATIONS:
            raise ValueError(f"the contractive penalty is implemented for code_activation in "
                             f"{', '.join(map(repr, CONTRACTIVE_ACTIVATIONS))}; got {code_activation!r}")
        super().__init__(input_dim, (), latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init)
        self.contractive_weight = float(contractive_weight)
        self.config.update(contractive_weight=float(contractive_weight))

    def _loss_and_grads(self, x):
        dense = self.encoder.dense_layers[0]
        z = self.encoder.forward(x)  # (B, Z)
        logits = self.decoder.forward(z)  # (B, D)
        recon, dlogits = self._recon_loss(logits, x)
        dz = self.decoder.backward(dlogits)  # (B, Z)
        self.encoder.backward(dz)
        penalty, cache = contractive_penalty_forward(x, dense.params["W"], dense.params["b"],
                                                     self.config["code_activation"],
                                                     self.contractive_weight)
        _, dW_penalty, db_penalty = contractive_penalty_backward(1.0, cache)
        grads = self._grads()
        grads["encoder.0.W"] = grads["encoder.0.W"] + dW_penalty  # (D, Z) [CONTRACTIVE-7]
        grads["encoder.0.b"] = grads["encoder.0.b"] + db_penalty  # (Z,) [CONTRACTIVE-7]
        loss = recon + penalty  # [CONTRACTIVE-7]
        self.last_terms = {"loss": loss, "recon": recon, "penalty": penalty}
        return loss, grads
