"""Divergence stops training with an error naming epoch, batch and culprit, keeping the last finite
parameters; gradient clipping by global norm."""
import math

import numpy as np
import pytest

import npae
from npae.training.loop import DivergenceError, check_step, global_norm

X = np.random.default_rng(0).random((40, 6))


class Poisoned(npae.Autoencoder):
    """Returns a NaN in one gradient, or an inf loss term, at training step ``at`` (1-based);
    remembers the parameters seen before every step."""

    at, what = None, None

    def _train_batch(self, x):
        self.steps_ = getattr(self, "steps_", 0) + 1
        self.before_ = {k: p.copy() for k, p in self.params.items()}
        loss, grads = super()._train_batch(x)
        if self.steps_ == self.at:
            if self.what == "kl":
                self.last_terms = {"loss": math.inf, "recon": loss, "kl": math.inf}
                loss = math.inf
            else:
                grads = dict(grads)
                grads[self.what] = grads[self.what].copy()
                grads[self.what][0] = np.nan
        return loss, grads


@pytest.mark.parametrize("what,source", [("decoder.0.W", "gradient of 'decoder.0.W'"),
                                         ("encoder.0.b", "gradient of 'encoder.0.b'"),
                                         ("kl", "loss term 'kl'")])
def test_divergence_names_epoch_batch_and_culprit_and_keeps_last_good_params(what, source):
    model = Poisoned(6, hidden=(5,), latent_dim=2, seed=0)
    model.at, model.what = 8, what  # 5 batches per epoch: epoch 1, batch 2
    with pytest.raises(DivergenceError, match=f"epoch 1 batch 2.*{what}") as info:
        model.fit(X, epochs=3, batch_size=8, progress=False)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert (err.epoch, err.batch, err.source) == (1, 2, source)
    for name, p in model.params.items():  # the bad step was not taken
        assert np.isfinite(p).all()
        np.testing.assert_array_equal(p, model.before_[name])
    assert model.optimizer_.t == 7


def test_first_bad_gradient_in_forward_order():
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    loss, grads = model.loss_and_grads(X[:4])
    grads = {k: g.copy() for k, g in grads.items()}
    grads["decoder.1.W"][0, 0] = np.inf
    grads["encoder.1.b"][0] = np.nan
    with pytest.raises(DivergenceError, match="'encoder.1.b' has 1 NaN/inf"):
        check_step(model, loss, grads, 0, 0)


def test_real_divergence_is_caught_not_a_silent_nan():
    """SGD with a huge step on an MSE autoencoder blows up; fit must stop with DivergenceError (no
    RuntimeWarning, no NaN parameters)."""
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, loss="mse", output="identity",
                             activation="tanh", seed=0)
    with pytest.raises(DivergenceError, match="training diverged at epoch"):
        model.fit(X * 1e3, epochs=200, batch_size=8, optimizer="sgd", lr=10.0, progress=False)
    assert all(np.isfinite(p).all() for p in model.params.values())


def test_non_finite_validation_loss_is_an_error():
    class BadVal(npae.Autoencoder):
        def _evaluate(self, X, batch_size=1024):
            return {"loss": math.nan}

    model = BadVal(6, hidden=(5,), latent_dim=2, seed=0)
    with pytest.raises(DivergenceError, match="validation loss term 'loss' is nan after epoch 0"):
        model.fit(X, epochs=2, batch_size=8, progress=False, validation_data=X)


# --------------------------------------------------------------------------------------------------
# clipping
# --------------------------------------------------------------------------------------------------
def test_clipping_rescales_to_the_global_norm():
    """Checks [CLIP-1] (the global norm over every parameter) and [CLIP-2] (rescaling to norm c, and
    nothing below c).
    """
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    loss, grads = model.loss_and_grads(X)
    norm = math.sqrt(sum(float(np.sum(g ** 2)) for g in grads.values()))
    clipped = check_step(model, loss, grads, 0, 0, clip_norm=norm / 4)
    assert global_norm(clipped) == pytest.approx(norm / 4, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(clipped[name], g / 4, rtol=1e-12)
    assert check_step(model, loss, grads, 0, 0, clip_norm=norm * 2) is grads  # below: untouched


def test_fit_with_clipping_takes_the_clipped_step():
    """One full-batch SGD step with clip_norm equals p - lr * min(1, c/||g||) * g.
    Checks [CLIP-1], [CLIP-2] inside a fit.
    """
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    start = {k: p.copy() for k, p in model.params.items()}
    _, grads = model.loss_and_grads(X)
    norm = global_norm(grads)
    model.fit(X, epochs=1, batch_size=len(X), optimizer="sgd", lr=0.1, clip_norm=norm / 3,
              progress=False)
    for name, p in model.params.items():
        np.testing.assert_allclose(p, start[name] - 0.1 * grads[name] / 3, rtol=1e-10, atol=1e-14)


def test_large_clip_norm_changes_nothing():
    a = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    b = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    a.fit(X, epochs=2, batch_size=8, progress=False)
    b.fit(X, epochs=2, batch_size=8, progress=False, clip_norm=1e9)
    for name in a.params:
        assert a.params[name].tobytes() == b.params[name].tobytes()


def test_global_norm_of_huge_finite_gradients_does_not_overflow():
    grads = {"a": np.full((3, 2), 1e200), "b": np.full(2, -1e200)}
    assert global_norm(grads) == pytest.approx(1e200 * math.sqrt(8), rel=1e-12)
    model = npae.Autoencoder(2, hidden=(), latent_dim=1, seed=0)
    model.params = {"a": np.zeros((3, 2)), "b": np.zeros(2)}
    model.last_terms = {"loss": 1.0}
    clipped = check_step(model, 1.0, grads, 0, 0, clip_norm=1.0)
    assert global_norm(clipped) == pytest.approx(1.0, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# runaway losses [CLIP-3]
# --------------------------------------------------------------------------------------------------
class Recording(npae.VAE):
    """Keeps the parameters, optimizer state, generator state and clamp counter seen before each
    training step (1-based ``steps_``), and, at step ``blow_at``, makes the optimizer's learning rate
    infinite so that this step's update is NaN/inf everywhere."""

    blow_at = None

    def _train_batch(self, *batch):
        self.steps_ = getattr(self, "steps_", 0) + 1
        if not getattr(self, "replaying_", False):
            self.seen_ = getattr(self, "seen_", {})
            self.seen_[self.steps_] = dict(
                params={k: p.copy() for k, p in self.params.items()},
                opt=self.optimizer_.state_dict(), rng=self.rng.bit_generator.state,
                clamp=self.clamp_count_)
        if self.steps_ == self.blow_at:
            self.optimizer_.lr = math.inf
            self.replaying_ = True  # the steps after this one are the rewind's replay
        return super()._train_batch(*batch)


def digits():
    X, _ = npae.datasets.load_digits()
    return X


def assert_state(model, seen):
    for name, p in model.params.items():
        assert np.isfinite(p).all()
        assert p.tobytes() == seen["params"][name].tobytes(), name
    state = model.optimizer_.state_dict()
    assert state.keys() == seen["opt"].keys()
    for key, value in state.items():
        assert np.asarray(value).tobytes() == np.asarray(seen["opt"][key]).tobytes(), key


def test_adam_at_lr_1e3_is_stopped_not_called_success():
    """The review's case: VAE.fit(X, lr=1e3) on the digits 'succeeded' with a held-out negative ELBO
    of 3.6e14. The second batch's loss is already about 1e18 (the first was 56).
    Checks [CLIP-3] on a real run.
    """
    model = Recording(hidden=(128,), latent_dim=2, seed=0)
    with pytest.raises(DivergenceError, match=r"epoch 0 batch 1: the batch loss .* is more than 10000 "
                                              r"times the early loss scale") as info:
        model.fit(digits(), epochs=3, lr=1e3, progress=False)
    assert (info.value.epoch, info.value.batch, info.value.source) == (0, 1, "loss growth")
    assert_state(model, model.seen_[2])  # the parameters after batch 0, as the message says
    assert model.optimizer_.t == 1
    assert math.isfinite(model.neg_elbo(digits()))


def test_sgd_at_lr_1e308_leaves_the_last_finite_parameters(tmp_path):
    """The review's case: the first SGD step made every parameter inf, the error claimed they kept
    their values, and save wrote the inf model. Now the step is undone."""
    model = Recording(hidden=(128,), latent_dim=2, seed=0)
    with pytest.raises(DivergenceError, match=r"epoch 0 batch 0: the optimizer step made parameter "
                                              r"'encoder.0.b' NaN or inf; the step is undone") as info:
        model.fit(digits(), epochs=3, optimizer="sgd", lr=1e308, progress=False)
    assert info.value.source == "update of parameter 'encoder.0.b'"
    assert_state(model, model.seen_[1])  # the initial weights
    assert model.optimizer_.t == 0
    model.save(tmp_path / "m.npz")
    loaded = npae.load(tmp_path / "m.npz")
    for name, p in model.params.items():
        assert loaded.params[name].tobytes() == p.tobytes()


@pytest.mark.parametrize("backend", npae.fast.backends.available())
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "momentum", "adagrad", "rmsprop"])
def test_a_non_finite_update_is_undone_exactly(backend, optimizer):
    """At step 13 (epoch 2, batch 1 of 6) the update goes NaN/inf. Parameters, optimizer state
    (moments and step count), generator and clamp counter are restored bit for bit to their values
    before that step, under both backends (Adam's fused kernel counts what it writes; the others are
    checked by one vdot per array), and the error names where it happened."""
    X = digits()[:88]  # 6 batches of 16 (the last of 8)
    with npae.backend(backend):
        model = Recording(hidden=(7,), latent_dim=2, seed=1)
        model.blow_at = 13
        with pytest.raises(DivergenceError, match="epoch 2 batch 0: the optimizer step made") as info:
            model.fit(X, epochs=4, batch_size=16, optimizer=optimizer, lr=1e-3, progress=False)
    assert (info.value.epoch, info.value.batch) == (2, 0)
    seen = model.seen_[13]
    assert_state(model, seen)
    assert model.optimizer_.t == 12
    assert model.rng.bit_generator.state == seen["rng"]
    assert model.clamp_count_ == seen["clamp"]


def test_a_non_finite_update_mid_epoch_is_undone_by_replaying_the_epoch():
    X = digits()[:88]
    model = Recording(hidden=(7,), latent_dim=2, seed=1)
    model.blow_at = 16  # epoch 2, batch 3: batches 0-2 of the epoch are trained again
    with pytest.raises(DivergenceError, match="epoch 2 batch 3: the optimizer step made"):
        model.fit(X, epochs=4, batch_size=16, progress=False)
    assert_state(model, model.seen_[16])
    assert model.optimizer_.t == 15
    assert model.rng.bit_generator.state == model.seen_[16]["rng"]


def test_the_rule_stays_quiet_on_healthy_runs_and_can_be_switched_off(monkeypatch):
    """Adam at lr=0.1 spikes to ~24x the first loss on its second batch and recovers within the
    epoch: not stopped. At lr=1 it jumps to ~2e4x on its second batch: stopped; with the factor at
    inf, the outcome rule [CLIP-4] stops it at the end; with both off it runs on."""
    X = digits()
    model = npae.VAE(hidden=(128,), latent_dim=2, seed=0).fit(X, epochs=2, lr=0.1, progress=False)
    assert model.history_["loss"][-1] < 56.0  # the first batch's loss is 55.8
    X = X[:640]
    with pytest.raises(DivergenceError, match="epoch 0 batch 1: the batch loss .* more than 10000 times"):
        npae.VAE(hidden=(128,), latent_dim=2, seed=0).fit(X, epochs=1, lr=1.0, progress=False)
    monkeypatch.setattr(npae.constants, "DIVERGENCE_FACTOR", math.inf)
    with pytest.raises(DivergenceError, match="ended far worse than it began"):  # [CLIP-4] still holds
        npae.VAE(hidden=(128,), latent_dim=2, seed=0).fit(X[:128], epochs=1, lr=1.0, progress=False)
    monkeypatch.setattr(npae.constants, "DIVERGENCE_OUTCOME_FACTOR", math.inf)
    with pytest.warns(RuntimeWarning, match="logvar clamp"):  # the run is not healthy, and says so
        npae.VAE(hidden=(128,), latent_dim=2, seed=0).fit(X[:128], epochs=1, lr=1.0, progress=False)


def test_loss_reference_is_robust():
    """Checks [CLIP-3]'s runaway-loss rule: the early loss scale R (the first loss, or the median when that
    is larger) and the one-sided threshold at DIVERGENCE_FACTOR · R.
    """
    from npae.training.checkpoint import loss_reference
    assert loss_reference(None, []) is None
    assert loss_reference(56.0, [56.0]) == 56.0
    assert loss_reference(56.0, [56.0, 40.0, 30.0]) == 56.0  # a fast learner: the first loss counts
    assert loss_reference(2.0, [2.0, 50.0, 60.0]) == 50.0  # an unusually small first batch: the median
    # a negative loss (a Gaussian likelihood) falling further never fires: the rule is one-sided
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    loss, grads = model.loss_and_grads(X[:4])
    check_step(model, -1e9, grads, 0, 3, reference=1.0)
    with pytest.raises(DivergenceError, match="loss growth|more than"):
        check_step(model, 1.0001e4, grads, 0, 3, reference=1.0)
    check_step(model, 0.9999e4, grads, 0, 3, reference=1.0)
