"""The lecture's math: pure forward/backward pairs and update rules, nothing else.

Each ``*_forward(...)`` returns ``(out, cache)`` and its ``*_backward(dout, cache)`` the gradients of
its inputs; no state, no random numbers (noise such as ``eps`` is an argument), fresh arrays out.
Every line that implements an equation ends with its tag (``# [KL-2]``), and the tag's derivation
is in ``docs/derivations/``:

* :mod:`~npae.pairs.functional`: dense layer, activations, losses ([DENSE-*], [ACT-*], [LOSS-*]);
* :mod:`~npae.pairs.latent`: the sampler, the Gaussian KL, the logvar clamp ([REPARAM-*], [KL-*]);
* :mod:`~npae.pairs.bounds`: log densities, a Gaussian decoder's variance, IWAE and k-sample bounds;
* :mod:`~npae.pairs.flows`: planar flows, MADE, IAF;
* :mod:`~npae.pairs.conv`: convolution and its transpose;
* :mod:`~npae.pairs.penalties`: sparsity, contractive and denoising pieces;
* :mod:`~npae.pairs.m2`: the semi-supervised M2 bounds;
* :mod:`~npae.pairs.updates`: the optimizers' update rules.
"""
