"""The minibatch training loop shared by every model: checkpoints, exact resume, divergence checks.

A model takes part by providing:

* ``params``: dict of its arrays (updated in place by the optimizer);
* ``_train_batch(*batch) -> (loss, grads)``: one step's loss and gradients, after which
  ``model.last_terms`` holds the named loss terms of that batch (``{"loss": ..., "recon": ...}``);
* ``_evaluate(*data) -> dict``: the same terms averaged over a whole data set (for validation);
* optionally ``_epoch_begin(epoch, epochs)`` (a VAE's KL warm-up sets β there); it must not draw
  from ``model.rng``, or draw the same whatever happened before (a mid-epoch resume calls it again);
* ``rng``: the model's seeded ``np.random.Generator``, which shuffles the minibatches (and draws a
  VAE's ε or a denoiser's corruption), so the same seed gives bit-identical parameters.

Checkpoints (``checkpoint=path``, :mod:`npae.training.checkpoint`) are model files that also hold
the optimizer, the generator state and the training state. ``resume=path`` restores all of it, so
that a run stopped
after any epoch (or, after Ctrl-C, after any batch) and resumed ends with parameters bit-identical
to a run that was never stopped.

One writer per checkpoint: ``fit(..., checkpoint=path)`` holds a lock on ``path`` from before the
first batch until it returns or raises (:mod:`npae.data.locks`); a second process fitting into the
same path is refused before it trains (:class:`~npae.data.locks.FileInUse`, naming the path and the
holder's pid), so the first run's checkpoint is never replaced by another run's.

Ctrl-C: while ``fit`` runs, the first SIGINT is deferred to the end of the current batch (so the
parameters and the optimizer are never half-updated); ``fit`` then writes a checkpoint (when
``checkpoint`` was given) and raises :class:`TrainingInterrupted`, a ``KeyboardInterrupt`` that
names the checkpoint. A second Ctrl-C interrupts at once. Callers (the CLI) catch it.

Ctrl-C is honoured whenever it comes, also during the last batch of the last epoch: training is
complete then, the final checkpoint is written, and ``fit`` still raises :class:`TrainingInterrupted`
rather than return as if nothing had been asked.

Divergence (docs/derivations/clip.md#clip-3) raises :class:`DivergenceError` naming the epoch, the
batch and the culprit, in three cases, and the parameters and the optimizer are always left finite
(a fourth, [CLIP-4], judges the outcome: see :func:`check_outcome`):

* before a step: a NaN or inf loss term or gradient, or a batch loss above ``DIVERGENCE_FACTOR``
  times the early reference (:data:`npae.constants.DIVERGENCE_FACTOR`; training that has run away
  with finite numbers, such as Adam at ``lr=1e3``); the step is not taken, the parameters are those
  after the previous batch;
* after a step: the update made a parameter or an optimizer state entry NaN or inf (``SGD`` at
  ``lr=1e308``). The Adam units count what they write in the same pass; for the other optimizers
  one ``np.vdot`` over the parameters (and one per state array) decides. The parameters, the
  optimizer state, the generator and the running sums are then put back to their values before the
  step, exactly: the state at the start of the epoch (copied once per epoch) is restored and the
  epoch's earlier batches are run again, which gives the same numbers bit for bit.
"""
import contextlib
import math
import signal
import threading
import warnings

import numpy as np

from npae import constants
from npae.data import locks
from npae.training import optim
from npae.training.callbacks import CallbackList
from npae.fast import threads as threads_policy
from npae.fast import backends
from npae.fast.backends import NonFiniteUpdate
from npae.training.checkpoint import _State, _resume, _save_checkpoint
from npae.training.report import Progress
from npae.validation import check_bool, check_path, check_scalar


class StaleLockWarning(UserWarning):
    """``fit(..., checkpoint=path)`` took over the lock of a process that no longer holds it."""


class DivergenceError(FloatingPointError):
    """Training diverged: a NaN or inf loss, gradient, parameter or optimizer state, or a loss that
    ran away (see the module docstring).

    Attributes: ``epoch`` and ``batch`` (0-based; ``batch`` is None for the validation pass) and
    ``source``, e.g. ``"loss term 'kl'"``, ``"gradient of 'encoder.0.W'"``, ``"loss growth"`` or
    ``"update of 'encoder.0.W'"``.
    """

    def __init__(self, message, *, epoch, batch, source):
        super().__init__(message)
        self.epoch, self.batch, self.source = epoch, batch, source


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``. ``checkpoint`` is the path written (or None), ``epoch`` and ``batch``
    (0-based) say where training stopped: every batch before ``batch`` of ``epoch`` was applied."""

    def __init__(self, message, *, checkpoint, epoch, batch):
        super().__init__(message)
        self.checkpoint, self.epoch, self.batch = checkpoint, epoch, batch


# --------------------------------------------------------------------------------------------------
# Checks of one step
# --------------------------------------------------------------------------------------------------
def _first_bad_term(terms, loss):
    """Name of the first non-finite loss term ("loss" last: it is the sum of the others)."""
    for key, value in terms.items():
        if key != "loss" and not math.isfinite(value):
            return key
    if not math.isfinite(loss) or not math.isfinite(terms.get("loss", 0.0)):
        return "loss"
    return None


def global_norm(grads):
    """sqrt(Σ_k ||g_k||²) over every gradient array [CLIP-1], computed without overflow."""
    sq = sum(float(np.vdot(g, g)) for g in grads.values())
    if math.isfinite(sq):
        return math.sqrt(sq)
    scale = max(float(np.max(np.abs(g))) for g in grads.values())  # finite entries, huge sum
    return scale * math.sqrt(sum(float(np.vdot(g / scale, g / scale)) for g in grads.values()))


def check_step(model, loss, grads, epoch, batch, clip_norm=None, flat=None, reference=None):
    """Raise :class:`DivergenceError` if the loss or a gradient is not finite, or if the loss
    exceeds ``DIVERGENCE_FACTOR · reference`` [CLIP-3] (``reference``: the early loss scale of
    :func:`loss_reference`; None skips that rule); return the gradients, scaled by
    ``min(1, clip_norm / ||g||)`` [CLIP-2] (``||g||`` the global norm over all parameters,
    [CLIP-1]) when ``clip_norm`` is given.

    Derivation: docs/derivations/clip.md#clip-1

    One ``np.vdot`` per gradient decides (one in all when ``flat``, a :class:`npae.models.layers.FlatParams`
    holding ``grads``, is given; clipping then scales its gradients in place): a NaN or inf
    anywhere makes the sum of squares non-finite; only then is each gradient scanned to name the
    first bad one, in forward order.
    """
    loss = float(loss)  # a non-finite term makes the loss (their weighted sum) non-finite too
    term = None if math.isfinite(loss) else _first_bad_term(model.last_terms, loss)
    if term is not None:
        raise DivergenceError(
            f"training diverged at epoch {epoch} batch {batch}: loss term {term!r} is "
            f"{model.last_terms.get(term, loss)} (terms {model.last_terms}); parameters keep their "
            f"values from before this batch. Lower the learning rate or set clip_norm.",
            epoch=epoch, batch=batch, source=f"loss term {term!r}")
    factor = constants.DIVERGENCE_FACTOR
    if reference is not None and reference > 0 and loss > factor * reference:  # [CLIP-3]
        raise DivergenceError(
            f"training diverged at epoch {epoch} batch {batch}: the batch loss {loss:.4g} is more "
            f"than {factor:g} times the early loss scale {reference:.4g} (the first batches' "
            f"|loss|; npae.constants.DIVERGENCE_FACTOR): the numbers are finite but training has run "
            f"away. The step is not taken; the parameters are those after the previous batch. Lower "
            f"the learning rate or set clip_norm.", epoch=epoch, batch=batch, source="loss growth")
    if flat is not None:
        sq = float(np.vdot(flat.grad_data, flat.grad_data))  # [CLIP-1]
    else:
        sq = sum(float(np.vdot(grads[name], grads[name])) for name in model.params)  # [CLIP-1]
    if not math.isfinite(sq):
        for name in model.params:
            bad = ~np.isfinite(grads[name])
            if bad.any():
                raise DivergenceError(
                    f"training diverged at epoch {epoch} batch {batch}: the gradient of parameter "
                    f"{name!r} has {int(bad.sum())} NaN/inf entries (loss {float(loss):.6g}); "
                    f"parameters keep their values from before this batch. Lower the learning rate "
                    f"or set clip_norm.", epoch=epoch, batch=batch, source=f"gradient of {name!r}")
    if clip_norm is not None:
        norm = math.sqrt(sq) if math.isfinite(sq) else global_norm(grads)
        if norm > clip_norm:
            scale = clip_norm / norm
            if flat is not None:
                flat.grad_data *= scale  # [CLIP-2]
            else:
                grads = {name: g * scale for name, g in grads.items()}  # [CLIP-2]
    return grads


def check_outcome(st, epoch):
    """Raise :class:`DivergenceError` when training ended far worse than it began [CLIP-4]: the mean
    training loss of the epoch it ends with (the best epoch's, after early stopping) is more than
    ``DIVERGENCE_OUTCOME_FACTOR`` times ``|L_1|``, the loss of the first batch (the untrained model).

    Derivation: docs/derivations/clip.md#clip-4
    """
    losses = st.history.get("loss")
    if not losses or st.first_loss is None:
        return
    at = st.best_epoch if st.best_params is not None else len(losses) - 1  # early stopping: the best
    end, begin, factor = losses[at], st.first_loss, constants.DIVERGENCE_OUTCOME_FACTOR
    if end > factor * begin:  # [CLIP-4]
        raise DivergenceError(
            f"training diverged: it ended far worse than it began. The mean loss of its "
            f"{'best' if st.best_params is not None else 'last'} epoch ({at + 1} of {len(losses)}) is "
            f"{end:.4g}, more than {factor:g} times the untrained model's loss scale {begin:.4g} (the "
            f"first batch's |loss|; npae.constants.DIVERGENCE_OUTCOME_FACTOR). The parameters are "
            f"those of the last step and no final checkpoint was written. Lower the learning rate or "
            f"set clip_norm.", epoch=epoch, batch=None, source="outcome")


def refuse_clamped_fit(model, X, clamped, entries):
    """Raise :class:`DivergenceError` when the logvar clamp held more than
    ``LOGVAR_CLAMP_ERROR_FRACTION`` of a VAE encoder's log-variances during a fit (``clamped`` of
    ``entries``): those entries got no gradient, the encoder's variances say nothing and the loss it
    reports is meaningless. Almost always data far from unit scale (pixels 0..255, raw values).
    Called by the VAEs' ``fit`` (docs/derivations/clip.md#clip-4)."""
    share, limit = (clamped / entries if entries else 0.0), constants.LOGVAR_CLAMP_ERROR_FRACTION
    if share <= limit:
        return
    X = np.asarray(X)
    span = (f"; X holds values in [{float(X.min()):.4g}, {float(X.max()):.4g}]"
            if X.dtype.kind in "biuf" and X.size else "")
    losses = (getattr(model, "history_", None) or {}).get("loss", ())
    raise DivergenceError(
        f"the logvar clamp [{constants.LOGVAR_MIN:g}, {constants.LOGVAR_MAX:g}] held {clamped} of "
        f"{entries} encoder log-variances ({100 * share:.1f}%, more than {100 * limit:g}%: "
        f"npae.constants.LOGVAR_CLAMP_ERROR_FRACTION) during this fit: they got no gradient and the "
        f"model is meaningless{span}. Scale the data to about unit range (pixels: divide by 255; npae "
        f"train: --scale), or lower the learning rate.",
        epoch=max(0, len(losses) - 1), batch=None, source="logvar clamp")


def _first_non_finite(params, opt):
    """Name of the first parameter, then optimizer state entry, holding a NaN or an inf, or None."""
    for name, p in params.items():
        if not np.isfinite(p).all():
            return f"parameter {name!r}"
    for slot, bufs in opt.state.items():
        for name, buf in bufs.items():
            if not np.isfinite(buf).all():
                return f"optimizer state {slot!r} of {name!r}"
    return None


def _update_is_finite(params, opt, flat_data):
    """True when the parameters and the optimizer state are finite after a step: one ``np.vdot``
    over the flat parameters (or one per array) and one per state array; a sum of squares that
    overflows without a NaN or an inf (entries past 1e154) is settled by a scan."""
    sq = (float(np.vdot(flat_data, flat_data)) if flat_data is not None
          else sum(float(np.vdot(p, p)) for p in params.values()))
    for bufs in opt.state.values():
        for buf in bufs.values():
            sq += float(np.vdot(buf, buf))
    return math.isfinite(sq) or _first_non_finite(params, opt) is None


def _checks_its_writes(opt):
    """True for an optimizer whose every write goes through the backend's ``adam_update``, which
    counts NaN/inf entries in the same pass and raises :class:`npae.fast.backends.NonFiniteUpdate`."""
    return type(opt).step is optim.Adam.step and type(opt)._update is optim.Adam._update


# --------------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------------
class _StopFlag:
    requested = False


@contextlib.contextmanager
def _deferred_sigint():
    """Turn the first SIGINT into a flag the loop checks after each batch (main thread only)."""
    flag = _StopFlag()
    usable = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if usable else None
    if previous in (signal.SIG_IGN, None):
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def fit_loop(model, data, *, epochs, batch_size, optimizer="adam", lr=1e-3, validation_data=None,
             progress=True, verbose=False, patience=None, checkpoint=None, checkpoint_every=1,
             resume=None, clip_norm=None, threads=None, callbacks=None):
    """Train ``model`` on the arrays in ``data`` (a tuple whose arrays share their first axis).

    Returns the history: a dict of per-epoch lists, one per loss term (``loss``, and e.g. ``recon``,
    ``kl``), plus ``val_<term>`` lists when ``validation_data`` is given. Every value is the mean
    over the epoch's examples (batches weighted by their size).

    Early stopping: with ``validation_data`` and ``patience=k``, training stops after ``k`` epochs
    without a lower ``val_loss`` and the parameters of the best epoch are put back (in place);
    ``model.best_epoch_`` records which epoch (0-based) that was.

    Checkpoints: ``checkpoint=path`` writes one after every ``checkpoint_every`` epochs and after the
    last; ``resume=path`` continues from one (its optimizer replaces ``optimizer``/``lr``) up to
    ``epochs`` epochs in total. ``clip_norm`` rescales the gradients to at most that global norm.
    ``callbacks``: their hooks run at the start and end of training and of each epoch, outside every
    step (:mod:`npae.training.callbacks`); one returning True from ``on_epoch_end`` stops training.
    Raises :class:`DivergenceError` (a non-finite loss, gradient, parameter or optimizer state, or
    a runaway loss) and :class:`TrainingInterrupted` on Ctrl-C (see the module docstring).
    """
    check_scalar("epochs", epochs, low=1, integer=True)
    check_scalar("batch_size", batch_size, low=1, integer=True)
    check_scalar("checkpoint_every", checkpoint_every, low=1, integer=True)
    check_bool("progress", progress)
    check_bool("verbose", verbose)
    if clip_norm is not None:
        check_scalar("clip_norm", clip_norm, low=0.0, low_open=True)
    if checkpoint is not None:
        checkpoint = check_path("checkpoint", checkpoint, writable=True)
    if resume is not None:
        resume = check_path("resume", resume, must_exist=True)
    if patience is not None:
        check_scalar("patience", patience, low=1, integer=True)
        if validation_data is None:
            raise ValueError("patience (early stopping) needs validation_data")
    with _checkpoint_held(checkpoint):  # before training: a second fit into it is refused now
        n = data[0].shape[0]
        n_batches = -(-n // batch_size)
        if resume is not None:
            opt, st, rng_state = _resume(resume, model, n, batch_size, epochs)
        else:
            opt, st, rng_state = optim.get_optimizer(optimizer, lr), _State(), None
        model.optimizer_ = opt
        model.best_epoch_ = st.best_epoch

        hooks = CallbackList(callbacks, model)
        hooks.train_begin({"epochs": epochs, "batch_size": batch_size, "n_batches": n_batches,
                           "initial_epoch": st.epochs_done})
        bar = None
        if (progress or verbose) and st.epochs_done < epochs and not st.stopped_early:
            bar = Progress(type(model).__name__, epochs=epochs, n_batches=n_batches,
                           start_epoch=st.epochs_done, start_batch=st.batches_done, bar=progress,
                           verbose=verbose)
        n_threads = threads_policy.choose(model, batch_size, threads)
        n_steps = (epochs - st.epochs_done) * n_batches - st.batches_done
        try:  # the backend before the thread limit: numba's BLAS loads with the kernels, inside it
            # would keep its default threads (tests/test_threads.py)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                    backends.for_job(model, n_steps * batch_size, n_steps) as model.backend_, \
                    threads_policy.limit(n_threads), _deferred_sigint() as stop:
                _run_epochs(model, data, opt, st, stop, bar, hooks, epochs=epochs, batch_size=batch_size,
                            n_batches=n_batches, validation_data=validation_data, patience=patience,
                            checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                            clip_norm=clip_norm, rng_state=rng_state)
        finally:
            if bar is not None:
                bar.close(st.history, st.epochs_done)
            model.history_ = st.history
        if st.best_params is not None:
            for name, p in model.params.items():
                p[...] = st.best_params[name]
        model.best_epoch_ = st.best_epoch
        hooks.train_end({k: v[-1] for k, v in st.history.items() if v})
        return st.history


@contextlib.contextmanager
def _checkpoint_held(path):
    """Hold the lock of the checkpoint ``path`` (:func:`npae.data.locks.checkpoint_lock`) while the
    block runs, and release it however the block ends (an error, a full disk, Ctrl-C). Another live
    process holding it raises :class:`npae.data.locks.FileInUse` naming ``path`` and its pid; a stale
    lock (its process gone, or its pid now another process's) is taken over with a warning. Temporary
    files that killed writes of ``path`` left are removed once the lock is held."""
    if path is None:
        yield None
        return
    lock = locks.checkpoint_lock(path).acquire()
    try:
        if lock.took_over is not None:
            warnings.warn(lock.note(), StaleLockWarning, stacklevel=4)
        locks.clean_stale_temps(path)
        yield lock
    finally:
        lock.release()


class _EpochStart:
    """The training state at the first batch of an epoch, copied once per epoch: what it takes to
    put the parameters, the optimizer (state, step count, hyperparameters), the generator, the
    running sums and the model's counters (``clamp_count_``, ...) back to their values before any
    later batch of the epoch, by restoring this and training the batches in between again
    (:meth:`rewind`; deterministic, so exact)."""

    def __init__(self, model, opt, st, first):
        self.first = first
        self.params = {name: p.copy() for name, p in model.params.items()}
        self.opt_state = opt.state_dict()  # copies, and the step count
        self.opt_scalars = {k: v for k, v in vars(opt).items() if type(v) in (int, float, bool)}
        self.rng_state = model.rng.bit_generator.state
        self.sums = dict(st.sums)
        self.reference = (st.first_loss, list(st.early_losses), st.reference)
        self.counters = {k: v for k, v in vars(model).items()
                         if k.endswith("_") and type(v) in (int, float)}

    def rewind(self, model, opt, st, step, to):
        """Put everything back to its value before batch ``to`` of this epoch; ``step(b)`` trains
        batch ``b`` as the loop does."""
        for name, p in model.params.items():
            p[...] = self.params[name]
        opt.load_state_dict(self.opt_state)
        for k, v in self.opt_scalars.items():  # lr, betas, ... as they were
            setattr(opt, k, v)
        model.rng.bit_generator.state = self.rng_state
        st.sums = dict(self.sums)
        first_loss, early, st.reference = self.reference
        st.first_loss, st.early_losses = first_loss, list(early)
        for k, v in self.counters.items():
            setattr(model, k, v)
        for b in range(self.first, to):
            if step(b) is not None:  # cannot happen: the same batches gave finite steps before
                raise RuntimeError(f"batch {b} was finite in training and not when trained again: "
                                   f"the run is not deterministic")


def _run_epochs(model, data, opt, st, stop, bar, hooks, *, epochs, batch_size, n_batches, validation_data,
                patience, checkpoint, checkpoint_every, clip_norm, rng_state):
    n = data[0].shape[0]
    model_flat = getattr(model, "flat_params", None)  # FlatParams: one-pass Adam and check
    flat_data = None  # the flat parameter array, when model.params are exactly its views
    if model_flat is not None and len(model_flat.params) == len(model.params) and all(
            model.params.get(k) is v for k, v in model_flat.params.items()):
        flat_data = model_flat.param_data
    checks_its_writes = _checks_its_writes(opt)

    def interrupted(epoch, batch, saved_already=False):
        """The exception to raise after Ctrl-C, once every batch before ``batch`` of ``epoch``
        was applied (``batch == 0``: at an epoch boundary); writes the checkpoint first."""
        if checkpoint is not None and not saved_already:
            _save_checkpoint(checkpoint, model, opt, st, epochs)
        saved = (f"checkpoint saved to {checkpoint!r}; continue with fit(..., resume={checkpoint!r})"
                 if checkpoint is not None else "no checkpoint path was given")
        where = (f"after {batch} of {n_batches} batches of epoch {epoch}" if epoch < epochs
                 else f"during the last batch of the last epoch (all {epochs} epochs are complete)")
        return TrainingInterrupted(f"training interrupted {where} ({st.epochs_done} epochs "
                                   f"complete); {saved}", checkpoint=checkpoint, epoch=epoch,
                                   batch=batch)

    for epoch in range(st.epochs_done, epochs):
        if st.stopped_early:
            break
        model._epoch_begin(epoch, epochs)
        hooks.epoch_begin(epoch, {})
        if st.perm is not None:  # resuming in the middle of this epoch
            model.rng.bit_generator.state = rng_state
            perm, first = st.perm, st.batches_done
        else:
            perm, first, st.sums, st.batch_size = model.rng.permutation(n), 0, {}, batch_size

        def step(b):
            """Train batch ``b``: None when the step was taken, else what it made non-finite (the
            parameters are then left as the step wrote them)."""
            idx = perm[b * batch_size:(b + 1) * batch_size]
            batch = tuple(a[idx] for a in data)
            loss, grads = model._train_batch(*batch)
            flat = model_flat if model_flat is not None and model_flat.holds(model.params, grads) else None
            grads = check_step(model, loss, grads, epoch, b, clip_norm, flat, st.reference)
            try:
                opt.step(model.params, grads, flat)
            except NonFiniteUpdate:
                return _first_non_finite(model.params, opt) or "the Adam update"
            if not checks_its_writes and not _update_is_finite(model.params, opt, flat_data):
                return _first_non_finite(model.params, opt)
            for key, value in model.last_terms.items():
                st.sums[key] = st.sums.get(key, 0.0) + value * len(idx)
            st.record_loss(float(loss))
            return None

        start = _EpochStart(model, opt, st, first)
        for b in range(first, n_batches):
            bad = step(b)
            if bad is not None:
                start.rewind(model, opt, st, step, to=b)
                raise DivergenceError(
                    f"training diverged at epoch {epoch} batch {b}: the optimizer step made {bad} "
                    f"NaN or inf; the step is undone: parameters, optimizer state and generator are "
                    f"back to their values before this batch. Lower the learning rate or set "
                    f"clip_norm.", epoch=epoch, batch=b, source=f"update of {bad}")
            if bar is not None:
                bar.batch()
            if stop.requested and b + 1 < n_batches:
                st.perm, st.batches_done = perm, b + 1
                raise interrupted(epoch, b + 1)
        st.perm, st.batches_done = None, 0
        for key, total in st.sums.items():
            st.history.setdefault(key, []).append(total / n)
        if validation_data is not None:
            for key, value in model._evaluate(*validation_data).items():
                if not math.isfinite(value):
                    raise DivergenceError(
                        f"validation loss term {key!r} is {value} after epoch {epoch}: training diverged "
                        f"(lower the learning rate or set clip_norm)",
                        epoch=epoch, batch=None, source=f"validation term {key!r}")
                st.history.setdefault(f"val_{key}", []).append(value)
        st.epochs_done = epoch + 1
        if bar is not None:
            bar.epoch(epoch, st.history)
        if patience is not None:
            val = st.history["val_loss"][-1]
            if val < st.best_val:
                st.best_val, st.since_best, st.best_epoch = val, 0, epoch
                st.best_params = {k: p.copy() for k, p in model.params.items()}
            else:
                st.since_best += 1
                st.stopped_early = st.since_best >= patience
        if hooks.epoch_end(epoch, {k: v[-1] for k, v in st.history.items()}):
            st.stopped_early = st.stopped_by_callback = True  # a callback asked to stop
        last = st.stopped_early or epoch + 1 == epochs
        if last:
            check_outcome(st, epoch)  # [CLIP-4] before the last checkpoint: a diverged run saves none
        saved = checkpoint is not None and (last or (epoch + 1) % checkpoint_every == 0)
        if saved:
            _save_checkpoint(checkpoint, model, opt, st, epochs)
        if stop.requested:  # Ctrl-C during the epoch's last batch, validation or saving
            raise interrupted(epoch + 1, 0, saved_already=saved)
