"""The regularized autoencoders of the lectures: denoising, sparse (L1 or KL-ρ) and contractive.

Each is an :class:`npae.Autoencoder` whose step adds one thing: a corrupted encoder input, or a
penalty on the code. Every loss is **the mean over the batch of the per-example reconstruction sum,
plus the weighted penalty**; each class says how its penalty is scaled. After every step
``last_terms = {"loss", "recon", "penalty"}`` (``loss = recon + penalty``).

The penalties and corruptions are the pure functions of :mod:`npae.pairs.penalties`.

The defaults of each class are the settings measured to show its lesson on the bundled digits
(docs/autoencoders.md has the numbers): a 32-unit code everywhere; the KL sparsity penalty with
ρ = 0.05 and λ = 3; Gaussian corruption σ = 0.3; a contractive weight of 0.1.
"""
import numpy as np

from npae.constants import BATCH_SIZE, EPOCHS, LR, OPTIMIZER, VERBOSE
from npae.models.autoencoder import Autoencoder
from npae.models.model import fresh_grads
from npae.pairs.penalties import (CONTRACTIVE_ACTIVATIONS, DEEP_CONTRACTIVE_ACTIVATIONS, NOISES,
                                  contractive_penalty_backward, contractive_penalty_deep_backward,
                                  contractive_penalty_deep_forward, contractive_penalty_forward, corrupt,
                                  kl_sparsity_backward, kl_sparsity_forward, l1_penalty_backward,
                                  l1_penalty_forward)
from npae.validation import InputError, check_array, check_choice, check_scalar

#: The sparsity weight λ a ``SparseAutoencoder`` uses when given ``sparsity_weight=None``, per
#: penalty, measured on the digits (docs/autoencoders.md): with ``"kl"`` (ρ = 0.05, 32 sigmoid code
#: units, hidden (64,)) every unit's mean activation ends within a factor 1.5 of ρ; with ``"l1"``
#: the mean |z| falls threefold for +1.5% reconstruction. The two are on different scales: the KL is
#: charged once per batch, the L1 norm per example.
SPARSITY_WEIGHTS = {"kl": 3.0, "l1": 0.1}

#: A unit's mean activation counts as on target when it lies within this factor of ρ.
RHO_FACTOR = 1.5
#: Activations below this magnitude count as near zero in :func:`sparsity_measures`.
NEAR_ZERO = 0.05


def sparsity_measures(H, threshold=NEAR_ZERO, rho=None):
    """The sparse-code lesson's measures of codes ``H`` (N, Z) (of any autoencoder, so that a plain
    one can be compared): a dict of

    * ``mean_activation_per_unit`` (Z,) and ``mean_activation`` (all of H);
    * ``near_zero_fraction``: the share of activations with ``|h| < threshold``;
      ``exact_zero_fraction``: the share equal to 0 (ReLU codes);
    * ``silent_units``: how many units stay below ``threshold`` on every example;
    * with a target ``rho``: ``units_near_rho``, the share of units whose mean lies within a factor
      ``RHO_FACTOR`` (1.5) of ρ, and ``mean_to_rho``, the (min, max) of the units' means over ρ.
    """
    H = np.asarray(H)
    check_scalar("threshold", threshold, low=0.0, low_open=True)
    small = np.abs(H) < threshold  # (N, Z)
    means = H.mean(axis=0)  # (Z,)
    out = {"mean_activation_per_unit": means, "mean_activation": float(H.mean()),
           "threshold": float(threshold), "near_zero_fraction": float(np.mean(small)),
           "exact_zero_fraction": float(np.mean(H == 0)),
           "silent_units": int(np.sum(np.all(small, axis=0))), "rho": rho}
    if rho is not None:
        near = (means >= rho / RHO_FACTOR) & (means <= rho * RHO_FACTOR)
        out["units_near_rho"] = float(np.mean(near))
        out["mean_to_rho"] = (float(means.min() / rho), float(means.max() / rho))
    return out


class DenoisingAutoencoder(Autoencoder):
    """Autoencoder that encodes a corrupted input x̃ and reconstructs the clean x [DENOISE-4].

    ``loss = (1/B) Σ_i recon(decoder(encoder(x̃_i)), x_i)`` (per-example sum over features, batch
    mean); there is no penalty term (``last_terms["penalty"]`` is 0.0). Corruption (see
    :mod:`npae.pairs.penalties`):

    * ``"gaussian"``: ``x̃ = x + σ ε`` with σ = ``noise_level`` >= 0;
    * ``"masking"``: each entry zeroed with probability ``noise_level`` in [0, 1];
    * ``"salt_pepper"``: each entry set to 0 or 1 with probability ``noise_level`` in [0, 1].

    Parameters are those of :class:`npae.Autoencoder` plus ``noise`` and ``noise_level``
    (keyword-only); the code is 32 units wide by default (measured on the digits: with a 2-unit
    code the denoising gain under Gaussian noise is about half the 32-unit one, 5 nats against
    9.5). ``loss_and_grads(x, x_noisy)`` takes the corruption explicitly (deterministic); without
    it, and during ``fit``, x̃ is drawn from the model's seeded generator ``self.rng``.
    :meth:`denoising_error` is the lesson's measure.

    Derivation: docs/derivations/denoise.md#denoise-4
    """

    stochastic_inputs = ("x_noisy",)

    def __init__(self, input_dim=None, hidden=(64,), latent_dim=32, activation="relu",
                 code_activation="identity", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, noise="gaussian", noise_level=0.3, slope=0.01, alpha=1.0, init="auto",
                 random_state=None, warm_start=False, arch="mlp", encoder_layers=None,
                 decoder_layers=None, image_shape=None,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self.noise, self.noise_level = noise, noise_level
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init, random_state=random_state,
                         warm_start=warm_start, arch=arch, encoder_layers=encoder_layers,
                         decoder_layers=decoder_layers, image_shape=image_shape,
                         epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, verbose=verbose,
                         callbacks=callbacks)

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

    def _training_corruption(self):
        return self.noise, self.noise_level

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

    * ``penalty="kl"`` (default): ``penalty = λ · Σ_j KL(ρ || ρ̂_j)`` with ρ̂_j the batch mean of
      z_·j, charged **once per batch** (not per example) [SPARSE-3, SPARSE-4]. Needs
      ``code_activation="sigmoid"`` (ρ̂ must lie in (0, 1)).
    * ``penalty="l1"``: ``penalty = λ · (1/B) Σ_i ||z_i||_1`` (per-example sum, batch mean) [SPARSE-1].
      Exact zeros need ``code_activation="relu"``: a sigmoid code only gets small, and an identity
      code never gets sparse (the decoder scales its weights up as the code shrinks).

    ``loss = (1/B) Σ_i recon_i + penalty`` with λ = ``sparsity_weight`` >= 0 and ρ = ``rho`` in (0, 1).
    ``sparsity_weight=None`` (default) takes the measured weight of the penalty,
    ``SPARSITY_WEIGHTS`` (kl: 3, l1: 0.1); the weight in effect is ``sparsity_weight_``. The
    defaults (32 sigmoid code units, ρ = 0.05, λ = 3) end, after 100 epochs of Adam (lr 2e-3,
    batch 64) on the digits, with every unit's mean activation within a factor 1.5 of ρ and two
    thirds of the activations below 0.05 (docs/autoencoders.md). Other parameters: as
    :class:`npae.Autoencoder`. :meth:`sparsity` is the lesson's measure.

    Derivation: docs/derivations/sparse.md#sparse-7
    """

    def __init__(self, input_dim=None, hidden=(64,), latent_dim=32, activation="relu",
                 code_activation="sigmoid", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, penalty="kl", sparsity_weight=None, rho=0.05, slope=0.01, alpha=1.0, init="auto",
                 random_state=None, warm_start=False, arch="mlp", encoder_layers=None,
                 decoder_layers=None, image_shape=None,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self.penalty, self.sparsity_weight, self.rho = penalty, sparsity_weight, rho
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init, random_state=random_state,
                         warm_start=warm_start, arch=arch, encoder_layers=encoder_layers,
                         decoder_layers=decoder_layers, image_shape=image_shape,
                         epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, verbose=verbose,
                         callbacks=callbacks)

    def _check_params(self):
        check_choice("penalty", self.penalty, ("l1", "kl"))
        if self.sparsity_weight is not None:
            check_scalar("sparsity_weight", self.sparsity_weight, low=0.0)
        check_scalar("rho", self.rho, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.penalty == "kl" and self.code_activation != "sigmoid":
            raise InputError(f"penalty='kl' needs code activations in (0, 1), i.e. "
                             f"code_activation='sigmoid'; got code_activation={self.code_activation!r} "
                             f"(use penalty='l1' for other activations)")
        return super()._check_params()

    @property
    def sparsity_weight_(self):
        """The weight λ in effect: ``sparsity_weight``, or ``SPARSITY_WEIGHTS[penalty]`` when None."""
        return SPARSITY_WEIGHTS[self.penalty] if self.sparsity_weight is None else self.sparsity_weight

    def _penalty(self, z):
        """(value, dz) of the sparsity penalty on the codes ``z``."""
        if self.penalty == "l1":
            value, cache = l1_penalty_forward(z, self.sparsity_weight_)
            return value, l1_penalty_backward(1.0, cache)
        value, cache = kl_sparsity_forward(z, self.rho, self.sparsity_weight_)
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

    def sparsity(self, X, threshold=NEAR_ZERO):
        """The lesson's measures of the code on ``X`` (N, n_features), forward only: each unit's
        mean activation (against ρ for the KL penalty), the share of activations below
        ``threshold`` in magnitude, exact zeros, silent units; see :func:`sparsity_measures`.
        Adds ``penalty`` and ``sparsity_weight`` (the weight in effect)."""
        out = sparsity_measures(self.encode(X), threshold, self.rho if self.penalty == "kl" else None)
        out.update(penalty=self.penalty, sparsity_weight=float(self.sparsity_weight_))
        return out


class ContractiveAutoencoder(Autoencoder):
    """Autoencoder with the contractive penalty on the encoder's Jacobian [CONTRACTIVE-7].

    ``penalty = λ · (1/B) Σ_i ||∂z_i/∂x_i||²_F`` (per-example sum, batch mean), λ =
    ``contractive_weight`` >= 0, and ``loss = (1/B) Σ_i recon_i + penalty``.

    Any depth (``hidden=(...)``) and any of the seven activations for the hidden and code layers.
    A one-layer encoder (``hidden=()``, the default) with a sigmoid, tanh, relu or softplus code
    uses the closed form ``||J_i||²_F = Σ_j f'(a_ij)² ||W_{:,j}||²`` [CONTRACTIVE-1]; every other
    encoder the exact product ``J_i = W_1 D_1 ⋯ W_L D_L`` [CONTRACTIVE-9] and its hand-derived
    gradient (:func:`npae.pairs.penalties.contractive_penalty_deep_forward`); the two agree where both
    apply. Nothing is approximated. The decoder mirrors the encoder's hidden widths.

    Defaults: 32 sigmoid code units and λ = 0.1, measured on the digits (100 epochs of Adam, lr
    2e-3): the encoder's ||J||_F is half the plain autoencoder's, for +3% reconstruction
    (docs/autoencoders.md). With 2 units a one-layer sigmoid encoder saturates and learns nothing.
    :meth:`jacobian_frobenius` (on every autoencoder) is the lesson's measure.

    Derivation: docs/derivations/contractive.md#contractive-7
    """

    def __init__(self, input_dim=None, hidden=(), latent_dim=32, activation="relu",
                 code_activation="sigmoid", output="sigmoid", loss="bce", dtype="float64", seed=0,
                 *, contractive_weight=0.1, slope=0.01, alpha=1.0, init="auto", random_state=None,
                 warm_start=False,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self.contractive_weight = contractive_weight
        super().__init__(input_dim, hidden, latent_dim, activation, code_activation, output, loss,
                         dtype, seed, slope=slope, alpha=alpha, init=init, random_state=random_state,
                         warm_start=warm_start,
                         epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, verbose=verbose,
                         callbacks=callbacks)

    def _check_params(self):
        check_scalar("contractive_weight", self.contractive_weight, low=0.0)
        hidden = super()._check_params()
        for name in ("activation", "code_activation"):
            check_choice(name, getattr(self, name), DEEP_CONTRACTIVE_ACTIVATIONS)
        return hidden

    def _uses_closed_form(self):
        """True for a one-layer encoder whose code activation has the closed form [CONTRACTIVE-1]."""
        return len(self.encoder.dense_layers) == 1 and self.code_activation in CONTRACTIVE_ACTIVATIONS

    def _penalty_forward(self, x):
        """``(value, cache)`` of the penalty on the batch ``x``: the closed form of a one-layer
        encoder, else the deep pair (its cache is a list per layer)."""
        Ws, bs, activations = self._encoder_affine_layers()
        if self._uses_closed_form():
            return contractive_penalty_forward(x, Ws[0], bs[0], self.code_activation,
                                               self.contractive_weight)
        return contractive_penalty_deep_forward(x, Ws, bs, activations, self.contractive_weight,
                                                slope=self.slope, alpha=self.alpha)

    def _penalty_backward(self, cache):
        """``(dWs, dbs)``, one entry per encoder layer, of the penalty given its forward cache."""
        if self._uses_closed_form():
            _, dW, db = contractive_penalty_backward(1.0, cache)
            return [dW], [db]
        _, dWs, dbs = contractive_penalty_deep_backward(1.0, cache)
        return dWs, dbs

    def _loss_and_grads(self, x):
        z = self.encoder.forward(x)  # (B, Z)
        logits = self.decoder.forward(z)  # (B, D)
        recon, dlogits = self._recon_loss(logits, x)
        dz = self.decoder.backward(dlogits)  # (B, Z)
        self.encoder.backward(dz, input_grad=False)
        penalty, cache = self._penalty_forward(x)
        dWs_penalty, dbs_penalty = self._penalty_backward(cache)
        grads = self._grads()
        for k, (dW_penalty, db_penalty) in enumerate(zip(dWs_penalty, dbs_penalty)):
            grads[f"encoder.{k}.W"] += dW_penalty  # [CONTRACTIVE-7] W_k feeds the code and the penalty
            grads[f"encoder.{k}.b"] += db_penalty  # [CONTRACTIVE-7]
        loss = recon + penalty  # [CONTRACTIVE-7]
        self.last_terms = {"loss": loss, "recon": recon, "penalty": penalty}
        return loss, grads

    def _loss_terms(self, x, *, rng):
        """Forward only: reconstruction, penalty and their sum on the batch."""
        recon = float(np.mean(self._recon_per_example(self.decoder.apply(self.encoder.apply(x)), x)))
        penalty = self._penalty_forward(x)[0]
        return {"loss": recon + penalty, "recon": recon, "penalty": penalty}
