"""scikit-learn's estimator conventions, followed without importing scikit-learn.

The constructor of an estimator stores its arguments under their own names and does nothing else
that a later ``set_params`` could contradict; :meth:`ParamsMixin.get_params` reads them back from
the constructor's signature, :meth:`ParamsMixin.set_params` writes them. That is all
``sklearn.base.clone``, ``Pipeline`` and ``GridSearchCV`` need. Learned state ends in ``_``.
"""
import inspect

from npae.validation import InputError

#: Parameter docs that every model class shares, written once. A class docstring names the ones it
#: takes on a line ``.. shared:: dtype; seed; ...`` in its Parameters section; :func:`shared_docs`
#: puts the text there (``help(npae.VAE)`` shows it whole).
SHARED_PARAMS = {
    "dtype": ('dtype : "float64" | "float32"',
              "Floating-point type of the parameters and of every computation."),
    "seed": ("seed : int or None",
             "Seeds ``self.rng``: initial weights, minibatch order and every training draw (eps, "
             "corruptions). Evaluation and sampling draw from streams of their own derived from it, "
             "never from ``self.rng``."),
    "slope, alpha": ("slope, alpha : float", "Leak slope of leaky_relu and α of elu, wherever those "
                                             "activations are used."),
    "random_state": ("random_state : int or None", "scikit-learn's name for ``seed``; when given it wins."),
    "warm_start": ("warm_start : bool",
                   "``fit`` continues from the current weights instead of starting again from the seed."),
    "training": ("epochs, batch_size, lr, optimizer, verbose, callbacks",
                 "The training settings (defaults: npae.constants, shared by every estimator): passes "
                 "over the data (``epochs`` counts from the start, also when resuming), examples per "
                 "step, learning rate, ``\"sgd\" | \"momentum\" | \"adam\" | \"adagrad\" | "
                 "\"rmsprop\"`` or an npae.training.optim.Optimizer (copied at each fit); ``verbose`` "
                 "0 silent, 1 a progress bar on a terminal and one summary line, 2 also the "
                 "per-epoch log line (True/False mean 1/0; ``\"auto\"``: 1, but 0 in a copy made by "
                 "sklearn.base.clone, as GridSearchCV and cross_validate make); ``callbacks`` a list of "
                 "npae.training.callbacks objects. ``fit(X, epochs=..., ...)`` overrides any of them "
                 "for that call only. See docs/training.md."),
}


def shared_docs(cls):
    """Class decorator: replace a docstring line ``.. shared:: a; b`` by the docs of the shared
    parameters ``a`` and ``b`` (:data:`SHARED_PARAMS`), at that line's indentation."""
    import textwrap
    lines = []
    for line in (cls.__doc__ or "").splitlines():
        if line.strip().startswith(".. shared::"):
            indent = line[:len(line) - len(line.lstrip())]
            names = [n.strip() for n in line.split("::", 1)[1].split(";")]
            for name in names:
                head, body = SHARED_PARAMS[name]
                lines.append(indent + head)
                lines += textwrap.wrap(body, 96, initial_indent=indent + "    ",
                                       subsequent_indent=indent + "    ")
        else:
            lines.append(line)
    cls.__doc__ = "\n".join(lines)
    return cls


class ParamsMixin:
    """``get_params`` / ``set_params`` from the constructor's signature (no ``*args``/``**kwargs``)."""

    #: parameters whose change leaves the built network valid (a warm start continues from it)
    _NO_REBUILD = ()

    @classmethod
    def _get_param_names(cls):
        """The constructor's parameter names, sorted (scikit-learn's order)."""
        signature = inspect.signature(cls.__init__)
        names = [p.name for p in signature.parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return sorted(names)

    def get_params(self, deep=True):
        """The constructor's arguments as currently set, ``{name: value}``. With ``deep``, an
        argument that is itself an estimator contributes its own parameters as ``name__param``."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor arguments (``name=value``, or ``name__param=value`` for a nested
        estimator); returns ``self``. Takes effect at the next ``fit``, which rebuilds the model."""
        valid = self._get_param_names()
        settings_only = all(key in self._NO_REBUILD for key in params)
        nested = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise InputError(f"invalid parameter {name!r} for {type(self).__name__}; valid "
                                 f"parameters: {', '.join(valid)}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        if not settings_only:  # a training setting does not change the network
            self._params_changed()
        return self

    def __sklearn_clone__(self):
        """What ``sklearn.base.clone`` returns: a new estimator with the same parameters (each
        cloned, as clone does), marked as a copy, so that ``verbose="auto"`` keeps its fits quiet
        inside a meta-estimator (GridSearchCV, cross_validate), which reports them itself. An
        explicit ``verbose=1`` or ``2`` still prints."""
        from sklearn.base import clone

        params = {name: clone(value, safe=False) for name, value in self.get_params(deep=False).items()}
        new = type(self)(**params)
        new._sklearn_copy = True
        return new

    def _params_changed(self):
        """Hook: called by :meth:`set_params` (models mark themselves for a rebuild at ``fit``)."""

    def __sklearn_tags__(self):
        """The tags scikit-learn's tools read (only they call this, so scikit-learn is there): a
        transformer (every npae estimator has ``transform``), no target required, float data
        without NaN; ``preserves_dtype`` the model's dtype."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        dtype = getattr(self, "dtype", "float64")
        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[str(dtype)]),
                    input_tags=InputTags(allow_nan=False))

    def __repr__(self):
        """``Class(arg=value, ...)`` for the arguments that differ from the constructor's defaults,
        in the constructor's order (scikit-learn's convention: the repr says what was chosen)."""
        shown = []
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            value = getattr(self, p.name)
            if not _same(value, p.default):
                shown.append(f"{p.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b
