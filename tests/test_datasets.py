"""Data sets: the bundled digits, IDX parsing on files the tests write, checksummed downloads through
file:// URLs (no network), synthetic sets, binarization; real MNIST when /work/shared/data has it."""
import gzip
import hashlib
import os

import numpy as np
import pytest

from npae import datasets
from npae.datasets import DatasetError

SHARED_MNIST = "/work/shared/data/mnist"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache and no NPAE_DATA, and the network is off."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPAE_DATA", raising=False)

    def no_network(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise AssertionError(f"a test tried the network: {url}")
        return real_urlopen(url, *args, **kwargs)

    real_urlopen = datasets.urllib.request.urlopen
    monkeypatch.setattr(datasets.urllib.request, "urlopen", no_network)


def write_fake_mnist(folder, prefix="train", n=5, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    os.makedirs(folder, exist_ok=True)
    datasets.write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), images)
    datasets.write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), labels)
    return images, labels


def test_digits_bundled():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip(tmp_path, dtype, gz):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    datasets.write_idx(path, a)
    b = datasets.read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_load_mnist_from_data_dir_gz_and_raw(tmp_path):
    images, labels = write_fake_mnist(tmp_path / "gz", gz=True)
    X, y = datasets.load_mnist("train", data_dir=tmp_path / "gz")
    assert X.shape == (5, 784) and X.dtype == np.float64
    np.testing.assert_allclose(X * 255.0, images.reshape(5, -1))
    np.testing.assert_array_equal(y, labels)
    write_fake_mnist(tmp_path / "raw", prefix="t10k", gz=False, n=3)
    X, y = datasets.load_mnist("test", data_dir=tmp_path / "raw")
    assert X.shape == (3, 784) and y.dtype == np.int64


def test_npae_data_env_subfolder_prefix_and_fashion(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mnist", prefix="train5k", n=4)
    write_fake_mnist(tmp_path / "fashion-mnist", prefix="t10k", n=2, seed=1)
    monkeypatch.setenv("NPAE_DATA", str(tmp_path))
    assert datasets.load_mnist("train5k")[0].shape == (4, 784)
    assert datasets.load_fashion_mnist("test")[0].shape == (2, 784)


def test_dotted_file_names(tmp_path):
    images = np.zeros((2, 28, 28), np.uint8)
    datasets.write_idx(tmp_path / "train-images.idx3-ubyte", images)
    datasets.write_idx(tmp_path / "train-labels.idx1-ubyte", np.array([1, 2], np.uint8))
    assert datasets.load_mnist(data_dir=tmp_path)[1].tolist() == [1, 2]


def test_missing_files_say_where_and_never_download_by_default(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*NPAE_DATA"):
        datasets.load_mnist(data_dir=tmp_path)
    assert not (tmp_path / "cache").exists()  # nothing was fetched into the cache


@pytest.mark.parametrize("damage, match", [
    (lambda b: b"\x08\x00" + b[2:], "not an IDX file"),
    (lambda b: b[:-7], "truncated"),
    (lambda b: b[:6], "truncated inside its header"),
    (lambda b: b + b"\x00\x01", "bytes after the data"),
    (lambda b: b"", "only 0 bytes"),
])
def test_corrupt_idx_is_a_clear_error(tmp_path, damage, match):
    write_fake_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match=match):
        datasets.load_mnist(data_dir=tmp_path)


def test_truncated_gzip_and_mismatched_counts(tmp_path):
    write_fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        datasets.load_mnist(data_dir=tmp_path)
    write_fake_mnist(tmp_path, n=5)
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        datasets.load_mnist(data_dir=tmp_path)


def test_download_verifies_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"npae" * 100)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.bin"
    assert datasets.download(src.as_uri(), dest, md5=md5, sha256=sha) == dest
    assert dest.read_bytes() == src.read_bytes()
    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.download(src.as_uri(), bad, md5="0" * 32)
    assert not bad.exists() and os.listdir(tmp_path / "out") == ["file.bin"]  # no partial file left
    with pytest.raises(ValueError, match="checksum"):
        datasets.download(src.as_uri(), bad)


def test_download_missing_into_cache(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_fake_mnist(mirror, prefix="t10k", n=3)
    md5 = {name: hashlib.md5((mirror / name).read_bytes()).hexdigest() for name in os.listdir(mirror)}
    monkeypatch.setitem(datasets.IDX_SOURCES, "mnist", {"urls": [mirror.as_uri() + "/"], "md5": md5})
    X, y = datasets.load_mnist("test", download=True)
    assert X.shape == (3, 784)
    cached = datasets.cache_dir() / "mnist"
    assert sorted(os.listdir(cached)) == sorted(md5)
    # a tampered mirror is refused
    md5_bad = dict(md5, **{"t10k-labels-idx1-ubyte.gz": "f" * 32})
    monkeypatch.setitem(datasets.IDX_SOURCES, "fashion-mnist", {"urls": [mirror.as_uri() + "/"],
                                                                "md5": md5_bad})
    with pytest.raises(DatasetError, match="checksum mismatch"):
        datasets.load_fashion_mnist("test", download=True)


@pytest.mark.skipif(not os.path.isdir(SHARED_MNIST), reason="no MNIST in /work/shared/data")
def test_real_mnist_when_present():
    X, y = datasets.load_mnist("test", data_dir=SHARED_MNIST)
    assert X.shape == (10000, 784) and y.shape == (10000,)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    raw = gzip.decompress(open(os.path.join(SHARED_MNIST, "t10k-images-idx3-ubyte.gz"), "rb").read())
    assert hashlib.md5(raw).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    first = np.frombuffer(raw, np.uint8, 784, 16)  # the first image, after the 16-byte header
    np.testing.assert_array_equal(np.round(X[0] * 255).astype(np.uint8), first)
    assert np.bincount(datasets.load_mnist("train5k", data_dir=SHARED_MNIST)[1]).tolist() == [500] * 10


def test_synthetic_sets():
    X, y = datasets.make_moons(101, seed=3)
    assert X.shape == (101, 2) and np.bincount(y).tolist() == [50, 51]
    np.testing.assert_array_equal(X, datasets.make_moons(101, seed=3)[0])
    X, t = datasets.make_swiss_roll(200, noise=0.0, seed=1)
    assert X.shape == (200, 3) and t.shape == (200,)
    np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 2]), t)  # radius = position along the roll
    assert 1.5 * np.pi <= t.min() and t.max() <= 4.5 * np.pi
    X, y = datasets.make_blobs(90, n_features=3, centers=3, cluster_std=0.1, seed=2)
    assert X.shape == (90, 3) and np.bincount(y).tolist() == [30, 30, 30]
    means = np.stack([X[y == c].mean(0) for c in range(3)])
    assert np.all(np.abs(X - means[y]) < 1.0)
    with pytest.raises(ValueError, match="n_samples"):
        datasets.make_blobs(0)


def test_binarize_modes():
    X = np.full((200, 50), 0.3)
    same = datasets.binarize(X, "none")
    assert same is not X and np.array_equal(same, X)
    s1, s2 = datasets.binarize(X, "static"), datasets.binarize(X, "static")
    assert np.array_equal(s1, s2) and set(np.unique(s1)) == {0.0, 1.0}
    assert abs(s1.mean() - 0.3) < 0.02
    rng = np.random.default_rng(0)
    d1, d2 = datasets.binarize(X, "dynamic", rng), datasets.binarize(X, "dynamic", rng)
    assert not np.array_equal(d1, d2)
    with pytest.raises(TypeError, match="Generator"):
        datasets.binarize(X, "dynamic")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        datasets.binarize(X + 1.0, "static")
    with pytest.raises(ValueError, match="unknown mode"):
        datasets.binarize(X, "threshold")


def test_load_dataset_by_name():
    for name in ("digits", "moons", "swiss-roll", "blobs"):
        X, y, info = datasets.load_dataset(name)
        assert X.ndim == 2 and y.shape == (X.shape[0],)
        assert info["unit_interval"] == (name == "digits")
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        datasets.load_dataset("cifar")
