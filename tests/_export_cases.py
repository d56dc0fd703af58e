"""The models the export tests carry to PyTorch and ONNX, and the equality table of
docs/outgrowing-a-cpu.md: ``python tests/_export_cases.py`` prints it (torch, onnx and onnxruntime
installed)."""
import numpy as np

import npae

D, B, IMAGE = 16, 6, 4  # 16 features = a 4x4 one-channel image for the conv models

#: (name, factory(dtype)) : every activation, both autoencoder outputs and losses, every decoder of
#: the VAE (Bernoulli, Gaussian with each variance), k > 1, a condition, and conv chains.
CASES = [
    ("ae relu bce", lambda dt: npae.Autoencoder(D, hidden=(8,), latent_dim=3, dtype=dt)),
    ("ae tanh mse identity", lambda dt: npae.Autoencoder(
        D, hidden=(8, 5), latent_dim=3, activation="tanh", output="identity", loss="mse", dtype=dt)),
    ("ae sigmoid mse sigmoid", lambda dt: npae.Autoencoder(
        D, hidden=(8,), latent_dim=3, activation="sigmoid", code_activation="tanh", loss="mse", dtype=dt)),
    ("ae conv leaky_relu", lambda dt: npae.Autoencoder(
        D, hidden=(), latent_dim=2, arch="conv", activation="leaky_relu", slope=0.2, dtype=dt)),
    ("vae relu bernoulli", lambda dt: npae.VAE(D, hidden=(8,), latent_dim=3, dtype=dt)),
    ("vae softplus bernoulli k=3", lambda dt: npae.VAE(
        D, hidden=(8,), latent_dim=3, activation="softplus", k=3, beta=0.5, dtype=dt)),
    ("vae elu gaussian fixed", lambda dt: npae.VAE(
        D, hidden=(8,), latent_dim=3, activation="elu", alpha=0.7, likelihood="gaussian", dtype=dt)),
    ("vae identity gaussian shared", lambda dt: npae.VAE(
        D, hidden=(8,), latent_dim=3, activation="identity", likelihood="gaussian", variance="shared",
        dtype=dt)),
    ("vae tanh gaussian per_feature", lambda dt: npae.VAE(
        D, hidden=(8,), latent_dim=3, activation="tanh", likelihood="gaussian", variance="per_feature",
        dtype=dt)),
    ("vae sigmoid gaussian learned", lambda dt: npae.VAE(
        D, hidden=(8,), latent_dim=3, activation="sigmoid", likelihood="gaussian", variance="learned",
        dtype=dt)),
    ("vae conv bernoulli", lambda dt: npae.VAE(D, hidden=(), latent_dim=2, arch="conv", dtype=dt)),
    ("cvae relu bernoulli", lambda dt: npae.ConditionalVAE(
        D, n_classes=3, hidden=(8,), latent_dim=2, dtype=dt)),
    ("cvae conv gaussian per_feature", lambda dt: npae.ConditionalVAE(
        D, n_classes=3, hidden=(), latent_dim=2, arch="conv", likelihood="gaussian", variance="per_feature",
        dtype=dt)),
]


def make(factory, dtype):
    """The model with its weights moved off their initial values (biases and log-variances are 0
    at initialization; a test of zeros proves little) and data for it: ``(model, X, y, Z, eps)``."""
    model = factory(dtype)
    rng = np.random.default_rng(7)
    model._require_built()
    for a in model.params.values():
        a += (0.3 * rng.standard_normal(a.shape)).astype(a.dtype)
    X = rng.random((B, D)).astype(dtype)
    y = rng.integers(0, 3, size=B) if getattr(model, "n_classes", 0) else None
    Z = rng.standard_normal((B, model.latent_dim)).astype(dtype)
    k = int(getattr(model, "k", 1))
    eps = rng.standard_normal((B, model.latent_dim) if k == 1 else (k, B, model.latent_dim)).astype(dtype)
    return model, X, y, Z, eps


def rel(a, b):
    """``max |a − b| / max(1, max |b|)``: relative to the numbers' scale, absolute below 1."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def torch_differences(model, X, y, Z, eps):
    """``{"encode", "decode", "loss"}``: the differences between npae and its torch module."""
    import torch
    from npae.export import to_torch
    module = to_torch(model)
    t = torch.from_numpy
    ty = None if y is None else t(y)
    ky = {} if y is None else {"y": y}
    is_vae = isinstance(model, npae.VAE)
    with torch.no_grad():
        out = {"encode": rel(module.encode(t(X), ty).numpy(), model.encode(X, **ky)),
               "decode": rel(module.decode(t(Z), ty).numpy(), model.decode(Z, **ky))}
        if is_vae:
            loss = model.loss_and_grads(X, eps=eps, **ky)[0]
            out["loss"] = rel(module.loss(t(X), ty, eps=t(eps)).item(), loss)
        else:
            out["loss"] = rel(module.loss(t(X)).item(), model.loss_and_grads(X)[0])
    return out


def roundtrip_differences(factory, model, X, y, Z, eps):
    """One Adam step in torch, then :func:`npae.export.from_torch` into a fresh npae model: the
    largest difference between the npae copy's and the trained module's encode, decode and loss."""
    import torch
    from npae.export import from_torch, to_torch
    module = to_torch(model)
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    t = torch.from_numpy
    ty = None if y is None else t(y)
    module(t(X), ty).backward()
    opt.step()
    back = factory(str(model.dtype))
    back._require_built()
    from_torch(module, back)
    ky = {} if y is None else {"y": y}
    vae = isinstance(model, npae.VAE)
    with torch.no_grad():
        loss = module(t(X), ty, eps=t(eps)) if vae else module(t(X))
        return max(rel(back.encode(X, **ky), module.encode(t(X), ty).numpy()),
                   rel(back.decode(Z, **ky), module.decode(t(Z), ty).numpy()),
                   rel(back.loss_and_grads(X, **({"eps": eps, **ky} if vae else {}))[0], loss.item()))


def onnx_differences(model, X, y, Z):
    """``{"encoder", "decoder"}``: max abs differences between onnxruntime and npae (float32 graphs)."""
    import onnxruntime as ort
    from npae.export import to_onnx
    feed_c = {} if y is None else {"c": np.eye(int(model.n_classes), dtype=np.float32)[y]}
    ky = {} if y is None else {"y": y}
    out = {}
    code = model.encode_stats(X, **ky) if isinstance(model, npae.VAE) else (model.encode(X),)
    for part, feed, ref in [("encoder", {"x": X.astype(np.float32)}, code),
                            ("decoder", {"z": Z.astype(np.float32)}, (model.decode(Z, **ky),))]:
        session = ort.InferenceSession(to_onnx(model, part).SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {**feed, **feed_c})
        out[part] = max(float(np.max(np.abs(g - r))) for g, r in zip(got, ref))
    return out


def table():
    """The markdown table of docs/outgrowing-a-cpu.md."""
    lines = ["| model | to_torch f64 encode / decode / loss | to_torch f32 encode / decode / loss "
             "| from_torch f64 after a torch step | ONNX (f32) encoder / decoder |", "|---|---|---|---|---|"]
    for name, factory in CASES:
        t64 = torch_differences(*make(factory, "float64"))
        t32 = torch_differences(*make(factory, "float32"))
        back = roundtrip_differences(factory, *make(factory, "float64"))
        model, X, y, Z, _ = make(factory, "float32")
        o = onnx_differences(model, X, y, Z)
        lines.append(f"| {name} | {t64['encode']:.1e} / {t64['decode']:.1e} / {t64['loss']:.1e} "
                     f"| {t32['encode']:.1e} / {t32['decode']:.1e} / {t32['loss']:.1e} | {back:.1e} "
                     f"| {o['encoder']:.1e} / {o['decoder']:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())


def ddp_rank(rank, world, port, X, eps, state, out):
    """One rank of a DistributedDataParallel step on CPU (gloo): rank r trains on its half of the
    batch; the new weights go to ``out`` (rank 0)."""
    import torch
    import torch.distributed as dist
    from npae.export import to_torch
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = npae.VAE(X.shape[1], hidden=(8,), latent_dim=eps.shape[1])
        model._require_built()
        for name, a in state.items():
            model.params[name][...] = a
        ddp = torch.nn.parallel.DistributedDataParallel(to_torch(model))
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        half = X.shape[0] // world
        rows = slice(rank * half, (rank + 1) * half)
        ddp(torch.from_numpy(X[rows]), eps=torch.from_numpy(eps[rows])).backward()  # forward is the loss
        opt.step()
        if rank == 0:
            out.put({k: v.detach().numpy().copy() for k, v in ddp.module.state_dict().items()})
    finally:
        dist.destroy_process_group()
