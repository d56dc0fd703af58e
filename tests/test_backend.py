"""The code you read is the code that runs.

* Every model trained under ``reference`` (the derived pairs) and under ``fused`` (the numba
  kernels) ends with the same parameters and history (float64, rtol 1e-10; float32 to its precision).
* The reading surface is on the training path: a pair replaced by one that raises makes ``fit`` fail
  under ``reference``; under ``fused`` that unit is a kernel and training goes on. And every tagged
  line of the step's pairs runs during a reference fit (traced line by line).
* Evaluation is forward only: fitting with or without ``validation_data``, or evaluating between
  two fits, gives bit-identical parameters; estimates are reproducible.
* Only the backend layer knows whether numba is there, and the import graph of npae has no cycle.
"""
import copy
from pathlib import Path

import numpy as np
import pytest

import npae
from npae import datasets, tags
from npae.fast import backends, kernels
from npae.pairs import functional, latent, updates
from _trace import tags_not_run

PACKAGE = Path(npae.__file__).resolve().parent
fused_only = pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")


@pytest.fixture(scope="module")
def digits():
    X, y = datasets.load_digits()
    return X[:256], y[:256]


def _models(dtype):
    """(id, factory, needs labels) for every model class and the variants that change the step."""
    ae = npae.Autoencoder(64, hidden=(16,), latent_dim=3, seed=1, dtype=dtype)
    return [
        ("ae-relu-bce", lambda: npae.Autoencoder(64, hidden=(16,), latent_dim=3, seed=1, dtype=dtype), False),
        ("ae-tanh-mse", lambda: npae.Autoencoder(64, hidden=(16, 8), latent_dim=3, activation="tanh",
                                                 output="identity", loss="mse", seed=2, dtype=dtype), False),
        ("ae-leaky-sigmoid-mse", lambda: npae.Autoencoder(64, hidden=(16,), latent_dim=3,
                                                          activation="leaky_relu", slope=0.2,
                                                          loss="mse", seed=3, dtype=dtype), False),
        ("dae", lambda: npae.DenoisingAutoencoder(64, hidden=(16,), latent_dim=3, noise="masking",
                                                  noise_level=0.3, seed=4, dtype=dtype), False),
        ("sae-kl", lambda: npae.SparseAutoencoder(64, hidden=(16,), latent_dim=8, penalty="kl",
                                                  sparsity_weight=0.5, seed=5, dtype=dtype), False),
        ("sae-l1", lambda: npae.SparseAutoencoder(64, hidden=(16,), latent_dim=8, penalty="l1",
                                                  code_activation="relu", seed=6, dtype=dtype), False),
        ("cae", lambda: npae.ContractiveAutoencoder(64, latent_dim=8, seed=7, dtype=dtype), False),
        ("vae-bernoulli", lambda: npae.VAE(64, hidden=(16,), latent_dim=2, seed=8, dtype=dtype), False),
        ("vae-gaussian-elu", lambda: npae.VAE(64, hidden=(16,), latent_dim=2, activation="elu",
                                              likelihood="gaussian", beta=0.5, seed=9, dtype=dtype), False),
        ("cvae", lambda: npae.ConditionalVAE(64, 10, hidden=(16,), latent_dim=2, seed=10, dtype=dtype), True),
        ("two-layer-vae-iwae", lambda: npae.TwoLayerVAE(64, hidden1=(12,), latent_dim1=4, hidden2=(6,),
                                                        latent_dim2=2, objective="iwae", k=3, seed=13,
                                                        dtype=dtype), False),
        ("semisupervised-m2", lambda: npae.SemiSupervisedVAE(64, 10, hidden=(12,), latent_dim=2,
                                                             classifier_hidden=(8,), seed=14,
                                                             dtype=dtype), "partial"),
        ("classifier-frozen", lambda: npae.Classifier(ae, 10, hidden=(8,), seed=11, dtype=dtype), True),
        ("classifier-trainable", lambda: npae.Classifier(ae, 10, freeze_encoder=False, seed=12,
                                                         dtype=dtype), True),
    ]


def _train(name, factory, labelled, data, backend, dtype, **fit_kwargs):
    X, y = data
    X = X.astype(dtype)
    if labelled == "partial":  # one row in three keeps its label, the others are unlabelled (-1)
        y = np.where(np.arange(y.size) % 3 == 0, y, -1)
    with npae.backend(backend):
        model = factory()
        kwargs = dict(epochs=3, batch_size=32, progress=False, **fit_kwargs)
        if name.startswith("vae"):
            kwargs["warmup_epochs"] = 2
        model.fit(X, y if labelled else None, **kwargs)
    return model


@fused_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", _models("float64"), ids=[c[0] for c in _models("float64")])
def test_both_backends_train_every_model_to_the_same_parameters(digits, case, dtype):
    name = case[0]
    factory = dict((c[0], c[1]) for c in _models(dtype))[name]
    ref = _train(name, factory, case[2], digits, "reference", dtype, clip_norm=5.0)
    fused = _train(name, factory, case[2], digits, "fused", dtype, clip_norm=5.0)
    rtol = 1e-10 if dtype == "float64" else 2e-4
    assert list(ref.params) == list(fused.params)
    for key in ref.params:
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=rtol, atol=rtol, err_msg=key)
    assert ref.history_.keys() == fused.history_.keys()
    for key, values in ref.history_.items():
        np.testing.assert_allclose(fused.history_[key], values, rtol=rtol, err_msg=key)


@fused_only
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "rmsprop"])
def test_both_backends_agree_for_every_optimizer(digits, optimizer):
    def train(backend):
        with npae.backend(backend):
            return npae.VAE(64, hidden=(16,), latent_dim=2, seed=3).fit(
                digits[0], epochs=2, batch_size=64, optimizer=optimizer, lr=1e-2, progress=False)

    ref, fused = train("reference"), train("fused")
    for key in ref.params:
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=1e-10, atol=1e-12)


def _raising(name):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} was called")
    return fail


@fused_only
@pytest.mark.parametrize("module, pair", [(functional, "relu_backward"), (functional, "dense_forward"),
                                          (functional, "bce_with_logits_loss"),
                                          (latent, "gaussian_kl_backward"),
                                          (latent, "reparameterize_forward"),
                                          (updates, "adam_update")])
def test_the_reading_surface_is_on_the_training_path(digits, monkeypatch, module, pair):
    """Replace one pair of the reading surface by a function that raises: training under
    ``reference`` fails with it, training under ``fused`` (where that unit is a kernel) does not."""
    monkeypatch.setattr(module, pair, _raising(pair))
    X = digits[0][:64]
    with npae.backend("reference"):
        with pytest.raises(RuntimeError, match=f"{pair} was called"):
            npae.VAE(64, hidden=(16,), latent_dim=2).fit(X, epochs=1, progress=False)
    with npae.backend("fused"):
        npae.VAE(64, hidden=(16,), latent_dim=2).fit(X, epochs=1, progress=False)


@fused_only
def test_the_first_run_runs_the_pairs_a_student_reads(tmp_path, monkeypatch, capsys):
    """``npae train vae`` with default settings (the README's first command) fails when
    ``functional.relu_backward`` raises: its every step runs the pairs. Under ``NPAE_BACKEND=fused``
    the same run trains (that unit is a kernel there), which shows the choice is the backend's."""
    from npae.app import cli
    monkeypatch.setattr(functional, "relu_backward", _raising("relu_backward"))
    monkeypatch.setenv("NPAE_DEBUG", "1")
    with npae.backend("auto"):
        assert cli.main(["train", "vae", "--out", str(tmp_path / "a"), "--no-progress"]) == cli.EXIT_BUG
    assert "relu_backward was called" in capsys.readouterr().err
    with npae.backend("fused"):
        assert cli.main(["train", "vae", "--epochs", "3", "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    import json
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["backend"] == "fused"


@fused_only
def test_auto_runs_reference_for_the_main_job_and_fused_where_kernels_pay(digits):
    """The rule of ``auto`` (:func:`npae.fast.backends.choose`) depends on the job alone: the main
    job (64-128-2, 1,527 digits, batch 64, 100 epochs: 2,400 steps) runs the pairs; an MNIST-size
    VAE over 20 epochs of 5,000 images runs the kernels, two steps of it or one IWAE-500 estimate
    of 200 images (forward only) do not; a convolutional VAE runs them from 8,192 rows on;
    ``model.backend_`` records what ran, and an explicit backend is never second-guessed."""
    main_job = npae.VAE(64, hidden=(128,), latent_dim=2)
    mnist = npae.VAE(784, hidden=(400,), latent_dim=20)
    conv = npae.VAE(784, arch="conv", latent_dim=16)
    assert backends.choose(main_job, 2400 * 64, 2400) == "reference"
    assert backends.choose(main_job, 40_000 * 64, 40_000) == "fused"  # 1,700 epochs
    assert backends.choose(mnist, 800 * 128, 800) == "fused"  # 20 epochs of 5,000 images
    assert backends.choose(mnist, 2 * 128, 2) == "reference"
    assert backends.choose(mnist, 200 * 500) == "reference"  # the IWAE-500 estimate of 200 images
    assert backends.choose(conv, 64 * 128, 64) == "fused"
    assert backends.choose(conv, 32 * 128, 32) == "reference"
    assert backends.choose(conv, 128, 1) == "reference"
    with npae.backend("auto"):
        model = npae.VAE(64, hidden=(16,), latent_dim=2).fit(digits[0], epochs=1, progress=False)
        assert model.backend_ == "reference" and backends.ops.running == "reference"
    with npae.backend("fused"):
        assert npae.VAE(64, hidden=(16,), latent_dim=2).fit(
            digits[0], epochs=1, progress=False).backend_ == "fused"


def test_auto_outside_fit_and_after_a_fused_fit_is_reference(monkeypatch, digits):
    """Under ``auto``, a fit the rule gives to the kernels leaves ``reference`` behind it: a
    student's ``loss_and_grads`` call afterwards runs the pairs."""
    monkeypatch.setattr(npae.constants, "AUTO_FUSED_MIN_ENTRIES", 0)
    with npae.backend("auto"):
        model = npae.VAE(64, hidden=(16,), latent_dim=2).fit(digits[0][:64], epochs=1, progress=False)
        assert model.backend_ == ("fused" if "fused" in backends.available() else "reference")
        assert backends.ops.running == "reference"
        assert backends.ops.dense_act_backward is backends.ReferenceOps.dense_act_backward


@fused_only
def test_a_job_inside_a_job_leaves_the_outer_jobs_units(monkeypatch):
    """An estimate made while a fit runs (a job inside a job) gets its own choice, and afterwards the
    fit's units are back: the outer job never continues on the inner one's implementation."""
    model = npae.VAE(64, hidden=(16,), latent_dim=2)
    monkeypatch.setattr(npae.constants, "AUTO_FUSED_MIN_ENTRIES", 10_000)
    with npae.backend("auto"):
        with backends.for_job(model, 10_000) as outer:
            assert outer == "fused" and backends.ops.running == "fused"
            with backends.for_job(model, 1) as inner:
                assert inner == "reference" and backends.ops.running == "reference"
            assert backends.ops.running == "fused"
            assert backends.ops.dense_act_backward is backends.FusedOps.dense_act_backward
        assert backends.ops.running == "reference"


def test_import_npae_does_not_import_numba():
    """numba costs a third of a second to import; a run that uses no kernel never pays it."""
    import subprocess
    import sys
    code = "import sys, npae; npae.VAE(8, hidden=(4,)).fit(__import__('numpy').full((16, 8), .5), " \
           "epochs=1, progress=False); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "NPAE_BACKEND": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_every_tagged_line_of_the_step_runs_in_a_reference_fit(digits):
    """Trace a reference fit of a VAE and of the autoencoder family line by line: each tag the
    derivations give for the training step must sit on a line that actually ran."""
    X = digits[0][:96]

    def fits():
        with npae.backend("reference"):
            npae.VAE(64, hidden=(8,), latent_dim=2).fit(X, epochs=1, batch_size=48, progress=False,
                                                        warmup_epochs=1)
            npae.VAE(64, hidden=(8,), latent_dim=2, likelihood="gaussian").fit(X, epochs=1, batch_size=48,
                                                                               progress=False)
            npae.Autoencoder(64, hidden=(8,), latent_dim=2).fit(X, epochs=1, batch_size=48, progress=False)

    step_tags = ["DENSE-1", "DENSE-2", "DENSE-3", "DENSE-4", "ACT-2", "ACT-3", "LOSS-5", "LOSS-6",
                 "REPARAM-1", "REPARAM-2", "REPARAM-3", "REPARAM-4", "REPARAM-5", "REPARAM-6",
                 "KL-1", "KL-2", "KL-3", "ELBO-1", "ELBO-3", "ELBO-4", "ELBO-5", "ELBO-6", "ELBO-7",
                 "OPT-5", "OPT-6", "OPT-7", "CLIP-1"]
    not_run = tags_not_run(step_tags, fits)
    assert not not_run, f"tagged lines that a reference fit never ran: {not_run}"


# ----------------------------------------------------------------------------------------------
# evaluation is forward only
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [
    lambda: npae.VAE(64, hidden=(32,), latent_dim=2, seed=0, warm_start=True),
    lambda: npae.DenoisingAutoencoder(64, hidden=(16,), latent_dim=4, seed=0, warm_start=True),
    lambda: npae.ConditionalVAE(64, 10, hidden=(16,), latent_dim=2, seed=0, warm_start=True),
], ids=["vae", "dae", "cvae"])
def test_validation_and_evaluation_never_change_what_is_learned(digits, factory):
    X, y = datasets.load_digits()
    labelled = isinstance(factory(), npae.VAE) and factory().takes_labels
    train = (X[:1500], y[:1500]) if labelled else (X[:1500], None)
    held = (X[1500:], y[1500:]) if labelled else (X[1500:],)

    plain = factory().fit(*train, epochs=2, progress=False)
    watched = factory().fit(*train, epochs=2, progress=False, validation_data=held)
    assert "val_loss" in watched.history_
    for name, p in plain.params.items():
        assert p.tobytes() == watched.params[name].tobytes(), name

    # evaluating between two fits leaves the second fit bit-identical to one without it
    twice = factory().fit(*train, epochs=1, progress=False)
    probed = factory().fit(*train, epochs=1, progress=False)
    probed.evaluate(*held)
    probed.score(*held)
    if isinstance(probed, npae.VAE):
        lab = held[1] if labelled else None
        probed.neg_elbo(held[0], lab)
        probed.log_likelihood_estimate(held[0][:20], None if lab is None else lab[:20], k=10)
        probed.sample(5)
        probed.encode(held[0], lab)
    clamps = getattr(probed, "clamp_count_", None)
    twice.fit(*train, epochs=2, progress=False)
    probed.fit(*train, epochs=2, progress=False)
    for name, p in twice.params.items():
        assert p.tobytes() == probed.params[name].tobytes(), name
    if clamps is not None:
        assert probed.clamp_count_ == twice.clamp_count_


def test_estimates_are_reproducible_and_do_not_drift(digits):
    X = digits[0]
    vae = npae.VAE(64, hidden=(32,), latent_dim=2, seed=0).fit(X, epochs=2, progress=False)
    state = copy.deepcopy(vae.rng.bit_generator.state)
    first, again = vae.neg_elbo(X), vae.neg_elbo(X)
    assert first == again  # seed=None: the evaluation stream, started afresh at every call
    assert vae.neg_elbo(X, seed=3) == vae.neg_elbo(X, seed=3)
    assert vae.neg_elbo(X, seed=3) != vae.neg_elbo(X, seed=4)
    assert vae.log_likelihood_estimate(X[:10], k=20) == vae.log_likelihood_estimate(X[:10], k=20)
    a, b = vae.sample(4), vae.sample(4)
    assert not np.array_equal(a, b)  # the sampling stream moves on: new draws at every call ...
    np.testing.assert_array_equal(vae.sample(4, seed=1), vae.sample(4, seed=1))  # ... or a seed
    assert vae.rng.bit_generator.state == state  # ... and the training generator never moved


def test_evaluation_touches_no_gradient_buffer_and_no_counter(digits):
    X = digits[0]
    vae = npae.VAE(64, hidden=(32,), latent_dim=2, seed=0).fit(X, epochs=1, progress=False)
    grads = vae.flat_params.grad_data.copy()
    count = vae.clamp_count_
    caches = [step.cache for step in vae.encoder.steps + vae.decoder.steps]
    vae.evaluate(X)
    vae.neg_elbo(X, n_samples=3)
    vae.log_likelihood_estimate(X[:16], k=8)
    vae.reconstruct(X)
    np.testing.assert_array_equal(vae.flat_params.grad_data, grads)
    assert vae.clamp_count_ == count
    assert [step.cache for step in vae.encoder.steps + vae.decoder.steps] == caches


# ----------------------------------------------------------------------------------------------
# the backend switch
# ----------------------------------------------------------------------------------------------
def test_switch_and_context():
    start = npae.get_backend()
    assert start in backends.available()
    with npae.backend("reference") as ops:
        assert npae.get_backend() == "reference" and ops.name == "reference"
        assert backends.ops.dense_act_forward is backends.ReferenceOps.dense_act_forward
    assert npae.get_backend() == start
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        npae.set_backend("gpu")
    assert npae.get_backend() == start


# ----------------------------------------------------------------------------------------------
# structure
# ----------------------------------------------------------------------------------------------
BACKEND_LAYER = {"backends.py", "kernels.py", "conv_kernels.py"}


def test_only_the_backend_layer_knows_about_numba():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in BACKEND_LAYER:
            continue
        text = path.read_text(encoding="utf-8")
        for word in ("import numba", "from numba", "kernels.ENABLED", "NPAE_JIT", "from . import kernels",
                     "from .kernels", "import kernels"):
            if word in text:
                offenders.append(f"{path.name}: {word}")
    assert not offenders, offenders


def test_kernels_carry_no_equation_tags():
    """Tags sit on the reference code; a kernel's docstring names the unit it replaces."""
    in_kernels = [t for t, places in tags.code_tags().items() if any("kernels.py" in p for p in places)]
    assert not in_kernels, in_kernels
    for name in ("bias_act_forward", "act_backward", "bce_with_logits", "adam", "reparam_kl_forward",
                 "reparam_kl_backward"):
        assert "Reference" in getattr(kernels, f"_{name}").__doc__
