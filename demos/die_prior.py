"""The die toy of lecture 004 with its latent forced to U(1, 6): a VAE whose code is a die roll.

Lecture 004 introduces latent variables with a die (the face is observed; what explains it is
latent) and then says a VAE can force its latent space to a chosen distribution: N(0, I), or
U(1, 6). A uniform prior cannot be put into the KL term directly: a Gaussian q(z|x) puts mass
outside [1, 6], where a U(1, 6) density is 0, so KL(q ‖ U(1, 6)) is infinite. The way to force it
is a change of variables: train the VAE with u ~ N(0, 1) as usual and read its code as

    z = 1 + 5 Φ(u),  Φ the standard normal CDF,

which is exactly U(1, 6) when u ~ N(0, 1). The KL divergence is unchanged by an invertible map of
the latent, so this VAE's loss *is* the loss of a VAE with prior U(1, 6) and posterior the image
of q(u|x) (docs/derivations/evidence.md, "the die toy"). Sampling the model = rolling z ~ U(1, 6)
and decoding u = Φ⁻¹((z − 1) / 5).

Data: 12x12 images of die faces (pips on a 3x3 layout, plus pixel noise), rolled from a fair die and
from a loaded one (face 4 half of the time). A 144-32-1 VAE is trained on each. Measures: the share
of the interval [1, 6] that decodes to each face (which face a decoding shows: its nearest clean
face), against the die's probabilities. With a uniform latent a face's probability becomes the
length of its interval: a loaded face gets a longer one.

Figure ``die_prior.png``: the faces; the decoder along z = 1 … 6 for each die; the aggregate
posterior of z over the data against the U(1, 6) density; interval shares against the true
probabilities. Lecture idea: lecture 004, "force the latent space to be a specific distribution",
z ~ U(1, 6). Docs: docs/derivations/evidence.md.

    python demos/die_prior.py [--quick] [--out DIR]
"""
# %% settings
import argparse
import os
from statistics import NormalDist

import numpy as np

import npae
from npae import plotting

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer rolls and epochs")
parser.add_argument("--out", default="demo_out", help="folder for the PNG")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--noise", type=float, default=0.15, help="pixel noise of the face images")
args = parser.parse_args()
rolls, epochs = (1200, 40) if args.quick else (3000, 150)
os.makedirs(args.out, exist_ok=True)
Phi, Phi_inv = np.vectorize(NormalDist().cdf), np.vectorize(NormalDist().inv_cdf)

# %% the six faces: pips on a 3x3 layout, each pip a 2x2 square in a 4x4 cell of a 12x12 image
PIPS = {1: [(1, 1)], 2: [(0, 0), (2, 2)], 3: [(0, 0), (1, 1), (2, 2)], 4: [(0, 0), (0, 2), (2, 0), (2, 2)],
        5: [(0, 0), (0, 2), (1, 1), (2, 0), (2, 2)], 6: [(0, 0), (0, 2), (1, 0), (1, 2), (2, 0), (2, 2)]}
S = 12  # image side
faces = np.zeros((6, S, S))
for f, pips in PIPS.items():
    for r, c in pips:
        faces[f - 1, 4 * r + 1:4 * r + 3, 4 * c + 1:4 * c + 3] = 1.0
faces = faces.reshape(6, S * S)
dice = {"fair die": np.full(6, 1 / 6),
        "loaded die (4 half the time)": np.array([0.1, 0.1, 0.1, 0.5, 0.1, 0.1])}


def roll(probs, n, rng):
    """n noisy face images from a die with face probabilities ``probs``; and the faces (1 … 6)."""
    f = rng.choice(6, size=n, p=probs)
    return np.clip(faces[f] + args.noise * rng.standard_normal((n, S * S)), 0.0, 1.0), f + 1


def face_of(images):
    """The face (1 … 6) each image shows: its nearest clean face."""
    return np.argmin(np.sum((images[:, None, :] - faces[None]) ** 2, axis=2), axis=1) + 1


# %% train one VAE per die; read its code as z = 1 + 5 Φ(u)
zs = np.linspace(1.0, 6.0, 1001)[1:-1]  # inside (1, 6): Φ⁻¹ is infinite at the ends
results = {}
for i, (name, probs) in enumerate(dice.items()):
    rng = np.random.default_rng([args.seed, i])
    X, F = roll(probs, rolls, rng)
    vae = npae.VAE(S * S, hidden=(32,), latent_dim=1, seed=args.seed)
    vae.fit(X, epochs=epochs, batch_size=64, lr=3e-3, progress=False)
    h = vae.history_
    print(f"{name}: epoch {epochs} | " + " | ".join(f"{k} {v[-1]:.2f}" for k, v in h.items()))
    decoded = vae.decode(Phi_inv((zs - 1.0) / 5.0)[:, None])  # (len(zs), S * S)
    shown = face_of(decoded)
    share = np.array([np.mean(shown == f) for f in range(1, 7)])  # share of [1, 6] per face
    mu, logvar = vae.encode_stats(X)  # q(u|x)
    u = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)  # one draw per roll
    z_post = 1.0 + 5.0 * Phi(u[:, 0])  # the aggregate posterior of z over the data
    samples = vae.decode(Phi_inv(rng.uniform(0, 1, (2000, 1))))  # z ~ U(1, 6) decoded
    sampled = np.array([np.mean(face_of(samples) == f) for f in range(1, 7)])
    results[name] = dict(X=X, F=F, probs=probs, decoded=decoded, shown=shown, share=share, z_post=z_post,
                         sampled=sampled)
    order = [int(shown[0])] + [int(b) for a, b in zip(shown[:-1], shown[1:]) if a != b]
    print(f"  faces along z = 1 … 6: {order}; share of [1, 6] per face "
          + ", ".join(f"{f}: {share[f - 1]:.3f}" for f in range(1, 7))
          + " (die: " + ", ".join(f"{p:.3f}" for p in probs) + ")")
    print("  2,000 rolls z ~ U(1, 6) decoded show faces "
          + ", ".join(f"{f}: {sampled[f - 1]:.3f}" for f in range(1, 7))
          + f"; max |share − probability| {np.max(np.abs(sampled - probs)):.3f}")

# %% figure
fig = plotting.new_figure((15.0, 8.0))
layout = fig.add_gridspec(3, 3, height_ratios=[3.0, 1.2, 1.2])
ax = fig.add_subplot(layout[0, 0])
T = S + 1  # tile pitch
canvas = np.ones((2 * T + 1, 6 * T + 1))
for j in range(6):
    canvas[1:T, 1 + T * j:T * (j + 1)] = faces[j].reshape(S, S)
    canvas[T + 1:2 * T, 1 + T * j:T * (j + 1)] = results["fair die"]["X"][
        np.flatnonzero(results["fair die"]["F"] == j + 1)[0]].reshape(S, S)
ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
ax.set_xticks(T / 2 + T * np.arange(6))
ax.set_xticklabels([str(f) for f in range(1, 7)])
ax.set_yticks([T / 2, 1.5 * T])
ax.set_yticklabels(["clean", "a roll"], fontsize=8)
ax.set_title("the six faces, clean and as rolled (with pixel noise)", fontsize=9)
for i, (name, r) in enumerate(results.items()):
    ax = fig.add_subplot(layout[1 + i, :])
    picks = np.linspace(0, len(zs) - 1, 26).astype(int)
    canvas = np.ones((T + 1, 26 * T + 1))
    for j, k in enumerate(picks):
        canvas[1:T, 1 + T * j:T * (j + 1)] = r["decoded"][k].reshape(S, S)
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
    ax.set_xticks(T / 2 + T * np.arange(26))
    ax.set_xticklabels([f"{zs[k]:.1f}" for k in picks], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("z (the decoder's input is u = Φ⁻¹((z − 1) / 5))", fontsize=8)
    ax.set_title(f"{name}: the decoder along z = 1 … 6; share of [1, 6] per face "
                 + ", ".join(f"{f}: {r['share'][f - 1]:.2f}" for f in range(1, 7))
                 + " (die: " + ", ".join(f"{p:.2f}" for p in r["probs"]) + ")", fontsize=9)
ax = fig.add_subplot(layout[0, 1])
for i, (name, r) in enumerate(results.items()):
    ax.hist(r["z_post"], bins=25, range=(1, 6), density=True, histtype="step", color=f"C{i}", label=name)
ax.axhline(0.2, color="black", linestyle="--", label="U(1, 6) density 1/5")
ax.set_xlabel("z = 1 + 5 Φ(u), u ~ q(u|x), over the rolls")
ax.set_ylabel("density")
ax.set_title("the aggregate posterior of z against the prior U(1, 6)", fontsize=9)
ax.legend(fontsize=7)
ax = fig.add_subplot(layout[0, 2])
w = 0.2
for i, (name, r) in enumerate(results.items()):
    ax.bar(np.arange(1, 7) + (2 * i - 1.5) * w / 1, r["probs"], w, color=f"C{i}", alpha=0.35,
           label=f"{name}: probability")
    ax.bar(np.arange(1, 7) + (2 * i - 0.5) * w / 1, r["sampled"], w, color=f"C{i}",
           label=f"{name}: share of 2,000 rolls z ~ U(1, 6)")
ax.set_xticks(np.arange(1, 7))
ax.set_xlabel("face")
ax.set_ylabel("share")
ax.set_title("sampling the model: faces of decoded z ~ U(1, 6)", fontsize=9)
ax.legend(fontsize=6, loc="upper left")
fig.suptitle("the die toy with its latent forced to U(1, 6): a 144-32-1 VAE read through z = 1 + 5 Φ(u)",
             fontsize=10)
fig.tight_layout()
path = os.path.join(args.out, "die_prior.png")
plotting.save_figure(fig, path)
print(f"wrote {path}")
