"""The general figures: image grids, latent scatter (PCA / t-SNE above 2-D), the manifold grid,
latent traversals, class grids, interpolation strips, loss curves, point clouds beside their
reconstructions; and what every figure shares (:func:`new_figure`, :func:`save_figure`). The
figures of the regularised autoencoders' lessons are in :mod:`npae.app.lesson_figures`; both are
public as ``npae.plotting`` (:mod:`npae.app.plotting`).

Safe without a display: figures are :class:`NpaeFigure` objects (a ``matplotlib.figure.Figure``)
with an Agg canvas attached to each one, so nothing here imports ``pyplot`` or changes the global
backend, and a script's figures never pile up in pyplot's state. Every function returns the
figure and, given ``path=``, also writes a PNG there (folder created; written atomically, so a
reader never sees half a PNG). In Jupyter a returned figure displays itself as the last line of a
cell (``NpaeFigure._repr_png_``), whether or not pyplot was imported.

Colours: a class legend uses tab10 (tab20 above ten classes). Points are drawn in a random order
so that no class hides behind another.
"""
import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from npae.validation import check_array, check_scalar

#: Resolution of the saved PNGs and of the notebook display.
DPI = 150

#: Largest number of points for which ``projection="auto"`` also runs t-SNE (it is O(N log N) but
#: slow in absolute terms: about ten seconds for 2,000 points on one core).
TSNE_MAX_POINTS = 2000


class NpaeFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG (``_repr_png_``) without pyplot."""

    def _repr_png_(self):
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        return buf.getvalue()


def new_figure(figsize=(6.0, 4.0)):
    """An :class:`NpaeFigure` with its own Agg canvas (no pyplot, no display, no global state)."""
    fig = NpaeFigure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    """Write ``fig`` as a PNG to ``path`` (parent folders created) atomically and return the path.

    The PNG goes to a temporary file next to ``path`` and is renamed over it only when complete
    (:func:`npae.app.runs.atomic_write`); a failure raises :class:`npae.app.runs.OutputError` naming ``path``.
    """
    from npae.app.runs import atomic_write

    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight"))
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


# ---------------------------------------------------------------------------------------- image grids
def _check_shape(image_shape, n_features):
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)) or \
            int(np.prod(shape)) != n_features:
        raise ValueError(f"image_shape {shape} does not fit {n_features} features: expected (H, W) "
                         f"or (H, W, 3) with H*W*C = {n_features}")
    return shape if len(shape) == 2 or shape[2] == 3 else shape[:2]


def _mosaic(images, image_shape, n_rows, n_cols, pad=1):
    """Tile (N, H*W[*3]) images into one (rows*(H+pad)-pad, cols*(W+pad)-pad[, 3]) array; blanks NaN."""
    h, w = image_shape[:2]
    channels = image_shape[2:] if len(image_shape) == 3 else ()
    canvas = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad, *channels), np.nan)
    for k, img in enumerate(images[:n_rows * n_cols]):
        r, c = divmod(k, n_cols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = img.reshape(image_shape)
    return canvas


def _show(ax, canvas, vmin, vmax, cmap):
    if canvas.ndim == 3:  # RGB: scale to [0, 1] by hand (imshow ignores vmin/vmax for RGB), gaps white
        lo = np.nanmin(canvas) if vmin is None else vmin
        hi = np.nanmax(canvas) if vmax is None else vmax
        rgb = np.clip((canvas - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        ax.imshow(np.where(np.isnan(rgb), 1.0, rgb), interpolation="nearest")
    else:
        ax.imshow(np.ma.masked_invalid(canvas), cmap=cmap, vmin=vmin, vmax=vmax,
                  interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _as_flat_images(images, image_shape):
    images = np.asarray(images, dtype=np.float64)
    if images.ndim in (3, 4):
        image_shape = image_shape or images.shape[1:]
        images = images.reshape(images.shape[0], -1)
    images = check_array(images, "images", finite=False)
    shape = infer_image_shape(images.shape[1]) if image_shape is None else image_shape
    return images, _check_shape(shape, images.shape[1])


def _draw_grid(ax, images, image_shape, n_cols, row_labels, vmin, vmax, cmap):
    n_rows = -(-images.shape[0] // n_cols)
    h = image_shape[0]
    _show(ax, _mosaic(images, image_shape, n_rows, n_cols), vmin, vmax, cmap)
    if row_labels:
        ax.set_yticks([r * (h + 1) + h / 2 - 0.5 for r in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
        ax.tick_params(length=0)


def bernoulli_draws(probabilities, seed=0):
    """One draw ``x ~ Bernoulli(p)`` per pixel of ``probabilities`` (values in [0, 1]), as floats 0/1.

    What a Bernoulli decoder's model of the data really produces: its mean image is a picture of
    probabilities, a sample is a binary image.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size and (not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("bernoulli_draws needs probabilities in [0, 1]")
    return (np.random.default_rng(seed).uniform(size=p.shape) < p).astype(np.float64)


def image_grid(images, image_shape=None, n_cols=None, *, title=None, row_labels=None, vmin=0.0,
               vmax=1.0, cmap="gray", draws=False, seed=0, path=None):
    """Images in a grid, drawn as one mosaic (fast for hundreds of images).

    Parameters
    ----------
    images : (N, H*W) or (N, H*W*3) array, or (N, H, W) / (N, H, W, 3)
    image_shape : (H, W) or (H, W, 3), optional
        Inferred for square greyscale images. RGB rows are (R, G, B) per pixel, as numpy's reshape
        to ``(H, W, 3)`` reads them.
    n_cols : int, optional
        Default: ``ceil(sqrt(N))``.
    row_labels : list of str, optional
        Written left of each row (e.g. "data" / "reconstruction").
    vmin, vmax : float or None
        Colour range; None scales to the data.
    draws : bool
        The images are Bernoulli means (probabilities): under each row of means put a row of one
        Bernoulli draw of each (:func:`bernoulli_draws` with ``seed``), labelled "mean" / "draw".
    """
    images, image_shape = _as_flat_images(images, image_shape)
    n = images.shape[0]
    n_cols = n_cols or int(np.ceil(np.sqrt(n)))
    check_scalar("n_cols", n_cols, low=1, integer=True)
    if draws:
        sampled = bernoulli_draws(images, seed)
        n_rows = -(-n // n_cols)
        blocks, labels = [], []
        for r in range(n_rows):
            row = slice(r * n_cols, (r + 1) * n_cols)
            pad = n_cols - images[row].shape[0]
            blank = np.full((pad, images.shape[1]), np.nan)
            blocks += [images[row], blank, sampled[row], blank]
            base = row_labels[r] if row_labels and r < len(row_labels) else None
            labels += [f"{base}: mean" if base else "mean", f"{base}: draw" if base else "draw"]
        images, row_labels = np.concatenate(blocks), labels
    n_rows = -(-images.shape[0] // n_cols)
    h, w = image_shape[:2]
    scale = 0.35 if max(h, w) <= 8 else 0.6
    fig = new_figure((max(2.0, n_cols * scale + (1.2 if row_labels else 0.2)),
                      max(1.2, n_rows * scale + (0.5 if title else 0.1))))
    ax = fig.add_subplot(1, 1, 1)
    _draw_grid(ax, images, image_shape, n_cols, row_labels, vmin, vmax, cmap)
    if title:
        ax.set_title(title)
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


# ---------------------------------------------------------------------------------------- latent space
def tsne_available():
    """True when scikit-learn (t-SNE's provider, optional) can be imported."""
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        return False
    return True


def project_2d(Z, method="pca", *, seed=0):
    """Two coordinates for each code: ``(Y (N, 2), (xlabel, ylabel), note)``.

    ``"axes"``: the first two latent axes. ``"pca"``: the top two principal axes of the codes
    (:class:`npae.PCA`; the note gives the share of variance they hold). ``"tsne"``: scikit-learn's
    t-SNE (an optional dependency, imported only here: ImportError with the install line when it
    is missing), perplexity ``min(30, (N - 1) / 3)``, PCA initialisation, ``random_state=seed``.
    t-SNE keeps neighbourhoods, not distances: gaps and cluster sizes in it mean little.
    """
    Z = check_array(Z, "Z")
    if method == "axes" or Z.shape[1] == 1:
        cols = Z[:, :2] if Z.shape[1] >= 2 else np.column_stack([Z[:, 0], np.zeros(len(Z))])
        return cols, ("z1", "z2" if Z.shape[1] >= 2 else ""), ""
    if method == "pca":
        from npae.models.pca import PCA

        pca = PCA(2).fit(Z)
        share = pca.explained_variance_ratio_
        return (pca.transform(Z), (f"PC1 of the codes ({100 * share[0]:.0f}% of variance)",
                                   f"PC2 ({100 * share[1]:.0f}%)"),
                f"PCA of the {Z.shape[1]}-D codes")
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise ImportError("t-SNE needs scikit-learn, which is not installed "
                              "(pip install scikit-learn); PCA needs nothing") from None
        perplexity = float(min(30.0, max(2.0, (Z.shape[0] - 1) / 3.0)))
        # init="pca" divides by the spread of the codes along their first principal axis: codes that
        # (nearly) all coincide (a collapsed encoder) make that 0/0 and the Barnes-Hut step then
        # crashes the process (segfault, scikit-learn 1.x); start those from random points
        centred = Z - Z.mean(axis=0)
        spread = float(np.sqrt((centred ** 2).sum(axis=1).max())) if Z.size else 0.0
        init = "pca" if spread > 1e-6 * max(1.0, float(np.abs(Z).max())) else "random"
        Y = TSNE(n_components=2, perplexity=perplexity, init=init, learning_rate="auto",
                 random_state=seed).fit_transform(Z)
        note = f"t-SNE of the {Z.shape[1]}-D codes (perplexity {perplexity:.0f})"
        if init == "random":  # t-SNE spreads identical points on a ring: say it is no structure
            note += "; all codes coincide, so this layout is an artifact"
        return np.asarray(Y, dtype=np.float64), ("t-SNE 1", "t-SNE 2"), note
    raise ValueError(f"unknown projection {method!r}; expected 'axes', 'pca' or 'tsne'")


def _scatter_points(ax, xs, ys, labels, class_names, seed, s=None, alpha=None):
    """Points in a random order (no class drawn over another), coloured by class or by value;
    smaller and fainter markers for many points (default 5 pt² at alpha 0.6 up to 2,000 points,
    then 2 pt² at 0.4)."""
    many = xs.shape[0] > 2000
    s = (2.0 if many else 5.0) if s is None else s
    alpha = (0.4 if many else 0.6) if alpha is None else alpha
    order = np.random.default_rng(seed).permutation(xs.shape[0])
    if labels is None:
        ax.scatter(xs[order], ys[order], s=s, alpha=alpha, linewidths=0)
        return None
    labels = np.asarray(labels)
    if labels.dtype.kind in "biu":
        from matplotlib.lines import Line2D

        classes = np.unique(labels)
        cmap = _class_cmap(int(labels.max()) + 1)
        ax.scatter(xs[order], ys[order], s=s, alpha=alpha, linewidths=0,
                   color=cmap(labels[order].astype(int)))
        handles = [Line2D([], [], linestyle="", marker="o", markersize=5, color=cmap(int(c)),
                          label=class_names[c] if class_names is not None else str(c))
                   for c in classes]
        ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False, title="class", title_fontsize=7)
        return None
    return ax.scatter(xs[order], ys[order], s=s, alpha=alpha, linewidths=0,
                      c=labels[order].astype(np.float64), cmap="viridis")


def latent_scatter(Z, labels=None, *, dims=(0, 1), title="latent codes", class_names=None,
                   projection="auto", seed=0, label_name="label", path=None):
    """Codes ``Z`` (N, d) as points in the plane, coloured by class, in a random order.

    ``projection``: ``"auto"`` draws the latent axes ``dims`` when d <= 2 and a PCA of the codes
    above; ``"axes"``, ``"pca"`` or ``"tsne"`` (:func:`project_2d`) force one, and a tuple of them
    draws one panel each (``("pca", "tsne")``). ``labels``: integer classes (a legend, with
    ``class_names`` when given) or real values (a colour bar named ``label_name``, e.g. the
    position along a swiss roll). With d = 1 the codes go against the label.
    """
    Z = check_array(Z, "Z")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (Z.shape[0],):
            raise ValueError(f"labels must have shape ({Z.shape[0]},), got {labels.shape}")
    methods = (projection,) if isinstance(projection, str) else tuple(projection)
    methods = tuple(("axes" if Z.shape[1] <= 2 else "pca") if m == "auto" else m for m in methods)
    fig = new_figure((5.5 * len(methods), 4.5))
    for i, method in enumerate(methods):
        ax = fig.add_subplot(1, len(methods), i + 1)
        if Z.shape[1] == 1:
            xs = Z[:, 0]
            ys = np.zeros_like(xs) if labels is None else labels.astype(np.float64)
            names, note = ("z1", label_name if labels is not None else ""), ""
        elif method == "axes":
            xs, ys = Z[:, dims[0]], Z[:, dims[1]]
            names, note = (f"z{dims[0] + 1}", f"z{dims[1] + 1}"), ""
        else:
            Y, names, note = project_2d(Z, method, seed=seed)
            xs, ys = Y[:, 0], Y[:, 1]
        mappable = _scatter_points(ax, xs, ys, labels, class_names, seed)
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, label=label_name)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if method in ("axes", "pca") and Z.shape[1] > 1:
            ax.set_aspect("equal", adjustable="datalim")  # distances mean something here
        ax.set_title(f"{title}\n{note}" if note else title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


def _class_cmap(n):
    from matplotlib import colormaps
    return colormaps["tab10" if n <= 10 else "tab20"]


def manifold_grid(decode, n=15, image_shape=None, *, latent_dim=2, dims=(0, 1), codes=None,
                  title=None, path=None):
    """Decode an ``n × n`` grid of codes laid out like :func:`latent_scatter` (``z[dims[0]]`` grows
    left to right, ``z[dims[1]]`` bottom to top; other latents 0).

    Without ``codes``: Kingma & Welling's Fig. 4 for a VAE, codes evenly spaced in prior
    probability, ``z = Φ⁻¹(u)`` with ``u = (k + 0.5) / n`` on the open unit square
    (:func:`npae.pairs.latent.manifold_grid`).

    With ``codes`` (N, latent_dim), for an autoencoder whose codes follow no prior: a **regular**
    grid from the minimum to the maximum of each axis of ``codes`` (other latents at their
    median). Regions where no code lies are decoded too, so the gaps of the code space show as
    the nonsense the decoder makes there (a quantile grid would hide them).

    ``decode``: a model with ``.decode`` or a function (M, latent_dim) -> (M, H*W).
    """
    from npae.pairs.latent import manifold_grid as grid_codes

    fn = decode.decode if hasattr(decode, "decode") else decode
    if codes is None:
        # rows of grid_codes run over its first axis: put z[dims[1]] there, then flip it to grow upward
        Z = grid_codes(n, latent_dim=latent_dim, dims=(dims[1], dims[0]))  # (n*n, latent_dim)
        Z = Z.reshape(n, n, latent_dim)[::-1].reshape(n * n, latent_dim)
        lo = hi = None
    else:
        codes = check_array(codes, "codes", n_features=latent_dim)
        lo, hi = codes.min(axis=0), codes.max(axis=0)  # (latent_dim,)
        axis = {d: np.linspace(lo[d], hi[d], n) for d in dims}
        Zr = np.tile(np.median(codes, axis=0), (n, n, 1))  # (n, n, latent_dim)
        Zr[:, :, dims[0]] = axis[dims[0]][None, :]
        Zr[:, :, dims[1]] = axis[dims[1]][::-1, None]
        Z = Zr.reshape(n * n, latent_dim)
    images = np.asarray(fn(Z), dtype=np.float64)  # (n*n, H*W)
    if title is None:
        title = ("decoded Φ⁻¹ grid: codes equally spaced in prior probability" if codes is None else
                 "decoded regular grid over the codes' range (min … max of each axis)")
    fig = image_grid(images, image_shape, n_cols=n, title=title)
    ax = fig.axes[0]
    if codes is None:
        ax.set_xlabel(f"z{dims[0] + 1} →  (Φ⁻¹(u), u = {1 / (2 * n):.2g} … {1 - 1 / (2 * n):.2g})")
        ax.set_ylabel(f"z{dims[1] + 1} →")
    else:
        ax.set_xlabel(f"z{dims[0] + 1} →  (regular, {lo[dims[0]]:.3g} … {hi[dims[0]]:.3g})")
        ax.set_ylabel(f"z{dims[1] + 1} →  ({lo[dims[1]]:.3g} … {hi[dims[1]]:.3g})")
    return _finish(fig, path)


def _decode_fn(model, y):
    if y is None:
        return model.decode
    return lambda Z: model.decode(Z, np.broadcast_to(np.asarray(y), (Z.shape[0],)).copy()
                                  if np.ndim(y) == 0 else y)


def latent_traversal(model, z0=None, dims=None, values=np.linspace(-3, 3, 9), image_shape=None,
                     y=None, path=None, *, title=None):
    """One row per latent dimension ``d`` in ``dims``: decode ``z0`` with ``z[d]`` set to each of
    ``values`` while the other latents stay at ``z0`` (default 0, the prior mean).

    ``model``: anything with ``decode`` and ``latent_dim``; ``y``: the class of a conditional model
    (one int for every image). Shows what each latent axis alone changes in the output.
    """
    latent_dim = int(model.latent_dim)
    z0 = np.zeros(latent_dim) if z0 is None else np.asarray(z0, dtype=np.float64).reshape(latent_dim)
    dims = list(range(latent_dim)) if dims is None else [int(d) for d in dims]
    if not dims or not all(0 <= d < latent_dim for d in dims):
        raise ValueError(f"dims must be latent axes in 0..{latent_dim - 1}, got {dims}")
    values = np.asarray(values, dtype=np.float64).ravel()
    Z = np.tile(z0, (len(dims), values.size, 1))  # (rows, cols, latent_dim)
    for r, d in enumerate(dims):
        Z[r, :, d] = values
    fn = _decode_fn(model, None if y is None else int(y))
    images = np.asarray(fn(Z.reshape(-1, latent_dim)), dtype=np.float64)
    where = "the prior mean" if not np.any(z0) else "z0"
    cond = f", class {int(y)}" if y is not None else ""
    fig = image_grid(images, image_shape, n_cols=values.size, row_labels=[f"z{d + 1}" for d in dims],
                     title=title or f"latent traversal: one latent varied per row, the others at "
                                    f"{where}{cond}")
    fig.axes[0].set_xlabel(f"value of the varied latent: {values[0]:.3g} … {values[-1]:.3g}")
    return _finish(fig, path)


def class_grid(model, values=np.linspace(-2, 2, 9), image_shape=None, *, dims=(0, 1),
               class_names=None, title=None, path=None):
    """A conditional VAE's classes × latent values: one panel per latent axis in ``dims``, each
    row a class ``y``, each column a value of that axis (other latents 0), decoded by
    ``model.decode(z, y)``. The same column is the same code: what stays the same along a column
    across classes is what the code, not the label, holds (stroke width, slant)."""
    n_classes = int(model.n_classes)
    latent_dim = int(model.latent_dim)
    values = np.asarray(values, dtype=np.float64).ravel()
    dims = [d for d in dims if d < latent_dim]
    panels = []
    for d in dims:
        Z = np.zeros((n_classes, values.size, latent_dim))
        Z[:, :, d] = values
        ys = np.repeat(np.arange(n_classes), values.size)
        panels.append(np.asarray(model.decode(Z.reshape(-1, latent_dim), ys), dtype=np.float64))
    _, image_shape = _as_flat_images(panels[0], image_shape)
    h, w = image_shape[:2]
    scale = 0.35 if max(h, w) <= 8 else 0.6
    fig = new_figure((len(dims) * (values.size * scale + 1.0) + 0.4, n_classes * scale + 1.0))
    names = [class_names[c] if class_names is not None else str(c) for c in range(n_classes)]
    for i, (d, imgs) in enumerate(zip(dims, panels)):
        ax = fig.add_subplot(1, len(dims), i + 1)
        _draw_grid(ax, imgs, image_shape, values.size, names, 0.0, 1.0, "gray")
        others = ", ".join(f"z{k + 1}" for k in range(latent_dim) if k != d)
        ax.set_xlabel(f"z{d + 1}: {values[0]:.3g} … {values[-1]:.3g}"
                      + (f"  ({others} = 0)" if others else ""))
        ax.set_ylabel("class y")
    fig.suptitle(title or "conditional VAE: one row per class, the same code z along each column")
    fig.tight_layout()
    return _finish(fig, path)


# ---------------------------------------------------------------------------------------- training
#: Panel titles of the history terms; any other term gets a panel titled by its name.
_TITLES = {"loss": "loss (what training minimises)", "recon": "reconstruction term",
           "kl": "KL(q(z|x) ‖ p(z))", "penalty": "penalty term", "accuracy": "accuracy"}
_YNAMES = {"recon": "reconstruction", "kl": "KL"}


def loss_curves(history, *, title=None, units="nats per example", path=None):
    """Per-epoch curves from a ``fit`` history, one panel per term.

    Each training term (``loss``, ``recon``, ``kl``, ``penalty``, ...) gets its own panel, so a
    VAE's reconstruction and KL, or an autoencoder's penalty, are each on a scale that shows them;
    the held-out ``val_<term>`` is drawn dashed in the same panel. A term equal to ``loss`` at every
    epoch (a denoiser's ``recon``) or zero at every epoch (its ``penalty``) is left out.
    ``units``: of the loss terms, written on every y axis (``"nats per example"``, or e.g.
    ``"squared error per example"`` for an MSE autoencoder); a dict maps terms to their own units.
    ``accuracy`` is a fraction.
    """
    if not isinstance(history, dict) or "loss" not in history:
        raise ValueError("history must be a dict with at least a 'loss' list (the output of fit)")
    base = [k for k in history if not k.startswith("val_")]
    loss = np.asarray(history["loss"], dtype=np.float64)

    def shown(key):
        v = np.asarray(history[key], dtype=np.float64)
        if key == "loss":
            return True
        if v.size == 0 or (v.shape == loss.shape and np.array_equal(v, loss)):
            return False
        return not np.all(v == 0.0)

    keys = [k for k in ("loss", "recon", "kl", "penalty") if k in base and shown(k)]
    keys += [k for k in base if k not in keys and k not in ("recon", "kl", "penalty") and shown(k)]
    fig = new_figure((4.0 * len(keys), 3.3))
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for name, style, label in ((key, "-", "training"), (f"val_{key}", "--", "held-out")):
            values = np.asarray(history.get(name, ()), dtype=np.float64)
            if values.size == 0:
                continue
            epochs = np.arange(1, values.size + 1)
            finite = np.isfinite(values)
            ax.plot(epochs[finite], values[finite], style, label=f"{label} (last {values[-1]:.4g})")
        unit = units.get(key, "") if isinstance(units, dict) else (
            "fraction correct" if key == "accuracy" else units)
        ax.set_title(_TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("epoch")
        name = _YNAMES.get(key, key)
        ax.set_ylabel(f"{name}, {unit}" if unit else name)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


# ---------------------------------------------------------------------------------------- point clouds
def scatter_pair(X, X_hat, labels=None, *, title="data and reconstruction",
                 names=("data", "reconstruction"), path=None):
    """A 2-D point cloud (first two columns) beside another (its reconstruction, or samples),
    panel titles ``names``, on shared axes."""
    X = check_array(X, "X")
    X_hat = check_array(X_hat, "X_hat", n_features=X.shape[1])
    fig = new_figure((9.0, 4.0))
    for i, (data, name) in enumerate(((X, names[0]), (X_hat, names[1]))):
        ax = fig.add_subplot(1, 2, i + 1, sharex=fig.axes[0] if i else None,
                             sharey=fig.axes[0] if i else None)
        lab = labels if labels is not None and len(labels) == data.shape[0] else None
        ys = data[:, 1] if data.shape[1] > 1 else np.zeros(len(data))
        _scatter_points(ax, data[:, 0], ys, None if lab is None else np.asarray(lab), None, 0,
                        s=6, alpha=0.7)
        ax.set_title(name)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2" if data.shape[1] > 1 else "")
    fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)
