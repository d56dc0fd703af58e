"""Hostile and careless model files and checkpoints, as an attacker or a careless user would make
them: each is refused with a ModelFileError naming the file and the field, before it costs memory,
time or a wrong result. One test per case the review reproduced on main, then a hypothesis test that
mutates headers, arrays and checkpoint fields of real files at random."""
import json
import os
import re
import signal
import struct
import threading
import zipfile
import zlib
from io import BytesIO

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import npae
from npae.data import io
from npae.data.io import ModelFileError
from npae.training.loop import DivergenceError, TrainingInterrupted
from npae.validation import InputError

from _measure import measure_calls

X = np.random.default_rng(0).random((40, 6))


@pytest.fixture(autouse=True)
def no_model_key(monkeypatch):
    """These files are unsigned: a key in the environment would refuse every one of them."""
    monkeypatch.delenv(io.KEY_ENV, raising=False)


def make_ae(**kw):
    return npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=3, **kw)


# --------------------------------------------------------------------------------------------------
# helpers: read a file apart, forge one back (digest recomputed, as a careful forger would)
# --------------------------------------------------------------------------------------------------
def read_parts(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays.pop(io.HEADER_KEY).tobytes().decode("utf-8"))
    return header, arrays


def forge(path, header, arrays, *, relist=True, redigest=True):
    """Write ``header`` and ``arrays`` to ``path`` as np.savez would, the header's array list and
    digest recomputed (``relist``, ``redigest``) like a careful forger's."""
    header = dict(header)
    if relist:
        header["arrays"] = {k: {"shape": list(a.shape), "dtype": a.dtype.str} for k, a in arrays.items()}
    if redigest:
        header.pop("sha256", None)
        header["sha256"] = io._digest(header, arrays)
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **{io.HEADER_KEY: blob}, **arrays)
    return path


def npy_bytes(a):
    buf = BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def npy_head(shape, dtype="<f8", fortran=False):
    """The bytes of a .npy header (version 1.0) declaring ``shape`` and ``dtype``."""
    buf = BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": fortran,
                                               "shape": tuple(shape)})
    return buf.getvalue()


def raw_zip(path, entries):
    """A zip written by hand: ``entries`` = [(name, data as stored, method, crc, uncompressed size)]."""
    with open(path, "wb") as fh:
        central = []
        for name, data, method, crc, size in entries:
            offset, raw = fh.tell(), name.encode("utf-8")
            fh.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data), size,
                                 len(raw), 0) + raw)
            fh.write(data)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                                       len(data), size, len(raw), 0, 0, 0, 0, 0, offset) + raw)
        start = fh.tell()
        fh.write(b"".join(central))
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                             fh.tell() - start, start, 0))
    return path


def stored(name, data):
    return (name, data, zipfile.ZIP_STORED, zlib.crc32(data), len(data))


def members_of(path):
    with zipfile.ZipFile(path) as zf:
        return [stored(info.filename, zf.read(info)) for info in zf.infolist()]


def zeros_bomb(name, shape, dtype="<f8"):
    """A deflated .npy member holding zeros of ``shape``: a few MB on disk, any size decompressed.
    Built from one compressed 16 MiB block repeated (each ends with a full flush, so the copies are
    identical); the CRC is the true one, so np.load would decompress it all."""
    head = npy_head(shape, dtype)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    block = bytes(16 << 20)
    assert size % len(block) == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    copies = size // len(block)
    data = first + one * copies + c.flush()
    crc = zlib.crc32(head)
    for _ in range(copies):
        crc = zlib.crc32(block, crc)
    return (name, data, zipfile.ZIP_DEFLATED, crc, len(head) + size)


def refused(path, match, load=None):
    """``load(path)`` (default npae.load) raises ModelFileError naming the file and matching ``match``."""
    with pytest.raises(ModelFileError, match=match) as info:
        (load or npae.load)(path)
    assert str(path) in str(info.value)
    return info.value


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.npz"
    make_ae().save(path)
    return path


# --------------------------------------------------------------------------------------------------
# 1. memory before validation: bombs are refused from the zip directory and the headers alone
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """The files of the review, each a few MB or less: name -> (path, what the refusal says)."""
    folder = tmp_path_factory.mktemp("bombs")
    base = folder / "base.npz"
    make_ae().save(base)
    good = members_of(base)
    header, arrays = read_parts(base)
    out = {}

    # 2 GiB of zeros as an extra member, not in the header's list (the review's 2.1 MB file)
    two_gib = zeros_bomb("param/zeros.npy", (1 << 28,))
    out["extra_member_2GiB"] = (raw_zip(folder / "extra.npz", good + [two_gib]),
                                r"unexpected \['param/zeros'\]")
    # the same member listed by the header (digest and all): over the size limit
    listed = dict(header, arrays={**header["arrays"], "param/zeros": {"shape": [1 << 28], "dtype": "<f8"}})
    blob = json.dumps(listed).encode("utf-8")
    out["listed_member_2GiB"] = (
        raw_zip(folder / "listed.npz",
                [m for m in good if m[0] != "__header__.npy"]
                + [stored("__header__.npy", npy_bytes(np.frombuffer(blob, np.uint8))), two_gib]),
        "declare more than 1073741824 bytes")
    # a small member whose .npy header claims 2**40 bytes (np.load tried to allocate 1 TiB)
    W = arrays["param/encoder.0.W"]
    liar = stored("param/encoder.0.W.npy", npy_head((1 << 37,)) + W.tobytes())
    out["npy_header_1TiB"] = (raw_zip(folder / "liar.npz",
                                      [liar if m[0] == "param/encoder.0.W.npy" else m for m in good]),
                              r"'param/encoder.0.W' has shape \(137438953472,\) dtype <f8; the header "
                              r"says \(6, 5\)")
    # a 21 KB file whose config declares input_dim=6000, hidden=[6000] (1.48 GB built), or 10**6
    for width in (6000, 10 ** 6):
        config = dict(header["config"], input_dim=width, hidden=[width])
        path = forge(folder / f"config_{width}.npz", dict(header, config=config), arrays)
        out[f"config_{width}"] = (path, rf"parameter 'encoder.0.W' has shape \(6, 5\) float64; a "
                                        rf"Autoencoder with this config needs \({width}, {width}\)")
    # a header of 9 MiB (over the 8 MiB cap), deflated to a few kB
    big = json.dumps(dict(header, padding="x" * (9 << 20))).encode("utf-8")
    member = npy_bytes(np.frombuffer(big, np.uint8))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = c.compress(member) + c.flush()
    out["header_9MiB"] = (raw_zip(folder / "bigheader.npz",
                                  [m for m in good if m[0] != "__header__.npy"]
                                  + [("__header__.npy", deflated, zipfile.ZIP_DEFLATED,
                                      zlib.crc32(member), len(member))]),
                          "header member declares .* bytes; the limit is 8388608")
    # a header of 8 MiB (under the cap) that is 2.8 million empty lists: 180 MB once parsed
    lists = ("[" + "[]," * (((8 << 20) - 10) // 3) + "[]]").encode("utf-8")
    member = npy_bytes(np.frombuffer(lists, np.uint8))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out["header_of_lists"] = (raw_zip(folder / "lists.npz",
                                      [m for m in good if m[0] != "__header__.npy"]
                                      + [("__header__.npy", c.compress(member) + c.flush(),
                                          zipfile.ZIP_DEFLATED, zlib.crc32(member), len(member))]),
                              r"header holds 279620\d lists and objects")
    # a zip directory of 20,000 members
    many = good + [stored(f"param/m{i}.npy", b"") for i in range(20000)]
    out["members_20000"] = (raw_zip(folder / "many.npz", many), r"lists 200\d\d members")
    return out


def test_bombs_are_refused_before_costing_memory_or_time(bombs):
    """Each file, loaded in a fresh process: ModelFileError naming the file and the problem, in
    under 2 s, with under 50 MB traced by tracemalloc and under 200 MB of resident memory."""
    names = sorted(bombs)
    for name in names:
        assert os.path.getsize(bombs[name][0]) < 3 << 20, name  # every file is small on disk
    env = dict(os.environ)
    env.pop(io.KEY_ENV, None)
    results = measure_calls("npae.load", [bombs[n][0] for n in names], env=env)
    for name, res in zip(names, results):
        path, match = bombs[name]
        assert res["error"] is not None and res["error"].startswith("ModelFileError: "), (name, res)
        assert str(path) in res["error"] and re.search(match, res["error"]), (name, res)
        assert res["seconds"] < 2.0, (name, res)
        assert res["traced"] < 50e6, (name, res)
        assert res["rss_growth"] < 200e6, (name, res)


def test_the_bomb_is_real(bombs):
    """The 2 GiB member really holds 2 GiB: its zip entry says so and its first MB decompresses to
    zeros (what np.load would have done, all of it)."""
    path = bombs["extra_member_2GiB"][0]
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("param/zeros.npy")
        assert info.file_size > 2 ** 31 and info.compress_size < 3 << 20
        with zf.open(info) as fp:
            assert np.lib.format.read_magic(fp) == (1, 0)
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            assert shape == (1 << 28,) and dtype == np.float64
            assert fp.read(1 << 20) == bytes(1 << 20)


def test_size_limit_is_overridable(model_file):
    with pytest.raises(ModelFileError, match="declare more than 100 bytes"):
        npae.load(model_file, max_bytes=100)
    npae.load(model_file, max_bytes=10 ** 6)
    with pytest.raises(InputError, match="max_bytes must be a positive integer"):
        npae.load(model_file, max_bytes=0)


def test_header_nested_100000_deep(model_file, tmp_path):
    """json raised RecursionError; now a ModelFileError, and nesting is capped at 32 levels."""
    header, arrays = read_parts(model_file)
    path = tmp_path / "deep.npz"
    for depth, match in [(100000, "header holds 100022 lists and objects; a model file's has at most"),
                         (5000, "nests lists or objects too deeply")]:
        text = json.dumps(header)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
        with open(path, "wb") as fh:
            np.savez(fh, **{io.HEADER_KEY: np.frombuffer(text.encode(), np.uint8)}, **arrays)
        refused(path, match)
    forge(path, dict(header, deep=json.loads("[" * 40 + "]" * 40)), arrays)
    refused(path, "more than 32 deep")


@pytest.mark.parametrize("text,match", [
    ('{"a": NaN}', "not valid JSON.*NaN is not a number"),
    ('{"a": 1e999}', "not valid JSON.*overflows"),
    ('{"a": 1, "a": 2}', "not valid JSON.*'a' appears twice"),
    ('{"a": ' + "1" * 5000 + "}", "not valid JSON"),
    ("[1, 2]", "does not describe an 'npae-model' file"),
])
def test_header_json_is_strict(model_file, tmp_path, text, match):
    _, arrays = read_parts(model_file)
    path = tmp_path / "m.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **{io.HEADER_KEY: np.frombuffer(text.encode(), np.uint8)}, **arrays)
    refused(path, match)


def test_not_regular_files_are_refused_without_waiting(tmp_path):
    """A FIFO made npae.load wait forever for a writer; a device or a directory is no model file."""
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    result = {}

    def load():
        try:
            npae.load(fifo)
        except Exception as err:  # noqa: BLE001 (recorded and checked below)
            result["error"] = err

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock the reader so the thread can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("npae.load blocked on a FIFO")
    assert isinstance(result["error"], ModelFileError)
    assert "is a FIFO (named pipe), not a model file" in str(result["error"])
    refused(os.devnull, "is a device, not a model file")
    refused(tmp_path, "is a directory, not a model file")
    with pytest.raises(FileNotFoundError, match="no model file"):
        npae.load(tmp_path / "missing.npz")


def test_zip_tricks_are_refused(model_file, tmp_path):
    good = members_of(model_file)
    cases = {
        "duplicate": (good + [good[1]], "appears twice in the zip directory"),
        "other_name": (good + [stored("../evil.npy", b"x")], r"unexpected member '../evil.npy'"),
        "not_npy": (good + [stored("param/readme.txt", b"x")], r"unexpected member 'param/readme.txt'"),
        "bzip2": ([(n, d, zipfile.ZIP_BZIP2, c, s) if n == "param/decoder.0.b.npy" else (n, d, m, c, s)
                   for n, d, m, c, s in good], "compression method 12"),
        "encrypted": (good, "is encrypted"),
    }
    for name, (entries, match) in cases.items():
        path = raw_zip(tmp_path / f"{name}.npz", entries)
        if name == "encrypted":  # set the encryption flag of the first member in both headers
            data = bytearray(path.read_bytes())
            for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
                i = data.index(sig)
                data[i + at] |= 1
            path.write_bytes(bytes(data))
        refused(path, match)


def test_npy_members_that_are_not_plain_arrays(model_file, tmp_path):
    good = members_of(model_file)

    def with_member(payload):
        return raw_zip(tmp_path / "m.npz", [stored(n, payload) if n == "param/decoder.0.b.npy"
                                            else (n, d, m, c, s) for n, d, m, c, s in good])

    b = read_parts(model_file)[1]["param/decoder.0.b"]
    refused(with_member(npy_bytes(np.asfortranarray(np.zeros((2, 3))))), "Fortran order")
    refused(with_member(npy_head((6,), fortran=True) + b.tobytes()), "Fortran order")
    refused(with_member(b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100), "member 'param/decoder.0.b' ends early")
    refused(with_member(b"\x93NUMPY\x09\x00" + b.tobytes()), "format version")
    refused(with_member(b"\x93NUMPY\x01\x00\x10\x00{'descr': 'O'}   " + b.tobytes()),
            "unreadable .npy header|object")
    refused(with_member(npy_bytes(b) + b"trailing"),
            r"holds 176 bytes; its .npy header and shape say 128 \+ 40")


# --------------------------------------------------------------------------------------------------
# 2. tampered or malformed checkpoints: the review's cases, one by one
# --------------------------------------------------------------------------------------------------
class Interrupting(npae.Autoencoder):
    """Sends itself SIGINT (Ctrl-C) during training step ``at``: a checkpoint saved mid-epoch."""

    at = None

    def _train_batch(self, *batch):
        self.steps_ = getattr(self, "steps_", 0) + 1
        if self.steps_ == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return super()._train_batch(*batch)


def ckpt_mid_epoch(path, at=8):
    """A checkpoint written by Ctrl-C at step ``at`` (5 batches per epoch: step 8 = epoch 1, batch 3)."""
    model = Interrupting(6, hidden=(5,), latent_dim=2, seed=3)
    model.at = at
    with pytest.raises(TrainingInterrupted):
        model.fit(X, epochs=3, batch_size=8, progress=False, checkpoint=path)
    return edit(path, lambda h, a: h.update({"class": "Autoencoder", "module": "npae.models.autoencoder"}))


def ckpt_early_stopping(path):
    model = make_ae()
    model.fit(X, epochs=3, batch_size=8, progress=False, checkpoint=path, validation_data=X[:10],
              patience=5, optimizer=npae.training.optim.Momentum(0.1))
    return path


def resume(path, epochs=3):
    return make_ae().fit(X, epochs=epochs, batch_size=8, progress=False, resume=path)


def edit(path, change, **forge_kw):
    header, arrays = read_parts(path)
    change(header, arrays)
    return forge(path, header, arrays, **forge_kw)


def set_training(field, value):
    def change(header, arrays):
        node = header["training"]
        *parents, last = field.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return change


@pytest.mark.parametrize("field,value,match", [
    ("epochs_done", -3, "epochs_done must be an integer >= 0, got -3"),  # trained 6 epochs, history of 8
    ("epochs_done", 1e999, "not valid JSON"),  # OverflowError before
    ("epochs_done", 2, r"history\['loss'\] has 1 values; epochs_done is 2"),
    ("partial.batches_done", 10 ** 6, r"batches_done must be an integer in \[1, 4\]"),  # loss 0.0
    ("partial.batches_done", 0, r"batches_done must be an integer in \[1, 4\]"),
    ("partial.batch_size", 0, "batch_size must be an integer >= 1"),  # ZeroDivisionError before
    ("partial.sums", {"loss": "x"}, r"partial.sums\['loss'\] must be a finite number"),
    ("partial.sums", {"kl": 1.0}, "partial.sums has the terms"),
    ("partial", [], "partial must be an object"),  # AttributeError before
    ("history", [], "history must be an object"),  # AttributeError before
    ("history", {"loss": [True]}, r"history\['loss'\] must be a finite number"),
    ("stopped_early", "no", "stopped_early must be true or false"),
    ("stopped_by_callback", True, "only with stopped_early"),  # this checkpoint did not stop
    ("stopped_by_callback", "yes", "stopped_by_callback must be true"),
    ("early_stopping", None, "early_stopping must be an object"),
    ("early_stopping.best_epoch", 0, "early_stopping.best_val must be a finite number, got None"),
    ("early_stopping.since_best", 3, r"since_best must be an integer in \[0, 1\]"),
    ("optimizer.t", -1, r"step count 't' must be an integer in \[0, 2\*\*53\]"),  # ZeroDivisionError
    ("optimizer.t", -2, r"step count 't'"),  # math domain error before
    ("optimizer.t", 2.5, r"step count 't'"),
    ("optimizer.t", 3, "the optimizer took 3 steps, fewer than the 1 epochs and 3 batches"),
    ("optimizer.class", "Optimizer", "unknown optimizer class 'Optimizer'"),
    ("optimizer.class", "os.system", "unknown optimizer class 'os.system'"),
    ("optimizer.hyper", {"lr": 0.001, "beta1": 0.9, "beta2": 1.5, "eps": 1e-8, "weight_decay": 0.0},
     "beta2 must be < 1.0"),
    ("optimizer.hyper", {"lr": [1]}, "cannot rebuild optimizer Adam"),
    ("optimizer.hyper", [], "'hyper' must be an object"),
    ("optimizer", None, "no optimizer state"),
    ("divergence.first_loss", -1.0, "first_loss is not the first of early_losses"),
    ("divergence.early_losses", [-1.0], "never negative"),
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("surprise", 1, r"unknown fields \['surprise'\]"),
])
def test_malformed_checkpoint_fields(tmp_path, field, value, match):
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, set_training(field, value))
    before = make_ae()
    before_params = {k: p.copy() for k, p in before.params.items()}
    refused(path, match, load=lambda p: before.fit(X, epochs=3, batch_size=8, progress=False, resume=p))
    for name, p in before.params.items():  # a refused resume leaves the model as it was
        np.testing.assert_array_equal(p, before_params[name])
    refused(path, match)  # npae.load refuses the same checkpoint


def test_missing_training_fields(tmp_path):
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: h["training"].pop("history"))
    refused(path, r"lacks \['history'\]", load=resume)
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: h["training"]["early_stopping"].pop("since_best"))
    refused(path, "early_stopping must have the fields", load=resume)


@pytest.mark.parametrize("perm,match", [
    (np.zeros(40, np.int64), r"train/perm is not a permutation of range\(40\)"),  # trained on x[0] only
    (np.arange(40) + 1, "not a permutation"),  # IndexError before
    (np.arange(40)[::-1].copy() - 1, "not a permutation"),
    (np.arange(40.0), "train/perm must be a 1-D integer array"),
    (np.arange(40, dtype=np.uint64)[::-1].copy(), None),  # unsigned is fine
    (np.full(40, 2 ** 63, dtype=np.uint64), "not a permutation"),
    (np.arange(40).reshape(4, 10), "train/perm must be a 1-D integer array"),
])
def test_bad_permutation(tmp_path, perm, match):
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: a.__setitem__("train/perm", perm))
    if match is None:
        assert len(resume(path).history_["loss"]) == 3
    else:
        refused(path, match, load=resume)


def test_optimizer_state_must_match_the_parameters(tmp_path):
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: a.__setitem__("optim/v/encoder.0.W", -a["optim/v/encoder.0.W"] - 1))
    refused(path, "running sum of squares but holds negative entries", load=resume)
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: a.__setitem__("optim/m/encoder.0.W", a["optim/m/encoder.0.W"].astype(np.float32)))
    refused(path, r"'optim/m/encoder.0.W' \(\(6, 5\) float32\) is not shaped like a parameter", load=resume)
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: a.pop("optim/m/decoder.0.b"))
    refused(path, r"needs every slot of every parameter; missing \['m/decoder.0.b'\]", load=resume)
    path = ckpt_mid_epoch(tmp_path / "ckpt.npz")
    edit(path, lambda h, a: a.__setitem__("optim/m/encoder.0.W", np.full((6, 5), np.inf)))
    refused(path, "'optim/m/encoder.0.W' holds 30 NaN/inf entries", load=resume)


def test_early_stopping_state_must_be_consistent(tmp_path):
    path = ckpt_early_stopping(tmp_path / "ckpt.npz")
    resume(path, epochs=4)  # the file itself is sound
    for change, match in [
        (lambda h, a: [a.pop(k) for k in list(a) if k.startswith("train/best/")],
         "needs the best parameters of every parameter"),
        (set_training("early_stopping.best_val", 123.0), "is none of the history's val_loss"),
        (set_training("early_stopping.best_epoch", 7), r"best_epoch must be an integer in \[0, 2\]"),
        (set_training("stopped_early", True), "stopped_early with since_best 0|since_best"),
        (set_training("early_stopping.best_epoch", None), "without a best_epoch has a best_val"),
    ]:
        ckpt_early_stopping(path)
        edit(path, change)
        refused(path, match, load=lambda p: resume(p, epochs=4))


def test_generator_state_is_checked(model_file):
    for state, match in [({"bit_generator": "MT19937", "state": {}}, "state of a PCG64 generator"),
                         ({"bit_generator": "PCG64", "state": {"state": 10 ** 60, "inc": 1},
                           "has_uint32": 0, "uinteger": 0}, "bad generator state"),
                         ({"bit_generator": "PCG64", "state": [1]}, "bad generator state"),
                         (None, "state of a PCG64 generator")]:
        edit(model_file, lambda h, a: h.__setitem__("rng_state", state))
        refused(model_file, match)


def test_plain_model_file_may_not_carry_training_arrays(model_file):
    edit(model_file, lambda h, a: a.__setitem__("optim/m/encoder.0.W", np.zeros((6, 5))))
    refused(model_file, "a model file \\(no training state\\) holding a training array")


def test_config_that_cannot_be_sized(model_file):
    for config_change, match in [({"hidden": "wide"}, "config field 'hidden' must be a list"),
                                 ({"hidden": [5.5]}, "must hold positive integers"),
                                 ({"latent_dim": True}, "'latent_dim' must be an integer >= 1"),
                                 ({"input_dim": None}, "'input_dim' must be an integer"),
                                 ({"dtype": "complex128"}, "'dtype' must be one of"),
                                 ({"arch": "conv"}, "cannot size a Autoencoder.*not a square image"),
                                 ({"activation": "os.system"}, "cannot rebuild Autoencoder.*activation"),
                                 ({"slope": 10 ** 400}, "cannot rebuild Autoencoder"),
                                 ({"unknown": 1}, "cannot rebuild Autoencoder.*unknown")]:
        make_ae().save(model_file)
        edit(model_file, lambda h, a: h["config"].update(config_change))
        refused(model_file, match)


# --------------------------------------------------------------------------------------------------
# at random: mutate headers, arrays and checkpoint fields of real files
# --------------------------------------------------------------------------------------------------
LEAF = st.one_of(st.none(), st.booleans(),
                 st.sampled_from([-(2 ** 63), -3, -1, 0, 1, 2, 3, 5, 7, 39, 40, 10 ** 6, 2 ** 64, 10 ** 30]),
                 st.sampled_from([-1e308, -1.5, -0.0, 0.5, 1e-300, 3.25, 1e308]),
                 st.sampled_from(["", "x", "Adam", "SGD", "float32", "PCG64", "relu", "loss",
                                  "param/encoder.0.W", "a" * 300]))
VALUE = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["a", "t", "m", "loss", "state", "shape", "dtype"]), inner, max_size=3)),
    max_leaves=6)


def _paths(value, prefix=()):
    """Every path into a JSON value (keys and indices), the value's own included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:4]):
            out += _paths(v, prefix + (i,))
    return out


def _mutate_header(header, data):
    path = data.draw(st.sampled_from(_paths(header)[1:]), label="header path")
    node = header
    for step in path[:-1]:
        node = node[step]
    last = path[-1]
    how = data.draw(st.sampled_from(["replace", "replace", "delete", "wrap", "deep"]), label="how")
    if how == "delete" and isinstance(node, dict):
        del node[last]
    elif how == "wrap":
        node[last] = [node[last]]
    elif how == "deep":
        node[last] = json.loads("[" * 40 + "1" + "]" * 40)
    else:
        node[last] = data.draw(VALUE, label="value")


def _mutate_arrays(arrays, data):
    name = data.draw(st.sampled_from(sorted(arrays)), label="array")
    a = arrays[name]
    how = data.draw(st.sampled_from(["dtype", "shape", "value", "drop", "extra"]), label="how")
    if how == "dtype":
        arrays[name] = a.astype(data.draw(st.sampled_from(["float32", "float64", "int64", "uint8", "bool"])))
    elif how == "shape":
        arrays[name] = data.draw(st.sampled_from([a.reshape(-1), a[None], a.reshape(-1)[:-1], np.zeros(0)]))
    elif how == "value" and a.size:
        a = a.copy()
        flat = a.reshape(-1)
        i = data.draw(st.integers(0, a.size - 1), label="index")
        values = [np.nan, np.inf, -np.inf, 1e308, -1.0] if a.dtype.kind == "f" else [-1, 40, 10 ** 6, 0]
        flat[i] = data.draw(st.sampled_from(values), label="value")
        arrays[name] = a
    elif how == "drop":
        del arrays[name]
    else:
        extra = data.draw(st.sampled_from(["param/zz", "optim/m/encoder.0.W", "optim/q/encoder.0.W",
                                           "train/best/encoder.0.W", "train/junk", "train/perm"]))
        arrays[extra] = np.zeros((6, 5)) if extra != "train/perm" else np.arange(40)


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """A plain model file, a mid-epoch Adam checkpoint and an early-stopping Momentum checkpoint."""
    folder = tmp_path_factory.mktemp("real")
    plain = folder / "plain.npz"
    make_ae().save(plain)
    mid = ckpt_mid_epoch(folder / "mid.npz")
    es = ckpt_early_stopping(folder / "es.npz")
    return {name: read_parts(path) for name, path in [("plain", plain), ("mid", mid), ("es", es)]}


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_random_mutations_raise_only_model_file_errors(real_files, tmp_path, data):
    """Whatever is changed (a header field at any depth: type, range, nesting, a missing key; an
    array's dtype, shape or value, a missing or extra array), with the digest recomputed or not:
    loading and resuming either work, giving a sound model (finite parameters, a history as long as
    the epochs asked for), or raise ModelFileError naming the file; a checkpoint that is sound but
    does not fit the call raises InputError starting with "resume:"; nothing else comes out."""
    kind = data.draw(st.sampled_from(sorted(real_files)), label="file")
    header, arrays = json.loads(json.dumps(real_files[kind][0])), dict(real_files[kind][1])
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):
        if data.draw(st.booleans(), label="header?"):
            _mutate_header(header, data)
        else:
            _mutate_arrays(arrays, data)
    relist, redigest = data.draw(st.sampled_from([(True, True), (True, True), (False, True), (True, False)]))
    path = tmp_path / "mutated.npz"
    try:
        forge(path, header, arrays, relist=relist, redigest=redigest)
    except (TypeError, ValueError, KeyError, AttributeError):
        return  # the mutation made a header even np.savez or json.dumps cannot write
    try:
        model = npae.load(path)
    except ModelFileError as err:
        assert str(path) in str(err)
        event("load: ModelFileError")
    else:
        assert all(np.isfinite(p).all() for p in model.params.values())
        event("load: loaded")
    if kind == "plain":
        return
    epochs = 4
    try:
        model = resume(path, epochs=epochs)
    except ModelFileError as err:
        assert str(path) in str(err)
        event("resume: ModelFileError")
    except InputError as err:
        assert str(err).startswith("resume:"), err
        event("resume: InputError (resume: ...)")
    except DivergenceError:
        event("resume: DivergenceError")  # a sound checkpoint whose legal values make training diverge
    else:
        event("resume: resumed")
        assert all(np.isfinite(p).all() for p in model.params.values())
        for term, values in model.history_.items():
            assert len(values) == epochs or (term.startswith("val_") and len(values) <= epochs), term
        assert model.optimizer_.t >= epochs


@pytest.mark.parametrize("change", [
    {"input_dim": 10 ** 9, "variance": "per_feature", "likelihood": "gaussian"},
    {"hidden1": [10 ** 6, 10 ** 6]},
    {"latent_dim2": 10 ** 8},
    {"hidden2": [3] * 10 ** 6},
])
def test_two_layer_vae_file_declaring_a_huge_model_is_refused_without_building_it(model_file, change):
    """The two-layer VAE is sized by a shape-only build: a config that declares billions of weights
    is compared with the file's small arrays and refused, in well under a second and without the
    memory the declared sizes would take."""
    import time
    import tracemalloc

    npae.TwoLayerVAE(6, hidden1=(4,), latent_dim1=3, hidden2=(3,), latent_dim2=2, seed=1).save(model_file)
    edit(model_file, lambda h, a: h["config"].update(change))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        refused(model_file, "a TwoLayerVAE with this config|config field")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5.0 and peak < 50 * 2 ** 20, peak
