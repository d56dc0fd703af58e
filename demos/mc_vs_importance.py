"""Estimating p(x) by Monte Carlo: sampling z from the prior against importance sampling from q(z|x).

p(x) = ∫ p(x|z) p(z) dz. The naive estimate averages p(x|z_i) over z_i ~ p(z); importance sampling
averages p(x|z_i) p(z_i) / q(z_i) over z_i ~ q, a distribution put where the posterior is. Both are
unbiased for p(x) (their logs are biased low, by Jensen); they differ in spread. The naive one
wastes nearly every draw when p(x|z) is negligible over most of the prior, the lecture's point.

Two settings, each estimate repeated with fresh draws at every sample size N:
(left) a 1-D linear-Gaussian model, z ~ N(0, 1), x | z ~ N(w z, s²), with a narrow likelihood, so
       log p(x) is known exactly; q is a Gaussian near the exact posterior but not equal to it;
(middle) a VAE with an 8-D code trained on the bundled digits, a held-out digit; q is the encoder's
       q(z|x) (this is the IWAE estimate); the reference line is the importance-sampled estimate at
       the largest N, the best estimate available;
(right) the spread (standard deviation over repeats of the log-estimate) against N, both settings.

Figure ``mc_vs_importance.png``: the median and the 10-90% band of log p̂(x) against N.
Lecture idea: "Monte Carlo needs too many samples; sample z where it explains x" (lectures 000, 003).
Docs: docs/derivations/evidence.md, docs/derivations/iwae.md.

    python demos/mc_vs_importance.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting
from npae.pairs.latent import logmeanexp

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer repeats and a shorter training")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
repeats = 10 if args.quick else 30
sizes = [1, 10, 100, 1000] if args.quick else [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)
LOG_2PI = np.log(2 * np.pi)

# %% 1-D linear-Gaussian model with a narrow likelihood
w, s, x = 1.0, 0.05, 2.5
log_px = -0.5 * (LOG_2PI + np.log(w * w + s * s) + x * x / (w * w + s * s))  # exact
post_var = s * s / (w * w + s * s)
post_mean = post_var * w * x / (s * s)
q_mean, q_sd = post_mean + 0.5 * np.sqrt(post_var), 1.5 * np.sqrt(post_var)  # near, not equal


def log_lik(z):
    return -0.5 * (LOG_2PI + np.log(s * s) + (x - w * z) ** 2 / (s * s))


def toy_estimates(n):
    """(repeats,) naive and importance-sampled log p̂(x) with n draws each."""
    z = rng.standard_normal((repeats, n))  # z ~ p(z)
    naive = logmeanexp(log_lik(z), axis=1)
    z = q_mean + q_sd * rng.standard_normal((repeats, n))  # z ~ q(z)
    log_prior = -0.5 * (LOG_2PI + z * z)
    log_q = -0.5 * (LOG_2PI + np.log(q_sd ** 2) + (z - q_mean) ** 2 / q_sd ** 2)
    return naive, logmeanexp(log_lik(z) + log_prior - log_q, axis=1)


toy = {n: toy_estimates(n) for n in sizes}
print(f"1-D model: w = {w:g}, s = {s:g}, x = {x:g}: exact log p(x) = {log_px:.4f}; "
      f"q = N({q_mean:.3f}, {q_sd:.3f}²), posterior N({post_mean:.3f}, {np.sqrt(post_var):.3f}²)")
for n, (naive, imp) in toy.items():
    print(f"  N = {n:>5}: naive {np.median(naive):8.3f} (sd {naive.std():.3f}) | "
          f"importance {np.median(imp):8.3f} (sd {imp.std():.4f})")

# %% a VAE on the digits: naive prior sampling against q(z|x)
X, _ = datasets.load_digits()
vae = npae.VAE(64, hidden=(128,), latent_dim=8, seed=args.seed)
vae.fit(X[:1500], epochs=20 if args.quick else 100, batch_size=64, lr=2e-3, progress=False)
h = vae.history_
print(f"VAE 64-128-8: epoch {len(h['loss'])} | " + " | ".join(f"{k} {v[-1]:.2f}" for k, v in h.items()))
x_digit = X[1500:1501]  # one held-out digit, (1, 64)


def naive_digit(n, seed):
    """log (1/n) Σ p(x|z_i), z_i ~ N(0, I), in chunks."""
    r = np.random.default_rng([args.seed, seed])
    parts = []
    for start in range(0, n, 2000):
        z = r.standard_normal((min(2000, n - start), 1, 8))  # (S, 1, Z)
        parts.append(-vae.reconstruction_nll(z, x_digit)[0][:, 0])  # (S,) log p(x|z)
    return float(logmeanexp(np.concatenate(parts)))


digit = {n: (np.array([naive_digit(n, i) for i in range(repeats)]),
             np.array([vae.log_likelihood_estimate(x_digit, k=n, seed=1000 + i, chunk=min(n, 2000))
                       for i in range(repeats)]))
         for n in sizes}
reference = float(np.median(digit[sizes[-1]][1]))
print(f"held-out digit: importance-sampled log p̂(x) at N = {sizes[-1]}: {reference:.3f} "
      f"(median of {repeats})")
for n, (naive, imp) in digit.items():
    print(f"  N = {n:>5}: naive {np.median(naive):8.3f} (sd {naive.std():.3f}) | "
          f"importance {np.median(imp):8.3f} (sd {imp.std():.4f})")

# %% figure
fig = plotting.new_figure((15.0, 4.8))
for col, (name, results, truth, label) in enumerate((
        ("1-D linear-Gaussian model", toy, log_px, "exact log p(x)"),
        ("VAE 64-128-8 on digits, one held-out digit", digit, reference,
         f"importance sampling at N = {sizes[-1]}"))):
    ax = fig.add_subplot(1, 3, col + 1)
    for i, (arm, title) in enumerate(((0, "prior sampling z ~ p(z)"), (1, "importance sampling z ~ q(z|x)"))):
        lo = [np.quantile(results[n][arm], 0.1) for n in sizes]
        mid = [np.median(results[n][arm]) for n in sizes]
        hi = [np.quantile(results[n][arm], 0.9) for n in sizes]
        ax.fill_between(sizes, lo, hi, color=f"C{i}", alpha=0.25)
        ax.plot(sizes, mid, color=f"C{i}", marker="o", markersize=3, label=f"{title}: median, 10-90%")
    ax.axhline(truth, color="black", linestyle="--", linewidth=1, label=label)
    ax.set_xscale("log")
    ax.set_ylim(truth - 25 if col else truth - 12, truth + 3)
    ax.set_xlabel("number of samples N")
    ax.set_ylabel("log p̂(x) (nats)")
    ax.set_title(f"{name}\n{repeats} repeats per N", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
ax = fig.add_subplot(1, 3, 3)
for results, style, name in ((toy, "-", "1-D model"), (digit, "--", "VAE, digit")):
    for i, arm in enumerate(("prior", "importance")):
        ax.plot(sizes, [max(results[n][i].std(), 1e-6) for n in sizes], linestyle=style, marker="o",
                markersize=3, color=f"C{i}", label=f"{name}: {arm} sampling")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("number of samples N")
ax.set_ylabel("standard deviation of log p̂(x) over repeats")
ax.set_title("spread of the estimate", fontsize=9)
ax.legend(fontsize=7)
fig.suptitle("Monte Carlo estimates of log p(x): sampling the prior wastes draws; q(z|x) puts them "
             "where x is explained", fontsize=10)
fig.tight_layout()
path = os.path.join(args.out, "mc_vs_importance.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
