"""Classifier on an encoder: gradient checks (frozen and trainable) over drawn shapes, a frozen
encoder left bit-identical by fit, the linear probe on digits, model files, bad input."""
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae.gradcheck import check_model

from conftest import activation_inputs_off_kinks

dims = st.integers(1, 4)
seeds = st.integers(0, 2**31 - 1)


@settings(deadline=None, max_examples=10)
@given(B=dims, D=dims, Z=dims, H=st.sampled_from([(), (3,), (4, 2)]), K=st.integers(2, 5),
       seed=seeds, freeze=st.booleans(),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus", "relu", "leaky_relu"]))
def test_classifier_gradcheck(B, D, Z, H, K, seed, freeze, activation):
    """Checks [SOFTMAX-1], [SOFTMAX-2], [SOFTMAX-3] against central differences, frozen and trainable."""
    rng = np.random.default_rng(seed)
    ae = npae.Autoencoder(D, (3,), Z, activation, code_activation="tanh", seed=seed)
    model = npae.Classifier(ae, K, hidden=H, freeze_encoder=freeze, activation=activation, seed=seed)
    x, y = rng.uniform(size=(B, D)), rng.integers(0, K, size=B)
    model.loss_and_grads(x, y)
    assume(activation_inputs_off_kinks(model))
    report = check_model(model, x, y=y)
    report.assert_ok()
    names = [name for name, _ in report.rows]
    assert any(n.startswith("encoder.") for n in names) != freeze
    assert all(n.startswith(("encoder.", "head.")) for n in names)


@pytest.fixture(scope="module")
def digits():
    X, y = npae.datasets.load_digits()
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm[:1300]], y[perm[:1300]], X[perm[1300:]], y[perm[1300:]]


@pytest.fixture(scope="module")
def autoencoder(digits):
    Xtr = digits[0]
    ae = npae.Autoencoder(64, (), 32, code_activation="sigmoid", seed=0)
    ae.fit(Xtr, epochs=20, lr=1e-2, progress=False)
    return ae


def test_frozen_encoder_is_bit_identical_after_fit(digits, autoencoder):
    """Checks [SOFTMAX-3] (frozen: the encoder gets no gradient)."""
    Xtr, ytr, Xte, yte = digits
    source = {k: v.copy() for k, v in autoencoder.encoder.params.items()}
    clf = npae.Classifier(autoencoder, 10, hidden=(16,), freeze_encoder=True)
    mine = {k: v.copy() for k, v in clf.encoder.params.items()}
    assert not any(k.startswith("encoder.") for k in clf.params)
    history = clf.fit(Xtr, ytr, epochs=5, lr=1e-2, progress=False, validation_data=(Xte, yte)).history_
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    for k in mine:
        assert np.array_equal(clf.encoder.params[k], mine[k])
        assert np.array_equal(autoencoder.encoder.params[k], source[k])
    assert not any("encoder" in key for key in clf.optimizer_.state_dict())


def test_trainable_encoder_changes_its_copy_only(digits, autoencoder):
    Xtr, ytr = digits[0][:300], digits[1][:300]
    source = {k: v.copy() for k, v in autoencoder.encoder.params.items()}
    clf = npae.Classifier(autoencoder, 10, freeze_encoder=False)
    assert list(clf.params)[:2] == ["encoder.0.W", "encoder.0.b"]
    clf.fit(Xtr, ytr, epochs=2, lr=1e-2, progress=False)
    assert not np.array_equal(clf.encoder.params["encoder.0.W"], source["encoder.0.W"])
    for k in source:
        assert np.array_equal(autoencoder.encoder.params[k], source[k])


def test_linear_probe_on_codes_learns_digits(digits, autoencoder):
    Xtr, ytr, Xte, yte = digits
    probe = npae.Classifier(autoencoder, 10, hidden=())
    probe.fit(Xtr, ytr, epochs=30, batch_size=32, lr=1e-2, progress=False)
    assert probe.score(Xte, yte) > 0.9
    proba = probe.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probe.predict(Xte), proba.argmax(axis=1))
    p_true = proba[np.arange(len(yte)), yte]  # the probability given to each true class
    assert probe.evaluate(Xte, yte)["loss"] == pytest.approx(-np.mean(np.log(p_true)))


def test_accepts_a_sequential_and_keeps_dtype():
    enc = npae.Sequential([npae.Dense(5, 3, rng=0), npae.Tanh()])
    clf = npae.Classifier(enc, 3, dtype="float32")
    assert clf.input_dim == 5 and clf.code_dim == 3
    assert all(p.dtype == np.float32 for p in clf.params.values())
    assert clf.encoder.params["encoder.0.W"].dtype == np.float32
    assert enc.params["0.W"].dtype == np.float64  # the source is untouched


@pytest.mark.parametrize("freeze", [True, False])
def test_model_file_round_trip(tmp_path, freeze):
    X, y = np.random.default_rng(0).uniform(size=(30, 6)), np.arange(30) % 3
    ae = npae.SparseAutoencoder(6, (5,), 4, "leaky_relu", slope=0.2)
    clf = npae.Classifier(ae, 3, hidden=(4,), freeze_encoder=freeze)
    clf.fit(X, y, epochs=2, progress=False)
    path = os.path.join(tmp_path, "clf.npz")
    clf.save(path)
    again = npae.load(path)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.config == clf.config


def test_bad_input():
    ae = npae.Autoencoder(4, (), 2)
    clf = npae.Classifier(ae, 3)
    X = np.random.default_rng(0).uniform(size=(5, 4))
    with pytest.raises(ValueError, match=r"y must lie in 0\.\.2"):
        clf.fit(X, [0, 1, 2, 3, 0], progress=False)
    with pytest.raises(ValueError, match=r"y must lie in 0\.\.2"):
        clf.loss_and_grads(X, [0, 1, -1, 0, 0])
    with pytest.raises(ValueError, match="labels but there are 5 samples"):
        clf.fit(X, [0, 1], progress=False)
    with pytest.raises(ValueError, match="whole-number"):
        clf.score(X, [0.5, 1, 2, 0, 0])
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="n_classes"):
        npae.Classifier(ae, 1)
    with pytest.raises(TypeError, match="encoder must be"):
        npae.Classifier(np.eye(3), 3)
    with pytest.raises(TypeError, match="freeze_encoder"):
        npae.Classifier(ae, 3, freeze_encoder="yes")
    with pytest.raises(ValueError, match="needs labels"):
        clf.fit(X, [0, 1, 2, 0, 1], validation_data=X, progress=False)


def test_predict_proba_is_the_softmax_of_the_logits():
    """Checks [SOFTMAX-4] for the Classifier and the M2 model's q(y|x): predict_proba is
    exp(s) / Σ exp(s) of decision_function, written out, and stays finite for large logits."""
    rng = np.random.default_rng(0)
    X, y = rng.random((12, 6)), np.arange(12) % 3
    ae = npae.Autoencoder(6, hidden=(4,), latent_dim=2, seed=0).fit(X, epochs=1, progress=False)
    clf = npae.Classifier(ae, 3, seed=0).fit(X, y, epochs=2, progress=False)
    m2 = npae.SemiSupervisedVAE(6, 3, hidden=(4,), latent_dim=2, seed=0)
    m2.fit(X, np.where(y == 0, y, -1), epochs=1, progress=False)
    for model in (clf, m2):
        s = model.decision_function(X)
        naive = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(model.predict_proba(X), naive, rtol=1e-12)
    for name in ("W", "b"):
        clf.head.dense_layers[-1].params[name] *= 1e4
    assert np.isfinite(clf.predict_proba(X)).all()
