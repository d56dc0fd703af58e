"""Figures for the lectures, public as ``npae.plotting``: this module is the face, the figures live in
two modules by job.

* :mod:`npae.app.figures`, the general figures: :func:`image_grid`, :func:`interpolation_strip`,
  :func:`bernoulli_draws`, :func:`latent_scatter` (PCA / t-SNE above 2-D, :func:`project_2d`),
  :func:`manifold_grid`, :func:`latent_traversal`, :func:`class_grid`, :func:`loss_curves`,
  :func:`scatter_pair`; and what every figure shares (:func:`new_figure`, :func:`save_figure`,
  :class:`NpaeFigure`, :data:`DPI`).
* :mod:`npae.app.lesson_figures`, one figure per regularised autoencoder: :func:`denoising_triplets`,
  :func:`denoising_points`, :func:`sparsity_figure`, :func:`contraction_figure`.

Safe without a display: nothing imports ``pyplot`` or changes matplotlib's global backend. Every
function returns the figure and, given ``path=``, also writes a PNG there (atomically); in Jupyter a
returned figure displays itself as the last line of a cell.
"""
from npae.app.figures import (DPI, TSNE_MAX_POINTS, NpaeFigure, bernoulli_draws, class_grid, image_grid,
                              infer_image_shape, interpolation_strip, latent_scatter, latent_traversal,
                              loss_curves, manifold_grid, new_figure, project_2d, save_figure, scatter_pair,
                              tsne_available)
from npae.app.lesson_figures import contraction_figure, denoising_points, denoising_triplets, sparsity_figure

__all__ = [
    "DPI", "TSNE_MAX_POINTS", "NpaeFigure", "new_figure", "save_figure", "infer_image_shape",
    "image_grid", "interpolation_strip", "bernoulli_draws", "tsne_available", "project_2d",
    "latent_scatter", "manifold_grid", "latent_traversal", "class_grid", "loss_curves", "scatter_pair",
    "denoising_triplets", "denoising_points", "sparsity_figure", "contraction_figure",
]
