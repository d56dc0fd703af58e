"""Model files and checkpoints: one ``.npz`` of plain arrays plus a JSON header. Nothing is pickled.

Layout of a file (every entry is a plain numeric array)::

    __header__            uint8, the UTF-8 bytes of a JSON object (below)
    param/<name>          every entry of ``model.params``, in forward order
    optim/<slot>/<name>   optimizer state (checkpoints only), e.g. ``optim/m/encoder.0.W``
    train/<name>          other training state (checkpoints only): the epoch's permutation when
                          saved mid-epoch, the best parameters of early stopping

The header holds ``format`` ("npae-model"), ``format_version``, ``npae_version``, the model's
``class`` and ``module``, its constructor ``config`` (enough to rebuild it), the generator state
``rng_state``, ``arrays`` (name -> shape and dtype of every other entry), ``training`` (``None`` for
a plain model file; for a checkpoint: epoch, optimizer class, hyperparameters and step count,
history, ...), ``sha256``, a digest of the rest of the header and of every array's bytes, and,
for a file saved with a key, ``hmac_sha256``.

This module is the file format only: :func:`write` and :func:`read` know arrays and a JSON header,
nothing about models or optimizers. What goes into the header is :mod:`npae.models.model`'s
business (``Model.save``), how a model is rebuilt from it :mod:`npae.models.files`'s
(:func:`npae.models.files.load`); the optimizer's part is :mod:`npae.training.optim`'s, the
training state's :mod:`npae.training.loop`'s.

**Reading a file nobody vouches for**: :func:`read` (in :mod:`npae.data.io_read`) checks, in bounded
stages, everything that costs memory or time before any array is decompressed, and raises
:class:`ModelFileError` naming the file and the field.

**Integrity and authenticity.** ``sha256`` detects corruption (a truncated copy, a flipped bit, a
hand edit that forgot the digest). It is *not* a signature: anyone who can write the file can
recompute it. ``write(..., key=k)`` adds ``hmac_sha256``, an HMAC-SHA256 of the same bytes under the
secret key ``k`` (bytes or str; ``NPAE_MODEL_KEY`` when ``key`` is None): only a holder of the key
can produce it. ``read(..., key=k)`` refuses a file whose HMAC does not verify (another key, or
modified after signing) and a file that carries none (an unsigned file could come from anyone, so
asking for a key and getting an unsigned file is an error, not a warning); ``read`` without a key
refuses a signed file (its signature would go unchecked). The HMAC says who wrote the file; it does
not encrypt it.

Writing is atomic: the file is written to a temporary file in the same directory, flushed to disk,
then renamed over ``path`` (:func:`os.replace`), so an interrupted or failed save leaves the previous
file intact; a save killed by -9 leaves its temporary file, and the next save of ``path`` removes it
(:mod:`npae.data.locks`). ``path`` is used exactly as given (no ``.npz`` is appended); ``.npz`` is
the convention. A file stores finite numbers only: :func:`write` refuses an array holding a NaN or an inf.

The code, by job: this module writes (:func:`write`) and is the face (``npae.data.io.read``,
``write``, ``ModelFileError``); :mod:`npae.data.io_read` reads; :mod:`npae.data.io_format` holds
what both share (names, version, the digest's bytes, the key).
"""
import json
import os

import numpy as np

from npae.data import locks
from npae.data.io_format import (_ARRAY_KINDS, _SIGNATURE_FIELDS, FORMAT_NAME, FORMAT_VERSION, HEADER_KEY,
                                 ModelFileError, _check_path, _describe, _digest, _hmac, resolve_key)
# The face: what callers name as npae.data.io.X, wherever it is written.
from npae.data.io_format import KEY_ENV, encode_json  # noqa: F401
from npae.data.io_read import ModelFile, read  # noqa: F401


def write(path, header, arrays, *, key=None):
    """Write ``arrays`` and the JSON-able ``header`` to ``path`` atomically; return the path.

    ``header`` gets ``format``, ``format_version``, ``arrays`` (the list of names, shapes and
    dtypes), ``sha256`` and, when there is a key (``key``, else ``NPAE_MODEL_KEY``),
    ``hmac_sha256`` added; ``arrays`` maps names (``param/...``, ``optim/...``, ``train/...``) to
    finite numeric arrays (a NaN or an inf raises :class:`ModelFileError` naming the array, before
    anything is written). ``path`` is used as given (``.npz`` is not appended); its directory must
    exist.
    """
    path = _check_path(path)
    key = resolve_key(key)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a directory")
    out = {}
    for name, a in arrays.items():
        if not name.startswith(("param/", "optim/", "train/")):
            raise ValueError(f"array names must start with 'param/', 'optim/' or 'train/', got {name!r}")
        a = np.ascontiguousarray(a)
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save array {name!r} of dtype {a.dtype}: only numbers are stored")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ModelFileError(f"{path}: cannot save: array {name!r} holds {bad} NaN/inf entries of "
                                 f"{a.size}; a model file stores finite numbers only (did training "
                                 f"diverge?)")
        out[name] = a
    header = {**header, "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "arrays": _describe(out)}
    for field in _SIGNATURE_FIELDS:
        header.pop(field, None)
    if key is not None:
        header["hmac_sha256"] = _hmac(key, header, out)
    header["sha256"] = _digest(header, out)  # covers the HMAC too: readers without a key check it
    text = json.dumps(header, sort_keys=True)
    out[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomic(path, out)
    return path


def _write_atomic(path, arrays):
    """``np.savez`` into ``path`` through :func:`npae.data.locks.write_atomic` (a temporary file
    beside it, fsynced, renamed over it). The temporary files of earlier saves of ``path`` whose
    process is gone (killed by -9) are removed first."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not exist")
    locks.clean_stale_temps(path)  # what saves of this path killed by -9 left
    locks.write_atomic(path, lambda fh: np.savez(fh, **arrays))  # a file object: savez adds no suffix
