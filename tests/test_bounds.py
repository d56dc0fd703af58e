"""Decoder likelihoods with a variance, the IWAE and K-sample ELBO objectives, the log-weight's
gradients and the two-stochastic-layer model (npae/pairs/bounds.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import multivariate_normal, norm

from npae.pairs import bounds as bd
from npae.pairs import functional as F
from npae.pairs import latent
from npae.datasets import load_dataset
from npae.gradcheck import check_function, check_pair, numerical_gradient

seeds = st.integers(0, 2**31 - 1)
LOGVAR_LAYOUTS = ("scalar", "shared", "per_feature", "head", "head_per_draw")


def _logvar_shape(layout, L, B, D):
    return {"scalar": (), "shared": (1,), "per_feature": (D,), "head": (B, D),
            "head_per_draw": (B, D) if L is None else (L, B, D)}[layout]


# ---------------------------------------------------------------- Gaussian decoder [GAUSSDEC-1..4]
@settings(max_examples=25)
@given(B=st.integers(1, 4), D=st.integers(1, 4), L=st.sampled_from([None, 1, 3]),
       layout=st.sampled_from(LOGVAR_LAYOUTS), scale=st.floats(0.1, 3.0), seed=seeds)
def test_gaussian_nll_pair_gradcheck(B, D, L, layout, scale, seed):
    """Checks [GAUSSDEC-2], [GAUSSDEC-3], [GAUSSDEC-4] against central differences of [GAUSSDEC-1], for
    every logvar layout.
    """
    rng = np.random.default_rng(seed)
    mean = scale * rng.standard_normal((B, D) if L is None else (L, B, D))
    logvar = scale * rng.standard_normal(_logvar_shape(layout, L, B, D))
    x = rng.standard_normal((B, D))
    nll, _ = bd.gaussian_nll_forward(mean, logvar, x)
    assert nll.shape == mean.shape[:-1]
    report = check_pair(lambda m, v: bd.gaussian_nll_forward(m, v, x), bd.gaussian_nll_backward,
                        [mean, logvar], names=["mean", "logvar"], rng=seed)
    report.assert_ok()
    _, cache = bd.gaussian_nll_forward(mean, logvar, x)
    dmean, dlogvar = bd.gaussian_nll_backward(np.ones(nll.shape), cache)
    assert dmean.shape == mean.shape and dlogvar.shape == logvar.shape


def test_gaussian_nll_matches_scipy_and_the_fixed_variance_form(rng):
    """Checks [GAUSSDEC-1] against scipy.stats.norm, and at logvar = 0 the fixed-variance form [ELBO-3]."""
    mean, x = rng.standard_normal((2, 3, 5))
    logvar = rng.standard_normal(5)
    nll, _ = bd.gaussian_nll_forward(mean, logvar, x)
    want = -norm.logpdf(x, loc=mean, scale=np.exp(0.5 * logvar)).sum(axis=1)
    np.testing.assert_allclose(nll, want, rtol=1e-12)
    # the same density as log_normal with the roles of point and mean exchanged [IWAE-8]
    np.testing.assert_allclose(nll, -bd.log_normal_forward(x, mean, logvar)[0], rtol=1e-13)
    # logvar = 0 is [ELBO-3]: 0.5 ||x − m||² + 0.5 D log 2π
    nll0, _ = bd.gaussian_nll_forward(mean, 0.0, x)
    np.testing.assert_allclose(nll0, 0.5 * ((x - mean) ** 2).sum(1) + 2.5 * latent.LOG_2PI, rtol=1e-13)


def test_gaussian_nll_sample_axis_is_l_separate_calls(rng):
    mean = rng.standard_normal((3, 2, 4))
    head = rng.standard_normal((3, 2, 4))
    x = rng.standard_normal((2, 4))
    shared = np.array([0.3])
    for logvar in (shared, head):
        nll, cache = bd.gaussian_nll_forward(mean, logvar, x)
        dnll = rng.standard_normal((3, 2))
        dmean, dlogvar = bd.gaussian_nll_backward(dnll, cache)
        for draw in range(3):
            lv = logvar if logvar.shape == (1,) else logvar[draw]
            nll_draw, cache_draw = bd.gaussian_nll_forward(mean[draw], lv, x)
            np.testing.assert_allclose(nll[draw], nll_draw, rtol=1e-14)
            np.testing.assert_allclose(dmean[draw], bd.gaussian_nll_backward(dnll[draw], cache_draw)[0],
                                       rtol=1e-14)
        if logvar.shape == (1,):  # a shared logvar collects the sum over draws [GAUSSDEC-4]
            parts = [bd.gaussian_nll_backward(dnll[draw],
                                              bd.gaussian_nll_forward(mean[draw], shared, x)[1])[1]
                     for draw in range(3)]
            np.testing.assert_allclose(dlogvar, sum(parts), rtol=1e-13)


# ---------------------------------------------------------------- the floor [GAUSSDEC-5], [GAUSSDEC-6]
@settings(max_examples=20)
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 4)), floor=st.floats(-12.0, 0.0),
       spread=st.floats(0.5, 8.0), seed=seeds)
def test_logvar_floor_pair_gradcheck(shape, floor, spread, seed):
    """Checks [GAUSSDEC-6] against central differences of the floor [GAUSSDEC-5], over drawn floors and
    spreads.
    """
    rng = np.random.default_rng(seed)
    raw = floor + spread * rng.standard_normal(shape)
    check_pair(lambda r: bd.logvar_floor_forward(r, floor), bd.logvar_floor_backward, [raw],
               names=["raw"], rng=seed).assert_ok()
    logvar, _ = bd.logvar_floor_forward(raw, floor)
    assert np.all(logvar > floor)


def test_logvar_floor_is_finite_positive_gradient_and_nearly_identity_above():
    """Checks [GAUSSDEC-5]: above the floor, finite, close to raw far above it; and [GAUSSDEC-6] in (0, 1]."""
    raw = np.array([-1e4, -800.0, -50.0, -9.0, 0.0, 5.0, 40.0, 1e4])
    floor = bd.DECODER_LOGVAR_FLOOR
    logvar, cache = bd.logvar_floor_forward(raw, floor)
    assert np.all(np.isfinite(logvar)) and np.all(logvar >= floor)
    assert np.all(np.isfinite(np.exp(-logvar)))  # the precision never overflows
    draw = bd.logvar_floor_backward(np.ones_like(raw), cache)
    assert np.all(draw >= 0) and np.all(draw <= 1)
    assert np.all(draw[2:] > 0)  # a hard clamp would give exactly 0 below the floor
    far = raw > floor + 20
    np.testing.assert_allclose(logvar[far], raw[far], rtol=0, atol=1e-8)
    # with the floor, the NLL of a perfectly predicted feature is bounded below
    nll, _ = bd.gaussian_nll_forward(np.zeros((1, 8)), logvar, np.zeros((1, 8)))
    assert nll[0] > 8 * 0.5 * (latent.LOG_2PI + floor)


# ---------------------------------------------------------------- the closed-form best variance
@settings(max_examples=15)
@given(B=st.integers(2, 6), D=st.integers(1, 4), L=st.sampled_from([None, 2]),
       noise=st.floats(0.05, 5.0), seed=seeds)
def test_closed_form_logvar_optimum_matches_a_numerical_minimiser(B, D, L, noise, seed):
    """The NLL [GAUSSDEC-1] with a shared logvar is minimised at v* = log(mean squared residual)
    (gaussdec.md, the closed-form variance), and there the logvar gradient [GAUSSDEC-3], summed over
    the entries that share one logvar [GAUSSDEC-4], is 0, for the shared and per-feature layouts."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, D))
    mean = x + noise * rng.standard_normal((B, D) if L is None else (L, B, D))
    sq = (x - mean) ** 2
    v_star = np.log(np.mean(sq))

    def total_nll(v):
        return float(np.sum(bd.gaussian_nll_forward(mean, np.array([v]), x)[0]))

    numerical = minimize_scalar(total_nll, bracket=(-5.0, 5.0), tol=1e-12).x
    np.testing.assert_allclose(v_star, numerical, atol=1e-6)
    # the gradient vanishes there, for the shared and for the per-feature layout
    per_feature = np.log(sq.reshape(-1, D).mean(axis=0))  # (D,)
    for v in [np.array([v_star]), per_feature]:
        _, cache = bd.gaussian_nll_forward(mean, v, x)
        _, dlogvar = bd.gaussian_nll_backward(np.ones(mean.shape[:-1]), cache)
        assert dlogvar.shape == v.shape
        np.testing.assert_allclose(dlogvar, 0.0, atol=1e-12 * mean.size)


def test_unit_variance_linear_gaussian_ignores_the_latent_on_moons():
    """p(x) = N(c, a² + s²) for z ~ N(0, 1), x|z ~ N(a z + c, s²): with s² = 1 and Var x < 1 the
    maximum likelihood a is 0 (docs/derivations/gaussdec.md, the collapse section)."""
    X, _, _ = load_dataset("moons")
    for d in range(2):
        x = X[:, d]
        assert x.var() < 1.0
        a_grid = np.linspace(-2.0, 2.0, 401)
        loglik = [norm.logpdf(x, x.mean(), np.sqrt(a * a + 1.0)).sum() for a in a_grid]
        assert a_grid[int(np.argmax(loglik))] == 0.0
        # a learned s² explains the same variance with a² = Var x − s² > 0 at no cost
        s2 = 0.05 ** 2
        a_fit = np.sqrt(x.var() - s2)
        np.testing.assert_allclose(norm.logpdf(x, x.mean(), np.sqrt(a_fit ** 2 + s2)).sum(),
                                   norm.logpdf(x, x.mean(), x.std()).sum(), rtol=1e-12)


# ---------------------------------------------------------------- objectives [IWAE-4..7]
@settings(max_examples=25)
@given(K=st.integers(1, 6), B=st.integers(1, 4), spread=st.floats(0.1, 30.0),
       offset=st.floats(-1000.0, 1000.0), seed=seeds)
def test_objective_pairs_gradcheck(K, B, spread, offset, seed):
    """Checks [IWAE-5] and [IWAE-7] against central differences of [IWAE-4] and [IWAE-6]."""
    logw = offset + spread * np.random.default_rng(seed).standard_normal((K, B))
    for fwd, bwd in [(bd.iwae_objective_forward, bd.iwae_objective_backward),
                     (bd.multisample_elbo_forward, bd.multisample_elbo_backward)]:
        check_pair(fwd, bwd, [logw], names=["logw"], rng=seed).assert_ok()


@settings(max_examples=25)
@given(K=st.integers(1, 8), B=st.integers(1, 5), spread=st.floats(0.0, 1e4), seed=seeds)
def test_iwae_gradient_columns_sum_to_minus_one_over_b_and_value_is_bracketed(K, B, spread, seed):
    logw = spread * np.random.default_rng(seed).standard_normal((K, B))
    value, cache = bd.iwae_objective_forward(logw)
    dlogw = bd.iwae_objective_backward(1.0, cache)
    assert np.isfinite(value) and np.all(np.isfinite(dlogw))
    np.testing.assert_allclose(dlogw.sum(axis=0), -1.0 / B, rtol=1e-12)
    assert np.all(dlogw <= 0.0)
    np.testing.assert_allclose(value, -np.mean(latent.logmeanexp(logw, axis=0)), rtol=1e-12, atol=1e-12)
    # log-mean-exp lies between the mean (the ELBO, Jensen) and the maximum of the log-weights
    elbo_value, _ = bd.multisample_elbo_forward(logw)
    tol = 1e-12 * max(1.0, spread)
    assert value <= elbo_value + tol
    assert value >= -np.mean(logw.max(axis=0)) - tol


def test_a_backward_wrong_by_a_tenth_of_a_percent_fails():
    logw = np.random.default_rng(0).standard_normal((4, 3))
    bad = check_pair(bd.iwae_objective_forward,
                     lambda d, c: 1.001 * bd.iwae_objective_backward(d, c), [logw], rng=0)
    assert not bad.ok


def test_at_one_draw_iwae_and_elbo_agree_exactly():
    logw = np.random.default_rng(1).standard_normal((1, 6)) * 50
    v_iwae, c_iwae = bd.iwae_objective_forward(logw)
    v_elbo, c_elbo = bd.multisample_elbo_forward(logw)
    assert v_iwae == v_elbo
    np.testing.assert_array_equal(bd.iwae_objective_backward(1.0, c_iwae),
                                  bd.multisample_elbo_backward(1.0, c_elbo))


# ---------------------------------------------------------------- a linear-Gaussian toy model
def _toy(rng, D=3):
    """z ~ N(0, 1), x|z ~ N(a z + c, s² I): known marginal and exact (1-D) posterior."""
    a, c = rng.standard_normal(D), rng.standard_normal(D)
    s2 = 0.5
    x = rng.standard_normal((4, D)) * 2.0
    cov = np.outer(a, a) + s2 * np.eye(D)
    log_px = multivariate_normal(c, cov).logpdf(x)  # (B,)
    post_var = 1.0 / (1.0 + a @ a / s2)
    post_mu = post_var * ((x - c) @ a) / s2  # (B,)
    return dict(a=a, c=c, logvar_x=np.array([np.log(s2)]), x=x, log_px=log_px,
                mu=post_mu[:, None], logvar=np.full((4, 1), np.log(post_var)))


def _toy_log_weights(toy, mu, logvar, eps):
    """log w of K draws, (K, B), and what the backward needs."""
    (z, log_ratio), r_cache = bd.reparam_log_ratio_forward(mu, logvar, eps)  # z (K, B, 1)
    mean = z * toy["a"] + toy["c"]  # (K, B, D)
    nll, n_cache = bd.gaussian_nll_forward(mean, toy["logvar_x"], toy["x"])  # (K, B)
    return -nll + log_ratio, (r_cache, n_cache)  # [IWAE-1]


def _toy_grads(toy, dlogw, caches):
    """(dmu, dlogvar) of Σ logw ⊙ dlogw, node by node."""
    r_cache, n_cache = caches
    dmean, _ = bd.gaussian_nll_backward(-dlogw, n_cache)  # (K, B, D)
    dz_dec = (dmean * toy["a"]).sum(axis=-1, keepdims=True)  # (K, B, 1)
    return bd.reparam_log_ratio_backward((dz_dec, dlogw), r_cache)


def test_iwae_with_the_exact_posterior_is_minus_log_px_for_every_k(rng):
    toy = _toy(rng)
    for K in (1, 3, 50):
        eps = rng.standard_normal((K, 4, 1))
        logw, _ = _toy_log_weights(toy, toy["mu"], toy["logvar"], eps)
        np.testing.assert_allclose(logw, np.broadcast_to(toy["log_px"], logw.shape), rtol=1e-12)
        value, _ = bd.iwae_objective_forward(logw)
        np.testing.assert_allclose(value, -toy["log_px"].mean(), rtol=1e-12)


def test_iwae_value_decreases_toward_minus_log_px_as_k_grows():
    rng = np.random.default_rng(2)
    toy = _toy(rng)
    mu = toy["mu"] + 1.0  # a deliberately poor q: shifted and too wide
    logvar = toy["logvar"] + 1.0
    n = 2 ** 16
    target = -toy["log_px"].mean()
    values, errors = [], []
    for K in (1, 4, 16, 64, 256):
        eps = rng.standard_normal((K, n // K, 4, 1))  # n // K replicates of K draws per example
        logw, _ = _toy_log_weights(toy, mu, logvar, eps)  # (K, n // K, B)
        per_rep = -np.mean(latent.logmeanexp(logw, axis=0), axis=1)  # (n // K,) objective of each replicate
        values.append(per_rep.mean())
        errors.append(per_rep.std(ddof=1) / np.sqrt(len(per_rep)))
    values, errors = np.array(values), np.array(errors)
    gaps = values[:-1] - values[1:]
    noise = np.hypot(errors[:-1], errors[1:])
    # each step down is larger than the Monte-Carlo noise, until the gap (~1/K) gets below it
    assert np.all(gaps[:3] > 5 * noise[:3]) and gaps[3] > -5 * noise[3], (values, errors)
    assert np.all(values > target - 5 * errors)  # a bound: never below −log p(x)
    assert values[-1] - target < 0.02 * (values[0] - target)  # 99.7% of the ELBO's gap closed here


def test_at_k_one_iwae_gradient_equals_the_sampled_kl_elbo_gradient(rng):
    toy = _toy(rng)
    mu, logvar = toy["mu"] + 0.3, toy["logvar"] - 0.4
    eps = rng.standard_normal((1, 4, 1))
    logw, caches = _toy_log_weights(toy, mu, logvar, eps)
    v_iwae, c_iwae = bd.iwae_objective_forward(logw)
    g_iwae = _toy_grads(toy, bd.iwae_objective_backward(1.0, c_iwae), caches)
    # the ELBO with the sampled KL: recon_mean + kl_mean, kl_i = log q − log p at the sample
    (z, log_ratio), r_cache = bd.reparam_log_ratio_forward(mu, logvar, eps)
    nll, n_cache = bd.gaussian_nll_forward(z * toy["a"] + toy["c"], toy["logvar_x"], toy["x"])
    recon_mean, kl_mean = nll.mean(), (-log_ratio).mean()
    np.testing.assert_allclose(v_iwae, recon_mean + kl_mean, rtol=1e-14)
    dmean, _ = bd.gaussian_nll_backward(np.full((1, 4), 1 / 4), n_cache)
    dz_dec = (dmean * toy["a"]).sum(axis=-1, keepdims=True)
    g_elbo = bd.reparam_log_ratio_backward((dz_dec, np.full((1, 4), -1 / 4)), r_cache)
    for gi, ge in zip(g_iwae, g_elbo):
        np.testing.assert_array_equal(gi, ge)


def test_sampled_kl_averages_to_the_closed_form_kl():
    rng = np.random.default_rng(4)
    mu = np.array([[0.5, -1.0], [0.2, 0.0]])
    logvar = np.array([[-0.5, 0.8], [0.0, -1.2]])
    eps = rng.standard_normal((100_000, 2, 2))
    (_, log_ratio), _ = bd.reparam_log_ratio_forward(mu, logvar, eps)
    kl, _ = latent.gaussian_kl_forward(mu, logvar)
    mc, se = (-log_ratio).mean(0), log_ratio.std(0, ddof=1) / np.sqrt(len(eps))
    assert np.all(np.abs(mc - kl) < 5 * se), (mc, kl, se)


# ---------------------------------------------------------------- log densities [IWAE-8], [IWAE-9]
@settings(max_examples=20)
@given(B=st.integers(1, 4), Z=st.integers(1, 4), L=st.sampled_from([None, 1, 3]),
       scale=st.floats(0.1, 3.0), seed=seeds)
def test_log_density_pairs_gradcheck(B, Z, L, scale, seed):
    """Checks [IWAE-8], [IWAE-9] against central differences of [GAUSS-1], [GAUSS-2]."""
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal((B, Z) if L is None else (L, B, Z))
    mu, logvar = scale * rng.standard_normal((2, B, Z))
    check_pair(bd.log_normal_forward, bd.log_normal_backward, [z, mu, logvar],
               names=["z", "mu", "logvar"], rng=seed).assert_ok()
    check_pair(bd.log_standard_normal_forward, bd.log_standard_normal_backward, [z],
               names=["z"], rng=seed).assert_ok()
    np.testing.assert_allclose(bd.log_normal_forward(z, mu, logvar)[0], latent.log_normal(z, mu, logvar),
                               rtol=1e-13)


# ---------------------------------------------------------------- one log-weight [IWAE-10], [IWAE-11]
def _decoder(x, A, logvar_x):
    """A fixed smooth toy decoder: log p(x|z) = −NLL(tanh(z A), logvar_x, x), as a pair in z."""
    def forward(z):
        h = np.tanh(z @ A)  # (L, B, D) or (B, D)
        nll, cache = bd.gaussian_nll_forward(h, logvar_x, x)
        return -nll, (h, cache)

    def backward(dlog_px, cache):
        h, n_cache = cache
        dh, _ = bd.gaussian_nll_backward(-dlog_px, n_cache)
        return (dh * (1.0 - h * h)) @ A.T
    return forward, backward


def _log_weight_pair(dec_forward, dec_backward, eps, backward_kind):
    def forward(mu, logvar):
        (z, log_ratio), r_cache = bd.reparam_log_ratio_forward(mu, logvar, eps)
        log_px, d_cache = dec_forward(z)
        return log_px + log_ratio, (r_cache, d_cache)  # [IWAE-1]

    def backward(dlogw, cache):
        r_cache, d_cache = cache
        dz_dec = dec_backward(dlogw, d_cache)
        return backward_kind((dz_dec, dlogw), r_cache)
    return forward, backward


@settings(max_examples=20)
@given(B=st.integers(1, 3), Z=st.integers(1, 3), D=st.integers(1, 3), L=st.sampled_from([None, 1, 3]),
       scale=st.floats(0.2, 2.0), seed=seeds)
def test_log_weight_gradients_node_by_node_and_fused(B, Z, D, L, scale, seed):
    """Checks [IWAE-10] (node by node) and [IWAE-11] (fused) against central differences of the log-weight
    [IWAE-1].
    """
    rng = np.random.default_rng(seed)
    mu, logvar = scale * rng.standard_normal((2, B, Z))
    eps = rng.standard_normal((B, Z) if L is None else (L, B, Z))
    x, A = rng.standard_normal((B, D)), rng.standard_normal((Z, D))
    dec = _decoder(x, A, np.array([np.log(0.3)]))
    node = _log_weight_pair(*dec, eps, bd.reparam_log_ratio_backward)
    fused = _log_weight_pair(*dec, eps, bd.reparam_log_ratio_backward_fused)
    check_pair(*node, [mu, logvar], names=["mu", "logvar"], rng=seed).assert_ok()
    check_pair(*fused, [mu, logvar], names=["mu", "logvar"], rng=seed).assert_ok()
    logw, cache = node[0](mu, logvar)
    dlogw = rng.standard_normal(logw.shape)
    for g_node, g_fused in zip(node[1](dlogw, cache), fused[1](dlogw, cache)):
        np.testing.assert_allclose(g_fused, g_node, rtol=1e-11, atol=1e-13)


@settings(max_examples=15)
@given(B=st.integers(1, 3), Z=st.integers(1, 4), scale=st.floats(0.2, 3.0), seed=seeds)
def test_log_q_at_its_own_sample_has_zero_mu_derivative_and_half_logvar_derivative(B, Z, scale, seed):
    """[IWAE-11]: log q(mu + σ eps | mu, logvar) = −½ Σ (log 2π + logvar + eps²) at fixed eps."""
    rng = np.random.default_rng(seed)
    mu, logvar = scale * rng.standard_normal((2, B, Z))
    eps = rng.standard_normal((B, Z))

    def log_q_at_sample(mu_, logvar_):
        z, _ = latent.reparameterize_forward(mu_, logvar_, eps)
        return float(np.sum(bd.log_normal_forward(z, mu_, logvar_)[0]))

    z, _ = latent.reparameterize_forward(mu, logvar, eps)
    np.testing.assert_allclose(bd.log_normal_forward(z, mu, logvar)[0], bd.reparam_log_q(logvar, eps),
                               rtol=1e-12)
    check_function(log_q_at_sample, [mu, logvar], [None, np.full_like(logvar, -0.5)],
                   names=["mu", "logvar"]).assert_ok()
    # a zero gradient has no relative error: compare with the round-off of the differences instead
    dmu_total = numerical_gradient(lambda m: log_q_at_sample(m, logvar), mu.copy())
    assert np.max(np.abs(dmu_total)) < 1e-9 * max(1.0, abs(log_q_at_sample(mu, logvar)))
    # the partial derivative at fixed z (the score) is not zero: only the total derivative is
    _, q_cache = bd.log_normal_forward(z, mu, logvar)
    _, dmu_score, _ = bd.log_normal_backward(np.ones(B), q_cache)
    np.testing.assert_allclose(dmu_score, eps * np.exp(-0.5 * logvar), rtol=1e-12)


# ---------------------------------------------------------------- two stochastic layers [HIER-1..3]
@settings(max_examples=15)
@given(K=st.sampled_from([None, 1, 3]), B=st.integers(1, 3), Z1=st.integers(1, 3), Z2=st.integers(1, 3),
       scale=st.floats(0.2, 2.0), seed=seeds)
def test_hierarchical_log_weight_pair_gradcheck(K, B, Z1, Z2, scale, seed):
    """Checks [HIER-2] and the density-point part of the fan-in [HIER-3] against central differences of the
    log-weight [HIER-1], over drawn shapes and scales.
    """
    rng = np.random.default_rng(seed)
    lead = () if K is None else (K,)
    args = [scale * rng.standard_normal(lead + (B,)),  # log_px
            scale * rng.standard_normal(lead + (B, Z1)),  # z1
            *scale * rng.standard_normal((2, B, Z1)),  # mu1, logvar1 (from x, shared by draws)
            scale * rng.standard_normal(lead + (B, Z2)),  # z2
            *scale * rng.standard_normal((2,) + lead + (B, Z2)),  # mu2, logvar2 (from z1)
            *scale * rng.standard_normal((2,) + lead + (B, Z1))]  # pmu1, plogvar1 (from z2)
    names = ["log_px", "z1", "mu1", "logvar1", "z2", "mu2", "logvar2", "pmu1", "plogvar1"]
    check_pair(bd.hierarchical_log_weight_forward, bd.hierarchical_log_weight_backward, args,
               names=names, rng=seed).assert_ok()


def _dense_params(rng, sizes, scale):
    """{name.W, name.b} for the layers (name, n_in, n_out)."""
    params = {}
    for name, n_in, n_out in sizes:
        params[f"{name}.W"] = scale * rng.standard_normal((n_in, n_out))
        params[f"{name}.b"] = 0.5 * scale * rng.standard_normal(n_out)
    return params


def _two_layer_forward(p, x, eps1, eps2, floor):
    """IWAE-K objective of x → z1 → z2 with p(z2) p(z1|z2) p(x|z1), built from dense pairs.

    enc1: x → tanh(dense) → dense → [mu1 | logvar1]; enc2: z1 → dense → [mu2 | logvar2];
    prior: z2 → dense → [pmu1 | plogvar1]; decoder: z1 → tanh(dense) → dense → [mean | raw logvar],
    a Gaussian with a learned, floored variance.
    """
    K, B, Z1 = eps1.shape
    Z2, D = eps2.shape[-1], x.shape[1]
    c = {}
    a1, c["e1a"] = F.dense_forward(x, p["enc1a.W"], p["enc1a.b"])  # (B, H)
    h1, c["e1t"] = F.tanh_forward(a1)
    out1, c["e1b"] = F.dense_forward(h1, p["enc1b.W"], p["enc1b.b"])  # (B, 2 Z1)
    mu1, logvar1 = out1[:, :Z1], out1[:, Z1:]
    z1, c["r1"] = latent.reparameterize_forward(mu1, logvar1, eps1)  # (K, B, Z1)
    out2, c["e2"] = F.dense_forward(z1.reshape(K * B, Z1), p["enc2.W"], p["enc2.b"])  # (K B, 2 Z2)
    out2 = out2.reshape(K, B, 2 * Z2)
    mu2, logvar2 = out2[..., :Z2], out2[..., Z2:]
    z2, c["r2"] = latent.reparameterize_forward(mu2, logvar2, eps2)  # (K, B, Z2)
    outp, c["pr"] = F.dense_forward(z2.reshape(K * B, Z2), p["prior.W"], p["prior.b"])  # (K B, 2 Z1)
    outp = outp.reshape(K, B, 2 * Z1)
    pmu1, plogvar1 = outp[..., :Z1], outp[..., Z1:]
    ad, c["da"] = F.dense_forward(z1.reshape(K * B, Z1), p["deca.W"], p["deca.b"])  # (K B, H)
    hd, c["dt"] = F.tanh_forward(ad)
    outd, c["db"] = F.dense_forward(hd, p["decb.W"], p["decb.b"])  # (K B, 2 D)
    outd = outd.reshape(K, B, 2 * D)
    logvar_x, c["fl"] = bd.logvar_floor_forward(outd[..., D:], floor)  # (K, B, D)
    nll, c["nll"] = bd.gaussian_nll_forward(outd[..., :D], logvar_x, x)  # (K, B)
    logw, c["hier"] = bd.hierarchical_log_weight_forward(-nll, z1, mu1, logvar1, z2, mu2, logvar2,
                                                         pmu1, plogvar1)  # (K, B) [HIER-1]
    value, c["iwae"] = bd.iwae_objective_forward(logw)  # [IWAE-4]
    c["logw"] = logw
    c["shapes"] = (K, B, Z1, Z2, D)
    return value, c


def _two_layer_backward(c):
    """Every weight's gradient, in the order of docs/derivations/hier.md#hier-3."""
    K, B, Z1, Z2, D = c["shapes"]
    g = {}
    dlogw = bd.iwae_objective_backward(1.0, c["iwae"])  # (K, B) [IWAE-5]
    (dlog_px, dz1_pts, dmu1_q, dlogvar1_q, dz2_pts, dmu2_q, dlogvar2_q, dpmu1, dplogvar1) = \
        bd.hierarchical_log_weight_backward(dlogw, c["hier"])  # [HIER-2]
    # prior network p(z1|z2) → z2's third use
    dz2_prior, g["prior.W"], g["prior.b"] = F.dense_backward(
        np.concatenate([dpmu1, dplogvar1], axis=-1).reshape(K * B, 2 * Z1), c["pr"])
    dz2 = dz2_pts + dz2_prior.reshape(K, B, Z2)  # z2 complete [HIER-3]
    dmu2_s, dlogvar2_s = latent.reparameterize_backward(dz2, c["r2"])  # (K, B, Z2)
    dmu2, dlogvar2 = dmu2_s + dmu2_q, dlogvar2_s + dlogvar2_q  # sampler + q(z2|z1) [IWAE-10]
    dz1_enc2, g["enc2.W"], g["enc2.b"] = F.dense_backward(
        np.concatenate([dmu2, dlogvar2], axis=-1).reshape(K * B, 2 * Z2), c["e2"])  # uses 4, 5
    # decoder p(x|z1): log p(x|z1) = −nll
    dmean, dlogvar_x = bd.gaussian_nll_backward(-dlog_px, c["nll"])  # (K, B, D) each
    draw = bd.logvar_floor_backward(dlogvar_x, c["fl"])
    dhd, g["decb.W"], g["decb.b"] = F.dense_backward(
        np.concatenate([dmean, draw], axis=-1).reshape(K * B, 2 * D), c["db"])
    dz1_dec, g["deca.W"], g["deca.b"] = F.dense_backward(F.tanh_backward(dhd, c["dt"]), c["da"])  # use 1
    dz1 = dz1_pts + dz1_enc2.reshape(K, B, Z1) + dz1_dec.reshape(K, B, Z1)  # five uses [HIER-3]
    dmu1_s, dlogvar1_s = latent.reparameterize_backward(dz1, c["r1"])  # (B, Z1), summed over K
    dmu1, dlogvar1 = dmu1_s + dmu1_q, dlogvar1_s + dlogvar1_q  # [IWAE-10]
    dh1, g["enc1b.W"], g["enc1b.b"] = F.dense_backward(np.concatenate([dmu1, dlogvar1], axis=1), c["e1b"])
    _, g["enc1a.W"], g["enc1a.b"] = F.dense_backward(F.tanh_backward(dh1, c["e1t"]), c["e1a"])
    return g


@settings(max_examples=10)
@given(K=st.integers(1, 3), B=st.integers(1, 3), D=st.integers(1, 3), H=st.integers(1, 3),
       Z1=st.integers(1, 2), Z2=st.integers(1, 2), scale=st.floats(0.2, 1.0),
       floor=st.floats(-6.0, -1.0), seed=seeds)
def test_two_layer_iwae_gradient(K, B, D, H, Z1, Z2, scale, floor, seed):
    rng = np.random.default_rng(seed)
    params = _dense_params(rng, [("enc1a", D, H), ("enc1b", H, 2 * Z1), ("enc2", Z1, 2 * Z2),
                                 ("prior", Z2, 2 * Z1), ("deca", Z1, H), ("decb", H, 2 * D)], scale)
    x = rng.standard_normal((B, D))
    eps1, eps2 = rng.standard_normal((K, B, Z1)), rng.standard_normal((K, B, Z2))
    names = sorted(params)
    _, cache = _two_layer_forward(params, x, eps1, eps2, floor)
    grads = _two_layer_backward(cache)
    assert sorted(grads) == names

    def objective(*arrays):
        return _two_layer_forward(dict(zip(names, arrays)), x, eps1, eps2, floor)[0]

    check_function(objective, [params[n] for n in names], [grads[n] for n in names],
                   names=names).assert_ok()


@pytest.mark.parametrize("K", [1, 4])
def test_two_layer_iwae_objective_is_below_the_k_sample_elbo(K):
    rng = np.random.default_rng(5)
    params = _dense_params(rng, [("enc1a", 3, 4), ("enc1b", 4, 4), ("enc2", 2, 2),
                                 ("prior", 1, 4), ("deca", 2, 4), ("decb", 4, 6)], 0.5)
    x = rng.standard_normal((5, 3))
    eps1, eps2 = rng.standard_normal((K, 5, 2)), rng.standard_normal((K, 5, 1))
    value, cache = _two_layer_forward(params, x, eps1, eps2, bd.DECODER_LOGVAR_FLOOR)
    elbo_value, _ = bd.multisample_elbo_forward(cache["logw"])
    assert np.isfinite(value) and np.all(np.isfinite(cache["logw"]))
    if K == 1:
        assert value == elbo_value
    else:
        assert value < elbo_value  # log of a mean ≥ mean of logs, strictly for unequal weights
