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
"""
import contextlib
import csv
import gzip
import hashlib
import io
import math
import os
import re
import stat
import sys
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from npae.init import make_rng
from npae.validation import check_choice, check_scalar


class DatasetError(ValueError):
    """A data file exists but cannot be used: corrupt, truncated, too large, wrong checksum, wrong
    contents, or the wrong data set. The message names the file and what is wrong with it."""


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where they were looked for. ``splits`` holds the split prefixes
    (e.g. ``"train5k"``) whose files *were* found there, so a caller can suggest one."""

    def __init__(self, message, splits=()):
        super().__init__(message)
        self.splits = tuple(splits)


# ---------------------------------------------------------------------------------------- limits
#: Largest array (in bytes) any loader allocates, judged from a file's header before its body is
#: read; loaders take ``max_bytes=`` to raise or lower it. For images it bounds the float64 ``X``
#: (MNIST's 60,000 training images are 376 MB), for an IDX file read on its own its stored body.
MAX_BYTES = 1 << 30

#: Labels are class numbers 0 .. MAX_CLASSES - 1 (a conditional model one-hot encodes them, so a
#: label of 2**31 - 1 would ask for 2**31 classes). The MNIST sets allow 0..9.
MAX_CLASSES = 256

_CHUNK = 1 << 20  # bytes per read


def _fmt_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _check_size(path, what, shape, itemsize, max_bytes):
    """The byte size of an array of ``shape``, computed with Python ints (no overflow); a
    DatasetError when it exceeds ``max_bytes``, before anything is allocated."""
    nbytes = math.prod(shape) * itemsize
    if nbytes > max_bytes:
        raise DatasetError(f"{path}: {what} of shape {shape} would take {_fmt_bytes(nbytes)}, over the "
                           f"limit of {_fmt_bytes(max_bytes)}; refusing to allocate it (pass max_bytes= "
                           "to raise the limit if the file is genuine)")
    return nbytes


def _file_kind(mode):
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


@contextlib.contextmanager
def _open_regular(path):
    """Open ``path`` for binary reading only if it is a regular file; yields ``(file, size)``.

    A FIFO, device, socket or folder is refused before it is opened (opening a FIFO waits for a
    writer). The open itself is non-blocking and re-checked, in case the name changed in between.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"data file not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path} is {_file_kind(st.st_mode)}, not a regular file; refusing to read it")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DatasetError(f"{path} is {_file_kind(st.st_mode)}, not a regular file; refusing to read it")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size


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


@contextlib.contextmanager
def _idx_stream(path):
    """The decompressed bytes of a file as a stream, gzip detected by its magic bytes (not its
    name); yields ``(stream, size)`` with ``size`` None for gzip (unknown until read)."""
    with _open_regular(path) as (fh, size):
        gz = fh.read(2) == b"\x1f\x8b"
        fh.seek(0)
        if gz:
            with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
                yield stream, None
        else:
            yield fh, size


def _read_upto(stream, n, path):
    """At most ``n`` bytes of ``stream`` (fewer only where the data end), read in 1 MiB blocks, so a
    gzip stream is never decompressed past what was asked for."""
    buf = bytearray()
    try:
        while len(buf) < n:
            block = stream.read(min(_CHUNK, n - len(buf)))
            if not block:
                break
            buf += block
    except EOFError:
        raise DatasetError(f"{path} is truncated: its compressed stream ends before its end marker; "
                           "delete it and download it again") from None
    except (gzip.BadGzipFile, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path} is corrupt: its compressed data cannot be decoded ({exc}); "
                           "delete it and download it again") from None
    return buf


def _read_idx_header(stream, path):
    """``(dtype, shape, header bytes)`` of an IDX stream; shape entries are Python ints."""
    head = _read_upto(stream, 4, path)
    if len(head) < 4:
        raise DatasetError(f"{path} is not an IDX file: only {len(head)} bytes")
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or head[3] == 0:
        raise DatasetError(f"{path} is not an IDX file: its magic number is {bytes(head).hex()}, "
                           "expected 00 00, a type byte 08..0e, the number of dimensions (>= 1)")
    dtype, ndim = np.dtype(IDX_DTYPES[head[2]]), head[3]
    dims = _read_upto(stream, 4 * ndim, path)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{path} is truncated inside its header ({4 + len(dims)} bytes, the "
                           f"{ndim} dimension sizes need {4 + 4 * ndim})")
    shape = tuple(int.from_bytes(dims[4 * k:4 * k + 4], "big") for k in range(ndim))
    return dtype, shape, bytes(head + dims)


def _read_idx_body(stream, size, path, dtype, shape, head, max_bytes, checksum=False):
    """The array of an IDX file whose header was just read (and the MD5 of the whole decompressed
    file when ``checksum``). The declared size is checked against ``max_bytes`` before reading;
    exactly that many bytes are read, plus one to prove nothing follows."""
    nbytes = _check_size(path, "the IDX data", shape, dtype.itemsize, max_bytes)
    expected = len(head) + nbytes
    if size is not None and size < expected:  # a raw file: its size is known before reading
        raise DatasetError(f"{path} is truncated: its header says shape {shape} ({expected} bytes) "
                           f"but the file holds {size} bytes")
    if size is not None and size > expected:
        raise DatasetError(f"{path} is corrupt: {size - expected} bytes after the data of shape {shape}")
    body = _read_upto(stream, nbytes, path)
    if len(body) < nbytes:
        raise DatasetError(f"{path} is truncated: its header says shape {shape} ({expected} bytes) "
                           f"but the data hold {len(head) + len(body)} bytes")
    if _read_upto(stream, 1, path):
        raise DatasetError(f"{path} is corrupt: more bytes after the data of shape {shape} "
                           f"({expected} bytes)")
    md5 = None
    if checksum:
        h = hashlib.md5(head, usedforsecurity=False)
        h.update(body)
        md5 = h.hexdigest()
    array = np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    return array, md5


def read_idx(path, *, max_bytes=MAX_BYTES):
    """Read one IDX file (gzip or raw) into an array.

    Layout: two zero bytes, a type byte (0x08 uint8 ... 0x0E float64), the number of dimensions
    ``ndim``, then ``ndim`` big-endian uint32 sizes, then the values (big-endian, C order). The
    declared size may not exceed ``max_bytes``; a body shorter or longer than declared, a bad header,
    a corrupt gzip stream or a path that is not a regular file raise :class:`DatasetError`.
    """
    with _idx_stream(path) as (stream, size):
        dtype, shape, head = _read_idx_header(stream, path)
        return _read_idx_body(stream, size, path, dtype, shape, head, max_bytes)[0]


def parse_idx(data, name="IDX data", *, max_bytes=MAX_BYTES):
    """Parse the (decompressed) bytes of an IDX file; the checks of :func:`read_idx`, errors naming
    ``name``."""
    stream = io.BytesIO(data)
    dtype, shape, head = _read_idx_header(stream, name)
    return _read_idx_body(stream, len(data), name, dtype, shape, head, max_bytes)[0]


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
class OfficialFile(NamedTuple):
    """One published IDX file: its item count, the MD5 of the ``.gz`` as published (checked on
    download) and the MD5 of the decompressed file (checked on every load; it does not depend on
    how, or whether, the file was recompressed)."""
    count: int
    md5_gz: str
    md5: str


#: The published files of each set: mirrors, and per file (name without ``.gz``) what it must be.
#: The .gz MD5s are torchvision's; the decompressed MD5s are the values published scripts check
#: (MNIST's t10k pair is confirmed on the shared copy of these machines).
IDX_SOURCES = {
    "mnist": {
        "urls": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "files": {
            "train-images-idx3-ubyte": OfficialFile(60000, "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                                    "6bbc9ace898e44ae57da46a324031adb"),
            "train-labels-idx1-ubyte": OfficialFile(60000, "d53e105ee54ea40749a09fcbcd1e9432",
                                                    "a25bea736e30d166cdddb491f175f624"),
            "t10k-images-idx3-ubyte": OfficialFile(10000, "9fb629c4189551a2d022fa330f9573f3",
                                                   "2646ac647ad5339dbf082846283269ea"),
            "t10k-labels-idx1-ubyte": OfficialFile(10000, "ec29112dd5afa0611ce80d1b7f02629c",
                                                   "27ae3e4e09519cfbb04c329615203637"),
        },
    },
    "fashion-mnist": {
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "files": {
            "train-images-idx3-ubyte": OfficialFile(60000, "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                                    "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            "train-labels-idx1-ubyte": OfficialFile(60000, "25c81989df183df01b3e8a0aad5dffbe",
                                                    "9018921c3c673c538a1fc5bad174d6f9"),
            "t10k-images-idx3-ubyte": OfficialFile(10000, "bef4ecab320f06d8554ea6380940ec79",
                                                   "8181f5470baa50b63fa0f6fddb340f0a"),
            "t10k-labels-idx1-ubyte": OfficialFile(10000, "bb300cfdad3c16e7a12a480ee83cd310",
                                                   "15d484375f8d13e6eb1aabb0c3f46965"),
        },
    },
}

IDX_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def _split_flag(split, prefix):
    """The CLI flag that chooses ``split``: --test-split for test-like prefixes, else --train-split."""
    return "--test-split" if split == "test" or prefix.startswith(("t10k", "test")) else "--train-split"


_IDX_NAME = re.compile(r"^(?P<prefix>.+?)-(?P<kind>images|labels)[-.]idx[13]-ubyte(?:\.gz)?$")


def cache_dir():
    """The user's npae cache: ``$XDG_CACHE_HOME/npae``, else ``~/.cache/npae`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "npae"


def _folder_set(folder):
    """The data set a folder is named after (``mnist/``, ``fashion-mnist/``, ``Fashion_MNIST/``, ...)."""
    key = folder.name.lower().replace("-", "").replace("_", "")
    return next((s for s in IDX_SOURCES if s.replace("-", "") == key), None)


def _idx_roots(data_dir):
    """The folders searched, in order: ``data_dir`` (else ``$NPAE_DATA``), then the cache."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    elif os.environ.get("NPAE_DATA"):
        roots.append(Path(os.environ["NPAE_DATA"]).expanduser())
    roots.append(cache_dir())
    return roots


def idx_locations(name, data_dir=None):
    """Where the files of data set ``name`` may be, in search order: ``(folder, bare)`` pairs.

    The rule: a set's files are read only from a place that names the set.

    * In a folder named after the set (``<root>/mnist/``, ``<root>/fashion-mnist/``, also spelt
      ``fashion_mnist`` or ``FashionMNIST``; or ``<root>`` itself when it has that name) both the
      standard names (``t10k-images-idx3-ubyte.gz``) and names starting with the set's name are read.
    * In any other folder only names starting with the set's name are read
      (``fashion-mnist-t10k-images-idx3-ubyte.gz``, ``mnist-train5k-labels-idx1-ubyte.gz``), with one
      exception kept from the standard layout: the bare standard names are MNIST's own, so a folder
      not named after another set that holds them is an MNIST folder (never a Fashion-MNIST one).

    ``bare`` says whether the standard names count in that folder.
    """
    check_choice("name", name, tuple(IDX_SOURCES))
    places = []
    for root in _idx_roots(data_dir):
        own = _folder_set(root)
        if own == name:
            places.append((root, True))
            continue
        if own is not None:  # a folder named after the other set
            continue
        subs = []
        with contextlib.suppress(OSError):
            subs = sorted(p for p in root.iterdir() if p.is_dir() and _folder_set(p) == name)
        places += [(p, True) for p in subs or [root / name]]
        places.append((root, name == "mnist"))
    return places


def _idx_names(stem, name, bare):
    """File names that may hold ``stem`` (e.g. ``t10k-images-idx3-ubyte``), gzip first: with the
    set's ``name`` as a prefix (none when ``name`` is None), then the standard name when ``bare``; each
    also in the dotted spelling some mirrors use (``t10k-images.idx3-ubyte``)."""
    dotted = stem.replace("-idx", ".idx")
    names = [f"{name}-{s}{gz}" for s in (stem, dotted) for gz in (".gz", "")] if name else []
    if bare:
        names += [f"{s}{gz}" for s in (stem, dotted) for gz in (".gz", "")]
    return names


def _present(folder, names):
    for n in names:
        if os.path.lexists(folder / n):
            return folder / n
    return None


def _listing(folder, limit=12):
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return None
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (", ".join(names[:limit]) or "nothing") + more


def _splits_in(folder, name, bare):
    """Split prefixes of complete image/label pairs that ``name`` may read from ``folder``."""
    try:
        entries = [p.name for p in folder.iterdir()]
    except OSError:
        return set()
    found = {}
    for entry in entries:
        m = _IDX_NAME.match(entry)
        if not m:
            continue
        prefix = m["prefix"]
        if prefix.startswith(name + "-"):
            prefix = prefix[len(name) + 1:]
        elif not bare or any(prefix.startswith(s + "-") for s in IDX_SOURCES):
            continue
        found.setdefault(prefix, set()).add(m["kind"])
    return {p for p, kinds in found.items() if kinds == {"images", "labels"}}


def _find_pair(name, prefix, split, data_dir, download_missing):
    """The (images, labels) paths of ``prefix`` for ``name``, following :func:`idx_locations`."""
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    places = idx_locations(name, data_dir)
    for folder, bare in places:
        images = _present(folder, _idx_names(stems[0], name, bare))
        labels = _present(folder, _idx_names(stems[1], name, bare))
        if images and labels:
            return images, labels
        if images or labels:
            have, missing = (images, stems[1]) if images else (labels, stems[0])
            if download_missing and folder == cache_dir() / name and missing in IDX_SOURCES[name]["files"]:
                fetched = _download_idx(name, missing + ".gz")
                return (images, fetched) if images else (fetched, labels)
            raise DataNotFoundError(f"{IDX_TITLES[name]}: {have} is there but {missing}[.gz] is not "
                                    f"next to it in {folder}; images and labels are read from one folder")
    if download_missing and all(s in IDX_SOURCES[name]["files"] for s in stems):
        return tuple(_download_idx(name, s + ".gz") for s in stems)
    # Not found: say why, what is there, and what could be meant.
    title = IDX_TITLES[name]
    for root in _idx_roots(data_dir):
        owner = _folder_set(root) or "mnist"  # whose the standard names are in this folder
        if owner != name and _present(root, _idx_names(stems[0], None, True)):
            why = ("the standard names are MNIST's, and the folder is not named after another set"
                   if _folder_set(root) is None else f"the folder is named after {IDX_TITLES[owner]}")
            home = root / name if _folder_set(root) is None else root.parent / name
            raise DatasetError(
                f"{root} holds {stems[0]}[.gz] under its standard name, which npae reads as "
                f"{IDX_TITLES[owner]} there ({why}), so it is refused as {title}; put {title}'s files "
                f"in a folder named {name} (e.g. {home}/) or name them {name}-{stems[0]}.gz")
    lines, splits = [], set()
    for folder, bare in places:
        listing = _listing(folder)
        lines.append(f"{folder} ({'holds ' + listing if listing is not None else 'no such folder'})")
        splits |= _splits_in(folder, name, bare)
    lines += [f"not {root} (named after {IDX_TITLES[_folder_set(root)]})" for root in _idx_roots(data_dir)
              if _folder_set(root) not in (None, name)]
    splits.discard(prefix)
    hint = ""
    # splits whose name starts with the one asked for (train -> train5k), else any but the official two
    related = (sorted(s for s in splits if s.startswith(prefix))
               or sorted(s for s in splits if s not in _SPLIT_PREFIX.values()))
    if related:
        flag = _split_flag(split, prefix)
        what = "A split" if len(related) == 1 else "Splits"
        hint = (f" {what} {', '.join(related)} {'is' if len(related) == 1 else 'are'} there instead: "
                f"use split={related[0]!r} (CLI: {flag} {related[0]}).")
    raise DataNotFoundError(
        f"{title} file {stems[0]}[.gz] not found. Looked in: {'; '.join(lines)}.{hint} "
        f"Point data_dir= (CLI: --data-dir) or NPAE_DATA at the folder holding the files, or allow a "
        f"download (download=True; CLI: --download).", splits=sorted(splits))


def _official_by_md5():
    return {f.md5: (s, stem) for s, src in IDX_SOURCES.items() for stem, f in src["files"].items()}


def _load_idx(name, split, data_dir, download_missing, max_bytes):
    """``(X, y, info)`` of an IDX set; see :func:`load_idx_dataset`."""
    check_choice("name", name, tuple(IDX_SOURCES))
    if not isinstance(split, str) or not split or "/" in split or os.sep in split:
        raise ValueError(f"split must be 'train', 'test' or a file prefix, got {split!r}")
    prefix = _SPLIT_PREFIX.get(split, split)
    if any(prefix.startswith(s + "-") for s in IDX_SOURCES):
        raise ValueError(f"split {split!r} starts with a data set's name; give the prefix alone")
    title, files = IDX_TITLES[name], IDX_SOURCES[name]["files"]
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    official = stems[0] in files
    img_path, lab_path = _find_pair(name, prefix, split, data_dir, download_missing)
    with _idx_stream(img_path) as (s_img, n_img), _idx_stream(lab_path) as (s_lab, n_lab):
        img_dtype, img_shape, img_head = _read_idx_header(s_img, img_path)
        lab_dtype, lab_shape, lab_head = _read_idx_header(s_lab, lab_path)
        # Everything the headers can tell, before either body is read.
        if img_head[2] != 0x08 or len(img_shape) != 3 or img_shape[1:] != (28, 28):
            raise DatasetError(f"{img_path}: {title} images are unsigned bytes of shape (n, 28, 28); "
                               f"the header says {img_dtype.name} of shape {img_shape}")
        if lab_head[2] != 0x08 or len(lab_shape) != 1:
            raise DatasetError(f"{lab_path}: {title} labels are unsigned bytes of shape (n,); the "
                               f"header says {lab_dtype.name} of shape {lab_shape}")
        n = img_shape[0]
        if n == 0:
            raise DatasetError(f"{img_path}: the header says 0 images")
        if lab_shape[0] != n:
            raise DatasetError(f"{img_path} holds {n} images but {lab_path} holds {lab_shape[0]} labels")
        if official and n != files[stems[0]].count:
            raise DatasetError(
                f"{img_path}: the header says {n} images, the official {title} {prefix} file has "
                f"{files[stems[0]].count}; a subset must not carry the official name: rename its "
                f"files (e.g. {prefix}{n}-images-idx3-ubyte.gz) and load them as split='{prefix}{n}' "
                f"(CLI: {_split_flag(split, prefix)} {prefix}{n})")
        _check_size(img_path, "the images as float64", (n, 784), 8, max_bytes)
        images, md5_img = _read_idx_body(s_img, n_img, img_path, img_dtype, img_shape, img_head,
                                         max_bytes, checksum=True)
        labels, md5_lab = _read_idx_body(s_lab, n_lab, lab_path, lab_dtype, lab_shape, lab_head,
                                         max_bytes, checksum=True)
    known = _official_by_md5()
    for path, md5, stem in ((img_path, md5_img, stems[0]), (lab_path, md5_lab, stems[1])):
        if md5 in known and known[md5] != (name, stem):
            other, other_stem = known[md5]
            raise DatasetError(f"{path} is the official {IDX_TITLES[other]} file {other_stem} (by "
                               f"its MD5 {md5}), not {title}'s {stem}; refusing to use it as such")
        if official and md5 != files[stem].md5:
            raise DatasetError(
                f"{path}: MD5 {md5} of the decompressed file differs from the published {title} "
                f"{stem} ({files[stem].md5}); it is a modified copy: delete it and download it again, "
                f"or, if it is meant to differ, give both files a prefix of your own (e.g. "
                f"{prefix}-mine-images-idx3-ubyte.gz) and load split='{prefix}-mine'")
    verified = md5_img in known and md5_lab in known
    top = int(labels.max())
    if top > 9:
        bad = int(np.argmax(labels > 9))
        raise DatasetError(f"{lab_path}: label {top} is out of range: {title} has classes 0..9 "
                           f"(first bad label at index {bad})")
    X = images.reshape(n, 784).astype(np.float64)  # (n, 784)
    X /= 255.0
    provenance = (f"{title} {split}: the official files (decompressed MD5 verified)" if verified else
                  f"{title} {split}: not an official file ({n} images); checked by header, shape "
                  "and label range only")
    info = {"image_shape": (28, 28), "unit_interval": True,
            "classes": FASHION_CLASSES if name == "fashion-mnist" else None,
            "source": name, "files": (str(img_path), str(lab_path)), "verified": verified,
            "provenance": provenance}
    return X, labels.astype(np.int64), info


def load_idx_dataset(name, split="train", *, data_dir=None, download_missing=False, max_bytes=MAX_BYTES):
    """Load ``(X, y)`` of an IDX data set (``"mnist"`` or ``"fashion-mnist"``).

    Parameters
    ----------
    name : "mnist" | "fashion-mnist"
    split : str
        ``"train"`` or ``"test"`` (files ``train-*`` / ``t10k-*``, which must be the official files:
        60,000 / 10,000 images, published MD5); any other string is a file prefix, e.g. ``"train5k"``
        reads ``train5k-images-idx3-ubyte.gz`` (a subset: header, shape and label checks only).
    data_dir : path, optional
        Where to look (see :func:`idx_locations` for the folder and file-name rule); default
        ``$NPAE_DATA``, then the cache.
    download_missing : bool
        Download the official files into the cache when not found (needs the network).
    max_bytes : int
        Refuse files whose images would take more than this as float64 (:data:`MAX_BYTES`).

    Returns
    -------
    X : (n, 784) float64 in [0, 1] (pixel / 255); y : (n,) int64 in 0..9.
    """
    X, y, _ = _load_idx(name, split, data_dir, download_missing, max_bytes)
    return X, y


def load_mnist(split="train", *, data_dir=None, download=False, max_bytes=MAX_BYTES):
    """MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0): ``(X (n, 784) in [0, 1], y (n,))``.
    See :func:`load_idx_dataset` for the splits and :func:`idx_locations` for where files are read."""
    return load_idx_dataset("mnist", split, data_dir=data_dir, download_missing=download,
                            max_bytes=max_bytes)


def load_fashion_mnist(split="train", *, data_dir=None, download=False, max_bytes=MAX_BYTES):
    """Fashion-MNIST (Zalando Research; MIT): ``(X (n, 784) in [0, 1], y (n,))``; class names in
    ``FASHION_CLASSES``. Read only from a folder or file names that say Fashion-MNIST
    (:func:`idx_locations`)."""
    return load_idx_dataset("fashion-mnist", split, data_dir=data_dir, download_missing=download,
                            max_bytes=max_bytes)


# ---------------------------------------------------------------------------------------- download
def file_checksum(path, algorithm="md5"):
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with _open_regular(path) as (fh, _):
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url, dest, *, md5=None, sha256=None, timeout=60, progress=None, max_bytes=MAX_BYTES):
    """Fetch ``url`` into ``dest`` and keep it only if its checksum matches.

    The bytes go to a temporary file in ``dest``'s folder, are hashed as they arrive, and the file
    is renamed into place (``os.replace``) only when the checksum matches, so an interrupted or
    tampered download never leaves a file that looks finished. At most ``max_bytes`` are accepted.
    ``progress``: a tqdm bar on stderr; default only when stderr is a terminal. Any URL scheme
    ``urllib`` knows works (``file://`` is how the tests exercise this offline).
    """
    if md5 is None and sha256 is None:
        raise ValueError("download needs an md5= or sha256= checksum to verify against")
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashes = {a: hashlib.new(a) for a, want in (("md5", md5), ("sha256", sha256)) if want is not None}
    show = sys.stderr.isatty() if progress is None else bool(progress)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if total is not None and total > max_bytes:
                raise DatasetError(f"{url} is {_fmt_bytes(total)}, over the limit of "
                                   f"{_fmt_bytes(max_bytes)}; not downloaded")
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not show,
                      leave=False) as bar:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    got += len(block)
                    if got > max_bytes:
                        raise DatasetError(f"{url} sent more than {_fmt_bytes(max_bytes)}; not kept")
                    for h in hashes.values():
                        h.update(block)
                    out.write(block)
                    bar.update(len(block))
        for algorithm, want in (("md5", md5), ("sha256", sha256)):
            if want is not None and hashes[algorithm].hexdigest() != want.lower():
                raise DatasetError(f"checksum mismatch for {url}: {algorithm} "
                                   f"{hashes[algorithm].hexdigest()}, expected {want}; the file was not kept")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def _download_idx(name, filename):
    """Fetch an official file into ``<cache>/<name>/``, trying each mirror; returns its path."""
    source = IDX_SOURCES[name]
    stem = filename[:-3]
    dest = cache_dir() / name / filename
    errors = []
    for base in source["urls"]:
        try:
            return download(base + filename, dest, md5=source["files"][stem].md5_gz)
        except (OSError, DatasetError) as exc:  # URLError is an OSError
            errors.append(f"{base}: {exc}")
    raise DatasetError(f"could not download {filename} ({'; '.join(errors)})")


# ---------------------------------------------------------------------------------------- your data
#: Suffixes :func:`load_path` reads; a folder is read as PNG images.
PATH_FORMATS = (".npy", ".npz", ".csv")
_NPZ_FEATURES, _NPZ_LABELS = ("X", "images"), ("y", "labels")
_OTHER_IMAGES = (".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _labels(values, where):
    """``(y, classes)``: integer class labels 0..MAX_CLASSES-1 from numbers (``classes`` None) or from
    names (strings; ``classes`` the sorted names, ``y`` their positions)."""
    a = np.asarray(values)
    if a.dtype.kind in "US":
        classes, y = np.unique(a, return_inverse=True)
        if len(classes) > MAX_CLASSES:
            raise DatasetError(f"{where}: {len(classes)} distinct class names, more than "
                               f"MAX_CLASSES = {MAX_CLASSES}")
        return y.astype(np.int64), tuple(str(c) for c in classes)
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise DatasetError(f"{where}: labels must be whole class numbers; found non-integer values")
    elif a.dtype.kind not in "iu":
        raise DatasetError(f"{where}: labels must be class numbers or names, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= MAX_CLASSES):
        raise DatasetError(f"{where}: labels must be class numbers 0..{MAX_CLASSES - 1} "
                           f"(MAX_CLASSES), got values in [{a.min():.0f}, {a.max():.0f}]")
    return a.astype(np.int64), None


def _features(a, where):
    """Check an array of features read from a file (its size was bounded from its header): real
    numbers, finite, 2-D or images. Returns ``(X (n, d) float64, image_shape or None)``."""
    if a.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: features must be real numbers, got dtype {a.dtype}")
    if a.ndim == 2:
        shape = None
    elif a.ndim == 3:
        shape = a.shape[1:]  # (n, H, W) greyscale images
    elif a.ndim == 4 and a.shape[3] in (1, 3):
        shape = a.shape[1:3] if a.shape[3] == 1 else a.shape[1:]  # (n, H, W, C)
    else:
        raise DatasetError(f"{where}: features must be (n, d), (n, H, W) or (n, H, W, 1|3), got shape "
                           f"{a.shape}" + ("; reshape a single feature to (n, 1)" if a.ndim == 1 else ""))
    if a.shape[0] == 0 or a.size == 0:
        raise DatasetError(f"{where}: no data (shape {a.shape})")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise DatasetError(f"{where}: {int((~np.isfinite(a)).sum())} NaN or inf value(s), first at "
                           f"index {first}")
    X = a.reshape(a.shape[0], -1).astype(np.float64)
    return X, (tuple(int(s) for s in shape) if shape is not None else None)


def _npy_header(fh, where, max_bytes):
    """``(shape, fortran_order, dtype)`` from the header of a .npy stream, after the refusals that
    need no data: object (pickled) or structured arrays, and sizes over ``max_bytes``."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # the header parser raises ValueError, SyntaxError, TokenError, ...
        raise DatasetError(f"{where} is not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise DatasetError(f"{where} holds an object array, which only pickle can read; npae never "
                           "unpickles data (allow_pickle=False): save plain numbers")
    if dtype.names is not None or dtype.subdtype is not None:
        raise DatasetError(f"{where} holds a structured array ({dtype}); save plain numbers")
    _check_size(where, "the array as float64", shape, max(dtype.itemsize, 8), max_bytes)
    return shape, fortran, dtype


def _read_npy(fh, where, max_bytes, size):
    """The array of a .npy stream of ``size`` bytes, never allocating more than its header declares
    (which :func:`_npy_header` bounded) and never pickling."""
    shape, fortran, dtype = _npy_header(fh, where, max_bytes)
    expected = fh.tell() + math.prod(shape) * dtype.itemsize
    if size != expected:
        raise DatasetError(f"{where} is {'truncated' if size < expected else 'corrupt'}: its header "
                           f"says shape {shape} of {dtype} ({expected} bytes) but it holds {size} bytes")
    nbytes = expected - fh.tell()
    data = _read_upto(fh, nbytes, where)
    if len(data) < nbytes:
        raise DatasetError(f"{where} is truncated: {len(data)} of {nbytes} data bytes")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


def _load_npy(path, max_bytes):
    with _open_regular(path) as (fh, size):
        if size == 0:
            raise DatasetError(f"{path} is empty")
        return _read_npy(fh, str(path), max_bytes, size)


def _load_npz(path, label, max_bytes):
    """Features from key ``X`` (else ``images``, else the only array), labels from ``label`` (else
    ``y``, else ``labels``, else none)."""
    with _open_regular(path) as (fh, size):
        if size == 0:
            raise DatasetError(f"{path} is empty")
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise DatasetError(f"{path} is not a readable .npz archive ({exc})") from None
        with zf:
            members = {m.filename[:-4]: m for m in zf.infolist() if m.filename.endswith(".npy")}
            keys = sorted(members)
            if label is not None and label not in members:
                raise DatasetError(f"{path} has no array {label!r} (label=); it holds {keys}")
            y_key = label if label is not None else next((k for k in _NPZ_LABELS if k in members), None)
            x_key = next((k for k in _NPZ_FEATURES if k in members), None)
            rest = [k for k in keys if k != y_key]
            if x_key is None and len(rest) == 1:
                x_key = rest[0]
            if x_key is None:
                raise DatasetError(f"{path}: no features found; npae reads the array 'X' (else 'images', "
                                   f"else the only array besides the labels), and the archive holds {keys}")

            def read(key):
                where = f"{path}[{key!r}]"
                try:
                    with zf.open(members[key]) as member:
                        return _read_npy(member, where, max_bytes, members[key].file_size)
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error, EOFError,
                        OSError, ValueError) as exc:
                    raise DatasetError(f"{where} cannot be read ({exc})") from None

            arrays = {k: read(k) for k in (x_key, y_key) if k is not None}
    return arrays[x_key], (arrays[y_key] if y_key is not None else None), x_key, y_key


def _csv_line_error(path, header_names, label_col, skip):
    """Find the first line that is ragged or holds a non-number, for a message naming it."""
    with _open_regular(path) as (fh, _):
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        width = None
        rows = enumerate(csv.reader(text), start=1)
        while True:
            try:
                lineno, row = next(rows)
            except StopIteration:
                break
            except UnicodeDecodeError as exc:
                return f"not UTF-8 text ({exc})"
            except csv.Error as exc:
                return f"not CSV text ({exc})"
            if lineno <= skip or not row:
                continue
            if width is None:
                width, first = len(row), lineno
            if len(row) != width:
                return f"line {lineno} has {len(row)} fields, line {first} has {width} (ragged rows)"
            for col, field in enumerate(row):
                if col == label_col:
                    continue
                try:
                    float(field)
                except ValueError:
                    name = f" ({header_names[col]!r})" if header_names and col < len(header_names) else ""
                    return f"line {lineno}, column {col + 1}{name}: {field!r} is not a number"
    return None


def _load_csv(path, label, header, max_bytes):
    """A numeric CSV (comma-separated, UTF-8): optional header row, optional label column."""
    with _open_regular(path) as (fh, size):
        if size == 0:
            raise DatasetError(f"{path} is empty")
        if 4 * size > max_bytes:  # each value takes >= 2 characters ("0,") and becomes 8 bytes
            raise DatasetError(f"{path}: {_fmt_bytes(size)} of text may parse to {_fmt_bytes(4 * size)} "
                               f"of float64, over the limit of {_fmt_bytes(max_bytes)} (max_bytes=)")
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        try:
            first = next(csv.reader([text.readline()]), [])
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} is not UTF-8 text ({exc})") from None
        except csv.Error as exc:
            raise DatasetError(f"{path} is not CSV text ({exc})") from None
    first = [f.strip() for f in first]
    if not first:
        raise DatasetError(f"{path}: the first line is empty")
    if isinstance(label, str):
        if header is False:
            raise ValueError(f"label={label!r} names a column, which needs a header row (header=True)")
        header = True
    if header is None:  # a header is a first line with a field that is not a number
        def number(s):
            try:
                float(s)
                return True
            except ValueError:
                return False
        header = not all(number(f) for k, f in enumerate(first) if k != label)
    names = first if header else None
    label_col = None
    if isinstance(label, str):
        if label not in first:
            raise DatasetError(f"{path}: no column named {label!r} (label=); the header row is {first}")
        label_col = first.index(label)
    elif label is not None:
        check_scalar("label", label, low=0, integer=True)
        if label >= len(first):
            raise DatasetError(f"{path}: label column {label} does not exist; the file has "
                               f"{len(first)} columns")
        label_col = int(label)
    codes = {}
    converters = None
    if label_col is not None:  # label values -> codes in order of appearance, decoded below
        converters = {label_col: lambda s: codes.setdefault(s.strip(), len(codes))}
    with _open_regular(path) as (fh, _):
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
        try:
            with warnings.catch_warnings():  # "input contained no data": reported below
                warnings.simplefilter("ignore", UserWarning)
                table = np.loadtxt(text, delimiter=",", quotechar='"', comments=None,
                                   skiprows=int(header), converters=converters, ndmin=2, dtype=np.float64)
        except (ValueError, UnicodeDecodeError) as exc:
            where = _csv_line_error(path, names, label_col, int(header))
            raise DatasetError(f"{path}: {where or exc}") from None
    if table.shape[0] == 0:
        raise DatasetError(f"{path} holds no data rows" + (" (only a header)" if header else ""))
    y = classes = None
    if label_col is not None:
        keys = list(codes)
        try:
            numbers = [float(k) for k in keys]
        except ValueError:
            numbers = None
        code = table[:, label_col].astype(np.int64)
        if numbers is not None:
            y, classes = _labels(np.asarray(numbers)[code], f"{path}, label column")
        else:
            y, classes = _labels(np.asarray(keys)[code], f"{path}, label column")
        table = np.delete(table, label_col, axis=1)
        if table.shape[1] == 0:
            raise DatasetError(f"{path}: no feature columns besides the label column")
    bad = ~np.isfinite(table)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(f"{path}: {int(bad.sum())} NaN or inf value(s), first on line "
                           f"{row + 1 + int(header)}")
    return table, y, classes


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_header(path):
    """``(width, height, bit depth, colour type)`` from a PNG's IHDR chunk (33 bytes, no decoding)."""
    with _open_regular(path) as (fh, _):
        head = fh.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DatasetError(f"{path} is not a PNG file (no PNG signature and IHDR header)")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    depth, colour = head[24], head[25]
    if width == 0 or height == 0 or colour not in (0, 2, 3, 4, 6):
        raise DatasetError(f"{path}: PNG header is invalid (size {width}x{height}, colour type {colour})")
    return width, height, depth, colour


def _png_mode(colour):
    return "greyscale" if colour in (0, 4) else "RGB"


def _image_files(folder):
    """``(files, labels, classes)`` of a PNG folder: PNGs at the top (no labels) or one level of
    class sub-folders (labels from their sorted names). Hidden entries are skipped."""
    def pngs(d):
        out = []
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            if e.name.startswith(".") or e.is_dir():
                continue
            suffix = os.path.splitext(e.name)[1].lower()
            if suffix in _OTHER_IMAGES:
                raise DatasetError(f"{Path(d) / e.name}: only PNG images are read; convert it to PNG "
                                   "or move it out of the folder")
            if suffix == ".png":
                out.append(Path(d) / e.name)
        return out

    top = pngs(folder)
    subs = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    by_class = {s: pngs(folder / s) for s in subs}
    by_class = {s: f for s, f in by_class.items() if f}
    if top and by_class:
        raise DatasetError(f"{folder} mixes PNG images at the top ({top[0].name}, ...) with class "
                           f"sub-folders ({', '.join(by_class)}); put every image in a class folder, "
                           "or none")
    if top:
        return top, None, None
    if by_class:
        classes = tuple(by_class)
        if len(classes) > MAX_CLASSES:
            raise DatasetError(f"{folder}: {len(classes)} class folders, more than "
                               f"MAX_CLASSES = {MAX_CLASSES}")
        files = [f for s in classes for f in by_class[s]]
        labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(by_class[s]) for s in classes])
        return files, labels, classes
    listing = _listing(folder)
    hint = ""
    if any(_IDX_NAME.match(p.name) for p in folder.iterdir()):
        hint = "; it holds IDX files: load them with --data mnist --data-dir <folder> (or fashion-mnist)"
    raise DatasetError(f"{folder}: no PNG images, at the top or in class sub-folders (found: "
                       f"{listing}){hint}")


def _load_png_folder(folder, max_bytes):
    """Images in [0, 1] (each pixel / its bit depth's maximum, exactly as IDX pixels / 255)."""
    from matplotlib.image import imread

    files, y, classes = _image_files(folder)
    headers = [_png_header(p) for p in files]
    w0, h0, _, c0 = headers[0]
    for path, (w, h, _, c) in zip(files, headers):
        if (w, h, _png_mode(c)) != (w0, h0, _png_mode(c0)):
            raise DatasetError(f"{path} is {w}x{h} {_png_mode(c)}, but {files[0]} is {w0}x{h0} "
                               f"{_png_mode(c0)}; all images must share size and mode")
    channels = 1 if _png_mode(c0) == "greyscale" else 3
    _check_size(folder, f"{len(files)} images as float64", (len(files), h0, w0, channels), 8, max_bytes)
    X = np.empty((len(files), h0 * w0 * channels))  # (n, H*W*C)
    for i, (path, (w, h, depth, colour)) in enumerate(zip(files, headers)):
        try:
            with _open_regular(path) as (fh, _):
                a = imread(fh, format="png")
        except DatasetError:
            raise
        except Exception as exc:  # Pillow raises many kinds for a damaged file
            raise DatasetError(f"{path} is not a readable PNG image ({type(exc).__name__}: {exc})") from None
        # matplotlib returns levels / (2**depth - 1) in float32 for greyscale, / 255 otherwise;
        # round back to the integer levels and divide in float64.
        levels = (1 << depth) - 1 if colour == 0 else 255
        a = np.rint(np.asarray(a, np.float64) * levels) / levels
        if a.ndim == 3 and a.shape[2] == 4:  # palette and alpha images come back as RGBA
            if (a[..., 3] < 1.0).any():
                raise DatasetError(f"{path} has transparent pixels; npae reads opaque greyscale or RGB")
            a = a[..., 0] if colour == 4 else a[..., :3]
        want = (h0, w0) if channels == 1 else (h0, w0, 3)
        if a.shape != want:
            raise DatasetError(f"{path}: decoded to shape {a.shape}, expected {want}")
        X[i] = a.reshape(-1)
    shape = (h0, w0) if channels == 1 else (h0, w0, 3)
    return X, y, classes, shape, [str(p) for p in files]


def load_path(path, *, label=None, header=None, scale="auto", image_shape=None, max_bytes=MAX_BYTES):
    """``(X, y, info)`` from your own data: a ``.npy``, ``.npz`` or ``.csv`` file, or a folder of PNGs.

    * ``.npy``: one array, the features: (n, d), (n, H, W) greyscale or (n, H, W, 1|3) images. No labels.
    * ``.npz``: features in ``X`` (else ``images``, else the only array), labels in ``y`` (else
      ``labels``; or the key given as ``label=``), optional.
    * ``.csv``: comma-separated numbers, one example per line; ``header`` True / False / None (None:
      the first line is a header when one of its fields is not a number); ``label`` names the label
      column (a header name, or a 0-based column index), whose values may be numbers or class names.
    * a folder: PNG images, greyscale or RGB, all of one size and mode; directly in the folder (no
      labels) or in class sub-folders (labels 0..k-1 from the sorted folder names).

    Object (pickled) arrays, NaN or inf, ragged rows, empty files and anything larger than
    ``max_bytes`` as float64 raise :class:`DatasetError` naming the file.

    Parameters
    ----------
    scale : "auto" or float
        X is divided by it. ``"auto"``: PNG pixels and ``uint8`` arrays are put in [0, 1] (pixel / 255,
        or / 65535 for 16-bit PNGs); other numbers are kept as they are.
    image_shape : tuple, optional
        ``(H, W)`` or ``(H, W, 3)`` of flat rows (e.g. a CSV of 784 pixels), for image figures.

    Returns
    -------
    X : (n, d) float64
    y : (n,) int64 class numbers in 0..MAX_CLASSES-1, or None when the data carry no labels
    info : dict
        As :func:`load_dataset`: ``image_shape`` ((H, W), (H, W, 3) or None), ``unit_interval``
        (every value of X lies in [0, 1], so X can be the target of a Bernoulli / BCE decoder; it is
        measured on the scaled data, not assumed), ``classes`` (class names or None), ``source``,
        ``files``, ``verified`` (False: no published checksum), ``provenance``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file or folder path, got {type(path).__name__}")
    path = Path(path).expanduser()
    if not (scale == "auto" or (not isinstance(scale, (bool, str)) and isinstance(scale, (int, float))
                                and np.isfinite(scale) and scale > 0)):
        raise ValueError(f"scale must be 'auto' or a positive number, got {scale!r}")
    if not os.path.lexists(path):
        raise FileNotFoundError(f"data file not found: {path}")
    classes, files, shape = None, [str(path)], None
    if path.is_dir():
        if label is not None or header is not None:
            raise ValueError("label= and header= apply to .csv and .npz files, not to a folder of images")
        X, y, classes, shape, files = _load_png_folder(path, max_bytes)
        fmt = "PNG folder"
        auto = 1.0  # already in [0, 1]
    else:
        suffix = path.suffix.lower()
        if suffix not in PATH_FORMATS:
            hint = ""
            if _IDX_NAME.match(path.name):
                hint = "; for IDX files use load_mnist / --data mnist --data-dir <their folder>"
            elif suffix == ".png":
                hint = "; give the folder that holds the images"
            raise DatasetError(f"{path}: npae reads {', '.join(PATH_FORMATS)} files and folders of "
                               f"PNG images, not {suffix or 'files without a suffix'}{hint}")
        if suffix != ".csv" and header is not None:
            raise ValueError("header= applies to .csv files only")
        if suffix == ".npy" and label is not None:
            raise ValueError("label= applies to .csv and .npz files; a .npy file holds features only")
        if suffix == ".csv":
            X, y, classes = _load_csv(path, label, header, max_bytes)
            fmt, auto = "CSV", 1.0
        else:
            if suffix == ".npy":
                a, y_raw, where = _load_npy(path, max_bytes), None, str(path)
            else:
                a, y_raw, x_key, y_key = _load_npz(path, label, max_bytes)
                where = f"{path}[{x_key!r}]"
            auto = 255.0 if a.dtype == np.uint8 else 1.0
            X, shape = _features(a, where)
            y = None
            if y_raw is not None:
                where_y = f"{path}[{y_key!r}]"
                if y_raw.ndim != 1 or y_raw.shape[0] != X.shape[0]:
                    raise DatasetError(f"{where_y}: labels must be of shape ({X.shape[0]},), one per "
                                       f"example, got {y_raw.shape}")
                y, classes = _labels(y_raw, where_y)
            fmt = suffix[1:]
    X /= auto if scale == "auto" else float(scale)
    if image_shape is not None:
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) not in (2, 3) or (len(image_shape) == 3 and image_shape[2] != 3) or \
                math.prod(image_shape) != X.shape[1]:
            raise ValueError(f"image_shape {image_shape} does not fit {X.shape[1]} features "
                             "((H, W) or (H, W, 3) with H*W*C features)")
        if shape is not None and image_shape != shape:
            raise ValueError(f"image_shape {image_shape} differs from the images' own shape {shape}")
        shape = image_shape
    info = {"image_shape": shape, "unit_interval": bool(X.min() >= 0.0 and X.max() <= 1.0),
            "classes": classes, "source": str(path), "files": tuple(files), "verified": False,
            "provenance": f"your data: {path} ({fmt}, {X.shape[0]} examples of {X.shape[1]} features"
                          f"{', labelled' if y is not None else ', no labels'})"}
    return X, y, info


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
