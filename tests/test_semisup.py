"""The M2 pairs of npae.pairs.m2: central-difference checks (float64) of every pair over drawn batch
sizes, class counts and α; the bound's inequalities; the entropy's range; and the whole objective of
a tiny M2 model (classifier q(y|x), encoder q(z|x,y), decoder p(x|y,z)) built here from the dense,
reparameterization and KL pairs, checked against central differences on a mixed batch."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npae.pairs import functional as F
from npae.pairs import latent
from npae.pairs import m2 as S
from npae.gradcheck import check_function, check_pair, rel_error

seeds = st.integers(0, 2**31 - 1)
batch = st.integers(1, 6)
classes = st.integers(2, 5)
alphas = st.one_of(st.just(0.0), st.floats(1e-2, 50.0))


def _logsumexp(a):
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True)))[..., 0]


# ------------------------------------------------------------------------------------------- pairs
@settings(deadline=None, max_examples=15)
@given(B=batch, K=classes, seed=seeds)
def test_labelled_bound_gradcheck(B, K, seed):
    """Checks [M2-2] against central differences of [M2-1]."""
    rng = np.random.default_rng(seed)
    nll, kl = rng.uniform(0, 50, B), rng.uniform(0, 5, B)
    check_pair(S.labelled_bound_forward, S.labelled_bound_backward, [nll, kl], names=["nll", "kl"],
               kwargs={"n_classes": K}, rng=seed).assert_ok()
    neg_L, _ = S.labelled_bound_forward(nll, kl, K)
    np.testing.assert_allclose(neg_L, nll + kl + np.log(K), rtol=1e-15)  # −log p(y) = log K


@settings(deadline=None, max_examples=15)
@given(B=batch, K=classes, seed=seeds, scale=st.floats(0.1, 5.0))
def test_entropy_gradcheck_and_range(B, K, seed, scale):
    """Checks [M2-4] against central differences of [M2-3], and 0 <= H <= log K."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((B, K))
    check_pair(S.categorical_entropy_forward, S.categorical_entropy_backward, [logits],
               names=["logits"], rng=seed).assert_ok()
    H, _ = S.categorical_entropy_forward(logits)
    assert np.all(H >= 0.0) and np.all(H <= np.log(K) + 1e-12)


def test_entropy_extremes():
    K = 4
    H, _ = S.categorical_entropy_forward(np.zeros((2, K)))
    np.testing.assert_allclose(H, np.log(K), rtol=1e-14)  # uniform: the maximum
    big = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, 1e4, 1e4]])
    H, cache = S.categorical_entropy_forward(big)  # RuntimeWarnings are errors: none may appear
    np.testing.assert_allclose(H, [0.0, np.log(2)], atol=1e-12)
    assert np.isfinite(S.categorical_entropy_backward(np.ones(2), cache)).all()


@settings(deadline=None, max_examples=20)
@given(B=batch, K=classes, seed=seeds, scale=st.floats(0.1, 5.0))
def test_unlabelled_bound_gradcheck(B, K, seed, scale):
    """Checks [M2-6], [M2-7] against central differences of [M2-5]."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((B, K))
    neg_L = rng.uniform(10, 200, (B, K))
    check_pair(S.unlabelled_bound_forward, S.unlabelled_bound_backward, [logits, neg_L],
               names=["logits_y", "neg_L"], rng=seed).assert_ok()


@settings(deadline=None, max_examples=20)
@given(B=batch, K=classes, seed=seeds)
def test_unlabelled_bound_backward_fused_form(B, K, seed):
    """The node-by-node backward equals the fused dlogits = g q ⊙ (neg_L + log q − neg_U), and the
    weights on neg_L sum to the upstream gradient row by row.
    Checks [M2-8].
    """
    rng = np.random.default_rng(seed)
    logits, neg_L, g = rng.standard_normal((B, K)), rng.uniform(0, 100, (B, K)), rng.standard_normal(B)
    neg_U, cache = S.unlabelled_bound_forward(logits, neg_L)
    dlogits, dneg_L = S.unlabelled_bound_backward(g, cache)
    logq = F.log_softmax(logits)
    fused = g[:, None] * np.exp(logq) * (neg_L + logq - neg_U[:, None])
    assert rel_error(dlogits, fused) < 1e-12
    np.testing.assert_allclose(dneg_L.sum(axis=1), g, rtol=1e-12)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-10 * (1 + np.abs(fused).max()))
    _, dneg_L_unit = S.unlabelled_bound_backward(np.ones(B), cache)
    np.testing.assert_allclose(dneg_L_unit.sum(axis=1), 1.0, rtol=1e-12)  # q(y|x) sums to 1


@settings(deadline=None, max_examples=30)
@given(B=batch, K=classes, seed=seeds, scale=st.floats(0.01, 10.0))
def test_unlabelled_bound_inequalities(B, K, seed, scale):
    """U is a lower bound: with L_k = L(x, k),

        −logsumexp_k L_k <= −U <= max_k (−L_k)      and      −U >= min_k (−L_k) − log K,

    and the gap of the first is KL(q(y|x) || softmax(L)): zero exactly when q ∝ exp(L).
    Checks the value of [M2-5] by these bounds and the gap's closed form.
    """
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((B, K))
    neg_L = rng.uniform(0, 30, (B, K))
    neg_U, _ = S.unlabelled_bound_forward(logits, neg_L)
    tight = -_logsumexp(-neg_L)
    tol = 1e-10 * (1 + np.abs(neg_L).max())
    assert np.all(neg_U >= tight - tol)
    assert np.all(neg_U >= neg_L.min(axis=1) - np.log(K) - tol)
    assert np.all(neg_U <= neg_L.max(axis=1) + tol)
    logq, log_post = F.log_softmax(logits), F.log_softmax(-neg_L)
    kl = np.sum(np.exp(logq) * (logq - log_post), axis=1)
    np.testing.assert_allclose(neg_U - tight, kl, atol=tol)
    at_optimum, _ = S.unlabelled_bound_forward(-neg_L, neg_L)  # q = softmax(L)
    np.testing.assert_allclose(at_optimum, tight, atol=tol)


def _mixed_labels(rng, B_l, B_u, K):
    y = np.concatenate([rng.integers(0, K, B_l), np.full(B_u, S.UNLABELLED)])
    return y[rng.permutation(B_l + B_u)]


@settings(deadline=None, max_examples=20)
@given(B_l=st.integers(0, 4), B_u=st.integers(0, 4), K=classes, seed=seeds, alpha=alphas)
def test_objective_gradcheck(B_l, B_u, K, seed, alpha):
    """Checks [M2-11], [M2-12] against central differences of [M2-10], over drawn batch splits and α."""
    if B_l + B_u == 0:
        return
    rng = np.random.default_rng(seed)
    y = _mixed_labels(rng, B_l, B_u, K)
    logits, neg_L = rng.standard_normal((B_l + B_u, K)), rng.uniform(10, 100, (B_l + B_u, K))
    J, cache = S.m2_objective_forward(logits, neg_L, y, alpha)
    dlogits, dneg_L = S.m2_objective_backward(1.0, cache)
    check_function(lambda s, n: S.m2_objective_forward(s, n, y, alpha)[0], [logits, neg_L],
                   [dlogits, dneg_L], names=["logits_y", "neg_L"]).assert_ok()
    lab = y >= 0
    # the reduction: nats per example of the whole batch
    neg_U, _ = S.unlabelled_bound_forward(logits[~lab], neg_L[~lab])
    ce = -F.log_softmax(logits)[np.arange(y.size), np.maximum(y, 0)]
    expected = (neg_L[lab, y[lab]].sum() + neg_U.sum() + alpha * ce[lab].sum()) / y.size
    assert J == pytest.approx(expected, rel=1e-12)
    assert J == pytest.approx(sum(cache.terms.values()), rel=1e-12)
    # each row's weights on neg_L sum to 1/B; labelled rows use only their own class
    np.testing.assert_allclose(dneg_L.sum(axis=1), 1.0 / y.size, rtol=1e-12)
    assert np.count_nonzero(dneg_L[lab]) == lab.sum()
    if alpha == 0.0:  # without α the labelled rows do not train the classifier
        assert np.all(dlogits[lab] == 0.0)


def test_objective_bad_input():
    logits, neg_L = np.zeros((3, 2)), np.zeros((3, 2))
    with pytest.raises(ValueError, match="y must lie"):
        S.m2_objective_forward(logits, neg_L, np.array([0, 2, -1]), 1.0)
    with pytest.raises(ValueError, match="y must lie"):
        S.m2_objective_forward(logits, neg_L, np.array([0, -2, -1]), 1.0)
    with pytest.raises(TypeError, match="integer"):
        S.m2_objective_forward(logits, neg_L, np.array([0.0, 1.0, -1.0]), 1.0)
    with pytest.raises(ValueError, match="shape"):
        S.m2_objective_forward(logits, np.zeros((3, 3)), np.array([0, 1, -1]), 1.0)
    with pytest.raises(ValueError, match="alpha"):
        S.m2_objective_forward(logits, neg_L, np.array([0, 1, -1]), -1.0)


def test_paper_alpha_and_enumeration():
    """Checks [M2-13]."""
    assert S.paper_alpha(50_000, 100) == pytest.approx(50.0)
    assert S.paper_alpha(50_000, 3000) == pytest.approx(5000 / 3000)
    x = np.arange(6.0).reshape(3, 2)
    x_rep, y_rep = S.enumerate_classes(x, 4)
    assert x_rep.shape == (12, 2) and y_rep.shape == (12, 4)
    np.testing.assert_array_equal(x_rep[2 * 3 + 1], x[1])  # row k·B + i = example i, class k
    np.testing.assert_array_equal(y_rep[2 * 3 + 1], [0, 0, 1, 0])
    per_row = np.arange(12.0)
    table = per_row.reshape(4, 3).T  # (B, K)
    assert table[1, 2] == per_row[2 * 3 + 1]
    np.testing.assert_array_equal(table.T.reshape(-1), per_row)  # the way gradients go back


# ------------------------------------------------------------------ a tiny M2 model, end to end
def _init_m2(rng, D, K, H, Z):
    def dense(n_in, n_out):
        return rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), 0.1 * rng.standard_normal(n_out)
    p = {}
    p["c1.W"], p["c1.b"] = dense(D, H)        # classifier q(y|x)
    p["c2.W"], p["c2.b"] = dense(H, K)
    p["e1.W"], p["e1.b"] = dense(D + K, H)    # encoder q(z|x,y)
    p["mu.W"], p["mu.b"] = dense(H, Z)
    p["lv.W"], p["lv.b"] = dense(H, Z)
    p["d1.W"], p["d1.b"] = dense(Z + K, H)    # decoder p(x|y,z), Bernoulli logits
    p["d2.W"], p["d2.b"] = dense(H, D)
    return p


def _tanh_dense(x, p, name):
    a, cache = F.dense_forward(x, p[name + ".W"], p[name + ".b"])
    h, act = F.tanh_forward(a)
    return h, (cache, act)


def _tanh_dense_back(dh, caches, grads, name):
    cache, act = caches
    dx, grads[name + ".W"], grads[name + ".b"] = F.dense_backward(F.tanh_backward(dh, act), cache)
    return dx


def _m2_loss_and_grads(p, x, y, eps, alpha):
    """The whole M2 objective of a mixed batch and its gradient in every parameter, by hand."""
    B, D = x.shape
    K = p["c2.W"].shape[1]
    # classifier q(y|x)
    hc, c1 = _tanh_dense(x, p, "c1")
    logits_y, c2 = F.dense_forward(hc, p["c2.W"], p["c2.b"])  # (B, K)
    # every example with every class: K·B rows
    x_rep, y_rep = S.enumerate_classes(x, K)  # (K·B, D), (K·B, K)
    he, e1 = _tanh_dense(np.concatenate([x_rep, y_rep], axis=1), p, "e1")
    mu, cmu = F.dense_forward(he, p["mu.W"], p["mu.b"])  # (K·B, Z)
    logvar, clv = F.dense_forward(he, p["lv.W"], p["lv.b"])  # (K·B, Z)
    z, crep = latent.reparameterize_forward(mu, logvar, eps)  # (K·B, Z)
    kl, ckl = latent.gaussian_kl_forward(mu, logvar)  # (K·B,)
    hd, d1 = _tanh_dense(np.concatenate([z, y_rep], axis=1), p, "d1")
    logits_x, d2 = F.dense_forward(hd, p["d2.W"], p["d2.b"])  # (K·B, D)
    nll = F.bce_with_logits_sum(logits_x, x_rep)  # (K·B,)
    neg_L_rows, clab = S.labelled_bound_forward(nll, kl, K)  # (K·B,)
    neg_L = neg_L_rows.reshape(K, B).T  # (B, K)
    J, cache = S.m2_objective_forward(logits_y, neg_L, y, alpha)

    g = {}
    dlogits_y, dneg_L = S.m2_objective_backward(1.0, cache)
    dnll, dkl = S.labelled_bound_backward(dneg_L.T.reshape(-1), clab)  # (K·B,) each
    dlogits_x = dnll[:, None] * (F.sigmoid(logits_x) - x_rep)  # (K·B, D) [LOSS-6] per row
    dhd, g["d2.W"], g["d2.b"] = F.dense_backward(dlogits_x, d2)
    dz = _tanh_dense_back(dhd, d1, g, "d1")[:, :z.shape[1]]  # the y_rep columns are constants
    dmu_s, dlv_s = latent.reparameterize_backward(dz, crep)
    dmu_kl, dlv_kl = latent.gaussian_kl_backward(dkl, ckl)
    dmu, dlogvar = dmu_s + dmu_kl, dlv_s + dlv_kl  # the VAE fan-in [ELBO-5]
    dhe_mu, g["mu.W"], g["mu.b"] = F.dense_backward(dmu, cmu)
    dhe_lv, g["lv.W"], g["lv.b"] = F.dense_backward(dlogvar, clv)
    _tanh_dense_back(dhe_mu + dhe_lv, e1, g, "e1")
    dhc, g["c2.W"], g["c2.b"] = F.dense_backward(dlogits_y, c2)
    _tanh_dense_back(dhc, c1, g, "c1")
    return J, g


@settings(deadline=None, max_examples=15)
@given(B_l=st.integers(1, 3), B_u=st.integers(1, 3), K=st.integers(2, 3), D=st.integers(2, 4),
       Z=st.integers(1, 2), seed=seeds, alpha=alphas)
def test_whole_m2_objective_gradcheck(B_l, B_u, K, D, Z, seed, alpha):
    rng = np.random.default_rng(seed)
    H = 3
    p = _init_m2(rng, D, K, H, Z)
    x = rng.uniform(0.05, 0.95, (B_l + B_u, D))
    y = _mixed_labels(rng, B_l, B_u, K)
    eps = rng.standard_normal((K * (B_l + B_u), Z))
    _, grads = _m2_loss_and_grads(p, x, y, eps, alpha)
    names = list(p)

    def loss(*arrays):
        return _m2_loss_and_grads(dict(zip(names, arrays)), x, y, eps, alpha)[0]

    check_function(loss, [p[n] for n in names], [grads[n] for n in names], names=names).assert_ok()
    if alpha == 0.0:
        # the classifier learns only through the unlabelled rows: feeding it labelled rows alone
        # (no unlabelled rows) gives it exactly zero gradient
        lab = y >= 0
        _, g_lab = _m2_loss_and_grads(p, x[lab], y[lab], eps.reshape(K, -1, Z)[:, lab].reshape(-1, Z), 0.0)
        assert all(np.all(g_lab[n] == 0.0) for n in ("c1.W", "c1.b", "c2.W", "c2.b"))


def test_wrong_fan_in_fails_the_check():
    """Test the tester: dropping the entropy's share of dlogits_y is caught."""
    rng = np.random.default_rng(7)
    logits, neg_L = rng.standard_normal((3, 4)), rng.uniform(0, 10, (3, 4))

    def wrong_backward(dneg_U, cache):
        q, neg_L_, expected, _ = cache
        d = np.broadcast_to(dneg_U, expected.shape)[:, None]
        return d * q * (neg_L_ - expected[:, None]), d * q

    assert not check_pair(S.unlabelled_bound_forward, wrong_backward, [logits, neg_L], rng=0).ok
