"""``explorer.html`` without a browser: the page is one self-contained file (nothing fetched, no
external script, style, font or link), it stays small (the main job's and an MNIST-size run's under
2 MB), the decoder it embeds is the model's (its steps, decoded from the page's base64 float32 and
run in NumPy, give ``model.decode`` within 1e-5 for dense, conditional, Gaussian and convolutional
decoders), and ``npae explore`` refuses what is not a finished run and never replaces a file
unasked. The page in a real browser: tests/test_explorer_browser.py."""
import json
import os
import re

import numpy as np
import pytest

from npae import ConditionalVAE, VAE, Autoencoder, datasets, plotting
from npae.app import cli, explorer, runs

MB = 1_000_000


@pytest.fixture(autouse=True)
def no_tsne(monkeypatch):
    monkeypatch.setattr(plotting, "TSNE_MAX_POINTS", 0)


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def page_json(text):
    m = re.search(r'<script type="application/json" id="npae-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def digits(n=200):
    X, y, info = datasets.load_dataset("digits")
    return X[:n], y[:n], info


def assert_self_contained(text):
    """Nothing in the page reaches outside it."""
    lowered = text.lower()
    assert lowered.count("<script") == 2, "one data block and one inline script, no other"
    assert re.search(r"<script[^>]*\bsrc\s*=", lowered) is None
    assert re.search(r"\b(src|href|action|poster)\s*=", lowered) is None
    assert re.search(r"https?://", lowered) is None
    for needle in ("<link", "<iframe", "<img", "<object", "<embed", "@import", "url(", "fetch(",
                   "xmlhttprequest", "websocket", "eventsource", "import(", "sendbeacon", "<base"):
        assert needle not in lowered, needle


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "softplus", "tanh", "sigmoid"])
def test_decoder_steps_round_trip_to_model_decode(activation):
    X, y, info = digits()
    model = VAE(hidden=(16, 8), latent_dim=3, activation=activation, seed=1).fit(X, epochs=1)
    data = explorer.page_data(model, "vae", X, y, info, {})
    codes = np.random.default_rng(0).normal(size=(25, 3)) * 2
    page = explorer.reference_decode(data["decoder"], data["output"], 64, codes)
    assert np.max(np.abs(page - model.decode(codes))) <= 1e-5
    assert [s["name"] for s in data["decoder"]] == ["decoder.0", "decoder.1", "decoder.2"]
    assert [s["activation"] for s in data["decoder"]] == [activation, activation, "identity"]


@pytest.mark.parametrize("case", ["cvae", "gaussian-learned", "ae-identity", "conv"])
def test_every_decoder_kind_round_trips(case):
    X, y, info = digits(120)
    rng = np.random.default_rng(1)
    if case == "cvae":
        model = ConditionalVAE(n_classes=10, hidden=(16,), latent_dim=2).fit(X, y, epochs=1)
    elif case == "gaussian-learned":
        model = VAE(hidden=(16,), latent_dim=2, likelihood="gaussian", variance="learned").fit(X, epochs=1)
    elif case == "ae-identity":
        model = Autoencoder(hidden=(16,), latent_dim=2, output="identity", loss="mse").fit(X, epochs=1)
    else:
        model = VAE(hidden=(8,), latent_dim=2, arch="conv", image_shape=(8, 8)).fit(X[:40], epochs=1)
    data = explorer.page_data(model, case, X, y, info, {})
    codes = rng.normal(size=(10, 2))
    labels = rng.integers(0, 10, size=10)
    onehot = np.eye(10)[labels] if case == "cvae" else np.zeros((10, 0))
    page = explorer.reference_decode(data["decoder"], data["output"], 64, np.hstack([codes, onehot]))
    want = model.decode(codes, labels) if case == "cvae" else model.decode(codes)
    assert page.shape == want.shape and np.max(np.abs(page - want)) <= 1e-5
    if case == "conv":
        assert {s["kind"] for s in data["decoder"]} >= {"dense", "reshape", "conv_transpose2d", "flatten"}


def test_the_page_is_self_contained_and_small(tmp_path):
    X, y, info = digits()
    model = VAE(hidden=(128,), latent_dim=2).fit(X, epochs=1)
    path = explorer.write_page(model, "vae", X, y, info, {"neg_elbo": 30.0, "kl_per_dim": [1.0, 1.0],
                                                          "active_units": 2, "units": "nats"},
                               tmp_path / "explorer.html")
    text = open(path, encoding="utf-8").read()
    assert_self_contained(text)
    assert os.path.getsize(path) < 2 * MB
    data = page_json(text)
    assert data["points"]["n"] == X.shape[0] and data["latent_dim"] == 2 and len(data["grid"]) == 15
    codes = explorer._unb64(data["points"]["codes"], "f4", (X.shape[0], 2))
    assert np.max(np.abs(codes - model.encode(X))) < 1e-6  # float32 of the posterior means
    pixels = explorer._unb64(data["points"]["images"], "u1", X.shape)
    assert np.max(np.abs(pixels / 255 - X)) <= 0.5 / 255 + 1e-12


def test_an_mnist_size_page_stays_under_2_mb():
    """784 pixels, the default 128 hidden units: the points are capped by IMAGE_BYTES."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(3000, 784))
    y = rng.integers(0, 10, size=3000)
    info = dict(image_shape=(28, 28), unit_interval=True, classes=None, source="mnist", provenance="test")
    model = VAE(input_dim=784, hidden=(128,), latent_dim=2)
    text = explorer.render(explorer.page_data(model, "vae", X, y, info, {}))
    assert_self_contained(text)
    assert len(text.encode()) < 2 * MB
    assert page_json(text)["points"]["n"] == explorer.IMAGE_BYTES // 784


def test_a_latent_20_page_has_a_pca_plane_through_the_codes():
    X, y, info = digits()
    model = VAE(hidden=(32,), latent_dim=20).fit(X, epochs=2)
    data = explorer.page_data(model, "vae", X, y, info, {})
    plane = data["plane"]
    v1, v2, base = (np.array(plane[k]) for k in ("v1", "v2", "base"))
    assert plane["kind"] == "pca" and abs(v1 @ v2) < 1e-12 and abs(v1 @ v1 - 1) < 1e-12
    assert abs(base @ v1) < 1e-12 and abs(base @ v2) < 1e-12  # coordinates are plain projections
    mean = model.encode(X).mean(axis=0)
    assert np.allclose(base + (mean @ v1) * v1 + (mean @ v2) * v2, mean)  # the plane holds the mean


def test_train_writes_the_page_and_explore_rewrites_it_only_when_asked(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["train", "cvae", "--epochs", "1", "--no-progress", "--max-train", "300",
                           "--out", str(out)], capsys)
    page = out / "explorer.html"
    assert code == 0 and page.exists() and f"wrote {page}" in stdout
    data = page_json(page.read_text())
    assert data["n_classes"] == 10 and data["test"]["active_units"] >= 0
    before = page.read_bytes()
    code, _, err = run(["explore", str(out)], capsys)
    assert code == 1 and "already exists" in err and "--overwrite" in err and page.read_bytes() == before
    code, stdout, _ = run(["explore", str(out), "--overwrite"], capsys)
    assert code == 0 and "wrote" in stdout and page.read_bytes() == before  # the same run, the same page
    other = tmp_path / "elsewhere.html"
    code, _, _ = run(["explore", str(out), "--out", str(other)], capsys)
    assert code == 0 and page_json(other.read_text())["model"] == "ConditionalVAE"


def test_explore_refuses_what_is_not_a_finished_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    empty = tmp_path / "empty"
    empty.mkdir()
    half = tmp_path / "half"
    half.mkdir()
    (half / "checkpoint.npz").write_bytes(b"")
    nometrics = tmp_path / "nometrics"
    nometrics.mkdir()
    VAE(input_dim=64, hidden=(4,), latent_dim=2).save(nometrics / "model.npz")
    for target, says in [(tmp_path / "missing", "does not exist"), (tmp_path / "notes.txt", "not a folder"),
                         (empty, "holds no run"), (half, "did not finish"), (nometrics, "no metrics.json")]:
        code, out, err = run(["explore", str(target)], capsys)
        assert code == 1 and says in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (empty / "explorer.html").exists()


def test_explore_waits_for_no_run_it_would_write_beside(tmp_path, capsys):
    """A run still writing into the folder (its lock held) is not written into."""
    out = tmp_path / "run"
    assert run(["train", "ae", "--epochs", "1", "--no-progress", "--max-train", "100", "--out", str(out)],
               capsys)[0] == 0
    (out / "explorer.html").unlink()
    with runs.RunLock(out):
        code, _, err = run(["explore", str(out)], capsys)
    assert code == 1 and "in use" in err and not (out / "explorer.html").exists()
    assert run(["explore", str(out)], capsys)[0] == 0 and (out / "explorer.html").exists()
