"""The VAE on real MNIST, when the IDX files are on this machine (offline by default).

Trains the lectures' 784-400-20 VAE (ReLU, Adam 1e-3, batch 128) on t10k[:8000] and reports the
held-out negative ELBO and IWAE bounds on t10k[8000:]; also trains a 2-D model for the pictures.
Figures: ``mnist_samples.png`` (prior samples of the 20-D model), ``mnist_reconstructions.png``,
``mnist_manifold_grid.png`` and ``mnist_latent_scatter.png`` (the 2-D model).
Data: ``--data-dir``, else $NPAE_DATA, else ~/.cache/npae (``--download`` fetches the official files
there, checksummed). Without MNIST the demo says so and exits 0.
Lecture idea: the VAE at the scale of the paper. Docs: docs/datasets.md, docs/derivations/elbo.md.

    python demos/mnist_vae.py [--quick] [--out DIR] [--data-dir DIR] [--download]
"""
# %% settings
import argparse
import os
import sys

import numpy as np

import npae
from npae import datasets, plotting
from npae.training.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds: 2,000 images, 1 epoch, 2-D only")
parser.add_argument("--out", default="demo_out", help="folder for the PNGs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None)
parser.add_argument("--download", action="store_true", help="download MNIST into the cache if missing")
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

# %% data: the official test file, split 8,000 / 2,000
try:
    X, y = datasets.load_mnist("test", data_dir=args.data_dir, download=args.download)
except FileNotFoundError as exc:
    print(f"MNIST not available, nothing to show: {exc}")
    sys.exit(0)
X_train, X_test, y_test = X[:8000], X[8000:], y[8000:]
if args.quick:
    X_train, X_test, y_test = X_train[:2000], X_test[:500], y_test[:500]
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% the benchmark recipe: 784-400-20
if not args.quick:
    vae = npae.VAE(784, hidden=(400,), latent_dim=20, seed=args.seed)
    print_history(vae.fit(X_train, epochs=args.epochs, batch_size=128, lr=1e-3, progress=False).history_)
    print(f"784-400-20, {args.epochs} epochs: held-out negative ELBO {vae.neg_elbo(X_test, seed=0):.2f}, "
          f"IWAE-50 {-vae.log_likelihood_estimate(X_test, k=50, seed=0):.2f} nats per example "
          f"(grey levels, not binarized: see docs/datasets.md#binarization)")
    plotting.image_grid(vae.sample(100, seed=args.seed), n_cols=10, title="samples, 20-D VAE",
                        path=out("mnist_samples.png"))
    print(f"wrote {out('mnist_samples.png')}")

# %% a 2-D model for the pictures
vae2 = npae.VAE(784, hidden=(256,) if args.quick else (400,), latent_dim=2, seed=args.seed)
print_history(vae2.fit(X_train, epochs=1 if args.quick else args.epochs, batch_size=128, lr=1e-3,
                       progress=False).history_)
recon = vae2.reconstruct(X_test[:20])
plotting.image_grid(np.concatenate([X_test[:10], recon[:10], X_test[10:20], recon[10:20]]), n_cols=10,
                    row_labels=["data", "2-D VAE"] * 2, path=out("mnist_reconstructions.png"))
plotting.manifold_grid(vae2, 20, path=out("mnist_manifold_grid.png"))
plotting.latent_scatter(vae2.encode(X_test), y_test, title="held-out MNIST, 2-D posterior means",
                        path=out("mnist_latent_scatter.png"))
print(f"2-D model: held-out negative ELBO {vae2.neg_elbo(X_test, seed=0):.2f} nats per example")
for name in ("mnist_reconstructions", "mnist_manifold_grid", "mnist_latent_scatter"):
    print(f"wrote {out(name + '.png')}")
