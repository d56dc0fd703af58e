"""The image layers (npae.models.conv_layers: Conv2D, ConvTranspose2D, ConvAct, Flatten, Reshape, ImagePlanes)
under the active backend: central-difference checks of every input and parameter gradient over
drawn sizes, channels, kernels, strides (larger than the kernel too), paddings, output paddings
and activations; gradients written in place; apply == forward without a cache; the two backends'
units equal call by call (scratch arrays recycled or not); the reading surface on the training
path; every conv tag on a line a reference fit runs; argument errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae import tags
from npae.fast import backends
from npae.pairs import conv
from npae.gradcheck import check_pair, numerical_gradient, rel_error
from npae.init import conv_fans
from npae.models.conv_layers import (ConvAct, ConvTranspose2D, Conv2D, Flatten, ImagePlanes, Reshape,
                                     image_planes_backward, image_planes_forward)
from npae.models.layers import ELU, FlatParams, LeakyReLU, ReLU, Sequential, Softplus, Tanh

from _trace import tags_not_run

fused_only = pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")
seeds = st.integers(0, 2**31 - 1)
ACTS = {"identity": lambda: None, "relu": ReLU, "leaky_relu": lambda: LeakyReLU(0.2), "tanh": Tanh,
        "elu": lambda: ELU(0.7), "softplus": Softplus}


def _maybe_int(pair):
    return pair[0] if pair[0] == pair[1] else pair


@st.composite
def conv_layers(draw, transposed=False):
    """A conv layer (drawn kernel 1..3, stride 1..4 so that stride > kernel occurs, padding,
    output padding for a transposed one, channels 1..3) and a valid input shape."""
    c_in, c_out, B = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    p = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    seed = draw(seeds)
    if transposed:
        op = tuple(draw(st.integers(0, s_ - 1)) for s_ in s)
        size = tuple(draw(st.integers(1, 3)) for _ in range(2))
        p = tuple(min(p_, ((n - 1) * s_ + k_ + op_ - 1) // 2)  # leave an output
                  for p_, n, s_, k_, op_ in zip(p, size, s, k, op))
        layer = ConvTranspose2D(c_in, c_out, _maybe_int(k), _maybe_int(s), _maybe_int(p), _maybe_int(op),
                                init=draw(st.sampled_from(["glorot_uniform", "he_normal"])), rng=seed)
    else:
        size = tuple(draw(st.integers(max(1, k_ - 2 * p_), max(1, k_ - 2 * p_) + 3)) for k_, p_ in zip(k, p))
        layer = Conv2D(c_in, c_out, _maybe_int(k), _maybe_int(s), _maybe_int(p),
                       init=draw(st.sampled_from(["glorot_uniform", "he_normal"])), rng=seed)
    rng = np.random.default_rng(seed + 1)
    layer.params["b"][...] = rng.normal(0.0, 0.5, c_out)
    x = rng.standard_normal((B, c_in) + size)
    return layer, x, draw(st.sampled_from(sorted(ACTS)))


def check_step(seq, x, rng, margin=1e-3):
    """Central differences of ``L = Σ seq(x) ⊙ dy`` with respect to x and every parameter of
    ``seq`` against its backward; returns the worst relative error (skips draws whose
    pre-activations sit within ``margin`` of a kink)."""
    y = seq.forward(x)
    for step in seq.steps:
        pre = getattr(step, "pre", None)
        if getattr(step, "act_name", "identity") in ("relu", "leaky_relu") and pre is not None:
            assume(np.min(np.abs(pre)) > margin)
    dy = rng.standard_normal(y.shape)
    dx = seq.backward(dy)
    grads = {name: g.copy() for name, g in seq.grads.items()}

    def loss(_):
        return float(np.sum(seq.apply(x) * dy))

    errors = [rel_error(dx, numerical_gradient(loss, x))]
    for name, p in seq.params.items():
        errors.append(rel_error(grads[name], numerical_gradient(loss, p)))
    return max(errors)


@given(conv_layers(), seeds)
def test_conv2d_step_gradients(drawn, seed):
    layer, x, act = drawn
    seq = Sequential([layer] + ([ACTS[act]()] if act != "identity" else []))
    assert isinstance(seq.steps[0], ConvAct if act != "identity" else Conv2D)
    assert check_step(seq, x, np.random.default_rng(seed)) <= 1e-6


@given(conv_layers(transposed=True), seeds)
def test_conv_transpose2d_step_gradients(drawn, seed):
    layer, x, act = drawn
    seq = Sequential([layer] + ([ACTS[act]()] if act != "identity" else []))
    y = seq.forward(x)
    assert y.shape[2:] == conv.conv_transpose_output_size(x.shape[2:], layer.kernel, layer.stride,
                                                          layer.padding, layer.output_padding)
    assert check_step(seq, x, np.random.default_rng(seed)) <= 1e-6


@settings(max_examples=10)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 4), st.integers(1, 3), seeds)
def test_image_planes_pair_and_layer(C, side, n_cond, B, seed):
    """Checks [CONV-14]."""
    rng = np.random.default_rng(seed)
    shape = (C, side, side + 1)
    D = C * side * (side + 1)
    xc = rng.standard_normal((B, D + n_cond))
    y, _ = image_planes_forward(xc, shape, n_cond)
    assert y.shape == (B, C + n_cond, side, side + 1)
    np.testing.assert_array_equal(y[:, :C].reshape(B, -1), xc[:, :D])
    for k in range(n_cond):  # every pixel of plane k holds c_k
        plane = np.broadcast_to(xc[:, D + k, None, None], (B, side, side + 1))
        np.testing.assert_array_equal(y[:, C + k], plane)
    check_pair(image_planes_forward, image_planes_backward, [xc], wrt=[0],
               kwargs=dict(image_shape=shape, n_cond=n_cond), rng=seed).assert_ok()
    layer = ImagePlanes(shape, n_cond)
    assert layer.output_shape((D + n_cond,)) == (C + n_cond, side, side + 1)
    np.testing.assert_array_equal(layer.forward(xc), y)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(layer.backward(dy), image_planes_backward(dy, layer.cache))
    assert layer.backward(dy, input_grad=False) is None


def test_flatten_and_reshape_layers(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    flat, back = Flatten(), Reshape((3, 4, 5))
    y = flat.forward(x)
    np.testing.assert_array_equal(y, x.reshape(2, -1))
    np.testing.assert_array_equal(back.forward(y), x)
    np.testing.assert_array_equal(flat.backward(y), x)
    np.testing.assert_array_equal(back.backward(x), y)
    assert flat.output_shape((3, 4, 5)) == (60,) and back.output_shape((60,)) == (3, 4, 5)
    assert flat.backward(y, input_grad=False) is None and back.backward(x, input_grad=False) is None
    assert check_step(Sequential([Flatten()]), x, rng) <= 1e-6  # central differences, as every layer
    assert check_step(Sequential([Reshape((3, 4, 5))]), y, rng) <= 1e-6
    with pytest.raises(npae.InputError, match="cannot take an input"):
        back.output_shape((59,))


# --------------------------------------------------------------------------------------------------
# the using surface: in-place gradients, apply, input_grad, FlatParams
# --------------------------------------------------------------------------------------------------
def _small_stack(rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    return Sequential([ImagePlanes((1, 6, 6), 2), Conv2D(3, 4, 3, 2, 1, rng=rng), ReLU(),
                       Conv2D(4, 2, 2, 1, 0, rng=rng), Flatten(), Reshape((2, 2, 2)),
                       ConvTranspose2D(2, 3, 3, 2, 1, 1, rng=rng), LeakyReLU(0.1),
                       ConvTranspose2D(3, 1, 1, 1, 0, rng=rng)], prefix="net.")


def test_gradients_are_written_in_place_and_flatparams_views_hold():
    seq = _small_stack()
    flat = FlatParams([seq])
    x = np.random.default_rng(1).standard_normal((3, 38))
    y = seq.forward(x)
    assert y.shape == (3, 1, 4, 4)
    held = {name: g for name, g in seq.grads.items()}
    seq.backward(np.ones_like(y))
    first = flat.grad_data.copy()
    assert np.any(first != 0)
    seq.forward(2 * x)
    seq.backward(np.ones_like(y))
    for name, g in seq.grads.items():
        assert g is held[name] and g.base is flat.grad_data, name  # the same views, overwritten
    assert flat.holds(flat.params, seq.grads)
    assert not np.array_equal(flat.grad_data, first)
    assert list(seq.params) == ["net.0.W", "net.0.b", "net.1.W", "net.1.b", "net.2.W", "net.2.b",
                                "net.3.W", "net.3.b"]


def test_apply_equals_forward_and_keeps_no_cache():
    seq = _small_stack()
    x = np.random.default_rng(2).standard_normal((2, 38))
    y = seq.forward(x)
    caches = [getattr(step, "cache", None) for step in seq.steps]
    np.testing.assert_allclose(seq.apply(x), y, rtol=1e-14, atol=1e-15)
    assert [getattr(step, "cache", None) for step in seq.steps] == caches


def test_input_grad_false_skips_dx_and_gives_the_same_parameter_gradients():
    seq = _small_stack()
    x = np.random.default_rng(3).standard_normal((2, 38))
    dy = np.random.default_rng(4).standard_normal(seq.forward(x).shape)
    dx = seq.backward(dy)
    assert dx.shape == x.shape
    full = {k: g.copy() for k, g in seq.grads.items()}
    seq.forward(x)
    assert seq.backward(dy, input_grad=False) is None
    for name, g in seq.grads.items():
        np.testing.assert_array_equal(g, full[name], err_msg=name)
    for layer in (Conv2D(2, 3, 3, rng=0), ConvTranspose2D(2, 3, 3, 2, rng=0)):
        out = layer.forward(np.ones((1, 2, 4, 4)))
        assert layer.backward(np.ones_like(out), input_grad=False) is None


# --------------------------------------------------------------------------------------------------
# reference == fused, unit by unit
# --------------------------------------------------------------------------------------------------
@fused_only
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
@given(drawn=conv_layers(), transposed=st.booleans(), seed=seeds)
@settings(max_examples=15)
def test_fused_units_equal_the_reference(dtype, rtol, drawn, transposed, seed):
    backends._load_kernels()  # the fused units are called directly here, not through a fit that loads them
    layer, x, act = drawn
    if transposed:
        layer = ConvTranspose2D(layer.in_channels, layer.out_channels, 3, 2, 1, 1, rng=seed)
    x = x.astype(dtype)
    W, b = layer.params["W"].astype(dtype), layer.params["b"].astype(dtype)
    hyper = {"leaky_relu": {"slope": 0.2}, "elu": {"alpha": 0.7}}.get(act, {})
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("reference", "fused"):
        impl = backends.IMPLEMENTATIONS[name]
        fwd = impl.conv_transpose2d_act_forward if transposed else impl.conv2d_act_forward
        bwd = impl.conv_transpose2d_act_backward if transposed else impl.conv2d_act_backward
        args = (layer.stride, layer.padding) + ((layer.output_padding,) if transposed else ())
        h, cache = fwd(x, W, b, *args, act, hyper, None)
        h2, cache2 = fwd(x, W, b, *args, act, hyper, cache)  # scratch arrays of the first call recycled
        np.testing.assert_array_equal(h2, h)
        dy = rng.standard_normal(h.shape).astype(dtype) if name == "reference" else out["reference"][1]
        dW, db = np.empty_like(W), np.empty_like(b)
        dx = bwd(dy, cache2, dW, db, True)
        assert h.dtype == dx.dtype == dW.dtype == np.dtype(dtype)
        out[name] = (h, dy, dx, dW.copy(), db.copy(), cache2.a)
    for k, what in [(0, "h"), (2, "dx"), (3, "dW"), (4, "db"), (5, "pre")]:
        np.testing.assert_allclose(out["fused"][k], out["reference"][k], rtol=rtol, atol=rtol, err_msg=what)


@fused_only
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh"])
def test_fused_backward_takes_a_reference_forwards_cache(transposed, act):
    """The fused units keep channel-major scratch in their caches (conv2d: its patch matrix, the
    reference's transposed, marked "planes"; the transposed convolution: the input's planes,
    appended); given the cache of a reference forward, their backwards give the reference's
    gradients."""
    backends._load_kernels()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6) if not transposed else (2, 4, 5, 3))
    W = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(3 if transposed else 4)
    hyper = {"slope": 0.2} if act == "leaky_relu" else {}
    args = ((2, 2), (1, 1)) + (((1, 1),) if transposed else ())
    ref, fused = backends.IMPLEMENTATIONS["reference"], backends.IMPLEMENTATIONS["fused"]
    unit = "conv_transpose2d_act" if transposed else "conv2d_act"
    h, cache = getattr(ref, f"{unit}_forward")(x, W, b, *args, act, hyper)
    h_fused, cache_fused = getattr(fused, f"{unit}_forward")(x, W, b, *args, act, hyper)
    if transposed:
        assert len(cache.conv_cache) == 4 and len(cache_fused.conv_cache) == 5
    else:
        assert cache_fused.conv_cache[-1] == "planes"
        assert cache_fused.conv_cache[1].shape == cache.conv_cache[1].T.shape  # the patch matrix transposed
    np.testing.assert_allclose(h_fused, h, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(h.shape)
    grads = {}
    for name, impl, c in [("reference", ref, cache), ("mixed", fused, cache), ("fused", fused, cache_fused)]:
        dW, db = np.empty_like(W), np.empty_like(b)
        grads[name] = (getattr(impl, f"{unit}_backward")(dy, c, dW, db, True), dW, db)
    for name in ("mixed", "fused"):
        for got, want in zip(grads[name], grads["reference"]):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@fused_only
def test_fused_scratch_arrays_are_recycled_between_steps():
    layer = Conv2D(2, 4, 3, 2, 1, rng=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 8))
    with npae.backend("fused"):
        step = Sequential([layer, ReLU()]).steps[0]
        step.forward(x)
        step.backward(np.ones((3, 4, 4, 4)))
        work = step.cache.work
        cols = work["cols"]
        step.forward(x)
        assert step.cache.work is work and step.cache.conv_cache[1] is cols  # written again, not new
        h = step.apply(x)  # evaluation keeps nothing and leaves the training scratch alone
        assert step.cache.work is work and h is not step.cache.a


# --------------------------------------------------------------------------------------------------
# the reading surface is on the training path, every conv tag runs
# --------------------------------------------------------------------------------------------------
def _conv_vae():
    return npae.VAE(36, hidden=(), latent_dim=2, seed=0, encoder_layers=[
        ["conv2d", {"out": 2, "kernel": 3, "stride": 2, "padding": 1}], ["relu"], ["flatten"]],
        decoder_layers=[["dense", {"out": 18}], ["relu"], ["reshape", {"shape": [2, 3, 3]}],
                        ["conv_transpose2d", {"out": 1, "kernel": 3, "stride": 2, "padding": 1,
                                              "output_padding": 1}]])


def _raising(name):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} was called")
    return fail


@fused_only
@pytest.mark.parametrize("pair", ["conv2d_forward", "conv2d_backward", "conv_transpose2d_forward",
                                  "conv_transpose2d_backward"])
def test_the_conv_pairs_are_on_the_reference_training_path(monkeypatch, pair):
    X = np.random.default_rng(0).random((16, 36))
    monkeypatch.setattr(conv, pair, _raising(pair))
    with npae.backend("reference"):
        with pytest.raises(RuntimeError, match=f"{pair} was called"):
            _conv_vae().fit(X, epochs=1, progress=False)
    with npae.backend("fused"):
        _conv_vae().fit(X, epochs=1, progress=False)


def test_every_conv_tag_runs_in_a_reference_fit():
    X, y = npae.datasets.load_digits()
    X, y = X[:40], y[:40]

    def fit():
        with npae.backend("reference"):
            npae.ConditionalVAE(64, 10, hidden=(), latent_dim=2, arch="conv", seed=0).fit(
                X, y, epochs=1, batch_size=20, progress=False)

    conv_tags = sorted(t for t in tags.code_tags() if t.startswith("CONV-"))
    assert len(conv_tags) == 14
    not_run = tags_not_run(conv_tags, fit)
    assert not not_run, f"tagged conv lines a reference fit never ran: {not_run}"


# --------------------------------------------------------------------------------------------------
# initialization and argument errors
# --------------------------------------------------------------------------------------------------
def test_initializers_use_the_kernel_fans():
    conv_layer = Conv2D(8, 16, 3, 2, init="he_uniform", rng=0)
    fan_in, _ = conv_fans((16, 8, 3, 3), False, (2, 2))
    assert np.abs(conv_layer.params["W"]).max() <= np.sqrt(6 / fan_in)
    assert np.abs(conv_layer.params["W"]).max() > 0.9 * np.sqrt(6 / fan_in)
    # a transposed layer counts its fans as PyTorch does (measured to train better, docs/conv.md):
    # fan_in = C_out·k² = 128, not the 16·16/4 = 64 terms one of its outputs sums [CONV-13]
    up = ConvTranspose2D(16, 8, 4, 2, 1, init="he_normal", rng=0)
    assert conv_fans((16, 8, 4, 4), True, (2, 2))[0] == 64
    np.testing.assert_allclose(up.params["W"].std(), np.sqrt(2 / (8 * 16)), rtol=0.05)
    glorot = ConvTranspose2D(16, 8, 3, 2, init="glorot_uniform", rng=0)
    limit = np.sqrt(6 / (8 * 9 + 16 * 9))
    assert limit * 0.95 < np.abs(glorot.params["W"]).max() <= limit
    assert np.all(up.params["b"] == 0) and up.params["W"].shape == (16, 8, 4, 4)
    assert Conv2D(1, 2, 3, dtype="float32").params["W"].dtype == np.float32


@pytest.mark.parametrize("make, match", [
    (lambda: Conv2D(0, 2, 3), "in_channels must be >= 1"),
    (lambda: Conv2D(1, 2, 0), "kernel must be >= 1"),
    (lambda: Conv2D(1, 2, 3, stride=(1, 2, 3)), "stride must be an int or an"),
    (lambda: Conv2D(1, 2, 3, padding=-1), "padding must be >= 0"),
    (lambda: Conv2D(1, 2, 3, init="uniform"), "unknown init"),
    (lambda: ConvTranspose2D(1, 2, 3, stride=2, output_padding=2), "output_padding 2 must be smaller"),
    (lambda: Reshape((2, 0)), "each entry of shape"),
    (lambda: ImagePlanes((4, 4)), "image_shape must be"),
])
def test_bad_layer_arguments_raise_input_errors(make, match):
    with pytest.raises(npae.InputError, match=match):
        make()


def test_wrong_input_shapes_name_the_layer():
    layer = Conv2D(2, 3, 3)
    with pytest.raises(npae.InputError, match=r"x must be \(B, 2, H, W\)"):
        layer.forward(np.ones((1, 3, 5, 5)))
    with pytest.raises(npae.InputError, match="larger than the padded input"):
        layer.output_shape((2, 2, 2))
    assert layer.output_shape((2, 5, 7)) == (3, 3, 5)
    assert ConvTranspose2D(3, 1, 3, 2, 1, 1).output_shape((3, 7, 7)) == (1, 14, 14)
    assert repr(ConvTranspose2D(3, 1, 3, 2, 1, (1, 0))) == \
        "ConvTranspose2D(3, 1, 3, stride=2, padding=1, output_padding=(1, 0))"
