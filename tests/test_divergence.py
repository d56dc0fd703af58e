"""Divergence stops training with an error naming epoch, batch and culprit, keeping the last finite
parameters; gradient clipping by global norm."""
import math

import numpy as np
import pytest

import npae
from npae.training import DivergenceError, check_step, global_norm

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
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=0)
    loss, grads = model.loss_and_grads(X)
    norm = math.sqrt(sum(float(np.sum(g ** 2)) for g in grads.values()))
    clipped = check_step(model, loss, grads, 0, 0, clip_norm=norm / 4)
    assert global_norm(clipped) == pytest.approx(norm / 4, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(clipped[name], g / 4, rtol=1e-12)
    assert check_step(model, loss, grads, 0, 0, clip_norm=norm * 2) is grads  # below: untouched


def test_fit_with_clipping_takes_the_clipped_step():
    """One full-batch SGD step with clip_norm equals p - lr * min(1, c/||g||) * g."""
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
