"""Bounded reading, what every data loader builds on: the two errors a loader raises
(:class:`DatasetError`, :class:`DataNotFoundError`), the limits (:data:`MAX_BYTES`,
:data:`MAX_CLASSES`), and the three rules of reading a file nobody vouches for: open it only when
it is a regular file (:func:`_open_regular`; a FIFO or a device is refused, never waited on), judge
an array's size from its header before allocating it (:func:`_check_size`), and read at most what
was asked for (:func:`_read_upto`, which never decompresses a gzip stream past it).
"""
import contextlib
import gzip
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

from npae.validation import _fmt_bytes  # one byte formatter for every size message


class DatasetError(ValueError):
    """A data file exists but cannot be used: corrupt, truncated, too large, wrong checksum, wrong
    contents, or the wrong data set. The message names the file and what is wrong with it."""


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where they were looked for. ``splits`` holds the split prefixes
    (e.g. ``"train5k"``) whose files *were* found there, so a caller can suggest one."""

    def __init__(self, message, splits=()):
        super().__init__(message)
        self.splits = tuple(splits)


#: Largest array (in bytes) any loader allocates, judged from a file's header before its body is
#: read; loaders take ``max_bytes=`` to raise or lower it. For images it bounds the float64 ``X``
#: (MNIST's 60,000 training images are 376 MB), for an IDX file read on its own its stored body.
MAX_BYTES = 1 << 30

#: Labels are class numbers 0 .. MAX_CLASSES - 1 (a conditional model one-hot encodes them, so a
#: label of 2**31 - 1 would ask for 2**31 classes). The MNIST sets allow 0..9.
MAX_CLASSES = 256

_CHUNK = 1 << 20  # bytes per read


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


def _listing(folder, limit=12):
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return None
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (", ".join(names[:limit]) or "nothing") + more
