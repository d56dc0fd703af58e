"""VAE and ConditionalVAE: whole-loss gradient checks, the loss's parts, training with warm-up,
the bound ladder on held-out digits, the public API and bad inputs."""
import numpy as np
import pytest
from conftest import activation_inputs_off_kinks
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from npae import ConditionalVAE, VAE
from npae.datasets import load_digits
from npae.gradcheck import check_model
from npae.pairs.latent import LOG_2PI

ACTS = ["tanh", "relu", "leaky_relu", "elu", "softplus", "sigmoid"]


def _data(rng, likelihood, B, D):
    if likelihood == "bernoulli":
        return rng.uniform(0.0, 1.0, size=(B, D))
    return rng.standard_normal((B, D))


def _eps(rng, L, B, Z):
    return rng.standard_normal((B, Z) if L is None else (L, B, Z))


# ---------------------------------------------------------------- whole-loss gradient checks
@settings(deadline=None, max_examples=14)
@given(likelihood=st.sampled_from(["bernoulli", "gaussian"]), activation=st.sampled_from(ACTS),
       hidden=st.lists(st.integers(2, 4), min_size=0, max_size=2), B=st.integers(1, 4),
       D=st.integers(2, 5), Z=st.integers(1, 3), L=st.sampled_from([None, 1, 2, 3]),
       beta=st.floats(0.0, 4.0), seed=st.integers(0, 2**31 - 1))
def test_vae_gradcheck_every_parameter(likelihood, activation, hidden, B, D, Z, L, beta, seed):
    """Checks [ELBO-1], [ELBO-2], [ELBO-4], [ELBO-6]: every parameter's gradient of the whole loss against
    central differences, over drawn likelihoods, activations, shapes, L and β.
    Checks the fan-in [ELBO-5] with the drawn β.
    """
    rng = np.random.default_rng(seed)
    model = VAE(D, hidden=tuple(hidden), latent_dim=Z, activation=activation, likelihood=likelihood,
                beta=beta, seed=seed, slope=0.1)
    x, eps = _data(rng, likelihood, B, D), _eps(rng, L, B, Z)
    model.loss_and_grads(x, eps=eps)
    assume(activation_inputs_off_kinks(model))
    check_model(model, x, eps=eps).assert_ok()


@settings(deadline=None, max_examples=8)
@given(likelihood=st.sampled_from(["bernoulli", "gaussian"]), activation=st.sampled_from(ACTS),
       n_classes=st.integers(1, 4), B=st.integers(1, 4), L=st.sampled_from([None, 2]),
       beta=st.floats(0.0, 4.0), seed=st.integers(0, 2**31 - 1))
def test_conditional_vae_gradcheck_every_parameter(likelihood, activation, n_classes, B, L, beta, seed):
    """Checks [ELBO-8] against central differences."""
    rng = np.random.default_rng(seed)
    D, Z = 4, 2
    model = ConditionalVAE(D, n_classes, hidden=(3,), latent_dim=Z, activation=activation,
                           likelihood=likelihood, beta=beta, seed=seed)
    x, eps = _data(rng, likelihood, B, D), _eps(rng, L, B, Z)
    y = rng.integers(0, n_classes, size=B)
    model.loss_and_grads(x, y=y, eps=eps)
    assume(activation_inputs_off_kinks(model))
    check_model(model, x, eps=eps, y=y).assert_ok()


def test_gradcheck_with_clamp_firing():
    rng = np.random.default_rng(0)
    model = VAE(4, hidden=(3,), latent_dim=3, activation="tanh", beta=0.5, seed=1)
    last = model.params["encoder.1.b"]
    # raw logvar of latents 0 and 1 far below LOGVAR_MIN (above LOGVAR_MAX, std = e^15 would
    # saturate every tanh and leave nothing to check)
    last[3:5] = [-45.0, -52.0]
    x, eps = rng.uniform(size=(3, 4)), rng.standard_normal((3, 3))
    model.loss_and_grads(x, eps=eps)
    assert model.clamp_count_ == 6  # 2 latents x 3 examples
    report = check_model(model, x, eps=eps)
    report.assert_ok()
    _, grads = model.loss_and_grads(x, eps=eps)
    assert np.all(grads["encoder.1.b"][3:5] == 0.0)  # gradient 0 outside the clamp range
    last[5] = 31.0  # above LOGVAR_MAX: counted as well
    before = model.clamp_count_
    model.loss_and_grads(x, eps=eps)
    assert model.clamp_count_ - before == 3 * 3


# ---------------------------------------------------------------- the loss and its parts
def test_loss_terms_and_gaussian_constant():
    """Checks [ELBO-1] (loss = recon + β kl) and [ELBO-3] (the unit-variance Gaussian NLL with its
    constant) against the formulas written out.
    """
    rng = np.random.default_rng(2)
    model = VAE(5, hidden=(4,), latent_dim=2, likelihood="gaussian", beta=0.3, seed=0)
    x, eps = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
    loss, _ = model.loss_and_grads(x, eps=eps)
    mu, logvar = model.encode_stats(x)
    m = model.decode(mu + np.exp(0.5 * logvar) * eps)
    nll = 0.5 * np.sum((x - m) ** 2, axis=1) + 0.5 * 5 * LOG_2PI  # a real Gaussian NLL, nats
    kl = 0.5 * np.sum(mu**2 + np.exp(logvar) - 1 - logvar, axis=1)
    t = model.last_terms
    assert set(t) == {"loss", "recon", "kl"}
    np.testing.assert_allclose(t["recon"], nll.mean(), rtol=1e-12)
    np.testing.assert_allclose(t["kl"], kl.mean(), rtol=1e-12)
    np.testing.assert_allclose(loss, nll.mean() + 0.3 * kl.mean(), rtol=1e-12)


def test_L_samples_average_the_reconstruction():
    rng = np.random.default_rng(3)
    model = VAE(6, hidden=(5,), latent_dim=3, seed=0)
    x, eps = rng.uniform(size=(4, 6)), rng.standard_normal((3, 4, 3))
    loss, grads = model.loss_and_grads(x, eps=eps)
    grads = {k: v.copy() for k, v in grads.items()}
    singles = [model.loss_and_grads(x, eps=eps[draw]) for draw in range(3)]
    np.testing.assert_allclose(loss, np.mean([s[0] for s in singles]), rtol=1e-12)
    for name in grads:  # the KL gradient is the same in each single-draw step, so averaging works
        parts = [model.loss_and_grads(x, eps=eps[draw])[1][name].copy() for draw in range(3)]
        np.testing.assert_allclose(grads[name], np.mean(parts, axis=0), rtol=1e-10, atol=1e-14)


def test_eps_given_is_deterministic_and_omitted_is_seeded():
    x = np.random.default_rng(0).uniform(size=(5, 8))
    a, b = VAE(8, hidden=(6,), latent_dim=2, seed=4), VAE(8, hidden=(6,), latent_dim=2, seed=4)
    eps = np.random.default_rng(1).standard_normal((5, 2))
    assert a.loss_and_grads(x, eps=eps)[0] == a.loss_and_grads(x, eps=eps)[0]
    la = [a.loss_and_grads(x)[0] for _ in range(2)]
    lb = [b.loss_and_grads(x)[0] for _ in range(2)]
    assert la == lb and la[0] != la[1]


def test_float32_model():
    X = np.random.default_rng(0).uniform(size=(32, 10))
    model = VAE(10, hidden=(8,), latent_dim=2, dtype="float32", seed=0)
    loss, grads = model.loss_and_grads(X)
    assert np.isfinite(loss) and all(g.dtype == np.float32 for g in grads.values())
    assert model.sample(3, seed=0).dtype == np.float32


# ---------------------------------------------------------------- training
def test_fit_warmup_history_and_reproducibility():
    """Checks [ELBO-7]: β rises linearly over the warm-up epochs and the logged loss is recon + β_epoch ·
    kl.
    """
    X, _ = load_digits()
    X = X[:300]
    kw = dict(hidden=(16,), latent_dim=3, beta=2.0, seed=5)
    model = VAE(64, **kw)
    hist = model.fit(X, epochs=5, batch_size=50, warmup_epochs=3, progress=False,
                     validation_data=X[:60]).history_
    assert model.beta_schedule_ == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0, 2.0])
    assert model.beta == 2.0
    assert {"loss", "recon", "kl", "val_loss", "val_recon", "val_kl"} <= set(hist)
    for e, beta in enumerate(model.beta_schedule_):
        assert hist["loss"][e] == pytest.approx(hist["recon"][e] + beta * hist["kl"][e])
    again = VAE(64, **kw)
    again.fit(X, epochs=5, batch_size=50, warmup_epochs=3, progress=False, validation_data=X[:60])
    for name, p in model.params.items():
        np.testing.assert_array_equal(p, again.params[name])
    rebuilt = VAE(**model.config)
    assert set(rebuilt.params) == set(model.params)


@pytest.fixture(scope="module")
def trained_digits_vae():
    X, _ = load_digits()
    X = X[np.random.default_rng(0).permutation(len(X))]
    model = VAE(64, hidden=(64,), latent_dim=8, seed=0)
    model.fit(X[:1500], epochs=60, batch_size=64, lr=3e-3, progress=False)
    return model, X[1500:1700]


def test_bound_ladder_on_held_out_digits(trained_digits_vae):
    """ELBO <= IWAE-5 <= IWAE-50 <= IWAE-500, each step checked on the per-example differences:
    the mean gap must not be below 0 by more than 3 standard errors."""
    model, Xte = trained_digits_vae
    bounds = [-model.neg_elbo(Xte, seed=1, n_samples=100, per_example=True)]
    for k in (5, 50, 500):
        bounds.append(model.log_likelihood_estimate(Xte, k=k, seed=k, per_example=True))
    means = [b.mean() for b in bounds]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        gap = hi - lo
        assert gap.mean() > -3 * gap.std(ddof=1) / np.sqrt(gap.size), means
    climb = bounds[3] - bounds[0]  # the ladder really climbs on a trained model
    assert climb.mean() > 3 * climb.std(ddof=1) / np.sqrt(climb.size), means


def test_iwae_streaming_chunks_and_k1_is_the_elbo(trained_digits_vae):
    model, Xte = trained_digits_vae
    X = Xte[:30]
    one_chunk = model.log_likelihood_estimate(X, k=40, seed=3, chunk=40, per_example=True)
    chunks = model.log_likelihood_estimate(X, k=40, seed=3, chunk=7, per_example=True)
    np.testing.assert_allclose(chunks, one_chunk, rtol=1e-12)
    k1 = model.log_likelihood_estimate(X, k=1, seed=9, batch_size=30, per_example=True)
    elbo = -model.neg_elbo(X, seed=9, batch_size=30, per_example=True)
    np.testing.assert_allclose(k1, elbo, rtol=1e-12)
    # k = 5000 in bounded memory: a small chunk keeps one (chunk, batch, D) block at a time
    assert np.isfinite(model.log_likelihood_estimate(X[:2], k=5000, seed=0, chunk=500))


def test_latent_api(trained_digits_vae):
    model, Xte = trained_digits_vae
    mu, logvar = model.encode_stats(Xte)
    assert mu.shape == logvar.shape == (200, 8)
    np.testing.assert_array_equal(model.encode(Xte), mu)
    P = model.decode(mu)
    assert P.shape == (200, 64) and P.min() > 0 and P.max() < 1
    np.testing.assert_array_equal(model.sample(4, seed=2), model.sample(4, seed=2))
    kl_dim = model.kl_per_dimension(Xte)
    assert kl_dim.shape == (8,) and np.all(kl_dim >= 0)
    model.loss_and_grads(Xte, eps=np.zeros((200, 8)))
    np.testing.assert_allclose(kl_dim.sum(), model.last_terms["kl"], rtol=1e-10)
    active = model.active_units(Xte)
    assert active == int(np.sum(mu.var(axis=0) > 0.01)) and 1 <= active <= 8
    # neg_elbo estimates the beta = 1 loss: many draws agree with the closed-form-KL loss
    loss = model.evaluate(Xte)["loss"]
    assert abs(model.neg_elbo(Xte, seed=0, n_samples=50) - loss) < 1.0


# ---------------------------------------------------------------- conditional VAE
def test_conditional_vae_fit_sample_encode():
    X, y = load_digits()
    model = ConditionalVAE(64, 10, hidden=(16,), latent_dim=2, seed=0)
    hist = model.fit(X[:400], y[:400], epochs=3, batch_size=64, progress=False,
                     validation_data=(X[400:500], y[400:500]), warmup_epochs=2).history_
    assert len(hist["val_loss"]) == 3 and hist["loss"][-1] < hist["loss"][0]
    assert model.sample(5, y=3, seed=0).shape == (5, 64)
    assert model.sample(3, y=[0, 1, 2], seed=0).shape == (3, 64)
    assert model.sample(2, seed=0).shape == (2, 64)
    assert model.encode(X[:7], y[:7]).shape == (7, 2)
    assert model.decode(np.zeros((2, 2)), [4, 5]).shape == (2, 64)
    assert np.isfinite(model.log_likelihood_estimate(X[:5], y[:5], k=20, seed=0))
    assert np.isfinite(model.neg_elbo(X[:5], y[:5], seed=0))
    assert model.kl_per_dimension(X[:50], y[:50]).shape == (2,)
    # the label changes the decoded image at the same code
    assert not np.allclose(model.decode(np.zeros((1, 2)), [0]), model.decode(np.zeros((1, 2)), [1]))


# ---------------------------------------------------------------- bad input
def test_bad_inputs():
    model = VAE(4, hidden=(3,), latent_dim=2, seed=0)
    x = np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match=r"eps must have shape \(B, Z\) = \(3, 2\)"):
        model.loss_and_grads(x, eps=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"\(L, 3, 2\)"):
        model.loss_and_grads(x, eps=np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="eps must be 2-D or 3-D"):
        model.loss_and_grads(x, eps=np.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss_and_grads(x + 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.fit(-x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        VAE(4, beta=-0.5).params
    with pytest.raises(ValueError, match="likelihood"):
        VAE(4, likelihood="poisson").params
    with pytest.raises(ValueError, match="warmup_epochs"):
        model.fit(x, warmup_epochs=-1, progress=False)
    VAE(4, hidden=(3,), latent_dim=2, likelihood="gaussian").loss_and_grads(x + 1.0)  # fine
    cvae = ConditionalVAE(4, 3, hidden=(3,), latent_dim=2, seed=0)
    with pytest.raises(ValueError, match=r"y must lie in 0\.\.2"):
        cvae.loss_and_grads(x, y=[0, 1, 3])
    with pytest.raises(ValueError, match=r"y must lie in 0\.\.2"):
        cvae.sample(2, y=5)
    with pytest.raises(ValueError, match="3 labels but there are 2 samples"):
        cvae.encode(x[:2], [0, 1, 2])
    with pytest.raises(ValueError, match="needs the labels y"):
        cvae.loss_and_grads(x)
    with pytest.raises(ValueError, match="VAE is unconditional: y must be None"):
        model.encode(x, [0, 1, 2])
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        ConditionalVAE(4, 0).params


def test_sample_temperature_and_draws():
    """temperature T scales the prior draws (z ~ N(0, T² I)); draws=True samples x ~ p(x|z) too:
    0/1 pixels whose mean over many draws matches the decoder's probabilities."""
    X, y = load_digits()
    cvae = ConditionalVAE(64, 10, hidden=(32,), latent_dim=2, seed=0).fit(X[:500], y[:500], epochs=3,
                                                                          progress=False)
    z = 0.5 * np.random.default_rng(3).standard_normal((20, 2))
    np.testing.assert_allclose(cvae.sample(20, y=4, seed=3, temperature=0.5), cvae.decode(z, np.full(20, 4)),
                               rtol=1e-12)
    bits = cvae.sample(4000, y=1, seed=5, draws=True)
    assert set(np.unique(bits)) <= {0.0, 1.0}
    probs = cvae.sample(4000, y=1, seed=5)
    se = np.sqrt(probs.mean(axis=0) * (1 - probs.mean(axis=0)) / 4000) + 1e-3
    assert np.all(np.abs(bits.mean(axis=0) - probs.mean(axis=0)) < 5 * se)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        cvae.sample(3, temperature=0.0)
    gauss = VAE(64, hidden=(16,), latent_dim=2, likelihood="gaussian", variance="shared", seed=0)
    x = gauss.sample(5, seed=1, draws=True)
    assert x.shape == (5, 64) and not np.allclose(x, gauss.sample(5, seed=1))
