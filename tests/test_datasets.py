"""Data sets: the bundled digits; IDX files the tests write (the folder and file-name rule, the
checksums that keep one set from passing for another, the bounds on crafted files: gzip bombs,
overflowing dimensions, FIFOs, absurd labels); your own .npy / .npz / .csv / PNG data; checksummed
downloads through file:// URLs (never the network); synthetic sets; binarization. Real MNIST is used
only when present ($NPAE_DATA, or ../shared/data/mnist next to the project); otherwise skipped."""
import gzip
import hashlib
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from _measure import measure_calls
from _idx_files import http_server, idx_header, register_official, write_gzip_bomb, write_idx_set, write_png
from npae import datasets
from npae.datasets import DatasetError, DataNotFoundError

ROOT = Path(__file__).resolve().parents[1]


def _real_mnist():
    """The real MNIST folder if this machine has one: $NPAE_DATA(/mnist), else ../shared/data/mnist."""
    env = os.environ.get("NPAE_DATA")
    candidates = [Path(env) / "mnist", Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "data" / "mnist")
    for folder in candidates:
        if all((folder / f"t10k-{kind}-ubyte.gz").is_file() for kind in ("images-idx3", "labels-idx1")):
            return folder
    return None


REAL_MNIST = _real_mnist()  # looked up before the fixture below removes NPAE_DATA
needs_real_mnist = pytest.mark.skipif(REAL_MNIST is None, reason="no real MNIST folder on this machine")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache and no NPAE_DATA, and the network is off (downloads go to a
    local server on 127.0.0.1 started by the test)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NPAE_DATA", raising=False)

    def no_network(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise AssertionError(f"a test tried the network: {url}")
        return real_urlopen(url, *args, **kwargs)

    import urllib.request
    real_urlopen = urllib.request.urlopen
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    requests = _requests()
    if requests is not None:  # pooch fetches through requests
        real_send = requests.Session.send

        def local_only(self, request, **kwargs):
            if not request.url.startswith("http://127.0.0.1:"):
                raise AssertionError(f"a test tried the network: {request.url}")
            return real_send(self, request, **kwargs)

        monkeypatch.setattr(requests.Session, "send", local_only)


def _requests():
    try:
        import requests
    except ImportError:
        return None
    return requests


def test_digits_bundled():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


# ---------------------------------------------------------------------------------------- IDX format
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
    np.testing.assert_array_equal(datasets.parse_idx(gzip.decompress(path.read_bytes()) if gz
                                                     else path.read_bytes()), a)


@pytest.mark.parametrize("damage, match", [
    (lambda b: b"\x08\x00" + b[2:], "not an IDX file: its magic number is 0800"),
    (lambda b: b[:2] + b"\x07" + b[3:], "not an IDX file"),
    (lambda b: b[:-7], "truncated: its header says shape"),
    (lambda b: b[:6], "truncated inside its header"),
    (lambda b: b + b"\x00\x01", "2 bytes after the data"),
    (lambda b: b"", "only 0 bytes"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_idx_is_a_clear_error(tmp_path, damage, match, gz):
    write_idx_set(tmp_path, "small", gz=False)
    path = tmp_path / "small-images-idx3-ubyte"
    data = damage(path.read_bytes())
    path.unlink()
    if gz:
        match = match.replace("2 bytes after", "more bytes after")
        path = tmp_path / "small-images-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    with pytest.raises(DatasetError, match=match) as info:
        datasets.load_mnist("small", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_corrupt_and_truncated_gzip_streams(tmp_path):
    write_idx_set(tmp_path, "small")
    path = tmp_path / "small-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[:-20])
    with pytest.raises(DatasetError, match="truncated: its compressed stream ends"):
        datasets.load_mnist("small", data_dir=tmp_path)
    path.write_bytes(good[:-8] + b"\x00" * 8)  # CRC and length fields wrong
    with pytest.raises(DatasetError, match="corrupt: its compressed data cannot be decoded"):
        datasets.load_mnist("small", data_dir=tmp_path)


@pytest.mark.parametrize("shape", [(2**31, 2**31, 4), (2**32 - 1,) * 3, (2**32 - 1,) * 8, (65536, 65536, 4)])
def test_overflowing_or_huge_dimensions_are_refused_before_reading(tmp_path, shape):
    path = tmp_path / "huge.idx"
    path.write_bytes(idx_header(0x08, shape) + bytes(100))
    with pytest.raises(DatasetError, match=r"huge.idx: the IDX data of shape .* over the limit of 1 GiB"):
        datasets.read_idx(path)
    with pytest.raises(DatasetError, match="over the limit"):  # int32 items: 4 bytes each
        datasets.parse_idx(idx_header(0x0C, shape), name="crafted")


def test_max_bytes_is_an_override(tmp_path):
    path = tmp_path / "a.idx"
    datasets.write_idx(path, np.zeros((4, 100), np.uint8))
    assert datasets.read_idx(path, max_bytes=400).shape == (4, 100)
    with pytest.raises(DatasetError, match="over the limit of 399 bytes"):
        datasets.read_idx(path, max_bytes=399)
    write_idx_set(tmp_path, "small", n=5)  # 5 images as float64: 31,360 bytes
    with pytest.raises(DatasetError, match="images as float64 .* over the limit"):
        datasets.load_mnist("small", data_dir=tmp_path, max_bytes=30_000)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_gzip_bomb_is_never_decompressed(tmp_path):
    """2 GiB of zeros in a 2 MB gzip: a header claiming 16 bytes stops after 17, one claiming 16 GiB
    (or an overflowing 2^31 x 2^31 x 4) stops at the header. Measured in a fresh process."""
    paths = []
    for name, shape in (("small", (16,)), ("huge", (65536, 65536, 4)), ("overflow", (2**31, 2**31, 4))):
        paths.append(tmp_path / f"{name}.idx.gz")
        size = write_gzip_bomb(paths[-1], idx_header(0x08, shape), zeros_mib=2048)
        assert size > 2**31 and paths[-1].stat().st_size < 4 << 20
    small, huge, overflow = measure_calls("npae.datasets.read_idx", paths, timeout=60)
    for r in (small, huge, overflow):
        assert r["error"] is not None and r["error"].startswith("DatasetError: "), r
    assert "more bytes after the data of shape (16,)" in small["error"]
    assert "over the limit" in huge["error"] and "over the limit" in overflow["error"]
    for r in (small, huge, overflow):
        assert r["seconds"] < 2.0 and r["traced"] < 200e6 and r["rss_growth"] < 200e6, r


def test_a_header_that_overstates_its_body_is_truncated(tmp_path):
    path = tmp_path / "liar.idx.gz"
    write_gzip_bomb(path, idx_header(0x08, (64, 1024, 1024)), zeros_mib=16, member_mib=8)  # says 64 MiB
    with pytest.raises(DatasetError, match=r"truncated: its header says shape \(64, 1024, 1024\)"):
        datasets.read_idx(path)


def _run_with_timeout(fn, seconds=5.0):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: B902 - handed back to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive(), result


def test_fifo_device_and_folder_are_refused_without_opening(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "small-images-idx3-ubyte"
    os.mkfifo(fifo)
    os.mkfifo(tmp_path / "data.csv")
    datasets.write_idx(tmp_path / "small-labels-idx1-ubyte", np.zeros(5, np.uint8))
    calls = [lambda: datasets.read_idx(fifo), lambda: datasets.load_mnist("small", data_dir=tmp_path),
             lambda: datasets.load_path(tmp_path / "data.csv")]
    for call in calls:
        hung, result = _run_with_timeout(call)
        if hung:  # unblock the reader so the thread can end, then fail
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail("reading a FIFO hung")
        assert isinstance(result.get("error"), DatasetError), result
        assert "is a FIFO (named pipe), not a regular file" in str(result["error"])
    with pytest.raises(DatasetError, match="is a folder, not a regular file"):
        datasets.read_idx(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(DatasetError, match="is a character device"):
            datasets.read_idx("/dev/zero")


# ---------------------------------------------------------------------------------------- MNIST sets
def test_load_a_subset_from_data_dir_gz_and_raw(tmp_path):
    images, labels = write_idx_set(tmp_path / "gz", "train40", n=5, gz=True)
    X, y = datasets.load_mnist("train40", data_dir=tmp_path / "gz")
    assert X.shape == (5, 784) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X, images.reshape(5, -1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    write_idx_set(tmp_path / "raw", "tiny", gz=False, n=3)
    X, y, info = datasets.load_dataset("mnist", "tiny", data_dir=tmp_path / "raw")
    assert X.shape == (3, 784) and not info["verified"]
    assert "not an official file (3 images)" in info["provenance"]
    assert info["files"] == (str(tmp_path / "raw" / "tiny-images-idx3-ubyte"),
                             str(tmp_path / "raw" / "tiny-labels-idx1-ubyte"))


def test_subfolders_prefixed_names_and_npae_data(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "mnist", "train5k", n=4)
    write_idx_set(tmp_path / "FashionMNIST", "few", n=2, seed=1)  # spelt like torchvision's folder
    write_idx_set(tmp_path, "some", n=3, seed=2, name_prefix="fashion-mnist-")
    monkeypatch.setenv("NPAE_DATA", str(tmp_path))
    assert datasets.load_mnist("train5k")[0].shape == (4, 784)
    assert datasets.load_fashion_mnist("few")[0].shape == (2, 784)
    X, y, info = datasets.load_dataset("fashion-mnist", "some")
    assert X.shape == (3, 784) and info["classes"] == datasets.FASHION_CLASSES
    with pytest.raises(DataNotFoundError):  # a prefixed file is only its own set's
        datasets.load_mnist("some")
    with pytest.raises(ValueError, match="starts with a data set's name"):
        datasets.load_mnist("fashion-mnist-some")


def test_dotted_file_names(tmp_path):
    datasets.write_idx(tmp_path / "tiny-images.idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    datasets.write_idx(tmp_path / "tiny-labels.idx1-ubyte", np.array([1, 2], np.uint8))
    assert datasets.load_mnist("tiny", data_dir=tmp_path)[1].tolist() == [1, 2]


def test_an_mnist_folder_is_refused_as_fashion_mnist(tmp_path):
    """The standard names in a folder not named after a set are MNIST's, never Fashion-MNIST's."""
    write_idx_set(tmp_path / "data", "t10k", n=3)
    with pytest.raises(DatasetError) as info:
        datasets.load_fashion_mnist("test", data_dir=tmp_path / "data")
    message = str(info.value)
    assert "holds t10k-images-idx3-ubyte[.gz] under its standard name, which npae reads as MNIST" in message
    assert "refused as Fashion-MNIST" in message and "fashion-mnist-t10k-images-idx3-ubyte.gz" in message
    # and the other way round: a folder named fashion-mnist is Fashion-MNIST's
    write_idx_set(tmp_path / "fashion-mnist", "few", n=2)
    assert datasets.load_fashion_mnist("few", data_dir=tmp_path / "fashion-mnist")[0].shape == (2, 784)
    with pytest.raises(DatasetError, match="reads as Fashion-MNIST there .*refused as MNIST"):
        datasets.load_mnist("few", data_dir=tmp_path / "fashion-mnist")


def test_official_names_must_hold_the_official_files(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "a", "t10k", n=5)
    with pytest.raises(DatasetError, match=r"header says 5 images, the official MNIST t10k file has 10000; "
                                           r"a subset must not carry the official name.*split='t10k5'"):
        datasets.load_mnist("test", data_dir=tmp_path / "a")
    # Register these five images as the official MNIST test set: now they load, verified ...
    register_official(monkeypatch, "mnist", tmp_path / "a", "t10k", 5)
    X, y, info = datasets.load_dataset("mnist", "test", data_dir=tmp_path / "a")
    assert info["verified"] and "the official files (decompressed MD5 verified)" in info["provenance"]
    # ... a recompressed copy still passes (the checksum is of the decompressed bytes) ...
    raw = gzip.decompress((tmp_path / "a" / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "a" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    assert datasets.load_mnist("test", data_dir=tmp_path / "a")[0].shape == (5, 784)
    # ... one changed pixel does not,
    write_idx_set(tmp_path / "b", "t10k", n=5, seed=9)
    with pytest.raises(DatasetError, match="differs from the published MNIST t10k-images-idx3-ubyte"):
        datasets.load_mnist("test", data_dir=tmp_path / "b")
    # and MNIST's files can never pass for Fashion-MNIST, whatever the folder says.
    for kind in ("images-idx3", "labels-idx1"):
        os.makedirs(tmp_path / "c" / "fashion-mnist", exist_ok=True)
        os.symlink(tmp_path / "a" / f"t10k-{kind}-ubyte.gz",
                   tmp_path / "c" / "fashion-mnist" / f"other-{kind}-ubyte.gz")
    with pytest.raises(DatasetError, match=r"is the official MNIST file t10k-images-idx3-ubyte \(by its MD5"):
        datasets.load_fashion_mnist("other", data_dir=tmp_path / "c")


@needs_real_mnist
def test_real_mnist_when_present(tmp_path):
    X, y, info = datasets.load_dataset("mnist", "test", data_dir=REAL_MNIST)
    assert X.shape == (10000, 784) and y.shape == (10000,) and info["verified"]
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    raw = gzip.decompress((REAL_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(raw).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    first = np.frombuffer(raw, np.uint8, 784, 16)  # the first image, after the 16-byte header
    np.testing.assert_array_equal(np.round(X[0] * 255).astype(np.uint8), first)
    if (REAL_MNIST / "train5k-images-idx3-ubyte.gz").is_file():
        X5, y5, info5 = datasets.load_dataset("mnist", "train5k", data_dir=REAL_MNIST)
        assert np.bincount(y5).tolist() == [500] * 10 and not info5["verified"]
    # the real MNIST folder is refused as Fashion-MNIST, and its files too when put in a Fashion folder
    with pytest.raises(DatasetError, match="refused as Fashion-MNIST"):
        datasets.load_fashion_mnist("test", data_dir=REAL_MNIST)
    (tmp_path / "fashion-mnist").mkdir()
    for kind in ("images-idx3", "labels-idx1"):
        os.symlink(REAL_MNIST / f"t10k-{kind}-ubyte.gz", tmp_path / "fashion-mnist" / f"t10k-{kind}-ubyte.gz")
    with pytest.raises(DatasetError, match="is the official MNIST file t10k-images-idx3-ubyte"):
        datasets.load_fashion_mnist("test", data_dir=tmp_path)


def test_missing_files_list_what_is_there_and_suggest_the_split(tmp_path):
    write_idx_set(tmp_path, "train5k", n=2)
    write_idx_set(tmp_path, "t10k-small", n=2)
    with pytest.raises(DataNotFoundError) as info:
        datasets.load_mnist("train", data_dir=tmp_path)
    message = str(info.value)
    assert "MNIST file train-images-idx3-ubyte[.gz] not found" in message
    assert "train5k-images-idx3-ubyte.gz" in message and "t10k-small-labels-idx1-ubyte.gz" in message
    assert "A split train5k is there instead: use split='train5k' (CLI: --train-split train5k)" in message
    assert "--data-dir" in message and "NPAE_DATA" in message and "--download" in message
    assert info.value.splits == ("t10k-small", "train5k")
    with pytest.raises(DataNotFoundError, match=r"split='t10k-small' \(CLI: --test-split t10k-small\)"):
        datasets.load_mnist("test", data_dir=tmp_path)
    assert not (tmp_path / "cache").exists()  # nothing was downloaded


def test_images_and_labels_come_from_one_folder_and_must_agree(tmp_path):
    write_idx_set(tmp_path / "mnist", "half", n=3)
    (tmp_path / "mnist" / "half-labels-idx1-ubyte.gz").unlink()
    write_idx_set(tmp_path, "half", n=3)  # a full pair further down the search order
    with pytest.raises(DataNotFoundError, match="half-labels-idx1-ubyte.* is not next to it"):
        datasets.load_mnist("half", data_dir=tmp_path)
    write_idx_set(tmp_path / "b", "small", n=5)
    datasets.write_idx(tmp_path / "b" / "small-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        datasets.load_mnist("small", data_dir=tmp_path / "b")


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 1, 2**31 - 1], np.int32),
     r"labels are unsigned bytes of shape \(n,\); the header says int32"),
    (np.array([0, 200, 3], np.uint8),
     r"label 200 is out of range: MNIST has classes 0..9 \(first bad label at index 1\)"),
    (np.zeros((3, 1), np.uint8), "the header says uint8 of shape \\(3, 1\\)"),
])
def test_absurd_labels_are_refused(tmp_path, labels, match):
    write_idx_set(tmp_path, "small", n=3)
    datasets.write_idx(tmp_path / "small-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DatasetError, match=match):
        datasets.load_mnist("small", data_dir=tmp_path)


def test_images_must_be_28x28_bytes(tmp_path):
    write_idx_set(tmp_path, "small", n=3)
    datasets.write_idx(tmp_path / "small-images-idx3-ubyte.gz", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DatasetError, match=r"unsigned bytes of shape \(n, 28, 28\); the header says "
                                           r"uint8 of shape \(3, 32, 32\)"):
        datasets.load_mnist("small", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------- downloads
def test_download_verifies_checksum_and_writes_atomically(tmp_path, capsys):
    pytest.importorskip("pooch")
    (tmp_path / "site").mkdir()
    src = tmp_path / "site" / "src.bin"
    src.write_bytes(b"npae" * 100)
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.bin"
    with http_server(tmp_path / "site") as base:
        url = base + "/src.bin"
        assert datasets.download(url, dest, md5=md5, sha256=sha) == dest
        assert dest.read_bytes() == src.read_bytes()
        assert capsys.readouterr().err == ""  # stderr is not a terminal here: no progress bar, no pooch line
        datasets.download(url, tmp_path / "out" / "shown.bin", md5=md5, progress=True)
        assert "shown.bin" in capsys.readouterr().err  # the tqdm bar, when asked for
        bad = tmp_path / "out" / "bad.bin"
        with pytest.raises(DatasetError, match="checksum mismatch"):
            datasets.download(url, bad, md5="0" * 32)
        with pytest.raises(DatasetError, match="checksum mismatch.*md5"):  # sha256 right, md5 wrong
            datasets.download(url, bad, md5="0" * 32, sha256=sha)
        with pytest.raises(DatasetError, match="over the limit"):
            datasets.download(url, bad, md5=md5, max_bytes=100)
        with pytest.raises(OSError, match="404"):
            datasets.download(base + "/missing.bin", bad, md5=md5)
        assert sorted(os.listdir(tmp_path / "out")) == ["file.bin", "shown.bin"]  # no partial file left
        with pytest.raises(ValueError, match="checksum"):
            datasets.download(url, bad)
    with pytest.raises(DatasetError, match="cannot download file:.*protocol"):
        datasets.download(src.as_uri(), bad, md5=md5)


def test_download_without_pooch_says_which_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pooch", None)  # import pooch raises ImportError
    with pytest.raises(DatasetError, match=r"needs pooch, an optional extra: pip install npae\[downloads\]"):
        datasets.download("https://example.org/x.gz", tmp_path / "x.gz", md5="0" * 32)
    assert not (tmp_path / "x.gz").exists()


def test_download_missing_into_cache(tmp_path, monkeypatch):
    pytest.importorskip("pooch")
    mirror = tmp_path / "mirror"
    write_idx_set(mirror, "t10k", n=3)
    with http_server(mirror) as base:
        register_official(monkeypatch, "mnist", mirror, "t10k", 3, url=base)
        X, y, info = datasets.load_dataset("mnist", "test", download=True)
        assert X.shape == (3, 784) and info["verified"]
        cached = datasets.cache_dir() / "mnist"
        assert sorted(os.listdir(cached)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        assert datasets.load_mnist("test")[0].shape == (3, 784)  # found in the cache, no download
        # a tampered mirror is refused, for Fashion-MNIST too
        files = register_official(monkeypatch, "fashion-mnist", mirror, "t10k", 3, url=base)
        files["t10k-labels-idx1-ubyte"] = files["t10k-labels-idx1-ubyte"]._replace(md5_gz="f" * 32)
        with pytest.raises(DatasetError, match="checksum mismatch"):
            datasets.load_fashion_mnist("test", download=True)
    assert not (datasets.cache_dir() / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_official_tables_are_complete():
    for name, source in datasets.IDX_SOURCES.items():
        assert source["urls"] and set(source["files"]) == {
            f"{p}-{k}" for p in ("train", "t10k") for k in ("images-idx3-ubyte", "labels-idx1-ubyte")}
        for f in source["files"].values():
            assert f.count in (60000, 10000) and len(f.md5) == len(f.md5_gz) == 32
    t10k = datasets.IDX_SOURCES["mnist"]["files"]["t10k-images-idx3-ubyte"]
    assert t10k.md5 == "2646ac647ad5339dbf082846283269ea"


# ---------------------------------------------------------------------------------------- your data
def test_npy_features_and_images(tmp_path):
    X0 = np.random.default_rng(0).normal(size=(6, 3))
    np.save(tmp_path / "points.npy", X0)
    X, y, info = datasets.load_path(tmp_path / "points.npy")
    np.testing.assert_array_equal(X, X0)
    assert y is None and info["image_shape"] is None and info["unit_interval"] is False
    assert set(info) == set(datasets.load_dataset("digits")[2])  # the same info keys as load_dataset
    pixels = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)
    np.save(tmp_path / "images.npy", pixels)
    X, y, info = datasets.load_path(tmp_path / "images.npy")
    np.testing.assert_array_equal(X, pixels.reshape(4, -1) / 255.0)  # uint8: pixel / 255
    assert info["image_shape"] == (5, 6) and info["unit_interval"]
    np.save(tmp_path / "rgb.npy", np.zeros((2, 4, 4, 3), np.float32))
    assert datasets.load_path(tmp_path / "rgb.npy")[2]["image_shape"] == (4, 4, 3)
    X, _, info = datasets.load_path(tmp_path / "images.npy", scale=1.0)
    assert X.max() == pixels.max() and not info["unit_interval"]


@pytest.mark.parametrize("make, match", [
    (lambda p: np.save(p, np.array([{"a": 1}, None], dtype=object)), "object array.*allow_pickle=False"),
    (lambda p: np.save(p, np.array([[1.0, np.nan], [0.0, 1.0]])),
     r"1 NaN or inf value\(s\), first at index \(0, 1\)"),
    (lambda p: np.save(p, np.array([[1.0], [np.inf]])), "NaN or inf"),
    (lambda p: np.save(p, np.zeros(5)), r"reshape a single feature to \(n, 1\)"),
    (lambda p: np.save(p, np.zeros((0, 3))), "no data"),
    (lambda p: np.save(p, np.zeros((2, 2), dtype=[("a", "f8")])), "structured array"),
    (lambda p: np.save(p, np.array([["a", "b"]])), "features must be real numbers"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(b"not numpy at all"), "not a readable .npy array"),
])
def test_bad_npy_files_are_refused(tmp_path, make, match):
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(DatasetError, match=match) as info:
        datasets.load_path(path)
    assert str(path) in str(info.value)


def test_npy_sizes_are_checked_before_reading(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((10, 10)))
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(DatasetError, match=r"is truncated: its header says shape \(10, 10\)"):
        datasets.load_path(path)
    path.write_bytes(data.replace(b"(10, 10)", b"(99999999999, 10)", 1))
    with pytest.raises(DatasetError, match="over the limit"):
        datasets.load_path(path)


def test_npz_keys_labels_and_refusals(tmp_path):
    X0, y0 = np.random.default_rng(0).random((5, 2)), np.array([0, 1, 1, 0, 2])
    np.savez(tmp_path / "a.npz", X=X0, y=y0)
    X, y, info = datasets.load_path(tmp_path / "a.npz")
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert y.dtype == np.int64 and info["unit_interval"] and info["classes"] is None
    np.savez_compressed(tmp_path / "b.npz", images=np.zeros((3, 4, 4), np.uint8),
                        labels=["cat", "dog", "cat"])
    X, y, info = datasets.load_path(tmp_path / "b.npz")
    assert X.shape == (3, 16) and y.tolist() == [0, 1, 0] and info["classes"] == ("cat", "dog")
    np.savez(tmp_path / "c.npz", features=X0, target=y0)
    with pytest.raises(DatasetError, match=r"no features found; npae reads the array 'X'.*"
                                           r"\['features', 'target'\]"):
        datasets.load_path(tmp_path / "c.npz")
    X, y, _ = datasets.load_path(tmp_path / "c.npz", label="target")  # the only other array is X
    assert X.shape == (5, 2) and y.tolist() == y0.tolist()
    np.savez(tmp_path / "d.npz", codes=X0)
    assert datasets.load_path(tmp_path / "d.npz")[1] is None
    for kwargs, match in ((dict(X=X0, y=y0[:4]), r"labels must be of shape \(5,\)"),
                          (dict(X=X0, y=np.full(5, 2**31 - 1)), r"class numbers 0..255 \(MAX_CLASSES\)"),
                          (dict(X=X0, y=np.full(5, -1)), "class numbers 0..255"),
                          (dict(X=X0, y=np.full(5, 0.5)), "whole class numbers"),
                          (dict(X=np.array([None, 1], dtype=object)), "object array")):
        np.savez(tmp_path / "e.npz", **kwargs)
        with pytest.raises(DatasetError, match=match):
            datasets.load_path(tmp_path / "e.npz")
    (tmp_path / "f.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DatasetError, match="not a readable .npz archive"):
        datasets.load_path(tmp_path / "f.npz")


def test_npz_member_cannot_declare_more_than_it_holds(tmp_path):
    import zipfile

    np.save(tmp_path / "X.npy", np.zeros((4, 4)))
    data = (tmp_path / "X.npy").read_bytes().replace(b"(4, 4)", b"(4000000000, 4)", 1)
    with zipfile.ZipFile(tmp_path / "a.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", data)
    with pytest.raises(DatasetError, match=r"a.npz\['X'\].*over the limit"):
        datasets.load_path(tmp_path / "a.npz")


def test_csv_header_labels_and_errors(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("x1,x2,label\n0.5,1.5,3\n2,3,1\n")
    X, y, info = datasets.load_path(p, label="label")
    np.testing.assert_array_equal(X, [[0.5, 1.5], [2, 3]])
    assert y.tolist() == [3, 1] and info["classes"] is None and not info["unit_interval"]
    with pytest.raises(DatasetError, match="column 'label' is named like a label"):  # never a feature unasked
        datasets.load_path(p)
    X, y, _ = datasets.load_path(p, label=False)  # no label column: all three are features
    assert X.shape == (2, 3) and y is None
    p.write_text('\ufeffspecies,a,b\n"setosa",0.1,0.2\nvirginica,0.3,0.4\nsetosa,0.5,0.6\n')  # BOM, quotes
    X, y, info = datasets.load_path(p, label="species")
    assert y.tolist() == [0, 1, 0] and info["classes"] == ("setosa", "virginica") and info["unit_interval"]
    p.write_text("cat,0.1,0.2\ndog,0.3,0.4\n")  # no header; the label column by index
    X, y, info = datasets.load_path(p, label=0)
    assert X.shape == (2, 2) and info["classes"] == ("cat", "dog")
    p.write_text("1,2\n3,4\n")
    assert datasets.load_path(p)[0].shape == (2, 2)
    assert datasets.load_path(p, header=True)[0].shape == (1, 2)
    for text, kwargs, match in (
            ("a,b\n1,2\n3\n", {}, "line 3 has 1 fields, line 2 has 2 \\(ragged rows\\)"),
            ("a,b\n1,2\n3,x\n", {}, "line 3, column 2 \\('b'\\): 'x' is not a number"),
            ("a,b\n1,2\n3,nan\n", {}, "1 NaN or inf value\\(s\\), first on line 3"),
            ("a,b\n1,inf\n", {}, "NaN or inf"),
            ("", {}, "is empty"),
            ("a,b\n", {}, "holds no data rows \\(only a header\\)"),
            ("a,b\n1,2\n", {"label": "c"}, r"no column named 'c' \(label=\); the header row is \['a', 'b'\]"),
            ("a,b\n1,2\n", {"label": 5}, "label column 5 does not exist"),
            ("a,b\n1,2147483647\n", {"label": "b"}, "class numbers 0..255"),
            ("a\n1\n", {"label": "a"}, "no feature columns"),
    ):
        p.write_text(text)
        with pytest.raises(DatasetError, match=match) as info:
            datasets.load_path(p, **kwargs)
        assert str(p) in str(info.value)
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        datasets.load_path(p)


def test_csv_size_is_bounded(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("1,2\n" * 100)  # 400 bytes of text: up to 1,600 bytes of float64
    with pytest.raises(DatasetError, match="may parse to .* over the limit"):
        datasets.load_path(p, max_bytes=1000)
    assert datasets.load_path(p, max_bytes=1600)[0].shape == (100, 2)


def test_png_folder_greyscale_with_classes_matches_idx(tmp_path):
    images, labels = write_idx_set(tmp_path / "idx", "small", n=6)
    for i, (img, lab) in enumerate(zip(images, labels)):
        (tmp_path / "png" / str(lab)).mkdir(parents=True, exist_ok=True)
        write_png(tmp_path / "png" / str(lab) / f"{i:03d}.png", img)
    (tmp_path / "png" / "README.txt").write_text("other files are ignored")
    X, y, info = datasets.load_path(tmp_path / "png")
    classes = tuple(sorted({str(v) for v in labels}))
    assert info["classes"] == classes and info["image_shape"] == (28, 28) and info["unit_interval"]
    X_idx, y_idx = datasets.load_mnist("small", data_dir=tmp_path / "idx")
    order = sorted(range(6), key=lambda i: (str(labels[i]), i))  # files are read class by class
    np.testing.assert_array_equal(X, X_idx[order])  # exactly pixel / 255, as from IDX
    assert [classes[k] for k in y] == [str(v) for v in y_idx[order]]


def test_png_folder_rgb_16_bit_and_alpha(tmp_path):
    rgb = np.arange(4 * 3 * 3).reshape(4, 3, 3) * 7
    (tmp_path / "rgb").mkdir()
    write_png(tmp_path / "rgb" / "a.png", rgb)
    write_png(tmp_path / "rgb" / "b.png", np.dstack([rgb, np.full((4, 3), 255)]))  # opaque RGBA
    X, y, info = datasets.load_path(tmp_path / "rgb")
    assert y is None and info["image_shape"] == (4, 3, 3) and info["classes"] is None
    np.testing.assert_array_equal(X, np.stack([rgb.reshape(-1), rgb.reshape(-1)]) / 255.0)
    (tmp_path / "deep").mkdir()
    grey16 = np.array([[0, 1, 65535], [1000, 2**15, 7]])
    write_png(tmp_path / "deep" / "a.png", grey16, bit_depth=16)
    np.testing.assert_array_equal(datasets.load_path(tmp_path / "deep")[0], grey16.reshape(1, -1) / 65535.0)
    write_png(tmp_path / "rgb" / "c.png", np.dstack([rgb, np.full((4, 3), 128)]))
    with pytest.raises(DatasetError, match="c.png has transparent pixels"):
        datasets.load_path(tmp_path / "rgb")


@pytest.mark.parametrize("second, match", [
    (np.zeros((5, 4), np.uint8),
     r"b.png is 4x5 greyscale, but .*a.png is 4x4 greyscale; all images must share size and mode"),
    (np.zeros((4, 4, 3), np.uint8), "b.png is 4x4 RGB, but .*a.png is 4x4 greyscale"),
])
def test_png_folder_images_must_share_size_and_mode(tmp_path, second, match):
    write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "b.png", second)
    write_png(tmp_path / "c.png", np.zeros((9, 9), np.uint8))  # not reached: b.png is the first offender
    with pytest.raises(DatasetError, match=match):
        datasets.load_path(tmp_path)


def test_png_folder_refusals(tmp_path):
    write_idx_set(tmp_path / "idx", "small", n=2)
    with pytest.raises(DatasetError, match="no PNG or JPEG images.*it holds IDX files: load them with "
                                           "--data mnist"):
        datasets.load_path(tmp_path / "idx")
    (tmp_path / "mixed" / "cats").mkdir(parents=True)
    write_png(tmp_path / "mixed" / "top.png", np.zeros((2, 2), np.uint8))
    write_png(tmp_path / "mixed" / "cats" / "c.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match="mixes images at the top"):
        datasets.load_path(tmp_path / "mixed")
    (tmp_path / "gif").mkdir()
    write_png(tmp_path / "gif" / "a.png", np.zeros((2, 2), np.uint8))
    (tmp_path / "gif" / "b.gif").write_bytes(b"GIF89a")
    with pytest.raises(DatasetError, match="b.gif: only PNG and JPEG images are read"):
        datasets.load_path(tmp_path / "gif")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DatasetError, match="a.png is not a PNG file"):
        datasets.load_path(tmp_path / "broken")
    good = tmp_path / "broken" / "a.png"
    write_png(good, np.zeros((3, 3), np.uint8))
    good.write_bytes(good.read_bytes()[:45] + b"\x00" * 20)  # a valid header, damaged pixel data
    with pytest.raises(DatasetError, match="a.png is not a readable PNG image"):
        datasets.load_path(tmp_path / "broken")


def test_load_path_arguments_and_unknown_formats(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found"):
        datasets.load_path(tmp_path / "missing.npy")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetError, match="for IDX files use load_mnist / --data mnist --data-dir"):
        datasets.load_path(tmp_path / "t10k-images-idx3-ubyte.gz")
    (tmp_path / "data.json").write_text("[]")
    with pytest.raises(DatasetError, match=r"npae reads .npy, .npz, .csv files and folders of PNG "
                                           r"or JPEG images, not .json"):
        datasets.load_path(tmp_path / "data.json")
    np.save(tmp_path / "flat.npy", np.zeros((2, 12)))
    assert datasets.load_path(tmp_path / "flat.npy", image_shape=(2, 2, 3))[2]["image_shape"] == (2, 2, 3)
    with pytest.raises(ValueError, match="does not fit 12 features"):
        datasets.load_path(tmp_path / "flat.npy", image_shape=(3, 3))
    with pytest.raises(ValueError, match="label= applies to .csv and .npz"):
        datasets.load_path(tmp_path / "flat.npy", label="y")
    with pytest.raises(ValueError, match="scale must be"):
        datasets.load_path(tmp_path / "flat.npy", scale=0)


def _mutations(good, rng, count):
    """Damaged copies of ``good``: bytes overwritten, the end cut off, or bytes inserted."""
    for _ in range(count):
        b = bytearray(good)
        op = rng.random()
        if op < 0.4:
            for _ in range(rng.integers(1, 4)):
                b[rng.integers(len(b))] = rng.integers(256)
        elif op < 0.7:
            b = b[:rng.integers(len(b))]
        else:
            i = rng.integers(len(b))
            b = b[:i] + rng.integers(0, 256, rng.integers(1, 9)).astype(np.uint8).tobytes() + b[i:]
        yield bytes(b)


def test_damaged_files_raise_only_dataset_errors(tmp_path):
    """Whatever a file's bytes, the loaders raise DatasetError (or succeed): never IndexError,
    struct.error, OverflowError, MemoryError, UnicodeDecodeError or a parser's own exception."""
    write_idx_set(tmp_path / "idx", "s", n=3)
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((3, 4)))
    np.savez_compressed(tmp_path / "a.npz", X=np.ones((3, 4)), y=np.array(["a", "b", "a"]))
    (tmp_path / "a.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    (tmp_path / "png").mkdir()
    write_png(tmp_path / "png" / "x.png", np.arange(12).reshape(3, 4))

    def mnist():
        return datasets.load_mnist("s", data_dir=tmp_path / "idx")

    targets = [(tmp_path / "idx" / "s-images-idx3-ubyte.gz", mnist),
               (tmp_path / "idx" / "s-labels-idx1-ubyte.gz", mnist),
               (tmp_path / "a.npy", lambda: datasets.load_path(tmp_path / "a.npy")),
               (tmp_path / "a.npz", lambda: datasets.load_path(tmp_path / "a.npz")),
               (tmp_path / "a.csv", lambda: datasets.load_path(tmp_path / "a.csv", label="c")),
               (tmp_path / "png" / "x.png", lambda: datasets.load_path(tmp_path / "png"))]
    rng = np.random.default_rng(0)
    for path, load in targets:
        for damaged in _mutations(path.read_bytes(), rng, 60):
            path.write_bytes(damaged)
            try:
                load()
            except DatasetError:
                pass


# ---------------------------------------------------------------------------------------- synthetic
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
    keys = {"image_shape", "unit_interval", "classes", "source", "files", "verified", "provenance"}
    for name in ("digits", "moons", "swiss-roll", "blobs"):
        X, y, info = datasets.load_dataset(name)
        assert X.ndim == 2 and y.shape == (X.shape[0],) and set(info) == keys
        assert info["unit_interval"] == (name == "digits") and info["files"] == ()
    with pytest.raises(ValueError, match="unknown data set 'cifar'"):
        datasets.load_dataset("cifar")


def test_the_semisupervised_split_joins_train5k_and_the_first_8000_of_t10k(tmp_path):
    train_images, train_labels = write_idx_set(tmp_path, "few", n=4)
    test_images, test_labels = write_idx_set(tmp_path, "many", n=10000, seed=1, gz=False)
    X_train, y_train, X_test, y_test = datasets.load_mnist_13k(data_dir=tmp_path, train_split="few",
                                                               test_split="many")
    assert X_train.shape == (8004, 784) and X_test.shape == (2000, 784)
    np.testing.assert_array_equal(np.rint(X_train[:4] * 255), train_images.reshape(4, -1))
    np.testing.assert_array_equal(np.rint(X_train[4:] * 255), test_images[:8000].reshape(8000, -1))
    np.testing.assert_array_equal(np.rint(X_test * 255), test_images[8000:].reshape(2000, -1))
    np.testing.assert_array_equal(np.concatenate([y_train, y_test]),
                                  np.concatenate([train_labels, test_labels]))
    with pytest.raises(FileNotFoundError):
        datasets.load_mnist_13k(data_dir=tmp_path / "nothing here")
    write_idx_set(tmp_path, "short", n=8000, seed=2)
    with pytest.raises(datasets.DatasetError, match="'short' holds 8000 images"):
        datasets.load_mnist_13k(data_dir=tmp_path, train_split="few", test_split="short")


def test_the_demos_data_is_the_digits_when_quick_and_the_13k_split_otherwise(tmp_path):
    """The prelude of demos/semisupervised.py, unbalanced_cvae.py and cvae_agreement.py."""
    X, y = datasets.load_digits()
    X_train, y_train, X_test, y_test = datasets.load_digits_or_mnist_13k(True, data_dir=tmp_path / "unused")
    np.testing.assert_array_equal(X_train, X[:1500])
    np.testing.assert_array_equal(y_train, y[:1500])
    np.testing.assert_array_equal(X_test, X[1500:])
    np.testing.assert_array_equal(y_test, y[1500:])
    with pytest.raises(FileNotFoundError):  # MNIST is not there: the demo says so and exits
        datasets.load_digits_or_mnist_13k(False, data_dir=tmp_path / "nothing here")
