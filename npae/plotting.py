"""Figures for the lectures: image grids, latent scatter, the manifold grid, interpolation strips and
loss curves.

Safe without a display: figures are built with ``matplotlib.figure.Figure`` and an Agg canvas
attached to each one, so nothing here imports ``pyplot`` or changes the global backend (a notebook
keeps its own). Every function returns the Figure and, given ``path=``, also writes a PNG there
(creating the folder). In a notebook, a returned Figure displays itself.
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .validation import check_array, check_scalar

#: Resolution of the saved PNGs.
DPI = 100


def new_figure(figsize=(6.0, 4.0)):
    """A Figure with its own Agg canvas (no pyplot, no display, no global state)."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    """Write ``fig`` as a PNG to ``path`` (parent folders created) and return the path."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def infer_image_shape(n_features):
    """``(s, s)`` when ``n_features`` is a perfect square (64 -> 8x8, 784 -> 28x28), else ValueError."""
    side = int(round(np.sqrt(n_features)))
    if side * side != n_features:
        raise ValueError(f"cannot infer an image shape from {n_features} features; pass image_shape=")
    return (side, side)


def _mosaic(images, image_shape, n_rows, n_cols, pad=1):
    """Tile (N, H*W) images into one (rows*(H+pad)-pad, cols*(W+pad)-pad) array; blanks are NaN."""
    h, w = image_shape
    canvas = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), np.nan)
    for k, img in enumerate(images[:n_rows * n_cols]):
        r, c = divmod(k, n_cols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img.reshape(h, w)
    return canvas


def _show(ax, canvas, vmin, vmax, cmap):
    ax.imshow(np.ma.masked_invalid(canvas), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(images, image_shape=None, n_cols=None, *, title=None, row_labels=None, vmin=0.0,
               vmax=1.0, cmap="gray", path=None):
    """Images in a grid, drawn as one mosaic (fast for hundreds of images).

    Parameters
    ----------
    images : (N, H*W) array, or (N, H, W)
    image_shape : (H, W), optional
        Inferred for square images.
    n_cols : int, optional
        Default: ``ceil(sqrt(N))``.
    row_labels : list of str, optional
        Written left of each row (e.g. "data" / "reconstruction").
    vmin, vmax : float or None
        Colour range; None scales to the data.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 3:
        image_shape = image_shape or images.shape[1:]
        images = images.reshape(images.shape[0], -1)
    images = check_array(images, "images", finite=False)
    image_shape = tuple(image_shape) if image_shape is not None else infer_image_shape(images.shape[1])
    n = images.shape[0]
    n_cols = n_cols or int(np.ceil(np.sqrt(n)))
    check_scalar("n_cols", n_cols, low=1, integer=True)
    n_rows = -(-n // n_cols)
    h, w = image_shape
    scale = 0.35 if max(h, w) <= 8 else 0.6
    fig = new_figure((max(2.0, n_cols * scale + (1.2 if row_labels else 0.2)),
                      max(1.2, n_rows * scale + (0.5 if title else 0.1))))
    ax = fig.add_subplot(1, 1, 1)
    _show(ax, _mosaic(images, image_shape, n_rows, n_cols), vmin, vmax, cmap)
    if row_labels:
        ax.set_yticks([r * (h + 1) + h / 2 - 0.5 for r in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
        ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def latent_scatter(Z, labels=None, *, dims=(0, 1), title="latent codes", class_names=None,
                   path=None):
    """Codes ``Z`` (N, d) as points on two latent axes ``dims``, coloured by class.

    ``labels``: integer classes (a legend of classes, ``class_names`` when given) or real values (a
    colour bar, e.g. the position along a swiss roll). With d = 1 the codes go against the label.
    """
    Z = check_array(Z, "Z")
    fig = new_figure((5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    if Z.shape[1] == 1:
        xs = Z[:, 0]
        ys = np.zeros_like(xs) if labels is None else np.asarray(labels, dtype=np.float64)
        ax.set_xlabel("z1")
        ax.set_ylabel("label" if labels is not None else "")
    else:
        xs, ys = Z[:, dims[0]], Z[:, dims[1]]
        ax.set_xlabel(f"z{dims[0] + 1}")
        ax.set_ylabel(f"z{dims[1] + 1}")
    if labels is None:
        ax.scatter(xs, ys, s=6, alpha=0.7)
    else:
        labels = np.asarray(labels)
        if labels.shape != (Z.shape[0],):
            raise ValueError(f"labels must have shape ({Z.shape[0]},), got {labels.shape}")
        if labels.dtype.kind in "biu":
            cmap = _class_cmap(int(labels.max()) + 1)
            for c in np.unique(labels):
                m = labels == c
                name = class_names[c] if class_names is not None else str(c)
                ax.scatter(xs[m], ys[m], s=6, alpha=0.75, color=cmap(int(c)), label=name)
            ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                      frameon=False)
        else:
            sc = ax.scatter(xs, ys, s=6, c=labels, cmap="viridis")
            fig.colorbar(sc, ax=ax)
    ax.set_title(title)
    return _finish(fig, path)


def _class_cmap(n):
    from matplotlib import colormaps
    return colormaps["tab10" if n <= 10 else "tab20"]


def manifold_grid(decode, n=15, image_shape=None, *, latent_dim=2, dims=(0, 1), codes=None,
                  title="decoded inverse-CDF grid", path=None):
    """Kingma & Welling's Fig. 4: decode an ``n × n`` grid of codes that are evenly spaced in prior
    probability: ``z = Φ⁻¹(u)`` with ``u = (k + 0.5) / n`` on the open unit square
    (:func:`npae.latent.manifold_grid`).

    ``decode``: a model with ``.decode`` or a function (M, latent_dim) -> (M, H*W). Laid out like
    :func:`latent_scatter`: ``z[dims[0]]`` grows left to right, ``z[dims[1]]`` bottom to top; other
    latents are 0. ``codes`` (N, latent_dim), for a plain autoencoder whose codes do not follow the
    prior: use each axis's empirical quantiles of ``codes`` in place of Φ⁻¹ (other latents at their
    median).
    """
    from .latent import manifold_grid as grid_codes

    fn = decode.decode if hasattr(decode, "decode") else decode
    # rows of grid_codes run over its first axis: put z[dims[1]] there, then flip it to grow upward
    Z = grid_codes(n, latent_dim=latent_dim, dims=(dims[1], dims[0]))  # (n*n, latent_dim)
    Z = Z.reshape(n, n, latent_dim)[::-1].reshape(n * n, latent_dim)
    if codes is not None:
        codes = check_array(codes, "codes", n_features=latent_dim)
        u = (np.arange(n) + 0.5) / n  # (n,)
        q = {d: np.quantile(codes[:, d], u) for d in dims}
        Zq = np.tile(np.median(codes, axis=0), (n, n, 1))  # (n, n, latent_dim)
        Zq[:, :, dims[0]] = q[dims[0]][None, :]
        Zq[:, :, dims[1]] = q[dims[1]][::-1, None]
        Z = Zq.reshape(n * n, latent_dim)
    images = np.asarray(fn(Z), dtype=np.float64)  # (n*n, H*W)
    fig = image_grid(images, image_shape, n_cols=n, title=title)
    ax = fig.axes[0]
    how = "quantiles of the codes" if codes is not None else "Φ⁻¹"
    ax.set_xlabel(f"z{dims[0] + 1} →  ({how} at {1 / (2 * n):.2g} … {1 - 1 / (2 * n):.2g})")
    ax.set_ylabel(f"z{dims[1] + 1} →")
    return _finish(fig, path)


def interpolation_strip(images, image_shape=None, *, row_labels=None, title="interpolation",
                        path=None):
    """Rows of decoded interpolations: ``images`` (n_rows, n_steps, H*W) or (n_steps, H*W)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise ValueError(f"images must be (n_steps, D) or (n_rows, n_steps, D), got {images.shape}")
    n_rows, n_steps, d = images.shape
    return image_grid(images.reshape(n_rows * n_steps, d), image_shape, n_cols=n_steps,
                      title=title, row_labels=row_labels, path=path)


#: History keys drawn in their own panel (in this order) when present.
_PANELS = (("loss", "loss (nats / example)"), ("recon", "reconstruction"), ("kl", "KL"))


def loss_curves(history, *, title=None, path=None):
    """Per-epoch curves from a ``fit`` history.

    Each of ``loss``, ``recon`` and ``kl`` present in the history gets its own panel (so a VAE's
    reconstruction and KL are apart); other terms (penalties) share the loss panel; ``val_<term>``
    is drawn dashed in its term's panel.
    """
    if not isinstance(history, dict) or "loss" not in history:
        raise ValueError("history must be a dict with at least a 'loss' list (the output of fit)")
    panels = [(k, label) for k, label in _PANELS if k in history]
    fig = new_figure((4.0 * len(panels), 3.2))
    axes = {k: fig.add_subplot(1, len(panels), i + 1) for i, (k, _) in enumerate(panels)}
    for key, values in history.items():
        base = key[4:] if key.startswith("val_") else key
        if not values or not np.all(np.isfinite(values)):
            continue
        ax = axes.get(base, axes["loss"])
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, "--" if key.startswith("val_") else "-", label=key)
    for key, label in panels:
        ax = axes[key]
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def scatter_pair(X, X_hat, labels=None, *, title="data and reconstruction", path=None):
    """A 2-D point cloud (first two columns) beside its reconstruction, for non-image data."""
    X = check_array(X, "X")
    X_hat = check_array(X_hat, "X_hat", n_features=X.shape[1])
    fig = new_figure((9.0, 4.0))
    for i, (data, name) in enumerate(((X, "data"), (X_hat, "reconstruction"))):
        ax = fig.add_subplot(1, 2, i + 1, sharex=fig.axes[0] if i else None,
                             sharey=fig.axes[0] if i else None)
        ax.scatter(data[:, 0], data[:, 1] if data.shape[1] > 1 else np.zeros(len(data)), s=5,
                   c=labels, cmap="viridis" if labels is not None else None)
        ax.set_title(name)
    fig.suptitle(title)
    return _finish(fig, path)
