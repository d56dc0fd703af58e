"""The lessons' measures as methods: ``Autoencoder.jacobian_frobenius`` (exact ||∂z/∂x||²_F per
example, against a numerically differentiated encoder, chunked, forward only), ``sparsity`` /
``sparsity_measures`` and ``denoising_error`` (evaluation stream, clean target)."""
import copy

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae.models import autoencoder as ae_module
from npae.gradcheck import central_difference
from npae.pairs.penalties import DEEP_CONTRACTIVE_ACTIVATIONS, corrupt
from npae.models.variants import sparsity_measures

from conftest import activation_inputs_off_kinks

dims = st.integers(1, 4)
seeds = st.integers(0, 2**31 - 1)


def numerical_jacobian_sq(model, x):
    """||J||²_F of the encoder at one row x (D,), by central differences of ``encode``."""
    cols = []
    for d in range(x.size):
        e = np.zeros_like(x)
        e[d] = 1.0
        cols.append(central_difference(lambda t: model.encode((x + t * e)[None])[0]))
    return float(np.sum(np.stack(cols) ** 2))


@settings(deadline=None, max_examples=25)
@given(N=dims, D=dims, Z=dims, hidden=st.lists(dims, max_size=2), seed=seeds,
       activation=st.sampled_from(DEEP_CONTRACTIVE_ACTIVATIONS),
       code_activation=st.sampled_from(DEEP_CONTRACTIVE_ACTIVATIONS),
       slope=st.floats(0.01, 0.5), alpha=st.floats(0.5, 2.0))
def test_jacobian_frobenius_is_exact(N, D, Z, hidden, seed, activation, code_activation, slope, alpha):
    X = np.random.default_rng(seed).uniform(size=(N, D))
    model = npae.Autoencoder(D, tuple(hidden), Z, activation, code_activation, seed=seed, slope=slope,
                             alpha=alpha)
    model.loss_and_grads(X)  # a forward with caches, only to look at the pre-activations
    assume(activation_inputs_off_kinks(model))
    got = model.jacobian_frobenius(X)
    assert got.shape == (N,) and got.dtype == np.float64
    want = [numerical_jacobian_sq(model, x) for x in X]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_jacobian_of_a_linear_encoder_is_the_weights_norm():
    model = npae.Autoencoder(6, (), 3, code_activation="identity", output="identity", loss="mse", seed=0)
    X = np.random.default_rng(0).standard_normal((5, 6))
    W = model.params["encoder.0.W"]
    np.testing.assert_allclose(model.jacobian_frobenius(X), np.full(5, np.sum(W * W)), rtol=1e-12)


def test_jacobian_mean_is_the_contractive_penalty_over_its_weight():
    X = np.random.default_rng(1).uniform(size=(7, 8))
    for hidden in ((), (5,), (6, 4)):
        cae = npae.ContractiveAutoencoder(8, hidden, 3, "tanh", "sigmoid", contractive_weight=0.4, seed=2)
        cae.loss_and_grads(X)
        assert cae.last_terms["penalty"] == pytest.approx(0.4 * np.mean(cae.jacobian_frobenius(X)), rel=1e-12)


def test_jacobian_in_chunks_equals_one_pass(monkeypatch):
    X = np.random.default_rng(2).uniform(size=(50, 64))
    model = npae.Autoencoder(64, (16, 8), 4, "softplus", "tanh", seed=0)
    whole = model.jacobian_frobenius(X)
    monkeypatch.setattr(ae_module, "JACOBIAN_CHUNK_NUMBERS", 16 * 4 * 3)  # chunks of 3 rows
    np.testing.assert_allclose(model.jacobian_frobenius(X), whole, rtol=1e-12)
    monkeypatch.setattr(ae_module, "JACOBIAN_CHUNK_NUMBERS", 1)  # one row at a time
    np.testing.assert_allclose(model.jacobian_frobenius(X), whole, rtol=1e-12)


def test_jacobian_in_float32_and_refusals():
    X = np.random.default_rng(3).uniform(size=(4, 6))
    model = npae.Autoencoder(6, (5,), 2, "elu", "sigmoid", dtype="float32", seed=0)
    out = model.jacobian_frobenius(X)
    assert out.dtype == np.float32 and out.shape == (4,) and np.all(out > 0)
    with pytest.raises(ValueError, match="X"):
        model.jacobian_frobenius(X[:, :5])
    odd = copy.deepcopy(model)
    odd.encoder.steps.append(npae.models.layers.Tanh())  # a step that is no Dense + activation
    with pytest.raises(ValueError, match="dense layers"):
        odd.jacobian_frobenius(X)
    with pytest.raises(ValueError, match="fitted"):
        npae.Autoencoder().jacobian_frobenius(X)


def _state(model):
    caches = [step.cache for step in model.encoder.steps + model.decoder.steps]
    return (copy.deepcopy(model.rng.bit_generator.state), model.flat_params.param_data.copy(),
            model.flat_params.grad_data.copy(), caches)


@pytest.mark.parametrize("make", [
    lambda: npae.DenoisingAutoencoder(64, (16,), 8, noise="masking", noise_level=0.4, seed=0),
    lambda: npae.SparseAutoencoder(64, (16,), 8, seed=0),
    lambda: npae.ContractiveAutoencoder(64, (16,), 8, seed=0),
], ids=["dae", "sae", "cae"])
def test_measures_are_forward_only(make):
    """No measure touches the training generator, a parameter, a gradient buffer or a cache."""
    X, _ = npae.datasets.load_digits()
    model = make().fit(X[:200], epochs=1, progress=False)
    model.loss_and_grads(X[:5])  # leave caches and gradients from a step
    before = _state(model)
    model.jacobian_frobenius(X)
    if isinstance(model, npae.SparseAutoencoder):
        model.sparsity(X)
    model.denoising_error(X, noise="gaussian", noise_level=0.2)
    if isinstance(model, npae.DenoisingAutoencoder):
        model.denoising_error(X)
    after = _state(model)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[2], before[2])
    assert all(a is b for a, b in zip(after[3], before[3]))


def test_sparsity_measures_by_hand():
    H = np.array([[0.0, 0.5, 0.01], [0.0, 0.02, 0.2], [0.0, 0.9, 0.06], [0.0, 0.1, 0.04]])
    m = sparsity_measures(H, threshold=0.05, rho=0.1)
    np.testing.assert_allclose(m["mean_activation_per_unit"], [0.0, 0.38, 0.0775])
    assert m["mean_activation"] == pytest.approx(H.mean())
    assert m["near_zero_fraction"] == pytest.approx(7 / 12)  # 4 zeros, 0.02, 0.01, 0.04
    assert m["exact_zero_fraction"] == pytest.approx(4 / 12)
    assert m["silent_units"] == 1
    assert m["units_near_rho"] == pytest.approx(1 / 3)  # only 0.0775 is within [0.1/1.5, 0.15]
    assert m["mean_to_rho"] == (0.0, pytest.approx(3.8))
    assert "units_near_rho" not in sparsity_measures(H)
    with pytest.raises(ValueError, match="threshold"):
        sparsity_measures(H, threshold=0.0)


def test_sparse_autoencoder_sparsity():
    X, _ = npae.datasets.load_digits()
    kl = npae.SparseAutoencoder(64, (16,), 8, seed=0)
    m = kl.sparsity(X[:100])
    assert m["penalty"] == "kl" and m["rho"] == 0.05 and m["sparsity_weight"] == 3.0
    np.testing.assert_allclose(m["mean_activation_per_unit"], kl.encode(X[:100]).mean(axis=0))
    l1 = npae.SparseAutoencoder(64, (16,), 8, code_activation="relu", penalty="l1", seed=0)
    m = l1.sparsity(X[:100], threshold=0.1)
    assert m["rho"] is None and m["sparsity_weight"] == 0.1 and m["threshold"] == 0.1
    assert m["exact_zero_fraction"] == pytest.approx(np.mean(l1.encode(X[:100]) == 0))


@pytest.mark.parametrize("noise, level", [("gaussian", 0.3), ("masking", 0.5), ("salt_pepper", 0.2)])
def test_denoising_error_is_the_clean_target_loss_under_the_training_corruption(noise, level):
    X, _ = npae.datasets.load_digits()
    X = X[:300]
    dae = npae.DenoisingAutoencoder(64, (16,), 8, noise=noise, noise_level=level, seed=0)
    dae.fit(X, epochs=2, progress=False)
    out = dae.denoising_error(X, seed=5)
    assert out["noise"] == noise and out["noise_level"] == level
    noisy = dae.corrupt(X, seed=5)  # the same draw: the evaluation stream of seed 5
    logits = dae.decoder.apply(dae.encoder.apply(noisy))
    want = np.mean(dae._recon_per_example(logits, X))
    assert out["error_from_corrupted_input"] == pytest.approx(want, rel=1e-12)
    assert out["error_from_clean_input"] == pytest.approx(np.mean(dae.reconstruction_error(X)), rel=1e-12)
    assert dae.denoising_error(X) == dae.denoising_error(X)  # the evaluation stream starts afresh
    assert dae.denoising_error(X, seed=6) != out
    if noise != "salt_pepper":  # one draw either way (salt and pepper draws twice per call)
        assert dae.evaluate(X)["recon"] == pytest.approx(dae.denoising_error(X)["error_from_corrupted_input"])


def test_a_plain_autoencoder_is_measured_under_a_given_corruption():
    X, _ = npae.datasets.load_digits()
    X = X[:200]
    plain = npae.Autoencoder(64, (16,), 8, seed=0)
    dae = npae.DenoisingAutoencoder(64, (16,), 8, noise="masking", noise_level=0.5, seed=0)
    with pytest.raises(ValueError, match="noise="):
        plain.denoising_error(X)
    out = plain.denoising_error(X, seed=3, noise="masking", noise_level=0.5)
    noisy = corrupt(X, "masking", 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(noisy, dae.corrupt(X, seed=3))  # both models see the same inputs
    logits = plain.decoder.apply(plain.encoder.apply(noisy))
    assert out["error_from_corrupted_input"] == pytest.approx(np.mean(plain._recon_per_example(logits, X)))
    with pytest.raises(ValueError, match="noise_level"):
        plain.denoising_error(X, noise="masking", noise_level=1.5)
    with pytest.raises(ValueError, match="noise"):
        plain.denoising_error(X, noise="speckle", noise_level=0.1)
