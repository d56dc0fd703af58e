"""Every public entry point refuses bad input with a clear error (naming the argument, what it got and
what it expected), changes nothing when it does, and coerces good input as documented."""
import hashlib
import re

import numpy as np
import pytest

import npae
from npae.validation import check_array

RNG = np.random.default_rng(0)
X6 = RNG.random((12, 6))
Y3 = RNG.integers(0, 3, size=12)


def _models():
    """(id, factory, needs_labels): every model class present in this checkout."""
    out = [("ae", lambda: npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0), False)]
    try:
        from npae.models.vae import VAE, ConditionalVAE
        out += [("vae", lambda: VAE(6, hidden=(5,), latent_dim=2, seed=0), False),
                ("cvae", lambda: ConditionalVAE(6, 3, hidden=(5,), latent_dim=2, seed=0), True)]
    except ImportError:
        pass
    try:
        from npae.models.variants import ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder
        out += [("dae", lambda: DenoisingAutoencoder(6, hidden=(5,), latent_dim=2, seed=0), False),
                ("sae", lambda: SparseAutoencoder(6, hidden=(5,), latent_dim=2, seed=0), False),
                ("cae", lambda: ContractiveAutoencoder(6, hidden=(), latent_dim=2, code_activation="sigmoid",
                                                       seed=0), False)]
    except ImportError:
        pass
    try:
        from npae.models.classifier import Classifier
        out.append(("classifier", lambda: Classifier(
            npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0), 3, seed=0), True))
    except ImportError:
        pass
    return out


MODELS = _models()


def entry_points(model, labels):
    """name -> callable taking the data argument, for every public method that takes data."""
    fit = (lambda X: model.fit(X, Y3[:len(X)] if len(np.shape(X)) else Y3, epochs=1,
                               progress=False)) if labels else \
        (lambda X: model.fit(X, epochs=1, progress=False))
    calls = {"fit": fit}
    y = lambda X: Y3[:max(1, len(np.shape(X)) and len(X))]  # noqa: E731
    if labels:
        calls["loss_and_grads"] = lambda X: model.loss_and_grads(X, y(X))
    else:
        calls["loss_and_grads"] = model.loss_and_grads
    for name in ("encode", "transform", "reconstruct", "reconstruction_error", "predict",
                 "predict_proba", "neg_elbo"):
        method = getattr(model, name, None)
        if method is None:
            continue
        takes_y = labels and name not in ("predict", "predict_proba")
        calls[name] = (lambda m: (lambda X: m(X, y(X))))(method) if takes_y else method
    return calls


BAD_X = [
    ("none", None, TypeError, "must be an array of numbers, got NoneType"),
    ("string", "pixels", TypeError, "must be an array of numbers, got str"),
    ("strings", [["a"] * 6], TypeError, "must hold real numbers, got an array of dtype <U1"),
    ("objects", np.array([[object()] * 6]), TypeError, "must hold real numbers; an entry is not one"),
    ("complex", np.ones((2, 6), dtype=complex), TypeError, "Complex data not supported"),
    ("1-D", np.ones(6), ValueError, r"must be 2-D .*got a 1-D array of shape \(6,\)"),
    ("3-D", np.ones((2, 2, 6)), ValueError, "got a 3-D array"),
    ("features", np.ones((2, 5)) / 2, ValueError,
     r"has 5 features, but \w+ is expecting 6 features as input"),
    ("empty", np.ones((0, 6)), ValueError, r"is empty: 0 sample\(s\) \(shape=\(0, 6\)\)"),
    ("nan", np.where(np.eye(2, 6) > 0, np.nan, 0.5), ValueError,
     r"2 NaN or inf value\(s\), first at index \(0, 0\)"),
    ("inf", np.full((2, 6), np.inf), ValueError, "12 NaN or inf"),
]


@pytest.mark.parametrize("model_id,factory,labels", MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("case", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_data_at_every_entry_point(model_id, factory, labels, case):
    _, X, exc, match = case
    model = factory()
    before = {k: p.copy() for k, p in model.params.items()}
    for name, call in entry_points(model, labels).items():
        with pytest.raises(exc, match=match) as info:
            call(X)
        assert re.match(r"^(x|X) ", str(info.value)), (name, str(info.value))  # names the argument
    for key, p in model.params.items():
        np.testing.assert_array_equal(p, before[key])


@pytest.mark.parametrize("model_id,factory,labels", MODELS, ids=[m[0] for m in MODELS])
def test_unit_interval_and_float32_range(model_id, factory, labels):
    model = factory()
    if getattr(model, "needs_unit_targets", False):
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*got values in \[-0.5, 0.5\]"):
            entry_points(model, labels)["fit"](np.full((12, 6), 0.5) - np.eye(12, 6))
    X32 = np.full((2, 6), 1e39)
    m32 = type(model)._from_config(dict(model.config, dtype="float32"))
    with pytest.raises(ValueError, match="magnitude up to 1e\\+39, beyond the range of float32"):
        entry_points(m32, labels)["encode" if "encode" in entry_points(m32, labels) else "predict"](X32)


def test_documented_coercion():
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    for X in ([[0, 1, 1, 0, 1, 0]], np.ones((2, 6), dtype=np.int8), np.ones((2, 6), dtype=bool),
              np.ones((2, 6), dtype=np.float32), np.asfortranarray(np.ones((3, 6)))):
        Z = model.encode(X)
        assert Z.dtype == np.float64 and Z.shape == (np.shape(X)[0], 2)
    m32 = npae.Autoencoder(6, hidden=(5,), latent_dim=2, dtype="float32", seed=0)
    assert m32.encode(np.ones((2, 6))).dtype == np.float32  # float64 in, float32 model: cast down
    arr = check_array([[1, 2]], "X")
    assert arr.dtype == np.float64 and arr.flags.c_contiguous


@pytest.mark.parametrize("model_id,factory,labels", MODELS, ids=[m[0] for m in MODELS])
def test_bad_codes_and_samples(model_id, factory, labels):
    model = factory()
    if hasattr(model, "decode"):
        decode = (lambda Z: model.decode(Z, Y3[:len(Z)])) if labels else model.decode
        with pytest.raises(ValueError, match=r"^Z has 3 features, but .* is expecting 2"):
            decode(np.zeros((2, 3)))
        with pytest.raises(ValueError, match="^Z contains 1 NaN"):
            decode(np.array([[0.0, np.nan]]))
    if hasattr(model, "sample"):
        with pytest.raises(ValueError, match="^n must be >= 1, got 0"):
            model.sample(0)
        with pytest.raises(TypeError, match="^n must be an integer, got 2.5"):
            model.sample(2.5)
        with pytest.raises(TypeError, match="^seed must be an int"):
            model.sample(2, seed="a")


@pytest.mark.parametrize("model_id,factory,labels", [m for m in MODELS if m[2]],
                         ids=[m[0] for m in MODELS if m[2]])
@pytest.mark.parametrize("y,exc,match", [
    (np.full(12, 3), ValueError, r"y must lie in 0..2 \(n_classes=3\), got values in \[3, 3\]"),
    (np.full(12, -1), ValueError, r"y must lie in 0..2"),
    (np.zeros(5, dtype=int), ValueError, "y has 5 labels but there are 12 samples"),
    (np.full(12, 0.5), ValueError, "y must hold whole-number class labels"),
    (np.array(["a"] * 12), TypeError, "y must hold integer class labels"),
    (np.zeros((12, 1), dtype=int), ValueError, r"y must be 1-D"),
    (None, (TypeError, ValueError), "label|y"),
])
def test_bad_labels(model_id, factory, labels, y, exc, match):
    model = factory()
    with pytest.raises(exc, match=match):
        model.fit(X6, y, epochs=1, progress=False)
    if y is not None:
        with pytest.raises(exc, match=match):
            model.loss_and_grads(X6, y)


# --------------------------------------------------------------------------------------------------
# fit options (hyperparameters, paths): clear errors, nothing trained, existing files untouched
# --------------------------------------------------------------------------------------------------
BAD_FIT = [
    (dict(epochs=0), ValueError, "^epochs must be >= 1, got 0"),
    (dict(epochs=1.5), TypeError, "^epochs must be an integer, got 1.5"),
    (dict(epochs=True), TypeError, "^epochs must be an integer, got True"),
    (dict(batch_size=0), ValueError, "^batch_size must be >= 1"),
    (dict(batch_size="64"), TypeError, "^batch_size must be an integer"),
    (dict(lr=0.0), ValueError, "^lr must be > 0"),
    (dict(lr=float("nan")), ValueError, "^lr must be finite"),
    (dict(lr=-1e-3), ValueError, "^lr must be > 0"),
    (dict(optimizer="nope"), ValueError, "^unknown optimizer 'nope'; expected one of 'sgd'"),
    (dict(optimizer=3), TypeError, "^optimizer must be a name or an npae.training.optim.Optimizer"),
    (dict(progress="yes"), TypeError, "^progress must be True or False"),
    (dict(patience=2), ValueError, "needs validation_data"),
    (dict(patience=0, validation_data=X6), ValueError, "^patience must be >= 1"),
    (dict(validation_data=np.ones((3, 5)) / 2), ValueError, "^validation_data: X has 5 features"),
    (dict(validation_data=np.full((3, 6), np.nan)), ValueError, "^validation_data: X contains 18 NaN"),
    (dict(checkpoint_every=0), ValueError, "^checkpoint_every must be >= 1"),
    (dict(clip_norm=0.0), ValueError, "^clip_norm must be > 0"),
    (dict(clip_norm=-1.0), ValueError, "^clip_norm must be > 0"),
    (dict(clip_norm=float("inf")), ValueError, "^clip_norm must be finite"),
    (dict(clip_norm="1"), TypeError, "^clip_norm must be a real number"),
    (dict(X=np.full((12, 6), np.nan)), ValueError, "^X contains 72 NaN"),
]


@pytest.fixture
def existing(tmp_path):
    """A model file already on disk, and its digest."""
    path = tmp_path / "run.npz"
    npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=9).save(path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kwargs,exc,match", BAD_FIT, ids=[str(c[0])[:40] for c in BAD_FIT])
def test_bad_fit_options_change_nothing(existing, kwargs, exc, match):
    path, digest = existing
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    before = {k: p.copy() for k, p in model.params.items()}
    state = model.rng.bit_generator.state
    kwargs = dict(kwargs)
    X = kwargs.pop("X", X6)
    with pytest.raises(exc, match=match):
        model.fit(X, **{"epochs": 1, "progress": False, "checkpoint": path, **kwargs})
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert model.rng.bit_generator.state == state
    for key, p in model.params.items():
        np.testing.assert_array_equal(p, before[key])


def test_bad_paths(existing, tmp_path):
    path, digest = existing
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    fit = lambda **kw: model.fit(X6, epochs=1, progress=False, **kw)  # noqa: E731
    with pytest.raises(FileNotFoundError, match="^checkpoint: directory .* does not exist"):
        fit(checkpoint=tmp_path / "missing" / "c.npz")
    with pytest.raises(ValueError, match="^checkpoint .* is a directory"):
        fit(checkpoint=tmp_path)
    with pytest.raises(TypeError, match="^checkpoint must be a file path"):
        fit(checkpoint=5)
    with pytest.raises(FileNotFoundError, match="^resume: no file at"):
        fit(resume=tmp_path / "nope.npz")
    with pytest.raises(ValueError, match=r"has 1 epochs done; epochs=1 .*|a model file, not a checkpoint"):
        fit(resume=path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_constructor_hyperparameters():
    bad = [
        (dict(input_dim=0), ValueError, "^input_dim must be >= 1"),
        (dict(latent_dim=-1), ValueError, "^latent_dim must be >= 1"),
        (dict(hidden=(4, 0)), ValueError, "^each entry of hidden must be >= 1"),
        (dict(hidden="wide"), TypeError, "hidden|each entry"),
        (dict(activation="swish"), ValueError, "^unknown activation 'swish'"),
        (dict(loss="bce", output="identity"), ValueError, "^loss='bce' needs output='sigmoid'"),
        (dict(dtype="int32"), ValueError, "^dtype must be 'float32' or 'float64'"),
        (dict(seed="a"), TypeError, "^seed must be an int"),
        (dict(slope=-0.1), ValueError, "^slope must be >= 0"),
    ]
    for kwargs, exc, match in bad:
        with pytest.raises(exc, match=match):
            npae.Autoencoder(**{"input_dim": 6, **kwargs}).params


def test_cli_reports_bad_values_in_one_line(tmp_path, capsys):
    cli = pytest.importorskip("npae.app.cli")
    status = cli.main(["train", "ae", "--epochs", "0", "--no-progress", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status not in (0, None)
    assert "epochs must be >= 1" in err and "Traceback" not in err
