"""The conditional VAE: the label joins the encoder input and the code, so the code only has to hold
the style; the same z drawn with each label gives one digit per class in the same style.

Figure ``conditional_vae.png``: one row per class, one column per code z drawn from the prior (the
same z down each column).
Lecture idea: conditional generation. Docs: docs/derivations/elbo.md.

    python demos/conditional_vae.py [--quick] [--out DIR]
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
parser.add_argument("--latent-dim", type=int, default=2)
args = parser.parse_args()
epochs = 20 if args.quick else 150
os.makedirs(args.out, exist_ok=True)

# %% train p(x | z, y) and q(z | x, y)
X, y = datasets.load_digits()
X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
cvae = npae.ConditionalVAE(64, 10, hidden=(128,), latent_dim=args.latent_dim, seed=args.seed)
print_history(cvae.fit(X_train, y_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False).history_)

# %% a grid per class: the same 10 codes z, decoded with each label
n = 10
Z = np.random.default_rng(args.seed).standard_normal((n, args.latent_dim))
images = np.concatenate([cvae.decode(Z, np.full(n, c)) for c in range(10)])
path = os.path.join(args.out, "conditional_vae.png")
plotting.image_grid(images, n_cols=n, row_labels=[str(c) for c in range(10)],
                    title="rows: label; columns: the same z (style)", path=path)
print(f"held-out negative ELBO given the label {cvae.neg_elbo(X_test, y_test, seed=args.seed):.2f} "
      f"nats per example")
print("each row is one class; along a column the code z, hence the style (slant, width), is shared")
print(f"wrote {path}")
