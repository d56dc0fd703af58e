"""The latent layer's pure pairs and helpers: gradients, moments, KL properties, log-mean-exp,
interpolation and the manifold grid."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtri
from scipy.stats import norm

from npae.pairs import latent
from npae.constants import LOGVAR_MAX, LOGVAR_MIN
from npae.gradcheck import check_pair

shapes = st.tuples(st.integers(1, 4), st.integers(1, 4))  # (B, Z)
n_draws = st.sampled_from([None, 1, 2, 3])  # sample axis L (None: eps is (B, Z))


def _eps_shape(L, B, Z):
    return (B, Z) if L is None else (L, B, Z)


# ---------------------------------------------------------------- gradient checks of the pairs
@settings(deadline=None, max_examples=15)
@given(shape=shapes, L=n_draws, seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 3.0))
def test_reparameterize_pair_gradcheck(shape, L, seed, scale):
    """Checks [REPARAM-3], [REPARAM-4] against central differences of [REPARAM-1], [REPARAM-2]."""
    B, Z = shape
    rng = np.random.default_rng(seed)
    mu = scale * rng.standard_normal((B, Z))
    logvar = scale * rng.standard_normal((B, Z))
    eps = rng.standard_normal(_eps_shape(L, B, Z))
    report = check_pair(latent.reparameterize_forward, latent.reparameterize_backward,
                        [mu, logvar, eps], wrt=(0, 1), names=["mu", "logvar"], rng=seed)
    report.assert_ok()


@settings(deadline=None, max_examples=15)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 3.0))
def test_kl_pair_gradcheck(shape, seed, scale):
    """Checks [KL-2], [KL-3] against central differences of [KL-1]."""
    rng = np.random.default_rng(seed)
    mu = scale * rng.standard_normal(shape)
    logvar = scale * rng.standard_normal(shape)
    check_pair(latent.gaussian_kl_forward, latent.gaussian_kl_backward, [mu, logvar],
               names=["mu", "logvar"], rng=seed).assert_ok()


@settings(deadline=None, max_examples=10)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_clamp_pair_gradcheck_inside_and_outside(shape, seed):
    """Checks [REPARAM-6] against central differences of the clamp [REPARAM-5], inside and outside its
    range.
    """
    rng = np.random.default_rng(seed)
    raw = rng.choice([-45.0, -5.0, 0.5, 7.0, 41.0], size=shape) + 0.1 * rng.standard_normal(shape)
    raw[0, 0] = 0.5  # one entry inside, so the gradient array is not all zeros
    check_pair(lambda a: latent.logvar_clamp_forward(a), latent.logvar_clamp_backward, [raw],
               names=["logvar_raw"], rng=seed).assert_ok()
    logvar, inside = latent.logvar_clamp_forward(raw)
    assert logvar.min() >= LOGVAR_MIN and logvar.max() <= LOGVAR_MAX
    np.testing.assert_array_equal(inside, np.abs(raw) <= 30.0)
    # inside the range the clamp is the identity and passes gradients through unchanged
    np.testing.assert_array_equal(logvar[inside], raw[inside])
    d = rng.standard_normal(shape)
    np.testing.assert_array_equal(latent.logvar_clamp_backward(d, inside), np.where(inside, d, 0.0))


def test_reparameterize_backward_sums_over_draws():
    rng = np.random.default_rng(0)
    mu, logvar = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    eps, dz = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 2))
    z, cache = latent.reparameterize_forward(mu, logvar, eps)
    assert z.shape == (4, 3, 2)
    dmu, dlogvar = latent.reparameterize_backward(dz, cache)
    parts = [latent.reparameterize_backward(dz[draw], latent.reparameterize_forward(mu, logvar, eps[draw])[1])
             for draw in range(4)]
    np.testing.assert_allclose(dmu, sum(p[0] for p in parts), rtol=1e-14)
    np.testing.assert_allclose(dlogvar, sum(p[1] for p in parts), rtol=1e-14)


# ---------------------------------------------------------------- moments of the sampler
def _moment_z_scores(z, mu, var):
    """z-scores of the sample mean and sample variance against mu and var (per coordinate)."""
    n = z.shape[0]
    z_mean = (z.mean(axis=0) - mu) / np.sqrt(var / n)
    # the sample variance of n normal draws has standard error var * sqrt(2 / (n - 1))
    z_var = (z.var(axis=0, ddof=1) - var) / (var * np.sqrt(2.0 / (n - 1)))
    return z_mean, z_var


def test_reparameterized_samples_have_mean_mu_and_variance_exp_logvar():
    """Checks [REPARAM-1], [REPARAM-2]: std = exp(½ logvar), so samples have mean mu and variance
    exp(logvar).
    """
    rng = np.random.default_rng(7)
    mu = np.array([[-1.5, 0.0, 2.0, 0.3]])
    logvar = np.array([[-2.0, 0.0, 1.5, 3.0]])
    n = 100_000
    eps = rng.standard_normal((n, 1, 4))
    z, _ = latent.reparameterize_forward(mu, logvar, eps)
    z_mean, z_var = _moment_z_scores(z[:, 0], mu[0], np.exp(logvar[0]))
    assert np.all(np.abs(z_mean) < 5) and np.all(np.abs(z_var) < 5), (z_mean, z_var)
    # The numpy-ml bug (std = exp(logvar), i.e. variance exp(2 logvar)) fails this same test:
    wrong = mu[0] + np.exp(logvar[0]) * eps[:, 0]
    _, z_var_wrong = _moment_z_scores(wrong, mu[0], np.exp(logvar[0]))
    assert np.max(np.abs(z_var_wrong)) > 100


# ---------------------------------------------------------------- KL properties
@settings(deadline=None, max_examples=30)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), scale=st.floats(0.0, 5.0))
def test_kl_nonnegative(shape, seed, scale):
    """Checks [KL-1] >= 0."""
    rng = np.random.default_rng(seed)
    kl, _ = latent.gaussian_kl_forward(scale * rng.standard_normal(shape),
                                       scale * rng.standard_normal(shape))
    assert kl.shape == (shape[0],)
    assert np.all(kl >= 0.0)


def test_kl_exactly_zero_at_standard_normal():
    """Checks [KL-1] = 0 at mu = 0, logvar = 0."""
    kl, cache = latent.gaussian_kl_forward(np.zeros((3, 5)), np.zeros((3, 5)))
    assert np.all(kl == 0.0)
    dmu, dlogvar = latent.gaussian_kl_backward(np.ones(3), cache)
    assert np.all(dmu == 0.0) and np.all(dlogvar == 0.0)


def test_closed_form_kl_matches_monte_carlo():
    """Checks [KL-1] against a Monte-Carlo estimate."""
    rng = np.random.default_rng(3)
    mu = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    logvar = np.array([[-1.0, 0.5, 0.0], [1.2, -0.4, 0.1]])
    kl, _ = latent.gaussian_kl_forward(mu, logvar)
    eps = rng.standard_normal((200_000, 2, 3))
    z, _ = latent.reparameterize_forward(mu, logvar, eps)
    diff = latent.log_normal(z, mu, logvar) - latent.log_standard_normal(z)  # (n, B)
    mc, se = diff.mean(axis=0), diff.std(axis=0, ddof=1) / np.sqrt(diff.shape[0])
    assert np.all(np.abs(mc - kl) < 5 * se), (mc, kl, se)


def test_log_densities_match_scipy():
    """Checks [GAUSS-1], [GAUSS-2] against scipy.stats."""
    rng = np.random.default_rng(1)
    z, mu, logvar = rng.standard_normal((3, 4, 2))
    want = norm.logpdf(z, loc=mu, scale=np.exp(0.5 * logvar)).sum(axis=-1)
    np.testing.assert_allclose(latent.log_normal(z, mu, logvar), want, rtol=1e-12)
    np.testing.assert_allclose(latent.log_standard_normal(z), norm.logpdf(z).sum(axis=-1), rtol=1e-12)


# ---------------------------------------------------------------- log-mean-exp
@settings(deadline=None, max_examples=25)
@given(K=st.integers(1, 60), B=st.integers(1, 4), chunk=st.integers(1, 17),
       offset=st.floats(-1000.0, 1000.0), seed=st.integers(0, 2**31 - 1))
def test_streaming_logmeanexp_equals_one_shot(K, B, chunk, offset, seed):
    """Checks [IWAE-3]: chunks folded in one at a time give the one-shot log-mean-exp."""
    a = offset + 20.0 * np.random.default_rng(seed).standard_normal((K, B))
    acc = latent.StreamingLogMeanExp()
    for k0 in range(0, K, chunk):
        acc.update(a[k0:k0 + chunk])
    np.testing.assert_allclose(acc.result(), latent.logmeanexp(a, axis=0), rtol=1e-12, atol=1e-9)


def test_logmeanexp_no_overflow_and_matches_naive():
    """Checks [IWAE-2]'s shifted log-mean-exp against the naive one, and that it does not overflow."""
    a = np.array([[1000.0, -1000.0], [1000.0, -1001.0]])
    np.testing.assert_allclose(latent.logmeanexp(a, axis=0), [1000.0, -1000.0 + np.log((1 + np.exp(-1)) / 2)])
    b = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(latent.logmeanexp(b), np.log(np.mean(np.exp(b), axis=0)), rtol=1e-13)


def test_streaming_logmeanexp_needs_data():
    with pytest.raises(ValueError, match="before any update"):
        latent.StreamingLogMeanExp().result()


# ---------------------------------------------------------------- exploring the latent space
def test_lerp_and_slerp_endpoints_and_norms():
    """Checks [LATENT-1] and [LATENT-2]: endpoints, slerp keeps the norm on a sphere, the chord does not,
    and slerp falls back to lerp.
    """
    z0, z1 = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
    t = np.linspace(0, 1, 5)
    for f in (latent.lerp, latent.slerp):
        path = f(z0, z1, t)
        assert path.shape == (5, 3)
        np.testing.assert_allclose(path[0], z0, atol=1e-12)
        np.testing.assert_allclose(path[-1], z1, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(latent.slerp(z0, z1, t), axis=1), 3.0)
    assert np.linalg.norm(latent.lerp(z0, z1, 0.5)) < 3.0  # the chord cuts inside the sphere
    # parallel codes: slerp falls back to lerp
    np.testing.assert_allclose(latent.slerp(z0, 2 * z0, t), latent.lerp(z0, 2 * z0, t))
    with pytest.raises(ValueError, match="same shape"):
        latent.lerp(z0, np.zeros(2), 0.5)


def test_attribute_vector_moves_codes_between_group_means():
    """Checks [LATENT-3]."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((20, 3)) + 2.0, rng.standard_normal((30, 3))
    v = latent.attribute_vector(a, b)
    np.testing.assert_allclose(v, a.mean(0) - b.mean(0))
    np.testing.assert_allclose(latent.apply_attribute(b, v).mean(0), a.mean(0))
    with pytest.raises(ValueError):
        latent.attribute_vector(a, np.zeros((3, 2)))


def test_manifold_grid_inverse_cdf():
    """Checks [LATENT-4] against the inverse normal CDF."""
    grid = latent.manifold_grid(5)
    assert grid.shape == (25, 2) and np.isfinite(grid).all()
    q = ndtri((np.arange(5) + 0.5) / 5)
    np.testing.assert_allclose(grid.reshape(5, 5, 2)[:, 0, 0], q)
    np.testing.assert_allclose(grid.reshape(5, 5, 2)[0, :, 1], q)
    np.testing.assert_allclose(q, -q[::-1], atol=1e-15)  # symmetric about the prior mean
    big = latent.manifold_grid(4, latent_dim=6, dims=(2, 5))
    assert big.shape == (16, 6)
    assert np.all(big[:, [0, 1, 3, 4]] == 0.0)
    with pytest.raises(ValueError, match="dims"):
        latent.manifold_grid(4, latent_dim=3, dims=(1, 1))


def test_log_mean_exp_of_minus_infinities_is_minus_infinity_not_nan():
    """A column whose log-values are all −inf has log-mean-exp −inf (no NaN from −inf − (−inf));
    a later chunk with very negative finite values still gives its exact log-mean-exp."""
    from npae.pairs.latent import StreamingLogMeanExp, logmeanexp
    a = np.array([[-np.inf, 0.0], [-np.inf, 1.0]])
    np.testing.assert_array_equal(logmeanexp(a)[0], -np.inf)
    chunk = np.array([[-800.0, -np.inf], [-801.0, -np.inf]])
    acc = StreamingLogMeanExp().update(np.full((2, 2), -np.inf)).update(chunk)
    got = acc.result()
    assert got[1] == -np.inf
    np.testing.assert_allclose(got[0], logmeanexp(np.array([-np.inf, -np.inf, -800.0, -801.0])), rtol=1e-15)


# ---------------------------------------------------------------- the full-covariance KL
def _fullcov_inputs(B, D, seed, scale):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((B, D)), scale * rng.standard_normal((B, D, D))


@settings(deadline=None, max_examples=20)
@given(B=st.integers(1, 3), D=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 1.5))
def test_fullcov_kl_pair_gradcheck(B, D, seed, scale):
    """Checks [KL-5] against central differences of [KL-4] (float64, rel err <= 1e-6), over drawn
    batch sizes, dimensions D and scales of mu and L_raw."""
    mu, L_raw = _fullcov_inputs(B, D, seed, scale)
    report = check_pair(latent.fullcov_kl_forward, latent.fullcov_kl_backward, [mu, L_raw],
                        names=["mu", "L_raw"], rng=seed)
    report.assert_ok()


@settings(deadline=None, max_examples=20)
@given(B=st.integers(1, 3), D=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 1.5))
def test_fullcov_kl_equals_the_textbook_form(B, D, seed, scale):
    """[KL-4] against ½ (Tr Σ + μᵀμ − D − log det Σ) computed the long way: Σ = L Lᵀ built as a
    matrix, its trace and numpy's slogdet; and the upper triangle of L_raw does not enter."""
    mu, L_raw = _fullcov_inputs(B, D, seed, scale)
    L = latent.fullcov_scale_tril(L_raw)
    assert np.allclose(np.triu(L, 1), 0.0) and np.all(np.diagonal(L, axis1=1, axis2=2) > 0)
    S = L @ np.swapaxes(L, 1, 2)  # (B, D, D)
    sign, logdet = np.linalg.slogdet(S)
    assert np.all(sign > 0)
    expected = 0.5 * (np.trace(S, axis1=1, axis2=2) + np.sum(mu ** 2, axis=1) - D - logdet)
    kl, _ = latent.fullcov_kl_forward(mu, L_raw)
    assert np.allclose(kl, expected, rtol=1e-10, atol=1e-12)
    upper = L_raw + np.triu(np.random.default_rng(seed).standard_normal((D, D)), 1)
    assert np.array_equal(latent.fullcov_kl_forward(mu, upper)[0], kl)
    assert np.all(kl >= 0.0)


@settings(deadline=None, max_examples=15)
@given(B=st.integers(1, 3), D=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 2.0))
def test_fullcov_kl_diagonal_case_is_the_diagonal_kl(B, D, seed, scale):
    """[KL-4] with a diagonal L (L_jj = exp(logvar_j / 2)) equals [KL-1], and [KL-5]'s diagonal
    gradient is twice [KL-3]'s (d/ds with s = logvar / 2)."""
    rng = np.random.default_rng(seed)
    mu, logvar = scale * rng.standard_normal((B, D)), scale * rng.standard_normal((B, D))
    L_raw = np.zeros((B, D, D))
    idx = np.arange(D)
    L_raw[:, idx, idx] = 0.5 * logvar
    kl_full, cache_full = latent.fullcov_kl_forward(mu, L_raw)
    kl_diag, cache_diag = latent.gaussian_kl_forward(mu, logvar)
    assert np.allclose(kl_full, kl_diag, rtol=1e-12, atol=1e-15)
    dkl = rng.standard_normal(B)
    dmu_f, dL = latent.fullcov_kl_backward(dkl, cache_full)
    dmu_d, dlogvar = latent.gaussian_kl_backward(dkl, cache_diag)
    assert np.allclose(dmu_f, dmu_d, rtol=1e-12)
    assert np.allclose(dL[:, idx, idx], 2.0 * dlogvar, rtol=1e-12, atol=1e-15)


def test_fullcov_kl_at_the_prior_is_zero_and_monte_carlo_agrees():
    """[KL-4] is exactly 0 at mu = 0, L = I; and a Monte-Carlo estimate E_q[log q − log p] with
    scipy's multivariate normal density (an independent computation) agrees within 4 standard errors."""
    from scipy.stats import multivariate_normal
    kl0, _ = latent.fullcov_kl_forward(np.zeros((1, 3)), np.zeros((1, 3, 3)))
    assert kl0[0] == 0.0
    rng = np.random.default_rng(5)
    mu, L_raw = _fullcov_inputs(1, 3, 11, 0.8)
    L = latent.fullcov_scale_tril(L_raw)[0]
    z = mu[0] + rng.standard_normal((200_000, 3)) @ L.T  # z ~ N(mu, L Lᵀ)
    log_ratio = (multivariate_normal(mu[0], L @ L.T).logpdf(z)
                 - multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z))
    kl, _ = latent.fullcov_kl_forward(mu, L_raw)
    se = log_ratio.std() / np.sqrt(len(log_ratio))
    assert abs(log_ratio.mean() - kl[0]) < 4 * se


def test_fullcov_kl_matches_torch_distributions():
    """[KL-4] and [KL-5] against torch.distributions.kl_divergence(MultivariateNormal(mu,
    scale_tril=L), N(0, I)) and its autograd gradient with respect to mu and L_raw (float64)."""
    torch = pytest.importorskip("torch")
    mu, L_raw = _fullcov_inputs(3, 4, 2, 0.7)
    tmu = torch.tensor(mu, requires_grad=True)
    tL = torch.tensor(L_raw, requires_grad=True)
    scale = torch.tril(tL, -1) + torch.diag_embed(torch.exp(torch.diagonal(tL, dim1=-2, dim2=-1)))
    q = torch.distributions.MultivariateNormal(tmu, scale_tril=scale)
    p = torch.distributions.MultivariateNormal(torch.zeros(4, dtype=torch.float64),
                                               scale_tril=torch.eye(4, dtype=torch.float64))
    t_kl = torch.distributions.kl_divergence(q, p)
    dkl = np.array([0.3, -1.2, 2.0])
    (t_kl * torch.tensor(dkl)).sum().backward()
    kl, cache = latent.fullcov_kl_forward(mu, L_raw)
    dmu, dL = latent.fullcov_kl_backward(dkl, cache)
    assert np.allclose(kl, t_kl.detach().numpy(), rtol=1e-12)
    assert np.allclose(dmu, tmu.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert np.allclose(dL, tL.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_fullcov_kl_gradcheck_catches_a_small_error():
    """The check of [KL-5] has teeth: a diagonal gradient 0.1% off fails it."""
    mu, L_raw = _fullcov_inputs(2, 3, 4, 0.8)

    def wrong_backward(dkl, cache):
        dmu, dL = latent.fullcov_kl_backward(dkl, cache)
        idx = np.arange(dL.shape[-1])
        dL[:, idx, idx] *= 1.001
        return dmu, dL

    report = check_pair(latent.fullcov_kl_forward, wrong_backward, [mu, L_raw], names=["mu", "L_raw"], rng=0)
    with pytest.raises(AssertionError):
        report.assert_ok()
