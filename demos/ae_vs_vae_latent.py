"""The problem with autoencoders: decoding an arbitrary code of an AE gives garbage, of a VAE a digit.

The same 64-128-2 network is trained twice on the bundled digits, as an autoencoder and as a VAE.
For each, a regular 20 x 20 grid of codes spanning the training codes' range (min ... max on each
axis, not their quantiles, so that empty regions are decoded too) is decoded and shown to a
classifier trained on real digits. The number for each model: the share of grid decodings the
classifier recognises confidently (max softmax > 0.9). With a 2-D code the two numbers are close
(the training codes cover most of the plane, and the AE's decoder interpolates between them); the
same comparison with a 20-D code, decoding points drawn uniformly in the box the codes span, is
where the AE's gaps show.

Figure ``ae_vs_vae_latent.png``: top rows, for each model, the training codes coloured by class with
the grid drawn over them (a black dot where the decoding is recognised confidently, a red cross
where it is not) and the decoded grid (same layout: z1 grows to the right, z2 upwards); bottom row,
decodings of random codes in the 20-D box, AE and VAE.
Lecture idea: "the problem with autoencoders" (lectures 000 and 001): an AE's code space has gaps
and no prior to sample from; the VAE's KL term fills the space around the prior.
Docs: docs/derivations/elbo.md, docs/derivations/latent.md, docs/semisupervised.md.

    python demos/ae_vs_vae_latent.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np
from matplotlib import colormaps

import npae
from npae import datasets, plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--grid", type=int, default=20, help="grid points per axis")
parser.add_argument("--confident", type=float, default=0.9, help="max softmax that counts as recognised")
parser.add_argument("--big-latent", type=int, default=20, help="latent size of the second comparison")
args = parser.parse_args()
epochs, judge_epochs = (15, 15) if args.quick else (150, 60)
os.makedirs(args.out, exist_ok=True)

# %% data and a judge: an MLP 64-128-10 trained on real digits
X, y = datasets.load_digits()
X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
judge = npae.Classifier(npae.Sequential([npae.Dense(64, 128, rng=args.seed), npae.ReLU()]), 10,
                        freeze_encoder=False, seed=args.seed)
judge.fit(X_train, y_train, epochs=judge_epochs, batch_size=32, lr=1e-3, progress=False)
print(f"judge: an MLP 64-128-10 on real digits, held-out accuracy {judge.score(X_test, y_test):.3f}")

# %% the same network trained as an autoencoder and as a VAE
models = {"autoencoder": npae.Autoencoder(64, hidden=(128,), latent_dim=2, seed=args.seed),
          "VAE": npae.VAE(64, hidden=(128,), latent_dim=2, seed=args.seed)}
for name, model in models.items():
    model.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    h = model.history_
    print(f"{name}: epoch {len(h['loss'])} | " + " | ".join(f"{k} {v[-1]:.2f}" for k, v in h.items()))


# %% decode a regular grid over each code space and ask the judge
def regular_grid(codes, n):
    """(n*n, 2) codes on a regular grid from min to max of each axis; row 0 at the top (z2 max)."""
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    z1, z2 = np.linspace(lo[0], hi[0], n), np.linspace(hi[1], lo[1], n)
    return np.stack(np.meshgrid(z1, z2), axis=-1).reshape(-1, 2)


n = args.grid
results = {}
for name, model in models.items():
    codes = model.encode(X_train)  # posterior means for the VAE
    grid = regular_grid(codes, n)
    images = model.decode(grid)  # (n*n, 64)
    confidence = judge.predict_proba(images).max(axis=1)
    results[name] = dict(codes=codes, grid=grid, images=images, confidence=confidence,
                         share=float(np.mean(confidence > args.confident)))
    print(f"{name}: codes span z1 {codes[:, 0].min():.3g} … {codes[:, 0].max():.3g}, "
          f"z2 {codes[:, 1].min():.3g} … {codes[:, 1].max():.3g}; {100 * results[name]['share']:.1f}% of "
          f"the {n}x{n} grid decodings recognised with max softmax > {args.confident} "
          f"(mean max softmax {confidence.mean():.2f})")

real = judge.predict_proba(X_test).max(axis=1)
print(f"for comparison, real held-out digits: {100 * np.mean(real > args.confident):.1f}% recognised with "
      f"max softmax > {args.confident}")

# %% a larger code: random points in the box the codes span
# With a 2-D code the plane is small enough for the training codes to cover most of it. With 20
# latents the codes fill a thin part of their bounding box, and a point drawn uniformly in that box
# (the "decode an arbitrary z" of the lectures) mostly lands in a gap of the AE's code space.
box = {}
for name, make in (("autoencoder", npae.Autoencoder), ("VAE", npae.VAE)):
    model = make(64, hidden=(128,), latent_dim=args.big_latent, seed=args.seed)
    model.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    codes = model.encode(X_train)
    Z = np.random.default_rng(args.seed).uniform(codes.min(axis=0), codes.max(axis=0),
                                                 (1000, args.big_latent))
    images = model.decode(Z)
    confident = judge.predict_proba(images).max(axis=1) > args.confident
    box[name] = dict(images=images, share=float(np.mean(confident)))
    print(f"{args.big_latent}-D {name}: {100 * box[name]['share']:.1f}% of 1,000 decodings of codes drawn "
          f"uniformly in the box of the training codes' range recognised with max softmax > {args.confident}")

# %% figure: codes with the grid over them, and the decoded grid; below, the 20-D box codes
fig = plotting.new_figure((10.0, 12.5))
cmap = colormaps["tab10"]
for row, (name, r) in enumerate(results.items()):
    ax = fig.add_subplot(3, 2, 2 * row + 1)
    order = np.random.default_rng(args.seed).permutation(len(y_train))
    ax.scatter(r["codes"][order, 0], r["codes"][order, 1], s=6, alpha=0.6, linewidths=0,
               color=cmap(y_train[order]))
    ok = r["confidence"] > args.confident
    ax.scatter(r["grid"][ok, 0], r["grid"][ok, 1], s=5, color="black", marker="o", label="recognised")
    ax.scatter(r["grid"][~ok, 0], r["grid"][~ok, 1], s=14, color="red", marker="x", linewidths=0.8,
               label="not recognised")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(f"{name}: training codes (colour = class)\nand the {n}x{n} grid over their range",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    ax = fig.add_subplot(3, 2, 2 * row + 2)
    tiles = r["images"].reshape(n, n, 8, 8)
    canvas = np.ones((n * 9 + 1, n * 9 + 1))
    for i in range(n):
        for j in range(n):
            canvas[1 + 9 * i:9 * (i + 1), 1 + 9 * j:9 * (j + 1)] = tiles[i, j]
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"z1: {r['grid'][:, 0].min():.3g} … {r['grid'][:, 0].max():.3g} →")
    ax.set_ylabel(f"z2: {r['grid'][:, 1].min():.3g} … {r['grid'][:, 1].max():.3g} →")
    ax.set_title(f"{name}: decoded grid; {100 * r['share']:.0f}% recognised\n"
                 f"(max softmax > {args.confident})", fontsize=9)
for col, (name, r) in enumerate(box.items()):
    ax = fig.add_subplot(3, 2, 5 + col)
    tiles = r["images"][:48].reshape(6, 8, 8, 8)
    canvas = np.ones((6 * 9 + 1, 8 * 9 + 1))
    for i in range(6):
        for j in range(8):
            canvas[1 + 9 * i:9 * (i + 1), 1 + 9 * j:9 * (j + 1)] = tiles[i, j]
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{args.big_latent}-D {name}: codes drawn uniformly in the box of the codes' range\n"
                 f"{100 * r['share']:.0f}% of 1,000 recognised (max softmax > {args.confident})", fontsize=9)
fig.suptitle("the same network as an autoencoder and as a VAE: decoding the whole code range")
fig.tight_layout()
path = os.path.join(args.out, "ae_vs_vae_latent.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
