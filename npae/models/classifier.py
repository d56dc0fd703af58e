"""Transfer learning: a softmax classifier on top of a (pre)trained encoder.

``x → encoder → h → head (dense layers) → logits s → softmax cross-entropy``. The encoder is copied
from an :class:`npae.Autoencoder` (its ``.encoder``) or from a :class:`npae.Sequential`, so the
source model never changes. ``freeze_encoder=True`` (the default) keeps the encoder out of
``params``: no optimizer ever sees its arrays, and its backward is never run. With
``freeze_encoder=False`` its arrays join ``params`` as ``encoder.<k>.W`` / ``encoder.<k>.b`` and are
fine-tuned with the head.

Derivation: docs/derivations/softmax.md
"""
import numpy as np

from npae.constants import BATCH_SIZE, EPOCHS, LR, OPTIMIZER, VERBOSE
from npae.pairs import functional as F
from npae.init import make_rng
from npae.models.layers import (ACTIVATION_NAMES, Dense, FlatParams, Sequential, build_mlp, clone_chain,
                                make_activation)
from npae.models.model import Model, fresh_grads
from npae.validation import (InputError, InputTypeError, check_choice, check_dtype, check_labels,
                             check_scalar, check_sizes)


def _source_chain(encoder):
    """The Sequential of an encoder argument (a model's ``.encoder`` or a Sequential itself)."""
    seq = getattr(encoder, "encoder", encoder) if not isinstance(encoder, Sequential) else encoder
    if not isinstance(seq, Sequential):
        raise InputTypeError(f"encoder must be an npae.Autoencoder (or a model with an .encoder "
                             f"Sequential) or an npae.Sequential, got {type(encoder).__name__}")
    if not seq.dense_layers:
        raise InputError("encoder has no Dense layer")
    return seq


def _describe(seq):
    """JSON-able description of a Sequential's architecture (its weights are in ``params``)."""
    out = []
    for layer in seq.layers:
        if isinstance(layer, Dense):
            out.append(["dense", layer.n_in, layer.n_out])
        else:
            out.append([layer.name, dict(layer.hyper)])
    return out


class Classifier(Model):
    """Softmax classifier on an encoder: a new head of dense layers, trained with cross-entropy.

    ``loss = −(1/B) Σ_i log softmax(s_i)[y_i]`` (batch mean of the per-example negative
    log-likelihood, :func:`npae.pairs.functional.softmax_cross_entropy_loss`) [SOFTMAX-1].

    Parameters
    ----------
    encoder : npae.Autoencoder or npae.Sequential
        Copied (in ``dtype``); the source is never modified.
    n_classes : int >= 2
    hidden : tuple of int
        Widths of the head's hidden layers. ``()`` is a linear probe: one affine map to the logits.
    freeze_encoder : bool
        True: the encoder is fixed (not in ``params``, never updated; its codes are computed once per
        ``fit``). False: fine-tuned together with the head.
    activation : str
        Activation of the head's hidden layers.
    dtype, seed, slope, alpha, init : as :class:`npae.Autoencoder` (``seed`` seeds the head's initial
        weights and the minibatch shuffling).
    epochs, batch_size, lr, optimizer, verbose, callbacks : the training settings, as
        :class:`npae.Autoencoder` (docs/training.md).

    Attributes
    ----------
    encoder, head : Sequential
    params : dict
        ``head.<k>.W``, ``head.<k>.b`` (frozen); ``encoder.<k>.*`` first, then ``head.<k>.*``
        (trainable).
    last_terms : ``{"loss", "accuracy"}`` of the last step.
    """

    takes_labels = True

    def __init__(self, encoder, n_classes, hidden=(), freeze_encoder=True, activation="relu",
                 dtype="float64", seed=0, *, slope=0.01, alpha=1.0, init="auto", random_state=None,
                 warm_start=False,
                 epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, optimizer=OPTIMIZER, verbose=VERBOSE,
                 callbacks=None):
        self.encoder_source_ = clone_chain(_source_chain(encoder))  # the source never changes
        self.n_classes, self.hidden, self.freeze_encoder = n_classes, hidden, freeze_encoder
        self.activation, self.dtype, self.seed = activation, dtype, seed
        self.slope, self.alpha, self.init = slope, alpha, init
        self.random_state, self.warm_start = random_state, warm_start
        self.epochs, self.batch_size, self.lr, self.optimizer = epochs, batch_size, lr, optimizer
        self.verbose, self.callbacks = verbose, callbacks
        self._setup(self.encoder_source_.dense_layers[0].n_in)

    def _build(self, n_features):
        check_scalar("n_classes", self.n_classes, low=2, integer=True)
        hidden = check_sizes("hidden", self.hidden)
        if not isinstance(self.freeze_encoder, (bool, np.bool_)):
            raise InputTypeError(f"freeze_encoder must be True or False, got {self.freeze_encoder!r}")
        check_choice("activation", self.activation, ACTIVATION_NAMES)
        dtype = check_dtype(self.dtype)
        self.encoder = clone_chain(self.encoder_source_, dtype=dtype)
        dense = self.encoder.dense_layers
        self.input_dim, self.code_dim = dense[0].n_in, dense[-1].n_out
        self.rng = make_rng(self._seed(), self._seed_name())
        self.head = build_mlp([self.code_dim, *hidden, self.n_classes], self.activation, "identity",
                              rng=self.rng, dtype=dtype, prefix="head.", slope=self.slope,
                              alpha=self.alpha, init=self.init)
        chains = [self.head] if self.freeze_encoder else [self.encoder, self.head]
        self.flat_params = FlatParams(chains)
        self.params = dict(self.flat_params.params)

    def get_params(self, deep=True):
        params = super().get_params(deep=False)
        params["encoder"] = self.encoder_source_
        return params

    @property
    def config(self):
        """The constructor's arguments, the encoder as its architecture (its weights are saved
        with the parameters)."""
        config = {k: v for k, v in self.get_params().items() if k != "encoder"}
        config["encoder_layers"] = _describe(self.encoder)
        from npae.data.io import encode_json
        return encode_json(config)

    # ------------------------------------------------------------------ one step
    def _head_step(self, h, y):
        """Loss and head gradients from codes ``h`` (B, code_dim); returns (loss, dh), dh None for
        a frozen encoder (nothing below the head learns)."""
        logits = self.head.forward(h)  # (B, K)
        loss, dlogits = F.softmax_cross_entropy_loss(logits, y)  # (B, K) [SOFTMAX-1]
        dh = self.head.backward(dlogits, input_grad=not self.freeze_encoder)  # (B, code_dim) [SOFTMAX-2]
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
        self.last_terms = {"loss": loss, "accuracy": accuracy}
        return loss, dh

    def _loss_and_grads(self, x, y):
        if self.freeze_encoder:
            loss, _ = self._head_step(self.encoder.apply(x), y)
            return loss, dict(self.head.grads)  # [SOFTMAX-3] the encoder gets no gradient
        loss, dh = self._head_step(self.encoder.forward(x), y)
        self.encoder.backward(dh, input_grad=False)  # [SOFTMAX-3]
        return loss, {**self.encoder.grads, **self.head.grads}

    def loss_and_grads(self, x, y):
        """Loss and gradients on the batch ``x`` (B, input_dim) with labels ``y`` (B,) in
        0..n_classes−1. ``loss`` is the batch mean of the cross-entropy; ``grads`` has the keys and
        shapes of ``params``."""
        x = self._check_X(x, "x")
        y = check_labels("y", y, self.n_classes, n_samples=x.shape[0])
        return fresh_grads(self._loss_and_grads(x, y))

    # ------------------------------------------------------------------ training (Model.fit hooks)
    def _fit_data(self, X, y=None):
        if y is None:
            raise InputError("the classifier needs labels: fit(X, y) and validation_data=(X, y)")
        X = self._check_X(X)
        y = check_labels("y", y, self.n_classes, n_samples=X.shape[0])
        if self.freeze_encoder:
            return self.encoder.apply(X), y  # the codes, computed once: the encoder never changes
        return X, y

    def _train_batch(self, x, y):
        if self.freeze_encoder:  # x holds codes (see _fit_data)
            loss, _ = self._head_step(x, y)
            return loss, dict(self.head.grads)
        return self._loss_and_grads(x, y)

    def _loss_terms(self, x, y, *, rng):
        """Forward only: cross-entropy and accuracy of a batch (``x`` holds codes when frozen)."""
        h = x if self.freeze_encoder else self.encoder.apply(x)
        logits = self.head.apply(h)  # (B, K)
        loss, _ = F.softmax_cross_entropy_loss(logits, y)
        return {"loss": loss, "accuracy": float(np.mean(np.argmax(logits, axis=1) == y))}

    def fit(self, X, y, **fit_kwargs):
        """Train on ``X`` (N, input_dim) with labels ``y`` (N,); keyword arguments as
        :meth:`npae.models.model.Model.fit` (``validation_data=(X_val, y_val)``). Returns ``self``
        (``history_``: ``loss``, ``accuracy`` per epoch)."""
        return super().fit(X, y, **fit_kwargs)

    # ------------------------------------------------------------------ using the model
    def decision_function(self, X):
        """Logits (N, n_classes)."""
        return self.head.apply(self.encoder.apply(self._check_X(X)))

    def predict_proba(self, X):
        """Class probabilities ``softmax(s)`` (N, n_classes) [SOFTMAX-4], rows summing to 1."""
        return np.exp(F.log_softmax(self.decision_function(X)))  # [SOFTMAX-4]

    def predict(self, X):
        """Most probable class (N,) int64."""
        return np.argmax(self.decision_function(X), axis=1).astype(np.int64)

    def score(self, X, y):
        """Accuracy on ``(X, y)``."""
        X = self._check_X(X)
        y = check_labels("y", y, self.n_classes, n_samples=X.shape[0])
        return float(np.mean(self.predict(X) == y))

    # ------------------------------------------------------------------ model files (npae.data.io)
    @classmethod
    def _from_config(cls, config):
        """Rebuild from ``config``: the encoder's architecture comes from ``encoder_layers`` (its
        weights, random here, are then overwritten from the file by :func:`npae.load`)."""
        config = dict(config)
        dtype = check_dtype(config.get("dtype", "float64"))
        layers = []
        for spec in config.pop("encoder_layers"):
            if spec[0] == "dense":
                layers.append(Dense(int(spec[1]), int(spec[2]), dtype=dtype))
            else:
                layers.append(make_activation(spec[0], **spec[1]))
        return cls(Sequential(layers), **config)

    def _saved_arrays(self):
        """The encoder's arrays (outside ``params`` when frozen) and the head's."""
        return {**self.encoder.params, **self.head.params}

    def __repr__(self):
        return (f"Classifier(code_dim={self.code_dim}, n_classes={self.n_classes}, "
                f"hidden={self.hidden!r}, freeze_encoder={self.freeze_encoder})")
