"""Your own data, :func:`load_path`: a ``.npy``, ``.npz`` or ``.csv`` file or a folder of PNG or JPEG
images (flat, or one sub-folder per class; :mod:`npae.data.images`). Each parser reads under the
bounds of :mod:`npae.data.bounded`: ``.npy`` headers are parsed by numpy's bounded reader (never
unpickled) and sized before any data, CSV text is sized before it is parsed, image headers are read
(by Pillow) before any image is decoded; a bad file
raises :class:`~npae.data.bounded.DatasetError` naming the file and the line, key or image.
Public through :mod:`npae.datasets`; guide: docs/datasets.md.
"""
import csv
import io
import math
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from npae.data.bounded import (MAX_BYTES, MAX_CLASSES, DatasetError, _check_size, _fmt_bytes,
                               _open_regular, _read_upto)
from npae.data.idx import _IDX_NAME
from npae.data.images import IMAGE_SUFFIXES, load_image_folder
from npae.validation import InputError, check_scalar

#: Suffixes :func:`load_path` reads; a folder is read as PNG or JPEG images.
PATH_FORMATS = (".npy", ".npz", ".csv")
_NPZ_FEATURES, _NPZ_LABELS = ("X", "images"), ("y", "labels")
#: The longest .npy header read (numpy's own default for ``max_header_size``): a longer one is
#: refused by numpy's reader before it is parsed.
NPY_MAX_HEADER = 10000


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
    """``(shape, fortran_order, dtype)`` from the header of a .npy stream, read by numpy's own bounded
    reader (``numpy.lib.format``: the magic, then a header of at most ``NPY_MAX_HEADER`` bytes parsed
    as a literal, never unpickled), after the refusals that need no data: object (pickled) or
    structured arrays, and sizes over ``max_bytes``. Version 3.0 (UTF-8 field names, for structured
    arrays only) is refused."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=NPY_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=NPY_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:  # the header parser raises ValueError, SyntaxError, TokenError, ...
        reason = " ".join(str(exc).split())  # numpy's messages span lines; npae's errors are one line
        raise DatasetError(f"{where} is not a readable .npy array ({type(exc).__name__}: {reason})") from None
    if dtype.hasobject:
        raise DatasetError(f"{where} holds an object array, which only pickle can read; npae never "
                           "unpickles data (allow_pickle=False): save plain numbers")
    if dtype.names is not None or dtype.subdtype is not None:
        raise DatasetError(f"{where} holds a structured array ({dtype}); save plain numbers")
    # the peak of loading it: the bytes read (itemsize each) and their float64 copy (8 each); for a
    # member of an .npz this is judged from its few header bytes, before the rest is decompressed
    _check_size(where, "the array read and its float64 copy", shape, dtype.itemsize + 8, max_bytes)
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


#: Header names (compared lower-case) of a CSV column that holds labels, not features: such a
#: column is refused as a feature unless ``label=False`` says there is no label column.
LABEL_LIKE_NAMES = ("label", "labels", "class", "target", "y")

#: Longest line of a CSV file, in bytes: 1 MiB holds a row of some 100,000 numbers. A longer line is
#: refused before parsing: the parser holds a whole line and a Python string per field (a 60 MB line
#: took 1.3 GB).
CSV_LINE_MAX_BYTES = 1 << 20


def _longest_line(fh, limit):
    """``(line number, length)`` of the first line of the binary stream ``fh`` longer than ``limit``
    bytes, or None; reads 1 MiB at a time, so memory stays bounded whatever the file holds."""
    run, lineno = 0, 1
    while True:
        block = fh.read(1 << 20)
        if not block:
            return None
        start = 0
        while True:
            nl = block.find(b"\n", start)
            run += (nl if nl >= 0 else len(block)) - start
            if run > limit:
                return lineno, run
            if nl < 0:
                break
            run, lineno, start = 0, lineno + 1, nl + 1


def _load_csv(path, label, header, max_bytes):
    """A numeric CSV (comma-separated, UTF-8): optional header row, optional label column."""
    with _open_regular(path) as (fh, size):
        if size == 0:
            raise DatasetError(f"{path} is empty")
        if 4 * size > max_bytes:  # each value takes >= 2 characters ("0,") and becomes 8 bytes
            raise DatasetError(f"{path}: {_fmt_bytes(size)} of text may parse to {_fmt_bytes(4 * size)} "
                               f"of float64, over the limit of {_fmt_bytes(max_bytes)} (max_bytes=)")
        limit = min(CSV_LINE_MAX_BYTES, max_bytes)
        long = _longest_line(fh, limit)
        if long is not None:
            raise DatasetError(f"{path}: line {long[0]} is longer than {_fmt_bytes(limit)} "
                               f"(npae.data.userfiles.CSV_LINE_MAX_BYTES); a CSV holds one example per line")
        fh.seek(0)
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
    keep_all = label is False  # no label column: every column is a feature
    label = None if keep_all else label
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
    label_like = [n for n in (names or ()) if n.lower() in LABEL_LIKE_NAMES]
    if label is None and label_like and not keep_all:
        raise DatasetError(f"{path}: column {label_like[0]!r} is named like a label, and a label is never "
                           f"used as a feature unasked: give label={label_like[0]!r} (npae train: --label "
                           f"{label_like[0]}) to read it as the labels, or label=False (--no-label) to keep "
                           f"it as a feature")
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


def load_path(path, *, label=None, header=None, scale="auto", image_shape=None, max_bytes=MAX_BYTES):
    """``(X, y, info)`` from your own data: a ``.npy``, ``.npz`` or ``.csv`` file, or a folder of images.

    * ``.npy``: one array, the features: (n, d), (n, H, W) greyscale or (n, H, W, 1|3) images. No labels.
    * ``.npz``: features in ``X`` (else ``images``, else the only array), labels in ``y`` (else
      ``labels``; or the key given as ``label=``), optional.
    * ``.csv``: comma-separated numbers, one example per line; ``header`` True / False / None (None:
      the first line is a header when one of its fields is not a number); ``label`` names the label
      column (a header name, or a 0-based column index), whose values may be numbers or class names.
      A column whose header is named like a label (``label``, ``class``, ``target``, ``y``, any case)
      is refused as a feature unless ``label`` names it or ``label=False`` says there is no label.
    * a folder: PNG or JPEG images (read by Pillow, :mod:`npae.data.images`), greyscale or RGB, all
      of one size and mode; directly in the folder (no labels) or in class sub-folders (labels
      0..k-1 from the sorted folder names).

    Object (pickled) arrays, NaN or inf, ragged rows, empty files and anything larger than
    ``max_bytes`` as float64 raise :class:`DatasetError` naming the file.

    Parameters
    ----------
    scale : "auto" or float
        X is divided by it. ``"auto"``: image pixels and ``uint8`` arrays are put in [0, 1] (pixel / 255,
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
        if label not in (None, False) or header is not None:
            raise ValueError("label= and header= apply to .csv and .npz files, not to a folder of images")
        X, y, classes, shape, files = load_image_folder(path, max_bytes)
        fmt = "image folder"
        auto = 1.0  # already in [0, 1]
    else:
        suffix = path.suffix.lower()
        if suffix not in PATH_FORMATS:
            hint = ""
            if _IDX_NAME.match(path.name):
                hint = "; for IDX files use load_mnist / --data mnist --data-dir <their folder>"
            elif suffix in IMAGE_SUFFIXES:
                hint = "; give the folder that holds the images"
            raise DatasetError(f"{path}: npae reads {', '.join(PATH_FORMATS)} files and folders of "
                               f"PNG or JPEG images, not {suffix or 'files without a suffix'}{hint}")
        if suffix != ".csv" and header is not None:
            raise ValueError("header= applies to .csv files only")
        if suffix == ".npy" and label not in (None, False):
            raise ValueError("label= applies to .csv and .npz files; a .npy file holds features only")
        if suffix == ".csv":
            X, y, classes = _load_csv(path, label, header, max_bytes)
            fmt, auto = "CSV", 1.0
        else:
            if suffix == ".npy":
                a, y_raw, where = _load_npy(path, max_bytes), None, str(path)
            else:
                a, y_raw, x_key, y_key = _load_npz(path, None if label is False else label, max_bytes)
                y_raw = None if label is False else y_raw
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
            raise InputError(f"image_shape {image_shape} does not fit {X.shape[1]} features "
                             "((H, W) or (H, W, 3) with H*W*C features)")
        if shape is not None and image_shape != shape:
            raise InputError(f"image_shape {image_shape} differs from the images' own shape {shape}")
        shape = image_shape
    info = {"image_shape": shape, "unit_interval": bool(X.min() >= 0.0 and X.max() <= 1.0),
            "classes": classes, "source": str(path), "files": tuple(files), "verified": False,
            "provenance": f"your data: {path} ({fmt}, {X.shape[0]} examples of {X.shape[1]} features"
                          f"{', labelled' if y is not None else ', no labels'})"}
    return X, y, info
