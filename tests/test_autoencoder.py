"""npae.Autoencoder: gradients of the whole loss for every activation, both losses, deep and linear
shapes; training behaviour; the PCA-style methods; bad input."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae.gradcheck import check_model

from conftest import activation_inputs_off_kinks

ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "elu"]


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("loss,output", [("bce", "sigmoid"), ("mse", "sigmoid"), ("mse", "identity")])
@settings(max_examples=10)
@given(data=st.data())
def test_loss_and_grads_gradcheck(activation, loss, output, data):
    D = data.draw(st.integers(2, 6), "input_dim")
    hidden = tuple(data.draw(st.lists(st.integers(1, 5), min_size=0, max_size=2), "hidden"))
    Z = data.draw(st.integers(1, 3), "latent_dim")
    B = data.draw(st.integers(1, 4), "batch")
    code_activation = data.draw(st.sampled_from(ACTS), "code_activation")
    # slope 0 is plain relu (exact zeros); slopes like 1e-8 make gradients too small to measure
    slope = data.draw(st.one_of(st.just(0.0), st.floats(0.01, 0.5)), "slope")
    alpha = data.draw(st.floats(0.2, 2.0), "alpha")
    seed = data.draw(st.integers(0, 10_000), "seed")
    model = npae.Autoencoder(D, hidden=hidden, latent_dim=Z, activation=activation,
                             code_activation=code_activation, output=output, loss=loss, seed=seed,
                             slope=slope, alpha=alpha)
    x = np.random.default_rng(seed).uniform(0, 1, (B, D))
    model.loss_and_grads(x)
    assume(activation_inputs_off_kinks(model))
    check_model(model, x).assert_ok()


def test_linear_autoencoder_gradcheck_deep_and_wide(rng):
    model = npae.Autoencoder(7, hidden=(), latent_dim=3, code_activation="identity", output="identity",
                             loss="mse")
    check_model(model, rng.standard_normal((5, 7))).assert_ok()
    deep = npae.Autoencoder(6, hidden=(5, 4, 3), latent_dim=2, activation="tanh")
    check_model(deep, rng.uniform(0, 1, (3, 6))).assert_ok()


def test_params_are_named_in_forward_order_and_live(rng):
    model = npae.Autoencoder(5, hidden=(4, 3), latent_dim=2)
    assert list(model.params) == ["encoder.0.W", "encoder.0.b", "encoder.1.W", "encoder.1.b",
                                  "encoder.2.W", "encoder.2.b", "decoder.0.W", "decoder.0.b",
                                  "decoder.1.W", "decoder.1.b", "decoder.2.W", "decoder.2.b"]
    assert model.params["encoder.0.W"].shape == (5, 4)
    assert model.params["decoder.2.W"].shape == (4, 5)
    x = rng.uniform(0, 1, (3, 5))
    before = model.reconstruct(x)
    model.params["decoder.2.b"] += 1.0  # in place: the model changes
    assert not np.allclose(before, model.reconstruct(x))
    loss, grads = model.loss_and_grads(x)
    assert isinstance(loss, float)
    assert {k: v.shape for k, v in grads.items()} == {k: v.shape for k, v in model.params.items()}


def test_loss_is_batch_mean_of_per_example_sums(rng):
    model = npae.Autoencoder(6, hidden=(4,), latent_dim=2, loss="mse", output="identity")
    x = rng.standard_normal((5, 6))
    per_example = model.reconstruction_error(x)
    assert per_example.shape == (5,)
    recon = model.reconstruct(x)
    np.testing.assert_allclose(per_example, ((recon - x) ** 2).sum(1), rtol=1e-12)
    assert model.loss_and_grads(x)[0] == pytest.approx(per_example.mean(), rel=1e-12)


def _blobs(rng, n=400, D=10):
    centres = rng.uniform(0.1, 0.9, (4, D))
    return np.clip(centres[rng.integers(0, 4, n)] + 0.05 * rng.standard_normal((n, D)), 0, 1)


def test_fit_lowers_the_loss_and_same_seed_is_bit_identical(rng):
    X = _blobs(rng)
    runs = []
    for _ in range(2):
        model = npae.Autoencoder(10, hidden=(8,), latent_dim=2, loss="mse", output="identity", seed=7)
        start = model.evaluate(X)["loss"]
        history = model.fit(X, epochs=15, batch_size=32, lr=1e-2, progress=False).history_
        assert len(history["loss"]) == 15
        assert history["loss"][-1] < 0.5 * history["loss"][0]
        assert model.evaluate(X)["loss"] < start
        runs.append(model)
    for name in runs[0].params:
        np.testing.assert_array_equal(runs[0].params[name], runs[1].params[name])
    other = npae.Autoencoder(10, hidden=(8,), latent_dim=2, seed=8)
    other.fit(X, epochs=1, batch_size=32, progress=False)
    assert not np.array_equal(other.params["encoder.0.W"], runs[0].params["encoder.0.W"])


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam", "adagrad", "rmsprop"])
def test_every_optimizer_trains(opt, rng):
    X = _blobs(rng, n=200)
    model = npae.Autoencoder(10, hidden=(8,), latent_dim=2, seed=1)
    lr = {"sgd": 0.5, "momentum": 0.1, "adam": 1e-2, "adagrad": 0.1, "rmsprop": 1e-2}[opt]
    history = model.fit(X, epochs=10, batch_size=20, optimizer=opt, lr=lr, progress=False).history_
    assert history["loss"][-1] < history["loss"][0]


def test_validation_history_and_early_stopping(rng):
    X = _blobs(rng)
    model = npae.Autoencoder(10, hidden=(8,), latent_dim=2, seed=3)
    history = model.fit(X[:300], epochs=200, batch_size=32, lr=5e-2, validation_data=X[300:],
                        patience=3, progress=False).history_
    n = len(history["loss"])
    assert len(history["val_loss"]) == n and n < 200  # stopped early
    best = int(np.argmin(history["val_loss"]))
    assert model.best_epoch_ == best
    # the best epoch's parameters are restored
    assert model.evaluate(X[300:])["loss"] == pytest.approx(history["val_loss"][best], rel=1e-12)


def test_progress_bar_can_be_silenced(rng, capsys):
    X = _blobs(rng, n=64)
    npae.Autoencoder(10, hidden=(), latent_dim=2).fit(X, epochs=2, batch_size=16, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    npae.Autoencoder(10, hidden=(), latent_dim=2).fit(X, epochs=2, batch_size=16, progress=True)
    assert "Autoencoder" in capsys.readouterr().err


def test_pca_style_methods(rng):
    X = _blobs(rng, n=100)
    model = npae.Autoencoder(10, hidden=(6,), latent_dim=3)
    Z = model.fit_transform(X, epochs=2, batch_size=25, progress=False)
    assert Z.shape == (100, 3)
    np.testing.assert_array_equal(Z, model.transform(X))
    np.testing.assert_array_equal(Z, model.encode(X))
    R = model.inverse_transform(Z)
    np.testing.assert_array_equal(R, model.decode(Z))
    np.testing.assert_array_equal(R, model.reconstruct(X))
    assert ((R > 0) & (R < 1)).all()


def test_float32_model_stays_float32(rng):
    X = _blobs(rng, n=64).astype(np.float32)
    model = npae.Autoencoder(10, hidden=(6,), latent_dim=2, dtype="float32")
    model.fit(X, epochs=2, batch_size=16, progress=False)
    assert all(p.dtype == np.float32 for p in model.params.values())
    loss, grads = model.loss_and_grads(X[:8])
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.encode(X).dtype == np.float32 and model.reconstruct(X.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("bad,exc,match", [
    (np.array([[0.1, np.nan, 0.2, 0.3]]), ValueError, "NaN"),
    (np.array([[0.1, np.inf, 0.2, 0.3]]), ValueError, "inf"),
    (np.zeros((2, 5)), ValueError, "5 features, but Autoencoder is expecting 4"),
    (np.zeros(4), ValueError, "must be 2-D.*1-D"),
    (np.zeros((2, 2, 4)), ValueError, "must be 2-D.*3-D"),
    (np.array([[0.1, 1.5, 0.2, 0.3]]), ValueError, r"\[0, 1\]"),
    (np.array([["a", "b", "c", "d"]]), TypeError, "real numbers"),
    ("data.csv", TypeError, "array"),
    (np.zeros((0, 4)), ValueError, "empty"),
])
def test_bad_input_names_the_problem(bad, exc, match):
    """Every entry point names the problem; only what is reconstructed (training targets) must lie
    in [0, 1]: encoding accepts any finite data (issue 12)."""
    model = npae.Autoencoder(4, hidden=(3,), latent_dim=2)
    calls = [model.loss_and_grads, lambda X: model.fit(X, epochs=1, batch_size=2, progress=False)]
    if match != r"\[0, 1\]":
        calls += [model.encode, model.reconstruct]
    else:
        assert np.isfinite(model.encode(bad)).all()
    for call in calls:
        with pytest.raises(exc, match=match):
            call(bad)


def test_bad_decode_input():
    model = npae.Autoencoder(4, hidden=(3,), latent_dim=2)
    with pytest.raises(ValueError, match="Z has 3 features"):
        model.decode(np.zeros((1, 3)))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(activation="swish"), ValueError, "unknown activation 'swish'"),
    (dict(code_activation="gelu"), ValueError, "unknown code_activation"),
    (dict(loss="huber"), ValueError, "unknown loss 'huber'"),
    (dict(output="softmax"), ValueError, "unknown output"),
    (dict(loss="bce", output="identity"), ValueError, "needs output='sigmoid'"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(hidden=(4, 0)), ValueError, "hidden"),
    (dict(latent_dim=0), ValueError, "latent_dim"),
    (dict(slope=-1.0), ValueError, "slope"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    """The constructor only stores its arguments (scikit-learn's rule); they are checked when the
    network is built, here on first use (``.params``)."""
    npae.Autoencoder(4, **kwargs)  # no error yet
    with pytest.raises(exc, match=match):
        npae.Autoencoder(4, **kwargs).params


def test_bad_fit_arguments(rng):
    model = npae.Autoencoder(4, hidden=(3,), latent_dim=2)
    X = rng.uniform(0, 1, (8, 4))
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        model.fit(X, epochs=1, batch_size=4, optimizer="adamax", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, epochs=0, batch_size=4, progress=False)
    with pytest.raises(TypeError, match="batch_size"):
        model.fit(X, epochs=1, batch_size=2.5, progress=False)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(X, epochs=1, batch_size=4, patience=2, progress=False)


def test_unsupervised_fit_ignores_labels(rng):
    """scikit-learn's convention (a Pipeline hands y to every step): fit(X, y) ignores y."""
    X = rng.uniform(0, 1, (8, 4))
    with_y = npae.Autoencoder(4, hidden=(3,), latent_dim=2).fit(X, np.zeros(8, int), epochs=1,
                                                                batch_size=4, progress=False)
    without = npae.Autoencoder(4, hidden=(3,), latent_dim=2).fit(X, epochs=1, batch_size=4, progress=False)
    for name, p in without.params.items():
        np.testing.assert_array_equal(with_y.params[name], p)
