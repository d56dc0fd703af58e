"""MNIST and Fashion-MNIST: the official files (mirrors, item counts, checksums of the ``.gz`` and
of the decompressed file), where a set's files are looked for (:func:`cache_dir`,
:func:`idx_locations`: only in a place that names the set), loading a split with every check a
header allows before any body is read (:func:`load_mnist`, :func:`load_fashion_mnist`,
:func:`load_idx_dataset`), and the checksummed download (:func:`download`), which runs only when
asked for. Public through :mod:`npae.datasets`; guide: docs/datasets.md.
"""
import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from npae.data.bounded import (_CHUNK, MAX_BYTES, DataNotFoundError, DatasetError, _check_size, _fmt_bytes,
                               _listing, _open_regular)
from npae.data.idx import _IDX_NAME, _idx_stream, _read_idx_body, _read_idx_header
from npae.validation import InputError, check_choice


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
        raise InputError(f"split must be 'train', 'test' or a file prefix (a name such as train5k, "
                         f"no folder), got {split!r}")
    prefix = _SPLIT_PREFIX.get(split, split)
    if any(prefix.startswith(s + "-") for s in IDX_SOURCES):
        raise InputError(f"split {split!r} starts with a data set's name; give the prefix alone")
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


def file_checksum(path, algorithm="md5"):
    """Hex digest (``"md5"`` or ``"sha256"``) of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with _open_regular(path) as (fh, _):
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class _Capped:
    """A file that refuses to grow past ``limit`` bytes (pooch's downloaders write chunk by chunk;
    this stops a server sending more than it should before the disk fills)."""

    def __init__(self, fh, limit, url):
        self.fh, self.limit, self.url, self.n = fh, limit, url, 0

    def write(self, block):
        self.n += len(block)
        if self.n > self.limit:
            raise DatasetError(f"{self.url} sent more than {_fmt_bytes(self.limit)}, over the limit of "
                               f"{_fmt_bytes(self.limit)} (max_bytes=); not kept")
        return self.fh.write(block)

    def flush(self):
        self.fh.flush()


class _Bar:
    """A tqdm bar as pooch's downloaders use one (``total`` set, ``update``, ``reset``, ``close``;
    a tqdm bar of unknown total has no truth value, which pooch asks for)."""

    def __init__(self, bar):
        self.bar = bar

    def __bool__(self):
        return True

    @property
    def total(self):
        return self.bar.total

    @total.setter
    def total(self, value):
        self.bar.total = value or None
        self.bar.refresh()

    def update(self, n):
        self.bar.update(n)

    def reset(self):
        self.bar.reset(total=self.bar.total)

    def close(self):
        self.bar.close()


@contextlib.contextmanager
def _quiet(pooch):
    """pooch announces each download at INFO on stderr; npae's own line (or bar) says it instead."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def download(url, dest, *, md5=None, sha256=None, timeout=60, progress=None, max_bytes=MAX_BYTES):
    """Fetch ``url`` into ``dest`` and keep it only if its checksum matches.

    The fetching is pooch's (``pooch.retrieve``, the optional extra ``downloads``: ``pip install
    npae[downloads]``): the bytes go to a temporary file in ``dest``'s folder, pooch checks the hash
    (sha256 when given, else md5; the other one, when both are given, is checked here) and only then
    is the file renamed into place (``os.replace``), so an interrupted or tampered download never
    leaves a file that looks finished. At most ``max_bytes`` are accepted (counted as they arrive).
    ``progress``: a tqdm bar on stderr; default only when stderr is a terminal. URLs: what pooch
    fetches (``https://``, ``http://``, ``ftp://``, ``sftp://``, ``doi:``); a local file needs no
    download (point ``data_dir=`` at its folder).
    """
    if md5 is None and sha256 is None:
        raise ValueError("download needs an md5= or sha256= checksum to verify against")
    try:
        import pooch
    except ImportError:
        raise DatasetError(f"downloading {url} needs pooch, an optional extra: pip install npae[downloads] "
                           "(or download the files yourself and point data_dir= or NPAE_DATA at their "
                           "folder)") from None
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    known = f"sha256:{sha256.lower()}" if sha256 is not None else f"md5:{md5.lower()}"
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    os.close(fd)
    bar = tqdm(total=None, unit="B", unit_scale=True, desc=dest.name, disable=not show, leave=False)
    shown = _Bar(bar) if show else False
    try:
        try:
            if url.split(":", 1)[0].lower() in ("http", "https"):
                fetch = pooch.HTTPDownloader(progressbar=shown, timeout=timeout)
            else:
                fetch = pooch.downloaders.choose_downloader(url, progressbar=shown)
        except ValueError as exc:  # an unknown scheme
            raise DatasetError(f"cannot download {url}: {exc}") from None

        def capped(url_, output_file, pooch_obj):
            with open(output_file, "w+b") as fh:
                fetch(url_, _Capped(fh, max_bytes, url_), pooch_obj)

        with _quiet(pooch):
            try:
                pooch.retrieve(url, known, fname=os.path.basename(tmp), path=dest.parent, downloader=capped,
                               progressbar=False)
            except DatasetError:
                raise
            except ValueError as exc:  # pooch's hash mismatch
                raise DatasetError(f"checksum mismatch for {url}: {' '.join(str(exc).split())}; the file "
                                   f"was not kept") from None
        if md5 is not None and sha256 is not None:
            got = file_checksum(tmp, "md5")
            if got != md5.lower():
                raise DatasetError(f"checksum mismatch for {url}: md5 {got}, expected {md5}; the file was "
                                   f"not kept")
        os.replace(tmp, dest)
    finally:
        bar.close()
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
