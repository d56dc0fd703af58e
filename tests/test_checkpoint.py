"""Checkpoints resume exactly: stop after epoch k (or after any batch, on Ctrl-C, or by SIGKILL from
outside the process), resume, and the parameters equal an uninterrupted run's bit for bit."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import npae
from npae.data import io
from npae.training.loop import TrainingInterrupted

EPOCHS = 5
X = np.random.default_rng(0).random((40, 6))
Y = np.random.default_rng(1).integers(0, 3, size=40)


def _cases():
    """(id, factory, fit args, fit kwargs): every model family present in this checkout."""
    out = [
        ("ae-adam", lambda: npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=11), (X,), {}),
        ("ae-momentum-early-stopping", lambda: npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=4),
         (X,), dict(optimizer=npae.training.optim.Momentum(0.6, nesterov=True), validation_data=X[:10],
                    patience=1, clip_norm=0.5)),  # stops early after epoch 2 (0-based)
    ]
    from npae.models.vae import VAE, ConditionalVAE
    from npae.models.variants import DenoisingAutoencoder
    out += [("vae-warmup", lambda: VAE(6, hidden=(5,), latent_dim=2, seed=5), (X,),
             dict(warmup_epochs=3, validation_data=X[:8])),
            ("cvae", lambda: ConditionalVAE(6, 3, hidden=(5,), latent_dim=2, seed=6), (X, Y), {}),
            ("dae", lambda: DenoisingAutoencoder(6, hidden=(5,), noise="masking", noise_level=0.3,
                                                 seed=7), (X,), {})]
    return out


CASES = _cases()


def assert_same_params(a, b):
    assert list(a.params) == list(b.params)
    for name in a.params:
        assert a.params[name].tobytes() == b.params[name].tobytes(), name


def fit(model, args, kwargs, **more):
    kw = dict(kwargs)
    if isinstance(kw.get("optimizer"), npae.training.optim.Optimizer):  # a fresh instance per run
        opt = kw["optimizer"]
        kw["optimizer"] = type(opt)(opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)
    return model.fit(*args, batch_size=8, progress=False, **{**kw, **more}).history_


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("k", [1, 3])
def test_stop_after_epoch_k_then_resume_is_bit_identical(tmp_path, case, k):
    _, factory, args, kwargs = case
    reference = factory()
    ref_history = fit(reference, args, kwargs, epochs=EPOCHS)

    path = tmp_path / "ckpt.npz"
    first = factory()
    fit(first, args, kwargs, epochs=EPOCHS, checkpoint=path)  # checkpoints every epoch ...
    stopped = factory()
    fit(stopped, args, kwargs, epochs=k, checkpoint=path)  # ... this run stops after epoch k
    header = io.read(path).header
    assert header["training"]["epochs_done"] == min(k, len(ref_history["loss"]))

    resumed = factory()
    history = fit(resumed, args, kwargs, epochs=EPOCHS, resume=path)
    assert_same_params(resumed, reference)
    assert history == ref_history
    assert resumed.optimizer_.t == reference.optimizer_.t
    assert resumed.best_epoch_ == reference.best_epoch_


def test_checkpoint_every_and_final_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    model = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=1)
    model.fit(X, epochs=5, batch_size=8, progress=False, checkpoint=path, checkpoint_every=2)
    training = io.read(path).header["training"]
    assert training["epochs_done"] == 5 and training["optimizer"]["class"] == "Adam"
    assert training["optimizer"]["t"] == 25 and len(training["history"]["loss"]) == 5
    # a checkpoint is also a model file
    assert_same_params(npae.load(path), model)
    # resuming a finished run changes nothing
    again = npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=1)
    again.fit(X, epochs=5, batch_size=8, progress=False, resume=path)
    assert_same_params(again, model)


class Interrupting(npae.Autoencoder):
    """Sends itself SIGINT (what Ctrl-C does) during training step number ``interrupt_at``."""

    interrupt_at, signals = None, 1

    def _train_batch(self, *batch):
        self.steps_ = getattr(self, "steps_", 0) + 1
        if self.steps_ == self.interrupt_at:
            for _ in range(self.signals):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.001)
        return super()._train_batch(*batch)


@pytest.mark.parametrize("step", [3, 5, 12, 20])  # mid-epoch, end of epoch 0 (5 batches), mid-epoch
def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, step):  # 2, the very last batch
    reference = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    reference.fit(X, epochs=4, batch_size=8, progress=False)
    path = tmp_path / "ckpt.npz"
    model = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    model.interrupt_at = step
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="checkpoint saved to") as info:
        model.fit(X, epochs=4, batch_size=8, progress=False, checkpoint=path)
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.checkpoint == str(path)
    assert (info.value.epoch, info.value.batch) == divmod(step, 5)
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is put back
    resumed = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    history = resumed.fit(X, epochs=4, batch_size=8, progress=False, resume=path).history_
    assert_same_params(resumed, reference)
    assert history == reference.history_


def test_second_ctrl_c_interrupts_at_once_and_no_checkpoint_path(tmp_path):
    model = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    model.interrupt_at = 2
    with pytest.raises(TrainingInterrupted, match="no checkpoint path was given") as info:
        model.fit(X, epochs=2, batch_size=8, progress=False)
    assert info.value.checkpoint is None and model.optimizer_.t == 2  # stopped after that batch
    model = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    model.interrupt_at, model.signals = 2, 2
    with pytest.raises(KeyboardInterrupt) as info:
        model.fit(X, epochs=2, batch_size=8, progress=False, checkpoint=tmp_path / "c.npz")
    assert not isinstance(info.value, TrainingInterrupted)
    assert not (tmp_path / "c.npz").exists()


def test_mid_epoch_checkpoint_needs_the_same_batch_size(tmp_path):
    path = tmp_path / "ckpt.npz"
    model = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    model.interrupt_at = 3
    with pytest.raises(TrainingInterrupted):
        model.fit(X, epochs=2, batch_size=8, progress=False, checkpoint=path)
    before = {k: p.copy() for k, p in model.params.items()}
    with pytest.raises(ValueError, match="batch_size=8; got 40 examples and batch_size=4"):
        model.fit(X, epochs=2, batch_size=4, progress=False, resume=path)
    for name, p in model.params.items():  # a refused resume leaves the model as it was
        np.testing.assert_array_equal(p, before[name])


SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import npae
    kind, path, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind == "vae":
        from npae.models.vae import VAE as cls
        model = cls(6, hidden=(5,), latent_dim=2, seed=9)
    else:
        cls = npae.Autoencoder
        model = cls(6, hidden=(5,), latent_dim=2, seed=9)
    begin = cls._epoch_begin
    def slow_begin(self, epoch, epochs):  # slows the run down; changes no number
        time.sleep(0.05)
        begin(self, epoch, epochs)
    cls._epoch_begin = slow_begin
    X = np.random.default_rng(0).random((40, 6))
    model.fit(X, epochs=epochs, batch_size=8, progress=False, checkpoint=path)
""")


def _kinds():
    kinds = ["ae"]
    try:
        import npae.models.vae  # noqa: F401
        kinds.append("vae")
    except ImportError:
        pass
    return kinds


@pytest.mark.parametrize("kind", _kinds())
def test_run_killed_from_outside_resumes_exactly(tmp_path, kind):
    epochs = 60
    path = tmp_path / "ckpt.npz"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(npae.__file__)))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, kind, str(path), str(epochs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        done = 0
        while done < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint written in 30 s"
            if path.exists():  # atomic writes: whenever the file exists it is complete
                done = io.read(path).header["training"]["epochs_done"]
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = io.read(path).header["training"]["epochs_done"]
    assert 3 <= done < epochs

    if kind == "vae":
        from npae.models.vae import VAE
        make = lambda: VAE(6, hidden=(5,), latent_dim=2, seed=9)  # noqa: E731
    else:
        make = lambda: npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=9)  # noqa: E731
    reference = make()
    reference.fit(X, epochs=epochs, batch_size=8, progress=False)
    resumed = make()
    resumed.fit(X, epochs=epochs, batch_size=8, progress=False, resume=path)
    assert_same_params(resumed, reference)
    assert resumed.history_ == reference.history_


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "rmsprop", "adam"])
def test_float32_every_optimizer_resumes_exactly_and_the_checkpoint_optimizer_wins(tmp_path, optimizer):
    make = lambda: npae.Autoencoder(6, hidden=(5,), latent_dim=2, dtype="float32", seed=3)  # noqa: E731
    reference = make()
    reference.fit(X, epochs=4, batch_size=8, optimizer=optimizer, lr=0.01, progress=False)
    path = tmp_path / "ckpt.npz"
    make().fit(X, epochs=2, batch_size=8, optimizer=optimizer, lr=0.01, progress=False, checkpoint=path)
    resumed = make()
    resumed.fit(X, epochs=4, batch_size=8, progress=False, resume=path)  # default optimizer="adam"
    assert type(resumed.optimizer_) is type(reference.optimizer_)
    assert resumed.params["encoder.0.W"].dtype == np.float32
    assert_same_params(resumed, reference)


def test_ctrl_c_during_the_last_batch_is_not_swallowed(tmp_path):
    """Ctrl-C in the last batch of the last epoch used to be ignored (fit returned normally). Now
    the final checkpoint is written and TrainingInterrupted says that training is complete."""
    path = tmp_path / "ckpt.npz"
    model = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
    model.interrupt_at = 20
    with pytest.raises(TrainingInterrupted, match="during the last batch of the last epoch \\(all 4 "
                                                  "epochs are complete\\).*checkpoint saved") as info:
        model.fit(X, epochs=4, batch_size=8, progress=False, checkpoint=path)
    assert (info.value.epoch, info.value.batch) == (4, 0)
    assert io.read(path).header["training"]["epochs_done"] == 4
    assert len(model.history_["loss"]) == 4
    with pytest.raises(TrainingInterrupted, match="no checkpoint path was given"):
        again = Interrupting(6, hidden=(5,), latent_dim=2, seed=2)
        again.interrupt_at = 20
        again.fit(X, epochs=4, batch_size=8, progress=False)


class LossLog(npae.Autoencoder):
    def _train_batch(self, *batch):
        loss, grads = super()._train_batch(*batch)
        self.losses_ = getattr(self, "losses_", []) + [abs(float(loss))]
        return loss, grads


def test_the_divergence_reference_travels_with_the_checkpoint(tmp_path):
    """The early loss scale of the divergence rule is that of the uninterrupted run, also after a
    resume: it is the first batches' losses, saved with the checkpoint."""
    from npae.training.checkpoint import read_training_state
    path = tmp_path / "ckpt.npz"
    first = LossLog(6, hidden=(5,), latent_dim=2, seed=4)
    first.fit(X, epochs=3, batch_size=8, progress=False, checkpoint=path)  # 15 batches
    mf = io.read(path)
    _, st = read_training_state(mf, npae.Autoencoder(6, hidden=(5,), latent_dim=2, seed=4))
    assert st.early_losses == first.losses_[:10] and st.first_loss == first.losses_[0]
    assert st.reference == max(first.losses_[0], float(np.median(first.losses_[:10])))
    assert mf.header["training"]["divergence"]["early_losses"] == first.losses_[:10]
