"""Denoising: trained to map corrupted digits back to clean ones, a denoising autoencoder cleans
held-out noisy digits better than a plain autoencoder of the same size.

Figure ``denoising.png``: rows of held-out clean digits, their noisy versions, the plain
autoencoder's reconstructions and the denoising autoencoder's.
Lecture idea: denoising autoencoders. Docs: docs/derivations/denoise.md.

    python demos/denoising.py [--quick] [--out DIR] [--noise gaussian|masking|salt_pepper]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.report import print_history
from npae.penalties import corrupt

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--noise", default="masking", choices=["gaussian", "masking", "salt_pepper"])
parser.add_argument("--noise-level", type=float, default=0.4)
args = parser.parse_args()
epochs = 15 if args.quick else 80
os.makedirs(args.out, exist_ok=True)

# %% data: bundled digits, 1,500 to train, the rest held out and corrupted once
X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]
rng = np.random.default_rng(args.seed)
X_noisy = np.clip(corrupt(X_test, args.noise, args.noise_level, rng), 0.0, 1.0)

# %% the same architecture, with and without corruption during training
kw = dict(hidden=(128,), latent_dim=32, seed=args.seed)
plain = npae.Autoencoder(64, **kw)
print("plain autoencoder")
print_history(plain.fit(X_train, epochs=epochs, lr=2e-3, progress=False).history_, max_lines=3)
dae = npae.DenoisingAutoencoder(64, noise=args.noise, noise_level=args.noise_level, **kw)
print("denoising autoencoder")
print_history(dae.fit(X_train, epochs=epochs, lr=2e-3, progress=False).history_, max_lines=3)

# %% clean-target error on the noisy held-out digits
def error(model):
    out = model.decode(model.encode(X_noisy))
    return float(np.mean(np.sum((out - X_test) ** 2, axis=1))), out

err_plain, out_plain = error(plain)
err_dae, out_dae = error(dae)
n = 12
fig = plotting.image_grid(np.concatenate([X_test[:n], X_noisy[:n], out_plain[:n], out_dae[:n]]), n_cols=n,
                          row_labels=["clean", f"{args.noise} {args.noise_level}", "plain AE",
                                      "denoising AE"],
                          title="held-out digits: denoising", path=os.path.join(args.out, "denoising.png"))
print(f"squared error to the CLEAN held-out digits, from noisy inputs: plain {err_plain:.3f}, "
      f"denoising {err_dae:.3f} (per example, summed over 64 pixels)")
print(f"wrote {os.path.join(args.out, 'denoising.png')}")
