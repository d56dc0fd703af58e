"""The figures of the regularised autoencoders' lessons, one per idea: what a denoising autoencoder
does to corrupted held-out inputs (:func:`denoising_triplets` for images, :func:`denoising_points`
for point clouds), how sparse a sparse code is (:func:`sparsity_figure`), and how little a
contractive code moves when its input is perturbed (:func:`contraction_figure`). Built on the
general figures of :mod:`npae.app.figures`, with the same rules (no pyplot; ``path=`` writes a PNG);
public as ``npae.plotting``.
"""
import numpy as np

from npae.app.figures import _as_flat_images, _finish, _scatter_points, image_grid, new_figure
from npae.validation import check_array


def denoising_triplets(noisy, denoised, clean, image_shape=None, *, n=10, title=None, path=None):
    """Rows of corrupted inputs, the denoiser's outputs and the clean targets, ``n`` per row block
    (two blocks): what a denoising autoencoder is trained to do, on held-out data."""
    noisy, image_shape = _as_flat_images(noisy, image_shape)
    denoised, _ = _as_flat_images(denoised, image_shape)
    clean, _ = _as_flat_images(clean, image_shape)
    m = min(n, clean.shape[0])
    rows, labels = [], []
    for start in range(0, min(2 * m, clean.shape[0]), m):
        sl = slice(start, start + m)
        if clean[sl].shape[0] < m:
            break
        rows += [noisy[sl], denoised[sl], clean[sl]]
        labels += ["corrupted input", "denoised output", "clean target"]
    return image_grid(np.concatenate(rows), image_shape, n_cols=m, row_labels=labels,
                      title=title or "held-out inputs corrupted as in training, and their reconstructions",
                      path=path)


def denoising_points(noisy, denoised, clean, *, title=None, path=None):
    """For point clouds: the corrupted inputs, the denoiser's outputs and the clean targets as three
    scatter plots on shared axes (first two features)."""
    fig = new_figure((12.0, 4.0))
    for i, (data, name) in enumerate(((noisy, "corrupted input"), (denoised, "denoised output"),
                                      (clean, "clean target"))):
        data = check_array(data, name)
        ax = fig.add_subplot(1, 3, i + 1, sharex=fig.axes[0] if i else None,
                             sharey=fig.axes[0] if i else None)
        ys = data[:, 1] if data.shape[1] > 1 else np.zeros(len(data))
        _scatter_points(ax, data[:, 0], ys, None, None, 0)
        ax.set_title(name)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2" if data.shape[1] > 1 else "")
    fig.suptitle(title or "held-out data corrupted as in training, and their reconstructions")
    fig.tight_layout()
    return _finish(fig, path)


def sparsity_figure(H, *, rho=None, threshold=0.05, title=None, path=None):
    """A sparse code ``H`` (N, units): the histogram of every activation (with the near-zero band
    ``|h| < threshold`` shaded and its share written) and each unit's mean activation, against the
    target ``rho`` when the penalty has one."""
    H = check_array(H, "H")
    near = float(np.mean(np.abs(H) < threshold))
    fig = new_figure((11.0, 3.8))
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(H.ravel(), bins=60, color="C0")
    ax.axvspan(-threshold, threshold, color="C1", alpha=0.25,
               label=f"|h| < {threshold:g}: {100 * near:.1f}% of activations")
    ax.set_yscale("log")
    ax.set_xlabel("code activation h")
    ax.set_ylabel("count (held-out examples × units), log scale")
    ax.set_title("every activation on held-out data", fontsize=10)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 2, 2)
    means = H.mean(axis=0)
    ax.bar(np.arange(1, H.shape[1] + 1), means, color="C0", label="mean activation of the unit")
    if rho is not None:
        ax.axhline(rho, color="C3", linestyle="--", label=f"target ρ = {rho:g}")
    ax.set_xlabel("code unit")
    ax.set_ylabel("mean activation over held-out data")
    ax.set_title("per-unit mean activation" + (" against ρ" if rho is not None else ""), fontsize=10)
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def contraction_figure(Z, Z_perturbed, *, sigma, ratio=None, ratio_sigma=None, background=None,
                       title=None, path=None):
    """How far codes move when inputs are perturbed a little.

    ``Z`` (n, d): codes of n held-out inputs; ``Z_perturbed`` (n, m, d): codes of m copies of each
    input with Gaussian noise of standard deviation ``sigma`` per feature added; ``background``
    (N, d): codes of the rest of the held-out data, drawn grey. Left: the codes in the code plane
    (the first two axes; PCA above 2-D), each input one colour with its perturbed copies as dots.
    Right: the same clouds moved to a common origin, ``z(x + δ) − z(x)``, at their own scale.
    ``ratio``: the mean of ``‖z(x + δ) − z(x)‖ / ‖δ‖`` (measured with noise ``ratio_sigma``, by
    default ``sigma``), written in the title.
    """
    Z = check_array(Z, "Z")
    Zp = np.asarray(Z_perturbed, dtype=np.float64)
    n, m, d = Zp.shape
    if Z.shape != (n, d):
        raise ValueError(f"Z must be (n, d) = ({n}, {d}) to match Z_perturbed {Zp.shape}, got {Z.shape}")
    project = (lambda A: A[:, :2]) if d <= 2 else None
    if project is None:
        from npae.models.pca import PCA
        pca = PCA(2).fit(np.concatenate([Z, Zp.reshape(-1, d)] +
                                        ([background] if background is not None else [])))
        project = pca.transform
    if d == 1:
        project = (lambda A: np.column_stack([A[:, 0], np.zeros(len(A))]))
    names = ("z1", "z2") if d == 2 else (("z1", "") if d == 1 else ("PC1 of the codes", "PC2"))
    fig = new_figure((10.5, 4.3))
    ax = fig.add_subplot(1, 2, 1)
    if background is not None:
        B = project(np.asarray(background, dtype=np.float64))
        ax.scatter(B[:, 0], B[:, 1], s=3, color="0.8", linewidths=0, label="other held-out codes")
    P, C = project(Zp.reshape(-1, d)).reshape(n, m, 2), project(Z)
    for i in range(n):
        ax.scatter(P[i, :, 0], P[i, :, 1], s=4, alpha=0.5, color=f"C{i % 10}", linewidths=0)
        ax.scatter(C[i, 0], C[i, 1], s=40, color=f"C{i % 10}", edgecolors="black", linewidths=0.8)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"codes of {n} held-out inputs (ringed) and of {m} noisy copies each\n"
                 f"(δ ~ N(0, σ² I), σ = {sigma:.3g} per feature)", fontsize=9)
    if background is not None:
        ax.legend(fontsize=7, loc="best")
    ax = fig.add_subplot(1, 2, 2)
    D = P - C[:, None, :]
    for i in range(n):
        ax.scatter(D[i, :, 0], D[i, :, 1], s=4, alpha=0.5, color=f"C{i % 10}", linewidths=0)
    ax.axhline(0, color="0.6", linewidth=0.5)
    ax.axvline(0, color="0.6", linewidth=0.5)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"Δ{names[0]}" if names[0] else "")
    ax.set_ylabel(f"Δ{names[1]}" if names[1] else "")
    ax.set_title(f"code displacement z(x + δ) − z(x), δ ~ N(0, σ² I), σ = {sigma:.3g}\n"
                 f"(each dot one noisy copy, in code units)", fontsize=9)
    default = "how far the code moves when the input is perturbed"
    if ratio is not None:
        at = sigma if ratio_sigma is None else ratio_sigma
        default += f": mean ‖Δz‖ / ‖δ‖ = {ratio:.3g} (σ = {at:.3g})"
        if not np.isclose(at, sigma):  # the clouds are drawn with larger noise, to be seen
            default += f"\n(the clouds below: σ = {sigma:.3g}, {sigma / at:.3g}× larger, to be visible)"
    fig.suptitle(title or default, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)
