"""Smoke run of the benchmark, npae alone (tests never import PyTorch: the process case's peers
run in child processes, when installed)."""
import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import npae
from npae.app import bench, bench_process, cli


def test_run_case_and_table_without_torch():
    rng = np.random.default_rng(0)
    X = (rng.random((300, 20)) < 0.3).astype(np.float64)
    res = bench.run_case("smoke", X[:256], X[256:], hidden=(8,), latent_dim=2, batch=64,
                         dtype="float32", epochs=2, lr=1e-3, torch=None)
    assert res["npae_s"] > 0 and res["npae_gflops"] > 0 and "torch_s" not in res
    assert np.isfinite(res["npae_test_nelbo"])
    report = {"machine": bench.machine_info() | {"torch": None}, "peak_gflops": {"float32": 1.0},
              "results": [dict(res, peak_gflops=1.0, peak_fraction=res["npae_gflops"])]}
    table = bench.format_table(report)
    assert "| smoke | float32 |" in table and "–" in table


def test_step_flops_counts_forward_and_backward():
    # one 3->2 layer each side, batch 1: forward 6+6 MACs, backward dW 12 and dx 6 (decoder only)
    assert bench.step_flops([3, 2], [2, 3], 1) == 2.0 * (3 * 12 - 6)


def test_main_quick_tiny_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--no-torch", "--no-jax", "--cases", "tiny", "--dtypes", "float32",
                       "--epochs", "2", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    (res,) = report["results"]
    assert res["dtype"] == "float32" and 0 < res["peak_fraction"] < 1.5


def test_importing_npae_and_bench_does_not_import_torch():
    code = "import sys, npae, npae.app.bench; assert 'torch' not in sys.modules and 'jax' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)


def test_busy_processes_start_and_stop_and_slowdowns_are_reported(tmp_path):
    procs = bench.start_busy(1, seconds=30)
    try:
        assert all(p.poll() is None for p in procs)
    finally:
        bench.stop_busy(procs)
    assert all(p.poll() is not None for p in procs)
    results = [{"case": "c", "key": "tiny", "dtype": "float32", "npae_s": 1.0, "torch_s": 2.0,
                "peers": ["torch"], "busy": 0},
               {"case": "c", "key": "tiny", "dtype": "float32", "npae_s": 1.5, "torch_s": 6.0,
                "peers": ["torch"], "busy": 2}]
    bench._slowdowns(results)
    assert results[1]["npae_slowdown"] == 1.5 and results[1]["torch_slowdown"] == 3.0


def test_iwae_case_reports_decoder_gflops():
    X = np.random.default_rng(0).random((4, 784))
    res = bench.run_iwae_case(X, k=3, n=2, hidden=(8,), latent_dim=2, repeats=1)
    assert res["seconds"] > 0 and res["decoder_gflops"] > 0


# --------------------------------------------------------------------------------------------------
# The whole-process case (npae.app.bench_process)
# --------------------------------------------------------------------------------------------------
def test_process_case_times_npae_cold_and_warm_and_notes_absent_peers(monkeypatch, capsys, tmp_path):
    # the peers count as not installed here (their own test runs them): listed, never an error
    monkeypatch.setattr(bench_process, "_installed", lambda library: library == "npae")
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--cases", "process", "--epochs", "2", "--json", str(path)]) == 0
    (res,) = json.loads(path.read_text())["results"]
    assert res["key"] == "process" and res["epochs"] == 2 and res["repeats"] == 1
    assert res["not_installed"] == ["torch", "jax"] and res["faster_peer"] is None
    by_name = {cmd["command"]: cmd for cmd in res["commands"]}
    for backend in ("default", "NPAE_BACKEND=reference", "NPAE_BACKEND=fused"):
        for cache in ("cold", "warm"):
            cmd = by_name[f"npae ({backend}), {cache} cache"]
            assert len(cmd["times"]) == 1 and 0 < cmd["min_s"] == cmd["median_s"] < 120
            assert np.isfinite(cmd["final_loss"]) and cmd["backend_used"] in ("reference", "fused")
            assert cmd["session_backend"] == ("auto" if backend == "default" else backend.split("=")[1])
    assert by_name["npae (default), cold cache"]["backend_used"] == "reference"  # the main job runs the pairs
    fused_cold, fused_warm = (by_name[f"npae (NPAE_BACKEND=fused), {c} cache"] for c in ("cold", "warm"))
    assert fused_warm["runs"][0]["cache_files"] > 0  # the warm run found a cache the cold one filled
    assert fused_warm["final_loss"] == fused_cold["final_loss"]  # the cache does not change a bit
    table = capsys.readouterr().out
    assert "| command | backend | median s | min s | final loss | ratio vs faster peer |" in table
    assert "| npae (NPAE_BACKEND=fused), warm cache | fused |" in table
    assert "| PyTorch (eager, 1 thread) | torch | not installed: skipped |" in table


def test_process_case_runs_the_installed_peers():
    peers = [lib for lib in ("torch", "jax") if bench_process._installed(lib)]
    if not peers:
        pytest.skip("neither PyTorch nor JAX is installed")
    res = bench_process.run_process_case(quick=True, epochs=1, backends=("reference",), peers=peers)
    for cmd in res["commands"]:
        assert cmd["error"] is None, cmd["error"]
        # after one epoch every library beats coin flips on each of the 64 pixels (64 ln 2 nats)
        assert cmd["median_s"] > 0 and cmd["final_loss"] < 64 * np.log(2)
    losses = [cmd["final_loss"] for cmd in res["commands"]]
    assert max(losses) < 1.2 * min(losses)
    assert res["faster_peer"] in peers and res["commands"][0]["ratio"] > 0
    assert "| – |" in "\n".join(bench_process.format_process_table(res))


def test_process_script_trains_the_model_the_cli_trains(monkeypatch, tmp_path):
    """The npae script's model, data and fit settings are those of ``npae train vae`` (run here up
    to its call of fit, which records its arguments and stops the command)."""
    settings, X = bench_process.main_job_settings()
    script = bench_process.write_scripts(tmp_path, settings, X, ["npae"])["npae"]
    with open(script) as fh:
        S = ast.literal_eval(fh.readline()[len("S = "):])
    seen = {}

    def fit(self, X, y=None, **kwargs):
        seen.update(params=self.get_params(), X=X, y=y, kwargs=kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(npae.VAE, "fit", fit)
    assert cli.main(["train", "vae", "--out", str(tmp_path / "run")]) == cli.EXIT_INTERRUPTED
    assert npae.VAE(**S["model"]).get_params() == seen["params"]
    assert np.array_equal(np.load(S["data"]), seen["X"]) and seen["y"] is None
    ran = {**seen["params"], **seen["kwargs"]}  # the training settings: the model's, or fit's overrides
    for name in ("epochs", "batch_size", "lr", "threads"):
        assert S["fit"][name] == ran[name]
    assert seen["kwargs"].get("warmup_epochs", 0) == 0  # the script leaves fit's default, 0
    params = seen["params"]
    assert (S["hidden"], S["latent_dim"], S["dtype"], S["seed"]) == (
        params["hidden"], params["latent_dim"], params["dtype"], params["seed"])
    training = ("batch_size", "lr", "epochs")
    assert [S[k] for k in training] == [ran[k] for k in training]
