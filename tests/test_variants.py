"""Denoising, sparse and contractive autoencoders: whole-loss gradient checks over drawn shapes and
drawn λ, ρ and noise levels; the KL target reached on digits; denoising against a plain autoencoder
on held-out noisy digits; bad input."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae.gradcheck import check_model
from npae.penalties import CONTRACTIVE_ACTIVATIONS, corrupt, masking_noise

from conftest import activation_inputs_off_kinks

dims = st.integers(1, 4)
seeds = st.integers(0, 2**31 - 1)
smooth = st.sampled_from(["tanh", "sigmoid", "softplus", "elu"])
weights = st.one_of(st.just(0.0), st.floats(1e-3, 5.0))


@pytest.fixture(scope="module")
def digits_split():
    X, y = npae.datasets.load_digits()
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm[:1300]], X[perm[1300:]]


@settings(deadline=None, max_examples=8)
@given(B=dims, D=dims, Z=dims, H=dims, seed=seeds, activation=smooth,
       noise=st.sampled_from(["gaussian", "masking", "salt_pepper"]), level=st.floats(0.0, 1.0),
       loss=st.sampled_from(["bce", "mse"]))
def test_denoising_loss_gradcheck(B, D, Z, H, seed, activation, noise, level, loss):
    rng = np.random.default_rng(seed)
    output = "sigmoid" if loss == "bce" else "identity"
    model = npae.DenoisingAutoencoder(D, (H,), Z, activation, "tanh", output, loss, seed=seed,
                                      noise=noise, noise_level=level)
    x = rng.uniform(0.05, 0.95, size=(B, D))
    x_noisy = corrupt(x, noise, level, rng)
    check_model(model, x, x_noisy=x_noisy).assert_ok()
    assert set(model.last_terms) == {"loss", "recon", "penalty"}


@settings(deadline=None, max_examples=10)
@given(B=st.integers(2, 5), D=dims, Z=dims, H=dims, seed=seeds, activation=smooth,
       penalty=st.sampled_from(["l1", "kl"]), weight=weights, rho=st.floats(0.01, 0.99))
def test_sparse_loss_gradcheck(B, D, Z, H, seed, activation, penalty, weight, rho):
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    model = npae.SparseAutoencoder(D, (H,), Z, activation, seed=seed, penalty=penalty,
                                   sparsity_weight=weight, rho=rho)
    check_model(model, x).assert_ok()
    terms = model.last_terms
    assert terms["loss"] == pytest.approx(terms["recon"] + terms["penalty"])


@settings(deadline=None, max_examples=6)
@given(B=dims, D=dims, Z=dims, seed=seeds, weight=weights)
def test_sparse_l1_on_unbounded_codes_gradcheck(B, D, Z, seed, weight):
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    model = npae.SparseAutoencoder(D, (), Z, code_activation="identity", seed=seed, penalty="l1",
                                   sparsity_weight=weight)
    model.loss_and_grads(x)
    assume(np.min(np.abs(model.encode(x))) > 1e-2)  # |z| off the kink of the L1 norm
    check_model(model, x).assert_ok()


@settings(deadline=None, max_examples=6)
@given(B=dims, D=dims, Z=dims, seed=seeds, weight=weights,
       code_activation=st.sampled_from(CONTRACTIVE_ACTIVATIONS), loss=st.sampled_from(["bce", "mse"]))
def test_contractive_loss_gradcheck(B, D, Z, seed, weight, code_activation, loss):
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    output = "sigmoid" if loss == "bce" else "identity"
    model = npae.ContractiveAutoencoder(D, (), Z, code_activation=code_activation, output=output,
                                        loss=loss, seed=seed, contractive_weight=weight)
    model.loss_and_grads(x)
    assume(activation_inputs_off_kinks(model))
    check_model(model, x).assert_ok()


def test_denoising_noise_is_explicit_or_drawn_from_the_model_rng():
    x = np.random.default_rng(0).uniform(size=(5, 6))
    model = npae.DenoisingAutoencoder(6, (4,), 2, noise="masking", noise_level=0.5, seed=3)
    x_noisy = masking_noise(x, 0.5, np.random.default_rng(1))
    assert model.loss_and_grads(x, x_noisy)[0] == model.loss_and_grads(x, x_noisy=x_noisy)[0]
    drawn = [model.loss_and_grads(x)[0] for _ in range(2)]
    assert drawn[0] != drawn[1]
    twin = npae.DenoisingAutoencoder(6, (4,), 2, noise="masking", noise_level=0.5, seed=3)
    assert twin.loss_and_grads(x)[0] == drawn[0]  # the same seed draws the same corruption
    with pytest.raises(ValueError, match="check_model needs fixed noise"):
        check_model(model, x)
    with pytest.raises(ValueError, match="x_noisy"):
        model.loss_and_grads(x, x_noisy=x[:3])
    with pytest.raises(ValueError, match="x_noisy"):
        model.loss_and_grads(x, x_noisy=np.full_like(x, np.nan))


def test_kl_sparsity_reaches_rho_on_digits(digits_split):
    Xtr, Xte = digits_split
    rho = 0.1
    model = npae.SparseAutoencoder(64, (), 32, penalty="kl", sparsity_weight=30.0, rho=rho, seed=0)
    history = model.fit(Xtr, epochs=40, batch_size=128, lr=1e-2, progress=False).history_
    assert set(history) >= {"loss", "recon", "penalty"}
    for X in (Xtr, Xte):
        unit_means = model.encode(X).mean(axis=0)  # (32,)
        assert np.max(np.abs(unit_means - rho)) < 0.02, unit_means


def test_denoising_beats_plain_autoencoder_on_held_out_noisy_digits(digits_split):
    Xtr, Xte = digits_split
    level = 0.3
    kw = dict(code_activation="sigmoid", seed=0)
    denoising = npae.DenoisingAutoencoder(64, (), 16, noise="masking", noise_level=level, **kw)
    plain = npae.Autoencoder(64, (), 16, **kw)
    for model in (denoising, plain):
        model.fit(Xtr, epochs=30, lr=1e-2, progress=False)
    X_noisy = masking_noise(Xte, level, np.random.default_rng(1))
    err = {name: np.mean(np.sum((m.reconstruct(X_noisy) - Xte) ** 2, axis=1))
           for name, m in (("denoising", denoising), ("plain", plain))}
    assert err["denoising"] < 0.97 * err["plain"], err


def _mean_jacobian_norm(model, X):
    dense = model.encoder.dense_layers[0]
    from npae.penalties import contractive_penalty_forward
    return contractive_penalty_forward(X, dense.params["W"], dense.params["b"],
                                       model.config["code_activation"], 1.0)[0]


def test_contractive_penalty_shrinks_the_jacobian(digits_split):
    Xtr, _ = digits_split
    X = Xtr[:400]
    norms = {}
    for lam in (0.0, 1.0):
        model = npae.ContractiveAutoencoder(64, (), 16, contractive_weight=lam, seed=0)
        model.fit(X, epochs=15, lr=1e-2, progress=False)
        norms[lam] = _mean_jacobian_norm(model, X)
    assert norms[1.0] < 0.5 * norms[0.0], norms


def test_l1_penalty_sparsifies_codes(digits_split):
    X = digits_split[0][:400]
    active = {}
    for lam in (0.0, 0.3):
        model = npae.SparseAutoencoder(64, (), 32, code_activation="relu", penalty="l1",
                                       sparsity_weight=lam, seed=0)
        model.fit(X, epochs=15, lr=1e-2, progress=False)
        active[lam] = np.mean(model.encode(X) > 1e-6)
    assert active[0.3] < active[0.0], active


def test_bad_input():
    with pytest.raises(ValueError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, penalty="kl", rho=0.0).params
    with pytest.raises(ValueError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, penalty="kl", rho=1.0).params
    with pytest.raises(ValueError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, rho=1.5).params
    with pytest.raises(ValueError, match="sparsity_weight"):
        npae.SparseAutoencoder(4, (), 2, sparsity_weight=-1e-3).params
    with pytest.raises(ValueError, match="code_activation='sigmoid'"):
        npae.SparseAutoencoder(4, (), 2, code_activation="tanh", penalty="kl").params
    with pytest.raises(ValueError, match="penalty"):
        npae.SparseAutoencoder(4, (), 2, penalty="l2").params
    with pytest.raises(ValueError, match="noise_level"):
        npae.DenoisingAutoencoder(4, (), 2, noise_level=-0.1).params
    with pytest.raises(ValueError, match="noise_level"):
        npae.DenoisingAutoencoder(4, (), 2, noise="masking", noise_level=1.2).params
    with pytest.raises(ValueError, match="noise"):
        npae.DenoisingAutoencoder(4, (), 2, noise="speckle").params
    with pytest.raises(ValueError, match="hidden=()"):
        npae.ContractiveAutoencoder(4, (8,), 2).params
    with pytest.raises(ValueError, match="code_activation"):
        npae.ContractiveAutoencoder(4, (), 2, code_activation="elu").params
    with pytest.raises(ValueError, match="code_activation"):
        npae.ContractiveAutoencoder(4, (), 2, code_activation="identity").params
    with pytest.raises(ValueError, match="contractive_weight"):
        npae.ContractiveAutoencoder(4, (), 2, contractive_weight=-1.0).params
    with pytest.raises(TypeError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, rho="0.1").params


def test_configs_rebuild_the_models():
    for model in (npae.DenoisingAutoencoder(5, (3,), 2, noise="salt_pepper", noise_level=0.2),
                  npae.SparseAutoencoder(5, (3,), 2, penalty="kl", rho=0.2, sparsity_weight=0.5),
                  npae.ContractiveAutoencoder(5, (), 2, code_activation="tanh", contractive_weight=0.3)):
        twin = type(model)(**model.config)
        assert twin.config == model.config
        for name, p in model.params.items():
            np.testing.assert_array_equal(p, twin.params[name])
