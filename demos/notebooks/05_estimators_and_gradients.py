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
# # 5. Gradient estimators, gradient checks, and the two backends
#
# Three questions about the gradients that train every model in this course:
#
# 1. **Which estimator?** The VAE's loss is an expectation over z ~ q(z|x), and its gradient has to
#    be estimated from samples. The score-function estimator works for any distribution; the
#    pathwise (reparameterisation) estimator needs z = mu + σ·ε. Both are unbiased; their variances
#    differ enormously.
# 2. **Are the hand-derived gradients right?** npae's backward passes are written by hand, and each
#    is compared with central finite differences in float64.
# 3. **Is the code I read the code that trains?** npae has two implementations of its hot units: the
#    readable pairs (`reference`) and fused numba kernels (`fused`). With `reference` the very
#    functions of `functional.py` and `latent.py` run; a model trained under each ends with the same
#    parameters. The default, `auto`, runs `reference` unless a fit is large enough for the kernels
#    to pay for their compilation, so the small fits of these notebooks run the pairs.
#
# `NPAE_QUICK=1` uses fewer draws and epochs.

# %%
import contextlib
import os

import numpy as np

import npae
from npae.pairs import functional as F
from npae.models.estimators import compare_estimators, encoder_gradient_estimates
from npae.gradcheck import check_model, check_pair

QUICK = os.environ.get("NPAE_QUICK", "0") not in ("", "0")
SEED = 0
rng = np.random.default_rng(SEED)
print(f"quick mode: {QUICK}; backends available here: {npae.fast.backends.available()}, "
      f"active: {npae.get_backend()!r}")

# %% [markdown]
# ## Two estimators of one gradient, in one dimension
#
# Take z ~ N(mu, σ²) and f(z) = z². The gradient of E[f(z)] = mu² + σ² with respect to mu is
# exactly 2·mu. Two ways to estimate it from draws ε ~ N(0, 1), z = mu + σε:
#
# * **score function** (REINFORCE): f(z)·∂log q(z)/∂mu = f(z)·(z − mu)/σ²
#   ([SCORE-1](../../docs/derivations/score.md#score-1),
#   [SCORE-3](../../docs/derivations/score.md#score-3)). It needs only values of f, never its
#   derivative, so it works for anything, discrete z included;
# * **pathwise**: differentiate through the sample, ∂f(mu + σε)/∂mu = f′(z) = 2z
#   ([SCORE-4](../../docs/derivations/score.md#score-4), the reparameterisation of
#   [REPARAM-2](../../docs/derivations/reparam.md#reparam-2)).

# %%
mu1, sigma1 = 1.0, 1.0
S = 2_000 if QUICK else 20_000
z1 = mu1 + sigma1 * rng.standard_normal(S)  # (S,)
per_draw = {"score function": z1 ** 2 * (z1 - mu1) / sigma1 ** 2, "pathwise": 2 * z1}
print(f"exact gradient 2·mu = {2 * mu1}")
for name, g in per_draw.items():
    print(f"{name:>15}: mean of {S} draws {g.mean():.3f} ± {g.std() / np.sqrt(S):.3f}, "
          f"variance per draw {g.var():.2f}")

# %% [markdown]
# Both means land within two standard errors of 2; the score-function draws scatter several
# times more, so it needs several times more draws for the same precision. In a network with thousands of
# parameters and a 64-pixel likelihood the gap is far larger.
#
# ## The same comparison on a VAE's encoder
#
# `npae.models.estimators.encoder_gradient_estimates` computes, for one batch of digits, S per-draw
# estimates of the gradient of the expected reconstruction term with respect to *every* encoder
# parameter, with the pathwise estimator, the score function, and the score function with a
# leave-one-out baseline (the mean of f over the other draws, subtracted to cut variance without
# adding bias). The KL term has a closed form and is left out: it is the same under both.

# %%
X, y = npae.datasets.load_digits()
perm = rng.permutation(len(X))
X_train, X_test = X[perm[:1500]], X[perm[1500:]]
vae = npae.VAE(hidden=(32,), latent_dim=4, seed=SEED).fit(X_train, epochs=5 if QUICK else 30, lr=2e-3)

draws = 200 if QUICK else 2000
estimates = encoder_gradient_estimates(vae, X_test[:16], n_samples=draws, seed=SEED)
summary = compare_estimators(estimates)
for name, s in summary.items():
    print(f"{name:>15}: variance per draw (trace) {s['variance']:10.4g}, "
          f"{s['ratio_to_pathwise']:7.1f}x the pathwise one")

# %% tags=["figure"]
names = list(summary)
path_mean = summary["pathwise"]["mean"]
k = int(np.argmax(np.abs(path_mean)))  # the coordinate with the largest gradient
fig = npae.plotting.new_figure((10, 3.6))
ax = fig.add_subplot(1, 2, 1)
ax.bar(names, [summary[n]["variance"] for n in names], color=["C0", "C1", "C2"])
ax.set_yscale("log")
ax.set_ylabel("variance per draw (trace), log scale")
ax.set_title(f"{draws} draws, {path_mean.size} encoder parameters", fontsize=10)
ax = fig.add_subplot(1, 2, 2)
count = np.arange(1, draws + 1)
for i, name in enumerate(names):
    running = np.cumsum(estimates[name][:, k]) / count  # the mean of the first s draws
    ax.plot(count, running, color=f"C{i}", label=name)
ax.axhline(path_mean[k], color="k", linestyle="--", linewidth=0.8, label=f"pathwise mean of {draws}")
ax.set_xscale("log")
ax.set_xlabel("number of draws s")
ax.set_ylabel("mean of the first s estimates")
ax.set_title(f"one coordinate (#{k}), running means", fontsize=10)
ax.legend(fontsize=7)
fig.tight_layout()
fig

# %% [markdown]
# Right: the running mean of one gradient coordinate as draws accumulate. All three estimators are
# unbiased, so all three head for the same value, but the pathwise one is there after a handful of
# draws while the plain score function is still swinging after hundreds; the baseline helps a lot
# without closing the gap. This is why VAEs are trained with the reparameterised gradient
# ([score.md](../../docs/derivations/score.md)).
#
# ## Central-difference gradient checks
#
# Every backward pass in npae is checked against numerical derivatives. `npae.gradcheck` uses a
# *central* difference (the 4-point rule, symmetric about x, error O(h⁴); a one-sided difference
# would have error O(h) and hide real mistakes), in float64, and reports per array the worst
# relative error, measured against the array's largest entry; the tolerance is 1e-6
# ([testing.md](../../docs/testing.md)).
#
# `check_pair(forward, backward, args)` takes a pure forward/backward pair, here the dense layer
# y = xW + b and its three gradients ([DENSE-1](../../docs/derivations/dense.md#dense-1) to
# [DENSE-4](../../docs/derivations/dense.md#dense-4)):

# %%
x = rng.standard_normal((4, 5))
W = rng.standard_normal((5, 3))
b = rng.standard_normal(3)
print(check_pair(F.dense_forward, F.dense_backward, [x, W, b], names=["x", "W", "b"]))

# %% [markdown]
# A check is only worth something if it fails when it should. Here is a dense backward whose
# weight gradient is 0.1% too large, a mistake no loss curve would reveal:


# %%
def slightly_wrong_dense_backward(dy, cache):
    dx, dW, db = F.dense_backward(dy, cache)
    return dx, dW * 1.001, db


report = check_pair(F.dense_forward, slightly_wrong_dense_backward, [x, W, b], names=["x", "W", "b"])
print(report)
print("check passed:", report.ok)

# %% [markdown]
# `check_model(model, x, **noise)` checks a whole model's loss with respect to every entry of every
# parameter. A VAE draws ε inside its step, so ε must be passed in fixed, or each loss evaluation
# would see different noise and the differences would mean nothing. Below, a small Gaussian VAE
# with a learned per-feature variance: the gradient of every array reaches the loss through the
# sampler, the KL, the fan-in ([ELBO-5](../../docs/derivations/elbo.md#elbo-5)) and the Gaussian
# likelihood ([GAUSSDEC-2](../../docs/derivations/gaussdec.md#gaussdec-2),
# [GAUSSDEC-4](../../docs/derivations/gaussdec.md#gaussdec-4)).

# %%
x_small = rng.uniform(0.05, 0.95, (3, 6))  # 3 examples, 6 features
small = npae.VAE(6, hidden=(4,), latent_dim=2, activation="tanh", likelihood="gaussian",
                 variance="per_feature", seed=SEED)
report = check_model(small, x_small, eps=rng.standard_normal((3, 2)))
print(report)
print(f"largest relative error {report.max_error:.1e}, tolerance {report.tol:g}")

# %% [markdown]
# The test suite runs the same checks over many shapes and hyperparameters drawn at random
# (`tests/`, with hypothesis), for every pair, penalty and model.
#
# ## Two backends, one set of numbers
#
# Model code calls a handful of units (`ops.dense_act_forward`, `ops.reparam_kl_forward`,
# `ops.adam_update`, ...) and never asks which implementation answers
# ([architecture.md](../../docs/architecture.md)). Under `reference` each unit is the composition of
# the readable pairs, looked up in their modules when called; under `fused` numba kernels do the
# same arithmetic in fewer passes. `with npae.backend(name):` switches for a block.
#
# To see that `reference` really runs the pair you can read, count the calls of
# `npae.pairs.functional.relu_backward` ([ACT-3](../../docs/derivations/act.md#act-3)) during one epoch
# of a VAE with ReLU layers, under each backend:


# %%
@contextlib.contextmanager
def counting_calls(module, name):
    """Replace module.name by a wrapper that counts its calls; put the original back afterwards."""
    original = getattr(module, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(module, name, wrapper)
    try:
        yield calls
    finally:
        setattr(module, name, original)


for name in npae.fast.backends.available():  # auto (the default), reference, and fused with numba
    with npae.backend(name), counting_calls(npae.pairs.functional, "relu_backward") as calls:
        npae.VAE(hidden=(32,), latent_dim=2, seed=SEED).fit(X_train[:640], epochs=1, batch_size=64)
    print(f"{name:>9}: functional.relu_backward ran {calls[0]} times in 10 training steps")

# %% [markdown]
# Two calls per step under `reference` (one ReLU layer in the encoder, one in the decoder), and
# under `auto`, which gives a fit this small to `reference`; none under `fused`, where a kernel does
# the same arithmetic. Same arithmetic, same result: train the
# same model from the same seed under each backend and compare every parameter.

# %%
trained = {}
for name in ("reference", "fused"):
    if name not in npae.fast.backends.available():
        continue
    with npae.backend(name):
        trained[name] = npae.VAE(hidden=(64,), latent_dim=2, seed=SEED).fit(
            X_train, epochs=3 if QUICK else 10, lr=2e-3)

if len(trained) == 2:
    ref, fused = trained["reference"].params, trained["fused"].params
    print(f"{'parameter':<12} | max |reference − fused| / max |reference|")
    for key in ref:
        print(f"{key:<12} | {np.max(np.abs(ref[key] - fused[key])) / np.max(np.abs(ref[key])):.1e}")
    same = all(np.allclose(ref[key], fused[key], rtol=1e-10, atol=0) for key in ref)
    print("equal to rtol 1e-10:", same)
else:
    print("only the reference backend is available here (no numba, or NPAE_JIT=0)")

# %% [markdown]
# The parameters agree to 1e-12 or better, the rounding of float64 arithmetic done in a different
# order. So every figure in these notebooks is what the derived pairs compute, whichever backend
# drew it; `NPAE_BACKEND=reference` makes every notebook run the pairs alone.
