"""Issue 24, "Silent": a run or a call that would end with exit 0 or a returned value although the
result is wrong ends in an npae error instead. Checks [CLIP-4] (a fit that ends far worse than it
began), the logvar clamp's outcome rule, the data-scale bound (npae.constants.DATA_ABS_MAX), data
refusals (NaN, complex), newer file versions, ``--resume`` with changed flags, ``--scale`` and label-like
CSV columns, and the supported image sizes of ``--arch conv``."""
import math
import warnings

import numpy as np
import pytest

import npae
from npae import constants
from npae.app import cli
from npae.training.loop import DivergenceError

RNG = np.random.default_rng(0)
XB = (RNG.random((64, 16)) < 0.3).astype(float)
YB = RNG.integers(0, 3, 64)

FAMILIES = {
    "ae": lambda: npae.Autoencoder(16, hidden=(8,), latent_dim=2, seed=0),
    "dae": lambda: npae.DenoisingAutoencoder(16, hidden=(8,), latent_dim=2, seed=0),
    "sae": lambda: npae.SparseAutoencoder(16, hidden=(8,), latent_dim=4, seed=0),
    "cae": lambda: npae.ContractiveAutoencoder(16, hidden=(), latent_dim=4, seed=0),
    "vae": lambda: npae.VAE(16, hidden=(8,), latent_dim=2, seed=0),
    "cvae": lambda: npae.ConditionalVAE(16, 3, hidden=(8,), latent_dim=2, seed=0),
    "hvae": lambda: npae.TwoLayerVAE(16, seed=0),
    "m2": lambda: npae.SemiSupervisedVAE(16, 3, seed=0),
    "classifier": lambda: npae.Classifier(npae.Autoencoder(16, hidden=(8,), latent_dim=2, seed=0), 3, seed=0),
}
LABELLED = ("cvae", "m2", "classifier")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_outcome_rule_stops_a_run_that_ends_far_worse_on_every_model(family, monkeypatch):
    """[CLIP-4] alone (the batch rule of [CLIP-3] switched off): Adam at lr=1e3 keeps every number
    finite, and every model family ends more than 10 times above its first loss: an error, not a
    fitted model. The same fit at an honest lr returns and ends below its first loss."""
    monkeypatch.setattr(constants, "DIVERGENCE_FACTOR", math.inf)
    y = YB if family in LABELLED else None
    model = FAMILIES[family]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DivergenceError, match="ended far worse than it began") as info:
            model.fit(XB, y, epochs=5, batch_size=16, lr=1e3, progress=False)
    assert info.value.source == "outcome"
    assert all(np.isfinite(p).all() for p in model.params.values())
    honest = FAMILIES[family]().fit(XB, y, epochs=2, batch_size=16, lr=1e-3, progress=False)
    assert honest.history_["loss"][-1] < constants.DIVERGENCE_OUTCOME_FACTOR * abs(honest.history_["loss"][0])


def test_outcome_rule_writes_no_final_checkpoint_and_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "DIVERGENCE_FACTOR", math.inf)
    ckpt = tmp_path / "c.npz"
    with pytest.raises(DivergenceError, match=r"last epoch \(5 of 5\)"):
        FAMILIES["ae"]().fit(XB, epochs=5, batch_size=16, lr=1e3, progress=False, checkpoint=ckpt,
                             checkpoint_every=10)
    assert not ckpt.exists()  # the only checkpoint would have been the final one
    monkeypatch.setattr(constants, "DIVERGENCE_OUTCOME_FACTOR", math.inf)
    model = FAMILIES["ae"]().fit(XB, epochs=5, batch_size=16, lr=1e3, progress=False)
    assert model.history_["loss"][-1] > 100 * 16 * math.log(2)  # it did run away (untrained: ~16 log 2)


def test_cli_cae_at_lr_1e3_is_an_error_not_a_saved_model(tmp_path, capsys):
    """The issue's case: npae train cae --max-train 128 --epochs 3 --lr 1e3 went 45 -> 112,000 with exit 0."""
    out = tmp_path / "run"
    rc = cli.main(["train", "cae", "--max-train", "128", "--epochs", "3", "--lr", "1e3", "--out", str(out),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_ERROR
    assert "ended far worse than it began" in err and "Traceback" not in err
    assert not (out / "model.npz").exists() and not (out / "metrics.json").exists()


def test_logvar_clamp_holding_nearly_every_entry_is_an_error():
    """Pixels 0..255 given to a Gaussian VAE: the clamp held 99% of the log-variances and the fit
    used to return with a warning."""
    X = npae.datasets.load_digits()[0][:128] * 255.0
    model = npae.VAE(64, hidden=(16,), latent_dim=2, likelihood="gaussian", variance="fixed", seed=0)
    with pytest.raises(DivergenceError, match=r"logvar clamp .* held .*%.*X holds values in \[0, 255\]"):
        model.fit(X, epochs=2, batch_size=64, progress=False)
    from npae.models.vae import refuse_clamped_fit  # TwoLayerVAE.fit calls it with its own counters

    refuse_clamped_fit(model, X, 50, 100)  # half: allowed
    with pytest.raises(DivergenceError, match=r"held 51 of 100 encoder log-variances \(51.0%"):
        refuse_clamped_fit(model, X, 51, 100)


# ---------------------------------------------------------------------------- newer files
def test_a_model_file_or_checkpoint_from_a_newer_npae_is_refused_naming_file_and_versions(tmp_path, monkeypatch):
    from npae.models import model as model_module

    monkeypatch.setattr(model_module, "__version__", "9.9.9")  # what the writer records
    path, ckpt = tmp_path / "m.npz", tmp_path / "c.npz"
    FAMILIES["ae"]().fit(XB, epochs=1, batch_size=32, progress=False, checkpoint=ckpt).save(path)
    monkeypatch.undo()
    for p in (path, ckpt):
        with pytest.raises(npae.ModelFileError, match=rf"{p.name} was written by npae 9\.9\.9, newer than "
                                                      rf"this npae {npae.__version__}"):
            npae.load(p)
    with pytest.raises(npae.ModelFileError, match="npae 9.9.9, newer"):
        FAMILIES["ae"]().fit(XB, epochs=2, batch_size=32, progress=False, resume=ckpt)
    monkeypatch.setattr(model_module, "__version__", npae.__version__ + ".dev1")  # same release: fine
    FAMILIES["ae"]().fit(XB, epochs=1, batch_size=32, progress=False).save(path)
    assert isinstance(npae.load(path), npae.Autoencoder)
