"""Data sets. The default is bundled, so everything runs offline.

* ``load_digits()``: the UCI 8x8 handwritten digits (1,797 images, 10 classes; E. Alpaydin and
  C. Kaynak, CC BY 4.0), shipped as ``npae/data/digits.npz`` (pixel counts 0..16).
* ``load_mnist()`` / ``load_fashion_mnist()``: the standard IDX files (gzip or raw), each set read
  only from a place that names it (its own folder, or file names that start with the set's name;
  see :func:`idx_locations`), checked against the published checksums of the decompressed files.
  Folders: ``data_dir=``, else ``$NPAE_DATA``, else the user's cache (``$XDG_CACHE_HOME/npae`` or
  ``~/.cache/npae``). Nothing is downloaded unless ``download=True``.
* ``load_path(path)``: your own data, from a ``.npy``, ``.npz`` or ``.csv`` file or a folder of PNGs.
* Synthetic: ``make_moons``, ``make_swiss_roll``, ``make_blobs``.
* ``binarize(X, mode)``: none / static / dynamic, and what each does to the numbers a model reports.

Every file is read with its size bounded before anything is allocated (``MAX_BYTES``), only when it
is a regular file, and every malformed input raises :class:`DatasetError` naming the file.

The loaders return ``(X, y)`` (``load_path`` and ``load_dataset`` return ``(X, y, info)``): ``X``
float64 of shape (n, d), ``y`` int64 of shape (n,) (the swiss roll's ``y`` is its float position
along the roll; ``load_path`` gives ``y = None`` for data without labels). Guide: docs/datasets.md.

The code, by job (every public name is re-exported here, so ``npae.datasets.X`` is the one name to
use): :mod:`npae.data.bounded` (errors, limits, reading only regular files and only what was asked
for), :mod:`npae.data.idx` (the IDX format), :mod:`npae.data.mnist` (the official files, where they
are looked for, the download), :mod:`npae.data.userfiles` (:func:`load_path`), :mod:`npae.data.toy`
(the synthetic sets); this module holds the bundled digits, :func:`binarize` and the loaders by
name (:func:`load_dataset`, :func:`load_mnist_13k`, and for the demos
:func:`load_digits_or_mnist_13k`).
"""
from importlib import resources

import numpy as np

from npae.data.bounded import MAX_BYTES, MAX_CLASSES, DataNotFoundError, DatasetError
from npae.data.idx import IDX_DTYPES, parse_idx, read_idx, write_idx
from npae.data.mnist import (FASHION_CLASSES, IDX_SOURCES, IDX_TITLES, OfficialFile, _load_idx, cache_dir,
                             download, file_checksum, idx_locations, load_fashion_mnist, load_idx_dataset,
                             load_mnist)
from npae.data.toy import make_blobs, make_moons, make_swiss_roll
from npae.data.userfiles import PATH_FORMATS, load_path
from npae.init import make_rng
from npae.validation import InputError, _real_array, check_choice

__all__ = [
    "DatasetError", "DataNotFoundError", "MAX_BYTES", "MAX_CLASSES",
    "load_digits", "load_dataset", "DATASETS", "load_mnist_13k", "load_digits_or_mnist_13k", "binarize",
    "BINARIZE_MODES",
    "IDX_DTYPES", "read_idx", "parse_idx", "write_idx",
    "OfficialFile", "IDX_SOURCES", "IDX_TITLES", "FASHION_CLASSES", "cache_dir", "idx_locations",
    "load_idx_dataset", "load_mnist", "load_fashion_mnist", "file_checksum", "download",
    "PATH_FORMATS", "load_path",
    "make_moons", "make_swiss_roll", "make_blobs",
]


def load_digits():
    """Return ``(X, y)``: X (1797, 64) float64 in [0, 1] (pixel counts / 16), y (1797,) int64."""
    with resources.files("npae").joinpath("data/digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            X = data["images"].astype(np.float64) / 16.0
            y = data["labels"].astype(np.int64)
    return X, y


BINARIZE_MODES = ("none", "static", "dynamic")


def binarize(X, mode="none", rng=None):
    """Turn grey levels in [0, 1] into 0/1 pixels for a Bernoulli decoder.

    ``"none"``
        Return ``X`` unchanged. A Bernoulli likelihood of grey targets is a cross-entropy, not the
        log-probability of data: its minimum is the targets' own entropy, not 0, so the reported
        nats include that floor and cannot be compared with published (binarized) numbers.
    ``"static"``
        One draw ``x_b ~ Bernoulli(X)``, made once: call it once, before training, and keep the
        result. ``rng`` may be a seed; the default seed 0 makes the same call return the same
        images. A fixed binary data set: the bound is a real log-likelihood bound, and a model can
        overfit the particular draw.
    ``"dynamic"``
        A fresh draw ``x_b ~ Bernoulli(X)`` from the Generator ``rng`` each call: call it once per
        epoch. Acts as data augmentation; training numbers are noisier and usually a little higher,
        held-out numbers a little lower (better) than with a static draw on small data.

    Returns a new float64 array (the input is never modified). Guide: docs/datasets.md#binarization.
    """
    check_choice("mode", mode, BINARIZE_MODES)
    X = _real_array(X, "X").astype(np.float64)  # strings, objects, complex: InputTypeError naming X
    if X.size and not np.isfinite(X).all():
        raise InputError(f"binarize: X holds {int((~np.isfinite(X)).sum())} NaN or inf value(s); it needs "
                         f"pixel probabilities in [0, 1]")
    if mode == "none":
        return X.copy()
    if X.size and (X.min() < 0.0 or X.max() > 1.0 or not np.isfinite(X).all()):
        raise ValueError(f"binarize needs X in [0, 1] (pixel probabilities), got values in "
                         f"[{X.min():g}, {X.max():g}]")
    if mode == "dynamic" and not isinstance(rng, np.random.Generator):
        raise TypeError("binarize(mode='dynamic') needs rng=<np.random.Generator> (fresh draws each "
                        f"call), got {rng!r}")
    rng = make_rng(0 if rng is None else rng)
    return (rng.uniform(size=X.shape) < X).astype(np.float64)


#: Names accepted by :func:`load_dataset` (and the CLI's ``--data``).
DATASETS = ("digits", "mnist", "fashion-mnist", "moons", "swiss-roll", "blobs")


def load_dataset(name, split="train", *, data_dir=None, download=False, seed=0, max_bytes=MAX_BYTES):
    """``(X, y, info)`` by name, for the CLI and the demos (your own files: :func:`load_path`).

    ``info``, the same keys for every loader:

    * ``image_shape``: ``(8, 8)``, ``(28, 28)``, ``(H, W, 3)`` for RGB, or None for point clouds;
    * ``unit_interval``: every value of X lies in [0, 1], so X can be the target of a Bernoulli /
      BCE decoder (grey levels count; they need not be 0/1);
    * ``classes``: class names when they are not just numbers (Fashion-MNIST's), else None;
    * ``source`` (the name or path), ``files`` (the paths read; empty for bundled and synthetic data),
      ``verified`` (every file matched a published checksum), ``provenance`` (one line to print).

    The bundled and synthetic sets ignore ``split`` (split them yourself); MNIST reads ``split``'s files.
    """
    check_choice("data set", name, DATASETS)
    if name in IDX_SOURCES:
        return _load_idx(name, split, data_dir, download, max_bytes)
    info = {"image_shape": None, "unit_interval": False, "classes": None, "source": name,
            "files": (), "verified": False, "provenance": f"synthetic {name} (seed {seed})"}
    if name == "digits":
        X, y = load_digits()
        info.update(image_shape=(8, 8), unit_interval=True,
                    provenance="bundled UCI 8x8 digits (npae/data/digits.npz)")
    elif name == "moons":
        X, y = make_moons(1000, noise=0.05, seed=seed)
    elif name == "swiss-roll":
        X, t = make_swiss_roll(1500, noise=0.2, seed=seed)
        X = X / 10.0
        y = np.digitize(t, np.linspace(t.min(), t.max(), 6)[1:-1]).astype(np.int64)  # 5 bands
    else:
        X, y = make_blobs(1000, n_features=2, centers=4, seed=seed)
        X = X / 5.0
    return X, y, info


def load_mnist_13k(*, data_dir=None, download=False, train_split="train5k", test_split="t10k",
                   max_bytes=MAX_BYTES):
    """``(X_train, y_train, X_test, y_test)``: the semi-supervised demos' MNIST split, 13,000
    training images (the 5,000 of the ``train5k`` files, then ``t10k[:8000]``) and 2,000 test
    images (``t10k[8000:]``), grey levels in [0, 1]. ``train_split`` / ``test_split`` name other
    files (the second must hold more than 8,000 images). Raises what :func:`load_dataset` raises
    (FileNotFoundError, DatasetError) when the files are not there."""
    A, a, _ = load_dataset("mnist", train_split, data_dir=data_dir, download=download, max_bytes=max_bytes)
    B, b, _ = load_dataset("mnist", test_split, data_dir=data_dir, download=download, max_bytes=max_bytes)
    if B.shape[0] <= 8000:
        raise DatasetError(f"MNIST split {test_split!r} holds {B.shape[0]} images; the 13k split takes "
                           f"its first 8,000 for training and tests on the rest, so it needs more")
    return np.concatenate([A, B[:8000]]), np.concatenate([a, b[:8000]]), B[8000:], b[8000:]


def load_digits_or_mnist_13k(quick, *, data_dir=None):
    """``(X_train, y_train, X_test, y_test)`` for the demos that train on MNIST and have a ``--quick``
    mode (``demos/semisupervised.py``, ``unbalanced_cvae.py``, ``cvae_agreement.py``).

    ``quick``: the bundled 8x8 digits (:func:`load_digits`), the first 1,500 to train and the other
    297 to test, offline and in seconds. Otherwise the 13k MNIST split of :func:`load_mnist_13k`
    from ``data_dir`` (else ``$NPAE_DATA``, then the cache), which raises FileNotFoundError or
    :class:`DatasetError` when its files are not there (the demos then say so and exit).
    """
    if quick:
        X, y = load_digits()
        return X[:1500], y[:1500], X[1500:], y[1500:]
    return load_mnist_13k(data_dir=data_dir)
