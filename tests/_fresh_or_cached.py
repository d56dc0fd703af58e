"""Child program of tests/test_cache_bits.py: trains and evaluates one small model per fused kernel
under the ``fused`` backend and prints ``name sha256`` for each result that a user sees (parameters,
the loss history, an estimate). Run twice with one empty ``NUMBA_CACHE_DIR``: the first process
compiles every kernel, the second loads them from the cache; the lines must be equal.

What reaches which kernel (npae.fast.backends.FusedOps):
  ae-adam / ae-leaky-momentum   dense_act (relu / leaky relu), bce, adam_update (momentum: NumPy)
  vae                           dense_act, reparam_kl forward and backward, bce, adam_update
  vae-iwae                      per step: dense_act, reparam_kl, bce_with_logits_loss, adam_update
  vae-conv                      conv2d_act and conv_transpose2d_act, forward and backward
  estimate                      bernoulli_log_likelihood (the IWAE estimate's hot loop)
"""
import hashlib
import sys

import numpy as np

import npae


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def report(name, model):
    params = [model.params[k] for k in sorted(model.params)]
    history = [np.asarray(v, dtype=np.float64) for _, v in sorted(model.history_.items())]
    print(name, "params", digest(*params))
    print(name, "history", digest(*history))


def main():
    npae.set_backend("fused")
    X = npae.datasets.load_digits()[0][:96]  # (96, 64) in [0, 1]
    fit = dict(epochs=3, batch_size=8, progress=False)

    ae = npae.Autoencoder(64, hidden=(12,), latent_dim=3, seed=1).fit(X, **fit)
    report("ae-adam", ae)
    ae2 = npae.Autoencoder(64, hidden=(12,), latent_dim=3, activation="leaky_relu", seed=2)
    report("ae-leaky-momentum", ae2.fit(X, optimizer="momentum", lr=0.01, **fit))

    vae = npae.VAE(64, hidden=(12,), latent_dim=2, seed=3).fit(X, **fit)
    report("vae", vae)
    iwae = npae.VAE(64, hidden=(12,), latent_dim=2, objective="iwae", k=3, seed=4).fit(X, **fit)
    report("vae-iwae", iwae)
    conv = npae.VAE(64, latent_dim=2, arch="conv", image_shape=(8, 8), seed=5,
                    encoder_layers=[["conv2d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1}],
                                    ["relu"], ["flatten"], ["dense", {"out": 8}], ["relu"]],
                    decoder_layers=[["dense", {"out": 64}], ["relu"], ["reshape", {"shape": [4, 4, 4]}],
                                    ["conv_transpose2d", {"out": 1, "kernel": 4, "stride": 2, "padding": 1}]])
    report("vae-conv", conv.fit(X[:32], epochs=2, batch_size=8, progress=False))

    print("estimate", digest(np.array([vae.log_likelihood_estimate(X[:16], k=20)])))
    print("backend", npae.get_backend(), "numba cache:", sys.argv[1:] or "default")


if __name__ == "__main__":
    main()
