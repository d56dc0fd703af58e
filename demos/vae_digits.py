"""The VAE on the bundled digits with a 2-D latent space: reconstructions, samples from the prior,
the inverse-CDF manifold grid and the latent scatter.

Figures: ``vae_reconstructions.png``, ``vae_samples.png``, ``vae_manifold_grid.png`` (Kingma &
Welling's Fig. 4: a grid of prior quantiles decoded), ``vae_latent_scatter.png`` (posterior means
of held-out digits, coloured by class) and ``vae_loss_curves.png`` (reconstruction and KL apart).
Lecture idea: the VAE, the ELBO, generation. Docs: docs/derivations/elbo.md, latent.md.

    python demos/vae_digits.py [--quick] [--out DIR] [--beta 1.0]
"""
# %% settings
import argparse
import os

import npae
from npae import datasets, plotting
from npae.training.report import print_history

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", default="demo_out", help="folder for the PNGs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--beta", type=float, default=1.0)
args = parser.parse_args()
epochs = 20 if args.quick else 150
os.makedirs(args.out, exist_ok=True)

# %% train: 64 -> 128 -> (mu, logvar) in 2-D -> 128 -> 64 Bernoulli logits
X, y = datasets.load_digits()
X_train, X_test, y_test = X[:1500], X[1500:], y[1500:]
vae = npae.VAE(64, hidden=(128,), latent_dim=2, beta=args.beta, seed=args.seed)
history = vae.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False).history_
print_history(history)

# %% the four pictures
out = lambda name: os.path.join(args.out, name)  # noqa: E731
recon = vae.reconstruct(X_test[:20])
plotting.image_grid(
    [*X_test[:10], *recon[:10], *X_test[10:20], *recon[10:20]], n_cols=10,
    row_labels=["data", "reconstruction"] * 2, title="held-out digits", path=out("vae_reconstructions.png"))
plotting.image_grid(vae.sample(100, seed=args.seed), n_cols=10, title="samples from the prior",
                    path=out("vae_samples.png"))
plotting.manifold_grid(vae, 15, path=out("vae_manifold_grid.png"))
plotting.latent_scatter(vae.encode(X_test), y_test, title="held-out posterior means",
                        path=out("vae_latent_scatter.png"))
plotting.loss_curves(history, title="VAE on digits", path=out("vae_loss_curves.png"))
print(f"held-out negative ELBO {vae.neg_elbo(X_test, seed=args.seed):.2f} nats per example; "
      f"active units {vae.active_units(X_test)} of 2; KL per dimension "
      f"{vae.kl_per_dimension(X_test).round(2).tolist()}")
print("the scatter shows most classes as regions of the plane (similar digits such as 3, 5, 8 and 9 "
      "overlap); the grid decodes the same plane, so neighbouring regions blend into each other")
for name in ("vae_reconstructions", "vae_samples", "vae_manifold_grid", "vae_latent_scatter",
             "vae_loss_curves"):
    print(f"wrote {out(name + '.png')}")
