"""AE against PCA on two moons: with a 1-D code, PCA can only project onto a line, a nonlinear
autoencoder can follow the curve.

Figure ``ae_vs_pca_moons.png``: the data, its PCA reconstruction (a straight line) and the
autoencoder's reconstruction (a curve through both moons), with the reconstruction errors.
Lecture idea: the autoencoder as nonlinear PCA. Docs: docs/derivations/pca.md.

    python demos/ae_vs_pca_moons.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.training.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=None)
args = parser.parse_args()
epochs = args.epochs or (60 if args.quick else 300)
os.makedirs(args.out, exist_ok=True)

# %% data: two moons
X, y = datasets.make_moons(400, noise=0.05, seed=args.seed)

# %% PCA with one component: the best line
pca = npae.PCA(1).fit(X)
X_pca = pca.inverse_transform(pca.transform(X))
err_pca = float(np.mean(np.sum((X - X_pca) ** 2, axis=1)))

# %% a nonlinear autoencoder with a 1-D code
ae = npae.Autoencoder(2, hidden=(32, 32), latent_dim=1, activation="elu", output="identity",
                      loss="mse", seed=args.seed)
history = ae.fit(X, epochs=epochs, batch_size=32, lr=1e-2, progress=False).history_
print_history(history)
X_ae = ae.reconstruct(X)
err_ae = float(np.mean(np.sum((X - X_ae) ** 2, axis=1)))

# %% figure
fig = plotting.new_figure((12, 4))
for i, (data, name) in enumerate([(X, "data"), (X_pca, f"PCA, 1 component: error {err_pca:.3f}"),
                                  (X_ae, f"autoencoder, 1-D code: error {err_ae:.3f}")]):
    ax = fig.add_subplot(1, 3, i + 1)
    ax.scatter(X[:, 0], X[:, 1], s=4, c="lightgray")
    ax.scatter(data[:, 0], data[:, 1], s=4, c=y, cmap="coolwarm")
    ax.set_title(name, fontsize=10)
    ax.set_aspect("equal")
path = plotting.save_figure(fig, os.path.join(args.out, "ae_vs_pca_moons.png"))
print(f"reconstruction error per example (sum of squares): PCA {err_pca:.4f}, autoencoder {err_ae:.4f}")
print(f"the autoencoder's error is {err_pca / max(err_ae, 1e-12):.1f}x smaller: "
      "a curve fits the moons, a line cannot")
print(f"wrote {path}")
