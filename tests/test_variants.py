"""Denoising, sparse and contractive autoencoders: whole-loss gradient checks over drawn shapes and
drawn λ, ρ and noise levels, and for the contractive one over drawn depths, widths and all seven
activations; the one-layer closed form equal to the general deep penalty inside the model; bad
input; configs and model files. (That the defaults show each lesson: tests/test_lesson_defaults.py.)"""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import npae
from npae.gradcheck import check_model
from npae.pairs.penalties import CONTRACTIVE_ACTIVATIONS, DEEP_CONTRACTIVE_ACTIVATIONS, corrupt, masking_noise

from conftest import activation_inputs_off_kinks

dims = st.integers(1, 4)
seeds = st.integers(0, 2**31 - 1)
smooth = st.sampled_from(["tanh", "sigmoid", "softplus", "elu"])
weights = st.one_of(st.just(0.0), st.floats(1e-3, 5.0))
any_activation = st.sampled_from(DEEP_CONTRACTIVE_ACTIVATIONS)


@pytest.fixture(scope="module")
def digits_split():
    X, y = npae.datasets.load_digits()
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm[:1300]], X[perm[1300:]]


@settings(deadline=None, max_examples=8)
@given(B=dims, D=dims, Z=dims, H=dims, seed=seeds, activation=smooth,
       noise=st.sampled_from(["gaussian", "masking", "salt_pepper"]), level=st.floats(0.0, 1.0),
       loss=st.sampled_from(["bce", "mse"]))
def test_denoising_loss_gradcheck(B, D, Z, H, seed, activation, noise, level, loss):
    """Checks [DENOISE-4]: the denoising loss's gradients in every parameter against central differences,
    over drawn noises and levels.
    """
    rng = np.random.default_rng(seed)
    output = "sigmoid" if loss == "bce" else "identity"
    model = npae.DenoisingAutoencoder(D, (H,), Z, activation, "tanh", output, loss, seed=seed,
                                      noise=noise, noise_level=level)
    x = rng.uniform(0.05, 0.95, size=(B, D))
    x_noisy = corrupt(x, noise, level, rng)
    check_model(model, x, x_noisy=x_noisy).assert_ok()
    assert set(model.last_terms) == {"loss", "recon", "penalty"}


@settings(deadline=None, max_examples=10)
@given(B=st.integers(2, 5), D=dims, Z=dims, H=dims, seed=seeds, activation=smooth,
       penalty=st.sampled_from(["l1", "kl"]), weight=st.one_of(st.none(), weights),
       rho=st.floats(0.01, 0.99))
def test_sparse_loss_gradcheck(B, D, Z, H, seed, activation, penalty, weight, rho):
    """Checks [SPARSE-7]: the whole sparse loss's gradients against central differences, over drawn
    penalties, λ and ρ.
    """
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    model = npae.SparseAutoencoder(D, (H,), Z, activation, seed=seed, penalty=penalty,
                                   sparsity_weight=weight, rho=rho)
    check_model(model, x).assert_ok()
    terms = model.last_terms
    assert terms["loss"] == pytest.approx(terms["recon"] + terms["penalty"])


@settings(deadline=None, max_examples=6)
@given(B=dims, D=dims, Z=dims, seed=seeds, weight=weights)
def test_sparse_l1_on_unbounded_codes_gradcheck(B, D, Z, seed, weight):
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    model = npae.SparseAutoencoder(D, (), Z, code_activation="identity", seed=seed, penalty="l1",
                                   sparsity_weight=weight)
    model.loss_and_grads(x)
    assume(np.min(np.abs(model.encode(x))) > 1e-2)  # |z| off the kink of the L1 norm
    check_model(model, x).assert_ok()


@settings(deadline=None, max_examples=40)
@given(B=dims, D=dims, Z=dims, hidden=st.lists(dims, max_size=2), seed=seeds, weight=weights,
       activation=any_activation, code_activation=any_activation, loss=st.sampled_from(["bce", "mse"]),
       slope=st.floats(0.01, 0.5), alpha=st.floats(0.5, 2.0))
def test_contractive_loss_gradcheck(B, D, Z, hidden, seed, weight, activation, code_activation, loss,
                                    slope, alpha):
    """The whole loss (reconstruction + λ ||J||²_F) at every depth 1-3 and every activation: the
    closed form for a one-layer encoder with a sigmoid, tanh, relu or softplus code, the deep pair
    otherwise; relu-like pre-activations kept off their kinks.
    Checks [CONTRACTIVE-7]: the whole contractive loss's gradients against central differences.
    """
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    output = "sigmoid" if loss == "bce" else "identity"
    model = npae.ContractiveAutoencoder(D, tuple(hidden), Z, activation, code_activation, output, loss,
                                        seed=seed, contractive_weight=weight, slope=slope, alpha=alpha)
    model.loss_and_grads(x)
    assume(activation_inputs_off_kinks(model))
    check_model(model, x).assert_ok()
    terms = model.last_terms
    assert terms["loss"] == pytest.approx(terms["recon"] + terms["penalty"])
    assert terms["penalty"] == pytest.approx(weight * np.mean(model.jacobian_frobenius(x)), rel=1e-12,
                                             abs=1e-300)


def _with_general_penalty(model):
    """The same model forced onto the deep pair (its one-layer case), for comparison."""
    model._uses_closed_form = lambda: False
    return model


@pytest.mark.parametrize("code_activation", CONTRACTIVE_ACTIVATIONS)
@settings(deadline=None, max_examples=8)
@given(B=dims, D=dims, Z=dims, seed=seeds, weight=weights, loss=st.sampled_from(["bce", "mse"]))
def test_closed_form_equals_the_general_penalty_in_the_model(code_activation, B, D, Z, seed, weight,
                                                             loss):
    """A one-layer encoder: the closed form [CONTRACTIVE-1] and the deep pair [CONTRACTIVE-9..15]
    give the same loss, terms and gradients (rtol 1e-12) in the whole model."""
    x = np.random.default_rng(seed).uniform(0.05, 0.95, size=(B, D))
    output = "sigmoid" if loss == "bce" else "identity"
    kw = dict(code_activation=code_activation, output=output, loss=loss, seed=seed,
              contractive_weight=weight)
    closed = npae.ContractiveAutoencoder(D, (), Z, **kw)
    general = _with_general_penalty(npae.ContractiveAutoencoder(D, (), Z, **kw))
    assert closed._uses_closed_form() and not general._uses_closed_form()
    loss_c, grads_c = closed.loss_and_grads(x)
    loss_g, grads_g = general.loss_and_grads(x)
    assert loss_g == pytest.approx(loss_c, rel=1e-12)
    assert general.last_terms["penalty"] == pytest.approx(closed.last_terms["penalty"], rel=1e-12, abs=1e-300)
    for name, g in grads_c.items():
        np.testing.assert_allclose(grads_g[name], g, rtol=1e-12, atol=1e-14 * (1.0 + np.abs(g).max()))
    assert general.evaluate(x)["penalty"] == pytest.approx(closed.evaluate(x)["penalty"], rel=1e-12,
                                                           abs=1e-300)


def test_deep_contractive_penalty_goes_into_every_encoder_layer():
    """With hidden layers the penalty's gradient reaches every encoder W and b (not only the first),
    and nothing of the decoder: the difference from λ = 0 is exactly the deep pair's gradient."""
    from npae.pairs.penalties import contractive_penalty_deep_backward, contractive_penalty_deep_forward
    x = np.random.default_rng(0).uniform(0.05, 0.95, size=(6, 5))
    kw = dict(hidden=(4, 3), latent_dim=2, activation="tanh", code_activation="softplus", seed=1)
    with_penalty = npae.ContractiveAutoencoder(5, contractive_weight=0.7, **kw)
    without = npae.ContractiveAutoencoder(5, contractive_weight=0.0, **kw)
    _, g1 = with_penalty.loss_and_grads(x)
    _, g0 = without.loss_and_grads(x)
    Ws, bs, acts = with_penalty._encoder_affine_layers()
    _, cache = contractive_penalty_deep_forward(x, Ws, bs, acts, 0.7)
    _, dWs, dbs = contractive_penalty_deep_backward(1.0, cache)
    for k in range(3):
        np.testing.assert_allclose(g1[f"encoder.{k}.W"] - g0[f"encoder.{k}.W"], dWs[k], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(g1[f"encoder.{k}.b"] - g0[f"encoder.{k}.b"], dbs[k], rtol=1e-9, atol=1e-13)
        assert np.abs(dWs[k]).max() > 0
    for name in g1:
        if name.startswith("decoder."):
            np.testing.assert_array_equal(g1[name], g0[name])


def test_a_deep_contractive_model_missing_an_upper_layers_penalty_fails_the_check():
    """Test the tester: adding the penalty's gradient to the first layer only (as the one-layer
    model did) is caught by the whole-model check."""
    x = np.random.default_rng(4).uniform(0.05, 0.95, size=(3, 4))
    model = npae.ContractiveAutoencoder(4, (3,), 2, "tanh", "sigmoid", contractive_weight=2.0, seed=0)
    right = model._penalty_backward

    def first_layer_only(cache):
        dWs, dbs = right(cache)
        return dWs[:1] + [np.zeros_like(g) for g in dWs[1:]], dbs[:1] + [np.zeros_like(g) for g in dbs[1:]]

    check_model(model, x).assert_ok()
    model._penalty_backward = first_layer_only
    assert not check_model(model, x).ok


def test_denoising_noise_is_explicit_or_drawn_from_the_model_rng():
    x = np.random.default_rng(0).uniform(size=(5, 6))
    model = npae.DenoisingAutoencoder(6, (4,), 2, noise="masking", noise_level=0.5, seed=3)
    x_noisy = masking_noise(x, 0.5, np.random.default_rng(1))
    assert model.loss_and_grads(x, x_noisy)[0] == model.loss_and_grads(x, x_noisy=x_noisy)[0]
    drawn = [model.loss_and_grads(x)[0] for _ in range(2)]
    assert drawn[0] != drawn[1]
    twin = npae.DenoisingAutoencoder(6, (4,), 2, noise="masking", noise_level=0.5, seed=3)
    assert twin.loss_and_grads(x)[0] == drawn[0]  # the same seed draws the same corruption
    with pytest.raises(ValueError, match="check_model needs fixed noise"):
        check_model(model, x)
    with pytest.raises(ValueError, match="x_noisy"):
        model.loss_and_grads(x, x_noisy=x[:3])
    with pytest.raises(ValueError, match="x_noisy"):
        model.loss_and_grads(x, x_noisy=np.full_like(x, np.nan))


def test_l1_penalty_sparsifies_codes(digits_split):
    X = digits_split[0][:400]
    active = {}
    for lam in (0.0, 0.3):
        model = npae.SparseAutoencoder(64, (), 32, code_activation="relu", penalty="l1",
                                       sparsity_weight=lam, seed=0)
        model.fit(X, epochs=15, lr=1e-2, progress=False)
        active[lam] = np.mean(model.encode(X) > 1e-6)
    assert active[0.3] < active[0.0], active


def test_bad_input():
    with pytest.raises(ValueError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, penalty="kl", rho=0.0).params
    with pytest.raises(ValueError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, penalty="kl", rho=1.0).params
    with pytest.raises(ValueError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, rho=1.5).params
    with pytest.raises(ValueError, match="sparsity_weight"):
        npae.SparseAutoencoder(4, (), 2, sparsity_weight=-1e-3).params
    with pytest.raises(ValueError, match="code_activation='sigmoid'"):
        npae.SparseAutoencoder(4, (), 2, code_activation="tanh", penalty="kl").params
    with pytest.raises(ValueError, match="penalty"):
        npae.SparseAutoencoder(4, (), 2, penalty="l2").params
    with pytest.raises(ValueError, match="noise_level"):
        npae.DenoisingAutoencoder(4, (), 2, noise_level=-0.1).params
    with pytest.raises(ValueError, match="noise_level"):
        npae.DenoisingAutoencoder(4, (), 2, noise="masking", noise_level=1.2).params
    with pytest.raises(ValueError, match="noise"):
        npae.DenoisingAutoencoder(4, (), 2, noise="speckle").params
    with pytest.raises(ValueError, match="code_activation"):
        npae.ContractiveAutoencoder(4, (8,), 2, code_activation="swish").params
    with pytest.raises(ValueError, match="activation"):
        npae.ContractiveAutoencoder(4, (8,), 2, activation="swish").params
    with pytest.raises(ValueError, match="contractive_weight"):
        npae.ContractiveAutoencoder(4, (), 2, contractive_weight=-1.0).params
    with pytest.raises(TypeError, match="rho"):
        npae.SparseAutoencoder(4, (), 2, rho="0.1").params


def test_sparsity_weight_none_takes_the_penalty_default():
    from npae.models.variants import SPARSITY_WEIGHTS
    x = np.random.default_rng(0).uniform(0.05, 0.95, size=(4, 5))
    for penalty in ("kl", "l1"):
        default = npae.SparseAutoencoder(5, (3,), 2, penalty=penalty, seed=0)
        explicit = npae.SparseAutoencoder(5, (3,), 2, penalty=penalty, seed=0,
                                          sparsity_weight=SPARSITY_WEIGHTS[penalty])
        assert default.sparsity_weight is None and default.sparsity_weight_ == SPARSITY_WEIGHTS[penalty]
        assert default.loss_and_grads(x)[0] == explicit.loss_and_grads(x)[0]
        assert default.last_terms["penalty"] > 0
    assert SPARSITY_WEIGHTS == {"kl": 3.0, "l1": 0.1}


def test_configs_rebuild_the_models(tmp_path):
    for model in (npae.DenoisingAutoencoder(5, (3,), 2, noise="salt_pepper", noise_level=0.2),
                  npae.SparseAutoencoder(5, (3,), 2, penalty="kl", rho=0.2, sparsity_weight=0.5),
                  npae.SparseAutoencoder(5, (3,), 2),
                  npae.ContractiveAutoencoder(5, (), 2, code_activation="tanh", contractive_weight=0.3),
                  npae.ContractiveAutoencoder(5, (4, 3), 2, "elu", "leaky_relu", slope=0.2)):
        twin = type(model)(**model.config)
        assert twin.config == model.config
        for name, p in model.params.items():
            np.testing.assert_array_equal(p, twin.params[name])
        path = model.save(tmp_path / f"{type(model).__name__}.npz")
        loaded = npae.load(path)
        assert type(loaded) is type(model) and loaded.config == model.config
        x = np.random.default_rng(1).uniform(size=(3, 5))
        assert loaded.evaluate(x) == model.evaluate(x)
