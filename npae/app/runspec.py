"""What a run of the ``npae`` command is made of, shared by ``train`` (:mod:`npae.app.train`) and
``evaluate`` (:mod:`npae.app.evaluate`): the models and data the command knows and the options
that apply to each, :class:`UserError` (a mistake the user can fix, printed as one line), the data
spec of a run and loading its train and held-out splits (:func:`_load_split`; the spec goes into
``metrics.json`` so that ``evaluate`` finds the same data), and the model the options describe
(:func:`_build_model`).
"""
import os
import sys

import numpy as np

from npae.constants import MAIN_JOB

MODELS = ("ae", "dae", "sae", "cae", "vae", "cvae")
IS_VAE = ("vae", "cvae")
AE_FAMILY = ("ae", "dae", "sae", "cae")
IDX_SETS = ("mnist", "fashion-mnist")

#: Per-model defaults of the flags whose best value depends on the model (chosen so that each
#: model shows its lesson with no options: a 2-D code for the pictures of ae / vae / cvae; room
#: for a sparse code (sae) and for denoising (dae); a one-layer contractive encoder with 16 units,
#: since 2 sigmoid units of a one-layer encoder saturate and stop learning).
LATENT_DEFAULT = {"ae": 2, "dae": 32, "sae": 32, "cae": 32, "vae": MAIN_JOB["latent_dim"], "cvae": 2}

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
    "no_label": ("path",), "scale": ("path",),
}


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""


def _flag(dest):
    return "--" + dest.replace("_", "-")


def _say(text):
    print(f"npae: {text}", file=sys.stderr, flush=True)


def _data_kind(data):
    return "idx" if data in IDX_SETS else ("path" if os.path.isabs(data) else "named")


def _data_name(data):
    """Short name of the data for folder names and messages."""
    if _data_kind(data) != "path":
        return data
    return os.path.splitext(os.path.basename(os.path.normpath(data)))[0] or "data"


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


def _load_idx(spec, split, say=None, flag="--test-split"):
    from npae.data import datasets

    kw = dict(data_dir=spec.get("data_dir"))
    if not isinstance(split, str) or not split or "/" in split or os.sep in split or split in (".", ".."):
        raise UserError(f"{flag} takes the prefix of the IDX files (train, test, or a name such as "
                        f"train5k), not a path: got {split!r}")
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
    from npae.validation import InputError

    data, seed, kind = spec["data"], spec["seed"], _data_kind(spec["data"])
    if kind == "idx":
        X, y, info = _load_idx(spec, spec["train_split"], say, "--train-split")
        Xt, yt, info_t = _load_idx(spec, spec["test_split"], say, "--test-split")
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
            if spec.get("no_label"):
                if label is not None:
                    raise UserError("--label names the label column and --no-label says there is none: "
                                    "give one of them")
                label = False
            scale = spec.get("scale", "auto")
            try:
                X_all, y_all, info = datasets.load_path(data, label=label, header=None, scale=scale,
                                                        image_shape=tuple(shape) if shape else None)
            except InputError as err:  # only image_shape is checked as an argument there
                raise UserError(f"--image-shape {'x'.join(map(str, shape or ()))}: {err}") from None
            if scale == "auto":
                _refuse_pixel_counts(X_all, data)
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


def _refuse_pixel_counts(X, data):
    """Whole numbers 0..255 (with some above 1) that ``--scale auto`` left as they are: almost
    surely 8-bit pixels, on which a model would train on the wrong scale (a Gaussian decoder, a loss
    of 1e5 and the logvar clamp holding everything). Refused with what to do."""
    top = float(X.max())
    if 1.0 < top <= 255.0 and float(X.min()) >= 0.0 and np.array_equal(X, np.round(X)):
        raise UserError(f"{_data_name(data)} holds whole numbers 0..{top:g}, like 8-bit pixels: give "
                        f"--scale 255 to put them in [0, 1] (the pixel probabilities of a Bernoulli "
                        f"decoder), or --scale 1 to train on them as they are")


def _resolved(args):
    """The per-model values of the options whose defaults depend on the model."""
    latent = args.latent_dim if args.latent_dim is not None else LATENT_DEFAULT[args.model]
    hidden = tuple(args.hidden) if args.hidden is not None else (
        () if args.model == "cae" else tuple(MAIN_JOB["hidden"]))
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
