"""The defaults of the regularized autoencoders show their lessons on the bundled digits, trained as
the CLI trains them (Adam, lr 2e-3, batch 64; the CLI's 85% / 15% split): the sparse code's unit
means end within a factor 1.5 of ρ; the denoising model beats a plain one of the same shape on
corrupted held-out digits scored against the clean ones; the contractive encoder's Jacobian is
smaller than a plain encoder's of the same shape. The numbers are in docs/autoencoders.md."""
import numpy as np
import pytest

import npae
from npae.models.variants import RHO_FACTOR

FIT = dict(lr=2e-3, batch_size=64, progress=False)


@pytest.fixture(scope="module")
def digits():
    X, _ = npae.datasets.load_digits()
    perm = np.random.default_rng(0).permutation(len(X))
    n_test = int(round(0.15 * len(X)))
    return X[perm[n_test:]], X[perm[:n_test]]


def test_sparse_defaults_put_every_unit_mean_near_rho(digits):
    X, Xt = digits
    sparse = npae.SparseAutoencoder(seed=0)
    assert (sparse.penalty, sparse.rho, sparse.sparsity_weight_, sparse.latent_dim,
            sparse.code_activation) == ("kl", 0.05, 3.0, 32, "sigmoid")
    sparse.fit(X, epochs=100, **FIT)
    plain = npae.Autoencoder(hidden=(64,), latent_dim=32, code_activation="sigmoid", seed=0)
    plain.fit(X, epochs=100, **FIT)
    for data in (X, Xt):
        m = sparse.sparsity(data)
        low, high = m["mean_to_rho"]
        assert 1 / RHO_FACTOR <= low and high <= RHO_FACTOR, m["mean_to_rho"]
        assert m["units_near_rho"] == 1.0
        assert m["near_zero_fraction"] > 0.5 and m["silent_units"] == 0
        base = npae.models.variants.sparsity_measures(plain.encode(data), rho=0.05)
        assert base["units_near_rho"] == 0.0 and base["near_zero_fraction"] < 0.1, base
    cost = np.mean(sparse.reconstruction_error(Xt)) / np.mean(plain.reconstruction_error(Xt)) - 1
    assert 0 < cost < 0.1  # measured: +6.5%


def test_denoising_defaults_beat_a_plain_autoencoder_on_corrupted_digits(digits):
    X, Xt = digits
    dae = npae.DenoisingAutoencoder(seed=0)
    assert (dae.noise, dae.noise_level, dae.latent_dim) == ("gaussian", 0.3, 32)
    plain = npae.Autoencoder(hidden=(64,), latent_dim=32, seed=0)
    for model in (dae, plain):
        model.fit(X, epochs=30, **FIT)
    d = dae.denoising_error(Xt, seed=1)
    p = plain.denoising_error(Xt, seed=1, noise=dae.noise, noise_level=dae.noise_level)
    assert d["error_from_corrupted_input"] < 0.9 * p["error_from_corrupted_input"], (d, p)  # measured 0.82
    # what it pays: the clean-input error is a little higher than the plain model's
    assert d["error_from_clean_input"] < 1.15 * p["error_from_clean_input"]


@pytest.mark.parametrize("hidden, epochs, bound", [((), 30, 0.6), ((32,), 15, 0.6)],
                         ids=["one-layer", "deep"])
def test_contractive_defaults_shrink_the_jacobian(digits, hidden, epochs, bound):
    X, Xt = digits
    cae = npae.ContractiveAutoencoder(hidden=hidden, seed=0)
    assert (cae.contractive_weight, cae.latent_dim, cae.code_activation) == (0.1, 32, "sigmoid")
    plain = npae.Autoencoder(hidden=hidden, latent_dim=32, code_activation="sigmoid", seed=0)
    for model in (cae, plain):
        model.fit(X, epochs=epochs, **FIT)
    ratio = np.mean(cae.jacobian_frobenius(Xt)) / np.mean(plain.jacobian_frobenius(Xt))
    assert ratio < bound, ratio  # measured 0.48 (one layer, 30 epochs)
    cost = np.mean(cae.reconstruction_error(Xt)) / np.mean(plain.reconstruction_error(Xt)) - 1
    assert cost < 0.05, cost
