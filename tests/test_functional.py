"""Every forward/backward pair and loss of npae.pairs.functional, checked by central differences in
float64 over hypothesis-drawn shapes and hyperparameters; plus the properties of the stable BCE."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from npae.pairs import functional as F
from npae.gradcheck import check_function, check_pair
from npae.init import INITIALIZERS, make_rng

from conftest import off_kink

dims = st.integers(1, 6)
seeds = st.integers(0, 2**31 - 1)


@given(B=dims, n_in=dims, n_out=dims, seed=seeds)
def test_dense_pair_gradcheck(B, n_in, n_out, seed):
    """Checks [DENSE-2], [DENSE-3], [DENSE-4]: dx, dW and db of the dense pair against central differences
    of its forward.
    """
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((B, n_in)), rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
    report = check_pair(F.dense_forward, F.dense_backward, [x, W, b], names=["x", "W", "b"], rng=seed)
    report.assert_ok()


def test_dense_shapes_and_values():
    """Checks [DENSE-1] y = x W + b on numbers worked by hand, and [DENSE-3] dW = xᵀ dy for dy = 1."""
    x = np.array([[1.0, 2.0]])
    W = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    b = np.array([0.0, 1.0, 2.0])
    y, cache = F.dense_forward(x, W, b)
    np.testing.assert_array_equal(y, [[2.0, 5.0, 3.0]])
    dx, dW, db = F.dense_backward(np.ones((1, 3)), cache)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    np.testing.assert_array_equal(dW, [[1, 1, 1], [2, 2, 2]])


@pytest.mark.parametrize("name", sorted(F.ACTIVATIONS))
@given(B=dims, D=dims, seed=seeds, slope=st.floats(0.0, 0.9), alpha=st.floats(0.1, 3.0),
       scale=st.floats(0.1, 10.0))
def test_activation_pair_gradcheck(name, B, D, seed, slope, alpha, scale):
    """Checks every activation's backward against central differences over drawn slopes and alphas: [ACT-1]
    (identity), [ACT-3], [ACT-5], [ACT-7], [ACT-9], [ACT-11], [ACT-13].
    """
    rng = np.random.default_rng(seed)
    a = off_kink(scale * rng.standard_normal((B, D)))
    fwd, bwd, hyper = F.ACTIVATIONS[name]
    kwargs = {k: v for k, v in (("slope", slope), ("alpha", alpha)) if k in hyper}
    check_pair(fwd, bwd, [a], names=[name], kwargs=kwargs, rng=seed).assert_ok()


@pytest.mark.parametrize("name", sorted(F.ACTIVATIONS))
def test_activations_finite_at_extremes_and_keep_dtype(name):
    """Checks the overflow-free forms of [ACT-6] (sigmoid) and [ACT-10] (softplus), and every other
    activation, stay finite at ±1e4 in float32 and float64.
    """
    fwd, bwd, _ = F.ACTIVATIONS[name]
    for dtype in (np.float32, np.float64):
        a = np.array([[-1e4, -50.0, -1.0, 0.5, 50.0, 1e4]], dtype=dtype)
        h, cache = fwd(a)
        da = bwd(np.ones_like(a), cache)
        assert np.isfinite(h).all() and np.isfinite(da).all()
        assert h.dtype == dtype and da.dtype == dtype


def test_activation_reference_values():
    """Checks the forwards against their textbook formulas: [ACT-2], [ACT-4], [ACT-6], [ACT-8], [ACT-10],
    [ACT-12].
    """
    a = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(F.relu_forward(a)[0], [0, 0, 3])
    np.testing.assert_allclose(F.leaky_relu_forward(a, 0.1)[0], [-0.2, 0, 3])
    np.testing.assert_allclose(F.sigmoid_forward(a)[0], 1 / (1 + np.exp(-a)), rtol=1e-15)
    np.testing.assert_allclose(F.softplus_forward(a)[0], np.log1p(np.exp(a)), rtol=1e-15)
    np.testing.assert_allclose(F.elu_forward(a, 2.0)[0], [2 * np.expm1(-2.0), 0, 3], rtol=1e-15)
    np.testing.assert_allclose(F.tanh_forward(a)[0], np.tanh(a))


@given(B=dims, D=dims, seed=seeds)
def test_mse_gradcheck(B, D, seed):
    """Checks [LOSS-1] (the value against its formula) and [LOSS-2] (the gradient against central
    differences).
    """
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal((B, D)), rng.standard_normal((B, D))
    value, dpred = F.mse_loss(pred, target)
    assert value == pytest.approx(np.sum((pred - target) ** 2) / B, rel=1e-13)
    check_function(lambda p, t: F.mse_loss(p, t)[0], [pred, target], [dpred, None]).assert_ok()


@given(B=dims, D=dims, seed=seeds, scale=st.floats(0.1, 20.0))
def test_bce_logits_gradcheck(B, D, seed, scale):
    """Checks [LOSS-6] against central differences of [LOSS-5]."""
    rng = np.random.default_rng(seed)
    s, target = scale * rng.standard_normal((B, D)), rng.uniform(0, 1, (B, D))
    _, ds = F.bce_with_logits_loss(s, target)
    check_function(lambda s_, t: F.bce_with_logits_loss(s_, t)[0], [s, target], [ds, None]).assert_ok()


@given(B=dims, D=dims, seed=seeds, scale=st.floats(0.01, 30.0))
def test_stable_bce_equals_textbook_where_both_finite(B, D, seed, scale):
    """Checks [LOSS-5] and [LOSS-6] against the probability form and its gradient through the sigmoid."""
    rng = np.random.default_rng(seed)
    s, target = scale * rng.standard_normal((B, D)), rng.uniform(0, 1, (B, D))
    p = 1 / (1 + np.exp(-s))
    assume_ok = (p > 1e-9).all() and (p < 1 - 1e-9).all()  # away from the textbook form's clip
    if not assume_ok:
        return
    stable, dstable = F.bce_with_logits_loss(s, target)
    # the lectures' form on probabilities and its gradient (loss.md), written out here: npae itself
    # only ever computes the logit form
    textbook = -np.sum(target * np.log(p) + (1 - target) * np.log(1 - p)) / B
    dprob = (p - target) / (p * (1 - p)) / B
    assert stable == pytest.approx(textbook, rel=1e-6, abs=1e-9)
    # chain rule through the sigmoid turns the textbook gradient into the stable one
    np.testing.assert_allclose(dprob * p * (1 - p), dstable, rtol=1e-6, atol=1e-12)


def test_stable_bce_finite_and_exact_at_huge_logits():
    """Checks [LOSS-5], [LOSS-6] at ±1e4."""
    s = np.array([[1e4, -1e4, 1e4, -1e4]])
    t = np.array([[0.0, 1.0, 1.0, 0.0]])
    value, ds = F.bce_with_logits_loss(s, t)
    assert value == 2e4  # two confident mistakes of 1e4 nats each; confident hits cost 0
    np.testing.assert_array_equal(ds, [[1.0, -1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(F.bce_with_logits_sum(s, t), [2e4])
    s32 = s.astype(np.float32)
    value32, ds32 = F.bce_with_logits_loss(s32, t.astype(np.float32))
    assert np.isfinite(value32) and ds32.dtype == np.float32


@given(B=dims, K=st.integers(2, 6), seed=seeds, scale=st.floats(0.1, 10.0))
def test_softmax_cross_entropy_gradcheck(B, K, seed, scale):
    """Checks [LOSS-7] (the value against a naive softmax) and [LOSS-8] (the gradient against central
    differences).
    """
    rng = np.random.default_rng(seed)
    s, y = scale * rng.standard_normal((B, K)), rng.integers(0, K, B)
    value, ds = F.softmax_cross_entropy_loss(s, y)
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(B), y])), rel=1e-12)
    check_function(lambda s_: F.softmax_cross_entropy_loss(s_, y)[0], [s], [ds]).assert_ok()


def test_softmax_cross_entropy_finite_at_huge_logits():
    value, ds = F.softmax_cross_entropy_loss(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    assert value == 2e4 and np.isfinite(ds).all()


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initializers_statistics_and_seed(name):
    """Checks [INIT-1], [INIT-2], [INIT-3], [INIT-4]: the sample variance of 120k draws is the derived one,
    and a uniform initializer stays within its bound.
    """
    n_in, n_out = 400, 300
    W = INITIALIZERS[name](n_in, n_out, make_rng(0))
    W2 = INITIALIZERS[name](n_in, n_out, make_rng(0))
    np.testing.assert_array_equal(W, W2)
    target_var = 2.0 / n_in if name.startswith("he") else 2.0 / (n_in + n_out)
    # 120k draws: the sample variance is within 2% of its expectation with overwhelming probability
    assert W.var() == pytest.approx(target_var, rel=0.02)
    if name.endswith("uniform"):
        assert np.abs(W).max() <= np.sqrt(3 * target_var)
    assert INITIALIZERS[name](3, 2, make_rng(0), np.float32).dtype == np.float32


def test_make_rng_refuses_bad_seed():
    with pytest.raises(TypeError, match="seed"):
        make_rng("zero")


@given(B=dims, D=dims, seed=seeds)
def test_identity_forward_returns_its_input(B, D, seed):
    """Checks [ACT-1]: the identity's forward is its input, values and dtype (its backward is in
    test_activation_pair_gradcheck)."""
    a = np.random.default_rng(seed).standard_normal((B, D))
    h, cache = F.identity_forward(a)
    np.testing.assert_array_equal(h, a)
    np.testing.assert_array_equal(F.identity_backward(a, cache), a)
