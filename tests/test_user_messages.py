"""Small things a user trips on: each model's [0, 1] message names its own fix; an unknown CLI option
gets the closest options and the subcommand's --help; ``python -m npae.tags KL-1`` shows that tag;
``npae evaluate`` with stderr joined to stdout (``2>&1``) prints its table without progress lines."""
import os
import subprocess
import sys

import numpy as np
import pytest

import npae
from npae import tags
from npae.app import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("model, fix, not_fix", [
    (npae.VAE(hidden=(4,), latent_dim=2, epochs=1, verbose=0), "likelihood='gaussian'", "loss="),
    (npae.TwoLayerVAE(hidden1=(4,), latent_dim1=2, hidden2=(4,), latent_dim2=2, epochs=1, verbose=0),
     "likelihood='gaussian'", "loss="),
    (npae.Autoencoder(hidden=(4,), epochs=1, verbose=0), "loss='mse'", "likelihood"),
])
def test_out_of_range_data_names_the_models_own_fix(model, fix, not_fix):
    X = np.random.default_rng(0).normal(size=(20, 5))
    with pytest.raises(npae.InputError, match="must lie in \\[0, 1\\]") as err:
        model.fit(X)
    assert fix in str(err.value) and not_fix not in str(err.value)
    if isinstance(model, npae.VAE):  # the step a student calls by hand says the same
        with pytest.raises(npae.InputError, match=fix):
            npae.VAE(5, hidden=(4,), latent_dim=2).loss_and_grads(X[:4])


@pytest.mark.parametrize("argv, expected", [
    (["train", "vae", "--epocs", "3"],
     "npae train: error: unrecognized option --epocs; did you mean --epochs? (see npae train --help)"),
    (["train", "vae", "--batch-sise=8"], "did you mean --batch-size?"),
    (["evaluate", "runs/x", "--max-exampels", "3"],
     "did you mean --max-examples? (see npae evaluate --help)"),
    (["train", "vae", "--qqqqqq"], "npae train: error: unrecognized option --qqqqqq (see npae train --help)"),
    (["train", "vae", "stray"], "npae train: error: unrecognized arguments: stray (see npae train --help)"),
])
def test_an_unknown_option_gets_a_suggestion_and_the_subcommands_help(argv, expected, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and expected in err, err


def test_tags_shows_the_tags_asked_for(capsys):
    assert tags.main(["KL-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("KL-1 ") and "npae/pairs/latent.py" in lines[0]
    assert lines[1].split() == ["derived", "in:", "docs/derivations/kl.md#kl-1"] and len(lines) == 2
    tags.main(["kl"])  # a prefix: all of its tags
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert listed and all(t.startswith("KL-") for t in listed) and "KL-1" in listed
    with pytest.raises(SystemExit) as exc:
        tags.main(["KL-99"])
    assert exc.value.code == 2 and "no tag 'KL-99'" in capsys.readouterr().err
    tags.main([])
    assert len(capsys.readouterr().out.splitlines()) == len(tags.code_tags())


def test_evaluate_keeps_progress_lines_out_of_a_joined_stdout(tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert cli.main(["train", "vae", "--epochs", "1", "--no-progress", "--max-train", "200",
                     "--out", str(out_dir)]) == 0
    capsys.readouterr()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "npae", "evaluate", str(out_dir), "--k", "5", "--max-examples", "40"]
    joined = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            timeout=120)
    assert joined.returncode == 0, joined.stdout
    assert "examples in" not in joined.stdout  # no "ELBO: 40 examples in 0.0 s" among the rows
    lines = joined.stdout.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("bound")))
    assert [line.split()[0] for line in lines[head + 1:head + 3]] == ["ELBO", "IWAE-5"]
    apart = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert apart.returncode == 0 and "IWAE-5: 40 examples in" in apart.stderr  # a log of its own
    assert apart.stdout == joined.stdout
