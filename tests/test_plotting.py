"""Plotting: every function returns a figure that shows itself in Jupyter, writes a PNG (atomically,
at 150+ dpi), needs no display and leaves the global matplotlib backend and pyplot alone; the
pictures hold what their titles say (held-out curves, regular grids over the codes, random draw
order, PCA / t-SNE above 2-D, RGB images, Bernoulli draws, traversals)."""
import os
import struct
import subprocess
import sys
import types

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.special import ndtri

from npae import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data):
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def assert_png(path):
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC


def test_all_figures_save_png_without_touching_the_backend(tmp_path):
    backend = matplotlib.get_backend()
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(30, 64))
    H = rng.uniform(size=(40, 5))
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
        "denoise": plotting.denoising_triplets(images[:20], images[:20], images[:20], n=10,
                                               path=tmp_path / "denoise.png"),
        "sparse": plotting.sparsity_figure(H, rho=0.05, path=tmp_path / "sparse.png"),
        "denoise_points": plotting.denoising_points(H[:, :2], H[:, :2], H[:, :2],
                                                    path=tmp_path / "denoise_points.png"),
        "contract": plotting.contraction_figure(H[:4], H[:4, None] + 0.01 * rng.normal(size=(4, 6, 5)),
                                                sigma=0.01, ratio=0.3, background=H,
                                                path=tmp_path / "contract.png"),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure) and isinstance(fig, plotting.NpaeFigure), name
        assert_png(tmp_path / ("sub/grid.png" if name == "grid" else f"{name}.png"))
    assert matplotlib.get_backend() == backend
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]  # atomic: no leftovers


def test_figures_display_in_jupyter_and_scripts_leave_pyplot_alone():
    fig = plotting.loss_curves({"loss": [2.0, 1.0]})
    data = fig._repr_png_()
    width, height = png_size(data)
    assert width >= 4.0 * plotting.DPI * 0.8 and plotting.DPI >= 150
    try:
        from IPython.core.formatters import PNGFormatter
    except ImportError:
        pass
    else:  # the formatter Jupyter uses finds the PNG without pyplot
        assert PNGFormatter()(fig)[:8] == PNG_MAGIC
    code = ("import sys, npae; assert 'matplotlib' not in sys.modules, 'import npae imports matplotlib'\n"
            "fig = npae.plotting.image_grid(__import__('numpy').zeros((4, 64)))\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'plotting imported pyplot'\n"
            "assert fig._repr_png_()[:4] == b'\\x89PNG'\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_loss_curves_draw_held_out_curves_with_units_and_skip_empty_terms():
    vae = plotting.loss_curves({"loss": [2.0, 1.0], "recon": [1.5, 0.8], "kl": [0.5, 0.2],
                                "val_loss": [2.1, 1.2], "val_recon": [1.6, 0.9], "val_kl": [0.5, 0.3]})
    assert [ax.get_title() for ax in vae.axes] == ["loss (what training minimises)", "reconstruction term",
                                                   "KL(q(z|x) ‖ p(z))"]
    for ax in vae.axes:
        assert len(ax.get_lines()) == 2 and ax.get_lines()[1].get_linestyle() == "--"
        assert ax.get_ylabel().endswith("nats per example") and ax.get_xlabel() == "epoch"
        assert [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()] == ["training", "held-out"]
    # a denoiser: recon equals loss and the penalty is zero, so one panel; an MSE model's units
    dae = plotting.loss_curves({"loss": [2.0, 1.0], "recon": [2.0, 1.0], "penalty": [0.0, 0.0]},
                               units="squared error per example")
    assert len(dae.axes) == 1 and dae.axes[0].get_ylabel() == "loss, squared error per example"
    sae = plotting.loss_curves({"loss": [2.0, 1.0], "recon": [1.9, 0.9], "penalty": [0.1, 0.1]})
    assert [ax.get_title() for ax in sae.axes][-1] == "penalty term"
    with pytest.raises(ValueError, match="'loss'"):
        plotting.loss_curves({"recon": [1.0]})


def test_manifold_grid_is_the_inverse_cdf_grid_laid_out_like_the_scatter(tmp_path):
    seen = []

    def decode(Z):
        seen.append(Z.copy())
        return np.tile(Z[:, :1], (1, 16))  # 4x4 "images" coloured by z1

    n = 5
    fig = plotting.manifold_grid(decode, n, path=tmp_path / "grid.png")
    assert isinstance(fig, Figure) and "Φ⁻¹" in fig.axes[0].get_title()
    assert_png(tmp_path / "grid.png")
    Z = seen[0].reshape(n, n, 2)
    q = ndtri((np.arange(n) + 0.5) / n)
    np.testing.assert_allclose(Z[0, :, 0], q)          # z1 grows left to right
    np.testing.assert_allclose(Z[:, 0, 1], q[::-1])    # z2 grows bottom to top


def test_the_autoencoder_grid_is_regular_over_the_codes_range_so_gaps_show():
    seen = []

    def decode(Z):
        seen.append(Z.copy())
        return np.zeros((Z.shape[0], 16))

    n = 5
    rng = np.random.default_rng(0)
    # two clusters far apart: a quantile grid would put no code in the empty middle
    codes = np.concatenate([rng.normal(-5, 0.1, (500, 2)), rng.normal(5, 0.1, (500, 2))])
    fig = plotting.manifold_grid(decode, n, image_shape=(4, 4), codes=codes)
    Z = seen[0].reshape(n, n, 2)
    np.testing.assert_allclose(Z[0, :, 0], np.linspace(codes[:, 0].min(), codes[:, 0].max(), n))
    np.testing.assert_allclose(Z[:, 0, 1], np.linspace(codes[:, 1].min(), codes[:, 1].max(), n)[::-1])
    assert np.any(np.abs(Z[0, :, 0]) < 1.0)  # the gap is decoded
    assert "regular grid over the codes' range" in fig.axes[0].get_title()
    assert "regular" in fig.axes[0].get_xlabel()


def test_latent_scatter_draws_classes_in_a_random_order():
    Z = np.random.default_rng(0).normal(size=(200, 2))
    labels = np.repeat([0, 1], 100)  # sorted: drawn in this order, class 1 would cover class 0
    fig = plotting.latent_scatter(Z, labels)
    (points,) = fig.axes[0].collections
    colours = points.get_facecolors()
    first = colours[:50, :3]
    assert len({tuple(c) for c in first}) == 2  # both classes among the first points drawn
    assert 0 < points.get_alpha() < 1 and points.get_sizes()[0] <= 10
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["0", "1"]


def test_codes_above_two_dimensions_go_through_pca_and_optionally_tsne(monkeypatch):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(60, 5)) * np.array([5.0, 2.0, 0.1, 0.1, 0.1])
    fig = plotting.latent_scatter(Z, rng.integers(0, 3, 60))
    assert fig.axes[0].get_xlabel().startswith("PC1 of the codes (") and "PCA of the 5-D codes" in \
        fig.axes[0].get_title()
    Y, names, note = plotting.project_2d(Z, "pca")
    assert np.var(Y[:, 0]) > np.var(Y[:, 1]) > 0
    # t-SNE: scikit-learn's, imported only when asked; missing, one clear ImportError
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    assert not plotting.tsne_available()
    with pytest.raises(ImportError, match=r"t-SNE needs scikit-learn.*\(pip install scikit-learn\)"):
        plotting.project_2d(Z, "tsne")
    calls = []

    class FakeTSNE:
        def __init__(self, **kwargs):
            calls.append(kwargs)

        def fit_transform(self, X):
            return X[:, :2]
    fake = types.ModuleType("sklearn.manifold")
    fake.TSNE = FakeTSNE
    monkeypatch.setitem(sys.modules, "sklearn", types.ModuleType("sklearn"))
    monkeypatch.setitem(sys.modules, "sklearn.manifold", fake)
    fig = plotting.latent_scatter(Z, projection=("pca", "tsne"), seed=3)
    assert [ax.get_xlabel()[:5] for ax in fig.axes] == ["PC1 o", "t-SNE"]
    assert calls[0]["random_state"] == 3 and calls[0]["perplexity"] <= (60 - 1) / 3


def test_rgb_images_and_bernoulli_draws(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.uniform(size=(6, 4 * 4 * 3))
    fig = plotting.image_grid(rgb, (4, 4, 3), n_cols=3, path=tmp_path / "rgb.png")
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (2 * 5 - 1, 3 * 5 - 1, 3)
    np.testing.assert_allclose(shown[:4, :4], rgb[0].reshape(4, 4, 3))  # (R, G, B) per pixel
    with pytest.raises(ValueError, match="does not fit"):
        plotting.image_grid(rgb, (4, 4))
    p = np.full((2000, 16), 0.3)
    draws = plotting.bernoulli_draws(p, seed=1)
    assert set(np.unique(draws)) == {0.0, 1.0} and abs(draws.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(draws, plotting.bernoulli_draws(p, seed=1))
    with pytest.raises(ValueError, match="probabilities in"):
        plotting.bernoulli_draws([1.5])
    fig = plotting.image_grid(rng.uniform(size=(8, 16)), n_cols=4, draws=True, seed=0)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["mean", "draw", "mean", "draw"]
    grid = fig.axes[0].get_images()[0].get_array()
    assert set(np.unique(grid[5:9].compressed())) <= {0.0, 1.0}  # the second row is a draw


def test_latent_traversal_varies_one_latent_per_row():
    seen = []

    class Model:
        latent_dim = 3

        def decode(self, Z, y=None):
            seen.append((Z.copy(), None if y is None else np.asarray(y).copy()))
            return np.tile(Z[:, :1], (1, 16)) * 0 + 0.5

    values = np.linspace(-3, 3, 9)
    fig = plotting.latent_traversal(Model(), values=values, image_shape=(4, 4))
    Z, _ = seen[0]
    Z = Z.reshape(3, 9, 3)
    for d in range(3):
        np.testing.assert_allclose(Z[d, :, d], values)
        np.testing.assert_allclose(np.delete(Z[d], d, axis=1), 0.0)  # the others at the prior mean
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["z1", "z2", "z3"]
    plotting.latent_traversal(Model(), z0=[1.0, 2.0, 3.0], dims=[1], y=4, image_shape=(4, 4))
    Z, y = seen[1]
    np.testing.assert_allclose(Z[:, 0], 1.0)
    np.testing.assert_allclose(Z[:, 1], values)
    assert y.tolist() == [4] * 9
    with pytest.raises(ValueError, match="dims must be latent axes"):
        plotting.latent_traversal(Model(), dims=[3], image_shape=(4, 4))


def test_class_grid_rows_are_classes_and_columns_the_same_code():
    seen = []

    class CVAE:
        latent_dim, n_classes = 2, 3

        def decode(self, Z, y):
            seen.append((Z.copy(), np.asarray(y).copy()))
            return np.full((Z.shape[0], 16), 0.5)

    fig = plotting.class_grid(CVAE(), np.linspace(-2, 2, 5), (4, 4), class_names=["a", "b", "c"])
    assert len(fig.axes) == 2
    Z, y = seen[0]
    assert y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    np.testing.assert_allclose(Z.reshape(3, 5, 2)[1, :, 0], np.linspace(-2, 2, 5))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c"]


def test_scatter_pair_names_its_panels():
    rng = np.random.default_rng(0)
    fig = plotting.scatter_pair(rng.normal(size=(9, 2)), rng.normal(size=(9, 2)),
                                names=("held-out data", "samples"))
    assert [ax.get_title() for ax in fig.axes] == ["held-out data", "samples"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="image shape"):
        plotting.image_grid(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="labels must have shape"):
        plotting.latent_scatter(np.zeros((4, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="n_rows, n_steps"):
        plotting.interpolation_strip(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="unknown projection"):
        plotting.project_2d(np.zeros((4, 3)), "umap")
