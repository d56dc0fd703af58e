"""Every demo runs in quick mode, exits with status 0 and writes its PNGs (all demos in one child
interpreter via runpy; RuntimeWarnings are errors there too)."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMOS = sorted(glob.glob(os.path.join(ROOT, "demos", "*.py")))
SHARED_MNIST = os.environ.get("NPAE_DATA") or os.path.join(ROOT, "..", "shared", "data", "mnist")

#: PNGs each demo must write in quick mode.
EXPECTED = {
    "ae_vs_pca_moons": ["ae_vs_pca_moons.png"],
    "linear_ae_pca": ["linear_ae_pca.png"],
    "denoising": ["denoising.png"],
    "sparse_codes": ["sparse_codes.png"],
    "contractive": ["contractive.png"],
    "pretraining_transfer": ["pretraining_transfer.png"],
    "vae_digits": ["vae_reconstructions.png", "vae_samples.png", "vae_manifold_grid.png",
                   "vae_latent_scatter.png", "vae_loss_curves.png"],
    "latent_size_sweep": ["latent_size_sweep.png", "latent_size_samples.png"],
    "interpolation_attributes": ["interpolation_attributes.png"],
    "conditional_vae": ["conditional_vae.png"],
    "estimator_variance": ["estimator_variance.png"],
    "gradcheck_tour": ["gradcheck_tour.png"],
    "mnist_vae": ["mnist_reconstructions.png", "mnist_manifold_grid.png", "mnist_latent_scatter.png"],
    "conv_vae": ["conv_vae_reconstructions.png", "conv_vae_samples.png", "conv_vae_elbo.png"],
    "bounds": ["bounds.png", "bounds_ladder.png", "bounds_effects.png"],
    "semisupervised": ["semisupervised.png", "semisupervised_samples.png"],
    "unbalanced_cvae": ["unbalanced_cvae.png"],
    "cvae_agreement": ["cvae_agreement.png", "cvae_samples.png", "cvae_traversal.png"],
    "ae_vs_vae_latent": ["ae_vs_vae_latent.png"],
    "elbo_gap": ["elbo_gap.png"],
    "mc_vs_importance": ["mc_vs_importance.png"],
    "overcomplete_identity": ["overcomplete_identity.png"],
    "denoising_field": ["denoising_field.png"],
    "beta_sweep": ["beta_sweep.png"],
    "die_prior": ["die_prior.png"],
    "sweep_dask": ["sweep_dask.png"],
}


def test_every_demo_is_listed():
    names = {os.path.splitext(os.path.basename(p))[0] for p in DEMOS}
    assert names == set(EXPECTED)
    readme = open(os.path.join(ROOT, "demos", "README.md")).read()
    for name in names:
        assert f"{name}.py" in readme, f"demos/README.md does not list {name}.py"


#: Runs every demo in one interpreter (imports paid once), with BLAS on one thread: the demos'
#: matrices are small, and on a busy machine a multithreaded BLAS spends more time waiting than
#: computing. Each demo's stdout goes to <out>/<name>.log and its status to <out>/<name>.status.
DRIVER = r"""
import contextlib, io, os, runpy, sys, traceback, warnings
warnings.simplefilter("error", RuntimeWarning)
base, demos, extra = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
for path in demos:
    name = os.path.splitext(os.path.basename(path))[0]
    out = os.path.join(base, name)
    os.makedirs(out, exist_ok=True)
    argv = [path, "--quick", "--out", out]
    if name == "mnist_vae":
        argv += extra
    sys.argv = argv
    buf, status = io.StringIO(), "0"
    os.chdir(out)
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        status = "0" if exc.code in (0, None) else f"exit {exc.code}"
    except BaseException:
        status = traceback.format_exc()
    with open(os.path.join(out, name + ".log"), "w") as fh:
        fh.write(buf.getvalue())
    with open(os.path.join(out, name + ".status"), "w") as fh:
        fh.write(status)
"""


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("demos")
    extra = ["--data-dir", SHARED_MNIST if os.path.isdir(SHARED_MNIST) else str(base / "no_mnist")]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               XDG_CACHE_HOME=str(base / "cache"),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NPAE_DATA", None)
    subprocess.run([sys.executable, "-c", DRIVER, str(base), ",".join(DEMOS), *extra], env=env,
                   cwd=str(base), check=True, timeout=600)
    return base


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: os.path.basename(p))
def test_demo_quick(path, demo_runs):
    name = os.path.splitext(os.path.basename(path))[0]
    out = demo_runs / name
    status = (out / f"{name}.status").read_text()
    assert status == "0", f"{name} failed:\n{status}"
    printed = (out / f"{name}.log").read_text()
    if name == "mnist_vae" and not os.path.isdir(SHARED_MNIST):
        assert "MNIST not available" in printed
        return
    for png in EXPECTED[name]:
        assert (out / png).is_file(), f"{name} did not write {png}"
        assert f"wrote {out / png}" in printed
