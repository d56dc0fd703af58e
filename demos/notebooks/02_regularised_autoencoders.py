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
# # 2. Regularised autoencoders: denoising, sparse, contractive
#
# In notebook 1 the code was narrow, so the autoencoder could not simply copy its input. A code
# with as many units as it likes is more useful (more of the input survives), but then copying
# becomes possible, and a copy teaches nothing. Regularised autoencoders keep the code wide and
# make copying pointless in another way:
#
# * **denoising**: the encoder reads a corrupted x̃, the loss still compares with the clean x.
#   Measure: how close the output comes to the clean digit when the input is a corrupted one.
# * **sparse**: a penalty on the code's activity. Measure: how many code activations are near 0,
#   and each unit's mean activation against the target ρ.
# * **contractive**: a penalty on the encoder's Jacobian ‖∂z/∂x‖²_F. Measure: that norm, and how
#   far the code moves when the input is pushed a little.
#
# Each model is compared with a plain autoencoder of the same size, trained on the same digits with
# the same seed. `NPAE_QUICK=1` trains for fewer epochs.

# %%
import os

import numpy as np

import npae

QUICK = os.environ.get("NPAE_QUICK", "0") not in ("", "0")
SEED = 0
EPOCHS = 40 if QUICK else 100
rng = np.random.default_rng(SEED)

X, y = npae.datasets.load_digits()  # (1797, 64) in [0, 1]
perm = rng.permutation(len(X))
X_train, X_test = X[perm[:1500]], X[perm[1500:]]
print(f"quick mode: {QUICK}; {EPOCHS} epochs; training {X_train.shape}, held out {X_test.shape}")

# %% [markdown]
# ## Denoising: learn to undo a corruption
#
# The masking corruption erases each pixel with probability p (sets it to 0, with no rescaling:
# [DENOISE-2](../../docs/derivations/denoise.md#denoise-2)); the denoising autoencoder encodes the
# erased image and is scored against the clean one
# ([DENOISE-4](../../docs/derivations/denoise.md#denoise-4)). The corruption is drawn before the
# forward pass and is not a function of the weights, so the backward pass is the plain
# autoencoder's, with x̃ at the input and x at the loss.
#
# Both models have a 32-unit code, half the input's width: enough room to copy most of a digit.

# %%
kw = dict(hidden=(128,), latent_dim=32, seed=SEED)
plain = npae.Autoencoder(**kw).fit(X_train, epochs=EPOCHS, lr=2e-3)
dae = npae.DenoisingAutoencoder(noise="masking", noise_level=0.4, **kw).fit(X_train, epochs=EPOCHS,
                                                                            lr=2e-3)

# %% [markdown]
# The measure: corrupt the held-out digits the way training did (`dae.corrupt` draws from the
# model's evaluation stream, never from its training generator), feed the corrupted digits to both
# models, and measure the squared distance of each output to the **clean** digit. For scale, the
# corrupted digit itself is also that far from the clean one.

# %%
X_noisy = dae.corrupt(X_test, seed=SEED)  # 40% of the pixels erased


def distance_to_clean(X_hat):
    """Mean over held-out digits of the squared distance to the clean digit, summed over 64 pixels."""
    return float(np.mean(np.sum((X_hat - X_test) ** 2, axis=1)))


out_plain, out_dae = plain.reconstruct(X_noisy), dae.reconstruct(X_noisy)
print("squared distance to the clean held-out digit (per digit, 64 pixels):")
print(f"  the corrupted input itself   {distance_to_clean(X_noisy):.2f}")
print(f"  plain autoencoder's output   {distance_to_clean(out_plain):.2f}")
print(f"  denoising autoencoder's      {distance_to_clean(out_dae):.2f}")
print(f"held-out loss of the denoiser (clean digit from a corrupted input): "
      f"{dae.evaluate(X_test)['loss']:.2f} nats per digit; the plain model's (from the clean input): "
      f"{plain.evaluate(X_test)['loss']:.2f}")

# %% tags=["figure"]
n = 12
npae.plotting.image_grid(np.concatenate([X_test[:n], X_noisy[:n], out_plain[:n], out_dae[:n]]), n_cols=n,
                         row_labels=["clean", "40% erased", "plain AE", "denoising AE"],
                         title="held-out digits: the same corrupted input to both models")

# %% [markdown]
# The plain autoencoder reproduces what it is given, holes included (it was never asked to do
# anything else). The denoising one fills the erased strokes back in: to do that it had to learn
# what digits look like, which is the point.
#
# ## Sparse: most code units silent for each input
#
# A sparse autoencoder adds a penalty that wants most code activations near 0, so that each input
# is described by a few active units. npae offers the L1 penalty λ·(1/B)Σ‖z‖₁
# ([SPARSE-1](../../docs/derivations/sparse.md#sparse-1)) and the KL penalty used here: with sigmoid
# code units, take each unit's mean activation over the batch, ρ̂_j
# ([SPARSE-3](../../docs/derivations/sparse.md#sparse-3)), and charge λ·Σ_j KL(ρ‖ρ̂_j), which is 0
# only when every unit is active a fraction ρ of the time
# ([SPARSE-4](../../docs/derivations/sparse.md#sparse-4)). Its gradient reaches every example
# through the batch mean ([SPARSE-5](../../docs/derivations/sparse.md#sparse-5),
# [SPARSE-6](../../docs/derivations/sparse.md#sparse-6)), and z feeds both the decoder and the
# penalty, so the two gradients are summed on one line
# ([SPARSE-7](../../docs/derivations/sparse.md#sparse-7)).
#
# Both models: 64 → 32 sigmoid units → 64, no hidden layer.

# %%
RHO = 0.05
kw = dict(hidden=(), latent_dim=32, code_activation="sigmoid", seed=SEED)
plain_code = npae.Autoencoder(**kw).fit(X_train, epochs=EPOCHS, lr=1e-2)
sparse = npae.SparseAutoencoder(penalty="kl", rho=RHO, sparsity_weight=3.0, **kw).fit(
    X_train, epochs=EPOCHS, lr=1e-2)

# %%
NEAR_ZERO = 0.05
for name, model in (("plain", plain_code), ("sparse", sparse)):
    H = model.encode(X_test)  # (297, 32) code activations in (0, 1)
    means = H.mean(axis=0)
    print(f"{name:>6}: {100 * np.mean(H < NEAR_ZERO):4.1f}% of activations below {NEAR_ZERO}; unit means "
          f"{means.min():.3f} … {means.max():.3f} (target ρ = {RHO}); held-out reconstruction "
          f"{model.reconstruction_error(X_test).mean():.2f} nats")

# %% tags=["figure"]
npae.plotting.sparsity_figure(plain_code.encode(X_test), threshold=NEAR_ZERO,
                              title="plain autoencoder, 32 sigmoid code units (no penalty)")

# %% tags=["figure"]
npae.plotting.sparsity_figure(sparse.encode(X_test), rho=RHO, threshold=NEAR_ZERO,
                              title=f"sparse autoencoder, KL penalty toward ρ = {RHO}")

# %% [markdown]
# Without the penalty the activations spread over all of (0, 1), many units sit near 1, and a unit
# is on average half on. With it, two thirds of the activations pile up near 0 (log scale: the tall
# bars on the left), a few fire strongly, and every unit's mean drops to the neighbourhood of ρ.
# Each digit is described by a handful of active units. The price is a somewhat worse
# reconstruction.
#
# ## Contractive: a code that does not notice small changes
#
# The contractive penalty charges the encoder's sensitivity directly: λ·(1/B)Σ_i‖J_i‖²_F with
# J_i = ∂z_i/∂x_i. For a one-layer encoder z = f(xW + b) the Jacobian has a closed form,
# ‖J_i‖²_F = Σ_j f′(a_ij)² ‖W_:,j‖²
# ([CONTRACTIVE-1](../../docs/derivations/contractive.md#contractive-1);
# for the sigmoid f′ = z(1 − z), [CONTRACTIVE-2](../../docs/derivations/contractive.md#contractive-2)),
# and its gradient is where f″ enters
# ([CONTRACTIVE-5](../../docs/derivations/contractive.md#contractive-5)); W is used both by the code
# and by the penalty, so its two gradients add
# ([CONTRACTIVE-6](../../docs/derivations/contractive.md#contractive-6),
# [CONTRACTIVE-7](../../docs/derivations/contractive.md#contractive-7)).
#
# Two models with the same one-layer encoder of 16 sigmoid units, λ = 0 (a plain autoencoder) and
# λ = 1:

# %%
models = {}
for lam in (0.0, 1.0):
    models[lam] = npae.ContractiveAutoencoder(hidden=(), latent_dim=16, contractive_weight=lam,
                                              seed=SEED).fit(X_train, epochs=EPOCHS, lr=1e-2)

# %% [markdown]
# Two measures, computed here from the encoder's weights and from `encode` (npae has no method for
# them yet). First the Jacobian norm of each held-out digit, from the closed form above; its mean
# is exactly what the library's penalty function returns with λ = 1. Second, what the Jacobian
# predicts: push each input by a small random δ and see how far its code moves, ‖z(x + δ) − z(x)‖
# per unit of ‖δ‖.


# %%
def jacobian_frobenius_sq(model, X):
    """‖∂z/∂x‖²_F of each row of X, for a one-layer sigmoid encoder:
    Σ_j (z_j (1 − z_j))² ‖W_:,j‖²."""
    W = model.encoder.dense_layers[0].params["W"]  # (64, 16)
    Z = model.encode(X)  # (N, 16) sigmoid codes
    return ((Z * (1 - Z)) ** 2) @ np.sum(W * W, axis=0)  # (N,)


SIGMA = 0.05 * X_test.std()  # perturbation: Gaussian, 5% of the data's standard deviation per pixel
delta = SIGMA * rng.standard_normal(X_test.shape)
for lam, model in models.items():
    J2 = jacobian_frobenius_sq(model, X_test)
    dense = model.encoder.dense_layers[0].params
    penalty = npae.penalties.contractive_penalty_forward(X_test, dense["W"], dense["b"], "sigmoid", 1.0)[0]
    moved = np.linalg.norm(model.encode(X_test + delta) - model.encode(X_test), axis=1)
    ratio = moved / np.linalg.norm(delta, axis=1)
    print(f"λ = {lam:g}: mean ‖J‖²_F {J2.mean():.4f} (library penalty with λ = 1: {penalty:.4f}); "
          f"code moves {ratio.mean():.4f} per unit of input movement; held-out reconstruction "
          f"{model.reconstruction_error(X_test).mean():.2f} nats")

# %% tags=["figure"]
fig = npae.plotting.new_figure((10, 3.4))
ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
for lam, model in models.items():
    label = "plain (λ = 0)" if lam == 0 else f"contractive (λ = {lam:g})"
    ratio = (np.linalg.norm(model.encode(X_test + delta) - model.encode(X_test), axis=1)
             / np.linalg.norm(delta, axis=1))
    ax1.hist(np.sqrt(jacobian_frobenius_sq(model, X_test)), bins=30, alpha=0.6, label=label)
    ax2.hist(ratio, bins=30, alpha=0.6, label=label)
ax1.set_title("encoder Jacobian ‖∂z/∂x‖_F per held-out digit", fontsize=10)
ax2.set_title(f"‖z(x + δ) − z(x)‖ / ‖δ‖, δ ~ N(0, σ²I), σ = {SIGMA:.3f}", fontsize=10)
ax1.set_ylabel("held-out digits")
ax2.set_ylabel("held-out digits")
ax1.legend(fontsize=8)
fig.tight_layout()
fig

# %% [markdown]
# The contractive encoder's Jacobian is several times smaller, and its codes indeed move less for
# the same push of the input: the penalty lets the code change only along the directions the
# reconstruction needs, and flattens it along all the others. The price is a somewhat worse
# reconstruction.
#
# The library's picture of the same effect, `npae.plotting.contraction_figure`, draws the codes of
# eight held-out digits together with those of 40 noisy copies of each (left, in the plane of the
# codes' first two principal axes), and the displacements z(x + δ) − z(x) (right). Here with a
# larger push, σ five times the one above, so the clouds can be seen; read the scales of the right
# panels: the contractive code's cloud is the smaller one.


# %%
def contraction_picture(model, title, sigma=5 * SIGMA, copies=40):
    X_few = X_test[:8]  # (8, 64)
    noise = sigma * np.random.default_rng(SEED).standard_normal((8, copies, 64))  # same δ for both
    Z_few = model.encode(X_few)  # (8, 16)
    Z_moved = model.encode((X_few[:, None] + noise).reshape(-1, 64)).reshape(8, copies, -1)
    return npae.plotting.contraction_figure(Z_few, Z_moved, sigma=sigma,
                                            background=model.encode(X_test[8:]), title=title)


# %% tags=["figure"]
contraction_picture(models[0.0], "plain encoder (λ = 0)")

# %% tags=["figure"]
contraction_picture(models[1.0], "contractive encoder (λ = 1)")

# %% [markdown]
# **Next:** [notebook 3](03_vae_and_its_bound.ipynb) turns the code into a distribution and the
# autoencoder into a generative model, the variational autoencoder.
