"""Sizes asked for are bounded before anything of that size is allocated or run (issue 24, "Crashes"
and "Unbounded"): each refusal is an InputError (or DatasetError for a file) that names the
argument, the estimate and the limit, and comes before the allocation. The refusals are checked in
a child process whose address space is capped (RLIMIT_AS), so a check that came after the
allocation would fail with MemoryError there instead of passing."""
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from npae import constants
from npae.data import datasets, idx
from npae.data.bounded import DatasetError
from npae.models.vae import VAE
from npae.validation import InputError, InputTypeError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = np.random.default_rng(0).random((40, 8))


def run_capped(code, cap_bytes=1 << 30):
    """Run ``code`` in a child Python whose address space is capped at ``cap_bytes`` (on top of
    what the interpreter with numpy already maps); returns its stdout."""
    prelude = textwrap.dedent(f"""
        import resource
        import numpy as np
        import npae
        from npae.models.vae import VAE
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (mapped + {cap_bytes}, hard))
        X = np.random.default_rng(0).random((40, 8))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, NPAE_BACKEND="reference")
    env.pop("NPAE_MAX_BYTES", None)
    env.pop("NPAE_MAX_WORK", None)
    out = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def refused(code):
    """The one line of a refusal printed by ``code``'s ``except npae.InputError``."""
    return run_capped(f"""
        try:
            {code}
            print("NOT REFUSED")
        except npae.InputError as err:
            print("refused:", err)
    """)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc and RLIMIT_AS")
@pytest.mark.parametrize("code, names", [
    ("VAE(hidden=(16,), latent_dim=10**9).fit(X, epochs=1, progress=False)", "VAE of 8 input"),
    ("VAE(hidden=(10**9,)).fit(X, epochs=1, progress=False)", "VAE of 8 input"),
    ("VAE(hidden=(16,), objective='iwae', k=10**6).fit(X, epochs=1, progress=False)", "k=1000000"),
    ("VAE(hidden=(16,), objective='iwae', k=10**9).fit(X, epochs=1, progress=False)", "k=1000000000"),
    ("VAE(hidden=(16,)).fit(X, epochs=1, progress=False).sample(10**10)", "sample(n=10000000000)"),
])
def test_memory_is_refused_before_allocating(code, names):
    out = refused(code)
    assert out.startswith("refused:") and names in out, out
    assert "over the limit of 2 GiB" in out and "NPAE_MAX_BYTES" in out  # the estimate, the limit, how


def test_the_budget_is_looked_up_at_each_check_and_the_environment_raises_it(monkeypatch):
    model = VAE(hidden=(16,), latent_dim=2)
    monkeypatch.setattr(constants, "MEMORY_MAX_BYTES", 1000)
    with pytest.raises(InputError, match="over the limit of 1000 bytes"):
        model.fit(X, epochs=1, progress=False)
    monkeypatch.setenv("NPAE_MAX_BYTES", "1e9")
    model.fit(X, epochs=1, progress=False)  # raised for this process: it trains
    monkeypatch.setenv("NPAE_MAX_BYTES", "lots")
    with pytest.raises(InputError, match="NPAE_MAX_BYTES must be a positive number"):
        model.fit(X, epochs=1, progress=False)


def test_a_model_within_the_budget_is_unchanged():
    model = VAE(hidden=(16,), latent_dim=2, objective="iwae", k=5).fit(X, epochs=1, progress=False)
    assert model.sample(3).shape == (3, 8)


def test_flow_steps_are_capped_before_building():
    with pytest.raises(InputError, match=r"flow_steps=10000000 is over the limit of 256"):
        VAE(hidden=(8,), flow="planar", flow_steps=10_000_000).fit(X, epochs=1, progress=False)
    VAE(hidden=(8,), flow="planar", flow_steps=constants.FLOW_STEPS_MAX)._setup(8)  # the limit itself


def test_the_held_out_bound_refuses_work_beyond_the_budget_before_starting():
    model = VAE(hidden=(8,), latent_dim=2).fit(X, epochs=1, progress=False)
    with pytest.raises(InputError, match=r"k=1000000000000 on 1 example.*over the limit of 1e\+13"):
        model.log_likelihood_estimate(X[:1], k=10**12)
    assert np.isfinite(model.log_likelihood_estimate(X, k=5))


def png_header_only(path, width, height):
    """A PNG of a signature, an IHDR declaring ``width`` x ``height`` greyscale, and IEND: a few
    bytes that claim a huge image."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_a_png_whose_decoding_would_pass_the_limit_is_refused_from_its_header(tmp_path):
    png_header_only(tmp_path / "a.png", 11000, 11000)  # 923 MiB as float64: under 1 GiB alone
    with pytest.raises(DatasetError, match=r"decoding its 11000x11000 PNG images would take 10.4 GiB.*"
                                           r"over the limit of 1 GiB"):
        datasets.load_path(tmp_path)


def test_image_shape_that_does_not_fit_is_an_input_error(tmp_path):
    np.save(tmp_path / "x.npy", X)
    for shape in ((7, 7), (99999999999, 1)):
        with pytest.raises(InputError, match=r"image_shape .* does not fit 8 features"):
            datasets.load_path(tmp_path / "x.npy", image_shape=shape)


def test_a_split_that_is_a_path_is_an_input_error():
    with pytest.raises(InputError, match="split must be"):
        datasets.load_dataset("mnist", "../../../etc/passwd")


def test_binarize_refuses_strings_by_name():
    with pytest.raises(InputTypeError, match="X must hold real numbers"):
        datasets.binarize(np.array(["a", "b"]), "static")


def test_parse_idx_refuses_a_str_and_a_255_dimension_header():
    with pytest.raises(InputTypeError, match="parse_idx needs the file's bytes"):
        idx.parse_idx("abc")
    with pytest.raises(DatasetError, match="declares 255 dimensions, more than 32"):
        idx.parse_idx(bytes([0, 0, 8, 255]) + b"\0\0\0\1" * 255)
