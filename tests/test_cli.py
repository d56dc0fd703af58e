"""The ``npae`` command: every model trains and writes its files; evaluate prints the bound ladder;
a user's mistake is one line on stderr and a non-zero exit, never a traceback."""
import json
import re
import os
import subprocess
import sys

import pytest

from npae import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--epochs", "1", "--no-progress", "--max-train", "300"]


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_defaults_are_the_main_job():
    args = cli.build_parser().parse_args(["train", "vae"])
    assert (args.data, args.latent_dim, args.out) == ("digits", 2, None)
    assert args.func is cli._train


def test_train_vae_default_folder_and_evaluate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["train", "vae", *QUICK], capsys)
    assert code == 0, err
    run_dir = tmp_path / "runs" / "vae-digits"
    expected = {"model.npz", "metrics.json", "loss_curves.png", "reconstructions.png", "samples.png",
                "latent_scatter.png", "manifold_grid.png"}
    assert expected <= set(os.listdir(run_dir))
    assert re.search(r"epoch +1/[0-9]+ \| loss +[0-9.]+ \| recon +[0-9.]+ \| kl +[0-9.]+", out), out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"]["latent_dim"] == 2 and metrics["n_train"] == 300
    assert set(metrics["history"]) >= {"loss", "recon", "kl"}
    assert metrics["test"]["active_units"] <= 2

    code, out, err = run(["evaluate", str(run_dir), "--k", "5", "--max-examples", "40"], capsys)
    assert code == 0, err
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
    assert float(lines["ELBO"]) >= float(lines["IWAE-5"]) - 0.5  # within Monte-Carlo error
    assert "active units" in out


@pytest.mark.parametrize("model, extra", [
    ("ae", []), ("dae", ["--noise", "masking"]), ("sae", ["--penalty", "kl"]), ("cae", []),
    ("cvae", []), ("vae", ["--data", "moons", "--dtype", "float32"]), ("ae", ["--data", "swiss-roll"]),
])
def test_every_model_trains(tmp_path, capsys, model, extra):
    code, out, err = run(["train", model, *QUICK, "--out", str(tmp_path), *extra], capsys)
    assert code == 0, err
    files = set(os.listdir(tmp_path))
    assert {"model.npz", "metrics.json", "loss_curves.png", "reconstructions.png"} <= files
    if model == "cvae":
        assert "samples.png" in files  # one row per class
    code, out, err = run(["evaluate", str(tmp_path / "model.npz"), "--k", "2", "--max-examples", "20"],
                         capsys)
    assert code == 0, err


def test_mnist_from_data_dir(tmp_path, capsys):
    import numpy as np

    from npae import datasets
    rng = np.random.default_rng(0)
    # subsets under names of their own: the official names must hold the official files
    for prefix, n in (("train40", 40), ("t10k10", 10)):
        datasets.write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                           rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        datasets.write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz",
                           rng.integers(0, 10, n, dtype=np.uint8))
    out_dir = tmp_path / "out"
    code, out, err = run(["train", "vae", "--data", "mnist", "--data-dir", str(tmp_path), "--hidden", "16",
                          "--train-split", "train40", "--test-split", "t10k10",
                          "--out", str(out_dir), *QUICK], capsys)
    assert code == 0, err
    assert "40 train / 10 held-out" in out and "manifold_grid.png" in os.listdir(out_dir)


@pytest.mark.parametrize("argv, status, match", [
    (["train", "gan"], 2, "invalid choice: 'gan'"),
    (["train", "vae", "--data", "cifar"], 2, "invalid choice: 'cifar'"),
    (["train", "vae", "--data", "mnist", "--data-dir", "{tmp}/none"], 1, "not found"),
    (["train", "vae", "--data", "mnist", "--data-dir", "{tmp}/corrupt"], 1, "not an IDX file"),
    (["train", "vae", "--out", "{tmp}/a_file/run"], 1, "cannot write to output folder"),
    (["train", "cae", "--hidden", "8"], 1, "one-layer encoder"),
    (["train", "vae", "--epochs", "0"], 1, "epochs must be >= 1"),
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
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own exit for a bad command line
        code = exc.code
    err = capsys.readouterr().err
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npae") and "error" in lines[0], err
    assert match in lines[0] and "Traceback" not in err


def test_python_dash_m_npae_help():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "npae", "train", "--help"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0 and "--latent-dim" in done.stdout


def test_resume_continues_the_checkpoint_bit_for_bit(tmp_path, capsys):
    import numpy as np
    import npae
    base = ["train", "ae", "--no-progress", "--max-train", "200", "--hidden", "8"]
    assert run([*base, "--epochs", "4", "--out", str(tmp_path / "full")], capsys)[0] == 0
    assert run([*base, "--epochs", "2", "--out", str(tmp_path / "cut")], capsys)[0] == 0
    assert (tmp_path / "cut" / "checkpoint.npz").exists()
    code, out, err = run([*base, "--epochs", "4", "--out", str(tmp_path / "cut"), "--resume"], capsys)
    assert code == 0, err
    full, resumed = npae.load(str(tmp_path / "full" / "model.npz")), npae.load(str(tmp_path / "cut" / "model.npz"))
    for name in full.params:
        np.testing.assert_array_equal(full.params[name], resumed.params[name])


def test_resume_without_a_checkpoint_is_one_line(tmp_path, capsys):
    code, out, err = run(["train", "ae", *QUICK, "--out", str(tmp_path / "none"), "--resume"], capsys)
    assert code == 1 and err.count("\n") == 1 and "no checkpoint" in err


def test_divergence_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from npae.training import DivergenceError

    def diverge(*args, **kwargs):
        raise DivergenceError("training diverged at epoch 1, batch 3: non-finite recon",
                              epoch=0, batch=2, source="loss term 'recon'")
    monkeypatch.setattr("npae.model.Model.fit", diverge)
    code, out, err = run(["train", "ae", *QUICK, "--out", str(tmp_path / "d")], capsys)
    assert code == 1 and err.startswith("npae: error: training diverged") and "Traceback" not in err
