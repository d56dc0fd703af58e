"""Shared test configuration: a hypothesis profile that tolerates JIT compilation, and Ctrl-C as
a terminal delivers it."""
import os
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "npae", deadline=None, max_examples=int(os.environ.get("NPAE_HYPOTHESIS_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
settings.load_profile("npae")


@pytest.fixture(autouse=True, scope="session")
def _sigint_as_a_terminal_delivers_it():
    """The Ctrl-C tests need SIGINT to arrive. A shell that starts pytest in the background (``cmd &``)
    makes the process ignore SIGINT, which npae rightly respects (``training.loop._deferred_sigint``
    leaves an ignored SIGINT alone) and which child processes inherit; give the suite Python's
    usual handler, as a terminal would, and put the disposition back afterwards."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def off_kink(a, margin=0.05, limit=5.0):
    """Push entries of ``a`` at least ``margin`` away from 0 (the kink of relu-like activations) and
    keep them within ``±limit`` (past that tanh and sigmoid saturate: a derivative below
    ~eps·|f|/h cannot be measured by any finite difference; see docs/testing.md)."""
    return np.clip(np.where(a >= 0, a + margin, a - margin), -limit, limit)


def activation_inputs_off_kinks(model, margin=1e-2):
    """True when every activation of ``model`` saw pre-activations at least ``margin`` from 0 in the
    last forward pass (central differences across a kink are meaningless)."""
    for seq_name in ("encoder", "decoder", "head"):
        seq = getattr(model, seq_name, None)
        for step in getattr(seq, "steps", []):
            if getattr(step, "act_name", None) == "identity":
                continue  # a Dense step with no activation: nothing to keep off
            pre = getattr(step, "pre", None)
            if pre is not None and np.min(np.abs(pre)) < margin:
                return False
    return True


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The real MNIST folder when this machine has one: $NPAE_DATA, else ../shared/data/mnist next to
#: the project (never required: tests that use it skip without it).
MNIST_DIR = os.environ.get("NPAE_DATA") or os.path.join(ROOT, "..", "shared", "data", "mnist")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
