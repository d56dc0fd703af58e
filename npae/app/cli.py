"""The ``npae`` command (also ``python -m npae``).

    npae train {ae,dae,sae,cae,vae,cvae} [options]   train, then save model, metrics and figures
    npae evaluate RUN_OR_MODEL [options]             ELBO / IWAE-k ladder, or the model's own measures
    npae --version

``npae train vae`` with no options trains a VAE with a 2-D latent space on the bundled 8x8 digits
(offline, well under a minute) and writes to ``./runs/vae-digits/``: ``model.npz``,
``checkpoint.npz``, ``metrics.json`` and the figures ``loss_curves.png``, ``reconstructions.png``,
``samples.png``, ``latent_scatter.png`` and ``manifold_grid.png``. Each regularised autoencoder adds
the figure of its own idea: ``denoising.png`` (dae), ``sparsity.png`` (sae), ``contraction.png``
(cae); the conditional VAE's ``manifold_grid.png`` is a grid of classes × latent values.

``--data`` takes a named set (``npae.data.datasets.DATASETS``) or a path (a ``.npy``, ``.npz`` or
``.csv`` file, or a folder of PNGs; :func:`npae.data.datasets.load_path`). ``metrics.json`` records the
data spec with every folder resolved, so ``npae evaluate RUN`` finds the same held-out data later
without ``NPAE_DATA``.

One run per output folder: ``npae train`` holds ``<out>/.npae-lock`` while it runs
(:class:`npae.app.runs.RunLock`), and every file it writes is whole or absent (temporary file, fsync,
rename). A second run into a busy folder stops at once with one line naming the folder and the
holder. A finished run is never replaced unasked: without ``--out`` each run takes a new folder
(``runs/vae-digits``, then ``runs/vae-digits-2``, ...); a given ``--out`` that holds a run is refused
unless ``--overwrite`` (replace it) or ``--resume`` (continue it).

A user's mistake (a flag out of range or not applying to the model, a missing or corrupt data file,
an output folder that cannot be written) ends with one line on stderr and a non-zero exit status;
set ``NPAE_DEBUG=1`` to see the traceback instead. Anything else is a bug and shows its traceback.
"""
import argparse
import json
import math
import os
import re
import sys
import time
import traceback
import warnings

import numpy as np

from npae.version import __version__

MODELS = ("ae", "dae", "sae", "cae", "vae", "cvae")
IS_VAE = ("vae", "cvae")
AE_FAMILY = ("ae", "dae", "sae", "cae")
IDX_SETS = ("mnist", "fashion-mnist")

#: Exit statuses: 1 a user's error while running, 2 a bad command line (argparse's convention),
#: 3 a bug in npae, 130 interrupted.
EXIT_ERROR, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130

#: Per-model defaults of the flags whose best value depends on the model (chosen so that each
#: model shows its lesson with no options: a 2-D code for the pictures of ae / vae / cvae; room
#: for a sparse code (sae) and for denoising (dae); a one-layer contractive encoder with 16 units,
#: since 2 sigmoid units of a one-layer encoder saturate and stop learning).
LATENT_DEFAULT = {"ae": 2, "dae": 32, "sae": 32, "cae": 32, "vae": 2, "cvae": 2}

#: Flags that apply to some models only (given explicitly to another model: refused).
MODEL_FLAGS = {
    "likelihood": IS_VAE, "variance": IS_VAE, "beta": IS_VAE, "warmup": IS_VAE,
    "objective": IS_VAE, "k": IS_VAE, "flow": IS_VAE, "flow_steps": IS_VAE,
    "noise": ("dae",), "noise_level": ("dae",),
    "penalty": ("sae",), "sparsity_weight": ("sae",), "rho": ("sae",),
    "contractive_weight": ("cae",),
}
#: Flags that apply to some kinds of data only: IDX sets (mnist, fashion-mnist), the other named
#: sets, and paths.
DATA_FLAGS = {
    "data_dir": ("idx",), "download": ("idx",), "train_split": ("idx",), "test_split": ("idx",),
    "test_fraction": ("named", "path"), "label": ("path",), "image_shape": ("path",),
}

#: Activations below this magnitude count as "near zero" in a sparse code's measures.
NEAR_ZERO = 0.05
#: Perturbation of the contraction measure: Gaussian, standard deviation this share of the data's.
PERTURBATION = 0.05


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""


def _flag(dest):
    return "--" + dest.replace("_", "-")


# ---------------------------------------------------------------------------------------- argparse
class _Given(argparse.Action):
    """Mixin behaviour: remember which options the command line gave (``namespace._given``)."""

    def _mark(self, namespace):
        given = set(getattr(namespace, "_given", set()))
        given.add(self.dest)
        namespace._given = given


class _Store(argparse._StoreAction, _Given):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        self._mark(namespace)


class _StoreTrue(argparse._StoreTrueAction, _Given):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        self._mark(namespace)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after every option whose help does not already say its default
    (on/off switches, whose default is off, and options whose default depends on the model)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or \
                action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage dump) and exits with 2,
    shows defaults in --help, and records which options were given."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.register("action", None, _Store)
        self.register("action", "store", _Store)
        self.register("action", "store_true", _StoreTrue)

    def error(self, message):
        # "argument --epochs: must be >= 1, got 0" reads better as "--epochs must be >= 1, got 0"
        message = re.sub(r"^argument (-[^:/ ]+)(?:/[^:]+)?: must be ", r"\1 must be ", message)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type=`` that parses ``kind`` (int or float) and checks it against an interval;
    argparse then names the flag in its one-line error."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}, got {text}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {high:g}, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse's fallback message says "invalid int value"
    return parse


def _nonempty(what):
    def parse(text):
        if not text.strip():
            raise argparse.ArgumentTypeError(f"must be a non-empty {what}")
        return text
    return parse


def _image_shape(text):
    """``28x28``, ``32x32x3`` or ``32,32,3``."""
    parts = text.replace(",", "x").lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or min(shape) < 1 or (len(shape) == 3 and shape[2] != 3):
        raise argparse.ArgumentTypeError(f"expected HxW or HxWx3 (e.g. 28x28, 32x32x3), got {text!r}")
    return shape


def _data_arg(text):
    """A named data set, or a path (kept absolute, so a run's record works from any folder)."""
    from npae.data.datasets import DATASETS, PATH_FORMATS

    if text in DATASETS:
        return text
    if os.path.exists(text):
        return os.path.abspath(text)
    looks_like_path = os.sep in text or text.startswith(".") or \
        os.path.splitext(text)[1].lower() in (*PATH_FORMATS, ".png")
    if looks_like_path:
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    raise argparse.ArgumentTypeError(f"unknown data set {text!r}: give one of {', '.join(DATASETS)}, "
                                     f"or a path to a .npy, .npz or .csv file or a folder of PNGs")


def _data_kind(data):
    return "idx" if data in IDX_SETS else ("path" if os.path.isabs(data) else "named")


def _data_name(data):
    """Short name of the data for folder names and messages."""
    if _data_kind(data) != "path":
        return data
    return os.path.splitext(os.path.basename(os.path.normpath(data)))[0] or "data"


# ---------------------------------------------------------------------------------------- data
def _split_indices(n, fraction, seed, flag="--test-fraction"):
    """A seeded shuffle of ``n`` examples cut into (train, held-out) index arrays."""
    if n < 2:
        raise UserError(f"the data hold {n} example(s); a train / held-out split needs at least 2")
    n_test = int(round(fraction * n))
    if not 1 <= n_test <= n - 1:
        raise UserError(f"{flag} {fraction:g} of {n} examples leaves {n_test} held out and {n - n_test} "
                        f"to train; each needs at least one")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


def _load_idx(spec, split, say=None):
    from npae.data import datasets

    kw = dict(data_dir=spec.get("data_dir"))
    if spec.get("download"):
        try:
            return datasets.load_dataset(spec["data"], split, **kw)
        except datasets.DataNotFoundError:
            if say is not None:
                say(f"{datasets.IDX_TITLES[spec['data']]} {split} files not found; downloading the "
                    f"official files into {datasets.cache_dir() / spec['data']} (checksummed)")
            return datasets.load_dataset(spec["data"], split, download=True, **kw)
    return datasets.load_dataset(spec["data"], split, **kw)


def _load_split(spec, say=None):
    """``(X, y, X_test, y_test, info)`` from a JSON-able data spec (kept in metrics.json).

    ``spec`` is completed in place with what was resolved (the folder the IDX files were read
    from), so that the record it goes into finds the same data again. ``y`` / ``y_test`` are None
    for unlabelled data.
    """
    from npae.data import datasets

    data, seed, kind = spec["data"], spec["seed"], _data_kind(spec["data"])
    if kind == "idx":
        X, y, info = _load_idx(spec, spec["train_split"], say)
        Xt, yt, info_t = _load_idx(spec, spec["test_split"], say)
        spec["data_dir"] = os.path.dirname(os.path.abspath(info["files"][0]))
        if spec.get("max_train"):
            perm = np.random.default_rng(seed).permutation(X.shape[0])[:spec["max_train"]]
            X, y = X[perm], y[perm]
        info = dict(info, provenance=f"{info['provenance']}; held out: {info_t['provenance']}")
    else:
        if kind == "path":
            shape, label = spec.get("image_shape"), spec.get("label")
            if isinstance(label, str) and label.isdigit() and data.lower().endswith(".csv"):
                label = int(label)  # a CSV's column by its 0-based index
            X_all, y_all, info = datasets.load_path(data, label=label, header=None,
                                                    scale="auto",
                                                    image_shape=tuple(shape) if shape else None)
        else:
            X_all, y_all, info = datasets.load_dataset(data, seed=seed)
        train, test = _split_indices(X_all.shape[0], spec["test_fraction"], seed)
        X, Xt = X_all[train], X_all[test]
        y, yt = (None, None) if y_all is None else (y_all[train], y_all[test])
        if spec.get("max_train"):
            X = X[:spec["max_train"]]
            y = None if y is None else y[:spec["max_train"]]
    if spec.get("binarize", "none") != "none":
        if not info["unit_interval"]:
            raise UserError(f"--binarize {spec['binarize']} needs data in [0, 1] (pixel "
                            f"probabilities); {_data_name(data)} has values in "
                            f"[{min(X.min(), Xt.min()):.3g}, {max(X.max(), Xt.max()):.3g}]")
        X = datasets.binarize(X, "static", rng=seed)
        Xt = datasets.binarize(Xt, "static", rng=seed + 1)
    return X, y, Xt, yt, info


# ---------------------------------------------------------------------------------------- models
def _resolved(args):
    """The per-model values of the options whose defaults depend on the model."""
    latent = args.latent_dim if args.latent_dim is not None else LATENT_DEFAULT[args.model]
    hidden = tuple(args.hidden) if args.hidden is not None else (() if args.model == "cae" else (128,))
    return latent, hidden, args.sparsity_weight  # None: the library's measured weight per penalty


def _build_model(args, input_dim, n_classes, unit, image_shape=None):
    from npae.models import variants
    from npae.models.autoencoder import Autoencoder
    from npae.models.vae import VAE, ConditionalVAE

    latent, hidden, weight = _resolved(args)
    common = dict(latent_dim=latent, activation=args.activation, dtype=args.dtype, seed=args.seed)
    if args.arch == "conv":
        common.update(arch="conv", image_shape=image_shape)
    if args.model in IS_VAE:
        likelihood = args.likelihood if args.likelihood != "auto" else ("bernoulli" if unit else "gaussian")
        variance = args.variance if args.variance != "auto" else (
            "shared" if likelihood == "gaussian" else "fixed")
        kw = dict(hidden=hidden, likelihood=likelihood, beta=args.beta, variance=variance,
                  objective=args.objective, k=args.k, flow=None if args.flow == "none" else args.flow,
                  flow_steps=args.flow_steps, **common)
        if args.model == "cvae":
            return ConditionalVAE(input_dim, n_classes, **kw)
        return VAE(input_dim, **kw)
    recon = dict(output="sigmoid", loss="bce") if unit else dict(output="identity", loss="mse")
    kw = dict(hidden=hidden, **recon, **common)
    if args.model == "dae":
        return variants.DenoisingAutoencoder(input_dim, noise=args.noise, noise_level=args.noise_level, **kw)
    if args.model == "sae":
        code = "sigmoid" if args.penalty == "kl" else "relu"  # an identity code never gets sparse
        return variants.SparseAutoencoder(input_dim, penalty=args.penalty, code_activation=code,
                                          sparsity_weight=weight, rho=args.rho, **kw)
    if args.model == "cae":
        return variants.ContractiveAutoencoder(input_dim, contractive_weight=args.contractive_weight,
                                               **kw)
    return Autoencoder(input_dim, **kw)


def _units(model):
    """What the loss numbers of ``model`` measure, per example."""
    if getattr(model, "loss", None) == "mse":
        return "squared error per example"
    return "nats per example"


def _check_flags(parser, args):
    """Refuse, as a command-line error, flags given explicitly that do not apply to this model or
    this kind of data, and combinations out of range."""
    given = getattr(args, "_given", set())
    sub = parser._npae_sub[args.command]
    if args.command != "train":
        return
    for dest, models in MODEL_FLAGS.items():
        if dest in given and args.model not in models:
            sub.error(f"{_flag(dest)} applies to {', '.join(models)} only, not to {args.model}")
    kind = _data_kind(args.data)
    for dest, kinds in DATA_FLAGS.items():
        if dest in given and kind not in kinds:
            what = {"idx": "the IDX sets (mnist, fashion-mnist)", "named": "the bundled and synthetic sets",
                    "path": "data given as a path"}
            sub.error(f"{_flag(dest)} applies to {' and '.join(what[k] for k in kinds)}, not to "
                      f"--data {_data_name(args.data)}")
    if args.model == "sae" and "rho" in given and args.penalty != "kl":
        sub.error("--rho is the target activation of --penalty kl; the l1 penalty has none")
    if args.model == "dae" and args.noise != "gaussian" and args.noise_level > 1:
        sub.error(f"--noise-level is a probability for --noise {args.noise}: must be <= 1, got "
                  f"{args.noise_level:g}")
    if args.model == "cae" and args.arch == "conv":
        sub.error("--arch conv: the contractive penalty is derived for dense encoders only; use "
                  "--arch mlp with cae")


# ---------------------------------------------------------------------------------------- train
def _say(text):
    print(f"npae: {text}", file=sys.stderr, flush=True)


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
            _say(f"took over the lock of a run that no longer runs ({runs.RunLock.describe(lock.took_over)})")
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


def _train_in(args, out):
    from npae.app import runs

    spec = dict(data=args.data, data_dir=args.data_dir, download=args.download, seed=args.seed,
                train_split=args.train_split, test_split=args.test_split,
                test_fraction=args.test_fraction, max_train=args.max_train, binarize=args.binarize,
                label=args.label, image_shape=list(args.image_shape) if args.image_shape else None)
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
    fit_kw = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  progress=not args.no_progress, verbose=True, threads=args.threads,
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
    t0 = time.perf_counter()
    with runs.naming(checkpoint, "write or read checkpoint"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, y if cond else None, **fit_kw).history_
    seconds = time.perf_counter() - t0
    print(f"trained in {seconds:.1f} s", flush=True)
    for w in caught:  # the library's warnings (posterior collapse, the logvar clamp), one line each
        _say(f"warning: {' '.join(str(w.message).split())}")

    test = _lesson_metrics(model, args.model, Xt, yt if cond else None, args.seed)
    metrics = dict(npae_version=__version__, model=args.model, class_name=type(model).__name__,
                   config=model.config, data_spec=spec, data_provenance=info["provenance"],
                   image_shape=info["image_shape"], n_train=int(X.shape[0]), n_test=int(Xt.shape[0]),
                   epochs=len(history["loss"]), batch_size=args.batch_size, lr=args.lr,
                   seconds=round(seconds, 3), units=_units(model), history=history,
                   final={k: v[-1] for k, v in history.items()}, test=test)
    model_path = os.path.join(out, "model.npz")
    with runs.naming(model_path):
        model.save(model_path)
    metrics_path = runs.write_json(os.path.join(out, "metrics.json"), metrics)
    for line in _metric_lines(test, model):
        print(line)
    written = _figures(model, args.model, Xt, yt, info, history, out, args.seed)
    for path in (model_path, checkpoint, metrics_path, *written):
        print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------------------- measures
def _lesson_metrics(model, kind, Xt, yt, seed):
    """The held-out numbers of ``model``: for a VAE the bound and its latent use, for each
    autoencoder its reconstruction error plus the measure of its own idea."""
    from npae.models.vae import VAE

    if isinstance(model, VAE):
        return {"neg_elbo": model.neg_elbo(Xt, yt, seed=seed),
                "kl_per_dim": [float(v) for v in model.kl_per_dimension(Xt, yt)],
                "active_units": model.active_units(Xt, yt),
                "units": "nats per example"}
    out = {"recon_error": float(np.mean(model.reconstruction_error(Xt))), "units": _units(model)}
    if kind == "sae":
        H = model.encode(Xt)  # (N, units)
        out["sparsity"] = {
            "penalty": model.penalty, "rho": model.rho if model.penalty == "kl" else None,
            "mean_activation_per_unit": [float(v) for v in H.mean(axis=0)],
            "mean_activation": float(H.mean()),
            "near_zero_threshold": NEAR_ZERO,
            "near_zero_fraction": float(np.mean(np.abs(H) < NEAR_ZERO)),
        }
    if kind == "dae":
        noisy = model.corrupt(Xt, seed=seed)
        denoised = model.reconstruct(noisy)
        out["denoising"] = {
            "noise": model.noise, "noise_level": model.noise_level, "seed": seed,
            "error_from_corrupted_input": float(model.evaluate(Xt, seed=seed)["recon"]),
            "error_from_clean_input": out["recon_error"],
            "squared_distance_corrupted_to_clean": float(np.mean(np.sum((noisy - Xt) ** 2, axis=1))),
            "squared_distance_denoised_to_clean": float(np.mean(np.sum((denoised - Xt) ** 2, axis=1))),
        }
    if kind in ("ae", "cae"):
        if hasattr(model, "jacobian_frobenius"):
            J2 = np.asarray(model.jacobian_frobenius(Xt), dtype=np.float64)  # (N,) ||J||_F^2
            out["jacobian"] = {"mean_frobenius_sq": float(J2.mean()),
                               "rms_frobenius": float(np.sqrt(J2.mean()))}
        else:
            out["jacobian"] = {"note": "needs Autoencoder.jacobian_frobenius, not in this npae"}
        out["contraction"] = _contraction(model, Xt, seed)[0]
    return out


def _contraction(model, Xt, seed, n_inputs=1000, copies=10, share=PERTURBATION):
    """Mean ‖z(x + δ) − z(x)‖ / ‖δ‖ over held-out inputs and Gaussian δ (σ = ``share`` × the
    data's standard deviation): the code's displacement per unit input perturbation. For small
    σ the mean of its square tends to ‖J‖²_F / D (J the encoder's Jacobian, D the input size)."""
    rng = np.random.default_rng([seed, 0x636165])
    X = Xt[:n_inputs]
    sigma = share * float(np.std(Xt))
    Z = model.encode(X)  # (n, d)
    delta = sigma * rng.standard_normal((copies, *X.shape))  # (m, n, D)
    Zp = model.encode((X[None] + delta).reshape(-1, X.shape[1])).reshape(copies, *Z.shape)
    ratio = np.linalg.norm(Zp - Z[None], axis=2) / np.linalg.norm(delta, axis=2)  # (m, n)
    summary = {"sigma": sigma, "sigma_rule": f"{share:g} x the held-out data's standard deviation",
               "copies_per_input": copies, "n_inputs": int(X.shape[0]),
               "mean_code_displacement_per_unit_perturbation": float(ratio.mean()),
               "rms_code_displacement_per_unit_perturbation": float(np.sqrt(np.mean(ratio ** 2)))}
    return summary, Z, np.transpose(Zp, (1, 0, 2))


def _metric_lines(test, model):
    units = test.get("units", "")
    lines = []
    if "neg_elbo" in test:
        lines.append(f"held-out negative ELBO {test['neg_elbo']:.3f} {units}")
        lines.append("held-out KL per latent dimension (nats): "
                     + " ".join(f"{v:.3f}" for v in test["kl_per_dim"]))
        lines.append(f"active units {test['active_units']} of {len(test['kl_per_dim'])} "
                     f"(variance of the posterior mean over held-out data > 0.01)")
        return lines
    lines.append(f"held-out reconstruction error {test['recon_error']:.3f} {units}")
    if "sparsity" in test:
        s = test["sparsity"]
        target = f" (target rho {s['rho']:g})" if s["rho"] is not None else ""
        lines.append(f"sparse code: mean activation {s['mean_activation']:.4f}{target}, units' means "
                     f"{min(s['mean_activation_per_unit']):.4f} .. {max(s['mean_activation_per_unit']):.4f}; "
                     f"{100 * s['near_zero_fraction']:.1f}% of activations |h| < "
                     f"{s['near_zero_threshold']:g}")
    if "denoising" in test:
        d = test["denoising"]
        lines.append(f"denoising ({d['noise']} {d['noise_level']:g}): error "
                     f"{d['error_from_corrupted_input']:.3f} "
                     f"from corrupted inputs vs {d['error_from_clean_input']:.3f} from clean ones ({units}); "
                     f"squared distance to the clean input {d['squared_distance_corrupted_to_clean']:.3f} "
                     f"corrupted -> {d['squared_distance_denoised_to_clean']:.3f} denoised")
    if "jacobian" in test:
        j = test["jacobian"]
        lines.append(f"encoder Jacobian: mean ||J||_F^2 {j['mean_frobenius_sq']:.4g} on held-out data"
                     if "mean_frobenius_sq" in j else f"encoder Jacobian: {j['note']}")
    if "contraction" in test:
        c = test["contraction"]
        lines.append(f"code displacement per unit input perturbation: "
                     f"{c['mean_code_displacement_per_unit_perturbation']:.4g} (Gaussian, sigma "
                     f"{c['sigma']:.3g})")
    return lines


# ---------------------------------------------------------------------------------------- figures
def _figures(model, kind, Xt, yt, info, history, out, seed):
    """Write the figures of a trained model; returns their paths."""
    from npae.app import plotting

    paths = []

    def target(name):
        paths.append(os.path.join(out, name))
        return paths[-1]

    name = type(model).__name__
    cond = yt if model.takes_labels else None
    shape = info["image_shape"]
    classes = info.get("classes")
    plotting.loss_curves(history, title=f"{name} training (dashed: held-out data)", units=_units(model),
                         path=target("loss_curves.png"))
    Z = model.encode(Xt) if cond is None else model.encode(Xt, cond)
    recon = model.decode(Z) if cond is None else model.decode(Z, cond)
    what = "posterior means" if kind in IS_VAE else "codes"
    if shape is not None:
        n = 10
        pairs = np.concatenate([Xt[:n], recon[:n], Xt[n:2 * n], recon[n:2 * n]])
        plotting.image_grid(pairs, shape, n_cols=n, row_labels=["data", "reconstruction"] * 2,
                            title=f"held-out data and their reconstructions (decoded {what})",
                            path=target("reconstructions.png"))
    else:
        plotting.scatter_pair(Xt, recon, yt, title=f"held-out data and their reconstructions "
                                                   f"(decoded {what})", path=target("reconstructions.png"))
    if kind == "vae":
        samples = model.sample(100, seed=0)
        if shape is not None:
            plotting.image_grid(samples, shape, n_cols=10, title="samples: decoder means at 100 "
                                "draws z ~ N(0, I)", path=target("samples.png"))
        else:  # a point cloud: the model's real samples, decoder noise included
            samples = model.sample(Xt.shape[0], seed=0, draws=True)
            plotting.scatter_pair(Xt, samples, names=("held-out data", "x ~ p(x | z), z ~ N(0, I)"),
                                  title="data and samples of the model", path=target("samples.png"))
    elif kind == "cvae" and shape is not None:
        rows = np.repeat(np.arange(model.n_classes), 10)
        samples = model.sample(rows.size, y=rows, seed=0)
        labels = [classes[c] if classes else str(c) for c in range(model.n_classes)]
        plotting.image_grid(samples, shape, n_cols=10, row_labels=labels,
                            title="samples: decoder means at z ~ N(0, I), one row per class y",
                            path=target("samples.png"))
    if Z.shape[1] >= 1:
        projection = "auto"
        if Z.shape[1] > 2:
            projection = ("pca",)
            if Z.shape[0] <= plotting.TSNE_MAX_POINTS:
                if plotting.tsne_available():
                    projection = ("pca", "tsne")
                else:
                    _say("t-SNE skipped: scikit-learn is not installed (pip install scikit-learn); "
                         "latent_scatter.png shows PCA only")
        title = f"held-out {what}" + ("\n(the label is the decoder's input, so the code need not "
                                      "separate the classes)" if kind == "cvae" else "")
        plotting.latent_scatter(Z, yt if yt is not None else None, title=title,
                                class_names=list(classes) if classes else None,
                                projection=projection, seed=seed, path=target("latent_scatter.png"))
    if shape is not None and kind == "cvae":
        labels = list(classes) if classes else None
        plotting.class_grid(model, np.linspace(-2, 2, 9), shape, class_names=labels,
                            path=target("manifold_grid.png"))
    elif Z.shape[1] == 2 and shape is not None:
        if kind == "vae":
            plotting.manifold_grid(model, 15, shape, path=target("manifold_grid.png"))
        else:
            plotting.manifold_grid(model, 15, shape, codes=Z, path=target("manifold_grid.png"),
                                   title="decoded regular grid over the codes' range (min … max of "
                                         "each axis):\nno prior, so the gaps between codes decode too")
    if kind == "dae":
        clean = Xt[:20] if shape is not None else Xt
        noisy = model.corrupt(clean, seed=seed)
        how = f"held-out data with the training corruption ({model.noise} {model.noise_level:g}), denoised"
        if shape is not None:
            plotting.denoising_triplets(noisy, model.reconstruct(noisy), clean, shape, n=10, title=how,
                                        path=target("denoising.png"))
        else:
            plotting.denoising_points(noisy, model.reconstruct(noisy), clean, title=how,
                                      path=target("denoising.png"))
    if kind == "sae":
        rho = model.rho if model.penalty == "kl" else None
        plotting.sparsity_figure(Z, rho=rho, threshold=NEAR_ZERO,
                                 title=f"sparse code ({model.penalty} penalty, weight "
                                       f"{model.sparsity_weight_:g}) on held-out data",
                                 path=target("sparsity.png"))
    if kind == "cae":
        # the measure uses a small sigma (a derivative); the picture a visible one, 10x larger
        ratio = _contraction(model, Xt, seed)[0]["mean_code_displacement_per_unit_perturbation"]
        summary, Zc, Zp = _contraction(model, Xt[:8], seed, n_inputs=8, copies=40,
                                       share=10 * PERTURBATION)
        plotting.contraction_figure(Zc, Zp, sigma=summary["sigma"], background=Z[8:], ratio=ratio,
                                    ratio_sigma=PERTURBATION * float(np.std(Xt)),
                                    path=target("contraction.png"))
    return paths


# ---------------------------------------------------------------------------------------- evaluate
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
    if _data_kind(spec["data"]) == "idx":  # only the held-out split is needed: read it alone
        from npae.data.datasets import binarize

        Xt, yt, info = _load_idx(dict(spec, download=False), spec["test_split"])
        if spec.get("binarize", "none") != "none":
            Xt = binarize(Xt, "static", rng=spec["seed"] + 1)
    else:
        _, _, Xt, yt, info = _load_split(dict(spec))
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
    progress = not args.no_progress
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


# ---------------------------------------------------------------------------------------- parser
def build_parser():
    from npae.data.datasets import DATASETS
    from npae.models.layers import ACTIVATION_NAMES
    from npae.pairs.penalties import NOISES

    parser = _Parser(prog="npae", description="Autoencoders and VAEs in NumPy, backward passes by hand.")
    parser.add_argument("--version", action="version", version=f"npae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a model; save model, metrics JSON and figures",
                           description="Train a model and write model.npz, checkpoint.npz, metrics.json "
                                       "and PNG figures to --out. Options that apply to some models "
                                       "only say which; given to another model they are refused.")
    train.add_argument("model", choices=MODELS,
                       help="ae (plain), dae (denoising), sae (sparse), cae (contractive), vae, cvae "
                            "(conditional VAE)")
    g = train.add_argument_group("data")
    g.add_argument("--data", type=_data_arg, default="digits",
                   help=f"a named set ({', '.join(DATASETS)}; digits is bundled, mnist and "
                        f"fashion-mnist are IDX files) or a path to a .npy, .npz or .csv file or a "
                        f"folder of PNGs")
    g.add_argument("--data-dir", type=_nonempty("folder"), default=None,
                   help="mnist, fashion-mnist: folder of the IDX files (default: $NPAE_DATA, then "
                        "~/.cache/npae)")
    g.add_argument("--download", action="store_true",
                   help="mnist, fashion-mnist: download missing official files into ~/.cache/npae "
                        "(checksummed)")
    g.add_argument("--train-split", type=_nonempty("split"), default="train",
                   help="mnist, fashion-mnist: IDX file prefix to train on (e.g. train5k)")
    g.add_argument("--test-split", type=_nonempty("split"), default="test",
                   help="mnist, fashion-mnist: IDX file prefix held out (test = t10k)")
    g.add_argument("--test-fraction", type=_number(float, 0, 1, True, True), default=0.15,
                   help="share of the examples held out, in (0, 1) (all data but the IDX sets)")
    g.add_argument("--label", default=None,
                   help="a path's .csv or .npz: the label column (header name or 0-based index) or "
                        "array key (default: an .npz's y or labels; a .csv has none)")
    g.add_argument("--image-shape", type=_image_shape, default=None,
                   help="a path's flat rows are images of this shape, HxW or HxWx3 (default: the "
                        "images' own shape; none for plain features)")
    g.add_argument("--max-train", type=_number(int, 1), default=None,
                   help="train on at most this many examples, >= 1 (default: all)")
    g.add_argument("--binarize", choices=("none", "static"), default="none",
                   help="static: one Bernoulli draw of the pixels (docs/datasets.md#binarization)")
    g = train.add_argument_group("model")
    g.add_argument("--hidden", type=_number(int, 1), nargs="*", default=None,
                   help="hidden widths of the encoder, mirrored by the decoder; none after the flag: "
                        "no hidden layer (default: 128; cae: none)")
    g.add_argument("--latent-dim", type=_number(int, 1), default=None,
                   help="size of the code z (default: 2 for ae, vae, cvae; 32 for dae, sae and cae)")
    g.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                   help="mlp: dense layers; conv: for images, two 3x3 stride-2 convolutions (32, 64 "
                        "channels) before the --hidden dense layers, transposed convolutions back "
                        "(docs/conv.md; not cae)")
    g.add_argument("--activation", choices=ACTIVATION_NAMES, default="relu",
                   help="activation of the hidden layers")
    g.add_argument("--likelihood", choices=("auto", "bernoulli", "gaussian"), default="auto",
                   help="vae, cvae: the decoder's p(x|z); auto is bernoulli when the data lie in "
                        "[0, 1], else gaussian")
    g.add_argument("--variance", choices=("auto", "fixed", "shared", "per_feature", "learned"),
                   default="auto",
                   help="vae, cvae with a gaussian likelihood: the decoder's variance; fixed is 1, "
                        "shared one learned sigma^2, per_feature one per feature, learned one per "
                        "example and feature (auto: shared)")
    g.add_argument("--beta", type=_number(float, 0), default=1.0, help="vae, cvae: weight of the KL term")
    g.add_argument("--objective", choices=("elbo", "iwae"), default="elbo",
                   help="vae, cvae: what training minimises: the negative ELBO, or the negative "
                        "IWAE-k bound (Burda et al. 2016; needs beta 1)")
    g.add_argument("--k", type=_number(int, 1), default=1,
                   help="vae, cvae: samples of z per example and step (IWAE-k, or a k-sample ELBO)")
    g.add_argument("--flow", choices=("none", "planar", "iaf"), default="none",
                   help="vae, cvae: a normalising flow on the posterior sample (planar, or inverse "
                        "autoregressive); the KL is then estimated from the samples")
    g.add_argument("--flow-steps", type=_number(int, 1), default=2, help="vae, cvae: steps of the flow")
    g.add_argument("--warmup", type=_number(int, 0), default=0,
                   help="vae, cvae: epochs of linear KL warm-up from beta 0")
    g.add_argument("--noise", choices=tuple(NOISES), default="gaussian", help="dae: the corruption")
    g.add_argument("--noise-level", type=_number(float, 0), default=0.3,
                   help="dae: standard deviation (gaussian) or probability per feature (masking, "
                        "salt_pepper)")
    g.add_argument("--penalty", choices=("kl", "l1"), default="kl",
                   help="sae: kl (mean activation of each sigmoid unit pulled to rho) or l1 (|h| of "
                        "linear units)")
    g.add_argument("--sparsity-weight", type=_number(float, 0), default=None,
                   help="sae: weight of the penalty (default: the library's, 3 for kl, 0.1 for l1)")
    g.add_argument("--rho", type=_number(float, 0, 1, True, True), default=0.05,
                   help="sae with --penalty kl: target mean activation, in (0, 1)")
    g.add_argument("--contractive-weight", type=_number(float, 0), default=0.1,
                   help="cae: weight of the Jacobian penalty")
    g = train.add_argument_group("training")
    g.add_argument("--epochs", type=_number(int, 1), default=100, help="passes over the training data")
    g.add_argument("--batch-size", type=_number(int, 1), default=64, help="examples per step")
    g.add_argument("--lr", type=_number(float, 0, low_open=True), default=2e-3, help="Adam learning rate")
    g.add_argument("--seed", type=_number(int, 0), default=0,
                   help="seeds the weights, the minibatches, the noise and the held-out split")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="floating point type")
    g.add_argument("--threads", type=_number(int, 1), default=None,
                   help="BLAS threads while training (default: one for a small model, all cores for "
                        "a large one; OMP_NUM_THREADS and the like, when set, win)")
    g.add_argument("--out", type=_nonempty("folder name"), default=None,
                   help="output folder (default: ./runs/<model>-<data>/, or the first of "
                        "./runs/<model>-<data>-2/, -3/, ... that holds no earlier run); a given --out "
                        "that holds a run is refused unless --overwrite or --resume")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the run that --out already holds")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar and no summary line (the per-epoch lines stay)")
    g.add_argument("--resume", action="store_true",
                   help="continue from <out>/checkpoint.npz (written every epochs/10 epochs and on Ctrl-C)")
    train.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="print the ELBO / IWAE-k ladder and the active units, or an "
                                         "autoencoder's own measures",
                        description="Evaluate a saved model (a run folder, its model.npz or "
                                    "checkpoint.npz, or any npae model file) on the held-out data "
                                    "its run recorded, or on --data.")
    ev.add_argument("model", help="a run folder (holding model.npz and metrics.json) or a model file")
    ev.add_argument("--k", type=_number(int, 1), nargs="+", default=[5, 50, 500],
                    help="importance samples of each IWAE bound, each >= 1")
    ev.add_argument("--data", type=_data_arg, default=None,
                    help="evaluate on this data set or path instead of the run's (default: the run's; "
                         "digits for a model file without a run)")
    ev.add_argument("--data-dir", type=_nonempty("folder"), default=None,
                    help="mnist, fashion-mnist: folder of the IDX files (default: the run's)")
    ev.add_argument("--test-split", type=_nonempty("split"), default=None,
                    help="mnist, fashion-mnist: IDX prefix to evaluate on (default: the run's)")
    ev.add_argument("--max-examples", type=_number(int, 1), default=None,
                    help="evaluate on the first this many held-out examples, >= 1 (default: all)")
    ev.add_argument("--seed", type=_number(int, 0), default=0, help="seed of the estimators' noise")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    ev.set_defaults(func=_evaluate)
    parser._npae_sub = {"train": train, "evaluate": ev}
    return parser


def main(argv=None):
    """Run the command; returns the exit status (0 success, 1 user error, 2 bad command line,
    3 an internal error, 130 interrupted). It never raises SystemExit, not even for --help.

    A user's mistake (npae.InputError, a bad model file or data set, divergence, a file that
    cannot be read or written, an output folder in use) is one line on stderr. Anything else is a
    bug in npae: its traceback is printed with a line asking to report it.
    """
    from npae.data.datasets import DatasetError
    from npae.data.io import ModelFileError
    from npae.training.loop import DivergenceError
    from npae.validation import InputError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_flags(parser, args)
    except SystemExit as exc:  # a bad command line (2), or --help / --version (0): a status, not an exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        saved = getattr(exc, "checkpoint", None)
        hint = f"; checkpoint saved to {saved}, continue with --resume" if saved else ""
        print(f"npae: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, InputError, DatasetError, ModelFileError, DivergenceError, OSError) as exc:
        if os.environ.get("NPAE_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"npae: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # noqa: BLE001 (a bug: show everything, then say so)
        traceback.print_exc()
        print("npae: internal error: this is a bug in npae, not a mistake in your input; please "
              "report it with the traceback above", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
