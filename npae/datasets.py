"""Data sets. The default is bundled, so everything runs offline.

* ``load_digits()``: the UCI 8x8 handwritten digits (1,797 images, 10 classes; E. Alpaydin and
  C. Kaynak, CC BY 4.0), shipped as ``npae/data/digits.npz`` (pixel counts 0..16).
* ``load_mnist()`` / ``load_fashion_mnist()``: the standard IDX files (gzip or raw) read from a
  folder: ``data_dir=``, else the ``NPAE_DATA`` environment variable, else the user's cache
  (``$XDG_CACHE_HOME/npae`` or ``~/.cache/npae``). Nothing is downloaded unless ``download=True``;
  a download is checked against the published MD5 before it is kept.
* Synthetic: ``make_moons``, ``make_swiss_roll``, ``make_blobs``.
* ``binarize(X, mode)``: none / static / dynamic, and what each does to the numbers a model reports.

Every loader returns ``(X, y)``: ``X`` float64 of shape (n, d), ``y`` int64 of shape (n,) (the swiss
roll's ``y`` is its float position along the roll). Guide: docs/datasets.md.
"""
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from .init import make_rng
from .validation import check_choice, check_scalar


class DatasetError(ValueError):
    """A data file exists but cannot be used: corrupt, truncated, wrong checksum, wrong contents."""


# ---------------------------------------------------------------------------------------- bundled
def load_digits():
    """Return ``(X, y)``: X (1797, 64) float64 in [0, 1] (pixel counts / 16), y (1797,) int64."""
    with resources.files("npae").joinpath("data/digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            X = data["images"].astype(np.float64) / 16.0
            y = data["labels"].astype(np.int64)
    return X, y


# ---------------------------------------------------------------------------------------- IDX
#: IDX type byte -> big-endian NumPy dtype (the format of LeCun's MNIST files).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path):
    """The file's bytes, decompressed when it is gzip (detected by its magic, not its name)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise DatasetError(f"{path} is a folder, expected an IDX file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetError(f"{path} is a corrupt or truncated gzip file ({exc}); "
                               "delete it and download it again") from None
    return raw


def parse_idx(data, name="IDX data"):
    """Parse the bytes of an IDX file into an array.

    Layout: two zero bytes, a type byte (0x08 uint8 ... 0x0E float64), the number of dimensions
    ``ndim``, then ``ndim`` big-endian uint32 sizes, then the values (big-endian, C order). Raises
    :class:`DatasetError` naming ``name`` when the header is wrong or the body is short or long.
    """
    if len(data) < 4:
        raise DatasetError(f"{name} is not an IDX file: only {len(data)} bytes")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES or data[3] == 0:
        raise DatasetError(f"{name} is not an IDX file (header bytes {data[:4].hex()}; expected "
                           "00 00 <type 08..0e> <ndim >= 1>)")
    dtype, ndim = np.dtype(IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{name} is truncated inside its header ({len(data)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise DatasetError(f"{name} is truncated: header says shape {shape} ({expected} bytes) but "
                           f"the file holds {len(data)} bytes")
    if len(data) > expected:
        raise DatasetError(f"{name} is corrupt: {len(data) - expected} bytes after the data of "
                           f"shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read one IDX file (gzip or raw) into an array; see :func:`parse_idx`."""
    return parse_idx(_read_bytes(path), name=str(path))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip when ``path`` ends in ``.gz``). Used by the tests."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    if array.dtype not in codes:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(body)


# ---------------------------------------------------------------------------------------- MNIST
#: Where and what: mirror URLs and the MD5 of each published .gz file (as torchvision lists them).
IDX_SOURCES = {
    "mnist": {
        "urls": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "md5": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    },
    "fashion-mnist": {
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "md5": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    },
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def cache_dir():
    """The user's npae cache: ``$XDG_CACHE_HOME/npae``, else ``~/.cache/npae`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "npae"


def file_checksum(path, algorithm="md5"):
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url, dest, *, md5=None, sha256=None, timeout=60):
    """Fetch ``url`` into ``dest`` and keep it only if its checksum matches.

    The bytes go to a temporary file in ``dest``'s folder, are checked, then renamed into place, so
    an interrupted or tampered download never leaves a file that looks finished. Any URL scheme
    ``urllib`` knows works (``file://`` is how the tests exercise this offline).
    """
    if md5 is None and sha256 is None:
        raise ValueError("download needs an md5= or sha256= checksum to verify against")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        for algorithm, want in (("md5", md5), ("sha256", sha256)):
            if want is not None:
                got = file_checksum(tmp, algorithm)
                if got != want.lower():
                    raise DatasetError(f"checksum mismatch for {url}: {algorithm} {got}, expected "
                                       f"{want}; the file was not kept")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _find(folder, stem):
    """The first existing variant of an IDX file name in ``folder`` (gzip first), or None."""
    dotted = stem.replace("-idx", ".idx")  # some mirrors write train-images.idx3-ubyte
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_folders(name, data_dir):
    """Folders searched for ``name``'s files, in order: data_dir (or $NPAE_DATA), then the cache.
    In each, ``<folder>/<name>/`` is tried before ``<folder>/`` itself."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    elif os.environ.get("NPAE_DATA"):
        roots.append(Path(os.environ["NPAE_DATA"]).expanduser())
    roots.append(cache_dir())
    folders = []
    for root in roots:
        folders += [root / name, root]
    return folders


def load_idx_dataset(name, split="train", *, data_dir=None, download_missing=False):
    """Load ``(X, y)`` of an IDX data set (``"mnist"`` or ``"fashion-mnist"``).

    Parameters
    ----------
    name : "mnist" | "fashion-mnist"
    split : str
        ``"train"`` or ``"test"`` (files ``train-*`` / ``t10k-*``); any other string is used as the
        file prefix, e.g. ``"train5k"`` reads ``train5k-images-idx3-ubyte.gz``.
    data_dir : path, optional
        Folder holding the files (or a ``<name>/`` subfolder); default ``$NPAE_DATA``, then the cache.
    download_missing : bool
        Download the official files into the cache when not found (needs the network).

    Returns
    -------
    X : (n, 784) float64 in [0, 1] (pixel / 255); y : (n,) int64.
    """
    check_choice("name", name, tuple(IDX_SOURCES))
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be 'train', 'test' or a file prefix, got {split!r}")
    prefix = _SPLIT_PREFIX.get(split, split)
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    folders = _idx_folders(name, data_dir)
    paths = []
    for stem in stems:
        found = next((p for p in (_find(f, stem) for f in folders) if p is not None), None)
        if found is None and download_missing:
            found = _download_idx(name, stem + ".gz")
        if found is None:
            where = ", ".join(str(f) for f in folders)
            raise FileNotFoundError(
                f"{name} file {stem}[.gz] not found in {where}; point data_dir= (CLI: --data-dir) or "
                f"NPAE_DATA at the folder holding it, or allow a download (download=True; CLI: --download)")
        paths.append(found)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1:
        raise DatasetError(f"{paths[0]} / {paths[1]}: expected images (n, rows, cols) and labels (n,), "
                           f"got shapes {images.shape} and {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{paths[0]} holds {images.shape[0]} images but {paths[1]} holds "
                           f"{labels.shape[0]} labels")
    X = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return X, labels.astype(np.int64)


def _download_idx(name, filename):
    source = IDX_SOURCES[name]
    if filename not in source["md5"]:
        return None  # only the official files can be downloaded
    dest = cache_dir() / name / filename
    errors = []
    for base in source["urls"]:
        try:
            return download(base + filename, dest, md5=source["md5"][filename])
        except OSError as exc:  # URLError is an OSError
            errors.append(f"{base}: {exc}")
    raise DatasetError(f"could not download {filename} ({'; '.join(errors)})")


def load_mnist(split="train", *, data_dir=None, download=False):
    """MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0): ``(X (n, 784) in [0, 1], y (n,))``.
    See :func:`load_idx_dataset` for where the files are looked for."""
    return load_idx_dataset("mnist", split, data_dir=data_dir, download_missing=download)


def load_fashion_mnist(split="train", *, data_dir=None, download=False):
    """Fashion-MNIST (Zalando Research; MIT): ``(X (n, 784) in [0, 1], y (n,))``; class names in
    ``FASHION_CLASSES``. See :func:`load_idx_dataset` for where the files are looked for."""
    return load_idx_dataset("fashion-mnist", split, data_dir=data_dir, download_missing=download)


# ---------------------------------------------------------------------------------------- synthetic
def make_moons(n_samples=500, noise=0.05, seed=0):
    """Two interleaving half circles in 2-D; returns ``(X, y)`` with X (n, 2) and y (n,) in {0, 1}."""
    check_scalar("n_samples", n_samples, low=2, integer=True)
    check_scalar("noise", noise, low=0.0)
    rng = make_rng(seed)
    n0 = n_samples // 2
    n1 = n_samples - n0
    t0 = np.linspace(0, np.pi, n0)
    t1 = np.linspace(0, np.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n1, np.int64)])
    X = X + noise * rng.standard_normal(X.shape)
    perm = rng.permutation(n_samples)
    return X[perm], y[perm]


def make_swiss_roll(n_samples=1000, noise=0.05, seed=0):
    """A 2-D sheet rolled up in 3-D: t ~ U(1.5π, 4.5π), h ~ U(0, 21),
    x = (t cos t, h, t sin t) + noise. Returns ``(X (n, 3), t (n,))``: ``t``, the position along the
    roll, is the one coordinate a good 1-D or 2-D code should recover (use it to colour plots)."""
    check_scalar("n_samples", n_samples, low=1, integer=True)
    check_scalar("noise", noise, low=0.0)
    rng = make_rng(seed)
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.uniform(size=n_samples))  # (n,)
    h = 21.0 * rng.uniform(size=n_samples)  # (n,)
    X = np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1)  # (n, 3)
    X = X + noise * rng.standard_normal(X.shape)
    return X, t


def make_blobs(n_samples=500, n_features=2, centers=3, cluster_std=1.0, box=10.0, seed=0):
    """Isotropic Gaussian clusters: centres drawn uniformly in [-box, box]^d, equal class sizes
    (up to one). Returns ``(X (n, n_features), y (n,))``."""
    check_scalar("n_samples", n_samples, low=1, integer=True)
    check_scalar("n_features", n_features, low=1, integer=True)
    check_scalar("centers", centers, low=1, integer=True)
    check_scalar("cluster_std", cluster_std, low=0.0)
    check_scalar("box", box, low=0.0)
    rng = make_rng(seed)
    means = rng.uniform(-box, box, size=(centers, n_features))  # (C, d)
    y = np.arange(n_samples, dtype=np.int64) % centers  # (n,)
    X = means[y] + cluster_std * rng.standard_normal((n_samples, n_features))  # (n, d)
    perm = rng.permutation(n_samples)
    return X[perm], y[perm]


# ---------------------------------------------------------------------------------------- binarize
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
    X = np.asarray(X, dtype=np.float64)
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


# ---------------------------------------------------------------------------------------- by name
#: Names accepted by :func:`load_dataset` (and the CLI's ``--data``).
DATASETS = ("digits", "mnist", "fashion-mnist", "moons", "swiss-roll", "blobs")


def load_dataset(name, split="train", *, data_dir=None, download=False, seed=0):
    """``(X, y, info)`` by name, for the CLI and the demos.

    ``info`` holds ``image_shape`` (``(8, 8)``, ``(28, 28)`` or None for point clouds) and
    ``unit_interval`` (whether X lies in [0, 1], i.e. suits a Bernoulli / BCE decoder). The bundled
    and synthetic sets ignore ``split`` (split them yourself); MNIST reads ``split``'s files.
    """
    check_choice("data set", name, DATASETS)
    if name == "digits":
        X, y = load_digits()
        return X, y, {"image_shape": (8, 8), "unit_interval": True}
    if name in ("mnist", "fashion-mnist"):
        X, y = load_idx_dataset(name, split, data_dir=data_dir, download_missing=download)
        return X, y, {"image_shape": (28, 28), "unit_interval": True}
    if name == "moons":
        X, y = make_moons(1000, noise=0.05, seed=seed)
    elif name == "swiss-roll":
        X, t = make_swiss_roll(1500, noise=0.2, seed=seed)
        X = X / 10.0
        y = np.digitize(t, np.linspace(t.min(), t.max(), 6)[1:-1]).astype(np.int64)  # 5 bands
    else:
        X, y = make_blobs(1000, n_features=2, centers=4, seed=seed)
        X = X / 5.0
    return X, y, {"image_shape": None, "unit_interval": False}
