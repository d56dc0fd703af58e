"""The numba kernels equal their NumPy references, both switches work, float32 stays float32."""
import os
import subprocess
import sys

import numpy as np
import pytest

from npae.fast import backends
from npae.pairs import functional as F
from npae.fast import kernels
from npae.pairs import latent
from npae.models.layers import Dense, DenseAct, LeakyReLU, ReLU, Sequential
from npae.training.optim import Adam, adam_update
from npae.models.vae import VAE

RTOL = {np.float64: 1e-12, np.float32: 2e-6}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = [np.float64, np.float32]


def close(a, b, dtype, atol=0.0):
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act, code", [("identity", 0), ("relu", 1), ("leaky_relu", 2)])
def test_bias_act_forward_and_backward_match_numpy(rng, dtype, act, code):
    x = rng.standard_normal((7, 5)).astype(dtype)
    W = rng.standard_normal((5, 6)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    slope = 0.2
    hyper = {"slope": slope} if act == "leaky_relu" else {}
    fwd, bwd, _ = F.ACTIVATIONS[act]
    a_ref, _ = F.dense_forward(x, W, b)
    h_ref, act_cache = fwd(a_ref, **hyper)
    a = x @ W
    h = np.empty_like(a)
    kernels.bias_act_forward(a, b, h, code, kernels.scalar(slope, a))
    close(a, a_ref, dtype)
    close(h, h_ref, dtype)

    dh = rng.standard_normal(h.shape).astype(dtype)
    da_ref = bwd(dh, act_cache)
    da, db = np.empty_like(dh), np.empty(6, dtype=dtype)
    kernels.act_backward(dh, a, da, db, code, kernels.scalar(slope, a))
    close(da, da_ref, dtype)
    close(db, da_ref.sum(axis=0), dtype, atol=10 * np.finfo(dtype).eps)
    assert h.dtype == da.dtype == db.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_matches_numpy(rng, dtype):
    s = (4 * rng.standard_normal((9, 13))).astype(dtype)
    s[0, :3] = [0.0, 1e4, -1e4]  # the kink of |s| and far tails stay finite
    t = rng.random((9, 13)).astype(dtype)
    value_ref, ds_ref = F.bce_with_logits_loss(s, t)
    value, ds = kernels.bce_with_logits_loss(s, t)
    assert ds.dtype == dtype and np.isfinite(value)
    np.testing.assert_allclose(value, value_ref, rtol=RTOL[dtype] * 10)
    close(ds, ds_ref, dtype, atol=np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_matches_numpy_over_steps(rng, dtype):
    shape = (6, 4)
    p_ref = rng.standard_normal(shape).astype(dtype)
    p = p_ref.copy()
    m_ref, v_ref = np.zeros_like(p), np.zeros_like(p)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, 6):
        g = rng.standard_normal(shape).astype(dtype)
        adam_update(p_ref, g, m_ref, v_ref, 1e-2, 0.9, 0.999, 1e-8, t)
        kernels.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, t)
    close(m, m_ref, dtype)
    close(v, v_ref, dtype)
    close(p, p_ref, dtype)
    assert p.dtype == m.dtype == v.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_reparam_kl_matches_latent_pairs(rng, dtype):
    mu = rng.standard_normal((5, 3)).astype(dtype)
    logvar = rng.uniform(-2, 2, (5, 3)).astype(dtype)
    logvar[0, 0] = 1e-9  # where exp(logvar) − 1 cancels
    eps = rng.standard_normal((5, 3)).astype(dtype)
    z_ref, rep_cache = latent.reparameterize_forward(mu, logvar, eps)
    kl_ref, kl_cache = latent.gaussian_kl_forward(mu, logvar)
    z, kl_sum, cache = kernels.reparam_kl_forward_fused(mu, logvar, eps)
    close(z, z_ref, dtype)
    np.testing.assert_allclose(kl_sum, kl_ref.sum(), rtol=RTOL[dtype])

    dz = rng.standard_normal((5, 3)).astype(dtype)
    dmu_s, dlv_s = latent.reparameterize_backward(dz, rep_cache)
    dmu_k, dlv_k = latent.gaussian_kl_backward(np.ones(5, dtype=dtype), kl_cache)
    fused = kernels.reparam_kl_backward_fused(dz, cache)
    for got, want in zip(fused, (dmu_s, dlv_s, dmu_k, dlv_k)):
        close(got, want, dtype, atol=np.finfo(dtype).eps)
        assert got.dtype == dtype
    assert z.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequential_steps_equal_layer_by_layer_in_both_backends(rng, dtype):
    """A Sequential runs Dense + activation as one backend unit; under either backend its forward,
    backward and gradients equal the layers run one by one through their pairs."""
    def build():
        r = np.random.default_rng(3)
        return [Dense(4, 6, rng=r, dtype=dtype), ReLU(), Dense(6, 5, rng=r, dtype=dtype),
                LeakyReLU(0.1), Dense(5, 3, rng=r, dtype=dtype)]

    layers = build()
    x = rng.standard_normal((8, 4)).astype(dtype)
    dy = rng.standard_normal((8, 3)).astype(dtype)
    h = x
    for layer in layers:
        h = layer.forward(h)
    d = dy
    for layer in reversed(layers):
        d = layer.backward(d)
    for name in backends.available():
        with backends.backend(name):
            seq = Sequential(build())
            assert [type(s) for s in seq.steps] == [DenseAct, DenseAct, DenseAct]
            close(seq.forward(x), h, dtype)
            close(seq.apply(x), h, dtype)
            close(seq.backward(dy), d, dtype)
            for step, layer in zip(seq.steps, [layers[0], layers[2], layers[4]]):
                for key in ("W", "b"):
                    close(step.dense.grads[key], layer.grads[key], dtype, atol=10 * np.finfo(dtype).eps)
            for step, act in zip(seq.steps[:2], [layers[1], layers[3]]):  # the same pre-activations
                close(step.pre, act.pre, dtype)
            assert seq.backward(dy, input_grad=False) is None


def test_float32_step_never_widens(rng):
    """Every float array bound to a local of an npae function during a float32 VAE step and Adam
    update (caches, temporaries, gradients, optimizer state) is float32."""
    model = VAE(12, hidden=(8,), latent_dim=3, dtype="float32", seed=0)
    x = rng.random((6, 12)).astype(np.float32)
    opt = Adam(lr=1e-3)
    package = os.path.join(ROOT, "npae")
    wide = set()

    def spy(frame, event, arg):
        if event == "return" and frame.f_code.co_filename.startswith(package):
            for name, value in list(frame.f_locals.items()) + [("<return>", arg)]:
                values = value if isinstance(value, tuple) else (value,)
                for v in values:
                    if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype != np.float32:
                        wide.add(f"{frame.f_code.co_name}:{name} {v.dtype}")

    sys.setprofile(spy)
    try:
        _, grads = model.loss_and_grads(x)
        opt.step(model.params, grads)
    finally:
        sys.setprofile(None)
    assert not wide, sorted(wide)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert all(b.dtype == np.float32 for slot in opt.state.values() for b in slot.values())


def _run(code, **env):
    full_env = {**os.environ, "PYTHONPATH": ROOT, "NPAE_JIT": "1", "NPAE_BACKEND": "", **env}
    out = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


CHECK = """
import numpy as np
import npae
from npae.fast import kernels
from npae.pairs import functional as F
from npae.models.vae import VAE
rng = np.random.default_rng(0)
s, t = rng.standard_normal((3, 4)), rng.random((3, 4))
v, ds = kernels.bce_with_logits_loss(s, t)
v_ref, ds_ref = F.bce_with_logits_loss(s, t)
assert abs(v - v_ref) <= 1e-12 * abs(v_ref) and np.allclose(ds, ds_ref, rtol=1e-12, atol=0)
model = VAE(6, hidden=(4,), latent_dim=2, seed=0)
h = model.fit(rng.random((20, 6)), epochs=2, batch_size=8, progress=False).history_
assert np.isfinite(h["loss"]).all()
print(kernels.ENABLED, npae.get_backend(), model.backend_, h["loss"][-1])
"""


def test_npae_jit_0_selects_the_reference_backend():
    """Without the kernels ``auto`` runs every fit under reference, and ``fused`` cannot be asked
    for (it warns and falls back to auto)."""
    enabled, name, ran, _ = _run(CHECK, NPAE_JIT="0").split()
    assert enabled == "False" and name == "auto" and ran == "reference"
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ROOT, "NPAE_JIT": "0", "NPAE_BACKEND": "fused"})
    assert out.returncode == 0 and "NPAE_BACKEND='fused' is not available" in out.stderr
    assert out.stdout.split()[1:3] == ["auto", "reference"]


def test_numba_disable_jit_gives_same_training():
    """With NUMBA_DISABLE_JIT=1 the kernels run as Python; the training result equals the jitted
    one and the reference one."""
    enabled, name, ran, loss_py = _run(CHECK, NUMBA_DISABLE_JIT="1", NPAE_BACKEND="fused").split()
    assert enabled == "True" and name == ran == "fused"
    _, name, ran, loss_ref = _run(CHECK, NPAE_BACKEND="reference").split()
    assert name == ran == "reference"
    np.testing.assert_allclose(float(loss_py), float(loss_ref), rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_log_likelihood_matches_numpy(rng, dtype):
    s = (4 * rng.standard_normal((3, 5, 9))).astype(dtype)
    s[0, 0, :3] = [0.0, 1e4, -1e4]
    t = rng.random((5, 9)).astype(dtype)
    got = kernels.bernoulli_log_likelihood(s, t)
    want = -F.bce_with_logits_sum(s, t)
    assert got.dtype == dtype and got.shape == (3, 5)
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype] * 10, atol=np.finfo(dtype).eps)
    np.testing.assert_allclose(kernels.bernoulli_log_likelihood(s[0], t), want[0], rtol=RTOL[dtype] * 10)
