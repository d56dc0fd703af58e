"""The decoder's p(x | z) of the VAE family: Bernoulli on logits, or Gaussian with a fixed, shared,
per-feature or learned variance. A mixin shared by :class:`npae.VAE` and :class:`npae.TwoLayerVAE`.

The plain Bernoulli VAE's step uses none of this module: its reconstruction term is the backend's
BCE unit, called from :meth:`npae.models.vae.VAE._recon_loss`. Derivations:
docs/derivations/elbo.md#elbo-2 .. #elbo-4, docs/derivations/gaussdec.md.
"""
import numpy as np

from npae.pairs import bounds
from npae.pairs import functional as F
from npae.fast.backends import ops
from npae.constants import DECODER_LOGVAR_FLOOR
from npae.models import layers
from npae.models.layers import FreeParams

LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = bounds.VARIANCES


class DecoderLikelihood:
    """The decoder's p(x | z), shared by :class:`VAE` and :class:`npae.TwoLayerVAE`: Bernoulli on
    logits, or Gaussian with the variance ``fixed`` (1), ``shared`` / ``per_feature`` (a parameter
    ``decoder_logvar``) or ``learned`` (a second decoder head), through the smooth floor
    [GAUSSDEC-5]. The model provides ``likelihood``, ``variance``, ``n_features_in_`` and
    ``decoder_logvar`` (None unless shared or per feature)."""

    def _make_decoder_logvar(self, n_features, dtype):
        """The shared (1,) or per-feature (D,) log σ² of a Gaussian decoder as :class:`FreeParams`
        named ``decoder.logvar``, or None (Bernoulli, fixed or learned variance)."""
        if self.likelihood != "gaussian" or self.variance not in ("shared", "per_feature"):
            return None
        shape = (1,) if self.variance == "shared" else (n_features,)
        return FreeParams({"logvar": layers.param_array(shape, dtype, lambda: np.zeros(shape, dtype=dtype))},
                          "decoder.")

    def _gaussian_head(self, out):
        """``(mean, logvar_x, floor_cache)`` of the Gaussian decoder from its output ``out``."""
        D = self.n_features_in_
        if self.variance == "fixed":
            return out, np.zeros((), dtype=out.dtype), None  # [ELBO-3] σ² = 1, no parameter
        if self.variance == "learned":  # a second head: [mean | raw log-variance]
            logvar_x, floor_cache = bounds.logvar_floor_forward(out[..., D:], DECODER_LOGVAR_FLOOR)
            return out[..., :D], logvar_x, floor_cache  # [ELBO-3]
        logvar_x, floor_cache = bounds.logvar_floor_forward(self.decoder_logvar.params["logvar"],
                                                            DECODER_LOGVAR_FLOOR)
        return out, logvar_x, floor_cache  # [ELBO-3] shared (1,) or per feature (D,), floored

    def _log_px_forward(self, out, x):
        """``log p(x | z)`` per row (sum over features), shape ``out.shape[:-1]``, and the cache of
        :meth:`_log_px_backward`. ``x`` (B, D) broadcasts against ``out`` (..., B, D)."""
        if self.likelihood == "bernoulli":
            return ops.bernoulli_log_likelihood(out, x), (out, x)  # [LOSS-5]
        mean, logvar_x, floor_cache = self._gaussian_head(out)
        nll, nll_cache = bounds.gaussian_nll_forward(mean, logvar_x, x)  # [GAUSSDEC-1]
        return -nll, (nll_cache, floor_cache)

    def _log_px_backward(self, dlog_px, cache):
        """Gradient with respect to the decoder output of ``Σ dlog_px · log p(x|z)`` (shape of
        ``out``); a shared or per-feature log-variance gets its gradient written in place."""
        if self.likelihood == "bernoulli":
            out, x = cache
            return -dlog_px[..., None] * (F.sigmoid(out) - x)  # [ELBO-2] dNLL/ds = σ(s) − x
        nll_cache, floor_cache = cache
        dmean, dlogvar_x = bounds.gaussian_nll_backward(-dlog_px, nll_cache)  # [GAUSSDEC-2..4]
        if self.variance == "learned":
            draw = bounds.logvar_floor_backward(dlogvar_x, floor_cache)  # [GAUSSDEC-6]
            return np.concatenate([dmean, draw], axis=-1)  # [ELBO-4] both heads of the decoder
        if self.decoder_logvar is not None:  # a parameter of its own, back through the floor
            self.decoder_logvar.grads["logvar"][...] = bounds.logvar_floor_backward(
                dlogvar_x, floor_cache)  # [ELBO-4]
        return dmean  # [ELBO-4]

    def _gaussian_recon_loss(self, out, x):
        """``(recon_mean, dout)`` of the Gaussian decoder for outputs ``out`` (R, D or 2D) of R rows
        against their targets ``x`` (R, D): the NLL summed over features, averaged over the rows."""
        R = out.shape[0]
        log_px, cache = self._log_px_forward(out, x)  # (R,)
        recon = -float(np.sum(log_px)) / R  # recon_mean
        return recon, self._log_px_backward(np.full(R, -1.0 / R, dtype=out.dtype), cache)

    def _log_px(self, out, x):
        """``log p(x | z)`` per row from the decoder output (forward only)."""
        return self._log_px_forward(out, x)[0]

    def _output(self, out):
        """What ``decode`` returns: Bernoulli probabilities σ(logits), or the Gaussian mean."""
        if self.likelihood == "bernoulli":
            return F.sigmoid(out)
        return out[..., :self.n_features_in_]
