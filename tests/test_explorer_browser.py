"""``explorer.html`` in a real browser (headless Chromium, the OS package, driven by Selenium): for
the main job's run, a run with latent size 20, a conditional VAE and a convolutional decoder, the
page's ``window.npaeDecode`` equals ``model.decode`` (max abs error <= 1e-5), moving the pointer
over the plane decodes the code under it (a new image, equal to ``model.decode`` there), clicking
a point shows that example's reconstruction (equal to ``model.reconstruct``), a second click draws
the interpolation strip, and the page logs no error. A screenshot of each page is saved (to
``$NPAE_EXPLORER_SHOTS`` when set, else the test's temporary folder).

Skips when selenium, chromium or chromedriver is missing (.ci/run installs them)."""
import json
import os
import shutil

import numpy as np
import pytest

from npae import VAE, datasets, load, plotting
from npae.app import cli, explorer
from npae.app.evaluate import _held_out

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = os.environ.get("NPAE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = os.environ.get("NPAE_CHROMEDRIVER") or shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("headless Chromium and chromedriver are not installed (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

TOL = 1e-5


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three runs of ``npae train`` (few epochs, the main job's settings otherwise) and a conv VAE."""
    root = tmp_path_factory.mktemp("explorer-runs")
    saved = plotting.TSNE_MAX_POINTS
    plotting.TSNE_MAX_POINTS = 0  # t-SNE takes seconds; the page does not use it
    try:
        made = {}
        for name, argv in [("main-job", ["vae", "--epochs", "5"]),
                           ("latent-20", ["vae", "--latent-dim", "20", "--epochs", "3"]),
                           ("cvae", ["cvae", "--epochs", "3"])]:
            out = root / name
            assert cli.main(["train", *argv, "--no-progress", "--out", str(out)]) == 0
            made[name] = out
    finally:
        plotting.TSNE_MAX_POINTS = saved
    X, y, info = datasets.load_dataset("digits")
    conv = VAE(hidden=(16,), latent_dim=2, arch="conv", image_shape=(8, 8)).fit(X[:64], epochs=1)
    out = root / "conv"
    out.mkdir()
    conv.save(out / "model.npz")
    explorer.write_page(conv, "vae", X[-100:], y[-100:], info, {}, out / "explorer.html")
    made["conv"] = out
    return made


def held_out(run):
    if not (run / "metrics.json").exists():  # the conv model: its page was written from these
        X, y, _ = datasets.load_dataset("digits")
        return X[-100:], y[-100:]
    spec = json.loads((run / "metrics.json").read_text())["data_spec"]
    Xt, yt, _ = _held_out(spec)
    return Xt, yt


def decode(model, Z, labels):
    return model.decode(Z, labels) if model.takes_labels else model.decode(Z)


@pytest.mark.parametrize("name", ["main-job", "latent-20", "cvae", "conv"])
def test_the_page_in_a_browser(name, runs, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    run = runs[name]
    model = load(run / "model.npz")
    Xt, yt = held_out(run)
    page = run / "explorer.html"
    browser.get(page.resolve().as_uri())
    Zdim = model.latent_dim

    # 1. the page's decoder is the model's
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(16, Zdim)) * 1.5
    labels = rng.integers(0, 10, size=16) if model.takes_labels else None
    got = np.array(browser.execute_script("return window.npaeDecode(arguments[0], arguments[1]);",
                                          codes.tolist(), None if labels is None else labels.tolist()))
    err = float(np.max(np.abs(got - decode(model, codes, labels))))
    print(f"\n{name}: npaeDecode vs model.decode on 16 codes: max abs error {err:.2e}; "
          f"page {page.stat().st_size / 1e6:.3f} MB")
    assert got.shape == (16, model.n_features_in_) and err <= TOL

    # 2. the pointer over the plane decodes the code under it, at once
    plane = browser.find_element(By.ID, "plane")
    state = "return window.npaeExplorer.state();"
    seen = []
    for dx, dy in [(-120, -90), (110, 80)]:
        ActionChains(browser).move_to_element_with_offset(plane, dx, dy).perform()
        s = browser.execute_script(state)
        label = None if s["label"] < 0 else np.array([s["label"]])
        want = decode(model, np.array([s["code"]]), label)[0]
        assert np.max(np.abs(np.array(s["decoded"]) - want)) <= TOL
        seen.append((s["code"], np.array(s["decoded"])))
    assert not np.allclose(seen[0][0], seen[1][0])
    assert np.max(np.abs(seen[0][1] - seen[1][1])) > 0.01, "the image did not change"

    # 3. clicking a point shows its reconstruction; a second click draws the interpolation strip
    for i in (3, 11):
        x, y = browser.execute_script("return window.npaeExplorer.pointPixel(arguments[0]);", i)
        ActionChains(browser).move_to_element_with_offset(plane, x - plane.size["width"] / 2,
                                                          y - plane.size["height"] / 2).click().perform()
        s = browser.execute_script(state)
        j = s["picked"][-1]  # point i, or one drawn on top of it
        recon = model.reconstruct(Xt[j:j + 1], yt[j:j + 1]) if model.takes_labels else \
            model.reconstruct(Xt[j:j + 1])
        assert np.max(np.abs(np.array(s["pickedRecon"]) - recon[0])) <= TOL
    assert len(s["picked"]) == 2 and len(s["strip"]) == 10
    a, b = (np.array(s["strip"][0]), np.array(s["strip"][-1]))
    ends = s["picked"]
    assert np.max(np.abs(a - b)) > 0 or ends[0] == ends[1]
    if model.takes_labels:
        assert browser.find_element(By.ID, "class-select").is_displayed()
    if Zdim > 2:
        assert len(browser.find_elements(By.CSS_SELECTOR, "#sliders input")) == Zdim
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    shots = os.environ.get("NPAE_EXPLORER_SHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    assert browser.save_screenshot(os.path.join(shots, f"explorer-{name}.png"))
