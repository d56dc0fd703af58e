"""Optimizers. Each sees matching ``params``/``grads`` dicts and updates the arrays **in place**.

The update rules themselves are the plain functions of :mod:`npae.pairs.updates` (the reading surface of
docs/derivations/opt.md); the classes here keep the state (moments, step count) per parameter name
and call them. Adam's update is a unit of the backend (:mod:`npae.backend`): under ``reference`` it
is :func:`npae.pairs.updates.adam_update`, under ``fused`` one numba pass.

Weight decay, where given, is the L2 penalty ``(wd / 2) ||p||²`` added to the loss, i.e.
``g ← g + wd · p`` before the update [OPT-1] (coupled, as in ``torch.optim`` without the "W").
State can be saved with :meth:`Optimizer.state_dict`, and a whole optimizer written to and rebuilt
from a checkpoint with :func:`payload` / :func:`from_payload`.
"""
import inspect

import numpy as np

from npae.pairs import updates
from npae.fast.backends import ops
from npae.constants import OPTIM_EPS
from npae.data.io import ModelFileError, encode_json
from npae.pairs.updates import adam_update  # noqa: F401 (the reference of the fused Adam, re-exported)
from npae.validation import check_choice, check_scalar, InputTypeError


class Optimizer:
    """Base class: holds the learning rate, weight decay, step count and per-name state slots."""

    slots = ()

    def __init__(self, lr, weight_decay=0.0):
        self.lr = check_scalar("lr", lr, low=0.0, low_open=True)
        self.weight_decay = check_scalar("weight_decay", weight_decay, low=0.0)
        self.t = 0
        self.state = {slot: {} for slot in self.slots}

    def _slot(self, slot, name, p):
        buf = self.state[slot].get(name)
        if buf is None:
            buf = self.state[slot][name] = np.zeros_like(p)
        return buf

    def step(self, params, grads, flat=None):
        """Update every array of ``params`` in place from the matching entry of ``grads``.

        ``flat``: a :class:`npae.models.layers.FlatParams` whose views ``params`` and ``grads`` are (the
        training loop checks); Adam then updates all parameters in one call, the others ignore it.
        """
        self.t += 1
        for name, p in params.items():
            self._update(name, p, updates.weight_decay(grads[name], p, self.weight_decay))

    def flat_state(self, flat):
        """The state slots as 1-D arrays laid out like ``flat.param_data`` (a
        :class:`npae.models.layers.FlatParams`), one per slot in ``slots`` order; their per-parameter views
        become the optimizer's state (what :meth:`state_dict` saves and the per-array updates use),
        so a step on the flat arrays and a step per array update the same numbers. Rebuilt,
        keeping the values already held, when ``flat`` or the state dicts change
        (:meth:`load_state_dict` makes new ones)."""
        key = (flat,) + tuple(self.state[slot] for slot in self.slots)
        cached = getattr(self, "_flat_key", None)
        if cached is None or len(cached) != len(key) or any(a is not b for a, b in zip(key, cached)):
            arrays = []
            for slot in self.slots:
                data = np.zeros_like(flat.param_data)
                for name, view in flat.split(data).items():
                    if name in self.state[slot]:
                        view[...] = self.state[slot][name]
                    self.state[slot][name] = view
                arrays.append(data)
            self._flat_key, self._flat_arrays = key, arrays
        return self._flat_arrays

    def state_dict(self):
        """Plain arrays and numbers describing the optimizer fully (for checkpoints)."""
        out = {"t": self.t}
        for slot, bufs in self.state.items():
            for name, buf in bufs.items():
                out[f"{slot}/{name}"] = buf.copy()
        return out

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        self.t = int(state["t"])
        self.state = {slot: {} for slot in self.slots}
        for key, value in state.items():
            if key == "t":
                continue
            slot, name = key.split("/", 1)
            if slot not in self.state:
                raise ValueError(f"optimizer state has unknown slot {slot!r} for {type(self).__name__}")
            self.state[slot][name] = np.array(value, copy=True)


class SGD(Optimizer):
    """p ← p − lr · g [OPT-2]."""

    def _update(self, name, p, g):
        updates.sgd_update(p, g, self.lr)


class Momentum(Optimizer):
    """Heavy-ball momentum v ← μ v + g, p ← p − lr · v [OPT-3]; with ``nesterov=True``
    p ← p − lr · (g + μ v) [OPT-4] (the look-ahead form used by PyTorch)."""

    slots = ("velocity",)

    def __init__(self, lr, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum = check_scalar("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.nesterov = bool(nesterov)

    def _update(self, name, p, g):
        updates.momentum_update(p, g, self._slot("velocity", name, p), self.lr, self.momentum,
                                self.nesterov)


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected first and second moments [OPT-5..7], through the backend's
    Adam unit (:func:`npae.pairs.updates.adam_update` under ``reference``)."""

    slots = ("m", "v")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=OPTIM_EPS, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.beta1 = check_scalar("beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = check_scalar("beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = check_scalar("eps", eps, low=0.0, low_open=True)

    def step(self, params, grads, flat=None):
        if flat is None:
            return super().step(params, grads)
        self.t += 1
        g = updates.weight_decay(flat.grad_data, flat.param_data, self.weight_decay)
        m, v = self._moments_like(flat)
        ops.adam_update(flat.param_data, g, m, v, self.lr, self.beta1, self.beta2, self.eps, self.t)

    def _moments_like(self, flat):
        """``m`` and ``v`` laid out like ``flat.param_data`` (see :meth:`Optimizer.flat_state`)."""
        return self.flat_state(flat)

    def _update(self, name, p, g):
        ops.adam_update(p, g, self._slot("m", name, p), self._slot("v", name, p), self.lr,
                        self.beta1, self.beta2, self.eps, self.t)


class Adagrad(Optimizer):
    """Adagrad: G ← G + g², p ← p − lr · g / (sqrt(G) + eps) [OPT-8]."""

    slots = ("sum_sq",)

    def __init__(self, lr=1e-2, eps=OPTIM_EPS, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.eps = check_scalar("eps", eps, low=0.0, low_open=True)

    def _update(self, name, p, g):
        updates.adagrad_update(p, g, self._slot("sum_sq", name, p), self.lr, self.eps)


class RMSprop(Optimizer):
    """RMSprop: s ← ρ s + (1 − ρ) g², p ← p − lr · g / (sqrt(s) + eps) [OPT-9]."""

    slots = ("sq_avg",)

    def __init__(self, lr=1e-3, rho=0.9, eps=OPTIM_EPS, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.rho = check_scalar("rho", rho, low=0.0, high=1.0, high_open=True)
        self.eps = check_scalar("eps", eps, low=0.0, low_open=True)

    def _update(self, name, p, g):
        updates.rmsprop_update(p, g, self._slot("sq_avg", name, p), self.lr, self.rho, self.eps)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam, "adagrad": Adagrad, "rmsprop": RMSprop}


def get_optimizer(optimizer, lr=1e-3):
    """Return an optimizer: an instance is returned as is, a name is built with ``lr``."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str):
        raise InputTypeError(f"optimizer must be a name or an npae.training.optim.Optimizer, got "
                             f"{optimizer!r}")
    check_choice("optimizer", optimizer.lower(), tuple(OPTIMIZERS))
    return OPTIMIZERS[optimizer.lower()](lr=lr)


# --------------------------------------------------------------------------------------------------
# An optimizer in a checkpoint
# --------------------------------------------------------------------------------------------------
def payload(opt):
    """``(meta, arrays)`` describing ``opt`` fully: class name, constructor hyperparameters, step
    count, and the state slots as ``optim/<slot>/<name>`` arrays (see :mod:`npae.data.io`)."""
    hyper = {}
    for name in list(inspect.signature(type(opt).__init__).parameters)[1:]:
        if hasattr(opt, name):
            hyper[name] = encode_json(getattr(opt, name), f"optimizer.{name}")
    state = opt.state_dict()
    arrays = {f"optim/{key}": np.asarray(value) for key, value in state.items() if key != "t"}
    meta = {"class": type(opt).__qualname__, "hyper": hyper, "t": int(state["t"])}
    return meta, arrays


def _optimizer_classes():
    found, todo = {}, [Optimizer]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__qualname__, cls)
        todo.extend(cls.__subclasses__())
    return found


#: The slots holding running sums or averages of squared gradients: never negative.
_SQUARE_SLOTS = ("v", "sum_sq", "sq_avg")
#: Largest step count a checkpoint may hold (2**53: every count below is exact in a float).
_MAX_STEPS = 1 << 53


def from_payload(meta, arrays, params, path):
    """Rebuild the optimizer that :func:`payload` described, for ``params``; ``path`` names the file
    in errors (:class:`npae.data.io.ModelFileError`, naming the field).

    Checks: ``meta`` is ``{"class", "hyper", "t"}`` with a known optimizer class, hyperparameters its
    constructor accepts and keeps as given (so ``nesterov="yes"`` is refused, not read as True),
    a step count ``0 <= t <= 2**53``; the state arrays are ``optim/<slot>/<name>`` for the class's
    slots and the names of ``params``, each of its parameter's shape and dtype (finite: npae.data.io
    refuses NaN and inf), sums of squares non-negative, and either every slot of every parameter
    is there or, before the first step (``t == 0``), none.
    """
    def refuse(message):
        raise ModelFileError(f"{path}: optimizer state: {message}")

    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: no optimizer state (not a checkpoint)")
    if set(meta) != {"class", "hyper", "t"}:
        refuse(f"fields must be class, hyper and t, got {sorted(meta)[:10]}")
    name = meta["class"]
    cls = _optimizer_classes().get(name) if isinstance(name, str) else None
    if cls is None or cls is Optimizer:
        raise ModelFileError(f"{path}: unknown optimizer class {name!r:.60}")
    hyper, t = meta["hyper"], meta["t"]
    if not isinstance(hyper, dict):
        refuse(f"'hyper' must be an object, got {hyper!r:.60}")
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= _MAX_STEPS:
        refuse(f"step count 't' must be an integer in [0, 2**53], got {t!r:.60}")
    try:
        opt = cls(**hyper)
    except (TypeError, ValueError, OverflowError) as err:
        raise ModelFileError(f"{path}: cannot rebuild optimizer {cls.__name__}: {str(err)[:200]}") from None
    if payload(opt)[0]["hyper"] != hyper:
        refuse(f"hyperparameters {hyper!r:.200} do not round-trip through {cls.__name__} (a value "
               f"of the wrong type, or an unknown name)")
    state = {"t": t}
    for key, value in arrays.items():
        if not key.startswith("optim/"):
            continue
        slot, _, pname = key[len("optim/"):].partition("/")
        if slot not in cls.slots or pname not in params:
            raise ModelFileError(f"{path}: unexpected optimizer state {key!r} for {cls.__name__} "
                                 f"(slots {cls.slots}) and this model's parameters")
        if value.shape != params[pname].shape or value.dtype != params[pname].dtype:
            raise ModelFileError(f"{path}: optimizer state {key!r} has shape {value.shape} "
                                 f"{value.dtype}; parameter {pname!r} is {params[pname].shape} "
                                 f"{params[pname].dtype}")
        if not np.isfinite(value).all():
            refuse(f"{key!r} holds NaN or inf")
        if slot in _SQUARE_SLOTS and (value < 0).any():
            refuse(f"{key!r} is a running sum of squares but holds negative entries")
        state[key[len("optim/"):]] = value
    expected = {f"{slot}/{pname}" for slot in cls.slots for pname in params}
    present = set(state) - {"t"}
    if present != expected and (present or t > 0):
        missing = sorted(expected - present)
        refuse(f"{cls.__name__} after {t} steps needs every slot of every parameter; missing "
               f"{missing[:6]}")
    opt.load_state_dict(state)
    return opt
