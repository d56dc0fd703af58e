"""Folders of PNG and JPEG images, read through Pillow (:func:`load_image_folder`, used by
:func:`npae.data.userfiles.load_path`).

Pillow parses and decodes the files; npae keeps two guards of its own around it:

* every file's header is read first (``Image.open`` reads the header only), and the images are
  sized (as float64, plus what decoding one takes) against ``max_bytes`` before any is decoded;
* Pillow's decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``, 89 million pixels by default) stays
  on: an image over twice the limit is refused by Pillow at ``open`` with its own error, reported
  here as a :class:`~npae.data.bounded.DatasetError` naming the file. npae never switches it off;
  when someone else has (``MAX_IMAGE_PIXELS = None``), npae's byte bound still holds.

Pixels are put in [0, 1] exactly as IDX pixels are (level / maximum level of the file's bit depth:
255 for 8-bit images, 65535 for 16-bit greyscale PNGs, 1 for 1-bit images). Greyscale images give
(H, W) rows, colour images (H, W, 3); transparent pixels and CMYK JPEGs are refused.
"""
import os
import warnings
from pathlib import Path

import numpy as np

from npae.data.bounded import MAX_CLASSES, DatasetError, _check_size, _fmt_bytes, _listing, _open_regular
from npae.data.idx import _IDX_NAME

#: Suffixes read as images, and the format Pillow must find behind each.
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: Other image suffixes: refused with a message (rather than skipped without a word).
_OTHER_IMAGES = (".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: Bytes a pixel of one image may take while it is decoded, an upper bound: Pillow's decoded image
#: (at most 4 bytes a pixel), a converted copy (palette or 1-bit images, 4), NumPy's array of it (4),
#: two float64 copies of up to 4 channels (levels, then divided: 64); 76 counted, 84 kept (the bound
#: of the earlier matplotlib reader). Judged from the headers, before anything is decoded.
_DECODE_BYTES_PER_PIXEL = 84

_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")


def _mode_name(mode):
    return "greyscale" if mode in _GREY_MODES else "RGB"


def _pil():
    from PIL import Image  # matplotlib's own dependency; imported when images are read
    return Image


def image_header(path):
    """``(width, height, Pillow mode, format)`` of an image file, from its header only (nothing
    decoded); a DatasetError for a file Pillow cannot identify, whose format does not match its
    suffix, or that Pillow's bomb guard refuses."""
    Image = _pil()
    want = IMAGE_SUFFIXES[Path(path).suffix.lower()]
    with _open_regular(path) as (fh, _):
        try:
            with warnings.catch_warnings():  # under twice the pixel limit: npae's byte bound decides
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(fh, formats=[want]) as im:
                    width, height, mode = im.size[0], im.size[1], im.mode
        except Image.DecompressionBombError as exc:
            raise DatasetError(f"{path}: Pillow's decompression-bomb guard refuses it ({exc})") from None
        except Exception as exc:  # UnidentifiedImageError, SyntaxError, struct.error, OSError, ...
            raise DatasetError(f"{path} is not a {want} file ({type(exc).__name__}: {exc})") from None
    if width <= 0 or height <= 0:
        raise DatasetError(f"{path}: {want} header is invalid (size {width}x{height})")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        raise DatasetError(f"{path} is a {mode} {want}; npae reads greyscale or RGB images (save it as RGB)")
    return width, height, mode, want


def _decode(path, mode, fmt):
    """The pixels of one image in [0, 1], (H, W) or (H, W, 3), float64."""
    Image = _pil()
    with _open_regular(path) as (fh, _):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(fh, formats=[fmt]) as im:
                    im.load()  # decodes here, errors in the pixel data surface here
                    if im.mode == "P":  # palette: its colours (and transparency, if any)
                        im = im.convert("RGBA")
                    elif im.mode == "1":
                        im = im.convert("L")  # 0 / 255
                    a = np.asarray(im)
        except DatasetError:
            raise
        except Exception as exc:  # Pillow raises many kinds for a damaged file
            raise DatasetError(f"{path} is not a readable {fmt} image "
                               f"({type(exc).__name__}: {exc})") from None
    levels = 65535.0 if a.dtype.itemsize > 1 else 255.0  # I;16 / I (16-bit PNG) or 8-bit
    x = np.asarray(a, np.float64) / levels
    if x.ndim == 3 and x.shape[2] in (2, 4):  # an alpha channel: must be opaque
        if (a[..., -1] < levels).any():
            raise DatasetError(f"{path} has transparent pixels; npae reads opaque greyscale or RGB")
        x = x[..., 0] if x.shape[2] == 2 else x[..., :3]
    return x


def image_files(folder):
    """``(files, labels, classes)`` of an image folder: images at the top (no labels) or one level
    of class sub-folders (labels from their sorted names). Hidden entries are skipped."""
    def images(d):
        out = []
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            if e.name.startswith(".") or e.is_dir():
                continue
            suffix = os.path.splitext(e.name)[1].lower()
            if suffix in _OTHER_IMAGES:
                raise DatasetError(f"{Path(d) / e.name}: only PNG and JPEG images are read; convert it "
                                   "or move it out of the folder")
            if suffix in IMAGE_SUFFIXES:
                out.append(Path(d) / e.name)
        return out

    top = images(folder)
    subs = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    by_class = {s: images(folder / s) for s in subs}
    by_class = {s: f for s, f in by_class.items() if f}
    if top and by_class:
        raise DatasetError(f"{folder} mixes images at the top ({top[0].name}, ...) with class "
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
    raise DatasetError(f"{folder}: no PNG or JPEG images, at the top or in class sub-folders (found: "
                       f"{listing}){hint}")


def load_image_folder(folder, max_bytes):
    """``(X (n, H·W·C) in [0, 1], y, classes, image_shape, files)`` of a folder of images."""
    files, y, classes = image_files(folder)
    headers = [image_header(p) for p in files]
    w0, h0, m0, f0 = headers[0]
    for path, (w, h, m, _) in zip(files, headers):
        if (w, h, _mode_name(m)) != (w0, h0, _mode_name(m0)):
            raise DatasetError(f"{path} is {w}x{h} {_mode_name(m)}, but {files[0]} is {w0}x{h0} "
                               f"{_mode_name(m0)}; all images must share size and mode")
    kinds = " and ".join(sorted({f for _, _, _, f in headers}))
    channels = 1 if _mode_name(m0) == "greyscale" else 3
    nbytes = _check_size(folder, f"{len(files)} images as float64", (len(files), h0, w0, channels), 8,
                         max_bytes)
    peak = nbytes + h0 * w0 * _DECODE_BYTES_PER_PIXEL
    if peak > max_bytes:
        raise DatasetError(f"{folder}: decoding its {w0}x{h0} {kinds} images would take {_fmt_bytes(peak)} "
                           f"({_fmt_bytes(nbytes)} for the images as float64, {_DECODE_BYTES_PER_PIXEL} "
                           f"bytes a pixel while one is decoded), over the limit of "
                           f"{_fmt_bytes(max_bytes)}; refusing to decode them (pass max_bytes= to raise "
                           "the limit if the images are genuine)")
    X = np.empty((len(files), h0 * w0 * channels))  # (n, H*W*C)
    want = (h0, w0) if channels == 1 else (h0, w0, 3)
    for i, (path, (_, _, mode, fmt)) in enumerate(zip(files, headers)):
        a = _decode(path, mode, fmt)
        if a.shape != want:
            raise DatasetError(f"{path}: decoded to shape {a.shape}, expected {want}")
        X[i] = a.reshape(-1)
    return X, y, classes, want, [str(p) for p in files]
