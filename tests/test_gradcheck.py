"""Test the tester: the checker must pass correct gradients and fail ones that are 0.1% wrong."""
import numpy as np
import pytest

import npae
from npae.pairs import functional as F
from npae.gradcheck import (GradcheckReport, check_model, check_pair, directional_check,
                            numerical_gradient, rel_error)


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    g = numerical_gradient(lambda v: float(np.sum(np.sin(v) * v)), x)
    np.testing.assert_allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-8)
    np.testing.assert_array_equal(x, [[0.3, -1.2], [2.0, 0.5]])  # restored exactly


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: float(v.sum()), np.ones(3, np.float32))


def test_rel_error_definition():
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error([0.0], [0.0]) == 0.0
    assert rel_error([1.0, 4.0], [1.0, 4.004]) == pytest.approx(0.004 / 4.004)
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.ones(2), np.ones(3))


def _wrong_dense_backward(factor):
    def backward(dy, cache):
        dx, dW, db = F.dense_backward(dy, cache)
        return dx, dW * factor, db
    return backward


def test_a_backward_wrong_by_a_tenth_of_a_percent_fails(rng):
    args = [rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)]
    good = check_pair(F.dense_forward, F.dense_backward, args, names=["x", "W", "b"], rng=0)
    assert good.ok and good.max_error < 1e-8
    bad = check_pair(F.dense_forward, _wrong_dense_backward(1.001), args, names=["x", "W", "b"], rng=0)
    assert not bad.ok
    assert bad.max_error == pytest.approx(1e-3, rel=0.01)
    with pytest.raises(AssertionError, match="W"):
        bad.assert_ok()


def test_a_model_with_a_wrong_backward_fails_check_model(rng):
    model = npae.Autoencoder(5, hidden=(4,), latent_dim=2, activation="tanh")
    x = rng.uniform(0, 1, (3, 5))
    assert check_model(model, x).ok
    correct = model.loss_and_grads

    def off_by_a_tenth_of_a_percent(x_):
        loss, grads = correct(x_)
        return loss, {**grads, "encoder.0.W": grads["encoder.0.W"] * 1.001}

    model.loss_and_grads = off_by_a_tenth_of_a_percent
    report = check_model(model, x)
    assert not report.ok
    assert [name for name, err in report.rows if err > report.tol] == ["encoder.0.W"]
    assert report.max_error == pytest.approx(1e-3, rel=0.01)


def test_directional_check_agrees_and_detects_errors(rng):
    W = rng.standard_normal((30, 20))
    x = rng.standard_normal((8, 30))
    F_ = lambda v: np.tanh(v @ W)  # noqa: E731
    good_vjp = lambda dv: (dv * (1 - np.tanh(x @ W) ** 2)) @ W.T  # noqa: E731
    assert directional_check(F_, x, good_vjp, rng=1) < 1e-8
    assert directional_check(F_, x, lambda dv: 1.001 * good_vjp(dv), rng=1) > 5e-4


def test_check_model_demands_fixed_noise_and_float64(rng):
    model = npae.Autoencoder(4, hidden=(), latent_dim=2, dtype="float32")
    with pytest.raises(TypeError, match="float64"):
        check_model(model, rng.uniform(0, 1, (2, 4)))

    class Noisy:
        stochastic_inputs = ("eps",)
    with pytest.raises(ValueError, match="eps"):
        check_model(Noisy(), np.zeros((1, 1)))


def test_report_reads_as_a_table():
    report = GradcheckReport([("encoder.0.W", 3e-10), ("decoder.0.b", 2e-3)], tol=1e-6)
    text = str(report)
    assert text.splitlines()[0].split("|")[0].strip() == "name"
    assert "yes" in text.splitlines()[1] and "NO" in text.splitlines()[2]
    assert not report.ok and report.max_error == 2e-3
