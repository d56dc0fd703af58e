"""What every npae model shares: input checks, the ``fit`` entry point, batched evaluation, saving.

Every subclass is registered (by module and class name) so that :func:`npae.load` can rebuild it
from the ``config`` stored in a model file.
"""
from . import io
from .training import fit_loop
from .validation import check_array, check_unit_interval


def fresh_grads(result):
    """``(loss, grads)`` with every gradient copied, for the public ``loss_and_grads`` methods.

    Fused layers overwrite their gradient arrays at every backward (no allocation per training
    step), so what a caller keeps must be a copy, or the next call would change it.
    """
    loss, grads = result
    return loss, {name: g.copy() for name, g in grads.items()}


class Model:
    """Base class. Subclasses build ``self.params`` (a dict of arrays in forward order), set
    ``self.dtype``, ``self.input_dim``, ``self.rng`` and implement ``_loss_and_grads``."""

    #: names of ``loss_and_grads`` arguments that are random when omitted (see gradcheck.check_model)
    stochastic_inputs = ()
    #: whether the data must lie in [0, 1] (a Bernoulli / BCE reconstruction)
    needs_unit_targets = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        io.register_model_class(cls)

    def _check_X(self, X, name="X"):
        X = check_array(X, name, n_features=self.input_dim, dtype=self.dtype)
        if self.needs_unit_targets:
            check_unit_interval(name, X)
        return X

    def _epoch_begin(self, epoch, epochs):
        """Hook called at the start of each training epoch (no-op here)."""

    def _train_batch(self, x):
        return self._loss_and_grads(x)

    def _fit_data(self, X, y=None):
        """The checked training arrays, as a tuple sharing their first axis. Unsupervised here;
        labelled models (ConditionalVAE, Classifier) override it to return ``(X, y)``."""
        if y is not None:
            raise TypeError(f"{type(self).__name__} is unsupervised: fit(X) takes no labels")
        return (self._check_X(X),)

    def fit(self, X, y=None, *, epochs=10, batch_size=64, optimizer="adam", lr=1e-3, validation_data=None,
            progress=True, patience=None, checkpoint=None, checkpoint_every=1, resume=None,
            clip_norm=None):
        """Train on ``X`` with shuffled minibatches drawn from the model's seeded generator.

        Parameters
        ----------
        X : (N, input_dim) array
        y : (N,) int array, for the models that take labels (ConditionalVAE, Classifier)
        epochs, batch_size : int
            ``epochs`` counts from the start of training, also when resuming.
        optimizer : str or npae.optim.Optimizer
            ``"sgd" | "momentum" | "adam" | "adagrad" | "rmsprop"`` (built with ``lr``) or an instance.
        lr : float
        validation_data : array, or tuple of arrays shaped like the training data, optional
        progress : bool
            Show a tqdm progress bar.
        patience : int, optional
            Early stopping on the validation loss (see :func:`npae.training.fit_loop`).
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

        Returns
        -------
        history : dict of lists, per-epoch means of ``loss`` and the model's other terms.

        Raises
        ------
        npae.training.DivergenceError
            A loss term or gradient became NaN or inf; the parameters keep their last finite values.
        npae.training.TrainingInterrupted
            Ctrl-C (a KeyboardInterrupt), raised after the current batch and after the checkpoint
            is written.
        """
        data = self._fit_data(X, y)
        if validation_data is not None:
            if not isinstance(validation_data, tuple):
                validation_data = (validation_data,)
            try:
                validation_data = self._fit_data(*validation_data)
            except (TypeError, ValueError) as err:
                raise type(err)(f"validation_data: {err}") from None
        self.history_ = fit_loop(self, data, epochs=epochs, batch_size=batch_size,
                                 optimizer=optimizer, lr=lr, validation_data=validation_data,
                                 progress=progress, patience=patience, checkpoint=checkpoint,
                                 checkpoint_every=checkpoint_every, resume=resume,
                                 clip_norm=clip_norm)
        return self.history_

    @classmethod
    def _from_config(cls, config):
        """Rebuild a model from its ``config`` (used by :func:`npae.load`); its weights are then
        overwritten from the file. Override when the constructor does not take ``**config``."""
        return cls(**config)

    def _saved_arrays(self):
        """The arrays a model file stores (``param/<name>``) and :func:`npae.load` writes back in
        place: ``params``, plus any array outside ``params`` that the model needs (override)."""
        return self.params

    def save(self, path):
        """Write the model (class, config, parameters, generator state) to ``path`` atomically.

        One ``.npz`` of plain arrays with a JSON header; ``path`` is used as given (``.npz`` is the
        convention but is not appended). Load with :func:`npae.load`. See :mod:`npae.io`.
        """
        return io.save(self, path)

    def _evaluate(self, X, batch_size=1024):
        """Loss terms averaged over all of ``X`` (already checked), computed in batches."""
        sums, n = {}, X.shape[0]
        for start in range(0, n, batch_size):
            xb = X[start:start + batch_size]
            self._loss_and_grads(xb)
            for key, value in self.last_terms.items():
                sums[key] = sums.get(key, 0.0) + value * xb.shape[0]
        return {key: total / n for key, total in sums.items()}

    def loss(self, X):
        """The training loss (mean over examples of the per-example sum) on ``X``, as a float."""
        return self._evaluate(self._check_X(X))["loss"]

    @property
    def n_params(self):
        return int(sum(p.size for p in self.params.values()))
