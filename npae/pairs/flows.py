"""Normalising flows for a VAE posterior: planar flows, MADE and inverse autoregressive flow (IAF).

Pure pairs (no state; any randomness comes from an explicit ``np.random.Generator`` argument):

* :func:`planar_uhat_forward` / :func:`planar_uhat_backward`: the invertibility reparameterisation
  û = u + (m(wᵀu) − wᵀu) w/‖w‖², m(a) = −1 + softplus(a) [FLOW-1], [FLOW-2].
* :func:`planar_forward` / :func:`planar_backward`: f(z) = z + û tanh(wᵀz + b) and
  log|det ∂f/∂z| = log(1 + ûᵀψ) [FLOW-3..6]; :func:`planar_stack_forward` /
  :func:`planar_stack_backward` chain K of them.
* :func:`flow_log_density`: log q_K(z_K) = log q_0(z_0) − Σ_k logdet_k [FLOW-7].
* :func:`made_degrees`, :func:`made_masks`: MADE's connectivity [FLOW-8], [FLOW-9];
  :func:`masked_dense_forward` / :func:`masked_dense_backward`: y = x (W ⊙ M) + b [FLOW-10], [FLOW-11];
  :func:`made_forward` / :func:`made_backward`: one tanh hidden layer, outputs [m | s] [FLOW-12].
* :func:`iaf_forward` / :func:`iaf_backward`: σ = sigmoid(s), z_new = σ ⊙ z + (1 − σ) ⊙ m,
  logdet = Σ log σ [FLOW-13..15]; :func:`iaf_stack_forward` / :func:`iaf_stack_backward` chain K
  of them; :func:`iaf_inverse` undoes a step (for density checks);
  :func:`made_init` draws parameters.

Multi-output pairs return ``((out1, out2), cache)`` and their backward takes ``((dout1, dout2), cache)``.
Shapes: ``z`` is (B, Z), one row per example; ``logdet`` is (B,).
Derivation: docs/derivations/flow.md.
"""
import numpy as np

from npae.pairs import functional as F

from npae.constants import IAF_GATE_BIAS, PLANAR_ALPHA_MIN  # noqa: F401 (re-exported)


def _sum_to_bias_shape(g, shape):
    """Sum ``g`` (a (B,) array of per-example gradients) down to a parameter's shape: () or (1,)."""
    total = np.sum(g)
    return np.reshape(total, shape)


# --------------------------------------------------------------------------------------------------
# Planar flow
# --------------------------------------------------------------------------------------------------
def planar_uhat_forward(u, w):
    """Reparameterise ``u`` so that the planar flow is invertible [FLOW-1].

    ``û = u + (m(α) − α) w/‖w‖²`` with ``α = wᵀu`` and ``m(α) = −1 + softplus(α)``, so that
    ``wᵀû = m(α) > −1``. ``m(α) − α`` is evaluated as ``softplus(−α) − 1`` (no cancellation for
    large α). The second output, ``margin = 1 + wᵀû = softplus(α) > 0``, is computed directly, so
    that it stays positive where ``−1 + softplus(α)`` would round to −1.

    Parameters
    ----------
    u, w : (Z,) arrays, ``w ≠ 0``; the margin is a positive double for ``wᵀu > PLANAR_ALPHA_MIN``

    Returns
    -------
    (uhat, margin) : (Z,) array and () array
    cache : for :func:`planar_uhat_backward`

    Derivation: docs/derivations/flow.md#flow-1
    """
    alpha = w @ u  # () α = wᵀu
    wsq = w @ w  # () ‖w‖²
    sp_neg, _ = F.softplus_forward(-alpha)  # () softplus(−α) = m(α) − α + 1
    margin, _ = F.softplus_forward(alpha)  # () 1 + wᵀû = softplus(α) [FLOW-1]
    k = (sp_neg - 1.0) / wsq  # () (m(α) − α)/‖w‖² [FLOW-1]
    uhat = u + k * w  # (Z,) [FLOW-1]
    return (uhat, margin), (u, w, alpha, wsq, k)


def planar_uhat_backward(dout, cache):
    """Gradients of ``(û, margin)`` with respect to ``u`` and ``w`` [FLOW-2].

    ``dk = duhat·w``; ``dα = −dk σ(−α)/‖w‖² + dmargin σ(α)``;
    ``d‖w‖² = −dk k/‖w‖²``;
    ``du = duhat + dα w``; ``dw = k duhat + dα u + 2 d‖w‖² w``.

    Returns ``(du, dw)``, both (Z,).

    Derivation: docs/derivations/flow.md#flow-2
    """
    duhat, dmargin = dout
    u, w, alpha, wsq, k = cache
    dk = duhat @ w  # () [FLOW-2]
    dalpha = -dk * F.sigmoid(-alpha) / wsq + dmargin * F.sigmoid(alpha)  # () [FLOW-2]
    dwsq = -dk * k / wsq  # () [FLOW-2]
    du = duhat + dalpha * w  # (Z,) [FLOW-2]
    dw = k * duhat + dalpha * u + 2.0 * dwsq * w  # (Z,) [FLOW-2]
    return du, dw


def planar_forward(z, u, w, b):
    """One planar flow ``z_new = z + û tanh(z w + b)`` and its log-determinant [FLOW-3], [FLOW-4].

    ``logdet = log(1 + h'(a) wᵀû)`` with ``a = z w + b``, evaluated as
    ``log(h² + (1 − h²) margin)`` (h = tanh a, margin = 1 + wᵀû > 0), a sum of two non-negative
    terms: finite and exact wherever 1 + ûᵀψ would cancel.

    Parameters
    ----------
    z : (B, Z) array
    u, w : (Z,) arrays (``w ≠ 0``)
    b : () or (1,) array

    Returns
    -------
    (z_new, logdet) : (B, Z) and (B,) arrays
    cache : for :func:`planar_backward`

    Derivation: docs/derivations/flow.md#flow-3
    """
    (uhat, margin), u_cache = planar_uhat_forward(u, w)
    a = z @ w + b  # (B,)
    h = np.tanh(a)  # (B,)
    z_new = z + h[:, None] * uhat  # (B, Z) [FLOW-3]
    hp = 1.0 - h * h  # (B,) h'(a)
    g = h * h + hp * margin  # (B,) = 1 + h'(a) wᵀû = 1 + ûᵀψ > 0 [FLOW-4]
    logdet = np.log(g)  # (B,) [FLOW-4]
    return (z_new, logdet), (z, w, np.shape(b), uhat, margin, h, hp, g, u_cache)


def planar_backward(dout, cache):
    """Gradients of one planar flow [FLOW-5], [FLOW-6].

    ``dout = (dz_new, dlogdet)``, shapes (B, Z) and (B,). Through z_new [FLOW-5]:
    ``dh = dz_new·û``, ``dû = Σ_b h_b dz_new_b``, ``dz = dz_new + da w``. Through logdet [FLOW-6]:
    ``dg = dlogdet/g``, ``dh += dg·2h(1 − margin)``, ``dmargin = Σ_b dg h'``. Then
    ``da = dh h'``, ``dw = zᵀda + (û's part)``, ``db = Σ da``, and û's pair gives du, dw.

    Returns ``(dz, du, dw, db)`` with the shapes of z, u, w, b.

    Derivation: docs/derivations/flow.md#flow-5
    """
    dz_new, dlogdet = dout
    z, w, b_shape, uhat, margin, h, hp, g, u_cache = cache
    dh = dz_new @ uhat  # (B,) [FLOW-5]
    duhat = h @ dz_new  # (Z,) [FLOW-5]
    dg = dlogdet / g  # (B,) [FLOW-6]
    dh = dh + dg * 2.0 * h * (1.0 - margin)  # (B,): h feeds z_new and logdet [FLOW-6]
    dmargin = np.sum(dg * hp)  # () [FLOW-6]
    da = dh * hp  # (B,) [ACT-9]
    dz = dz_new + da[:, None] * w  # (B, Z): z's direct use plus a = z w + b [FLOW-5]
    dw_a = z.T @ da  # (Z,) [FLOW-5]
    db = _sum_to_bias_shape(da, b_shape)  # b's shape [FLOW-5]
    du, dw_uhat = planar_uhat_backward((duhat, dmargin), u_cache)
    dw = dw_a + dw_uhat  # (Z,): w feeds a and û [FLOW-5]
    return dz, du, dw, db


def planar_stack_forward(z, flows):
    """Apply planar flows in order; ``flows`` is a list of ``(u, w, b)``.

    Returns ``((z_K, logdet_sum), cache)`` with ``logdet_sum = Σ_k logdet_k``, (B,) [FLOW-7].
    """
    logdet_sum = np.zeros(z.shape[0], dtype=z.dtype)  # (B,)
    caches = []
    for u, w, b in flows:
        (z, logdet), c = planar_forward(z, u, w, b)
        logdet_sum = logdet_sum + logdet  # (B,) [FLOW-7]
        caches.append(c)
    return (z, logdet_sum), caches


def planar_stack_backward(dout, cache):
    """Backward of :func:`planar_stack_forward`: ``dout = (dz_K, dlogdet_sum)``.

    Every flow's logdet enters the sum with weight 1, so each receives ``dlogdet_sum``; ``dz``
    runs back through the flows in reverse order. Returns ``(dz, [(du, dw, db), ...])`` with one
    tuple per flow, in forward order.
    """
    dz, dlogdet_sum = dout
    grads = []
    for c in reversed(cache):
        dz, du, dw, db = planar_backward((dz, dlogdet_sum), c)
        grads.append((du, dw, db))
    return dz, grads[::-1]


def flow_log_density(log_q0, logdet_sum):
    """``log q_K(z_K) = log q_0(z_0) − Σ_k log|det ∂z_k/∂z_{k−1}|`` [FLOW-7], shape of ``log_q0``.

    Its gradients are ``dlog_q0 = d`` and ``dlogdet_sum = −d``. In a VAE with a flow posterior the
    log-weight is ``log p(x|z_K) + log p(z_K) − log q_0(z_0) + Σ_k logdet_k``.

    Derivation: docs/derivations/flow.md#flow-7
    """
    return log_q0 - logdet_sum  # [FLOW-7]


# --------------------------------------------------------------------------------------------------
# MADE: masked dense layers
# --------------------------------------------------------------------------------------------------
def made_degrees(n_in, n_hidden, order=None, rng=None):
    """Degrees of MADE's inputs and hidden units [FLOW-8].

    Parameters
    ----------
    n_in : int
        Number of variables Z.
    n_hidden : int
    order : (Z,) int array, optional
        ``order[i]`` is the position (1..Z) of variable i in the autoregressive order; default
        ``1..Z`` (natural order). ``order[::-1]`` reverses it (alternate it between IAF steps).
    rng : np.random.Generator, optional
        Without it the hidden degrees cycle through ``1..Z−1`` (deterministic); with it they are
        drawn uniformly from ``1..Z−1``. For Z = 1 every hidden degree is 0 (no input reaches them).

    Returns ``(deg_in (Z,), deg_hidden (H,))``, int arrays.

    Derivation: docs/derivations/flow.md#flow-8
    """
    deg_in = np.arange(1, n_in + 1) if order is None else np.asarray(order, dtype=np.int64)
    if sorted(deg_in.tolist()) != list(range(1, n_in + 1)):
        raise ValueError(f"order must be a permutation of 1..{n_in}, got {deg_in.tolist()}")
    if n_in == 1:
        return deg_in, np.zeros(n_hidden, dtype=np.int64)
    if rng is None:
        deg_hidden = 1 + np.arange(n_hidden) % (n_in - 1)  # (H,) cycles 1..Z−1 [FLOW-8]
    else:
        deg_hidden = rng.integers(1, n_in, size=n_hidden)  # (H,) uniform on 1..Z−1 [FLOW-8]
    return deg_in, deg_hidden


def made_masks(n_in, n_hidden, order=None, rng=None):
    """MADE's two masks from the degrees [FLOW-9].

    ``M1[i, k] = 1[deg_hidden_k ≥ deg_in_i]`` (input i → hidden k) and
    ``M2[k, d] = 1[deg_in_d > deg_hidden_k]`` (hidden k → output d): output d can only see inputs
    earlier than d in the order. Shapes (Z, H) and (H, Z), float, in npae's ``(n_in, n_out)``
    layout. Arguments as :func:`made_degrees`.

    Derivation: docs/derivations/flow.md#flow-9
    """
    deg_in, deg_hidden = made_degrees(n_in, n_hidden, order, rng)
    M1 = (deg_hidden[None, :] >= deg_in[:, None]).astype(np.float64)  # (Z, H) [FLOW-9]
    M2 = (deg_in[None, :] > deg_hidden[:, None]).astype(np.float64)  # (H, Z) [FLOW-9]
    return M1, M2


def masked_dense_forward(x, W, b, mask):
    """Masked affine map ``y = x (W ⊙ M) + b`` [FLOW-10], a :func:`npae.pairs.functional.dense_forward`
    on the masked weights.

    Parameters: ``x`` (B, n_in), ``W`` and ``mask`` (n_in, n_out), ``b`` (n_out,).
    Returns ``(y (B, n_out), cache)``.

    Derivation: docs/derivations/flow.md#flow-10
    """
    Wm = W * mask  # (n_in, n_out) [FLOW-10]
    y, dense_cache = F.dense_forward(x, Wm, b)  # (B, n_out)
    return y, (dense_cache, mask)


def masked_dense_backward(dy, cache):
    """``dx = dy (W ⊙ M)ᵀ``, ``dW = (xᵀ dy) ⊙ M``, ``db = Σ_rows dy`` [FLOW-11].

    Returns ``(dx, dW, db)``. Derivation: docs/derivations/flow.md#flow-11
    """
    dense_cache, mask = cache
    dx, dWm, db = F.dense_backward(dy, dense_cache)
    dW = dWm * mask  # (n_in, n_out): masked weights get no gradient [FLOW-11]
    return dx, dW, db


def made_init(rng, n_in, n_hidden, context_dim=0, scale=0.1, gate_bias=IAF_GATE_BIAS):
    """Parameters of a one-hidden-layer MADE with outputs [m | s], drawn from ``rng``.

    ``W1`` (Z, H), ``b1`` (H,), ``W2`` (H, 2Z), ``b2`` (2Z,) with ``b2[Z:] = gate_bias``, and, if
    ``context_dim > 0``, ``Wc`` (C, H) for an unmasked context. Weights are ``scale`` times
    standard normals.
    """
    params = {
        "W1": scale * rng.standard_normal((n_in, n_hidden)),
        "b1": np.zeros(n_hidden),
        "W2": scale * rng.standard_normal((n_hidden, 2 * n_in)),
        "b2": np.concatenate([np.zeros(n_in), np.full(n_in, float(gate_bias))]),
    }
    if context_dim:
        params["Wc"] = scale * rng.standard_normal((context_dim, n_hidden))
    return params


def made_forward(z, params, masks, context=None):
    """MADE with one tanh hidden layer and two output blocks [FLOW-12].

    ``a = z (W1 ⊙ M1) + context Wc + b1``, ``u = tanh(a)``, ``[m | s] = u (W2 ⊙ [M2 M2]) + b2``.
    Output m_d and s_d depend on z only through the variables before d in the order; the context
    (e.g. a hidden vector of the encoder) reaches every hidden unit unmasked.

    Parameters
    ----------
    z : (B, Z) array
    params : dict with ``W1`` (Z, H), ``b1`` (H,), ``W2`` (H, 2Z), ``b2`` (2Z,), and ``Wc`` (C, H)
        when a context is given
    masks : (M1, M2) from :func:`made_masks`, shapes (Z, H) and (H, Z)
    context : (B, C) array, optional

    Returns ``((m, s), cache)``, m and s both (B, Z).

    Derivation: docs/derivations/flow.md#flow-12
    """
    M1, M2 = masks
    Z = z.shape[1]
    a, c1 = masked_dense_forward(z, params["W1"], params["b1"], M1)  # (B, H) [FLOW-12]
    if context is not None:
        a = a + context @ params["Wc"]  # (B, H): the context is not masked [FLOW-12]
    hid, c_act = F.tanh_forward(a)  # (B, H)
    M2_both = np.concatenate([M2, M2], axis=1)  # (H, 2Z): m and s see the same inputs
    out, c2 = masked_dense_forward(hid, params["W2"], params["b2"], M2_both)  # (B, 2Z) [FLOW-12]
    m, s = out[:, :Z], out[:, Z:]  # (B, Z) each [FLOW-12]
    return (m, s), (c1, context, params.get("Wc"), c_act, c2)


def made_backward(dout, cache):
    """Backward of :func:`made_forward`: ``dout = (dm, ds)``.

    Returns ``(dz, grads, dcontext)``: ``grads`` has the keys of ``params``, ``dcontext`` is None
    without a context.

    Derivation: docs/derivations/flow.md#flow-12
    """
    dm, ds = dout
    c1, context, Wc, c_act, c2 = cache
    dout_cat = np.concatenate([dm, ds], axis=1)  # (B, 2Z): splitting columns forward [FLOW-12]
    dhid, dW2, db2 = masked_dense_backward(dout_cat, c2)
    da = F.tanh_backward(dhid, c_act)  # (B, H)
    dz, dW1, db1 = masked_dense_backward(da, c1)
    grads = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
    dcontext = None
    if context is not None:
        grads["Wc"] = context.T @ da  # (C, H) [FLOW-12]
        dcontext = da @ Wc.T  # (B, C) [FLOW-12]
    return dz, grads, dcontext


# --------------------------------------------------------------------------------------------------
# Inverse autoregressive flow, the gated ("LSTM-style") step
# --------------------------------------------------------------------------------------------------
def iaf_forward(z, params, masks, context=None):
    """One IAF step: ``[m, s] = MADE(z, context)``, ``σ = sigmoid(s)``,
    ``z_new = σ ⊙ z + (1 − σ) ⊙ m`` [FLOW-13], ``logdet = Σ_d log σ_d`` [FLOW-14].

    ``log σ(s) = −softplus(−s)``, finite for every finite s. Parameters as :func:`made_forward`.

    Returns ``((z_new (B, Z), logdet (B,)), cache)``.

    Derivation: docs/derivations/flow.md#flow-13
    """
    (m, s), made_cache = made_forward(z, params, masks, context)  # (B, Z) each
    sig = F.sigmoid(s)  # (B, Z) [FLOW-13]
    one_minus = F.sigmoid(-s)  # (B, Z) 1 − σ, without cancellation when σ ≈ 1
    z_new = sig * z + one_minus * m  # (B, Z) [FLOW-13]
    sp_neg, _ = F.softplus_forward(-s)  # (B, Z)
    logdet = -np.sum(sp_neg, axis=1)  # (B,) Σ log σ [FLOW-14]
    return (z_new, logdet), (z, m, sig, one_minus, made_cache)


def iaf_backward(dout, cache):
    """Gradients of one IAF step [FLOW-15]: ``dout = (dz_new, dlogdet)``.

    ``dm = dz_new (1 − σ)``; ``ds = dz_new (z − m) σ(1 − σ) + dlogdet (1 − σ)``; then MADE's
    backward, and z's two uses (the gated sum and MADE's input) add.

    Returns ``(dz, grads, dcontext)`` as :func:`made_backward`.

    Derivation: docs/derivations/flow.md#flow-15
    """
    dz_new, dlogdet = dout
    z, m, sig, one_minus, made_cache = cache
    dm = dz_new * one_minus  # (B, Z) [FLOW-15]
    ds = dz_new * (z - m) * sig * one_minus + dlogdet[:, None] * one_minus  # (B, Z) [FLOW-15]
    dz_made, grads, dcontext = made_backward((dm, ds), made_cache)
    dz = dz_new * sig + dz_made  # (B, Z): direct use plus MADE's input [FLOW-15]
    return dz, grads, dcontext


def iaf_stack_forward(z, steps, context=None):
    """Apply IAF steps in order; ``steps`` is a list of ``(params, masks)``, and every step reads
    the same ``context`` (B, C) (or None).

    Returns ``((z_K, logdet_sum), cache)`` with ``logdet_sum = Σ_k logdet_k``, (B,) [FLOW-7].

    Derivation: docs/derivations/flow.md#flow-7
    """
    logdet_sum = np.zeros(z.shape[0], dtype=z.dtype)  # (B,)
    caches = []
    for params, masks in steps:
        (z, logdet), c = iaf_forward(z, params, masks, context)  # (B, Z), (B,) [FLOW-13]
        logdet_sum = logdet_sum + logdet  # (B,) [FLOW-7]
        caches.append(c)
    return (z, logdet_sum), caches


def iaf_stack_backward(dout, cache):
    """Backward of :func:`iaf_stack_forward`: ``dout = (dz_K, dlogdet_sum)``.

    Every step's logdet enters the sum with weight 1, so each receives ``dlogdet_sum``; ``dz`` runs
    back through the steps in reverse order, and the context, read by every step, collects the
    steps' gradients. Returns ``(dz, [grads, ...], dcontext)``, one ``grads`` dict per step in
    forward order; ``dcontext`` is None without a context.
    """
    dz, dlogdet_sum = dout
    grads, dcontext = [], None
    for c in reversed(cache):
        dz, g, dctx = iaf_backward((dz, dlogdet_sum), c)  # [FLOW-15]
        grads.append(g)
        if dctx is not None:
            dcontext = dctx if dcontext is None else dcontext + dctx  # (B, C): it feeds every step
    return dz, grads[::-1], dcontext


def iaf_inverse(z_new, params, masks, context=None, order=None):
    """Invert one IAF step, one variable at a time in the autoregressive order.

    ``z_d = (z_new_d − (1 − σ_d) m_d)/σ_d``, where m_d, σ_d depend only on the z's already found.
    Z passes through MADE; used to evaluate densities at arbitrary points, not in training.
    ``order`` must be the one the masks were built with. Returns z, (B, Z).
    """
    Z = z_new.shape[1]
    order = np.arange(1, Z + 1) if order is None else np.asarray(order)
    z = np.zeros_like(z_new)
    for d in np.argsort(order):  # variables in the order of their degrees
        (m, s), _ = made_forward(z, params, masks, context)
        z[:, d] = (z_new[:, d] - F.sigmoid(-s[:, d]) * m[:, d]) / F.sigmoid(s[:, d])
    return z
