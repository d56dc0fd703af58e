"""Two ways an unregularised autoencoder learns nothing: the identity copy and the "h = i" index.

Lecture 003 (figures 2 and 3) names two failures of a plain autoencoder with too much capacity:

* **the identity copy**: a code at least as wide as the input lets the network pass x through
  unchanged. Here a linear autoencoder 64 → 128 → 64 (code wider than the input, MSE loss) is
  trained on the bundled digits beside a 64 → 8 → 64 one. The wide one reconstructs held-out
  digits almost perfectly, but it reconstructs uniform-noise images just as readily, which no model
  of digits should: it learned to copy. Its reconstruction map x̂ = x W_enc W_dec + const is
  close to the 64 × 64 identity (drawn as a matrix, with its singular values) except along the few
  pixel directions the training digits never vary in; the narrow model's map is a rank-8 projection.
* **the index code, h = f(x_i) = i**: a deep, wide network with a 1-unit code, trained on only 16
  digits, gives each training digit its own code value and decodes each value back to that digit:
  a look-up table. The code is an index, not a description: sweeping it decodes the training
  digits one after another with abrupt switches, and a held-out digit comes back as one of the 16.

Measures: the share of each image set's variance the reconstruction recovers (1 − error / total
squared deviation from the training mean), and for the index network its training and held-out
squared error.

Figure ``overcomplete_identity.png``. Lecture idea: capacity without a constraint (lecture 003,
"learning the identity function" and "learning a mapping function"); the regularised autoencoders
of lecture 003 (sparse, denoising, contractive) exist to prevent it.
Docs: docs/derivations/capacity.md, docs/autoencoders.md.

    python demos/overcomplete_identity.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import datasets, plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="shorter training")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--wide", type=int, default=128, help="code width of the over-complete AE")
parser.add_argument("--narrow", type=int, default=8, help="code width of the under-complete AE")
parser.add_argument("--memorise", type=int, default=16, help="training digits of the index network")
args = parser.parse_args()
epochs, index_epochs = (60, 1000) if args.quick else (200, 3000)
os.makedirs(args.out, exist_ok=True)

X, y = datasets.load_digits()
X_train, X_test = X[:1500], X[1500:]
noise = np.random.default_rng(args.seed).random(X_test.shape)  # uniform noise "images"
mean = X_train.mean(axis=0)

# %% the identity copy: a linear AE with a code wider than the input, and a narrow one
linear = {}
for width in (args.wide, args.narrow):
    model = npae.Autoencoder(64, hidden=(), latent_dim=width, output="identity", loss="mse", seed=args.seed)
    model.fit(X_train, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    print(f"linear AE 64-{width}-64: epoch {epochs} | loss {model.history_['loss'][-1]:.4f}")
    linear[width] = model


def recovered(model, images):
    """Share of the images' squared deviation from the training mean that the reconstruction
    recovers: 1 − Σ‖x̂ − x‖² / Σ‖x − mean‖² (1: a perfect copy, 0: no better than the mean)."""
    err = np.sum((model.reconstruct(images) - images) ** 2)
    return 1.0 - err / np.sum((images - mean) ** 2)


for width, model in linear.items():
    print(f"64-{width}-64: recovers {100 * recovered(model, X_test):.2f}% of held-out digits' variance "
          f"and {100 * recovered(model, noise):.2f}% of uniform noise images'")
# the reconstruction map of a linear AE: x̂ = (x W_enc + b_enc) W_dec + b_dec, so its matrix is W_enc W_dec
maps = {w: m.params["encoder.0.W"] @ m.params["decoder.0.W"] for w, m in linear.items()}  # (64, 64)
sv = {w: np.linalg.svd(M, compute_uv=False) for w, M in maps.items()}
for w in maps:
    print(f"64-{w}-64: ‖W_enc W_dec − I‖_F = {np.linalg.norm(maps[w] - np.eye(64)):.3f}; singular values "
          f"{sv[w].max():.3f} … {sv[w].min():.3g}; above 0.5: {int(np.sum(sv[w] > 0.5))} of 64")
constant = np.flatnonzero(X_train.std(axis=0) == 0)
print(f"pixels constant in the training digits (no gradient reaches their diagonal): {constant.tolist()}")

# %% the index code: a deep AE with a 1-unit code on a few digits
N = args.memorise
index = npae.Autoencoder(64, hidden=(256, 256), latent_dim=1, seed=args.seed)
index.fit(X_train[:N], epochs=index_epochs, batch_size=N, lr=1e-3, progress=False)
print(f"index AE 64-256-256-1-256-256-64 on {N} digits: epoch {index_epochs} | "
      f"loss {index.history_['loss'][-1]:.2f}")
codes = index.encode(X_train[:N]).ravel()  # (N,)
order = np.argsort(codes)
sq = {name: float(np.mean(np.sum((index.reconstruct(A) - A) ** 2, axis=1)))
      for name, A in (("training", X_train[:N]), ("held-out", X_test))}
R = index.reconstruct(X_test)  # (M, 64)
nearest = np.sum((R[:, None, :] - X_train[None, :N, :]) ** 2, axis=2).argmin(axis=1)  # (M,)
print(f"squared error per digit: training {sq['training']:.2f}, held-out {sq['held-out']:.2f} "
      f"(the {N} training digits are memorised, nothing else is)")
sweep_z = np.interp(np.linspace(0, N - 1, 30), np.arange(N), codes[order])  # through every code in turn
sweep = index.decode(sweep_z[:, None])  # (30, 64)
sweep_id = np.sum((sweep[:, None, :] - X_train[None, :N, :]) ** 2, axis=2).argmin(axis=1)
print(f"sweeping the code from {codes.min():.2f} to {codes.max():.2f} (30 steps, piecewise even between the "
      f"sorted training codes) decodes "
      f"{len(set(sweep_id.tolist()))} distinct training digits (nearest-image labels)")


# %% figure
def tiles(ax, images, n_rows, n_cols, title, labels=None):
    t = np.asarray(images)[:n_rows * n_cols].reshape(n_rows, n_cols, 8, 8)
    canvas = np.ones((n_rows * 9 + 1, n_cols * 9 + 1))
    for i in range(n_rows):
        for j in range(n_cols):
            canvas[1 + 9 * i:9 * (i + 1), 1 + 9 * j:9 * (j + 1)] = np.clip(t[i, j], 0, 1)
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([] if labels is None else 4.5 + 9 * np.arange(n_rows))
    if labels is not None:
        ax.set_yticklabels(labels, fontsize=7)
    ax.set_title(title, fontsize=8)


fig = plotting.new_figure((16.0, 10.0))
k = 10
ax = fig.add_subplot(2, 3, 1)
rows = [X_test[:k], linear[args.wide].reconstruct(X_test[:k]), linear[args.narrow].reconstruct(X_test[:k]),
        noise[:k], linear[args.wide].reconstruct(noise[:k]), linear[args.narrow].reconstruct(noise[:k])]
tiles(ax, np.concatenate(rows), 6, k, "held-out digits and uniform noise, and their reconstructions",
      labels=["digit", f"64-{args.wide}-64", f"64-{args.narrow}-64", "noise", f"64-{args.wide}-64",
              f"64-{args.narrow}-64"])
ax = fig.add_subplot(2, 3, 2)
im = ax.imshow(maps[args.wide], cmap="RdBu_r", vmin=-1.2, vmax=1.2)
fig.colorbar(im, ax=ax, fraction=0.046)
ax.set_xticks([0, 16, 32, 48, 63])
ax.set_yticks([0, 16, 32, 48, 63])
ax.set_xlabel("output pixel")
ax.set_ylabel("input pixel")
ax.set_title(f"64-{args.wide}-64: its reconstruction map W_enc W_dec (64 × 64)\n"
             f"‖W_enc W_dec − I‖_F = {np.linalg.norm(maps[args.wide] - np.eye(64)):.2f}: "
             f"close to the identity "
             f"(off where the digits never vary)", fontsize=8)
ax = fig.add_subplot(2, 3, 3)
for i, w in enumerate((args.wide, args.narrow)):
    ax.plot(np.arange(1, 65), sv[w], marker="o", markersize=3, color=f"C{i}",
            label=f"64-{w}-64: digits {100 * recovered(linear[w], X_test):.1f}%, "
                  f"noise {100 * recovered(linear[w], noise):.1f}% recovered")
ax.set_xlabel("index")
ax.set_ylabel("singular value of W_enc W_dec")
ax.set_title("the map's singular values: all ≈ 1 (a copy) against 8 ≈ 1 (a projection)", fontsize=8)
ax.legend(fontsize=7)
ax = fig.add_subplot(2, 3, 4)
tiles(ax, X_train[:N][order], 1, N, f"index AE 64-256-256-1: the {N} training digits sorted by their code h\n"
      "(neighbouring codes hold unrelated digits: the code is a label per digit)")
ax.set_xticks(4.5 + 9 * np.arange(N))
ax.set_xticklabels([f"{codes[i]:.1f}" for i in order], rotation=90, fontsize=7)
ax.set_xlabel("code h of each training digit")
tiles(fig.add_subplot(2, 3, 5), sweep, 3, 10,
      f"decoding h from {codes.min():.1f} to {codes.max():.1f}, 30 steps through the sorted codes:\n"
      f"{len(set(sweep_id.tolist()))} distinct training digits, switching abruptly")
near = X_train[:N][nearest[:k]]
tiles(fig.add_subplot(2, 3, 6), np.concatenate([X_test[:k], R[:k], near]), 3, k,
      f"held-out digits come back as training digits\nsquared error: training {sq['training']:.2f}, "
      f"held-out {sq['held-out']:.2f} per digit", labels=["held-out", "reconstruction", "nearest of the 16"])
fig.suptitle("an unregularised autoencoder with too much capacity: the identity copy (top) and the "
             "index code h = i (bottom)", fontsize=10)
fig.tight_layout()
path = os.path.join(args.out, "overcomplete_identity.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
