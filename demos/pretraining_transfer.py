"""Layer-wise pretraining and transfer learning: an encoder pretrained without labels helps when
labels are few.

Figure ``pretraining_transfer.png``: held-out accuracy against the number of labels per class, for
a linear probe on raw pixels, a linear probe on the frozen pretrained codes, the pretrained
encoder fine-tuned, and the same network trained from scratch.
Lecture idea: greedy layer-wise pretraining, transfer learning. Docs: docs/derivations/pretrain.md.

    python demos/pretraining_transfer.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
pre_epochs, clf_epochs = (10, 30) if args.quick else (30, 100)
budgets = (5, 20) if args.quick else (2, 5, 10, 20, 50)
os.makedirs(args.out, exist_ok=True)

# %% unlabelled pretraining: 64 -> 48 -> 24, each layer an autoencoder on the codes of the one below
X, y = datasets.load_digits()
X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
stack = npae.greedy_pretrain(X_train, (48, 24), epochs=pre_epochs, lr=1e-2, seed=args.seed)
for k, ae in enumerate(stack):
    h = ae.history_
    print(f"layer {k}: epoch {len(h['loss'])} | loss {h['loss'][-1]:.4g}")
encoder = npae.stack_encoder(stack)

# a frozen identity "encoder": a linear probe on raw pixels
pixels = npae.Dense(64, 64, rng=0)
pixels.params["W"][...] = np.eye(64)
pixels.params["b"][...] = 0.0
scratch = npae.Autoencoder(64, hidden=(48,), latent_dim=24, activation="sigmoid",
                           code_activation="sigmoid", seed=args.seed + 100)  # untrained: random init

# %% few labels: n per class
rng = np.random.default_rng(args.seed)
results = {"probe on pixels": [], "probe on pretrained codes": [], "pretrained, fine-tuned": [],
           "from scratch": []}
for n in budgets:
    idx = np.concatenate([rng.choice(np.flatnonzero(y_train == c), n, replace=False) for c in range(10)])
    Xl, yl = X_train[idx], y_train[idx]
    models = {"probe on pixels": npae.Classifier(npae.Sequential([pixels]), 10, seed=args.seed),
              "probe on pretrained codes": npae.Classifier(encoder, 10, seed=args.seed),
              "pretrained, fine-tuned": npae.Classifier(encoder, 10, freeze_encoder=False, seed=args.seed),
              "from scratch": npae.Classifier(scratch, 10, freeze_encoder=False, seed=args.seed)}
    for name, clf in models.items():
        clf.fit(Xl, yl, epochs=clf_epochs, batch_size=16, lr=1e-2, progress=False)
        results[name].append(clf.score(X_test, y_test))
    print(f"{n:3d} labels per class: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items()))

# %% figure
fig = plotting.new_figure((6.5, 4.2))
ax = fig.add_subplot(1, 1, 1)
for name, acc in results.items():
    ax.plot(budgets, acc, "o-", label=name)
ax.set_xscale("log")
ax.set_xlabel("labels per class")
ax.set_ylabel("held-out accuracy")
ax.set_title("few labels: pretrained vs from scratch")
ax.legend(fontsize=8)
path = plotting.save_figure(fig, os.path.join(args.out, "pretraining_transfer.png"))
print(f"wrote {path}")
