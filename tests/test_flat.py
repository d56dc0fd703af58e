"""FlatParams: one array for all parameters and one for all gradients, reused at every step.

What must hold: the layers compute with the flat views and write their gradients into them; the
one-pass Adam, check and clipping of the flat path give the same training as the per-array path;
what ``loss_and_grads`` returns is never overwritten by a later step; and the flat path steps aside
whenever the gradients are not its own views.
"""
import copy

import numpy as np
import pytest

from npae import datasets
from npae.fast import kernels
from npae.models.autoencoder import Autoencoder
from npae.models.layers import FlatParams
from npae.training.optim import Adam
from npae.models.variants import ContractiveAutoencoder
from npae.models.vae import VAE


@pytest.fixture(scope="module")
def digits():
    X, _ = datasets.load_digits()
    return X[:300]


def per_array_only(monkeypatch):
    """Make training take the per-array path (the reference for the flat one)."""
    monkeypatch.setattr(FlatParams, "holds", lambda self, params, grads: False)


def test_params_are_views_of_one_array_that_the_layers_use():
    model = VAE(12, (7, 5), 3, seed=1)
    flat = model.flat_params
    assert flat.param_data.size == model.n_params == flat.grad_data.size
    for name, p in model.params.items():
        assert p.base is flat.param_data and p is flat.params[name]
    for name, layer, key in model.encoder.entries + model.decoder.entries:
        assert layer.params[key] is model.params[name]
    # editing the flat array is editing the layer: the encoder's output moves
    x = np.random.default_rng(0).random((4, 12))
    before = model.encode(x)
    flat.param_data += 0.1
    assert not np.allclose(model.encode(x), before)


@pytest.mark.skipif(not kernels.ENABLED, reason="the fused layers write gradients in place")
def test_fused_backward_writes_into_the_flat_gradients():
    model = VAE(12, (7,), 3, seed=1)
    x = np.random.default_rng(0).random((6, 12))
    loss, grads = model._loss_and_grads(x)
    assert model.flat_params.holds(model.params, grads)
    joined = np.concatenate([g.ravel() for g in grads.values()])
    np.testing.assert_array_equal(model.flat_params.grad_data, joined)


def test_loss_and_grads_returns_arrays_a_later_step_does_not_change():
    model = VAE(12, (7,), 3, seed=1)
    rng = np.random.default_rng(0)
    x1, x2 = rng.random((6, 12)), rng.random((6, 12))
    eps = rng.standard_normal((6, 3))
    _, g1 = model.loss_and_grads(x1, eps=eps)
    kept = {k: v.copy() for k, v in g1.items()}
    _, g2 = model.loss_and_grads(x2, eps=eps)
    for name in g1:
        np.testing.assert_array_equal(g1[name], kept[name])
        assert not np.shares_memory(g1[name], g2[name])
        assert not np.shares_memory(g1[name], model.flat_params.grad_data)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fit_kwargs", [{}, {"clip_norm": 0.5}, {"optimizer": Adam(1e-3, weight_decay=1e-2)}],
                         ids=["plain", "clip", "weight_decay"])
def test_flat_training_equals_per_array_training(digits, monkeypatch, dtype, fit_kwargs):
    """The same seed through the flat path and the per-array path: the same parameters and Adam
    moments (the kernel does the same arithmetic per element; only the grouping into calls differs)."""
    def train():
        model = VAE(64, (16,), 2, dtype=dtype, seed=3)
        kwargs = copy.deepcopy(fit_kwargs)
        history = model.fit(digits.astype(dtype), epochs=2, batch_size=32, progress=False, **kwargs).history_
        return model, history

    flat_model, flat_history = train()
    with monkeypatch.context() as mp:
        per_array_only(mp)
        ref_model, ref_history = train()
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(flat_history["loss"], ref_history["loss"], rtol=rtol)
    for name in ref_model.params:
        np.testing.assert_allclose(flat_model.params[name], ref_model.params[name], rtol=rtol, atol=rtol)
    flat_state, ref_state = flat_model.optimizer_.state_dict(), ref_model.optimizer_.state_dict()
    assert flat_state.keys() == ref_state.keys() and flat_state["t"] == ref_state["t"]
    for key in ref_state:
        if key != "t":
            np.testing.assert_allclose(flat_state[key], ref_state[key], rtol=rtol, atol=rtol)


def test_the_flat_path_steps_aside_for_gradients_that_are_not_its_views(digits):
    """A contractive autoencoder adds its penalty into the flat gradients in place, so it keeps the
    flat path; a deep copy holds copies of the views (no longer backed by its flat arrays) and
    trains through the per-array path."""
    cae = ContractiveAutoencoder(64, (), 8, seed=0)
    _, grads = cae._loss_and_grads(digits[:16])
    assert cae.flat_params.holds(cae.params, grads)

    ae = Autoencoder(64, (16,), 4, seed=0, warm_start=True)
    ae.params  # built on first use: the copy below then copies a built model
    twin = copy.deepcopy(ae)
    _, grads = twin._loss_and_grads(digits[:16])
    assert not twin.flat_params.holds(twin.params, grads)
    before = twin.params["decoder.1.W"].copy()
    twin.fit(digits, epochs=1, batch_size=32, progress=False, optimizer=Adam(1e-2))
    assert not np.array_equal(twin.params["decoder.1.W"], before)


def test_restored_optimizer_state_is_taken_into_the_flat_moments(digits):
    """load_state_dict makes new per-name arrays; the next flat step copies them in and keeps going
    as an optimizer that was never saved."""
    def run(split):
        model = VAE(64, (16,), 2, seed=5, warm_start=True)
        opt = Adam(1e-3)
        model.fit(digits, epochs=1, batch_size=64, optimizer=opt, progress=False)
        if split:
            state = opt.state_dict()
            opt = Adam(1e-3)
            opt.load_state_dict(state)
        model.fit(digits, epochs=1, batch_size=64, optimizer=opt, progress=False)
        return model

    straight, restored = run(False), run(True)
    for name in straight.params:
        np.testing.assert_array_equal(straight.params[name], restored.params[name])


def test_flat_params_refuses_mixed_dtypes():
    a = Autoencoder(5, (), 2, dtype="float64", seed=0)
    b = Autoencoder(5, (), 2, dtype="float32", seed=0)
    with pytest.raises(ValueError, match="one dtype"):
        FlatParams([a.encoder, b.decoder])
