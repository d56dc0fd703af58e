"""PCA by SVD against the covariance eigendecomposition; principal angles against scipy; a linear
autoencoder finds the PCA subspace without finding the eigenvectors; the two-moons point."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

import npae
from npae.models.pca import PCA, principal_angles, subspace_angles


def spectral_gap_data(N=400, D=10, k=3, seed=0):
    """Data whose covariance has k large eigenvalues (9, 6.25, 4) and D − k small ones (0.01)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    scales = np.array([3.0, 2.5, 2.0] + [0.1] * (D - k))
    return (rng.standard_normal((N, D)) * scales) @ Q.T + 1.0


def test_pca_matches_the_covariance_eigendecomposition():
    """Checks [PCA-1] (axes are the covariance's eigenvectors), [PCA-2] (its eigenvalues), [PCA-3] (ratios
    sum to 1).
    """
    X = spectral_gap_data()
    pca = PCA(4).fit(X)
    evals, evecs = np.linalg.eigh(np.cov(X, rowvar=False))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(pca.explained_variance_, evals[:4], rtol=1e-10)
    np.testing.assert_allclose(np.abs(pca.components_ @ evecs[:, :4]), np.eye(4), atol=1e-8)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(4), atol=1e-12)
    full = PCA().fit(X)
    assert full.explained_variance_ratio_.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(full.inverse_transform(full.transform(X)), X, atol=1e-10)
    np.testing.assert_allclose(pca.fit_transform(X), pca.transform(X))
    np.testing.assert_allclose(pca.mean_, X.mean(axis=0))
    assert np.all(np.diff(pca.explained_variance_) <= 0)


@settings(deadline=None, max_examples=15)
@given(D=st.integers(2, 8), p=st.integers(1, 4), q=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_principal_angles_match_scipy(D, p, q, seed):
    """Checks [PCA-6], [PCA-7] against scipy.linalg.subspace_angles."""
    rng = np.random.default_rng(seed)
    A, B = rng.standard_normal((D, min(p, D))), rng.standard_normal((D, min(q, D)))
    ours = principal_angles(A, B)
    theirs = np.sort(np.degrees(scipy.linalg.subspace_angles(A, B)))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    mix = rng.standard_normal((A.shape[1], A.shape[1])) + 3 * np.eye(A.shape[1])
    np.testing.assert_allclose(principal_angles(A @ mix, B), ours, atol=1e-6)  # a property of spans


def test_principal_angles_extremes():
    e = np.eye(3)
    np.testing.assert_allclose(principal_angles(e[:, :2], e[:, :2] @ [[1, 2], [3, 4]]), [0, 0], atol=1e-6)
    np.testing.assert_allclose(principal_angles(e[:, :1], e[:, 1:2]), [90.0])


def test_linear_autoencoder_finds_the_pca_subspace_but_not_the_eigenvectors():
    X = spectral_gap_data()
    pca = PCA(3).fit(X)
    model = npae.Autoencoder(10, (), 3, code_activation="identity", output="identity", loss="mse", seed=0)
    model.fit(X, epochs=60, batch_size=32, lr=1e-2, progress=False)
    angles = subspace_angles(model, pca)  # the decoder's span
    assert angles.max() < 2.0, angles
    # same subspace, so the same reconstructions, up to training error
    assert np.mean(model.reconstruction_error(X)) < 1.5 * np.mean(pca.reconstruction_error(X))
    # ... but the weights are not the principal axes: not orthonormal, and each decoder direction
    # is a mixture, far (> 10 degrees) from every principal axis
    W = model.decoder.dense_layers[0].params["W"]  # (3, 10)
    assert np.max(np.abs(W @ W.T - np.eye(3))) > 0.05
    cosines = np.abs((W / np.linalg.norm(W, axis=1, keepdims=True)) @ pca.components_.T)  # (3, 3)
    assert np.degrees(np.arccos(cosines.max(axis=1))).min() > 10.0, cosines


def test_two_moons_pca_fails_and_a_nonlinear_autoencoder_succeeds():
    X, _ = npae.datasets.make_moons(400, noise=0.05, seed=0)
    pca_err = np.mean(PCA(1).fit(X).reconstruction_error(X))
    model = npae.Autoencoder(2, (32, 32), 1, "elu", output="identity", loss="mse", seed=0)
    model.fit(X, epochs=150, batch_size=32, lr=1e-2, progress=False)
    ae_err = np.mean(model.reconstruction_error(X))
    assert ae_err < 0.3 * pca_err, (ae_err, pca_err)


def test_bad_input():
    X = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.raises(ValueError, match="n_components"):
        PCA(4).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        PCA(0).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        PCA(1.5).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        PCA(2).transform(X)
    with pytest.raises(ValueError, match="features"):
        PCA(2).fit(X).transform(X[:, :2])
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="rank 0"):
        principal_angles(np.zeros((3, 1)), np.ones((3, 1)))
    deep = npae.Autoencoder(3, (4,), 2, "tanh", output="identity", loss="mse")
    with pytest.raises(ValueError, match="not linear"):
        subspace_angles(deep, PCA(2).fit(X))
    with pytest.raises(ValueError, match="output"):
        subspace_angles(npae.Autoencoder(3, (), 2), PCA(2).fit(X))
    with pytest.raises(ValueError, match="which"):
        subspace_angles(deep, PCA(2).fit(X), which="both")


@settings(deadline=None, max_examples=15)
@given(N=st.integers(3, 12), D=st.integers(2, 6), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_transform_and_inverse_are_the_projection_formulas(N, D, data, seed):
    """Checks [PCA-4] Z = (X − mean) componentsᵀ and [PCA-5] X̂ = Z components + mean, written out,
    and that X̂ is the orthogonal projection onto mean + span(components): the residual is orthogonal
    to every kept axis, over drawn shapes and numbers of components."""
    k = data.draw(st.integers(1, min(N, D)), "n_components")
    X = np.random.default_rng(seed).standard_normal((N, D)) * 3.0 + 1.0
    pca = PCA(k).fit(X)
    Z = pca.transform(X)
    np.testing.assert_allclose(Z, (X - X.mean(axis=0)) @ pca.components_.T, rtol=1e-12, atol=1e-12)
    X_hat = pca.inverse_transform(Z)
    np.testing.assert_allclose(X_hat, Z @ pca.components_ + X.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((X - X_hat) @ pca.components_.T, 0.0, atol=1e-10)
