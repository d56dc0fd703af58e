"""Every tagged line of npae runs in some fit or public call: a derivation whose code nothing runs is
dead (STYLE.md §8, "one implementation per derivation").

One line trace (tests/_trace.py) over a set of tiny fits and public calls that together cover every
model class, activation, noise, penalty, optimizer, objective, flow, decoder variance, architecture
and initializer, under the reference backend (where the tagged pairs are the code that runs). The
fits are one epoch of a dozen examples: the whole trace takes a few seconds."""
import ast
from pathlib import Path

import numpy as np
import pytest

import npae
from npae import tags
from npae.pairs import functional as F, latent
from npae.training import optim

from _trace import lines_run, place_ran

#: tags none of whose lines any fit or public call runs, each with its reason. Keep it short: a
#: tag here is on its way to the training path, or outside it on purpose.
TAG_EXCEPTIONS = {
    "IWAE-11": "the simplified form of [IWAE-10]'s backward, derived to show why q's two mu-paths "
               "cancel; tested equal to the node-by-node backward that training runs (test_bounds.py)",
}

#: functions that hold a tagged line but run in no fit or public call, while the same tag runs
#: elsewhere, each with its reason.
FUNCTION_EXCEPTIONS = {
    "npae/pairs/bounds.py:reparam_log_ratio_backward_fused": "[IWAE-11], see above",
    "npae/pairs/bounds.py:reparam_log_q": "[IWAE-11]: log q written through eps, see above",
    # bounds.iwae_objective_forward computes its log-mean-exp inline (it needs the shifted
    # exponentials again for the normalised weights [IWAE-5]); latent.logmeanexp is the public
    # one-shot form that the streaming estimate [IWAE-3] of log_likelihood_estimate is tested against.
    "npae/pairs/latent.py:logmeanexp": "public one-shot helper, the streaming estimate's reference",
}


def _data(n=12, d=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = np.arange(n) % 3
    return X, y


def _fit(model, X, y=None, **kw):
    kw = dict(dict(epochs=1, batch_size=6, progress=False), **kw)
    return model.fit(X, y, **kw) if y is not None else model.fit(X, **kw)


def _fits_and_public_calls():
    X, y = _data()
    D = X.shape[1]
    small = dict(hidden=(4,), latent_dim=2)
    with npae.backend("reference"):
        # the autoencoder family: every activation and initializer, both losses and outputs
        for i, act in enumerate(sorted(F.ACTIVATIONS)):
            init = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal")[i % 4]
            ae = _fit(npae.Autoencoder(D, activation=act, init=init, seed=i, **small), X)
        _fit(npae.Autoencoder(D, loss="mse", output="identity", **small), X)
        ae.reconstruction_error(X)
        ae.jacobian_frobenius(X[:4])
        for noise in ("gaussian", "masking", "salt_pepper"):
            dae = _fit(npae.DenoisingAutoencoder(D, noise=noise, noise_level=0.2, **small), X)
        dae.denoising_error(X, seed=0)
        for penalty in ("l1", "kl"):
            _fit(npae.SparseAutoencoder(D, penalty=penalty, sparsity_weight=0.1, **small), X)
        for act in ("sigmoid", "tanh", "softplus", "elu", "leaky_relu", "relu", "identity"):
            _fit(npae.ContractiveAutoencoder(D, hidden=(3,), latent_dim=2, activation=act,
                                             code_activation=act if act != "relu" else "sigmoid"), X)
        _fit(npae.ContractiveAutoencoder(D, latent_dim=2), X)  # the one-layer closed form
        # every optimizer, with weight decay and clipping
        for name, opt in [("sgd", optim.SGD(1e-2, weight_decay=1e-3)),
                          ("momentum", optim.Momentum(1e-2)),
                          ("nesterov", optim.Momentum(1e-2, nesterov=True)),
                          ("adam", optim.Adam(1e-3)), ("adagrad", optim.Adagrad(1e-2)),
                          ("rmsprop", optim.RMSprop(1e-3))]:
            _fit(npae.Autoencoder(D, **small), X, optimizer=opt, clip_norm=0.5)
        # the VAE family: likelihoods, variances, objectives, flows, conditions, conv stacks
        vae = _fit(npae.VAE(D, **small), X, warmup_epochs=1)
        for variance in ("fixed", "shared", "per_feature", "learned"):
            _fit(npae.VAE(D, likelihood="gaussian", variance=variance, **small), X)
        for objective, k in (("iwae", 3), ("elbo", 2)):
            _fit(npae.VAE(D, objective=objective, k=k, **small), X)
        for flow in ("planar", "iaf"):
            fv = _fit(npae.VAE(D, flow=flow, flow_steps=2, **small), X)
            fv.log_likelihood_estimate(X[:4], k=4, seed=0)
        cvae = _fit(npae.ConditionalVAE(D, 3, **small), X, y)
        cvae.sample(2, np.array([0, 1]), seed=0)
        _fit(npae.VAE(D, hidden=(), latent_dim=2), X)  # the first layer is a bare Dense head
        images = np.random.default_rng(1).random((8, 64))
        _fit(npae.ConditionalVAE(64, 3, hidden=(), latent_dim=2, arch="conv"), images, y[:8])
        vae.neg_elbo(X, seed=0, n_samples=2)
        vae.log_likelihood_estimate(X[:4], k=6, seed=0, chunk=4)
        vae.kl_per_dimension(X)
        vae.active_units(X)
        vae.sample(3, seed=0)
        for objective in ("elbo", "iwae"):
            hv = _fit(npae.TwoLayerVAE(D, hidden1=(4,), latent_dim1=3, hidden2=(3,), latent_dim2=2,
                                       objective=objective, k=2), X)
        hv.log_likelihood_estimate(X[:4], k=4, seed=0)
        hv.active_units(X, n_samples=3, seed=0)
        hv.sample(2, seed=0)
        _fit(npae.TwoLayerVAE(D, hidden1=(4,), latent_dim1=3, hidden2=(3,), latent_dim2=2,
                              likelihood="gaussian", variance="learned"), X)
        y_partial = np.where(np.arange(len(y)) % 2 == 0, y, -1)
        m2 = _fit(npae.SemiSupervisedVAE(D, 3, hidden=(4,), latent_dim=2, classifier_hidden=(3,)),
                  X, y_partial)
        m2.predict(X)
        m2.predict_proba(X)
        _fit(npae.SemiSupervisedVAE(D, 3, hidden=(4,), latent_dim=2, likelihood="gaussian",
                                    variance="shared"), X, y_partial)
        clf = _fit(npae.Classifier(ae, 3, hidden=(3,)), X, y)
        clf.predict_proba(X)
        _fit(npae.Classifier(ae, 3, freeze_encoder=False), X, y)
        # the public layers' own constructors and backward (the models never need dL/dx of the data)
        for init in ("glorot_normal", "he_normal"):
            npae.Conv2D(1, 2, 3, init=init, rng=0)
            npae.ConvTranspose2D(2, 1, 3, 2, init=init, rng=0)
        dense = npae.Dense(3, 2, rng=0)  # models run it inside a DenseAct step; alone it has its own backward
        dense.forward(np.ones((2, 3)))
        dense.backward(np.ones((2, 2)), input_grad=False)
        planes = npae.ImagePlanes((1, 2, 2), n_cond=2)
        planes.backward(planes.forward(np.ones((3, 6))))
        # PCA and the subspace angles between a linear autoencoder and PCA
        pca = npae.PCA(2, whiten=True).fit(X)
        pca.inverse_transform(pca.transform(X))
        pca.score(X)
        linear = _fit(npae.Autoencoder(D, hidden=(), latent_dim=2, activation="identity",
                                       output="identity", loss="mse"), X)
        npae.subspace_angles(linear, pca)
        # greedy layer-wise pretraining into a deep autoencoder
        stack = npae.greedy_pretrain(X, (4, 2), epochs=1, progress=False)
        npae.stack_encoder(stack)
        npae.init_autoencoder_from_stack(npae.Autoencoder(D, hidden=(4,), latent_dim=2,
                                                          activation="sigmoid"), stack)
        # the score-function and pathwise estimators of the encoder gradient
        from npae.models.estimators import compare_estimators, encoder_gradient_estimates
        compare_estimators(encoder_gradient_estimates(vae, X[:3], n_samples=4, seed=0))
        # exploring a latent space (npae.latent, used by the demos and `npae.plotting`)
        z0, z1 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
        latent.lerp(z0, z1, [0.0, 0.5, 1.0])
        latent.slerp(z0, z1, [0.0, 0.5, 1.0])
        # the full-covariance KL [KL-4], [KL-5]: a public pair taught beside the diagonal one, used
        # by no model (every npae posterior is diagonal or a flow)
        kl, cache = latent.fullcov_kl_forward(X[:2, :3], X[:2, :9].reshape(2, 3, 3))
        latent.fullcov_kl_backward(np.ones_like(kl), cache)
        v = latent.attribute_vector(X[:4, :2], X[4:, :2])
        latent.apply_attribute(X[:2, :2], v, 0.5)
        vae.decode(latent.manifold_grid(3))


def _enclosing_functions(path):
    """Map line -> the name of the innermost function or method whose body holds it."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    where = {}
    for node in ast.walk(tree):  # outer functions come before the functions they hold
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for line in range(node.lineno, node.end_lineno + 1):
                where[line] = node.name
    return where


@pytest.fixture(scope="module")
def ran():
    return lines_run(_fits_and_public_calls)


def test_every_tagged_line_runs_in_some_fit_or_public_call(ran):
    """A tag none of whose lines runs is a dead derivation: wire it in, or remove it."""
    dead = {tag: places for tag, places in tags.code_tags().items()
            if tag not in TAG_EXCEPTIONS and not any(place_ran(p, ran) for p in places)}
    assert not dead, f"tags whose lines no fit or public call ran (wire them in or remove them): {dead}"


def test_every_tagged_function_runs_in_some_fit_or_public_call(ran):
    """One implementation per derivation: a function holding tagged lines of which none runs is a
    second, unused implementation (the model re-derives the same math inline)."""
    functions = {}
    root = Path(npae.__file__).resolve().parents[1]
    for tag, places in tags.code_tags().items():
        for place in places:
            path, line = place.rsplit(":", 1)
            name = _enclosing_functions(root / path).get(int(line), "<module>")
            functions.setdefault(f"{path}:{name}", []).append(place)
    dead = {fn: places for fn, places in functions.items()
            if fn not in FUNCTION_EXCEPTIONS and not any(place_ran(p, ran) for p in places)}
    assert not dead, f"tagged functions that no fit or public call ran: {dead}"
    stale = sorted(fn for fn in FUNCTION_EXCEPTIONS
                   if fn not in functions or any(place_ran(p, ran) for p in functions[fn]))
    assert not stale, f"function exceptions that now run or no longer exist (delete them): {stale}"


def test_every_tag_exception_is_still_needed(ran):
    """An exception whose lines now run (or whose tag is gone) is stale: delete it from the list."""
    places = tags.code_tags()
    stale = sorted(tag for tag in TAG_EXCEPTIONS
                   if tag not in places or any(place_ran(p, ran) for p in places[tag]))
    assert not stale, f"tags listed as exceptions that now run or no longer exist: {stale}"
