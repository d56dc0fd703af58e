"""Input checks for every public entry point, written once.

Every check raises :class:`InputError` (a ``ValueError``: a value is wrong, its shape, a NaN, its
range) or :class:`InputTypeError` (an ``InputError`` that is also a ``TypeError``: a value of the
wrong kind, a string where an array was expected) with a message that names the argument, what was
received and what was expected. The CLI prints an ``InputError`` as one line; any other exception
escaping npae is a bug.

Dtype coercion, documented once: array inputs are converted with ``np.asarray(X, dtype=model_dtype)``.
Integer and boolean arrays are accepted and converted; complex, object and string arrays are refused.
"""
import numbers
import os

import numpy as np


class InputError(ValueError):
    """A user's input that npae refuses: the message names the argument and what was expected."""


class InputTypeError(InputError, TypeError):
    """An input of the wrong kind (also a ``TypeError``)."""


class NotFittedError(InputError, AttributeError):
    """A method that needs a fitted (built) estimator was called before ``fit``."""


def check_choice(name, value, options):
    """Return ``value`` if it is one of ``options``, else raise a ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        raise InputError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, options))}")
    return value


def check_dtype(dtype):
    """Return the NumPy dtype for ``"float32"``/``"float64"`` (or the equivalent np.dtype)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InputTypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def check_scalar(name, value, *, low=None, high=None, low_open=False, high_open=False,
                 integer=False):
    """Check a real (or integer) hyperparameter against an interval and return it.

    ``low_open``/``high_open`` make the bound strict. NaN and inf are always refused.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a real number"
        raise InputTypeError(f"{name} must be {what}, got {value!r}")
    if not (integer and isinstance(value, numbers.Integral)):  # a real: also no int beyond float range
        try:
            finite = bool(np.isfinite(float(value)))
        except OverflowError:  # 10**400
            finite = False
        if not finite:
            raise InputError(f"{name} must be finite, got {value!r:.40}")
    if low is not None and (value < low or (low_open and value == low)):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise InputError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def check_sizes(name, sizes):
    """Check a tuple of layer widths (positive integers) and return it as a tuple."""
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise InputTypeError(f"{name} must be a tuple of positive integers, got {sizes!r}") from None
    for s in sizes:
        check_scalar(f"each entry of {name}", s, low=1, integer=True)
    return tuple(int(s) for s in sizes)


def check_array(X, name="X", *, n_features=None, ndim=2, dtype=np.float64, finite=True,
                owner="the model"):
    """Return ``X`` as a C-contiguous array of ``dtype`` after checking kind, shape and values.

    ``X``: array_like of real numbers (lists too; strings, objects, complex and sparse refused);
    ``name``: the argument's name for messages; ``n_features``: the required size of the last axis
    (``owner`` expects it); ``ndim``: the allowed numbers of dimensions; ``finite``: refuse NaN and
    inf. Raises :class:`InputError` / :class:`InputTypeError` naming ``name``.
    """
    real = isinstance(X, np.ndarray) and X.dtype.kind in "biuf"
    arr = X if real else _real_array(X, name)  # lists, objects, the refusals: see there
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in ndims or arr.size == 0 or (n_features is not None and arr.shape[-1] != n_features):
        _refuse_shape(arr, name, ndims, n_features, owner)
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():  # before any cast
        bad = ~np.isfinite(arr)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name} contains {int(bad.sum())} NaN or inf value(s), first at index {first}")
    if arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize:  # e.g. to float32
        top, biggest = float(np.finfo(dtype).max), max(-float(arr.min()), float(arr.max()))
        if biggest > top:  # the cast would turn these into inf
            raise InputError(f"{name} has values of magnitude up to {biggest:g}, beyond the range "
                             f"of {np.dtype(dtype).name} (max {top:g})")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_data_scale(X, name="X"):
    """Refuse data whose largest magnitude exceeds :data:`npae.constants.DATA_ABS_MAX` (finite but
    huge values: int64 near 2**62, pixels times 1e6, anything times 1e300), with an
    :class:`InputError` naming ``name``, the magnitude and what to do. Returns ``X``."""
    from npae import constants

    if X.size and X.dtype.kind in "biuf":
        biggest = max(abs(float(X.min())), abs(float(X.max())))
        if biggest > constants.DATA_ABS_MAX:
            raise InputError(
                f"{name} holds values of magnitude up to {biggest:.4g}; npae's models take data of about "
                f"unit scale and refuse |values| over {constants.DATA_ABS_MAX:g} "
                f"(npae.constants.DATA_ABS_MAX), where the losses and gradients stop meaning anything or "
                f"overflow. Scale {name} first (standardize it, or divide pixels by their maximum; "
                f"npae train: --scale)")
    return X


def _real_array(X, name):
    """``X`` (not already a real NumPy array) as a NumPy array of real numbers (bool, int or
    float), or the error that names ``name``."""
    if isinstance(X, (str, bytes)) or X is None:
        raise InputTypeError(f"{name} must be an array of numbers, got {type(X).__name__}")
    if hasattr(X, "toarray") and type(X).__module__.startswith("scipy.sparse"):
        raise InputTypeError(f"{name} is a scipy sparse matrix: sparse input is not supported; "
                             f"pass {name}.toarray()")
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as err:  # ragged nested lists, objects NumPy cannot convert
        raise InputError(f"{name} must be a rectangular array of numbers (rows of equal length); "
                         f"NumPy could not convert it ({err})") from None
    if arr.dtype.kind == "c":
        raise InputTypeError(f"{name} holds complex numbers (Complex data not supported); "
                             "it must hold real numbers")
    if arr.dtype.kind == "O":  # numbers held as Python objects: convert, or say what is not a number
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError) as err:
            raise InputTypeError(f"{name} must hold real numbers; an entry is not one ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    return arr


def _refuse_shape(arr, name, ndims, n_features, owner):
    """Raise the error for an array of the wrong number of dimensions, features or examples."""
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        hint = " (a batch of shape (n_samples, n_features))" if 2 in ndims else ""
        reshape = (f"; Reshape your data: {name}.reshape(1, -1) for one sample, "
                   f"{name}.reshape(-1, 1) for one feature") if arr.ndim == 1 and 2 in ndims else ""
        raise InputError(f"{name} must be {want}{hint}, got a {arr.ndim}-D array of shape "
                         f"{arr.shape}{reshape}")
    if n_features is not None and arr.shape[-1] != n_features:
        raise InputError(f"{name} has {arr.shape[-1]} features, but {owner} is expecting "
                         f"{n_features} features as input (shape {arr.shape})")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise InputError(f"{name} is empty: 0 feature(s) (shape={arr.shape}) while a minimum of "
                         f"1 is required.")
    raise InputError(f"{name} is empty: 0 sample(s) (shape={arr.shape}) while a minimum of 1 "
                     f"is required.")


def check_bool(name, value):
    """Return ``value`` if it is a bool (or numpy bool), else raise a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_path(name, value, *, must_exist=False, writable=False):
    """Return ``value`` as a ``str`` file path after checking its kind and, optionally, that the file
    exists (``must_exist``) or that its directory exists so it can be written (``writable``)."""
    if not isinstance(value, (str, os.PathLike)):
        raise InputTypeError(f"{name} must be a file path (str or os.PathLike), got {type(value).__name__}")
    path = os.fsdecode(os.fspath(value))
    if not path:
        raise InputError(f"{name} must be a non-empty file path")
    if must_exist and not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no file at {path!r}")
    if writable:
        if os.path.isdir(path):
            raise InputError(f"{name} {path!r} is a directory; give a file name such as 'model.npz'")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{name}: directory {directory!r} of {path!r} does not exist")
    return path


def check_unit_interval(name, X, fix="loss='mse'"):
    """Raise ValueError unless every entry of ``X`` lies in [0, 1] (targets of a Bernoulli/BCE loss).
    ``fix``: the argument that takes real-valued data instead (an autoencoder's ``loss='mse'``, a
    VAE's ``likelihood='gaussian'``)."""
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"{name} must lie in [0, 1] for a binary cross-entropy / Bernoulli loss, "
                         f"got values in [{lo:g}, {hi:g}]; rescale the data or use {fix}")


def check_labels(name, y, n_classes, n_samples=None, *, unlabelled=None):
    """Return integer labels of shape (n,) after checking they lie in ``0 .. n_classes - 1``;
    with ``unlabelled`` (an int, e.g. −1) that value also marks an unlabelled row."""
    what, unit = ("class labels", "sample") if unlabelled is None else ("labels", "row")
    hint = "" if unlabelled is None else f" ({unlabelled} for an unlabelled row)"
    if isinstance(y, (str, bytes)) or y is None:
        raise InputTypeError(f"{name} must be an array of integer {what}{hint}, got {type(y).__name__}")
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as err:
        raise InputError(f"{name} must be a 1-D array of integer {what} ({err})") from None
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D (one label per {unit}), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(f"{name} must hold whole-number {what}{hint}")
    elif arr.dtype.kind not in "biu":
        raise InputTypeError(f"{name} must hold integer {what}, got dtype {arr.dtype}")
    if n_samples is not None and arr.shape[0] != n_samples:
        raise InputError(f"{name} has {arr.shape[0]} labels but there are {n_samples} {unit}s")
    arr = arr.astype(np.int64)
    low = 0 if unlabelled is None else min(0, unlabelled)  # npae's marker is −1, below every class
    if arr.size and (arr.min() < low or arr.max() >= n_classes):
        if unlabelled is None:
            raise InputError(f"{name} must lie in 0..{n_classes - 1} (n_classes={n_classes}), "
                             f"got values in [{arr.min()}, {arr.max()}]")
        raise InputError(f"{name} must lie in 0..{n_classes - 1} for a labelled row or be "
                         f"{unlabelled} for an unlabelled one (n_classes={n_classes}), got values in "
                         f"[{arr.min()}, {arr.max()}]")
    return arr


def _fmt_bytes(n):
    """``n`` bytes for a message: ``"2 GiB"``, ``"5.09 TiB"``, ``"512 bytes"``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _limit(name, env):
    """The budget ``npae.constants.<name>``, or the environment variable ``env`` when set."""
    from npae import constants

    text = os.environ.get(env, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"{env} must be a positive number (bytes or multiply-adds), got {text!r}")
        return value
    return getattr(constants, name)


def check_memory(what, nbytes, hint=""):
    """Refuse, before it is allocated, a job whose estimated memory ``nbytes`` (Python ints: no
    overflow) exceeds ``npae.constants.MEMORY_MAX_BYTES`` (or ``$NPAE_MAX_BYTES``); ``what`` names the
    argument that asked for it, ``hint`` how to ask for less. Returns ``nbytes``."""
    limit = _limit("MEMORY_MAX_BYTES", "NPAE_MAX_BYTES")
    if nbytes > limit:
        raise InputError(f"{what} would take about {_fmt_bytes(nbytes)} of memory, over the limit of "
                         f"{_fmt_bytes(limit)}{'; ' + hint if hint else ''} (the limit is "
                         f"npae.constants.MEMORY_MAX_BYTES; raise it with the environment variable "
                         f"NPAE_MAX_BYTES=<bytes> if the machine has the memory)")
    return nbytes


def check_work(what, multiply_adds, hint=""):
    """Refuse, before it starts, a job of an estimated ``multiply_adds`` (of the model's dense
    layers) over ``npae.constants.WORK_MAX_MULTIPLY_ADDS`` (or ``$NPAE_MAX_WORK``): memory may be
    bounded by chunking, but the time grows with what was asked. Returns ``multiply_adds``."""
    limit = _limit("WORK_MAX_MULTIPLY_ADDS", "NPAE_MAX_WORK")
    if multiply_adds > limit:
        hours = multiply_adds / 3e9 / 3600
        raise InputError(f"{what} is about {float(multiply_adds):.3g} multiply-adds (some {hours:.3g} "
                         f"hours at 3e9 a second), over the limit of {float(limit):.3g}"
                         f"{'; ' + hint if hint else ''} (the limit is "
                         f"npae.constants.WORK_MAX_MULTIPLY_ADDS; raise it with the environment "
                         f"variable NPAE_MAX_WORK=<multiply-adds> to run it anyway)")
    return multiply_adds
