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
# # 1. Autoencoders and PCA
#
# An autoencoder is two networks trained as one. The **encoder** turns an input x into a code z
# with fewer numbers than x; the **decoder** turns z back into a reconstruction x̃; training asks
# x̃ to equal x. Since z is narrower than x, the network cannot copy its input: it has to decide
# what is worth keeping. Nobody labels anything, the input is its own target.
#
# This notebook
#
# 1. trains an autoencoder with a 2-number code on the bundled 8×8 digits and looks at its code
#    space;
# 2. shows that a *linear* autoencoder finds the same subspace as PCA, but not PCA's axes;
# 3. shows where the nonlinearity pays: on two moons a 1-D code can follow a curve, PCA only a line.
#
# Each step links the page of `docs/derivations/` that derives the code it runs. Run it top to
# bottom; with the environment variable `NPAE_QUICK=1` it trains for fewer epochs (the test suite
# runs it that way; the pictures are rougher but tell the same story).

# %%
import os

import numpy as np

import npae

QUICK = os.environ.get("NPAE_QUICK", "0") not in ("", "0")
SEED = 0
rng = np.random.default_rng(SEED)  # every random choice below comes from here or from a model's seed
print(f"npae {npae.__version__}, backend {npae.get_backend()!r}, quick mode: {QUICK}")

# %% [markdown]
# ## The data: 1,797 handwritten digits
#
# `npae.datasets.load_digits()` needs no download: each row is one 8×8 image flattened to 64 grey
# levels in [0, 1], with its label 0–9 (used only to colour pictures, never for training). We keep
# 297 digits aside to judge the model on images it never saw.

# %%
X, y = npae.datasets.load_digits()
perm = rng.permutation(len(X))
X_train, X_test, y_test = X[perm[:1500]], X[perm[1500:]], y[perm[1500:]]
print(f"X {X.shape}, training {X_train.shape}, held out {X_test.shape}")

# %% tags=["figure"]
npae.plotting.image_grid(X_test[:30], n_cols=15, title="held-out digits")

# %% [markdown]
# ## An autoencoder with a 2-D code
#
# The network is 64 → 64 → **2** → 64 → 64. Every arrow is a dense layer y = xW + b
# ([DENSE-1](../../docs/derivations/dense.md#dense-1)); the hidden layers use ReLU
# ([ACT-2](../../docs/derivations/act.md#act-2)), the code is left linear, and the decoder's last
# layer gives 64 logits s whose sigmoid is the reconstruction. Pixels lie in [0, 1], so the loss is
# the binary cross-entropy summed over the 64 pixels and averaged over the batch, computed from the
# logits so it never overflows ([LOSS-5](../../docs/derivations/loss.md#loss-5)); its gradient is
# simply (σ(s) − x)/B ([LOSS-6](../../docs/derivations/loss.md#loss-6)).
#
# Backpropagation runs the three gradients of each dense layer
# ([DENSE-2](../../docs/derivations/dense.md#dense-2), [DENSE-3](../../docs/derivations/dense.md#dense-3),
# [DENSE-4](../../docs/derivations/dense.md#dense-4)) and the ReLU's
# ([ACT-3](../../docs/derivations/act.md#act-3)) from the loss back to the input; Adam takes the
# step ([OPT-5](../../docs/derivations/opt.md#opt-5) to [OPT-7](../../docs/derivations/opt.md#opt-7)).
#
# `fit` works as in scikit-learn: the constructor only stores its arguments, `fit(X)` builds the
# network for X's 64 columns, trains, and returns the model; the per-epoch numbers land in
# `history_`. It leaves one summary line when it is done.

# %%
EPOCHS = 30 if QUICK else 150
ae = npae.Autoencoder(hidden=(64,), latent_dim=2, seed=SEED)
ae.fit(X_train, epochs=EPOCHS, batch_size=64, lr=3e-3, validation_data=X_test)
print(f"held-out reconstruction error: {ae.reconstruction_error(X_test).mean():.2f} nats per digit")

# %% tags=["figure"]
npae.plotting.loss_curves(ae.history_, title="autoencoder, 2-D code")

# %% [markdown]
# The dashed curve is the held-out loss: it follows the training loss, so with about 8,600 weights
# and biases and 1,500 digits the model is not memorising. A code of two numbers is a harsh
# bottleneck, and the reconstructions show it: the rough shape survives, the details do not.

# %% tags=["figure"]
recon = ae.reconstruct(X_test[:15])
npae.plotting.image_grid(np.concatenate([X_test[:15], recon]), n_cols=15,
                         row_labels=["data", "reconstruction"], title="held-out digits, 2-D code")

# %% [markdown]
# ## The code space
#
# Every digit is now a point in the plane. Colouring the held-out codes by label (which the model
# never saw) shows that similar digits get nearby codes: the bottleneck has to sort the data by what
# varies most.

# %% tags=["figure"]
Z_test = ae.encode(X_test)  # (297, 2)
npae.plotting.latent_scatter(Z_test, y_test, title="held-out codes z = encoder(x)")

# %% [markdown]
# Decoding a regular grid over the same range shows what the decoder makes of *every* code, also
# of those where no digit landed. Nothing in a plain autoencoder's loss asks that the space between
# the clouds mean anything, so some grid cells decode to nonsense, and the clouds have arbitrary
# shapes and scales. The variational autoencoder of notebook 3 adds exactly such a demand.

# %% tags=["figure"]
npae.plotting.manifold_grid(ae, 12, codes=Z_test)

# %% [markdown]
# ## A linear autoencoder finds PCA's subspace
#
# Remove every nonlinearity (no hidden layer, identity code and output) and use the squared error:
# the autoencoder computes x̃ = x W_enc W_dec + c, the best rank-k approximation of the data in
# squared error, which is exactly what PCA finds. PCA gets it in one step from the SVD of the
# centred data ([PCA-1](../../docs/derivations/pca.md#pca-1)); the variance along each axis is a
# squared singular value over N − 1 ([PCA-2](../../docs/derivations/pca.md#pca-2)).
#
# The two do not end with the same *numbers*, though. Any invertible k × k matrix A gives the same
# reconstruction with W_enc A and A⁻¹ W_dec, so gradient descent stops at some basis of PCA's
# subspace, not at PCA's orthonormal axes. The right comparison is between subspaces: the
# principal angles between two subspaces are 0 exactly when they coincide
# ([PCA-6](../../docs/derivations/pca.md#pca-6); small angles are computed from sines, which keep
# their digits near 0: [PCA-7](../../docs/derivations/pca.md#pca-7)).
# The derivation page also walks through this argument
# ([pca.md](../../docs/derivations/pca.md), section "A linear autoencoder learns the subspace,
# not the axes").
#
# To see it sharply we use data with a clear gap in its spectrum: 600 points in 10-D with three
# strong directions and seven weak ones.

# %%
D, k, N = 10, 3, 600
Q, _ = np.linalg.qr(rng.standard_normal((D, D)))  # a random rotation
X_lin = (rng.standard_normal((N, D)) * np.array([3.0, 2.5, 2.0] + [0.1] * (D - k))) @ Q.T

pca = npae.PCA(k).fit(X_lin)
print("PCA explained variance ratio of the top 3:", pca.explained_variance_ratio_.round(3))

linear = npae.Autoencoder(hidden=(), latent_dim=k, activation="identity", code_activation="identity",
                          output="identity", loss="mse", seed=SEED)
linear.fit(X_lin, epochs=40 if QUICK else 200, batch_size=32, lr=1e-2 if QUICK else 3e-3)
angles = npae.subspace_angles(linear, pca)  # decoder subspace vs PCA subspace, degrees
print("principal angles (degrees):", angles.round(4))

# %% [markdown]
# The angles are close to 0 (a random 3-D subspace, grey, sits tens of degrees away): the
# decoder's three output directions span PCA's subspace. Their cosines against PCA's individual
# axes tell the other half of the story: the matrix is not the identity, not even up to signs and
# order, and the decoder's rows are neither unit length nor orthogonal.

# %% tags=["figure"]
W_dec = linear.decoder.dense_layers[0].params["W"]  # (k, D): one output direction per row
cosines = np.abs((W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)) @ pca.components_.T)  # (k, k)
random_angles = npae.principal_angles(rng.standard_normal((D, k)), pca.components_.T)  # for scale

fig = npae.plotting.new_figure((9.5, 3.4))
ax = fig.add_subplot(1, 2, 1)
ticks = np.arange(1, k + 1)
ax.bar(ticks - 0.2, angles, width=0.4, label="linear AE's decoder")
ax.bar(ticks + 0.2, random_angles, width=0.4, color="0.7", label="a random 3-D subspace")
for t, a in zip(ticks, angles):
    ax.annotate(f"{a:.2g}°", (t - 0.2, a), ha="center", va="bottom", fontsize=8)
ax.set_xticks(ticks)
ax.set_ylim(0, 90)
ax.set_xlabel("principal angle")
ax.set_ylabel("degrees")
ax.set_title("angles to PCA's top-3 subspace", fontsize=10)
ax.legend(fontsize=8, loc="upper left")
ax = fig.add_subplot(1, 2, 2)
image = ax.imshow(cosines, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(k), [str(i + 1) for i in range(k)])
ax.set_yticks(range(k), [str(i + 1) for i in range(k)])
ax.set_xlabel("PCA axis")
ax.set_ylabel("decoder direction")
ax.set_title("|cos| between decoder directions\nand PCA axes (not the identity)", fontsize=10)
fig.colorbar(image, ax=ax)
fig.tight_layout()
fig

# %%
print("W_dec W_decᵀ (orthonormal rows would give the identity):")
print(np.round(W_dec @ W_dec.T, 2))

# %% [markdown]
# ## Where a line is not enough: two moons
#
# With a 1-D code, PCA can only project every point onto its best line. A nonlinear autoencoder
# with the same 1-D code can bend: its decoder maps the code's single number onto a curve in the
# plane, and if that curve runs through both moons, the reconstruction error drops far below PCA's.
# Same loss (squared error), same code size; the only difference is the hidden layers with a smooth
# activation (ELU, [ACT-12](../../docs/derivations/act.md#act-12)).
# ([pca.md](../../docs/derivations/pca.md), section "Two moons: where a line is not enough".)

# %%
X_moons, y_moons = npae.datasets.make_moons(400, noise=0.05, seed=SEED)

line = npae.PCA(1).fit(X_moons)
X_line = line.inverse_transform(line.transform(X_moons))  # projection onto the best line

curve = npae.Autoencoder(hidden=(32, 32), latent_dim=1, activation="elu", output="identity", loss="mse",
                         seed=SEED)
curve.fit(X_moons, epochs=150, batch_size=32, lr=1e-2)  # cheap: the same in quick mode
X_curve = curve.reconstruct(X_moons)

err_line = np.mean(np.sum((X_moons - X_line) ** 2, axis=1))
err_curve = np.mean(np.sum((X_moons - X_curve) ** 2, axis=1))
print(f"squared error per point: PCA {err_line:.4f}, autoencoder {err_curve:.4f} "
      f"({err_line / err_curve:.1f}x smaller)")

# %% tags=["figure"]
fig = npae.plotting.new_figure((12, 3.8))
panels = [(X_moons, "data"), (X_line, f"PCA, 1 component\nerror {err_line:.3f}"),
          (X_curve, f"autoencoder, 1-D code\nerror {err_curve:.3f}")]
for i, (points, title) in enumerate(panels):
    ax = fig.add_subplot(1, 3, i + 1)
    ax.scatter(X_moons[:, 0], X_moons[:, 1], s=4, color="0.85")
    ax.scatter(points[:, 0], points[:, 1], s=4, c=y_moons, cmap="coolwarm")
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
fig.tight_layout()
fig

# %% [markdown]
# Grey: the data; colour: what each model reconstructs (coloured by moon). PCA squashes every point
# onto one line; the autoencoder's reconstructions lie on a curve that threads both moons (the
# curve is the decoder's image of the code's single axis: where it jumps from one moon to the
# other, few points land).
#
# **Next:** [notebook 2](02_regularised_autoencoders.ipynb) keeps the code wide and asks other
# things of it instead of a narrow bottleneck: to undo noise, to be sparse, to be insensitive.
