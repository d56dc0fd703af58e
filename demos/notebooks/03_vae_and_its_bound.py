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
# # 3. The variational autoencoder and its bound
#
# A variational autoencoder (VAE) is an autoencoder whose code is a *distribution*. For an input x
# the encoder outputs the mean `mu` and the log-variance `logvar` of a Gaussian q(z|x); a code z is
# drawn from it; the decoder turns z into the parameters of a distribution p(x|z) over inputs.
# A prior p(z) = N(0, I) says where codes should live, so that after training one can draw
# z ~ p(z), decode it, and get something that looks like data: a generative model.
#
# Training minimises, per example, the negative **evidence lower bound** (ELBO)
#
# −ELBO(x) = E_q[−log p(x|z)] + KL(q(z|x) ‖ p(z)) ≥ −log p(x),
#
# a reconstruction term and a KL term that pulls each q(z|x) toward the prior
# ([ELBO-1](../../docs/derivations/elbo.md#elbo-1)). This notebook takes the pieces one at a time:
# the reparameterised sample, the closed-form KL, a VAE on the digits with its two terms, KL per
# latent dimension, samples and the manifold grid, the ladder of bounds ELBO ≤ IWAE-5 ≤ IWAE-50,
# and finally a Gaussian decoder on two moons, where a fixed unit variance makes the latent code
# useless and a learned variance rescues it. `NPAE_QUICK=1` trains for fewer epochs.

# %%
import os

import numpy as np

import npae
from npae.pairs import latent

QUICK = os.environ.get("NPAE_QUICK", "0") not in ("", "0")
SEED = 0
rng = np.random.default_rng(SEED)
print(f"quick mode: {QUICK}")

# %% [markdown]
# ## The reparameterised sample
#
# Sampling z ~ N(mu, σ²) is not a differentiable operation of mu and σ, but writing it as
# z = mu + σ·ε with ε ~ N(0, I) drawn *outside* the network is: the randomness becomes an input
# and z a plain function of mu and logvar. The standard deviation comes from the log-variance in
# exactly one place, σ = exp(½·logvar) ([REPARAM-1](../../docs/derivations/reparam.md#reparam-1)),
# and z = mu + σ·ε ([REPARAM-2](../../docs/derivations/reparam.md#reparam-2)). Its gradients are
# dmu = dz and dlogvar = dz·ε·σ/2 ([REPARAM-3](../../docs/derivations/reparam.md#reparam-3),
# [REPARAM-4](../../docs/derivations/reparam.md#reparam-4)).
#
# A gradient check cannot tell whether the sampler uses exp(logvar) as σ or as σ² (either way the
# backward pass matches its own forward pass), but the moments of many samples can: their mean must
# be mu and their variance exp(logvar), the σ² that the KL term assumes.

# %%
mu = np.array([[0.5, -1.0, 2.0]])  # (1, 3): one example, three latents
logvar = np.array([[0.0, np.log(4.0), np.log(0.01)]])  # variances 1, 4, 0.01
eps = rng.standard_normal((100_000, 1, 3))  # (L, B, Z): 100,000 draws of the noise
z, cache = latent.reparameterize_forward(mu, logvar, eps)  # (L, 1, 3)
print("mu              ", mu[0])
print("sample mean     ", z.mean(axis=0)[0].round(3))
print("exp(logvar)     ", np.exp(logvar)[0])
print("sample variance ", z.var(axis=0)[0].round(3))

# %% [markdown]
# ## The KL term in closed form
#
# For a diagonal Gaussian against N(0, I) the KL needs no sampling: per latent it is
# ½(mu² + σ² − 1 − log σ²), summed over the latents ([KL-1](../../docs/derivations/kl.md#kl-1)),
# with gradients mu and ½(σ² − 1) ([KL-2](../../docs/derivations/kl.md#kl-2),
# [KL-3](../../docs/derivations/kl.md#kl-3)). As a check, the same number estimated by Monte
# Carlo, the mean of log q(z) − log p(z) over the draws above
# ([GAUSS-1](../../docs/derivations/gauss.md#gauss-1), [GAUSS-2](../../docs/derivations/gauss.md#gauss-2)):

# %%
kl_closed, _ = latent.gaussian_kl_forward(mu, logvar)  # (1,)
log_ratio = latent.log_normal(z, mu, logvar) - latent.log_standard_normal(z)  # (L, 1)
print(f"closed form {kl_closed[0]:.4f} nats; Monte Carlo {log_ratio.mean():.4f} ± "
      f"{log_ratio.std() / np.sqrt(log_ratio.size):.4f}")

# %% [markdown]
# ## A VAE on the digits
#
# 64 pixels → 128 ReLU units → one dense layer emitting [mu | logvar] for a 2-D code
# ([ELBO-6](../../docs/derivations/elbo.md#elbo-6)) → z → 128 → 64 logits of a Bernoulli decoder,
# whose negative log-likelihood is the cross-entropy from logits
# ([ELBO-2](../../docs/derivations/elbo.md#elbo-2)). In the backward pass mu and logvar receive
# gradient twice, from the sampler and from the KL, and the two are added on one visible line
# ([ELBO-5](../../docs/derivations/elbo.md#elbo-5)). Before sampling, logvar is clamped to a safe
# range ([REPARAM-5](../../docs/derivations/reparam.md#reparam-5)).

# %%
X, y = npae.datasets.load_digits()
perm = rng.permutation(len(X))
X_train, X_test, y_test = X[perm[:1500]], X[perm[1500:]], y[perm[1500:]]

vae = npae.VAE(hidden=(128,), latent_dim=2, seed=SEED)
vae.fit(X_train, epochs=40 if QUICK else 150, lr=2e-3, validation_data=X_test)
terms = vae.evaluate(X_test)  # forward only, noise from the model's evaluation stream
print(f"held-out: −ELBO {terms['loss']:.2f} = reconstruction {terms['recon']:.2f} + KL {terms['kl']:.2f} "
      f"(nats per digit)")

# %% [markdown]
# `history_` holds both terms per epoch, and `loss_curves` gives each its own panel, since the KL
# is ten times smaller than the reconstruction and would look flat on a shared axis. The KL
# *grows* during training: the encoder learns to spend nats of information on the code because
# each nat buys more than a nat of reconstruction.

# %% tags=["figure"]
npae.plotting.loss_curves(vae.history_, title="VAE on digits, 2-D code")

# %% [markdown]
# ## KL per latent dimension
#
# The KL term, split by latent, says how much information each dimension carries about x. With a
# 2-D code both dimensions are busy. Give the model room, ten dimensions, and it uses only some: the
# others keep q(z_j|x) at the prior for every x (KL ≈ 0, "inactive" units), because a dimension
# that carries information costs KL and this small data set does not pay for ten.

# %%
vae10 = npae.VAE(hidden=(128,), latent_dim=10, seed=SEED).fit(X_train, epochs=40 if QUICK else 150,
                                                              lr=2e-3)
kl10 = vae10.kl_per_dimension(X_test)  # (10,) nats
print("2-D model, KL per dimension (nats):", vae.kl_per_dimension(X_test).round(3))
print(f"10-D model: {np.sum(kl10 > 0.1)} of 10 dimensions carry more than 0.1 nats; "
      f"active_units: {vae10.active_units(X_test)} of 10")

# %% [markdown]
# `active_units` counts the dimensions whose posterior mean still varies with x (variance over the
# data above 0.01); after a short run (quick mode) the unused dimensions are still on their way to
# the prior and may pass that test, while their KL is already near 0.

# %% tags=["figure"]
order = np.argsort(kl10)[::-1]
fig = npae.plotting.new_figure((6, 3))
ax = fig.add_subplot(1, 1, 1)
ax.bar(np.arange(10), kl10[order])
ax.set_xticks(np.arange(10), [f"z{j + 1}" for j in order])
ax.set_ylabel("mean KL, nats")
ax.set_title("10-D VAE: KL per latent dimension on held-out digits (sorted)", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# ## Samples and the manifold grid
#
# Generating needs no encoder: draw z from the prior and decode. The pictures are the decoder's
# means (pixel probabilities), which is what VAE papers usually show.

# %% tags=["figure"]
npae.plotting.image_grid(vae.sample(60, seed=SEED), n_cols=15, title="decoded draws z ~ N(0, I)")

# %% [markdown]
# With a 2-D code the whole code space fits on a page. Kingma and Welling's picture decodes codes
# placed at equal steps of *prior probability*, z = Φ⁻¹(u) for u on a regular grid in the unit
# square ([LATENT-4](../../docs/derivations/latent.md#latent-4)). Unlike the plain autoencoder's
# grid in notebook 1, every cell decodes to something digit-like, and neighbours blend smoothly: the
# KL term has packed the codes around the origin with no holes. The held-out posterior means,
# coloured by class, show which digit lives where.

# %% tags=["figure"]
npae.plotting.manifold_grid(vae, 15)

# %% tags=["figure"]
npae.plotting.latent_scatter(vae.encode(X_test), y_test, title="held-out posterior means mu(x)")

# %% [markdown]
# ## The bound ladder: ELBO ≤ IWAE-5 ≤ IWAE-50 ≤ log p(x)
#
# The ELBO is one of a family. With k draws z_j ~ q(z|x) and importance weights
# w_j = p(x, z_j)/q(z_j|x) ([IWAE-1](../../docs/derivations/iwae.md#iwae-1)), the bound
# log((1/k) Σ_j w_j) is the ELBO for k = 1 and rises toward log p(x) as k grows
# ([IWAE-2](../../docs/derivations/iwae.md#iwae-2)). npae averages the weights with a streaming
# log-mean-exp, so k = 5,000 fits in memory ([IWAE-3](../../docs/derivations/iwae.md#iwae-3)).
# Every estimate draws its noise from the model's evaluation stream: the same number at every call,
# and training is never disturbed.

# %%
ks = [1, 5, 50] + ([] if QUICK else [500])
ladder = {1: -vae.neg_elbo(X_test, n_samples=50)}  # the ELBO, averaged over 50 draws per digit
for k in ks[1:]:
    ladder[k] = vae.log_likelihood_estimate(X_test, k=k)
for k, value in ladder.items():
    print(f"{'ELBO' if k == 1 else f'IWAE-{k}':>9}: {value:8.3f} nats per digit")
values = [ladder[k] for k in ks]
print("the ladder holds:", all(a <= b for a, b in zip(values, values[1:])))

# %% tags=["figure"]
fig = npae.plotting.new_figure((5, 3))
ax = fig.add_subplot(1, 1, 1)
ax.plot(ks, values, "o-")
ax.set_xscale("log")
ax.set_xticks(ks, ["ELBO" if k == 1 else f"IWAE-{k}" for k in ks])
ax.set_ylabel("bound on log p(x), nats per digit")
ax.set_title("held-out bounds rise with k", fontsize=10)
fig.tight_layout()
fig

# %% [markdown]
# The gap between the ELBO and the IWAE bounds is what the Gaussian q(z|x) gets wrong about the
# true posterior: a fraction of a nat here, because a 2-D latent space is easy to cover.
#
# ## A Gaussian decoder: learned variance against a fixed unit variance
#
# For real-valued data the decoder outputs the mean m(z) of a Gaussian p(x|z) = N(m, diag σ²),
# with negative log-likelihood ½ Σ_d (log 2π + log σ²_d + (x_d − m_d)²/σ²_d)
# ([GAUSSDEC-1](../../docs/derivations/gaussdec.md#gaussdec-1)). The choice of σ² matters more than
# it looks. With σ² = 1 fixed, data that live within ±1, like the two moons, are almost all
# "noise" to the model: the best it can save by encoding anything is about half a nat, less than
# the KL that an informative code costs, so the posterior collapses to the prior and the decoder
# outputs the data mean. Learning σ² per feature
# ([GAUSSDEC-3](../../docs/derivations/gaussdec.md#gaussdec-3),
# [GAUSSDEC-4](../../docs/derivations/gaussdec.md#gaussdec-4), with a floor keeping it positive:
# [GAUSSDEC-5](../../docs/derivations/gaussdec.md#gaussdec-5)) lets the model shrink σ² below 1,
# and then a code that says where on the moons x lies pays for its KL
# ([gaussdec.md](../../docs/derivations/gaussdec.md), section "Why a fixed unit variance collapses a
# VAE on data of scale ~1").
#
# Two VAEs, the same except for `variance`. `fit` notices the collapse and warns.

# %%
X_moons, _ = npae.datasets.make_moons(1000, noise=0.05, seed=SEED)
MOON_EPOCHS = 200 if QUICK else 400
kw = dict(hidden=(64, 64), latent_dim=2, likelihood="gaussian", seed=SEED)
fixed = npae.VAE(variance="fixed", **kw).fit(X_moons, epochs=MOON_EPOCHS, batch_size=32, lr=3e-3)
learned = npae.VAE(variance="per_feature", **kw).fit(X_moons, epochs=MOON_EPOCHS, batch_size=32, lr=3e-3)

# %%
for name, model in (("fixed σ² = 1", fixed), ("learned σ² per feature", learned)):
    print(f"{name:>22}: −ELBO {model.neg_elbo(X_moons):6.3f} nats, KL per dimension "
          f"{model.kl_per_dimension(X_moons).round(3)}, active units {model.active_units(X_moons)}")
# the parameter decoder.logvar is the raw log-variance; decoder_variance() reads σ² through the
# smooth floor the decoder applies [GAUSSDEC-5]
print("learned σ² per coordinate:", learned.decoder_variance().round(4),
      "(the data's noise: 0.05² = 0.0025 on top of the moons' own spread)")

# %% [markdown]
# What each model generates: z from the prior, then x from p(x|z), the decoder's mean plus
# Gaussian noise of its σ (`sample(..., draws=True)`), drawn over the data in grey.

# %% tags=["figure"]
fig = npae.plotting.new_figure((10, 4))
for i, (name, model) in enumerate((("fixed σ² = 1: collapsed", fixed),
                                   ("learned σ² per feature", learned))):
    ax = fig.add_subplot(1, 2, i + 1)
    draws = model.sample(1000, seed=SEED, draws=True)
    means = model.sample(1000, seed=SEED)  # the same z, decoder means only
    ax.scatter(X_moons[:, 0], X_moons[:, 1], s=3, color="0.8", label="data")
    ax.scatter(draws[:, 0], draws[:, 1], s=3, alpha=0.6, label="x ~ p(x|z), z ~ p(z)")
    ax.scatter(means[:, 0], means[:, 1], s=3, label="decoder mean m(z)")
    ax.set_xlim(-3, 4)
    ax.set_ylim(-2.5, 2.5)
    ax.set_aspect("equal")
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=7, loc="lower left", markerscale=3)
fig.tight_layout()
fig

# %% [markdown]
# Left: the collapsed model's decoder outputs nearly one point, the data mean, whatever z is, and
# the samples are a round blob of unit-variance noise around it. Right: with its own σ² the model
# uses the code, but only one of its two latent units (see the KL per dimension above), so its
# decoder means lie on a single curve. That curve runs through the middle of the data, crossing
# from one moon to the other (after the full 400 epochs it follows the lower moon and curls into
# the upper one); it does not trace both moons. The decoder is continuous in z, so the connected
# prior maps to a connected set of means, which has to bridge the gap between the moons.
# What the curve misses, σ² absorbs: the learned variances printed above are some 20 to 140 times
# the data's noise variance of 0.0025 (the larger in quick mode, which stops earlier), so the samples
# are a thick band around the moons. That is far closer to the data than the left panel, and the
# bound is about half a nat better, but the two thin moons are not what this model generates.
#
# **Next:** notebook 4 conditions the VAE on labels and uses it with few labels; then
# [notebook 5](05_estimators_and_gradients.ipynb) asks why the reparameterised gradient is the one
# to use, and how npae checks every gradient it computes.
