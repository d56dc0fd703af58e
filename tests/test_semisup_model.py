"""npae.SemiSupervisedVAE, the M2 model as a class: every parameter's gradient against central
differences (float64) for labelled, unlabelled and mixed batches over drawn sizes, activations,
likelihoods and α; the class equals the hand-written template of test_semisup.py; evaluation is
forward only; the two backends train to the same parameters; save, load and resume; the checks of
its inputs; and that it learns from a few labels."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import npae
from npae.fast import backends
from npae.models import semisup as S
from npae.datasets import load_digits
from npae.gradcheck import check_model, rel_error
from npae.validation import InputTypeError
from test_semisup import _init_m2, _m2_loss_and_grads

fused_only = pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")

KINDS = ("labelled", "unlabelled", "mixed")
DECODERS = [("bernoulli", "fixed"), ("gaussian", "fixed"), ("gaussian", "shared"),
            ("gaussian", "per_feature")]


def _labels(rng, kind, B, K):
    if kind == "labelled":
        return rng.integers(0, K, B)
    if kind == "unlabelled":
        return np.full(B, S.UNLABELLED)
    y = rng.integers(0, K, B)
    y[rng.permutation(B)[:max(1, B // 2)]] = S.UNLABELLED  # at least one of each kind (B >= 2)
    if np.all(y < 0):
        y[0] = 0
    return y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    rng = np.random.default_rng(0)
    y_partial = np.full(y.shape, S.UNLABELLED)
    keep = np.concatenate([rng.choice(np.flatnonzero(y[:1200] == c), 12, replace=False) for c in range(10)])
    y_partial[keep] = y[keep]
    return X, y, y_partial


# ------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("kind", KINDS)
@settings(deadline=None, max_examples=6)
@given(B=st.integers(2, 5), K=st.integers(2, 4), D=st.integers(2, 5), Z=st.integers(1, 3),
       hidden=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       c_hidden=st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=0, max_size=2)),
       activation=st.sampled_from(["softplus", "tanh", "sigmoid"]),
       decoder=st.sampled_from(DECODERS),
       alpha=st.one_of(st.just(0.0), st.floats(1e-2, 50.0)), seed=st.integers(0, 2**31 - 1))
def test_every_parameter_against_central_differences(kind, B, K, D, Z, hidden, c_hidden, activation,
                                                     decoder, alpha, seed):
    """Checks [M2-15] (each row's likelihood weighted by its share) in the whole step against central
    differences.
    Also [M2-9] (α drawn, 0 included), [M2-14] and [M2-16].
    """
    rng = np.random.default_rng(seed)
    likelihood, variance = decoder
    model = npae.SemiSupervisedVAE(D, K, hidden=tuple(hidden), latent_dim=Z,
                                   classifier_hidden=None if c_hidden is None else tuple(c_hidden),
                                   activation=activation, likelihood=likelihood, variance=variance,
                                   alpha=alpha, seed=seed % 1000)
    if model.decoder_logvar is not None:  # away from 0, where its gradient is tested too
        logvar = model.decoder_logvar.params["logvar"]
        logvar[...] = rng.uniform(-1.0, 1.0, logvar.shape)
    x = rng.uniform(0.05, 0.95, (B, D)) if likelihood == "bernoulli" else rng.standard_normal((B, D))
    y = _labels(rng, kind, B, K)
    eps = rng.standard_normal((K, B, Z))
    check_model(model, x, y=y, eps=eps).assert_ok()
    loss, grads = model.loss_and_grads(x, y, eps=eps)
    parts = ("labelled", "unlabelled", "classification")
    assert loss == pytest.approx(sum(model.last_terms[k] for k in parts), rel=1e-12)
    classifier = [g for name, g in grads.items() if name.startswith("classifier.")]
    if kind == "labelled" and alpha == 0.0:  # without α labelled rows do not train q(y|x) [M2-9]
        assert all(np.all(g == 0.0) for g in classifier)
    else:
        assert any(np.any(g != 0.0) for g in classifier)


def test_a_wrong_backward_fails_the_check(monkeypatch):
    """Test the tester: a step whose KL weights ignore the per-row shares [M2-16] is caught."""
    rng = np.random.default_rng(3)
    model = npae.SemiSupervisedVAE(4, 3, hidden=(3,), latent_dim=2, alpha=1.0)
    x, y, eps = rng.uniform(0.1, 0.9, (4, 4)), np.array([0, -1, 2, -1]), rng.standard_normal((3, 4, 2))
    assert check_model(model, x, y=y, eps=eps).ok
    good = S.latent.gaussian_kl_backward
    monkeypatch.setattr(S.latent, "gaussian_kl_backward",
                        lambda dkl, cache: good(np.full_like(dkl, dkl.mean()), cache))
    assert not check_model(model, x, y=y, eps=eps).ok


@pytest.mark.parametrize("kind", KINDS)
def test_the_class_equals_the_hand_written_template(kind):
    """The template of test_semisup.py runs all K classes for every row with tanh layers and
    separate mu / logvar heads; with the same weights and noise the class gives the same J and the
    same gradients (its labelled rows skip the classes the objective does not read)."""
    rng = np.random.default_rng(11)
    B, D, K, H, Z, alpha = 5, 4, 3, 3, 2, 2.5
    p = _init_m2(rng, D, K, H, Z)
    x = rng.uniform(0.05, 0.95, (B, D))
    y = _labels(rng, kind, B, K)
    eps_template = rng.standard_normal((K * B, Z))  # row k·B + i: example i with class k
    J_template, g_template = _m2_loss_and_grads(p, x, y, eps_template, alpha)

    model = npae.SemiSupervisedVAE(D, K, hidden=(H,), latent_dim=Z, activation="tanh", alpha=alpha)
    P = model.params
    pairs = {"classifier.0": "c1", "classifier.1": "c2", "encoder.0": "e1", "decoder.0": "d1",
             "decoder.1": "d2"}
    for ours, theirs in pairs.items():
        P[ours + ".W"][...], P[ours + ".b"][...] = p[theirs + ".W"], p[theirs + ".b"]
    P["encoder.1.W"][...] = np.concatenate([p["mu.W"], p["lv.W"]], axis=1)
    P["encoder.1.b"][...] = np.concatenate([p["mu.b"], p["lv.b"]])
    J, g = model.loss_and_grads(x, y, eps=eps_template.reshape(K, B, Z))
    assert J == pytest.approx(J_template, rel=1e-12)
    for ours, theirs in pairs.items():
        for key in ("W", "b"):
            assert rel_error(g[f"{ours}.{key}"], g_template[f"{theirs}.{key}"]) < 1e-10, ours
    heads = np.concatenate([g_template["mu.W"], g_template["lv.W"]], axis=1)
    assert rel_error(g["encoder.1.W"], heads) < 1e-10
    assert rel_error(g["encoder.1.b"], np.concatenate([g_template["mu.b"], g_template["lv.b"]])) < 1e-10


def test_the_rows_of_a_step():
    """[M2-14]: a labelled row once with its class, unlabelled rows once per class, class-major."""
    model = npae.SemiSupervisedVAE(2, 3, hidden=(2,), latent_dim=1)
    x = np.arange(8.0).reshape(4, 2) / 10
    y = np.array([2, -1, 0, -1])
    x_rows, c_rows, rows_i, rows_k = model._pair_rows(x, y)
    np.testing.assert_array_equal(rows_i, [0, 2, 1, 3, 1, 3, 1, 3])
    np.testing.assert_array_equal(rows_k, [2, 0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(x_rows, x[rows_i])
    np.testing.assert_array_equal(c_rows.argmax(axis=1), rows_k)


# --------------------------------------------------------------------- evaluation is forward only
def test_evaluation_is_the_step_forward_only(digits):
    X, _, y_partial = digits
    model = npae.SemiSupervisedVAE(n_classes=10, hidden=(16,), latent_dim=3, seed=1)
    model.fit(X[:300], y_partial[:300], epochs=1, progress=False)
    x, y = X[:40], y_partial[:40].copy()
    y[:5] = np.arange(5)  # a mixed batch
    rng_state = model.rng.bit_generator.state
    grads, count = model.flat_params.grad_data.copy(), model.clamp_count_
    terms = model.evaluate(x, y, batch_size=64)
    model.score(X[:50], digits[1][:50]), model.predict_proba(X[:50]), model.transform(X[:50])
    model.sample(5), model.reconstruct(X[:5])
    assert model.rng.bit_generator.state == rng_state
    np.testing.assert_array_equal(model.flat_params.grad_data, grads)
    assert model.clamp_count_ == count
    assert terms == model.evaluate(x, y, batch_size=64)  # the evaluation stream, afresh each call
    eps = model.evaluation_rng().standard_normal((10, 40, 3))
    loss, _ = model.loss_and_grads(x, y, eps=eps)
    assert terms["loss"] == pytest.approx(loss, rel=1e-12)


def test_validation_and_probing_never_change_what_is_learned(digits):
    X, y, y_partial = digits
    make = lambda: npae.SemiSupervisedVAE(n_classes=10, hidden=(16,), latent_dim=3, seed=2)  # noqa: E731
    plain = make().fit(X[:400], y_partial[:400], epochs=2, progress=False)
    watched = make().fit(X[:400], y_partial[:400], epochs=2, progress=False,
                         validation_data=(X[1500:], y[1500:]))
    assert "val_loss" in watched.history_ and "val_classification" in watched.history_
    for name, p in plain.params.items():
        assert p.tobytes() == watched.params[name].tobytes(), name


# --------------------------------------------------------------------------------- the backends
@fused_only
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_both_backends_train_to_the_same_parameters(digits, likelihood):
    X, _, y_partial = digits

    def train(name):
        with npae.backend(name):
            return npae.SemiSupervisedVAE(n_classes=10, hidden=(16,), latent_dim=3, activation="relu",
                                          likelihood=likelihood, variance="per_feature", seed=3).fit(
                X[:256], y_partial[:256], epochs=2, batch_size=32, progress=False)

    ref, fused = train("reference"), train("fused")
    for name, p in ref.params.items():
        np.testing.assert_allclose(fused.params[name], p, rtol=1e-10, atol=1e-10, err_msg=name)
    for key, values in ref.history_.items():
        np.testing.assert_allclose(fused.history_[key], values, rtol=1e-10, err_msg=key)


# ---------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("config", [
    dict(hidden=(8,), latent_dim=2),
    dict(hidden=(8, 4), latent_dim=3, classifier_hidden=(), likelihood="gaussian", variance="per_feature",
         alpha=3.0, dtype="float32"),
    dict(hidden=(6,), latent_dim=2, classifier_hidden=(5, 3), likelihood="gaussian", variance="shared"),
])
def test_save_load_and_the_declared_shapes(tmp_path, digits, config):
    X, y, y_partial = digits
    model = npae.SemiSupervisedVAE(n_classes=10, seed=4, **config).fit(X[:200], y_partial[:200], epochs=1,
                                                                       progress=False)
    declared = type(model)._declared_shapes(model.config)
    assert {k: (tuple(s), np.dtype(d)) for k, (s, d) in declared.items()} == \
        {k: (a.shape, a.dtype) for k, a in model._saved_arrays().items()}
    path = model.save(tmp_path / "m2.npz")
    loaded = npae.load(path)
    assert type(loaded) is npae.SemiSupervisedVAE and loaded.alpha_ == model.alpha_
    np.testing.assert_array_equal(loaded.predict_proba(X[1500:]), model.predict_proba(X[1500:]))
    assert loaded.evaluate(X[1500:], y[1500:]) == model.evaluate(X[1500:], y[1500:])


def test_resume_is_exact(tmp_path, digits):
    X, _, y_partial = digits
    make = lambda: npae.SemiSupervisedVAE(n_classes=10, hidden=(12,), latent_dim=2, seed=5)  # noqa: E731
    straight = make().fit(X[:300], y_partial[:300], epochs=3, batch_size=50, progress=False)
    path = tmp_path / "ckpt.npz"
    make().fit(X[:300], y_partial[:300], epochs=1, batch_size=50, progress=False, checkpoint=path)
    resumed = make().fit(X[:300], y_partial[:300], epochs=3, batch_size=50, progress=False, resume=path)
    for name, p in straight.params.items():
        assert p.tobytes() == resumed.params[name].tobytes(), name
    assert straight.history_ == resumed.history_


# ------------------------------------------------------------------------------------- the alpha
def test_alpha_paper_is_resolved_at_fit(digits):
    X, _, y_partial = digits
    model = npae.SemiSupervisedVAE(64, 10, hidden=(8,), latent_dim=2)
    assert model.alpha_ == pytest.approx(0.1)  # before fit: the rule for a fully labelled set
    model.fit(X[:600], y_partial[:600], epochs=1, progress=False)
    n_l = int(np.sum(y_partial[:600] >= 0))
    assert model.alpha_ == pytest.approx(S.paper_alpha(600, n_l)) == pytest.approx(0.1 * 600 / n_l)
    fixed = npae.SemiSupervisedVAE(n_classes=10, hidden=(8,), latent_dim=2, alpha=7.0)
    assert fixed.fit(X[:600], y_partial[:600], epochs=1, progress=False).alpha_ == 7.0
    # a warm start on other data keeps the network and takes that data's α
    model.set_params(warm_start=True)
    model.fit(X[:300], y_partial[:300], epochs=1, progress=False)
    assert model.alpha_ == pytest.approx(S.paper_alpha(300, int(np.sum(y_partial[:300] >= 0))))


# ------------------------------------------------------------------------------ checks of inputs
def test_inputs_are_checked(digits):
    X, y, y_partial = digits
    model = npae.SemiSupervisedVAE(n_classes=10, hidden=(8,), latent_dim=2)
    with pytest.raises(npae.InputError, match="needs y"):
        model.fit(X[:50], None, progress=False)
    with pytest.raises(npae.InputError, match="no labelled row"):
        model.fit(X[:50], np.full(50, -1), progress=False)
    for bad in (np.full(50, -2), np.full(50, 10)):
        with pytest.raises(npae.InputError, match=r"0\.\.9 for a labelled row or be -1"):
            model.fit(X[:50], bad, progress=False)
    with pytest.raises(npae.InputError, match="50 rows"):
        model.fit(X[:50], y[:40], progress=False)
    with pytest.raises(npae.InputError, match="whole-number"):
        model.fit(X[:50], y[:50] + 0.5, progress=False)
    with pytest.raises(InputTypeError):
        model.fit(X[:50], "labels", progress=False)
    with pytest.raises(npae.InputError, match="n_classes"):
        npae.SemiSupervisedVAE(hidden=(8,)).fit(X[:50], y[:50], progress=False)
    with pytest.raises(npae.InputError, match="alpha"):
        npae.SemiSupervisedVAE(n_classes=10, alpha="half").fit(X[:50], y[:50], progress=False)
    with pytest.raises(npae.InputError, match="alpha"):
        npae.SemiSupervisedVAE(n_classes=10, alpha=-1.0).fit(X[:50], y[:50], progress=False)
    with pytest.raises(npae.InputError, match=r"\[0, 1\]"):
        model.fit(X[:50] * 2, y[:50], progress=False)
    small = npae.SemiSupervisedVAE(3, 2, hidden=(2,), latent_dim=2)
    with pytest.raises(npae.InputError, match=r"eps must have shape \(n_classes, B, latent_dim\)"):
        small.loss_and_grads(np.full((4, 3), 0.5), np.array([0, 1, -1, -1]), eps=np.zeros((1, 4, 2)))
    with pytest.raises(npae.InputError, match=r"0\.\.9"):
        model.fit(X[:50], y_partial[:50], epochs=1, progress=False).score(X[:5], np.full(5, -1))


# ------------------------------------------------------------------------- the estimator's surface
def test_the_estimator_surface(digits):
    X, y, y_partial = digits
    model = npae.SemiSupervisedVAE(n_classes=10, hidden=(16,), latent_dim=3, seed=6)
    assert "params" not in vars(model)  # the constructor stores its arguments only
    assert model.get_params()["alpha"] == "paper"
    assert model.fit(X[:300], y_partial[:300], epochs=1, progress=False) is model
    assert set(model.history_) == {"loss", "labelled", "unlabelled", "classification"}
    proba = model.predict_proba(X[:20])
    assert proba.shape == (20, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X[:20]), proba.argmax(axis=1))
    assert model.score(X[:20], y[:20]) == np.mean(model.predict(X[:20]) == y[:20])
    Z_pred, Z_given = model.transform(X[:20]), model.transform(X[:20], y[:20])
    assert Z_pred.shape == (20, 3)
    np.testing.assert_array_equal(model.transform(X[:20], model.predict(X[:20])), Z_pred)
    mixed = y[:20].copy()
    mixed[::2] = -1  # −1: the predicted class for that row
    expect = np.where(np.arange(20)[:, None] % 2 == 0, Z_pred, Z_given)
    np.testing.assert_array_equal(model.transform(X[:20], mixed), expect)
    assert model.sample(7, y=3).shape == (7, 64)
    draws = model.sample(7, y=np.arange(7), draws=True, seed=0)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_array_equal(model.sample(4, seed=1), model.sample(4, seed=1))
    assert model.reconstruct(X[:4]).shape == (4, 64)
    with pytest.raises(npae.InputError, match="temperature"):
        model.sample(3, temperature=0.0)


# ----------------------------------------------------------------------------------- it learns
def test_it_learns_from_a_few_labels(digits):
    """120 labels among 1,200 digits, 8 short epochs: the classifier q(y|x) is far above chance on
    held-out digits, and the α-weighted classification term fell."""
    X, y, y_partial = digits
    m2 = npae.SemiSupervisedVAE(n_classes=10, hidden=(32,), latent_dim=4, activation="relu", alpha=100.0,
                                seed=0)
    m2.fit(X[:1200], y_partial[:1200], epochs=8, batch_size=100, lr=3e-3, progress=False)
    assert m2.score(X[1500:], y[1500:]) > 0.6
    assert m2.history_["classification"][-1] < 0.5 * m2.history_["classification"][0]
    assert m2.history_["unlabelled"][-1] < m2.history_["unlabelled"][0]


@pytest.mark.parametrize("y, match", [
    ("abc", "y must be an array of integer labels \\(-1 for an unlabelled row\\), got str"),
    (np.zeros((6, 1), dtype=int), "y must be 1-D \\(one label per row\\)"),
    (np.array([0, 1, 0.5, -1, 1, 0]), "y must hold whole-number labels \\(-1 for an unlabelled row\\)"),
    (np.array([0, 1, -2, -1, 1, 0]), "y must lie in 0..2 for a labelled row or be -1 for an unlabelled one"),
    (np.array([0, 1, 3, -1, 1, 0]), "got values in \\[-1, 3\\]"),
    (np.array([0, 1, -1]), "y has 3 labels but there are 6 rows"),
    (np.array(["a"] * 6), "y must hold integer labels, got dtype"),
])
def test_partial_labels_are_checked_and_named(y, match):
    X = np.random.default_rng(0).random((6, 5))
    model = npae.SemiSupervisedVAE(5, 3, hidden=(4,), latent_dim=2)
    with pytest.raises(npae.InputError, match=match):
        model.fit(X, y, epochs=1, progress=False)
