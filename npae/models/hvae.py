"""A VAE with two stochastic layers: the hierarchical model of Burda, Grosse & Salakhutdinov (2016).

Generative model, top down: ``p(z2) p(z1|z2) p(x|z1)``::

    z2 ~ N(0, I) → prior network → [pmu1 | plogvar1] → z1 ~ N(pmu1, e^plogvar1) → decoder → p(x|z1)

Recognition model, bottom up: ``q(z1|x) q(z2|z1)``::

    x → encoder1 → [mu1 | logvar1] → z1 = mu1 + σ1·eps1 → encoder2 → [mu2 | logvar2] → z2 = mu2 + σ2·eps2

With ``k`` draws (z1, z2) per example, the log-weight of each draw is [HIER-1]
``log w = log p(x|z1) + log p(z1|z2) + log p(z2) − log q(z1|x) − log q(z2|z1)``, and training
minimises either the negative k-sample ELBO ``−mean_k log w`` [IWAE-6] or the negative IWAE-k bound
``−log mean_k w`` [IWAE-4], in nats per example. No KL has a closed form here (p(z1|z2) is a
network's output), so both objectives are computed from the log-weights.

The step (:meth:`TwoLayerVAE._logw_step`) is written node by node: the density terms and their
gradients are the pairs of :mod:`npae.pairs.bounds` (``hierarchical_log_weight_forward/backward``), the
four networks are dense chains (:func:`npae.models.layers.build_mlp`, whose steps call the backend's
dense+activation unit), the samplers are :func:`npae.pairs.latent.reparameterize_forward/backward`, and
every value used in more than one place collects its gradients on one tagged line [HIER-3].
Derivations: docs/derivations/hier.md, iwae.md, reparam.md.
"""
import warnings

import numpy as np

from npae.pairs import bounds
from npae.pairs import latent
from npae.constants import BATCH_SIZE, EPOCHS, LOGVAR_CLAMP_WARN_FRACTION, LR, OPTIMIZER, VERBOSE
from npae.init import make_rng
from npae.models.layers import ACTIVATION_NAMES, FlatParams, FreeParams, build_mlp, param_array
from npae.models.model import Model, fresh_grads
from npae.models.sklearn_protocol import shared_docs
from npae.models.sizing import _shapes_by_building
from npae.models.vae import CollapseWarning
from npae.training.loop import refuse_clamped_fit
from npae.models.vae_likelihood import LIKELIHOODS, VARIANCES, DecoderLikelihood
from npae.models.vae_objectives import OBJECTIVES, LogWeightBounds
from npae.validation import (InputError, InputTypeError, check_array, check_choice, check_dtype,
                             check_scalar, check_sizes)


@shared_docs
class TwoLayerVAE(DecoderLikelihood, LogWeightBounds, Model):
    """Variational autoencoder with two stochastic layers z1 (near the data) and z2 (on top).

    The defaults are the sizes given for the IWAE paper's MNIST model: deterministic layers of 100
    units around z1 of 100 units, and of 50 units around z2 of 50 units, tanh everywhere. (The
    authors' published code builds it wider: ``hidden1=(200, 200), hidden2=(100, 100)``.)

    Parameters
    ----------
    input_dim : int or None
        Number of input features; None: learned from the data at ``fit`` (``n_features_in_``).
    hidden1 : tuple of int
        Hidden widths of ``encoder1`` (x → [mu1 | logvar1]); the decoder (z1 → x) mirrors them.
    latent_dim1 : int
        Size of z1.
    hidden2 : tuple of int
        Hidden widths of ``encoder2`` (z1 → [mu2 | logvar2]); the prior network
        (z2 → [pmu1 | plogvar1]) mirrors them.
    latent_dim2 : int
        Size of z2.
    activation : str
        Hidden-layer activation of all four networks (identity, relu, leaky_relu, sigmoid, tanh,
        softplus, elu).
    likelihood : "bernoulli" | "gaussian"
        p(x|z1): Bernoulli logits (data in [0, 1]) or a Gaussian mean, as :class:`npae.VAE`.
    .. shared:: dtype; seed
    variance : "fixed" | "shared" | "per_feature" | "learned"
        The Gaussian decoder's σ², as :class:`npae.VAE` (ignored by the Bernoulli one).
    objective : "elbo" | "iwae"
        ``"elbo"``: the negative k-sample ELBO [IWAE-6]; ``"iwae"``: the negative IWAE-k bound
        [IWAE-4] (its gradient weights the k draws by their normalised weights [IWAE-5]).
    k : int >= 1
        Draws of (z1, z2) per example and training step.
    .. shared:: slope, alpha; random_state; warm_start; training

    Attributes
    ----------
    params : dict
        ``encoder1.<i>.W/.b``, ``encoder2.<i>.W/.b``, ``prior.<i>.W/.b``, ``decoder.<i>.W/.b`` (and
        ``decoder.logvar`` for a shared or per-feature Gaussian variance). Each network's last layer
        emits a mean and a raw log-variance side by side: ``[mu1 | logvar1]`` (2·latent_dim1
        columns), ``[mu2 | logvar2]`` (2·latent_dim2), ``[pmu1 | plogvar1]`` (2·latent_dim1).
    clamp_count_ : int
        Log-variance entries (of q(z1|x), q(z2|z1) and p(z1|z2)) the clamp changed in training.
    last_terms : dict
        ``loss``, ``recon`` (−log p(x|z1), per example) and ``kl`` (the sampled
        log q(z1, z2|x) − log p(z1, z2), per example) of the last step.
    """

    stochastic_inputs = ("eps",)

    def __init__(self, input_dim=None, hidden1=(100, 100), latent_dim1=100, hidden2=(50, 50),
                 latent_dim2=50, activation="tanh", likelihood="bernoulli", dtype="float64", seed=0,
                 *, variance="fixed", objective="elbo", k=1, slope=0.01, alpha=1.0,
                 random_state=None, warm_start=False,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        args = locals()
        for name in self._get_param_names():
            setattr(self, name, args[name])
        if self.input_dim is not None:
            self._setup(check_scalar("input_dim", self.input_dim, low=1, integer=True))

    # ------------------------------------------------------------------ building
    @classmethod
    def _declared_shapes(cls, config):
        """The arrays a model file of this class must hold, read off a shape-only build
        (:func:`npae.models.sizing._shapes_by_building`: nothing of the declared size is allocated)."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be an object, got {config!r:.60}")
        return _shapes_by_building(cls, config)

    def _build(self, n_features):
        hidden1 = check_sizes("hidden1", self.hidden1)
        hidden2 = check_sizes("hidden2", self.hidden2)
        Z1 = check_scalar("latent_dim1", self.latent_dim1, low=1, integer=True)
        Z2 = check_scalar("latent_dim2", self.latent_dim2, low=1, integer=True)
        check_choice("activation", self.activation, ACTIVATION_NAMES)
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_choice("variance", self.variance, VARIANCES)
        check_choice("objective", self.objective, OBJECTIVES)
        check_scalar("k", self.k, low=1, integer=True)
        check_scalar("slope", self.slope, low=0.0)
        check_scalar("alpha", self.alpha, low=0.0, low_open=True)
        dtype = check_dtype(self.dtype)
        self.needs_unit_targets = self.likelihood == "bernoulli"
        self.rng = make_rng(self._seed(), self._seed_name())
        gaussian = self.likelihood == "gaussian"
        out_dim = 2 * n_features if gaussian and self.variance == "learned" else n_features
        kw = dict(rng=self.rng, dtype=dtype, slope=self.slope, alpha=self.alpha)
        # recognition model, bottom up; generative model, top down (each net: one chain whose last
        # Dense layer emits [mean | raw log-variance], docs/derivations/elbo.md#elbo-6)
        self.encoder1 = build_mlp([n_features, *hidden1, 2 * Z1], self.activation, "identity",
                                  prefix="encoder1.", **kw)
        self.encoder2 = build_mlp([Z1, *hidden2, 2 * Z2], self.activation, "identity",
                                  prefix="encoder2.", **kw)
        self.prior = build_mlp([Z2, *hidden2[::-1], 2 * Z1], self.activation, "identity",
                               prefix="prior.", **kw)
        self.decoder = build_mlp([Z1, *hidden1[::-1], out_dim], self.activation, "identity",
                                 prefix="decoder.", **kw)
        chains = [self.encoder1, self.encoder2, self.prior, self.decoder]
        self.decoder_logvar = None  # the shared / per-feature log σ² of a Gaussian decoder
        if gaussian and self.variance in ("shared", "per_feature"):
            shape = (1,) if self.variance == "shared" else (n_features,)
            self.decoder_logvar = FreeParams(
                {"logvar": param_array(shape, dtype, lambda: np.zeros(shape, dtype=dtype))}, "decoder.")
            chains.append(self.decoder_logvar)
        self.flat_params = FlatParams(chains)  # one array each, see FlatParams
        self.params = dict(self.flat_params.params)
        self.clamp_count_ = 0
        self.clamp_entries_ = 0

    @property
    def latent_dims(self):
        """``(latent_dim1, latent_dim2)``."""
        return int(self.latent_dim1), int(self.latent_dim2)

    # ------------------------------------------------------------------ checks
    def _no_labels(self, y):
        if y is not None:
            raise InputError("TwoLayerVAE is unconditional: y must be None")

    def _check_eps(self, eps, B):
        """``(eps1, eps2)``, each (K, B, Z) with the same K, from a pair of (B, Z) or (K, B, Z)."""
        Z1, Z2 = self.latent_dims
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            raise InputTypeError(f"eps must be a pair (eps1, eps2) of standard-normal noise for z1 "
                                 f"and z2, shaped (B, {Z1}) and (B, {Z2}) or (K, B, {Z1}) and "
                                 f"(K, B, {Z2}); got {type(eps).__name__}")
        out = []
        for name, e, Z in (("eps1", eps[0], Z1), ("eps2", eps[1], Z2)):
            e = check_array(e, name, ndim=(2, 3), dtype=self.dtype)
            if e.ndim == 2:
                e = e[None]  # (1, B, Z)
            if e.shape[1:] != (B, Z):
                raise InputError(f"{name} must have shape (B, Z) = ({B}, {Z}) or (K, {B}, {Z}) for "
                                 f"a batch of {B} examples, got shape {e.shape}")
            out.append(e)
        if out[0].shape[0] != out[1].shape[0]:
            raise InputError(f"eps1 and eps2 must hold the same number of draws K, got "
                             f"{out[0].shape[0]} and {out[1].shape[0]}")
        return tuple(out)

    def _draw(self, rng, B, K):
        """Noise of K draws for B examples, ``eps1`` (K, B, Z1) and ``eps2`` (K, B, Z2), cut from
        one (K, B, Z1 + Z2) draw: the noise of draw j is the same however the K are chunked."""
        Z1 = int(self.latent_dim1)
        eps = rng.standard_normal((K, B, Z1 + int(self.latent_dim2))).astype(self.dtype, copy=False)
        return eps[..., :Z1], eps[..., Z1:]  # (K, B, Z1), (K, B, Z2)

    # ------------------------------------------------------------------ pieces of the graph
    @staticmethod
    def _run(chain, a, train):
        """``chain`` applied to the last axis of ``a`` (any leading axes: draws, examples);
        ``train`` keeps the caches for a backward pass."""
        flat = a.reshape(-1, a.shape[-1])  # (K·B, n_in)
        out = chain.forward(flat) if train else chain.apply(flat)  # (K·B, n_out)
        return out.reshape(a.shape[:-1] + (out.shape[-1],))

    @staticmethod
    def _back(chain, dout):
        """``chain``'s backward for a gradient with leading axes; returns dL/d(input), same axes."""
        dx = chain.backward(dout.reshape(-1, dout.shape[-1]))  # (K·B, n_in)
        return dx.reshape(dout.shape[:-1] + (dx.shape[-1],))

    @staticmethod
    def _latent_head(out, Z):
        """``(mean, logvar, inside)`` from a network output [mean | raw log-variance]: the
        log-variance clamped [REPARAM-5], ``inside`` the clamp's mask."""
        logvar, inside = latent.logvar_clamp_forward(out[..., Z:])  # [REPARAM-5]
        return out[..., :Z], logvar, inside

    # the likelihood p(x|z1): DecoderLikelihood's _log_px_forward / _log_px_backward / _output,
    # the one-layer VAE's lines

    # ------------------------------------------------------------------ the log-weights
    def _log_weight_graph(self, x, eps1, eps2, *, train):
        """The log-weights (K, B) of the K draws ``eps1`` (K, B, Z1), ``eps2`` (K, B, Z2) per
        example [HIER-1], and everything the backward needs. ``train``: keep the networks' caches."""
        Z1, Z2 = self.latent_dims
        # recognition model, bottom up
        mu1, logvar1, inside1 = self._latent_head(self._run(self.encoder1, x, train), Z1)  # (B, Z1)
        z1, rep1 = latent.reparameterize_forward(mu1, logvar1, eps1)  # (K, B, Z1) [REPARAM-2]
        mu2, logvar2, inside2 = self._latent_head(self._run(self.encoder2, z1, train), Z2)  # (K, B, Z2)
        z2, rep2 = latent.reparameterize_forward(mu2, logvar2, eps2)  # (K, B, Z2) [REPARAM-2]
        # generative model, top down: the prior of z1 given z2, then the decoder of x given z1
        pmu1, plogvar1, inside_p = self._latent_head(self._run(self.prior, z2, train), Z1)  # (K, B, Z1)
        out = self._run(self.decoder, z1, train)  # (K, B, D or 2D)
        log_px, px_cache = self._log_px_forward(out, x)  # (K, B)
        logw, hier_cache = bounds.hierarchical_log_weight_forward(
            log_px, z1, mu1, logvar1, z2, mu2, logvar2, pmu1, plogvar1)  # (K, B) [HIER-1]
        graph = dict(rep1=rep1, rep2=rep2, hier=hier_cache, px=px_cache, log_px=log_px,
                     inside=(inside1, inside2, inside_p), kl=log_px - logw)
        return logw, graph

    # ------------------------------------------------------------------ the step
    def _logw_step(self, x, eps1, eps2):
        """Forward and backward of the objective on one batch (inputs checked), node by node in
        the order of docs/derivations/hier.md#hier-3."""
        logw, g = self._log_weight_graph(x, eps1, eps2, train=True)  # (K, B)
        self._count_clamps(g["inside"])
        inside1, inside2, inside_p = g["inside"]
        loss, obj_cache, objective_backward = self._objective(logw)
        dlogw = objective_backward(1.0, obj_cache)  # (K, B) [IWAE-5] or [IWAE-7]

        # the five density terms: gradients to their points and to their parameters
        (dlog_px, dz1_points, dmu1_q, dlogvar1_q, dz2_points, dmu2_q, dlogvar2_q, dpmu1,
         dplogvar1) = bounds.hierarchical_log_weight_backward(dlogw, g["hier"])  # [HIER-2]

        # z2: the points of log p(z2) and log q(z2|z1), and the input of the prior network
        dplogvar1_raw = latent.logvar_clamp_backward(dplogvar1, inside_p)  # (K, B, Z1) [REPARAM-6]
        dz2_prior = self._back(self.prior, np.concatenate([dpmu1, dplogvar1_raw], axis=-1))  # (K, B, Z2)
        dz2 = dz2_points + dz2_prior  # (K, B, Z2): every use of z2 [HIER-3]

        # q(z2|z1): its sampler and its density's own parameters, then encoder2 (z1's uses 4, 5)
        dmu2_sampler, dlogvar2_sampler = latent.reparameterize_backward(dz2, g["rep2"])  # [REPARAM-3]
        dmu2 = dmu2_sampler + dmu2_q  # (K, B, Z2): sampler + log q(z2|z1) [IWAE-10]
        dlogvar2 = dlogvar2_sampler + dlogvar2_q  # (K, B, Z2) [IWAE-10]
        dlogvar2_raw = latent.logvar_clamp_backward(dlogvar2, inside2)  # [REPARAM-6]
        dz1_enc2 = self._back(self.encoder2, np.concatenate([dmu2, dlogvar2_raw], axis=-1))  # (K, B, Z1)

        # the decoder p(x|z1) (z1's use 1)
        dz1_dec = self._back(self.decoder, self._log_px_backward(dlog_px, g["px"]))  # (K, B, Z1)
        dz1 = dz1_points + dz1_enc2 + dz1_dec  # (K, B, Z1): all five uses of z1 [HIER-3]

        # q(z1|x): its sampler (summed over the K draws) and its density's parameters, then encoder1
        dmu1_sampler, dlogvar1_sampler = latent.reparameterize_backward(dz1, g["rep1"])  # (B, Z1) [REPARAM-4]
        dmu1 = dmu1_sampler + dmu1_q  # (B, Z1): sampler + log q(z1|x) [IWAE-10]
        dlogvar1 = dlogvar1_sampler + dlogvar1_q  # (B, Z1) [IWAE-10]
        dlogvar1_raw = latent.logvar_clamp_backward(dlogvar1, inside1)  # (B, Z1) [REPARAM-6]
        self.encoder1.backward(np.concatenate([dmu1, dlogvar1_raw], axis=1), input_grad=False)  # [ELBO-6]

        recon = -float(np.mean(g["log_px"]))
        kl = float(np.mean(g["kl"]))  # sampled log q(z1, z2|x) − log p(z1, z2)
        self.last_terms = {"loss": loss, "recon": recon, "kl": kl}
        return loss, {name: grad for name, grad in self.flat_params.grads.items()}

    def _count_clamps(self, insides):
        for inside in insides:
            self.clamp_count_ += int(inside.size - np.count_nonzero(inside))
            self.clamp_entries_ += int(inside.size)

    def _loss_and_grads(self, x, eps=None):
        eps1, eps2 = self._draw(self.rng, x.shape[0], int(self.k)) if eps is None else eps
        return self._logw_step(x, eps1, eps2)

    def loss_and_grads(self, x, eps=None):
        """The training loss on the batch ``x`` and its gradient for every parameter.

        Parameters
        ----------
        x : (B, n_features) array
        eps : pair ``(eps1, eps2)``, optional
            Standard-normal noise of the two samplers: ``eps1`` (B, latent_dim1) or
            (K, B, latent_dim1) and ``eps2`` (B, latent_dim2) or (K, B, latent_dim2), with the same
            K. Given: the step is deterministic (what gradient checks need) over K draws.
            Omitted: ``k`` draws of each from ``self.rng``.

        Returns
        -------
        loss : float
            The objective [IWAE-6] or [IWAE-4] of the log-weights [HIER-1], nats per example.
        grads : dict
            Same keys and shapes as ``params`` (copies).
        """
        x = self._check_X(x, "x")
        if eps is None:
            eps = self._draw(self.rng, x.shape[0], int(self.k))
        else:
            eps = self._check_eps(eps, x.shape[0])
        return fresh_grads(self._logw_step(x, *eps))

    def _loss_terms(self, x, *, rng):
        """Forward only: ``loss``, ``recon`` and ``kl`` of one batch, ``k`` draws from ``rng``."""
        logw, g = self._log_weight_graph(x, *self._draw(rng, x.shape[0], int(self.k)), train=False)
        return {"loss": self._objective(logw)[0], "recon": -float(np.mean(g["log_px"])),
                "kl": float(np.mean(g["kl"]))}

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None, **fit_kwargs):
        """Train with shuffled minibatches (see :meth:`npae.models.model.Model.fit` for ``fit_kwargs``);
        ``y`` is ignored (scikit-learn's convention). Returns ``self``; ``history_`` holds per-epoch
        means of ``loss``, ``recon`` and ``kl`` (and ``val_*``)."""
        clamps = (self.clamp_count_, self.clamp_entries_) if self.is_built else (0, 0)
        super().fit(X, y, **fit_kwargs)
        if self.clamp_count_ < clamps[0]:  # rebuilt by this fit: its counters started at 0
            clamps = (0, 0)
        clamped, entries = self.clamp_count_ - clamps[0], self.clamp_entries_ - clamps[1]
        refuse_clamped_fit(self, X, clamped, entries)
        if entries and clamped / entries > LOGVAR_CLAMP_WARN_FRACTION:
            warnings.warn(f"the logvar clamp [{latent.LOGVAR_MIN:g}, {latent.LOGVAR_MAX:g}] held "
                          f"{clamped} of {entries} log-variances ({100 * clamped / entries:.1f}%) "
                          f"during this fit; they get no gradient while clamped. Lower the learning "
                          f"rate or check the data scale.", RuntimeWarning, stacklevel=2)
        n = min(int(np.shape(X)[0]), 2000)
        if self._active(self.encode(X[:n]), latent.ACTIVE_UNIT_THRESHOLD) == 0:
            warnings.warn("TwoLayerVAE ended training with no active unit in z1 (Var_x of every "
                          f"posterior mean <= {latent.ACTIVE_UNIT_THRESHOLD}): the codes carry no "
                          "information about x (posterior collapse). Try more epochs or "
                          "objective='iwae'.", CollapseWarning, stacklevel=2)
        return self

    # ------------------------------------------------------------------ using the model
    def encode_stats(self, X, y=None):
        """Parameters ``(mu1, logvar1)`` of q(z1|x), each (N, latent_dim1); any finite X."""
        self._no_labels(y)
        X = self._check_X(X, targets=False)
        mu1, logvar1, _ = self._latent_head(self.encoder1.apply(X), int(self.latent_dim1))
        return mu1.copy(), logvar1.copy()

    def encode(self, X, y=None):
        """The posterior mean of z1, ``mu1(x)`` (N, latent_dim1): the code nearest the data."""
        return self.encode_stats(X, y)[0]

    def transform(self, X, y=None):
        """The posterior mean of z1, as :meth:`encode` (scikit-learn's name; a Pipeline step)."""
        return self.encode(X, y)

    def fit_transform(self, X, y=None, **fit_kwargs):
        """``fit(X, **fit_kwargs)`` then ``transform(X)`` (``y`` is ignored)."""
        return self.fit(X, y, **fit_kwargs).transform(X)

    def decode(self, Z1, y=None):
        """Bernoulli probabilities or Gaussian means (N, n_features) of p(x|z1) for codes z1."""
        self._no_labels(y)
        self._require_built()
        Z1 = check_array(Z1, "Z1", n_features=int(self.latent_dim1), dtype=self.dtype)
        return self._output(self.decoder.apply(Z1))

    def inverse_transform(self, Z1, y=None):
        """Same as :meth:`decode`."""
        return self.decode(Z1, y)

    def reconstruct(self, X, y=None):
        """decode(encode(X)): the decoder's output at the posterior mean of z1."""
        return self.decode(self.encode(X, y))

    def prior_stats(self, Z2):
        """Parameters ``(pmu1, plogvar1)`` of p(z1|z2) for codes z2 (N, latent_dim2)."""
        self._require_built()
        Z2 = check_array(Z2, "Z2", n_features=int(self.latent_dim2), dtype=self.dtype)
        pmu1, plogvar1, _ = self._latent_head(self.prior.apply(Z2), int(self.latent_dim1))
        return pmu1.copy(), plogvar1.copy()

    def sample(self, n, y=None, *, seed=None):
        """``n`` draws from the model, top down [HIER-4]: z2 ~ N(0, I), z1 ~ p(z1|z2), then the
        decoder's probabilities / means, (n, n_features). ``seed=None`` draws from the model's
        sampling stream (new draws at every call; never the training generator)."""
        check_scalar("n", n, low=1, integer=True)
        self._no_labels(y)
        self._require_built()
        rng = self.sample_rng_ if seed is None else make_rng(seed)
        Z1, Z2 = self.latent_dims
        z2 = rng.standard_normal((n, Z2)).astype(self.dtype)  # (n, Z2) from p(z2)
        pmu1, plogvar1 = self.prior_stats(z2)  # (n, Z1) each
        eps1 = rng.standard_normal((n, Z1)).astype(self.dtype)  # (n, Z1)
        z1, _ = latent.reparameterize_forward(pmu1, plogvar1, eps1)  # (n, Z1) from p(z1|z2) [HIER-4]
        return self.decode(z1)

    def score(self, X, y=None):
        """Higher is better: the ELBO per example (nats), −:meth:`neg_elbo`, one draw per example
        from the evaluation stream (``y`` is ignored, as in scikit-learn)."""
        return -self.neg_elbo(X)

    # ------------------------------------------------------------------ evaluation
    def _bound(self, X, k, seed, batch_size, chunk, elbo):
        """Per-example bound, (N,): the k-sample ELBO mean if ``elbo`` else the IWAE-k bound."""
        X = self._check_X(X)

        def log_weights(lo, hi, kc, rng):
            eps1, eps2 = self._draw(rng, hi - lo, kc)
            return self._log_weight_graph(X[lo:hi], eps1, eps2, train=False)[0]  # (kc, b)

        return self._chunked_bound(X, k, seed, batch_size, chunk, elbo, log_weights)

    def neg_elbo(self, X, y=None, *, seed=None, n_samples=1, batch_size=256, per_example=False):
        """Negative ELBO, nats per example: the mean of −log w [HIER-1] over ``n_samples`` draws of
        (z1, z2) per example, from the evaluation stream (the same at every call) or ``seed``.
        Returns the mean over X (a float), or the (N,) values with ``per_example=True``."""
        self._no_labels(y)
        check_scalar("n_samples", n_samples, low=1, integer=True)
        values = -self._bound(X, n_samples, seed, batch_size, None, True)
        return values if per_example else float(values.mean())

    def log_likelihood_estimate(self, X, y=None, *, k=5000, seed=None, batch_size=100, chunk=None,
                                per_example=False):
        """Importance-weighted lower bound on log p(x) (IWAE-k), nats.

        ``log (1/k) Σ_j w_j`` with (z1, z2)_j ~ q(z1|x) q(z2|z1) and the weights of [HIER-1];
        k = 1 is the ELBO and the bound rises with k toward log p(x) [IWAE-2]. Samples are drawn
        ``chunk`` at a time and folded into a streaming log-mean-exp [IWAE-3], so memory does not
        grow with k. Noise from the evaluation stream or ``seed``. Returns the mean over X (a
        float), or the (N,) values with ``per_example=True``.
        """
        self._no_labels(y)
        values = self._bound(X, k, seed, batch_size, chunk, False)
        return values if per_example else float(values.mean())

    def posterior_means(self, X, y=None, *, n_samples=50, seed=None):
        """Posterior means of both layers under q: ``(E[z1|x], E[z2|x])``, (N, Z1) and (N, Z2).

        E[z1|x] = mu1(x). E[z2|x] = E_{q(z1|x)}[mu2(z1)] has no closed form; it is the mean of
        mu2 over ``n_samples`` draws of z1 [HIER-5] (the inner mean over z2 given z1 is exactly
        mu2, so only z1 is sampled). Draws from the evaluation stream or ``seed``.
        """
        check_scalar("n_samples", n_samples, low=1, integer=True)
        mu1, logvar1 = self.encode_stats(X, y)
        Z1, Z2 = self.latent_dims
        rng = self._eval_rng(seed)
        eps1 = rng.standard_normal((int(n_samples),) + mu1.shape).astype(self.dtype)  # (S, N, Z1)
        z1, _ = latent.reparameterize_forward(mu1, logvar1, eps1)  # (S, N, Z1)
        mu2 = self._run(self.encoder2, z1, False)[..., :Z2]  # (S, N, Z2)
        return mu1, mu2.mean(axis=0)  # (N, Z1), (N, Z2) [HIER-5]

    @staticmethod
    def _active(means, threshold):
        return int(np.sum(np.var(means, axis=0) > threshold))

    def active_units(self, X, y=None, threshold=latent.ACTIVE_UNIT_THRESHOLD, *, n_samples=50,
                     seed=None):
        """Active units of each stochastic layer, ``(n1, n2)``: the latents whose posterior mean
        varies across X, ``Var_x(E[u|x]) > threshold`` (Burda et al. 2016), with the posterior
        means of :meth:`posterior_means`."""
        check_scalar("threshold", threshold, low=0.0)
        mean1, mean2 = self.posterior_means(X, y, n_samples=n_samples, seed=seed)
        return self._active(mean1, threshold), self._active(mean2, threshold)
