"""What β does: from β = 0 (the autoencoder limit) to large β (every unit collapses to the prior).

The VAE's loss is recon + β KL(q(z|x) ‖ N(0, I)). A 64-128-8 VAE is trained on the bundled digits
at each β of a sweep (same seed, same data); on the held-out digits the demo measures
* the posterior widths: the median σ = exp(logvar / 2) over held-out digits and latents, against
  the prior's 1. At β = 0 nothing pays for a wide posterior, the decoder gains from a precise code,
  and σ shrinks toward a point: the model becomes a (noisy) autoencoder;
* the active units: latents whose posterior mean varies across the data (Var_x(mu_j) > 0.01). As β
  grows each unit's information costs more than it returns, and units collapse to the prior one
  after another until none is left;
* the two terms, reconstruction and KL (nats per digit).

Figure ``beta_sweep.png``: the three measures against β, and a row of prior samples per β (β = 0
samples badly: its codes do not fill N(0, I); large β samples one blurry average).
Lecture idea: the β that weights the KL (lectures 000, 001, 004): between the AE (β = 0) and
posterior collapse (large β). Docs: docs/derivations/capacity.md, docs/derivations/elbo.md.

    python demos/beta_sweep.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os
import warnings

import numpy as np

import npae
from npae import datasets, plotting
from npae.models.vae import CollapseWarning

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="three β and a short training")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--latent", type=int, default=8)
args = parser.parse_args()
betas = [0.0, 1.0, 8.0] if args.quick else [0.0, 0.1, 0.3, 1.0, 2.0, 4.0, 8.0, 16.0]
epochs = 30 if args.quick else 150
os.makedirs(args.out, exist_ok=True)

X, _ = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]

# %% one VAE per β
rows = []
for beta in betas:
    vae = npae.VAE(64, hidden=(128,), latent_dim=args.latent, beta=beta, seed=args.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CollapseWarning)
        vae.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    collapsed = any(issubclass(w.category, CollapseWarning) for w in caught)
    mu, logvar = vae.encode_stats(X_test)  # (N, Z) each
    terms = vae.evaluate(X_test, seed=args.seed)
    row = dict(beta=beta, sigma=float(np.median(np.exp(0.5 * logvar))),
               sigma_lo=float(np.quantile(np.exp(0.5 * logvar), 0.1)),
               sigma_hi=float(np.quantile(np.exp(0.5 * logvar), 0.9)),
               active=vae.active_units(X_test), recon=float(terms["recon"]), kl=float(terms["kl"]),
               samples=vae.sample(10, seed=args.seed))
    rows.append(row)
    print(f"β = {beta:g}: epoch {epochs} | recon {row['recon']:.2f} | kl {row['kl']:.2f} | active units "
          f"{row['active']} of {args.latent} | posterior σ median {row['sigma']:.3g} (10-90%: "
          f"{row['sigma_lo']:.3g} … {row['sigma_hi']:.3g})" + (" | collapse warning" if collapsed else ""))

# %% figure
fig = plotting.new_figure((15.0, 8.5))
x = np.arange(len(betas))
labels = [f"{b:g}" for b in betas]
ax = fig.add_subplot(2, 3, 1)
ax.plot(x, [r["sigma"] for r in rows], marker="o", color="C0", label="median over digits and latents")
ax.fill_between(x, [r["sigma_lo"] for r in rows], [r["sigma_hi"] for r in rows], color="C0", alpha=0.2,
                label="10-90%")
ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="the prior's σ = 1")
ax.set_yscale("log")
ax.set_xticks(x)
ax.set_xticklabels(labels)
ax.set_xlabel("β")
ax.set_ylabel("posterior σ = exp(logvar / 2), held-out digits")
ax.set_title("posterior widths: points at β = 0, the prior at large β", fontsize=9)
ax.legend(fontsize=7)
ax = fig.add_subplot(2, 3, 2)
ax.bar(x, [r["active"] for r in rows], color="C1")
ax.set_xticks(x)
ax.set_xticklabels(labels)
ax.set_ylim(0, args.latent + 0.5)
ax.set_xlabel("β")
ax.set_ylabel(f"active units (of {args.latent}): Var_x(mu_j) > 0.01")
ax.set_title("active units: every latent used at small β, none at large β", fontsize=9)
ax = fig.add_subplot(2, 3, 3)
ax.plot(x, [r["recon"] for r in rows], marker="o", color="C2", label="reconstruction (nats per digit)")
ax.plot(x, [r["kl"] for r in rows], marker="s", color="C3", label="KL(q ‖ p) (nats per digit)")
ax.set_xticks(x)
ax.set_xticklabels(labels)
ax.set_xlabel("β")
ax.set_ylabel("held-out nats per digit")
ax.set_title("the two terms of the loss", fontsize=9)
ax.legend(fontsize=7)
ax = fig.add_subplot(2, 1, 2)
canvas = np.ones((len(rows) * 9 + 1, 10 * 9 + 1))
for i, r in enumerate(rows):
    for j in range(10):
        canvas[1 + 9 * i:9 * (i + 1), 1 + 9 * j:9 * (j + 1)] = r["samples"][j].reshape(8, 8)
ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
ax.set_xticks([])
ax.set_yticks(4.5 + 9 * np.arange(len(rows)))
ax.set_yticklabels([f"β = {b:g}" for b in betas], fontsize=8)
ax.set_title("samples: decodings of z ~ N(0, I), the same draws for every β", fontsize=9)
fig.suptitle(f"what β does: a 64-128-{args.latent} VAE on the digits trained at each β ({epochs} epochs)",
             fontsize=10)
fig.tight_layout()
path = os.path.join(args.out, "beta_sweep.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
