"""Beyond the plain ELBO, as whole models: a Gaussian decoder that learns its variance, the IWAE
training objective, k-sample ELBO training, and flows in the posterior.

Every configuration's whole loss is checked against central differences (float64, rel <= 1e-6)
over drawn sizes, k and flow lengths; IWAE at k = 1 is the ELBO objective (value and gradient);
the moons VAE keeps an active unit with a learned variance and warns when it collapses; the
bound ladder holds with a flow; both backends train these models to the same parameters.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npae
from npae import datasets
from npae.fast import backends
from npae.pairs import latent
from npae.gradcheck import check_model
from npae.models.vae import CollapseWarning

from conftest import activation_inputs_off_kinks

CONFIGS = [
    dict(objective="iwae"),
    dict(objective="elbo"),
    dict(flow="planar"),
    dict(flow="planar", objective="iwae"),
    dict(flow="iaf"),
    dict(flow="iaf", objective="iwae", flow_hidden=6),
    dict(likelihood="gaussian", variance="shared"),
    dict(likelihood="gaussian", variance="per_feature", objective="iwae"),
    dict(likelihood="gaussian", variance="learned"),
    dict(likelihood="gaussian", variance="learned", flow="iaf", objective="iwae"),
]


@settings(deadline=None, max_examples=4)
@given(D=st.integers(2, 6), H=st.integers(2, 5), Z=st.integers(1, 3), B=st.integers(1, 4),
       k=st.integers(1, 4), steps=st.integers(1, 3), seed=st.integers(0, 2**31 - 1),
       activation=st.sampled_from(["tanh", "softplus", "relu"]))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_whole_loss_gradcheck(config, D, H, Z, B, k, steps, seed, activation):
    kw = dict(config)
    if "flow" in kw:
        kw["flow_steps"] = steps
    rng = np.random.default_rng(seed)
    model = npae.VAE(D, hidden=(H,), latent_dim=Z, activation=activation, k=k, seed=seed, **kw)
    x = rng.random((B, D)) if model.likelihood == "bernoulli" else rng.standard_normal((B, D))
    eps = rng.standard_normal((k, B, Z))
    model.loss_and_grads(x, eps=eps)
    if activation == "relu" and not activation_inputs_off_kinks(model):
        return  # a central difference across ReLU's kink measures nothing
    check_model(model, x, eps=eps).assert_ok()


@pytest.mark.parametrize("flow", [None, "planar", "iaf"])
def test_conditional_models_with_every_objective_gradcheck(flow):
    rng = np.random.default_rng(3)
    model = npae.ConditionalVAE(5, 3, hidden=(4,), latent_dim=2, activation="tanh", objective="iwae",
                                k=3, flow=flow, seed=2)
    x, y = rng.random((4, 5)), np.array([0, 2, 1, 2])
    eps = rng.standard_normal((3, 4, 2))
    from npae import gradcheck
    rows = []
    _, grads = model.loss_and_grads(x, y, eps=eps)
    for name, p in model.params.items():
        num = gradcheck.numerical_gradient(lambda _: model.loss_and_grads(x, y, eps=eps)[0], p)
        rows.append((name, gradcheck.rel_error(grads[name], num)))
    gradcheck.GradcheckReport(rows).assert_ok()


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_iwae_at_k1_equals_the_elbo_objective(flow):
    """With one sample the log-mean-exp of one log-weight is that log-weight: the IWAE-1 objective
    and the 1-sample ELBO objective are the same number and the same gradient."""
    rng = np.random.default_rng(0)
    x = rng.random((5, 6))
    eps = rng.standard_normal((1, 5, 2))
    iwae = npae.VAE(6, hidden=(4,), latent_dim=2, flow=flow, objective="iwae", k=1, seed=7)
    elbo = npae.VAE(6, hidden=(4,), latent_dim=2, flow=flow, objective="elbo", k=1, seed=7)
    loss_i, grads_i = iwae.loss_and_grads(x, eps=eps)
    loss_e, grads_e = elbo.loss_and_grads(x, eps=eps)
    assert loss_i == pytest.approx(loss_e, rel=1e-14)
    for name in grads_e:
        np.testing.assert_allclose(grads_i[name], grads_e[name], rtol=1e-12, atol=1e-15)


def test_iwae_at_k1_without_a_flow_is_the_elbo_with_a_sampled_kl():
    """No flow: IWAE-1 = −[log p(x|z) + log p(z) − log q(z|x)] at the one draw, i.e. the ELBO's
    reconstruction term plus the KL estimated at that draw (the closed-form KL is its mean).
    Checks [IWAE-1] at one draw.
    """
    rng = np.random.default_rng(1)
    x = rng.random((6, 5))
    eps = rng.standard_normal((1, 6, 3))
    model = npae.VAE(5, hidden=(4,), latent_dim=3, objective="iwae", k=1, seed=0)
    loss, _ = model.loss_and_grads(x, eps=eps)
    mu, logvar = model.encode_stats(x)
    z, _ = latent.reparameterize_forward(mu, logvar, eps[0])
    log_px = -npae.pairs.functional.bce_with_logits_sum(model.decoder.apply(z), x)
    sampled_kl = latent.log_normal(z, mu, logvar) - latent.log_standard_normal(z)
    assert loss == pytest.approx(float(np.mean(-log_px + sampled_kl)), rel=1e-12)


def test_iwae_gradient_weights_the_samples_by_their_normalised_weights():
    """[IWAE-5]: the IWAE gradient is the w̃-weighted average of the per-sample gradients of
    −log w_k. Build it from k one-sample models' gradients (each at its own eps) and compare."""
    rng = np.random.default_rng(2)
    K, x = 4, rng.random((1, 5))
    eps = rng.standard_normal((K, 1, 2))
    model = npae.VAE(5, hidden=(4,), latent_dim=2, objective="iwae", k=K, seed=3)
    _, grads = model.loss_and_grads(x, eps=eps)
    logw = model._log_weights(x, None, eps)[:, 0]  # (K,)
    w_tilde = np.exp(logw - logw.max())
    w_tilde /= w_tilde.sum()
    one = npae.VAE(5, hidden=(4,), latent_dim=2, objective="iwae", k=1, seed=3)
    combined = {name: np.zeros_like(g) for name, g in grads.items()}
    for kk in range(K):
        _, g = one.loss_and_grads(x, eps=eps[kk:kk + 1])
        for name in combined:
            combined[name] += w_tilde[kk] * g[name]
    for name in grads:
        np.testing.assert_allclose(grads[name], combined[name], rtol=1e-10, atol=1e-13)


def test_the_flow_enters_the_log_weight_with_its_log_determinant():
    """log w = log p(x|z_K) + log p(z_K) − log q_0(z_0) + Σ log|det|, with the flow's logdet equal
    to log |det| of the numerically computed Jacobian of z_0 ↦ z_K.
    Checks [IWAE-1] with [FLOW-7].
    """
    rng = np.random.default_rng(4)
    model = npae.VAE(4, hidden=(3,), latent_dim=3, flow="iaf", flow_steps=2, seed=5)
    x = rng.random((1, 4))
    eps = rng.standard_normal((1, 1, 3))
    mu, logvar, _, h = model._posterior(x)
    z0 = mu + np.exp(0.5 * logvar) * eps[0]
    zK, logdet, _ = model._flow_forward(z0, h)
    step = 1e-6
    J = np.empty((3, 3))
    for j in range(3):
        e = np.zeros(3)
        e[j] = step
        J[:, j] = (model._flow_forward(z0 + e, h)[0] - model._flow_forward(z0 - e, h)[0])[0] / (2 * step)
    assert logdet[0] == pytest.approx(np.log(abs(np.linalg.det(J))), abs=1e-8)
    logw = model._log_weights(x, None, eps)[0, 0]
    log_px = -npae.pairs.functional.bce_with_logits_sum(model.decoder.apply(zK), x)[0]
    want = log_px + latent.log_standard_normal(zK)[0] - latent.log_normal(z0, mu, logvar)[0] + logdet[0]
    assert logw == pytest.approx(want, rel=1e-12)


@pytest.fixture(scope="module")
def moons():
    X, _, _ = datasets.load_dataset("moons", seed=0)
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm[150:]], X[perm[:150]]


@pytest.mark.parametrize("variance", ["shared", "per_feature", "learned"])
def test_moons_keeps_an_active_unit_with_a_learned_variance(moons, variance):
    """With σ² = 1 the reconstruction term of data of scale ~1 is too weak against the KL and the
    posterior collapses; a learned variance lets the likelihood weigh it properly."""
    Xtr, Xte = moons
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        vae = npae.VAE(hidden=(64,), latent_dim=2, likelihood="gaussian", variance=variance,
                       seed=0).fit(Xtr, epochs=100, lr=2e-3, progress=False)
    assert vae.active_units(Xte) >= 1
    # decoded prior draws spread over the data (a collapsed model's means spread 0.08 of its std)
    spread = vae.decode(np.random.default_rng(1).standard_normal((1000, 2))).std(axis=0)
    assert np.all(spread > 0.25 * Xtr.std(axis=0)), spread


def test_a_collapsed_run_warns_and_says_what_to_try(moons):
    Xtr, _ = moons
    with pytest.warns(CollapseWarning, match="no active latent unit.*variance="):
        npae.VAE(hidden=(64,), latent_dim=2, likelihood="gaussian", variance="fixed",
                 seed=0).fit(Xtr, epochs=100, lr=2e-3, progress=False)


def test_the_ladder_holds_with_a_flow_and_iwae_training():
    X, _ = datasets.load_digits()
    vae = npae.VAE(hidden=(32,), latent_dim=4, flow="iaf", objective="iwae", k=4, seed=0)
    vae.fit(X[:1200], epochs=4, progress=False)
    held = X[1500:1700]
    bounds_ = [-vae.neg_elbo(held, n_samples=20, per_example=True)]
    for k in (5, 50):
        bounds_.append(vae.log_likelihood_estimate(held, k=k, per_example=True))
    for lo, hi in zip(bounds_[:-1], bounds_[1:]):
        gap = hi - lo
        assert gap.mean() > -3 * gap.std(ddof=1) / np.sqrt(gap.size)
    assert np.isfinite(vae.evaluate(held)["loss"])


def test_objectives_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="beta=0.5 needs the closed-form KL"):
        npae.VAE(4, objective="iwae", beta=0.5).params
    with pytest.raises(ValueError, match="unknown flow 'radial'"):
        npae.VAE(4, flow="radial").params
    with pytest.raises(ValueError, match="unknown variance"):
        npae.VAE(4, likelihood="gaussian", variance="diagonal").params
    with pytest.raises(ValueError, match="k must be >= 1"):
        npae.VAE(4, k=0).params
    vae = npae.VAE(4, hidden=(3,), latent_dim=2, objective="iwae")
    with pytest.raises(ValueError, match="warmup_epochs needs the closed-form KL"):
        vae.fit(np.full((4, 4), 0.5), warmup_epochs=2, progress=False)


@pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")
@pytest.mark.parametrize("config", [dict(objective="iwae", k=3), dict(k=2), dict(flow="iaf", k=2),
                                    dict(flow="planar", objective="iwae", k=2),
                                    dict(likelihood="gaussian", variance="learned", k=2)],
                         ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_both_backends_train_these_models_alike(config):
    X, _ = datasets.load_digits()

    def train(name):
        with npae.backend(name):
            return npae.VAE(hidden=(16,), latent_dim=3, seed=4, **config).fit(
                X[:256], epochs=2, batch_size=32, progress=False)

    ref, fused = train("reference"), train("fused")
    for name in ref.params:
        np.testing.assert_allclose(fused.params[name], ref.params[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("config", [dict(flow="iaf"), dict(flow="planar", objective="iwae", k=2),
                                    dict(likelihood="gaussian", variance="per_feature")])
def test_save_load_and_resume_with_flows_and_variances(tmp_path, config):
    X, _ = datasets.load_digits()
    X = X[:96]
    ref = npae.VAE(hidden=(8,), latent_dim=2, seed=1, **config).fit(X, epochs=3, batch_size=32,
                                                                    progress=False)
    path = tmp_path / "ckpt.npz"
    npae.VAE(hidden=(8,), latent_dim=2, seed=1, **config).fit(X, epochs=1, batch_size=32, progress=False,
                                                              checkpoint=path)
    resumed = npae.VAE(hidden=(8,), latent_dim=2, seed=1, **config).fit(
        X, epochs=3, batch_size=32, progress=False, resume=path)
    for name in ref.params:
        assert ref.params[name].tobytes() == resumed.params[name].tobytes(), name
    ref.save(tmp_path / "model.npz")
    loaded = npae.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.log_likelihood_estimate(X[:10], k=5, seed=0),
                                  ref.log_likelihood_estimate(X[:10], k=5, seed=0))


def test_clamp_warning_once_per_fit():
    X, _ = datasets.load_digits()
    vae = npae.VAE(hidden=(8,), latent_dim=2, seed=0, warm_start=True)
    vae.fit(X[:64], epochs=1, progress=False)
    vae.params["encoder.1.b"][2] = 80.0  # one of the two raw logvars far above the clamp: 50% held
    vae.params["encoder.1.W"][:, 2] = 0.0
    with pytest.warns(RuntimeWarning, match="logvar clamp") as record:
        vae.fit(X[:64], epochs=2, progress=False)
    assert sum("logvar clamp" in str(w.message) for w in record) == 1
    vae.params["encoder.1.b"][2:] = 80.0  # both: over LOGVAR_CLAMP_ERROR_FRACTION, an error
    vae.params["encoder.1.W"][:, 2:] = 0.0
    with pytest.raises(npae.DivergenceError, match=r"encoder log-variances \(100\.0%, more than 50%"):
        vae.fit(X[:64], epochs=3, progress=False)
