"""Objectives of importance log-weights for the VAE family: IWAE-k and the k-sample ELBO.

* :class:`LogWeightBounds` (shared by :class:`npae.VAE` and :class:`npae.TwoLayerVAE`): the training
  objective over a (K, B) block of log-weights and the chunked held-out bound.
* :class:`LogWeightStep` (a mixin of :class:`npae.VAE`): the held-out bounds ``neg_elbo`` and
  ``log_likelihood_estimate``, and the step of ``objective="iwae"`` or of a flow posterior, which
  trains on the log-weights ``log p(x|z) + log p(z) − log q(z|x)`` [IWAE-1] instead of the
  closed-form KL. Without a flow the latent part of a log-weight is
  :func:`npae.pairs.bounds.reparam_log_ratio_forward` / ``_backward`` [IWAE-10]; with one it is
  :meth:`npae.models.vae_flows.FlowPosterior._flow_log_ratio_forward`.

Derivations: docs/derivations/iwae.md, flow.md.
"""
import numpy as np

from npae.fast import backends
from npae.pairs import bounds
from npae.pairs import latent
from npae.validation import check_scalar, check_work

OBJECTIVES = ("elbo", "iwae")


class LogWeightBounds:
    """The objectives and bounds of importance log-weights ``log p(x, z) − log q(z|x)``, shared by
    :class:`VAE` and :class:`npae.TwoLayerVAE`: the training objective over a (K, B) block (IWAE-k
    or the k-sample ELBO) and the chunked held-out bound. The model provides ``objective``,
    ``n_features_in_`` and ``_eval_rng``."""

    def _objective(self, logw):
        """``(value, cache, backward)`` of the training objective over the log-weights (K, B)."""
        if self.objective == "iwae":
            value, cache = bounds.iwae_objective_forward(logw)  # [IWAE-4]
            return value, cache, bounds.iwae_objective_backward
        value, cache = bounds.multisample_elbo_forward(logw)  # [IWAE-6]
        return value, cache, bounds.multisample_elbo_backward

    def _chunked_bound(self, X, k, seed, batch_size, chunk, elbo, log_weights):
        """Per-example bound, (N,): the k-sample ELBO mean if ``elbo`` else the IWAE-k bound.
        ``log_weights(lo, hi, kc, rng)`` draws ``kc`` samples for rows ``lo:hi`` of ``X`` from
        ``rng`` and returns their log-weights (kc, hi − lo), forward only; the k draws of a batch
        arrive ``chunk`` at a time and meet in a streaming log-mean-exp [IWAE-3]."""
        check_scalar("k", k, low=1, integer=True)
        check_scalar("batch_size", batch_size, low=1, integer=True)
        if chunk is not None:
            check_scalar("chunk", chunk, low=1, integer=True)
        check_work(f"a bound with k={k} on {X.shape[0]} example(s) of a model of {self.n_params} "
                   f"parameters", k * X.shape[0] * self.n_params, "lower k or the number of examples")
        rng = self._eval_rng(seed)
        if chunk is None:  # keep one chunk of decoder outputs near 2^22 numbers
            chunk = max(1, (1 << 22) // (min(batch_size, X.shape[0]) * self.n_features_in_))
        out = np.empty(X.shape[0])
        with backends.for_job(self, X.shape[0] * k):  # auto: kernels for a large estimate only
            for start in range(0, X.shape[0], batch_size):
                stop = min(start + batch_size, X.shape[0])
                acc, total = latent.StreamingLogMeanExp(), np.zeros(stop - start)
                for k0 in range(0, k, chunk):
                    logw = log_weights(start, stop, min(chunk, k - k0), rng)  # (kc, b)
                    if elbo:
                        total += logw.sum(axis=0)
                    else:
                        acc.update(logw.astype(np.float64))  # [IWAE-3]
                out[start:stop] = total / k if elbo else acc.result()
        return out


class LogWeightStep(LogWeightBounds):
    """The VAE's log-weight graph and its training step (IWAE-k, or the k-sample ELBO with a flow).
    The model provides the encoder and decoder (``_posterior``, ``_decode_out``), the likelihood
    (``_log_px_forward`` / ``_log_px_backward``) and, with a flow, :class:`FlowPosterior`."""

    def _log_ratio_forward(self, mu, logvar, eps, h):
        """``((z, log p(z) − log q(z|x)), cache)`` for the draws ``eps`` (K, B, Z): the sampler and
        the two densities [IWAE-10], through the flow when there is one."""
        if self.flow is None:
            return bounds.reparam_log_ratio_forward(mu, logvar, eps)  # (K, B, Z), (K, B) [IWAE-10]
        return self._flow_log_ratio_forward(mu, logvar, eps, h)

    def _log_ratio_backward(self, dz, dlog_ratio, cache):
        """``(dmu, dlogvar, dh)`` from the gradients of the decoder's input z and of the log-ratio."""
        if self.flow is None:
            dmu, dlogvar = bounds.reparam_log_ratio_backward((dz, dlog_ratio), cache)  # [IWAE-10]
            return dmu, dlogvar, None
        return self._flow_log_ratio_backward(dz, dlog_ratio, cache)

    def _log_weight_graph(self, x, c, eps, *, train):
        """The log-weights ``log p(x|z) + log p(z) − log q(z|x)`` (K, B) of K draws per example
        [IWAE-1] (z the flow's output with a flow, [FLOW-7]), and everything the backward needs.
        ``eps``: (K, B, Z)."""
        mu, logvar, inside, h = self._posterior(x, c, train=train)  # (B, Z) each; h (B, C_h)
        (z, log_ratio), latent_cache = self._log_ratio_forward(mu, logvar, eps, h)  # (K, B, Z), (K, B)
        out = self._decode_out(z, c, train=train)  # (K, B, D or 2D)
        log_px, px_cache = self._log_px_forward(out, x)  # (K, B)
        logw = log_px + log_ratio  # (K, B) [IWAE-1]
        graph = dict(inside=inside, latent=latent_cache, px=px_cache, log_px=log_px, kl=-log_ratio)
        return logw, graph

    def _logw_step(self, x, eps, c=None):
        """Forward and backward of an objective of the log-weights (IWAE-k, or the k-sample ELBO
        with a flow), node by node through decoder, log-ratio and sampler."""
        B, Z = x.shape[0], self.latent_dim
        if eps is None:
            eps = self.rng.standard_normal((int(self.k), B, Z)).astype(self.dtype, copy=False)
        elif eps.ndim == 2:
            eps = eps[None]  # (1, B, Z)
        K = eps.shape[0]

        logw, g = self._log_weight_graph(x, c, eps, train=True)  # (K, B)
        self._count_clamps(g["inside"])
        loss, obj_cache, objective_backward = self._objective(logw)
        dlogw = objective_backward(1.0, obj_cache)  # (K, B) [IWAE-5] or [IWAE-7]

        dout = self._log_px_backward(dlogw, g["px"])  # (K, B, D or 2D): through log p(x|z)
        dzc = self.decoder.backward(dout.reshape(K * B, -1))  # (K·B, Z + C)
        dz = dzc[:, :Z].reshape(K, B, Z)  # (K, B, Z) [ELBO-8] the label columns stop here
        dmu, dlogvar, dh = self._log_ratio_backward(dz, dlogw, g["latent"])  # (B, Z) each
        dlogvar_raw = latent.logvar_clamp_backward(dlogvar, g["inside"])  # (B, Z) [REPARAM-6]
        parts = [dmu, dlogvar_raw] if dh is None else [dmu, dlogvar_raw, dh]  # dh (B, C_h): IAF's context
        self.encoder.backward(np.concatenate(parts, axis=1), input_grad=False)  # [ELBO-6]

        recon = -float(np.mean(g["log_px"]))
        kl = float(np.mean(g["kl"]))  # a sampled KL of the posterior to the prior
        self.last_terms = {"loss": loss, "recon": recon, "kl": kl}
        return loss, self._grads()

    def _log_weights(self, x, c, eps):
        """Importance log-weights ``log p(x, z) − log q(z|x)`` [IWAE-1] of the draws ``eps``
        (K, B, Z), forward only, the flow included; shape (K, B)."""
        return self._log_weight_graph(x, c, eps, train=False)[0]

    def _bound(self, X, c, k, seed, batch_size, chunk, elbo):
        """Per-example bound, (N,): the k-sample ELBO mean if ``elbo`` else the IWAE-k bound."""
        def log_weights(lo, hi, kc, rng):
            eps = rng.standard_normal((kc, hi - lo, self.latent_dim)).astype(self.dtype)
            return self._log_weights(X[lo:hi], None if c is None else c[lo:hi], eps)

        return self._chunked_bound(X, k, seed, batch_size, chunk, elbo, log_weights)

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
