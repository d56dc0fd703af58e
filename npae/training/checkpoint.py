"""A run's training state and its checkpoint file: what ``fit(..., checkpoint=path)`` writes and
``fit(..., resume=path)`` restores (:mod:`npae.training.loop` calls both).

A checkpoint is a model file (:mod:`npae.data.io`) that also holds the optimizer (class,
hyperparameters, step count, moments), the generator state, the number of finished epochs, the
history, the early-stopping state, the early loss scale of the divergence rule [CLIP-3] and, after
Ctrl-C, the position inside the epoch (its permutation, the batches applied, the running sums).
Every field is validated before it is used (:func:`read_training_state`), and the model changes
only once the whole checkpoint is accepted (:func:`_resume`), so a resumed run ends bit-identical
to a run that was never stopped.
"""
import math
import statistics

import numpy as np

from npae import constants
from npae.data import io
from npae.training import optim
from npae.validation import InputError


def loss_reference(first_loss, early_losses):
    """The early loss scale R of [CLIP-3]: the larger of the first batch's |loss| and the median
    |loss| of the first ``DIVERGENCE_REFERENCE_BATCHES`` batches (None before the first batch)."""
    if first_loss is None:
        return None
    return max(first_loss, statistics.median(early_losses))  # [CLIP-3]


class _State:
    """Everything besides the model and optimizer that a resumed run needs."""

    def __init__(self):
        self.epochs_done = 0
        self.history = {}
        self.best_val, self.best_params, self.since_best, self.best_epoch = math.inf, None, 0, None
        self.stopped_early = False
        self.stopped_by_callback = False  # a callback asked to stop (no patience state behind it)
        # mid-epoch (Ctrl-C) position: the epoch's permutation, batches applied, running sums
        self.perm, self.batches_done, self.sums, self.batch_size = None, 0, {}, None
        # the early loss scale of the divergence rule [CLIP-3]
        self.first_loss, self.early_losses, self.reference = None, [], None

    def record_loss(self, loss):
        """Remember the |loss| of an accepted batch while the early reference is being formed."""
        if len(self.early_losses) < constants.DIVERGENCE_REFERENCE_BATCHES:
            if self.first_loss is None:
                self.first_loss = abs(loss)
            self.early_losses.append(abs(loss))
            self.reference = loss_reference(self.first_loss, self.early_losses)


def _save_checkpoint(path, model, opt, st, epochs):
    meta, arrays = optim.payload(opt)
    training = {
        "epochs_done": st.epochs_done, "epochs": epochs, "optimizer": meta,
        "history": st.history, "stopped_early": st.stopped_early,
        "early_stopping": {"best_val": st.best_val if math.isfinite(st.best_val) else None,
                           "since_best": st.since_best, "best_epoch": st.best_epoch},
        "partial": None,
        "divergence": {"first_loss": st.first_loss, "early_losses": st.early_losses},
    }
    if st.stopped_by_callback:  # written only then: other checkpoints stay as they were
        training["stopped_by_callback"] = True
    if st.best_params is not None:
        arrays.update({f"train/best/{k}": v for k, v in st.best_params.items()})
    if st.perm is not None:
        training["partial"] = {"batches_done": st.batches_done, "batch_size": st.batch_size,
                               "sums": st.sums}
        arrays["train/perm"] = st.perm
    model._write(path, training=training, arrays=arrays)


# --------------------------------------------------------------------------------------------------
# Reading a checkpoint: every field checked for type, range and consistency
# --------------------------------------------------------------------------------------------------
_TRAINING_FIELDS = {"epochs_done", "epochs", "optimizer", "history", "stopped_early",
                    "early_stopping", "partial", "divergence", "stopped_by_callback"}
#: Fields a checkpoint may lack (older files; a run no callback stopped).
_OPTIONAL_FIELDS = {"divergence", "stopped_by_callback"}


def check_checkpoint_listing(mf):
    """Refuse a checkpoint (read so far: header and array list) whose optimizer and training arrays
    are not shaped like its parameters: ``optim/<slot>/<name>`` and ``train/best/<name>`` like
    ``param/<name>``, ``train/perm`` a 1-D integer array. Reads no array. A plain model file holds
    ``param/`` arrays only."""
    params = {k[len("param/"):]: v for k, v in mf.listing.items() if k.startswith("param/")}
    for name, (shape, dtype) in mf.listing.items():
        if name.startswith("param/"):
            continue
        if not mf.is_checkpoint:
            raise io.ModelFileError(f"{mf.path}: a model file (no training state) holding a training "
                                    f"array {name!r}")
        if name.startswith(("optim/", "train/best/")):
            pname = name.split("/", 2)[2] if name.count("/") >= 2 else ""
            if params.get(pname) != (shape, dtype):
                raise io.ModelFileError(f"{mf.path}: array {name!r} ({shape} {dtype}) is not shaped "
                                        f"like a parameter of the model ({params.get(pname)})")
        elif name == "train/perm":
            if len(shape) != 1 or dtype.kind not in "iu":
                raise io.ModelFileError(f"{mf.path}: train/perm must be a 1-D integer array, got "
                                        f"{shape} {dtype}")
        else:
            raise io.ModelFileError(f"{mf.path}: unexpected training array {name!r}")


def _int(value, field, low=0, high=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{field} must be an integer {span}, got {value!r:.60}")
    return value


def _real(value, field):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value!r:.60}")
    return float(value)


def _obj(value, field, keys=None):
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be an object, got {value!r:.60}")
    if keys is not None and set(value) != set(keys):
        raise ValueError(f"{field} must have the fields {sorted(keys)}, got {sorted(value)[:10]}")
    return value


def read_training_state(mf, model):
    """``(optimizer, state)`` of the checkpoint ``mf`` for ``model`` (built with the file's config),
    after checking every field: counters non-negative and consistent with each other (history
    lists as long as ``epochs_done``, ``0 < batches_done <`` the number of batches, the step count
    at least the batches trained), ``perm`` a permutation of ``range(n)``, finite sums, consistent
    early-stopping fields, the optimizer (:func:`npae.training.optim.from_payload`). Raises
    :class:`~npae.data.io.ModelFileError` naming the file and the field; changes nothing."""
    tr = mf.header["training"]
    try:
        _obj(tr, "training")
        unknown = sorted(set(tr) - _TRAINING_FIELDS)
        missing = sorted(_TRAINING_FIELDS - _OPTIONAL_FIELDS - set(tr))
        if unknown or missing:
            raise ValueError(f"training has unknown fields {unknown[:10]} / lacks {missing}")
        st = _State()
        st.epochs_done = _int(tr["epochs_done"], "epochs_done")
        _int(tr["epochs"], "epochs", low=max(1, st.epochs_done))
        history = _obj(tr["history"], "history")
        for term, values in history.items():
            if not isinstance(values, list):
                raise ValueError(f"history[{term!r}] must be a list, got {values!r:.60}")
            if len(values) != st.epochs_done and not (term.startswith("val_")
                                                      and len(values) <= st.epochs_done):
                raise ValueError(f"history[{term!r}] has {len(values)} values; epochs_done is "
                                 f"{st.epochs_done}")
            st.history[term] = [_real(v, f"history[{term!r}]") for v in values]
        if st.epochs_done and "loss" not in st.history:
            raise ValueError(f"history has no 'loss' after {st.epochs_done} epochs")
        st.stopped_early = tr["stopped_early"]
        if not isinstance(st.stopped_early, bool):
            raise ValueError(f"stopped_early must be true or false, got {st.stopped_early!r:.60}")
        st.stopped_by_callback = tr.get("stopped_by_callback", False)
        by_callback = st.stopped_by_callback
        if by_callback is not False and (by_callback is not True or not st.stopped_early):
            raise ValueError(f"stopped_by_callback must be true, and only with stopped_early, got "
                             f"{st.stopped_by_callback!r:.60}")
        _read_early_stopping(mf, model, tr["early_stopping"], st)
        _read_partial(mf, tr["partial"], st)
        _read_divergence(tr.get("divergence"), st)
    except ValueError as err:
        raise io.ModelFileError(f"{mf.path}: bad training state in checkpoint: {err}") from None
    opt = optim.from_payload(tr["optimizer"], mf.arrays, model.params, mf.path)
    if opt.t < st.epochs_done + st.batches_done:
        raise io.ModelFileError(f"{mf.path}: bad training state in checkpoint: the optimizer took "
                                f"{opt.t} steps, fewer than the {st.epochs_done} epochs and "
                                f"{st.batches_done} batches trained")
    return opt, st


def _read_early_stopping(mf, model, es, st):
    _obj(es, "early_stopping", ("best_val", "since_best", "best_epoch"))
    best = {k[len("train/best/"):]: a for k, a in mf.arrays.items() if k.startswith("train/best/")}
    st.since_best = _int(es["since_best"], "early_stopping.since_best", high=st.epochs_done)
    if es["best_epoch"] is None:
        patience_stop = st.stopped_early and not st.stopped_by_callback
        if es["best_val"] is not None or st.since_best or best or patience_stop:
            raise ValueError("early_stopping without a best_epoch has a best_val, a since_best, best "
                             "parameters or stopped_early")
        return
    if not st.epochs_done:
        raise ValueError("early_stopping has a best_epoch before any epoch")
    st.best_epoch = _int(es["best_epoch"], "early_stopping.best_epoch", high=st.epochs_done - 1)
    st.best_val = _real(es["best_val"], "early_stopping.best_val")
    if st.best_val not in st.history.get("val_loss", []):
        raise ValueError(f"early_stopping.best_val {st.best_val} is none of the history's val_loss")
    if st.since_best > st.epochs_done - 1 - st.best_epoch:
        raise ValueError(f"early_stopping.since_best {st.since_best} is more than the epochs after "
                         f"best_epoch {st.best_epoch}")
    if st.stopped_early and not st.stopped_by_callback and not st.since_best:
        raise ValueError("stopped_early with since_best 0")
    if set(best) != set(model.params):
        raise ValueError(f"early stopping needs the best parameters of every parameter; the file "
                         f"has {sorted(best)[:6]}")
    st.best_params = {k: best[k].copy() for k in model.params}


def _read_partial(mf, partial, st):
    perm = mf.arrays.get("train/perm")
    if partial is None:
        if perm is not None:
            raise ValueError("train/perm without a partial epoch")
        return
    _obj(partial, "partial", ("batches_done", "batch_size", "sums"))
    if perm is None:
        raise ValueError("a partial epoch without train/perm")
    if st.stopped_early:
        raise ValueError("a partial epoch after early stopping")
    n = perm.shape[0]
    if n == 0 or int(perm.min()) < 0 or int(perm.max()) >= n or not (
            np.bincount(perm.astype(np.intp), minlength=n) == 1).all():
        raise ValueError(f"train/perm is not a permutation of range({n})")
    st.batch_size = _int(partial["batch_size"], "partial.batch_size", low=1)
    n_batches = -(-n // st.batch_size)
    if n_batches < 2:
        raise ValueError(f"a partial epoch of {n_batches} batch")
    st.batches_done = _int(partial["batches_done"], "partial.batches_done", low=1, high=n_batches - 1)
    sums = _obj(partial["sums"], "partial.sums")
    st.sums = {term: _real(v, f"partial.sums[{term!r}]") for term, v in sums.items()}
    terms = {k for k in st.history if not k.startswith("val_")}
    if "loss" not in st.sums or (st.epochs_done and set(st.sums) != terms):
        raise ValueError(f"partial.sums has the terms {sorted(st.sums)[:10]}; the history has "
                         f"{sorted(terms)[:10]}")
    st.perm = perm.astype(np.intp)


def _read_divergence(div, st):
    if div is None:  # a checkpoint of an older npae: the reference is formed again
        return
    _obj(div, "divergence", ("first_loss", "early_losses"))
    early = div["early_losses"]
    if not isinstance(early, list) or len(early) > 1000:
        raise ValueError(f"divergence.early_losses must be a list, got {early!r:.60}")
    early = [_real(v, "divergence.early_losses") for v in early]
    if any(v < 0 for v in early):
        raise ValueError("divergence.early_losses are |loss| values, never negative")
    if div["first_loss"] is None:
        if early:
            raise ValueError("divergence.early_losses without first_loss")
        return
    st.first_loss = _real(div["first_loss"], "divergence.first_loss")
    if not early or early[0] != st.first_loss:
        raise ValueError("divergence.first_loss is not the first of early_losses")
    st.early_losses = early
    st.reference = loss_reference(st.first_loss, early)


def _resume(path, model, n, batch_size, epochs):
    """Restore ``model`` from the checkpoint at ``path``; return ``(optimizer, state, rng_state)``.
    Nothing of the model changes unless the whole checkpoint is accepted."""
    def check(mf):  # before any array is read
        model._check_compatible(mf)
        if not mf.is_checkpoint:
            raise io.ModelFileError(f"{mf.path}: a model file, not a checkpoint (no optimizer or "
                                    f"epoch); load it with npae.load and call fit without resume")
        check_checkpoint_listing(mf)

    mf = io.read(path, check=check)
    opt, st = read_training_state(mf, model)
    if st.perm is not None and (st.perm.shape != (n,) or st.batch_size != batch_size):
        raise InputError(f"resume: {mf.path} was saved in the middle of an epoch over {st.perm.shape[0]} "
                         f"examples with batch_size={st.batch_size}; got {n} examples and "
                         f"batch_size={batch_size}. Pass the same data and batch_size.")
    if st.epochs_done > epochs:
        raise InputError(f"resume: {mf.path} has {st.epochs_done} epochs done; epochs={epochs} counts "
                         f"from the start of training, so it must be >= {st.epochs_done}")
    model._restore(mf)  # only now: a refused checkpoint leaves the model as it was
    return opt, st, mf.header.get("rng_state")
