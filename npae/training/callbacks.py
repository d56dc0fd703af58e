"""Callbacks: the public hook into training (Keras's ``callbacks=``), and three made with it.

A callback is any object with some of these methods (the others are not called)::

    on_train_begin(logs)         logs: {"epochs", "batch_size", "n_batches", "initial_epoch"}
    on_epoch_begin(epoch, logs)  before the epoch's first batch (epoch 0-based); logs: {}
    on_epoch_end(epoch, logs)    after the epoch and its validation; logs: that epoch's values,
                                 e.g. {"loss", "recon", "kl", "val_loss", ...} (history_'s last entries)
    on_train_end(logs)           after a fit that ended normally; logs: the last epoch's values

and optionally ``set_model(model)``, called once before ``on_train_begin``. Returning True from
``on_epoch_end``, or setting the callback's ``stop_training`` attribute to True, stops training
after that epoch (the run counts as stopped early, as ``fit(patience=...)``; a checkpoint records it).
:class:`Callback` is a base class with every method a no-op.

Give them to the constructor (``VAE(callbacks=[...])``: clone copies them, so each fit of a grid
gets its own) or to one fit (``fit(X, callbacks=[...])``, which replaces the constructor's list for
that call). The hooks run between epochs, outside every step: a callback that does nothing leaves
the parameters bit for bit as without it, and one that evaluates the model (``model.score``,
``model.evaluate``) draws from the evaluation stream, never from the training generator
(tests/test_callbacks.py). A fit that raises (divergence, Ctrl-C) does not call ``on_train_end``.

The three below follow npae's file rules: they write whole files or nothing (a temporary file
renamed into place), they never replace a file that was there before the fit unless told
(``overwrite=True``), and :class:`ModelCheckpoint` takes the lock of its path while it writes
(:func:`npae.data.locks.checkpoint_lock`), so two fits cannot write one file at once.
"""
import csv
import io as text_io
import json
import math
import os

import numpy as np

from npae.data import locks
from npae.validation import InputError, InputTypeError, check_bool, check_choice, check_path, check_scalar

#: The hooks a callback may have.
HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")


class Callback:
    """Base class of a callback: every hook a no-op. ``self.model`` is the model being fitted (set
    by :meth:`set_model`); setting ``self.stop_training = True`` stops training after the epoch."""

    model = None
    stop_training = False

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def check_callbacks(callbacks):
    """``callbacks`` as a list (None: empty), each entry checked to have at least one hook."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, (list, tuple)):
        raise InputTypeError(f"callbacks must be a list of callback objects (npae.training.callbacks), "
                             f"got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if isinstance(cb, type):
            raise InputTypeError(f"callbacks[{i}] is the class {cb.__name__}, not a callback: "
                                 f"write {cb.__name__}(...)")
        if not any(callable(getattr(cb, hook, None)) for hook in HOOKS):
            raise InputTypeError(f"callbacks[{i}] ({type(cb).__name__}) has none of the methods "
                                 f"{', '.join(HOOKS)}")
    return list(callbacks)


class CallbackList:
    """The loop's side: calls each callback's hooks in order, and says when one asks to stop."""

    def __init__(self, callbacks, model):
        self.callbacks = check_callbacks(callbacks)
        for cb in self.callbacks:
            if callable(getattr(cb, "set_model", None)):
                cb.set_model(model)

    def _call(self, hook, *args):
        stop = False
        for cb in self.callbacks:
            method = getattr(cb, hook, None)
            if callable(method):
                stop = bool(method(*args)) or stop
            stop = stop or getattr(cb, "stop_training", False) is True
        return stop

    def train_begin(self, logs):
        for cb in self.callbacks:
            if getattr(cb, "stop_training", None) is True:
                cb.stop_training = False  # a flag left by an earlier fit
        self._call("on_train_begin", logs)

    def epoch_begin(self, epoch, logs):
        self._call("on_epoch_begin", epoch, logs)

    def epoch_end(self, epoch, logs):
        """True when a callback asked training to stop."""
        return self._call("on_epoch_end", epoch, logs)

    def train_end(self, logs):
        self._call("on_train_end", logs)


# --------------------------------------------------------------------------------------------------
# Watching a logged value
# --------------------------------------------------------------------------------------------------
class _Monitor(Callback):
    """A logged value watched for improvement: lower (``mode="min"``) or higher (``"max"``) by more
    than ``min_delta`` than the best so far."""

    def __init__(self, monitor, mode, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise InputTypeError(f"monitor must be the name of a logged value such as 'val_loss', "
                                 f"got {monitor!r}")
        self.monitor = monitor
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.min_delta = check_scalar("min_delta", min_delta, low=0.0)
        self.best = None

    def _value(self, logs):
        if self.monitor not in logs:
            hint = " (val_* values need fit(..., validation_data=...))" if self.monitor.startswith(
                "val_") else ""
            raise InputError(f"{type(self).__name__}: monitor={self.monitor!r} is not among the "
                             f"logged values {sorted(logs)}{hint}")
        return float(logs[self.monitor])

    def _improved(self, value):
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A logged value: ``"val_loss"`` (needs ``validation_data``), ``"loss"``, ``"val_recon"``, ...
    patience : int >= 1
        Epochs without improvement after which training stops.
    min_delta : float >= 0
        An improvement is a change past the best by more than this.
    mode : "min" | "max"
    restore_best : bool
        At the end of training put back the parameters of the best epoch (in place), and set the
        model's ``best_epoch_``. ``EarlyStopping(patience=k)`` is then ``fit(patience=k)``.

    After a fit: ``best`` (the best value), ``best_epoch`` (0-based) and ``stopped_epoch`` (None
    when training ran all its epochs).
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="min", restore_best=True):
        super().__init__(monitor, mode, min_delta)
        self.patience = check_scalar("patience", patience, low=1, integer=True)
        self.restore_best = check_bool("restore_best", restore_best)
        self.best_epoch = self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.stopped_epoch, self.wait = None, None, None, 0
        self._best_params = None

    def on_epoch_end(self, epoch, logs=None):
        value = self._value(logs or {})
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self._best_params = {k: p.copy() for k, p in self.model.params.items()}
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, logs=None):
        if self.restore_best and self._best_params is not None:
            for name, p in self.model.params.items():
                p[...] = self._best_params[name]
            self.model.best_epoch_ = self.best_epoch
        self._best_params = None


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------
def _identity(path):
    """What tells a file apart from a later one written over it: (inode, size, mtime), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class _FileCallback(Callback):
    """A callback writing one file: refused at the start of training when the file was there
    before (and was not written by this callback) unless ``overwrite``."""

    def __init__(self, path, overwrite):
        self.path = check_path("path", path, writable=True)
        self.overwrite = check_bool("overwrite", overwrite)
        self._wrote = None  # identity of the file this callback wrote last

    def on_train_begin(self, logs=None):
        check_path("path", self.path, writable=True)  # the folder may have gone since
        found = _identity(self.path)
        if found is not None and not self.overwrite and found != self._wrote:
            raise FileExistsError(f"{type(self).__name__}: {self.path!r} already exists and was not "
                                  f"written by this callback; give another path, or overwrite=True "
                                  f"to replace it")

    def _written(self):
        self._wrote = _identity(self.path)


class ModelCheckpoint(_FileCallback):
    """Save the model (:meth:`npae.models.model.Model.save`, a model file for :func:`npae.load`)
    after an epoch: the best so far by ``monitor`` (``save_best_only=True``), or after every epoch.

    Parameters
    ----------
    path : str or os.PathLike
        The model file. Written atomically while holding its lock (a second writer is refused with
        :class:`npae.data.locks.FileInUse`); a file already there before the fit is refused unless
        ``overwrite=True``.
    monitor, mode, min_delta : as :class:`EarlyStopping`.
    save_best_only : bool
    key : bytes or str, optional
        Signs the file (see ``Model.save``).

    After a fit: ``best``, ``best_epoch`` and ``saved_epochs`` (0-based epochs written).
    """

    def __init__(self, path, monitor="val_loss", mode="min", min_delta=0.0, save_best_only=True,
                 overwrite=False, key=None):
        _FileCallback.__init__(self, path, overwrite)
        self._monitor = _Monitor(monitor, mode, min_delta)
        self.monitor, self.mode = self._monitor.monitor, self._monitor.mode
        self.save_best_only = check_bool("save_best_only", save_best_only)
        self.key = key
        self.best = self.best_epoch = None
        self.saved_epochs = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._monitor.best, self.best, self.best_epoch, self.saved_epochs = None, None, None, []

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self._monitor._value(logs or {})
            if not self._monitor._improved(value):
                return False
            self._monitor.best = self.best = value
            self.best_epoch = epoch
        with locks.checkpoint_lock(self.path):
            self.model.save(self.path, key=self.key)
        self._written()
        self.saved_epochs.append(epoch)
        return False


def _plain(value):
    """A logged value as a JSON number (NaN/inf as null, which strict JSON readers accept)."""
    value = float(value.item() if isinstance(value, np.generic) else value)
    return value if math.isfinite(value) else None


class _Logger(_FileCallback):
    """Keeps one row per epoch and rewrites the whole file after each epoch (atomically), so the
    file always holds the run so far and a reader never sees half a line."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **{k: _plain(v) for k, v in (logs or {}).items()}})
        locks.write_atomic(self.path, self._text())
        self._written()
        return False


class CSVLogger(_Logger):
    """Write the per-epoch values to a CSV file: a header ``epoch,loss,...`` and one row per epoch.

    ``path``: the file (refused when it existed before the fit, unless ``overwrite=True``).
    """

    def __init__(self, path, overwrite=False):
        super().__init__(path, overwrite)

    def _text(self):
        names = ["epoch"] + sorted({k for row in self.rows for k in row} - {"epoch"})
        out = text_io.StringIO()
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if row.get(k) is None else repr(row[k]) for k in names})
        return out.getvalue()


class JSONLogger(_Logger):
    """Write the per-epoch values to a JSON file: ``{"epochs": [{"epoch": 0, "loss": ...}, ...]}``.

    ``path``: the file (refused when it existed before the fit, unless ``overwrite=True``).
    """

    def __init__(self, path, overwrite=False):
        super().__init__(path, overwrite)

    def _text(self):
        return json.dumps({"epochs": self.rows}, indent=1) + "\n"
