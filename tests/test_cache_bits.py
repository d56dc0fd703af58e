"""A reported number never depends on how a kernel's machine code came to be: compiled in this
process, loaded from numba's cache, or specialized for other array layouts.

Two failures of this kind reached CI: with fastmath "contract", and later "reassoc", a run killed
on a cold cache (the child compiled the kernels) and resumed by a process that loaded them from
the cache gave other bits in the last place. npae.fast.kernels now compiles with no fast-math flag;
these tests hold it there.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import npae
from npae.fast import conv_kernels, kernels

pytestmark = pytest.mark.skipif("fused" not in npae.fast.backends.available(),
                                reason="numba is not available")

HERE = os.path.dirname(os.path.abspath(__file__))


def test_fresh_compile_and_cached_kernels_give_the_same_bits_for_every_kernel(tmp_path):
    """The child program (tests/_fresh_or_cached.py) trains one small model per fused kernel (the
    compiled AE and VAE epochs, the per-step dense, BCE, reparameterization + KL and Adam units, the
    convolutions) and an IWAE estimate, and prints a hash of the parameters, of the loss history
    and of the estimate. The first process starts with an empty cache and compiles; the second
    loads every kernel from it. Every line must agree."""
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), NPAE_BACKEND="fused",
               PYTHONPATH=os.path.dirname(os.path.dirname(npae.__file__)))
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, os.path.join(HERE, "_fresh_or_cached.py")], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout.splitlines())
        if len(runs) == 1:
            assert any(cache.rglob("*.nbc")), "the first process cached nothing"
    fresh, cached = runs
    names = {line.split()[0] for line in fresh}
    assert {"ae-adam", "ae-leaky-momentum", "vae", "vae-iwae", "vae-conv", "estimate"} <= names
    for a, b in zip(fresh, cached):
        assert a == b, f"compiled now: {a!r}; loaded from the cache: {b!r}"
    assert len(fresh) == len(cached)


def _strided(a):
    """The same values as ``a`` in a non-contiguous array (every other entry of a wider buffer), so
    that numba compiles another specialization (layout 'A' instead of 'C') of the kernel."""
    wide = np.empty(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
    wide[..., ::2] = a
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def _cases(rng, dtype):
    B, D, K = 7, 37, 3
    s = rng.standard_normal((B, D)).astype(dtype)
    t = rng.random((B, D)).astype(dtype)
    e = np.exp(-np.abs(s))
    a = rng.standard_normal((B, D)).astype(dtype)
    mu, logvar, eps = (rng.standard_normal((B, D)).astype(dtype) for _ in range(3))
    sk = rng.standard_normal((K, B, D)).astype(dtype)
    one = dtype(1.0 / B)
    return {
        # name: (kernel, inputs that may be strided, outputs made fresh, trailing scalars)
        "bce_with_logits [LOSS-5, LOSS-6]": (
            kernels.bce_with_logits, [s, t, e, np.log1p(e)], [(B, D)], [one]),
        "reparam_kl_forward [REPARAM-2, KL-1]": (
            kernels.reparam_kl_forward, [mu, logvar, eps, np.exp(0.5 * logvar), np.expm1(logvar)],
            [(B, D)], []),
        "act_backward [DENSE-4]": (kernels.act_backward, [rng.standard_normal((B, D)).astype(dtype), a],
                                   [(B, D), (D,)], [1, dtype(0.0)]),
        "bernoulli_rows [LOSS-5]": (
            kernels.bernoulli_rows, [sk, t, np.log1p(np.exp(-np.abs(sk)))], [(K, B)], []),
        "nchw_to_rows_sum [CONV-5]": (
            conv_kernels.nchw_to_rows_sum, [rng.standard_normal((B, 3, 4, 5)).astype(dtype)],
            [(B * 4 * 5, 3), (3,)], []),
        "act_backward_image [CONV-5]": (
            conv_kernels.act_backward_image, [rng.standard_normal((B, 3, 20)).astype(dtype),
                                              rng.standard_normal((B, 3, 20)).astype(dtype)],
            [(B, 3, 20), (3,)], [2, dtype(0.2)]),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_kernel_result_depends_on_its_specialization(dtype):
    """Each reducing kernel run on C-contiguous arrays and on strided views of the same values gives
    the same bits. With fastmath "reassoc" the sums followed the vectorizer, which treats the two
    specializations differently (the BCE sum differed in 26 of 50 draws): the machine code chosen,
    not the data, decided the last bit."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        for name, (kernel, inputs, out_shapes, scalars) in _cases(rng, dtype).items():
            results = []
            for layout in (lambda x: x, _strided):
                outs = [np.zeros(shape, dtype=dtype) for shape in out_shapes]
                value = kernel(*[layout(x) for x in inputs], *outs, *scalars)
                results.append([np.asarray(value, dtype=np.float64).tobytes()] + [o.tobytes() for o in outs])
            assert results[0] == results[1], f"{name} ({np.dtype(dtype).name}, draw {trial})"


def test_kernels_compile_without_fast_math():
    """No fast-math flag: each one (contract, reassoc, nsz, arcp, afn) lets LLVM pick arithmetic that
    depends on the machine code, which is what broke exact resumes on a cold cache."""
    assert kernels.SAFE_FASTMATH is False
    for kernel in (kernels.bce_with_logits, kernels.adam, conv_kernels.im2col,
                   conv_kernels.im2col_planes, conv_kernels.act_backward_image):
        assert kernel.targetoptions.get("fastmath") in (None, False), kernel
