"""Do conditional samples show the digit they were asked for? Class agreement of a conditional VAE's
samples, scored by a classifier trained on real digits, for latent sizes 2, 8 and 20 and
temperatures 1, 0.7 and 0.5.

``sample(n, y=c, temperature=T)`` draws z ~ N(0, T² I) and decodes it with the label c; the judge (an
MLP trained on the real training digits) says which digit it sees. Agreement = the share of samples
it labels c. Decoder means (the usual picture) and Bernoulli draws x ~ p(x | y, z) (``draws=True``,
what the model really generates) are scored separately.

Figures: ``cvae_agreement.png`` (agreement against temperature, one line per latent size; means
solid, draws dashed; and the agreement of each class at T = 1), ``cvae_samples.png`` (one sample
of each class per row, for each latent size at T = 1 and T = 0.5, each row of means followed by a
row of Bernoulli draws of them) and ``cvae_traversal.png`` (the 8-D model: each latent varied alone,
from −3 to 3, for one class; ``npae.plotting.latent_traversal``).
Data: MNIST train5k + t10k[:8000] for training, t10k[8000:] to test the judge (``--data-dir``, else
$NPAE_DATA; without MNIST the demo says so and exits 0); ``--quick`` uses the bundled 8x8 digits.
Lecture idea: conditional generation (lecture 004); the temperature trades variety for fidelity.
Docs: docs/semisupervised.md#how-faithful-are-conditional-samples, docs/derivations/elbo.md#elbo-8.

    python demos/cvae_agreement.py [--quick] [--out DIR] [--data-dir DIR]
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
parser.add_argument("--out", default="demo_out", help="folder for the PNGs and the JSON")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--data-dir", default=None)
parser.add_argument("--latent-dims", type=int, nargs="+", default=[2, 8, 20])
parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7, 0.5])
parser.add_argument("--per-class", type=int, default=200, help="samples of each class per setting")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--traversal-class", type=int, default=3)
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% data
try:  # --quick: the bundled digits; else MNIST train5k + t10k[:8000] to train on, t10k[8000:] to test
    X_train, y_train, X_test, y_test = datasets.load_digits_or_mnist_13k(args.quick, data_dir=args.data_dir)
except (FileNotFoundError, datasets.DatasetError) as exc:
    print(f"MNIST not available, nothing to show: {exc}")
    sys.exit(0)
if args.quick:
    latent_dims, per_class, epochs, hidden, side, dtype = args.latent_dims[:2], 20, 10, 128, 8, "float64"
else:
    latent_dims, per_class, epochs, hidden, side, dtype = (args.latent_dims, args.per_class, args.epochs, 400,
                                                           28, "float32")
D, K = X_train.shape[1], 10

# %% the judge: an MLP D-256-10 trained on the real training digits
judge = npae.Classifier(npae.Sequential([npae.Dense(D, 256, rng=args.seed), npae.ReLU()]), K,
                        freeze_encoder=False, dtype=dtype, seed=args.seed)
judge.fit(X_train, y_train, epochs=10 if args.quick else 20, batch_size=64, lr=1e-3, progress=False)
judge_accuracy = judge.score(X_test, y_test)
print(f"judge: MLP {D}-256-10 trained on the real training digits, test accuracy {judge_accuracy:.3f}")

# %% one conditional VAE per latent size, scored at each temperature
agreement, per_class_at_1, models = {}, {}, {}
labels = np.repeat(np.arange(K), per_class)
for Z in latent_dims:
    cvae = npae.ConditionalVAE(D, K, hidden=(hidden,), latent_dim=Z, dtype=dtype, seed=args.seed)
    cvae.fit(X_train, y_train, epochs=epochs, batch_size=128, lr=1e-3, progress=False)
    models[Z] = cvae
    print(f"latent_dim {Z:2d}: {log_line(epochs - 1, cvae.history_)}")
    for T in args.temperatures:
        for draws in (False, True):
            images = cvae.sample(labels.size, y=labels, temperature=T, draws=draws, seed=args.seed)
            hit = judge.predict(images) == labels
            agreement[(Z, T, draws)] = float(hit.mean())
            if T == 1.0 and not draws:
                per_class_at_1[Z] = hit.reshape(K, per_class).mean(axis=1)
    print("             " + " | ".join(f"T={T:g}: means {100 * agreement[(Z, T, False)]:.1f}%, "
                                       f"draws {100 * agreement[(Z, T, True)]:.1f}%"
                                       for T in args.temperatures))

print(f"\nclass agreement of conditional samples ({per_class} per class, judge test accuracy "
      f"{100 * judge_accuracy:.1f}%)")
print("| latent size | " + " | ".join(f"T = {T:g} (means / draws)" for T in args.temperatures) + " |")
for Z in latent_dims:
    cells = (f"{100 * agreement[(Z, T, False)]:.1f}% / {100 * agreement[(Z, T, True)]:.1f}%"
             for T in args.temperatures)
    print(f"| {Z} | " + " | ".join(cells) + " |")

# %% figure: agreement against temperature, and per class at T = 1
fig = plotting.new_figure((11.0, 4.2))
ax = fig.add_subplot(1, 2, 1)
for i, Z in enumerate(latent_dims):
    colour = f"C{i}"
    for draws, style in ((False, "o-"), (True, "s--")):
        ax.plot(args.temperatures, [100 * agreement[(Z, T, draws)] for T in args.temperatures], style,
                color=colour, label=f"{Z}-D, {'Bernoulli draws' if draws else 'decoder means'}")
ax.axhline(100 * judge_accuracy, color="gray", linestyle=":", label="judge on real test digits")
ax.set_xlabel("temperature T (z ~ N(0, T² I))")
ax.set_ylabel("samples showing the requested digit (%)")
ax.invert_xaxis()
ax.set_title("class agreement of conditional samples", fontsize=10)
ax.legend(fontsize=7)
ax = fig.add_subplot(1, 2, 2)
width = 0.8 / len(latent_dims)
for i, Z in enumerate(latent_dims):
    ax.bar(np.arange(K) + (i - (len(latent_dims) - 1) / 2) * width, 100 * per_class_at_1[Z], width,
           label=f"{Z}-D", color=f"C{i}")
ax.set_xticks(np.arange(K))
ax.set_xlabel("requested class")
ax.set_ylabel("agreement at T = 1, means (%)")
ax.set_title("which classes fail", fontsize=10)
ax.set_ylim(0, 112)  # room above the bars for the legend
ax.legend(fontsize=7, ncol=len(latent_dims), loc="upper center")
fig.tight_layout()
plotting.save_figure(fig, out("cvae_agreement.png"))
print(f"wrote {out('cvae_agreement.png')}")

# %% figure: one sample of each class per row, for each latent size at T = 1 and 0.5
rows, names = [], []
for Z in latent_dims:
    for T in (args.temperatures[0], args.temperatures[-1]):
        rows.append(models[Z].sample(K, y=np.arange(K), temperature=T, seed=args.seed + 1))
        names.append(f"{Z}-D, T={T:g}")
plotting.image_grid(np.concatenate(rows), (side, side), n_cols=K, row_labels=names, draws=True,
                    seed=args.seed, title="conditional samples: columns = requested class 0 … 9",
                    path=out("cvae_samples.png"))
print(f"wrote {out('cvae_samples.png')}")

# %% figure: what each latent of the 8-D model does (or the largest one below 8)
Z_trav = max([Z for Z in latent_dims if Z <= 8] or [min(latent_dims)])
plotting.latent_traversal(models[Z_trav], y=args.traversal_class, image_shape=(side, side),
                          path=out("cvae_traversal.png"))
kl = models[Z_trav].kl_per_dimension(X_test, y_test)
print(f"{Z_trav}-D model, KL per latent on the test digits (nats): "
      + ", ".join(f"z{j + 1} {v:.2f}" for j, v in enumerate(kl)))
print(f"wrote {out('cvae_traversal.png')}")
with open(out("cvae_agreement.json"), "w") as fh:
    json.dump({"judge_accuracy": judge_accuracy,
               "agreement": [{"latent_dim": Z, "temperature": T, "draws": d, "agreement": v}
                             for (Z, T, d), v in agreement.items()]}, fh, indent=1)
