"""Sparse codes: the KL(ρ || ρ̂) penalty drives every code unit's mean activation to ρ, so most
activations sit near 0 and a few fire.

Figure ``sparse_codes.png``: histograms of the code activations of a plain autoencoder and of a
sparse one (same size, sigmoid code), and each unit's mean activation against ρ.
Lecture idea: sparse autoencoders. Docs: docs/derivations/sparse.md.

    python demos/sparse_codes.py [--quick] [--out DIR] [--rho 0.1]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--rho", type=float, default=0.1)
parser.add_argument("--sparsity-weight", type=float, default=30.0)
args = parser.parse_args()
epochs = 15 if args.quick else 60
os.makedirs(args.out, exist_ok=True)

# %% data and models: 64 pixels -> 32 sigmoid code units -> 64 pixels
X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]
plain = npae.Autoencoder(64, hidden=(), latent_dim=32, code_activation="sigmoid", seed=args.seed)
sparse = npae.SparseAutoencoder(64, hidden=(), latent_dim=32, penalty="kl", rho=args.rho,
                                sparsity_weight=args.sparsity_weight, seed=args.seed)
print("plain autoencoder")
print_history(plain.fit(X_train, epochs=epochs, batch_size=128, lr=1e-2, progress=False).history_, max_lines=3)
print(f"sparse autoencoder (KL penalty, rho {args.rho}, weight {args.sparsity_weight})")
print_history(sparse.fit(X_train, epochs=epochs, batch_size=128, lr=1e-2, progress=False).history_, max_lines=3)

# %% activations on held-out digits
codes = {"plain": plain.encode(X_test), "sparse (KL)": sparse.encode(X_test)}
fig = plotting.new_figure((12, 3.6))
for i, (name, h) in enumerate(codes.items()):
    ax = fig.add_subplot(1, 3, i + 1)
    ax.hist(h.ravel(), bins=40, range=(0, 1), color="C0" if i == 0 else "C1")
    ax.set_title(f"{name}: code activations")
    ax.set_xlabel("activation")
ax = fig.add_subplot(1, 3, 3)
for i, (name, h) in enumerate(codes.items()):
    ax.plot(np.sort(h.mean(axis=0)), "o-", ms=3, label=name)
ax.axhline(args.rho, color="k", ls="--", label="rho")
ax.set_title("mean activation per unit (sorted)")
ax.set_xlabel("unit")
ax.legend(fontsize=8)
path = plotting.save_figure(fig, os.path.join(args.out, "sparse_codes.png"))
for name, h in codes.items():
    means = h.mean(axis=0)
    print(f"{name}: unit means in [{means.min():.3f}, {means.max():.3f}], max |mean - rho| "
          f"{np.abs(means - args.rho).max():.3f}, share of activations < 0.05: {np.mean(h < 0.05):.2f}")
print(f"wrote {path}")
