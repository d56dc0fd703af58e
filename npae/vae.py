"""Variational autoencoders with every backward pass written out.

``VAE``: x → encoder → (mu, logvar) → z = mu + std·eps → decoder → p(x|z).
``ConditionalVAE``: the same with a one-hot label joined to the encoder input and to z.

Loss (what ``loss_and_grads`` returns and ``fit`` minimises), in nats per example::

    loss = (1/(L·B)) Σ_l Σ_i NLL(x_i | z_li)  +  β · (1/B) Σ_i KL_i           [ELBO-1]

With β = 1 this is the negative ELBO, a real upper bound on −log p(x) (the Gaussian likelihood
keeps its constant 0.5·D·log 2π). Derivations: docs/derivations/elbo.md, reparam.md, kl.md,
iwae.md.
"""
import numpy as np

from . import functional as F
from . import kernels
from . import latent
from .autoencoder import ACTIVATION_NAMES, build_mlp
from .layers import FlatParams
from .init import make_rng
from .latent import LOG_2PI
from .model import Model, fresh_grads
from .validation import check_array, check_choice, check_dtype, check_labels, check_scalar, check_sizes

LIKELIHOODS = ("bernoulli", "gaussian")


class VAE(Model):
    """Variational autoencoder with a diagonal Gaussian posterior and a N(0, I) prior.

    Parameters
    ----------
    input_dim : int
    hidden : tuple of int
        Encoder hidden widths; the decoder mirrors them.
    latent_dim : int
    activation : str
        Hidden-layer activation (identity, relu, leaky_relu, sigmoid, tanh, softplus, elu).
    likelihood : "bernoulli" | "gaussian"
        ``"bernoulli"``: the decoder outputs logits, NLL = binary cross-entropy summed over features
        (data must lie in [0, 1]; grey levels are allowed). ``"gaussian"``: the decoder outputs the
        mean of N(x; m, I) (fixed unit variance), NLL = 0.5 ||x − m||² + 0.5 D log 2π.
    beta : float >= 0
        Weight of the KL term (β-VAE); 1 gives the ELBO.
    dtype : "float64" | "float32"
    seed : int
        Seeds ``self.rng``: initial weights, minibatch order and every ``eps`` not passed in.
    slope, alpha : float
        Leak slope of leaky_relu, α of elu.

    Attributes
    ----------
    params : dict
        ``encoder.<k>.W``/``.b`` (the last encoder layer has 2·latent_dim outputs: the first half is
        ``mu``, the second half the raw ``logvar``), then ``decoder.<k>.W``/``.b``, in forward order.
    clamp_count_ : int
        Total number of logvar entries the clamp has changed (see npae.constants.LOGVAR_MIN).
    last_terms : dict
        ``loss``, ``recon`` (NLL, per example) and ``kl`` (per example) of the last step.
    """

    stochastic_inputs = ("eps",)

    def __init__(self, input_dim, hidden=(400,), latent_dim=20, activation="relu",
                 likelihood="bernoulli", beta=1.0, dtype="float64", seed=0, *, slope=0.01,
                 alpha=1.0):
        self._build(input_dim, 0, hidden, latent_dim, activation, likelihood, beta, dtype, seed,
                    slope, alpha)
        self.config = dict(input_dim=int(input_dim), hidden=list(self.hidden),
                           latent_dim=self.latent_dim, activation=activation, likelihood=likelihood,
                           beta=float(beta), dtype=self.dtype.name, seed=seed, slope=float(slope),
                           alpha=float(alpha))

    def _build(self, input_dim, n_cond, hidden, latent_dim, activation, likelihood, beta, dtype,
               seed, slope, alpha):
        check_scalar("input_dim", input_dim, low=1, integer=True)
        check_scalar("latent_dim", latent_dim, low=1, integer=True)
        hidden = check_sizes("hidden", hidden)
        check_choice("activation", activation, ACTIVATION_NAMES)
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_scalar("beta", beta, low=0.0)
        check_scalar("slope", slope, low=0.0)
        check_scalar("alpha", alpha, low=0.0, low_open=True)
        self.dtype = check_dtype(dtype)
        self.input_dim, self.latent_dim, self.hidden = int(input_dim), int(latent_dim), hidden
        self.n_cond = int(n_cond)
        self.likelihood = likelihood
        self.beta = float(beta)
        self.needs_unit_targets = likelihood == "bernoulli"
        self.rng = make_rng(seed)
        kw = dict(rng=self.rng, dtype=self.dtype, slope=slope, alpha=alpha)
        # One trunk whose last Dense layer emits [mu | logvar_raw]: one matmul, and the params stay
        # a plain chain encoder.0 ... encoder.K (docs/derivations/elbo.md#elbo-6).
        self.encoder = build_mlp([self.input_dim + self.n_cond, *hidden, 2 * self.latent_dim],
                                 activation, "identity", prefix="encoder.", **kw)
        self.decoder = build_mlp([self.latent_dim + self.n_cond, *hidden[::-1], self.input_dim],
                                 activation, "identity", prefix="decoder.", **kw)
        self.flat_params = FlatParams([self.encoder, self.decoder])  # one array each, see FlatParams
        self.params = dict(self.flat_params.params)
        self.clamp_count_ = 0
        self.last_terms = {}
        self._warmup_epochs = 0
        self._beta_target = self.beta
        self.beta_schedule_ = []

    # ------------------------------------------------------------------ checks
    def _check_eps(self, eps, B):
        Z = self.latent_dim
        want = f"(B, Z) = ({B}, {Z}) or (L, {B}, {Z})"
        eps = check_array(eps, "eps", ndim=(2, 3), dtype=self.dtype)
        if eps.shape[-2:] != (B, Z):
            raise ValueError(f"eps must have shape {want} for a batch of {B} examples and "
                             f"latent_dim={Z}, got shape {eps.shape}")
        return eps

    def _draw_eps(self, B, eps, rng=None):
        if eps is None:
            rng = self.rng if rng is None else rng
            return rng.standard_normal((B, self.latent_dim)).astype(self.dtype, copy=False)
        return eps

    # ------------------------------------------------------------------ pieces of the graph
    def _join(self, a, c):
        """``a`` with the condition ``c`` (B, C) appended on the last axis (``a`` may be (L, B, .))."""
        if c is None:
            return a
        c = np.broadcast_to(c, a.shape[:-1] + c.shape[-1:])
        return np.concatenate([a, c], axis=-1)

    def _posterior(self, x, c=None):
        """Encoder forward: returns ``(mu, logvar, inside)`` (logvar clamped, inside = clamp mask)."""
        h = self.encoder.forward(self._join(x, c))  # (B, 2Z)
        Z = self.latent_dim
        mu, logvar_raw = h[:, :Z], h[:, Z:]  # (B, Z), (B, Z)
        logvar, inside = latent.logvar_clamp_forward(logvar_raw)  # (B, Z)
        return mu, logvar, inside

    def _decode_out(self, z, c=None):
        """Decoder output for codes of shape (..., Z): Bernoulli logits or Gaussian means."""
        zc = self._join(z, c)
        out = self.decoder.forward(zc.reshape(-1, zc.shape[-1]))  # (L·B, D)
        return out.reshape(z.shape[:-1] + (self.input_dim,))

    def _log_px(self, out, x):
        """``log p(x | z)`` per example (sum over features) from the decoder output; shape out.shape[:-1]."""
        if self.likelihood == "bernoulli":
            return -F.bce_with_logits_sum(out, x)  # [LOSS-5]
        diff = x - out
        return -0.5 * np.sum(diff * diff, axis=-1) - 0.5 * self.input_dim * LOG_2PI  # [ELBO-3]

    def _dout(self, out, x, scale):
        """Gradient of ``scale · Σ NLL`` with respect to the decoder output."""
        if self.likelihood == "bernoulli":
            return scale * (F.sigmoid(out) - x)  # (L, B, D) [ELBO-2]
        return scale * (out - x)  # (L, B, D) [ELBO-4]

    # ------------------------------------------------------------------ the loss
    def _elbo_step(self, x, eps, c=None):
        """Forward and backward of the β-weighted negative ELBO on one batch (inputs checked)."""
        B, Z = x.shape[0], self.latent_dim
        eps = self._draw_eps(B, eps)
        L = eps.shape[0] if eps.ndim == 3 else 1

        # forward
        mu, logvar, inside = self._posterior(x, c)  # (B, Z) each
        self.clamp_count_ += int(inside.size - np.count_nonzero(inside))
        fused = kernels.ENABLED and eps.ndim == 2  # one sample: the numba kernels apply
        if fused:  # sampler and KL in one pass; the same numbers as the two pairs below
            z, kl_sum, fused_cache = kernels.reparam_kl_forward_fused(mu, logvar, eps)  # (B, Z)
        else:
            z, rep_cache = latent.reparameterize_forward(mu, logvar, eps)  # (B, Z) or (L, B, Z)
            kl, kl_cache = latent.gaussian_kl_forward(mu, logvar)  # (B,)
            kl_sum = float(np.sum(kl))
        out = self._decode_out(z, c)  # (B, D) or (L, B, D)
        if fused and self.likelihood == "bernoulli":
            recon, dout = kernels.bce_with_logits_loss(out, x)  # recon_mean, (B, D): one fused pass
        else:
            recon = -float(np.sum(self._log_px(out, x))) / (L * B)  # recon_mean
            dout = self._dout(out, x, 1.0 / (L * B))  # (L, B, D)
        kl_mean = kl_sum / B
        loss = recon + self.beta * kl_mean  # [ELBO-1]

        # backward
        dzc = self.decoder.backward(dout.reshape(-1, self.input_dim))  # (L·B, Z + C)
        dz = dzc[:, :Z].reshape(z.shape)  # (B, Z) or (L, B, Z)
        if fused:  # the same fan-in, summed on the tagged [ELBO-5] lines of the kernel's loop
            dmu, dlogvar = kernels.reparam_kl_backward_fused(dz, fused_cache, self.beta / B)
        else:
            dmu_from_sampler, dlogvar_from_sampler = latent.reparameterize_backward(dz, rep_cache)
            dmu_kl, dlogvar_kl = latent.gaussian_kl_backward(np.full(B, 1.0 / B, dtype=x.dtype), kl_cache)
            dmu = dmu_from_sampler + self.beta * dmu_kl  # (B, Z) [ELBO-5]
            dlogvar = dlogvar_from_sampler + self.beta * dlogvar_kl  # (B, Z) [ELBO-5]
        dlogvar_raw = latent.logvar_clamp_backward(dlogvar, inside)  # (B, Z)
        dh = np.concatenate([dmu, dlogvar_raw], axis=1)  # (B, 2Z) [ELBO-6]
        self.encoder.backward(dh, input_grad=False)

        self.last_terms = {"loss": loss, "recon": recon, "kl": kl_mean}
        return loss, {**self.encoder.grads, **self.decoder.grads}

    def _loss_and_grads(self, x, eps=None):
        return self._elbo_step(x, eps)

    def loss_and_grads(self, x, eps=None):
        """β-weighted negative ELBO on the batch ``x`` and its gradient for every parameter.

        Parameters
        ----------
        x : (B, input_dim) array
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
        if eps is not None:
            eps = self._check_eps(eps, x.shape[0])
        return fresh_grads(self._elbo_step(x, eps))

    # ------------------------------------------------------------------ training
    def _epoch_begin(self, epoch, epochs):
        """KL warm-up: β_e = β · min(1, e / n) for epoch e (0-based) and n warm-up epochs [ELBO-7]."""
        if self._warmup_epochs > 0:
            self.beta = self._beta_target * min(1.0, epoch / self._warmup_epochs)  # [ELBO-7]
        self.beta_schedule_.append(self.beta)

    def fit(self, X, y=None, *, warmup_epochs=0, **fit_kwargs):
        """Train with shuffled minibatches (see :meth:`npae.model.Model.fit` for ``fit_kwargs``;
        ``y`` is for the conditional VAE).

        ``warmup_epochs=n`` raises β linearly from 0 at the first epoch to its configured value at
        epoch ``n`` [ELBO-7]; ``self.beta_schedule_`` records the β of every epoch. Returns the
        history: per-epoch means of ``loss``, ``recon`` and ``kl`` (and ``val_*``).
        """
        check_scalar("warmup_epochs", warmup_epochs, low=0, integer=True)
        self._beta_target = self.beta
        self._warmup_epochs = int(warmup_epochs)
        self.beta_schedule_ = []
        try:
            return super().fit(X, y, **fit_kwargs)
        finally:
            self.beta = self._beta_target
            self._warmup_epochs = 0

    # ------------------------------------------------------------------ using the model
    def _output(self, out):
        return F.sigmoid(out) if self.likelihood == "bernoulli" else out

    def encode_stats(self, X):
        """Posterior parameters ``(mu, logvar)``, each (N, latent_dim)."""
        mu, logvar, _ = self._posterior(self._check_X(X))
        return mu.copy(), logvar.copy()

    def encode(self, X):
        """Posterior mean ``mu`` (N, latent_dim)."""
        return self.encode_stats(X)[0]

    def decode(self, Z):
        """Bernoulli probabilities or Gaussian means (N, input_dim) for the codes ``Z``."""
        Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype)
        return self._output(self._decode_out(Z))

    def reconstruct(self, X):
        """decode(encode(X)): the decoder's output at the posterior mean."""
        return self.decode(self.encode(X))

    def sample(self, n, seed=None):
        """``n`` draws from the model: z ~ N(0, I) then decode (probabilities / means), (n, input_dim).

        ``seed=None`` draws from ``self.rng``.
        """
        check_scalar("n", n, low=1, integer=True)
        rng = self.rng if seed is None else make_rng(seed)
        return self.decode(rng.standard_normal((n, self.latent_dim)).astype(self.dtype))

    # ------------------------------------------------------------------ evaluation
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
        rng = self.rng if seed is None else make_rng(seed)
        if chunk is None:  # keep one chunk of decoder outputs near 2^22 numbers
            chunk = max(1, (1 << 22) // (min(batch_size, X.shape[0]) * self.input_dim))
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

    def neg_elbo(self, X, seed=None, *, n_samples=1, batch_size=256, per_example=False):
        """Negative ELBO (β = 1, whatever ``self.beta`` is), nats per example.

        ``E_q[−log p(x|z)] + KL`` estimated with ``n_samples`` draws per example (the mean of
        −log w over draws, which equals reconstruction + closed-form KL in expectation).
        Returns the mean over X (a float), or the (N,) values with ``per_example=True``.
        """
        check_scalar("n_samples", n_samples, low=1, integer=True)
        values = -self._bound(self._check_X(X), None, n_samples, seed, batch_size, None, True)
        return values if per_example else float(values.mean())

    def log_likelihood_estimate(self, X, k=5000, seed=None, *, batch_size=100, chunk=None,
                                per_example=False):
        """Importance-weighted lower bound on log p(x) (IWAE-k, Burda et al. 2016), nats.

        ``log (1/k) Σ_j p(x, z_j) / q(z_j|x)`` with z_j ~ q(z|x) [IWAE-2]; k = 1 is the ELBO and the
        bound rises with k toward log p(x). Samples are drawn ``chunk`` at a time and combined with
        a streaming log-mean-exp [IWAE-3], so memory does not grow with k.
        Returns the mean over X (a float), or the (N,) values with ``per_example=True``.
        """
        values = self._bound(self._check_X(X), None, k, seed, batch_size, chunk, False)
        return values if per_example else float(values.mean())

    def kl_per_dimension(self, X):
        """Mean over X of ``KL(q(z_j|x) || N(0, 1))`` for each latent j, nats, (latent_dim,)."""
        mu, logvar = self.encode_stats(X)
        return np.mean(latent.gaussian_kl_terms(mu, logvar), axis=0)

    def active_units(self, X, threshold=latent.ACTIVE_UNIT_THRESHOLD):
        """Number of latents whose posterior mean varies across X: ``Var_x(mu_j) > threshold``."""
        return int(np.sum(np.var(self.encode(X), axis=0) > threshold))

    def __repr__(self):
        c = self.config
        return (f"{type(self).__name__}(input_dim={c['input_dim']}, hidden={tuple(c['hidden'])}, "
                f"latent_dim={c['latent_dim']}, activation={c['activation']!r}, "
                f"likelihood={c['likelihood']!r}, beta={c['beta']}, dtype={c['dtype']!r})")


class ConditionalVAE(VAE):
    """VAE conditioned on a class label: ``q(z | x, y)`` and ``p(x | z, y)``.

    The one-hot label (n_classes columns) is appended to the encoder input and to z; the prior stays
    N(0, I). Parameters as :class:`VAE`, plus ``n_classes``. Methods that see data take the labels
    ``y`` (ints in 0..n_classes−1) after ``X``; ``fit(X, y, ...)``.
    """

    def __init__(self, input_dim, n_classes, hidden=(400,), latent_dim=20, activation="relu",
                 likelihood="bernoulli", beta=1.0, dtype="float64", seed=0, *, slope=0.01,
                 alpha=1.0):
        check_scalar("n_classes", n_classes, low=1, integer=True)
        self.n_classes = int(n_classes)
        self._build(input_dim, self.n_classes, hidden, latent_dim, activation, likelihood, beta,
                    dtype, seed, slope, alpha)
        self.config = dict(input_dim=int(input_dim), n_classes=self.n_classes,
                           hidden=list(self.hidden), latent_dim=self.latent_dim,
                           activation=activation, likelihood=likelihood, beta=float(beta),
                           dtype=self.dtype.name, seed=seed, slope=float(slope), alpha=float(alpha))

    def _check_y(self, y, n):
        return check_labels("y", y, self.n_classes, n_samples=n)

    def _onehot(self, y):
        c = np.zeros((y.shape[0], self.n_classes), dtype=self.dtype)  # (B, C)
        c[np.arange(y.shape[0]), y] = 1.0
        return c

    def _check_Xy(self, X, y, name="X"):
        X = self._check_X(X, name)
        return X, self._onehot(self._check_y(y, X.shape[0]))

    # ------------------------------------------------------------------ training
    def _loss_and_grads(self, x, y, eps=None):
        return self._elbo_step(x, eps, self._onehot(y))

    def loss_and_grads(self, x, y=None, eps=None):
        """As :meth:`VAE.loss_and_grads`, with labels ``y`` (B,) in 0..n_classes−1 (required)."""
        if y is None:
            raise TypeError("ConditionalVAE.loss_and_grads needs the labels y (one per row of x)")
        x, c = self._check_Xy(x, y, "x")
        if eps is not None:
            eps = self._check_eps(eps, x.shape[0])
        return fresh_grads(self._elbo_step(x, eps, c))

    def _fit_data(self, X, y=None):
        if y is None:
            raise ValueError("the conditional VAE needs labels: fit(X, y) and validation_data=(X, y)")
        X = self._check_X(X)
        return X, self._check_y(y, X.shape[0])

    def _train_batch(self, x, y):
        return self._loss_and_grads(x, y)

    def _evaluate(self, X, y, batch_size=1024):
        sums, n = {}, X.shape[0]
        for start in range(0, n, batch_size):
            xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            self._loss_and_grads(xb, yb)
            for key, value in self.last_terms.items():
                sums[key] = sums.get(key, 0.0) + value * xb.shape[0]
        return {key: total / n for key, total in sums.items()}

    def fit(self, X, y, *, warmup_epochs=0, **fit_kwargs):
        """Train on images ``X`` with labels ``y``; ``validation_data=(X_val, y_val)``.
        Other arguments as :meth:`VAE.fit`."""
        return super().fit(X, y, warmup_epochs=warmup_epochs, **fit_kwargs)

    def loss(self, X, y):
        """β-weighted negative ELBO on (X, y), one sample per example, nats per example."""
        return self._evaluate(*self._fit_data(X, y))["loss"]

    # ------------------------------------------------------------------ using the model
    def encode_stats(self, X, y):
        """Posterior parameters ``(mu, logvar)`` of q(z | x, y), each (N, latent_dim)."""
        mu, logvar, _ = self._posterior(*self._check_Xy(X, y))
        return mu.copy(), logvar.copy()

    def encode(self, X, y):
        """Posterior mean (N, latent_dim)."""
        return self.encode_stats(X, y)[0]

    def decode(self, Z, y):
        """Probabilities / means (N, input_dim) of p(x | z, y)."""
        Z = check_array(Z, "Z", n_features=self.latent_dim, dtype=self.dtype)
        return self._output(self._decode_out(Z, self._onehot(self._check_y(y, Z.shape[0]))))

    def reconstruct(self, X, y):
        return self.decode(self.encode(X, y), y)

    def sample(self, n, y=None, seed=None):
        """``n`` draws with z ~ N(0, I) and label ``y``: an int (all the same class), an array of
        ``n`` labels, or None (labels drawn uniformly). Returns (n, input_dim)."""
        check_scalar("n", n, low=1, integer=True)
        rng = self.rng if seed is None else make_rng(seed)
        if y is None:
            y = rng.integers(0, self.n_classes, size=n)
        elif np.ndim(y) == 0:
            y = np.full(n, y) if isinstance(y, (int, np.integer)) else np.array([y])
        Z = rng.standard_normal((n, self.latent_dim)).astype(self.dtype)
        return self.decode(Z, y)

    def neg_elbo(self, X, y, seed=None, *, n_samples=1, batch_size=256, per_example=False):
        """Negative ELBO of p(x | y) (β = 1), nats per example; see :meth:`VAE.neg_elbo`."""
        check_scalar("n_samples", n_samples, low=1, integer=True)
        values = -self._bound(*self._check_Xy(X, y), n_samples, seed, batch_size, None, True)
        return values if per_example else float(values.mean())

    def log_likelihood_estimate(self, X, y, k=5000, seed=None, *, batch_size=100, chunk=None,
                                per_example=False):
        """IWAE-k lower bound on log p(x | y); see :meth:`VAE.log_likelihood_estimate`."""
        values = self._bound(*self._check_Xy(X, y), k, seed, batch_size, chunk, False)
        return values if per_example else float(values.mean())

    def kl_per_dimension(self, X, y):
        mu, logvar = self.encode_stats(X, y)
        return np.mean(latent.gaussian_kl_terms(mu, logvar), axis=0)

    def active_units(self, X, y, threshold=latent.ACTIVE_UNIT_THRESHOLD):
        return int(np.sum(np.var(self.encode(X, y), axis=0) > threshold))

    def __repr__(self):
        return super().__repr__().replace("(input_dim", f"(n_classes={self.n_classes}, input_dim", 1)
