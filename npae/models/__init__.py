"""The using surface: thin classes over the pairs, with scikit-learn's conventions. The base class
(:mod:`~npae.models.model`: building, ``fit``, evaluation, saving, ``load``), the layers, then one
module per model family."""
