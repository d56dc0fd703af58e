"""The reading surface for images: convolution, transposed convolution, flatten and reshape pairs.

Conventions (see docs/derivations/conv.md):

* Images are NCHW: ``x`` is ``(B, C, H, W)``.
* Weights use PyTorch's layout, so any result can be checked against ``torch.nn.functional``:
  ``(C_out, C_in, kH, kW)`` for :func:`conv2d_forward`, ``(C_in, C_out, kH, kW)`` for
  :func:`conv_transpose2d_forward` (the same array a conv2d from C_out to C_in channels would use).
* "Convolution" is cross-correlation, as in every deep-learning library: the kernel is not flipped.
  Zero padding, dilation 1, groups 1. ``stride``, ``padding`` and ``output_padding`` are an int or an
  ``(h, w)`` pair.
* ``*_forward(...) -> (y, cache)``; ``*_backward(dy, cache) -> gradients of the inputs``. No state,
  no randomness, fresh C-contiguous arrays out, float32 stays float32.

Two linear maps carry everything: :func:`correlate` (im2col, then one BLAS product) and its adjoint
:func:`correlate_adjoint` (one BLAS product, then the col2im scatter-add). A convolution's forward
is the first and its input gradient the second; a transposed convolution is the same two functions
with their roles swapped. Each line that implements an equation ends with a tag ``[CONV-N]``.
"""
import numbers

import numpy as np


# --------------------------------------------------------------------------------------------------
# Argument checks and output sizes
# --------------------------------------------------------------------------------------------------
def _int(value, name, minimum):
    """``value`` as a Python int >= ``minimum``, or a ValueError that names the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _pair(value, name, minimum):
    """An int or an (h, w) pair as an (h, w) tuple of ints >= ``minimum``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}")
        return (_int(value[0], f"{name}[0]", minimum), _int(value[1], f"{name}[1]", minimum))
    v = _int(value, name, minimum)
    return (v, v)


def _both_ints(*values):
    return all(not isinstance(v, (tuple, list)) for v in values)


def conv_output_size(n, k, stride=1, padding=0):
    """Output length of a convolution along one axis [CONV-2]:
    ``floor((n + 2 padding − k) / stride) + 1``.

    Parameters
    ----------
    n : int or (h, w)
        Input size.
    k : int or (h, w)
        Kernel size.
    stride : int or (h, w), >= 1
    padding : int or (h, w), >= 0
        Zeros added on each side.

    Returns
    -------
    int when every argument is an int, else an ``(h, w)`` tuple.

    Raises ValueError, naming the argument, for a non-integer or out-of-range value and for a
    kernel larger than the padded input.

    Derivation: docs/derivations/conv.md#conv-2
    """
    n2, k2 = _pair(n, "input size", 1), _pair(k, "kernel size", 1)
    s2, p2 = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    out = []
    for axis, n_, k_, s_, p_ in zip("hw", n2, k2, s2, p2):
        if k_ > n_ + 2 * p_:
            raise ValueError(f"kernel size {k_} is larger than the padded input "
                             f"{n_} + 2·{p_} = {n_ + 2 * p_} (axis {axis})")
        out.append((n_ + 2 * p_ - k_) // s_ + 1)  # [CONV-2]
    return out[0] if _both_ints(n, k, stride, padding) else tuple(out)


def conv_transpose_output_size(n, k, stride=1, padding=0, output_padding=0):
    """Output length of a transposed convolution along one axis [CONV-9]:
    ``(n − 1) stride − 2 padding + k + output_padding``.

    A convolution with the same ``k``, ``stride`` and ``padding`` maps ``stride`` different input
    sizes to ``n``, namely ``(n − 1) stride − 2 padding + k + r`` for ``r = 0, ..., stride − 1``;
    ``output_padding = r`` says which of them this transposed convolution produces.

    Parameters
    ----------
    n : int or (h, w)
        Input size (the output size of the convolution this one is the adjoint of).
    k : int or (h, w)
    stride : int or (h, w), >= 1
    padding : int or (h, w), >= 0
        Rows and columns cropped from each side of the full output.
    output_padding : int or (h, w), 0 <= output_padding < stride

    Returns
    -------
    int when every argument is an int, else an ``(h, w)`` tuple.

    Raises ValueError, naming the argument, for a non-integer or out-of-range value, for
    ``output_padding >= stride`` and for a padding that crops the whole output.

    Derivation: docs/derivations/conv.md#conv-9
    """
    n2, k2 = _pair(n, "input size", 1), _pair(k, "kernel size", 1)
    s2, p2 = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    op2 = _pair(output_padding, "output_padding", 0)
    out = []
    for axis, n_, k_, s_, p_, op_ in zip("hw", n2, k2, s2, p2, op2):
        if op_ >= s_:
            raise ValueError(f"output_padding {op_} must be smaller than the stride {s_} (axis {axis}): "
                             f"only stride input sizes share one convolution output size")
        size = (n_ - 1) * s_ - 2 * p_ + k_ + op_  # [CONV-9]
        if size < 1:
            raise ValueError(f"padding {p_} crops the whole output of size "
                             f"{size + 2 * p_} (axis {axis})")
        out.append(size)
    return out[0] if _both_ints(n, k, stride, padding, output_padding) else tuple(out)


def _check_arrays(x, W, b, in_axis, what):
    """Shapes of an NCHW ``x``, a 4-D ``W`` whose axis ``in_axis`` counts x's channels, and ``b``
    (length of W's other channel axis, or None)."""
    if np.ndim(x) != 4:
        raise ValueError(f"{what}: x must be (B, C, H, W), got shape {np.shape(x)}")
    if np.ndim(W) != 4:
        raise ValueError(f"{what}: W must be 4-D, got shape {np.shape(W)}")
    if W.shape[in_axis] != x.shape[1]:
        raise ValueError(f"{what}: x has {x.shape[1]} channels but W.shape[{in_axis}] is "
                         f"{W.shape[in_axis]} (W shape {W.shape})")
    n_bias = W.shape[1 - in_axis]
    if b is not None and np.shape(b) != (n_bias,):
        raise ValueError(f"{what}: b must have shape ({n_bias},), got {np.shape(b)}")


# --------------------------------------------------------------------------------------------------
# im2col / col2im and the two linear maps
# --------------------------------------------------------------------------------------------------
def im2col(x, kernel, stride, padding):
    """Every receptive field of ``x`` as one row [CONV-3].

    ``cols[(n, i, j), (c, u, v)] = x_pad[n, c, i·sH + u, j·sW + v]`` with ``x_pad`` the zero-padded
    input: row ``(n·Ho + i)·Wo + j`` holds the patch under output position ``(i, j)`` of example
    ``n``, flattened in the order of ``W[f]`` (channel, kernel row, kernel column).

    Parameters
    ----------
    x : (B, C, H, W) array
    kernel, stride, padding : (h, w) pairs of ints

    Returns
    -------
    cols : (B·Ho·Wo, C·kH·kW) array, a fresh copy

    Derivation: docs/derivations/conv.md#conv-3
    """
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    B, C = x.shape[:2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))  # (B, C, H + 2pH, W + 2pW)
    windows = np.lib.stride_tricks.sliding_window_view(x_pad, (kH, kW), axis=(2, 3))
    windows = windows[:, :, ::sH, ::sW]  # (B, C, Ho, Wo, kH, kW), a view [CONV-3]
    Ho, Wo = windows.shape[2:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(B * Ho * Wo, C * kH * kW)  # copy [CONV-3]


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of :func:`im2col` [CONV-7]: add every row back onto the patch it came from.

    ``dx_pad[n, c, i·sH + u, j·sW + v] += cols[(n, i, j), (c, u, v)]``, then the padding is cut off.
    Entries covered by several patches receive the sum of their copies; entries no patch covers
    (stride larger than the kernel, or rows past the last window) receive 0.

    Parameters
    ----------
    cols : (B·Ho·Wo, C·kH·kW) array
    x_shape : (B, C, H, W), the shape of the image im2col read
    kernel, stride, padding : (h, w) pairs of ints

    Returns
    -------
    dx : (B, C, H, W) array

    Derivation: docs/derivations/conv.md#conv-7
    """
    (kH, kW), (sH, sW), (pH, pW) = kernel, stride, padding
    B, C, H, W = x_shape
    Ho, Wo = conv_output_size((H, W), (kH, kW), (sH, sW), (pH, pW))
    patches = cols.reshape(B, Ho, Wo, C, kH, kW).transpose(0, 3, 4, 5, 1, 2)  # (B, C, kH, kW, Ho, Wo)
    dx_pad = np.zeros((B, C, H + 2 * pH, W + 2 * pW), dtype=cols.dtype)  # (B, C, Hp, Wp)
    for u in range(kH):
        for v in range(kW):
            # kernel tap (u, v) of every patch lands on a strided grid of distinct pixels
            dx_pad[:, :, u:u + sH * Ho:sH, v:v + sW * Wo:sW] += patches[:, :, u, v]  # [CONV-7]
    return np.ascontiguousarray(dx_pad[:, :, pH:pH + H, pW:pW + W])  # (B, C, H, W)


def rows_to_nchw(rows, B, Ho, Wo):
    """``(B·Ho·Wo, C)`` rows, one per output position, as a C-contiguous ``(B, C, Ho, Wo)`` image."""
    C = rows.shape[1]
    return np.ascontiguousarray(rows.reshape(B, Ho, Wo, C).transpose(0, 3, 1, 2))


def nchw_to_rows(y):
    """A ``(B, C, Ho, Wo)`` image as ``(B·Ho·Wo, C)`` rows, one per position (a copy, or a view
    when the layout already allows it: read it, do not write it)."""
    return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])


def correlate(x, W, stride, padding):
    """The linear part of a convolution, without bias [CONV-1]:
    ``y[n, f, i, j] = Σ_{c,u,v} x_pad[n, c, i·sH + u, j·sW + v] · W[f, c, u, v]``.

    Computed as im2col [CONV-3] and one matrix product ``cols @ W_matᵀ`` on BLAS, which is a dense
    layer applied to every patch.

    Parameters
    ----------
    x : (B, C_in, H, W) array
    W : (C_out, C_in, kH, kW) array
    stride, padding : (h, w) pairs of ints

    Returns
    -------
    y : (B, C_out, Ho, Wo) array
    cols : (B·Ho·Wo, C_in·kH·kW) array, the im2col matrix (kept for the weight gradient)

    Derivation: docs/derivations/conv.md#conv-1
    """
    B = x.shape[0]
    C_out, _, kH, kW = W.shape
    Ho, Wo = conv_output_size(x.shape[2:], (kH, kW), stride, padding)
    cols = im2col(x, (kH, kW), stride, padding)  # (B·Ho·Wo, C_in·kH·kW) [CONV-3]
    y_rows = cols @ W.reshape(C_out, -1).T  # (B·Ho·Wo, C_out) [CONV-1]
    return rows_to_nchw(y_rows, B, Ho, Wo), cols


def correlate_adjoint(dy, W, in_size, stride, padding):
    """The adjoint (transpose) of :func:`correlate` with the same ``W`` [CONV-6]: the map from an
    output-shaped ``dy`` to an input-shaped ``dx`` with ``⟨correlate(x), dy⟩ = ⟨x, dx⟩`` for all x.

    ``dx[n, c, h, w] = Σ_{f, (i,u): i·sH + u − pH = h, (j,v): j·sW + v − pW = w} dy[n, f, i, j]
    W[f, c, u, v]``, computed as one product ``dy_rows @ W_mat`` on BLAS, then col2im [CONV-7].

    Parameters
    ----------
    dy : (B, C_out, Ho, Wo) array
    W : (C_out, C_in, kH, kW) array
    in_size : (H, W), the spatial size of the input of :func:`correlate`
    stride, padding : (h, w) pairs of ints

    Returns
    -------
    dx : (B, C_in, H, W) array

    Derivation: docs/derivations/conv.md#conv-6
    """
    B = dy.shape[0]
    C_out, C_in, kH, kW = W.shape
    dcols = nchw_to_rows(dy) @ W.reshape(C_out, -1)  # (B·Ho·Wo, C_in·kH·kW) [CONV-6]
    return col2im(dcols, (B, C_in) + tuple(in_size), (kH, kW), stride, padding)  # [CONV-7]


# --------------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------------
def conv2d_forward(x, W, b, stride=1, padding=0):
    """2-D convolution (cross-correlation) with zero padding [CONV-1]:
    ``y[n, f] = Σ_c x_pad[n, c] ⋆ W[f, c] + b[f]``, sampled every ``stride`` pixels.

    Parameters
    ----------
    x : (B, C_in, H, W) array
    W : (C_out, C_in, kH, kW) array, PyTorch's layout
    b : (C_out,) array
    stride : int or (h, w), >= 1
    padding : int or (h, w), >= 0, zeros on each side

    Returns
    -------
    y : (B, C_out, Ho, Wo) array, sizes from :func:`conv_output_size` [CONV-2]
    cache : tuple, for :func:`conv2d_backward`

    Derivation: docs/derivations/conv.md#conv-1
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 1, "conv2d")
    y, cols = correlate(x, W, stride, padding)  # (B, C_out, Ho, Wo) [CONV-1]
    y += b.reshape(-1, 1, 1)  # [CONV-1]
    return y, (x.shape, cols, W, stride, padding)


def conv2d_backward(dy, cache):
    """Gradients of :func:`conv2d_forward`.

    ``dW = dy_rowsᵀ cols`` (the input correlated with the output gradient) [CONV-4],
    ``db = Σ_{n,i,j} dy`` [CONV-5], ``dx`` = the transposed convolution of ``dy`` [CONV-6].

    Parameters
    ----------
    dy : (B, C_out, Ho, Wo) array
    cache : from :func:`conv2d_forward`

    Returns
    -------
    dx : (B, C_in, H, W) array
    dW : (C_out, C_in, kH, kW) array
    db : (C_out,) array

    Derivation: docs/derivations/conv.md#conv-4
    """
    x_shape, cols, W, stride, padding = cache
    dy_rows = nchw_to_rows(dy)  # (B·Ho·Wo, C_out)
    dW = (dy_rows.T @ cols).reshape(W.shape)  # (C_out, C_in, kH, kW) [CONV-4]
    db = dy.sum(axis=(0, 2, 3))  # (C_out,) [CONV-5]
    dx = correlate_adjoint(dy, W, x_shape[2:], stride, padding)  # (B, C_in, H, W) [CONV-6]
    return dx, dW, db


# --------------------------------------------------------------------------------------------------
# Transposed convolution: the adjoint of conv2d, plus a bias
# --------------------------------------------------------------------------------------------------
def conv_transpose2d_forward(x, W, b, stride=1, padding=0, output_padding=0):
    """2-D transposed convolution [CONV-8]: the adjoint of a conv2d from C_out to C_in channels with
    the same ``W``, plus a bias. Each input pixel adds ``x[n, c, h, w] · W[c]`` onto the output at
    ``(h·sH − pH, w·sW − pW)``; overlapping stamps add up.

    Its forward is conv2d's input gradient: ``y = correlate_adjoint(x, W) + b`` [CONV-8].

    Parameters
    ----------
    x : (B, C_in, H, W) array
    W : (C_in, C_out, kH, kW) array, PyTorch's layout
    b : (C_out,) array
    stride : int or (h, w), >= 1
    padding : int or (h, w), >= 0, rows/columns cropped from each side of the full output
    output_padding : int or (h, w), in [0, stride): extra rows/columns at the bottom/right that
        pick one of the ``stride`` output sizes a conv2d would map back to ``H`` [CONV-9]

    Returns
    -------
    y : (B, C_out, Ho, Wo) array, sizes from :func:`conv_transpose_output_size`
    cache : tuple, for :func:`conv_transpose2d_backward`

    Derivation: docs/derivations/conv.md#conv-8
    """
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    _check_arrays(x, W, b, 0, "conv_transpose2d")
    out_size = conv_transpose_output_size(x.shape[2:], W.shape[2:], stride, padding,
                                          output_padding)  # (Ho, Wo) [CONV-9]
    y = correlate_adjoint(x, W, out_size, stride, padding)  # (B, C_out, Ho, Wo) [CONV-8]
    y += b.reshape(-1, 1, 1)  # [CONV-8]
    return y, (x, W, stride, padding)


def conv_transpose2d_backward(dy, cache):
    """Gradients of :func:`conv_transpose2d_forward`: conv2d's forward and weight gradient with the
    roles of input and output swapped [CONV-10].

    ``dx = correlate(dy, W)``, a conv2d forward of ``dy`` with the same ``W`` and no bias
    [CONV-10]; ``dW = x_rowsᵀ im2col(dy)``, the output gradient correlated with the input
    [CONV-11]; ``db = Σ_{n,i,j} dy`` [CONV-5].

    Parameters
    ----------
    dy : (B, C_out, Ho, Wo) array
    cache : from :func:`conv_transpose2d_forward`

    Returns
    -------
    dx : (B, C_in, H, W) array
    dW : (C_in, C_out, kH, kW) array
    db : (C_out,) array

    Derivation: docs/derivations/conv.md#conv-10
    """
    x, W, stride, padding = cache
    dx, cols = correlate(dy, W, stride, padding)  # (B, C_in, H, W) [CONV-10]
    dW = (nchw_to_rows(x).T @ cols).reshape(W.shape)  # (C_in, C_out, kH, kW) [CONV-11]
    db = dy.sum(axis=(0, 2, 3))  # (C_out,) [CONV-5]
    return dx, dW, db


# --------------------------------------------------------------------------------------------------
# Between images and feature vectors
# --------------------------------------------------------------------------------------------------
def flatten_forward(x):
    """``(B, C, H, W) -> (B, C·H·W)`` in C order (channel, row, column) [CONV-12].

    Returns ``(y, cache)``; the numbers are not changed, only their indexing.

    Derivation: docs/derivations/conv.md#conv-12
    """
    if np.ndim(x) < 2:
        raise ValueError(f"flatten: x must have a batch axis and at least one more, got {np.shape(x)}")
    y = np.array(x.reshape(x.shape[0], -1), copy=True)  # (B, C·H·W) [CONV-12]
    return y, x.shape


def flatten_backward(dy, x_shape):
    """``dx = dy`` reshaped back to ``(B, C, H, W)`` [CONV-12]: the inverse reindexing."""
    return np.array(dy.reshape(x_shape), copy=True)  # (B, C, H, W) [CONV-12]


def reshape_forward(x, shape):
    """``(B, C·H·W) -> (B, C, H, W)`` with ``shape = (C, H, W)``, the inverse of
    :func:`flatten_forward` [CONV-12] (a decoder's dense output becoming an image).

    Derivation: docs/derivations/conv.md#conv-12
    """
    shape = tuple(int(s) for s in shape)
    if np.ndim(x) != 2 or int(np.prod(shape)) != x.shape[1]:
        raise ValueError(f"reshape: x of shape {np.shape(x)} cannot become (B,) + {shape}")
    y = np.array(x.reshape((x.shape[0],) + shape), copy=True)  # (B, C, H, W) [CONV-12]
    return y, x.shape


def reshape_backward(dy, x_shape):
    """``dx = dy`` flattened back to ``(B, C·H·W)`` [CONV-12]."""
    return np.array(dy.reshape(x_shape), copy=True)  # (B, C·H·W) [CONV-12]
