"""The minibatch training loop shared by every model.

A model takes part by providing:

* ``params``: dict of its arrays (updated in place by the optimizer);
* ``_train_batch(*batch) -> (loss, grads)``: one step's loss and gradients, after which
  ``model.last_terms`` holds the named loss terms of that batch (``{"loss": ..., "recon": ...}``);
* ``_evaluate(*data) -> dict``: the same terms averaged over a whole data set (for validation);
* optionally ``_epoch_begin(epoch, epochs)`` (a VAE's KL warm-up sets β there);
* ``rng``: the model's seeded ``np.random.Generator``, which shuffles the minibatches, so the same
  seed gives bit-identical parameters.
"""
import numpy as np

from .optim import get_optimizer
from .validation import check_scalar


def iterate_minibatches(n, batch_size, rng):
    """Yield index arrays of a fresh random permutation of ``range(n)``, ``batch_size`` at a time
    (the last batch may be smaller)."""
    perm = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield perm[start:start + batch_size]


def fit_loop(model, data, *, epochs, batch_size, optimizer="adam", lr=1e-3, validation_data=None,
             progress=True, patience=None):
    """Train ``model`` on the arrays in ``data`` (a tuple whose arrays share their first axis).

    Returns the history: a dict of per-epoch lists, one per loss term (``loss``, and e.g. ``recon``,
    ``kl``), plus ``val_<term>`` lists when ``validation_data`` is given. Every value is the mean
    over the epoch's examples (batches weighted by their size).

    Early stopping: with ``validation_data`` and ``patience=k``, training stops after ``k`` epochs
    without a lower ``val_loss`` and the parameters of the best epoch are put back (in place);
    ``model.best_epoch_`` records which epoch (0-based) that was.
    """
    check_scalar("epochs", epochs, low=1, integer=True)
    check_scalar("batch_size", batch_size, low=1, integer=True)
    if patience is not None:
        check_scalar("patience", patience, low=1, integer=True)
        if validation_data is None:
            raise ValueError("patience (early stopping) needs validation_data")
    opt = get_optimizer(optimizer, lr)
    model.optimizer_ = opt
    n = data[0].shape[0]
    n_batches = -(-n // batch_size)
    history = {}
    best_val, best_params, since_best = np.inf, None, 0
    model.best_epoch_ = None

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * n_batches, desc=type(model).__name__, unit="batch", leave=False)
    try:
        for epoch in range(epochs):
            model._epoch_begin(epoch, epochs)
            sums = {}
            for idx in iterate_minibatches(n, batch_size, model.rng):
                batch = tuple(a[idx] for a in data)
                _, grads = model._train_batch(*batch)
                opt.step(model.params, grads)
                for key, value in model.last_terms.items():
                    sums[key] = sums.get(key, 0.0) + value * len(idx)
                if bar is not None:
                    bar.update(1)
            for key, total in sums.items():
                history.setdefault(key, []).append(total / n)
            if validation_data is not None:
                for key, value in model._evaluate(*validation_data).items():
                    history.setdefault(f"val_{key}", []).append(value)
            if bar is not None:
                shown = {k: f"{v[-1]:.4g}" for k, v in history.items()}
                bar.set_postfix(shown, refresh=False)
                bar.set_description(f"{type(model).__name__} epoch {epoch + 1}/{epochs}")
            if patience is not None:
                val = history["val_loss"][-1]
                if val < best_val:
                    best_val, since_best, model.best_epoch_ = val, 0, epoch
                    best_params = {k: p.copy() for k, p in model.params.items()}
                else:
                    since_best += 1
                    if since_best >= patience:
                        break
    finally:
        if bar is not None:
            bar.close()
    if best_params is not None:
        for name, p in model.params.items():
            p[...] = best_params[name]
    return history
