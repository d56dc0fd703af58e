"""The peers of the benchmark (:mod:`npae.app.bench`): PyTorch and JAX twins of an npae VAE, made
from its layers and current weights, and one training epoch of each library.

* :func:`_torch_twin` (a dense VAE) and :func:`_torch_chain_twin` (any chain of dense and
  convolution layers, built layer by layer by :func:`_torch_chain`): ``torch.nn`` modules holding
  npae's weights; :func:`conv_step_against_torch` checks that one step of the convolutional VAE
  equals its twin's (loss, gradients, one Adam step), for the tests.
* :func:`_jax_twin`: the same VAE in JAX, with a jitted Adam step (optax) and a jitted
  ``lax.scan`` of that step over an epoch.
* :class:`TorchPeer` and :class:`JaxPeer`: what :func:`npae.app.bench.run_case` times, one epoch
  at a time.

PyTorch and JAX are never imported at module level: :func:`import_torch` and :func:`import_jax`
return them (or None when absent), and the twins take the modules as arguments.
"""
import numpy as np

from npae.models.conv_layers import Conv2D, ConvTranspose2D, Flatten, ImagePlanes, Reshape
from npae.models.layers import Activation, Dense
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
        if getattr(model, "arch", "mlp") == "mlp":
            self.model, self.dtype = _torch_twin(model, torch)
        else:  # layer by layer: Conv2d, ConvTranspose2d, Linear
            self.model, self.dtype, _ = _torch_chain_twin(model, torch)
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
            self.model(xb, eps).backward()
            self.opt.step()

    def neg_elbo(self, X_test, seed):
        torch = self.torch
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed)
            eps = torch.randn(X_test.shape[0], self.Z, dtype=self.dtype, generator=gen)
            return float(self.model(torch.from_numpy(X_test), eps))


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
