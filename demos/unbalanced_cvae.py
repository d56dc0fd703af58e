"""Unbalanced classes: a conditional VAE trained on a set that has lost most of one digit class
generates that class, and the generated examples are given to a classifier.

From the training set only 2% of the 3s are kept (``--keep``). Conditional VAEs with a 2-D and an
8-D code (``--latent-dims``) are trained on what remains (every class, the few 3s included), and each
generates new 3s (at temperature ``--temperature``) until the class is as large as an average one.
The same MLP classifier is then trained on: the unbalanced set as it is; the set with the few real 3s
repeated (plain oversampling); the set with generated 3s added (decoder means, or Bernoulli draws);
and, for reference, the full balanced set. Reported on the untouched test set: the accuracy on the
3s (recall), the precision of the label 3, and the overall accuracy, over ``--repeats`` classifier
seeds. A classifier trained on the full balanced set also scores the generated 3s (a diagnostic of
their quality; it plays no part in training).

Figure ``unbalanced_cvae.png``: the real 3s that were kept, generated 3s of each model, and the three
numbers per training set.
Data: MNIST train5k + t10k[:8000] for training, t10k[8000:] for testing (``--data-dir``, else
$NPAE_DATA; without MNIST the demo says so and exits 0); ``--quick`` uses the bundled 8x8 digits.
Lecture idea: lecture 004, unbalanced data sets as where the conditional VAE is most useful.
Docs: docs/semisupervised.md#unbalanced-classes, docs/derivations/elbo.md#elbo-8.

    python demos/unbalanced_cvae.py [--quick] [--out DIR] [--data-dir DIR] [--rare 3] [--keep 0.02]
"""
# %% settings
import argparse
import json
import os
import sys

import numpy as np

import npae
from npae import datasets, plotting
from npae.training.report import log_line

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="seconds, on the bundled digits")
parser.add_argument("--out", default="demo_out", help="folder for the PNG and the JSON")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None)
parser.add_argument("--rare", type=int, default=3, help="the class that loses most of its examples")
parser.add_argument("--keep", type=float, default=0.02, help="share of the rare class that is kept")
parser.add_argument("--latent-dims", type=int, nargs="+", default=[2, 8],
                    help="one conditional VAE per latent size")
parser.add_argument("--temperature", type=float, default=0.7, help="of the generated examples")
parser.add_argument("--epochs", type=int, default=30, help="of the conditional VAE")
parser.add_argument("--repeats", type=int, default=3, help="classifier seeds per training set")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% data: the training set loses most of one class; the test set keeps all of it
try:  # --quick: the bundled digits; else MNIST train5k + t10k[:8000] to train on, t10k[8000:] to test
    X_train, y_train, X_test, y_test = datasets.load_digits_or_mnist_13k(args.quick, data_dir=args.data_dir)
except (FileNotFoundError, datasets.DatasetError) as exc:
    print(f"MNIST not available, nothing to show: {exc}")
    sys.exit(0)
if args.quick:
    side, hidden, dtype, epochs, clf_epochs, repeats = 8, 128, "float64", 15, 15, 1
else:
    side, hidden, dtype, epochs, clf_epochs, repeats = 28, 400, "float32", args.epochs, 15, args.repeats
D, K, rare = X_train.shape[1], 10, args.rare
rng = np.random.default_rng(args.seed)
rare_rows = np.flatnonzero(y_train == rare)
kept = rng.choice(rare_rows, max(1, int(round(args.keep * rare_rows.size))), replace=False)
rows = np.concatenate([np.flatnonzero(y_train != rare), kept])
X_unb, y_unb = X_train[rows], y_train[rows]
target = int(round(np.mean([np.sum(y_unb == c) for c in range(K) if c != rare])))
print(f"training set: {rare_rows.size} {rare}s, {kept.size} kept ({100 * args.keep:g}%); the other "
      f"classes have {target} images on average; test set: {np.sum(y_test == rare)} {rare}s of "
      f"{y_test.size} images")

# %% a conditional VAE per latent size on the unbalanced set, and the missing examples it generates
n_new = max(target - kept.size, 1)
generated = {}
for Z in args.latent_dims:
    cvae = npae.ConditionalVAE(D, K, hidden=(hidden,), latent_dim=Z, dtype=dtype, seed=args.seed)
    cvae.fit(X_unb, y_unb, epochs=epochs, batch_size=128, lr=1e-3, progress=False)
    print(f"conditional VAE {D}-{hidden}-{Z}: {log_line(epochs - 1, cvae.history_)}")
    for draws in (False, True):
        generated[f"{Z}-D CVAE, {'Bernoulli draws' if draws else 'means'}"] = cvae.sample(
            n_new, y=rare, temperature=args.temperature, draws=draws, seed=args.seed)


def mlp(seed):
    """The classifier every training set gets: an MLP D-256-10 on pixels."""
    return npae.Classifier(npae.Sequential([npae.Dense(D, 256, rng=seed), npae.ReLU()]), K,
                           freeze_encoder=False, dtype=dtype, seed=seed)


balanced = mlp(args.seed + 100).fit(X_train, y_train, epochs=clf_epochs, batch_size=64, lr=1e-3,
                                    progress=False)
for name, images in generated.items():
    seen = np.mean(balanced.predict(images) == rare)
    print(f"{name}: {100 * seen:.1f}% of the {n_new} generated {rare}s are {rare}s to a classifier trained "
          f"on the full balanced set (test accuracy {100 * balanced.score(X_test, y_test):.1f}%)")

# %% the training sets and the classifier trained on each
repeat = np.tile(kept, int(np.ceil(n_new / kept.size)))[:n_new]
sets = {"unbalanced, as it is": (X_unb, y_unb),
        "oversampled real 3s": (np.concatenate([X_unb, X_train[repeat]]),
                                np.concatenate([y_unb, y_train[repeat]])),
        **{f"+ generated: {name}": (np.concatenate([X_unb, images]),
                                    np.concatenate([y_unb, np.full(n_new, rare)]))
           for name, images in generated.items()},
        "full balanced set (reference)": (X_train, y_train)}


def cell(values):
    """Mean (± std over seeds) in %; a precision is undefined (–) when nothing was predicted rare."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "–"
    spread = f" ± {100 * np.std(values, ddof=1):.1f}" if values.size > 1 else ""
    return f"{100 * np.mean(values):.1f}" + spread


metrics = {}
for name, (Xs, ys) in sets.items():
    scores = []
    for r in range(repeats):
        clf = mlp(args.seed + r).fit(Xs, ys, epochs=clf_epochs, batch_size=64, lr=1e-3, progress=False)
        pred = clf.predict(X_test)
        is_rare = y_test == rare
        recall = np.mean(pred[is_rare] == rare)
        precision = np.mean(y_test[pred == rare] == rare) if np.any(pred == rare) else float("nan")
        scores.append((recall, precision, np.mean(pred == y_test)))
    metrics[name] = np.array(scores)
    s = metrics[name]
    print(f"{name}: {rare}s recognised {cell(s[:, 0])}%, precision {cell(s[:, 1])}%, overall accuracy "
          f"{cell(s[:, 2])}%")


print(f"\ntest set, mean over {repeats} classifier seed(s)")
print(f"| training set | {rare}s recognised (recall, %) | precision of '{rare}' (%) | overall accuracy (%) |")
for name, s in metrics.items():
    print(f"| {name} | " + " | ".join(cell(s[:, j]) for j in range(3)) + " |")


# %% figure
def mosaic(images, n_cols=6):
    n = images.shape[0]
    n_rows = -(-n // n_cols)
    canvas = np.ones((n_rows * (side + 1) + 1, n_cols * (side + 1) + 1))
    for k in range(n):
        r, c = divmod(k, n_cols)
        canvas[1 + r * (side + 1):(r + 1) * (side + 1), 1 + c * (side + 1):(c + 1) * (side + 1)] = \
            images[k].reshape(side, side)
    return canvas


n_show = min(24, kept.size)
panels = [(f"{n_show} of the {kept.size} real {rare}s kept", X_train[kept[:n_show]])]
panels += [(f"generated: {Z}-D CVAE (means, T={args.temperature:g})", generated[f"{Z}-D CVAE, means"][:24])
           for Z in args.latent_dims]
fig = plotting.new_figure((3.3 * len(panels) + 0.5, 8.0))
grid = fig.add_gridspec(2, len(panels), height_ratios=[1.0, 1.05])
for i, (title, images) in enumerate(panels):
    ax = fig.add_subplot(grid[0, i])
    ax.imshow(mosaic(images), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
ax = fig.add_subplot(grid[1, :])
names = list(metrics)
width = 0.27
for j, (label, colour) in enumerate(((f"{rare}s recognised (recall)", "C3"), (f"precision of '{rare}'", "C1"),
                                     ("overall accuracy", "C0"))):
    values = [metrics[n][:, j][np.isfinite(metrics[n][:, j])] for n in names]
    ax.barh(np.arange(len(names)) + (j - 1) * width, [100 * v.mean() if v.size else 0.0 for v in values],
            width, color=colour, label=label)
ax.set_yticks(np.arange(len(names)))
ax.set_yticklabels(names, fontsize=8)
ax.invert_yaxis()
ax.set_xlabel("test set (%)")
ax.set_xlim(0, 100)
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
ax.set_title(f"the same MLP trained on each set (mean of {repeats} seed(s))", fontsize=9)
fig.tight_layout()
plotting.save_figure(fig, out("unbalanced_cvae.png"))
print(f"wrote {out('unbalanced_cvae.png')}")
with open(out("unbalanced_cvae.json"), "w") as fh:
    json.dump({"rare": rare, "kept": int(kept.size), "generated": int(n_new),
               "metrics": {k: v.tolist() for k, v in metrics.items()}}, fh, indent=1)
