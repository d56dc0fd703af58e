"""Loading a model file: :func:`load` (public as ``npae.load``) reads a file in bounded stages
(:func:`npae.data.io.read`), finds the class it names among the registered models
(``npae.models.model.MODEL_CLASSES``, filled as each class is defined; only npae's own modules are
ever imported to find one), checks that the architecture its config declares is exactly the arrays
the file lists (:mod:`npae.models.sizing`), all before any array is read, then rebuilds the model
and copies the arrays in. Saving is ``Model.save``; the file format is :mod:`npae.data.io`
(docs/files.md).
"""
import contextlib
import importlib
import re

import numpy as np

from npae.data import io
from npae.models.model import MODEL_CLASSES
from npae.training.checkpoint import check_checkpoint_listing, read_training_state


def _check_declared(cls, mf):
    """Refuse the file ``mf`` (read so far: header and array list) unless its ``param/`` arrays are
    exactly those a ``cls`` built from its config has, by name, shape and dtype. Builds nothing."""
    try:
        declared = cls._declared_shapes(mf.header["config"])
    except (TypeError, ValueError) as err:
        raise io.ModelFileError(f"{mf.path}: cannot size a {cls.__name__} from the saved config: "
                                f"{err}") from None
    listed = {k[len("param/"):]: v for k, v in mf.listing.items() if k.startswith("param/")}
    missing = sorted(set(declared) - set(listed))
    extra = sorted(set(listed) - set(declared))
    if missing or extra:
        raise io.ModelFileError(f"{mf.path}: parameters do not match a {cls.__name__} with this "
                                f"config: missing {missing[:10]}, unexpected {extra[:10]}")
    for name, (shape, dtype) in declared.items():
        if listed[name] != (tuple(shape), np.dtype(dtype)):
            got_shape, got_dtype = listed[name]
            raise io.ModelFileError(f"{mf.path}: parameter {name!r} has shape {got_shape} {got_dtype}; "
                                    f"a {cls.__name__} with this config needs {tuple(shape)} "
                                    f"{np.dtype(dtype)}")


#: npae modules :func:`_find_class` may import to find a class a file names: ``npae.<name>``.
_NPAE_MODULE = re.compile(r"npae(\.[a-z][a-z0-9_]*)+")


def _find_class(name, module, path):
    """The registered class ``module:name``; a model module of npae (``npae.<name>``) is imported
    if needed, never any other module a file names."""
    key = f"{module}:{name}"
    if key not in MODEL_CLASSES and _NPAE_MODULE.fullmatch(module):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    if key in MODEL_CLASSES:
        return MODEL_CLASSES[key]
    same_name = [cls for cls in MODEL_CLASSES.values() if cls.__qualname__ == name]
    if len(same_name) == 1:
        return same_name[0]
    raise io.ModelFileError(f"{path}: unknown model class {name!r} (module {module!r}); import the "
                            f"module that defines it before loading")


def build_model(mf):
    """A fresh model of the class and config in the file ``mf`` (its own random initial weights),
    after :func:`_check_declared` has compared the config with the file's arrays."""
    cls = _find_class(mf.header["class"], mf.header["module"], mf.path)
    _check_declared(cls, mf)
    try:
        model = cls._from_config(dict(mf.header["config"]))
        model._require_built()
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as err:
        raise io.ModelFileError(f"{mf.path}: cannot rebuild {cls.__name__} from the saved config: "
                                f"{str(err)[:300]}") from None
    return model


def check_file(mf):
    """The ``check`` :func:`load` and ``fit(resume=...)`` give :func:`npae.data.io.read`: the class is
    known and its config declares exactly the file's parameter arrays (and, for a checkpoint, the
    optimizer and training arrays match them), all before any array is read."""
    cls = _find_class(mf.header["class"], mf.header["module"], mf.path)
    _check_declared(cls, mf)
    check_checkpoint_listing(mf)


def load(path, *, key=None, max_bytes=None):
    """Load a model saved with :meth:`Model.save` (or a checkpoint written by ``fit``).

    Returns a model of the saved class, rebuilt from its config, holding the saved parameters and
    generator state. ``key`` (default ``NPAE_MODEL_KEY``) verifies the file's HMAC signature: with
    a key, a file signed with another key or not signed at all is refused; without one, a signed
    file is refused. ``max_bytes`` caps the total size of the arrays (default
    ``npae.constants.MODEL_FILE_MAX_BYTES``). Nothing is built or decompressed before the header,
    the list of arrays and the architecture the config declares agree (docs/files.md).

    Raises :class:`~npae.data.io.ModelFileError` (a ValueError) naming the file and the problem, for
    every malformed, tampered or unsafe file; FileNotFoundError when there is none.
    """
    mf = io.read(path, key=key, max_bytes=max_bytes, check=check_file)
    model = build_model(mf)
    if mf.is_checkpoint:
        read_training_state(mf, model)  # a checkpoint is loaded only if all of it is sound
    return model._restore(mf)
