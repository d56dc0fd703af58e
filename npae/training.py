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

Checkpoints (``checkpoint=path``) are model files (:mod:`npae.io`) that also hold the optimizer
(class, hyperparameters, step count, moments), the generator state, the number of finished epochs,
the history and the early-stopping state. ``resume=path`` restores all of it, so that a run stopped
after any epoch (or, after Ctrl-C, after any batch) and resumed ends with parameters bit-identical
to a run that was never stopped.

Ctrl-C: while ``fit`` runs, the first SIGINT is deferred to the end of the current batch (so the
parameters and the optimizer are never half-updated); ``fit`` then writes a checkpoint (when
``checkpoint`` was given) and raises :class:`TrainingInterrupted`, a ``KeyboardInterrupt`` that
names the checkpoint. A second Ctrl-C interrupts at once. Callers (the CLI) catch it.

Divergence: before every optimizer step, the loss terms and every gradient are checked; a NaN or
inf raises :class:`DivergenceError` naming the epoch, the batch and the first bad term or parameter
gradient, and the parameters keep their last finite values (the step is not taken).
"""
import contextlib
import math
import signal
import threading

import numpy as np

from . import io
from . import optim
from . import threads as threads_policy
from .backends import ops
from .report import Progress
from .validation import check_bool, check_path, check_scalar


class DivergenceError(FloatingPointError):
    """Training produced a NaN or inf loss or gradient.

    Attributes: ``epoch`` and ``batch`` (0-based; ``batch`` is None for the validation pass) and
    ``source``, e.g. ``"loss term 'kl'"`` or ``"gradient of 'encoder.0.W'"``.
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


def check_step(model, loss, grads, epoch, batch, clip_norm=None, flat=None):
    """Raise :class:`DivergenceError` if the loss or a gradient is not finite; return the gradients,
    scaled by ``min(1, clip_norm / ||g||)`` [CLIP-2] (``||g||`` the global norm over all parameters,
    [CLIP-1]) when ``clip_norm`` is given.

    Derivation: docs/derivations/clip.md#clip-1

    One ``np.vdot`` per gradient decides (one in all when ``flat``, a :class:`npae.layers.FlatParams`
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
# Checkpoints
# --------------------------------------------------------------------------------------------------
class _State:
    """Everything besides the model and optimizer that a resumed run needs."""

    def __init__(self):
        self.epochs_done = 0
        self.history = {}
        self.best_val, self.best_params, self.since_best, self.best_epoch = math.inf, None, 0, None
        self.stopped_early = False
        # mid-epoch (Ctrl-C) position: the epoch's permutation, batches applied, running sums
        self.perm, self.batches_done, self.sums, self.batch_size = None, 0, {}, None


def _save_checkpoint(path, model, opt, st, epochs):
    meta, arrays = optim.payload(opt)
    training = {
        "epochs_done": st.epochs_done, "epochs": epochs, "optimizer": meta,
        "history": st.history, "stopped_early": st.stopped_early,
        "early_stopping": {"best_val": st.best_val if math.isfinite(st.best_val) else None,
                           "since_best": st.since_best, "best_epoch": st.best_epoch},
        "partial": None,
    }
    if st.best_params is not None:
        arrays.update({f"train/best/{k}": v for k, v in st.best_params.items()})
    if st.perm is not None:
        training["partial"] = {"batches_done": st.batches_done, "batch_size": st.batch_size,
                               "sums": st.sums}
        arrays["train/perm"] = st.perm
    model._write(path, training=training, arrays=arrays)


def _resume(path, model, n, batch_size, epochs):
    """Restore ``model`` from the checkpoint at ``path``; return ``(optimizer, state, rng_state)``."""
    mf = io.read(path)
    model._check_compatible(mf)
    if not mf.is_checkpoint:
        raise io.ModelFileError(f"{mf.path}: a model file, not a checkpoint (no optimizer or epoch); "
                                f"load it with npae.load and call fit without resume")
    opt = optim.from_payload(mf.header["training"].get("optimizer"), mf.arrays, model.params, mf.path)
    tr, st = mf.header["training"], _State()
    try:
        st.epochs_done = int(tr["epochs_done"])
        st.history = {str(k): [float(v) for v in vals] for k, vals in tr["history"].items()}
        st.stopped_early = bool(tr.get("stopped_early", False))
        es = tr.get("early_stopping") or {}
        st.best_val = math.inf if es.get("best_val") is None else float(es["best_val"])
        st.since_best, st.best_epoch = int(es.get("since_best", 0)), es.get("best_epoch")
        best = {k[len("train/best/"):]: a for k, a in mf.arrays.items() if k.startswith("train/best/")}
        if best:
            if set(best) != set(model.params):
                raise ValueError("best parameters do not match the model's")
            st.best_params = {k: best[k].copy() for k in model.params}
        partial = tr.get("partial")
        if partial is not None:
            st.perm = mf.arrays["train/perm"]
            st.batches_done, st.batch_size = int(partial["batches_done"]), int(partial["batch_size"])
            st.sums = {str(k): float(v) for k, v in partial["sums"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise io.ModelFileError(f"{mf.path}: bad training state in checkpoint ({err})") from None
    if st.perm is not None and (st.perm.shape != (n,) or st.batch_size != batch_size):
        raise ValueError(f"resume: {mf.path} was saved in the middle of an epoch over {st.perm.shape[0]} "
                         f"examples with batch_size={st.batch_size}; got {n} examples and "
                         f"batch_size={batch_size}. Pass the same data and batch_size.")
    if st.epochs_done > epochs:
        raise ValueError(f"resume: {mf.path} has {st.epochs_done} epochs done; epochs={epochs} counts "
                         f"from the start of training, so it must be >= {st.epochs_done}")
    model._restore(mf)  # only now: a refused checkpoint leaves the model as it was
    return opt, st, mf.header.get("rng_state")


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def fit_loop(model, data, *, epochs, batch_size, optimizer="adam", lr=1e-3, validation_data=None,
             progress=True, verbose=False, patience=None, checkpoint=None, checkpoint_every=1,
             resume=None, clip_norm=None, threads=None):
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
    Raises :class:`DivergenceError` on a non-finite loss or gradient and
    :class:`TrainingInterrupted` on Ctrl-C (see the module docstring).
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
    n = data[0].shape[0]
    n_batches = -(-n // batch_size)
    if resume is not None:
        opt, st, rng_state = _resume(resume, model, n, batch_size, epochs)
    else:
        opt, st, rng_state = optim.get_optimizer(optimizer, lr), _State(), None
    model.optimizer_ = opt
    model.best_epoch_ = st.best_epoch

    bar = None
    if (progress or verbose) and st.epochs_done < epochs and not st.stopped_early:
        bar = Progress(type(model).__name__, epochs=epochs, n_batches=n_batches,
                       start_epoch=st.epochs_done, start_batch=st.batches_done, bar=progress,
                       verbose=verbose)
    n_threads = threads_policy.choose(model, batch_size, threads)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                threads_policy.limit(n_threads), _deferred_sigint() as stop:
            _run_epochs(model, data, opt, st, stop, bar, epochs=epochs, batch_size=batch_size,
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
    return st.history


def _compiled_epoch(runner, model, data, perm, st, epoch, batch_size, clip_norm, flat):
    """One epoch through the fused backend's compiled epoch, with the per-step path's bookkeeping:
    the same running sums of the loss terms (batches weighted by their size, in order), the same
    ``last_terms``, and on divergence the same :class:`DivergenceError` (raised by
    :func:`check_step` on the step that failed, whose parameters were left untouched)."""
    n = data[0].shape[0]
    terms, steps, bad = runner.run(perm, data[0])
    names = runner.term_names
    for b in range(steps):
        size = min(batch_size, n - b * batch_size)
        for k, key in enumerate(names):
            st.sums[key] = st.sums.get(key, 0.0) + float(terms[b, k]) * size
    if bad is not None:
        b = bad[0]
        model.last_terms = {key: float(terms[b, k]) for k, key in enumerate(names)}
        check_step(model, float(terms[b, 0]), flat.grads, epoch, b, clip_norm, flat)
        raise DivergenceError(f"training diverged at epoch {epoch} batch {b}", epoch=epoch, batch=b,
                              source="compiled epoch")  # check_step raises first; kept for safety
    model.last_terms = {key: float(terms[steps - 1, k]) for k, key in enumerate(names)}


def _run_epochs(model, data, opt, st, stop, bar, *, epochs, batch_size, n_batches, validation_data,
                patience, checkpoint, checkpoint_every, clip_norm, rng_state):
    n = data[0].shape[0]
    model_flat = getattr(model, "flat_params", None)  # FlatParams: one-pass Adam and check
    # the fused backend may run a whole epoch in one call; None: the per-step loop below
    runner = None
    if model_flat is not None and model_flat.holds(model.params, model_flat.grads):
        runner = ops.epoch_runner(model, opt, model_flat, clip_norm, batch_size, data)

    def interrupted(epoch, batch):
        """The exception to raise after Ctrl-C, once every batch before ``batch`` of ``epoch``
        was applied (``batch == 0``: at an epoch boundary); writes the checkpoint first."""
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, st, epochs)
        saved = (f"checkpoint saved to {checkpoint!r}; continue with fit(..., resume={checkpoint!r})"
                 if checkpoint is not None else "no checkpoint path was given")
        return TrainingInterrupted(f"training interrupted after {batch} of {n_batches} batches of "
                                   f"epoch {epoch} ({st.epochs_done} epochs complete); {saved}",
                                   checkpoint=checkpoint, epoch=epoch, batch=batch)

    for epoch in range(st.epochs_done, epochs):
        if st.stopped_early:
            break
        model._epoch_begin(epoch, epochs)
        if st.perm is not None:  # resuming in the middle of this epoch
            model.rng.bit_generator.state = rng_state
            perm, first = st.perm, st.batches_done
        else:
            perm, first, st.sums, st.batch_size = model.rng.permutation(n), 0, {}, batch_size
        if runner is not None and first == 0:
            _compiled_epoch(runner, model, data, perm, st, epoch, batch_size, clip_norm, model_flat)
            if bar is not None:
                bar.batch(n_batches)
            first = n_batches  # every batch is done
        for b in range(first, n_batches):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            batch = tuple(a[idx] for a in data)
            loss, grads = model._train_batch(*batch)
            flat = model_flat if model_flat is not None and model_flat.holds(model.params, grads) else None
            grads = check_step(model, loss, grads, epoch, b, clip_norm, flat)
            opt.step(model.params, grads, flat)
            for key, value in model.last_terms.items():
                st.sums[key] = st.sums.get(key, 0.0) + value * len(idx)
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
                        f"validation loss term {key!r} is {value} after epoch {epoch}",
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
        last = st.stopped_early or epoch + 1 == epochs
        if checkpoint is not None and (last or (epoch + 1) % checkpoint_every == 0):
            _save_checkpoint(checkpoint, model, opt, st, epochs)
        if stop.requested and not last:  # Ctrl-C during validation or saving
            raise interrupted(epoch + 1, 0)
