"""Finite-difference gradient checks, part of the library.

Everything here works in float64 only and uses fourth-order central differences

    f'(x) ≈ [f(x − 2h) − 8 f(x − h) + 8 f(x + h) − f(x + 2h)] / 12h        (error O(h⁴))

symmetric about x like the two-point ``(f(x + h) − f(x − h)) / 2h`` (error O(h²)), never one-sided
(error O(h)). The higher order lets h be 1e-4, which cuts the round-off ``eps · |f| / h`` by 100
compared with the two-point rule at h = 1e-6 (see constants.GRADCHECK_STEP and docs/testing.md).

Relative error, as used throughout npae::

    rel_error(a, n) = max_k |a_k − n_k| / max(max_k |a_k|, max_k |n_k|)

i.e. the worst entry's error measured against the largest gradient entry of the same array. The
round-off of a central difference is about ``machine_eps · |f| / h`` whatever the entry, so dividing
entry by entry would flag tiny entries of a correct gradient; dividing by the array's scale does not,
and still flags any backward that is wrong by 0.1% (see tests/test_gradcheck.py). Read more in
docs/testing.md.
"""
import numpy as np

from npae.constants import GRADCHECK_STEP, GRADCHECK_TOL


def rel_error(a, n):
    """Max absolute difference relative to the largest magnitude in either array (0 if both are 0)."""
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"shapes differ: analytic {a.shape} vs numerical {n.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(n)))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a - n)) / scale)


def _require_float64(x, what):
    if np.asarray(x).dtype != np.float64:
        raise TypeError(f"gradient checks run in float64 only; {what} has dtype {np.asarray(x).dtype}")


def central_difference(f, h=GRADCHECK_STEP):
    """The fourth-order central difference of the scalar function ``f(t)`` at t = 0."""
    f_m2, f_m1, f_p1, f_p2 = f(-2.0 * h), f(-h), f(h), f(2.0 * h)
    # differences first: a constant f gives exactly 0, and no large cancelling sums are formed
    return (8.0 * (f_p1 - f_m1) - (f_p2 - f_m2)) / (12.0 * h)


def numerical_gradient(f, x, h=GRADCHECK_STEP):
    """Central-difference gradient of the scalar ``f(x)`` with respect to the array ``x``.

    ``x`` is perturbed **in place**, one entry at a time, and restored exactly, so ``f`` may read
    ``x`` through a closure (a model's parameter, say) or take it as its argument.
    """
    _require_float64(x, "x")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        k = it.multi_index
        old = x[k]

        def shifted(t):
            x[k] = old + t
            return f(x)

        grad[k] = central_difference(shifted, h)
        x[k] = old
    return grad


def directional_check(F, x, vjp, *, rng=None, h=GRADCHECK_STEP):
    """Dot-product test of a vector-Jacobian product, for inputs too large to check entry by entry.

    With random ``u`` (shaped like ``x``) and ``v`` (shaped like ``F(x)``), compares
    ``⟨v, J u⟩``, from one central difference along ``u``, with ``⟨u, Jᵀ v⟩ = ⟨u, vjp(v)⟩``.
    Returns the relative error of the two numbers.
    """
    _require_float64(x, "x")
    rng = np.random.default_rng(rng)
    u = rng.standard_normal(x.shape)
    v = rng.standard_normal(np.shape(F(x)))
    Ju = central_difference(lambda t: F(x + t * u), h)
    lhs = float(np.sum(v * Ju))
    rhs = float(np.sum(u * vjp(v)))
    scale = max(abs(lhs), abs(rhs))
    return 0.0 if scale == 0.0 else abs(lhs - rhs) / scale


class GradcheckReport:
    """Rows of (name, max relative error); ``ok`` when every row is within ``tol``.

    ``print(report)`` gives a table a student can read::

        name        | max rel error | ok
        encoder.0.W | 3.1e-10       | yes
    """

    def __init__(self, rows, tol=GRADCHECK_TOL):
        self.rows = [(str(name), float(err)) for name, err in rows]
        self.tol = tol

    @property
    def ok(self):
        return all(err <= self.tol for _, err in self.rows)

    @property
    def max_error(self):
        return max((err for _, err in self.rows), default=0.0)

    def __str__(self):
        width = max([len("name")] + [len(n) for n, _ in self.rows])
        lines = [f"{'name':<{width}} | max rel error | ok"]
        for name, err in self.rows:
            lines.append(f"{name:<{width}} | {err:<13.2e} | {'yes' if err <= self.tol else 'NO'}")
        return "\n".join(lines)

    __repr__ = __str__

    def assert_ok(self):
        """Raise AssertionError with the table if any row exceeds the tolerance."""
        if not self.ok:
            raise AssertionError(f"gradient check failed (tol {self.tol:g}):\n{self}")
        return self


def check_pair(forward, backward, args, *, wrt=None, names=None, kwargs=None, rng=None,
               h=GRADCHECK_STEP, tol=GRADCHECK_TOL):
    """Check a pure forward/backward pair against central differences.

    ``forward(*args, **kwargs) -> (y, cache)`` and ``backward(dy, cache) -> grad or tuple of grads``,
    one gradient per argument listed in ``wrt`` (default: every argument, in order). The scalar
    checked is ``L = Σ y ⊙ dy`` with a fixed random ``dy``, whose gradient is exactly what
    ``backward(dy, cache)`` must return.
    """
    kwargs = kwargs or {}
    args = [np.array(a, dtype=np.float64, copy=True) for a in args]
    wrt = tuple(range(len(args))) if wrt is None else tuple(wrt)
    names = names or [f"arg{i}" for i in wrt]
    rng = np.random.default_rng(rng)
    y, cache = forward(*args, **kwargs)
    dy = rng.standard_normal(np.shape(y))
    grads = backward(dy, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(wrt):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(wrt)} inputs")

    def scalar(_):
        return float(np.sum(forward(*args, **kwargs)[0] * dy))

    rows = []
    for name, i, g in zip(names, wrt, grads):
        rows.append((name, rel_error(g, numerical_gradient(scalar, args[i], h))))
    return GradcheckReport(rows, tol)


def check_function(f, args, grads, *, names=None, h=GRADCHECK_STEP, tol=GRADCHECK_TOL):
    """Check analytic ``grads`` of a scalar function ``f(*args)`` (a loss, a penalty)."""
    args = [np.array(a, dtype=np.float64, copy=True) for a in args]
    names = names or [f"arg{i}" for i in range(len(args))]
    rows = []
    for i, (name, g) in enumerate(zip(names, grads)):
        if g is None:
            continue
        rows.append((name, rel_error(g, numerical_gradient(lambda _: float(f(*args)), args[i], h))))
    return GradcheckReport(rows, tol)


def check_model(model, x, *, h=GRADCHECK_STEP, tol=GRADCHECK_TOL, **fixed_inputs):
    """Compare ``model.loss_and_grads(x, **fixed_inputs)`` with central differences for every
    entry of every array in ``model.params``.

    Models that draw noise inside a step (a VAE's ``eps``, a denoising model's ``x_noisy``) list it in
    ``model.stochastic_inputs``; it must be passed here, fixed, or the loss would change between the
    two sides of each difference. The model must be float64.
    """
    missing = [k for k in getattr(model, "stochastic_inputs", ()) if fixed_inputs.get(k) is None]
    if missing:
        raise ValueError(f"check_model needs fixed noise for {missing}: without it each loss "
                         f"evaluation draws new noise and the finite differences mean nothing")
    params = model.params
    for name, p in params.items():
        _require_float64(p, f"parameter {name!r}")
    _, grads = model.loss_and_grads(x, **fixed_inputs)
    grads = {name: np.array(g, copy=True) for name, g in grads.items()}
    if set(grads) != set(params):
        raise ValueError(f"grads keys {sorted(grads)} differ from params keys {sorted(params)}")

    def loss(_):
        return float(model.loss_and_grads(x, **fixed_inputs)[0])

    rows = [(name, rel_error(grads[name], numerical_gradient(loss, p, h))) for name, p in params.items()]
    return GradcheckReport(rows, tol)
