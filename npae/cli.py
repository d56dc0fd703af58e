"""The ``npae`` command (also ``python -m npae``).

    npae train {ae,dae,sae,cae,vae,cvae} [options]   train, then save model, metrics and figures
    npae evaluate RUN_OR_MODEL [options]             ELBO / IWAE-k ladder and active units

``npae train vae`` with no options trains a VAE with a 2-D latent space on the bundled 8x8 digits
(offline, well under a minute) and writes to ``./runs/vae-digits/``: ``model.npz``,
``metrics.json`` and the figures ``loss_curves.png``, ``reconstructions.png``, ``samples.png``,
``latent_scatter.png`` and ``manifold_grid.png``.

A user's mistake (a missing or corrupt data file, an unknown model or data set, an output folder that
cannot be written) ends with one line on stderr and a non-zero exit status; set ``NPAE_DEBUG=1`` to
see the traceback instead.
"""
import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

MODELS = ("ae", "dae", "sae", "cae", "vae", "cvae")
IS_VAE = ("vae", "cvae")

#: Exit statuses: 1 a user's error while running, 2 a bad command line (argparse's convention),
#: 3 a bug in npae, 130 interrupted.
EXIT_ERROR, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------- data
def _load_split(spec):
    """(X_train, y_train, X_test, y_test, info) from a JSON-able data spec (kept in metrics.json)."""
    from . import datasets

    name, seed = spec["data"], spec["seed"]
    if name in ("mnist", "fashion-mnist"):
        kw = dict(data_dir=spec.get("data_dir"), download=spec.get("download", False))
        X, y, info = datasets.load_dataset(name, spec["train_split"], **kw)
        Xt, yt, _ = datasets.load_dataset(name, spec["test_split"], **kw)
        if spec.get("max_train"):
            perm = np.random.default_rng(seed).permutation(X.shape[0])[:spec["max_train"]]
            X, y = X[perm], y[perm]
    else:
        X_all, y_all, info = datasets.load_dataset(name, seed=seed)
        perm = np.random.default_rng(seed).permutation(X_all.shape[0])
        n_test = max(1, int(round(spec["test_fraction"] * X_all.shape[0])))
        X, y = X_all[perm[n_test:]], y_all[perm[n_test:]]
        Xt, yt = X_all[perm[:n_test]], y_all[perm[:n_test]]
        if spec.get("max_train"):
            X, y = X[:spec["max_train"]], y[:spec["max_train"]]
    if spec.get("binarize", "none") != "none":
        X = datasets.binarize(X, "static", rng=seed)
        Xt = datasets.binarize(Xt, "static", rng=seed + 1)
    return X, y, Xt, yt, info


# ---------------------------------------------------------------------------------------- models
def _build_model(args, input_dim, n_classes, unit):
    from . import variants
    from .autoencoder import Autoencoder
    from .vae import VAE, ConditionalVAE

    common = dict(latent_dim=args.latent_dim, activation=args.activation, dtype=args.dtype,
                  seed=args.seed)
    hidden = tuple(args.hidden) if args.hidden is not None else (() if args.model == "cae" else (128,))
    if args.model in IS_VAE:
        likelihood = "bernoulli" if unit else "gaussian"
        kw = dict(hidden=hidden, likelihood=likelihood, beta=args.beta, **common)
        if args.model == "cvae":
            return ConditionalVAE(input_dim, n_classes, **kw)
        return VAE(input_dim, **kw)
    recon = dict(output="sigmoid", loss="bce") if unit else dict(output="identity", loss="mse")
    kw = dict(hidden=hidden, **recon, **common)
    if args.model == "dae":
        return variants.DenoisingAutoencoder(input_dim, noise=args.noise, noise_level=args.noise_level, **kw)
    if args.model == "sae":
        code = "sigmoid" if args.penalty == "kl" else "identity"
        return variants.SparseAutoencoder(input_dim, penalty=args.penalty, code_activation=code,
                                          sparsity_weight=args.sparsity_weight, rho=args.rho, **kw)
    if args.model == "cae":
        return variants.ContractiveAutoencoder(input_dim, contractive_weight=args.contractive_weight,
                                               **kw)
    return Autoencoder(input_dim, **kw)


def _prepare_out(path):
    """Create the output folder and prove it is writable before any training time is spent."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".npae-write-test")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise UserError(f"cannot write to output folder {path!r}: {exc.strerror or exc}") from None


def _train(args):
    from . import plotting
    from .report import print_history

    out = args.out or os.path.join("runs", f"{args.model}-{args.data}")
    spec = dict(data=args.data, data_dir=args.data_dir, download=args.download, seed=args.seed,
                train_split=args.train_split, test_split=args.test_split,
                test_fraction=args.test_fraction, max_train=args.max_train, binarize=args.binarize)
    X, y, Xt, yt, info = _load_split(spec)
    _prepare_out(out)
    n_classes = int(max(y.max(), yt.max())) + 1 if y.dtype.kind in "iu" else None
    if args.model == "cvae" and n_classes is None:
        raise UserError(f"cvae needs class labels; data set {args.data!r} has none")
    model = _build_model(args, X.shape[1], n_classes, info["unit_interval"])
    print(f"training {model!r}\n  on {args.data}: {X.shape[0]} train / {Xt.shape[0]} held-out "
          f"examples of {X.shape[1]} features; {model.n_params} parameters", flush=True)
    fit_kw = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  progress=not args.no_progress)
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
    history = model.fit(X, y if args.model == "cvae" else None, **fit_kw).history_
    seconds = time.perf_counter() - t0
    print_history(history)
    print(f"trained in {seconds:.1f} s")

    metrics = dict(model=args.model, class_name=type(model).__name__, config=model.config,
                   data_spec=spec, n_train=int(X.shape[0]), n_test=int(Xt.shape[0]),
                   epochs=len(history["loss"]), batch_size=args.batch_size, lr=args.lr,
                   seconds=round(seconds, 3), history=history,
                   final={k: v[-1] for k, v in history.items()}, test=_test_metrics(model, Xt, yt, args.seed))
    model_path = os.path.join(out, "model.npz")
    model.save(model_path)
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2, default=float)
    for name, value in metrics["test"].items():
        print(f"held-out {name}: {value:.4g}" if isinstance(value, float) else f"held-out {name}: {value}")
    written = _figures(model, args.model, Xt, yt, info, history, out, plotting)
    print(f"wrote {model_path}, {os.path.join(out, 'metrics.json')}")
    for path in written:
        print(f"wrote {path}")
    return 0


def _labels_for(model, y):
    """The labels a model's methods take: ``y`` when the model is conditional, else None."""
    return y if model.takes_labels else None


def _test_metrics(model, Xt, yt, seed):
    from .vae import VAE

    if isinstance(model, VAE):
        lab = _labels_for(model, yt)
        return {"neg_elbo": model.neg_elbo(Xt, lab, seed=seed),
                "kl_per_dim": [float(v) for v in model.kl_per_dimension(Xt, lab)],
                "active_units": model.active_units(Xt, lab)}
    return {"recon_error": float(np.mean(model.reconstruction_error(Xt)))}


def _figures(model, kind, Xt, yt, info, history, out, plotting):
    """Write the figures of a trained model; returns their paths."""
    paths = []

    def target(name):
        paths.append(os.path.join(out, name))
        return paths[-1]

    cond = _labels_for(model, yt)
    shape = info["image_shape"]
    plotting.loss_curves(history, title=f"{type(model).__name__} training", path=target("loss_curves.png"))
    Z = model.encode(Xt) if cond is None else model.encode(Xt, cond)
    recon = model.decode(Z) if cond is None else model.decode(Z, cond)
    if shape is not None:
        n = 10
        pairs = np.concatenate([Xt[:n], recon[:n], Xt[n:2 * n], recon[n:2 * n]])
        plotting.image_grid(pairs, shape, n_cols=n, row_labels=["data", "reconstruction"] * 2,
                            title="held-out digits and their reconstructions",
                            path=target("reconstructions.png"))
    else:
        plotting.scatter_pair(Xt, recon, yt, path=target("reconstructions.png"))
    if kind == "vae":
        samples = model.sample(100, seed=0)
        if shape is not None:
            plotting.image_grid(samples, shape, n_cols=10, title="samples from the prior",
                                path=target("samples.png"))
        else:
            plotting.scatter_pair(Xt, samples, title="data and samples from the prior",
                                  path=target("samples.png"))
    elif kind == "cvae" and shape is not None:
        classes = np.repeat(np.arange(model.n_classes), 10)
        samples = model.sample(classes.size, y=classes, seed=0)
        plotting.image_grid(samples, shape, n_cols=10, row_labels=[str(c) for c in range(model.n_classes)],
                            title="samples, one row per class", path=target("samples.png"))
    if Z.shape[1] >= 2:
        plotting.latent_scatter(Z, yt, title="held-out codes (posterior means)" if kind in IS_VAE
                                else "held-out codes", path=target("latent_scatter.png"))
    if Z.shape[1] == 2 and shape is not None and kind != "cvae":
        codes = None if kind == "vae" else model.encode(Xt)
        plotting.manifold_grid(model, 15, shape, codes=codes,
                               title="decoded inverse-CDF grid" if codes is None
                               else "decoded grid over the codes' quantiles",
                               path=target("manifold_grid.png"))
    return paths


# ---------------------------------------------------------------------------------------- evaluate
def _evaluate(args):
    from .classifier import Classifier
    from .model import load
    from .vae import VAE

    path = args.model
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    model_path = os.path.join(path, "model.npz") if os.path.isdir(path) else path
    if not os.path.exists(model_path):
        raise UserError(f"no model file at {model_path!r} (give a run folder or a model .npz)")
    model = load(model_path)
    spec = None
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.exists(metrics_path):
        with open(metrics_path) as fh:
            spec = json.load(fh).get("data_spec")
    if args.data is not None or spec is None:
        spec = dict(data=args.data or "digits", data_dir=args.data_dir, download=False,
                    seed=args.seed, train_split="train", test_split="test", test_fraction=0.15,
                    max_train=None, binarize="none")
    elif args.data_dir is not None:
        spec["data_dir"] = args.data_dir
    _, _, Xt, yt, _ = _load_split(spec)
    if args.max_examples:
        Xt, yt = Xt[:args.max_examples], yt[:args.max_examples]
    print(f"{model!r}\nfrom {model_path}; held-out {spec['data']}: {Xt.shape[0]} examples")
    if isinstance(model, Classifier):
        terms = model.evaluate(Xt, yt)
        print(f"cross-entropy {terms['loss']:.4f} nats per example, accuracy {terms['accuracy']:.4f}")
        return 0
    if not isinstance(model, VAE):
        err = float(np.mean(model.reconstruction_error(Xt)))
        print(f"reconstruction error {err:.4f} (per example, summed over features)")
        return 0
    lab = _labels_for(model, yt)
    print("negative bounds on log p(x), nats per example (each lower bound is tighter than the last):")
    print(f"{'bound':<10} {'-bound':>14}")
    print(f"{'ELBO':<10} {model.neg_elbo(Xt, lab, seed=args.seed):>14.3f}")
    for k in args.k:
        value = -model.log_likelihood_estimate(Xt, lab, k=k, seed=args.seed)
        print(f"{'IWAE-' + str(k):<10} {value:>14.3f}")
    kl = model.kl_per_dimension(Xt, lab)
    print(f"active units {model.active_units(Xt, lab)} / {model.latent_dim} "
          f"(variance of the posterior mean > 0.01)")
    print("KL per latent dimension (nats): " + " ".join(f"{v:.3f}" for v in kl))
    return 0


# ---------------------------------------------------------------------------------------- parser
def build_parser():
    from .datasets import DATASETS

    parser = _Parser(prog="npae", description="Autoencoders and VAEs in NumPy, backward passes by hand.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train a model; save model, metrics JSON and figures",
                           description="Train a model and write model.npz, metrics.json and PNG "
                                       "figures to --out (default ./runs/<model>-<data>/).")
    train.add_argument("model", choices=MODELS,
                       help="ae (plain), dae (denoising), sae (sparse), cae (contractive), vae, cvae")
    g = train.add_argument_group("data")
    g.add_argument("--data", choices=DATASETS, default="digits",
                   help="digits (bundled, default), mnist / fashion-mnist (IDX files), moons, "
                        "swiss-roll, blobs")
    g.add_argument("--data-dir", default=None,
                   help="folder of the MNIST IDX files (default: $NPAE_DATA, then ~/.cache/npae)")
    g.add_argument("--download", action="store_true",
                   help="download missing MNIST files into ~/.cache/npae (checksummed)")
    g.add_argument("--train-split", default="train", help="IDX file prefix for training (e.g. train5k)")
    g.add_argument("--test-split", default="test", help="IDX file prefix held out (test = t10k)")
    g.add_argument("--test-fraction", type=float, default=0.15,
                   help="held-out share of the bundled/synthetic sets")
    g.add_argument("--max-train", type=int, default=None, help="use at most this many training examples")
    g.add_argument("--binarize", choices=("none", "static"), default="none",
                   help="static: one Bernoulli draw of the pixels (docs/datasets.md#binarization)")
    g = train.add_argument_group("model")
    g.add_argument("--hidden", type=int, nargs="*", default=None,
                   help="hidden widths of the encoder, mirrored by the decoder (default 128; cae: none)")
    g.add_argument("--latent-dim", type=int, default=2)
    g.add_argument("--activation", default="relu")
    g.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (vae, cvae)")
    g.add_argument("--warmup", type=int, default=0, help="KL warm-up epochs (vae, cvae)")
    g.add_argument("--noise", default="gaussian", help="dae: gaussian, masking or salt_pepper")
    g.add_argument("--noise-level", type=float, default=0.3, help="dae")
    g.add_argument("--penalty", default="l1", help="sae: l1 or kl")
    g.add_argument("--sparsity-weight", type=float, default=1e-3, help="sae")
    g.add_argument("--rho", type=float, default=0.05, help="sae, penalty kl")
    g.add_argument("--contractive-weight", type=float, default=1e-2, help="cae")
    g = train.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=100)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    g.add_argument("--out", default=None, help="output folder (default ./runs/<model>-<data>/)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--resume", action="store_true",
                   help="continue from <out>/checkpoint.npz (written every epochs/10 epochs and on Ctrl-C)")
    train.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="print the ELBO / IWAE-k ladder and the active units",
                        description="Evaluate a saved model on the held-out data of its run.")
    ev.add_argument("model", help="a run folder (holding model.npz and metrics.json) or a model file")
    ev.add_argument("--k", type=int, nargs="+", default=[5, 50, 500],
                    help="importance samples of each IWAE bound (default 5 50 500)")
    ev.add_argument("--data", choices=DATASETS, default=None,
                    help="evaluate on this data set instead of the run's")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--max-examples", type=int, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=_evaluate)
    return parser


def main(argv=None):
    """Run the command; returns the exit status (0 success, 1 user error, 2 bad command line,
    3 an internal error, 130 interrupted).

    A user's mistake (npae.InputError, a bad model file or data set, divergence, a file that
    cannot be read or written) is one line on stderr. Anything else is a bug in npae: its
    traceback is printed with a line asking to report it.
    """
    from .datasets import DatasetError
    from .io import ModelFileError
    from .training import DivergenceError
    from .validation import InputError

    args = build_parser().parse_args(argv)
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
