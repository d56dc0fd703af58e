"""Variational autoencoders with every backward pass written out.

``VAE``: x → encoder → (mu, logvar) → z = mu + std·eps → decoder → p(x|z).
``ConditionalVAE``: the same with a one-hot label joined to the encoder input and to z
(``n_classes`` > 0). Both are one class's code: every method that sees data takes ``y=None``; a
conditional model requires it, a plain one refuses it (:meth:`VAE._condition`, the one hook).

Loss (what ``loss_and_grads`` returns and ``fit`` minimises), in nats per example::

    loss = (1/(L·B)) Σ_l Σ_i NLL(x_i | z_li)  +  β · (1/B) Σ_i KL_i           [ELBO-1]

With β = 1 this is the negative ELBO, a real upper bound on −log p(x) (the Gaussian likelihood
keeps its constant 0.5·D·log 2π). Derivations: docs/derivations/elbo.md, reparam.md, kl.md,
iwae.md.
"""
import numpy as np

from . import functional as F
from . import latent
from .backends import ops
from .init import make_rng
from .latent import LOG_2PI
from .architectures import build_chains
from .layers import ACTIVATION_NAMES, FlatParams
from .model import Model, fresh_grads
from .validation import (InputError, check_array, check_choice, check_dtype, check_labels,
                         check_scalar, check_sizes)

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(Model):
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
        outputs the mean of N(x; m, I) (fixed unit variance), NLL = 0.5 ||x − m||² + 0.5 D log 2π.
    beta : float >= 0
        Weight of the KL term (β-VAE); 1 gives the ELBO.
    dtype : "float64" | "float32"
    seed : int or None
        Seeds ``self.rng``: initial weights, minibatch order and every training ``eps``. Evaluation
        and sampling draw from streams of their own derived from it (never from ``self.rng``).
    slope, alpha : float
        Leak slope of leaky_relu, α of elu.
    random_state : int or None
        scikit-learn's name for ``seed``; when given it wins.
    warm_start : bool
        ``fit`` continues from the current weights instead of starting again from the seed.
    arch, encoder_layers, decoder_layers, image_shape
        The layers, as for :class:`npae.Autoencoder`: ``arch="conv"`` for convolutional chains,
        or stacks of your own (:mod:`npae.architectures`). A conditional model's label reaches a
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
                 likelihood="bernoulli", beta=1.0, dtype="float64", seed=0, *, slope=0.01,
                 alpha=1.0, random_state=None, warm_start=False, arch="mlp", encoder_layers=None,
                 decoder_layers=None, image_shape=None):
        self.arch, self.encoder_layers, self.decoder_layers = arch, encoder_layers, decoder_layers
        self.image_shape = image_shape
        self._store(input_dim, hidden, latent_dim, activation, likelihood, beta, dtype, seed, slope,
                    alpha, random_state, warm_start)

    def _store(self, input_dim, hidden, latent_dim, activation, likelihood, beta, dtype, seed, slope,
               alpha, random_state, warm_start):
        self.input_dim, self.hidden, self.latent_dim = input_dim, hidden, latent_dim
        self.activation, self.likelihood, self.beta = activation, likelihood, beta
        self.dtype, self.seed, self.slope, self.alpha = dtype, seed, slope, alpha
        self.random_state, self.warm_start = random_state, warm_start
        if input_dim is not None:
            self._setup(check_scalar("input_dim", input_dim, low=1, integer=True))

    @property
    def takes_labels(self):
        """True for a conditional model (its methods need ``y``)."""
        return bool(self.n_classes)

    # ------------------------------------------------------------------ building
    def _build(self, n_features):
        hidden = check_sizes("hidden", self.hidden)
        check_scalar("latent_dim", self.latent_dim, low=1, integer=True)
        check_choice("activation", self.activation, ACTIVATION_NAMES)
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_scalar("beta", self.beta, low=0.0)
        check_scalar("slope", self.slope, low=0.0)
        check_scalar("alpha", self.alpha, low=0.0, low_open=True)
        check_scalar("n_classes", self.n_classes, low=0, integer=True)
        dtype = check_dtype(self.dtype)
        C = int(self.n_classes)
        self.needs_unit_targets = self.likelihood == "bernoulli"
        self.rng = make_rng(self._seed())
        kw = dict(rng=self.rng, dtype=dtype, slope=self.slope, alpha=self.alpha)
        # One trunk whose last Dense layer emits [mu | logvar_raw]: one matmul, and the params stay
        # a plain chain encoder.0 ... encoder.K (docs/derivations/elbo.md#elbo-6).
        self.encoder, self.decoder = build_chains(
            self.arch, n_features, 2 * self.latent_dim, self.latent_dim, C, hidden=hidden,
            activation=self.activation, image_shape=self.image_shape,
            encoder_layers=self.encoder_layers, decoder_layers=self.decoder_layers, **kw)
        self.flat_params = FlatParams([self.encoder, self.decoder])  # one array each, see FlatParams
        self.params = dict(self.flat_params.params)
        self.clamp_count_ = 0
        self.warmup_factor_ = 1.0  # min(1, e / n) during a KL warm-up of n epochs, else 1
        self.beta_schedule_ = []

    # ------------------------------------------------------------------ the condition (one hook)
    def _condition(self, y, n, name="y"):
        """The one-hot condition (n, n_classes) of labels ``y``, or None for an unconditional model.
        A conditional model requires ``y``; a plain VAE refuses it."""
        if not self.n_classes:
            if y is not None:
                raise InputError(f"{type(self).__name__} is unconditional: {name} must be None "
                                 f"(use ConditionalVAE for labelled data)")
            return None
        if y is None:
            raise InputError(f"the conditional VAE needs the labels {name} (one per example; "
                             f"validation_data=(X, y) for fit)")
        labels = check_labels(name, y, int(self.n_classes), n_samples=n)
        c = np.zeros((n, int(self.n_classes)), dtype=self.dtype)  # (n, C)
        c[np.arange(n), labels] = 1.0
        return c

    def _fit_data(self, X, y=None):
        """``(X,)`` for a plain VAE (``y`` ignored, scikit-learn's convention for ``fit`` and
        ``score``: a Pipeline hands y to every step), ``(X, y)`` for a conditional one (required)."""
        X = self._check_X(X)
        if not self.n_classes:
            return (X,)
        self._condition(y, X.shape[0])  # refuses a missing or bad y
        return X, check_labels("y", y, int(self.n_classes), n_samples=X.shape[0])

    def _onehot(self, labels):
        """One-hot rows for integer labels already checked (training batches)."""
        c = np.zeros((labels.shape[0], int(self.n_classes)), dtype=self.dtype)  # (B, C)
        c[np.arange(labels.shape[0]), labels] = 1.0
        return c

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
    def _join(self, a, c):
        """``a`` with the condition ``c`` (B, C) appended on the last axis (``a`` may be (L, B, .))."""
        if c is None:
            return a
        c = np.broadcast_to(c, a.shape[:-1] + c.shape[-1:])
        return np.concatenate([a, c], axis=-1)  # [ELBO-8]

    def _posterior(self, x, c=None, *, train=False):
        """Encoder forward: ``(mu, logvar, inside)`` (logvar clamped, inside = the clamp's mask).
        ``train``: keep the caches for a backward pass (else forward only)."""
        xc = self._join(x, c)
        h = self.encoder.forward(xc) if train else self.encoder.apply(xc)  # (B, 2Z)
        Z = self.latent_dim
        mu, logvar_raw = h[:, :Z], h[:, Z:]  # (B, Z), (B, Z)
        logvar, inside = latent.logvar_clamp_forward(logvar_raw)  # (B, Z)
        return mu, logvar, inside

    def _decode_out(self, z, c=None, *, train=False):
        """Decoder output for codes of shape (..., Z): Bernoulli logits or Gaussian means."""
        zc = self._join(z, c)
        zc = zc.reshape(-1, zc.shape[-1])  # (L·B, Z + C)
        out = self.decoder.forward(zc) if train else self.decoder.apply(zc)  # (L·B, D)
        return out.reshape(z.shape[:-1] + (self.n_features_in_,))

    def _log_px(self, out, x):
        """``log p(x | z)`` per example (sum over features) from the decoder output; shape out.shape[:-1]."""
        if self.likelihood == "bernoulli":
            return -F.bce_with_logits_sum(out, x)  # [LOSS-5]
        diff = x - out
        return -0.5 * np.sum(diff * diff, axis=-1) - 0.5 * self.n_features_in_ * LOG_2PI  # [ELBO-3]

    def _recon_loss(self, out, x):
        """``(recon_mean, dout)`` for decoder outputs ``out`` (R, D) of R = L·B rows against their
        targets ``x`` (R, D): the NLL summed over features, averaged over the rows, and its gradient."""
        if self.likelihood == "bernoulli":
            return ops.bce_with_logits_loss(out, x)  # [ELBO-2]
        R = out.shape[0]
        recon = -float(np.sum(self._log_px(out, x))) / R  # [ELBO-3]
        dout = (out - x) / R  # (R, D) [ELBO-4]
        return recon, dout

    # ------------------------------------------------------------------ the step
    def _elbo_step(self, x, eps, c=None):
        """Forward and backward of the β-weighted negative ELBO on one batch (inputs checked)."""
        B, Z, D = x.shape[0], self.latent_dim, self.n_features_in_
        if eps is None:
            eps = self.rng.standard_normal((B, Z)).astype(self.dtype, copy=False)  # (B, Z)
        L = eps.shape[0] if eps.ndim == 3 else 1

        # forward
        mu, logvar, inside = self._posterior(x, c, train=True)  # (B, Z) each
        self.clamp_count_ += int(inside.size - np.count_nonzero(inside))
        z, kl_sum, sampler_cache = ops.reparam_kl_forward(mu, logvar, eps)  # [REPARAM-2], [KL-1]
        out = self._decode_out(z, c, train=True)  # (B, D) or (L, B, D)
        target = x if L == 1 else np.broadcast_to(x, (L, B, D))  # each draw reconstructs its x
        recon, dout = self._recon_loss(out.reshape(L * B, D), target.reshape(L * B, D))
        kl_mean = kl_sum / B
        beta = float(self.beta) * self.warmup_factor_  # β (times the warm-up factor [ELBO-7])
        loss = recon + beta * kl_mean  # [ELBO-1]

        # backward
        dzc = self.decoder.backward(dout)  # (L·B, Z + C)
        dz = dzc[:, :Z].reshape(z.shape)  # (B, Z) or (L, B, Z) [ELBO-8] the label columns stop here
        dmu_from_sampler, dlogvar_from_sampler, dmu_kl, dlogvar_kl = ops.reparam_kl_backward(dz, sampler_cache)
        dmu = dmu_from_sampler + (beta / B) * dmu_kl  # (B, Z) [ELBO-5]
        dlogvar = dlogvar_from_sampler + (beta / B) * dlogvar_kl  # (B, Z) [ELBO-5]
        dlogvar_raw = latent.logvar_clamp_backward(dlogvar, inside)  # (B, Z)
        dh = np.concatenate([dmu, dlogvar_raw], axis=1)  # (B, 2Z) [ELBO-6]
        self.encoder.backward(dh, input_grad=False)

        self.last_terms = {"loss": loss, "recon": recon, "kl": kl_mean}
        return loss, {**self.encoder.grads, **self.decoder.grads}

    def _loss_and_grads(self, x, y=None, eps=None):
        return self._elbo_step(x, eps, None if y is None else self._onehot(y))

    def loss_and_grads(self, x, y=None, eps=None):
        """β-weighted negative ELBO on the batch ``x`` and its gradient for every parameter.

        Parameters
        ----------
        x : (B, n_features) array
        y : (B,) int labels, for a conditional model only
        eps : (B, latent_dim) or (L, B, latent_dim) array, optional
            Standard-normal noise of the sampler. Given: the step is deterministic and the
            reconstruction term is averaged over the ``L`` samples. Omitted: one sample is drawn
            from ``self.rng``.

        Returns
        -------
        loss : float
            ``recon_mean + β · kl_mean``, nats per example [ELBO-1].
        grads : dict
            Same keys and shapes as ``params``.
        """
        x = self._check_X(x, "x")
        c = self._condition(y, x.shape[0])
        if eps is not None:
            eps = self._check_eps(eps, x.shape[0])
        return fresh_grads(self._elbo_step(x, eps, c))

    def _loss_terms(self, x, y=None, *, rng):
        """Forward only: ``loss``, ``recon`` and ``kl`` of one batch at the configured β, with one
        draw of eps from ``rng``."""
        B = x.shape[0]
        c = None if y is None else self._onehot(y)
        mu, logvar, _ = self._posterior(x, c)
        eps = rng.standard_normal((B, self.latent_dim)).astype(self.dtype, copy=False)
        z, _ = latent.reparameterize_forward(mu, logvar, eps)  # (B, Z)
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
        """Train with shuffled minibatches (see :meth:`npae.model.Model.fit` for ``fit_kwargs``);
        ``y``: the labels of a conditional model. Returns ``self``.

        ``warmup_epochs=n`` raises β linearly from 0 at the first epoch to its configured value at
        epoch ``n`` [ELBO-7]; ``beta_schedule_`` records the β of every epoch. ``history_`` holds
        per-epoch means of ``loss``, ``recon`` and ``kl`` (and ``val_*``).
        """
        check_scalar("warmup_epochs", warmup_epochs, low=0, integer=True)
        self._warmup_epochs = int(warmup_epochs)
        try:
            return super().fit(X, y, **fit_kwargs)
        finally:
            self._warmup_epochs = 0
            if self.is_built:
                self.warmup_factor_ = 1.0

    # ------------------------------------------------------------------ using the model
    def _output(self, out):
        return F.sigmoid(out) if self.likelihood == "bernoulli" else out

    def encode_stats(self, X, y=None):
        """Posterior parameters ``(mu, logvar)`` of q(z | x[, y]), each (N, latent_dim); any finite X."""
        X = self._check_X(X, targets=False)
        mu, logvar, _ = self._posterior(X, self._condition(y, X.shape[0]))
        return mu.copy(), logvar.copy()

    def encode(self, X, y=None):
        """Posterior mean ``mu`` (N, latent_dim)."""
        return self.encode_stats(X, y)[0]

    def decode(self, Z, y=None):
        """Bernoulli probabilities or Gaussian means (N, n_features) of p(x | z[, y])."""
        self._require_built()
        Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype)
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

    def sample(self, n, y=None, *, seed=None):
        """``n`` draws from the model: z ~ N(0, I) then decode (probabilities / means), (n, n_features).

        ``y`` (conditional model): an int (all the same class), an array of ``n`` labels, or None
        (labels drawn uniformly). ``seed=None`` draws from the model's sampling stream (new draws
        at every call; never the training generator).
        """
        check_scalar("n", n, low=1, integer=True)
        self._require_built()
        rng = self.sample_rng_ if seed is None else make_rng(seed)
        if self.n_classes:
            if y is None:
                y = rng.integers(0, int(self.n_classes), size=n)
            elif np.ndim(y) == 0:
                y = np.full(n, y) if isinstance(y, (int, np.integer)) else np.array([y])
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(self.dtype), y)

    # ------------------------------------------------------------------ evaluation
    def _check_Xc(self, X, y):
        X = self._check_X(X)
        return X, self._condition(y, X.shape[0])

    def _log_weights(self, x, c, eps):
        """Importance log-weights ``log p(x|z) + log p(z) − log q(z|x)`` [IWAE-1], shape (K, B)."""
        mu, logvar, _ = self._posterior(x, c)
        z, _ = latent.reparameterize_forward(mu, logvar, eps)  # (K, B, Z)
        out = self._decode_out(z, c)  # (K, B, D)
        log_prior = latent.log_standard_normal(z)  # (K, B)
        log_q = latent.log_normal(z, mu, logvar)  # (K, B)
        return self._log_px(out, x) + log_prior - log_q  # (K, B) [IWAE-1]

    def _bound(self, X, c, k, seed, batch_size, chunk, elbo):
        """Per-example bound, (N,): the k-sample ELBO mean if ``elbo`` else the IWAE-k bound."""
        check_scalar("k", k, low=1, integer=True)
        check_scalar("batch_size", batch_size, low=1, integer=True)
        if chunk is not None:
            check_scalar("chunk", chunk, low=1, integer=True)
        rng = self._eval_rng(seed)
        if chunk is None:  # keep one chunk of decoder outputs near 2^22 numbers
            chunk = max(1, (1 << 22) // (min(batch_size, X.shape[0]) * self.n_features_in_))
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], batch_size):
            xb = X[start:start + batch_size]
            cb = None if c is None else c[start:start + batch_size]
            acc, total = latent.StreamingLogMeanExp(), np.zeros(xb.shape[0])
            for k0 in range(0, k, chunk):
                kc = min(chunk, k - k0)
                eps = rng.standard_normal((kc, xb.shape[0], self.latent_dim)).astype(self.dtype)
                logw = self._log_weights(xb, cb, eps)  # (kc, b)
                if elbo:
                    total += logw.sum(axis=0)
                else:
                    acc.update(logw.astype(np.float64))
            out[start:start + xb.shape[0]] = total / k if elbo else acc.result()
        return out

    def neg_elbo(self, X, y=None, *, seed=None, n_samples=1, batch_size=256, per_example=False):
        """Negative ELBO (β = 1, whatever ``beta`` is), nats per example.

        ``E_q[−log p(x|z)] + KL`` estimated with ``n_samples`` draws per example (the mean of
        −log w over draws, which equals reconstruction + closed-form KL in expectation). The draws
        come from the evaluation stream (the same at every call) or from ``seed``; never from the
        training generator. Returns the mean over X (a float), or the (N,) values with
        ``per_example=True``.
        """
        check_scalar("n_samples", n_samples, low=1, integer=True)
        values = -self._bound(*self._check_Xc(X, y), n_samples, seed, batch_size, None, True)
        return values if per_example else float(values.mean())

    def log_likelihood_estimate(self, X, y=None, *, k=5000, seed=None, batch_size=100, chunk=None,
                                per_example=False):
        """Importance-weighted lower bound on log p(x) (IWAE-k, Burda et al. 2016), nats.

        ``log (1/k) Σ_j p(x, z_j) / q(z_j|x)`` with z_j ~ q(z|x) [IWAE-2]; k = 1 is the ELBO and the
        bound rises with k toward log p(x). Samples are drawn ``chunk`` at a time and combined with
        a streaming log-mean-exp [IWAE-3], so memory does not grow with k. Noise from the
        evaluation stream or ``seed``. Returns the mean over X (a float), or the (N,) values with
        ``per_example=True``.
        """
        values = self._bound(*self._check_Xc(X, y), k, seed, batch_size, chunk, False)
        return values if per_example else float(values.mean())

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
        :meth:`encoder_gradients` can backpropagate into it (used by npae.estimators)."""
        x = self._check_X(x, "x", targets=False)
        mu, logvar, self._inside = self._posterior(x, self._condition(y, x.shape[0]), train=True)
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
        ``(1/B) Σ_i nll_si`` with respect to ``z`` for every draw s (used by npae.estimators)."""
        S, B, Z = z.shape
        c = self._condition(y, B)
        out = self._decode_out(z, c, train=True)  # (S, B, D)
        nll = -self._log_px(out, x)  # (S, B)
        target = np.broadcast_to(x, out.shape).reshape(S * B, -1)
        _, dout = self._recon_loss(out.reshape(S * B, -1), target)  # scaled 1/(S·B)
        dz = self.decoder.backward(dout * S)[:, :Z].reshape(S, B, Z)  # scaled 1/B per draw
        return nll, dz

    def __repr__(self):
        cond = f"n_classes={self.n_classes}, " if self.n_classes else ""
        return (f"{type(self).__name__}({cond}input_dim={self.input_dim}, hidden={self.hidden!r}, "
                f"latent_dim={self.latent_dim}, activation={self.activation!r}, "
                f"likelihood={self.likelihood!r}, beta={self.beta}, dtype={self.dtype!r})")


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
                 slope=0.01, alpha=1.0, random_state=None, warm_start=False, arch="mlp",
                 encoder_layers=None, decoder_layers=None, image_shape=None):
        self.n_classes = n_classes
        self.arch, self.encoder_layers, self.decoder_layers = arch, encoder_layers, decoder_layers
        self.image_shape = image_shape
        self._store(input_dim, hidden, latent_dim, activation, likelihood, beta, dtype, seed, slope,
                    alpha, random_state, warm_start)

    def _build(self, n_features):
        if self.n_classes is None:
            raise InputError("ConditionalVAE needs n_classes, the number of label values")
        check_scalar("n_classes", self.n_classes, low=1, integer=True)
        super()._build(n_features)
