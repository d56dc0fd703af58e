"""What a person runs: the ``npae`` command (:mod:`~npae.app.cli`), its run folders
(:mod:`~npae.app.runs`), figures (:mod:`~npae.app.plotting`, public as ``npae.plotting``) and the
benchmark (``python -m npae.app.bench``)."""
