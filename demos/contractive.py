"""Contractive against plain: the penalty λ ||∂z/∂x||²_F makes the code insensitive to small input
perturbations.

Figure ``contractive.png``: for held-out digits, histograms of the code's sensitivity
``||z(x + δ) − z(x)|| / ||δ||`` to small random perturbations δ, for a plain and a contractive
autoencoder of the same size, and the encoder's Jacobian norm ||J||_F per example.
Lecture idea: contractive autoencoders. Docs: docs/derivations/contractive.md.

    python demos/contractive.py [--quick] [--out DIR] [--weight 1.0]
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
parser.add_argument("--weight", type=float, default=1.0, help="contractive weight λ")
parser.add_argument("--delta", type=float, default=0.01, help="size of the input perturbation")
args = parser.parse_args()
epochs = 15 if args.quick else 60
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)

# %% the same one-layer encoder (64 -> 16 sigmoid units), λ = 0 and λ = weight
X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]
models = {}
for name, lam in (("plain (λ = 0)", 0.0), (f"contractive (λ = {args.weight:g})", args.weight)):
    model = npae.ContractiveAutoencoder(64, (), 16, contractive_weight=lam, seed=args.seed)
    print(name)
    print_history(model.fit(X_train, epochs=epochs, lr=1e-2, progress=False).history_, max_lines=3)
    models[name] = model

# %% sensitivity to random perturbations of norm delta, and the Jacobian norm (closed form)
delta = rng.standard_normal(X_test.shape)
delta *= args.delta / np.linalg.norm(delta, axis=1, keepdims=True)
X_moved = np.clip(X_test + delta, 0.0, 1.0)  # the models read pixels in [0, 1]
moved = np.linalg.norm(X_moved - X_test, axis=1)  # (N,) the perturbation actually applied


def jacobian_norms(model, X):
    W, b = (model.encoder.dense_layers[0].params[k] for k in ("W", "b"))
    h = 1.0 / (1.0 + np.exp(-(X @ W + b)))  # (N, Z) sigmoid codes
    return np.sqrt(((h * (1 - h)) ** 2) @ np.sum(W * W, axis=0))  # ||J||_F = sqrt(Σ_j f'(a_j)² ||W_:j||²)


fig = plotting.new_figure((10, 3.6))
ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
for name, model in models.items():
    sens = np.linalg.norm(model.encode(X_moved) - model.encode(X_test), axis=1) / moved
    jn = jacobian_norms(model, X_test)
    err = float(np.mean(model.reconstruction_error(X_test)))
    ax1.hist(sens, bins=30, alpha=0.6, label=name)
    ax2.hist(jn, bins=30, alpha=0.6, label=name)
    print(f"{name}: mean sensitivity {sens.mean():.3f}, mean ||J||_F {jn.mean():.3f}, "
          f"held-out reconstruction {err:.2f} nats")
ax1.set_title("||z(x+δ) − z(x)|| / ||δ||")
ax2.set_title("encoder Jacobian ||∂z/∂x||_F")
ax1.legend(fontsize=8)
path = plotting.save_figure(fig, os.path.join(args.out, "contractive.png"))
print("the contractive code moves less when the input moves: the penalty flattens the encoder")
print(f"wrote {path}")
