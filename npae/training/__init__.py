"""Training: the minibatch loop with checkpoints, exact resume and divergence checks
(:mod:`~npae.training.loop`), the optimizers (:mod:`~npae.training.optim`) and the per-epoch log
line (:mod:`~npae.training.report`)."""
