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
    (p1,) = run(optim.SGD(lr=0.1), 1)
    np.testing.assert_allclose(p1, [0.95, -2.025], rtol=1e-15)  # p - 0.1 g


def test_sgd_weight_decay():
    (p1,) = run(optim.SGD(lr=0.1, weight_decay=0.5), 1)
    # g + 0.5 p = [0.5 + 0.5, 0.25 - 1.0] = [1.0, -0.75]; p - 0.1 (that)
    np.testing.assert_allclose(p1, [0.9, -1.925], rtol=1e-15)


def test_momentum():
    p1, p2 = run(optim.Momentum(lr=0.1, momentum=0.9), 2)
    np.testing.assert_allclose(p1, [0.95, -2.025], rtol=1e-15)      # v = g
    np.testing.assert_allclose(p2, [0.855, -2.0725], rtol=1e-15)    # v = 0.9 g + g = 1.9 g


def test_nesterov():
    p1, p2 = run(optim.Momentum(lr=0.1, momentum=0.9, nesterov=True), 2)
    np.testing.assert_allclose(p1, [0.905, -2.0475], rtol=1e-15)    # p - 0.1 (g + 0.9 g)
    np.testing.assert_allclose(p2, [0.7695, -2.11525], rtol=1e-14)  # p - 0.1 (g + 0.9 * 1.9 g)


def test_adam():
    p1, p2 = run(optim.Adam(lr=0.1), 2)
    # with a constant gradient the bias-corrected moments are m̂ = g and v̂ = g² at every step,
    # so each step is 0.1 g / (|g| + 1e-8): 0.1 (1 - 2e-8) for g = 0.5, 0.1 (1 - 4e-8) for g = 0.25
    step = 0.1 * G / (np.abs(G) + 1e-8)
    np.testing.assert_allclose(p1, [0.900000002, -2.099999996], rtol=1e-12)
    np.testing.assert_allclose(p1, P0 - step, rtol=1e-13)
    np.testing.assert_allclose(p2, P0 - 2 * step, rtol=1e-13)


def test_adam_matches_textbook_form_with_varying_gradients(rng):
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
    p1, p2 = run(optim.Adagrad(lr=0.1), 2)
    np.testing.assert_allclose(p1, P0 - 0.1 * G / (np.abs(G) + 1e-8), rtol=1e-14)  # G = g²
    np.testing.assert_allclose(p2, p1 - 0.1 * G / (math.sqrt(2) * np.abs(G) + 1e-8), rtol=1e-14)  # G = 2g²


def test_rmsprop():
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
