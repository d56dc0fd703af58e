"""Greedy layer-wise pretraining with few labels, measured: on MNIST, a deep sigmoid network
(784-512-256-128) pretrained as a stack of denoising autoencoders and then fine-tuned beats the same
network trained from scratch and a linear probe on the pixels, with 10 to 100 labels per class, and
with 10 labels per class a linear probe on its frozen codes does best of all; but a ReLU network
with He initialization trained from scratch does as well as the fine-tuned one, which is what made
pretraining unnecessary (the numbers: docs/autoencoders.md).

Five arms per (seed, labels per class), all on the same labelled examples: a linear probe on the
pixels; a linear probe on the frozen pretrained codes; the pretrained encoder fine-tuned with a
linear head; the same sigmoid network from a random (Glorot) start; a ReLU network of the same
widths from a He start. Every network is fine-tuned the same way (Adam 1e-3, batches of 32, 1,000
steps). Pretraining sees the unlabelled pool only, the score is on held-out images.
Figure ``pretraining_transfer.png``: held-out accuracy (mean ± sd over seeds) against labels per
class, and the per-seed difference of the fine-tuned pretrained network from the others.
Data: MNIST's test file (t10k: 7,500 images as the pool, 2,500 held out) from ``--data-dir`` or
$NPAE_DATA; without it, or with ``--quick`` (seconds, for the test suite), the bundled digits.
Lecture idea: layer-wise pretraining, transfer learning. Docs: docs/autoencoders.md,
docs/derivations/pretrain.md.

    python demos/pretraining_transfer.py [--quick] [--out DIR] [--data-dir DIR] [--seeds 5]
"""
# %% settings
import argparse
import math
import os

import numpy as np

import npae
from npae import datasets, plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="seconds, on the digits (the numbers mean little)")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0, help="first seed")
parser.add_argument("--seeds", type=int, default=5, help="how many seeds (label draws and initializations)")
parser.add_argument("--data-dir", default=None,
                    help="folder with MNIST's t10k IDX files (default $NPAE_DATA)")
parser.add_argument("--labels", type=int, nargs="+", default=[10, 30, 100], help="labels per class")
parser.add_argument("--sizes", type=int, nargs="+", default=[512, 256, 128], help="encoder widths")
parser.add_argument("--masking", type=float, default=0.5, help="masking level of the pretraining DAEs")
parser.add_argument("--pretrain-epochs", type=int, default=20)
parser.add_argument("--steps", type=int, default=1000, help="fine-tuning steps (batches of 32)")
parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (Adam)")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

# %% data: an unlabelled pool (pretraining; the labelled examples are drawn from it) and held-out images
X = None
if not args.quick:
    try:
        X, y = datasets.load_mnist("test", data_dir=args.data_dir)
        pool, held = slice(0, 7500), slice(7500, 10000)
        data = "MNIST t10k (pool 7,500, held out 2,500)"
    except FileNotFoundError as exc:
        print(f"MNIST not available ({exc}); using the bundled digits instead")
if X is None:
    X, y = datasets.load_digits()
    pool, held = slice(0, 1500), slice(1500, None)
    data = "bundled digits (pool 1,500, held out 297)"
    if args.quick:
        args.sizes, args.labels, args.seeds, args.pretrain_epochs, args.steps = [32, 16], [5, 20], 1, 20, 300
        print("quick mode: a tiny budget on the digits, to check that the demo runs; the lesson's "
              "numbers come from a full run on MNIST (docs/autoencoders.md)")
dtype = "float32"  # the same math, faster; every arm runs in it
X = X.astype(dtype)
X_pool, y_pool, X_test, y_test = X[pool], y[pool], X[held], y[held]
sizes = tuple(args.sizes)
print(f"data: {data}; encoder {X.shape[1]}-{'-'.join(map(str, sizes))}; pretraining: denoising autoencoders "
      f"(masking {args.masking:g}, {args.pretrain_epochs} epochs per layer); fine-tuning: Adam {args.lr:g}, "
      f"{args.steps} steps of 32")

pixels = npae.Dense(X.shape[1], X.shape[1], rng=0, dtype=dtype)  # a frozen identity: a probe on pixels
pixels.params["W"][...] = np.eye(X.shape[1])
pixels.params["b"][...] = 0.0
ARMS = ("probe on pixels", "probe on pretrained codes", "pretrained, fine-tuned", "sigmoid from scratch",
        "ReLU (He init) from scratch")


def classifier(arm, encoder, seed):
    """The classifier of one arm: a linear softmax head on a frozen or trained encoder."""
    if arm == "probe on pixels":
        return npae.Classifier(npae.Sequential([pixels]), 10, dtype=dtype, seed=seed)
    if arm == "probe on pretrained codes":
        return npae.Classifier(encoder, 10, dtype=dtype, seed=seed)
    if arm == "pretrained, fine-tuned":
        return npae.Classifier(encoder, 10, freeze_encoder=False, dtype=dtype, seed=seed)
    act = "sigmoid" if arm == "sigmoid from scratch" else "relu"  # build_mlp: Glorot for sigmoid, He for ReLU
    net = npae.models.layers.build_mlp([X.shape[1], *sizes], act, act, rng=np.random.default_rng(1000 + seed),
                                       dtype=np.dtype(dtype), prefix="")
    return npae.Classifier(net, 10, freeze_encoder=False, dtype=dtype, seed=seed)


# %% for each seed: pretrain on the pool (no labels), then every arm on the same few labels
acc = {(arm, n): [] for arm in ARMS for n in args.labels}
for seed in range(args.seed, args.seed + args.seeds):
    stack = npae.greedy_pretrain(X_pool, sizes, autoencoder=npae.DenoisingAutoencoder, noise="masking",
                                 noise_level=args.masking, epochs=args.pretrain_epochs, lr=1e-3,
                                 dtype=dtype, seed=100 * seed)
    encoder = npae.stack_encoder(stack)
    losses = ", ".join(f"{ae.history_['loss'][-1]:.4g}" for ae in stack)
    print(f"seed {seed}: pretrained, layer losses {losses}")
    rng = np.random.default_rng(seed)
    for n in args.labels:
        idx = np.concatenate([rng.choice(np.flatnonzero(y_pool == c), n, replace=False) for c in range(10)])
        epochs = max(1, math.ceil(args.steps * 32 / idx.size))
        for arm in ARMS:
            clf = classifier(arm, encoder, seed)
            clf.fit(X_pool[idx], y_pool[idx], epochs=epochs, batch_size=32, lr=args.lr, progress=False)
            acc[arm, n].append(clf.score(X_test, y_test))
        print(f"seed {seed} | {n:3d} labels per class | "
              + " | ".join(f"{arm} {acc[arm, n][-1]:.3f}" for arm in ARMS))

# %% the table: mean ± sd over seeds, and the fine-tuned network against each other arm, seed by seed
sd = (lambda v: float(np.std(v, ddof=1))) if args.seeds > 1 else (lambda v: 0.0)
print(f"\nheld-out accuracy, mean ± sd over {args.seeds} seed(s)")
print("labels per class | " + " | ".join(ARMS))
for n in args.labels:
    print(f"{n:16d} | " + " | ".join(f"{np.mean(acc[arm, n]):.3f} ± {sd(acc[arm, n]):.3f}" for arm in ARMS))
# each pretrained arm against the arms without pretraining: differences paired by seed (same labels)
PAIRS = (("pretrained, fine-tuned", "sigmoid from scratch"),
         ("pretrained, fine-tuned", "probe on pixels"),
         ("pretrained, fine-tuned", "ReLU (He init) from scratch"),
         ("probe on pretrained codes", "probe on pixels"),
         ("probe on pretrained codes", "ReLU (He init) from scratch"))
diff = {(a, b, n): np.subtract(acc[a, n], acc[b, n]) for a, b in PAIRS for n in args.labels}
for a, b in PAIRS:
    wins = sum(int(np.sum(diff[a, b, n] > 0)) for n in args.labels)
    print(f"{a} minus {b}: "
          + ", ".join(f"{n}/class {100 * diff[a, b, n].mean():+.1f} ± {100 * sd(diff[a, b, n]):.1f}"
                      for n in args.labels)
          + f" points; higher in {wins} of {args.seeds * len(args.labels)} (seed, budget) pairs")

# %% figure
fig = plotting.new_figure((12, 4.2))
ax = fig.add_subplot(1, 2, 1)
for i, arm in enumerate(ARMS):
    means = [np.mean(acc[arm, n]) for n in args.labels]
    ax.errorbar(args.labels, means, yerr=[sd(acc[arm, n]) for n in args.labels], fmt="o-", ms=4,
                capsize=3, color=f"C{i}", label=arm)
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(args.labels, [str(n) for n in args.labels])
ax.set_xlabel("labels per class")
ax.set_ylabel("held-out accuracy")
ax.set_title(f"{data.split(' (')[0]}: mean ± sd over {args.seeds} seed(s)")
ax.legend(fontsize=7)
ax = fig.add_subplot(1, 2, 2)
shown = (("pretrained, fine-tuned", "sigmoid from scratch"),
         ("pretrained, fine-tuned", "ReLU (He init) from scratch"),
         ("probe on pretrained codes", "ReLU (He init) from scratch"))
for j, (a, b) in enumerate(shown):
    color = f"C{ARMS.index(a)}"
    xs = [n * (1.0 + 0.07 * (j - 1)) for n in args.labels]  # side by side on the log axis
    ax.errorbar(xs, [100 * diff[a, b, n].mean() for n in args.labels],
                yerr=[100 * sd(diff[a, b, n]) for n in args.labels], fmt="os^"[j] + "-", capsize=3,
                color=color, mfc="white" if j == 1 else color, label=f"{a} − {b}")
    for x, n in zip(xs, args.labels):
        ax.plot([x] * len(diff[a, b, n]), 100 * diff[a, b, n], ".", color=color, alpha=0.4)
ax.axhline(0.0, color="k", lw=1)
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(args.labels, [str(n) for n in args.labels])
ax.set_xlabel("labels per class")
ax.set_ylabel("accuracy difference (points)")
ax.set_title("a pretrained arm minus one without pretraining (dots: seeds)")
ax.legend(fontsize=7)
path = plotting.save_figure(fig, os.path.join(args.out, "pretraining_transfer.png"))
print(f"wrote {path}")
