"""How many threads BLAS may use while a model trains: a policy for small models on busy laptops.

A product of a 64 x 128 batch by a 128 x 64 matrix is far too small to gain from a second
thread, but a multi-threaded BLAS still wakes its worker threads for it, and on a machine whose
cores are busy with other work those threads wait for a core: measured on a 2-core machine with
two other busy processes, the main job trained 8x slower with BLAS on two threads than on one
(docs/performance.md). So ``fit`` runs small models with BLAS on one thread and leaves large
products (an MNIST-size layer) all cores.

The choice, in order:

1. ``fit(..., threads=n)`` (or ``npae train --threads n``): n threads for BLAS while fitting;
2. the usual environment variables (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
   ``MKL_NUM_THREADS``, ``BLIS_NUM_THREADS``): the user has decided, npae changes nothing;
3. otherwise the policy: one thread when the largest product of a training step has fewer than
   :data:`SMALL_PRODUCT_MACS` multiply-adds, else BLAS's own default (all cores).

threadpoolctl does the limiting (it reaches NumPy's and SciPy's OpenBLAS, the latter used by
numba's products in the fused backend's kernels); without it, nothing is limited.
"""
import contextlib
import os

from npae.validation import check_scalar

#: Multiply-adds of a step's largest product below which BLAS gets one thread (by measurement,
#: docs/performance.md: a 128 x 784 x 400 product gains from two threads, a 64 x 128 x 128 one
#: loses).
SMALL_PRODUCT_MACS = 4_000_000

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def model_layers(model):
    """The layers of ``model``'s chains (encoder, decoder, a classifier's head), in order."""
    for chain in (getattr(model, name, None) for name in ("encoder", "decoder", "head")):
        yield from getattr(chain, "layers", ())


def _products(model, batch_size):
    """Multiply-adds of each dense layer's matrix product in one forward pass of ``model`` on
    ``batch_size`` examples: ``batch_size · n_in · n_out`` (convolution layers are not counted)."""
    for layer in model_layers(model):
        if hasattr(layer, "n_in") and hasattr(layer, "n_out"):
            yield int(batch_size) * layer.n_in * layer.n_out


def largest_product(model, batch_size):
    """Multiply-adds of the largest matrix product one training step of ``model`` makes."""
    return max(_products(model, batch_size), default=0)


def choose(model, batch_size, threads=None):
    """The number of BLAS threads for fitting ``model`` (None: leave BLAS as it is)."""
    if threads is not None:
        return check_scalar("threads", threads, low=1, integer=True)
    if any(os.environ.get(name) for name in _THREAD_ENV):
        return None
    return 1 if largest_product(model, batch_size) < SMALL_PRODUCT_MACS else None


@contextlib.contextmanager
def limit(n):
    """Run the block with BLAS on ``n`` threads (nothing changes for None or without
    threadpoolctl)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield
