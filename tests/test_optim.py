"""Each optimizer's first steps against values worked out by hand (comments give the arithmetic)."""
import math

import numpy as np
import pytest

from npae.training import optim

P0 = np.array([1.0, -2.0])
G = np.array([0.5, 0.25])


def run(opt, steps, g=G):
    params = {"p": P0.copy()}
    ref = params["p"]
    out = []
    for _ in range(steps):
        opt.step(params, {"p": g})
        out.append(params["p"].copy())
    assert params["p"] is ref  # updated in place
    return out


def test_sgd():
    """Checks [OPT-2] on a step worked by hand."""
    (p1,) = run(optim.SGD(lr=0.1), 1)
    np.testing.assert_allclose(p1, [0.95, -2.025], rtol=1e-15)  # p - 0.1 g


def test_sgd_weight_decay():
    """Checks [OPT-1] (then [OPT-2]) on a step worked by hand."""
    (p1,) = run(optim.SGD(lr=0.1, weight_decay=0.5), 1)
    # g + 0.5 p = [0.5 + 0.5, 0.25 - 1.0] = [1.0, -0.75]; p - 0.1 (that)
    np.testing.assert_allclose(p1, [0.9, -1.925], rtol=1e-15)


def test_momentum():
    """Checks [OPT-3] on two steps worked by hand."""
    p1, p2 = run(optim.Momentum(lr=0.1, momentum=0.9), 2)
    np.testing.assert_allclose(p1, [0.95, -2.025], rtol=1e-15)      # v = g
    np.testing.assert_allclose(p2, [0.855, -2.0725], rtol=1e-15)    # v = 0.9 g + g = 1.9 g


def test_nesterov():
    """Checks [OPT-4] on two steps worked by hand."""
    p1, p2 = run(optim.Momentum(lr=0.1, momentum=0.9, nesterov=True), 2)
    np.testing.assert_allclose(p1, [0.905, -2.0475], rtol=1e-15)    # p - 0.1 (g + 0.9 g)
    np.testing.assert_allclose(p2, [0.7695, -2.11525], rtol=1e-14)  # p - 0.1 (g + 0.9 * 1.9 g)


def test_adam():
    """Checks [OPT-5], [OPT-6], [OPT-7] with a constant gradient, where the corrected moments are g and g²."""
    p1, p2 = run(optim.Adam(lr=0.1), 2)
    # with a constant gradient the bias-corrected moments are m̂ = g and v̂ = g² at every step,
    # so each step is 0.1 g / (|g| + 1e-8): 0.1 (1 - 2e-8) for g = 0.5, 0.1 (1 - 4e-8) for g = 0.25
    step = 0.1 * G / (np.abs(G) + 1e-8)
    np.testing.assert_allclose(p1, [0.900000002, -2.099999996], rtol=1e-12)
    np.testing.assert_allclose(p1, P0 - step, rtol=1e-13)
    np.testing.assert_allclose(p2, P0 - 2 * step, rtol=1e-13)


def test_adam_matches_textbook_form_with_varying_gradients(rng):
    """Checks [OPT-5], [OPT-6], [OPT-7] (the bias corrections folded into step size and eps) against the
    textbook form over five steps.
    """
    opt = optim.Adam(lr=0.01, beta1=0.8, beta2=0.95)
    params = {"p": rng.standard_normal(5)}
    p, m, v = params["p"].copy(), np.zeros(5), np.zeros(5)
    for t in range(1, 6):
        g = rng.standard_normal(5)
        opt.step(params, {"p": g})
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        p = p - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.95 ** t)) + 1e-8)
        np.testing.assert_allclose(params["p"], p, rtol=1e-12)


def test_adagrad():
    """Checks [OPT-8] on two steps worked by hand."""
    p1, p2 = run(optim.Adagrad(lr=0.1), 2)
    np.testing.assert_allclose(p1, P0 - 0.1 * G / (np.abs(G) + 1e-8), rtol=1e-14)  # G = g²
    np.testing.assert_allclose(p2, p1 - 0.1 * G / (math.sqrt(2) * np.abs(G) + 1e-8), rtol=1e-14)  # G = 2g²


def test_rmsprop():
    """Checks [OPT-9] on two steps worked by hand."""
    p1, p2 = run(optim.RMSprop(lr=0.01, rho=0.9), 2)
    # s = 0.1 g², then 0.9 * 0.1 g² + 0.1 g² = 0.19 g²
    np.testing.assert_allclose(p1, P0 - 0.01 * G / (math.sqrt(0.1) * np.abs(G) + 1e-8), rtol=1e-14)
    np.testing.assert_allclose(p2, p1 - 0.01 * G / (math.sqrt(0.19) * np.abs(G) + 1e-8), rtol=1e-14)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_float32_stays_float32(name):
    params = {"p": np.ones(3, np.float32)}
    opt = optim.get_optimizer(name, lr=0.1)
    for _ in range(2):
        opt.step(params, {"p": np.full(3, 0.5, np.float32)})
    assert params["p"].dtype == np.float32
    for bufs in opt.state.values():
        for buf in bufs.values():
            assert buf.dtype == np.float32


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_state_dict_roundtrip_continues_identically(name, rng):
    a = optim.get_optimizer(name, lr=0.05)
    params_a = {"w": rng.standard_normal(4)}
    grads = [{"w": rng.standard_normal(4)} for _ in range(4)]
    for g in grads[:2]:
        a.step(params_a, g)
    b = optim.get_optimizer(name, lr=0.05)
    b.load_state_dict(a.state_dict())
    params_b = {"w": params_a["w"].copy()}
    for g in grads[2:]:
        a.step(params_a, g)
        b.step(params_b, g)
    np.testing.assert_array_equal(params_a["w"], params_b["w"])


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        optim.get_optimizer("adamw")
    with pytest.raises(TypeError, match="optimizer"):
        optim.get_optimizer(3)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.Momentum(lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.Adam(weight_decay=-0.1)


# --------------------------------------------------------------------------------------------------
# the update rules of npae.pairs.updates over drawn hyperparameters
# --------------------------------------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

from npae.gradcheck import check_function  # noqa: E402
from npae.pairs import updates  # noqa: E402

rates = st.floats(1e-4, 1.0)
decays = st.floats(0.0, 0.999)
seeds = st.integers(0, 2**31 - 1)


@settings(deadline=None, max_examples=25)
@given(wd=st.floats(0.0, 5.0), seed=seeds)
def test_weight_decay_is_the_gradient_of_the_l2_term(wd, seed):
    """Checks [OPT-1]: g + wd·p is the gradient of loss + (wd/2)||p||², the L2 part checked by central
    differences in float64."""
    rng = np.random.default_rng(seed)
    p, g = rng.standard_normal(5), rng.standard_normal(5)
    np.testing.assert_array_equal(updates.weight_decay(g, p, wd), g + wd * p)
    check_function(lambda q: 0.5 * wd * float(q @ q), [p], [wd * p]).assert_ok()  # d/dp (wd/2)||p||²


@settings(deadline=None, max_examples=25)
@given(lr=rates, mu=decays, beta1=decays, beta2=decays, eps=st.floats(1e-10, 1e-2),
       steps=st.integers(1, 6), seed=seeds)
def test_update_rules_equal_their_textbook_forms(lr, mu, beta1, beta2, eps, steps, seed):
    """Checks [OPT-2], [OPT-3], [OPT-4], [OPT-5], [OPT-6], [OPT-7], [OPT-8], [OPT-9] over drawn
    rates, decays, eps and step counts, each against the rule as the derivation writes it."""
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(4)
    state = {k: np.zeros(4) for k in ("v_hb", "v_n", "m", "v", "G", "s")}
    ps = {k: p0.copy() for k in ("sgd", "hb", "nest", "adam", "adagrad", "rms")}
    want = {k: p0.copy() for k in ps}
    m = v = G = s = v_hb = v_n = np.zeros(4)
    for t in range(1, steps + 1):
        g = rng.standard_normal(4)
        updates.sgd_update(ps["sgd"], g, lr)
        want["sgd"] = want["sgd"] - lr * g
        updates.momentum_update(ps["hb"], g, state["v_hb"], lr, mu)
        v_hb = mu * v_hb + g
        want["hb"] = want["hb"] - lr * v_hb
        updates.momentum_update(ps["nest"], g, state["v_n"], lr, mu, nesterov=True)
        v_n = mu * v_n + g
        want["nest"] = want["nest"] - lr * (g + mu * v_n)
        updates.adam_update(ps["adam"], g, state["m"], state["v"], lr, beta1, beta2, eps, t)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        want["adam"] = want["adam"] - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        updates.adagrad_update(ps["adagrad"], g, state["G"], lr, eps)
        G = G + g * g
        want["adagrad"] = want["adagrad"] - lr * g / (np.sqrt(G) + eps)
        updates.rmsprop_update(ps["rms"], g, state["s"], lr, mu, eps)
        s = mu * s + (1 - mu) * g * g
        want["rms"] = want["rms"] - lr * g / (np.sqrt(s) + eps)
    for k in ps:
        np.testing.assert_allclose(ps[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)
