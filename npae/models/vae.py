"""Variational autoencoders with every backward pass written out.

``VAE``: x → encoder → (mu, logvar) → z = mu + std·eps → decoder → p(x|z).
``ConditionalVAE``: the same with a one-hot label joined to the encoder input and to z
(``n_classes`` > 0). Every method that sees data takes ``y=None``; a conditional model requires it
(its ``_condition`` and ``_join`` hooks), a plain one refuses it.

This file is the plain VAE a student reads top to bottom: its network, its forward, its backward
with the one fan-in at mu and logvar ([ELBO-5]), calling the pairs through the backend's units
(under ``reference`` the units are the pairs themselves: ``npae.pairs.functional.dense_act_forward``,
``npae.pairs.latent.reparam_kl_forward``, ...). The variants live in their own modules and extend
it without branching its plain step (:meth:`VAE._elbo_step`):

* :mod:`npae.models.vae_likelihood`: the Gaussian decoder and its fixed / shared / per-feature /
  learned variance (the Bernoulli one is the BCE unit, here);
* :mod:`npae.models.vae_objectives`: IWAE-k and the k-sample ELBO on log-weights (``objective``);
* :mod:`npae.models.vae_flows`: planar and IAF posteriors (``flow``);
* :mod:`npae.models.architectures`: convolutional stacks (``arch="conv"``, explicit layers).

Loss (what ``loss_and_grads`` returns and ``fit`` minimises), in nats per example::

    loss = (1/(L·B)) Σ_l Σ_i NLL(x_i | z_li)  +  β · (1/B) Σ_i KL_i           [ELBO-1]

With β = 1 this is the negative ELBO, a real upper bound on −log p(x) (the Gaussian likelihood
keeps its constant 0.5·D·log 2π). Derivations: docs/derivations/elbo.md, reparam.md, kl.md,
iwae.md.
"""
import numpy as np

import warnings

from npae.pairs import latent
from npae.fast.backends import ops
from npae.constants import (BATCH_SIZE, EPOCHS, FLOW_STEPS_MAX, LOGVAR_CLAMP_WARN_FRACTION, LR, OPTIMIZER,
                            VERBOSE)
from npae.init import make_rng
from npae.models.architectures import build_chains
from npae.models.layers import ACTIVATION_NAMES, FlatParams
from npae.models.model import Model
from npae.models.sklearn_protocol import shared_docs
from npae.training.loop import refuse_clamped_fit
from npae.models.vae_flows import FLOWS, PLANAR_START, FlowPosterior  # noqa: F401 (re-exported)
from npae.models.vae_likelihood import LIKELIHOODS, VARIANCES, DecoderLikelihood
from npae.models.vae_objectives import OBJECTIVES, LogWeightBounds, LogWeightStep  # noqa: F401
from npae.validation import (InputError, check_array, check_choice, check_data_scale, check_dtype,
                             check_labels, check_memory, check_scalar, check_sizes, check_unit_interval)


class CollapseWarning(UserWarning):
    """A VAE ended training with no active latent unit: its codes carry no information about x."""


@shared_docs
class VAE(DecoderLikelihood, LogWeightStep, FlowPosterior, Model):
    """Variational autoencoder with a diagonal Gaussian posterior and a N(0, I) prior.

    Parameters
    ----------
    input_dim : int or None
        Number of input features; None: learned from the data at ``fit`` (``n_features_in_``).
    hidden : tuple of int
        Encoder hidden widths; the decoder mirrors them.
    latent_dim : int
    activation : str
        Hidden-layer activation (identity, relu, leaky_relu, sigmoid, tanh, softplus, elu).
    likelihood : "bernoulli" | "gaussian"
        ``"bernoulli"``: the decoder outputs logits, NLL = binary cross-entropy summed over features
        (training data must lie in [0, 1]; grey levels are allowed). ``"gaussian"``: the decoder
        outputs the mean of N(x; m, diag σ²), NLL = 0.5 Σ_d (log 2π + log σ²_d + (x_d − m_d)²/σ²_d).
    beta : float >= 0
        Weight of the KL term (β-VAE); 1 gives the ELBO. Objectives computed from log-weights
        (``objective="iwae"`` or a ``flow``) need β = 1.
    variance : "fixed" | "shared" | "per_feature" | "learned"
        The Gaussian decoder's σ² (ignored by the Bernoulli one): ``"fixed"`` σ² = 1;
        ``"shared"`` one learned log σ² for all features; ``"per_feature"`` one per feature;
        ``"learned"`` a second decoder head, σ²(z) per example and feature. Learned log-variances
        pass through a smooth floor (σ² > 1e-4, ``npae.constants.DECODER_LOGVAR_FLOOR``).
        docs/derivations/gaussdec.md.
    objective : "elbo" | "iwae"
        What training minimises: the negative ELBO ([ELBO-1], closed-form KL, averaged over ``k``
        samples) or the negative IWAE-k bound of Burda et al. ([IWAE-4], its gradient the
        normalised-weight average of the per-sample gradients [IWAE-5]).
    k : int >= 1
        Samples of z per example and training step.
    flow : None | "planar" | "iaf"
        A normalising flow on the posterior sample: ``flow_steps`` planar flows (Rezende &
        Mohamed 2015; global parameters) or inverse autoregressive steps (Kingma et al. 2016;
        MADE networks that also read a context vector the encoder emits). With a flow the KL has no
        closed form: the loss is computed from the log-weights (docs/derivations/flow.md).
    flow_steps : int >= 1
    flow_hidden : int or None
        Hidden width of each IAF step's MADE (default ``max(2 * latent_dim, 8)``; the context has
        ``latent_dim`` entries).
    .. shared:: dtype; seed; slope, alpha; random_state; warm_start; training
    arch, encoder_layers, decoder_layers, image_shape
        The layers, as for :class:`npae.Autoencoder`: ``arch="conv"`` for convolutional chains,
        or stacks of your own (:mod:`npae.models.architectures`). A conditional model's label reaches a
        convolutional encoder as constant planes, one per class (docs/derivations/conv.md#conv-14).

    Attributes
    ----------
    params : dict
        ``encoder.<k>.W``/``.b`` (the last encoder layer has 2·latent_dim outputs: the first half is
        ``mu``, the second half the raw ``logvar``), then ``decoder.<k>.W``/``.b``, in forward order.
    clamp_count_ : int
        Total number of logvar entries the clamp has changed in training steps (see
        npae.constants.LOGVAR_MIN).
    last_terms : dict
        ``loss``, ``recon`` (NLL, per example) and ``kl`` (per example) of the last step.
    """

    stochastic_inputs = ("eps",)
    #: number of classes of the condition (0: unconditional); ConditionalVAE takes it as an argument
    n_classes = 0

    def __init__(self, input_dim=None, hidden=(400,), latent_dim=20, activation="relu",
                 likelihood="bernoulli", beta=1.0, dtype="float64", seed=0, *, variance="fixed",
                 objective="elbo", k=1, flow=None, flow_steps=2, flow_hidden=None, slope=0.01,
                 alpha=1.0, random_state=None, warm_start=False, arch="mlp", encoder_layers=None,
                 decoder_layers=None, image_shape=None,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self._store(locals())

    def _store(self, args):
        """Store the constructor's arguments under their own names (scikit-learn's rule); the
        network is built by ``fit``, or on first use when ``input_dim`` is given."""
        for name in self._get_param_names():
            setattr(self, name, args[name])

    @property
    def takes_labels(self):
        """True for a conditional model (its methods need ``y``)."""
        return bool(self.n_classes)

    # ------------------------------------------------------------------ building
    def _build(self, n_features):
        hidden = check_sizes("hidden", self.hidden)
        Z = check_scalar("latent_dim", self.latent_dim, low=1, integer=True)
        check_choice("activation", self.activation, ACTIVATION_NAMES)
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_scalar("beta", self.beta, low=0.0)
        check_choice("variance", self.variance, VARIANCES)
        check_choice("objective", self.objective, OBJECTIVES)
        check_scalar("k", self.k, low=1, integer=True)
        if self.flow is not None:
            check_choice("flow", self.flow, FLOWS)
            check_scalar("flow_steps", self.flow_steps, low=1, integer=True)
            if self.flow_steps > FLOW_STEPS_MAX:  # each step is Python objects, trained one by one
                raise InputError(f"flow_steps={self.flow_steps} is over the limit of {FLOW_STEPS_MAX} "
                                 f"steps (npae.constants.FLOW_STEPS_MAX; published flows use up to 80)")
            if self.flow_hidden is not None:
                check_scalar("flow_hidden", self.flow_hidden, low=1, integer=True)
        if self.uses_log_weights and self.beta != 1:
            raise InputError(f"beta={self.beta} needs the closed-form KL: objective='iwae' and flows "
                             f"train on log-weights, where the KL is not a separate term; use beta=1")
        check_scalar("slope", self.slope, low=0.0)
        check_scalar("alpha", self.alpha, low=0.0, low_open=True)
        check_scalar("n_classes", self.n_classes, low=0, integer=True)
        dtype = check_dtype(self.dtype)
        C = int(self.n_classes)
        self.needs_unit_targets = self.likelihood == "bernoulli"
        self.rng = make_rng(self._seed(), self._seed_name())
        self.context_dim_ = Z if self.flow == "iaf" else 0  # the IAF's context h from the encoder
        learned_variance = self.likelihood == "gaussian" and self.variance == "learned"
        code_out = 2 * Z + self.context_dim_  # [mu | logvar_raw | h]
        out_dim = 2 * n_features if learned_variance else n_features  # [mean | logvar_raw] or one head
        kw = dict(rng=self.rng, dtype=dtype, slope=self.slope, alpha=self.alpha)
        # One trunk whose last layer emits [mu | logvar_raw]: one matmul, and the params stay a
        # plain chain encoder.0 ... encoder.K (docs/derivations/elbo.md#elbo-6); arch="conv" or
        # explicit stacks put convolutions before it (npae.models.architectures).
        self.encoder, self.decoder = build_chains(
            self.arch, n_features, code_out, Z, C, hidden=hidden, activation=self.activation,
            image_shape=self.image_shape, encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers, n_out=out_dim, **kw)
        self.decoder_logvar = self._make_decoder_logvar(n_features, dtype)  # shared / per-feature log σ²
        self.flow_params = self._make_flow(Z, dtype)
        chains = [self.encoder, self.decoder, self.decoder_logvar, self.flow_params]
        chains = [chain for chain in chains if chain is not None]  # in this order: the params' names
        self.flat_params = FlatParams(chains)  # one array each, see FlatParams
        self.params = dict(self.flat_params.params)
        self.clamp_count_ = 0
        self.clamp_entries_ = 0
        self.warmup_factor_ = 1.0  # min(1, e / n) during a KL warm-up of n epochs, else 1
        self.beta_schedule_ = []

    @property
    def uses_log_weights(self):
        """True when training minimises an objective of the log-weights (IWAE, or any flow): the KL
        then has no closed form, and β must be 1."""
        return self.objective == "iwae" or self.flow is not None

    # ------------------------------------------------------------------ the condition (hooks)
    def _condition(self, y, n, name="y"):
        """The condition of labels ``y``: None, the plain VAE has none and refuses labels
        (:class:`ConditionalVAE` returns their one-hot rows)."""
        if y is not None:
            raise InputError(f"{type(self).__name__} is unconditional: {name} must be None "
                             f"(use ConditionalVAE for labelled data)")
        return None

    def _join(self, a, c):
        """The network input made of ``a`` and the condition ``c``: ``a`` itself here (no condition;
        :meth:`ConditionalVAE._join` appends the label's columns)."""
        return a

    # ------------------------------------------------------------------ checks
    def _check_eps(self, eps, B):
        Z = self.latent_dim
        want = f"(B, Z) = ({B}, {Z}) or (L, {B}, {Z})"
        eps = check_array(eps, "eps", ndim=(2, 3), dtype=self.dtype)
        if eps.shape[-2:] != (B, Z):
            raise InputError(f"eps must have shape {want} for a batch of {B} examples and "
                             f"latent_dim={Z}, got shape {eps.shape}")
        return eps

    # ------------------------------------------------------------------ pieces of the graph
    def _posterior(self, x, c=None, *, train=False):
        """Encoder forward: ``(mu, logvar, inside, h)``: logvar clamped [REPARAM-5], inside = the
        clamp's mask, h the IAF's context ((B, 0) without an IAF). ``train``: keep the caches for a
        backward pass (else forward only)."""
        xc = self._join(x, c)
        out = self.encoder.forward(xc) if train else self.encoder.apply(xc)  # (B, 2Z + C_h)
        Z = self.latent_dim
        mu, logvar_raw, h = out[:, :Z], out[:, Z:2 * Z], out[:, 2 * Z:]  # (B, Z), (B, Z), (B, C_h)
        logvar, inside = latent.logvar_clamp_forward(logvar_raw)  # (B, Z) [REPARAM-5]
        return mu, logvar, inside, h

    def _decode_out(self, z, c=None, *, train=False):
        """Decoder output for codes of shape (..., Z): Bernoulli logits, Gaussian means, or
        [means | raw log-variances] for a learned variance."""
        zc = self._join(z, c)
        zc = zc.reshape(-1, zc.shape[-1])  # (L·B, Z + C)
        out = self.decoder.forward(zc) if train else self.decoder.apply(zc)  # (L·B, D or 2D)
        return out.reshape(z.shape[:-1] + (out.shape[-1],))

    def decoder_variance(self, Z=None, y=None):
        """The Gaussian decoder's σ² (after the floor): shape (1,) for ``variance="shared"``, (D,)
        for ``"per_feature"``, 1 for ``"fixed"``; for ``"learned"`` it depends on z: σ²(z) for the
        codes ``Z`` (N, latent_dim), shape (N, D)."""
        self._require_built()
        if self.likelihood != "gaussian":
            raise InputError("decoder_variance: a Bernoulli decoder has no variance parameter")
        if self.variance == "learned":
            if Z is None:
                raise InputError("decoder_variance: a learned (per-example) variance needs the codes Z")
            Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype)
            out = self._decode_out(Z, self._condition(y, Z.shape[0]))
        else:
            out = np.zeros((1, self.n_features_in_), dtype=self.dtype)
        return np.exp(self._gaussian_head(out)[1])

    def _recon_loss(self, out, x):
        """``(recon_mean, dout)`` for decoder outputs ``out`` (R, D) of R = L·B rows against their
        targets ``x`` (R, D): the NLL summed over features, averaged over the rows, and its gradient
        (Bernoulli: the BCE unit [ELBO-2]; Gaussian: :mod:`npae.models.vae_likelihood`)."""
        if self.likelihood == "bernoulli":
            return ops.bce_with_logits_loss(out, x)  # [ELBO-2]
        return self._gaussian_recon_loss(out, x)

    # ------------------------------------------------------------------ the steps
    def _elbo_step(self, x, eps, c=None):
        """Forward and backward of the β-weighted negative ELBO [ELBO-1] on one batch (inputs
        checked); ``eps`` (B, Z), or (L, B, Z) for L draws per example, or None (drawn here).

        Derivation: docs/derivations/elbo.md#elbo-1
        """
        B, Z = x.shape[0], self.latent_dim
        if eps is None:
            shape = (B, Z) if int(self.k) == 1 else (int(self.k), B, Z)
            eps = self.rng.standard_normal(shape).astype(self.dtype, copy=False)  # (B, Z) or (k, B, Z)

        # forward
        mu, logvar, inside, _ = self._posterior(x, c, train=True)  # (B, Z) each
        self._count_clamps(inside)
        z, kl_sum, sampler_cache = ops.reparam_kl_forward(mu, logvar, eps)  # [REPARAM-2], [KL-1]
        out = self._decode_out(z, c, train=True)  # (B, D) or (L, B, D)
        out = out.reshape(-1, out.shape[-1])  # (L·B, D): one row per draw
        target = np.tile(x, (out.shape[0] // B, 1))  # (L·B, D): each draw reconstructs its x
        recon, dout = self._recon_loss(out, target)  # recon_mean over the L·B rows
        kl_mean = kl_sum / B
        beta = float(self.beta) * self.warmup_factor_  # β (times the warm-up factor [ELBO-7])
        loss = recon + beta * kl_mean  # [ELBO-1]

        # backward
        dzc = self.decoder.backward(dout)  # (L·B, Z + C)
        dz = dzc[:, :Z].reshape(z.shape)  # (B, Z) or (L, B, Z) [ELBO-8] the label columns stop here
        dmu_from_sampler, dlogvar_from_sampler, dmu_kl, dlogvar_kl = ops.reparam_kl_backward(
            dz, sampler_cache)
        dmu = dmu_from_sampler + (beta / B) * dmu_kl  # (B, Z) [ELBO-5]
        dlogvar = dlogvar_from_sampler + (beta / B) * dlogvar_kl  # (B, Z) [ELBO-5]
        dlogvar_raw = latent.logvar_clamp_backward(dlogvar, inside)  # (B, Z) [REPARAM-6]
        dcode = np.concatenate([dmu, dlogvar_raw], axis=1)  # (B, 2Z) [ELBO-6]
        self.encoder.backward(dcode, input_grad=False)

        self.last_terms = {"loss": loss, "recon": recon, "kl": kl_mean}
        return loss, self._grads()

    def _grads(self):
        return {name: g for name, g in self.flat_params.grads.items()}

    def _count_clamps(self, inside):
        self.clamp_count_ += int(inside.size - np.count_nonzero(inside))
        self.clamp_entries_ += int(inside.size)

    def _loss_and_grads(self, x, y=None, eps=None):
        c = None if y is None else self._onehot(y)
        if self.uses_log_weights:
            return self._logw_step(x, eps, c)
        return self._elbo_step(x, eps, c)

    def loss_and_grads(self, x, y=None, eps=None):
        """``(loss, grads)`` of the training objective on the batch ``x`` (B, n_features): the
        β-weighted negative ELBO [ELBO-1], or the objective of the log-weights for
        ``objective="iwae"`` or a flow ([IWAE-4] / [IWAE-6]), in nats per example; ``grads`` has the
        keys and shapes of ``params``. ``y``: the labels of a conditional model. ``eps`` (B, Z) or
        (L, B, Z): the sampler's standard-normal noise, making the step deterministic (omitted:
        ``k`` draws from ``self.rng``).
        """
        if "params" not in vars(self):  # not built yet: build on first use, or say fit first
            self._require_built()
        x = check_data_scale(check_array(x, "x", n_features=self.n_features_in_, dtype=self.dtype,
                                         owner=type(self).__name__), "x")
        if self.needs_unit_targets:
            check_unit_interval("x", x, "likelihood='gaussian'")  # a Bernoulli decoder's targets
        c = self._condition(y, x.shape[0])
        if eps is not None:
            eps = self._check_eps(eps, x.shape[0])
        step = self._logw_step if self.uses_log_weights else self._elbo_step
        loss, grads = step(x, eps, c)
        return loss, {name: g.copy() for name, g in grads.items()}  # copies: the next step overwrites

    def _loss_terms(self, x, y=None, *, rng):
        """Forward only: ``loss``, ``recon`` and ``kl`` of one batch, with ``k`` draws of eps from
        ``rng``; the closed-form KL at the configured β, or the objective of the log-weights."""
        B, Z, k = x.shape[0], self.latent_dim, int(self.k)
        c = None if y is None else self._onehot(y)
        eps = rng.standard_normal((k, B, Z)).astype(self.dtype, copy=False)  # (k, B, Z)
        if self.uses_log_weights:
            logw, g = self._log_weight_graph(x, c, eps, train=False)
            return {"loss": self._objective(logw)[0], "recon": -float(np.mean(g["log_px"])),
                    "kl": float(np.mean(g["kl"]))}
        mu, logvar, _, _ = self._posterior(x, c)
        z, _ = latent.reparameterize_forward(mu, logvar, eps)  # (k, B, Z)
        recon = -float(np.mean(self._log_px(self._decode_out(z, c), x)))
        kl = float(np.mean(latent.gaussian_kl_forward(mu, logvar)[0]))
        return {"loss": recon + float(self.beta) * kl, "recon": recon, "kl": kl}

    # ------------------------------------------------------------------ training
    def _epoch_begin(self, epoch, epochs):
        """KL warm-up: β_e = β · min(1, e / n) for epoch e (0-based) and n warm-up epochs [ELBO-7]."""
        n = getattr(self, "_warmup_epochs", 0)
        self.warmup_factor_ = min(1.0, epoch / n) if n > 0 else 1.0  # [ELBO-7]
        self.beta_schedule_.append(float(self.beta) * self.warmup_factor_)

    def fit(self, X, y=None, *, warmup_epochs=0, **fit_kwargs):
        """Train with shuffled minibatches (see :meth:`npae.models.model.Model.fit` for ``fit_kwargs``);
        ``y``: the labels of a conditional model. Returns ``self``.

        ``warmup_epochs=n`` raises β linearly from 0 at the first epoch to its configured value at
        epoch ``n`` [ELBO-7]; ``beta_schedule_`` records the β of every epoch. ``history_`` holds
        per-epoch means of ``loss``, ``recon`` and ``kl`` (and ``val_*``).
        """
        check_scalar("warmup_epochs", warmup_epochs, low=0, integer=True)
        if warmup_epochs and self.uses_log_weights:
            raise InputError("warmup_epochs needs the closed-form KL (objective='elbo' without a "
                             "flow): a KL warm-up weights a term that log-weight objectives do not have")
        self._warmup_epochs = int(warmup_epochs)
        clamps = (self.clamp_count_, self.clamp_entries_) if self.is_built else (0, 0)
        try:
            super().fit(X, y, **fit_kwargs)
        finally:
            self._warmup_epochs = 0
            if self.is_built:
                self.warmup_factor_ = 1.0
        if self.clamp_count_ < clamps[0]:  # rebuilt by this fit: its counters started at 0
            clamps = (0, 0)
        self._warn_after_fit(X, y, self.clamp_count_ - clamps[0], self.clamp_entries_ - clamps[1])
        return self

    def _warn_after_fit(self, X, y, clamped, entries):
        """Say so (a warning, never silence) when training ended with no active latent unit, or
        when the logvar clamp held a large share of the encoder's outputs during this fit (its
        gradient is 0 there: those entries cannot move back); refuse a fit whose clamp held more
        than half of them (:func:`refuse_clamped_fit`)."""
        refuse_clamped_fit(self, X, clamped, entries)
        if entries and clamped / entries > LOGVAR_CLAMP_WARN_FRACTION:
            warnings.warn(f"the logvar clamp [{latent.LOGVAR_MIN:g}, {latent.LOGVAR_MAX:g}] held "
                          f"{clamped} of {entries} encoder log-variances ({100 * clamped / entries:.1f}%) "
                          f"during this fit; they get no gradient while clamped. Lower the learning "
                          f"rate or check the data scale.", RuntimeWarning, stacklevel=3)
        X = np.asarray(X)
        n = min(X.shape[0], 2000)
        active = self.active_units(X[:n], None if y is None or not self.n_classes else np.asarray(y)[:n])
        if active == 0:
            hint = (" For real-valued data a Gaussian decoder with a learned variance "
                    "(variance='shared', 'per_feature' or 'learned') gives the reconstruction term "
                    "its proper weight; a fixed unit variance is too weak for data of scale ~1."
                    if self.likelihood == "gaussian" and self.variance == "fixed" else
                    " Try more epochs, a KL warm-up (warmup_epochs) or a smaller beta.")
            warnings.warn(f"{type(self).__name__} ended training with no active latent unit "
                          f"(Var_x of every posterior mean <= {latent.ACTIVE_UNIT_THRESHOLD}): the "
                          f"codes carry no information about x (posterior collapse).{hint}",
                          CollapseWarning, stacklevel=3)

    # ------------------------------------------------------------------ using the model
    def encode_stats(self, X, y=None):
        """Posterior parameters ``(mu, logvar)`` of q(z | x[, y]), each (N, latent_dim); any finite X."""
        X = self._check_X(X, targets=False)
        mu, logvar, _, _ = self._posterior(X, self._condition(y, X.shape[0]))
        return mu.copy(), logvar.copy()

    def encode(self, X, y=None):
        """Posterior mean ``mu`` (N, latent_dim)."""
        return self.encode_stats(X, y)[0]

    def decode(self, Z, y=None):
        """Bernoulli probabilities or Gaussian means (N, n_features) of p(x | z[, y])."""
        self._require_built()
        Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype,
                        owner=f"{type(self).__name__}.decode")
        return self._output(self._decode_out(Z, self._condition(y, Z.shape[0])))

    def reconstruct(self, X, y=None):
        """decode(encode(X)): the decoder's output at the posterior mean."""
        return self.decode(self.encode(X, y), y)

    def transform(self, X, y=None):
        """The posterior mean, as :meth:`encode` (scikit-learn's name; a Pipeline step)."""
        return self.encode(X, y)

    def inverse_transform(self, Z, y=None):
        """Same as :meth:`decode`."""
        return self.decode(Z, y)

    def fit_transform(self, X, y=None, **fit_kwargs):
        """``fit(X, y, **fit_kwargs)`` then ``transform(X)`` (the labels are used only by a
        conditional model)."""
        self.fit(X, y, **fit_kwargs)
        return self.transform(X, y if self.n_classes else None)

    def score(self, X, y=None):
        """Higher is better: the ELBO per example (nats), i.e. −:meth:`neg_elbo`, one draw per
        example from the evaluation stream. ``y`` is used by a conditional model only (ignored
        otherwise, as in scikit-learn)."""
        return -self.neg_elbo(X, y if self.n_classes else None)

    def sample(self, n, y=None, *, seed=None, temperature=1.0, draws=False):
        """``n`` draws from the model, (n, n_features): z ~ N(0, T² I), then decode.

        Parameters
        ----------
        n : int
        y : conditional model only: an int (all the same class), an array of ``n`` labels, or None
            (labels drawn uniformly).
        seed : int, optional
            ``None`` draws from the model's sampling stream (new draws at every call; never the
            training generator).
        temperature : float > 0
            T, the standard deviation of the prior draws relative to N(0, I): T < 1 keeps z where
            the posteriors put their mass (sharper, less varied samples), T = 1 samples the model.
        draws : bool
            False: the decoder's mean (Bernoulli probabilities / Gaussian means), the usual picture.
            True: draws x ~ p(x | z) as well (0/1 pixels for a Bernoulli decoder; mean plus noise of
            the decoder's σ for a Gaussian one), what the model really generates.
        """
        check_scalar("n", n, low=1, integer=True)
        check_scalar("temperature", temperature, low=0.0, low_open=True)
        self._require_built()
        size = self._footprint(self.n_features_in_)
        width = self.latent_dim + self.n_features_in_ * 3 + (0 if size is None else size[1])
        check_memory(f"sample(n={n})", int(n) * width * np.dtype(self.dtype).itemsize,
                     "draw fewer samples per call")
        rng = self.sample_rng_ if seed is None else make_rng(seed)
        if self.n_classes:
            if y is None:
                y = rng.integers(0, int(self.n_classes), size=n)
            elif np.ndim(y) == 0:
                y = np.full(n, y) if isinstance(y, (int, np.integer)) else np.array([y])
        Z = (float(temperature) * rng.standard_normal((n, self.latent_dim))).astype(self.dtype)
        out = self._decode_out(Z, self._condition(y, n))  # (n, D or 2D)
        mean = self._output(out)
        if not draws:
            return mean
        if self.likelihood == "bernoulli":
            return (rng.random(mean.shape) < mean).astype(self.dtype)  # x_d ~ Bernoulli(σ(s_d))
        _, logvar_x, _ = self._gaussian_head(out)
        noise = rng.standard_normal(mean.shape).astype(self.dtype)
        return mean + np.exp(0.5 * logvar_x) * noise  # x ~ N(mean, σ²)

    # ------------------------------------------------------------------ evaluation
    def _check_Xc(self, X, y):
        X = self._check_X(X)
        return X, self._condition(y, X.shape[0])

    def kl_per_dimension(self, X, y=None):
        """Mean over X of ``KL(q(z_j|x) || N(0, 1))`` for each latent j, nats, (latent_dim,)."""
        mu, logvar = self.encode_stats(X, y)
        return np.mean(latent.gaussian_kl_terms(mu, logvar), axis=0)

    def active_units(self, X, y=None, threshold=latent.ACTIVE_UNIT_THRESHOLD):
        """Number of latents whose posterior mean varies across X: ``Var_x(mu_j) > threshold``."""
        check_scalar("threshold", threshold, low=0.0)
        return int(np.sum(np.var(self.encode(X, y), axis=0) > threshold))

    # ------------------------------------------------------------------ estimators' access
    def posterior(self, x, y=None):
        """``(mu, logvar)`` of q(z | x) for a batch, with the encoder's caches kept so that
        :meth:`encoder_gradients` can backpropagate into it (used by npae.models.estimators)."""
        x = self._check_X(x, "x", targets=False)
        mu, logvar, self._inside, _ = self._posterior(x, self._condition(y, x.shape[0]), train=True)
        return mu, logvar

    def encoder_gradients(self, dmu, dlogvar):
        """Gradients of the encoder's parameters (copies) given gradients with respect to the
        ``mu`` and ``logvar`` of the last :meth:`posterior` call."""
        dlogvar_raw = latent.logvar_clamp_backward(dlogvar, self._inside)
        self.encoder.backward(np.concatenate([dmu, dlogvar_raw], axis=1), input_grad=False)
        return {name: g.copy() for name, g in self.encoder.grads.items()}

    def reconstruction_nll(self, z, x, y=None):
        """``(nll, dz)`` for codes ``z`` (S, B, Z) and the batch ``x`` (B, D): the per-example
        negative log-likelihood −log p(x_i | z_si), shape (S, B), and the gradient of
        ``(1/B) Σ_i nll_si`` with respect to ``z`` for every draw s (used by npae.models.estimators)."""
        S, B, Z = z.shape
        x = self._check_X(x, "x")
        c = self._condition(y, B)
        out = self._decode_out(z, c, train=True)  # (S, B, D)
        nll = -self._log_px(out, x)  # (S, B)
        target = np.broadcast_to(x, out.shape).reshape(S * B, -1)
        _, dout = self._recon_loss(out.reshape(S * B, -1), target)  # scaled 1/(S·B)
        dz = self.decoder.backward(dout * S)[:, :Z].reshape(S, B, Z)  # scaled 1/B per draw
        return nll, dz


class ConditionalVAE(VAE):
    """VAE conditioned on a class label: ``q(z | x, y)`` and ``p(x | z, y)``.

    The one-hot label (``n_classes`` columns) is appended to the encoder input and to z; the prior
    stays N(0, I). Parameters as :class:`VAE`, plus ``n_classes``; every method of VAE that sees
    data takes the labels as ``y`` (ints in 0..n_classes−1), required here: ``fit(X, y)``,
    ``encode(X, y)``, ``decode(Z, y)``, ``neg_elbo(X, y)``, ``validation_data=(X, y)``.
    The conditional columns of the encoder and decoder: docs/derivations/elbo.md#elbo-8.
    """

    def __init__(self, input_dim=None, n_classes=None, hidden=(400,), latent_dim=20,
                 activation="relu", likelihood="bernoulli", beta=1.0, dtype="float64", seed=0, *,
                 variance="fixed", objective="elbo", k=1, flow=None, flow_steps=2, flow_hidden=None,
                 slope=0.01, alpha=1.0, random_state=None, warm_start=False, arch="mlp",
                 encoder_layers=None, decoder_layers=None, image_shape=None,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self._store(locals())

    def _build(self, n_features):
        if self.n_classes is None:
            raise InputError("ConditionalVAE needs n_classes, the number of label values")
        check_scalar("n_classes", self.n_classes, low=1, integer=True)
        super()._build(n_features)

    def _condition(self, y, n, name="y"):
        """The one-hot condition (n, n_classes) of labels ``y`` (required)."""
        if y is None:
            raise InputError(f"the conditional VAE needs the labels {name} (one per example; "
                             f"validation_data=(X, y) for fit)")
        return self._onehot(check_labels(name, y, int(self.n_classes), n_samples=n))

    def _join(self, a, c):
        """``a`` with the condition ``c`` (B, C) appended on the last axis (``a`` may be (L, B, .))."""
        c = np.broadcast_to(c, a.shape[:-1] + c.shape[-1:])
        return np.concatenate([a, c], axis=-1)  # [ELBO-8]

    def _fit_data(self, X, y=None):
        """``(X, y)``: the labels are required."""
        X = self._check_X(X)
        self._condition(y, X.shape[0])  # refuses a missing or bad y
        return X, check_labels("y", y, int(self.n_classes), n_samples=X.shape[0])

    def _onehot(self, labels):
        """One-hot rows for integer labels already checked (training batches)."""
        c = np.zeros((labels.shape[0], int(self.n_classes)), dtype=self.dtype)  # (B, C)
        c[np.arange(labels.shape[0]), labels] = 1.0
        return c
