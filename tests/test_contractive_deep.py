"""The contractive penalty of a deep encoder (npae.pairs.penalties.contractive_penalty_deep_*): central
differences in x and every W_k, b_k over drawn depths, widths, activations, λ and activation
hyperparameters; the one-layer case against the closed form; the value against ||J||²_F of a
numerically differentiated encoder; and a backward missing one path fails the check."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from npae.pairs import functional as F
from npae.pairs import penalties as P
from npae.constants import GRADCHECK_TOL
from npae.gradcheck import central_difference, check_pair, directional_check

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 4)
weights = st.one_of(st.just(0.0), st.floats(1e-3, 10.0))
activation_names = st.sampled_from(P.DEEP_CONTRACTIVE_ACTIVATIONS)
KINKED = ("relu", "leaky_relu", "elu")  # f' or f'' jumps at a = 0


def _activate(name, a, slope, alpha):
    forward, _, hyper_names = F.ACTIVATIONS[name]
    hyper = {"slope": slope, "alpha": alpha}
    return forward(a, **{n: hyper[n] for n in hyper_names})[0]


def _encoder(x, Ws, bs, activations, slope=0.01, alpha=1.0):
    h = x
    for W, b, name in zip(Ws, bs, activations):
        h = _activate(name, h @ W + b, slope, alpha)
    return h


def _bias_off_kink(a0, b, margin=0.05):
    """Per column, the bias nearest ``b`` (on a grid) keeping every ``a0 + b`` at least ``margin``
    from the kink at 0."""
    grid = np.linspace(-3, 3, 601)
    out = b.copy()
    for j in range(b.size):
        ok = np.min(np.abs(a0[:, j][:, None] + grid[None, :]), axis=0) >= margin
        out[j] = grid[ok][np.argmin(np.abs(grid[ok] - b[j]))]
    return out


def _draw_encoder(rng, B, D, widths, activations, slope=0.01, alpha=1.0):
    """x and per-layer (W, b), with every pre-activation of a kinked layer kept off its kink."""
    x = rng.standard_normal((B, D))
    Ws, bs, h, n_in = [], [], x, D
    for n_out, name in zip(widths, activations):
        W = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        b = 0.5 * rng.standard_normal(n_out)
        if name in KINKED:
            b = _bias_off_kink(h @ W, b)
        Ws.append(W)
        bs.append(b)
        h = _activate(name, h @ W + b, slope, alpha)
        n_in = n_out
    return x, Ws, bs


def _flat_pair(L, activations, weight, slope, alpha):
    """forward(x, W_1..W_L, b_1..b_L) / backward -> (dx, dW_1.., db_1..) for check_pair."""
    def forward(x, *arrays):
        return P.contractive_penalty_deep_forward(x, arrays[:L], arrays[L:], activations, weight,
                                                  slope=slope, alpha=alpha)

    def backward(dvalue, cache):
        dx, dWs, dbs = P.contractive_penalty_deep_backward(dvalue, cache)
        return (dx, *dWs, *dbs)
    return forward, backward


@settings(deadline=None, max_examples=150)
@given(B=dims, D=dims, widths=st.lists(dims, min_size=1, max_size=3), data=st.data(), seed=seeds,
       weight=weights, slope=st.floats(0.01, 0.5), alpha=st.floats(0.5, 2.0))
def test_deep_contractive_gradcheck(B, D, widths, data, seed, weight, slope, alpha):
    """Checks the backward [CONTRACTIVE-12], [CONTRACTIVE-13], [CONTRACTIVE-14], [CONTRACTIVE-15] (f′ and
    f″ of [CONTRACTIVE-2] and [CONTRACTIVE-8]) against central differences, over drawn depths,
    activations, slopes and alphas.
    """
    activations = data.draw(st.lists(activation_names, min_size=len(widths), max_size=len(widths)))
    rng = np.random.default_rng(seed)
    x, Ws, bs = _draw_encoder(rng, B, D, widths, activations, slope, alpha)
    L = len(widths)
    forward, backward = _flat_pair(L, activations, weight, slope, alpha)
    names = ["x"] + [f"W{k + 1}" for k in range(L)] + [f"b{k + 1}" for k in range(L)]
    check_pair(forward, backward, [x, *Ws, *bs], names=names, rng=seed).assert_ok()


@pytest.mark.parametrize("activations", [("softplus", "elu", "tanh"), ("leaky_relu", "sigmoid")])
def test_dot_product_check_at_digits_size(activations):
    """⟨v, J u⟩ against ⟨u, Jᵀ v⟩ in the weights of a digits-sized encoder (D = 64), where an entry
    by entry check would be slow."""
    rng = np.random.default_rng(3)
    widths = [32, 16, 8][-len(activations):]
    x, Ws, bs = _draw_encoder(rng, 16, 64, widths, activations, 0.1, 1.0)
    for k in range(len(Ws)):
        def penalty(W, k=k):
            return P.contractive_penalty_deep_forward(x, Ws[:k] + [W] + Ws[k + 1:], bs, activations, 0.3,
                                                      slope=0.1)[0]
        _, cache = P.contractive_penalty_deep_forward(x, Ws, bs, activations, 0.3, slope=0.1)
        dW = P.contractive_penalty_deep_backward(1.0, cache)[1][k]
        assert directional_check(penalty, Ws[k], lambda v, dW=dW: v * dW, rng=k) < GRADCHECK_TOL


@pytest.mark.parametrize("activation", P.CONTRACTIVE_ACTIVATIONS)
@settings(deadline=None, max_examples=8)
@given(B=dims, D=dims, Z=dims, seed=seeds, weight=weights)
def test_one_layer_equals_the_closed_form(activation, B, D, Z, seed, weight):
    rng = np.random.default_rng(seed)
    x, (W,), (b,) = _draw_encoder(rng, B, D, [Z], [activation])
    value, cache = P.contractive_penalty_forward(x, W, b, activation, weight)
    deep_value, deep_cache = P.contractive_penalty_deep_forward(x, [W], [b], [activation], weight)
    assert deep_value == pytest.approx(value, rel=1e-12, abs=1e-300)
    closed = P.contractive_penalty_backward(1.0, cache)
    dx, (dW,), (db,) = P.contractive_penalty_deep_backward(1.0, deep_cache)
    for got, want in zip((dx, dW, db), closed):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * (1.0 + np.abs(want).max()))


@pytest.mark.parametrize("activations", [("tanh",), ("elu", "sigmoid"), ("leaky_relu", "softplus"),
                                         ("relu", "tanh", "identity"), ("softplus", "elu", "sigmoid")])
def test_value_is_the_frobenius_norm_of_a_numerical_jacobian(activations):
    """Checks [CONTRACTIVE-9], [CONTRACTIVE-10], [CONTRACTIVE-11]: the accumulated value is the squared
    Frobenius norm of a numerical Jacobian.
    """
    rng = np.random.default_rng(len(activations))
    B, D, lam, slope, alpha = 3, 5, 0.7, 0.1, 1.3
    widths = [4, 3, 2][:len(activations)]
    x, Ws, bs = _draw_encoder(rng, B, D, widths, activations, slope, alpha)
    norms = []
    for i in range(B):
        cols = []
        for d in range(D):
            e = np.zeros(D)
            e[d] = 1.0
            cols.append(central_difference(lambda t: _encoder(x[i] + t * e, Ws, bs, activations,
                                                              slope, alpha)))
        norms.append(np.sum(np.stack(cols, axis=1) ** 2))  # ||J_i||²_F, J_i of shape (n_L, D)
    value, _ = P.contractive_penalty_deep_forward(x, Ws, bs, activations, lam, slope=slope, alpha=alpha)
    assert value == pytest.approx(lam * np.mean(norms), rel=1e-9)


def test_explicit_product_of_layer_jacobians():
    """J_i = W_1 D_1 W_2 D_2 in row convention, built by hand, gives the same value.
    Checks [CONTRACTIVE-9].
    """
    rng = np.random.default_rng(5)
    x, Ws, bs = _draw_encoder(rng, 4, 6, [5, 3], ["tanh", "sigmoid"])
    a1 = x @ Ws[0] + bs[0]
    a2 = np.tanh(a1) @ Ws[1] + bs[1]
    s2 = F.sigmoid(a2)
    total = 0.0
    for i in range(4):
        J = Ws[0] @ np.diag(1 - np.tanh(a1[i]) ** 2) @ Ws[1] @ np.diag(s2[i] * (1 - s2[i]))  # (D, n_L)
        total += np.sum(J * J)
    value, _ = P.contractive_penalty_deep_forward(x, Ws, bs, ["tanh", "sigmoid"], 2.0)
    assert value == pytest.approx(2.0 * total / 4, rel=1e-12)


@pytest.mark.parametrize("drop", ["f_second", "jacobian_W2", "gram_W1"])
def test_a_backward_missing_one_path_fails(drop):
    """Test the tester: each path that the derivation adds is needed."""
    rng = np.random.default_rng(11)
    activations = ["tanh", "sigmoid"]
    x, Ws, bs = _draw_encoder(rng, 3, 4, [3, 2], activations)
    forward, backward = _flat_pair(2, activations, 1.0, 0.01, 1.0)

    def wrong_backward(dvalue, cache):
        Ws_, dense_caches, fprimes, fseconds, Ps, Qs, R, weight, B = cache
        if drop == "f_second":
            cache = (Ws_, dense_caches, fprimes, [np.zeros_like(f) for f in fseconds], Ps, Qs, R, weight, B)
        dx, dW1, dW2, db1, db2 = backward(dvalue, cache)
        if drop == "jacobian_W2":  # keep only W_2's use in the forward activations
            dW2 = dW2 - np.tensordot(fprimes[0][:, :, None] * 2.0 * dvalue * weight / B * R,
                                     Ps[1], axes=([0, 2], [0, 2]))
        if drop == "gram_W1":
            dW1 = dW1 - 2.0 * Ws_[0] @ (dvalue * weight / B * np.tensordot(Ps[0], Ps[0], ([0, 2], [0, 2])))
        return dx, dW1, dW2, db1, db2

    report = check_pair(forward, wrong_backward, [x, *Ws, *bs], rng=0)
    assert not report.ok


def test_float32_and_shapes():
    rng = np.random.default_rng(2)
    x, Ws, bs = _draw_encoder(rng, 5, 7, [6, 3], ["elu", "tanh"])
    x, Ws, bs = x.astype(np.float32), [W.astype(np.float32) for W in Ws], [b.astype(np.float32) for b in bs]
    value, cache = P.contractive_penalty_deep_forward(x, Ws, bs, ["elu", "tanh"], 0.5)
    dx, dWs, dbs = P.contractive_penalty_deep_backward(1.0, cache)
    assert np.isfinite(value) and dx.shape == x.shape and dx.dtype == np.float32
    assert [g.shape for g in dWs] == [W.shape for W in Ws] and [g.shape for g in dbs] == [b.shape for b in bs]


def test_bad_input():
    x = np.ones((2, 3))
    W1, b1, W2, b2 = np.ones((3, 4)), np.zeros(4), np.ones((4, 2)), np.zeros(2)
    with pytest.raises(ValueError, match="one entry per layer"):
        P.contractive_penalty_deep_forward(x, [W1, W2], [b1], ["tanh", "tanh"], 1.0)
    with pytest.raises(ValueError, match="one entry per layer"):
        P.contractive_penalty_deep_forward(x, [], [], [], 1.0)
    with pytest.raises(ValueError, match="layer 1"):
        P.contractive_penalty_deep_forward(x, [W1, W2.T], [b1, b2], ["tanh", "tanh"], 1.0)
    with pytest.raises(ValueError, match="activations"):
        P.contractive_penalty_deep_forward(x, [W1], [b1], ["swish"], 1.0)
    with pytest.raises(ValueError, match="weight"):
        P.contractive_penalty_deep_forward(x, [W1], [b1], ["tanh"], -1.0)
