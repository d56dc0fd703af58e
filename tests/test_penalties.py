"""The penalties of npae.pairs.penalties checked alone: central-difference gradient checks (float64) over
drawn shapes, weights λ and targets ρ; the KL gradient through the batch mean against the classic
per-example mistake; the contractive value against an explicit Jacobian; the corruptions."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npae.pairs import functional as F
from npae.pairs import penalties as P
from npae.gradcheck import check_pair, rel_error

from conftest import off_kink

dims = st.integers(1, 5)
seeds = st.integers(0, 2**31 - 1)
# λ = 0 or a normal-sized λ: a subnormal λ (5e-324) makes the penalty underflow to 0, which no
# finite difference can resolve.
weights = st.one_of(st.just(0.0), st.floats(1e-3, 10.0))
rhos = st.floats(0.01, 0.99)


@settings(deadline=None, max_examples=10)
@given(B=dims, Z=dims, seed=seeds, weight=weights)
def test_l1_penalty_gradcheck(B, Z, seed, weight):
    """Checks [SPARSE-1] (the value) and [SPARSE-2] (the gradient against central differences, drawn λ)."""
    rng = np.random.default_rng(seed)
    z = off_kink(rng.standard_normal((B, Z)), margin=0.05)  # |z| off the kink of |.|
    report = check_pair(P.l1_penalty_forward, P.l1_penalty_backward, [z], names=["z"],
                        kwargs={"weight": weight}, rng=seed)
    report.assert_ok()
    value, _ = P.l1_penalty_forward(z, weight)
    assert value == pytest.approx(weight * np.abs(z).sum(axis=1).mean())


@settings(deadline=None, max_examples=12)
@given(B=dims, Z=dims, seed=seeds, weight=weights, rho=rhos)
def test_kl_sparsity_gradcheck(B, Z, seed, weight, rho):
    """Checks [SPARSE-5], [SPARSE-6]: the gradient of the forward [SPARSE-3], [SPARSE-4] against central
    differences over drawn ρ and λ.
    """
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.05, 0.95, size=(B, Z))
    report = check_pair(P.kl_sparsity_forward, P.kl_sparsity_backward, [h], names=["h"],
                        kwargs={"rho": rho, "weight": weight}, rng=seed)
    report.assert_ok()


def test_kl_gradient_runs_through_the_batch_mean():
    """Every example gets the same share 1/B of dρ̂; the per-example form (KL evaluated at h_ij
    instead of ρ̂_j, a mistake seen in published code) gives a different gradient.
    Checks [SPARSE-3], [SPARSE-5], [SPARSE-6] against the closed form.
    """
    rng = np.random.default_rng(0)
    B, Z, rho, lam = 6, 4, 0.1, 2.0
    h = rng.uniform(0.05, 0.95, size=(B, Z))
    value, cache = P.kl_sparsity_forward(h, rho, lam)
    dh = P.kl_sparsity_backward(1.0, cache)
    np.testing.assert_array_equal(dh, np.broadcast_to(dh[0], dh.shape))
    rho_hat = h.mean(axis=0)
    np.testing.assert_allclose(dh[0], lam * (-rho / rho_hat + (1 - rho) / (1 - rho_hat)) / B, rtol=1e-13)
    wrong = lam * (-rho / h + (1 - rho) / (1 - h)) / B  # per-example KL, batch mean
    assert rel_error(wrong, dh) > 1e-2


def test_kl_value_properties():
    """Checks [SPARSE-4]: KL(ρ‖ρ̂) is 0 at ρ̂ = ρ and never negative."""
    h = np.full((3, 2), 0.2)
    assert P.kl_sparsity_forward(h, 0.2, 5.0)[0] == pytest.approx(0.0, abs=1e-14)
    rng = np.random.default_rng(1)
    for _ in range(20):
        h = rng.uniform(0.01, 0.99, size=(4, 3))
        assert P.kl_sparsity_forward(h, float(rng.uniform(0.01, 0.99)), 1.0)[0] >= 0.0
    # saturated units stay finite (the clip of ρ̂)
    value, cache = P.kl_sparsity_forward(np.zeros((2, 2)), 0.05, 1.0)
    assert np.isfinite(value) and np.isfinite(P.kl_sparsity_backward(1.0, cache)).all()


def _bias_off_kink(a0, b, margin=0.05):
    """Per column, the bias nearest ``b`` (on a grid) keeping every pre-activation ``a0 + b`` at
    least ``margin`` from relu's kink."""
    grid = np.linspace(-3, 3, 601)
    out = b.copy()
    for j in range(b.size):
        ok = np.min(np.abs(a0[:, j][:, None] + grid[None, :]), axis=0) >= margin
        out[j] = grid[ok][np.argmin(np.abs(grid[ok] - b[j]))]
    return out


@pytest.mark.parametrize("activation", P.CONTRACTIVE_ACTIVATIONS)
@settings(deadline=None, max_examples=8)
@given(B=dims, D=dims, Z=dims, seed=seeds, weight=weights)
def test_contractive_penalty_gradcheck(activation, B, D, Z, seed, weight):
    """Checks the backward [CONTRACTIVE-4], [CONTRACTIVE-5], [CONTRACTIVE-6] (with f′ and f″ of
    [CONTRACTIVE-2]) against central differences of the penalty [CONTRACTIVE-3], over drawn shapes and
    λ.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, D))
    W = rng.standard_normal((D, Z)) / np.sqrt(D)
    b = rng.standard_normal(Z)
    if activation == "relu":
        b = _bias_off_kink(x @ W, b)
    report = check_pair(P.contractive_penalty_forward, P.contractive_penalty_backward, [x, W, b],
                        names=["x", "W", "b"], kwargs={"activation": activation, "weight": weight},
                        rng=seed)
    report.assert_ok()


def _fd_jacobian(f, x, h=1e-5):
    """Jacobian (out, in) of a vector function by central differences."""
    cols = []
    for d in range(x.size):
        e = np.zeros_like(x)
        e[d] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("activation", P.CONTRACTIVE_ACTIVATIONS)
def test_contractive_value_is_the_jacobian_frobenius_norm(activation):
    """Checks [CONTRACTIVE-3] (with f′ of [CONTRACTIVE-2]): the value is λ times the batch mean of a
    numerical Jacobian's squared Frobenius norm.
    """
    rng = np.random.default_rng(3)
    B, D, Z, lam = 4, 5, 3, 0.7
    x, W, b = rng.standard_normal((B, D)), rng.standard_normal((D, Z)), rng.standard_normal(Z)
    fwd = F.ACTIVATIONS[activation][0]
    norms = [np.sum(_fd_jacobian(lambda v: fwd(v @ W + b)[0], x[i]) ** 2) for i in range(B)]
    value, _ = P.contractive_penalty_forward(x, W, b, activation, lam)
    assert value == pytest.approx(lam * np.mean(norms), rel=1e-7)


def test_contractive_backward_that_drops_f_second_fails():
    """Test the tester: forgetting the f'' path (da) leaves dx and db wrong, and the check sees it."""
    rng = np.random.default_rng(4)
    x, W, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)

    def wrong_backward(dvalue, cache):
        dx, dW, db = P.contractive_penalty_backward(dvalue, cache)
        return np.zeros_like(dx), dW, np.zeros_like(db)

    report = check_pair(P.contractive_penalty_forward, wrong_backward, [x, W, b],
                        kwargs={"activation": "sigmoid", "weight": 1.0}, rng=0)
    assert not report.ok


@settings(deadline=None, max_examples=10)
@given(level=st.floats(0.0, 1.0), seed=seeds)
def test_corruptions(level, seed):
    """Checks [DENOISE-1] (Gaussian: the residual's std), [DENOISE-2] (masking: zeros, at the drawn rate)
    and [DENOISE-3] (salt and pepper: 0s and 1s, at the drawn rate).
    """
    x = np.random.default_rng(seed).uniform(0.2, 0.8, size=(200, 50))
    for name in ("masking", "salt_pepper", "gaussian"):
        a = P.corrupt(x, name, level, np.random.default_rng(seed))
        again = P.corrupt(x, name, level, np.random.default_rng(seed))
        np.testing.assert_array_equal(a, again)  # all randomness comes from rng
        assert a.shape == x.shape and a.dtype == x.dtype
    masked = P.masking_noise(x, level, np.random.default_rng(seed))
    changed = masked != x
    assert np.all(masked[changed] == 0)
    assert abs(changed.mean() - level) < 0.03
    sp = P.salt_pepper_noise(x, level, np.random.default_rng(seed))
    hit = sp != x
    assert np.isin(sp[hit], (0.0, 1.0)).all() and abs(hit.mean() - level) < 0.03
    g = P.gaussian_noise(x, level, np.random.default_rng(seed))
    assert abs(np.std(g - x) - level) < 0.03


def test_corruption_bad_input():
    x, rng = np.ones((2, 3)), np.random.default_rng(0)
    with pytest.raises(ValueError, match="noise_level"):
        P.gaussian_noise(x, -0.1, rng)
    with pytest.raises(ValueError, match="noise_level"):
        P.masking_noise(x, 1.5, rng)
    with pytest.raises(ValueError, match="noise_level"):
        P.salt_pepper_noise(x, -1e-3, rng)
    with pytest.raises(ValueError, match="noise"):
        P.corrupt(x, "blur", 0.1, rng)
    with pytest.raises(TypeError, match="rng"):
        P.masking_noise(x, 0.1, 0)
    with pytest.raises(ValueError, match="activation"):
        P.contractive_penalty_forward(x, np.ones((3, 2)), np.zeros(2), "elu", 1.0)
