"""What every npae model shares: input checks, the ``fit`` entry point, batched evaluation."""
import numpy as np

from .training import fit_loop
from .validation import check_array, check_unit_interval


class Model:
    """Base class. Subclasses build ``self.params`` (a dict of arrays in forward order), set
    ``self.dtype``, ``self.input_dim``, ``self.rng`` and implement ``_loss_and_grads``."""

    #: names of ``loss_and_grads`` arguments that are random when omitted (see gradcheck.check_model)
    stochastic_inputs = ()
    #: whether the data must lie in [0, 1] (a Bernoulli / BCE reconstruction)
    needs_unit_targets = False

    def _check_X(self, X, name="X"):
        X = check_array(X, name, n_features=self.input_dim, dtype=self.dtype)
        if self.needs_unit_targets:
            check_unit_interval(name, X)
        return X

    def _epoch_begin(self, epoch, epochs):
        """Hook called at the start of each training epoch (no-op here)."""

    def _train_batch(self, x):
        return self._loss_and_grads(x)

    def _fit_data(self, X):
        return (self._check_X(X),)

    def fit(self, X, *, epochs=10, batch_size=64, optimizer="adam", lr=1e-3, validation_data=None,
            progress=True, patience=None):
        """Train on ``X`` with shuffled minibatches drawn from the model's seeded generator.

        Parameters
        ----------
        X : (N, input_dim) array
        epochs, batch_size : int
        optimizer : str or npae.optim.Optimizer
            ``"sgd" | "momentum" | "adam" | "adagrad" | "rmsprop"`` (built with ``lr``) or an instance.
        lr : float
        validation_data : array, or tuple of arrays shaped like the training data, optional
        progress : bool
            Show a tqdm progress bar.
        patience : int, optional
            Early stopping on the validation loss (see :func:`npae.training.fit_loop`).

        Returns
        -------
        history : dict of lists, per-epoch means of ``loss`` and the model's other terms.
        """
        data = self._fit_data(X)
        if validation_data is not None:
            if not isinstance(validation_data, tuple):
                validation_data = (validation_data,)
            validation_data = self._fit_data(*validation_data)
        self.history_ = fit_loop(self, data, epochs=epochs, batch_size=batch_size,
                                 optimizer=optimizer, lr=lr, validation_data=validation_data,
                                 progress=progress, patience=patience)
        return self.history_

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
