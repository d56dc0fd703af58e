"""The ``npae`` command: every model trains and writes its files and its own measures; evaluate works
on every file npae writes; every bad argument is one line naming its flag; a user's mistake is one
line on stderr and a non-zero exit, never a traceback."""
import errno
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import npae
from npae import datasets, plotting
from npae.app import cli, lessons, runspec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--epochs", "1", "--no-progress", "--max-train", "300"]


@pytest.fixture(autouse=True)
def no_tsne(monkeypatch):
    """t-SNE takes seconds; the CLI tests draw PCA only (test_tsne_is_optional checks the choice)."""
    monkeypatch.setattr(plotting, "TSNE_MAX_POINTS", 0)


def run(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own exit for a bad command line
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npae") and "error" in lines[0], err
    assert "Traceback" not in err
    return lines[0]


def test_defaults_are_the_main_job():
    args = cli.build_parser().parse_args(["train", "vae"])
    assert (args.data, args.out, args.epochs, args.likelihood) == ("digits", None, 100, "auto")
    assert runspec._resolved(args)[:2] == (2, (128,))
    assert args.func is cli._train


def test_version_and_help_show_defaults():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "npae", "--version"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"npae {npae.__version__}"
    parser = cli.build_parser()
    for name, sub in parser._npae_sub.items():
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            help_text = sub._get_formatter()._get_help_string(action)
            switch = action.nargs == 0
            assert switch or "default" in help_text, (name, action.dest, help_text)
        shown = {"train": "(default: 100)", "evaluate": "(default: [5, 50, 500])",
                 "explore": "(default: 1000)"}
        assert shown[name] in text


def test_train_vae_default_folder_then_evaluate_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["train", "vae", *QUICK], capsys)
    assert code == 0, err
    run_dir = tmp_path / "runs" / "vae-digits"
    expected = {"model.npz", "checkpoint.npz", "metrics.json", "run.json", "loss_curves.png",
                "reconstructions.png", "samples.png", "latent_scatter.png", "manifold_grid.png",
                "explorer.html"}
    assert expected == set(os.listdir(run_dir))
    assert "data: bundled UCI 8x8 digits" in out and "300 train / 270 held-out" in out
    assert re.search(r"epoch 1/1 \| loss +[0-9.]+ \| recon +[0-9.]+ \| kl +[0-9.]+ \| val_loss", out), out
    kl_line = next(line for line in out.splitlines() if "KL per latent" in line)
    assert re.fullmatch(r"held-out KL per latent dimension \(nats\):( [0-9]+\.[0-9]{3}){2}", kl_line)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"]["latent_dim"] == 2 and metrics["n_train"] == 300
    assert set(metrics["history"]) >= {"loss", "recon", "kl", "val_loss", "val_recon", "val_kl"}
    assert metrics["test"]["active_units"] <= 2 and metrics["data_spec"]["data"] == "digits"
    # from another folder, as a path to the folder, the model or the metrics
    monkeypatch.chdir(ROOT)
    for target in (run_dir, run_dir / "model.npz", run_dir / "metrics.json"):
        code, out, err = run(["evaluate", str(target), "--k", "5", "--max-examples", "40"], capsys)
        assert code == 0, err
        rows = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
        assert float(rows["ELBO"]) >= float(rows["IWAE-5"]) - 0.5  # within Monte-Carlo error
        assert "active units" in out and "40 examples" in out
        # off a terminal: plain progress lines, never a carriage return
        assert "\r" not in err and re.search(r"IWAE-5: 40 examples in [0-9.]+ s", err), err


@pytest.mark.parametrize("model, extra, files, measure", [
    ("ae", [], {"manifold_grid.png"}, "contraction"),
    ("dae", ["--noise", "masking", "--latent-dim", "3"], {"denoising.png"}, "denoising"),
    ("sae", ["--latent-dim", "6"], {"sparsity.png"}, "sparsity"),
    ("cae", [], {"contraction.png"}, "contraction"),
    ("cvae", [], {"samples.png", "manifold_grid.png"}, "neg_elbo"),
    ("vae", ["--data", "moons", "--dtype", "float32"], {"samples.png"}, "neg_elbo"),
    ("ae", ["--data", "swiss-roll"], set(), "recon_error"),
    ("dae", ["--data", "moons", "--latent-dim", "2"], {"denoising.png"}, "denoising"),
])
def test_every_model_trains_and_reports_its_own_measure(tmp_path, capsys, model, extra, files, measure):
    code, out, err = run(["train", model, *QUICK, "--out", str(tmp_path), *extra], capsys)
    assert code == 0, err
    written = set(os.listdir(tmp_path))
    assert {"model.npz", "metrics.json", "loss_curves.png", "reconstructions.png",
            "latent_scatter.png", "explorer.html"} | files <= written, written
    test = json.loads((tmp_path / "metrics.json").read_text())["test"]
    assert measure in test
    if model == "sae":
        s = test["sparsity"]
        assert s["near_zero_threshold"] == lessons.NEAR_ZERO and 0 <= s["near_zero_fraction"] <= 1
        assert s["rho"] == 0.05 and len(s["mean_activation_per_unit"]) == 6
        assert "sparse code: mean activation" in out
    if model == "dae":
        d = test["denoising"]
        assert d["noise"] == ("masking" if "--noise" in extra else "gaussian")
        assert d["squared_distance_corrupted_to_clean"] > 0
        assert "from corrupted inputs vs" in out
    if model in ("ae", "cae") and "--data" not in extra:
        c = test["contraction"]
        assert c["mean_code_displacement_per_unit_perturbation"] > 0 and c["sigma"] > 0
        assert "jacobian" in test
    code, out, err = run(["evaluate", str(tmp_path / "model.npz"), "--k", "2", "--max-examples", "20",
                          "--no-progress"], capsys)
    assert code == 0, err
    assert ("IWAE-2" in out) if model in ("vae", "cvae") else ("reconstruction error" in out)


def test_the_contraction_measure_agrees_with_the_encoder_jacobian(tmp_path, capsys):
    """For small δ, E‖z(x + δ) − z(x)‖² / ‖δ‖² → ‖J‖²_F / D: the measure in metrics.json against a
    Jacobian taken by central differences of encode (and the library's, when it has one)."""
    code, out, err = run(["train", "cae", *QUICK, "--epochs", "3", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    model = npae.load(str(tmp_path / "model.npz"))
    _, _, Xt, _, _ = runspec._load_split(dict(metrics["data_spec"]))
    h = 1e-5
    J2 = np.zeros(Xt.shape[0])
    for d in range(Xt.shape[1]):
        step = np.zeros(Xt.shape[1])
        step[d] = h
        J2 += np.sum(((model.encode(Xt + step) - model.encode(Xt - step)) / (2 * h)) ** 2, axis=1)
    c = metrics["test"]["contraction"]
    expected = np.sqrt(J2.mean() / Xt.shape[1])
    assert c["rms_code_displacement_per_unit_perturbation"] == pytest.approx(expected, rel=0.1)
    assert c["mean_code_displacement_per_unit_perturbation"] <= \
        c["rms_code_displacement_per_unit_perturbation"]
    if hasattr(model, "jacobian_frobenius"):
        assert metrics["test"]["jacobian"]["mean_frobenius_sq"] == pytest.approx(J2.mean(), rel=1e-5)


def test_flags_that_do_not_apply_are_refused(capsys):
    cases = [
        (["train", "vae", "--noise", "masking"], "--noise applies to dae only, not to vae"),
        (["train", "ae", "--beta", "2"], "--beta applies to vae, cvae only, not to ae"),
        (["train", "dae", "--likelihood", "gaussian"], "--likelihood applies to vae, cvae only"),
        (["train", "sae", "--variance", "shared"], "--variance applies to vae, cvae only"),
        (["train", "vae", "--rho", "0.1"], "--rho applies to sae only"),
        (["train", "sae", "--penalty", "l1", "--rho", "0.1"],
         "--rho is the target activation of --penalty kl"),
        (["train", "cae", "--warmup", "3"], "--warmup applies to vae, cvae only"),
        (["train", "ae", "--contractive-weight", "1"], "--contractive-weight applies to cae only"),
        (["train", "vae", "--test-split", "t10k"], "--test-split applies to the IDX sets"),
        (["train", "vae", "--data", "mnist", "--test-fraction", "0.2"], "--test-fraction applies to"),
        (["train", "vae", "--label", "y"], "--label applies to data given as a path"),
        (["train", "dae", "--noise", "masking", "--noise-level", "2"], "--noise-level is a probability"),
        (["train", "cae", "--arch", "conv"], "--arch conv: the contractive penalty is derived for dense"),
    ]
    for argv, match in cases:
        code, out, err = run(argv, capsys)
        assert code == 2 and match in one_line_error(err), (argv, err)


@pytest.mark.parametrize("argv, match", [
    (["train", "vae", "--max-train", "0"], "--max-train must be >= 1, got 0"),
    (["train", "vae", "--max-train", "-1"], "--max-train must be >= 1, got -1"),
    (["train", "vae", "--test-fraction", "-0.5"], "--test-fraction must be > 0"),
    (["train", "vae", "--test-fraction", "1.0"], "--test-fraction must be < 1"),
    (["train", "vae", "--test-fraction", "nan"], "--test-fraction must be a finite number"),
    (["train", "vae", "--out", ""], "--out must be a non-empty folder name"),
    (["train", "vae", "--seed", "-1"], "--seed must be >= 0, got -1"),
    (["train", "vae", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "vae", "--epochs", "two"], "argument --epochs: expected an integer, got 'two'"),
    (["train", "vae", "--lr", "0"], "--lr must be > 0"),
    (["train", "vae", "--beta", "inf"], "--beta must be a finite number"),
    (["train", "vae", "--hidden", "0"], "--hidden must be >= 1"),
    (["train", "vae", "--image-shape", "3"], "argument --image-shape: expected HxW or HxWx3"),
    (["train", "vae", "--data", "cifar"], "argument --data: unknown data set 'cifar'"),
    (["train", "vae", "--data", "./missing.npy"], "argument --data: no such file or folder"),
    (["train", "gan"], "invalid choice: 'gan'"),
    (["evaluate", "runs/x", "--k", "0"], "--k must be >= 1, got 0"),
    (["evaluate", "runs/x", "--max-examples", "0"], "--max-examples must be >= 1"),
    (["evaluate", "runs/x", "--max-examples", "-1"], "--max-examples must be >= 1"),
])
def test_every_bad_argument_is_one_line_naming_its_flag(capsys, argv, match):
    code, out, err = run(argv, capsys)
    assert code == 2 and match in one_line_error(err)


def test_test_fraction_that_leaves_nothing_to_train_is_refused(tmp_path, capsys):
    code, out, err = run(["train", "ae", "--no-progress", "--out", str(tmp_path), "--test-fraction",
                          "0.9999"], capsys)
    assert code == 1 and "--test-fraction 0.9999 of 1797 examples leaves" in one_line_error(err)


def test_likelihood_flag(tmp_path, capsys):
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path / "g"), "--likelihood", "gaussian"],
                         capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "g" / "metrics.json").read_text())["config"]["likelihood"] == "gaussian"
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path / "b"), "--data", "moons",
                          "--likelihood", "bernoulli"], capsys)
    assert code == 1 and "--likelihood bernoulli needs data in [0, 1]" in one_line_error(err)
    # a Gaussian decoder learns its variance unless told otherwise; a Bernoulli one has none
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path / "m"), "--data", "moons"], capsys)
    assert code == 0 and "decoder variance shared" in out, err
    config = json.loads((tmp_path / "m" / "metrics.json").read_text())["config"]
    assert (config["likelihood"], config["variance"]) == ("gaussian", "shared")
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path / "p"), "--data", "moons",
                          "--variance", "per_feature"], capsys)
    assert code == 0 and json.loads((tmp_path / "p" / "metrics.json").read_text())["config"][
        "variance"] == "per_feature", err
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path / "v"), "--variance", "shared"],
                         capsys)
    assert code == 1 and "--variance is the Gaussian decoder's" in one_line_error(err)


def test_library_warnings_are_one_line_each(tmp_path, capsys, monkeypatch):
    import warnings

    from npae.models.vae import VAE, CollapseWarning

    def collapse(self, *args):
        warnings.warn("VAE ended training with no active latent unit\n (posterior collapse).",
                      CollapseWarning)
    monkeypatch.setattr(VAE, "_warn_after_fit", collapse)
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path)], capsys)
    assert code == 0
    assert err.strip() == "npae: warning: VAE ended training with no active latent unit (posterior collapse)."


def test_data_from_a_path(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 6, 6), dtype=np.uint8)
    labels = rng.integers(0, 3, 60)
    np.savez(tmp_path / "mine.npz", X=images, y=labels)
    rgb = rng.integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    with open(tmp_path / "table.csv", "w") as fh:
        fh.write("a,b,c,kind\n" + "".join(f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{'xy'[i % 2]}\n"
                                          for i, r in enumerate(rng.normal(size=(50, 3)))))
    quick = ["--epochs", "1", "--no-progress", "--hidden", "8"]
    code, out, err = run(["train", "cvae", *quick, "--data", str(tmp_path / "mine.npz"), "--out",
                          str(tmp_path / "r1")], capsys)
    assert code == 0, err
    assert f"your data: {tmp_path / 'mine.npz'}" in out and "51 train / 9 held-out" in out
    spec = json.loads((tmp_path / "r1" / "metrics.json").read_text())["data_spec"]
    assert spec["data"] == str(tmp_path / "mine.npz")
    assert "manifold_grid.png" in os.listdir(tmp_path / "r1")
    code, out, err = run(["train", "vae", *quick, "--data", str(tmp_path / "rgb.npy"), "--out",
                          str(tmp_path / "r2")], capsys)
    assert code == 0, err
    assert {"reconstructions.png", "samples.png", "manifold_grid.png"} <= set(os.listdir(tmp_path / "r2"))
    code, out, err = run(["train", "cvae", *quick, "--data", str(tmp_path / "rgb.npy"), "--out",
                          str(tmp_path / "r3")], capsys)
    assert code == 1 and "cvae needs class labels" in one_line_error(err)
    code, out, err = run(["train", "ae", *quick, "--data", str(tmp_path / "table.csv"), "--label", "3",
                          "--out", str(tmp_path / "r4")], capsys)
    assert code == 0, err
    assert "squared-error reconstruction" in out and "50 examples of 3 features, labelled" in out
    code, out, err = run(["evaluate", str(tmp_path / "r4"), "--no-progress"], capsys)
    assert code == 0 and "reconstruction error" in out, err


def make_idx(folder, n_train=40, n_test=10):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    # subsets under names of their own: the official names must hold the official files
    for prefix, n in ((f"train{n_train}", n_train), (f"t10k{n_test}", n_test)):
        datasets.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                           rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        datasets.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))


def test_mnist_run_is_evaluated_without_npae_data(tmp_path, capsys, monkeypatch):
    make_idx(tmp_path / "idx")
    monkeypatch.setenv("NPAE_DATA", str(tmp_path / "idx"))
    out_dir = tmp_path / "out"
    code, out, err = run(["train", "vae", "--data", "mnist", "--hidden", "16", "--train-split", "train40",
                          "--test-split", "t10k10", "--out", str(out_dir), *QUICK], capsys)
    assert code == 0, err
    assert "40 train / 10 held-out" in out and "MNIST train40: not an official file" in out
    assert "manifold_grid.png" in os.listdir(out_dir)
    spec = json.loads((out_dir / "metrics.json").read_text())["data_spec"]
    assert spec["data_dir"] == str(tmp_path / "idx") and spec["test_split"] == "t10k10"
    monkeypatch.delenv("NPAE_DATA")
    code, out, err = run(["evaluate", str(out_dir), "--k", "2", "--no-progress"], capsys)
    assert code == 0 and "10 examples" in out, err
    # a model file with no run beside it: the default data do not fit, and it says so
    os.makedirs(tmp_path / "alone")
    os.replace(out_dir / "model.npz", tmp_path / "alone" / "model.npz")
    code, out, err = run(["evaluate", str(tmp_path / "alone" / "model.npz")], capsys)
    assert code == 1 and "expects 784 features" in one_line_error(err) and "--data" in err


def test_a_missing_split_names_the_flag(tmp_path, capsys):
    make_idx(tmp_path / "idx")
    code, out, err = run(["train", "vae", "--data", "mnist", "--data-dir", str(tmp_path / "idx"),
                          "--out", str(tmp_path / "o"), *QUICK], capsys)
    assert code == 1 and "--train-split train40" in one_line_error(err)


def test_downloads_say_so_in_a_plain_line(tmp_path, capsys, monkeypatch):
    calls = []
    real = datasets.load_dataset

    def fake(name, split="train", *, data_dir=None, download=False, seed=0, **kw):
        calls.append((name, split, download))
        if name == "mnist" and not download:
            raise datasets.DataNotFoundError("MNIST file train-images-idx3-ubyte[.gz] not found")
        X, y, info = real("digits")
        X = np.repeat(X[:50], 784 // 64 + 1, axis=1)[:, :784]
        return X, y[:50], dict(info, image_shape=(28, 28), files=(str(tmp_path / "f.gz"),),
                               provenance=f"MNIST {split}: fake")
    monkeypatch.setattr(datasets, "load_dataset", fake)
    code, out, err = run(["train", "ae", "--data", "mnist", "--download", "--hidden", "8",
                          "--out", str(tmp_path / "o"), *QUICK], capsys)
    assert code == 0, err
    assert ("mnist", "train", True) in calls and "downloading the official files into" in err
    assert "\r" not in err


def test_evaluate_works_on_every_file_npae_writes(tmp_path, capsys):
    base = ["--no-progress", "--epochs", "2", "--max-train", "200", "--hidden", "8"]
    assert run(["train", "ae", *base, "--out", str(tmp_path / "ae")], capsys)[0] == 0
    code, out, err = run(["evaluate", str(tmp_path / "ae" / "checkpoint.npz")], capsys)
    assert code == 0 and "a checkpoint: 2 of 2 epochs done" in out and "reconstruction error" in out, err
    # a Classifier on the trained encoder, saved by hand in the run folder
    X, y, _ = datasets.load_dataset("digits")
    ae = npae.load(str(tmp_path / "ae" / "model.npz"))
    clf = npae.Classifier(ae, 10, seed=0).fit(X[:300], y[:300], epochs=1, progress=False)
    clf.save(str(tmp_path / "ae" / "classifier.npz"))
    code, out, err = run(["evaluate", str(tmp_path / "ae" / "classifier.npz")], capsys)
    assert code == 0 and "accuracy" in out, err
    # a plain model file outside a run folder: the default data (digits)
    os.makedirs(tmp_path / "loose")
    npae.VAE(hidden=(8,), latent_dim=2).fit(X[:100], epochs=1, progress=False).save(
        str(tmp_path / "loose" / "vae.npz"))
    code, out, err = run(["evaluate", str(tmp_path / "loose" / "vae.npz"), "--k", "2", "--max-examples",
                          "20", "--no-progress"], capsys)
    assert code == 0 and "IWAE-2" in out, err
    for bad, match in ((tmp_path / "ae" / "loss_curves.png", "is a figure written by npae train"),
                       (tmp_path / "missing", "no model file"),
                       (tmp_path / "loose", "no model file")):
        code, out, err = run(["evaluate", str(bad)], capsys)
        assert code == 1 and match in one_line_error(err)
    (tmp_path / "ae" / "metrics.json").write_text("{")
    code, out, err = run(["evaluate", str(tmp_path / "ae")], capsys)
    assert code == 1 and "metrics.json cannot be read" in one_line_error(err)


def test_tsne_is_optional(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plotting, "TSNE_MAX_POINTS", 2000)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn raises ImportError
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    code, out, err = run(["train", "dae", *QUICK, "--latent-dim", "3", "--hidden", "8", "--out",
                          str(tmp_path)], capsys)
    assert code == 0, err
    assert err.count("t-SNE skipped: scikit-learn is not installed") == 1


@pytest.mark.parametrize("argv, status, match", [
    (["train", "vae", "--data", "mnist", "--data-dir", "{tmp}/none"], 1, "not found"),
    (["train", "vae", "--data", "mnist", "--data-dir", "{tmp}/corrupt"], 1, "not an IDX file"),
    (["train", "vae", "--out", "{tmp}/a_file/run"], 1, "cannot create output folder"),
    (["train", "vae", "--binarize", "static", "--data", "moons"], 1,
     "--binarize static needs data in [0, 1]"),
    (["evaluate", "{tmp}/missing"], 1, "no model file"),
    (["evaluate", "{tmp}/a_file"], 1, "a_file"),
])
def test_user_errors_are_one_line(tmp_path, capsys, argv, status, match):
    (tmp_path / "a_file").write_text("not a model")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "train-images-idx3-ubyte").write_bytes(b"garbage bytes")
    (tmp_path / "corrupt" / "train-labels-idx1-ubyte").write_bytes(b"garbage bytes")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train":
        argv += ["--no-progress"] + ([] if "--out" in argv else ["--out", str(tmp_path / "run")])
    code, out, err = run(argv, capsys)
    assert code == status and match in one_line_error(err)
    assert not (tmp_path / "run" / ".npae-lock").exists()  # the lock goes with the run


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name an fd's file")
def test_disk_full_names_the_file(tmp_path, capsys, monkeypatch):
    real = os.fsync

    def full(fd):  # the disk fills up once the lock is taken: every temporary file fails
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", full)
    code, out, err = run(["train", "ae", *QUICK, "--hidden", "8", "--out", str(tmp_path)], capsys)
    line = one_line_error(err)
    assert code == 1 and f"cannot write {tmp_path / 'run.json'}: No space left " \
        f"on device" in line  # the first file written is the run's settings, before fit
    assert not [n for n in os.listdir(tmp_path) if "lock" in n or n.endswith(".tmp")]  # all released


def test_disk_full_when_taking_the_folder_leaves_no_lock(tmp_path, capsys, monkeypatch):
    """The issue's "stuck" folder: a lock file the disk had no room for stayed, and every later run
    was refused as "in use by another npae run"."""
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    code, out, err = run(["train", "ae", *QUICK, "--hidden", "8", "--out", str(tmp_path)], capsys)
    assert code == 1 and "cannot write to output folder" in one_line_error(err)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    code, out, err = run(["train", "ae", *QUICK, "--hidden", "8", "--out", str(tmp_path)], capsys)
    assert code == 0 and "in use" not in err


def test_python_dash_m_npae_help():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "npae", "train", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0 and "--latent-dim" in done.stdout and "(default: digits)" in done.stdout


def test_resume_continues_the_checkpoint_bit_for_bit(tmp_path, capsys):
    base = ["train", "ae", "--no-progress", "--max-train", "200", "--hidden", "8"]
    assert run([*base, "--epochs", "4", "--out", str(tmp_path / "full")], capsys)[0] == 0
    assert run([*base, "--epochs", "2", "--out", str(tmp_path / "cut")], capsys)[0] == 0
    assert (tmp_path / "cut" / "checkpoint.npz").exists()
    code, out, err = run([*base, "--epochs", "4", "--out", str(tmp_path / "cut"), "--resume"], capsys)
    assert code == 0, err
    full = npae.load(str(tmp_path / "full" / "model.npz"))
    resumed = npae.load(str(tmp_path / "cut" / "model.npz"))
    for name in full.params:
        np.testing.assert_array_equal(full.params[name], resumed.params[name])


def test_resume_without_a_checkpoint_is_one_line(tmp_path, capsys):
    code, out, err = run(["train", "ae", *QUICK, "--out", str(tmp_path / "none"), "--resume"], capsys)
    assert code == 1 and "no checkpoint" in one_line_error(err)


def _files(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))
            if (folder / name).is_file()}


def test_a_second_run_keeps_the_first_runs_files_byte_for_byte(tmp_path, monkeypatch, capsys):
    """Repeating the README's first command takes a new folder (runs/ae-digits-2); nothing the first
    run saved changes. A third run takes -3."""
    monkeypatch.chdir(tmp_path)
    first_dir = tmp_path / "runs" / "ae-digits"
    assert run(["train", "ae", *QUICK], capsys)[0] == 0
    first = _files(first_dir)
    assert {"model.npz", "checkpoint.npz", "metrics.json"} <= set(first)
    for number in (2, 3):
        code, out, err = run(["train", "ae", *QUICK, "--seed", str(number)], capsys)
        assert code == 0, err
        assert f"output: {os.path.join('runs', f'ae-digits-{number}')}" in out
        assert (tmp_path / "runs" / f"ae-digits-{number}" / "model.npz").is_file()
    assert _files(first_dir) == first
    assert sorted(os.listdir(tmp_path / "runs")) == ["ae-digits", "ae-digits-2", "ae-digits-3"]


def test_a_given_out_holding_a_run_is_refused_unless_overwrite(tmp_path, capsys):
    out_dir = tmp_path / "mine"
    assert run(["train", "ae", *QUICK, "--out", str(out_dir)], capsys)[0] == 0
    first = _files(out_dir)
    code, out, err = run(["train", "ae", *QUICK, "--seed", "1", "--out", str(out_dir)], capsys)
    message = one_line_error(err)
    assert code == 1 and "already holds a run" in message and "--overwrite" in message, err
    assert _files(out_dir) == first
    code, out, err = run(["train", "ae", *QUICK, "--overwrite", "--resume", "--out", str(out_dir)], capsys)
    assert code == 1 and "give one of them" in one_line_error(err)
    # an explicit overwrite replaces the run: other weights, other metrics
    code, out, err = run(["train", "ae", *QUICK, "--seed", "1", "--overwrite", "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "will be replaced" in err
    second = _files(out_dir)
    assert set(second) == set(first)
    assert second["model.npz"] != first["model.npz"] and second["metrics.json"] != first["metrics.json"]
    assert json.loads(second["metrics.json"])["data_spec"]["seed"] == 1


def test_divergence_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from npae.training.loop import DivergenceError

    def diverge(*args, **kwargs):
        raise DivergenceError("training diverged at epoch 1, batch 3: non-finite recon",
                              epoch=0, batch=2, source="loss term 'recon'")
    monkeypatch.setattr("npae.models.model.Model.fit", diverge)
    code, out, err = run(["train", "ae", *QUICK, "--out", str(tmp_path / "d")], capsys)
    assert code == 1 and one_line_error(err).startswith("npae: error: training diverged")


def test_ctrl_c_exits_130_naming_the_checkpoint_and_frees_the_folder(tmp_path, capsys, monkeypatch):
    from npae.training.loop import TrainingInterrupted

    def interrupt(self, *args, **kwargs):
        raise TrainingInterrupted("interrupted", checkpoint=kwargs["checkpoint"], epoch=0, batch=1)
    monkeypatch.setattr("npae.models.model.Model.fit", interrupt)
    code, out, err = run(["train", "ae", *QUICK, "--out", str(tmp_path)], capsys)
    assert code == cli.EXIT_INTERRUPTED and "continue with --resume" in err
    assert str(tmp_path / "checkpoint.npz") in err and not (tmp_path / ".npae-lock").exists()


def test_a_bug_shows_its_traceback(tmp_path, capsys, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("oops")
    monkeypatch.setattr("npae.models.model.Model.fit", bug)
    code, out, err = run(["train", "ae", *QUICK, "--out", str(tmp_path)], capsys)
    assert code == cli.EXIT_BUG and "Traceback" in err and "this is a bug in npae" in err


def test_vae_objective_k_flow_and_threads_flags(tmp_path, capsys):
    code, out, err = run(["train", "vae", "--objective", "iwae", "--k", "2", "--flow", "planar",
                          "--flow-steps", "1", "--threads", "1", "--out", str(tmp_path / "run"), *QUICK],
                         capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["objective"] == "iwae" and metrics["config"]["k"] == 2
    assert metrics["config"]["flow"] == "planar"
    code, _, err = run(["train", "ae", "--k", "2", "--out", str(tmp_path / "ae"), *QUICK], capsys)
    assert code == 2 and "--k applies to vae, cvae only" in err
    code, _, err = run(["train", "vae", "--objective", "iwae", "--beta", "0.5", "--out",
                        str(tmp_path / "b"), *QUICK], capsys)
    assert code != 0 and "beta=0.5 needs the closed-form KL" in err and "Traceback" not in err


def test_arch_conv_trains_saves_and_evaluates_an_image_model(tmp_path, capsys):
    out_dir = str(tmp_path / "conv")
    code, out, err = run(["train", "vae", "--arch", "conv", "--epochs", "1", "--max-train", "200",
                          "--no-progress", "--out", out_dir], capsys)
    assert code == 0, err
    assert "arch='conv'" in out  # the header's repr names every choice that is not a default
    model = npae.load(os.path.join(out_dir, "model.npz"))
    assert isinstance(model.encoder.layers[1], npae.models.conv_layers.Conv2D)
    code, out, err = run(["evaluate", out_dir, "--k", "5", "--max-examples", "40"], capsys)
    assert code == 0 and "IWAE-5" in out + err, err


def test_arch_conv_on_plain_features_is_a_one_line_error(tmp_path, capsys):
    code, out, err = run(["train", "vae", "--arch", "conv", "--data", "moons", "--epochs", "1",
                          "--out", str(tmp_path / "m")], capsys)
    assert code == 1 and "--arch conv needs images; the data 'moons' are plain features" in \
        one_line_error(err)


@pytest.mark.parametrize("argv, match", [
    (["--data", "{tmp}/x64.npy", "--image-shape", "7x7"],
     "--image-shape 7x7: image_shape (7, 7) does not fit 64"),
    (["--data", "{tmp}/x64.npy", "--image-shape", "99999999999x1"], "does not fit 64 features"),
    (["--data", "mnist", "--train-split", "../../../etc/passwd"], "--train-split takes the prefix"),
    (["--objective", "iwae", "--k", "1000000000"], "with k=1000000000 would take about"),
    (["--hidden", "1000000000"], "TiB of memory, over the limit of 2 GiB"),
    (["--latent-dim", "1000000000"], "TiB of memory, over the limit of 2 GiB"),
    (["--flow", "planar", "--flow-steps", "10000000"], "flow_steps=10000000 is over the limit of 256"),
    (["--data", "{tmp}/pngs"], "decoding its 11000x11000 PNG images would take"),
])
def test_sizes_beyond_the_budget_are_one_line_before_allocating(tmp_path, capsys, argv, match):
    """Issue 24: each was a raw ValueError, a MemoryError or a hang (tests/test_bounds_of_input.py
    checks the library's side under a capped address space)."""
    from test_bounds_of_input import png_header_only

    np.save(tmp_path / "x64.npy", np.random.default_rng(0).random((30, 64)))
    (tmp_path / "pngs").mkdir()
    png_header_only(tmp_path / "pngs" / "a.png", 11000, 11000)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(["train", "vae", *QUICK, "--out", str(tmp_path / "run"), *argv], capsys)
    assert code == 1 and match in one_line_error(err)


def test_evaluate_refuses_a_k_whose_work_is_beyond_the_budget(tmp_path, capsys):
    X = datasets.load_dataset("digits")[0][:100]
    npae.VAE(hidden=(8,), latent_dim=2).fit(X, epochs=1, progress=False).save(tmp_path / "m.npz")
    code, out, err = run(["evaluate", str(tmp_path / "m.npz"), "--k", "1000000000", "--no-progress"], capsys)
    assert code == 1 and "--k 1000000000 on 270 held-out examples" in one_line_error(err)
    assert "over the limit of 1e+13" in err and "NPAE_MAX_WORK" in err
