"""Semi-supervised learning with the M2 model (Kingma, Rezende, Mohamed & Welling 2014): MNIST test
error with 100, 600 and 1000 labels, for M2, M1+M2 and two classifiers that see only the labels.

Training images: MNIST train5k plus t10k[:8000] (13,000 images, all used unlabelled); a balanced
set of labels among them, chosen by seed; test: t10k[8000:] (2,000 images, never seen in training).
Four models per label budget:

* **M2** on pixels (``npae.SemiSupervisedVAE``, Bernoulli decoder);
* **M1+M2**: a VAE (M1) trained on all 13,000 images, then M2 with a Gaussian decoder (learned
  per-feature variance) on the posterior means of its active latents;
* **labels alone**: an MLP of the size of M2's classifier on raw pixels, trained on the labelled
  images only;
* **frozen-encoder probe**: a linear classifier on M1's posterior means, trained on the labelled
  images only (and the same through ``npae.Classifier(m1)``, which probes M1's whole encoder output
  [mu | logvar]).

Figures: ``semisupervised.png`` (test error against the number of labels, the paper's Table 1 beside),
``semisupervised_samples.png`` (M2 with the fewest labels as a generator: one row per class, the same
style code z down each column). ``semisupervised.json``: every number.
Lecture idea: "blur the supervised/unsupervised line with conditional VAEs" (lecture 004).
Docs: docs/semisupervised.md, docs/derivations/m2.md.

    python demos/semisupervised.py [--quick] [--data {mnist,digits}] [--out DIR] [--data-dir DIR]
                                   [--seeds 0 1]

``--data digits`` runs on the bundled 8x8 digits (1,500 to train, 297 to test) with 20, 50, 100 and
300 labels, every budget over 9 label draws (seeds 0 to 8), M2 trained for 150 epochs (a small
data set trained to near convergence; 5 minutes of CPU), and prints M2's error minus the MLP's,
paired by label draw, with its standard error. ``--quick`` runs that setting with 50 labels and one
draw, in seconds. Without MNIST the full demo says where it looked and exits 0.
"""
# %% settings
import argparse
import json
import os
import sys

import numpy as np

import npae
from npae import datasets, plotting
from npae.pairs import functional
from npae.pairs import m2 as semisup
from npae.training.report import log_line

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="seconds, on the bundled digits")
parser.add_argument("--data", choices=("mnist", "digits"), default="mnist", help="MNIST or the 8x8 digits")
parser.add_argument("--out", default="demo_out", help="folder for the PNGs and the JSON")
parser.add_argument("--seed", type=int, default=0, help="seed of M1 (and of every model with --seeds)")
parser.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="seeds of the label draws for the smallest budget, the others use the first "
                    "(0 1; digits: 0 to 8 for every budget)")
parser.add_argument("--labels", type=int, nargs="+", default=None,
                    help="100 600 1000 (digits 20 50 100 300)")
parser.add_argument("--data-dir", default=None)
parser.add_argument("--alpha", type=float, default=200.0,
                    help="M2's weight of the classification term per labelled row (npae's scaling)")
parser.add_argument("--m1m2-alpha", type=float, default=20.0, help="the same for M1+M2")
parser.add_argument("--m2-epochs", type=int, default=None, help="8 (digits 150)")
parser.add_argument("--m1m2-epochs", type=int, default=30)
parser.add_argument("--m1-epochs", type=int, default=20)
args = parser.parse_args()
digits = args.quick or args.data == "digits"
if args.quick:
    args.labels, args.seeds = [50], (args.seeds or [0])[:1]
args.labels = args.labels or ([20, 50, 100, 300] if digits else [100, 600, 1000])
args.seeds = args.seeds or (list(range(9)) if digits else [0, 1])
args.m2_epochs = args.m2_epochs or (150 if digits else 8)
os.makedirs(args.out, exist_ok=True)
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% data: 13,000 training images (all unlabelled), 2,000 test images
try:  # the bundled digits; else MNIST train5k + t10k[:8000] to train on, t10k[8000:] to test
    X_train, y_train, X_test, y_test = datasets.load_digits_or_mnist_13k(digits, data_dir=args.data_dir)
except (FileNotFoundError, datasets.DatasetError) as exc:
    print(f"MNIST not available, nothing to show: {exc}")
    sys.exit(0)
if digits:
    budgets, seeds = sorted(args.labels), args.seeds
    image_side, dtype = 8, "float64"
    m2_kw = dict(hidden=(32,), latent_dim=4, activation="relu")
    m1_kw = dict(hidden=(64,), latent_dim=8)
    m2_epochs, batch_size = args.m2_epochs, 100
    m1m2_epochs, m1_epochs = (4, 10) if args.quick else (args.m1m2_epochs, args.m1_epochs)
else:
    budgets, seeds = sorted(args.labels), args.seeds
    image_side, dtype = 28, "float32"  # float32: half the time of float64 on these products
    m2_kw = dict(hidden=(300,), latent_dim=50)  # the paper's M2 for N = 100: one hidden layer of 300
    m1_kw = dict(hidden=(500, 500), latent_dim=50)  # the paper's M1: two layers of 500, 50 latents
    m2_epochs, m1m2_epochs, m1_epochs, batch_size = args.m2_epochs, args.m1m2_epochs, args.m1_epochs, 100
N, K, D = X_train.shape[0], 10, X_train.shape[1]
print(f"{N} training images (all used unlabelled), {X_test.shape[0]} test images; alpha = {args.alpha:g} "
      f"(M2) and {args.m1m2_alpha:g} (M1+M2) per labelled row (the paper's rule would give "
      f"{semisup.paper_alpha(N, min(budgets)):.3g} for {min(budgets)} labels)")


def balanced_labels(n, seed):
    """Partial labels: n // K images of each class keep their label (chosen by ``seed``), the rest −1."""
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(y_train == c), n // K, replace=False) for c in range(K)])
    partial = np.full(N, semisup.UNLABELLED)
    partial[keep] = y_train[keep]
    return partial, np.sort(keep)


def oversampled(Xs, partial, keep):
    """The training rows with the labelled ones repeated so that they make up about a tenth of each
    epoch (the unlabelled rows still appear once): with 100 labels among 13,000 images a batch of
    100 would otherwise hold one labelled image on average. This weights the labelled rows more
    than the paper's objective does (docs/semisupervised.md)."""
    repeat = max(1, int(round(0.1 * N / keep.size)))
    extra = np.tile(keep, repeat - 1)
    return np.concatenate([Xs, Xs[extra]]), np.concatenate([partial, partial[extra]])


def error(model, Xs):
    return 100.0 * (1.0 - model.score(Xs, y_test))


def last_line(history):
    return log_line(len(history["loss"]) - 1, history)


# %% M1: a VAE on all training images, once; its posterior means are M1+M2's data
m1 = npae.VAE(D, seed=args.seed, dtype=dtype, **m1_kw)
m1.fit(X_train, epochs=m1_epochs, batch_size=batch_size, lr=1e-3, progress=False)
print(f"M1 {D}-{'-'.join(map(str, m1_kw['hidden']))}-{m1_kw['latent_dim']}: {last_line(m1.history_)}")
codes_train, codes_test = m1.transform(X_train), m1.transform(X_test)
active = np.flatnonzero(np.var(codes_train, axis=0) > npae.pairs.latent.ACTIVE_UNIT_THRESHOLD)
codes_train, codes_test = codes_train[:, active], codes_test[:, active]
print(f"M1 uses {active.size} of its {m1_kw['latent_dim']} latents (Var_x(mu_j) > "
      f"{npae.pairs.latent.ACTIVE_UNIT_THRESHOLD}); M1+M2 sees those {active.size} posterior means")


def identity_encoder(width):
    dense = npae.Dense(width, width)
    dense.params["W"][...], dense.params["b"][...] = np.eye(width), 0.0
    return npae.Sequential([dense])


# %% every model for every label budget
MLP, PROBE, WHOLE = ("labels alone (MLP on pixels)", "frozen-encoder probe (linear on M1's mu)",
                     "npae.Classifier(m1): linear on [mu | logvar]")
results = {"M2": {}, "M1+M2": {}, MLP: {}, PROBE: {}, WHOLE: {}}
samples_model = None
for n in budgets:
    for seed in (seeds if n == budgets[0] or digits else seeds[:1]):
        partial, keep = balanced_labels(n, seed)
        Xo, yo = oversampled(X_train, partial, keep)
        m2 = npae.SemiSupervisedVAE(D, K, alpha=args.alpha, dtype=dtype, seed=seed, **m2_kw)
        m2.fit(Xo, yo, epochs=m2_epochs, batch_size=batch_size, lr=1e-3, progress=False)
        results["M2"].setdefault(n, []).append(error(m2, X_test))
        print(f"M2, {n} labels, seed {seed}: {last_line(m2.history_)} | "
              f"test error {results['M2'][n][-1]:.2f}%")
        if samples_model is None:
            samples_model = (m2, n)

        Co, _ = oversampled(codes_train, partial, keep)
        shape = dict(hidden=m2_kw["hidden"], latent_dim=m2_kw["latent_dim"],
                     activation=m2_kw.get("activation", "softplus"), alpha=args.m1m2_alpha, dtype=dtype,
                     seed=seed)
        m1m2 = npae.SemiSupervisedVAE(active.size, K, likelihood="gaussian", variance="per_feature", **shape)
        m1m2.fit(Co, yo, epochs=m1m2_epochs, batch_size=batch_size, lr=1e-3, progress=False)
        results["M1+M2"].setdefault(n, []).append(error(m1m2, codes_test))
        print(f"M1+M2, {n} labels, seed {seed}: {last_line(m1m2.history_)} | test error "
              f"{results['M1+M2'][n][-1]:.2f}%")
        if n == budgets[0] and seed == seeds[0]:
            # the other way to give M2 real-valued codes: squash them into (0, 1) and keep the
            # Bernoulli decoder; measured once, on the smallest budget
            scale = codes_train.std(axis=0)
            squash = lambda C: functional.sigmoid(C / scale)  # noqa: E731 logistic of standardised codes
            bern = npae.SemiSupervisedVAE(active.size, K, **shape)
            bern.fit(squash(Co), yo, epochs=m1m2_epochs, batch_size=batch_size, lr=1e-3, progress=False)
            bernoulli_error = error(bern, squash(codes_test))
            print(f"M1+M2 with a Bernoulli decoder on the squashed codes, {n} labels, seed {seed}: "
                  f"{last_line(bern.history_)} | test error {bernoulli_error:.2f}%")

        steps = 1500  # each classifier on the labelled images alone gets about this many steps
        epochs = max(20, steps // -(-keep.size // 32))
        mlp = npae.Classifier(npae.Sequential([npae.Dense(D, m2_kw["hidden"][0], rng=seed), npae.ReLU()]), K,
                              freeze_encoder=False, dtype=dtype, seed=seed)
        mlp.fit(X_train[keep], y_train[keep], epochs=epochs, batch_size=32, lr=1e-3, progress=False)
        results[MLP].setdefault(n, []).append(error(mlp, X_test))
        probe = npae.Classifier(identity_encoder(active.size), K, dtype=dtype, seed=seed)
        probe.fit(codes_train[keep], y_train[keep], epochs=epochs, batch_size=32, lr=1e-2, progress=False)
        results[PROBE].setdefault(n, []).append(error(probe, codes_test))
        whole = npae.Classifier(m1, K, dtype=dtype, seed=seed)  # M1's encoder copied, frozen
        whole.fit(X_train[keep], y_train[keep], epochs=epochs, batch_size=32, lr=1e-2, progress=False)
        results[WHOLE].setdefault(n, []).append(error(whole, X_test))
        print(f"labels alone, {n} labels, seed {seed}: MLP {results[MLP][n][-1]:.2f}%, probe on M1's mu "
              f"{results[PROBE][n][-1]:.2f}%, Classifier(m1) {results[WHOLE][n][-1]:.2f}%")

# %% the table
PAPER = {"M2": {100: (11.97, 1.71), 600: (4.94, 0.13), 1000: (3.60, 0.56)},
         "M1+M2": {100: (3.33, 0.14), 600: (2.59, 0.05), 1000: (2.40, 0.02)}}


def cell(values):
    return f"{np.mean(values):.2f}" + (f" ± {np.std(values, ddof=1):.2f} ({len(values)} seeds)"
                                       if len(values) > 1 else "")


print("\ntest error (%) on " + ("digits[1500:]" if digits else "MNIST t10k[8000:]"))
print("| labels | " + " | ".join(results) + " |")
for n in budgets:
    print(f"| {n} | " + " | ".join(cell(results[k][n]) for k in results) + " |")
print("M2 minus labels alone (MLP), test error points, paired by label draw (< 0: M2 is better):")
for n in budgets:
    d = np.array(results["M2"][n]) - np.array(results[MLP][n])
    if d.size > 1:
        se = d.std(ddof=1) / np.sqrt(d.size)
        verdict = "M2 better" if d.mean() + 2 * se < 0 else "MLP better" if d.mean() - 2 * se > 0 else \
            "within 2 SE of 0"
        draws = ", ".join(f"{v:+.2f}" for v in d)
        print(f"  {n} labels: {d.mean():+.2f} ± {se:.2f} ({d.size} draws: {draws}): {verdict}")
    else:
        print(f"  {n} labels: {d.mean():+.2f} (one draw: no standard error)")
if not digits:
    print("paper (Table 1, 50,000 training images): " + "; ".join(
        f"{k} {n}: {m:.2f} ± {s:.2f}" for k, v in PAPER.items() for n, (m, s) in v.items()))

# %% figure: test error against the number of labels
fig = plotting.new_figure((7.0, 4.5))
ax = fig.add_subplot(1, 1, 1)
for name, by_n in results.items():
    ns = sorted(by_n)
    ax.plot(ns, [np.mean(by_n[n]) for n in ns], "o-", label=name)
if not digits:
    for (name, rows), marker in zip(PAPER.items(), ("s", "D")):
        ns = sorted(rows)
        ax.errorbar(ns, [rows[n][0] for n in ns], yerr=[rows[n][1] for n in ns], fmt=marker, mfc="none",
                    color="gray", capsize=3, label=f"paper: {name} (50k images, long training)")
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(budgets)
ax.set_xticklabels([str(n) for n in budgets])
ax.set_xlabel("labelled training images")
ax.set_ylabel("test error (%)")
ax.set_title(f"semi-supervised {'digits' if digits else 'MNIST'}: {N} training images, "
             f"{X_test.shape[0]} test")
ax.legend(fontsize=7)
fig.tight_layout()
plotting.save_figure(fig, out("semisupervised.png"))
print(f"wrote {out('semisupervised.png')}")

# %% M2 as a generator: one row per class, the same style z down each column
m2, n = samples_model
Z = np.random.default_rng(args.seed).standard_normal((10, m2.latent_dim))
images = np.concatenate([m2.decode(Z, np.full(10, c)) for c in range(K)])
plotting.image_grid(images, (image_side, image_side), n_cols=10, row_labels=[str(c) for c in range(K)],
                    title=f"M2 trained with {n} labels: rows = class y, columns = the same z",
                    path=out("semisupervised_samples.png"))
print(f"wrote {out('semisupervised_samples.png')}")
with open(out("semisupervised.json"), "w") as fh:
    json.dump({"alpha": args.alpha, "m1m2_alpha": args.m1m2_alpha, "bernoulli_m1m2_error": bernoulli_error,
               "n_train": N, "n_test": int(X_test.shape[0]), "m1_active": int(active.size),
               "results": {k: {str(n): v for n, v in by_n.items()} for k, by_n in results.items()}},
              fh, indent=1)
print(f"wrote {out('semisupervised.json')}")
