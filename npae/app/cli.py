"""The ``npae`` command (also ``python -m npae``).

    npae train {ae,dae,sae,cae,vae,cvae} [options]   train, then save model, metrics and figures
    npae evaluate RUN_OR_MODEL [options]             ELBO / IWAE-k ladder, or the model's own measures
    npae explore RUN_DIR [--out FILE]                write explorer.html, the latent space in a browser
    npae --version

``npae train vae`` with no options trains a VAE with a 2-D latent space on the bundled 8x8 digits
(offline, well under a minute) and writes to ``./runs/vae-digits/``: ``model.npz``,
``checkpoint.npz``, ``metrics.json``, ``run.json`` (the settings ``--resume`` holds to) and the figures
``loss_curves.png``, ``reconstructions.png``,
``samples.png``, ``latent_scatter.png`` and ``manifold_grid.png``. Each regularised autoencoder adds
the figure of its own idea: ``denoising.png`` (dae), ``sparsity.png`` (sae), ``contraction.png``
(cae); the conditional VAE's ``manifold_grid.png`` is a grid of classes × latent values.
Every run of an autoencoder or VAE also writes ``explorer.html``, its latent space to explore in a
browser, offline (:mod:`npae.app.explorer`; ``npae explore RUN_DIR`` writes it for an earlier run).

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

The command's parts, by job: this module (the parser, :func:`main`, how errors end),
:mod:`npae.app.train` and :mod:`npae.app.evaluate` (the two commands), :mod:`npae.app.lessons`
(each lesson's measure and figure), :mod:`npae.app.runspec` (what a run is made of: models, data,
the options that apply to each).
"""
import argparse
import math
import os
import re
import sys
import traceback

from npae.app.evaluate import _evaluate
from npae.app.explorer import _explore
from npae.app.runspec import DATA_FLAGS, MODEL_FLAGS, MODELS, UserError, _data_kind, _data_name, _flag
from npae.app.train import _train
from npae.constants import MAIN_JOB
from npae.version import __version__

#: Exit statuses: 1 a user's error while running, 2 a bad command line (argparse's convention),
#: 3 a bug in npae, 130 interrupted.
EXIT_ERROR, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 3, 130


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


def _scale_arg(text):
    """``--scale``: ``auto`` or a positive finite number."""
    return "auto" if text == "auto" else _number(float, 0, low_open=True)(text)


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


def _parse(parser, argv):
    """``parser.parse_args(argv)``, except that what no option matches is reported by the
    subcommand's parser (its ``--help`` is the one listing the options: ``npae train --help``)
    with the closest options it has (difflib), e.g. ``unrecognized option --epoch-count; did you
    mean --epochs?``."""
    import difflib

    args, extras = parser.parse_known_args(argv)
    if not extras:
        return args
    sub = parser._npae_sub.get(getattr(args, "command", None), parser)
    flag = next((e for e in extras if e.startswith("-")), None)
    if flag is None:
        sub.error(f"unrecognized arguments: {' '.join(extras)}")
    name = flag.split("=", 1)[0]
    options = sorted({o for action in sub._actions for o in action.option_strings
                      if o.startswith("--") and o not in ("--help", "--version")})
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    sub.error(f"unrecognized option {name}" + (f"; did you mean {' or '.join(close)}?" if close else ""))


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
    g.add_argument("--no-label", action="store_true",
                   help="a path's .csv: every column is a feature, also one named like a label "
                        "(label, class, target, y), which is refused without --label or this flag")
    g.add_argument("--scale", type=_scale_arg, default="auto",
                   help="a path's values are divided by this number (255 for 8-bit pixels); auto: "
                        "uint8 arrays and PNGs / 255, and whole numbers 0..255 in other files are "
                        "refused with a message asking for --scale")
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
    # the main job's settings, not the library's (npae.constants.MAIN_JOB says why; docs/training.md)
    g.add_argument("--epochs", type=_number(int, 1), default=MAIN_JOB["epochs"],
                   help="passes over the training data")
    g.add_argument("--batch-size", type=_number(int, 1), default=MAIN_JOB["batch_size"],
                   help="examples per step")
    g.add_argument("--lr", type=_number(float, 0, low_open=True), default=MAIN_JOB["lr"],
                   help="Adam learning rate")
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

    ex = sub.add_parser("explore", help="write explorer.html, the run's latent space in the browser",
                        description="Write the latent explorer of a finished run (a self-contained "
                                    "HTML page: the held-out codes, the decoder running live, "
                                    "reconstructions, interpolations) into its folder. npae train "
                                    "writes it for every new run; this is for runs trained earlier.")
    ex.add_argument("run", help="a run folder written by npae train (holding model.npz and metrics.json)")
    ex.add_argument("--out", type=_nonempty("file name"), default=None,
                    help="write the page here (default: RUN/explorer.html)")
    ex.add_argument("--overwrite", action="store_true", help="replace the page if the file exists")
    ex.add_argument("--max-points", type=_number(int, 1), default=1000,
                    help="held-out examples drawn on the plane, at most (fewer for large images)")
    ex.set_defaults(func=_explore)
    parser._npae_sub = {"train": train, "evaluate": ev, "explore": ex}
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
        args = _parse(parser, argv)
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
