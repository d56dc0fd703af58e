"""What a person runs: the ``npae`` command (:mod:`~npae.app.cli`, with :mod:`~npae.app.train`,
:mod:`~npae.app.evaluate`, :mod:`~npae.app.lessons`, :mod:`~npae.app.runspec`), its run folders
(:mod:`~npae.app.runs`), figures (:mod:`~npae.app.figures` and :mod:`~npae.app.lesson_figures`,
public together through :mod:`~npae.app.plotting` as ``npae.plotting``) and the benchmark
(``python -m npae.app.bench``)."""
