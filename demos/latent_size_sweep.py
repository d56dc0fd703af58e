"""The latent-size sweep: VAEs with 2, 5, 10 and 20 latent dimensions on the digits, their samples,
held-out bound and how many latents they actually use.

Figure ``latent_size_sweep.png``: one row of prior samples per latent size, and the held-out
negative ELBO and active units against the latent size.
Lecture idea: the bottleneck and the KL cost of each latent (unused latents collapse to the prior).
Docs: docs/derivations/elbo.md, kl.md.

    python demos/latent_size_sweep.py [--quick] [--out DIR]
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
parser.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10, 20])
args = parser.parse_args()
epochs = 8 if args.quick else 100
os.makedirs(args.out, exist_ok=True)

# %% one VAE per latent size
X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]
rows, bounds, active = [], [], []
for Z in args.sizes:
    vae = npae.VAE(64, hidden=(128,), latent_dim=Z, seed=args.seed)
    print(f"latent_dim {Z}")
    vae.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    print_history(vae.history_, max_lines=2)
    rows.append(vae.sample(12, seed=args.seed))
    bounds.append(vae.neg_elbo(X_test, seed=args.seed))
    active.append(vae.active_units(X_test))
    print(f"latent_dim {Z}: held-out negative ELBO {bounds[-1]:.2f} nats, active units {active[-1]} of {Z}")

# %% figure: samples per size, and the bound
path = os.path.join(args.out, "latent_size_sweep.png")
plotting.image_grid(np.concatenate(rows), n_cols=12, row_labels=[f"Z = {Z}" for Z in args.sizes],
                    title="samples from the prior", path=os.path.join(args.out, "latent_size_samples.png"))
fig = plotting.new_figure((9, 3.5))
ax = fig.add_subplot(1, 2, 1)
ax.plot(args.sizes, bounds, "o-")
ax.set_xlabel("latent size Z")
ax.set_ylabel("held-out −ELBO (nats)")
ax = fig.add_subplot(1, 2, 2)
ax.plot(args.sizes, active, "o-", label="active units")
ax.plot(args.sizes, args.sizes, "k--", label="Z")
ax.set_xlabel("latent size Z")
ax.legend(fontsize=8)
plotting.save_figure(fig, path)
print(f"wrote {os.path.join(args.out, 'latent_size_samples.png')}")
print(f"wrote {path}")
