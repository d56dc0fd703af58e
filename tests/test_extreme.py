"""Extreme but finite inputs: logits of ±1e4, logvar of ±1e3, huge weights. The loss and its gradients
stay finite, or training stops with a clear error; never a silent NaN.

RuntimeWarning is an error in the test run (setup.cfg), so an overflow inside a computation that
still returns a finite number fails these tests too.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import npae
from npae.pairs import functional as F
from npae.training.loop import DivergenceError

pytestmark = pytest.mark.filterwarnings("error")

BIG = 1e4
shapes = st.tuples(st.integers(1, 4), st.integers(1, 5))


def logits_of(shape):
    return hnp.arrays(np.float64, shape, elements=st.one_of(
        st.sampled_from([-BIG, BIG, 0.0]), st.floats(-BIG, BIG, allow_nan=False)))


@st.composite
def logits_and_targets(draw):
    shape = draw(shapes)
    s = draw(logits_of(shape))
    t = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0, 0.5, 0.25])))
    return s, t


def assert_finite(*arrays):
    for a in arrays:
        assert np.all(np.isfinite(a)), a


@settings(max_examples=40)
@given(logits_and_targets())
def test_bce_with_logits_is_finite_and_exact_at_1e4(st_pair):
    s, t = st_pair
    value, ds = F.bce_with_logits_loss(s, t)
    assert_finite(value, ds)
    assert value >= 0.0 and np.all(np.abs(ds) <= 1.0 / s.shape[0])
    # the exact values at the extremes: -log σ(s) ≈ 0 for s = 1e4, t = 1 and = 1e4 for t = 0
    per_entry = F.bce_with_logits_sum(s[..., None], t[..., None])
    expected = np.where(t == 1.0, np.maximum(-s, 0), np.where(t == 0.0, np.maximum(s, 0), per_entry))
    big = np.abs(s) == BIG
    np.testing.assert_allclose(per_entry[big], expected[big], rtol=1e-12)


@settings(max_examples=25)
@given(logits_and_targets())
def test_softmax_and_mse_stay_finite_at_extremes(st_pair):
    s, t = st_pair
    value, dlogits = F.softmax_cross_entropy_loss(s, np.zeros(s.shape[0], dtype=np.int64))
    assert_finite(value, dlogits)
    assert value >= 0.0
    value, dpred = F.mse_loss(s * 1e100, t)  # 1e104 squared is still a float64
    assert_finite(value, dpred)


@settings(max_examples=15)
@given(scale=st.floats(1.0, 1e3), activation=st.sampled_from(["relu", "tanh", "sigmoid", "elu",
                                                              "softplus", "leaky_relu"]),
       loss=st.sampled_from(["bce", "mse"]), dtype=st.sampled_from(["float64", "float32"]),
       seed=st.integers(0, 5))
def test_autoencoder_with_huge_weights_has_finite_loss_and_grads(scale, activation, loss, dtype, seed):
    model = npae.Autoencoder(5, hidden=(4,), latent_dim=2, activation=activation, loss=loss,
                             output="sigmoid", dtype=dtype, seed=seed)
    for p in model.params.values():
        p *= scale
    x = np.random.default_rng(seed).random((3, 5))
    value, grads = model.loss_and_grads(x)
    assert_finite(value, *grads.values())


@settings(max_examples=15)
@given(exponent=st.floats(0.0, 250.0), loss=st.sampled_from(["bce", "mse"]))
def test_fit_with_absurd_weights_is_finite_or_a_clear_error(exponent, loss):
    """Weights up to 1e250: either every number stays finite or fit raises DivergenceError, and the
    parameters never hold a NaN or inf."""
    model = npae.Autoencoder(5, hidden=(4,), latent_dim=2, activation="relu", loss=loss,
                             output="sigmoid" if loss == "bce" else "identity", seed=1)
    for p in model.params.values():
        p *= 10.0 ** exponent
    x = np.random.default_rng(0).random((12, 5))
    try:
        history = model.fit(x, epochs=2, batch_size=4, progress=False, optimizer="sgd", lr=1e-3).history_
    except DivergenceError as err:
        assert "training diverged at epoch" in str(err)
    else:
        assert np.all(np.isfinite(history["loss"]))
    assert all(np.isfinite(p).all() for p in model.params.values())


# --------------------------------------------------------------------------------------------------
# VAE pieces: logvar of ±1e3
# --------------------------------------------------------------------------------------------------
latent = pytest.importorskip("npae.pairs.latent", reason="npae.pairs.latent (VAE pieces) not present yet")


@settings(max_examples=30)
@given(st.data())
def test_clamped_logvar_of_1e3_through_sampler_and_kl(data):
    B, Z = data.draw(shapes)
    logvar_raw = data.draw(hnp.arrays(np.float64, (B, Z), elements=st.one_of(
        st.sampled_from([-1e3, 1e3]), st.floats(-1e3, 1e3))))
    mu = data.draw(hnp.arrays(np.float64, (B, Z), elements=st.floats(-1e3, 1e3)))
    eps = data.draw(hnp.arrays(np.float64, (B, Z), elements=st.floats(-5, 5)))
    logvar, inside = latent.logvar_clamp_forward(logvar_raw)
    z, cache = latent.reparameterize_forward(mu, logvar, eps)
    kl, kl_cache = latent.gaussian_kl_forward(mu, logvar)
    dmu_r, dlv_r = latent.reparameterize_backward(np.ones_like(z), cache)
    dmu_k, dlv_k = latent.gaussian_kl_backward(np.ones(B), kl_cache)
    dlogvar_raw = latent.logvar_clamp_backward(dlv_r + dlv_k, inside)
    assert_finite(z, kl, dmu_r, dlv_r, dmu_k, dlv_k, dlogvar_raw, latent.log_normal(z, mu, logvar))
    assert np.all(kl >= 0.0)
    assert np.all(dlogvar_raw[np.abs(logvar_raw) > 30] == 0.0)  # outside the clamp: no gradient


@settings(max_examples=15)
@given(level=st.sampled_from([-1e3, -100.0, 100.0, 1e3]), mu_shift=st.floats(-1e3, 1e3),
       likelihood=st.sampled_from(["bernoulli", "gaussian"]), L=st.sampled_from([None, 3]))
def test_vae_with_logvar_1e3_has_finite_loss_and_grads(level, mu_shift, likelihood, L):
    vae_mod = pytest.importorskip("npae.models.vae")
    model = vae_mod.VAE(5, hidden=(4,), latent_dim=2, likelihood=likelihood, seed=0)
    last_b = [k for k in model.params if k.startswith("encoder.") and k.endswith(".b")][-1]
    model.params[last_b][:2] += mu_shift  # mu half
    model.params[last_b][2:] = level  # logvar half: far outside the clamp
    x = np.random.default_rng(0).random((3, 5))
    shape = (3, 2) if L is None else (L, 3, 2)
    eps = np.random.default_rng(1).standard_normal(shape)
    before = model.clamp_count_
    value, grads = model.loss_and_grads(x, eps=eps)
    assert_finite(value, *grads.values(), *model.last_terms.values())
    assert model.clamp_count_ - before == 6  # the clamp fired on every logvar entry
