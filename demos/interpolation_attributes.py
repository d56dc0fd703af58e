"""Interpolation and attribute vectors in a VAE's latent space.

Figure ``interpolation_attributes.png``: rows decoded along a linear and a spherical path between
the codes of two held-out digits, and rows adding an "ink" attribute vector (mean code of heavily
inked digits minus that of lightly inked ones, within each class) at scales −3 … 3 (in prior
standard deviations, along the unit direction).
Lecture idea: the latent space is smooth; directions carry meaning. Docs: docs/derivations/latent.md.

    python demos/interpolation_attributes.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.pairs import latent
from npae.training.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--latent-dim", type=int, default=8)
args = parser.parse_args()
epochs = 15 if args.quick else 120
os.makedirs(args.out, exist_ok=True)

# %% a VAE with a few latents
X, y = datasets.load_digits()
X_train, X_test, y_test = X[:1500], X[1500:], y[1500:]
vae = npae.VAE(64, hidden=(128,), latent_dim=args.latent_dim, seed=args.seed)
print_history(vae.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False).history_, max_lines=4)

# %% interpolation between a held-out 0 and a held-out 1 (posterior means)
z0 = vae.encode(X_test[y_test == 0][:1])[0]
z1 = vae.encode(X_test[y_test == 1][:1])[0]
t = np.linspace(0.0, 1.0, 10)
rows = [vae.decode(latent.lerp(z0, z1, t)), vae.decode(latent.slerp(z0, z1, t))]

# %% attribute vector: the "ink" (stroke thickness) direction, measured within each class so that
# it does not point from one digit to another
codes, y_train = vae.encode(X_train), y[:1500]
ink = X_train.sum(axis=1)
v = np.mean([latent.attribute_vector(codes[(y_train == c) & (ink > np.quantile(ink[y_train == c], 0.75))],
                                     codes[(y_train == c) & (ink < np.quantile(ink[y_train == c], 0.25))])
             for c in range(10)], axis=0)
v = v / np.linalg.norm(v)  # a unit direction: s below is measured in prior standard deviations
scales = np.linspace(-3.0, 3.0, 10)
for digit in (3, 7):
    z = vae.encode(X_test[y_test == digit][:1])[0]
    rows.append(vae.decode(np.concatenate([latent.apply_attribute(z[None], v, s) for s in scales])))
strips = np.stack(rows)  # (4, 10, 64)
path = os.path.join(args.out, "interpolation_attributes.png")
plotting.interpolation_strip(strips, row_labels=["lerp 0→1", "slerp 0→1", "3 + s·ink", "7 + s·ink"],
                             title="interpolation and an attribute vector (s from −3 to 3)", path=path)
moved = rows[-1].sum(axis=1)
print(f"ink attribute direction (unit length); the decoded ink of the 7 goes from "
      f"{moved[0]:.1f} to {moved[-1]:.1f} (sum of pixel intensities) as s goes from −3 to 3")
print("on 8x8 digits stroke weight is tangled with shape: moving along the direction also bends the digit")
print(f"wrote {path}")
