"""Denoising: trained to map corrupted digits back to clean ones, a denoising autoencoder with its
defaults (32-unit code, Gaussian corruption σ = 0.3) cleans held-out corrupted digits far better
than a plain autoencoder of the same shape, and pays a little on clean inputs.

Figure ``denoising.png``: rows of held-out clean digits, their corrupted versions (the training
corruption, drawn from the evaluation stream), the plain autoencoder's reconstructions and the
denoising autoencoder's; the title gives both models' error against the clean digits.
Lecture idea: denoising autoencoders, min L(x, Dec(Enc(x + noise))). Docs:
docs/derivations/denoise.md, docs/autoencoders.md.

    python demos/denoising.py [--quick] [--out DIR] [--noise gaussian|masking|salt_pepper]
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
parser.add_argument("--noise", default="gaussian", choices=["gaussian", "masking", "salt_pepper"])
parser.add_argument("--noise-level", type=float, default=0.3)
args = parser.parse_args()
epochs = 30 if args.quick else 100
fit = dict(epochs=epochs, lr=2e-3, batch_size=64, progress=False)  # the CLI's training
os.makedirs(args.out, exist_ok=True)

# %% data: bundled digits, 1,500 to train, the rest held out
X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]

# %% the same architecture (64 -> 64 ReLU -> 32 -> 64 ReLU -> 64), with and without corruption
dae = npae.DenoisingAutoencoder(noise=args.noise, noise_level=args.noise_level, seed=args.seed)
plain = npae.Autoencoder(hidden=dae.hidden, latent_dim=dae.latent_dim, seed=args.seed)
for name, model in (("plain autoencoder", plain),
                    (f"denoising autoencoder ({args.noise} {args.noise_level:g})", dae)):
    print(name)
    print_history(model.fit(X_train, **fit).history_, max_lines=3)

# %% the lesson's measure: error against the CLEAN held-out digits, from corrupted inputs
# (the same seed gives both models the same corrupted digits)
errors = {"plain AE": plain.denoising_error(X_test, seed=args.seed, noise=dae.noise,
                                            noise_level=dae.noise_level),
          "denoising AE": dae.denoising_error(X_test, seed=args.seed)}
for name, e in errors.items():
    print(f"{name}: {e['error_from_corrupted_input']:.2f} nats per digit from corrupted inputs, "
          f"{e['error_from_clean_input']:.2f} from clean ones")
gain = 1 - (errors["denoising AE"]["error_from_corrupted_input"]
            / errors["plain AE"]["error_from_corrupted_input"])
print(f"the denoising autoencoder's error on corrupted digits is {100 * gain:.0f}% lower")

# %% figure
n = 12
noisy = dae.corrupt(X_test, seed=args.seed)[:n]  # the draw denoising_error used
rows = np.concatenate([X_test[:n], np.clip(noisy, 0.0, 1.0),  # corrupted pixels shown clipped to [0, 1]
                       plain.reconstruct(noisy), dae.reconstruct(noisy)])
title = (f"held-out digits, {args.noise} corruption {args.noise_level:g}\nerror against the clean "
         f"digits (nats): plain {errors['plain AE']['error_from_corrupted_input']:.1f}, "
         f"denoising {errors['denoising AE']['error_from_corrupted_input']:.1f}")
plotting.image_grid(rows, n_cols=n, title=title, path=os.path.join(args.out, "denoising.png"),
                    row_labels=["clean", "corrupted", "plain AE", "denoising AE"])
print(f"wrote {os.path.join(args.out, 'denoising.png')}")
