"""A gradient-check tour: every hand-written backward in npae against central differences.

Prints one table per group (layers, losses and penalties, the latent layer, whole models): the
largest relative error of each gradient, with the tolerance 1e-6. Figure ``gradcheck_tour.png``:
the same errors as bars on a log scale, with the tolerance line.
Lecture idea: backpropagation by hand, and how to trust it. Docs: docs/testing.md.

    python demos/gradcheck_tour.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os
import sys

import numpy as np

import npae
from npae.pairs import functional as F
from npae import plotting
from npae.pairs import latent, penalties
from npae.constants import GRADCHECK_TOL
from npae.gradcheck import check_function, check_model, check_pair

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="smaller shapes")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
B, D, H, Z = (3, 5, 4, 2) if args.quick else (6, 10, 8, 3)
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)
results = {}  # "group: name" -> max relative error


def record(group, name, report):
    results[f"{group}: {name}"] = report.max_error


# %% layers: the dense pair and every activation pair (inputs kept off the kinks at 0)
x, W, b = rng.standard_normal((B, D)), rng.standard_normal((D, H)), rng.standard_normal(H)
record("layer", "dense", check_pair(F.dense_forward, F.dense_backward, [x, W, b], names=["x", "W", "b"]))
a = rng.uniform(0.2, 2.0, (B, H)) * rng.choice([-1.0, 1.0], (B, H))
for act in ("relu", "leaky_relu", "sigmoid", "tanh", "softplus", "elu"):
    fwd, bwd = getattr(F, f"{act}_forward"), getattr(F, f"{act}_backward")
    record("layer", act, check_pair(fwd, bwd, [a]))

# %% losses and penalties
target = rng.uniform(size=(B, D))
record("loss", "mse", check_function(lambda p: F.mse_loss(p, target)[0], [x], [F.mse_loss(x, target)[1]]))
record("loss", "bce_with_logits", check_function(lambda s: F.bce_with_logits_loss(s, target)[0], [x],
                                                 [F.bce_with_logits_loss(x, target)[1]]))
labels = rng.integers(0, D, B)
record("loss", "softmax cross-entropy", check_function(lambda s: F.softmax_cross_entropy_loss(s, labels)[0],
                                                       [x], [F.softmax_cross_entropy_loss(x, labels)[1]]))
record("penalty", "L1 sparsity", check_pair(penalties.l1_penalty_forward, penalties.l1_penalty_backward,
                                            [a], kwargs=dict(weight=0.3)))
h = rng.uniform(0.1, 0.9, (B, H))
record("penalty", "KL sparsity (batch mean)", check_pair(penalties.kl_sparsity_forward,
                                                         penalties.kl_sparsity_backward, [h],
                                                         kwargs=dict(rho=0.05, weight=2.0)))
record("penalty", "contractive", check_pair(
    lambda x, W, b: penalties.contractive_penalty_forward(x, W, b, "sigmoid", 0.5),
    penalties.contractive_penalty_backward, [x, W, b], names=["x", "W", "b"]))

# %% the latent layer: reparameterization and the closed-form KL
mu, logvar, eps = rng.standard_normal((B, Z)), rng.standard_normal((B, Z)), rng.standard_normal((B, Z))
record("latent", "reparameterize", check_pair(latent.reparameterize_forward, latent.reparameterize_backward,
                                              [mu, logvar, eps], wrt=(0, 1), names=["mu", "logvar"]))
record("latent", "Gaussian KL", check_pair(latent.gaussian_kl_forward, latent.gaussian_kl_backward,
                                           [mu, logvar], names=["mu", "logvar"]))
record("latent", "full-covariance KL", check_pair(latent.fullcov_kl_forward, latent.fullcov_kl_backward,
                                                  [mu, 0.5 * rng.standard_normal((B, Z, Z))],
                                                  names=["mu", "L_raw"]))

# %% whole models: the loss with respect to every parameter
xu = rng.uniform(0.05, 0.95, (B, D))
y = rng.integers(0, 3, B)
models = {
    "Autoencoder": (npae.Autoencoder(D, (H,), Z, "tanh", seed=1), {}),
    "DenoisingAutoencoder": (npae.DenoisingAutoencoder(D, (H,), Z, "tanh", seed=1),
                             dict(x_noisy=np.clip(xu + 0.1 * rng.standard_normal(xu.shape), 0, 1))),
    "SparseAutoencoder (KL)": (npae.SparseAutoencoder(D, (H,), Z, "tanh", penalty="kl", seed=1), {}),
    "ContractiveAutoencoder": (npae.ContractiveAutoencoder(D, (), Z, contractive_weight=0.5, seed=1), {}),
    "VAE (Bernoulli, L=2)": (npae.VAE(D, (H,), Z, "tanh", beta=0.7, seed=1),
                             dict(eps=rng.standard_normal((2, B, Z)))),
    "VAE (Gaussian)": (npae.VAE(D, (H,), Z, "softplus", likelihood="gaussian", seed=1),
                       dict(eps=rng.standard_normal((B, Z)))),
    "ConditionalVAE": (npae.ConditionalVAE(D, 3, (H,), Z, "tanh", seed=1),
                       dict(y=y, eps=rng.standard_normal((B, Z)))),
    "Classifier": (npae.Classifier(npae.Autoencoder(D, (H,), Z, "tanh", seed=2), 3, hidden=(4,),
                                   activation="tanh", freeze_encoder=False, seed=1), dict(y=y)),
}
for name, (model, fixed) in models.items():
    record("model", name, check_model(model, xu, **fixed))

# %% the table and the figure
width = max(map(len, results))
print(f"{'gradient':<{width}} | max rel error | ok (tol {GRADCHECK_TOL:g})")
for name, err in results.items():
    print(f"{name:<{width}} | {err:<13.2e} | {'yes' if err <= GRADCHECK_TOL else 'NO'}")
fig = plotting.new_figure((7, 0.28 * len(results) + 1.2))
ax = fig.add_subplot(1, 1, 1)
names = list(results)
ax.barh(range(len(names)), [max(results[n], 1e-17) for n in names])
ax.set_yticks(range(len(names)))
ax.set_yticklabels(names, fontsize=7)
ax.invert_yaxis()
ax.set_xscale("log")
ax.axvline(GRADCHECK_TOL, color="r", ls="--", label=f"tolerance {GRADCHECK_TOL:g}")
ax.set_xlabel("max relative error, analytic vs central differences (float64)")
ax.legend(fontsize=8)
path = plotting.save_figure(fig, os.path.join(args.out, "gradcheck_tour.png"))
n_bad = sum(err > GRADCHECK_TOL for err in results.values())
print(f"{len(results) - n_bad} of {len(results)} gradients within tolerance")
print(f"wrote {path}")
sys.exit(1 if n_bad else 0)  # a failed check is an error
