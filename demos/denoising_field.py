"""Denoising as a vector field: the arrows r(x̃) − x̃ of a denoising autoencoder point back to the data.

Points lie on a circle of radius 1 in the plane (a 1-D manifold in 2-D, up to a little noise). A
denoising autoencoder 2-64-64-16-64-64-2 is trained to map x̃ = x + σ ε (σ = 0.3) back to x; the
same network trained without corruption is the plain autoencoder beside it. For a point x̃ off the
manifold, the arrow from x̃ to its reconstruction r(x̃) is what each network does there. Trained
with squared error, the best denoiser returns E[x | x̃], which lies toward the data; for small σ
the arrow r(x̃) − x̃ is close to σ² ∇ log p(x̃) (Alain and Bengio, 2014; docs/derivations/capacity.md).

What the measures show: both networks' arrows point roughly toward the circle (the tanh units
saturate far from the data), but near the data, where the corrupted points are, the plain network
is close to the identity and moves them little, while the denoiser carries them most of the way
back.

Measures, on fresh corrupted points x̃ (the training corruption) and on a regular grid:
* mean distance to the circle, | ‖x‖ − 1 |, of x̃ and of r(x̃), for both networks;
* mean cosine between the arrow r(x̃) − x̃ and the direction from x̃ to its nearest point on the
  circle (1: straight back to the manifold).

Figure ``denoising_field.png``: the arrows on a grid over the plane, denoising AE and plain AE, with
the training points; a third panel shows corrupted points and their reconstructions.
Lecture idea: lecture 003, figure 4: a denoising autoencoder learns a vector field that brings
corrupted points back to the manifold the data lie on. Docs: docs/derivations/capacity.md,
docs/derivations/denoise.md.

    python demos/denoising_field.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os

import numpy as np

import npae
from npae import plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="shorter training")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--noise-level", type=float, default=0.3, help="σ of the Gaussian corruption")
args = parser.parse_args()
epochs = 40 if args.quick else 200
sigma = args.noise_level
os.makedirs(args.out, exist_ok=True)

# %% data: the unit circle with a little noise
rng = np.random.default_rng(args.seed)
angle = rng.uniform(0, 2 * np.pi, 2000)
X = np.column_stack([np.cos(angle), np.sin(angle)]) + 0.02 * rng.standard_normal((2000, 2))  # (N, 2)

# %% the same network with and without corruption
shape = dict(hidden=(64, 64), latent_dim=16, activation="tanh", output="identity", loss="mse", seed=args.seed)
models = {"denoising AE": npae.DenoisingAutoencoder(2, noise="gaussian", noise_level=sigma, **shape),
          "plain AE": npae.Autoencoder(2, **shape)}
for name, model in models.items():
    model.fit(X, epochs=epochs, batch_size=64, lr=2e-3, progress=False)
    print(f"{name}: epoch {epochs} | loss {model.history_['loss'][-1]:.4f}")


# %% measures
def to_circle(P):
    """Unit vectors from each point toward its nearest point on the circle, and the distance."""
    r = np.linalg.norm(P, axis=1, keepdims=True)  # (n, 1)
    direction = np.sign(1.0 - r) * P / np.maximum(r, 1e-12)  # outward inside, inward outside
    return direction, np.abs(r[:, 0] - 1.0)


test = X[:1000] + sigma * np.random.default_rng([args.seed, 1]).standard_normal((1000, 2))  # fresh x̃
g = np.linspace(-1.8, 1.8, 17)
grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)  # (441, 2)
grid = grid[np.linalg.norm(grid, axis=1) > 0.15]  # the centre has no nearest direction
results = {}
for name, model in models.items():
    row = {}
    for where, P in (("corrupted points", test), ("grid", grid)):
        R = model.reconstruct(P)
        arrow = R - P
        direction, before = to_circle(P)
        after = to_circle(R)[1]
        cos = np.sum(arrow * direction, axis=1) / np.maximum(np.linalg.norm(arrow, axis=1), 1e-12)
        row[where] = dict(before=float(before.mean()), after=float(after.mean()), cos=float(np.mean(cos)),
                          length=float(np.mean(np.linalg.norm(arrow, axis=1))))
        print(f"{name}, {where}: distance to the circle {before.mean():.3f} → {after.mean():.3f} after one "
              f"pass; mean cosine(arrow, direction to the circle) {np.mean(cos):+.3f}; mean arrow length "
              f"{row[where]['length']:.3f}")
    results[name] = row

# %% figure
fig = plotting.new_figure((16.0, 5.6))
t = np.linspace(0, 2 * np.pi, 200)
for i, (name, model) in enumerate(models.items()):
    ax = fig.add_subplot(1, 3, i + 1)
    ax.scatter(X[:, 0], X[:, 1], s=2, color="0.75", label="training points")
    arrow = model.reconstruct(grid) - grid
    ax.quiver(grid[:, 0], grid[:, 1], arrow[:, 0], arrow[:, 1], angles="xy", scale_units="xy", scale=2,
              width=0.004, color=f"C{i}", label="r(x) − x, drawn at half its length")
    ax.plot(np.cos(t), np.sin(t), color="black", linewidth=0.8, linestyle=":")
    ax.set_aspect("equal")
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-2.2, 2.2)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    r = results[name]
    ax.set_title(f"{name}: arrows from x to its reconstruction r(x)\n"
                 f"corrupted points' distance to the circle {r['corrupted points']['before']:.3f} → "
                 f"{r['corrupted points']['after']:.3f}\ncos(arrow, way back to the circle) "
                 f"{r['corrupted points']['cos']:+.2f}, mean arrow {r['corrupted points']['length']:.3f}",
                 fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
ax = fig.add_subplot(1, 3, 3)
show = test[:150]
R = models["denoising AE"].reconstruct(show)
ax.plot(np.cos(t), np.sin(t), color="black", linewidth=0.8, linestyle=":", label="the data's circle")
ax.scatter(show[:, 0], show[:, 1], s=8, color="C3", label=f"corrupted x̃ = x + σε, σ = {sigma:g}")
ax.scatter(R[:, 0], R[:, 1], s=8, color="C0", label="denoising AE's r(x̃)")
for a, b in zip(show, R):
    ax.plot([a[0], b[0]], [a[1], b[1]], color="0.6", linewidth=0.5)
ax.set_aspect("equal")
ax.set_xlim(-2.2, 2.2)
ax.set_ylim(-2.2, 2.2)
ax.set_xlabel("x1")
ax.set_ylabel("x2")
ax.set_title("corrupted points and where the denoiser sends them", fontsize=9)
ax.legend(fontsize=7, loc="upper right")
fig.suptitle("denoising as a vector field: the denoiser's arrows carry corrupted points back onto the data; "
             "the plain autoencoder leaves points near the data where they are", fontsize=10)
fig.tight_layout()
path = os.path.join(args.out, "denoising_field.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
