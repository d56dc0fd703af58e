"""A convolutional VAE beside the MLP VAE of the same latent size, on MNIST, for the same epochs.

The conv VAE is ``npae.VAE(arch="conv", hidden=())``: strided 3x3 convolutions (32, then 64
channels) down to 7x7 feature maps, a dense layer to the code, and back up with transposed
convolutions, the layers a decoder uses to increase dimensionality; it has about a third of the
MLP's weights. The MLP VAE is the lectures' 784-400-Z. Both are trained on t10k[:8000] (Adam 1e-3,
batch 128, float32) and compared on t10k[8000:]. Full mode takes a few minutes on a laptop CPU.
Figures: ``conv_vae_reconstructions.png`` (held-out digits, then each model's reconstructions),
``conv_vae_samples.png`` (prior samples of each model) and ``conv_vae_elbo.png`` (held-out negative
ELBO after every epoch, both models).
Data: ``--data-dir``, else $NPAE_DATA, else ~/.cache/npae (``--download`` fetches the official files
there). Without MNIST the demo says so and exits 0; with ``--quick`` it says so and runs on the
bundled 8x8 digits instead (the conv stack fits any image size), so the figures are still drawn.
Lecture idea: transposed convolution as the decoder's way up; encoder and decoder built from
convolutions as in the Keras notebook. Docs: docs/conv.md, docs/derivations/conv.md.

    python demos/conv_vae.py [--quick] [--out DIR] [--data-dir DIR] [--epochs N] [--latent-dim Z]
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
parser.add_argument("--quick", action="store_true", help="seconds: 1,000 images, 1 epoch")
parser.add_argument("--out", default="demo_out", help="folder for the PNGs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default $NPAE_DATA)")
parser.add_argument("--download", action="store_true", help="download MNIST into the cache if missing")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--latent-dim", type=int, default=16)
parser.add_argument("--conv-hidden", type=int, nargs="*", default=[],
                    help="dense widths between the conv features and the code (default: none)")
parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% data: the official test file, split 8,000 / 2,000
try:
    X, _ = datasets.load_mnist("test", data_dir=args.data_dir, download=args.download)
    source, X_train, X_test = "MNIST", X[:8000], X[8000:]
except FileNotFoundError as exc:
    if not args.quick:
        print(f"MNIST not available, nothing to show: {exc}")
        sys.exit(0)
    print(f"MNIST not available ({' '.join(str(exc).split())[:160]}...); --quick runs on the bundled "
          f"8x8 digits instead")
    X, _ = datasets.load_digits()
    source, X_train, X_test = "8x8 digits", X[:1500], X[1500:]
epochs = args.epochs
if args.quick:
    X_train, X_test, epochs = X_train[:1000], X_test[:300], 1
X_train, X_test = X_train.astype(args.dtype), X_test.astype(args.dtype)
D, Z = X_train.shape[1], args.latent_dim
side = int(round(np.sqrt(D)))

# %% the two models: same latent size, same optimizer, batches and epochs
models = {
    "MLP VAE": npae.VAE(D, hidden=(400,), latent_dim=Z, dtype=args.dtype, seed=args.seed),
    "conv VAE": npae.VAE(D, hidden=tuple(args.conv_hidden), latent_dim=Z, arch="conv", dtype=args.dtype,
                         seed=args.seed),
}
print(f"{source}: {X_train.shape[0]} training and {X_test.shape[0]} held-out images of {side}x{side}; "
      f"latent size {Z}, {epochs} epoch(s) each")
scores = {}
for name, vae in models.items():
    print(f"{name}: {vae.n_params} parameters\n  encoder {vae.encoder}\n  decoder {vae.decoder}")
    t0 = time.perf_counter()
    vae.fit(X_train, epochs=epochs, batch_size=128, lr=1e-3, validation_data=X_test, progress=False)
    print_history(vae.history_)
    scores[name] = vae.neg_elbo(X_test, seed=0)
    print(f"{name}: held-out negative ELBO {scores[name]:.2f} nats per example "
          f"({time.perf_counter() - t0:.0f} s)")
better = min(scores, key=scores.get)
print(f"lower is better: {better} by {abs(scores['MLP VAE'] - scores['conv VAE']):.2f} nats per example")

# %% reconstructions and samples, the two models side by side
n = 10
rows = [X_test[:n]] + [vae.reconstruct(X_test[:n]) for vae in models.values()]
labels = ["data"] + [f"{name} ({scores[name]:.1f})" for name in models]
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
