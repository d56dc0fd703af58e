"""What refusing a hostile file costs, measured in a fresh Python process (so earlier tests'
allocations do not count): used by test_hostile_files.py (model files) and test_datasets.py (IDX
files)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])

_SCRIPT = r"""
import importlib, json, resource, sys, time, tracemalloc
module, name = sys.argv[1].rsplit(".", 1)
call = getattr(importlib.import_module(module), name)
out = []
for path in sys.argv[2:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        call(path)
        error = None
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    out.append(dict(path=path, error=error, seconds=seconds, traced=peak, rss_growth=grown * 1024))
print(json.dumps(out))
"""


def measure_calls(function, paths, *, env=None, timeout=120):
    """Call ``function`` (a dotted name such as ``"npae.load"``) on each of ``paths`` in one fresh
    process; one dict per path: ``error`` (``"TypeName: message"`` or None), ``seconds``,
    ``traced`` (tracemalloc's peak, bytes) and ``rss_growth`` (bytes)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = ROOT
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, function, *map(str, paths)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
