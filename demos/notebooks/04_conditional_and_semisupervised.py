# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. The conditional VAE and learning with few labels
#
# A VAE learns p(x) without labels. When labels exist they can be handed to both networks: the
# encoder reads the image *and* its class, q(z | x, y), and the decoder builds an image from a code
# *and* a class, p(x | y, z). The code z is then free to hold what the label does not say (stroke
# width, slant, size), and generation can be steered: pick a class, draw z, decode. That is the
# conditional VAE ([ELBO-8](../../docs/derivations/elbo.md#elbo-8)).
#
# The second half goes one step further. If only a few images are labelled, treat the label of the
# others as a latent variable too, inferred by a classifier q(y | x) that trains with the rest of the
# model: Kingma et al.'s M2 model ([m2.md](../../docs/derivations/m2.md)). Supervised and
# unsupervised learning become one objective.
#
# Everything runs on the bundled 8×8 digits. `NPAE_QUICK=1` trains for fewer epochs.

# %%
import os

import numpy as np

import npae
from npae.pairs import m2 as semisup

QUICK = os.environ.get("NPAE_QUICK", "0") not in ("", "0")
SEED = 0
rng = np.random.default_rng(SEED)
X, y = npae.datasets.load_digits()
perm = rng.permutation(len(X))
train, test = perm[:1500], perm[1500:]
X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]
print(f"quick mode: {QUICK}; {len(train)} training and {len(test)} test digits")

# %% [markdown]
# ## A conditional VAE
#
# The label enters as a one-hot row appended to the encoder's input and to the code. For the first
# layers that is a learned, class-specific bias: [x | c] W = x W_x + c W_c
# ([ELBO-8](../../docs/derivations/elbo.md#elbo-8)). Everything else is the VAE of notebook 3: the
# reparameterised sample ([REPARAM-2](../../docs/derivations/reparam.md#reparam-2)), the closed-form
# KL ([KL-1](../../docs/derivations/kl.md#kl-1)) and the loss
# ([ELBO-1](../../docs/derivations/elbo.md#elbo-1)), now a bound on log p(x | y).
# `fit(X, y)` takes the labels; so do `encode`, `decode` and `neg_elbo`.

# %%
cvae = npae.ConditionalVAE(64, 10, hidden=(128,), latent_dim=2, seed=SEED)
cvae.fit(X_train, y_train, epochs=40 if QUICK else 150, lr=2e-3)
print(f"held-out −ELBO given the label: {cvae.neg_elbo(X_test, y_test):.2f} nats per digit")

# %% [markdown]
# ## One row per class, one column per code
#
# `class_grid` decodes the same codes z with every label: down a column the code, hence the style,
# is fixed and only the class changes; along a row one class is drawn in different styles. With a
# 2-D code the latent axes take the roles of stroke width and slant, shared by all classes.

# %% tags=["figure"]
npae.plotting.class_grid(cvae, values=np.linspace(-2, 2, 9))

# %% [markdown]
# ## Temperature: variety against fidelity
#
# `sample(n, y=c, temperature=T)` draws z ~ N(0, T² I). At T = 1 it samples the model; T < 1 keeps
# the codes where the posteriors of training digits put their mass, so samples look cleaner and
# vary less. To put a number on "shows the requested digit", a classifier trained on real digits
# (a small MLP) labels the samples; agreement is the share it labels as requested. The pictures
# are decoder means (pixel probabilities); `draws=True` returns draws from the Bernoulli decoder,
# what the model really generates.

# %%
judge = npae.Classifier(npae.Sequential([npae.Dense(64, 128, rng=SEED), npae.ReLU()]), 10,
                        freeze_encoder=False, seed=SEED)
judge.fit(X_train, y_train, epochs=20 if QUICK else 60, batch_size=32)
print(f"judge: held-out accuracy on real digits {judge.score(X_test, y_test):.3f}")
wanted = np.repeat(np.arange(10), 30)  # 30 samples of each class
for T in (1.0, 0.7, 0.5):
    means = cvae.sample(wanted.size, y=wanted, temperature=T, seed=SEED)
    draws = cvae.sample(wanted.size, y=wanted, temperature=T, seed=SEED, draws=True)
    print(f"T = {T:3.1f}: {100 * np.mean(judge.predict(means) == wanted):5.1f}% of decoder means and "
          f"{100 * np.mean(judge.predict(draws) == wanted):5.1f}% of Bernoulli draws show the "
          f"requested digit")

# %% [markdown]
# The draws fare worse than the means. The bundled digits are grey levels (counts out of 16); a
# Bernoulli decoder treats each pixel as a coin, so a draw is a black-and-white speckled image that
# looks like no training digit. Below: each row of means is followed by one draw of each.

# %% tags=["figure"]
rows = [cvae.sample(10, y=np.arange(10), temperature=T, seed=SEED + 1) for T in (1.0, 0.5)]
npae.plotting.image_grid(np.concatenate(rows), n_cols=10, row_labels=["T = 1", "T = 0.5"], draws=True,
                         title="columns: requested class 0 … 9")

# %% [markdown]
# `demos/cvae_agreement.py` measures the same on MNIST for latent sizes 2, 8 and 20: the larger the
# code, the more samples at T = 1 drift from their class, and a lower temperature brings them back
# ([docs/semisupervised.md](../../docs/semisupervised.md)).
#
# ## M2: the label as a latent variable
#
# Now suppose only 5 digits per class are labelled (50 of 1,500). M2 keeps the conditional VAE's
# encoder q(z | x, y) and decoder p(x | y, z), with a uniform prior p(y) = 1/K, and adds a classifier
# q(y | x). A labelled digit contributes its labelled bound −L(x, y), the conditional VAE's loss plus
# log K ([M2-1](../../docs/derivations/m2.md#m2-1)). An unlabelled digit tries every class: its bound
# −U(x) = Σ_y q(y|x)·(−L(x, y)) − H(q(y|x)) weights each class's bound by the classifier's belief and
# rewards an uncertain classifier with its entropy ([M2-5](../../docs/derivations/m2.md#m2-5)). So
# the classifier learns from unlabelled digits which class lets the generative model explain them
# best ([M2-7](../../docs/derivations/m2.md#m2-7)).
#
# The labelled bound never touches q(y|x), so the labelled digits would not train the classifier at
# all; the objective adds their cross-entropy with a weight α
# ([M2-9](../../docs/derivations/m2.md#m2-9), [M2-10](../../docs/derivations/m2.md#m2-10)). Labels
# are given as `y` with −1 for "unlabelled". An unlabelled row runs through the encoder and decoder
# once per class, a labelled row once ([M2-14](../../docs/derivations/m2.md#m2-14)).

# %%
few = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 5, replace=False) for c in range(10)])
y_partial = np.full(len(y_train), semisup.UNLABELLED)  # −1: unlabelled
y_partial[few] = y_train[few]
print(f"{np.sum(y_partial >= 0)} labelled digits, {np.sum(y_partial < 0)} unlabelled")
print(f"the paper's α = 0.1·N/N_l would be {semisup.paper_alpha(len(y_partial), len(few)):.1f} per "
      f"labelled digit; short runs learn the classes faster with a larger one")

# %%
m2 = npae.SemiSupervisedVAE(64, 10, hidden=(64,), latent_dim=4, activation="relu", alpha=100.0, seed=SEED)
m2.fit(X_train, y_partial, epochs=15 if QUICK else 60, batch_size=100, lr=3e-3)
print(f"M2's classifier q(y|x): held-out accuracy {m2.score(X_test, y_test):.3f}")

# %% [markdown]
# `history_` splits the objective into its three parts, each in nats per example: the labelled
# bounds, the unlabelled bounds (most of the data, so most of the loss) and the α-weighted
# cross-entropy of the labelled digits.

# %% tags=["figure"]
npae.plotting.loss_curves(m2.history_, title="M2 with 50 labels on the digits")

# %% [markdown]
# The baseline M2 has to beat: a classifier of the same size (64 → 64 ReLU units → 10) trained on
# the 50 labelled digits alone. On these 8×8 images the full run gives M2 about six points more
# (0.91 against 0.85 held-out accuracy); the quick run, with a quarter of the epochs, is closer. On
# MNIST the 1,450 unlabelled images become 13,000 and the table in
# [docs/semisupervised.md](../../docs/semisupervised.md) compares M2 with the paper's.

# %%
alone = npae.Classifier(npae.Sequential([npae.Dense(64, 64, rng=SEED), npae.ReLU()]), 10,
                        freeze_encoder=False, seed=SEED)
alone.fit(X_train[few], y_train[few], epochs=100 if QUICK else 300, batch_size=16, lr=3e-3)
print(f"the same MLP on the 50 labelled digits alone: held-out accuracy {alone.score(X_test, y_test):.3f}")
print(f"M2: {m2.score(X_test, y_test):.3f}")

# %% [markdown]
# M2 is also a conditional generator, learned from 50 labels: decoding one set of codes with each
# class gives one class per row, with the style shared down each column, as for the conditional VAE
# above. That takes training. Early on (the quick run) the code z still decides much of the digit
# and rows look alike: a 4-D code has room for the class too, and nothing but the labelled digits
# and the classifier's weights q(y|x) ties the class to y.

# %% tags=["figure"]
Z = np.random.default_rng(SEED).standard_normal((10, m2.latent_dim))
npae.plotting.image_grid(np.concatenate([m2.decode(Z, np.full(10, c)) for c in range(10)]), n_cols=10,
                         row_labels=[str(c) for c in range(10)],
                         title="M2 (50 labels): rows = class, columns = the same z")

# %% [markdown]
# ## Further
#
# * [docs/semisupervised.md](../../docs/semisupervised.md): the M2 model in npae, α's scaling,
#   M1+M2 (M2 on the codes of a VAE), the MNIST table against the paper's, unbalanced classes and
#   the agreement of conditional samples.
# * [m2.md](../../docs/derivations/m2.md): every gradient of the objective, derived node by node.
# * `demos/semisupervised.py`, `demos/unbalanced_cvae.py`, `demos/cvae_agreement.py`,
#   `demos/ae_vs_vae_latent.py`.
