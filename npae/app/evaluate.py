"""``npae evaluate RUN_OR_MODEL``: find the model file of a run folder (or a checkpoint), the
held-out data its run recorded in ``metrics.json`` (or ``--data``), then print a VAE's ladder of
bounds (ELBO, IWAE-k for each ``--k``, a chunk at a time with progress), its active units and KL per
dimension, a classifier's accuracy, or an autoencoder's own measures (:mod:`npae.app.lessons`).
"""
import json
import os
import sys

from npae.app.lessons import _lesson_metrics, _metric_lines
from npae.app.runspec import UserError, _data_kind, _data_name, _load_idx, _load_split, _say


def _resolve_model_path(path):
    """``(model_path, run_dir)`` for a run folder, a model file, a checkpoint or a metrics.json."""
    if os.path.isdir(path):
        model_path = os.path.join(path, "model.npz")
        if not os.path.exists(model_path) and os.path.exists(os.path.join(path, "checkpoint.npz")):
            model_path = os.path.join(path, "checkpoint.npz")
            _say(f"no model.npz in {path} (the run did not finish); evaluating its checkpoint")
        if not os.path.exists(model_path):
            raise UserError(f"no model file at {model_path!r} (give a run folder or a model .npz)")
        return model_path, path
    if not os.path.exists(path):
        raise UserError(f"no model file at {path!r} (give a run folder or a model .npz)")
    base = os.path.basename(path)
    if base == "metrics.json":
        return _resolve_model_path(os.path.dirname(path) or ".")
    if base.lower().endswith(".png"):
        raise UserError(f"{path} is a figure written by npae train, not a model; give its run folder "
                        f"{os.path.dirname(path) or '.'!r} or the model.npz there")
    if base.startswith(".npae-lock"):
        raise UserError(f"{path} is the lock of a run in progress, not a model; give the run folder")
    return path, os.path.dirname(path) or "."


def _read_spec(run_dir, model):
    """The data spec of the run that wrote ``model`` (from its metrics.json), or None."""
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        return None
    try:
        with open(metrics_path, encoding="utf-8") as fh:
            metrics = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UserError(f"{metrics_path} cannot be read ({exc}); pass --data to evaluate without "
                        f"it") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("data_spec"), dict):
        raise UserError(f"{metrics_path} holds no data_spec (not written by npae train?); pass --data")
    if metrics.get("class_name") not in (None, type(model).__name__):
        _say(f"{metrics_path} describes a model of class {metrics.get('class_name')}, not this "
             f"{type(model).__name__}; evaluating on --data (default digits) instead")
        return None
    return metrics["data_spec"]


def _default_spec(args):
    return dict(data=args.data or "digits", data_dir=None, download=False, seed=0, train_split="train",
                test_split="test", test_fraction=0.15, max_train=None, binarize="none", label=None,
                image_shape=None)


def _held_out(spec):
    """``(Xt, yt, info)``: the held-out split of the data ``spec`` (a run's record)."""
    if _data_kind(spec["data"]) == "idx":  # only the held-out split is needed: read it alone
        from npae.data.datasets import binarize

        Xt, yt, info = _load_idx(dict(spec, download=False), spec["test_split"])
        if spec.get("binarize", "none") != "none":
            Xt = binarize(Xt, "static", rng=spec["seed"] + 1)
        return Xt, yt, info
    _, _, Xt, yt, info = _load_split(dict(spec))
    return Xt, yt, info


def _evaluate(args):
    from npae.data import io
    from npae.models.classifier import Classifier
    from npae.models.files import load
    from npae.models.vae import VAE

    model_path, run_dir = _resolve_model_path(args.model)
    model = load(model_path)
    header = io.read(model_path).header
    training = header.get("training")
    what = ""
    if training is not None:
        what = f" (a checkpoint: {training.get('epochs_done')} of {training.get('epochs')} epochs done)"
    spec = _read_spec(run_dir, model)
    from_run = spec is not None and args.data is None
    if spec is None or args.data is not None:
        spec = _default_spec(args)
    for dest in ("data_dir", "test_split"):
        if getattr(args, dest) is not None:
            spec[dest] = getattr(args, dest)
    Xt, yt, info = _held_out(spec)
    if args.max_examples:
        Xt = Xt[:args.max_examples]
        yt = None if yt is None else yt[:args.max_examples]
    n_in = model.n_features_in_
    if Xt.shape[1] != n_in:
        where = "the run's data" if from_run else f"--data {_data_name(spec['data'])}" + (
            "" if args.data else " (the default: no metrics.json beside the model says what it was "
                                 "trained on)")
        raise UserError(f"{model_path} expects {n_in} features; {where} has {Xt.shape[1]}: pass --data "
                        f"(and --data-dir) of the data it was trained on")
    print(f"{model!r}{what}\nfrom {model_path}; held-out data: {info['provenance']}; {Xt.shape[0]} examples")
    if isinstance(model, Classifier):
        if yt is None:
            raise UserError("a Classifier is evaluated against labels; these data have none")
        terms = model.evaluate(Xt, yt)
        print(f"cross-entropy {terms['loss']:.4f} nats per example, accuracy {terms['accuracy']:.4f}")
        return 0
    lab = yt if model.takes_labels else None
    if model.takes_labels and lab is None:
        raise UserError(f"a {type(model).__name__} needs the labels of the data; these have none")
    if not isinstance(model, VAE):
        for line in _metric_lines(_lesson_metrics(model, _kind_of(model), Xt, None, args.seed), model):
            print(line)
        return 0
    # progress goes to stderr: a live bar on a terminal (it disappears when done), plain lines into
    # a redirected stderr, but none when that is stdout's file or pipe too (2>&1, a CI log), where
    # they would land between the rows of the table
    progress = not args.no_progress and not _stderr_joins_stdout()
    from npae.validation import check_work

    ladder = 1 + sum(args.k)  # the ELBO, then each IWAE-k: k draws per example through the model
    check_work(f"--k {' '.join(map(str, args.k))} on {Xt.shape[0]} held-out examples of a model of "
               f"{model.n_params} parameters", ladder * Xt.shape[0] * model.n_params,
               "give a smaller --k or --max-examples")
    print("negative bounds on log p(x), nats per example (each lower bound is tighter than the last):")
    print(f"{'bound':<10} {'-bound':>14}", flush=True)
    value = _chunked(lambda x, c, s: model.neg_elbo(x, c, seed=s), Xt, lab, args.seed, 1, "ELBO",
                     progress)
    print(f"{'ELBO':<10} {value:>14.3f}", flush=True)
    for k in args.k:
        value = -_chunked(lambda x, c, s, k=k: model.log_likelihood_estimate(x, c, k=k, seed=s), Xt, lab,
                          args.seed, k, f"IWAE-{k}", progress)
        print(f"{'IWAE-' + str(k):<10} {value:>14.3f}", flush=True)
    kl = model.kl_per_dimension(Xt, lab)
    print(f"active units {model.active_units(Xt, lab)} of {model.latent_dim} "
          f"(variance of the posterior mean > 0.01)")
    print("KL per latent dimension (nats): " + " ".join(f"{v:.3f}" for v in kl))
    return 0


def _stderr_joins_stdout():
    """True when stderr is not a terminal and writes where stdout writes (the same file or pipe)."""
    try:
        if sys.stderr.isatty():
            return False
        err, out = os.fstat(sys.stderr.fileno()), os.fstat(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # streams without a file (captured, closed)
        return sys.stderr is sys.stdout
    return (err.st_dev, err.st_ino) == (out.st_dev, out.st_ino)


def _kind_of(model):
    from npae.models import variants

    return {variants.DenoisingAutoencoder: "dae", variants.SparseAutoencoder: "sae",
            variants.ContractiveAutoencoder: "cae"}.get(type(model), "ae")


def _chunked(bound, X, lab, seed, k, desc, progress):
    """The mean of ``bound(x, c, seed)`` over ``X``, computed a chunk of examples at a time so that
    a progress bar (or, off a terminal, a plain line every few seconds) can follow it. Chunk ``i``
    draws its noise from the stream ``[seed, i]``."""
    from npae.training.report import TaskProgress

    n = X.shape[0]
    size = int(max(10, min(1000, 4_000_000 // max(1, k * X.shape[1]))))
    total = 0.0
    with TaskProgress(n, desc, enabled=progress) as bar:
        for i, start in enumerate(range(0, n, size)):
            xb = X[start:start + size]
            cb = None if lab is None else lab[start:start + size]
            total += bound(xb, cb, [seed, i]) * xb.shape[0]
            bar.update(xb.shape[0])
    return total / n
