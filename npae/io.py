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
history, ...) and ``sha256``, a digest of the rest of the header and of every array's bytes.

Loading (:func:`load`, :func:`read`) opens the file with ``allow_pickle=False`` and refuses, with a
:class:`ModelFileError` naming the file and the problem: a truncated or non-zip file, object arrays,
an unreadable or tampered header (the digest does not match), a newer format version, missing or
extra arrays, and names, shapes or dtypes that differ from the model rebuilt from the config.

Writing is atomic: the file is written to a temporary file in the same directory, flushed to disk,
then renamed over ``path`` (:func:`os.replace`), so an interrupted or failed save leaves the previous
file intact. ``path`` is used exactly as given (no ``.npz`` is appended); ``.npz`` is the convention.
"""
import contextlib
import hashlib
import importlib
import inspect
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT_NAME = "npae-model"
#: Version of the layout above. A reader refuses files with a larger number.
FORMAT_VERSION = 1
HEADER_KEY = "__header__"

#: Every Model subclass, keyed ``"<module>:<qualname>"`` (filled by ``Model.__init_subclass__``).
MODEL_CLASSES = {}

_ARRAY_KINDS = "biuf"  # bool, signed, unsigned, float: all a model file ever needs


class ModelFileError(ValueError):
    """A model file or checkpoint that cannot be loaded safely; the message names the file."""


def register_model_class(cls):
    """Make ``cls`` loadable by :func:`load` (called for every subclass of npae.model.Model)."""
    MODEL_CLASSES[_class_key(cls)] = cls
    return cls


def _class_key(cls):
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_model(value):
    return MODEL_CLASSES.get(_class_key(type(value))) is type(value)


def _find_class(name, module, path):
    """The registered class ``module:name``; an ``npae.*`` module is imported if needed."""
    key = f"{module}:{name}"
    if key not in MODEL_CLASSES and isinstance(module, str) and module.split(".")[0] == "npae":
        with contextlib.suppress(ImportError):
            importlib.import_module(module)  # only npae's own modules, never one a file names
    if key in MODEL_CLASSES:
        return MODEL_CLASSES[key]
    same_name = [cls for cls in MODEL_CLASSES.values() if cls.__qualname__ == name]
    if len(same_name) == 1:
        return same_name[0]
    raise ModelFileError(f"{path}: unknown model class {name!r} (module {module!r}); import the "
                         f"module that defines it before loading")


# --------------------------------------------------------------------------------------------------
# JSON header
# --------------------------------------------------------------------------------------------------
def _encode_config(value, where="config"):
    """A JSON-able copy of a constructor config. A nested model (a Classifier's encoder) is stored
    as its class and config; numpy scalars become Python numbers; a Generator becomes None (the
    generator's state is saved separately)."""
    if isinstance(value, dict):
        return {str(k): _encode_config(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_config(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.Generator):
        return None
    if _is_model(value):
        cls = type(value)
        return {"__npae_model__": {"class": cls.__qualname__, "module": cls.__module__,
                                   "config": _encode_config(value.config, f"{where}.config")}}
    raise TypeError(f"cannot save: {where} holds a {type(value).__name__} ({value!r:.60}), which a "
                    f"model file cannot store; a model's config must hold numbers, strings, lists, "
                    f"dicts or npae models")


def _decode_config(value, path):
    if isinstance(value, dict):
        nested = value.get("__npae_model__")
        if nested is not None and len(value) == 1:
            cls = _find_class(nested.get("class"), nested.get("module"), path)
            return cls(**_decode_config(nested.get("config", {}), path))
        return {k: _decode_config(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_config(v, path) for v in value]
    return value


def _canonical(header):
    """Bytes the digest covers: the header without its digest, keys sorted, no spaces."""
    body = {k: v for k, v in header.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _digest(header, arrays):
    h = hashlib.sha256(_canonical(header))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8"))
        h.update(a.data)
    return h.hexdigest()


def _describe(arrays):
    return {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}


# --------------------------------------------------------------------------------------------------
# Optimizer state
# --------------------------------------------------------------------------------------------------
def optimizer_payload(opt):
    """``(meta, arrays)`` describing an :class:`npae.optim.Optimizer` fully: class name, constructor
    hyperparameters, step count, and the state slots as ``optim/<slot>/<name>`` arrays."""
    hyper = {}
    for name in list(inspect.signature(type(opt).__init__).parameters)[1:]:
        if hasattr(opt, name):
            hyper[name] = _encode_config(getattr(opt, name), f"optimizer.{name}")
    state = opt.state_dict()
    arrays = {f"optim/{key}": np.asarray(value) for key, value in state.items() if key != "t"}
    meta = {"class": type(opt).__qualname__, "module": type(opt).__module__, "hyper": hyper,
            "t": int(state["t"])}
    return meta, arrays


def _optimizer_classes():
    from .optim import Optimizer

    found, todo = {}, [Optimizer]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__qualname__, cls)
        todo.extend(cls.__subclasses__())
    return found


def build_optimizer(mf, params):
    """Rebuild the optimizer of the checkpoint ``mf`` (a :class:`ModelFile`) for ``params``,
    checking every state array's name and shape against the parameters."""
    meta = (mf.header.get("training") or {}).get("optimizer")
    if not isinstance(meta, dict):
        raise ModelFileError(f"{mf.path}: no optimizer state (not a checkpoint)")
    cls = _optimizer_classes().get(meta.get("class"))
    if cls is None:
        raise ModelFileError(f"{mf.path}: unknown optimizer class {meta.get('class')!r}")
    try:
        opt = cls(**meta.get("hyper", {}))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{mf.path}: cannot rebuild optimizer {cls.__name__}: {err}") from None
    state = {"t": meta.get("t", 0)}
    for key, value in mf.arrays.items():
        if not key.startswith("optim/"):
            continue
        slot, _, name = key[len("optim/"):].partition("/")
        if slot not in cls.slots or name not in params:
            raise ModelFileError(f"{mf.path}: unexpected optimizer state {key!r} for {cls.__name__} "
                                 f"(slots {cls.slots}) and this model's parameters")
        if value.shape != params[name].shape or value.dtype != params[name].dtype:
            raise ModelFileError(f"{mf.path}: optimizer state {key!r} has shape {value.shape} "
                                 f"{value.dtype}; parameter {name!r} is {params[name].shape} "
                                 f"{params[name].dtype}")
        state[key[len("optim/"):]] = value
    opt.load_state_dict(state)
    return opt


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _check_path(path, what="path"):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file name (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{what} must be a non-empty file name")
    return path


def save(model, path, *, training=None, arrays=None):
    """Write ``model`` to ``path`` atomically; return the path.

    Parameters
    ----------
    model : npae.model.Model
    path : str or os.PathLike
        Used as given (``.npz`` is not appended). Its directory must exist.
    training : dict, optional
        JSON-able training state; makes the file a checkpoint (see :mod:`npae.training`).
    arrays : dict of name -> ndarray, optional
        Further arrays of a checkpoint (``optim/...``, ``train/...``).
    """
    path = _check_path(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path!r}: it is a directory")
    cls = type(model)
    if not _is_model(model):
        raise TypeError(f"cannot save a {cls.__name__}: it is not an npae.model.Model subclass")
    _check_rebuildable(model)
    out = {f"param/{name}": np.ascontiguousarray(p) for name, p in model._saved_arrays().items()}
    for name, a in (arrays or {}).items():
        if not (name.startswith("optim/") or name.startswith("train/")):
            raise ValueError(f"extra array names must start with 'optim/' or 'train/', got {name!r}")
        out[name] = np.ascontiguousarray(a)
    for name, a in out.items():
        if a.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"cannot save array {name!r} of dtype {a.dtype}: only numbers are stored")
    rng = getattr(model, "rng", None)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "npae_version": _npae_version(),
        "class": cls.__qualname__,
        "module": cls.__module__,
        "config": _encode_config(model.config),
        "rng_state": _encode_config(rng.bit_generator.state, "rng state") if rng is not None else None,
        "arrays": _describe(out),
        "training": training,
    }
    header["sha256"] = _digest(header, out)
    text = json.dumps(header, sort_keys=True)
    out[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomic(path, out)
    return path


def _check_rebuildable(model):
    """Refuse, before writing anything, a model that :func:`load` could not rebuild from its config."""
    cls = type(model)
    if getattr(cls._from_config, "__func__", None) is not getattr(_base_from_config(), "__func__", None):
        return  # the class rebuilds itself
    try:
        inspect.signature(cls).bind(**model.config)
    except TypeError as err:
        raise TypeError(f"cannot save a {cls.__name__}: its config (keys {sorted(model.config)}) does "
                        f"not match its constructor ({err}), so it could not be loaded back; the class "
                        f"must override Model._from_config (and Model._saved_arrays for weights kept "
                        f"outside params)") from None


def _base_from_config():
    from .model import Model

    return Model._from_config


def _npae_version():
    from . import __version__

    return __version__


def _write_atomic(path, arrays):
    """``np.savez`` into a temporary file next to ``path``, fsync, then rename over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: directory {directory!r} does not exist")
    mode = 0o644
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode & 0o777  # keep the permissions of the file replaced
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # a file object: savez appends no suffix
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename itself durable (POSIX)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------
class ModelFile:
    """The verified content of a model file: ``header`` (dict), ``arrays`` (dict of the arrays other
    than the header) and ``path``. Built by :func:`read`."""

    def __init__(self, path, header, arrays):
        self.path, self.header, self.arrays = path, header, arrays

    @property
    def is_checkpoint(self):
        return self.header.get("training") is not None

    @property
    def params(self):
        return {k[len("param/"):]: a for k, a in self.arrays.items() if k.startswith("param/")}


def read(path):
    """Open ``path`` without unpickling and check its integrity; return a :class:`ModelFile`.

    Checks: a readable zip of ``.npy`` arrays, no object arrays, a JSON header of this format with a
    version this npae reads, a digest matching the header and arrays, and exactly the arrays the
    header lists with the shapes and dtypes it lists.
    """
    path = _check_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ModelFileError(f"{path}: not an npae model file (a single .npy array, not a .npz)")
    if not magic.startswith(b"PK"):
        raise ModelFileError(f"{path}: truncated or corrupt file: not a .npz (zip) archive "
                             f"({len(magic)} leading bytes {magic!r})")
    raw = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                raw[key] = z[key]
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise ModelFileError(f"{path}: holds an object (pickled) array; npae model files hold "
                                 f"plain numeric arrays only, and loading never unpickles") from None
        raise ModelFileError(f"{path}: not a readable npae model file ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
        raise ModelFileError(f"{path}: truncated or corrupt file ({type(err).__name__}: {err}); "
                             f"not a complete .npz") from None
    if HEADER_KEY not in raw:
        raise ModelFileError(f"{path}: no {HEADER_KEY!r} entry; not an npae model file")
    header = _parse_header(path, raw.pop(HEADER_KEY))
    for name, a in raw.items():
        if a.dtype.kind not in _ARRAY_KINDS:
            raise ModelFileError(f"{path}: array {name!r} has dtype {a.dtype}; only numbers are allowed")
    listed = header.get("arrays")
    if not isinstance(listed, dict):
        raise ModelFileError(f"{path}: header has no array list")
    missing = [k for k in listed if k not in raw]
    extra = [k for k in raw if k not in listed]
    if missing or extra:
        raise ModelFileError(f"{path}: arrays do not match the header: missing {missing}, "
                             f"unexpected {extra}")
    for name, a in raw.items():
        want = listed[name]
        if list(a.shape) != want.get("shape") or a.dtype.str != want.get("dtype"):
            raise ModelFileError(f"{path}: array {name!r} has shape {a.shape} dtype {a.dtype.str}; "
                                 f"the header says {tuple(want.get('shape', ()))} {want.get('dtype')}")
    if header.get("sha256") != _digest(header, raw):
        raise ModelFileError(f"{path}: digest mismatch: the header or the arrays were modified "
                             f"after saving (tampered or corrupt file)")
    return ModelFile(path, header, raw)


def _parse_header(path, blob):
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise ModelFileError(f"{path}: header must be a 1-D uint8 array, got {blob.dtype} {blob.shape}")
    try:
        header = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: header is not valid JSON ({err}); tampered or corrupt") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: header does not describe an {FORMAT_NAME!r} file")
    version = header.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written with file format version {version} (npae "
                             f"{header.get('npae_version')}); this npae reads versions up to "
                             f"{FORMAT_VERSION}: upgrade npae to load it")
    for key in ("class", "module"):
        if not isinstance(header.get(key), str):
            raise ModelFileError(f"{path}: header field {key!r} is missing or not a string")
    if not isinstance(header.get("config"), dict):
        raise ModelFileError(f"{path}: header field 'config' is missing or not an object")
    return header


def build_model(mf):
    """A fresh model of the class and config in ``mf`` (its own random initial weights)."""
    cls = _find_class(mf.header["class"], mf.header["module"], mf.path)
    try:
        return cls._from_config(_decode_config(mf.header["config"], mf.path))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{mf.path}: cannot rebuild {cls.__name__} from the saved config: "
                             f"{err}") from None


def check_compatible(model, mf):
    """Raise :class:`ModelFileError` unless ``mf`` holds a model of ``model``'s class and config
    (the seed may differ) whose arrays match ``model``'s in name, shape and dtype. Changes nothing."""
    cls = type(model)
    if mf.header["class"] != cls.__qualname__:
        raise ModelFileError(f"{mf.path}: holds a {mf.header['class']}, not a {cls.__name__}")
    saved_config = {k: v for k, v in mf.header["config"].items() if k != "seed"}
    model_config = {k: v for k, v in json.loads(json.dumps(_encode_config(model.config))).items()
                    if k != "seed"}  # the seed may differ: the generator state comes from the file
    if saved_config != model_config:
        diff = sorted(k for k in set(saved_config) | set(model_config)
                      if saved_config.get(k) != model_config.get(k))
        raise ModelFileError(f"{mf.path}: config differs from this model's in {diff}: saved "
                             f"{ {k: saved_config.get(k) for k in diff} }, model "
                             f"{ {k: model_config.get(k) for k in diff} }")
    saved, target = mf.params, model._saved_arrays()
    missing = [k for k in target if k not in saved]
    extra = [k for k in saved if k not in target]
    if missing or extra:
        raise ModelFileError(f"{mf.path}: parameters do not match a {cls.__name__} with this config: "
                             f"missing {missing}, unexpected {extra}")
    for name, p in target.items():
        a = saved[name]
        if a.shape != p.shape or a.dtype != p.dtype:
            raise ModelFileError(f"{mf.path}: parameter {name!r} has shape {a.shape} {a.dtype}; a "
                                 f"{cls.__name__} with this config needs {p.shape} {p.dtype}")


def restore(model, mf):
    """Copy the parameters and generator state of ``mf`` into ``model`` in place, after
    :func:`check_compatible`; returns ``model``."""
    check_compatible(model, mf)
    saved, target = mf.params, model._saved_arrays()
    state = mf.header.get("rng_state")
    if state is not None and getattr(model, "rng", None) is not None:
        try:
            model.rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as err:
            raise ModelFileError(f"{mf.path}: bad generator state ({err})") from None
    for name, p in target.items():
        p[...] = saved[name]
    return model


def load(path):
    """Load a model saved with :meth:`npae.model.Model.save` (or a checkpoint written by ``fit``).

    Returns a model of the saved class, rebuilt from its config, holding the saved parameters and
    generator state. Raises :class:`ModelFileError` (a ValueError) naming the file and the problem.
    """
    mf = read(path)
    return restore(build_model(mf), mf)
