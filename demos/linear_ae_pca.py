"""A linear autoencoder finds the PCA subspace, not the PCA axes.

Figure ``linear_ae_pca.png``: left, the principal angles between the trained linear autoencoder's
decoder subspace and the top-k PCA subspace (all near 0 degrees); right, |cosines| between each
decoder direction and each principal axis (not a diagonal: the weights are a rotated, rescaled
basis of the same subspace, not the eigenvectors).
Lecture idea: linear AE = PCA. Docs: docs/derivations/pca.md.

    python demos/linear_ae_pca.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import plotting
from npae.training.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
epochs = 60 if args.quick else 300
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)

# %% data in 10-D with a clear spectral gap: 3 strong directions, 7 weak ones
D, k, N = 10, 3, 600
Q, _ = np.linalg.qr(rng.standard_normal((D, D)))
X = (rng.standard_normal((N, D)) * np.array([3.0, 2.5, 2.0] + [0.1] * (D - k))) @ Q.T

# %% PCA and a linear autoencoder (no hidden layer, identity everywhere, squared error)
pca = npae.PCA(k).fit(X)
ae = npae.Autoencoder(D, hidden=(), latent_dim=k, activation="identity", code_activation="identity",
                      output="identity", loss="mse", seed=args.seed)
history = ae.fit(X, epochs=epochs, batch_size=32, lr=1e-2, progress=False).history_
print_history(history)
angles = npae.subspace_angles(ae, pca)
W_dec = ae.decoder.dense_layers[0].params["W"]  # (k, D): the decoder's output directions
dirs = W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)
cosines = np.abs(dirs @ pca.components_.T)  # (k, k)

# %% figure
fig = plotting.new_figure((9, 3.6))
ticks = np.arange(1, k + 1)  # angles, directions and axes are counted 1 … k: integer ticks only
ax = fig.add_subplot(1, 2, 1)
ax.bar(ticks, angles)
ax.set_xticks(ticks)
ax.set_xlabel("principal angle")
ax.set_ylabel("degrees")
ax.set_title(f"decoder subspace vs PCA: max {angles.max():.3f}°", fontsize=10)
ax = fig.add_subplot(1, 2, 2)
im = ax.imshow(cosines, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(k), [str(t) for t in ticks])
ax.set_yticks(range(k), [str(t) for t in ticks])
ax.set_xlabel("PCA axis")
ax.set_ylabel("decoder direction")
# two short lines, so the title stays over the heat map and clear of the colour bar
ax.set_title("|cos| between decoder directions\nand PCA axes (not the identity)", fontsize=10)
fig.colorbar(im, ax=ax, label="|cos|")
fig.tight_layout()
path = plotting.save_figure(fig, os.path.join(args.out, "linear_ae_pca.png"))
print(f"PCA explained variance ratio of the top {k}: {pca.explained_variance_ratio_.round(3).tolist()}")
print(f"principal angles, linear AE decoder vs top-{k} PCA (degrees): {np.round(angles, 4).tolist()}")
print(f"|cos| of each decoder direction with its best PCA axis: {np.round(cosines.max(1), 3).tolist()} "
      "(1 would mean the weights are the eigenvectors)")
print(f"W_dec W_dec^T (orthonormal rows would give the identity):\n{np.round(W_dec @ W_dec.T, 2)}")
print(f"wrote {path}")
