"""Model files: round trips, atomic writes, and every kind of hostile file refused with a clear error."""
import hashlib
import json
import os

import numpy as np
import pytest

import npae
from npae.data import io
from npae.data.io import ModelFileError


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    """The files of this module are unsigned unless a test signs them: no key from the environment."""
    monkeypatch.delenv(io.KEY_ENV, raising=False)


def small_ae(**kw):
    kw.setdefault("hidden", (5,))
    kw.setdefault("latent_dim", 2)
    return npae.Autoencoder(6, **kw)


def digest_of(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def read_npz(path):
    with np.load(path, allow_pickle=True) as z:
        return {k: z[k] for k in z.files}


def write_npz(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def header_of(arrays):
    return json.loads(arrays[io.HEADER_KEY].tobytes().decode("utf-8"))


def with_header(arrays, header, *, redigest):
    """A copy of ``arrays`` with ``header`` (digest recomputed when ``redigest``: a careful forger)."""
    out = dict(arrays)
    if redigest:
        body = {k: v for k, v in out.items() if k != io.HEADER_KEY}
        header = dict(header, sha256=io._digest(header, body))
    out[io.HEADER_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    return out


@pytest.fixture
def saved(tmp_path):
    model = small_ae(seed=3)
    path = tmp_path / "model.npz"
    model.save(path)
    return model, str(path)


# --------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_autoencoder(tmp_path, dtype):
    model = small_ae(dtype=dtype, seed=7, activation="elu", loss="mse", output="identity")
    model.fit(np.random.default_rng(0).random((40, 6)), epochs=2, batch_size=8, progress=False)
    path = tmp_path / "m.npz"
    assert model.save(path) == str(path)
    loaded = npae.load(path)
    assert type(loaded) is npae.Autoencoder and loaded.config == model.config
    assert list(loaded.params) == list(model.params)
    for name, p in model.params.items():
        assert loaded.params[name].dtype == p.dtype
        np.testing.assert_array_equal(loaded.params[name], p)
    X = np.random.default_rng(1).random((5, 6))
    np.testing.assert_array_equal(loaded.reconstruct(X), model.reconstruct(X))
    # the generator state travels too: the loaded model continues the same random stream
    assert loaded.rng.random() == model.rng.random()


def _variant_factories():
    """(name, factory) for every model class of npae (an import failure fails the test module)."""
    from npae.models.vae import VAE, ConditionalVAE
    from npae.models.variants import ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder
    return [("Autoencoder", lambda: small_ae(seed=1)),
            ("VAE", lambda: VAE(6, hidden=(5,), latent_dim=2, seed=1)),
            ("ConditionalVAE", lambda: ConditionalVAE(6, 3, hidden=(5,), latent_dim=2, seed=1)),
            ("DenoisingAutoencoder", lambda: DenoisingAutoencoder(6, hidden=(5,), noise="masking",
                                                                  noise_level=0.2, seed=1)),
            ("SparseAutoencoder", lambda: SparseAutoencoder(6, hidden=(5,), seed=1)),
            ("ContractiveAutoencoder", lambda: ContractiveAutoencoder(
                6, hidden=(), code_activation="sigmoid", seed=1))]


@pytest.mark.parametrize("name,factory", _variant_factories(), ids=lambda v: v if isinstance(v, str) else "")
def test_round_trip_every_model_class(tmp_path, name, factory):
    model = factory()
    for p in model.params.values():  # weights different from a fresh model of the same seed
        p += 0.125
    model.save(tmp_path / "m.npz")
    loaded = npae.load(tmp_path / "m.npz")
    assert type(loaded).__name__ == name and loaded.config == model.config
    for key, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[key], p)


def test_classifier_round_trips_or_is_refused_clearly(tmp_path):
    classifier = pytest.importorskip("npae.models.classifier")
    ae = small_ae(seed=2)
    clf = classifier.Classifier(ae, n_classes=3, hidden=(4,))
    path = tmp_path / "clf.npz"
    path.write_bytes(b"previous")
    if type(clf)._from_config.__func__ is npae.models.model.Model._from_config.__func__:
        with pytest.raises(TypeError, match="cannot save a Classifier.*_from_config"):
            clf.save(path)
        assert path.read_bytes() == b"previous"
    else:  # the classifier learned to rebuild itself: it must round-trip exactly
        clf.save(path)
        X = np.random.default_rng(0).random((4, 6))
        np.testing.assert_array_equal(npae.load(path).decision_function(X), clf.decision_function(X))


def test_path_is_used_as_given(tmp_path):
    model = small_ae()
    model.save(tmp_path / "model")  # np.savez alone would write model.npz
    assert sorted(os.listdir(tmp_path)) == ["model"]
    npae.load(tmp_path / "model")


def test_file_holds_only_plain_arrays_and_header_fields(saved):
    model, path = saved
    arrays = read_npz(path)
    assert all(a.dtype != object for a in arrays.values())
    header = header_of(arrays)
    assert header["format"] == "npae-model" and header["format_version"] == io.FORMAT_VERSION
    assert header["class"] == "Autoencoder" and header["npae_version"] == npae.__version__
    assert header["config"] == model.config and header["training"] is None
    assert set(arrays) == {io.HEADER_KEY} | {f"param/{k}" for k in model.params}


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------
def test_failed_save_leaves_previous_file_intact(saved, tmp_path, monkeypatch):
    model, path = saved
    before = digest_of(path)

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", crash)
    for p in model.params.values():
        p += 1.0
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert digest_of(path) == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    monkeypatch.undo()
    np.testing.assert_array_equal(npae.load(path).params["decoder.0.b"],
                                  model.params["decoder.0.b"] - 1.0)


def test_unsaveable_config_is_refused_before_writing(saved):
    model, path = saved
    before = digest_of(path)
    model.activation = object()
    with pytest.raises(TypeError, match=r"config\['activation'\] holds a object"):
        model.save(path)
    assert digest_of(path) == before


def test_save_to_missing_directory_or_bad_path(tmp_path):
    model = small_ae()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "nope" / "m.npz")
    with pytest.raises(IsADirectoryError):
        model.save(tmp_path)
    with pytest.raises(TypeError, match="file name"):
        model.save(3)


def test_save_keeps_the_permissions_of_the_replaced_file(saved):
    model, path = saved
    os.chmod(path, 0o640)
    model.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------------------------------
# hostile files
# --------------------------------------------------------------------------------------------------
def refused(path, match, **load_kw):
    """Loading ``path`` raises ModelFileError naming the file and matching ``match``, and leaves the
    file byte-for-byte as it was."""
    before = digest_of(path)
    with pytest.raises(ModelFileError, match=match) as info:
        npae.load(path, **load_kw)
    assert str(path) in str(info.value)
    assert digest_of(path) == before
    return info.value


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved, fraction):
    _, path = saved
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(data[:int(len(data) * fraction)])
    refused(path, "truncated or corrupt")


def test_garbage_and_npy_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(300))
    refused(garbage, "truncated or corrupt")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    refused(npy, "not an npae model file")
    with pytest.raises(FileNotFoundError, match="no model file"):
        npae.load(tmp_path / "missing.npz")


class _Boom:
    """Unpickling this would set a flag: proves that loading never unpickles."""

    triggered = False

    def __reduce__(self):
        return (_trigger, ())


def _trigger():
    _Boom.triggered = True
    return "pwned"


def test_object_arrays_are_never_unpickled(saved):
    _, path = saved
    arrays = read_npz(path)
    arrays["param/encoder.0.b"] = np.array([_Boom()], dtype=object)
    write_npz(path, arrays)
    _Boom.triggered = False
    refused(path, "object \\(pickled\\) array")
    assert not _Boom.triggered


def test_missing_and_extra_arrays(saved):
    _, path = saved
    arrays = read_npz(path)
    write_npz(path, {k: v for k, v in arrays.items() if k != "param/decoder.0.W"})
    refused(path, r"missing \['param/decoder.0.W'\]")
    write_npz(path, {**arrays, "param/extra": np.zeros(2)})
    refused(path, r"unexpected \['param/extra'\]")
    # a consistent file (header redone, digest recomputed) that lacks a parameter of the model
    header = header_of(arrays)
    del header["arrays"]["param/decoder.0.W"]
    body = {k: v for k, v in arrays.items() if k != "param/decoder.0.W"}
    write_npz(path, with_header(body, header, redigest=True))
    refused(path, r"do not match a Autoencoder with this config: missing \['decoder.0.W'\]")


def test_wrong_shapes(saved):
    _, path = saved
    arrays = read_npz(path)
    write_npz(path, {**arrays, "param/encoder.0.W": np.zeros((6, 4))})
    refused(path, r"'param/encoder.0.W' has shape \(6, 4\).*header says \(6, 5\)")
    # forged consistently: header and digest match the new shape, the config does not
    header = header_of(arrays)
    header["arrays"]["param/encoder.0.W"]["shape"] = [6, 4]
    write_npz(path, with_header({**arrays, "param/encoder.0.W": np.zeros((6, 4))}, header, redigest=True))
    refused(path, r"parameter 'encoder.0.W' has shape \(6, 4\).*needs \(6, 5\)")


def test_wrong_dtype(saved):
    _, path = saved
    arrays = read_npz(path)
    W = arrays["param/encoder.0.W"].astype(np.float32)
    header = header_of(arrays)
    header["arrays"]["param/encoder.0.W"]["dtype"] = W.dtype.str
    write_npz(path, with_header({**arrays, "param/encoder.0.W": W}, header, redigest=True))
    refused(path, r"'encoder.0.W' has shape \(6, 5\) float32.*needs \(6, 5\) float64")


def test_future_format_version(saved):
    _, path = saved
    arrays = read_npz(path)
    header = header_of(arrays)
    header["format_version"] = io.FORMAT_VERSION + 1
    write_npz(path, with_header(arrays, header, redigest=True))
    refused(path, "format version 2.*reads versions up to 1: upgrade npae")


@pytest.mark.parametrize("edit", ["config", "config_shape", "weights", "class_forged", "not_json",
                                  "not_uint8",
                                  "no_header", "wrong_format", "rng_forged"])
def test_tampered_header_or_data(saved, edit):
    _, path = saved
    arrays = read_npz(path)
    header = header_of(arrays)
    if edit == "config":  # edited by hand, digest not updated
        header["config"]["activation"] = "tanh"
        arrays, match = with_header(arrays, header, redigest=False), "digest mismatch"
    elif edit == "config_shape":  # a config that no longer fits the arrays: refused before reading them
        header["config"]["latent_dim"] = 3
        arrays = with_header(arrays, header, redigest=False)
        match = (r"parameter 'encoder.1.W' has shape \(5, 2\) float64; a Autoencoder with this config "
                 r"needs \(5, 3\)")
    elif edit == "weights":
        arrays["param/decoder.0.b"] = arrays["param/decoder.0.b"] + 1.0
        match = "digest mismatch"
    elif edit == "class_forged":
        header["class"], header["module"] = "os.system", "os"
        arrays, match = with_header(arrays, header, redigest=True), "unknown model class 'os.system'"
    elif edit == "not_json":
        arrays[io.HEADER_KEY] = np.frombuffer(b"{not json\xff", dtype=np.uint8)
        match = "header is not valid JSON"
    elif edit == "not_uint8":
        arrays[io.HEADER_KEY] = np.arange(3.0)
        match = "header must be a 1-D uint8 array"
    elif edit == "no_header":
        del arrays[io.HEADER_KEY]
        match = "no '__header__' entry"
    elif edit == "wrong_format":
        header["format"] = "something-else"
        arrays, match = with_header(arrays, header, redigest=True), "does not describe an 'npae-model'"
    else:
        header["rng_state"] = {"bit_generator": "PCG64", "state": "nonsense"}
        arrays, match = with_header(arrays, header, redigest=True), "bad generator state"
    write_npz(path, arrays)
    refused(path, match)


def test_resume_and_load_refuse_the_wrong_kind_of_file(saved, tmp_path):
    model, path = saved
    X = np.random.default_rng(0).random((10, 6))
    with pytest.raises(ModelFileError, match="a model file, not a checkpoint"):
        small_ae(seed=3).fit(X, epochs=1, progress=False, resume=path)
    with pytest.raises(ModelFileError, match=r"config differs .*\['latent_dim'\]"):
        small_ae(latent_dim=3).fit(X, epochs=1, progress=False, resume=path)


# --------------------------------------------------------------------------------------------------
# authenticity: HMAC-SHA256 with a key (the sha256 digest alone detects corruption, not tampering)
# --------------------------------------------------------------------------------------------------
def test_signed_file_loads_only_with_its_key(tmp_path):
    model = small_ae(seed=5)
    path = tmp_path / "signed.npz"
    model.save(path, key=b"secret")
    header = header_of(read_npz(path))
    assert len(header["hmac_sha256"]) == 64 and len(header["sha256"]) == 64
    loaded = npae.load(path, key=b"secret")
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p)
    npae.load(path, key="secret")  # a str key is its UTF-8 bytes
    refused(path, "signature \\(hmac_sha256\\) does not match this key", key=b"other")
    refused(path, "is signed \\(hmac_sha256\\): pass key=")


def test_a_forger_without_the_key_cannot_make_a_signed_file(tmp_path):
    """Editing the weights and recomputing sha256 fools a reader without a key (that is all an
    unkeyed digest can do); with the key, the HMAC catches it, and stripping the HMAC to pass the
    file off as unsigned is refused too."""
    path = tmp_path / "signed.npz"
    small_ae(seed=5).save(path, key=b"secret")
    arrays = read_npz(path)
    header = header_of(arrays)
    arrays["param/decoder.0.b"] = arrays["param/decoder.0.b"] + 1.0
    write_npz(path, with_header(arrays, header, redigest=True))
    refused(path, "signature \\(hmac_sha256\\) does not match", key=b"secret")
    del header["hmac_sha256"]
    write_npz(path, with_header(arrays, header, redigest=True))
    npae.load(path)  # unsigned and self-consistent: a reader without a key cannot tell
    refused(path, "is not signed, so where it came from cannot be verified", key=b"secret")


def test_the_key_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(io.KEY_ENV, "from-env")
    path = tmp_path / "m.npz"
    small_ae().save(path)
    npae.load(path)
    npae.load(path, key="from-env")
    refused(path, "does not match this key", key="another")
    monkeypatch.delenv(io.KEY_ENV)
    refused(path, "is signed")
    # checkpoints are signed and verified the same way
    monkeypatch.setenv(io.KEY_ENV, "from-env")
    X = np.random.default_rng(0).random((16, 6))
    small_ae().fit(X, epochs=2, batch_size=8, progress=False, checkpoint=tmp_path / "c.npz")
    small_ae().fit(X, epochs=3, batch_size=8, progress=False, resume=tmp_path / "c.npz")
    monkeypatch.setenv(io.KEY_ENV, "another")
    with pytest.raises(ModelFileError, match="does not match this key"):
        small_ae().fit(X, epochs=3, batch_size=8, progress=False, resume=tmp_path / "c.npz")


def test_bad_keys(tmp_path):
    with pytest.raises(npae.InputError, match="key must not be empty"):
        small_ae().save(tmp_path / "m.npz", key=b"")
    with pytest.raises(TypeError, match="key must be bytes or a str"):
        small_ae().save(tmp_path / "m.npz", key=123)
    assert not (tmp_path / "m.npz").exists()


# --------------------------------------------------------------------------------------------------
# a file stores finite numbers only
# --------------------------------------------------------------------------------------------------
def test_save_refuses_non_finite_parameters(saved):
    model, path = saved
    before = digest_of(path)
    model.params["decoder.0.W"][1, 0] = np.inf
    model.params["decoder.0.W"][0, 0] = np.nan
    with pytest.raises(ModelFileError, match=r"cannot save: array 'param/decoder.0.W' holds 2 NaN/inf "
                                             r"entries of 10"):
        model.save(path)
    assert digest_of(path) == before  # the previous file is intact


def test_load_refuses_non_finite_arrays(saved):
    _, path = saved
    arrays = read_npz(path)
    arrays["param/encoder.0.b"] = np.full(5, np.nan)
    write_npz(path, with_header(arrays, header_of(arrays), redigest=True))
    refused(path, "array 'param/encoder.0.b' holds 5 NaN/inf entries")


def test_save_checks_the_declared_shapes(tmp_path):
    """A subclass whose arrays no longer follow from its config (here: a wider code layer built
    behind the config's back) cannot be saved, since load would refuse the file."""
    class Wider(npae.Autoencoder):
        def _build(self, n_features):
            self.latent_dim += 1
            super()._build(n_features)
            self.latent_dim -= 1

    with pytest.raises(TypeError, match=r"cannot save a Wider: Wider._declared_shapes\(config\) "
                                        r"disagrees with its arrays"):
        Wider(6, hidden=(5,), latent_dim=2).save(tmp_path / "w.npz")
    assert not (tmp_path / "w.npz").exists()
