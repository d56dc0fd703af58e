"""A grid of fits through joblib's dask backend on a dask.distributed LocalCluster (two workers,
started here) gives the serial run's results bit for bit (docs/outgrowing-a-cpu.md; the demo
demos/sweep_dask.py runs the same recipe with worker processes). Skipped without the extra
``sweeps`` (dask[distributed], joblib)."""
import numpy as np
import pytest

import npae
from npae import datasets


def fit_point(beta, latent_dim, X, seed):
    """One grid point: a small seeded VAE, its weights and its held-out bound."""
    vae = npae.VAE(X.shape[1], hidden=(16,), latent_dim=latent_dim, beta=beta, seed=seed)
    vae.fit(X[:200], epochs=2, batch_size=50, lr=2e-3, progress=False)
    return {name: p.copy() for name, p in vae.params.items()}, vae.neg_elbo(X[200:300], seed=seed)


def on_worker(beta, latent_dim, X, seed):
    """fit_point, and the address of the dask worker that ran it."""
    from dask.distributed import get_worker
    return get_worker().address, fit_point(beta, latent_dim, X, seed)


def test_a_grid_on_a_local_cluster_equals_the_serial_run():
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("dask.distributed")
    X = datasets.load_digits()[0]
    grid = [(beta, z) for beta in (0.5, 2.0) for z in (2, 3)]
    serial = [fit_point(b, z, X, 0) for b, z in grid]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
        with joblib.parallel_backend("dask"):
            ran = joblib.Parallel()(joblib.delayed(on_worker)(b, z, X, 0) for b, z in grid)
    assert {address for address, _ in ran} <= workers  # every fit ran on the cluster's workers
    parallel = [result for _, result in ran]
    assert len(parallel) == len(serial)
    for (p_params, p_bound), (s_params, s_bound) in zip(parallel, serial):
        assert p_bound == s_bound  # bit for bit, not approximately
        assert p_params.keys() == s_params.keys()
        assert all(np.array_equal(p_params[k], s_params[k]) for k in s_params)
    assert len({round(b, 6) for _, b in serial}) == len(grid)  # the grid points differ from each other
