"""The whole-process case of the benchmark (``python -m npae.app.bench --cases process``): seconds
from process start to trained model, for the main job ``npae train vae`` runs with default options.

What a user waits for is more than the epochs: Python starting, the library's import, numba
compiling its kernels (or loading them from its cache) and the training. Each command below is a
fresh ``python`` process running a small script (written to a temporary folder), timed from launch
to exit by the parent:

* npae, with its default backend and with ``NPAE_BACKEND=reference`` and ``=fused``, each with an
  empty numba cache (``NUMBA_CACHE_DIR`` a new empty folder: a first run) and a filled one (the
  folder of an earlier run of the same command: every later run);
* PyTorch as an expert writes this job: ``nn.Linear`` layers, eager, one thread, a Python loop of
  ``torch.optim.Adam`` steps;
* JAX as an expert writes it: ``jax.jit`` of one epoch written as a ``lax.scan`` over the batches,
  optax's Adam, XLA on one thread.

The job's settings (data, split, layers, likelihood, epochs, batch, learning rate, dtype, seed) are
read from the command's own parser and model builder (:func:`main_job_settings`), so they follow
the CLI. Every script trains on the same training split (saved once as ``.npy``), in the same
batches: shuffled every epoch, the last, smaller batch (1,527 = 23·64 + 55) a step of its own
(npae, PyTorch); JAX pads it to a full batch with rows of weight 0, so its loss and gradient are
those of the 55 real rows. Held-out data are not evaluated (no library's script does), nothing is
written. Each script prints the final epoch's mean training loss (per example, nats): a peer that
does not reach npae's loss would not be a fair peer. The commands run round-robin, ``repeats``
times, so that noise of the machine hits all alike; reported: median and min wall seconds, and for
npae's commands the ratio of the faster peer's median to theirs (> 1: npae is faster).

The environment is the caller's for all commands (thread settings included: npae chooses its BLAS
threads itself, as it does for a user), with ``NPAE_BACKEND`` and ``NUMBA_CACHE_DIR`` removed, then
set per npae command; the JAX command adds ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``.
"""
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

#: Epochs of ``--quick`` (the CLI's own count otherwise).
QUICK_EPOCHS = 10

#: The JAX command's XLA setting: Eigen on one thread (a tiny model; the other libraries use one).
#: Its folklore companion ``intra_op_parallelism_threads=1`` is no XLA flag (no ``--``; jax 0.10.2
#: passes over it), so it is left out.
JAX_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"

# The scripts: each starts with a line ``S = {...}`` (its settings), then one of these bodies. Each
# prints one line ``RESULT {json}`` as its last act.
_NPAE = '''
import json
import time

t0 = time.perf_counter()
import numpy as np
import npae

t_import = time.perf_counter() - t0
X = np.load(S["data"])
model = npae.VAE(**S["model"]).fit(X, **S["fit"])
print("RESULT " + json.dumps({
    "loss": model.history_["loss"][-1], "backend": getattr(model, "backend_", None),
    "session_backend": npae.get_backend(), "version": npae.__version__, "import_s": t_import,
    "train_s": time.perf_counter() - t0 - t_import}))
'''

_TORCH = '''
import json
import time

t0 = time.perf_counter()
import numpy as np
import torch

t_import = time.perf_counter() - t0
torch.set_num_threads(1)  # a 64-128-2 model: a second thread only waits
torch.manual_seed(S["seed"])
torch.set_default_dtype(getattr(torch, S["dtype"]))
X = torch.from_numpy(np.load(S["data"])).to(torch.get_default_dtype())
n, D = X.shape
Z, B = S["latent_dim"], S["batch_size"]


def mlp(sizes):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


encoder = mlp([D, *S["hidden"], 2 * Z])
decoder = mlp([Z, *S["hidden"][::-1], D])
opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=S["lr"])


def neg_elbo(x):
    """BCE summed over pixels + closed-form KL, averaged over the batch (npae's convention)."""
    mu, logvar = encoder(x).chunk(2, dim=1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = torch.nn.functional.binary_cross_entropy_with_logits(decoder(z), x, reduction="sum")
    kl = 0.5 * torch.sum(mu * mu + torch.exp(logvar) - 1.0 - logvar)
    return (recon + kl) / x.shape[0]


for epoch in range(S["epochs"]):
    total = torch.zeros(())
    for idx in torch.randperm(n).split(B):
        x = X[idx]
        loss = neg_elbo(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * x.shape[0]
print("RESULT " + json.dumps({"loss": total.item() / n, "version": torch.__version__, "import_s": t_import,
                              "train_s": time.perf_counter() - t0 - t_import}))
'''

_JAX = '''
import json
import time

t0 = time.perf_counter()
import numpy as np
import jax
import jax.numpy as jnp
import optax

t_import = time.perf_counter() - t0
jax.config.update("jax_enable_x64", S["dtype"] == "float64")
X = jnp.asarray(np.load(S["data"]), dtype=S["dtype"])
n, D = X.shape
Z, B = S["latent_dim"], S["batch_size"]
n_batches = -(-n // B)
pad = n_batches * B - n  # the last batch is filled up with rows of weight 0
weights = (jnp.arange(n_batches * B) < n).astype(X.dtype).reshape(n_batches, B)


def init_mlp(rng, sizes):
    """He-scaled normal weights before a ReLU, Glorot-scaled for the last layer; zero biases. Drawn by
    NumPy: jax.random would compile its generator for every shape (1.5 s of start-up here)."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = np.sqrt(2.0 / n_in) if k < len(sizes) - 2 else np.sqrt(2.0 / (n_in + n_out))
        W = scale * rng.standard_normal((n_in, n_out))
        layers.append((jnp.asarray(W, X.dtype), jnp.zeros(n_out, X.dtype)))
    return layers


def mlp(layers, h):
    for W, b in layers[:-1]:
        h = jax.nn.relu(h @ W + b)
    W, b = layers[-1]
    return h @ W + b


def neg_elbo(params, x, eps, w):
    """BCE summed over pixels + closed-form KL, averaged over the batch's real rows (weight 1)."""
    mu, logvar = jnp.split(mlp(params["enc"], x), 2, axis=1)
    z = mu + jnp.exp(0.5 * logvar) * eps
    logits = mlp(params["dec"], z)
    recon = jnp.sum(jnp.logaddexp(0.0, logits) - logits * x, axis=1)
    kl = 0.5 * jnp.sum(mu * mu + jnp.exp(logvar) - 1.0 - logvar, axis=1)
    return jnp.sum(w * (recon + kl)) / jnp.sum(w)


opt = optax.adam(S["lr"])


@jax.jit
def epoch(params, state, X, key):
    k_perm, k_eps = jax.random.split(key)
    perm = jax.random.permutation(k_perm, n)
    idx = jnp.concatenate([perm, perm[:pad]]).reshape(n_batches, B)
    eps = jax.random.normal(k_eps, (n_batches, B, Z), X.dtype)

    def step(carry, batch):
        params, state = carry
        i, e, w = batch
        loss, grads = jax.value_and_grad(neg_elbo)(params, X[i], e, w)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss * jnp.sum(w)

    (params, state), sums = jax.lax.scan(step, (params, state), (idx, eps, weights))
    return params, state, jnp.sum(sums) / n


rng = np.random.default_rng(S["seed"])
params = {"enc": init_mlp(rng, [D, *S["hidden"], 2 * Z]), "dec": init_mlp(rng, [Z, *S["hidden"][::-1], D])}
key = jax.random.key(S["seed"])
state = opt.init(params)
for _ in range(S["epochs"]):
    key, sub = jax.random.split(key)
    params, state, loss = epoch(params, state, X, sub)
print("RESULT " + json.dumps({"loss": float(loss), "version": jax.__version__, "import_s": t_import,
                              "train_s": time.perf_counter() - t0 - t_import}))
'''

#: library -> (script body, modules it needs, label in the table)
SCRIPTS = {"npae": (_NPAE, ("npae",), "npae"),
           "torch": (_TORCH, ("torch",), "PyTorch (eager, 1 thread)"),
           "jax": (_JAX, ("jax", "optax"), "JAX (jit of a lax.scan epoch, 1 thread)")}


# --------------------------------------------------------------------------------------------------
# The job, as the command line defines it
# --------------------------------------------------------------------------------------------------
def main_job_settings(argv=("train", "vae")):
    """``(settings, X)``: what ``npae <argv>`` trains, read from the CLI's parser, data loader and
    model builder, and its training split. ``settings["model"]`` holds the constructor arguments of
    the CLI's model that differ from the class's defaults, ``settings["fit"]`` the ``fit`` arguments
    (without the run folder's checkpoint, validation and progress output); the rest is what the
    peers' scripts need."""
    from npae.app.cli import build_parser
    from npae.app.runspec import _build_model, _load_split

    args = build_parser().parse_args(list(argv))
    spec = dict(data=args.data, data_dir=args.data_dir, download=args.download, seed=args.seed,
                train_split=args.train_split, test_split=args.test_split,
                test_fraction=args.test_fraction, max_train=args.max_train, binarize=args.binarize,
                label=args.label, image_shape=list(args.image_shape) if args.image_shape else None)
    X, _, _, _, info = _load_split(spec)
    model = _build_model(args, X.shape[1], None, bool(info["unit_interval"]))
    model.set_params(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)  # as npae.app.train does
    params, defaults = model.get_params(), type(model)().get_params()
    peer_job = dict(activation="relu", likelihood="bernoulli", objective="elbo", beta=1.0, k=1, flow=None,
                    arch="mlp")
    differ = {k: params[k] for k in peer_job if params[k] != peer_job[k]}
    if type(model).__name__ != "VAE" or differ or args.warmup:
        raise ValueError(f"the peers' scripts train a plain ReLU VAE with a Bernoulli decoder and the "
                         f"closed-form KL; npae {' '.join(argv)} now trains {type(model).__name__} with "
                         f"{differ or {'warmup': args.warmup}}: update the scripts")
    fit = dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
               progress=False)
    settings = dict(model={k: v for k, v in params.items() if v != defaults[k]}, fit=fit,
                    hidden=tuple(params["hidden"]), latent_dim=params["latent_dim"], dtype=params["dtype"],
                    seed=params["seed"], epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    n_features=int(X.shape[1]), data=f"{args.data}, {X.shape[0]} training examples")
    return settings, X


# --------------------------------------------------------------------------------------------------
# Running and timing the commands
# --------------------------------------------------------------------------------------------------
def _base_env():
    """The caller's environment without npae's backend and numba cache settings, with the
    ``npae`` being benchmarked first on the path (so the children import this very copy)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NPAE_BACKEND", "NUMBA_CACHE_DIR")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # above npae/app/
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _commands(backends, peers):
    """The commands in the order of one round: npae with an empty cache, the peers, then npae with
    a filled cache (so the first round's cold runs fill the folders of the warm ones)."""
    def npae(backend, cache):
        name = "default" if backend is None else f"NPAE_BACKEND={backend}"
        return dict(command=f"npae ({name}), {cache} cache", library="npae", backend=backend, cache=cache)
    return ([npae(b, "cold") for b in backends]
            + [dict(command=SCRIPTS[p][2], library=p, backend=None, cache=None) for p in peers]
            + [npae(b, "warm") for b in backends])


def _installed(library):
    return all(importlib.util.find_spec(name) is not None for name in SCRIPTS[library][1])


def write_scripts(folder, settings, X, libraries):
    """Write the training split to ``folder/train.npy`` and each library's script beside it (its
    first line ``S = {...}``: ``settings`` and the data's path); returns ``{library: path}``."""
    data = os.path.join(folder, "train.npy")
    np.save(data, X)
    paths = {}
    for lib in libraries:
        paths[lib] = os.path.join(folder, f"job_{lib}.py")
        with open(paths[lib], "w") as fh:
            fh.write(f"S = {dict(settings, data=data)!r}\n" + SCRIPTS[lib][0])
    return paths


def _env(cmd, base, work, warm_dirs):
    """The environment of one run of ``cmd``: npae's gets its backend (unset for the default) and
    a numba cache folder, new and empty (cold) or the first cold run's (warm); JAX's its XLA flags."""
    env = dict(base)
    if cmd["library"] == "npae":
        if cmd["backend"] is not None:
            env["NPAE_BACKEND"] = cmd["backend"]
        if cmd["cache"] == "cold":
            env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-", dir=work)
            warm_dirs.setdefault(cmd["backend"], env["NUMBA_CACHE_DIR"])
        else:
            env["NUMBA_CACHE_DIR"] = warm_dirs[cmd["backend"]]
    elif cmd["library"] == "jax":
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), JAX_XLA_FLAGS]))
    return env


def _run_script(path, env, timeout):
    """``(wall seconds, RESULT dict)`` of one ``python path``; raises with its stderr on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, path], env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{path} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall, json.loads(lines[-1][len("RESULT "):])


def run_process_case(quick=False, repeats=None, epochs=None, backends=(None, "reference", "fused"),
                     peers=("torch", "jax"), timeout=900):
    """Time the commands of this module's docstring; returns one result of the benchmark's report.

    ``repeats`` (default 5, ``quick``: 1) runs of each command, round-robin; ``epochs`` (default the
    CLI's, ``quick``: :data:`QUICK_EPOCHS`); ``backends``: npae's (None: ``NPAE_BACKEND`` unset);
    ``peers``: the peer libraries to time, those not installed are listed with a note. A failing
    npae command raises; a failing peer is reported with its error.
    """
    settings, X = main_job_settings()
    epochs = epochs or (QUICK_EPOCHS if quick else settings["epochs"])
    repeats = repeats or (1 if quick else 5)
    settings = dict(settings, epochs=epochs, fit=dict(settings["fit"], epochs=epochs))
    absent = [p for p in peers if not _installed(p)]
    commands = _commands(backends, [p for p in peers if p not in absent])
    for cmd in commands:
        cmd.update(runs=[], error=None)
    work = tempfile.mkdtemp(prefix="npae-bench-process-")
    try:
        scripts = write_scripts(work, settings, X, {cmd["library"] for cmd in commands})
        base, warm_dirs = _base_env(), {}
        for _ in range(repeats):
            for cmd in commands:
                if cmd["error"]:
                    continue
                env = _env(cmd, base, work, warm_dirs)
                try:
                    wall, out = _run_script(scripts[cmd["library"]], env, timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as err:
                    if cmd["library"] == "npae":
                        raise
                    cmd["error"] = " ".join(str(err).split())[:300]
                    continue
                if cmd["library"] == "npae":  # what numba's cache holds after the run
                    out["cache_files"] = sum(len(f) for _, _, f in os.walk(env["NUMBA_CACHE_DIR"]))
                cmd["runs"].append(dict(out, wall_s=wall))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _summary(settings, commands, absent, repeats)


def _summary(settings, commands, absent, repeats):
    """The report's entry: per command its runs (wall seconds and what the script printed), median
    and min wall seconds, final loss (median over the runs), and npae's ratios."""
    for cmd in commands:
        runs = cmd["runs"]
        if not runs:
            continue
        times = [run["wall_s"] for run in runs]
        cmd.update(times=times, median_s=statistics.median(times), min_s=min(times),
                   final_loss=statistics.median(run["loss"] for run in runs), version=runs[-1]["version"])
        if cmd["library"] == "npae":
            cmd["backend_used"] = runs[-1]["backend"]  # the model's backend_, when it has one
            cmd["session_backend"] = runs[-1]["session_backend"]
    timed_peers = [c for c in commands if c["library"] != "npae" and c["runs"]]
    faster = min(timed_peers, key=lambda c: c["median_s"]) if timed_peers else None
    for cmd in commands:
        if cmd["library"] == "npae" and faster is not None and cmd["runs"]:
            cmd["ratio"] = faster["median_s"] / cmd["median_s"]
    return {"case": "whole process: npae train vae's job", "key": "process", "dtype": settings["dtype"],
            "epochs": settings["epochs"], "repeats": repeats, "settings": settings, "commands": commands,
            "not_installed": absent, "faster_peer": faster["library"] if faster else None,
            "last_batch": "npae, PyTorch: the ragged last batch is a step of its own; JAX: padded "
                          "to a full batch with rows of weight 0"}


def format_process_table(res):
    """Markdown lines of one process result: command | backend | median s | min s | final loss |
    ratio vs faster peer."""
    def f(value, spec):
        return "–" if value is None else format(value, spec)

    s = res["settings"]
    faster = SCRIPTS[res["faster_peer"]][2] if res["faster_peer"] else "none timed"
    sizes = "-".join(map(str, (s["n_features"], *s["hidden"], s["latent_dim"])))
    lines = [f"Whole process (launch to trained model), busy {res.get('busy', 0)}: {s['data']}, VAE "
             f"{sizes}, {res['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']:g}, {s['dtype']}; "
             f"{res['repeats']} run(s) of each command, round-robin; ratio: faster peer ({faster}) / npae, "
             f"> 1: npae is faster. {res['last_batch']}.", "",
             "| command | backend | median s | min s | final loss | ratio vs faster peer |",
             "|---|---|---|---|---|---|"]
    for cmd in res["commands"]:
        if cmd["library"] == "npae":
            used = cmd.get("backend_used") or cmd.get("session_backend")  # backend_, else npae's switch
            if cmd["backend"] is None:
                backend = f"default → {used}"
            else:
                backend = used if cmd["backend"] == used else f"{cmd['backend']} → {used}"
        else:
            backend = f"{cmd['library']} {cmd.get('version') or ''}".strip()
        if cmd["error"] and not cmd["runs"]:
            lines.append(f"| {cmd['command']} | {backend} | failed: {cmd['error'][:120]} | | | |")
            continue
        lines.append(f"| {cmd['command']} | {backend} | {f(cmd.get('median_s'), '.2f')} | "
                     f"{f(cmd.get('min_s'), '.2f')} | {f(cmd.get('final_loss'), '.2f')} | "
                     f"{f(cmd.get('ratio'), '.2f')} |")
    for lib in res["not_installed"]:
        lines.append(f"| {SCRIPTS[lib][2]} | {lib} | not installed: skipped | | | |")
    return lines
