"""Jensen's inequality and the gap log p(x) − ELBO = KL(q ‖ p(z|x)), drawn on a model where every
term is exact.

The model is the smallest latent-variable model with an exact evidence and posterior, a 1-D
linear-Gaussian one: z ~ N(0, 1), x | z ~ N(w z + b, s²). Then p(x) = N(x; b, w² + s²) and the
posterior p(z|x) is Gaussian with variance v = s² / (w² + s²) and mean v w (x − b) / s². For a
Gaussian q(z) = N(m, σ²) the ELBO has a closed form too, so nothing below is estimated except the
Jensen panel's sample (docs/derivations/evidence.md has every formula).

Figure ``elbo_gap.png``:
(a) Jensen: the ratios r = p(x, z) / q(z) at draws z ~ q, put on the log curve; the mean of their
    logs (the ELBO) lies below the log of their mean (→ log p(x)).
(b) the ELBO as q's mean m moves, for two widths σ, under the flat line log p(x); the gap between
    them is drawn from its own formula KL(q ‖ p(z|x)) (dots) and lies on the difference.
(c) the exact posterior and two q's with their ELBO and KL.
(d) log p(x) as a function of the model parameter w, and the ELBO for q fixed at the posterior of
    two values of w: each touches log p(x) where q is exact and lies below it elsewhere (the notes'
    picture of a bound raised by moving q or the model).
Lecture idea: the ELBO (lectures 001, 003): log p(x) = ELBO + KL(q ‖ p(z|x)), and Jensen's
inequality. Docs: docs/derivations/evidence.md, docs/derivations/elbo.md.

    python demos/elbo_gap.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

from npae import plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="the same figure (there is nothing to train)")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--x", type=float, default=2.0, help="the observed x")
parser.add_argument("--w", type=float, default=1.5, help="decoder weight")
parser.add_argument("--b", type=float, default=0.0, help="decoder bias")
parser.add_argument("--s", type=float, default=0.5, help="decoder noise standard deviation")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
x, w, b, s = args.x, args.w, args.b, args.s
LOG_2PI = np.log(2 * np.pi)


# %% the exact quantities
def log_evidence(w):
    """log p(x) = log N(x; b, w² + s²)."""
    var = w * w + s * s
    return -0.5 * (LOG_2PI + np.log(var) + (x - b) ** 2 / var)


def posterior(w):
    """Mean and variance of p(z | x)."""
    v = s * s / (w * w + s * s)
    return v * w * (x - b) / (s * s), v


def elbo(m, sd, w):
    """E_q[log p(x|z)] − KL(q ‖ N(0, 1)) for q = N(m, sd²), in closed form."""
    expected_loglik = -0.5 * (LOG_2PI + np.log(s * s) + ((x - b - w * m) ** 2 + w * w * sd * sd) / (s * s))
    kl_prior = 0.5 * (m * m + sd * sd - 1.0 - np.log(sd * sd))
    return expected_loglik - kl_prior


def kl_to_posterior(m, sd, w):
    """KL(N(m, sd²) ‖ p(z|x)) from the formula for two 1-D Gaussians (not from the ELBO)."""
    pm, pv = posterior(w)
    return 0.5 * (np.log(pv / (sd * sd)) + (sd * sd + (m - pm) ** 2) / pv - 1.0)


pm, pv = posterior(w)
lp = log_evidence(w)
print(f"model: z ~ N(0, 1), x | z ~ N({w:g} z + {b:g}, {s:g}²); observed x = {x:g}")
print(f"log p(x) = {lp:.4f}; posterior p(z|x) = N({pm:.4f}, {pv:.4f})")
ms = np.linspace(pm - 1.0, pm + 1.0, 201)
widths = (np.sqrt(pv), 2.0 * np.sqrt(pv))
worst = max(float(np.max(np.abs(lp - elbo(ms, sd, w) - kl_to_posterior(ms, sd, w)))) for sd in widths)
print(f"max over the drawn q's of |log p(x) − ELBO − KL(q ‖ p(z|x))| = {worst:.2e} (the identity holds)")
print(f"at q = the posterior: ELBO = {elbo(pm, np.sqrt(pv), w):.6f} = log p(x) (gap "
      f"{lp - elbo(pm, np.sqrt(pv), w):.1e})")

# %% Jensen: draws z ~ q, ratios r = p(x, z) / q(z)
q_m, q_sd = pm + 0.6, 1.6 * np.sqrt(pv)  # a q that is not the posterior
z = q_m + q_sd * np.random.default_rng(args.seed).standard_normal(8)
log_joint = (-0.5 * (LOG_2PI + np.log(s * s) + (x - b - w * z) ** 2 / (s * s))
             - 0.5 * (LOG_2PI + z * z))
log_q = -0.5 * (LOG_2PI + np.log(q_sd * q_sd) + (z - q_m) ** 2 / (q_sd * q_sd))
r = np.exp(log_joint - log_q)
print(f"Jensen with {len(r)} draws from q = N({q_m:.3f}, {q_sd:.3f}²): mean of log r = "
      f"{np.mean(np.log(r)):.3f} ≤ log of mean r = {np.log(np.mean(r)):.3f}; as the draws grow these tend "
      f"to ELBO = {elbo(q_m, q_sd, w):.3f} and log p(x) = {lp:.3f}")

# %% figure
fig = plotting.new_figure((13.0, 9.5))
ax = fig.add_subplot(2, 2, 1)
grid = np.linspace(0.5 * r.min(), 1.3 * r.max(), 300)
ax.plot(grid, np.log(grid), color="black", label="log r (concave)")
ax.scatter(r, np.log(r), color="C0", zorder=3, label=f"{len(r)} draws z ~ q: (r, log r)")
ax.scatter([r.mean()], [np.mean(np.log(r))], color="C1", s=70, zorder=4, marker="D",
           label=f"(mean r, mean log r): mean log r = {np.mean(np.log(r)):.2f}")
ax.scatter([r.mean()], [np.log(r.mean())], color="C3", s=70, zorder=4, marker="*",
           label=f"(mean r, log mean r): log mean r = {np.log(r.mean()):.2f}")
ax.vlines(r.mean(), np.mean(np.log(r)), np.log(r.mean()), color="C3", linestyle=":")
ax.set_xlabel("r = p(x, z) / q(z)")
ax.set_ylabel("log r")
ax.set_title("(a) Jensen: E[log r] ≤ log E[r]\n(E_q[log r] is the ELBO, log E_q[r] is log p(x))",
             fontsize=9)
ax.legend(fontsize=7, loc="lower right")

ax = fig.add_subplot(2, 2, 2)
ax.axhline(lp, color="black", label=f"log p(x) = {lp:.3f}")
for i, sd in enumerate(widths):
    e = elbo(ms, sd, w)
    ax.plot(ms, e, color=f"C{i}",
            label=f"ELBO, q width σ = {sd:.3f}" + (" (the posterior's)" if i == 0 else ""))
    every = slice(0, None, 20)
    ax.scatter(ms[every], lp - kl_to_posterior(ms[every], sd, w), color=f"C{i}", s=14, marker="o",
               facecolors="none", label="log p(x) − KL(q ‖ p(z|x)), from its own formula" if i == 0 else None)
ax.axvline(pm, color="0.6", linestyle=":", linewidth=1)
m_at = pm + 0.5  # the gap drawn as an arrow at one q
e_at = elbo(m_at, widths[1], w)
ax.annotate("", xy=(m_at, lp), xytext=(m_at, e_at), arrowprops=dict(arrowstyle="<->", color="C3"))
ax.text(m_at + 0.03, 0.5 * (lp + e_at), f"gap = KL(q ‖ p(z|x))\n= {lp - e_at:.3f} nats", color="C3",
        fontsize=8, va="center")
ax.set_ylim(lp - 3.5, lp + 1.6)
ax.set_xlabel("q's mean m (dotted: the posterior mean)")
ax.set_ylabel("nats")
ax.set_title(f"(b) the gap log p(x) − ELBO is KL(q ‖ p(z|x)): max mismatch {worst:.1e}", fontsize=9)
ax.legend(fontsize=7, loc="upper center")

ax = fig.add_subplot(2, 2, 3)
zz = np.linspace(pm - 4 * np.sqrt(pv) - 1, pm + 4 * np.sqrt(pv) + 1, 400)


def density(zz, m, v):
    return np.exp(-0.5 * (zz - m) ** 2 / v) / np.sqrt(2 * np.pi * v)


ax.plot(zz, density(zz, 0.0, 1.0), color="0.6", linestyle="--", label="prior p(z) = N(0, 1)")
ax.plot(zz, density(zz, pm, pv), color="black", linewidth=2, label="posterior p(z|x) (exact)")
for i, (m, sd) in enumerate(((pm, np.sqrt(pv)), (q_m, q_sd))):
    ax.plot(zz, density(zz, m, sd * sd), color=f"C{i + 2}", linestyle="-" if i else ":",
            label=f"q = N({m:.2f}, {sd:.2f}²): ELBO {elbo(m, sd, w):.3f}, KL {kl_to_posterior(m, sd, w):.3f}")
ax.set_xlabel("z")
ax.set_ylabel("density")
ax.set_title(f"(c) x = {x:g}: prior, posterior and two q's", fontsize=9)
ax.legend(fontsize=7)

ax = fig.add_subplot(2, 2, 4)
ws = np.linspace(0.2, 3.5, 300)
ax.plot(ws, log_evidence(ws), color="black", linewidth=2, label="log p(x) as a function of w")
for i, w0 in enumerate((0.7, 2.5)):
    m0, v0 = posterior(w0)
    ax.plot(ws, elbo(m0, np.sqrt(v0), ws), color=f"C{i}",
            label=f"ELBO(w), q fixed at p(z|x) of w = {w0:g}")
    ax.scatter([w0], [log_evidence(w0)], color=f"C{i}", zorder=3)
ax.set_ylim(log_evidence(ws).min() - 2, log_evidence(ws).max() + 0.5)
ax.set_xlabel("model parameter w")
ax.set_ylabel("nats")
ax.set_title("(d) the ELBO lies below log p(x) for every w and touches it\nwhere q is that w's posterior",
             fontsize=9)
ax.legend(fontsize=7, loc="lower right")
fig.suptitle("1-D linear-Gaussian model: z ~ N(0, 1), x | z ~ N(w z + b, s²), every term exact")
fig.tight_layout()
path = os.path.join(args.out, "elbo_gap.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
