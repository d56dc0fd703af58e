"""What every npae model shares: the estimator protocol, building, ``fit``, forward-only evaluation,
saving a model file, the class registry. Loading is :mod:`npae.models.files` (:func:`npae.load`);
sizing a model from its config without building it, :mod:`npae.models.sizing`.

A model's life:

* The constructor stores its arguments and nothing else (scikit-learn's rule). A model given
  ``input_dim`` builds its network on first use, so that it can be used before ``fit``
  (``VAE(64).loss_and_grads(x)``, gradient checks); without ``input_dim`` the network is built
  by ``fit`` from the data (``n_features_in_``). Bad hyperparameters are reported when the
  network is built.
* :meth:`Model._build` (each subclass) checks the hyperparameters and makes the layers, the flat
  parameter arrays and the training generator ``rng``; :meth:`Model._setup` calls it and derives
  the evaluation streams from the seed.
* ``fit(X, y=None)`` rebuilds from the current parameters (fresh initial weights from the seed)
  unless ``warm_start=True`` and nothing changed, trains with :func:`npae.training.loop.fit_loop`, keeps
  the history in ``history_`` and returns ``self``.
* Training calls ``_train_batch(*batch) -> (loss, grads)``, the model's one step, written once
  against the backend's units (:mod:`npae.backend`). Evaluation (``evaluate``, ``score``, validation,
  the CLI's metrics) calls ``_loss_terms(*batch, rng=...)``: **forward only**. It touches no
  gradient buffer and no counter, and draws its noise from an evaluation stream, never from ``rng``,
  so that watching a held-out curve never changes what is learned.

Every subclass is registered (by module and class name) so that :func:`npae.load` can rebuild it from
the ``config`` stored in a model file (:mod:`npae.data.io`, the file format).
"""
import copy
import inspect
import json

import numpy as np

from npae.constants import TRAINING_DEFAULTS, TRAINING_SETTINGS
from npae.data import io
from npae.models.sklearn_protocol import ParamsMixin
from npae.models.sizing import _SIZERS, _class_key, _shapes_by_building, check_declarable, footprint
from npae.training.callbacks import check_callbacks
from npae.training.loop import fit_loop
from npae.validation import (InputError, NotFittedError, check_array, check_bool, check_data_scale,
                             check_dtype, check_memory, check_scalar, check_unit_interval)
from npae.version import __version__

#: Every Model subclass, keyed ``"<module>:<qualname>"`` (filled by ``Model.__init_subclass__``).
MODEL_CLASSES = {}

#: Attributes that exist once a model is built; asking for one earlier gets a clear message.
_BUILT_ATTRIBUTES = ("params", "flat_params", "encoder", "decoder", "head", "rng", "n_features_in_",
                     "last_terms")

#: Mixed into a seed to make the evaluation and the sampling streams (any fixed numbers would do).
_EVAL_STREAM, _SAMPLE_STREAM = 0x65766C, 0x73616D


def fresh_grads(result):
    """``(loss, grads)`` with every gradient copied, for the public ``loss_and_grads`` methods.

    Layers overwrite their gradient arrays at every backward (no allocation per training step),
    so what a caller keeps must be a copy, or the next call would change it.
    """
    loss, grads = result
    return loss, {name: g.copy() for name, g in grads.items()}


def seed_key(seed):
    """The integers an evaluation stream is derived from: the seed itself, or fresh entropy when the
    seed is None or a Generator (then estimates are reproducible only with an explicit ``seed=``)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed)]
    return [int(np.random.SeedSequence().entropy)]


class Model(ParamsMixin):
    """Base class. Subclasses store their constructor arguments, implement ``_build(n_features)``
    (set ``params``, ``dtype``, ``rng``, ...), ``_loss_and_grads`` (the step) and ``_loss_terms``
    (forward only)."""

    #: names of ``loss_and_grads`` arguments that are random when omitted (see gradcheck.check_model)
    stochastic_inputs = ()
    #: whether the training targets must lie in [0, 1] (a Bernoulli / BCE reconstruction)
    needs_unit_targets = False
    #: whether fit and the evaluation methods take labels ``y`` (a conditional VAE, a classifier)
    takes_labels = False
    #: parameters that do not shape the network: changing one keeps a warm start's weights
    _NO_REBUILD = ("warm_start", *TRAINING_SETTINGS)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODEL_CLASSES[_class_key(cls)] = cls

    def __getattr__(self, name):  # only reached when the attribute does not exist
        """Build on first use: a model constructed with ``input_dim`` makes its network the first
        time something of it is asked for (``model.params``, ``loss_and_grads``, ...), so the
        constructor itself only stores its arguments (scikit-learn's rule) and a bad argument is
        reported when the network is made. Without ``input_dim``, ``fit`` builds."""
        state = object.__getattribute__(self, "__dict__")
        if (not name.startswith("__") and "params" not in state and state.get("input_dim") is not None
                and not state.get("_building")):
            self._require_built()
            return object.__getattribute__(self, name)
        if name in _BUILT_ATTRIBUTES:
            raise AttributeError(f"{type(self).__name__} has no {name!r} yet: it is built by "
                                 f"fit(X), or on first use when constructed with input_dim")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ building
    def _build(self, n_features):
        raise NotImplementedError

    def _setup(self, n_features):
        """Build the network for ``n_features`` inputs from the current parameters."""
        self._building = True
        try:
            self._check_size(int(n_features))  # before anything of that size is allocated
            try:
                self._build(int(n_features))
            except (MemoryError, OverflowError, ValueError) as err:  # sizes NumPy cannot even shape
                text = str(err)
                if not isinstance(err, (MemoryError, OverflowError)) and "dimension" not in text \
                        and "too big" not in text and "negative dimensions" not in text:
                    raise
                raise InputError(f"{type(self).__name__} with {self._size_args(n_features)}: arrays of "
                                 f"these sizes cannot be allocated ({type(err).__name__}: {text})") from None
        finally:
            self._building = False
        self.n_features_in_ = int(n_features)
        key = seed_key(self._seed())
        self._eval_key = key + [_EVAL_STREAM]
        self.sample_rng_ = np.random.default_rng(key + [_SAMPLE_STREAM])
        self._built_with = self._param_snapshot()
        self.last_terms = {}
        return self

    #: Copies of the parameters a fit holds: the weights, their gradients, Adam's two moments.
    _COPIES_IN_FIT = 4

    def _footprint(self, n_features):
        """``(parameter bytes, activation width)`` of this model for ``n_features`` inputs, from its
        declared arrays (:func:`npae.models.sizing.footprint`), without building it; None when the
        class cannot be sized from its arguments (its own checks in ``_build`` then speak), or
        inside a shape-only build (nothing is allocated there)."""
        from npae.models.layers import is_shapes_only

        if is_shapes_only():
            return None
        try:
            params = self.get_params(deep=False)  # a Classifier's needs its building flag set
            config = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
            if "input_dim" in config:
                config["input_dim"] = n_features
            return footprint(type(self)._declared_shapes(config))
        except (TypeError, ValueError, AttributeError, NotImplementedError):
            return None

    #: Constructor arguments that set array sizes, named in the messages of the size checks.
    _SIZE_ARGS = ("input_dim", "n_classes", "hidden", "latent_dim", "hidden1", "latent_dim1", "hidden2",
                  "latent_dim2", "classifier_hidden", "flow_steps", "flow_hidden", "k")

    def _size_args(self, n_features):
        """``input_dim=..., hidden=..., ...``: the size-setting arguments this model has."""
        said = [f"input_dim={n_features}"]
        said += [f"{k}={getattr(self, k)!r:.40}" for k in self._SIZE_ARGS[1:] if k in vars(self)]
        return ", ".join(said)

    def _check_size(self, n_features):
        """Refuse a model whose parameters, with their gradients and Adam's moments, would exceed
        the memory budget (npae.constants.MEMORY_MAX_BYTES), before building it."""
        size = self._footprint(n_features)
        if size is not None:
            sizes = self._size_args(n_features).partition(", ")[2]
            check_memory(f"a {type(self).__name__} of {n_features} input features{' with ' if sizes else ''}"
                         f"{sizes} (its parameters, gradients and optimizer moments)",
                         self._COPIES_IN_FIT * size[0],
                         "use fewer or narrower layers (hidden, latent_dim)")

    def _check_step_size(self, n_rows, batch_size):
        """Refuse a training step whose activations (forward caches and their gradients, about 4
        numbers per layer output, for each of the k samples of z) exceed the memory budget."""
        size = self._footprint(self.n_features_in_)
        if size is None:
            return
        k = getattr(self, "k", 1) or 1
        itemsize = np.dtype(getattr(self, "dtype", "float64")).itemsize
        rows = min(int(batch_size), int(n_rows))
        check_memory(f"one training step of batch_size={batch_size}" + (f" with k={k}" if k > 1 else ""),
                     4 * int(k) * rows * (size[1] + self.n_features_in_) * itemsize,
                     "lower k or batch_size" if k > 1 else "lower batch_size")

    def _seed(self):
        """The seed in effect: ``random_state`` when given (scikit-learn's name), else ``seed``."""
        random_state = getattr(self, "random_state", None)
        return self.seed if random_state is None else random_state

    def _seed_name(self):
        """The argument :meth:`_seed` took its value from, for error messages."""
        return "seed" if getattr(self, "random_state", None) is None else "random_state"

    def _param_snapshot(self):
        """The parameters that shape the network (a change rebuilds it at the next fit)."""
        return {k: v for k, v in self.get_params(deep=False).items() if k not in self._NO_REBUILD}

    def _params_changed(self):
        self._built_with = None  # the next fit rebuilds

    @property
    def is_built(self):
        return "params" in self.__dict__

    def _require_built(self):
        if not self.is_built:
            if self.__dict__.get("input_dim") is None:
                raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) first "
                                     f"(or construct it with input_dim)")
            self._setup(check_scalar("input_dim", self.input_dim, low=1, integer=True))

    def __sklearn_is_fitted__(self):
        return self.is_built

    # ------------------------------------------------------------------ input checks
    def _check_X(self, X, name="X", *, targets=True):
        """``X`` checked against the built model: 2-D, finite, ``n_features_in_`` columns, in the
        model's dtype. ``targets``: X is also what the model reconstructs, so a Bernoulli / BCE
        model needs it in [0, 1]; encoding alone accepts any finite data."""
        self._require_built()
        X = check_data_scale(check_array(X, name, n_features=self.n_features_in_, dtype=self.dtype,
                                         owner=type(self).__name__), name)
        if targets and self.needs_unit_targets:
            check_unit_interval(name, X, self._real_valued_fix)
        return X

    @property
    def _real_valued_fix(self):
        """The argument that makes this model take real-valued targets, for the [0, 1] message."""
        return "likelihood='gaussian'" if hasattr(self, "likelihood") else "loss='mse'"

    def _fit_data(self, X, y=None):
        """The checked training arrays, as a tuple sharing their first axis. Unsupervised here: ``y``
        is ignored (scikit-learn's convention: a Pipeline hands it to every step). Labelled models
        (ConditionalVAE, Classifier) override it to return ``(X, y)``."""
        return (self._check_X(X),)

    # ------------------------------------------------------------------ training
    def _epoch_begin(self, epoch, epochs):
        """Hook called at the start of each training epoch (no-op here)."""

    def _train_batch(self, *batch):
        """One training step on a batch: ``(loss, grads)``, with ``last_terms`` set."""
        return self._loss_and_grads(*batch)

    def fit(self, X, y=None, *, epochs=None, batch_size=None, optimizer=None, lr=None, verbose=None,
            callbacks=None, validation_data=None, progress=True, patience=None, checkpoint=None,
            checkpoint_every=1, resume=None, clip_norm=None, threads=None):
        """Train on ``X`` with shuffled minibatches drawn from the model's seeded generator; returns
        ``self`` (the per-epoch history is in ``history_``).

        Parameters
        ----------
        X : (N, n_features) array
        y : (N,) int array, for the models that take labels (ConditionalVAE, Classifier); the
            unsupervised models accept only None (scikit-learn's convention).
        epochs, batch_size, optimizer, lr, verbose, callbacks : optional
            The training settings for this call only; None (the default) takes the constructor's
            (``self.epochs``, ...), which ``fit`` never changes (scikit-learn's rule; see the class
            docstring and docs/training.md). ``epochs`` counts from the start of training, also when
            resuming. ``optimizer``: ``"sgd" | "momentum" | "adam" | "adagrad" | "rmsprop"`` (built
            with ``lr``) or an :class:`npae.training.optim.Optimizer` (a constructor's instance is
            copied, so every fit starts from its state; one given here is used as it is).
            ``verbose``: 0 silent, 1 a live bar on a terminal (or a Jupyter widget) and one summary
            line at the end, 2 also the per-epoch log line (``epoch  3/100 | loss ...``: every epoch
            of a short run, about 20 of a long one, always the last); True/False mean 1/0;
            ``"auto"`` is 1, or 0 in a copy made by ``sklearn.base.clone``. ``callbacks``: objects
            with any of ``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``,
            ``on_epoch_end(epoch, logs)``, ``on_train_end(logs)`` (:mod:`npae.training.callbacks`).
        validation_data : array, or tuple of arrays shaped like the training data, optional
            Evaluated after every epoch, forward only, with noise from the evaluation stream:
            passing it never changes the parameters training ends with.
        progress : bool
            False: no live bar and no summary line, whatever ``verbose`` says (the per-epoch lines
            of ``verbose=2`` stay).
        patience : int, optional
            Early stopping on the validation loss (see :func:`npae.training.loop.fit_loop`;
            :class:`npae.training.callbacks.EarlyStopping` does the same on any logged value).
        checkpoint : str or os.PathLike, optional
            Write a checkpoint (model, optimizer, generator state, epoch, history) there every
            ``checkpoint_every`` epochs, after the last epoch, and on Ctrl-C.
        checkpoint_every : int
        resume : str or os.PathLike, optional
            Continue from this checkpoint (written by a model of the same class and config; its
            optimizer replaces ``optimizer``/``lr``). The result is bit-identical to an
            uninterrupted run.
        clip_norm : float, optional
            Rescale the gradients so their global norm is at most this.
        threads : int, optional
            BLAS threads while fitting. Default: one for a small model (its products are too small
            to gain from a second thread, which on a busy machine costs a lot), BLAS's default for
            a large one; ``OMP_NUM_THREADS`` and the like, when set, win (see :mod:`npae.fast.threads`).

        The model is rebuilt (initial weights drawn again from the seed) unless ``warm_start`` is
        True, the model is built and its parameters (other than the training settings) did not
        change since; then training continues from the current weights.

        Raises
        ------
        npae.training.loop.DivergenceError
            A loss term or gradient became NaN or inf; the parameters keep their last finite values.
        npae.training.loop.TrainingInterrupted
            Ctrl-C (a KeyboardInterrupt), raised after the current batch and after the checkpoint
            is written.
        """
        settings = self._training_settings(epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                                           lr=lr, verbose=verbose, callbacks=callbacks)
        check_bool("progress", progress)
        warm = check_bool("warm_start", getattr(self, "warm_start", False))
        unchanged = self.is_built and self._built_with == self._param_snapshot()
        # resuming overwrites the weights from the checkpoint; a refused one must leave them as they are
        if not (unchanged and (warm or resume is not None)):
            X = check_array(X, "X", dtype=check_dtype(getattr(self, "dtype", "float64")))
            n = getattr(self, "input_dim", None)
            if n is not None and X.shape[1] != n:
                raise InputError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{n} features as input (input_dim={n})")
            self._setup(X.shape[1])  # fresh initial weights from the seed
        data = self._fit_data(X, y)
        batch_size = settings["batch_size"]
        self._check_step_size(data[0].shape[0], check_scalar("batch_size", batch_size, low=1, integer=True))
        if validation_data is not None:
            if not isinstance(validation_data, tuple):
                validation_data = (validation_data,)
            try:
                validation_data = self._fit_data(*validation_data)
            except (TypeError, ValueError) as err:
                raise type(err)(f"validation_data: {err}") from None
        level = settings["verbose"]
        self.history_ = fit_loop(self, data, epochs=settings["epochs"], batch_size=batch_size,
                                 optimizer=settings["optimizer"], lr=settings["lr"],
                                 validation_data=validation_data, progress=progress and level >= 1,
                                 verbose=level >= 2, patience=patience, checkpoint=checkpoint,
                                 checkpoint_every=checkpoint_every, resume=resume,
                                 clip_norm=clip_norm, threads=threads, callbacks=settings["callbacks"])
        return self

    def _training_settings(self, **overrides):
        """The training settings of one fit: each override that is not None, else the constructor's
        value (never changed here). ``verbose`` comes back as 0, 1 or 2; an optimizer instance of
        the constructor as a copy (each fit starts from its state); ``callbacks`` as a list."""
        out = {}
        for name in TRAINING_SETTINGS:
            given = overrides.get(name)
            out[name] = given if given is not None else getattr(self, name, TRAINING_DEFAULTS[name])
        if overrides.get("optimizer") is None and not isinstance(out["optimizer"], str):
            out["optimizer"] = copy.deepcopy(out["optimizer"])
        out["verbose"] = self._verbosity(out["verbose"])
        out["callbacks"] = check_callbacks(out["callbacks"])
        return out

    def _verbosity(self, verbose):
        """0, 1 or 2 from a ``verbose`` setting: True/False are 1/0; ``"auto"`` is 1, or 0 in a copy
        made by ``sklearn.base.clone`` (a meta-estimator's fit, which it reports itself)."""
        if isinstance(verbose, str) and verbose == "auto":
            return 0 if self.__dict__.get("_sklearn_copy") else 1
        if isinstance(verbose, (bool, np.bool_)):
            return int(verbose)
        if isinstance(verbose, (int, np.integer)) and 0 <= verbose <= 2:
            return int(verbose)
        raise InputError(f"verbose must be 0 (silent), 1 (a summary line), 2 (also a line per epoch), "
                         f"True, False or 'auto', got {verbose!r}")

    # ------------------------------------------------------------------ evaluation (forward only)
    def evaluation_rng(self, seed=None):
        """The generator an evaluation draws its noise from: ``np.random.default_rng(seed)`` for an
        explicit seed, else the model's evaluation stream started afresh (the same numbers at every
        call). Never the training generator ``rng``."""
        return self._eval_rng(seed)

    def _eval_rng(self, seed=None):
        """The generator of one evaluation: ``np.random.default_rng(seed)`` for an explicit seed,
        else the model's evaluation stream started afresh (the same numbers at every call, and
        never the training generator)."""
        if seed is not None:
            return np.random.default_rng(seed)
        return np.random.default_rng(self._eval_key)

    def _loss_terms(self, *batch, rng):
        """The loss terms of a batch (``{"loss": ..., ...}``, batch means), forward only."""
        raise NotImplementedError

    def _evaluate(self, *data, batch_size=1024, seed=None):
        """Loss terms averaged over all of ``data`` (already checked), computed in batches with
        :meth:`_loss_terms`; noise from the evaluation stream (or ``seed``)."""
        rng = self._eval_rng(seed)
        sums, n = {}, data[0].shape[0]
        for start in range(0, n, batch_size):
            batch = tuple(a[start:start + batch_size] for a in data)
            for key, value in self._loss_terms(*batch, rng=rng).items():
                sums[key] = sums.get(key, 0.0) + value * batch[0].shape[0]
        return {key: total / n for key, total in sums.items()}

    def evaluate(self, X, y=None, *, seed=None, batch_size=1024):
        """The loss terms on ``X`` (``{"loss": ..., "recon": ..., ...}``: means over the examples of
        per-example sums, nats per example for the probabilistic models), computed forward only;
        noise, if the model has any, from the evaluation stream or ``seed``."""
        return self._evaluate(*self._fit_data(X, y), seed=seed, batch_size=batch_size)

    def score(self, X, y=None):
        """Higher is better: minus the loss of :meth:`evaluate` (scikit-learn's convention)."""
        return -self.evaluate(X, y)["loss"]

    @property
    def n_params(self):
        return int(sum(p.size for p in self.params.values()))

    # ------------------------------------------------------------------ model files
    @property
    def config(self):
        """The constructor arguments that rebuild this model (JSON-able; ``input_dim`` resolved)."""
        config = self._json_settings(self.get_params(deep=False))
        if "input_dim" in config:
            config["input_dim"] = self.n_features_in_ if self.is_built else config["input_dim"]
        return io.encode_json(config)

    @staticmethod
    def _json_settings(config):
        """``config`` with the training settings a file cannot hold left out: ``callbacks`` (objects
        of the user's program) and an optimizer given as an instance (a fit's optimizer, with its
        state, is what a checkpoint holds)."""
        config = {k: v for k, v in config.items() if k != "callbacks"}
        if "optimizer" in config and not isinstance(config["optimizer"], str):
            del config["optimizer"]
        return config

    @classmethod
    def _from_config(cls, config):
        """Rebuild a model from its ``config`` (used by :func:`~npae.models.files.load`); its weights are then
        overwritten from the file. Override when the constructor does not take ``**config``."""
        return cls(**config)

    def _saved_arrays(self):
        """The arrays a model file stores (``param/<name>``) and :func:`~npae.models.files.load` writes
        back in place: ``params``, plus any array outside ``params`` that the model needs (override)."""
        return self.params

    @classmethod
    def _declared_shapes(cls, config):
        """``{name: (shape, dtype)}`` of every array :meth:`_saved_arrays` holds for a model of this
        class built from ``config``, computed **without building it** (no array is allocated).

        :func:`~npae.models.files.load` compares this with the arrays a file lists before it
        decompresses or builds anything, so that a small file cannot make it build a huge network;
        :meth:`save` checks it against the model's own arrays. The default sizes npae's MLP families
        (autoencoders, VAEs, the classifier) from ``input_dim``, ``hidden``, ``latent_dim``,
        ``n_classes`` (see :mod:`npae.models.sizing`). A class whose arrays follow another rule
        overrides it; a config it cannot size raises ValueError (or TypeError) naming the field.
        """
        if not isinstance(config, dict):
            raise ValueError(f"config must be an object, got {config!r:.60}")
        layered = config.get("arch", "mlp") != "mlp" or any(
            config.get(name) is not None for name in ("encoder_layers", "decoder_layers"))
        if not layered or cls.__name__ == "Classifier":
            for klass in cls.__mro__:
                sizer = _SIZERS.get(_class_key(klass))
                if sizer is not None:
                    return sizer(config)
            raise ValueError(f"{cls.__name__} does not say how its arrays follow from its config: "
                             f"define the classmethod {cls.__name__}._declared_shapes(config)")
        return _shapes_by_building(cls, config)

    def _write(self, path, *, training=None, arrays=None, key=None):
        """Write this model (and, for a checkpoint, ``training`` state and extra ``arrays``);
        ``key`` signs the file (:func:`npae.data.io.write`)."""
        self._require_built()
        _check_rebuildable(self)
        check_declarable(self)
        cls = type(self)
        header = {"npae_version": __version__, "class": cls.__qualname__, "module": cls.__module__,
                  "config": self.config,
                  "rng_state": io.encode_json(self.rng.bit_generator.state, "rng state"),
                  "training": training}
        out = {f"param/{name}": p for name, p in self._saved_arrays().items()}
        out.update(arrays or {})
        return io.write(path, header, out, key=key)

    def save(self, path, *, key=None):
        """Write the model (class, config, parameters, generator state) to ``path`` atomically.

        One ``.npz`` of plain arrays with a JSON header; ``path`` is used as given (``.npz`` is the
        convention but is not appended). ``key`` (bytes or str; default the environment variable
        ``NPAE_MODEL_KEY``) signs the file with HMAC-SHA256, and :func:`npae.load` then needs the
        same key. Parameters holding a NaN or an inf are refused (:class:`~npae.data.io.ModelFileError`
        naming the array). Load with :func:`npae.load`; see :mod:`npae.data.io` and docs/files.md.
        """
        return self._write(path, key=key)

    def _check_compatible(self, mf):
        """Raise :class:`~npae.data.io.ModelFileError` unless the file ``mf`` holds a model of this class
        and config (the seed may differ) whose arrays match this model's. Changes nothing."""
        cls = type(self)
        if mf.header["class"] != cls.__qualname__:
            raise io.ModelFileError(f"{mf.path}: holds a {mf.header['class']}, not a {cls.__name__}")
        # the generator state comes from the file; the training settings do not shape the model
        ignore = ("seed", "random_state", "warm_start", *TRAINING_SETTINGS)
        saved_config = {k: v for k, v in mf.header["config"].items() if k not in ignore}
        model_config = {k: v for k, v in json.loads(json.dumps(self.config)).items() if k not in ignore}
        if saved_config != model_config:
            diff = sorted(k for k in set(saved_config) | set(model_config)
                          if saved_config.get(k) != model_config.get(k))
            raise io.ModelFileError(f"{mf.path}: config differs from this model's in {diff[:10]}: "
                                    f"saved { {k: saved_config.get(k) for k in diff[:10]} }"[:400]
                                    + f", model { {k: model_config.get(k) for k in diff[:10]} }"[:400])
        saved = {k[len("param/"):]: v for k, v in mf.listing.items() if k.startswith("param/")}
        target = self._saved_arrays()
        missing = [k for k in target if k not in saved]
        extra = [k for k in saved if k not in target]
        if missing or extra:
            raise io.ModelFileError(f"{mf.path}: parameters do not match a {cls.__name__} with this "
                                    f"config: missing {missing[:10]}, unexpected {extra[:10]}")
        for name, p in target.items():
            shape, dtype = saved[name]
            if shape != p.shape or dtype != p.dtype:
                raise io.ModelFileError(f"{mf.path}: parameter {name!r} has shape {shape} {dtype}; "
                                        f"a {cls.__name__} with this config needs {p.shape} {p.dtype}")

    def _restore(self, mf):
        """Copy the parameters and generator state of ``mf`` into this model in place, after
        :meth:`_check_compatible`; returns ``self``. A refused file changes nothing."""
        self._check_compatible(mf)
        state = _checked_rng_state(mf, self.rng)
        self.rng.bit_generator.state = state
        for name, p in self._saved_arrays().items():
            p[...] = mf.params[name]
        return self


def _checked_rng_state(mf, rng):
    """The generator state of the file ``mf``, checked by setting it on a copy of ``rng``."""
    state = mf.header.get("rng_state")
    name = type(rng.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != name:
        raise io.ModelFileError(f"{mf.path}: bad generator state: rng_state must be the state of a "
                                f"{name} generator, got {str(state)[:80]}")
    trial = type(rng.bit_generator)()
    try:
        trial.state = state
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError, IndexError) as err:
        raise io.ModelFileError(f"{mf.path}: bad generator state ({type(err).__name__}: "
                                f"{str(err)[:120]})") from None
    return state


def _check_rebuildable(model):
    """Refuse, before writing anything, a model that :func:`~npae.models.files.load` could not
    rebuild from its config."""
    cls = type(model)
    if getattr(cls._from_config, "__func__", None) is not getattr(Model._from_config, "__func__", None):
        return  # the class rebuilds itself
    try:
        inspect.signature(cls).bind(**model.config)
    except TypeError as err:
        raise TypeError(f"cannot save a {cls.__name__}: its config (keys {sorted(model.config)}) does "
                        f"not match its constructor ({err}), so it could not be loaded back; the class "
                        f"must override Model._from_config (and Model._saved_arrays for weights kept "
                        f"outside params)") from None
