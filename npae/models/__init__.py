"""The using surface: thin classes over the pairs, with scikit-learn's conventions. The base class
(:mod:`~npae.models.model`: building, ``fit``, evaluation, saving; :mod:`~npae.models.files`: ``load``;
:mod:`~npae.models.sizing`: a file's arrays from its config), the layers, then one
module per model family."""
