"""``npae train``: claim the output folder (one run per folder, :mod:`npae.app.runs`), load the data
spec's splits, build and fit the model (checkpoints, ``--resume``), then write ``model.npz``,
``metrics.json`` with the lesson's measures, and the figures (:mod:`npae.app.lessons`).
"""
import json
import os
import time
import warnings

from npae.app import explorer
from npae.app.lessons import _figures, _lesson_metrics, _metric_lines
from npae.app.runspec import (IS_VAE, UserError, _build_model, _data_kind, _data_name, _flag, _load_split,
                              _say, _units)
from npae.version import __version__


def _backend_line(model):
    """Which implementation the fit ran, said so a student knows whether the pairs they read ran."""
    ran = getattr(model, "backend_", None)
    if ran == "reference":
        return "every step ran the pairs in npae/pairs"
    if ran == "fused":
        return "steps ran the numba kernels of npae/fast, tested equal to the pairs"
    return f"backend: {ran}"


def _train(args):
    from npae.app import runs

    if args.resume and args.overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    default = os.path.join("runs", f"{args.model}-{_data_name(args.data)}")
    if args.out is None and not args.resume:  # a new folder for every run: runs/vae-digits, -2, -3, ...
        lock = runs.claim_new_folder(default)
        out = lock.folder
    else:
        out = args.out or default
        lock = runs.RunLock(out).acquire()
    try:
        if lock.took_over is not None:
            _say(lock.note())
        found = runs.holds_run(out)
        if found and not (args.resume or args.overwrite):
            raise UserError(f"--out {out} already holds a run ({', '.join(found)}); give --overwrite to "
                            f"replace it, --resume to continue it, or another --out")
        if found and args.overwrite:
            _say(f"--overwrite: the run in {out} ({', '.join(found)}) will be replaced")
        removed = runs.clean_stale_temps(out)
        if removed:
            _say(f"removed {len(removed)} temporary file(s) left in {out} by killed saves: "
                 f"{', '.join(removed)}")
        runs.check_writable(out)
        return _train_in(args, out)
    finally:
        lock.release()


#: Options that do not change what a run computes (where it writes, how it reports, BLAS threads) or
#: that a resume may change (``--epochs`` counts from the start and can extend a run); every other
#: option of ``npae train`` is a setting of the run, recorded in ``<out>/run.json``.
NOT_SETTINGS = ("resume", "overwrite", "out", "no_progress", "threads", "epochs", "func", "_given")


def _settings(args):
    """The run-defining options of ``args`` as JSON values (tuples as lists)."""
    return json.loads(json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                                  if k not in NOT_SETTINGS}))


def _adopt_run_settings(args, out):
    """``--resume``: the run's own settings (``<out>/run.json``) for every option not given now; an
    option given now with another value is refused, naming it, so the banner and metrics.json never
    state a value the run did not use."""
    path = os.path.join(out, "run.json")
    if not os.path.exists(os.path.join(out, "checkpoint.npz")):
        return  # nothing to resume: refused below, in one line
    if not os.path.exists(path):
        _say(f"--resume: {out} has no run.json (a run of an older npae): its settings cannot be checked "
             f"against the options given now")
        return
    try:
        with open(path, encoding="utf-8") as fh:
            recorded = json.load(fh)
        if not isinstance(recorded, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        raise UserError(f"--resume: cannot read the run's settings in {path} ({exc})") from None
    now, given = _settings(args), getattr(args, "_given", set())
    changed = [k for k in now if k in recorded and k in given and recorded[k] != now[k]]
    if changed:
        said = ", ".join(f"{_flag(k)} {now[k]!r} (the run: {recorded[k]!r})" for k in changed)
        raise UserError(f"--resume continues the run in {out} with its own settings; these options "
                        f"differ from it: {said}. Drop them, or start a new run (--overwrite or another "
                        f"--out)")
    for k, v in recorded.items():
        if k in now and k not in given:
            setattr(args, k, tuple(v) if k == "image_shape" and v is not None else v)


def _train_in(args, out):
    from npae.app import runs

    if args.resume:
        _adopt_run_settings(args, out)
    spec = dict(data=args.data, data_dir=args.data_dir, download=args.download, seed=args.seed,
                train_split=args.train_split, test_split=args.test_split,
                test_fraction=args.test_fraction, max_train=args.max_train, binarize=args.binarize,
                label=args.label, image_shape=list(args.image_shape) if args.image_shape else None,
                scale=args.scale, no_label=args.no_label)
    X, y, Xt, yt, info = _load_split(spec, _say)
    labelled = y is not None and y.dtype.kind in "iu"
    n_classes = int(max(y.max(), yt.max())) + 1 if labelled else None
    if args.model == "cvae" and n_classes is None:
        raise UserError(f"cvae needs class labels; the data {_data_name(args.data)!r} have none "
                        f"(a path: give --label, or class sub-folders of PNGs)")
    unit = bool(info["unit_interval"])
    if args.model in IS_VAE and args.likelihood == "bernoulli" and not unit:
        raise UserError(f"--likelihood bernoulli needs data in [0, 1]; {_data_name(args.data)} has values "
                        f"in [{X.min():.3g}, {X.max():.3g}]: use --likelihood gaussian (what auto picks "
                        f"here)")
    if args.arch == "conv" and info["image_shape"] is None:
        raise UserError(f"--arch conv needs images; the data {_data_name(args.data)!r} are plain "
                        f"features (a path's flat rows: give --image-shape HxW)")
    model = _build_model(args, X.shape[1], n_classes, unit, info["image_shape"])
    # the run's settings in the model itself, so that its config (model.npz, metrics.json) says them
    model.set_params(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    if args.model in IS_VAE and model.likelihood != "gaussian" and "variance" in getattr(args, "_given", ()):
        raise UserError(f"--variance is the Gaussian decoder's; this run's likelihood is {model.likelihood}")
    likelihood = ""
    if args.model in IS_VAE:
        why = "" if args.likelihood != "auto" else (" (auto: data in [0, 1])" if unit else
                                                    " (auto: data not in [0, 1])")
        likelihood = f"; {model.likelihood} likelihood{why}" + (
            f", decoder variance {model.variance}" if model.likelihood == "gaussian" else "")
    else:
        likelihood = "; cross-entropy reconstruction (data in [0, 1])" if unit else \
            "; squared-error reconstruction (data not in [0, 1])"
    split = (f"--train-split {args.train_split} / --test-split {args.test_split}"
             if _data_kind(args.data) == "idx" else f"seeded split, --test-fraction {args.test_fraction:g}")
    print(f"npae {__version__}: training {model!r}")
    print(f"  data: {info['provenance']}")
    print(f"  {X.shape[0]} train / {Xt.shape[0]} held-out examples of {X.shape[1]} features ({split})")
    print(f"  {model.n_params} parameters{likelihood}; {args.epochs} epochs of Adam (lr {args.lr:g}, "
          f"batch {args.batch_size}), seed {args.seed}")
    print(f"  output: {out}", flush=True)

    cond = args.model == "cvae"
    fit_kw = dict(progress=not args.no_progress, verbose=2, threads=args.threads,
                  validation_data=(Xt, yt) if cond else Xt)
    if args.model in IS_VAE:
        fit_kw["warmup_epochs"] = args.warmup
    # a checkpoint every few epochs and on Ctrl-C; --resume continues it bit for bit
    checkpoint = os.path.join(out, "checkpoint.npz")
    fit_kw.update(checkpoint=checkpoint, checkpoint_every=max(1, args.epochs // 10))
    if args.resume:
        if not os.path.exists(checkpoint):
            raise UserError(f"--resume: no checkpoint at {checkpoint!r}; train without --resume first")
        fit_kw["resume"] = checkpoint
    if not args.resume:
        runs.write_json(os.path.join(out, "run.json"), _settings(args))
    t0 = time.perf_counter()
    with runs.naming(checkpoint, "write or read checkpoint"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, y if cond else None, **fit_kw).history_
    seconds = time.perf_counter() - t0
    print(f"trained in {seconds:.1f} s ({_backend_line(model)})", flush=True)
    for w in caught:  # the library's warnings (posterior collapse, the logvar clamp), one line each
        _say(f"warning: {' '.join(str(w.message).split())}")

    test = _lesson_metrics(model, args.model, Xt, yt if cond else None, args.seed)
    metrics = dict(npae_version=__version__, model=args.model, class_name=type(model).__name__,
                   config=model.config, data_spec=spec, data_provenance=info["provenance"],
                   image_shape=info["image_shape"], n_train=int(X.shape[0]), n_test=int(Xt.shape[0]),
                   epochs=len(history["loss"]), batch_size=args.batch_size, lr=args.lr,
                   seconds=round(seconds, 3), backend=getattr(model, "backend_", None),
                   units=_units(model), history=history,
                   final={k: v[-1] for k, v in history.items()}, test=test)
    model_path = os.path.join(out, "model.npz")
    with runs.naming(model_path):
        model.save(model_path)
    metrics_path = runs.write_json(os.path.join(out, "metrics.json"), metrics)
    for line in _metric_lines(test, model):
        print(line)
    written = _figures(model, args.model, Xt, yt, info, history, out, args.seed)
    written += [p for p in [explorer.write_for_run(model, args.model, Xt, yt, info, test, out)] if p]
    for path in (model_path, checkpoint, metrics_path, *written):
        print(f"wrote {path}")
    return 0
