"""Fused convolution loops of the ``fused`` backend, compiled with numba (the dense and loss loops
are in :mod:`npae.fast.kernels`, whose switches, dtypes and jit settings apply here too).

im2col, col2im and the NCHW <-> rows passes run as loops; the products stay on BLAS. Reference
pairs: :func:`npae.pairs.conv.conv2d_forward` / ``_backward`` and
:func:`npae.pairs.conv.conv_transpose2d_forward` / ``_backward`` with an activation pair. The fused
functions take and return the same caches as the references, so the two can be mixed;
``tests/test_conv.py`` checks they agree (float64 to rtol 1e-12, float32 to 2e-6).
"""
import numpy as np

from npae.fast.kernels import _jit, scalar
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
# conv_transpose2d_act_*). Bias and a piecewise-linear activation ride along the passes that lay
# the product's rows out as an image (forward) and back (backward); products stay on BLAS, and the
# large scratch matrices (im2col, patch gradients, rows) are recycled from one step to the next
# through a ``work`` dict that the layer's cache carries. Reference units:
# npae.fast.backends.ReferenceOps.conv2d_act_forward / _backward and
# conv_transpose2d_act_forward / _backward (conv pairs of npae.pairs.conv, then the activation's pair).
# ==================================================================================================
def _rows_bias_act(rows, b, a, h, act, slope):
    """``a[n, c, i, j] = rows[(n·Ho + i)·Wo + j, c] + b[c]`` and ``h = f(a)`` (codes of
    :data:`npae.fast.kernels.ACT_CODES`; ``h`` may be ``a`` itself for the identity), one pass. ``rows``:
    (B·Ho·Wo, C), the product ``cols @ W_matᵀ``. Reference: conv.rows_to_nchw, the bias line of
    conv.conv2d_forward, then relu_forward / leaky_relu_forward.
    """
    B, C, Ho, Wo = a.shape
    for n in range(B):
        for c in range(C):
            bc = b[c]
            for i in range(Ho):
                for j in range(Wo):
                    s = rows[(n * Ho + i) * Wo + j, c] + bc
                    a[n, c, i, j] = s
                    if act == 1:
                        h[n, c, i, j] = max(s, 0)
                    elif act == 2:
                        h[n, c, i, j] = s if s > 0 else slope * s
                    else:
                        h[n, c, i, j] = s


def _act_forward_flat(a, h, act, slope):
    """``h = f(a)`` elementwise over 1-D views (codes of :data:`npae.fast.kernels.ACT_CODES`). Reference:
    relu_forward / leaky_relu_forward."""
    for k in range(a.shape[0]):
        s = a[k]
        if act == 1:
            h[k] = max(s, 0)
        elif act == 2:
            h[k] = s if s > 0 else slope * s
        else:
            h[k] = s


def _act_backward_rows(dh, a, rows, db, act, slope):
    """``rows[(n·Ho + i)·Wo + j, c] = dh[n, c, i, j] · f'(a[n, c, i, j])`` (B·Ho·Wo, C) and the
    bias gradient ``db[c]`` = the sum of those entries, in one pass over the image. Reference:
    relu_backward / leaky_relu_backward, then conv.nchw_to_rows and the db line of
    conv.conv2d_backward.
    """
    B, C, Ho, Wo = dh.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            acc = 0 * db[c]
            for i in range(Ho):
                for j in range(Wo):
                    g = dh[n, c, i, j]
                    if act == 1:
                        g = g if a[n, c, i, j] > 0 else 0 * g
                    elif act == 2:
                        g = g if a[n, c, i, j] > 0 else slope * g
                    rows[(n * Ho + i) * Wo + j, c] = g
                    acc += g
            db[c] += acc


def _act_backward_image(dh, a, da, db, act, slope):
    """``da = dh · f'(a)`` (B, C, H, W) and ``db[c] = Σ_{n,h,w} da[n, c]``, one pass. Reference:
    relu_backward / leaky_relu_backward, then the db line of conv.conv_transpose2d_backward."""
    B, C, H, W = dh.shape
    for c in range(C):
        db[c] = 0
    for n in range(B):
        for c in range(C):
            acc = 0 * db[c]
            for i in range(H):
                for j in range(W):
                    g = dh[n, c, i, j]
                    if act == 1:
                        g = g if a[n, c, i, j] > 0 else 0 * g
                    elif act == 2:
                        g = g if a[n, c, i, j] > 0 else slope * g
                    da[n, c, i, j] = g
                    acc += g
            db[c] += acc


rows_bias_act = _jit(_rows_bias_act)
act_forward_flat = _jit(_act_forward_flat)
act_backward_rows = _jit(_act_backward_rows)
act_backward_image = _jit(_act_backward_image)


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


def _x_rows(x, work):
    """``x`` (B, C, H, W) as (B·H·W, C) rows (conv.nchw_to_rows) written into a scratch array."""
    B, C, H, W = x.shape
    rows = scratch(work, "x_rows", (B * H * W, C), x.dtype)
    rows.reshape(B, H, W, C)[...] = x.transpose(0, 2, 3, 1)
    return rows


def conv2d_act_forward_fused(x, W, b, stride, padding, act, slope, work):
    """Fused ``h = f(conv2d(x, W) + b)`` for an activation code ``act`` of
    :data:`npae.fast.kernels.ACT_CODES`.

    im2col reading the padding as zeros, one BLAS product into a recycled rows array, then the
    NCHW layout, bias and activation in one pass (:func:`rows_bias_act`). Returns
    ``(h, a, conv_cache)``: ``a`` the pre-activation (``h is a`` for the identity), ``conv_cache``
    the cache of conv.conv2d_forward (its im2col matrix lives in ``work`` and is reused by the
    next call). Reference: npae.fast.backends.ReferenceOps.conv2d_act_forward.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 1, "conv2d")
    x = np.ascontiguousarray(x)
    B = x.shape[0]
    C_out, C_in, kH, kW = W.shape
    Ho, Wo = conv_output_size(x.shape[2:], (kH, kW), stride, padding)
    cols = scratch(work, "cols", (B * Ho * Wo, C_in * kH * kW), x.dtype)  # (B·Ho·Wo, C_in·kH·kW)
    im2col(x, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    rows = scratch(work, "rows", (B * Ho * Wo, C_out), x.dtype)  # (B·Ho·Wo, C_out)
    np.matmul(cols, W.reshape(C_out, -1).T, out=rows)
    a = np.empty((B, C_out, Ho, Wo), dtype=x.dtype)  # (B, C_out, Ho, Wo)
    h = a if act == 0 else np.empty_like(a)  # (B, C_out, Ho, Wo)
    rows_bias_act(rows, np.ascontiguousarray(b, dtype=x.dtype), a, h, act, scalar(slope, a))
    return h, a, (x.shape, cols, W, stride, padding)


def conv2d_act_backward_fused(dh, a, act, slope, conv_cache, dW, db, input_grad, work):
    """Backward of :func:`conv2d_act_forward_fused`: writes ``dW`` and ``db`` in place, returns
    ``dx`` (None when ``input_grad`` is False: the patch gradients and col2im are skipped).

    One pass applies f' to ``dh``, lays it out as rows and sums ``db``
    (:func:`act_backward_rows`); ``dW = rowsᵀ cols`` goes straight into ``dW``; the patch gradients
    ``rows W_mat`` go into a recycled array that col2im adds into a zero ``dx``.
    Reference: npae.fast.backends.ReferenceOps.conv2d_act_backward.
    """
    x_shape, cols, W, stride, padding = conv_cache
    dh = np.ascontiguousarray(dh, dtype=a.dtype)
    B, C_out, Ho, Wo = dh.shape
    kH, kW = W.shape[2:]
    rows = scratch(work, "rows", (B * Ho * Wo, C_out), dh.dtype)  # (B·Ho·Wo, C_out)
    act_backward_rows(dh, a, rows, db, act, scalar(slope, a))
    np.matmul(rows.T, cols, out=dW.reshape(C_out, -1))  # (C_out, C_in·kH·kW)
    if not input_grad:
        return None
    dcols = scratch(work, "dcols", cols.shape, dh.dtype)  # (B·Ho·Wo, C_in·kH·kW)
    np.matmul(rows, W.reshape(C_out, -1), out=dcols)
    dx = np.zeros(x_shape, dtype=dh.dtype)  # (B, C_in, H, W)
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], dx)
    return dx


def conv_transpose2d_act_forward_fused(x, W, b, stride, padding, output_padding, act, slope, work):
    """Fused ``h = f(conv_transpose2d(x, W) + b)`` for an activation code ``act``.

    One BLAS product of the input rows into a recycled patch matrix, col2im adds the stamps onto an
    output that starts as the bias, then one pass for the activation. Returns
    ``(h, a, conv_cache)`` as :func:`conv2d_act_forward_fused` (the cache of
    conv.conv_transpose2d_forward). Reference: npae.fast.backends.ReferenceOps.conv_transpose2d_act_forward.
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 0, "conv_transpose2d")
    B = x.shape[0]
    C_in, C_out, kH, kW = W.shape
    Ho, Wo = conv_transpose_output_size(x.shape[2:], (kH, kW), stride, padding, output_padding)
    x_rows = _x_rows(x, work)  # (B·H·W, C_in)
    dcols = scratch(work, "dcols", (x_rows.shape[0], C_out * kH * kW), x.dtype)  # (B·H·W, C_out·kH·kW)
    np.matmul(x_rows, W.reshape(C_in, -1), out=dcols)
    a = np.empty((B, C_out, Ho, Wo), dtype=x.dtype)  # (B, C_out, Ho, Wo)
    a[...] = np.reshape(b, (-1, 1, 1))
    col2im_add(dcols, kH, kW, stride[0], stride[1], padding[0], padding[1], a)
    h = a
    if act != 0:
        h = np.empty_like(a)  # (B, C_out, Ho, Wo)
        act_forward_flat(a.reshape(-1), h.reshape(-1), act, scalar(slope, a))
    return h, a, (x, W, stride, padding)


def conv_transpose2d_act_backward_fused(dh, a, act, slope, conv_cache, dW, db, input_grad, work):
    """Backward of :func:`conv_transpose2d_act_forward_fused`: writes ``dW`` and ``db`` in place,
    returns ``dx`` (None when ``input_grad`` is False).

    One pass gives ``da = dh · f'(a)`` and ``db`` (:func:`act_backward_image`); im2col of ``da``
    into a recycled matrix serves both ``dW = x_rowsᵀ cols`` (into ``dW``) and
    ``dx = cols W_matᵀ``, a conv2d forward without bias. Reference:
    npae.fast.backends.ReferenceOps.conv_transpose2d_act_backward.
    """
    x, W, stride, padding = conv_cache
    dh = np.ascontiguousarray(dh, dtype=a.dtype)
    B, C_in, H, W_in = x.shape
    C_out, kH, kW = W.shape[1:]
    da = scratch(work, "da", dh.shape, dh.dtype)  # (B, C_out, Ho, Wo)
    act_backward_image(dh, a, da, db, act, scalar(slope, a))
    cols = scratch(work, "cols", (B * H * W_in, C_out * kH * kW), dh.dtype)  # (B·H·W, C_out·kH·kW)
    im2col(da, kH, kW, stride[0], stride[1], padding[0], padding[1], cols)
    np.matmul(_x_rows(x, work).T, cols, out=dW.reshape(C_in, -1))  # (C_in, C_out·kH·kW)
    if not input_grad:
        return None
    dx_rows = scratch(work, "rows", (B * H * W_in, C_in), dh.dtype)  # (B·H·W, C_in)
    np.matmul(cols, W.reshape(C_in, -1).T, out=dx_rows)
    dx = np.empty(x.shape, dtype=dh.dtype)  # (B, C_in, H, W)
    rows_to_nchw_bias(dx_rows, np.zeros(C_in, dtype=dh.dtype), dx)
    return dx
