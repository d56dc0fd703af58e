"""The peers of the benchmark (:mod:`npae.app.bench`): PyTorch and JAX twins of an npae VAE, made
from its layers and current weights, and one training epoch of each library.

* :func:`_torch_twin`: the ``torch.nn`` module of the public converter
  (:func:`npae.export.to_torch`) holding npae's weights; :func:`conv_step_against_torch`
  checks that one step of the convolutional VAE equals its twin's (loss, gradients, one Adam
  step), for the tests.
* :func:`_jax_twin`: the same VAE in JAX, with a jitted Adam step (optax) and a jitted
  ``lax.scan`` of that step over an epoch.
* :class:`TorchPeer` and :class:`JaxPeer`: what :func:`npae.app.bench.run_case` times, one epoch
  at a time.

PyTorch and JAX are never imported at module level: :func:`import_torch` and :func:`import_jax`
return them (or None when absent), and the twins take the modules as arguments.
"""
import numpy as np

from npae.models.vae import VAE
from npae.training.optim import Adam


def import_torch(threads):
    """PyTorch with ``threads`` intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


# --------------------------------------------------------------------------------------------------
# PyTorch twin: the public converter
# --------------------------------------------------------------------------------------------------
def _torch_twin(model, torch):
    """``(module, dtype, pairs)``: npae ``model`` as a torch module (:func:`npae.export.to_torch`,
    any chain of dense and convolution layers, its current weights) and the pairs
    ``(npae name, torch parameter, transposed)`` that hold the same numbers (a Dense ``W`` is the
    transpose of ``Linear.weight``; conv weights share PyTorch's layout)."""
    from npae.export import to_torch
    module = to_torch(model)
    state = dict(module.named_parameters())
    pairs = [(name, state[key], transposed) for name, (key, transposed) in module.param_map.items()]
    return module, module.dtype, pairs


def conv_step_against_torch(torch, image_side=8, latent_dim=3, batch=5, seed=0, lr=1e-3):
    """One training step of npae's ``arch="conv"`` VAE and of its torch twin from the same weights,
    in float64, with the same eps: relative differences of the loss, of every gradient, of the
    parameters after one Adam step, and of the loss after it (each ``max |a − b| / max |b|``).
    Used by the tests when torch is installed; a check of correctness, not of speed."""
    rng = np.random.default_rng(seed)
    X = rng.random((batch, image_side * image_side))
    eps = rng.standard_normal((batch, latent_dim))
    model = VAE(X.shape[1], hidden=(), latent_dim=latent_dim, arch="conv", seed=seed)
    tmodel, _, pairs = _torch_twin(model, torch)
    tx, teps = torch.from_numpy(X), torch.from_numpy(eps)

    def rel(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))

    loss, grads = model.loss_and_grads(X, eps=eps)
    tloss = tmodel(tx, eps=teps)
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
        out["loss_after_rel_diff"] = rel(model.loss_and_grads(X, eps=eps)[0], tmodel(tx, eps=teps).item())
    out["n_params"] = model.n_params
    return out


# --------------------------------------------------------------------------------------------------
# JAX twins
# --------------------------------------------------------------------------------------------------
def _jax_twin(model, jax, optax, lr):
    """``(params, state, step, scan_epoch, loss, dtype)``: npae ``model``'s architecture and current
    weights in JAX; ``step`` is ``jax.jit`` of one Adam step (optax, the same β and ε), ``scan_epoch``
    ``jax.jit`` of a ``lax.scan`` of that step over stacked batches."""
    jnp = jax.numpy
    dtype = jnp.float32 if np.dtype(model.dtype) == np.float32 else jnp.float64

    def layers(seq):
        return [(jnp.asarray(d.params["W"], dtype=dtype), jnp.asarray(d.params["b"], dtype=dtype))
                for d in seq.dense_layers]

    params = {"enc": layers(model.encoder), "dec": layers(model.decoder)}
    Z = model.latent_dim

    def mlp(ws, h):
        for k, (W, b) in enumerate(ws):
            h = h @ W + b
            if k < len(ws) - 1:
                h = jax.nn.relu(h)
        return h

    def loss_fn(p, x, eps):
        h = mlp(p["enc"], x)
        mu, logvar = h[:, :Z], h[:, Z:]
        z = mu + jnp.exp(0.5 * logvar) * eps
        s = mlp(p["dec"], z)
        B = x.shape[0]
        recon = jnp.sum(jnp.maximum(s, 0) - s * x + jnp.log1p(jnp.exp(-jnp.abs(s)))) / B
        kl = 0.5 * jnp.sum(mu * mu + jnp.expm1(logvar) - logvar) / B
        return recon + kl

    opt = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)

    def raw_step(p, st, x, eps):
        loss, g = jax.value_and_grad(loss_fn)(p, x, eps)
        updates, st = opt.update(g, st, p)
        return optax.apply_updates(p, updates), st, loss

    def scan_epoch(p, st, xs, epss):
        def body(carry, batch):
            p, st = carry
            p, st, loss = raw_step(p, st, batch[0], batch[1])
            return (p, st), loss
        (p, st), losses = jax.lax.scan(body, (p, st), (xs, epss))
        return p, st, losses

    return params, opt.init(params), jax.jit(raw_step), jax.jit(scan_epoch), jax.jit(loss_fn), dtype


def import_jax():
    try:
        import jax
        import optax
    except ImportError:
        return None
    # JAX computes in float32 unless told otherwise: without this, its "float64" twin silently
    # trained in float32 (arrays asked for as float32 stay float32 with it)
    jax.config.update("jax_enable_x64", True)
    return jax, optax


# --------------------------------------------------------------------------------------------------
# Peers: one epoch of each library
# --------------------------------------------------------------------------------------------------
class TorchPeer:
    name = "torch"

    def __init__(self, model, X, batch, latent_dim, lr, seed, torch):
        self.torch = torch
        self.model, self.dtype, _ = _torch_twin(model, torch)  # npae.export.to_torch
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.X, self.batch, self.Z = torch.from_numpy(X), batch, latent_dim
        self.gen = torch.Generator().manual_seed(seed)

    def epoch(self):
        torch = self.torch
        perm = torch.randperm(self.X.shape[0], generator=self.gen)
        for start in range(0, self.X.shape[0], self.batch):
            xb = self.X[perm[start:start + self.batch]]
            eps = torch.randn(xb.shape[0], self.Z, dtype=self.dtype, generator=self.gen)
            self.opt.zero_grad()
            self.model(xb, eps=eps).backward()
            self.opt.step()

    def neg_elbo(self, X_test, seed):
        torch = self.torch
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed)
            eps = torch.randn(X_test.shape[0], self.Z, dtype=self.dtype, generator=gen)
            return float(self.model(torch.from_numpy(X_test), eps=eps))


class JaxPeer:
    """``scan=False``: the jitted step called once per batch (last, smaller batch included);
    ``scan=True``: full batches in one jitted ``lax.scan``, the last smaller batch by the step."""

    def __init__(self, model, X, batch, latent_dim, lr, seed, jax_modules, scan):
        jax, optax = jax_modules
        self.jax, self.jnp, self.scan = jax, jax.numpy, scan
        self.name = "jax_scan" if scan else "jax_step"
        self.params, self.state, self.step, self.scan_epoch, self.loss, dt = _jax_twin(model, jax, optax, lr)
        self.X = self.jnp.asarray(X, dtype=dt)
        self.batch, self.Z, self.dt = batch, latent_dim, dt
        self.rng = np.random.default_rng(seed)

    def epoch(self):
        n, B = self.X.shape[0], self.batch
        perm = self.rng.permutation(n)
        eps = self.jnp.asarray(self.rng.standard_normal((n, self.Z)), dtype=self.dt)
        xs = self.X[self.jnp.asarray(perm)]
        n_full = n // B
        if self.scan and n_full:
            self.params, self.state, losses = self.scan_epoch(
                self.params, self.state, xs[:n_full * B].reshape(n_full, B, -1),
                eps[:n_full * B].reshape(n_full, B, -1))
            start = n_full * B
        else:
            start, losses = 0, None
        for s in range(start, n, B):
            self.params, self.state, losses = self.step(self.params, self.state, xs[s:s + B], eps[s:s + B])
        self.jax.block_until_ready(self.params)

    def neg_elbo(self, X_test, seed):
        eps = np.random.default_rng(seed).standard_normal((X_test.shape[0], self.Z))
        return float(self.loss(self.params, self.jnp.asarray(X_test, dtype=self.dt),
                               self.jnp.asarray(eps, dtype=self.dt)))
