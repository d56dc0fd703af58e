"""Training-speed benchmark: the same VAE in npae and, when it can be imported, in PyTorch.

    python -m npae.bench [--quick] [--json PATH] [--cases mnist conv tiny]

Per case (architecture, batch, dtype) both libraries train the same Bernoulli VAE (ReLU MLP
encoder emitting [mu | logvar], ReLU MLP decoder emitting logits; for the ``conv`` case npae's
``arch="conv"`` VAE, strided 3x3 convolutions to 32 and 64 channels and transposed convolutions
back, against ``torch.nn.Conv2d`` / ``ConvTranspose2d`` with the same shapes, float32), from the
same initial weights (npae's, copied into torch), with Adam and the same batch size, on the same
data. Epochs alternate
npae, torch, npae, torch, ... so drift of the machine (clock, other jobs) hits both alike, with an
untimed pause of 0.2 s before each MNIST-size epoch so that one library's spinning worker threads
have gone idle when the other starts (on the tiny case, 3-15 ms epochs, a pause would only cool the
caches). Reported:
median seconds per epoch (the first epoch, which includes compilation, is left out), the ratio
torch/npae (> 1: npae is faster), achieved GFLOP/s of the matrix products and their fraction of this
machine's GEMM peak measured in the same run (the best of a large ``np.dot`` timed before and after
the cases), and for the MNIST case the test
negative ELBO of both (one sample per test image, nats).

PyTorch is never imported by npae itself: only here, and only when present.
"""
import argparse
import gzip
import json
import os
import platform
import statistics
import time

import numpy as np

from . import backends, datasets
from .layers import Activation, Conv2D, ConvTranspose2D, Dense, Flatten, ImagePlanes, Reshape
from .optim import Adam
from .vae import VAE

MNIST_DIRS = ("/work/shared/data/mnist",
              os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))


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
# PyTorch twin
# --------------------------------------------------------------------------------------------------
def _torch_twin(model, torch):
    """A torch VAE with npae ``model``'s layers and current weights."""
    dtype = torch.float32 if np.dtype(model.dtype) == np.float32 else torch.float64

    def linears(seq):
        out = []
        for dense in seq.dense_layers:
            lin = torch.nn.Linear(dense.n_in, dense.n_out, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(dense.params["W"].T.copy()))
                lin.bias.copy_(torch.from_numpy(dense.params["b"].copy()))
            out.append(lin)
        return out

    class TorchVAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.ModuleList(linears(model.encoder))
            self.dec = torch.nn.ModuleList(linears(model.decoder))
            self.Z = model.latent_dim

        def _mlp(self, layers, h):
            for k, lin in enumerate(layers):
                h = lin(h)
                if k < len(layers) - 1:
                    h = torch.relu(h)
            return h

        def forward(self, x, eps):
            """Per-example mean of recon (BCE sum) + KL, like npae's loss with β = 1."""
            h = self._mlp(self.enc, x)
            mu, logvar = h[:, :self.Z], h[:, self.Z:]
            z = mu + torch.exp(0.5 * logvar) * eps
            logits = self._mlp(self.dec, z)
            B = x.shape[0]
            recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / B
            kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar) / B
            return recon + kl

    return TorchVAE(), dtype


#: npae activation name -> torch module (from torch.nn and the activation's hyperparameters)
_TORCH_ACTIVATIONS = {
    "relu": lambda nn, hyper: nn.ReLU(), "tanh": lambda nn, hyper: nn.Tanh(),
    "sigmoid": lambda nn, hyper: nn.Sigmoid(), "identity": lambda nn, hyper: nn.Identity(),
    "leaky_relu": lambda nn, hyper: nn.LeakyReLU(hyper["slope"]),
    "elu": lambda nn, hyper: nn.ELU(hyper["alpha"]),
}


def _torch_chain(seq, torch, dtype):
    """``torch.nn.Sequential`` of npae chain ``seq``'s layers with its current weights, and the
    pairs ``(npae name, torch parameter, transposed)`` that hold the same numbers (a Dense ``W``
    is the transpose of ``Linear.weight``; conv weights share PyTorch's layout)."""
    nn = torch.nn
    modules, pairs, k = [], [], 0
    for layer in seq.layers:
        if isinstance(layer, Dense):
            mod = nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
        elif isinstance(layer, Conv2D):
            mod = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                            layer.padding, dtype=dtype)
        elif isinstance(layer, ConvTranspose2D):
            mod = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                                     layer.padding, layer.output_padding, dtype=dtype)
        elif isinstance(layer, Flatten):
            mod = nn.Flatten()
        elif isinstance(layer, Reshape):
            mod = nn.Unflatten(1, layer.shape)
        elif isinstance(layer, ImagePlanes) and layer.n_cond == 0:
            mod = nn.Unflatten(1, layer.image_shape)
        elif isinstance(layer, Activation) and layer.name in _TORCH_ACTIVATIONS:
            mod = _TORCH_ACTIVATIONS[layer.name](nn, layer.hyper)
        else:
            raise ValueError(f"no torch twin for {layer!r}")
        if layer.params:
            W = layer.params["W"].T if isinstance(layer, Dense) else layer.params["W"]
            with torch.no_grad():
                mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
                mod.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
            pairs += [(f"{seq.prefix}{k}.W", mod.weight, isinstance(layer, Dense)),
                      (f"{seq.prefix}{k}.b", mod.bias, False)]
            k += 1
        modules.append(mod)
    return nn.Sequential(*modules), pairs


def _torch_chain_twin(model, torch):
    """A torch VAE with npae ``model``'s chains (any dense / conv layers) and current weights;
    returns ``(module, dtype, pairs)`` (see :func:`_torch_chain`)."""
    dtype = torch.float32 if np.dtype(model.dtype) == np.float32 else torch.float64
    enc, enc_pairs = _torch_chain(model.encoder, torch, dtype)
    dec, dec_pairs = _torch_chain(model.decoder, torch, dtype)

    class TorchChainVAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.dec, self.Z = enc, dec, model.latent_dim

        def forward(self, x, eps):
            """Per-example mean of recon (BCE sum) + KL, like npae's loss with β = 1."""
            h = self.enc(x)
            mu, logvar = h[:, :self.Z], h[:, self.Z:]
            z = mu + torch.exp(0.5 * logvar) * eps
            logits = self.dec(z)
            B = x.shape[0]
            recon = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / B
            kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar) / B
            return recon + kl

    return TorchChainVAE(), dtype, enc_pairs + dec_pairs


def conv_step_against_torch(torch, image_side=8, latent_dim=3, batch=5, seed=0, lr=1e-3):
    """One training step of npae's ``arch="conv"`` VAE and of its torch twin from the same weights,
    in float64, with the same eps: relative differences of the loss, of every gradient, of the
    parameters after one Adam step, and of the loss after it (each ``max |a − b| / max |b|``).
    Used by the tests when torch is installed; a check of correctness, not of speed."""
    rng = np.random.default_rng(seed)
    X = rng.random((batch, image_side * image_side))
    eps = rng.standard_normal((batch, latent_dim))
    model = VAE(X.shape[1], hidden=(), latent_dim=latent_dim, arch="conv", seed=seed)
    tmodel, _, pairs = _torch_chain_twin(model, torch)
    tx, teps = torch.from_numpy(X), torch.from_numpy(eps)

    def rel(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    loss, grads = model.loss_and_grads(X, eps=eps)
    tloss = tmodel(tx, teps)
    tloss.backward()
    out = {"loss_rel_diff": rel(loss, tloss.item())}
    out["grad_rel_diff"] = max(rel(grads[name], p.grad.numpy().T if tr else p.grad.numpy())
                               for name, p, tr in pairs)
    Adam(lr=lr).step(model.params, grads)
    topt = torch.optim.Adam(tmodel.parameters(), lr=lr)
    topt.step()
    out["param_rel_diff_after_adam"] = max(
        rel(model.params[name], p.detach().numpy().T if tr else p.detach().numpy()) for name, p, tr in pairs)
    with torch.no_grad():
        out["loss_after_rel_diff"] = rel(model.loss_and_grads(X, eps=eps)[0], tmodel(tx, teps).item())
    out["n_params"] = model.n_params
    return out


# --------------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------------
def run_case(name, X, X_test, hidden, latent_dim, batch, dtype, epochs, lr, torch=None, seed=0,
             settle=0.0, arch="mlp"):
    """Train npae (and torch) for ``epochs`` alternating epochs; return a dict of results.

    ``settle``: seconds to wait, untimed, before each epoch, so that the worker threads of the
    library that ran last (OpenBLAS and OpenMP threads spin for a while after their work) are idle
    and do not steal the cores from the other one. ``arch``: the VAE's layers (``"conv"``: the
    convolutional VAE; its torch twin is made layer by layer by :func:`_torch_chain_twin`).
    """
    X = X.astype(dtype)
    model = VAE(X.shape[1], hidden=hidden, latent_dim=latent_dim, dtype=dtype, seed=seed, arch=arch)
    times = {"npae": [], "torch": []}
    if torch is not None:
        if arch == "mlp":
            tmodel, tdtype = _torch_twin(model, torch)
        else:
            tmodel, tdtype, _ = _torch_chain_twin(model, torch)
        topt = torch.optim.Adam(tmodel.parameters(), lr=lr)
        tX = torch.from_numpy(X)
        gen = torch.Generator().manual_seed(seed)

    def torch_epoch():
        time.sleep(settle)
        t0 = time.perf_counter()
        perm = torch.randperm(X.shape[0], generator=gen)
        for start in range(0, X.shape[0], batch):
            xb = tX[perm[start:start + batch]]
            eps = torch.randn(xb.shape[0], latent_dim, dtype=tdtype, generator=gen)
            topt.zero_grad()
            tmodel(xb, eps).backward()
            topt.step()
        times["torch"].append(time.perf_counter() - t0)

    # npae trains in one fit(epochs=...) call, as a user would; its per-epoch hook closes the timer
    # of the previous epoch, runs one torch epoch (untimed for npae), and starts the next timer.
    npae_epoch_begin, started = model._epoch_begin, []

    def epoch_begin(epoch, n_epochs):
        if started:
            times["npae"].append(time.perf_counter() - started[-1])
            if torch is not None:
                torch_epoch()
        time.sleep(settle)
        started.append(time.perf_counter())
        npae_epoch_begin(epoch, n_epochs)

    model._epoch_begin = epoch_begin
    model.fit(X, epochs=epochs, batch_size=batch, optimizer=Adam(lr=lr), progress=False)
    times["npae"].append(time.perf_counter() - started[-1])
    del model._epoch_begin
    if torch is not None:
        torch_epoch()

    n_full, rest = divmod(X.shape[0], batch)
    flops = n_full * model_step_flops(model, batch) + (model_step_flops(model, rest) if rest else 0.0)

    def median(ts):  # leave out the first epoch (compilation, warm caches) when there are others
        return statistics.median(ts[1:] if len(ts) > 1 else ts)

    res = {"case": name, "dtype": np.dtype(dtype).name, "batch": batch, "epochs": epochs,
           "n_train": int(X.shape[0]), "npae_epoch_s": times["npae"], "npae_s": median(times["npae"]),
           "npae_gflops": flops / median(times["npae"]) / 1e9}
    if torch is not None:
        res["torch_epoch_s"] = times["torch"]
        res["torch_s"] = median(times["torch"])
        res["torch_gflops"] = flops / res["torch_s"] / 1e9
        res["ratio"] = res["torch_s"] / res["npae_s"]
    if X_test is not None:
        X_test = X_test.astype(dtype)
        res["npae_test_nelbo"] = model.neg_elbo(X_test, seed=seed + 1)
        if torch is not None:
            with torch.no_grad():
                tgen = torch.Generator().manual_seed(seed + 1)
                eps = torch.randn(X_test.shape[0], latent_dim, dtype=tdtype, generator=tgen)
                res["torch_test_nelbo"] = float(tmodel(torch.from_numpy(X_test), eps))
    return res


def import_torch(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def run(quick=False, use_torch=True, cases=("mnist", "conv", "tiny"), dtypes=("float32", "float64"),
        epochs=None):
    """Run the benchmark; returns ``{"machine": ..., "peak_gflops": ..., "results": [...]}``."""
    threads = blas_threads()
    torch = import_torch(threads) if use_torch else None
    settle = 0.2 if torch is not None else 0.0
    info = machine_info()
    info["torch"] = torch.__version__ if torch is not None else None
    n_peak = 1024 if quick else 2048
    peak = {dt: gemm_peak(np.dtype(dt), n=n_peak) for dt in dtypes}  # again at the end: the best
    results = []
    for case in cases:
        if case == "mnist":
            X, X_test, source = mnist_split()
            setup = dict(hidden=(400,), latent_dim=20, batch=128, lr=1e-3)
            n_epochs = epochs or (3 if quick else 10)
            label = f"784-400-20 b128 ({source})"
        elif case == "conv":  # the convolutional VAE of npae.architectures, float32 (issue 13)
            X, X_test, source = mnist_split()
            setup = dict(hidden=(), latent_dim=16, batch=128, lr=1e-3, arch="conv")
            n_epochs = epochs or (2 if quick else 5)
            label = f"conv 32-64 ch, Z 16 b128 ({source})"
        else:
            X, _ = datasets.load_digits()
            X_test, setup = None, dict(hidden=(32,), latent_dim=2, batch=64, lr=1e-3)
            n_epochs = epochs or (6 if quick else 30)
            label = "64-32-2 b64 (digits)"
        case_dtypes = dtypes
        if case == "conv" and "float32" in dtypes:
            case_dtypes = ("float32",)
        for dt in case_dtypes:
            results.append(run_case(label, X, X_test, dtype=dt, epochs=n_epochs, torch=torch,
                                    settle=settle if case in ("mnist", "conv") else 0.0, **setup))
    for dt in dtypes:
        peak[dt] = max(peak[dt], gemm_peak(np.dtype(dt), n=n_peak))
    for res in results:
        res["peak_gflops"] = peak[res["dtype"]]
        res["peak_fraction"] = res["npae_gflops"] / peak[res["dtype"]]
    return {"machine": info, "peak_gflops": peak, "results": results}


def format_table(report):
    """The report as a Markdown table."""
    head = ("| case | dtype | npae s/epoch | torch s/epoch | torch/npae | npae GFLOP/s | "
            "% GEMM peak | torch GFLOP/s | test −ELBO npae | test −ELBO torch |")
    lines = [head, "|" + "---|" * 10]

    def f(value, spec):
        return "–" if value is None else format(value, spec)

    for r in report["results"]:
        lines.append(f"| {r['case']} | {r['dtype']} | {f(r['npae_s'], '.4f')} | "
                     f"{f(r.get('torch_s'), '.4f')} | {f(r.get('ratio'), '.2f')} | "
                     f"{f(r['npae_gflops'], '.1f')} | {f(100 * r['peak_fraction'], '.0f')} | "
                     f"{f(r.get('torch_gflops'), '.1f')} | {f(r.get('npae_test_nelbo'), '.2f')} | "
                     f"{f(r.get('torch_test_nelbo'), '.2f')} |")
    m = report["machine"]
    peaks = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report["peak_gflops"].items())
    lines.append("")
    lines.append(f"{m['cpu']}, {m['cores']} cores, BLAS threads {m['blas_threads']}, numpy "
                 f"{m['numpy']}, torch {m['torch']}, npae backend {m['npae_backend']}; "
                 f"GEMM peak: {peaks}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m npae.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs, smaller peak test (< 1 min)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--no-torch", action="store_true", help="time npae alone")
    parser.add_argument("--cases", nargs="+", choices=["mnist", "conv", "tiny"],
                        default=["mnist", "conv", "tiny"],
                        help="conv: the convolutional VAE on MNIST, float32 only")
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=None, help="epochs per library and case")
    args = parser.parse_args(argv)
    report = run(quick=args.quick, use_torch=not args.no_torch, cases=tuple(args.cases),
                 dtypes=tuple(args.dtypes), epochs=args.epochs)
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
