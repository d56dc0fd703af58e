"""Issue 24, "Silent": a run or a call that would end with exit 0 or a returned value although the
result is wrong ends in an npae error instead. Checks [CLIP-4] (a fit that ends far worse than it
began), the logvar clamp's outcome rule, the data-scale bound (npae.constants.DATA_ABS_MAX), data
refusals (NaN, complex), newer file versions, ``--resume`` with changed flags, ``--scale`` and label-like
CSV columns, and the supported image sizes of ``--arch conv``."""
import json
import math
import os
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
    from npae.training.loop import refuse_clamped_fit  # TwoLayerVAE.fit calls it with its own counters

    refuse_clamped_fit(model, X, 50, 100)  # half: allowed
    with pytest.raises(DivergenceError, match=r"held 51 of 100 encoder log-variances \(51.0%"):
        refuse_clamped_fit(model, X, 51, 100)


# ---------------------------------------------------------------------------- newer files
def test_a_model_file_or_checkpoint_from_a_newer_npae_is_refused(tmp_path, monkeypatch):
    """The message names the file and both versions."""
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


# ---------------------------------------------------------------------------- --resume
def _train(args, capsys):
    code = cli.main(["train", *args, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("flag,value", [("--lr", "0.005"), ("--batch-size", "32"), ("--seed", "3"),
                                        ("--max-train", "50"), ("--test-fraction", "0.3"),
                                        ("--hidden", "9"), ("--dtype", "float32")])
def test_resume_refuses_a_changed_option_naming_it(flag, value, tmp_path, capsys):
    out = str(tmp_path / "r")
    base = ["ae", "--hidden", "8", "--max-train", "80", "--lr", "0.01", "--out", out]
    assert _train([*base, "--epochs", "1"], capsys)[0] == 0
    code, _, err = _train(["ae", "--resume", "--out", out, "--epochs", "2", flag, value], capsys)
    assert code == cli.EXIT_ERROR and "Traceback" not in err
    assert f"these options differ from it: {flag} " in err and "(the run: " in err


def test_resume_uses_and_records_the_runs_own_settings(tmp_path, capsys):
    """Options not given again are the run's, not the defaults: the banner and metrics.json say
    lr 0.01 and 80 examples, which is what the resumed epochs use."""
    out = tmp_path / "r"
    base = ["ae", "--hidden", "8", "--max-train", "80", "--lr", "0.01", "--batch-size", "16",
            "--out", str(out)]
    assert _train([*base, "--epochs", "1"], capsys)[0] == 0
    code, text, err = _train(["ae", "--resume", "--out", str(out), "--epochs", "2", "--lr", "0.01"], capsys)
    assert code == 0, err
    assert "80 train" in text and "2 epochs of Adam (lr 0.01, batch 16)" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["lr"] == 0.01 and metrics["batch_size"] == 16 and metrics["n_train"] == 80
    assert metrics["data_spec"]["max_train"] == 80 and len(metrics["history"]["loss"]) == 2
    run = json.loads((out / "run.json").read_text())
    assert run["lr"] == 0.01 and run["hidden"] == [8] and "epochs" not in run


# ---------------------------------------------------------------------------- data scale and labels
def test_cli_pixels_0_255_are_recognised_and_scale_applies(tmp_path, capsys):
    path = tmp_path / "pix.csv"
    np.savetxt(path, np.round(RNG.random((60, 16)) * 255), delimiter=",", fmt="%d")
    base = ["ae", "--data", str(path), "--hidden", "8", "--epochs", "1"]
    code, _, err = _train([*base, "--out", str(tmp_path / "a")], capsys)
    assert code == cli.EXIT_ERROR and "like 8-bit pixels: give --scale 255" in err and "Traceback" not in err
    code, text, err = _train([*base, "--scale", "255", "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "cross-entropy reconstruction (data in [0, 1])" in text, err
    code, text, err = _train([*base, "--scale", "1", "--out", str(tmp_path / "c")], capsys)
    assert code == 0 and "squared-error reconstruction" in text, err
    # the run: a VAE on the pixels as they are ended with exit 0, a loss of ~1e5 to 1e12 and
    # only the clamp warning; now the clamp's outcome rule ends it, and no model is saved
    vae = ["vae", "--data", str(path), "--epochs", "3", "--scale", "1", "--out", str(tmp_path / "v")]
    code, _, err = _train(vae, capsys)
    assert code == cli.EXIT_ERROR and "logvar clamp" in err and ", 255]. Scale the data" in err, err
    assert not (tmp_path / "v" / "model.npz").exists()
    for bad in ("0", "-1", "nan", "inf", "x"):
        code, _, err = _train([*base, "--scale", bad, "--out", str(tmp_path / "d")], capsys)
        assert code == cli.EXIT_USAGE and "--scale" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["label", "Class", "TARGET", "y"])
def test_a_csv_column_named_like_a_label_is_never_silently_a_feature(name, tmp_path, capsys):
    path = tmp_path / "d.csv"
    rows = "\n".join(f"{a:.3f},{b:.3f},{int(c)}" for a, b, c in RNG.random((40, 3)) * [1, 1, 3])
    path.write_text(f"f1,f2,{name}\n{rows}\n")
    with pytest.raises(npae.datasets.DatasetError, match=f"column '{name}' is named like a label"):
        npae.datasets.load_path(path)
    assert npae.datasets.load_path(path, label=False)[0].shape == (40, 3)
    assert npae.datasets.load_path(path, label=name)[0].shape == (40, 2)
    base = ["ae", "--data", str(path), "--hidden", "4", "--epochs", "1"]
    code, _, err = _train([*base, "--out", str(tmp_path / "a")], capsys)
    assert code == cli.EXIT_ERROR and f"--label {name}" in err and "--no-label" in err
    code, text, err = _train([*base, "--no-label", "--out", str(tmp_path / "b")], capsys)
    assert code == 0 and "of 3 features" in text, err
    code, text, err = _train([*base, "--label", name, "--out", str(tmp_path / "c")], capsys)
    assert code == 0 and "of 2 features" in text and "labelled" in text, err


@pytest.mark.parametrize("make,dtype", [(lambda X: X * 1e300, "float64"), (lambda X: X * 1e50, "float64"),
                                        (lambda X: X * 1e6, "float32"),
                                        (lambda X: X * 0 + 2.0 ** 100, "float32")])
def test_finite_but_huge_data_is_refused_naming_it(make, dtype):
    X = npae.datasets.load_digits()[0][:64]
    vae = npae.VAE(64, hidden=(8,), latent_dim=2, seed=0, dtype=dtype).fit(X, epochs=1, progress=False)
    big = make(X)
    for call in (vae.evaluate, vae.neg_elbo, vae.kl_per_dimension, vae.transform,
                 lambda A: vae.log_likelihood_estimate(A, k=2), lambda A: vae.loss_and_grads(A[:4])):
        with pytest.raises(npae.InputError, match=r"^(X|x) (holds|has) values of magnitude up to"):
            call(big)
    with pytest.raises(npae.InputError, match="X holds values of magnitude"):
        npae.Autoencoder(64, seed=0, dtype=dtype).fit(big, epochs=1, progress=False)
    ints = np.full((8, 4), 2 ** 62, dtype=np.int64)
    with pytest.raises(npae.InputError, match=r"X holds values of magnitude up to 4\.61\de\+18"):
        npae.Autoencoder(4, seed=0).fit(ints, epochs=1, progress=False)


def test_binarize_and_parse_idx_refuse_nan_and_complex():
    from npae.datasets import binarize, parse_idx

    for mode in ("none", "static"):
        with pytest.raises(npae.InputError, match="binarize: X holds 1 NaN or inf"):
            binarize(np.array([[np.nan, 0.5]]), mode)
        with pytest.raises(npae.InputError, match="X holds complex numbers"):
            binarize(np.array([[0.5 + 1e-3j]]), mode)
    body = np.array([[1.0, np.nan, np.inf]], dtype=">f8").tobytes()
    data = bytes([0, 0, 0x0E, 2]) + (1).to_bytes(4, "big") + (3).to_bytes(4, "big") + body
    with pytest.raises(npae.datasets.DatasetError,
                       match=r"mine.idx: 2 NaN or inf value\(s\).*index \(0, 1\)"):
        parse_idx(data, "mine.idx")


# ---------------------------------------------------------------------------- --arch conv on tiny images
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 7)])
def test_arch_conv_is_correct_on_tiny_images(shape, tmp_path, capsys):
    """docs/conv.md, supported image sizes: every H, W >= 1. On 1x1, 2x2 and 3x7 images the conv
    stack's sizes retrace, its loss gradient matches central differences along a random direction,
    and npae train --arch conv runs on such a file."""
    from npae.constants import GRADCHECK_TOL
    from npae.gradcheck import central_difference

    n = shape[0] * shape[1]
    X = np.random.default_rng(0).random((6, n))
    model = npae.VAE(n, hidden=(3,), latent_dim=2, activation="softplus", arch="conv", image_shape=shape,
                     seed=0)
    eps = np.random.default_rng(1).standard_normal((6, 2))
    assert model.reconstruct(X).shape == X.shape
    _, grads = model.loss_and_grads(X, eps=eps)
    u = {k: np.random.default_rng(2).standard_normal(p.shape) for k, p in model.params.items()}
    start = {k: p.copy() for k, p in model.params.items()}

    def loss_at(t):
        for k, p in model.params.items():
            p[...] = start[k] + t * u[k]
        return model.loss_and_grads(X, eps=eps)[0]

    numeric = central_difference(loss_at)
    analytic = sum(float(np.sum(grads[k] * u[k])) for k in grads)
    assert abs(numeric - analytic) <= GRADCHECK_TOL * max(abs(numeric), abs(analytic))
    path = tmp_path / "tiny.csv"
    np.savetxt(path, np.random.default_rng(3).random((40, n)), delimiter=",")
    code, text, err = _train(["vae", "--data", str(path), "--arch", "conv", "--image-shape",
                              "x".join(map(str, shape)), "--hidden", "4", "--epochs", "2",
                              "--out", str(tmp_path / "r")], capsys)
    assert code == 0 and "Traceback" not in err, err


# ---------------------------------------------------------------------------- unbounded leftovers
def test_npz_of_compressed_zeros_is_refused_from_its_header_in_bounded_memory_and_time(tmp_path):
    """The issue's file: about 1 MB on disk, 976 MiB of float64 zeros unpacked (under the 1 GiB
    limit, so its header alone passed), which reached 2 GB and ran for minutes. Loading it would
    hold the bytes read and their float64 copy, 1.9 GiB: refused from the member's .npy header,
    before the body is decompressed."""
    from _measure import measure_calls
    from test_hostile_files import raw_zip, zeros_bomb

    member = zeros_bomb("X.npy", (61 * 2048, 1024))
    path = raw_zip(tmp_path / "zeros.npz", [member])
    assert path.stat().st_size < 2 << 20 and member[4] > 900 << 20
    (res,) = measure_calls("npae.datasets.load_path", [str(path)])
    assert res["error"] is not None and res["error"].startswith("DatasetError: "), res
    assert str(path) in res["error"] and "the array read and its float64 copy" in res["error"], res
    assert res["seconds"] < 2.0 and res["traced"] < 20e6 and res["rss_growth"] < 100e6, res


def test_a_one_line_csv_is_refused_by_a_streaming_scan(tmp_path):
    """The issue's 60 MB one-line CSV took 1.3 GB before its refusal. Any line over
    CSV_LINE_MAX_BYTES (1 MiB) is now refused from a scan that reads 1 MiB at a time: a 6 MB line
    here, refused within a few MB whatever its length."""
    from _measure import measure_calls

    path = tmp_path / "oneline.csv"
    path.write_text(",".join(["0.5"] * (3 << 19)) + "\n")  # 6 MiB, 1.5 million fields
    (res,) = measure_calls("npae.datasets.load_path", [str(path)])
    assert res["error"] is not None and res["error"].startswith("DatasetError: "), res
    assert "line 1 is longer than 1 MiB" in res["error"] and str(path) in res["error"], res
    assert res["seconds"] < 2.0 and res["traced"] < 8e6, res
    path.write_text("a,b\n" + "0.1,0.2\n" * 1000 + ",".join(["1"] * 600_000) + "\n")
    with pytest.raises(npae.datasets.DatasetError, match="line 1002 is longer than"):
        npae.datasets.load_path(path)


def test_tsne_of_collapsed_codes_does_not_crash_the_process():
    """Found by tests/test_fuzz.py: a run whose codes all coincide (a collapsed encoder) drew its
    latent scatter through scikit-learn's t-SNE with init="pca", which divides by their spread
    (0/0) and then segfaults. In a subprocess, so that a crash fails this test, not the session."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("sklearn")
    code = ("import numpy as np; from npae.app import plotting\n"
            "for Z in (np.ones((60, 5)), np.ones((60, 5)) + 1e-12 * np.arange(60)[:, None]):\n"
            "    Y, _, note = plotting.project_2d(Z, 'tsne')\n"
            "    assert Y.shape == (60, 2) and np.isfinite(Y).all() and 'artifact' in note\n"
            "print('ok')\n")
    root = str(Path(__file__).resolve().parents[1])
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": root})
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stderr[-2000:])
