"""Small crafted data files for tests/test_datasets.py: IDX sets, raw IDX headers, gzip bombs, PNGs;
a local HTTP server for the download tests.

Everything is written from scratch into a test's tmp_path with the standard library and NumPy, so
no test needs the real MNIST files or the network.
"""
import contextlib
import functools
import gzip
import hashlib
import http.server
import struct
import threading
import zlib
from pathlib import Path

import numpy as np

from npae import datasets


def write_idx_set(folder, prefix="train", n=5, *, gz=True, seed=0, name_prefix=""):
    """An MNIST-like pair ``<name_prefix><prefix>-{images,labels}-idx{3,1}-ubyte[.gz]`` of ``n``
    random 28x28 images and labels 0..9; returns ``(images, labels)``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    datasets.write_idx(folder / f"{name_prefix}{prefix}-images-idx3-ubyte{ext}", images)
    datasets.write_idx(folder / f"{name_prefix}{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


def idx_md5(path):
    """MD5 of a file's decompressed IDX bytes (what the loader checks)."""
    raw = Path(path).read_bytes()
    return hashlib.md5(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).hexdigest()


def register_official(monkeypatch, name, folder, prefix, n, url=None):
    """Make the pair ``prefix`` in ``folder`` the 'official' files of set ``name`` (count ``n``,
    their own checksums), with ``url`` (a local server of ``folder``; default its file:// URI) as
    the only mirror."""
    folder = Path(folder)
    files = {}
    for kind, idx in (("images", 3), ("labels", 1)):
        stem = f"{prefix}-{kind}-idx{idx}-ubyte"
        gz = folder / (stem + ".gz")
        files[stem] = datasets.OfficialFile(n, hashlib.md5(gz.read_bytes()).hexdigest(), idx_md5(gz))
    source = {"urls": [(url or folder.as_uri()) + "/"], "files": files}
    monkeypatch.setitem(datasets.IDX_SOURCES, name, source)
    return files


def idx_header(type_code, shape):
    """The bytes of an IDX header: 00 00 <type> <ndim>, then one big-endian uint32 per dimension."""
    return bytes([0, 0, type_code, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape)


def write_gzip_bomb(path, header, zeros_mib=2048, member_mib=8):
    """``header`` followed by ``zeros_mib`` MiB of zero bytes, gzip-compressed to a few MB.

    Built from one compressed block of zeros repeated as gzip members (a valid multi-member gzip
    file), so making a 2 GiB bomb costs milliseconds. Returns the decompressed size in bytes.
    """
    member = gzip.compress(bytes(member_mib << 20), compresslevel=9, mtime=0)
    first = gzip.compress(header + bytes(member_mib << 20), compresslevel=9, mtime=0)
    count = zeros_mib // member_mib
    with open(path, "wb") as fh:
        fh.write(first)
        for _ in range(count - 1):
            fh.write(member)
    return len(header) + count * (member_mib << 20)


def write_png(path, pixels, bit_depth=8):
    """Write a PNG with the standard library: ``pixels`` (H, W) greyscale, (H, W, 2) grey+alpha,
    (H, W, 3) RGB or (H, W, 4) RGBA, of integer levels 0 .. 2**bit_depth - 1 (8 or 16 bits)."""
    a = np.asarray(pixels)
    colour = 0 if a.ndim == 2 else {2: 4, 3: 2, 4: 6}[a.shape[2]]
    h, w = a.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = a.astype(dtype).reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every line

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))


@contextlib.contextmanager
def http_server(folder):
    """A local HTTP server of ``folder`` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
