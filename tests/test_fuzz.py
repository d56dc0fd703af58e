"""Issue 24, "Must show": a hypothesis fuzz over the flags of ``npae train`` / ``npae evaluate`` and over
the estimators' constructor arguments, with hostile values (negative, zero, huge, 1e9, nan, inf,
strings, paths). Every outcome is a success or an npae error naming the argument; never another
exception, a traceback or the internal-error exit. In-process and tiny, so it takes seconds."""
import inspect
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npae
from npae.app import cli
from npae.training.loop import DivergenceError

#: Hostile command-line values: negative, zero, huge, 1e9, nan, inf, text, paths, empty.
HOSTILE = ["-1", "0", "1", "2", "0.5", "1e9", "1e308", "-1e308", "nan", "inf", "-inf", "abc", "",
           "99999999999999999999", "/etc/passwd", "../../x", "8x8", "0x0", "1x1", "3x7", "auto", "none"]

#: Flags whose large valid values are long but honest work (10**20 epochs): drawn from small values.
BOUNDED = {"--epochs": ["-1", "0", "1", "2", "nan", "abc", "1e9", ""]}
#: Flags the fuzz leaves alone: where a run writes, and --resume/--overwrite (tested in test_cli).
SKIP = {"--out", "--resume", "--overwrite", "-h", "--help", "--no-progress", "--download", "--data-dir"}


def _train_flags():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    train = sub.choices["train"]
    flags = []
    for action in train._actions:
        names = [s for s in action.option_strings if s.startswith("--")]
        if names and names[0] not in SKIP:
            flags.append((names[0], action.nargs == 0))
    return flags


FLAGS = _train_flags()


@st.composite
def train_argv(draw):
    model = draw(st.sampled_from(cli.MODELS))
    argv = ["train", model]
    chosen = draw(st.lists(st.sampled_from(FLAGS), min_size=1, max_size=4, unique=True))
    for flag, switch in chosen:
        if switch:
            argv.append(flag)
        else:
            argv += [flag, draw(st.sampled_from(BOUNDED.get(flag, HOSTILE)))]
    return argv, [flag for flag, _ in chosen]


def _check_outcome(code, err, flags, argv=()):
    """Success, or one npae error line that names a drawn flag or its value (a path, a data name)
    or says the run diverged; never a traceback or the internal-error exit."""
    assert "Traceback" not in err, err
    assert code in (0, cli.EXIT_ERROR, cli.EXIT_USAGE), (code, err)
    if code:
        line = err.strip().splitlines()[-1]
        assert line.startswith("npae") and "error" in line, err
        values = [v for v in argv if len(v) > 2 and not v.startswith("--")]
        named = any(f in err or f[2:].replace("-", "_") in err for f in flags)
        named = named or any(v in err for v in values)
        assert named or "diverged" in err or "logvar clamp" in err or "digits" in err, (flags, err)


@settings(max_examples=int(os.environ.get("NPAE_FUZZ_EXAMPLES", 30)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=train_argv())
def test_fuzz_train_flags(case, tmp_path_factory, capsys):
    argv, flags = case
    out = tmp_path_factory.mktemp("fuzz")
    base = ["--out", str(out / "run"), "--no-progress"]
    if "--epochs" not in flags:
        base += ["--epochs", "1"]
    if "--max-train" not in flags:
        base += ["--max-train", "32"]
    if "--hidden" not in flags:
        base += ["--hidden", "4"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(argv + base)
    captured = capsys.readouterr()
    _check_outcome(code, captured.err, flags, argv)


# ---------------------------------------------------------------------------- estimators
HOSTILE_VALUES = [-1, 0, 1, 2, 10 ** 9, 10 ** 30, 1e9, -1e9, math.nan, math.inf, -math.inf, 0.5, True, None,
                  "abc", "", "/etc/passwd", (), (0,), (-1,), (10 ** 9,), [3, "x"], {"a": 1}, object(),
                  np.float64(np.nan), np.int64(-5)]
ESTIMATORS = [npae.Autoencoder, npae.DenoisingAutoencoder, npae.SparseAutoencoder,
              npae.ContractiveAutoencoder,
              npae.VAE, npae.ConditionalVAE, npae.TwoLayerVAE, npae.SemiSupervisedVAE, npae.PCA]
X = (np.random.default_rng(0).random((24, 16)) < 0.4).astype(float)
Y = np.arange(24) % 3
#: Arguments whose huge values are honest but long work, drawn from small hostile values only.
SMALL_ONLY = {"k", "flow_steps", "hidden", "hidden1", "hidden2", "latent_dim", "latent_dim1", "latent_dim2",
              "classifier_hidden", "flow_hidden", "n_components"}
SMALL_VALUES = [-1, 0, 1, 2, 0.5, math.nan, math.inf, "abc", None, (), (0,), (-1,), [3, "x"], True]


@st.composite
def estimator_case(draw):
    cls = draw(st.sampled_from(ESTIMATORS))
    names = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    kwargs = {n: draw(st.sampled_from(_values_for(n))) for n in chosen}
    return cls, kwargs


def _values_for(name):
    return SMALL_VALUES if name in SMALL_ONLY else HOSTILE_VALUES


def _defaults(cls):
    params = inspect.signature(cls.__init__).parameters
    kw = {}
    if "input_dim" in params:
        kw["input_dim"] = 16
    if "n_classes" in params:
        kw["n_classes"] = 3
    for name, small in (("hidden", (4,)), ("hidden1", (4,)), ("hidden2", (4,)), ("classifier_hidden", (4,)),
                        ("latent_dim", 2), ("latent_dim1", 2), ("latent_dim2", 2), ("n_components", 2)):
        if name in params:
            kw[name] = small
    return kw


@settings(max_examples=int(os.environ.get("NPAE_FUZZ_EXAMPLES", 150)), deadline=None)
@given(case=estimator_case())
def test_fuzz_estimator_arguments(case):
    cls, kwargs = case
    args = {**_defaults(cls), **kwargs}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls(**args)
            if cls is npae.PCA:
                model.fit(X)
            else:
                model.fit(X, Y if model.takes_labels else None, epochs=1, batch_size=8, progress=False)
    except (npae.InputError, DivergenceError) as err:
        text = str(err)
        named = any(name in text for name in kwargs) or isinstance(err, DivergenceError)
        assert named, (cls.__name__, kwargs, text)
    except Exception as err:  # any other exception is a bug in npae
        pytest.fail(f"{cls.__name__}({kwargs}) raised {type(err).__name__}: {err}")


# ---------------------------------------------------------------------------- npae evaluate
EVAL_BOUNDED = {"--k": ["-1", "0", "1", "2", "nan", "abc", "1e9", "", "99999999999999999999"]}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz-eval") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["train", "vae", "--epochs", "1", "--hidden", "4", "--max-train", "32",
                         "--out", str(out), "--no-progress"]) == 0
    return out


def _eval_flags():
    sub = next(a for a in cli.build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return [(a.option_strings[-1], a.nargs == 0) for a in sub.choices["evaluate"]._actions
            if a.option_strings and a.option_strings[-1] not in SKIP]


@st.composite
def evaluate_argv(draw):
    chosen = draw(st.lists(st.sampled_from(_eval_flags()), min_size=1, max_size=3, unique=True))
    argv = []
    for flag, switch in chosen:
        argv += [flag] if switch else [flag, draw(st.sampled_from(EVAL_BOUNDED.get(flag, HOSTILE)))]
    return argv, [flag for flag, _ in chosen]


@settings(max_examples=int(os.environ.get("NPAE_FUZZ_EXAMPLES", 20)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=evaluate_argv())
def test_fuzz_evaluate_flags(case, small_run, capsys):
    argv, flags = case
    if "--max-examples" not in flags:
        argv += ["--max-examples", "16"]
    if "--k" not in flags:
        argv += ["--k", "2"]
    code = cli.main(["evaluate", str(small_run), *argv, "--no-progress"])
    _check_outcome(code, capsys.readouterr().err, flags, argv)
