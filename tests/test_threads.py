"""The BLAS thread policy of fit: one thread for small models, all cores for large products, the
user's choice (fit(threads=...) or the usual environment variables) always wins."""
import numpy as np
import pytest

import npae
from npae.fast import threads


@pytest.fixture
def clean_env(monkeypatch):
    for name in threads._THREAD_ENV:
        monkeypatch.delenv(name, raising=False)


def test_small_models_get_one_thread_large_ones_blas_default(clean_env):
    tiny = npae.VAE(64, hidden=(128,), latent_dim=2)
    mnist = npae.VAE(784, hidden=(400,), latent_dim=20)
    assert threads.largest_product(tiny, 64) == 64 * 64 * 128
    assert threads.choose(tiny, 64) == 1
    assert threads.largest_product(mnist, 128) == 128 * 784 * 400
    assert threads.choose(mnist, 128) is None


def test_the_user_wins(clean_env, monkeypatch):
    tiny = npae.Autoencoder(64, hidden=(32,))
    assert threads.choose(tiny, 64, threads=2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose(tiny, 64) is None  # the environment decided; npae changes nothing
    with pytest.raises(ValueError, match="threads must be >= 1"):
        threads.choose(tiny, 64, threads=0)


def test_limit_really_limits_blas():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threads.limit(1):
        info = [d for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
        assert info and all(d["num_threads"] == 1 for d in info)
    with threads.limit(None):
        pass


def test_fit_with_a_thread_count_trains_the_same(clean_env):
    X = npae.datasets.load_digits()[0][:200]
    a = npae.VAE(hidden=(16,), latent_dim=2, seed=1).fit(X, epochs=2, progress=False, threads=1)
    b = npae.VAE(hidden=(16,), latent_dim=2, seed=1).fit(X, epochs=2, progress=False, threads=2)
    for name in a.params:
        np.testing.assert_allclose(a.params[name], b.params[name], rtol=1e-10, atol=1e-12)


FIRST_FIT_THREADS = """
import json, os, sys
import threadpoolctl
import npae

seen = []


class Watched(npae.VAE):
    def _train_batch(self, *batch):
        if not seen:  # during the first step of the process's first fit
            seen.extend((d["filepath"], d["num_threads"]) for d in threadpoolctl.threadpool_info()
                        if d["user_api"] == "blas")
        return super()._train_batch(*batch)


npae.set_backend(sys.argv[1])
X = npae.datasets.load_digits()[0][:200]
model = Watched(64, hidden=(32,), latent_dim=2, seed=0)
model.fit(X, epochs=2, batch_size=8, progress=False)
after = [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
print(json.dumps({"during": seen, "after": after}))
"""


@pytest.mark.parametrize("backend", npae.fast.backends.available())
def test_every_blas_is_at_one_thread_from_the_first_fit_on(backend, tmp_path):
    """In a fresh process, during the first step of the first fit of a small model, every BLAS
    library loaded (NumPy's, and SciPy's, which numba's products call) runs one thread; before, SciPy's
    was loaded inside the limit and kept its two spinning threads."""
    import json
    import os
    import subprocess
    import sys
    pytest.importorskip("threadpoolctl")
    env = {k: v for k, v in os.environ.items() if k not in threads._THREAD_ENV}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(npae.__file__))
    done = subprocess.run([sys.executable, "-c", FIRST_FIT_THREADS, backend], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["during"], "no BLAS library seen during the fit"
    assert all(n == 1 for _, n in seen["during"]), seen
    if backend == "fused":  # numba's products go through SciPy's BLAS: it must be among them
        assert len(seen["during"]) == len(seen["after"]), seen
