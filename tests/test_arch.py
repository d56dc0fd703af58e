"""Models built from layer stacks (npae.models.architectures): arch="mlp" is exactly the old build_mlp
chains; arch="conv" has the sizes it promises for any H x W; the spec language and its errors;
whole conv models (Autoencoder, VAE with fixed eps, ConditionalVAE) checked against central
differences over drawn image sizes, channels, kernels, strides, paddings and output paddings; the
two backends train conv models to the same parameters; save/load and bit-identical resume;
evaluation forward only; one step equal to PyTorch's when torch happens to be installed."""
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae import datasets
from npae.models import architectures
from npae.fast import backends
from npae.pairs import conv
from npae.data import io
from npae.constants import GRADCHECK_TOL
from npae.gradcheck import central_difference, check_model
from npae.init import make_rng
from npae.models.conv_layers import ConvTranspose2D, Conv2D, Flatten, ImagePlanes, Reshape
from npae.models.layers import Dense, build_mlp

from conftest import activation_inputs_off_kinks

fused_only = pytest.mark.skipif("fused" not in backends.available(), reason="numba is not available")
seeds = st.integers(0, 2**31 - 1)


@pytest.fixture(scope="module")
def digits():
    X, y = datasets.load_digits()
    return X[:192], y[:192]


def _same_params(a, b):
    assert list(a.params) == list(b.params)
    for name in a.params:
        assert a.params[name].dtype == b.params[name].dtype
        assert a.params[name].tobytes() == b.params[name].tobytes(), name


# --------------------------------------------------------------------------------------------------
# arch="mlp": the chains of build_mlp, bit for bit
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, enc, dec", [
    (lambda: npae.Autoencoder(64, hidden=(16, 8), latent_dim=3, activation="tanh", code_activation="relu",
                              init="he_normal", seed=3),
     lambda rng: build_mlp([64, 16, 8, 3], "tanh", "relu", rng=rng, dtype=np.float64, prefix="encoder.",
                           init="he_normal"),
     lambda rng: build_mlp([3, 8, 16, 64], "tanh", "identity", rng=rng, dtype=np.float64, prefix="decoder.",
                           init="he_normal")),
    (lambda: npae.VAE(64, hidden=(32,), latent_dim=2, activation="leaky_relu", slope=0.2, dtype="float32",
                      seed=4),
     lambda rng: build_mlp([64, 32, 4], "leaky_relu", "identity", rng=rng, dtype=np.float32,
                           prefix="encoder.", slope=0.2),
     lambda rng: build_mlp([2, 32, 64], "leaky_relu", "identity", rng=rng, dtype=np.float32,
                           prefix="decoder.", slope=0.2)),
    (lambda: npae.ConditionalVAE(64, 10, hidden=(), latent_dim=2, seed=5),
     lambda rng: build_mlp([74, 4], "relu", "identity", rng=rng, dtype=np.float64, prefix="encoder."),
     lambda rng: build_mlp([12, 64], "relu", "identity", rng=rng, dtype=np.float64, prefix="decoder.")),
], ids=["ae", "vae-float32", "cvae"])
def test_arch_mlp_is_exactly_build_mlp(model, enc, dec):
    m = model()
    assert m.arch == "mlp" and m.get_params()["encoder_layers"] is None
    rng = make_rng(m.seed)
    encoder, decoder = enc(rng), dec(rng)
    assert repr(m.encoder) == repr(encoder) and repr(m.decoder) == repr(decoder)
    for mine, theirs in ((m.encoder, encoder), (m.decoder, decoder)):
        for name, p in theirs.params.items():
            assert mine.params[name].tobytes() == p.tobytes(), name
    assert m.rng.bit_generator.state == rng.bit_generator.state  # the same number of draws


# --------------------------------------------------------------------------------------------------
# arch="conv": the promised layers and sizes
# --------------------------------------------------------------------------------------------------
def test_arch_conv_on_mnist_size_is_the_keras_layout():
    vae = npae.VAE(784, hidden=(), latent_dim=2, arch="conv")
    enc, dec = vae.encoder.layers, vae.decoder.layers
    assert [type(layer).__name__ for layer in enc] == ["ImagePlanes", "Conv2D", "ReLU", "Conv2D", "ReLU",
                                                       "Flatten", "Dense"]
    assert (enc[1].out_channels, enc[1].kernel, enc[1].stride, enc[1].padding) == (32, (3, 3), (2, 2), (1, 1))
    assert (enc[3].out_channels, enc[3].stride) == (64, (2, 2))
    assert (enc[6].n_in, enc[6].n_out) == (64 * 7 * 7, 4)
    assert [type(layer).__name__ for layer in dec] == [
        "Dense", "ReLU", "Reshape", "ConvTranspose2D", "ReLU", "ConvTranspose2D", "ReLU", "ConvTranspose2D",
        "Flatten"]
    assert dec[0].n_out == 64 * 7 * 7 and dec[2].shape == (64, 7, 7)
    assert [(d.out_channels, d.stride, d.output_padding) for d in (dec[3], dec[5], dec[7])] == [
        (64, (2, 2), (1, 1)), (32, (2, 2), (1, 1)), (1, (1, 1), (0, 0))]
    # He before ReLU, Glorot before the code and the logits [CONV-13]
    W = vae.params["encoder.0.W"]
    assert np.abs(W).max() <= np.sqrt(6 / 9) and np.abs(W).max() > np.sqrt(6 / (9 + 32 * 9 / 4))
    x = np.random.default_rng(0).random((2, 784))
    assert vae.encoder.apply(x).shape == (2, 4) and vae.decoder.apply(np.zeros((2, 2))).shape == (2, 784)


@pytest.mark.parametrize("shape, n_features, given", [((1, 8, 8), 64, None), ((1, 28, 28), 784, None),
                                                      ((1, 5, 7), 35, (5, 7)), ((3, 6, 10), 180, (3, 6, 10)),
                                                      ((1, 1, 3), 3, [1, 3]), ((2, 9, 4), 72, (2, 9, 4))])
def test_arch_conv_retraces_any_image_size(shape, n_features, given):
    ae = npae.Autoencoder(n_features, hidden=(5,), latent_dim=3, arch="conv", image_shape=given)
    assert ae.encoder.layers[0].image_shape == shape
    sizes = [shape]
    for layer in ae.encoder.layers[1:]:
        if isinstance(layer, Conv2D):
            sizes.append(layer.output_shape(sizes[-1]))
    ups = [layer for layer in ae.decoder.layers if isinstance(layer, ConvTranspose2D)]
    back = [next(layer for layer in ae.decoder.layers if isinstance(layer, Reshape)).shape]
    for layer in ups:
        back.append(layer.output_shape(back[-1]))
    assert [s[1:] for s in back[:-1]] == [s[1:] for s in sizes[::-1]]  # the decoder retraces the encoder
    assert back[-1] == shape  # and its stride-1 layer gives the logits of every pixel
    X = np.random.default_rng(0).random((3, n_features))
    assert ae.reconstruct(X).shape == X.shape


def test_image_shape_errors():
    with pytest.raises(npae.InputError, match="not a square image"):
        npae.VAE(50, arch="conv").params
    with pytest.raises(npae.InputError, match="holds 30 pixels"):
        npae.VAE(64, arch="conv", image_shape=(5, 6)).params
    with pytest.raises(npae.InputError, match="image_shape must be"):
        npae.VAE(64, arch="conv", image_shape=(1, 2, 4, 8)).params
    with pytest.raises(npae.InputError, match="unknown arch 'cnn'"):
        npae.VAE(64, arch="cnn").params


# --------------------------------------------------------------------------------------------------
# the spec language
# --------------------------------------------------------------------------------------------------
ENC = [["conv2d", {"out": 3, "kernel": 3, "stride": 2, "padding": 1}], ["leaky_relu", {"slope": 0.3}],
       ["conv2d", {"out": 2, "kernel": [2, 1]}], "tanh", ["flatten"],
       ["dense", {"out": 6, "init": "he_normal"}], ["elu"]]
DEC = [["dense", {"out": 8}], ["relu"], ["reshape", {"shape": [2, 2, 2]}],
       ["conv_transpose2d", {"out": 2, "kernel": 4, "stride": 2, "padding": 1}], ["softplus"],
       ["conv_transpose2d", {"out": 1, "kernel": 1, "stride": 2, "output_padding": 1}]]


def test_explicit_stacks_are_completed_by_the_model():
    vae = npae.ConditionalVAE(64, 3, latent_dim=2, encoder_layers=ENC, decoder_layers=DEC, alpha=0.5, seed=1)
    enc, dec = vae.encoder.layers, vae.decoder.layers
    assert isinstance(enc[0], ImagePlanes) and enc[0].n_cond == 3 and enc[1].in_channels == 4
    assert enc[2].hyper == {"slope": 0.3} and enc[7].hyper == {"alpha": 0.5}  # the model's alpha fills in
    assert isinstance(enc[-1], Dense) and (enc[-1].n_in, enc[-1].n_out) == (6, 4)  # the code layer
    assert isinstance(dec[0], Dense) and dec[0].n_in == 2 + 3  # [z | c]
    assert isinstance(dec[-1], Flatten)  # 1 x 8 x 8 images flattened to the 64 outputs
    X, y = datasets.load_digits()
    assert vae.reconstruct(X[:5], y[:5] % 3).shape == (5, 64)
    # a flat decoder of another width gets a dense output layer; an AE's code gets its activation
    ae = npae.Autoencoder(64, latent_dim=3, code_activation="sigmoid", encoder_layers=ENC,
                          decoder_layers=[["dense", {"out": 10}], ["relu"]])
    assert [type(layer).__name__ for layer in ae.encoder.layers[-2:]] == ["Dense", "Sigmoid"]
    assert isinstance(ae.decoder.layers[-1], Dense) and ae.decoder.layers[-1].n_out == 64
    # one side given, the other from arch and hidden
    half = npae.VAE(64, hidden=(7,), latent_dim=2, encoder_layers=ENC)
    assert [type(layer).__name__ for layer in half.decoder.layers] == ["Dense", "ReLU", "Dense"]
    conv_half = npae.VAE(64, hidden=(), latent_dim=2, arch="conv", decoder_layers=[["dense", {"out": 64}]])
    assert isinstance(conv_half.encoder.layers[1], Conv2D) and len(conv_half.decoder.layers) == 1


@pytest.mark.parametrize("kw, match", [
    (dict(encoder_layers="conv"), "must be a list of layers"),
    (dict(encoder_layers=[]), "is empty"),
    (dict(encoder_layers=[["pool", {}]]), r"encoder_layers\[0\]: unknown layer kind 'pool'"),
    (dict(encoder_layers=[["conv2d", {"out": 2, "kernel": 3, "strides": 2}]]),
     r"unknown option\(s\) \['strides'\]"),
    (dict(encoder_layers=[["conv2d", {"out": 2}]]), r"missing option\(s\) \['kernel'\]"),
    (dict(encoder_layers=[["conv2d", {"out": 2, "kernel": 9}]]),
     r"encoder_layers\[0\] .* larger than the padded"),
    (dict(encoder_layers=[["dense", {"out": 4}], ["conv2d", {"out": 2, "kernel": 1}]]), "put \\['reshape'"),
    (dict(encoder_layers=[["relu"], ["image"]]), "can only come first in an encoder"),
    (dict(decoder_layers=[["image"]]), "can only come first in an encoder"),
    (dict(decoder_layers=[["reshape", {"shape": [1, 8, 8]}]]), r"decoder_layers\[0\] .*cannot take an input"),
    (dict(decoder_layers=[["dense", {"out": 64}], ["sigmoid"]]), "ends with the activation"),
    (dict(decoder_layers=[["dense", {"out": 18}], ["reshape", {"shape": [2, 3, 3]}]]),
     r"images of shape \(2, 3, 3\)"),
    (dict(encoder_layers=[["dense", {"out": 0}]]), "out must be >= 1"),
    (dict(encoder_layers=[["relu", {"slope": 1}]]), "unknown option"),
    (dict(encoder_layers=[["conv2d", {"out": 2, "kernel": 3, "init": "zeros"}]]), "unknown init 'zeros'"),
])
def test_spec_errors_name_the_entry(kw, match):
    with pytest.raises(npae.InputError, match=match):
        npae.VAE(64, latent_dim=2, **kw).params


def test_conv_layers_spec_is_json_and_rebuilds_the_same_model():
    enc, dec = architectures.conv_layers((1, 28, 28), hidden=(16,))
    assert json.loads(json.dumps([enc, dec])) == [enc, dec]
    by_arch = npae.VAE(784, hidden=(16,), latent_dim=2, arch="conv", seed=3)
    by_spec = npae.VAE(784, latent_dim=2, encoder_layers=enc, decoder_layers=dec, seed=3)
    _same_params(by_arch, by_spec)
    assert enc[0] == ["conv2d", {"out": 32, "kernel": 3, "stride": 2, "padding": 1}]
    assert dec[-1] == ["conv_transpose2d", {"out": 1, "kernel": 3, "stride": 1, "padding": 1}]


def test_params_are_constructor_arguments_and_set_params_rebuilds(digits):
    vae = npae.VAE(hidden=(), latent_dim=2, seed=0)
    assert {"arch", "encoder_layers", "decoder_layers", "image_shape"} <= set(vae.get_params())
    vae.set_params(arch="conv").fit(digits[0][:64], epochs=1, progress=False)
    assert isinstance(vae.encoder.layers[1], Conv2D)
    json.dumps(vae.config)


# --------------------------------------------------------------------------------------------------
# whole models against central differences
# --------------------------------------------------------------------------------------------------
@st.composite
def small_conv_models(draw):
    """Spec stacks with drawn kernels (1x1 included), strides (larger than the kernel included),
    paddings and output paddings: the decoder's transposed convolution sets the image size, the
    encoder's convolution reads it."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    op = tuple(draw(st.integers(0, s_ - 1)) for s_ in s)
    h = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = tuple(min(draw(st.integers(0, 1)), ((n - 1) * s_ + k_ + op_ - 1) // 2)  # leave an output
              for n, s_, k_, op_ in zip(h, s, k, op))
    image = conv.conv_transpose_output_size(h, k, s, p, op)
    assume(image[0] * image[1] <= 30)
    C = draw(st.integers(1, 2))
    ke = (draw(st.integers(1, min(3, image[0] + 2))), draw(st.integers(1, min(3, image[1] + 2))))
    pe = tuple(draw(st.integers(max(0, -(-(k_ - n) // 2)), 1)) for k_, n in zip(ke, image))
    se = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    act = draw(st.sampled_from(["relu", "leaky_relu", "tanh", "elu"]))
    enc = [["conv2d", {"out": draw(st.integers(1, 2)), "kernel": list(ke), "stride": list(se),
                       "padding": list(pe)}], [act], ["flatten"]]
    dec = [["dense", {"out": 2 * h[0] * h[1]}], [act], ["reshape", {"shape": [2, h[0], h[1]]}],
           ["conv_transpose2d", {"out": C, "kernel": list(k), "stride": list(s), "padding": list(p),
                                 "output_padding": list(op)}]]
    return dict(encoder_layers=enc, decoder_layers=dec, image_shape=[C, *image],
                slope=draw(st.sampled_from([0.1, 0.3])), alpha=draw(st.sampled_from([0.5, 1.0])),
                seed=draw(seeds))


def _data(n_features, B, seed, n_classes=0):
    rng = np.random.default_rng(seed)
    return rng.random((B, n_features)), rng.integers(0, max(n_classes, 1), size=B)


@settings(max_examples=6)
@given(small_conv_models(), st.sampled_from(["bce", "mse"]))
def test_conv_autoencoder_gradients(spec, loss):
    C, H, W = spec["image_shape"]
    ae = npae.Autoencoder(C * H * W, latent_dim=2, output="sigmoid", loss=loss, **spec)
    x, _ = _data(C * H * W, 3, spec["seed"])
    ae.loss_and_grads(x)
    assume(activation_inputs_off_kinks(ae))
    check_model(ae, x).assert_ok()


@settings(max_examples=6)
@given(small_conv_models(), st.sampled_from(["bernoulli", "gaussian"]), st.floats(0.2, 2.0))
def test_conv_vae_gradients_with_fixed_eps(spec, likelihood, beta):
    C, H, W = spec["image_shape"]
    vae = npae.VAE(C * H * W, latent_dim=2, likelihood=likelihood, beta=beta, **spec)
    x, _ = _data(C * H * W, 3, spec["seed"])
    eps = np.random.default_rng(spec["seed"] + 1).standard_normal((3, 2))
    vae.loss_and_grads(x, eps=eps)
    assume(activation_inputs_off_kinks(vae))
    check_model(vae, x, eps=eps).assert_ok()


@settings(max_examples=6)
@given(small_conv_models(), st.integers(2, 4))
def test_conv_conditional_vae_gradients(spec, n_classes):
    C, H, W = spec["image_shape"]
    cvae = npae.ConditionalVAE(C * H * W, n_classes, latent_dim=2, **spec)
    assert cvae.encoder.layers[0].n_cond == n_classes
    x, y = _data(C * H * W, 3, spec["seed"], n_classes)
    eps = np.random.default_rng(spec["seed"] + 1).standard_normal((3, 2))
    cvae.loss_and_grads(x, y, eps=eps)
    assume(activation_inputs_off_kinks(cvae))
    check_model(cvae, x, y=y, eps=eps).assert_ok()


@pytest.mark.parametrize("make", [
    lambda: npae.Autoencoder(64, hidden=(6,), latent_dim=3, activation="tanh", arch="conv", seed=1),
    lambda: npae.VAE(64, hidden=(), latent_dim=2, activation="softplus", arch="conv", seed=2),
    lambda: npae.ConditionalVAE(64, 10, hidden=(5,), latent_dim=2, activation="softplus", arch="conv",
                                seed=3),
    lambda: npae.SparseAutoencoder(64, hidden=(4,), latent_dim=3, activation="tanh", arch="conv",
                                   penalty="kl", sparsity_weight=0.5, seed=4),
], ids=["ae", "vae", "cvae", "sae"])
def test_arch_conv_models_pass_a_directional_check(make):
    """The full-size arch="conv" stacks (too many weights to check one by one): the derivative of
    the loss along a random direction of all parameters against ⟨gradient, direction⟩. Smooth
    activations only: a step along every weight at once moves many pre-activations across 0, and
    the fourth-order difference needs derivatives that are continuous there (ELU's second is not)."""
    model = make()
    X, y = datasets.load_digits()
    x, lab = X[:4], (y[:4] if model.takes_labels else None)
    kw = {"eps": np.random.default_rng(0).standard_normal((4, 2))} if isinstance(model, npae.VAE) else {}
    args = (x,) if lab is None else (x, lab)
    _, grads = model.loss_and_grads(*args, **kw)
    rng = np.random.default_rng(1)
    u = {name: rng.standard_normal(p.shape) for name, p in model.params.items()}
    start = {name: p.copy() for name, p in model.params.items()}

    def loss_at(t):
        for name, p in model.params.items():
            p[...] = start[name] + t * u[name]
        return model.loss_and_grads(*args, **kw)[0]

    numeric = central_difference(loss_at)
    loss_at(0.0)
    analytic = sum(float(np.sum(grads[name] * u[name])) for name in grads)
    assert abs(numeric - analytic) <= GRADCHECK_TOL * max(abs(numeric), abs(analytic))


# --------------------------------------------------------------------------------------------------
# training: both backends, conditional conv VAE, evaluation forward only
# --------------------------------------------------------------------------------------------------
#: a small conv stack for 8x8 images (ReLU, 4 and 8 channels): the layout of arch="conv" at a
#: fraction of its cost, for the tests that train
SMALL = dict(encoder_layers=[["conv2d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1}], ["relu"],
                             ["conv2d", {"out": 8, "kernel": 3, "stride": 2, "padding": 1}], ["relu"]],
             decoder_layers=[["dense", {"out": 32}], ["relu"], ["reshape", {"shape": [8, 2, 2]}],
                             ["conv_transpose2d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1,
                                                   "output_padding": 1}], ["relu"],
                             ["conv_transpose2d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1,
                                                   "output_padding": 1}], ["relu"],
                             ["conv_transpose2d", {"out": 1, "kernel": 3, "padding": 1}]])


def _parity_models(dtype):
    return [
        ("vae-conv", lambda: npae.VAE(64, hidden=(), latent_dim=2, arch="conv", dtype=dtype, seed=2), False),
        ("ae-small", lambda: npae.Autoencoder(64, hidden=(8,), latent_dim=3, dtype=dtype, seed=1, **SMALL),
         False),
        ("cvae-small-leaky", lambda: npae.ConditionalVAE(64, 10, hidden=(), latent_dim=2,
                                                         activation="leaky_relu", slope=0.2, dtype=dtype,
                                                         seed=3, **SMALL), True),
        ("vae-stack-smooth", lambda: npae.VAE(64, latent_dim=2, likelihood="gaussian", dtype=dtype, seed=4,
                                              encoder_layers=ENC, decoder_layers=DEC), False),
    ]


@fused_only
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", _parity_models("float64"), ids=[c[0] for c in _parity_models("float64")])
def test_both_backends_train_conv_models_to_the_same_parameters(digits, case, dtype):
    name, _, labelled = case
    factory = dict((c[0], c[1]) for c in _parity_models(dtype))[name]
    X, y = digits[0][:48].astype(dtype), digits[1][:48]
    runs = {}
    for backend in ("reference", "fused"):
        with npae.backend(backend):
            model = factory()
            runs[backend] = model.fit(X, y if labelled else None, epochs=2, batch_size=16, progress=False,
                                      clip_norm=5.0)
    ref, fused = runs["reference"], runs["fused"]
    rtol = 1e-10 if dtype == "float64" else 2e-4
    assert list(ref.params) == list(fused.params)
    for key in ref.params:
        np.testing.assert_allclose(fused.params[key], ref.params[key], rtol=rtol, atol=rtol, err_msg=key)
    for key, values in ref.history_.items():
        np.testing.assert_allclose(fused.history_[key], values, rtol=rtol, err_msg=key)


def test_conditional_conv_vae_trains_and_uses_its_label():
    X, y = datasets.load_digits()
    X, y = X[:128], y[:128]
    cvae = npae.ConditionalVAE(64, 10, hidden=(), latent_dim=2, arch="conv", seed=0)
    cvae.fit(X, y, epochs=5, batch_size=32, lr=4e-3, progress=False)
    loss = cvae.history_["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < 0.8 * loss[0]
    right = cvae.neg_elbo(X, y)
    wrong = cvae.neg_elbo(X, (y + 5) % 10)
    assert right < wrong  # the label carries information the decoder uses


def test_validation_and_evaluation_do_not_change_what_a_conv_model_learns(digits):
    X = digits[0]

    def make():
        return npae.VAE(64, hidden=(), latent_dim=2, seed=0, warm_start=True, **SMALL)

    plain = make().fit(X, epochs=1, progress=False)
    plain.fit(X, epochs=2, progress=False)
    watched = make().fit(X, epochs=1, progress=False, validation_data=X[:50])
    watched.evaluate(X[:50])
    watched.neg_elbo(X[:50])
    watched.log_likelihood_estimate(X[:10], k=4)
    watched.sample(3)
    grads = watched.flat_params.grad_data.copy()
    watched.reconstruct(X)
    np.testing.assert_array_equal(watched.flat_params.grad_data, grads)
    watched.fit(X, epochs=2, progress=False)
    _same_params(plain, watched)


# --------------------------------------------------------------------------------------------------
# model files
# --------------------------------------------------------------------------------------------------
SAVE_CASES = [
    ("vae-conv", lambda: npae.VAE(64, hidden=(), latent_dim=2, arch="conv", seed=1), False),
    ("cvae-small", lambda: npae.ConditionalVAE(64, 10, hidden=(), latent_dim=2, seed=2, image_shape=(8, 8),
                                               **SMALL), True),
    ("ae-stack", lambda: npae.Autoencoder(64, latent_dim=3, encoder_layers=ENC, decoder_layers=DEC, seed=3),
     False),
]


@pytest.mark.parametrize("case", SAVE_CASES, ids=[c[0] for c in SAVE_CASES])
def test_save_load_round_trip(tmp_path, digits, case):
    _, factory, labelled = case
    X, y = digits
    lab = y if labelled else None
    model = factory().fit(X[:64], None if lab is None else lab[:64], epochs=1, progress=False)
    path = model.save(tmp_path / "model.npz")
    header = io.read(path).header
    assert json.loads(json.dumps(header["config"])) == header["config"]
    back = npae.load(path)
    assert type(back) is type(model) and back.config == model.config
    _same_params(back, model)
    np.testing.assert_array_equal(back.reconstruct(X[:5], *(() if lab is None else (lab[:5],))),
                                  model.reconstruct(X[:5], *(() if lab is None else (lab[:5],))))


RESUME_CASES = [("vae-small", lambda: npae.VAE(64, hidden=(), latent_dim=2, seed=1, **SMALL), False),
                *SAVE_CASES[1:]]


@pytest.mark.parametrize("case", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_resume_is_bit_identical(tmp_path, digits, case):
    _, factory, labelled = case
    X, y = digits[0][:48], digits[1][:48]
    args = (X, y) if labelled else (X,)
    reference = factory().fit(*args, epochs=3, batch_size=16, progress=False)
    path = tmp_path / "ckpt.npz"
    factory().fit(*args, epochs=1, batch_size=16, progress=False, checkpoint=path)
    resumed = factory().fit(*args, epochs=3, batch_size=16, progress=False, resume=path)
    _same_params(resumed, reference)
    assert resumed.history_ == reference.history_


# --------------------------------------------------------------------------------------------------
# PyTorch, only when installed (never required)
# --------------------------------------------------------------------------------------------------
def test_one_step_equals_torch_when_available():
    torch = pytest.importorskip("torch")
    from npae.app import bench_peers as bench  # the torch twins live with the peers

    result = bench.conv_step_against_torch(torch, image_side=8, latent_dim=3, batch=5, seed=0)
    assert result["loss_rel_diff"] < 1e-10
    assert result["grad_rel_diff"] < 1e-10
    assert result["param_rel_diff_after_adam"] < 1e-10
    assert result["loss_after_rel_diff"] < 1e-10


def test_bench_counts_the_flops_of_any_chain():
    from npae.app import bench

    mlp = npae.VAE(64, hidden=(32, 16), latent_dim=3)
    assert bench.model_step_flops(mlp, 7) == bench.step_flops([64, 32, 16, 6], [3, 16, 32, 64], 7)
    vae = npae.VAE(784, hidden=(), latent_dim=2, arch="conv")
    macs = (32 * 14 * 14 * 1 * 9 + 64 * 7 * 7 * 32 * 9 + 3136 * 4  # encoder
            + 2 * 3136 + 64 * 7 * 7 * 64 * 9 + 64 * 14 * 14 * 32 * 9 + 32 * 28 * 28 * 1 * 9)  # decoder
    assert bench.model_step_flops(vae, 1) == 2.0 * (3 * macs - 32 * 14 * 14 * 9)


@pytest.mark.parametrize("cls", [npae.DenoisingAutoencoder, npae.SparseAutoencoder])
def test_regularised_autoencoders_take_the_conv_stacks(cls):
    """The denoising and sparse autoencoders regularise the code, not the layers: the conv stacks
    pass through unchanged, and a step on either backend lands on the same parameters."""
    X, _ = datasets.load_digits()
    fitted = {}
    for name in ("reference", "fused"):
        with backends.backend(name):
            model = cls(arch="conv", image_shape=(8, 8), latent_dim=3, seed=5)
            model.fit(X[:64], epochs=1, batch_size=32, verbose=False)
            fitted[name] = model
    assert any(isinstance(layer, Conv2D) for layer in fitted["fused"].encoder.layers)
    assert any(isinstance(layer, ConvTranspose2D) for layer in fitted["fused"].decoder.layers)
    for key, value in fitted["reference"].params.items():
        np.testing.assert_allclose(fitted["fused"].params[key], value, rtol=1e-9, atol=1e-12)
