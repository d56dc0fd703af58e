"""A grid of VAEs (β x latent size) on a Dask cluster through joblib, checked equal to the serial run.

Figure ``sweep_dask.png``: the held-out negative ELBO (β = 1, nats) of every grid point as a heat
map, and the number of active latent units; the same numbers the serial run gives, bit for bit.
Lecture idea: β trades reconstruction for a simpler posterior (a larger β switches latents off);
a grid over it is the everyday hyperparameter search, and each point is an independent fit.
Docs: docs/outgrowing-a-cpu.md (the recipe), docs/derivations/elbo.md ([ELBO-1], β).

Each grid point is one call of ``fit_point`` (a plain function: data in, numbers out, seeded), so
the serial loop, joblib's local processes and joblib's ``dask`` backend on a ``dask.distributed``
cluster run the same code. Here the cluster is a ``LocalCluster`` on this machine; on real
machines point ``Client`` at a scheduler's address instead (docs/outgrowing-a-cpu.md). Without
dask and joblib (``pip install npae[sweeps]``) the demo runs the grid serially and says so.

    python demos/sweep_dask.py [--quick] [--out DIR] [--workers N ...]
"""
# %% settings
import argparse
import hashlib
import os
import time
import warnings

import numpy as np

import npae
from npae import datasets, plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a 2 x 2 grid of short fits")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--workers", type=int, nargs="+", default=None,
                    help="cluster sizes to run the grid on, each compared with the serial run "
                         "(default 1 2; with --quick only 2)")
args, _ = parser.parse_known_args()  # a worker process sees the interpreter's own arguments
workers = args.workers or ([2] if args.quick else [1, 2])
betas = [0.5, 2.0] if args.quick else [0.25, 0.5, 1.0, 2.0, 4.0]
latents = [2, 8] if args.quick else [2, 4, 8, 16]
epochs = 3 if args.quick else 40
os.makedirs(args.out, exist_ok=True)

X, _ = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]


# %% one grid point: a plain function, the unit of work everywhere
def fit_point(beta, latent_dim, X_train, X_test, epochs, seed):
    """Fit one VAE and return its numbers and a digest of its weights (equal digests: equal bits)."""
    vae = npae.VAE(X_train.shape[1], hidden=(64,), latent_dim=latent_dim, beta=beta, seed=seed)
    with warnings.catch_warnings():  # a large β may switch every latent off: the active count says so
        warnings.simplefilter("ignore", npae.models.vae.CollapseWarning)
        vae.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in vae.params.values()))
    return {"beta": beta, "latent_dim": latent_dim, "neg_elbo": vae.neg_elbo(X_test, seed=seed),
            "active": vae.active_units(X_test), "weights": digest.hexdigest()[:16]}


grid = [(b, z) for b in betas for z in latents]


# %% the serial run: the reference
def serial_run():
    start = time.perf_counter()
    serial = [fit_point(b, z, X_train, X_test, epochs, args.seed) for b, z in grid]
    print(f"serial: {len(grid)} fits in {time.perf_counter() - start:.1f} s")
    for r in serial:
        print(f"beta {r['beta']:<4g} | latent {r['latent_dim']:<2d} | held-out -ELBO {r['neg_elbo']:.3f} | "
              f"active {r['active']} | weights {r['weights']}")
    return serial


# %% the same grid through joblib's dask backend on a LocalCluster
def cluster_runs(serial):
    try:
        import joblib
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed or joblib is not installed (pip install npae[sweeps]): the serial run only")
        return
    for n in workers:
        # worker processes, one thread each; the scheduler's web server on any free port (":0")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") \
                as cluster, Client(cluster):
            start = time.perf_counter()
            with joblib.parallel_backend("dask"):
                parallel = joblib.Parallel()(
                    joblib.delayed(fit_point)(b, z, X_train, X_test, epochs, args.seed) for b, z in grid)
            wall = time.perf_counter() - start
        same = parallel == serial
        print(f"dask, {n} worker{'s' if n > 1 else ''}: {len(grid)} fits in {wall:.1f} s (cluster start "
              f"not counted) | equal to the serial run, bit for bit: {same}")
        if not same:
            raise SystemExit(f"the {n}-worker run differs from the serial run")


# %% figure
def figure(serial):
    loss = np.array([[r["neg_elbo"] for r in serial if r["beta"] == b] for b in betas])  # (β, Z)
    active = np.array([[r["active"] for r in serial if r["beta"] == b] for b in betas])
    fig = plotting.new_figure((9, 3.6))
    for k, (values, title, fmt) in enumerate([(loss, "held-out −ELBO (nats, β = 1)", "{:.1f}"),
                                              (active, "active latent units", "{:d}")]):
        ax = fig.add_subplot(1, 2, k + 1)
        im = ax.imshow(values, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(latents)), [str(z) for z in latents])
        ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
        ax.set_xlabel("latent size Z")
        ax.set_ylabel("β")
        ax.set_title(title, fontsize=10)
        for i in range(len(betas)):
            for j in range(len(latents)):
                bright = im.norm(values[i, j]) > 0.6  # dark text on the bright end of viridis
                ax.text(j, i, fmt.format(values[i, j].item()), ha="center", va="center",
                        color="k" if bright else "w", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    path = os.path.join(args.out, "sweep_dask.png")
    plotting.save_figure(fig, path)
    print(f"wrote {path}")


# %% run: only in the process that was started, never in a worker. Dask's worker processes are
# new interpreters that import this file to find fit_point (as multiprocessing's "spawn" does):
# everything above is cheap definitions, the work happens under this guard.
if __name__ == "__main__":
    reference = serial_run()
    cluster_runs(reference)
    figure(reference)
