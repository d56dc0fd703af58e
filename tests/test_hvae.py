"""The two-stochastic-layer VAE (npae.TwoLayerVAE), as a whole model.

The whole loss is checked against central differences (float64, rel <= 1e-6) over drawn sizes,
k, objectives, activations and likelihoods; its log-weight equals the five densities composed by
hand; IWAE at k = 1 is the ELBO objective and the IWAE gradient weights the draws by w̃; both
backends train it to the same parameters; the bound ladder ELBO <= IWAE-5 <= IWAE-50 holds on
held-out digits after a short fit; save, load and resume are exact; evaluation is forward only.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npae
from npae import datasets
from npae.fast import backends
from npae.pairs import latent
from npae.gradcheck import check_model

LIKELIHOODS = [dict(likelihood="bernoulli"), dict(likelihood="gaussian", variance="fixed"),
               dict(likelihood="gaussian", variance="shared"),
               dict(likelihood="gaussian", variance="per_feature"),
               dict(likelihood="gaussian", variance="learned")]


def _small(D=5, **kw):
    args = dict(hidden1=(4,), latent_dim1=3, hidden2=(3,), latent_dim2=2, seed=0)
    args.update(kw)
    return npae.TwoLayerVAE(D, **args)


def _noise(rng, K, B, model):
    Z1, Z2 = model.latent_dims
    return rng.standard_normal((K, B, Z1)), rng.standard_normal((K, B, Z2))


def _off_kinks(model, margin=1e-2):
    """True when no activation of the four networks saw a pre-activation within ``margin`` of 0
    in the last forward pass (a central difference across ReLU's kink measures nothing)."""
    for chain in (model.encoder1, model.encoder2, model.prior, model.decoder):
        for step in chain.steps:
            pre = getattr(step, "pre", None)
            if step.act_name != "identity" and pre is not None and np.min(np.abs(pre)) < margin:
                return False
    return True


@pytest.fixture(scope="module")
def digits():
    X, _ = datasets.load_digits()
    return X[np.random.default_rng(0).permutation(len(X))]


# ---------------------------------------------------------------- gradients
@settings(deadline=None, max_examples=4)
@given(D=st.integers(1, 5), H1=st.lists(st.integers(1, 4), min_size=0, max_size=2),
       Z1=st.integers(1, 3), H2=st.lists(st.integers(1, 3), min_size=0, max_size=2),
       Z2=st.integers(1, 2), B=st.integers(1, 3), k=st.integers(1, 3),
       objective=st.sampled_from(["elbo", "iwae"]),
       activation=st.sampled_from(["tanh", "softplus", "relu", "elu"]), seed=st.integers(0, 2**31 - 1))
@pytest.mark.parametrize("config", LIKELIHOODS, ids=lambda c: "-".join(c.values()))
def test_whole_loss_gradcheck(config, D, H1, Z1, H2, Z2, B, k, objective, activation, seed):
    rng = np.random.default_rng(seed)
    model = npae.TwoLayerVAE(D, hidden1=tuple(H1), latent_dim1=Z1, hidden2=tuple(H2), latent_dim2=Z2,
                             activation=activation, objective=objective, k=k, seed=seed, **config)
    x = rng.random((B, D)) if model.likelihood == "bernoulli" else rng.standard_normal((B, D))
    eps = _noise(rng, k, B, model)
    model.loss_and_grads(x, eps=eps)
    if not _off_kinks(model):
        return  # relu/elu pre-activations at a kink: nothing a difference can measure
    check_model(model, x, eps=eps).assert_ok()


def test_gradcheck_counts_every_parameter_and_fails_on_a_wrong_fan_in(monkeypatch):
    """The check sees every parameter, and a step missing one use of z1 (the decoder's) fails it."""
    rng = np.random.default_rng(1)
    model = _small(objective="iwae", k=2, activation="tanh")
    x, eps = rng.random((3, 5)), _noise(rng, 2, 3, model)
    report = check_model(model, x, eps=eps).assert_ok()
    assert {name for name, _ in report.rows} == set(model.params)
    back = type(model)._back

    def no_decoder_path(chain, dout):  # drop the gradient the decoder sends back to z1
        dx = back(chain, dout)
        return np.zeros_like(dx) if chain is model.decoder else dx

    monkeypatch.setattr(type(model), "_back", staticmethod(no_decoder_path))
    assert not check_model(model, x, eps=eps).ok


def test_log_weight_is_the_five_densities_composed_by_hand():
    """[HIER-1] with the networks and densities of npae.pairs.latent, written out independently."""
    rng = np.random.default_rng(2)
    model = _small(likelihood="bernoulli", k=3)
    x = rng.random((4, 5))
    eps1, eps2 = _noise(rng, 3, 4, model)
    out1 = model.encoder1.apply(x)
    mu1, logvar1 = out1[:, :3], out1[:, 3:]
    z1 = mu1 + np.exp(0.5 * logvar1) * eps1
    out2 = model.encoder2.apply(z1.reshape(12, 3)).reshape(3, 4, 4)
    mu2, logvar2 = out2[..., :2], out2[..., 2:]
    z2 = mu2 + np.exp(0.5 * logvar2) * eps2
    outp = model.prior.apply(z2.reshape(12, 2)).reshape(3, 4, 6)
    logits = model.decoder.apply(z1.reshape(12, 3)).reshape(3, 4, 5)
    p = 1.0 / (1.0 + np.exp(-logits))
    log_px = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)
    want = (log_px + latent.log_normal(z1, outp[..., :3], outp[..., 3:]) + latent.log_standard_normal(z2)
            - latent.log_normal(z1, mu1, logvar1) - latent.log_normal(z2, mu2, logvar2))
    logw = model._log_weight_graph(x, eps1, eps2, train=False)[0]
    np.testing.assert_allclose(logw, want, rtol=1e-12)
    loss, _ = model.loss_and_grads(x, eps=(eps1, eps2))  # objective="elbo": −mean of logw [IWAE-6]
    assert loss == pytest.approx(-want.mean(), rel=1e-12)
    assert model.last_terms["recon"] == pytest.approx(-log_px.mean(), rel=1e-12)
    assert model.last_terms["kl"] == pytest.approx((log_px - want).mean(), rel=1e-12)


def test_iwae_at_k1_is_the_elbo_and_its_gradient_weights_the_draws():
    rng = np.random.default_rng(3)
    x = rng.random((1, 5))
    iwae, elbo = _small(objective="iwae", seed=4), _small(objective="elbo", seed=4)
    one = _noise(rng, 1, 1, iwae)
    loss_i, grads_i = iwae.loss_and_grads(x, eps=one)
    loss_e, grads_e = elbo.loss_and_grads(x, eps=one)
    assert loss_i == pytest.approx(loss_e, rel=1e-14)
    for name in grads_e:
        np.testing.assert_allclose(grads_i[name], grads_e[name], rtol=1e-12, atol=1e-15)
    # [IWAE-5]: with K draws the gradient is Σ_k w̃_k (gradient of the k-th one-draw loss)
    K = 4
    eps1, eps2 = _noise(rng, K, 1, iwae)
    _, grads = iwae.loss_and_grads(x, eps=(eps1, eps2))
    logw = iwae._log_weight_graph(x, eps1, eps2, train=False)[0][:, 0]
    w_tilde = np.exp(logw - logw.max())
    w_tilde /= w_tilde.sum()
    combined = {name: np.zeros_like(g) for name, g in grads.items()}
    for kk in range(K):
        _, g = iwae.loss_and_grads(x, eps=(eps1[kk], eps2[kk]))
        for name in combined:
            combined[name] += w_tilde[kk] * g[name]
    for name in grads:
        np.testing.assert_allclose(grads[name], combined[name], rtol=1e-10, atol=1e-13)


@pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")
@pytest.mark.parametrize("config", [dict(objective="iwae", k=3), dict(objective="elbo", k=2),
                                    dict(likelihood="gaussian", variance="learned", objective="iwae", k=2),
                                    dict(activation="relu", objective="iwae", k=2)],
                         ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_both_backends_train_it_alike(digits, config):
    def train(name):
        with npae.backend(name):
            return npae.TwoLayerVAE(hidden1=(16,), latent_dim1=4, hidden2=(8,), latent_dim2=2, seed=5,
                                    **config).fit(digits[:256], epochs=2, batch_size=32, progress=False)

    ref, fused = train("reference"), train("fused")
    for name in ref.params:
        np.testing.assert_allclose(fused.params[name], ref.params[name], rtol=1e-10, atol=1e-12)
    for key, values in ref.history_.items():
        np.testing.assert_allclose(fused.history_[key], values, rtol=1e-10)


# ---------------------------------------------------------------- after a short fit
@pytest.fixture(scope="module")
def trained(digits):
    model = npae.TwoLayerVAE(hidden1=(64,), latent_dim1=8, hidden2=(32,), latent_dim2=4,
                             objective="iwae", k=3, seed=0)
    model.fit(digits[:1000], epochs=6, batch_size=64, lr=3e-3, progress=False)
    return model, digits[1500:1700]


def test_bound_ladder_on_held_out_digits(trained):
    """ELBO <= IWAE-5 <= IWAE-50 on held-out digits, each step checked on the per-example gaps
    (the mean gap is not below 0 by more than 3 standard errors), and the ladder really climbs."""
    model, held = trained
    ladder = [-model.neg_elbo(held, seed=1, n_samples=50, per_example=True)]
    for k in (5, 50):
        ladder.append(model.log_likelihood_estimate(held, k=k, seed=k, per_example=True))
    means = [b.mean() for b in ladder]
    for lo, hi in zip(ladder[:-1], ladder[1:]):
        gap = hi - lo
        assert gap.mean() > -3 * gap.std(ddof=1) / np.sqrt(gap.size), means
    climb = ladder[2] - ladder[0]
    assert climb.mean() > 3 * climb.std(ddof=1) / np.sqrt(climb.size), means
    assert model.history_["loss"][-1] < model.history_["loss"][0]


def test_estimates_stream_and_k1_is_the_elbo(trained):
    model, held = trained
    X = held[:20]
    one_chunk = model.log_likelihood_estimate(X, k=30, seed=3, chunk=30, per_example=True)
    chunks = model.log_likelihood_estimate(X, k=30, seed=3, chunk=7, per_example=True)
    np.testing.assert_allclose(chunks, one_chunk, rtol=1e-12)
    k1 = model.log_likelihood_estimate(X, k=1, seed=9, batch_size=20, per_example=True)
    elbo = -model.neg_elbo(X, seed=9, batch_size=20, per_example=True)
    np.testing.assert_allclose(k1, elbo, rtol=1e-12)


def test_posterior_means_and_active_units_per_layer(trained):
    """Checks [HIER-5] against the means written out."""
    model, held = trained
    mean1, mean2 = model.posterior_means(held, n_samples=30, seed=4)
    np.testing.assert_array_equal(mean1, model.encode(held))
    mu1, logvar1 = model.encode_stats(held)
    eps1 = np.random.default_rng(4).standard_normal((30,) + mu1.shape)
    z1 = mu1 + np.exp(0.5 * logvar1) * eps1
    mu2 = model.encoder2.apply(z1.reshape(-1, 8))[:, :4].reshape(30, -1, 4)
    np.testing.assert_allclose(mean2, mu2.mean(axis=0), rtol=1e-12)  # [HIER-5]
    a1, a2 = model.active_units(held, n_samples=30, seed=4)
    assert a1 == int(np.sum(mean1.var(axis=0) > 0.01)) and a2 == int(np.sum(mean2.var(axis=0) > 0.01))
    assert 1 <= a1 <= 8 and 0 <= a2 <= 4
    assert model.transform(held).shape == (200, 8)


def test_sample_goes_top_down(trained):
    """[HIER-4]: z2 ~ N(0, I), z1 ~ p(z1|z2) through the prior network, then the decoder."""
    model, _ = trained
    got = model.sample(6, seed=7)
    rng = np.random.default_rng(7)
    z2 = rng.standard_normal((6, 4))
    pmu1, plogvar1 = model.prior_stats(z2)
    z1 = pmu1 + np.exp(0.5 * plogvar1) * rng.standard_normal((6, 8))
    np.testing.assert_allclose(got, model.decode(z1), rtol=1e-12)
    assert got.shape == (6, 64) and 0 < got.min() and got.max() < 1
    assert not np.array_equal(model.sample(2), model.sample(2))  # the sampling stream moves on


def test_evaluation_is_forward_only(digits):
    X = digits[:400]
    kw = dict(hidden1=(16,), latent_dim1=4, hidden2=(8,), latent_dim2=2, objective="iwae", k=2,
              seed=0, warm_start=True)
    plain = npae.TwoLayerVAE(**kw).fit(X, epochs=1, progress=False)
    probed = npae.TwoLayerVAE(**kw).fit(X, epochs=1, progress=False, validation_data=digits[400:500])
    assert "val_loss" in probed.history_
    state = copy.deepcopy(probed.rng.bit_generator.state)
    grads, clamps = probed.flat_params.grad_data.copy(), probed.clamp_count_
    first = probed.log_likelihood_estimate(X[:10], k=10)
    assert first == probed.log_likelihood_estimate(X[:10], k=10)
    probed.evaluate(X), probed.score(X), probed.neg_elbo(X, n_samples=2), probed.active_units(X)
    probed.sample(3), probed.reconstruct(X[:5])
    assert probed.rng.bit_generator.state == state and probed.clamp_count_ == clamps
    np.testing.assert_array_equal(probed.flat_params.grad_data, grads)
    plain.fit(X, epochs=2, progress=False)
    probed.fit(X, epochs=2, progress=False)
    for name, p in plain.params.items():
        assert p.tobytes() == probed.params[name].tobytes(), name


# ---------------------------------------------------------------- the estimator surface, files
def test_scikit_learn_conventions(digits):
    model = npae.TwoLayerVAE(hidden1=(8,), latent_dim1=3, hidden2=(4,), latent_dim2=2, k=2)
    assert not model.is_built and model.get_params()["latent_dim2"] == 2
    with pytest.raises(ValueError, match="not fitted yet"):
        model.encode(digits[:3])
    assert model.fit(digits[:128], np.zeros(128), epochs=2, progress=False) is model  # y ignored
    assert model.n_features_in_ == 64 and set(model.history_) == {"loss", "recon", "kl"}
    terms = model.evaluate(digits[128:160])
    assert set(terms) == {"loss", "recon", "kl"} and terms["kl"] > 0
    assert model.score(digits[128:160]) == -model.neg_elbo(digits[128:160])
    assert model.fit_transform(digits[:128], epochs=1, progress=False).shape == (128, 3)
    model.set_params(latent_dim1=5)
    model.fit(digits[:64], epochs=1, progress=False)
    assert model.encode(digits[:2]).shape == (2, 5)
    rebuilt = npae.TwoLayerVAE(**model.config)
    assert list(rebuilt.params) == list(model.params)
    assert [p.shape for p in rebuilt.params.values()] == [p.shape for p in model.params.values()]


def test_save_load_and_resume_are_exact(tmp_path, digits):
    X = digits[:96]
    kw = dict(hidden1=(8,), latent_dim1=3, hidden2=(4,), latent_dim2=2, objective="iwae", k=2, seed=1)
    ref = npae.TwoLayerVAE(**kw).fit(X, epochs=3, batch_size=32, progress=False)
    path = tmp_path / "ckpt.npz"
    npae.TwoLayerVAE(**kw).fit(X, epochs=1, batch_size=32, progress=False, checkpoint=path)
    resumed = npae.TwoLayerVAE(**kw).fit(X, epochs=3, batch_size=32, progress=False, resume=path)
    for name in ref.params:
        assert ref.params[name].tobytes() == resumed.params[name].tobytes(), name
    ref.save(tmp_path / "model.npz")
    loaded = npae.load(tmp_path / "model.npz")
    assert isinstance(loaded, npae.TwoLayerVAE) and loaded.config == ref.config
    np.testing.assert_array_equal(loaded.log_likelihood_estimate(X[:10], k=5, seed=0, per_example=True),
                                  ref.log_likelihood_estimate(X[:10], k=5, seed=0, per_example=True))


def test_float32_model_trains():
    X, _ = datasets.load_digits()
    model = npae.TwoLayerVAE(hidden1=(16,), latent_dim1=4, hidden2=(8,), latent_dim2=2, k=2,
                             objective="iwae", dtype="float32").fit(X[:200], epochs=2, progress=False)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert np.isfinite(model.log_likelihood_estimate(X[200:220], k=10))


def test_bad_inputs():
    model = _small()
    x = np.full((3, 5), 0.5)
    with pytest.raises(TypeError, match=r"eps must be a pair \(eps1, eps2\)"):
        model.loss_and_grads(x, eps=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"eps2 must have shape \(B, Z\) = \(3, 2\)"):
        model.loss_and_grads(x, eps=(np.zeros((3, 3)), np.zeros((3, 3))))
    with pytest.raises(ValueError, match="the same number of draws K, got 2 and 1"):
        model.loss_and_grads(x, eps=(np.zeros((2, 3, 3)), np.zeros((3, 2))))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss_and_grads(x + 1.0)
    with pytest.raises(ValueError, match="TwoLayerVAE is unconditional: y must be None"):
        model.encode(x, [0, 1, 2])
    with pytest.raises(ValueError, match="latent_dim2 must be >= 1"):
        _small(latent_dim2=0)
    with pytest.raises(ValueError, match="each entry of hidden1"):
        _small(hidden1=(4, 0))
    with pytest.raises(ValueError, match="unknown objective 'vimco'"):
        _small(objective="vimco")
    with pytest.raises(ValueError, match="Z1 has 2 features"):
        model.decode(np.zeros((1, 2)))
    assert np.isfinite(_small(likelihood="gaussian").loss_and_grads(x + 1.0)[0])  # any real data
