"""The fused backend's compiled epoch (one numba call per epoch for the plain MLP autoencoder and
VAE) reproduces the per-step path of the reference backend: the same random numbers in the same
order, the same parameters (float64 rtol 1e-10 after 3 epochs; float32 to its precision), the same
history, optimizer state, counters and errors; everything it does not cover falls back to the
per-step path."""
import numpy as np
import pytest

import npae
from npae import datasets
from npae.fast import backends
from npae.fast.backends import CompiledEpoch, ops

pytestmark = pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")

ACTIVATIONS = ["relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "identity"]


@pytest.fixture(scope="module")
def digits():
    return datasets.load_digits()[0][:300]


def _optimizer(name):
    return {"adam": lambda: npae.training.optim.Adam(2e-3, weight_decay=1e-3),
            "sgd": lambda: npae.training.optim.SGD(5e-2),
            "momentum": lambda: npae.training.optim.Momentum(1e-2),
            "nesterov": lambda: npae.training.optim.Momentum(1e-2, nesterov=True, weight_decay=1e-2)}[name]()


def _both(factory, X, dtype="float64", **fit):
    out = {}
    for name in ("reference", "fused"):
        with npae.backend(name):
            model = factory()
            kw = dict(epochs=3, batch_size=32, progress=False)
            kw.update({k: (v() if callable(v) else v) for k, v in fit.items()})
            model.fit(X.astype(dtype), **kw)
            out[name] = model
    return out["reference"], out["fused"]


def _same(ref, fused, rtol):
    for key in ref.params:
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=rtol, atol=rtol, err_msg=key)
    assert ref.history_.keys() == fused.history_.keys()
    for key, values in ref.history_.items():
        np.testing.assert_allclose(fused.history_[key], values, rtol=rtol, err_msg=key)
    s_ref, s_fused = ref.optimizer_.state_dict(), fused.optimizer_.state_dict()
    assert s_ref.keys() == s_fused.keys() and s_ref["t"] == s_fused["t"]
    for key in s_ref:
        if key != "t":
            np.testing.assert_allclose(s_fused[key], s_ref[key], rtol=rtol, atol=rtol, err_msg=key)
    assert ref.last_terms.keys() == fused.last_terms.keys()


def test_the_compiled_epoch_is_what_runs(digits):
    vae = npae.VAE(64, hidden=(16,), latent_dim=2)
    with npae.backend("fused"):
        assert isinstance(ops.epoch_runner(vae, npae.optim.Adam(), vae.flat_params, None, 32, (digits,)),
                          CompiledEpoch)
    with npae.backend("reference"):
        assert ops.epoch_runner(vae, npae.optim.Adam(), vae.flat_params, None, 32, (digits,)) is None


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "nesterov"])
def test_vae_epochs_equal_the_per_step_path(digits, activation, optimizer):
    ref, fused = _both(lambda: npae.VAE(hidden=(12, 8), latent_dim=3, activation=activation, slope=0.2,
                                        alpha=0.7, seed=3), digits,
                       optimizer=lambda: _optimizer(optimizer), clip_norm=3.0, warmup_epochs=2)
    _same(ref, fused, 1e-10)
    assert ref.clamp_entries_ == fused.clamp_entries_ and ref.clamp_count_ == fused.clamp_count_
    assert ref.beta_schedule_ == fused.beta_schedule_


@pytest.mark.parametrize("loss, output", [("bce", "sigmoid"), ("mse", "sigmoid"), ("mse", "identity")])
@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
def test_autoencoder_epochs_equal_the_per_step_path(digits, loss, output, activation):
    ref, fused = _both(lambda: npae.Autoencoder(hidden=(12,), latent_dim=3, activation=activation,
                                                code_activation="sigmoid", loss=loss, output=output,
                                                seed=5), digits, optimizer=lambda: _optimizer("adam"))
    _same(ref, fused, 1e-10)


def test_gaussian_vae_and_a_short_last_batch(digits):
    X = digits[:250]  # 250 = 7 batches of 32 and one of 26
    ref, fused = _both(lambda: npae.VAE(hidden=(16,), latent_dim=2, likelihood="gaussian", seed=1), X)
    _same(ref, fused, 1e-10)


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_float32_to_its_precision(digits, kind):
    factory = (lambda: npae.VAE(hidden=(16,), latent_dim=2, dtype="float32", seed=2)) if kind == "vae" else \
        (lambda: npae.Autoencoder(hidden=(16,), latent_dim=2, dtype="float32", seed=2))
    ref, fused = _both(factory, digits, dtype="float32")
    for key in ref.params:
        assert fused.params[key].dtype == np.float32
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(fused.history_["loss"], ref.history_["loss"], rtol=1e-4)


def test_divergence_inside_a_compiled_epoch_is_the_per_step_error(digits):
    errors, kept = {}, {}
    for name in ("reference", "fused"):
        with npae.backend(name):
            model = npae.VAE(hidden=(16,), latent_dim=2, seed=0, warm_start=True)
            model.fit(digits, epochs=1, progress=False)
            before = {k: p.copy() for k, p in model.params.items()}
            model.params["decoder.1.b"][0] = np.inf  # the next step's loss is inf
            with pytest.raises(npae.DivergenceError) as info:
                model.fit(digits, epochs=2, progress=False)
            message = str(info.value).split("(terms")[0]  # the numbers after it differ by rounding only
            errors[name] = (message, info.value.epoch, info.value.batch, info.value.source)
            kept[name] = {k: p.copy() for k, p in model.params.items()}
            del before
    assert errors["reference"] == errors["fused"]
    for key in kept["reference"]:  # the last finite parameters, as far as the two backends agree
        np.testing.assert_allclose(kept["fused"][key], kept["reference"][key], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("factory", [
    lambda: npae.DenoisingAutoencoder(64, hidden=(8,), latent_dim=2),
    lambda: npae.SparseAutoencoder(64, hidden=(8,), latent_dim=4),
    lambda: npae.ContractiveAutoencoder(64, latent_dim=4),
    lambda: npae.ConditionalVAE(64, 10, hidden=(8,), latent_dim=2),
    lambda: npae.VAE(64, hidden=(8,), latent_dim=2, k=2),
    lambda: npae.VAE(64, hidden=(8,), latent_dim=2, objective="iwae"),
    lambda: npae.VAE(64, hidden=(8,), latent_dim=2, flow="planar"),
    lambda: npae.VAE(64, hidden=(8,), latent_dim=2, likelihood="gaussian", variance="shared"),
], ids=["dae", "sae", "cae", "cvae", "k2", "iwae", "flow", "variance"])
def test_models_outside_its_reach_take_the_per_step_path(factory, digits):
    model = factory()
    with npae.backend("fused"):
        assert ops.epoch_runner(model, npae.optim.Adam(), model.flat_params, None, 32, (digits,)) is None
    assert ops.epoch_runner(npae.VAE(64, hidden=(8,)), npae.training.optim.Adagrad(),
                            npae.VAE(64, hidden=(8,)).flat_params, None, 32, (digits,)) is None


def test_checkpoint_and_resume_through_compiled_epochs(digits, tmp_path):
    path = tmp_path / "ckpt.npz"
    with npae.backend("fused"):
        straight = npae.VAE(hidden=(16,), latent_dim=2, seed=4).fit(digits, epochs=4, progress=False)
        npae.VAE(hidden=(16,), latent_dim=2, seed=4).fit(digits, epochs=2, progress=False, checkpoint=path)
        resumed = npae.VAE(hidden=(16,), latent_dim=2, seed=4).fit(digits, epochs=4, progress=False,
                                                                   resume=path)
    for key in straight.params:
        assert straight.params[key].tobytes() == resumed.params[key].tobytes()
    assert straight.history_ == resumed.history_


def test_large_models_take_the_per_step_path():
    """Above COMPILED_EPOCH_MAX_MACS NumPy's products beat numba's (measured, npae.constants)."""
    from npae import constants
    from npae.fast import threads
    small = npae.VAE(64, hidden=(16,), latent_dim=2)
    wide = npae.VAE(784, hidden=(400,), latent_dim=20)
    X_small, X_wide = np.zeros((8, 64)), np.zeros((8, 784))
    assert threads.largest_product(small, 128) <= constants.COMPILED_EPOCH_MAX_MACS
    assert threads.largest_product(wide, 128) > constants.COMPILED_EPOCH_MAX_MACS
    with npae.backend("fused"):
        runner = ops.epoch_runner(small, npae.optim.Adam(), small.flat_params, None, 128, (X_small,))
        assert isinstance(runner, CompiledEpoch)
        assert ops.epoch_runner(wide, npae.optim.Adam(), wide.flat_params, None, 128, (X_wide,)) is None
