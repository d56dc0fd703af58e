"""Sparse codes: with its defaults (KL(ρ || ρ̂) penalty, ρ = 0.05, λ = 3, 32 sigmoid code units) a
sparse autoencoder drives every code unit's mean activation to within a factor 1.5 of ρ, so each
digit is written with a few active units; an L1 penalty on a ReLU code gives exact zeros instead.

Figure ``sparse_codes.png``: histograms of the held-out code activations of a plain autoencoder,
the KL-sparse one and an L1-sparse one (ReLU code) of the same shape; each unit's mean activation
(sorted) against ρ and the 1.5× band; how many of the 32 units each held-out digit uses.
Lecture idea: sparse autoencoders (a sparsity penalty Ω(h) added to the reconstruction). Docs:
docs/derivations/sparse.md, docs/autoencoders.md.

    python demos/sparse_codes.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.training.report import print_history
from npae.models.variants import RHO_FACTOR, sparsity_measures

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--l1-weight", type=float, default=0.1, help="λ of the L1 model (ReLU code)")
args = parser.parse_args()
epochs = 30 if args.quick else 100
fit = dict(epochs=epochs, lr=2e-3, batch_size=64, progress=False)  # the CLI's training
os.makedirs(args.out, exist_ok=True)

# %% data and models: 64 pixels -> 64 ReLU -> 32 code units -> 64 ReLU -> 64 pixels
X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]
models = {
    "plain (sigmoid code)": npae.Autoencoder(hidden=(64,), latent_dim=32, code_activation="sigmoid",
                                             seed=args.seed),
    "KL, defaults": npae.SparseAutoencoder(seed=args.seed),
    f"L1 λ={args.l1_weight:g}, ReLU code": npae.SparseAutoencoder(
        penalty="l1", code_activation="relu", sparsity_weight=args.l1_weight, seed=args.seed),
}
rho = models["KL, defaults"].rho
for name, model in models.items():
    print(name)
    print_history(model.fit(X_train, **fit).history_, max_lines=3)

# %% the lesson's measures on held-out digits
measures = {name: sparsity_measures(m.encode(X_test), rho=rho) for name, m in models.items()}
for name, m in measures.items():
    lo, hi = m["mean_to_rho"]
    err = float(np.mean(models[name].reconstruction_error(X_test)))
    print(f"{name}: unit means {lo:.2f}x .. {hi:.2f}x rho ({100 * m['units_near_rho']:.0f}% of units within "
          f"{RHO_FACTOR:g}x), {100 * m['near_zero_fraction']:.0f}% of activations < {m['threshold']:g}, "
          f"{100 * m['exact_zero_fraction']:.0f}% exactly 0, {m['silent_units']} silent units, "
          f"held-out reconstruction {err:.2f} nats")

# %% figure
fig = plotting.new_figure((13, 3.8))
ax = fig.add_subplot(1, 3, 1)
top = max(1.0, max(float(m.encode(X_test).max()) for m in models.values()))
bins = np.linspace(0, min(top, 3.0), 41)
for i, (name, model) in enumerate(models.items()):
    h = np.clip(model.encode(X_test).ravel(), 0, bins[-1])
    ax.hist(h, bins=bins, histtype="step", lw=1.5, color=f"C{i}", label=name)
ax.set_yscale("log")
ax.set_xlabel("code activation (held-out digits)")
ax.set_title("activations: most near 0 once sparse")
ax.legend(fontsize=7)
ax = fig.add_subplot(1, 3, 2)
floor = 1e-3  # silent units (mean 0) are drawn on the floor of the log axis
for i, (name, m) in enumerate(measures.items()):
    ax.plot(np.maximum(np.sort(m["mean_activation_per_unit"]), floor), "o-", ms=3, color=f"C{i}", label=name)
ax.axhline(rho, color="k", ls="--", lw=1, label=f"ρ = {rho:g}")
ax.axhspan(rho / RHO_FACTOR, rho * RHO_FACTOR, color="k", alpha=0.1,
           label=f"ρ/{RHO_FACTOR:g} … {RHO_FACTOR:g}ρ")
ax.set_yscale("log")
ax.set_ylim(floor * 0.7, 1.5)
ax.set_xlabel("unit (sorted by mean; silent units at the floor)")
ax.set_title("mean activation per unit")
ax.legend(fontsize=7, loc="lower right")
ax = fig.add_subplot(1, 3, 3)
for i, (name, model) in enumerate(models.items()):
    active = np.sum(model.encode(X_test) >= measures[name]["threshold"], axis=1)  # (N,) units in use
    ax.hist(active, bins=np.arange(0, 34) - 0.5, histtype="step", lw=1.5, color=f"C{i}", label=name)
ax.set_xlabel(f"units with activation ≥ {measures[name]['threshold']:g}, per digit")
ax.set_title("how many of the 32 units a digit uses")
path = plotting.save_figure(fig, os.path.join(args.out, "sparse_codes.png"))
print(f"wrote {path}")
