"""npae.export: PyTorch modules and ONNX graphs equal to the npae models they come from, the way
back, and clear refusals (torch, onnx and onnxruntime optional: these tests skip without them)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import npae
from _export_cases import CASES, make, onnx_differences, torch_differences

IDS = [name for name, _ in CASES]


def test_import_npae_export_imports_no_torch_or_onnx():
    code = ("import sys, npae, npae.export; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_to_torch_equals_npae(case, dtype, tol):
    """encode, decode and the training loss (a VAE's with the same eps) of the module equal npae's."""
    pytest.importorskip("torch")
    diffs = torch_differences(*make(case[1], dtype))
    assert max(diffs.values()) <= tol, diffs


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[8], CASES[10], CASES[11]],
                         ids=[CASES[i][0] for i in (0, 3, 8, 10, 11)])
def test_torch_trains_and_the_weights_come_back(case):
    """One Adam step in torch (eps drawn by torch), then from_torch into a fresh npae model: its
    outputs and loss equal the trained module's; the step changed the weights."""
    torch = pytest.importorskip("torch")
    from npae.export import from_torch, to_torch
    model, X, y, Z, eps = make(case[1], "float64")
    module = to_torch(model)
    torch.manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    tx, ty = torch.from_numpy(X), None if y is None else torch.from_numpy(y)
    loss = module(tx, ty)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    after = module(tx, ty, eps=torch.from_numpy(eps)) if isinstance(model, npae.VAE) else module(tx)
    assert torch.isfinite(after)

    back = case[1]("float64")
    back._require_built()
    assert from_torch(module.state_dict(), back) is back
    moved = max(float(np.max(np.abs(back.params[k] - model.params[k]))) for k in model.params)
    assert moved > 1e-4  # the torch step reached npae
    ky = {} if y is None else {"y": y}
    with torch.no_grad():
        assert np.max(np.abs(back.decode(Z, **ky) - module.decode(torch.from_numpy(Z), ty).numpy())) < 1e-12
        assert np.max(np.abs(back.encode(X, **ky) - module.encode(tx, ty).numpy())) < 1e-12
    kw = {"eps": eps, **ky} if isinstance(model, npae.VAE) else {}
    assert back.loss_and_grads(X, **kw)[0] == pytest.approx(after.item(), rel=1e-12)
    # and the module itself round-trips: to_torch of the copy holds the same numbers
    again = to_torch(back).state_dict()
    assert all(torch.equal(again[k], v) for k, v in module.state_dict().items())


def test_torch_gradients_equal_npae():
    """The module's autograd gradients equal npae's hand-derived ones (a VAE, float64)."""
    torch = pytest.importorskip("torch")
    from npae.export import to_torch
    model, X, _, _, eps = make(CASES[9][1], "float64")
    module = to_torch(model)
    module(torch.from_numpy(X), eps=torch.from_numpy(eps)).backward()
    _, grads = model.loss_and_grads(X, eps=eps)
    state = dict(module.named_parameters())
    for name, (key, transposed) in module.param_map.items():
        g = state[key].grad.numpy()
        np.testing.assert_allclose(g.T if transposed else g, grads[name], rtol=1e-10, atol=1e-12)


def test_from_torch_refuses_weights_of_another_model_and_writes_nothing():
    torch = pytest.importorskip("torch")
    from npae.export import from_torch, to_torch
    source = to_torch(npae.VAE(16, hidden=(8,), latent_dim=3))
    target = npae.VAE(16, hidden=(5,), latent_dim=3)
    target._require_built()
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(npae.InputError, match="encoder.0.weight has shape"):
        from_torch(source, target)
    with pytest.raises(npae.InputError, match="missing"):
        from_torch({"encoder.0.weight": torch.zeros(8, 16)}, target)
    state = to_torch(target).state_dict()
    state["decoder.0.bias"][0] = float("nan")
    with pytest.raises(npae.InputError, match="NaN"):
        from_torch(state, target)
    with pytest.raises(npae.InputError, match="source must be"):
        from_torch([1, 2], target)
    assert all(np.array_equal(before[k], target.params[k]) for k in before)


# --------------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------------
UNSUPPORTED = [
    (lambda: npae.SparseAutoencoder(16, hidden=(4,)), "SparseAutoencoder"),
    (lambda: npae.DenoisingAutoencoder(16, hidden=(4,)), "DenoisingAutoencoder"),
    (lambda: npae.TwoLayerVAE(16), "TwoLayerVAE"),
    (lambda: npae.PCA(2), "PCA"),
    (lambda: npae.VAE(16, hidden=(4,), latent_dim=2, objective="iwae", k=2), "objective='iwae'"),
    (lambda: npae.VAE(16, hidden=(4,), latent_dim=2, flow="planar"), "flow='planar'"),
]


@pytest.mark.parametrize("make_model, named", UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
@pytest.mark.parametrize("who", ["to_torch", "to_onnx"])
def test_unsupported_kinds_are_refused_by_name(make_model, named, who):
    pytest.importorskip("torch" if who == "to_torch" else "onnx")
    from npae import export
    with pytest.raises(npae.InputError, match=named.replace("(", r"\(")) as info:
        getattr(export, who)(make_model())
    assert who in str(info.value)


def test_a_model_never_fitted_is_refused():
    pytest.importorskip("torch")
    from npae.export import to_torch
    with pytest.raises(npae.InputError, match="not fitted"):
        to_torch(npae.VAE())


# --------------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_onnx_graphs_run_in_onnxruntime_equal_to_npae(case, dtype):
    """Both parts pass onnx.checker (inside to_onnx) and onnxruntime's outputs are within 1e-5 of
    npae's (float32 graphs; a float64 model's weights rounded once)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model, X, y, Z, _ = make(case[1], dtype)
    diffs = onnx_differences(model, X, y, Z)
    assert max(diffs.values()) <= 1e-5, diffs


def test_onnx_graph_shape_and_names():
    onnx = pytest.importorskip("onnx")
    from npae.export import to_onnx
    vae = npae.ConditionalVAE(16, n_classes=3, hidden=(8,), latent_dim=2)
    enc, dec = to_onnx(vae, "encoder"), to_onnx(vae, part="decoder")
    assert [i.name for i in enc.graph.input] == ["x", "c"]
    assert [o.name for o in enc.graph.output] == ["mu", "logvar"]
    assert [i.name for i in dec.graph.input] == ["z", "c"]
    assert [o.name for o in dec.graph.output] == ["x_hat"]
    onnx.checker.check_model(onnx.load_from_string(dec.SerializeToString()))
    with pytest.raises(npae.InputError, match="part"):
        to_onnx(vae, "middle")


@pytest.mark.skipif(os.environ.get("NPAE_TEST_DDP") != "1",
                    reason="starts two torch processes (13-35 s on a loaded 2-core machine): NPAE_TEST_DDP=1")
def test_distributed_data_parallel_step_equals_one_full_batch_step():
    """Two CPU ranks (gloo), each on half the batch: DDP averages their gradients, which for a
    per-example-mean loss is the full batch's gradient; the weights after one SGD step equal a
    single process's step on the whole batch (float64). Opt-in (NPAE_TEST_DDP=1): its cost is two
    fresh interpreters importing torch, not the check."""
    torch = pytest.importorskip("torch")
    import socket
    import torch.multiprocessing as mp
    from _export_cases import ddp_rank
    from npae.export import to_torch
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    rng = np.random.default_rng(3)
    X, eps = rng.random((8, 12)), rng.standard_normal((8, 2))
    model = npae.VAE(12, hidden=(8,), latent_dim=2)
    model._require_built()
    for a in model.params.values():
        a += 0.3 * rng.standard_normal(a.shape)
    state = {k: v.copy() for k, v in model.params.items()}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=ddp_rank, args=(r, 2, port, X, eps, state, out)) for r in range(2)]
    for p in procs:
        p.start()
    got = out.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    single = to_torch(model)
    opt = torch.optim.SGD(single.parameters(), lr=0.1)
    single(torch.from_numpy(X), eps=torch.from_numpy(eps)).backward()
    opt.step()
    for key, value in single.state_dict().items():
        np.testing.assert_allclose(got[key], value.numpy(), rtol=1e-12, atol=1e-14)
