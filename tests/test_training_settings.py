"""Training settings are constructor parameters (``epochs``, ``batch_size``, ``lr``, ``optimizer``,
``verbose``, ``callbacks``) of every estimator, with one table of defaults (npae.constants); ``fit``
overrides them for one call without changing them; ``verbose`` 0/1/2 and ``"auto"`` (quiet in a copy
made by scikit-learn's clone); a GridSearchCV over ``epochs`` and ``lr`` picks by score."""
import inspect
import warnings

import numpy as np
import pytest

import npae
from npae import constants
from npae.app import cli, runspec
from npae.training.optim import Adam

ESTIMATORS = [npae.Autoencoder, npae.DenoisingAutoencoder, npae.SparseAutoencoder,
              npae.ContractiveAutoencoder, npae.VAE, npae.ConditionalVAE, npae.TwoLayerVAE,
              npae.SemiSupervisedVAE, npae.Classifier]


def _data(n=120, d=8, seed=0):
    return np.random.default_rng(seed).random((n, d))


def _same(a, b):
    return all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_estimator_takes_the_settings_with_the_shared_defaults(cls):
    params = inspect.signature(cls.__init__).parameters
    for name, default in constants.TRAINING_DEFAULTS.items():
        assert name in params, (cls.__name__, name)
        assert params[name].default == default and params[name].kind is params[name].KEYWORD_ONLY
    assert any("epochs" in (k.__doc__ or "") for k in cls.__mro__)  # documented (or its parent's)


def test_pca_has_no_training_settings():
    """PCA is fitted in closed form (an SVD): there are no epochs or learning rate to set."""
    assert not set(constants.TRAINING_SETTINGS) & set(npae.PCA().get_params())


def test_constructor_settings_are_what_fit_uses_and_fit_overrides_do_not_change_them():
    X = _data()
    a = npae.VAE(hidden=(8,), latent_dim=2, epochs=3, batch_size=32, lr=5e-3, optimizer="rmsprop",
                 verbose=0).fit(X)
    b = npae.VAE(hidden=(8,), latent_dim=2, verbose=0).fit(X, epochs=3, batch_size=32, lr=5e-3,
                                                           optimizer="rmsprop")
    assert len(a.history_["loss"]) == 3 and _same(a, b)
    before = a.get_params()
    a.fit(X, epochs=1, lr=1e-2, optimizer="sgd", batch_size=16, verbose=0)
    assert len(a.history_["loss"]) == 1 and a.get_params() == before  # scikit-learn's rule
    assert type(a.optimizer_).__name__ == "SGD"


def test_an_optimizer_instance_of_the_constructor_is_copied_at_each_fit():
    X = _data()
    opt = Adam(lr=3e-3)
    model = npae.Autoencoder(hidden=(8,), epochs=2, optimizer=opt, verbose=0)
    first = {k: p.copy() for k, p in model.fit(X).params.items()}
    assert model.optimizer is opt and opt.state_dict()["t"] == 0  # never stepped itself
    model.fit(X)  # starts from the same optimizer state: the same result
    assert all(np.array_equal(first[k], model.params[k]) for k in first)
    assert model.optimizer_ is not opt


def test_changing_a_setting_keeps_a_warm_start_going():
    X = _data()
    a = npae.Autoencoder(hidden=(8,), epochs=2, warm_start=True, verbose=0).fit(X)
    a.set_params(epochs=1, lr=2e-3)
    a.fit(X)
    b = npae.Autoencoder(hidden=(8,), epochs=2, warm_start=True, verbose=0).fit(X)
    b.fit(X, epochs=1, lr=2e-3)
    fresh = npae.Autoencoder(hidden=(8,), epochs=1, lr=2e-3, verbose=0).fit(X)
    assert _same(a, b) and not _same(a, fresh)
    a.set_params(latent_dim=3)  # a parameter of the network: the next fit rebuilds
    assert a.fit(X).params["encoder.1.W"].shape == (8, 3)


def test_verbose_levels(capsys):
    X = _data()
    model = npae.VAE(hidden=(8,), latent_dim=2, epochs=2)
    model.fit(X, verbose=0)
    assert capsys.readouterr() == ("", "")
    for level in (1, True, "auto"):  # a redirected stderr: the summary line, no bar
        model.fit(X, verbose=level)
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("VAE: 2 epochs in")
    model.fit(X, verbose=False)
    assert capsys.readouterr() == ("", "")
    model.set_params(verbose=2).fit(X)
    out, err = capsys.readouterr()
    assert [line.split(" |")[0] for line in out.splitlines()] == ["epoch 1/2", "epoch 2/2"]
    assert err.startswith("VAE: 2 epochs in")
    model.fit(X, progress=False)  # no summary line; the per-epoch lines stay
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and err == ""
    for bad in (3, -1, "loud", 1.5):
        with pytest.raises(npae.InputError, match="verbose must be 0"):
            model.fit(X, verbose=bad)


def test_grid_search_over_epochs_and_lr_picks_by_score_quietly(capsys):
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    X = npae.datasets.load_digits()[0][:240]
    base = npae.VAE(hidden=(16,), latent_dim=2, epochs=1, lr=1e-3)
    capsys.readouterr()
    copy = clone(base.set_params(epochs=4, lr=3e-3))
    assert (copy.epochs, copy.lr) == (4, 3e-3)  # clone keeps the settings
    grid = {"epochs": [1, 8], "lr": [1e-3, 1e-2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", npae.models.vae.CollapseWarning)
        search = GridSearchCV(base, grid, cv=2).fit(X)
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")  # 4 candidates x 2 folds + the refit: not one summary line
    scores = search.cv_results_["mean_test_score"]
    best = search.cv_results_["params"][int(np.argmax(scores))]
    assert search.best_params_ == best
    assert len(set(np.round(scores, 6))) == 4  # the settings change what is learned
    assert best["epochs"] == 8  # more training scores better here
    assert len(search.best_estimator_.history_["loss"]) == 8
    assert (base.epochs, base.lr) == (4, 3e-3)  # the search never changed the estimator it was given
    loud = GridSearchCV(npae.VAE(hidden=(16,), latent_dim=2, epochs=1, verbose=1), {"lr": [1e-3]},
                        cv=2).fit(X)
    assert loud.best_estimator_.verbose == 1
    assert capsys.readouterr().err.count("VAE: 1 epoch in") == 3  # asked for: every fit prints


def test_model_files_keep_the_json_settings_and_leave_callbacks_out(tmp_path):
    X = _data()
    model = npae.Autoencoder(hidden=(8,), epochs=2, optimizer=Adam(lr=1e-3), verbose=0,
                             callbacks=[npae.training.callbacks.Callback()]).fit(X)
    config = model.config
    assert config["epochs"] == 2 and "callbacks" not in config and "optimizer" not in config
    model.save(tmp_path / "m.npz")
    back = npae.load(tmp_path / "m.npz")
    assert back.epochs == 2 and back.callbacks is None and back.optimizer == constants.OPTIMIZER
    assert _same(model, back)
    other = npae.Autoencoder(hidden=(8,), epochs=7, lr=0.5)  # settings do not make files incompatible
    other.fit(X, epochs=1, verbose=0)
    other._check_compatible(npae.data.io.read(tmp_path / "m.npz"))


def test_the_cli_defaults_are_the_main_job_of_the_one_table():
    """The library's defaults and the main job's differ on purpose (npae.constants.MAIN_JOB says
    why; docs/training.md); both come from npae.constants."""
    args = cli.build_parser().parse_args(["train", "vae"])
    job = constants.MAIN_JOB
    assert (args.epochs, args.batch_size, args.lr) == (job["epochs"], job["batch_size"], job["lr"])
    assert runspec._resolved(args)[:2] == (job["latent_dim"], tuple(job["hidden"]))
    assert (constants.EPOCHS, constants.LR) != (job["epochs"], job["lr"])
