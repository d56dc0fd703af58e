"""Planar flows, MADE and IAF (npae/pairs/flows.py): gradient checks of every pair, log-determinants
against numerical Jacobians, invertibility, the autoregressive structure and the density bookkeeping."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from npae.pairs import flows as fl
from npae.gradcheck import central_difference, check_pair

seeds = st.integers(0, 2**31 - 1)


def _two_output_pair(forward, backward):
    """check_pair wants one output array: concatenate (out1, out2) forward, split the cotangent back."""
    def fwd(*args):
        (y1, y2), cache = forward(*args)
        return np.concatenate([y1.ravel(), np.ravel(y2)]), (cache, y1.shape, np.shape(y2))

    def bwd(dy, c):
        cache, s1, s2 = c
        n = int(np.prod(s1))
        return backward((dy[:n].reshape(s1), dy[n:].reshape(s2)), cache)
    return fwd, bwd


def _numerical_jacobian(f, z_row):
    """J[i, j] = ∂f(z)_i/∂z_j for one example, by central differences."""
    Z = z_row.shape[0]
    J = np.zeros((Z, Z))
    for j in range(Z):
        e = np.zeros(Z)
        e[j] = 1.0
        J[:, j] = central_difference(lambda t: f(z_row + t * e))
    return J


def _planar_params(rng, Z, u_scale, w_scale, measurable=True):
    """u, w, b of one planar flow, with w kept away from 0 (û divides by ‖w‖²).

    With ``measurable``, u is flipped when wᵀu < −6. Far below that, the only part of û that
    depends on u along w is softplus(wᵀu) ~ e^{wᵀu}: for Z = 1 the whole gradient with respect to u
    is that small, below what any finite difference can resolve next to the function's value (as
    for a saturated tanh, tests/conftest.off_kink). The invertibility test draws without it.
    """
    u = u_scale * rng.standard_normal(Z)
    w = w_scale * rng.standard_normal(Z)
    w += np.where(w >= 0, 0.2, -0.2)
    if measurable and w @ u < -6.0:
        u = -u
    return u, w, rng.standard_normal(1)


def _unsaturated(z, flows, limit=5.0):
    """True when every pre-activation a = z w + b of the planar stack stays within ±limit: past that
    tanh' < 2e−4 and the gradients through it are below what central differences resolve
    (tests/conftest.off_kink)."""
    for u, w, b in flows:
        if np.max(np.abs(z @ w + b)) > limit:
            return False
        (z, _), _ = fl.planar_forward(z, u, w, b)
    return True


# ---------------------------------------------------------------- planar flow [FLOW-1..6]
@settings(max_examples=25)
@given(Z=st.integers(1, 5), u_scale=st.floats(0.1, 10.0), w_scale=st.floats(0.1, 3.0), seed=seeds)
def test_planar_uhat_pair_gradcheck(Z, u_scale, w_scale, seed):
    """Checks [FLOW-2] against central differences of [FLOW-1]."""
    u, w, _ = _planar_params(np.random.default_rng(seed), Z, u_scale, w_scale)
    check_pair(*_two_output_pair(fl.planar_uhat_forward, fl.planar_uhat_backward), [u, w],
               names=["u", "w"], rng=seed).assert_ok()


@settings(max_examples=25)
@given(B=st.integers(1, 4), Z=st.integers(1, 4), u_scale=st.floats(0.1, 3.0),
       w_scale=st.floats(0.1, 2.0), seed=seeds)
def test_planar_pair_gradcheck(B, Z, u_scale, w_scale, seed):
    """Checks [FLOW-5], [FLOW-6] against central differences of [FLOW-3], [FLOW-4]."""
    rng = np.random.default_rng(seed)
    u, w, b = _planar_params(rng, Z, u_scale, w_scale)
    z = rng.standard_normal((B, Z))
    assume(_unsaturated(z, [(u, w, b)]))
    check_pair(*_two_output_pair(fl.planar_forward, fl.planar_backward), [z, u, w, b],
               names=["z", "u", "w", "b"], rng=seed).assert_ok()


def test_a_planar_backward_wrong_by_a_tenth_of_a_percent_fails():
    rng = np.random.default_rng(0)
    u, w, b = _planar_params(rng, 3, 1.0, 1.0)
    z = rng.standard_normal((4, 3))

    def wrong_backward(dout, cache):
        dz, du, dw, db = fl.planar_backward(dout, cache)
        return dz, du, 1.001 * dw, db

    args = [z, u, w, b]
    good = check_pair(*_two_output_pair(fl.planar_forward, fl.planar_backward), args, rng=0)
    bad = check_pair(*_two_output_pair(fl.planar_forward, wrong_backward), args, rng=0)
    assert good.ok and not bad.ok


@settings(max_examples=15)
@given(B=st.integers(1, 3), Z=st.integers(1, 3), K=st.integers(1, 3), scale=st.floats(0.2, 2.0), seed=seeds)
def test_planar_stack_gradcheck(B, Z, K, scale, seed):
    """Checks the stack's backward against central differences, and [FLOW-7]'s bookkeeping: the stack
    applies the flows in turn and its logdet is their sum.
    """
    rng = np.random.default_rng(seed)
    flows = [_planar_params(rng, Z, scale, scale) for _ in range(K)]
    z = rng.standard_normal((B, Z))
    assume(_unsaturated(z, flows))

    def forward(z, *arrays):
        return fl.planar_stack_forward(z, [arrays[3 * k:3 * k + 3] for k in range(K)])

    def backward(dout, cache):
        dz, grads = fl.planar_stack_backward(dout, cache)
        return (dz,) + tuple(g for flow in grads for g in flow)

    args = [z] + [a for flow in flows for a in flow]
    names = ["z"] + [f"{n}{k}" for k in range(K) for n in "uwb"]
    check_pair(*_two_output_pair(forward, backward), args, names=names, rng=seed).assert_ok()
    # the stack is the flows applied one after another, and its logdet their sum [FLOW-7]
    (z_K, logdet_sum), _ = fl.planar_stack_forward(z, flows)
    total = np.zeros(B)
    for u, w, b in flows:
        (z, logdet), _ = fl.planar_forward(z, u, w, b)
        total += logdet
    np.testing.assert_allclose(z_K, z, rtol=1e-14)
    np.testing.assert_allclose(logdet_sum, total, rtol=1e-13, atol=1e-15)


@settings(max_examples=20)
@given(B=st.integers(1, 3), Z=st.integers(1, 4), u_scale=st.floats(0.1, 3.0),
       w_scale=st.floats(0.1, 2.0), seed=seeds)
def test_planar_logdet_is_log_abs_det_of_the_numerical_jacobian(B, Z, u_scale, w_scale, seed):
    """Checks [FLOW-4] against log|det| of a numerical Jacobian of [FLOW-3]."""
    rng = np.random.default_rng(seed)
    u, w, b = _planar_params(rng, Z, u_scale, w_scale)
    z = rng.standard_normal((B, Z))
    assume(_unsaturated(z, [(u, w, b)]))
    (_, logdet), _ = fl.planar_forward(z, u, w, b)
    for i in range(B):
        J = _numerical_jacobian(lambda r: fl.planar_forward(r[None], u, w, b)[0][0][0], z[i])
        sign, want = np.linalg.slogdet(J)
        assert sign > 0
        np.testing.assert_allclose(logdet[i], want, rtol=1e-8, atol=1e-9)


@settings(max_examples=50)
@given(Z=st.integers(1, 5), u_scale=st.floats(0.01, 50.0), w_scale=st.floats(0.01, 10.0),
       b=st.floats(-20.0, 20.0), seed=seeds)
def test_planar_uhat_makes_the_flow_invertible_for_any_u_and_w(Z, u_scale, w_scale, b, seed):
    """Checks [FLOW-1]: w·û >= −1 whatever u and w."""
    rng = np.random.default_rng(seed)
    u, w, _ = _planar_params(rng, Z, u_scale, w_scale, measurable=False)
    assume(w @ u > fl.PLANAR_ALPHA_MIN)  # below it softplus(wᵀu) underflows to 0 in float64
    (uhat, margin), _ = fl.planar_uhat_forward(u, w)
    assert margin > 0.0
    assert w @ uhat >= -1.0 - 1e-12 * (abs(w @ u) + 1.0)  # wᵀû = m(wᵀu) > −1 up to rounding
    rounding = 1e-12 * (np.abs(w) @ np.abs(u) + 1.0)
    np.testing.assert_allclose(w @ uhat, margin - 1.0, atol=rounding)
    # 1 + ûᵀψ > 0 for every point, including where h' = 1 (a = 0) and where tanh saturates
    a = np.concatenate([[0.0], np.linspace(-30.0, 30.0, 121)])
    z = np.outer(a - b, w) / (w @ w)  # rows with z w + b = a
    (_, logdet), _ = fl.planar_forward(z, u, w, np.array([b]))
    assert np.all(np.isfinite(logdet))
    # the scalar map s → s + (wᵀû) tanh(s) that the flow applies along w is strictly increasing
    s = np.linspace(-10.0, 10.0, 2001)
    assert np.all(np.diff(s + (margin - 1.0) * np.tanh(s)) > 0.0)


def test_planar_uhat_changes_u_only_along_w():
    w = np.array([1.0, 2.0, -0.5])
    for along in (-5.0, -1.0, 0.0, 10.0):  # wᵀu = along
        u = along * w / (w @ w) + np.array([2.0, -1.0, 0.0])
        (uhat, margin), _ = fl.planar_uhat_forward(u, w)
        perp = lambda v: v - (v @ w) / (w @ w) * w  # noqa: E731
        np.testing.assert_allclose(perp(uhat), perp(u), atol=1e-14)
        np.testing.assert_allclose(w @ uhat, -1.0 + np.log1p(np.exp(along)), rtol=1e-13)  # m(wᵀu)
        assert w @ uhat > -1.0 and margin > 0.0


# ---------------------------------------------------------------- density bookkeeping [FLOW-7]
def test_flow_density_on_a_1d_grid_integrates_to_one_and_matches_change_of_variables():
    """Checks [FLOW-7]: log q_K = log q_0 − Σ logdet integrates to one and is the change of variables."""
    flows = [(np.array([1.5]), np.array([2.0]), np.array([0.3])),  # stretches by up to 3.05
             (np.array([-0.6]), np.array([1.5]), np.array([-0.5])),  # squeezes by down to 0.36
             (np.array([1.0]), np.array([-1.0]), np.array([0.0]))]
    mu0, sd0 = 0.3, 0.8

    def forward(z0):
        return fl.planar_stack_forward(z0[:, None], flows)[0]  # (z_K (n, 1), logdet_sum (n,))

    # a uniform grid in z_K and its preimage by bisection (the 1-D flow is increasing)
    lo, hi = mu0 - 9 * sd0, mu0 + 9 * sd0
    zK = np.linspace(forward(np.array([lo]))[0][0, 0], forward(np.array([hi]))[0][0, 0], 20001)
    a, c = np.full_like(zK, lo), np.full_like(zK, hi)
    for _ in range(80):
        mid = 0.5 * (a + c)
        above = forward(mid)[0][:, 0] > zK
        a, c = np.where(above, a, mid), np.where(above, mid, c)
    z0 = 0.5 * (a + c)
    np.testing.assert_allclose(forward(z0)[0][:, 0], zK, atol=1e-12)

    log_q0 = norm.logpdf(z0, mu0, sd0)
    logdet_sum = forward(z0)[1]
    q_K = np.exp(fl.flow_log_density(log_q0, logdet_sum))  # [FLOW-7]
    # change of variables with the derivative of the inverse map taken numerically on the grid
    # (fourth-order central differences on the interior of the grid)
    step = zK[1] - zK[0]
    dz0 = (8.0 * (z0[3:-1] - z0[1:-3]) - (z0[4:] - z0[:-4])) / (12.0 * step)
    q_grid = np.exp(log_q0[2:-2]) * dz0
    np.testing.assert_allclose(q_K[2:-2], q_grid, rtol=1e-7, atol=1e-14)
    np.testing.assert_allclose(np.trapezoid(q_K, zK), 1.0, atol=1e-7)
    # the other sign is not a density: it does not integrate to 1
    wrong = np.exp(log_q0 + logdet_sum)
    assert abs(np.trapezoid(wrong, zK) - 1.0) > 0.05


# ---------------------------------------------------------------- MADE [FLOW-8..12]
def _order(Z, seed):
    return 1 + np.random.default_rng(seed).permutation(Z)


@settings(max_examples=30)
@given(Z=st.integers(1, 6), H=st.integers(1, 8), drawn=st.booleans(), seed=seeds)
def test_made_masks_connect_only_earlier_inputs(Z, H, drawn, seed):
    """Checks [FLOW-8], [FLOW-9]."""
    order = _order(Z, seed)
    rng = np.random.default_rng(seed) if drawn else None
    M1, M2 = fl.made_masks(Z, H, order, rng)
    assert M1.shape == (Z, H) and M2.shape == (H, Z)
    paths = M1 @ M2  # paths[i, d]: hidden units through which input i reaches output d
    earlier = order[:, None] < order[None, :]
    assert np.all(paths[~earlier] == 0)
    if not drawn and H >= Z - 1:  # cyclic degrees cover 1..Z−1: every allowed pair is connected
        assert np.all(paths[earlier] > 0)
    # deterministic: the same order (and seed) gives the same masks
    M1b, M2b = fl.made_masks(Z, H, order, np.random.default_rng(seed) if drawn else None)
    np.testing.assert_array_equal(M1, M1b)
    np.testing.assert_array_equal(M2, M2b)


def test_made_degrees_refuse_an_order_that_is_not_a_permutation():
    with pytest.raises(ValueError, match="permutation"):
        fl.made_degrees(3, 4, order=[1, 1, 3])


@settings(max_examples=20)
@given(B=st.integers(1, 4), n_in=st.integers(1, 4), n_out=st.integers(1, 4), seed=seeds)
def test_masked_dense_pair_gradcheck(B, n_in, n_out, seed):
    """Checks [FLOW-11] against central differences of [FLOW-10]."""
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((B, n_in)), rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
    mask = (rng.uniform(size=(n_in, n_out)) < 0.6).astype(float)
    check_pair(lambda x_, W_, b_: fl.masked_dense_forward(x_, W_, b_, mask), fl.masked_dense_backward,
               [x, W, b], names=["x", "W", "b"], rng=seed).assert_ok()
    _, cache = fl.masked_dense_forward(x, W, b, mask)
    _, dW, _ = fl.masked_dense_backward(rng.standard_normal((B, n_out)), cache)
    assert np.all(dW[mask == 0] == 0.0)


def _made_pair(keys, masks, with_context):
    """made_forward/backward with the parameters as positional arrays, for check_pair."""
    def forward(z, context, *arrays):
        return fl.made_forward(z, dict(zip(keys, arrays)), masks, context if with_context else None)

    def backward(dout, cache):
        dz, grads, dcontext = fl.made_backward(dout, cache)
        return (dz, dcontext if with_context else np.zeros((dz.shape[0], 1))) + tuple(grads[k] for k in keys)
    return forward, backward


def _iaf_pair(keys, masks, with_context):
    def forward(z, context, *arrays):
        return fl.iaf_forward(z, dict(zip(keys, arrays)), masks, context if with_context else None)

    def backward(dout, cache):
        dz, grads, dcontext = fl.iaf_backward(dout, cache)
        return (dz, dcontext if with_context else np.zeros((dz.shape[0], 1))) + tuple(grads[k] for k in keys)
    return forward, backward


def _made_setup(rng, B, Z, H, C, scale, seed):
    masks = fl.made_masks(Z, H, _order(Z, seed))
    params = fl.made_init(rng, Z, H, C, scale=scale)
    params["b1"] = 0.3 * rng.standard_normal(H)
    params["b2"] = params["b2"] + 0.3 * rng.standard_normal(2 * Z)
    z = rng.standard_normal((B, Z))
    context = rng.standard_normal((B, max(C, 1)))
    return masks, params, z, context


@settings(max_examples=20)
@given(B=st.integers(1, 3), Z=st.integers(1, 4), H=st.integers(1, 5), C=st.integers(0, 2),
       scale=st.floats(0.2, 1.5), seed=seeds)
def test_made_and_iaf_pairs_gradcheck(B, Z, H, C, scale, seed):
    """Checks the backward of [FLOW-12] and [FLOW-15] against central differences of MADE and of one IAF
    step [FLOW-13].
    """
    rng = np.random.default_rng(seed)
    masks, params, z, context = _made_setup(rng, B, Z, H, C, scale, seed)
    keys = sorted(params)
    args = [z, context] + [params[k] for k in keys]
    names = ["z", "context"] + keys
    for pair in (_made_pair, _iaf_pair):
        fwd, bwd = _two_output_pair(*pair(keys, masks, C > 0))
        report = check_pair(fwd, bwd, args, names=names, rng=seed)
        report.assert_ok()


@settings(max_examples=15)
@given(B=st.integers(1, 3), Z=st.integers(1, 3), H=st.integers(1, 4), K=st.integers(1, 3),
       C=st.integers(0, 2), scale=st.floats(0.2, 1.5), seed=seeds)
def test_iaf_stack_gradcheck(B, Z, H, K, C, scale, seed):
    """The IAF stack, the context shared by every step [FLOW-7], [FLOW-15]: checked against central
    differences for z, the context and every step's parameters; and it is the steps one after the
    other, with the logdets summed and the context's gradients added."""
    rng = np.random.default_rng(seed)
    steps = [_made_setup(rng, B, Z, H, C, scale, seed + k)[:2] for k in range(K)]  # (masks, params)
    keys = sorted(steps[0][1])
    z = rng.standard_normal((B, Z))
    context = rng.standard_normal((B, max(C, 1)))

    def forward(z, context, *arrays):
        stack = [(dict(zip(keys, arrays[k * len(keys):(k + 1) * len(keys)])), steps[k][0]) for k in range(K)]
        return fl.iaf_stack_forward(z, stack, context if C else None)

    def backward(dout, cache):
        dz, grads, dcontext = fl.iaf_stack_backward(dout, cache)
        dcontext = dcontext if C else np.zeros((B, 1))
        return (dz, dcontext) + tuple(g[key] for g in grads for key in keys)

    args = [z, context] + [params[key] for _, params in steps for key in keys]
    names = ["z", "context"] + [f"{key}{k}" for k in range(K) for key in keys]
    check_pair(*_two_output_pair(forward, backward), args, names=names, rng=seed).assert_ok()
    (z_K, logdet_sum), _ = fl.iaf_stack_forward(z, [(p, m) for m, p in steps], context if C else None)
    total, zk = np.zeros(B), z
    for masks, params in steps:
        (zk, logdet), _ = fl.iaf_forward(zk, params, masks, context if C else None)
        total += logdet
    np.testing.assert_allclose(z_K, zk, rtol=1e-14)
    np.testing.assert_allclose(logdet_sum, total, rtol=1e-13, atol=1e-15)


@settings(max_examples=20)
@given(Z=st.integers(1, 5), H=st.integers(1, 6), C=st.integers(0, 2), scale=st.floats(0.3, 1.5), seed=seeds)
def test_made_and_iaf_jacobians_are_triangular_in_the_order(Z, H, C, scale, seed):
    """Checks [FLOW-12], [FLOW-13]: each output depends only on earlier inputs in the order.
    Checks [FLOW-14]: the IAF Jacobian's diagonal is σ and its logdet Σ log σ.
    """
    rng = np.random.default_rng(seed)
    masks, params, z, context = _made_setup(rng, 1, Z, H, C, scale, seed)
    ctx = context if C else None
    order = _order(Z, seed)
    later_or_same = order[None, :] >= order[:, None]  # [d, d']: z_d' is not before z_d
    for block in (0, 1):  # m and s
        J = _numerical_jacobian(lambda r: fl.made_forward(r[None], params, masks, ctx)[0][block][0], z[0])
        assert np.all(J[later_or_same] == 0.0), J  # exactly: those weights are masked
    # IAF: the same structure plus the diagonal σ, so log|det J| = Σ log σ [FLOW-14]
    J = _numerical_jacobian(lambda r: fl.iaf_forward(r[None], params, masks, ctx)[0][0][0], z[0])
    (_, s), _ = fl.made_forward(z, params, masks, ctx)
    sig = 1.0 / (1.0 + np.exp(-s[0]))
    np.testing.assert_allclose(np.diag(J), sig, rtol=1e-9)
    off = later_or_same & ~np.eye(Z, dtype=bool)
    assert np.all(J[off] == 0.0)
    (_, logdet), _ = fl.iaf_forward(z, params, masks, ctx)
    sign, want = np.linalg.slogdet(J)
    assert sign > 0
    np.testing.assert_allclose(logdet[0], want, rtol=1e-8, atol=1e-9)


def test_made_outputs_depend_on_every_earlier_input():
    """With cyclic degrees and H ≥ Z − 1, the Jacobian is nonzero below the diagonal (in the order)."""
    rng = np.random.default_rng(0)
    Z, H = 4, 6
    order = np.array([3, 1, 4, 2])
    masks = fl.made_masks(Z, H, order)
    params = fl.made_init(rng, Z, H, scale=1.0)
    z = rng.standard_normal(Z)
    J = _numerical_jacobian(lambda r: fl.made_forward(r[None], params, masks)[0][0][0], z)
    earlier = order[None, :] < order[:, None]  # [d, d']: z_d' comes before z_d
    assert np.all(np.abs(J[earlier]) > 1e-8) and np.all(J[~earlier] == 0.0)


def test_iaf_inverse_undoes_a_step_and_the_2d_density_integrates_to_one():
    rng = np.random.default_rng(3)
    Z, H = 2, 5
    order = np.array([2, 1])
    masks = fl.made_masks(Z, H, order)
    params = fl.made_init(rng, Z, H, scale=1.0)
    z = rng.standard_normal((6, Z))
    (z_new, _), _ = fl.iaf_forward(z, params, masks)
    np.testing.assert_allclose(fl.iaf_inverse(z_new, params, masks, order=order), z, rtol=1e-12, atol=1e-13)
    # q_K on a grid of z_K: invert, then log q_0(z_0) − logdet [FLOW-7]
    mu0, sd0 = np.array([0.2, -0.3]), np.array([0.7, 0.9])
    g = np.linspace(-7.0, 7.0, 351)
    zK = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, Z)
    z0 = fl.iaf_inverse(zK, params, masks, order=order)
    (_, logdet), _ = fl.iaf_forward(z0, params, masks)
    log_q0 = norm.logpdf(z0, mu0, sd0).sum(axis=1)
    q_K = np.exp(fl.flow_log_density(log_q0, logdet))
    step = g[1] - g[0]
    np.testing.assert_allclose(q_K.sum() * step * step, 1.0, atol=1e-6)
