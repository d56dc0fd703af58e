"""Images through Pillow (npae.data.images): PNG and JPEG, greyscale and RGB, read exactly as the
files' levels / their maximum; the byte bound judged from headers before decoding; Pillow's
decompression-bomb guard reported as a DatasetError naming the file; NPY headers through numpy's
bounded reader."""
import numpy as np
import pytest
from PIL import Image

from npae import datasets
from npae.data.bounded import DatasetError
from npae.data.userfiles import NPY_MAX_HEADER


def save(path, array, mode=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def test_png_modes_read_as_their_levels(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    save(tmp_path / "L" / "a.png", grey)
    np.testing.assert_array_equal(datasets.load_path(tmp_path / "L")[0], grey.reshape(1, -1) / 255.0)
    rgb = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    save(tmp_path / "RGB" / "a.png", rgb)
    X, _, info = datasets.load_path(tmp_path / "RGB")
    assert info["image_shape"] == (5, 4, 3)
    np.testing.assert_array_equal(X, rgb.reshape(1, -1) / 255.0)
    bits = rng.integers(0, 2, (5, 4)).astype(bool)  # a 1-bit PNG: 0 or 1
    save(tmp_path / "1" / "a.png", bits)
    np.testing.assert_array_equal(datasets.load_path(tmp_path / "1")[0], bits.reshape(1, -1).astype(float))
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    (tmp_path / "P").mkdir()
    palette.save(tmp_path / "P" / "a.png")
    want = np.asarray(palette.convert("RGB"), np.float64).reshape(1, -1) / 255.0
    np.testing.assert_array_equal(datasets.load_path(tmp_path / "P")[0], want)


@pytest.mark.parametrize("mode, shape", [("L", (6, 8)), ("RGB", (6, 8, 3))])
def test_jpeg_greyscale_and_rgb(tmp_path, mode, shape):
    """A JPEG reads as Pillow decodes it, / 255; labels from class folders; lossy but close."""
    rng = np.random.default_rng(1)
    wave = 128 + 40 * np.sin(np.arange(np.prod(shape)).reshape(shape) / 7.0)
    smooth = np.clip(wave, 0, 255).astype(np.uint8)
    for k, cls in enumerate(["cat", "dog"]):
        save(tmp_path / "jpg" / cls / "a.jpg", smooth, quality=95)
        save(tmp_path / "jpg" / cls / "b.JPEG", (smooth // 2 + rng.integers(0, 2, shape)).astype(np.uint8),
             quality=95, format="JPEG")
    X, y, info = datasets.load_path(tmp_path / "jpg")
    assert info["classes"] == ("cat", "dog") and list(y) == [0, 0, 1, 1]
    assert info["image_shape"] == shape and info["unit_interval"]
    decoded = np.asarray(Image.open(tmp_path / "jpg" / "cat" / "a.jpg"), np.float64) / 255.0
    np.testing.assert_array_equal(X[0], decoded.reshape(-1))
    assert np.max(np.abs(X[0] - smooth.reshape(-1) / 255.0)) < 0.05  # lossy, but the same picture


def test_png_and_jpeg_mix_in_one_folder(tmp_path):
    grey = np.full((3, 3), 200, np.uint8)
    save(tmp_path / "a.png", grey)
    save(tmp_path / "b.jpg", grey, quality=100)
    X = datasets.load_path(tmp_path)[0]
    assert X.shape == (2, 9) and np.allclose(X, 200 / 255.0, atol=2 / 255.0)


def test_refusals(tmp_path):
    png_named_jpeg = save(tmp_path / "wrong" / "a.jpg", np.zeros((2, 2), np.uint8), format="PNG")
    with pytest.raises(DatasetError, match=f"{png_named_jpeg} is not a JPEG file"):
        datasets.load_path(tmp_path / "wrong")
    save(tmp_path / "cmyk" / "a.jpg", np.zeros((2, 2, 4), np.uint8), mode="CMYK")
    with pytest.raises(DatasetError, match="a.jpg is a CMYK JPEG; npae reads greyscale or RGB"):
        datasets.load_path(tmp_path / "cmyk")
    la = np.dstack([np.zeros((2, 2), np.uint8), np.array([[255, 255], [255, 7]], np.uint8)])
    save(tmp_path / "la" / "a.png", la, mode="LA")
    with pytest.raises(DatasetError, match="a.png has transparent pixels"):
        datasets.load_path(tmp_path / "la")
    noise = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    jpeg = save(tmp_path / "cut" / "a.jpg", noise, quality=95)
    data = jpeg.read_bytes()
    jpeg.write_bytes(data[:len(data) // 2])  # the header whole, the scan cut in half
    with pytest.raises(DatasetError, match="a.jpg is not a readable JPEG image"):
        datasets.load_path(tmp_path / "cut")
    with pytest.raises(DatasetError, match="give the folder that holds the images"):
        datasets.load_path(jpeg)


def test_the_byte_bound_is_judged_from_the_jpeg_header(tmp_path):
    """A JPEG whose header declares 11000 x 11000 pixels (a few hundred bytes on disk) is refused
    from its header, before Pillow decodes anything (Pillow's own guard lets it through: 121
    million pixels is over its warning limit but under twice it)."""
    path = save(tmp_path / "big" / "a.jpg", np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5:sof + 9] = (11000).to_bytes(2, "big") + (11000).to_bytes(2, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"decoding its 11000x11000 JPEG images would take 10.4 GiB"):
        datasets.load_path(tmp_path / "big")


def test_pillows_bomb_guard_stays_on_and_names_the_file(tmp_path, monkeypatch):
    save(tmp_path / "a.png", np.zeros((40, 40), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels > 2 x 100: Pillow refuses
    with pytest.raises(DatasetError, match=r"a.png: Pillow's decompression-bomb guard refuses it"):
        datasets.load_path(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # over the limit, under twice: npae's bound decides
    assert datasets.load_path(tmp_path)[0].shape == (1, 1600)


def test_npy_header_goes_through_numpys_bounded_reader(tmp_path):
    """numpy's reader refuses a header longer than NPY_MAX_HEADER before parsing it; npae reports
    it as a DatasetError naming the file."""
    header = ("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }"
              + " " * (NPY_MAX_HEADER + 100) + "\n").encode()
    path = tmp_path / "long.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + bytes(8))
    with pytest.raises(DatasetError, match="long.npy is not a readable .npy array.*max_header_size"):
        datasets.load_path(path)
    v3 = tmp_path / "v3.npy"
    v3.write_bytes(b"\x93NUMPY\x03\x00" + bytes(60))
    with pytest.raises(DatasetError, match="v3.npy is not a readable .npy array.*version"):
        datasets.load_path(v3)
