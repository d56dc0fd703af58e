"""Score function against pathwise: two unbiased estimators of the same encoder gradient, with very
different variances.

Figure ``estimator_variance.png``: left, the per-draw variance (trace of the covariance) of the
score-function estimator, with and without a leave-one-out baseline, and of the pathwise
(reparameterization) estimator, on a log scale; right, the per-draw estimates of one coordinate.
Lecture idea: why the reparameterization trick. Docs: docs/derivations/score.md.

    python demos/estimator_variance.py [--quick] [--out DIR] [--samples 1000]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.training.report import print_history
from npae.models.estimators import compare_estimators, encoder_gradient_estimates

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--samples", type=int, default=None, help="S, draws per estimator")
args = parser.parse_args()
epochs, S = (5, 200) if args.quick else (30, 2000)
S = args.samples or S
os.makedirs(args.out, exist_ok=True)

# %% a small VAE, trained a little so the gradient is not a random-init artefact
X, y = datasets.load_digits()
vae = npae.VAE(64, hidden=(32,), latent_dim=4, seed=args.seed)
print_history(vae.fit(X[:1500], epochs=epochs, batch_size=64, lr=2e-3, progress=False).history_, max_lines=3)

# %% S per-draw estimates of the encoder gradient on one batch of 16 digits
est = encoder_gradient_estimates(vae, X[1500:1516], n_samples=S, seed=args.seed)
summary = compare_estimators(est)
path_mean = summary["pathwise"]["mean"]
for name, s in summary.items():
    # distance of each S-sample mean to the pathwise mean, in units of its own standard error
    se = np.sqrt(np.var(est[name], axis=0, ddof=1) / S + np.var(est["pathwise"], axis=0, ddof=1) / S)
    z = np.abs(s["mean"] - path_mean) / np.where(se > 0, se, 1.0)
    print(f"{name:15s} variance {s['variance']:.4g} ({s['ratio_to_pathwise']:.1f}x pathwise); "
          f"mean agrees with pathwise: median |z| {np.median(z):.2f} over {z.size} coordinates")

# %% figure
fig = plotting.new_figure((10, 3.8))
ax = fig.add_subplot(1, 2, 1)
names = list(summary)
ax.bar(names, [summary[n]["variance"] for n in names], color=["C0", "C1", "C2"])
ax.set_yscale("log")
ax.set_title(f"per-draw variance (S = {S})")
ax = fig.add_subplot(1, 2, 2)
k = int(np.argmax(np.abs(path_mean)))
for i, name in enumerate(names):
    ax.hist(est[name][:, k], bins=40, alpha=0.5, density=True, label=name, color=f"C{i}")
ax.axvline(path_mean[k], color="k", ls="--")
ax.set_title(f"estimates of {est['names'][0].split('.')[0]} coordinate {k}")
ax.legend(fontsize=8)
path = plotting.save_figure(fig, os.path.join(args.out, "estimator_variance.png"))
print(f"the score-function estimator is {summary['score']['ratio_to_pathwise']:.0f}x noisier per draw "
      f"than pathwise ({summary['score_baseline']['ratio_to_pathwise']:.0f}x with a baseline)")
print(f"wrote {path}")
