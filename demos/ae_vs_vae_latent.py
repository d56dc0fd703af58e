"""The problem with autoencoders, measured at 2-D: holes in the AE's code space, and no prior to sample.

The same 64-128-2 network is trained on the bundled digits as an autoencoder and as a VAE, once per
seed (paired: both models of a seed share the seed and the data). The lectures (000, 001, 004) draw
this 2-D case and make two claims about the AE; each gets its own number here:

* **holes**: a regular grid over the box the training codes span (min ... max per axis) is
  decoded; a grid point sits in a hole when its decoding is *far from the data*: farther from every
  training image than 95% of real held-out digits are (the 95th percentile of their distance to the
  nearest training image). Measured in image space, so the two models' code scales do not matter.
* **no prior to sample**: a VAE is sampled by decoding z ~ N(0, I). An AE has no such rule; the
  two a student would try are N(0, I) itself ("stick close to (0, 0)") and a Gaussian fitted to the
  AE's training codes. Each set of 1,000 decodings is scored by a classifier trained on real digits
  (share with max softmax > 0.9), by how many classes it shows (the exponential of the entropy of
  the predicted labels: 10 when every digit appears equally often, 1 for one digit only) and by the
  share far from the data.

Every number is the mean over seeds with its standard error; the VAE - AE differences are paired by
seed. What the numbers show, at 2-D: the AE's grid has holes and the VAE's has almost none; N(0, I)
on the AE gives a few digits only; but a Gaussian fitted to the AE's codes is a fair sampler at 2-D
(the classifier is as confident or more on its sharper decodings). The same comparison with a 20-D
code (bottom row, one seed) is where "decode an arbitrary code" fails plainly for the AE.

Figure ``ae_vs_vae_latent.png``: rows 1-2, for the AE and the VAE of the first seed, the training
codes coloured by class with the grid over them (a red cross where the decoding is far from the
data: a hole), the decoded grid (z1 grows to the right, z2 upwards) and the prior
samples; the AE's row has both samplers; the last panel of row 2 shows every measure (mean ± SE
over seeds); row 3, decodings of codes drawn uniformly in the box of a 20-D code, AE and VAE.
Lecture idea: "the problem with autoencoders" (lectures 000, 001, 004): an AE's code space has
gaps and no prior to sample from; the VAE's KL term makes the prior the place to sample.
Docs: docs/semisupervised.md#the-problem-with-autoencoders, docs/derivations/elbo.md.

    python demos/ae_vs_vae_latent.py [--quick] [--out DIR] [--seeds N]
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
parser.add_argument("--seed", type=int, default=0, help="first seed; the others follow it")
parser.add_argument("--seeds", type=int, default=None, help="number of paired seeds (default 5, quick 2)")
parser.add_argument("--grid", type=int, default=20, help="grid points per axis")
parser.add_argument("--samples", type=int, default=1000, help="prior draws per model and seed")
parser.add_argument("--confident", type=float, default=0.9, help="max softmax that counts as recognised")
parser.add_argument("--big-latent", type=int, default=20, help="latent size of the last comparison")
args = parser.parse_args()
epochs, judge_epochs = (15, 15) if args.quick else (150, 60)
n_seeds = args.seeds or (2 if args.quick else 5)
seeds = [args.seed + i for i in range(n_seeds)]
os.makedirs(args.out, exist_ok=True)

# %% data and a judge: an MLP 64-128-10 trained on real digits
X, y = datasets.load_digits()
X_train, y_train, X_test, y_test = X[:1500], y[:1500], X[1500:], y[1500:]
judge = npae.Classifier(npae.Sequential([npae.Dense(64, 128, rng=args.seed), npae.ReLU()]), 10,
                        freeze_encoder=False, seed=args.seed)
judge.fit(X_train, y_train, epochs=judge_epochs, batch_size=32, lr=1e-3, progress=False)
print(f"judge: an MLP 64-128-10 on real digits, held-out accuracy {judge.score(X_test, y_test):.3f}")


def nearest_distance(A, B):
    """(len(A),) Euclidean distance from each row of A to its nearest row of B."""
    d2 = np.sum(A * A, axis=1)[:, None] + np.sum(B * B, axis=1)[None, :] - 2.0 * A @ B.T  # (n, m)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


# a decoding is "far from the data" beyond the distance that 95% of real held-out digits stay within
far = float(np.quantile(nearest_distance(X_test, X_train), 0.95))
real = judge.predict_proba(X_test).max(axis=1)
print(f"real held-out digits: {100 * np.mean(real > args.confident):.1f}% recognised with max softmax > "
      f"{args.confident}; 95% lie within {far:.3f} of a training digit (the 'far from the data' line)")


def judge_images(images):
    """The three scores of a set of decodings."""
    p = judge.predict_proba(images)  # (n, 10)
    share = np.bincount(p.argmax(axis=1), minlength=10) / len(p)
    nz = share[share > 0]
    return {"recognised %": 100 * float(np.mean(p.max(axis=1) > args.confident)),
            "classes shown": float(np.exp(-np.sum(nz * np.log(nz)))),
            "far from data %": 100 * float(np.mean(nearest_distance(images, X_train) > far))}


def regular_grid(codes, n):
    """(n*n, 2) codes on a regular grid from min to max of each axis; row 0 at the top (z2 max)."""
    lo, hi = codes.min(axis=0), codes.max(axis=0)
    z1, z2 = np.linspace(lo[0], hi[0], n), np.linspace(hi[1], lo[1], n)
    return np.stack(np.meshgrid(z1, z2), axis=-1).reshape(-1, 2)


# %% per seed: train both models, measure the grid and the samplers
n = args.grid
rows = []  # one dict of measures per seed
shown = {}  # the first seed's arrays, for the figure
for seed in seeds:
    models = {"AE": npae.Autoencoder(64, hidden=(128,), latent_dim=2, seed=seed),
              "VAE": npae.VAE(64, hidden=(128,), latent_dim=2, seed=seed)}
    row = {}
    for name, model in models.items():
        model.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
        h = model.history_
        print(f"seed {seed} {name}: epoch {len(h['loss'])} | "
              + " | ".join(f"{k} {v[-1]:.2f}" for k, v in h.items()))
        codes = model.encode(X_train)  # (N, 2), posterior means for the VAE
        grid = regular_grid(codes, n)
        images = model.decode(grid)  # (n*n, 64)
        away = nearest_distance(images, X_train) > far
        row[f"{name} grid: far from data %"] = 100 * float(np.mean(away))
        if seed == seeds[0]:
            shown[name] = dict(codes=codes, grid=grid, images=images, away=away)
    Z = np.random.default_rng([seed, 2]).standard_normal((args.samples, 2))  # the same draws for all
    codes = models["AE"].encode(X_train)
    fitted = codes.mean(axis=0) + Z @ np.linalg.cholesky(np.cov(codes.T)).T  # N(mean, cov of codes)
    samplers = {"VAE, z ~ N(0, I)": models["VAE"].decode(Z), "AE, z ~ N(0, I)": models["AE"].decode(Z),
                "AE, z ~ Gaussian fit to its codes": models["AE"].decode(fitted)}
    for name, images in samplers.items():
        for k, v in judge_images(images).items():
            row[f"{name}: {k}"] = v
        if seed == seeds[0]:
            shown[name] = images
    rows.append(row)
    print(f"seed {seed}: " + "; ".join(f"{k} {v:.1f}" for k, v in row.items()))


# %% the numbers, mean ± SE over seeds, and paired VAE − AE differences
def mean_se(values):
    values = np.asarray(values, dtype=np.float64)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


table = {k: mean_se([r[k] for r in rows]) for k in rows[0]}
print(f"\n{len(seeds)} paired seeds {seeds}, {epochs} epochs, {n}x{n} grid, "
      f"{args.samples} draws per sampler:")
for k, (m, se) in table.items():
    print(f"  {k:<52} {m:7.2f} ± {se:.2f}")
pairs = [("grid: far from data %", "VAE grid: far from data %", "AE grid: far from data %")]
for measure in ("recognised %", "classes shown", "far from data %"):
    for ae in ("AE, z ~ N(0, I)", "AE, z ~ Gaussian fit to its codes"):
        pairs.append((f"samples: {measure} (VAE - {ae})", f"VAE, z ~ N(0, I): {measure}", f"{ae}: {measure}"))
print("paired differences VAE - AE (mean ± SE over seeds):")
paired = []
for label, a, b in pairs:
    m, se = mean_se([r[a] - r[b] for r in rows])
    paired.append(f"{label:<64} {m:+7.2f} ± {se:.2f}")
    print("  " + paired[-1])

# %% a larger code, one seed: random points in the box the codes span
# With 20 latents the codes fill a thin part of their bounding box, and a point drawn uniformly in
# that box (the lectures' "decode an arbitrary z") mostly lands in a gap of the AE's code space.
box = {}
for name, make in (("AE", npae.Autoencoder), ("VAE", npae.VAE)):
    model = make(64, hidden=(128,), latent_dim=args.big_latent, seed=args.seed)
    model.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    codes = model.encode(X_train)
    Z = np.random.default_rng(args.seed).uniform(codes.min(axis=0), codes.max(axis=0),
                                                 (1000, args.big_latent))
    images = model.decode(Z)
    box[name] = dict(images=images, **judge_images(images))
    print(f"{args.big_latent}-D {name} (seed {args.seed}): of 1,000 decodings of codes drawn uniformly in "
          f"the "
          f"box of the training codes' range, {box[name]['recognised %']:.1f}% recognised, "
          f"{box[name]['far from data %']:.1f}% far from the data")


# %% figure
def tiles(ax, images, n_rows, n_cols, title):
    t = images[:n_rows * n_cols].reshape(n_rows, n_cols, 8, 8)
    canvas = np.ones((n_rows * 9 + 1, n_cols * 9 + 1))
    for i in range(n_rows):
        for j in range(n_cols):
            canvas[1 + 9 * i:9 * (i + 1), 1 + 9 * j:9 * (j + 1)] = t[i, j]
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def scores_of(name):
    return (f"seed {seeds[0]}: {rows[0][name + ': recognised %']:.0f}% recognised, "
            f"{rows[0][name + ': classes shown']:.1f} classes,\n"
            f"{rows[0][name + ': far from data %']:.1f}% far from the data")


fig = plotting.new_figure((17.0, 12.5))
cmap = colormaps["tab10"]
order = np.random.default_rng(args.seed).permutation(len(y_train))
for r, name in enumerate(("AE", "VAE")):
    s = shown[name]
    ax = fig.add_subplot(3, 4, 4 * r + 1)
    ax.scatter(s["codes"][order, 0], s["codes"][order, 1], s=6, alpha=0.6, linewidths=0,
               color=cmap(y_train[order]))
    ax.scatter(s["grid"][:, 0], s["grid"][:, 1], s=2, color="black", label="grid point")
    ax.scatter(s["grid"][s["away"], 0], s["grid"][s["away"], 1], s=18, color="red", marker="x",
               linewidths=1.0, label="decoding far from the data (a hole)")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(f"{name} (seed {seeds[0]}): training codes (colour = class),\n{n}x{n} grid: "
                 f"{100 * np.mean(s['away']):.1f}% of decodings far from the data "
                 f"({table[name + ' grid: far from data %'][0]:.1f}% over {len(seeds)} seeds)",
                 fontsize=8)
    ax.legend(fontsize=6, loc="upper right", framealpha=0.8)
    tiles(fig.add_subplot(3, 4, 4 * r + 2), s["images"], n, n,
          f"{name}: the grid decoded (z1 →, z2 ↑)")
tiles(fig.add_subplot(3, 4, 3), shown["AE, z ~ N(0, I)"], 8, 10,
      "AE decoding z ~ N(0, I)\n" + scores_of("AE, z ~ N(0, I)"))
tiles(fig.add_subplot(3, 4, 4), shown["AE, z ~ Gaussian fit to its codes"], 8, 10,
      "AE decoding z ~ a Gaussian fitted to its codes\n" + scores_of("AE, z ~ Gaussian fit to its codes"))
tiles(fig.add_subplot(3, 4, 7), shown["VAE, z ~ N(0, I)"], 8, 10,
      "VAE decoding z ~ N(0, I), its prior\n" + scores_of("VAE, z ~ N(0, I)"))
ax = fig.add_subplot(3, 4, 8)
arms = ["VAE, z ~ N(0, I)", "AE, z ~ N(0, I)", "AE, z ~ Gaussian fit to its codes"]
measures = ["recognised %", "far from data %", "classes shown"]
width = 0.27
for i, arm in enumerate(arms):
    m = [table[f"{arm}: {k}"][0] * (10 if k == "classes shown" else 1) for k in measures]
    se = [table[f"{arm}: {k}"][1] * (10 if k == "classes shown" else 1) for k in measures]
    ax.bar(np.arange(3) + (i - 1) * width, m, width, yerr=se, capsize=3, color=f"C{i}", label=arm)
ax.set_xticks(np.arange(3))
ax.set_xticklabels(["recognised %", "far from data %", "classes shown × 10"], fontsize=7)
ax.set_ylabel("mean ± SE over seeds")
ax.set_title(f"the samplers over {len(seeds)} seeds ({args.samples} draws each)", fontsize=8)
ax.legend(fontsize=6)
for c, name in enumerate(("AE", "VAE")):
    tiles(fig.add_subplot(3, 4, 9 + c), box[name]["images"], 6, 10,
          f"{args.big_latent}-D {name} (seed {args.seed}): codes uniform in the box of the codes' range\n"
          f"{box[name]['recognised %']:.0f}% recognised, "
          f"{box[name]['far from data %']:.0f}% far from the data")
ax = fig.add_subplot(3, 2, 6)
ax.axis("off")
ax.text(0.0, 1.0, f"paired differences VAE − AE, mean ± SE over {len(seeds)} seeds {seeds}\n\n"
        + "\n".join(paired), family="monospace", fontsize=7, va="top")
fig.suptitle("the same 64-128-2 network as an autoencoder and as a VAE: holes in the code space, "
             "and sampling")
fig.tight_layout()
path = os.path.join(args.out, "ae_vs_vae_latent.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
