"""Plotting: every function returns a Figure, writes a PNG, needs no display and leaves the global
matplotlib backend alone."""
import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.special import ndtri

from npae import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC


def test_all_figures_save_png_without_touching_the_backend(tmp_path):
    backend = matplotlib.get_backend()
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(30, 64))
    figs = {
        "grid": plotting.image_grid(images, n_cols=10, title="t", row_labels=["a", "b", "c"],
                                    path=tmp_path / "sub" / "grid.png"),
        "scatter": plotting.latent_scatter(rng.normal(size=(50, 3)), rng.integers(0, 4, 50),
                                           class_names=list("abcd"), path=tmp_path / "scatter.png"),
        "scatter_real": plotting.latent_scatter(rng.normal(size=(50, 2)), rng.uniform(size=50),
                                                path=tmp_path / "scatter_real.png"),
        "strip": plotting.interpolation_strip(images[:24].reshape(3, 8, 64), row_labels=["x", "y", "z"],
                                              path=tmp_path / "strip.png"),
        "curves": plotting.loss_curves({"loss": [3.0, 2.0], "recon": [2.5, 1.8], "kl": [0.5, 0.2],
                                        "val_loss": [3.1, 2.2]}, path=tmp_path / "curves.png"),
        "pair": plotting.scatter_pair(rng.normal(size=(20, 2)), rng.normal(size=(20, 2)),
                                      path=tmp_path / "pair.png"),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
    for png in ("sub/grid.png", "scatter.png", "scatter_real.png", "strip.png", "curves.png", "pair.png"):
        assert_png(tmp_path / png)
    assert matplotlib.get_backend() == backend


def test_loss_curves_keep_recon_and_kl_apart():
    vae = plotting.loss_curves({"loss": [2.0, 1.0], "recon": [1.5, 0.8], "kl": [0.5, 0.2]})
    assert [ax.get_title() for ax in vae.axes] == ["loss (nats / example)", "reconstruction", "KL"]
    ae = plotting.loss_curves({"loss": [2.0, 1.0]})
    assert len(ae.axes) == 1
    with pytest.raises(ValueError, match="'loss'"):
        plotting.loss_curves({"recon": [1.0]})


def test_manifold_grid_is_the_inverse_cdf_grid_laid_out_like_the_scatter(tmp_path):
    seen = []

    def decode(Z):
        seen.append(Z.copy())
        return np.tile(Z[:, :1], (1, 16))  # 4x4 "images" coloured by z1

    n = 5
    fig = plotting.manifold_grid(decode, n, path=tmp_path / "grid.png")
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "grid.png")
    Z = seen[0].reshape(n, n, 2)
    q = ndtri((np.arange(n) + 0.5) / n)
    np.testing.assert_allclose(Z[0, :, 0], q)          # z1 grows left to right
    np.testing.assert_allclose(Z[:, 0, 1], q[::-1])    # z2 grows bottom to top
    # with codes: the empirical quantiles of each axis
    codes = np.random.default_rng(0).uniform(-3, 7, size=(1000, 2))
    plotting.manifold_grid(decode, n, image_shape=(4, 4), codes=codes)
    Z = seen[1].reshape(n, n, 2)
    np.testing.assert_allclose(Z[0, :, 0], np.quantile(codes[:, 0], (np.arange(n) + 0.5) / n))


def test_bad_inputs():
    with pytest.raises(ValueError, match="image shape"):
        plotting.image_grid(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="labels must have shape"):
        plotting.latent_scatter(np.zeros((4, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="n_rows, n_steps"):
        plotting.interpolation_strip(np.zeros((2, 2, 2, 2)))
