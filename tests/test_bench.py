"""Smoke run of the benchmark, npae alone (tests never import PyTorch)."""
import json
import os
import subprocess
import sys

import numpy as np

from npae.app import bench


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
