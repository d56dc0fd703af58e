"""The semi-supervised model M2 of Kingma, Rezende, Mohamed & Welling (2014) as an estimator,
:class:`SemiSupervisedVAE` (``npae.SemiSupervisedVAE``): the pairs of :mod:`npae.pairs.m2` composed
with dense chains, the sampler and KL pairs of :mod:`npae.pairs.latent` and the Bernoulli (or
Gaussian) likelihood [M2-14 .. M2-16]. Derivations: docs/derivations/m2.md.
"""
import numpy as np

from npae.constants import BATCH_SIZE, EPOCHS, LR, OPTIMIZER, VERBOSE
from npae.pairs import bounds, latent
from npae.pairs import functional as F
from npae.pairs.m2 import (UNLABELLED, enumerate_classes, labelled_bound_backward,  # noqa: F401
                           labelled_bound_forward, m2_objective_backward, m2_objective_forward,
                           one_hot, paper_alpha)
from npae.fast.backends import ops
from npae.init import make_rng
from npae.models.layers import ACTIVATION_NAMES, FlatParams, FreeParams, build_mlp
from npae.models.model import Model, fresh_grads
from npae.models.sklearn_protocol import shared_docs
from npae.models.sizing import (_config_arch, _config_dtype, _config_int, _config_sizes,
                                mlp_declared_shapes)
from npae.validation import (InputError, check_array, check_choice, check_dtype,
                             check_labels, check_scalar, check_sizes)


# ==================================================================================================
# The model: npae.SemiSupervisedVAE
# ==================================================================================================
#: What ``alpha="paper"`` means before ``fit`` has seen the training counts: the paper's rule for a
#: set whose rows are all labelled, ``paper_alpha(1, 1) = 0.1``.
_ALPHA_BEFORE_FIT = 0.1
LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = ("fixed", "shared", "per_feature")


def check_mixed_labels(name, y, n_classes, n_samples=None):
    """``y`` as int64 labels of a partly labelled set: ``0..K−1`` for a labelled row, ``−1``
    (:data:`UNLABELLED`) for an unlabelled one; raises :class:`npae.InputError` naming ``name``."""
    return check_labels(name, y, n_classes, n_samples, unlabelled=UNLABELLED)


@shared_docs
class SemiSupervisedVAE(Model):
    """The M2 model of Kingma, Rezende, Mohamed & Welling (2014): a VAE whose class label is a
    second latent variable, observed on some rows and inferred on the others.

    Three networks: the classifier ``q(y|x)`` (``classifier.*``, softmax over ``n_classes``
    logits), the encoder ``q(z|x,y)`` (``encoder.*``, input ``[x | onehot(y)]``, output
    ``[mu | logvar]``) and the decoder ``p(x|y,z)`` (``decoder.*``, input ``[z | onehot(y)]``).
    Training minimises, per batch of B rows (nats per example) [M2-10],

        J = (1/B) [Σ_labelled −L(x, y) + Σ_unlabelled −U(x) + α Σ_labelled −log q(y|x)],

    −L the labelled bound [M2-1] and −U the unlabelled one, which sums the labelled bound over
    every class weighted by q(y|x) and subtracts its entropy [M2-5]. A labelled row runs through the
    encoder and decoder once (with its own class), an unlabelled row ``n_classes`` times (once per
    class) [M2-14]. After training, ``predict`` is the classifier.

    Parameters
    ----------
    input_dim : int or None
        Number of input features; None: learned at ``fit`` (``n_features_in_``).
    n_classes : int >= 2
        Number of classes K (required).
    hidden : tuple of int
        Encoder hidden widths; the decoder mirrors them.
    latent_dim : int
        Size of the continuous code z (the "style").
    classifier_hidden : tuple of int or None
        Hidden widths of the classifier q(y|x); None: the same as ``hidden``.
    activation : str
        Hidden-layer activation of all three networks (softplus, the paper's, by default).
    likelihood : "bernoulli" | "gaussian"
        ``"bernoulli"``: decoder logits and binary cross-entropy, data in [0, 1]. ``"gaussian"``:
        the decoder outputs the mean of N(x; m, σ²) with σ² set by ``variance`` (for real-valued
        inputs such as the codes of a trained VAE, the paper's M1+M2).
    alpha : "paper" or float >= 0
        Weight of the classification term per labelled row, in npae's per-example scaling
        [M2-9]. ``"paper"``: at ``fit``, ``α = 0.1 · N / N_l`` (:func:`paper_alpha`, N training
        rows of which N_l labelled), the paper's ``α = 0.1 · N`` on its summed objective; before any
        fit it is 0.1. The value in use is ``alpha_``. Short runs learn the classes faster with a
        larger α (docs/semisupervised.md#alpha-the-weight-of-the-labels).
    .. shared:: dtype; seed
    variance : "fixed" | "shared" | "per_feature"
        The Gaussian decoder's σ²: 1, one learned log σ² (``decoder.logvar`` of shape (1,)), or one
        per feature (shape (input_dim,)). Ignored by the Bernoulli decoder.
    slope, elu_alpha : float
        Leak slope of leaky_relu, α of elu.
    .. shared:: random_state; warm_start; training

    Attributes
    ----------
    params : dict
        ``classifier.<k>.W/.b``, ``encoder.<k>.W/.b`` (the last encoder layer emits
        ``[mu | logvar_raw]``), ``decoder.<k>.W/.b``, and ``decoder.logvar`` for a learned variance.
    alpha_ : float
        The α in use (saved with the model: a loaded model evaluates the same objective).
    last_terms : dict
        ``loss`` and its three parts, ``labelled``, ``unlabelled`` and ``classification``, each
        already divided by the batch size.

    Derivation: docs/derivations/m2.md; the class: docs/derivations/m2.md#m2-14.
    """

    stochastic_inputs = ("eps",)
    takes_labels = True

    def __init__(self, input_dim=None, n_classes=None, hidden=(500,), latent_dim=50,
                 classifier_hidden=None, activation="softplus", likelihood="bernoulli", alpha="paper",
                 dtype="float64", seed=0, *, variance="fixed", slope=0.01, elu_alpha=1.0,
                 random_state=None, warm_start=False,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        args = locals()
        for name in self._get_param_names():
            setattr(self, name, args[name])

    # ------------------------------------------------------------------ building
    def _check_n_classes(self):
        if self.n_classes is None:
            raise InputError("SemiSupervisedVAE needs n_classes, the number of label values")
        return check_scalar("n_classes", self.n_classes, low=2, integer=True)

    def _check_alpha(self):
        if isinstance(self.alpha, str):
            if self.alpha != "paper":
                raise InputError(f"alpha must be 'paper' or a number >= 0, got {self.alpha!r}")
            return None
        return float(check_scalar("alpha", self.alpha, low=0.0))

    def _build(self, n_features):
        K = self._check_n_classes()
        hidden = check_sizes("hidden", self.hidden)
        c_hidden = hidden if self.classifier_hidden is None else check_sizes("classifier_hidden",
                                                                             self.classifier_hidden)
        Z = check_scalar("latent_dim", self.latent_dim, low=1, integer=True)
        check_choice("activation", self.activation, ACTIVATION_NAMES)
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_choice("variance", self.variance, VARIANCES)
        check_scalar("slope", self.slope, low=0.0)
        check_scalar("elu_alpha", self.elu_alpha, low=0.0, low_open=True)
        fixed_alpha = self._check_alpha()
        dtype = check_dtype(self.dtype)
        D = int(n_features)
        self.needs_unit_targets = self.likelihood == "bernoulli"
        self.rng = make_rng(self._seed(), self._seed_name())
        kw = dict(rng=self.rng, dtype=dtype, slope=self.slope, alpha=self.elu_alpha)
        self.classifier = build_mlp([D, *c_hidden, K], self.activation, "identity",
                                    prefix="classifier.", **kw)
        self.encoder = build_mlp([D + K, *hidden, 2 * Z], self.activation, "identity",
                                 prefix="encoder.", **kw)
        self.decoder = build_mlp([Z + K, *hidden[::-1], D], self.activation, "identity",
                                 prefix="decoder.", **kw)
        chains = [self.classifier, self.encoder, self.decoder]
        self.decoder_logvar = None
        if self.likelihood == "gaussian" and self.variance != "fixed":
            shape = (1,) if self.variance == "shared" else (D,)
            self.decoder_logvar = FreeParams({"logvar": np.zeros(shape, dtype=dtype)}, "decoder.")
            chains.append(self.decoder_logvar)
        self.flat_params = FlatParams(chains)
        self.params = dict(self.flat_params.params)
        pending = self.__dict__.get("_fit_alpha")
        start = pending if pending is not None else (fixed_alpha if fixed_alpha is not None
                                                     else _ALPHA_BEFORE_FIT)
        self._alpha_store = np.array([start], dtype=np.float64)  # saved as "objective.alpha"
        self.clamp_count_ = 0

    @property
    def alpha_(self):
        """The weight α of the classification term in use (see ``alpha``)."""
        self._require_built()
        return float(self._alpha_store[0])

    def _resolve_alpha(self, labels):
        """The α a fit on ``labels`` uses: the constructor's number, or the paper's rule [M2-9]."""
        fixed = self._check_alpha()
        if fixed is not None:
            return fixed
        return paper_alpha(labels.shape[0], int(np.count_nonzero(labels >= 0)))  # [M2-9]

    # ------------------------------------------------------------------ data
    def _fit_data(self, X, y=None):
        """``(X, y)`` checked: y in ``−1..K−1`` (−1 = unlabelled), one label per row; required."""
        if y is None:
            raise InputError(f"SemiSupervisedVAE needs y: a label 0..{self.n_classes - 1} for each "
                             f"labelled row and {UNLABELLED} for each unlabelled one "
                             f"(validation_data=(X, y) for fit)")
        X = self._check_X(X)
        return X, check_mixed_labels("y", y, int(self.n_classes), n_samples=X.shape[0])

    def _check_eps(self, eps, B):
        K, Z = int(self.n_classes), int(self.latent_dim)
        eps = check_array(eps, "eps", ndim=3, dtype=self.dtype)
        if eps.shape != (K, B, Z):
            raise InputError(f"eps must have shape (n_classes, B, latent_dim) = ({K}, {B}, {Z}): "
                             f"eps[k, i] is the noise of example i paired with class k; got "
                             f"{eps.shape}")
        return eps

    # ------------------------------------------------------------------ the graph of one batch
    def _pair_rows(self, x, y):
        """The (example, class) rows the bound needs [M2-13], [M2-14]: every labelled row once with
        its own class, then the unlabelled rows once per class (class-major, as
        :func:`enumerate_classes`). Returns ``(x_rows, c_rows, rows_i, rows_k)``: inputs (R, D),
        one-hot classes (R, K), and each row's example index and class."""
        K = int(self.n_classes)
        lab, unl = np.flatnonzero(y >= 0), np.flatnonzero(y < 0)  # (B_l,), (B_u,)
        x_u, c_u = enumerate_classes(x[unl], K)  # (K·B_u, D), (K·B_u, K) [M2-13]
        x_rows = np.concatenate([x[lab], x_u])  # (R, D), R = B_l + K·B_u [M2-14]
        c_rows = np.concatenate([one_hot(y[lab], K, dtype=x.dtype), c_u])  # (R, K) [M2-14]
        rows_i = np.concatenate([lab, np.tile(unl, K)])  # (R,) which example
        rows_k = np.concatenate([y[lab], np.repeat(np.arange(K), unl.size)])  # (R,) which class
        return x_rows, c_rows, rows_i, rows_k

    def _nll_forward(self, out, x_rows):
        """``−log p(x | y, z)`` per row (R,) from the decoder output, and the backward's cache."""
        if self.likelihood == "bernoulli":
            return -ops.bernoulli_log_likelihood(out, x_rows), (out, x_rows)  # [ELBO-2]
        logvar_x = (np.zeros((), dtype=out.dtype) if self.decoder_logvar is None
                    else self.decoder_logvar.params["logvar"])
        return bounds.gaussian_nll_forward(out, logvar_x, x_rows)  # [GAUSSDEC-1]

    def _nll_backward(self, dnll, cache):
        """Gradient in the decoder output of ``Σ_r dnll_r · nll_r``: each row weighted by its own
        share ``dnll_r`` of J [M2-15]; a learned log σ² gets its gradient written in place."""
        if self.likelihood == "bernoulli":
            out, x_rows = cache
            return dnll[:, None] * (F.sigmoid(out) - x_rows)  # (R, D) [M2-15]
        dmean, dlogvar_x = bounds.gaussian_nll_backward(dnll, cache)  # [GAUSSDEC-2], [GAUSSDEC-4]
        if self.decoder_logvar is not None:
            self.decoder_logvar.grads["logvar"][...] = dlogvar_x  # [M2-15]
        return dmean

    def _graph(self, x, y, eps, alpha, *, train):
        """Forward through classifier, encoder, sampler, KL, decoder and the M2 objective; returns
        ``(J, g)`` with everything the backward needs in ``g``. ``train``: keep the layer caches."""
        K, Z = int(self.n_classes), int(self.latent_dim)
        run = (lambda chain, a: chain.forward(a)) if train else (lambda chain, a: chain.apply(a))
        logits_y = run(self.classifier, x)  # (B, K) q(y|x) = softmax(logits_y)
        x_rows, c_rows, rows_i, rows_k = self._pair_rows(x, y)
        h = run(self.encoder, np.concatenate([x_rows, c_rows], axis=1))  # (R, 2Z) q(z|x,y) [ELBO-8]
        mu, logvar_raw = h[:, :Z], h[:, Z:]  # (R, Z) each [ELBO-6]
        logvar, inside = latent.logvar_clamp_forward(logvar_raw)  # (R, Z) [REPARAM-5]
        eps_rows = eps[rows_k, rows_i]  # (R, Z): the noise of each (example, class) pair [M2-14]
        z, rep_cache = latent.reparameterize_forward(mu, logvar, eps_rows)  # (R, Z) [REPARAM-2]
        kl, kl_cache = latent.gaussian_kl_forward(mu, logvar)  # (R,) [KL-1]
        out = run(self.decoder, np.concatenate([z, c_rows], axis=1))  # (R, D) p(x|y,z) [ELBO-8]
        nll, nll_cache = self._nll_forward(out, x_rows)  # (R,)
        neg_L_rows, bound_cache = labelled_bound_forward(nll, kl, K)  # (R,) [M2-1]
        neg_L = np.zeros((x.shape[0], K), dtype=neg_L_rows.dtype)  # (B, K); unused entries 0
        neg_L[rows_i, rows_k] = neg_L_rows  # [M2-14] the (B, K) table of −L(x_i, k)
        J, obj_cache = m2_objective_forward(logits_y, neg_L, y, alpha)  # [M2-10]
        g = dict(rows_i=rows_i, rows_k=rows_k, inside=inside, rep=rep_cache, kl=kl_cache,
                 nll=nll_cache, bound=bound_cache, obj=obj_cache, Z=Z)
        return J, g

    def _m2_step(self, x, y, eps):
        """Forward and backward of J on one batch (inputs checked); ``eps`` (K, B, Z) or None."""
        B, K, Z = x.shape[0], int(self.n_classes), int(self.latent_dim)
        if eps is None:
            eps = self.rng.standard_normal((K, B, Z)).astype(self.dtype, copy=False)  # (K, B, Z)
        J, g = self._graph(x, y, eps, self.alpha_, train=True)
        self.clamp_count_ += int(g["inside"].size - np.count_nonzero(g["inside"]))

        dlogits_y, dneg_L = m2_objective_backward(1.0, g["obj"])  # (B, K) each [M2-11], [M2-12]
        dneg_L_rows = dneg_L[g["rows_i"], g["rows_k"]]  # (R,) [M2-14] back from the table
        dnll, dkl = labelled_bound_backward(dneg_L_rows, g["bound"])  # (R,) each [M2-2]
        dout = self._nll_backward(dnll, g["nll"])  # (R, D)
        dzc = self.decoder.backward(dout)  # (R, Z + K)
        dz = dzc[:, :Z]  # (R, Z) [ELBO-8] the label columns stop here
        dmu_sampler, dlogvar_sampler = latent.reparameterize_backward(dz, g["rep"])  # [REPARAM-3]
        dmu_kl, dlogvar_kl = latent.gaussian_kl_backward(dkl, g["kl"])  # (R, Z) each [KL-2], [KL-3]
        dmu = dmu_sampler + dmu_kl  # (R, Z) [M2-16] the fan-in, each row weighted by its share
        dlogvar = dlogvar_sampler + dlogvar_kl  # (R, Z) [M2-16]
        dlogvar_raw = latent.logvar_clamp_backward(dlogvar, g["inside"])  # [REPARAM-6]
        self.encoder.backward(np.concatenate([dmu, dlogvar_raw], axis=1), input_grad=False)  # [ELBO-6]
        self.classifier.backward(dlogits_y, input_grad=False)  # [M2-12] q(y|x) learns from J

        self.last_terms = {"loss": J, **g["obj"].terms}
        return J, dict(self.flat_params.grads)

    def _loss_and_grads(self, x, y, eps=None):
        return self._m2_step(x, y, eps)

    def loss_and_grads(self, x, y, eps=None):
        """The objective J on the batch ``(x, y)`` (nats per example) and its gradient for every
        parameter.

        Parameters
        ----------
        x : (B, n_features) array
        y : (B,) int array
            ``0..K−1`` for a labelled row, ``−1`` for an unlabelled one (any mix, all of one kind
            included).
        eps : (n_classes, B, latent_dim) array, optional
            Standard-normal noise of the sampler: ``eps[k, i]`` is used for example i paired with
            class k. An unlabelled row uses all K of its draws, a labelled row only
            ``eps[y_i, i]`` (the others are ignored). Given, the step is deterministic (gradient
            checks); omitted, it is drawn from ``rng``.

        Returns ``(loss, grads)``, ``grads`` with the keys and shapes of ``params`` (copies).
        """
        x = self._check_X(x, "x")
        y = check_mixed_labels("y", y, int(self.n_classes), n_samples=x.shape[0])
        if eps is not None:
            eps = self._check_eps(eps, x.shape[0])
        return fresh_grads(self._m2_step(x, y, eps))

    def _loss_terms(self, x, y, *, rng):
        """Forward only: J and its three parts on one batch, eps (K, B, Z) drawn from ``rng``."""
        K, Z = int(self.n_classes), int(self.latent_dim)
        eps = rng.standard_normal((K, x.shape[0], Z)).astype(self.dtype, copy=False)
        J, g = self._graph(x, y, eps, self.alpha_, train=False)
        return {"loss": J, **g["obj"].terms}

    # ------------------------------------------------------------------ training
    def fit(self, X, y, **fit_kwargs):
        """Train on ``X`` with the partial labels ``y``: ``0..K−1`` for a labelled row, ``−1`` for
        an unlabelled one; at least one row must be labelled. Keyword arguments as
        :meth:`npae.models.model.Model.fit` (``validation_data=(X_val, y_val)``, either kind of label).
        Returns ``self``; ``history_`` holds ``loss``, ``labelled``, ``unlabelled`` and
        ``classification`` per epoch (nats per example of the training rows), and ``alpha_`` the α
        used."""
        K = self._check_n_classes()
        if y is None:
            raise InputError(f"SemiSupervisedVAE.fit needs y: a label 0..{K - 1} for each labelled "
                             f"row and {UNLABELLED} for each unlabelled one")
        labels = check_mixed_labels("y", y, K, n_samples=np.shape(X)[0] if np.ndim(X) else None)
        if not np.any(labels >= 0):
            raise InputError(f"y has no labelled row (every entry is {UNLABELLED}); M2 needs at "
                             f"least one labelled example to know what the classes mean")
        self._fit_alpha = self._resolve_alpha(labels)
        if self.is_built:
            self._alpha_store[0] = self._fit_alpha  # a warm start keeps the network, not α
        try:
            return super().fit(X, labels, **fit_kwargs)
        finally:
            del self._fit_alpha

    # ------------------------------------------------------------------ the classifier q(y|x)
    def decision_function(self, X):
        """Logits of q(y|x), (N, n_classes); any finite X."""
        return self.classifier.apply(self._check_X(X, targets=False))

    def predict_proba(self, X):
        """q(y|x) = softmax of the logits, (N, n_classes), rows summing to 1."""
        return np.exp(F.log_softmax(self.decision_function(X)))  # [SOFTMAX-4]

    def predict(self, X):
        """The most probable class under q(y|x), (N,) int64."""
        return np.argmax(self.decision_function(X), axis=1).astype(np.int64)

    def score(self, X, y):
        """Accuracy of :meth:`predict` on ``(X, y)``, labels in 0..K−1 (higher is better)."""
        X = self._check_X(X, targets=False)
        y = check_labels("y", y, int(self.n_classes), n_samples=X.shape[0])
        return float(np.mean(self.predict(X) == y))

    # ------------------------------------------------------------------ the generative side
    def _classes_for(self, X, y):
        """Labels for ``X``: ``y`` where given (−1 entries, or ``y=None``: the predicted class)."""
        pred = self.predict(X)
        if y is None:
            return pred
        labels = check_mixed_labels("y", y, int(self.n_classes), n_samples=X.shape[0])
        return np.where(labels >= 0, labels, pred)

    def encode_stats(self, X, y=None):
        """``(mu, logvar)`` of q(z | x, y), each (N, latent_dim); y None (or −1 entries): the class
        the classifier predicts."""
        X = self._check_X(X, targets=False)
        c = one_hot(self._classes_for(X, y), int(self.n_classes), dtype=X.dtype)
        h = self.encoder.apply(np.concatenate([X, c], axis=1))  # (N, 2Z)
        Z = int(self.latent_dim)
        return h[:, :Z].copy(), latent.logvar_clamp_forward(h[:, Z:])[0]

    def transform(self, X, y=None):
        """The posterior mean of z given x and its class, (N, latent_dim): the given ``y``, or the
        predicted class where ``y`` is None or −1. The code then holds the style, not the class."""
        return self.encode_stats(X, y)[0]

    encode = transform

    def decode(self, Z, y):
        """Bernoulli probabilities or Gaussian means (N, n_features) of p(x | y, z)."""
        self._require_built()
        Z = check_array(Z, "Z", n_features=int(self.latent_dim), dtype=self.dtype,
                        owner="SemiSupervisedVAE.decode")
        if np.ndim(y) == 0 and y is not None:
            y = np.full(Z.shape[0], y)
        labels = check_labels("y", y, int(self.n_classes), n_samples=Z.shape[0])
        out = self.decoder.apply(np.concatenate([Z, one_hot(labels, int(self.n_classes), Z.dtype)], axis=1))
        return F.sigmoid(out) if self.likelihood == "bernoulli" else out

    def reconstruct(self, X, y=None):
        """``decode(transform(X, y), y)``, with the predicted class where ``y`` is None or −1."""
        X = self._check_X(X, targets=False)
        labels = self._classes_for(X, y)
        return self.decode(self.transform(X, labels), labels)

    def sample(self, n, y=None, *, seed=None, temperature=1.0, draws=False):
        """``n`` draws (n, n_features): z ~ N(0, T² I), decoded with the class ``y`` (an int for all,
        an array of n labels, or None: drawn uniformly, the prior p(y) = 1/K).

        ``seed=None`` draws from the model's sampling stream (never the training generator);
        ``draws=True`` also draws x ~ p(x | y, z) (0/1 pixels for the Bernoulli decoder, mean plus
        σ·noise for the Gaussian one) instead of returning the decoder's mean.
        """
        check_scalar("n", n, low=1, integer=True)
        check_scalar("temperature", temperature, low=0.0, low_open=True)
        self._require_built()
        rng = self.sample_rng_ if seed is None else make_rng(seed)
        if y is None:
            y = rng.integers(0, int(self.n_classes), size=n)
        elif np.ndim(y) == 0:
            y = np.full(n, y)
        Z = (float(temperature) * rng.standard_normal((n, int(self.latent_dim)))).astype(self.dtype)
        mean = self.decode(Z, y)
        if not draws:
            return mean
        if self.likelihood == "bernoulli":
            return (rng.random(mean.shape) < mean).astype(self.dtype)  # x_d ~ Bernoulli
        logvar_x = 0.0 if self.decoder_logvar is None else self.decoder_logvar.params["logvar"]
        return mean + np.exp(0.5 * logvar_x) * rng.standard_normal(mean.shape).astype(self.dtype)

    # ------------------------------------------------------------------ model files
    def _saved_arrays(self):
        """``params`` plus ``objective.alpha`` (1,): a loaded model evaluates the same J."""
        return {**self.params, "objective.alpha": self._alpha_store}

    @classmethod
    def _declared_shapes(cls, config):
        """The arrays of a model with this config, computed without building it: classifier
        ``[D, *classifier_hidden, K]``, encoder ``[D + K, *hidden, 2Z]``, decoder
        ``[Z + K, *reversed(hidden), D]``, ``decoder.logvar`` (1,) or (D,) for a learned Gaussian
        variance, and ``objective.alpha`` (1,) float64."""
        _config_arch(config)
        D, K = _config_int(config, "input_dim"), _config_int(config, "n_classes", low=2)
        Z, dtype = _config_int(config, "latent_dim"), _config_dtype(config)
        hidden = _config_sizes(config, "hidden")
        c_hidden = (hidden if config.get("classifier_hidden") is None
                    else _config_sizes(config, "classifier_hidden"))
        likelihood, variance = config.get("likelihood", "bernoulli"), config.get("variance", "fixed")
        if likelihood not in LIKELIHOODS or variance not in VARIANCES:
            raise ValueError(f"config fields 'likelihood' / 'variance' are {likelihood!r:.20} / "
                             f"{variance!r:.20}")
        out = {**mlp_declared_shapes([D, *c_hidden, K], "classifier.", dtype),
               **mlp_declared_shapes([D + K, *hidden, 2 * Z], "encoder.", dtype),
               **mlp_declared_shapes([Z + K, *hidden[::-1], D], "decoder.", dtype)}
        if likelihood == "gaussian" and variance != "fixed":
            out["decoder.logvar"] = ((1,) if variance == "shared" else (D,), dtype)
        out["objective.alpha"] = ((1,), np.dtype(np.float64))
        return out
