"""Callbacks (npae.training.callbacks): the hooks run in order with the documented logs; a callback
that does nothing, or that evaluates the model, leaves training bit for bit as without it (the
training generator is never drawn from); returning True or setting ``stop_training`` stops;
EarlyStopping equals ``fit(patience=...)``; ModelCheckpoint saves the best model and never replaces
a file that was there before; the CSV and JSON loggers hold the history exactly."""
import csv
import json

import numpy as np
import pytest

import npae
from npae.data import locks
from npae.training.callbacks import (Callback, CSVLogger, EarlyStopping, JSONLogger, ModelCheckpoint)


def _data(seed=0):
    X = npae.datasets.load_digits()[0]
    return X[:200], X[200:280]


def _vae(**kw):
    return npae.VAE(**{"hidden": (16,), "latent_dim": 2, "epochs": 6, "verbose": 0, **kw})


def _same(a, b):
    return all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", dict(logs)))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", dict(logs)))


class Evaluator(Callback):
    """Evaluates the model after every epoch, every way a user would."""

    def __init__(self, X_val):
        self.X_val, self.scores = X_val, []

    def on_epoch_end(self, epoch, logs=None):
        m = self.model
        self.scores.append((m.score(self.X_val), m.evaluate(self.X_val)["loss"],
                            float(np.sum(m.encode(self.X_val))), m.log_likelihood_estimate(self.X_val, k=3)))


def test_hooks_run_in_order_with_their_logs_and_change_nothing():
    X, Xv = _data()
    plain = _vae().fit(X, validation_data=Xv)
    rec = Recorder()
    hooked = _vae(callbacks=[rec, Callback()]).fit(X, validation_data=Xv)
    assert _same(plain, hooked) and plain.history_ == hooked.history_
    assert plain.rng.bit_generator.state == hooked.rng.bit_generator.state
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["train_begin"] + ["epoch_begin", "epoch_end"] * 6 + ["train_end"]
    assert rec.calls[0][1] == {"epochs": 6, "batch_size": 64, "n_batches": 4, "initial_epoch": 0}
    for e in range(6):
        epoch, logs = rec.calls[2 + 2 * e][1:]
        assert epoch == e and logs == {k: v[e] for k, v in plain.history_.items()}
    assert rec.calls[-1][1] == {k: v[-1] for k, v in plain.history_.items()}
    assert rec.model is hooked


def test_evaluating_in_a_callback_does_not_move_the_training_stream():
    X, Xv = _data()
    plain = _vae().fit(X)
    ev = Evaluator(Xv)
    watched = _vae().fit(X, callbacks=[ev])
    assert len(ev.scores) == 6 and _same(plain, watched) and plain.history_ == watched.history_
    assert plain.rng.bit_generator.state == watched.rng.bit_generator.state
    assert ev.scores[-1][0] > ev.scores[0][0]  # the held-out ELBO improved while training


def test_a_callback_stops_training_by_returning_true_or_setting_its_flag():
    X, _ = _data()

    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            return epoch == 2

    class Flag(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.stop_training = epoch == 1

    assert len(_vae(callbacks=[StopAt()]).fit(X).history_["loss"]) == 3
    flag = Flag()
    model = _vae().fit(X, callbacks=[flag])
    assert len(model.history_["loss"]) == 2
    model.fit(X, callbacks=[Recorder()])  # the flag belongs to that fit only
    assert len(model.history_["loss"]) == 6


def test_a_stop_is_recorded_in_the_checkpoint_and_a_resume_starts_the_hooks_where_it_left(tmp_path):
    X, _ = _data()
    ck = tmp_path / "ck.npz"

    class StopAt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            return epoch == 1

    _vae().fit(X, checkpoint=ck, callbacks=[StopAt()])
    rec = Recorder()
    done = _vae().fit(X, resume=ck, callbacks=[rec])  # stopped early: nothing left to train
    assert len(done.history_["loss"]) == 2 and [c[0] for c in rec.calls] == ["train_begin", "train_end"]
    assert rec.calls[0][1]["initial_epoch"] == 2
    _vae(epochs=3).fit(X, checkpoint=tmp_path / "ck3.npz")
    rec = Recorder()
    resumed = _vae().fit(X, resume=tmp_path / "ck3.npz", callbacks=[rec])
    assert rec.calls[0][1]["initial_epoch"] == 3
    assert [c[1] for c in rec.calls if c[0] == "epoch_begin"] == [3, 4, 5]
    assert _same(resumed, _vae().fit(X))  # the hooks change nothing in a resumed run either


def test_early_stopping_equals_fit_patience():
    X, Xv = _data()
    a = _vae(epochs=40, lr=1e-2).fit(X, validation_data=Xv, patience=2)
    stop = EarlyStopping(monitor="val_loss", patience=2)
    b = _vae(epochs=40, lr=1e-2, callbacks=[stop]).fit(X, validation_data=Xv)
    assert a.history_ == b.history_ and _same(a, b)
    assert len(a.history_["loss"]) < 40 and stop.stopped_epoch == len(a.history_["loss"]) - 1
    assert a.best_epoch_ == b.best_epoch_ == stop.best_epoch
    assert stop.best == min(a.history_["val_loss"])
    with pytest.raises(npae.InputError, match="monitor='val_loss'.*validation_data"):
        _vae(callbacks=[EarlyStopping()]).fit(X)
    for bad in (dict(patience=0), dict(mode="up"), dict(min_delta=-1.0), dict(monitor=3)):
        with pytest.raises((npae.InputError, TypeError)):
            EarlyStopping(**bad)


def test_model_checkpoint_saves_the_best_model_and_never_replaces_a_file_it_did_not_write(tmp_path):
    X, Xv = _data()
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path)
    model = _vae(epochs=8, callbacks=[ckpt]).fit(X, validation_data=Xv)
    best = int(np.argmin(model.history_["val_loss"]))
    assert ckpt.best_epoch == best and ckpt.saved_epochs[-1] == best
    saved = npae.load(path)
    assert saved.evaluate(Xv)["loss"] == pytest.approx(model.history_["val_loss"][best], rel=1e-12)
    model.fit(X, validation_data=Xv)  # its own file from the last fit: replaced
    every = ModelCheckpoint(tmp_path / "every.npz", save_best_only=False)
    _vae(epochs=3, callbacks=[every]).fit(X)
    assert every.saved_epochs == [0, 1, 2]

    user_file = tmp_path / "mine.npz"
    user_file.write_bytes(b"the user's")
    with pytest.raises(FileExistsError, match="mine.npz.*already exists.*overwrite=True"):
        _vae(callbacks=[ModelCheckpoint(user_file)]).fit(X, validation_data=Xv)
    assert user_file.read_bytes() == b"the user's"
    with pytest.raises(FileExistsError):  # the same for a file replaced since this callback wrote it
        path.write_bytes(b"changed")
        model.fit(X, validation_data=Xv)
    _vae(callbacks=[ModelCheckpoint(user_file, overwrite=True)]).fit(X, validation_data=Xv)
    assert npae.load(user_file).n_params == model.n_params

    held = tmp_path / "held.npz"
    with locks.checkpoint_lock(held):  # another writer holds the file: refused, nothing written
        with pytest.raises(locks.FileInUse):
            _vae(callbacks=[ModelCheckpoint(held)]).fit(X, validation_data=Xv)
    assert not held.exists()


def test_loggers_hold_the_history_exactly_and_refuse_an_existing_file(tmp_path):
    X, Xv = _data()
    csv_path, json_path = tmp_path / "log.csv", tmp_path / "log.json"
    model = _vae(callbacks=[CSVLogger(csv_path), JSONLogger(json_path)]).fit(X, validation_data=Xv)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    rows_json = json.loads(json_path.read_text())["epochs"]
    assert [int(r["epoch"]) for r in rows] == [r["epoch"] for r in rows_json] == list(range(6))
    for key, values in model.history_.items():
        assert [float(r[key]) for r in rows] == values  # repr round-trips a float exactly
        assert [r[key] for r in rows_json] == values
    with pytest.raises(FileExistsError, match="log.csv"):
        _vae(callbacks=[CSVLogger(csv_path)]).fit(X)
    _vae(callbacks=[CSVLogger(csv_path, overwrite=True)]).fit(X, epochs=2)
    assert len(csv_path.read_text().splitlines()) == 3


def test_callbacks_are_checked_and_cloned():
    X, _ = _data()
    for bad, match in (([object()], r"callbacks\[0\]"), ([EarlyStopping], "is the class"),
                       (Callback(), "must be a list")):
        with pytest.raises(TypeError, match=match):
            _vae(callbacks=bad).fit(X)
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from sklearn.base import clone

    rec = Recorder()
    copy = clone(_vae(callbacks=[rec]))
    assert len(copy.callbacks) == 1 and isinstance(copy.callbacks[0], Recorder)
    assert copy.callbacks[0] is not rec  # each fit of a grid has its own


def test_the_benchmark_uses_the_public_hook():
    import inspect

    from npae.app import bench

    import re

    source = inspect.getsource(bench)
    assert not re.search(r"\._epoch_begin\b", source) and "callbacks=[EpochTimer()]" in source
