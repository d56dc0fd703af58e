"""A convolutional VAE beside the MLP VAE of the same latent size and epochs, on MNIST or 8x8 digits.

The conv VAE is ``npae.VAE(arch="conv", hidden=())``: strided 3x3 convolutions (32, then 64
channels) down to 7x7 feature maps, a dense layer to the code, and back up with transposed
convolutions, the layers a decoder uses to increase dimensionality; it has about a third of the
MLP's weights. The MLP VAE is the lectures' 784-400-Z. Both are trained on t10k[:8000] (Adam 1e-3,
batch 128, float32) and compared on t10k[8000:]. Full mode takes a few minutes on a laptop CPU.
Figures: ``conv_vae_reconstructions.png`` (held-out digits, then each model's reconstructions),
``conv_vae_samples.png`` (prior samples of each model) and ``conv_vae_elbo.png`` (held-out negative
ELBO after every epoch, both models).
Data: ``--data-dir``, else $NPAE_DATA, else ~/.cache/npae (``--download`` fetches the official files
there). Without MNIST the demo says so and exits 0. ``--data digits`` trains on the bundled 8x8 digits
instead (the first 1,500; the other 297 held out; the conv stack fits any image size), latent size
10, 100 epochs, for 4 seeds: small images trained to near convergence, where the comparison is cheap
enough to repeat. Every run prints the paired difference (MLP minus conv) of the held-out
10-sample −ELBO on the same images, its mean over seeds and standard error. ``--quick`` is the
digits setting with one seed and 25 epochs (seconds; the test suite runs it).
Lecture idea: transposed convolution as the decoder's way up; encoder and decoder built from
convolutions as in the Keras notebook. Docs: docs/conv.md, docs/derivations/conv.md.

    python demos/conv_vae.py [--quick] [--data {mnist,digits}] [--out DIR] [--data-dir DIR] [--epochs N]
                             [--latent-dim Z] [--seeds S]
"""
# %% settings
import argparse
import os
import sys
import time

import numpy as np

import npae
from npae import datasets, plotting
from npae.training.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="seconds: the digits, 25 epochs, one seed")
parser.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                    help="MNIST or the bundled 8x8 digits")
parser.add_argument("--out", default="demo_out", help="folder for the PNGs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default $NPAE_DATA)")
parser.add_argument("--download", action="store_true", help="download MNIST into the cache if missing")
parser.add_argument("--epochs", type=int, default=None, help="10 (digits 100)")
parser.add_argument("--latent-dim", type=int, default=None, help="16 (digits 10)")
parser.add_argument("--seeds", type=int, default=None, help="how many seeds, from --seed on (1; digits 4)")
parser.add_argument("--conv-hidden", type=int, nargs="*", default=[],
                    help="dense widths between the conv features and the code (default: none)")
parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% data: the official test file, split 8,000 / 2,000; or the bundled digits, 1,500 / 297
if args.quick:
    args.data, args.epochs, args.seeds = "digits", args.epochs or 25, 1
digits = args.data == "digits"
epochs = args.epochs or (100 if digits else 10)
n_seeds = args.seeds or (4 if digits else 1)
if digits:
    X, _ = datasets.load_digits()
    source, X_train, X_test = "8x8 digits", X[:1500], X[1500:]
else:
    try:
        X, _ = datasets.load_mnist("test", data_dir=args.data_dir, download=args.download)
    except FileNotFoundError as exc:
        print(f"MNIST not available, nothing to show: {exc}")
        sys.exit(0)
    source, X_train, X_test = "MNIST", X[:8000], X[8000:]
X_train, X_test = X_train.astype(args.dtype), X_test.astype(args.dtype)
D, Z = X_train.shape[1], args.latent_dim or (10 if digits else 16)
side = int(round(np.sqrt(D)))


# %% the two models: same latent size, same optimizer, batches and epochs
def make_models(seed):
    return {"MLP VAE": npae.VAE(D, hidden=(400,), latent_dim=Z, dtype=args.dtype, seed=seed),
            "conv VAE": npae.VAE(D, hidden=tuple(args.conv_hidden), latent_dim=Z, arch="conv",
                                 dtype=args.dtype, seed=seed)}


print(f"{source}: {X_train.shape[0]} training and {X_test.shape[0]} held-out images of {side}x{side}; "
      f"latent size {Z}, {epochs} epoch(s) each, {n_seeds} seed(s)")
per_seed, first = [], None
for seed in range(args.seed, args.seed + n_seeds):
    models, per_image = make_models(seed), {}
    for name, vae in models.items():
        if seed == args.seed:
            print(f"{name}: {vae.n_params} parameters\n  encoder {vae.encoder}\n  decoder {vae.decoder}")
        t0 = time.perf_counter()
        vae.fit(X_train, epochs=epochs, batch_size=128, lr=1e-3, validation_data=X_test, progress=False)
        print(f"{name}, seed {seed}:")
        print_history(vae.history_)
        per_image[name] = vae.neg_elbo(X_test, seed=0, n_samples=10, per_example=True)  # same draws for both
        print(f"{name}, seed {seed}: held-out negative ELBO {per_image[name].mean():.2f} nats per example "
              f"(10 draws per image; {time.perf_counter() - t0:.0f} s)")
    difference = per_image["MLP VAE"] - per_image["conv VAE"]  # > 0: the conv VAE is better
    per_seed.append(difference.mean())
    se_images = difference.std(ddof=1) / np.sqrt(difference.size)
    print(f"seed {seed}: MLP − conv {difference.mean():+.2f} ± {se_images:.2f} nats per example (paired over "
          f"the {difference.size} held-out images; > 0: conv better)")
    if first is None:
        first = models, {name: values.mean() for name, values in per_image.items()}
per_seed = np.array(per_seed)
if per_seed.size > 1:
    se = per_seed.std(ddof=1) / np.sqrt(per_seed.size)
    verdict = ("the conv VAE is better" if per_seed.mean() - 2 * se > 0 else "the MLP VAE is better"
               if per_seed.mean() + 2 * se < 0 else "no difference shown (within 2 SE)")
    print(f"over {per_seed.size} seeds: MLP − conv {per_seed.mean():+.2f} ± {se:.2f} (SE over seeds): "
          f"{verdict}")
else:
    print(f"one seed: MLP − conv {per_seed[0]:+.2f} nats per example (no standard error over seeds)")
models, scores = first  # the figures show the first seed

# %% reconstructions and samples, the two models side by side
n = 10
rows = [X_test[:n]] + [vae.reconstruct(X_test[:n]) for vae in models.values()]
labels = ["data"] + [f"{name} ({scores[name]:.1f})" for name in models]  # held-out −ELBO, first seed
plotting.image_grid(np.concatenate(rows), n_cols=n, row_labels=labels,
                    title="held-out digits and reconstructions (held-out −ELBO)",
                    path=out("conv_vae_reconstructions.png"))
samples = [vae.sample(2 * n, seed=args.seed) for vae in models.values()]
plotting.image_grid(np.concatenate(samples), n_cols=n,
                    row_labels=[label for name in models for label in (name, "")],
                    title=f"samples from the prior, latent size {Z}", path=out("conv_vae_samples.png"))

# %% held-out negative ELBO per epoch, and the gap between the two
fig = plotting.new_figure((9.0, 3.4))
ax, gap = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
curves = {name: np.array(vae.history_["val_loss"]) for name, vae in models.items()}
epoch_axis = np.arange(1, epochs + 1)
for name, values in curves.items():
    ax.plot(epoch_axis, values, "o-", label=f"{name}: {scores[name]:.2f}")
ax.set_xlabel("epoch")
ax.set_ylabel("held-out −ELBO (nats / example)")
ax.set_title(f"{source}, latent size {Z}")
ax.legend()
difference = curves["MLP VAE"] - curves["conv VAE"]
start = 1 if epochs >= 3 else 0  # the first epoch's gap is large and would flatten the rest
gap.axhline(0.0, color="grey", lw=0.8)
gap.plot(epoch_axis[start:], difference[start:], "o-", color="C2")
gap.set_xlabel("epoch")
gap.set_ylabel("MLP − conv (nats / example)")
gap.set_title("above 0: the conv VAE is better" + (f" (epoch 1: {difference[0]:+.1f})" if start else ""))
fig.tight_layout()
plotting.save_figure(fig, out("conv_vae_elbo.png"))
for name in ("conv_vae_reconstructions", "conv_vae_samples", "conv_vae_elbo"):
    print(f"wrote {out(name + '.png')}")
