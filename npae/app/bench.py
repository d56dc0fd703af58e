"""Training-speed benchmark: the same VAE in npae and, when they can be imported, in PyTorch and JAX.

    python -m npae.app.bench [--quick] [--json PATH] [--busy N] [--cases main tiny mnist conv iwae process]
                             [--repeats N]

Per case (architecture, batch, dtype) every library trains the same Bernoulli VAE (ReLU MLP
encoder emitting [mu | logvar], ReLU MLP decoder emitting logits), from the same initial weights
(npae's, copied into the others), with Adam and the same batch size, on the same data. The peers:
PyTorch (eager), JAX with ``jax.jit`` of one step called per batch, and JAX with ``jax.jit`` of a
``lax.scan`` of that step over an epoch (what an expert picks for fast small models on a CPU).
Epochs alternate npae, torch, jax-step, jax-scan, npae, ... so drift of the machine (clock, other
jobs) hits all alike, with an untimed pause of 0.2 s before each MNIST-size epoch so that one
library's spinning worker threads have gone idle when the next starts (on the tiny cases, 3-15 ms
epochs, a pause would only cool the caches). ``--busy N`` runs every case a second time with N
busy-loop processes of its own on the machine (they stop by themselves) and reports each library's
slowdown against the quiet run. The ``main`` case is the main job's training (``npae train vae``:
64-128-2 on 1,527 digits, 100 epochs, batch 64, lr 2e-3, held-out data evaluated after every epoch,
as the CLI does); ``conv`` is npae's ``arch="conv"`` VAE on MNIST (strided 3x3 convolutions to 32 and
64 channels and transposed convolutions back, float32) against ``torch.nn.Conv2d`` /
``ConvTranspose2d`` with the same shapes (no JAX twin); ``iwae`` times the IWAE-500 estimate of an
MNIST-size float32 VAE and the GFLOP/s of its decoder products. Reported:
median seconds per epoch (the first epoch, which includes compilation, is left out), the ratio
torch/npae (> 1: npae is faster), achieved GFLOP/s of the matrix products and their fraction of this
machine's GEMM peak measured in the same run (the best of a large ``np.dot`` timed before and after
the cases), and for the MNIST case the test
negative ELBO of both (one sample per test image, nats).

The twins and the peers' epochs live in :mod:`npae.app.bench_peers`; the whole-process case
(``--cases process``: seconds from process start to trained model, cold and warm numba cache) in
:mod:`npae.app.bench_process`. PyTorch is never imported by npae itself: only there, and only when
present.
"""
import argparse
import gzip
import importlib.metadata
import json
import os
import platform
import statistics
import time

import numpy as np

from npae.app.bench_peers import JaxPeer, TorchPeer, import_jax, import_torch
from npae.app.bench_process import format_process_table, run_process_case
from npae.fast import backends
from npae.data import datasets
from npae.models.layers import Activation, Dense
from npae.models.conv_layers import Conv2D, ConvTranspose2D
from npae.training.callbacks import Callback
from npae.training.optim import Adam
from npae.models.vae import VAE

#: Where the benchmark looks for real MNIST: $NPAE_DATA, then a shared data folder beside the project.
MNIST_DIRS = tuple(d for d in (os.environ.get("NPAE_DATA"),
                               os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))
                   if d)


# --------------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------------
def blas_threads():
    """Threads npae's BLAS uses: OpenBLAS/OMP environment settings, else the usable cores."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def gemm_peak(dtype, n=2048, repeats=7):
    """Best GFLOP/s of an (n, n) @ (n, n) product in ``dtype`` (SGEMM for float32, DGEMM for float64)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty_like(a)
    np.dot(a, b, out=out)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "blas_threads": blas_threads(),
            "python": platform.python_version(), "numpy": np.__version__,
            "npae_backend": backends.get_backend()}


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def _read_idx_images(path):
    """Images of a gzip IDX3 file as (N, rows·cols) floats in [0, 1]."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    n, rows, cols = (int.from_bytes(data[k:k + 4], "big") for k in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows * cols) / 255.0


def mnist_split(seed=0):
    """``(train, test, source)``: t10k[:8000] and t10k[8000:] of real MNIST when a data folder is
    present, else synthetic Bernoulli images of the same shape."""
    for folder in MNIST_DIRS:
        path = os.path.join(folder, "t10k-images-idx3-ubyte.gz")
        if os.path.exists(path):
            X = _read_idx_images(path)
            return X[:8000], X[8000:], "MNIST t10k"
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 784)) ** 3  # a few blurry "digits"
    X = (rng.random((10000, 784)) < prototypes[rng.integers(0, 10, 10000)]).astype(np.float64)
    return X[:8000], X[8000:], "synthetic"


# --------------------------------------------------------------------------------------------------
# FLOP count: matrix products of one training step
# --------------------------------------------------------------------------------------------------
def step_flops(sizes_enc, sizes_dec, batch):
    """Multiply-adds ×2 of forward (x W), backward (dW and dx, except dx of the first layer)."""
    enc = list(zip(sizes_enc[:-1], sizes_enc[1:]))
    dec = list(zip(sizes_dec[:-1], sizes_dec[1:]))
    macs = sum(i * o for i, o in enc + dec)
    first = enc[0][0] * enc[0][1]
    return 2.0 * batch * (3 * macs - first)


def model_step_flops(model, batch):
    """``step_flops`` for any npae VAE chains (dense and convolution layers): 2 × multiply-adds of
    the forward products, of the weight gradients, and of the input gradients except the encoder's
    first layer with weights. A convolution's products are counted as im2col + GEMM computes them
    (every tap of every output position, padding included)."""
    total, first = 0, None
    for seq, shape in ((model.encoder, (model.n_features_in_ + int(model.n_classes),)),
                       (model.decoder, (model.latent_dim + int(model.n_classes),))):
        for layer in seq.layers:
            if isinstance(layer, Dense):
                macs, shape = layer.n_in * layer.n_out, (layer.n_out,)
            elif isinstance(layer, (Conv2D, ConvTranspose2D)):
                out = layer.output_shape(shape)
                kernel = layer.kernel[0] * layer.kernel[1]
                if isinstance(layer, Conv2D):  # every output position sums C_in·k² products
                    macs = out[0] * out[1] * out[2] * shape[0] * kernel
                else:  # every input position stamps C_out·k² products
                    macs = shape[0] * shape[1] * shape[2] * out[0] * kernel
                shape = out
            else:
                shape = shape if isinstance(layer, Activation) else layer.output_shape(shape)
                continue
            total += macs
            first = macs if first is None else first
    return 2.0 * batch * (3 * total - first)


# --------------------------------------------------------------------------------------------------
# One training case
# --------------------------------------------------------------------------------------------------
def run_case(name, X, X_test, hidden, latent_dim, batch, dtype, epochs, lr, torch=None, jax=None, seed=0,
             settle=0.0, validation=False, arch="mlp"):
    """Train npae and each peer for ``epochs`` alternating epochs; return a dict of results.

    ``settle``: seconds to wait, untimed, before each epoch, so that the worker threads of the
    library that ran last (OpenBLAS and OpenMP threads spin for a while after their work) are idle
    and do not steal the cores from the next one. ``validation``: npae evaluates ``X_test`` after
    every epoch, as ``npae train`` does (timed with the epoch). ``arch``: the VAE's layers
    (``"conv"``: the convolutional VAE; its torch twin is made layer by layer, there is no JAX twin).
    """
    X = X.astype(dtype)
    X_test = None if X_test is None else X_test.astype(dtype)
    model = VAE(X.shape[1], hidden=hidden, latent_dim=latent_dim, dtype=dtype, seed=seed, arch=arch)
    peers = []
    if torch is not None:
        peers.append(TorchPeer(model, X, batch, latent_dim, lr, seed, torch))
    if jax is not None and arch == "mlp":
        peers.append(JaxPeer(model, X, batch, latent_dim, lr, seed, jax, scan=False))
        peers.append(JaxPeer(model, X, batch, latent_dim, lr, seed, jax, scan=True))
    times = {"npae": [], **{p.name: [] for p in peers}}

    def peer_epochs():
        for peer in peers:
            time.sleep(settle)
            t0 = time.perf_counter()
            peer.epoch()
            times[peer.name].append(time.perf_counter() - t0)

    # npae trains in one fit(epochs=...) call, as a user would; a callback (the public hook,
    # npae.training.callbacks) closes the timer of the previous epoch as the next begins, runs one
    # epoch of every peer (untimed for npae), and starts the next timer.
    started = []

    class EpochTimer(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if started:
                times["npae"].append(time.perf_counter() - started[-1])
                peer_epochs()
            time.sleep(settle)
            started.append(time.perf_counter())

    model.fit(X, epochs=epochs, batch_size=batch, optimizer=Adam(lr=lr), progress=False,
              validation_data=X_test if validation else None, callbacks=[EpochTimer()])
    times["npae"].append(time.perf_counter() - started[-1])
    peer_epochs()

    n_full, rest = divmod(X.shape[0], batch)
    flops = n_full * model_step_flops(model, batch) + (model_step_flops(model, rest) if rest else 0.0)

    def median(ts):  # leave out the first epoch (compilation, warm caches) when there are others
        return statistics.median(ts[1:] if len(ts) > 1 else ts)

    res = {"case": name, "dtype": np.dtype(dtype).name, "batch": batch, "epochs": epochs,
           "n_train": int(X.shape[0]), "npae_epoch_s": times["npae"], "npae_s": median(times["npae"]),
           "npae_total_s": float(sum(times["npae"])), "npae_gflops": flops / median(times["npae"]) / 1e9,
           "peers": [p.name for p in peers]}
    for peer in peers:
        res[f"{peer.name}_epoch_s"] = times[peer.name]
        res[f"{peer.name}_s"] = median(times[peer.name])
        res[f"{peer.name}_gflops"] = flops / res[f"{peer.name}_s"] / 1e9
        res[f"{peer.name}_ratio"] = res[f"{peer.name}_s"] / res["npae_s"]
    if X_test is not None:
        res["npae_test_nelbo"] = model.neg_elbo(X_test, seed=seed + 1)
        for peer in peers:
            res[f"{peer.name}_test_nelbo"] = peer.neg_elbo(X_test, seed + 1)
    return res


# --------------------------------------------------------------------------------------------------
# The IWAE estimate
# --------------------------------------------------------------------------------------------------
def run_iwae_case(X_test, dtype="float32", k=500, n=200, hidden=(400,), latent_dim=20, seed=0, repeats=3):
    """Time ``log_likelihood_estimate(X_test[:n], k=k)`` of an MNIST-size VAE (its decoder products
    dominate: (n·k, Z) @ (Z, H) and (n·k, H) @ (H, D)); GFLOP/s of those products over the whole
    estimate's time (the best of ``repeats``)."""
    X = X_test[:n].astype(dtype)
    model = VAE(X.shape[1], hidden=hidden, latent_dim=latent_dim, dtype=dtype, seed=seed)
    model.log_likelihood_estimate(X[:2], k=4, seed=0)  # compile the kernels
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        model.log_likelihood_estimate(X, k=k, seed=r)
        best = min(best, time.perf_counter() - t0)
    H, D = hidden[-1], X.shape[1]
    flops = 2.0 * n * k * (latent_dim * H + H * D)
    return {"case": f"IWAE-{k} of {n} images, 784-400-20", "dtype": np.dtype(dtype).name, "k": k,
            "n": n, "seconds": best, "decoder_gflops": flops / best / 1e9}


# --------------------------------------------------------------------------------------------------
# Busy machines
# --------------------------------------------------------------------------------------------------
_BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def start_busy(n, seconds=900):
    """``n`` busy-loop processes (pure Python spinning) that stop by themselves after ``seconds``."""
    import subprocess
    import sys
    return [subprocess.Popen([sys.executable, "-c", _BUSY.format(seconds=seconds)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def stop_busy(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def _cases(quick, epochs):
    """(key, label, X, X_test, setup, epochs, settle, validation) of every training case."""
    out = {}
    X, X_test, source = mnist_split()
    out["mnist"] = (f"784-400-20 b128 ({source})", X, X_test,
                    dict(hidden=(400,), latent_dim=20, batch=128, lr=1e-3),
                    epochs or (3 if quick else 10), 0.2, False)
    digits, _ = datasets.load_digits()
    out["tiny"] = ("64-32-2 b64 (digits)", digits, None, dict(hidden=(32,), latent_dim=2, batch=64, lr=1e-3),
                   epochs or (6 if quick else 30), 0.0, False)
    perm = np.random.default_rng(0).permutation(digits.shape[0])  # npae train vae's split
    n_test = int(round(0.15 * digits.shape[0]))
    out["main"] = ("main job: 64-128-2 b64, 1527 digits", digits[perm[n_test:]], digits[perm[:n_test]],
                   dict(hidden=(128,), latent_dim=2, batch=64, lr=2e-3),
                   epochs or (20 if quick else 100), 0.0, True)
    out["conv"] = (f"conv 32-64 ch, Z 16 b128 ({source})", X, X_test,
                   dict(hidden=(), latent_dim=16, batch=128, lr=1e-3, arch="conv"),
                   epochs or (2 if quick else 5), 0.2, False)
    return out


def run(quick=False, use_torch=True, use_jax=True, cases=("main", "tiny", "mnist", "iwae"),
        dtypes=("float32", "float64"), epochs=None, busy=0, repeats=None):
    """Run the benchmark; returns ``{"machine": ..., "peak_gflops": ..., "results": [...]}``.
    ``repeats``: runs of each command of the process case (:mod:`npae.app.bench_process`)."""
    threads = blas_threads()
    in_process = any(case not in ("process", "iwae") for case in cases)  # cases that import the peers here
    torch = import_torch(threads) if use_torch and in_process else None
    jax = import_jax() if use_jax and in_process else None
    info = machine_info()
    info["torch"] = _version("torch") if use_torch else None
    info["jax"] = _version("jax") if use_jax else None
    n_peak = 1024 if quick else 2048
    peak = {dt: gemm_peak(np.dtype(dt), n=n_peak) for dt in ("float32", "float64")}
    defs = _cases(quick, epochs)
    results = []
    for case in cases:
        for load in ([0, busy] if busy else [0]):
            procs = start_busy(load) if load else []
            try:
                if case in ("iwae", "process"):
                    res = (run_iwae_case(defs["mnist"][2], k=100 if quick else 500, n=50 if quick else 200)
                           if case == "iwae" else
                           run_process_case(quick=quick, repeats=repeats, epochs=epochs,
                                            peers=[p for p, use in (("torch", use_torch), ("jax", use_jax))
                                                   if use]))
                    res["busy"] = load
                    results.append(res)
                    continue
                label, X, X_test, setup, n_epochs, settle, validation = defs[case]
                for dt in (("float32",) if case in ("main", "conv") else dtypes):
                    res = run_case(label, X, X_test, dtype=dt, epochs=n_epochs, torch=torch, jax=jax,
                                   settle=settle if torch is not None or jax is not None else 0.0,
                                   validation=validation, **setup)
                    res["busy"] = load
                    res["key"] = case
                    results.append(res)
            finally:
                stop_busy(procs)
    for dt in peak:
        peak[dt] = max(peak[dt], gemm_peak(np.dtype(dt), n=n_peak))
    for res in results:
        gflops = res.get("npae_gflops", res.get("decoder_gflops"))
        if gflops is not None:  # the process case times whole processes, no GEMM
            res["peak_gflops"] = peak[res["dtype"]]
            res["peak_fraction"] = gflops / peak[res["dtype"]]
    _slowdowns(results)
    return {"machine": info, "peak_gflops": peak, "results": results}


def _version(package):
    """The installed version of ``package`` (None: not installed), without importing it."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _slowdowns(results):
    """Each busy result gets, per library, its median epoch time over the quiet run's."""
    quiet = {(r.get("key", r["case"]), r["dtype"]): r for r in results if not r.get("busy")}
    for r in results:
        if not r.get("busy"):
            continue
        q = quiet.get((r.get("key", r["case"]), r["dtype"]))
        if q is None:
            continue
        for lib in ["npae", *r.get("peers", [])]:
            key = "seconds" if lib == "npae" and "seconds" in r else f"{lib}_s"
            if key in r and key in q:
                r[f"{lib}_slowdown"] = r[key] / q[key]


def format_table(report):
    """The report as Markdown tables: training cases, the IWAE estimate, then whole processes."""
    def f(value, spec):
        return "–" if value is None else format(value, spec)

    peers = ["torch", "jax_step", "jax_scan"]
    head = ("| case | dtype | busy | npae s/epoch | " + " | ".join(f"{p} / npae" for p in peers)
            + " | npae % GEMM peak | slowdown npae / " + " / ".join(peers)
            + " | test −ELBO npae / torch / jax |")
    training = [r for r in report["results"] if "npae_s" in r]
    lines = [head, "|" + "---|" * (7 + len(peers))] if training else []
    for r in training:
        slow = (" / ".join(f(r.get(f"{lib}_slowdown"), ".2f") for lib in ["npae", *peers])
                if r.get("busy") else "–")
        nelbo = " / ".join(f(r.get(f"{lib}_test_nelbo"), ".2f") for lib in ("npae", "torch", "jax_scan"))
        lines.append(f"| {r['case']} | {r['dtype']} | {r.get('busy', 0)} | {f(r['npae_s'], '.4f')} | "
                     + " | ".join(f(r.get(f"{p}_ratio"), ".2f") for p in peers)
                     + f" | {f(100 * r['peak_fraction'], '.0f')} | {slow} | {nelbo} |")
    iwae = [r for r in report["results"] if "decoder_gflops" in r]
    if iwae:
        lines += ["", "| IWAE estimate | dtype | busy | seconds | decoder GFLOP/s | % GEMM peak |",
                  "|---|---|---|---|---|---|"]
        for r in iwae:
            lines.append(f"| {r['case']} | {r['dtype']} | {r.get('busy', 0)} | {r['seconds']:.3f} | "
                         f"{r['decoder_gflops']:.1f} | {100 * r['peak_fraction']:.0f} |")
    main_rows = [r for r in report["results"] if r.get("key") == "main"]
    for r in main_rows:
        lines.append(f"\nmain job, busy {r.get('busy', 0)}: npae trained {r['epochs']} epochs in "
                     f"{r['npae_total_s']:.3f} s (validation included)")
    for r in report["results"]:
        if r.get("key") == "process":
            lines += ["", *format_process_table(r)]
    m = report["machine"]
    peaks = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["peak_gflops"].items())
    lines.append("")
    lines.append(f"{m['cpu']}, {m['cores']} cores, BLAS threads {m['blas_threads']}, numpy "
                 f"{m['numpy']}, torch {m['torch']}, jax {m.get('jax')}, npae backend {m['npae_backend']}; "
                 f"GEMM peak: {peaks}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m npae.app.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, smaller peak test (< 1 min)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-jax", action="store_true", help="leave JAX out")
    parser.add_argument("--cases", nargs="+", choices=["main", "tiny", "mnist", "conv", "iwae", "process"],
                        default=["main", "tiny", "mnist", "conv", "iwae"],
                        help="conv: the convolutional VAE on MNIST, float32 only; process: whole processes "
                             "of the main job, launch to trained model, cold and warm numba cache (not in "
                             "the default list: about 40 processes)")
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per library and case")
    parser.add_argument("--repeats", type=int, default=None,
                        help="process case: runs of each command (default 5, --quick 1)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="run every case again with N busy-loop processes on the machine")
    args = parser.parse_args(argv)
    report = run(quick=args.quick, use_torch=not args.no_torch, use_jax=not args.no_jax,
                 cases=tuple(args.cases), dtypes=tuple(args.dtypes), epochs=args.epochs, busy=args.busy,
                 repeats=args.repeats)
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
