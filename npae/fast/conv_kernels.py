"""Fused convolution loops of the ``fused`` backend, compiled with numba (the dense and loss loops
are in :mod:`npae.fast.kernels`, whose switches, dtypes and jit settings apply here too).

Two groups; in both, im2col, col2im and the layout passes run as loops and the products stay on BLAS.

* Drop-ins for the conv pairs (``conv2d_forward_fused`` and its siblings): the reference's row
  layout and caches, so the two can be mixed. Reference pairs: :func:`npae.pairs.conv.conv2d_forward`
  / ``_backward`` and :func:`npae.pairs.conv.conv_transpose2d_forward` / ``_backward``;
  ``tests/test_conv.py`` checks they agree (float64 to rtol 1e-12, float32 to 2e-6).
* The convolution steps that training runs (``conv2d_act_forward_fused`` and its siblings, behind
  ``FusedOps``), channel-major and with the activation folded in (the section below);
  ``tests/test_conv_layers.py`` checks them against the reference units.
"""
import numpy as np

from npae.fast.kernels import _jit, scalar, sum8
from npae.pairs.conv import _check_arrays, _pair, conv_output_size, conv_transpose_output_size, nchw_to_rows


def _im2col(x, kH, kW, sH, sW, pH, pW, cols):
    """Write every receptive field of ``x`` (B, C, H, W) as one row of ``cols``
    (B·Ho·Wo, C·kH·kW) [CONV-3], reading zeros outside the image instead of padding it first.
    Reference: conv.im2col.
    """
    B, C, H, W = x.shape
    Ho = (H + 2 * pH - kH) // sH + 1
    Wo = (W + 2 * pW - kW) // sW + 1
    for n in range(B):
        for i in range(Ho):
            for j in range(Wo):
                row = (n * Ho + i) * Wo + j
                for c in range(C):
                    for u in range(kH):
                        h = i * sH + u - pH
                        for v in range(kW):
                            w = j * sW + v - pW
                            inside = h >= 0 and h < H and w >= 0 and w < W
                            cols[row, (c * kH + u) * kW + v] = x[n, c, h, w] if inside else 0


def _col2im_add(cols, kH, kW, sH, sW, pH, pW, out):
    """Add every row of ``cols`` (B·Ho·Wo, C·kH·kW) back onto its patch of ``out`` (B, C, H, W),
    in place [CONV-7]; taps that fall in the padding are dropped. ``out`` holds zeros (an input
    gradient) or the bias (a transposed convolution). Each pixel's contributions arrive in kernel
    order (u, v), as in the reference. Reference: conv.col2im.
    """
    B, C, H, W = out.shape
    Ho = (H + 2 * pH - kH) // sH + 1
    Wo = (W + 2 * pW - kW) // sW + 1
    for n in range(B):
        for c in range(C):
            for u in range(kH):
                for v in range(kW):
                    col = (c * kH + u) * kW + v
                    for i in range(Ho):
                        h = i * sH + u - pH
                        if h < 0 or h >= H:
                            continue
                        for j in range(Wo):
                            w = j * sW + v - pW
                            if w >= 0 and w < W:
                                out[n, c, h, w] += cols[(n * Ho + i) * Wo + j, col]


def _rows_to_nchw_bias(rows, b, y):
    """``y[n, c, i, j] = rows[(n·Ho + i)·Wo + j, c] + b[c]``: the product's rows (B·Ho·Wo, C) laid
    out as an image (B, C, Ho, Wo) with the bias added [CONV-1] in the same pass (``b`` zeros for
    none). Reference: conv.rows_to_nchw followed by ``y += b.reshape(-1, 1, 1)``.
    """
    B, C, Ho, Wo = y.shape
    for n in range(B):
        for c in range(C):
            bc = b[c]
            for i in range(Ho):
                for j in range(Wo):
                    y[n, c, i, j] = rows[(n * Ho + i) * Wo + j, c] + bc


def _nchw_to_rows_sum(dy, rows, db):
    """``rows[(n·Ho + i)·Wo + j, c] = dy[n, c, i, j]`` (B·Ho·Wo, C) and the bias gradient
    ``db[c] = Σ_{n,i,j} dy[n, c, i, j]`` [CONV-5] in one pass. Reference: conv.nchw_to_rows and
    ``dy.sum(axis=(0, 2, 3))``.
    """
    B, C, Ho, Wo = dy.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            acc = 0 * db[c]
            for i in range(Ho):
                for j in range(Wo):
                    g = dy[n, c, i, j]
                    rows[(n * Ho + i) * Wo + j, c] = g
                    acc += g
            db[c] += acc


im2col = _jit(_im2col)
col2im_add = _jit(_col2im_add)
rows_to_nchw_bias = _jit(_rows_to_nchw_bias)
nchw_to_rows_sum = _jit(_nchw_to_rows_sum)


def conv2d_forward_fused(x, W, b, stride=1, padding=0):
    """Drop-in for :func:`npae.pairs.conv.conv2d_forward` (reference pair conv2d_forward /
    conv2d_backward): same arguments, same ``(y, cache)``.

    im2col with the padding read as zeros (no padded copy), one BLAS product [CONV-1], then the
    NCHW layout and the bias in one pass.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 1, "conv2d")
    x = np.ascontiguousarray(x)
    B = x.shape[0]
    C_out, C_in, kH, kW = W.shape
    Ho, Wo = conv_output_size(x.shape[2:], (kH, kW), stride, padding)
    cols = np.empty((B * Ho * Wo, C_in * kH * kW), dtype=x.dtype)  # (B·Ho·Wo, C_in·kH·kW)
    im2col(x, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    y_rows = cols @ W.reshape(C_out, -1).T  # (B·Ho·Wo, C_out)
    y = np.empty((B, C_out, Ho, Wo), dtype=y_rows.dtype)  # (B, C_out, Ho, Wo)
    rows_to_nchw_bias(y_rows, np.ascontiguousarray(b, dtype=y.dtype), y)
    return y, (x.shape, cols, W, stride, padding)


def conv2d_backward_fused(dy, cache):
    """Drop-in for :func:`npae.pairs.conv.conv2d_backward` (reference pair conv2d_forward /
    conv2d_backward): ``(dx, dW, db)`` from ``dy`` and the cache of either forward.

    One pass lays ``dy`` out as rows and sums ``db`` [CONV-5]; two BLAS products give ``dW``
    [CONV-4] and the patch gradients [CONV-6]; col2im adds these into ``dx`` [CONV-7].
    """
    x_shape, cols, W, stride, padding = cache
    dy = np.ascontiguousarray(dy)
    B, C_out, Ho, Wo = dy.shape
    kH, kW = W.shape[2:]
    dy_rows = np.empty((B * Ho * Wo, C_out), dtype=dy.dtype)  # (B·Ho·Wo, C_out)
    db = np.empty(C_out, dtype=dy.dtype)  # (C_out,)
    nchw_to_rows_sum(dy, dy_rows, db)
    dW = (dy_rows.T @ cols).reshape(W.shape)  # (C_out, C_in, kH, kW)
    dcols = dy_rows @ W.reshape(C_out, -1)  # (B·Ho·Wo, C_in·kH·kW)
    dx = np.zeros(x_shape, dtype=dcols.dtype)  # (B, C_in, H, W)
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], dx)
    return dx, dW, db


def conv_transpose2d_forward_fused(x, W, b, stride=1, padding=0, output_padding=0):
    """Drop-in for :func:`npae.pairs.conv.conv_transpose2d_forward` (reference pair
    conv_transpose2d_forward / conv_transpose2d_backward): same arguments, same ``(y, cache)``.

    One BLAS product, then col2im adds the stamps onto an output that starts as the bias [CONV-8].
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 0, "conv_transpose2d")
    B = x.shape[0]
    C_in, C_out, kH, kW = W.shape
    Ho, Wo = conv_transpose_output_size(x.shape[2:], (kH, kW), stride, padding,
                                        output_padding)
    dcols = nchw_to_rows(x) @ W.reshape(C_in, -1)  # (B·H·W, C_out·kH·kW)
    y = np.empty((B, C_out, Ho, Wo), dtype=dcols.dtype)  # (B, C_out, Ho, Wo)
    y[...] = np.reshape(b, (-1, 1, 1))
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], y)
    return y, (x, W, stride, padding)


def conv_transpose2d_backward_fused(dy, cache):
    """Drop-in for :func:`npae.pairs.conv.conv_transpose2d_backward` (reference pair
    conv_transpose2d_forward / conv_transpose2d_backward): ``(dx, dW, db)``.

    im2col of ``dy`` and one BLAS product give ``dx`` [CONV-10], a conv2d forward with no bias;
    the same im2col matrix gives ``dW`` [CONV-11].
    """
    x, W, stride, padding = cache
    dy = np.ascontiguousarray(dy)
    B, C_in, H, W_in = x.shape
    C_out, kH, kW = W.shape[1:]
    cols = np.empty((B * H * W_in, C_out * kH * kW), dtype=dy.dtype)  # (B·H·W, C_out·kH·kW)
    im2col(dy, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    dx_rows = cols @ W.reshape(C_in, -1).T  # (B·H·W, C_in)
    dx = np.empty(x.shape, dtype=dx_rows.dtype)  # (B, C_in, H, W)
    rows_to_nchw_bias(dx_rows, np.zeros(C_in, dtype=dx.dtype), dx)  # no bias
    dW = (nchw_to_rows(x).T @ cols).reshape(W.shape)  # (C_in, C_out, kH, kW)
    db = dy.sum(axis=(0, 2, 3))  # (C_out,)
    return dx, dW, db


# ==================================================================================================
# Convolution steps with their activation (npae.fast.backends: FusedOps.conv2d_act_* and
# conv_transpose2d_act_*). These run channel-major: the patch matrix is the reference's transposed,
# (C·kH·kW, B·Ho·Wo), and the products give (C, B·Ho·Wo), so every loop below writes and reads runs
# of contiguous numbers (one output row of a plane, or a whole plane) and the NCHW layout is a copy
# of whole planes; the reference's row layout made im2col, col2im and the layout passes move one
# number at a time, 60% of a conv VAE's step (docs/performance.md). Bias and a piecewise-linear
# activation ride along those passes; products stay on BLAS, and the large scratch matrices are
# recycled from one step to the next through a ``work`` dict that the layer's cache carries.
# Reference units: npae.fast.backends.ReferenceOps.conv2d_act_forward / _backward and
# conv_transpose2d_act_forward / _backward (conv pairs of npae.pairs.conv, then the activation's pair).
# ==================================================================================================
def _planes_bias_act(y, b, a, h, act, slope):
    """``a[n, c] = y[c, n·P:(n + 1)·P] + b[c]`` and ``h = f(a)`` (codes of
    :data:`npae.fast.kernels.ACT_CODES`; for the identity ``h`` is not written: pass ``a``), one
    pass. ``y``: (C, B·P), the product ``W_mat @ cols`` in channel-major order; ``a``, ``h``: the
    image (B, C, P) with P = Ho·Wo. Each inner loop runs over P contiguous numbers of every array,
    with the activation chosen outside it, so it vectorizes. Reference: conv.rows_to_nchw, the bias
    line of conv.conv2d_forward, then relu_forward / leaky_relu_forward.
    """
    B, C, P = a.shape
    for n in range(B):
        for c in range(C):
            bc = b[c]
            off = n * P
            if act == 1:
                for p in range(P):
                    s = y[c, off + p] + bc
                    a[n, c, p] = s
                    h[n, c, p] = max(s, 0)
            elif act == 2:
                for p in range(P):
                    s = y[c, off + p] + bc
                    a[n, c, p] = s
                    h[n, c, p] = s if s > 0 else slope * s
            else:
                for p in range(P):
                    a[n, c, p] = y[c, off + p] + bc


def _act_forward_flat(a, h, act, slope):
    """``h = f(a)`` elementwise over 1-D views (codes of :data:`npae.fast.kernels.ACT_CODES`; the
    identity copies). Reference: relu_forward / leaky_relu_forward."""
    if act == 1:
        for k in range(a.shape[0]):
            h[k] = max(a[k], 0)
    elif act == 2:
        for k in range(a.shape[0]):
            s = a[k]
            h[k] = s if s > 0 else slope * s
    else:
        for k in range(a.shape[0]):
            h[k] = a[k]


def _act_backward_image(dh, a, da, db, act, slope):
    """``da = dh · f'(a)`` (B, C, P) and ``db[c] = Σ_{n,p} da[n, c, p]``, one pass: each plane
    summed on its own in float64 (:func:`npae.fast.kernels.sum8`), then added in the order of n.
    ``da`` may be a strided view whose planes are contiguous: the conv2d backward passes its
    channel-major matrix (C, B·P) as ``g.reshape(C, B, P).transpose(1, 0, 2)``. Reference:
    relu_backward / leaky_relu_backward, then the db line of conv.conv2d_backward (with
    conv.nchw_to_rows for the channel-major layout) or conv.conv_transpose2d_backward."""
    B, C, P = dh.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            if act == 1:
                for p in range(P):
                    x = dh[n, c, p]
                    da[n, c, p] = x if a[n, c, p] > 0 else 0 * x
            elif act == 2:
                for p in range(P):
                    x = dh[n, c, p]
                    da[n, c, p] = x if a[n, c, p] > 0 else slope * x
            else:
                for p in range(P):
                    da[n, c, p] = dh[n, c, p]
            db[c] += sum8(da[n, c])


def _columns(size, out, k, s, p):
    """The range ``[lo, hi)`` of output positions ``o`` (0 <= o < out) whose tap ``k`` reads inside an
    axis of ``size``: ``0 <= o·s + k − p < size``."""
    lo = 0 if p - k <= 0 else (p - k + s - 1) // s
    top = size - 1 - k + p
    hi = 0 if top < 0 else min(out, top // s + 1)
    return lo, max(lo, hi)


def _im2col_planes(x, kH, kW, sH, sW, pH, pW, cols):
    """Every receptive field of ``x`` (B, C, H, W) as one column of ``cols`` (C·kH·kW, B·Ho·Wo)
    [CONV-3]: the im2col matrix transposed, channel-major. Row ``(c·kH + u)·kW + v`` holds tap
    (u, v) of channel c at every output position, so each inner loop writes one output row's
    positions contiguously; the padding is written as zeros, never read. Reference: conv.im2col
    (transposed).
    """
    B, C, H, W = x.shape
    Ho = (H + 2 * pH - kH) // sH + 1
    Wo = (W + 2 * pW - kW) // sW + 1
    for c in range(C):
        for u in range(kH):
            for v in range(kW):
                r = (c * kH + u) * kW + v
                lo, hi = _columns(W, Wo, v, sW, pW)
                for n in range(B):
                    for i in range(Ho):
                        base = (n * Ho + i) * Wo
                        h = i * sH + u - pH
                        if h < 0 or h >= H:
                            for j in range(Wo):
                                cols[r, base + j] = 0
                            continue
                        for j in range(lo):
                            cols[r, base + j] = 0
                        for j in range(lo, hi):
                            cols[r, base + j] = x[n, c, h, j * sW + v - pW]
                        for j in range(hi, Wo):
                            cols[r, base + j] = 0


def _col2im_planes_add(cols, kH, kW, sH, sW, pH, pW, out):
    """Add every column of ``cols`` (C·kH·kW, B·Ho·Wo) back onto its patch of ``out`` (B, C, H, W),
    in place [CONV-7]: the adjoint of :func:`_im2col_planes`; taps in the padding are dropped.
    ``out`` holds zeros (an input gradient) or the bias (a transposed convolution). Each pixel's
    contributions arrive in kernel order (u, v), as in the reference. Reference: conv.col2im.
    """
    B, C, H, W = out.shape
    Ho = (H + 2 * pH - kH) // sH + 1
    Wo = (W + 2 * pW - kW) // sW + 1
    for n in range(B):
        for c in range(C):
            for u in range(kH):
                for v in range(kW):
                    r = (c * kH + u) * kW + v
                    lo, hi = _columns(W, Wo, v, sW, pW)
                    for i in range(Ho):
                        h = i * sH + u - pH
                        if h < 0 or h >= H:
                            continue
                        base = (n * Ho + i) * Wo
                        for j in range(lo, hi):
                            out[n, c, h, j * sW + v - pW] += cols[r, base + j]


planes_bias_act = _jit(_planes_bias_act)
act_forward_flat = _jit(_act_forward_flat)
act_backward_image = _jit(_act_backward_image)
_columns = _jit(_columns)  # called by the two loops below (compiled into them)
im2col_planes = _jit(_im2col_planes)
col2im_planes_add = _jit(_col2im_planes_add)


def scratch(work, key, shape, dtype):
    """An uninitialised array of ``shape`` and ``dtype`` for temporary use: ``work[key]`` when it
    fits, else a new one stored there. ``work``: a dict carried from one step's cache to the next,
    or None (nothing kept: evaluation)."""
    shape = tuple(int(s) for s in shape)
    if work is None:
        return np.empty(shape, dtype=dtype)
    buf = work.get(key)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = work[key] = np.empty(shape, dtype=dtype)
    return buf


def _planes(x, work, key):
    """``x`` (B, C, H, W) in channel-major order (C, B·H·W), written into a scratch array: a copy of
    contiguous H·W blocks."""
    B, C, H, W = x.shape
    planes = scratch(work, key, (C, B * H * W), x.dtype)
    planes.reshape(C, B, H, W)[...] = x.transpose(1, 0, 2, 3)
    return planes


def _image(planes, shape):
    """The channel-major ``planes`` (C, B·H·W) laid out as a new image of ``shape`` (B, C, H, W)."""
    B, C, H, W = shape
    return np.ascontiguousarray(planes.reshape(C, B, H, W).transpose(1, 0, 2, 3))


#: Marks the cache of :func:`conv2d_act_forward_fused`, whose patch matrix is channel-major
#: (C_in·kH·kW, B·Ho·Wo), the transpose of the reference's; the fused backward takes either.
PLANES = "planes"


def conv2d_act_forward_fused(x, W, b, stride, padding, act, slope, work):
    """Fused ``h = f(conv2d(x, W) + b)`` for an activation code ``act`` of
    :data:`npae.fast.kernels.ACT_CODES`.

    Everything runs channel-major, so that no pass transposes numbers one at a time: the im2col
    matrix transposed (C_in·kH·kW, B·Ho·Wo) with the padding written as zeros
    (:func:`im2col_planes`), one BLAS product ``W_mat @ cols`` (C_out, B·Ho·Wo), then the NCHW
    layout, bias and activation in one pass over contiguous planes (:func:`planes_bias_act`).
    Returns ``(h, a, conv_cache)``: ``a`` the pre-activation (``h is a`` for the identity),
    ``conv_cache`` as conv.conv2d_forward's with the patch matrix transposed and :data:`PLANES`
    appended (the matrix lives in ``work`` and is reused by the next call). Reference:
    npae.fast.backends.ReferenceOps.conv2d_act_forward.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 1, "conv2d")
    x = np.ascontiguousarray(x)
    B = x.shape[0]
    C_out, C_in, kH, kW = W.shape
    Ho, Wo = conv_output_size(x.shape[2:], (kH, kW), stride, padding)
    cols = scratch(work, "cols", (C_in * kH * kW, B * Ho * Wo), x.dtype)  # (C_in·kH·kW, B·Ho·Wo)
    im2col_planes(x, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    y = scratch(work, "planes", (C_out, B * Ho * Wo), x.dtype)  # (C_out, B·Ho·Wo)
    np.matmul(W.reshape(C_out, -1), cols, out=y)
    a = np.empty((B, C_out, Ho, Wo), dtype=x.dtype)  # (B, C_out, Ho, Wo)
    h = a if act == 0 else np.empty_like(a)  # (B, C_out, Ho, Wo)
    planes_bias_act(y, np.ascontiguousarray(b, dtype=x.dtype), a.reshape(B, C_out, -1),
                    h.reshape(B, C_out, -1), act, scalar(slope, a))
    return h, a, (x.shape, cols, W, stride, padding, PLANES)


def conv2d_act_backward_fused(dh, a, act, slope, conv_cache, dW, db, input_grad, work):
    """Backward of :func:`conv2d_act_forward_fused`: writes ``dW`` and ``db`` in place, returns
    ``dx`` (None when ``input_grad`` is False: the patch gradients and col2im are skipped).

    One pass applies f' to ``dh``, lays it out channel-major and sums ``db``
    (:func:`act_backward_image`, writing into the channel-major matrix); ``dW = g colsᵀ`` goes
    straight into ``dW``; the patch gradients ``W_matᵀ g`` go into a recycled array that col2im
    adds into a zero ``dx`` (:func:`col2im_planes_add`). Reference:
    npae.fast.backends.ReferenceOps.conv2d_act_backward.
    """
    x_shape, cols, W, stride, padding = conv_cache[:5]
    dh = np.ascontiguousarray(dh, dtype=a.dtype)
    B, C_out, Ho, Wo = dh.shape
    kH, kW = W.shape[2:]
    g = scratch(work, "planes", (C_out, B * Ho * Wo), dh.dtype)  # (C_out, B·Ho·Wo)
    act_backward_image(dh.reshape(B, C_out, -1), a.reshape(B, C_out, -1),
                       g.reshape(C_out, B, -1).transpose(1, 0, 2), db, act, scalar(slope, a))
    np.matmul(g, cols.T, out=dW.reshape(C_out, -1))  # (C_out, C_in·kH·kW)
    if not input_grad:
        return None
    dcols = scratch(work, "dcols", cols.shape, dh.dtype)  # (C_in·kH·kW, B·Ho·Wo)
    np.matmul(W.reshape(C_out, -1).T, g, out=dcols)
    dx = np.zeros(x_shape, dtype=dh.dtype)  # (B, C_in, H, W)
    col2im_planes_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], dx)
    return dx


def conv_transpose2d_act_forward_fused(x, W, b, stride, padding, output_padding, act, slope, work):
    """Fused ``h = f(conv_transpose2d(x, W) + b)`` for an activation code ``act``.

    The input channel-major (C_in, B·H·W), one BLAS product ``W_matᵀ @ x`` into a recycled patch
    matrix (C_out·kH·kW, B·H·W), col2im adds the stamps onto an output that starts as the bias
    (:func:`col2im_planes_add`), then one pass for the activation. Returns ``(h, a, conv_cache)``
    as :func:`conv2d_act_forward_fused`: the cache of conv.conv_transpose2d_forward with the input's
    channel-major planes appended (they live in ``work``; the backward's weight gradient uses them).
    Reference:
    npae.fast.backends.ReferenceOps.conv_transpose2d_act_forward.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 0, "conv_transpose2d")
    B = x.shape[0]
    C_in, C_out, kH, kW = W.shape
    Ho, Wo = conv_transpose_output_size(x.shape[2:], (kH, kW), stride, padding, output_padding)
    x_planes = _planes(x, work, "x_planes")  # (C_in, B·H·W)
    dcols = scratch(work, "dcols", (C_out * kH * kW, x_planes.shape[1]), x.dtype)  # (C_out·kH·kW, B·H·W)
    np.matmul(W.reshape(C_in, -1).T, x_planes, out=dcols)
    a = np.empty((B, C_out, Ho, Wo), dtype=x.dtype)  # (B, C_out, Ho, Wo)
    a[...] = np.reshape(b, (-1, 1, 1))
    col2im_planes_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], a)
    h = a
    if act != 0:
        h = np.empty_like(a)  # (B, C_out, Ho, Wo)
        act_forward_flat(a.reshape(-1), h.reshape(-1), act, scalar(slope, a))
    return h, a, (x, W, stride, padding, x_planes)


def conv_transpose2d_act_backward_fused(dh, a, act, slope, conv_cache, dW, db, input_grad, work):
    """Backward of :func:`conv_transpose2d_act_forward_fused`: writes ``dW`` and ``db`` in place,
    returns ``dx`` (None when ``input_grad`` is False).

    One pass gives ``da = dh · f'(a)`` and ``db`` (:func:`act_backward_image`); the channel-major
    im2col of ``da`` (:func:`im2col_planes`) into a recycled matrix serves both
    ``dW = x colsᵀ`` (into ``dW``) and ``dx = W_mat cols``, a conv2d forward without bias, laid
    out as an image by copying contiguous planes. Given a reference forward's cache (no planes), it
    lays the input out again. Reference: npae.fast.backends.ReferenceOps.conv_transpose2d_act_backward.
    """
    x, W, stride, padding = conv_cache[:4]
    x_planes = conv_cache[4] if len(conv_cache) > 4 else _planes(x, work, "x_planes")  # (C_in, B·H·W)
    dh = np.ascontiguousarray(dh, dtype=a.dtype)
    B, C_in, H, W_in = x.shape
    C_out, kH, kW = W.shape[1:]
    da = scratch(work, "da", dh.shape, dh.dtype)  # (B, C_out, Ho, Wo)
    act_backward_image(dh.reshape(B, C_out, -1), a.reshape(B, C_out, -1), da.reshape(B, C_out, -1),
                       db, act, scalar(slope, a))
    cols = scratch(work, "cols", (C_out * kH * kW, B * H * W_in), dh.dtype)  # (C_out·kH·kW, B·H·W)
    im2col_planes(da, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    np.matmul(x_planes, cols.T, out=dW.reshape(C_in, -1))  # (C_in, C_out·kH·kW)
    if not input_grad:
        return None
    dx_planes = scratch(work, "planes", (C_in, B * H * W_in), dh.dtype)  # (C_in, B·H·W)
    np.matmul(W.reshape(C_in, -1), cols, out=dx_planes)
    return _image(dx_planes, x.shape)  # (B, C_in, H, W)
