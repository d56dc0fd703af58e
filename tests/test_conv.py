"""Convolution and transposed convolution (npae.pairs.conv, the fused versions in npae.fast.kernels, the conv
initializers in npae.init): central-difference gradient checks over drawn shapes, strides,
paddings and output paddings; output sizes and their errors; the adjoint identity; direct loops
written here; the hand-worked 1-D example of docs/derivations/conv.md; fused == reference; torch
when it happens to be installed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from npae.pairs import conv
from npae.fast import conv_kernels
from npae.gradcheck import check_pair
from npae.init import CONV_INITIALIZERS, conv_fans, he_normal_conv, make_rng

try:  # optional: compared against when present, never required
    import torch
except ImportError:
    torch = None

seeds = st.integers(0, 2**31 - 1)


def _maybe_int(pair):
    """Pass an (h, w) argument as a plain int when both are equal, to exercise both spellings."""
    return pair[0] if pair[0] == pair[1] else pair


@st.composite
def conv_configs(draw, max_extra=3):
    """A valid conv2d: shapes of x (B, C_in, H, W) and W (C_out, C_in, kH, kW), stride, padding.
    Kernels 1..4 and strides 1..4 on each axis independently (so stride > kernel, 1x1 kernels and
    non-square kernels and images all occur); H at least the kernel minus twice the padding."""
    B, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = tuple(draw(st.integers(max(1, k_ - 2 * p_), max(1, k_ - 2 * p_) + max_extra))
                 for k_, p_ in zip(k, p))
    return (B, C_in) + size, (C_out, C_in) + k, _maybe_int(s), _maybe_int(p)


@st.composite
def conv_transpose_configs(draw):
    """A valid conv_transpose2d: shapes of x (B, C_in, H, W) and W (C_in, C_out, kH, kW), stride,
    padding, output_padding (0 <= output_padding < stride), padding small enough to leave an
    output."""
    B, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    op = tuple(draw(st.integers(0, s_ - 1)) for s_ in s)
    p = tuple(min(draw(st.integers(0, 2)), ((n - 1) * s_ + k_ + op_ - 1) // 2)
              for n, k_, s_, op_ in zip(size, k, s, op))
    return (B, C_in) + size, (C_in, C_out) + k, _maybe_int(s), _maybe_int(p), _maybe_int(op)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


# --------------------------------------------------------------------------------------------------
# Direct loops, written from the definitions (no im2col, no padding copy)
# --------------------------------------------------------------------------------------------------
def direct_conv2d(x, W, b, stride, padding):
    """y[n, f, i, j] = b[f] + Σ_{c,u,v} x[n, c, i·sH + u − pH, j·sW + v − pW] W[f, c, u, v], reading
    0 outside the image."""
    (sH, sW), (pH, pW) = _pair(stride), _pair(padding)
    B, C, H, Wd = x.shape
    F, _, kH, kW = W.shape
    Ho, Wo = (H + 2 * pH - kH) // sH + 1, (Wd + 2 * pW - kW) // sW + 1
    y = np.zeros((B, F, Ho, Wo)) + b[:, None, None]
    for i in range(Ho):
        for j in range(Wo):
            for u in range(kH):
                for v in range(kW):
                    h, w = i * sH + u - pH, j * sW + v - pW
                    if 0 <= h < H and 0 <= w < Wd:
                        y[:, :, i, j] += x[:, :, h, w] @ W[:, :, u, v].T
    return y


def direct_conv_transpose2d(x, W, b, stride, padding, output_padding):
    """Every input pixel stamps x[n, c, h, w] · W[c] onto the output at (h·sH − pH, w·sW − pW);
    stamps that fall outside are dropped."""
    (sH, sW), (pH, pW), (oH, oW) = _pair(stride), _pair(padding), _pair(output_padding)
    B, C, H, Wd = x.shape
    _, F, kH, kW = W.shape
    Ho, Wo = (H - 1) * sH - 2 * pH + kH + oH, (Wd - 1) * sW - 2 * pW + kW + oW
    y = np.zeros((B, F, Ho, Wo)) + b[:, None, None]
    for h in range(H):
        for w in range(Wd):
            for u in range(kH):
                for v in range(kW):
                    i, j = h * sH + u - pH, w * sW + v - pW
                    if 0 <= i < Ho and 0 <= j < Wo:
                        y[:, :, i, j] += x[:, :, h, w] @ W[:, :, u, v]
    return y


# --------------------------------------------------------------------------------------------------
# Gradient checks (float64, central differences, rel err <= 1e-6)
# --------------------------------------------------------------------------------------------------
@given(cfg=conv_configs(), seed=seeds)
def test_conv2d_pair_gradcheck(cfg, seed):
    """Checks [CONV-4], [CONV-5], [CONV-6] (through im2col [CONV-3] and col2im [CONV-7]) against central
    differences of [CONV-1].
    """
    x_shape, W_shape, stride, padding = cfg
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[0])
    check_pair(conv.conv2d_forward, conv.conv2d_backward, [x, W, b], names=["x", "W", "b"],
               kwargs={"stride": stride, "padding": padding}, rng=seed).assert_ok()


@given(cfg=conv_transpose_configs(), seed=seeds)
def test_conv_transpose2d_pair_gradcheck(cfg, seed):
    """Checks [CONV-10], [CONV-11] against central differences of [CONV-8]."""
    x_shape, W_shape, stride, padding, output_padding = cfg
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[1])
    check_pair(conv.conv_transpose2d_forward, conv.conv_transpose2d_backward, [x, W, b],
               names=["x", "W", "b"], rng=seed,
               kwargs={"stride": stride, "padding": padding, "output_padding": output_padding}
               ).assert_ok()


@given(B=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 4), W=st.integers(1, 4), seed=seeds)
def test_flatten_and_reshape_pairs_gradcheck_and_invert_each_other(B, C, H, W, seed):
    """Checks [CONV-12]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, C, H, W))
    check_pair(conv.flatten_forward, conv.flatten_backward, [x], names=["x"], rng=seed).assert_ok()
    flat = rng.standard_normal((B, C * H * W))
    check_pair(conv.reshape_forward, conv.reshape_backward, [flat], names=["x"],
               kwargs={"shape": (C, H, W)}, rng=seed).assert_ok()
    y, cache = conv.flatten_forward(x)
    assert y.shape == (B, C * H * W) and not np.shares_memory(y, x)
    back, _ = conv.reshape_forward(y, (C, H, W))
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(y[:, 0], x[:, 0, 0, 0])  # C order: channel, row, column
    with pytest.raises(ValueError, match="cannot become"):
        conv.reshape_forward(flat, (C + 1, H, W))


# --------------------------------------------------------------------------------------------------
# Shapes and argument errors
# --------------------------------------------------------------------------------------------------
@given(cfg=conv_configs(), seed=seeds)
def test_conv2d_shapes_follow_the_formula(cfg, seed):
    x_shape, W_shape, stride, padding = cfg
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[0])
    y, cache = conv.conv2d_forward(x, W, b, stride, padding)
    (sH, sW), (pH, pW) = _pair(stride), _pair(padding)
    Ho = (x_shape[2] + 2 * pH - W_shape[2]) // sH + 1
    Wo = (x_shape[3] + 2 * pW - W_shape[3]) // sW + 1
    assert y.shape == (x_shape[0], W_shape[0], Ho, Wo) and y.flags.c_contiguous
    assert conv.conv_output_size(x_shape[2:], W_shape[2:], stride, padding) == (Ho, Wo)
    dx, dW, db = conv.conv2d_backward(np.ones_like(y), cache)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    assert dx.flags.c_contiguous


@given(cfg=conv_transpose_configs())
def test_conv_transpose_size_inverts_conv_size(cfg):
    """Every output size of the transposed convolution is mapped back to its input size by the
    convolution it is the adjoint of, and output_padding = 0..s−1 gives s consecutive sizes."""
    x_shape, W_shape, stride, padding, output_padding = cfg
    out = conv.conv_transpose_output_size(x_shape[2:], W_shape[2:], stride, padding, output_padding)
    assert conv.conv_output_size(out, W_shape[2:], stride, padding) == x_shape[2:]
    n, k, s, p = x_shape[2], W_shape[2], _pair(stride)[0], _pair(padding)[0]
    sizes = []
    for r in range(s):
        try:
            sizes.append(conv.conv_transpose_output_size(n, k, s, p, r))
        except ValueError:  # padding crops everything for the smallest r
            continue
    assert sizes == list(range(sizes[0], sizes[0] + len(sizes)))
    assert all(conv.conv_output_size(m, k, s, p) == n for m in sizes)


def test_output_size_values_and_spellings():
    assert conv.conv_output_size(28, 3, 1, 1) == 28
    assert conv.conv_output_size(28, 4, 2, 1) == 14
    assert conv.conv_output_size(7, 3, 2, 0) == 3  # floor((7 − 3)/2) + 1
    assert conv.conv_output_size(8, 3, 2, 0) == 3  # the last row is never read
    assert conv.conv_output_size(5, 1, 4, 0) == 2  # stride larger than the kernel
    assert conv.conv_output_size((5, 8), (3, 2), (2, 3), (1, 0)) == (3, 3)
    assert conv.conv_output_size((5, 8), 3, 2, 0) == (2, 3)
    assert conv.conv_output_size(np.int64(6), 3) == 4
    assert conv.conv_transpose_output_size(14, 4, 2, 1) == 28
    assert conv.conv_transpose_output_size(3, 3, 2, 0, 0) == 7
    assert conv.conv_transpose_output_size(3, 3, 2, 0, 1) == 8
    assert conv.conv_transpose_output_size((3, 2), (3, 1), (2, 3), 0, (1, 2)) == (8, 6)
    # the decoder sizes of docs/derivations/conv.md [CONV-2], [CONV-9]
    assert conv.conv_output_size(27, 3, 2, 1) == conv.conv_output_size(28, 3, 2, 1) == 14
    assert conv.conv_transpose_output_size(14, 3, 2, 1, 0) == 27
    assert conv.conv_transpose_output_size(14, 3, 2, 1, 1) == 28
    assert conv.conv_output_size(28, 4, 2, 1) == 14 and conv.conv_output_size(27, 4, 2, 1) == 13


def test_pixels_no_window_reads_get_exactly_zero_gradient(rng):
    """[CONV-2], [CONV-7]: width 8, k = 3, s = 2 never reads column 7; k = 1, s = 3 reads only
    columns 0, 3, 6."""
    x = rng.standard_normal((2, 3, 4, 8))
    for k, s, unread in ((3, 2, [7]), (1, 3, [1, 2, 4, 5, 7])):
        W = rng.standard_normal((2, 3, 1, k))
        y, cache = conv.conv2d_forward(x, W, np.zeros(2), (1, s))
        dx, _, _ = conv.conv2d_backward(rng.standard_normal(y.shape), cache)
        assert np.all(dx[..., unread] == 0.0)
        read = [c for c in range(8) if c not in unread]
        assert np.all(dx[..., read] != 0.0)
        dxf, _, _ = conv_kernels.conv2d_backward_fused(rng.standard_normal(y.shape), cache)
        assert np.all(dxf[..., unread] == 0.0)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_conv_backward_wrong_by_a_thousandth_fails_the_check(rng, which):
    """Test the tester: scaling one of conv2d's gradients by 1.001 must fail check_pair."""
    x, W, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)

    def bad_backward(dy, cache):
        grads = list(conv.conv2d_backward(dy, cache))
        grads[which] = grads[which] * 1.001
        return tuple(grads)

    report = check_pair(conv.conv2d_forward, bad_backward, [x, W, b], kwargs={"stride": 2, "padding": 1},
                        rng=0)
    assert not report.ok


@pytest.mark.parametrize("call, message", [
    (lambda: conv.conv_output_size(2, 5, 1, 1), "kernel size 5 is larger than the padded input"),
    (lambda: conv.conv_output_size(4, 2, 0, 0), "stride must be >= 1"),
    (lambda: conv.conv_output_size(4, 2, 1, -1), "padding must be >= 0"),
    (lambda: conv.conv_output_size(4, 2, 1.5, 0), "stride must be an integer"),
    (lambda: conv.conv_output_size(4, 2, True, 0), "stride must be an integer"),
    (lambda: conv.conv_output_size(4, 0), "kernel size must be >= 1"),
    (lambda: conv.conv_output_size(4, 2, (1, 2, 3)), r"stride must be an int or an \(h, w\) pair"),
    (lambda: conv.conv_output_size((4, 4), (2, 2), (1, 0)), r"stride\[1\] must be >= 1"),
    (lambda: conv.conv_transpose_output_size(3, 3, 2, 0, 2),
     "output_padding 2 must be smaller than the stride 2"),
    (lambda: conv.conv_transpose_output_size(3, 3, 1, 0, 1), "output_padding 1 must be smaller"),
    (lambda: conv.conv_transpose_output_size(3, 3, 2, 0, -1), "output_padding must be >= 0"),
    (lambda: conv.conv_transpose_output_size(1, 1, 1, 1), "padding 1 crops the whole output"),
    (lambda: conv.conv_transpose_output_size(2, 2, 1, "1"), "padding must be an integer"),
])
def test_impossible_configurations_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_array_shape_errors_name_the_problem():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match="x has 2 channels but W.shape\\[1\\] is 3"):
        conv.conv2d_forward(x, np.zeros((4, 3, 3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="b must have shape \\(4,\\)"):
        conv.conv2d_forward(x, np.zeros((4, 2, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="x must be \\(B, C, H, W\\)"):
        conv.conv2d_forward(np.zeros((2, 5, 5)), np.zeros((4, 2, 3, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="x has 2 channels but W.shape\\[0\\] is 4"):
        conv.conv_transpose2d_forward(x, np.zeros((4, 2, 3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv.conv2d_forward(x, np.zeros((1, 2, 6, 3)), np.zeros(1))
    with pytest.raises(ValueError, match="output_padding"):
        conv_kernels.conv_transpose2d_forward_fused(x, np.zeros((2, 1, 3, 3)), np.zeros(1), 2, 0, 3)


# --------------------------------------------------------------------------------------------------
# The adjoint identity and the direct loops
# --------------------------------------------------------------------------------------------------
@given(cfg=conv_configs(max_extra=5), seed=seeds)
def test_transposed_convolution_is_the_adjoint(cfg, seed):
    """⟨conv2d(x, W), v⟩ = ⟨x, conv_transpose2d(v, W)⟩ with no bias, with the output_padding that
    makes conv_transpose2d return x's size [CONV-9]: (H + 2p − k) mod s."""
    x_shape, W_shape, stride, padding = cfg
    rng = np.random.default_rng(seed)
    x, W = rng.standard_normal(x_shape), rng.standard_normal(W_shape)
    y, _ = conv.conv2d_forward(x, W, np.zeros(W_shape[0]), stride, padding)
    v = rng.standard_normal(y.shape)
    (sH, sW), (pH, pW) = _pair(stride), _pair(padding)
    op = ((x_shape[2] + 2 * pH - W_shape[2]) % sH, (x_shape[3] + 2 * pW - W_shape[3]) % sW)
    xt, _ = conv.conv_transpose2d_forward(v, W, np.zeros(W_shape[1]), stride, padding, op)
    assert xt.shape == x.shape
    lhs, rhs = np.sum(y * v), np.sum(x * xt)
    scale = np.sqrt(np.sum(y * y) * np.sum(v * v))  # |⟨y, v⟩| <= scale; cancellation-proof
    assert abs(lhs - rhs) <= 1e-12 * scale


@given(cfg=conv_configs(), seed=seeds)
def test_conv2d_forward_equals_direct_loop(cfg, seed):
    """Checks [CONV-1] against a direct loop."""
    x_shape, W_shape, stride, padding = cfg
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[0])
    y, _ = conv.conv2d_forward(x, W, b, stride, padding)
    np.testing.assert_allclose(y, direct_conv2d(x, W, b, stride, padding), rtol=1e-12, atol=1e-12)


@given(cfg=conv_transpose_configs(), seed=seeds)
def test_conv_transpose2d_forward_equals_direct_scatter(cfg, seed):
    x_shape, W_shape, stride, padding, output_padding = cfg
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[1])
    y, _ = conv.conv_transpose2d_forward(x, W, b, stride, padding, output_padding)
    np.testing.assert_allclose(y, direct_conv_transpose2d(x, W, b, stride, padding, output_padding),
                               rtol=1e-12, atol=1e-12)


def test_hand_worked_1d_example():
    """The example of docs/derivations/conv.md, "A worked example": x = [1, 2, 3, 4], w = [3, −1],
    b = 1, stride 2, no padding; images of height 1.
    Checks [CONV-2], [CONV-3], [CONV-4], [CONV-5], [CONV-6], [CONV-8], [CONV-9], [CONV-10], [CONV-11] on
    numbers worked by hand.
    """
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    w = np.array([3.0, -1.0]).reshape(1, 1, 1, 2)
    b = np.array([1.0])
    assert conv.conv_output_size(4, 2, 2, 0) == 2  # floor((4 − 2)/2) + 1
    assert conv.conv_output_size(5, 2, 2, 0) == 2  # length 5 gives the same output length
    cols = conv.im2col(x, (1, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(cols, [[1, 2], [3, 4]])  # one patch per row [CONV-3]
    y, cache = conv.conv2d_forward(x, w, b, stride=2)
    np.testing.assert_array_equal(y.ravel(), [2, 6])  # 1·3 + 2·(−1) + 1, 3·3 + 4·(−1) + 1
    dy = np.array([1.0, -2.0]).reshape(1, 1, 1, 2)
    dx, dW, db = conv.conv2d_backward(dy, cache)
    np.testing.assert_array_equal(dW.ravel(), [-5, -6])  # [1·1 − 2·3, 1·2 − 2·4] [CONV-4]
    np.testing.assert_array_equal(db, [-1])  # 1 − 2 [CONV-5]
    np.testing.assert_array_equal(dx.ravel(), [3, -1, -6, 2])  # dy[0]·w, then dy[1]·w [CONV-6]
    # the transposed convolution of v = dy with the same w is conv's input gradient [CONV-8]
    zero = np.zeros(1)
    yt, cache_t = conv.conv_transpose2d_forward(dy, w, zero, stride=2)
    np.testing.assert_array_equal(yt.ravel(), [3, -1, -6, 2])
    yt5, _ = conv.conv_transpose2d_forward(dy, w, zero, stride=(1, 2), output_padding=(0, 1))
    np.testing.assert_array_equal(yt5.ravel(), [3, -1, -6, 2, 0])  # [CONV-9]: the length-5 input
    # the adjoint identity: <conv(x), v> = <x, conv_T(v)> = −9 [CONV-8]
    y0, _ = conv.conv2d_forward(x, w, zero, stride=2)
    np.testing.assert_array_equal(y0.ravel(), [1, 5])
    assert np.sum(y0 * dy) == np.sum(x * yt) == -9.0
    # backward of the transposed convolution with g = [1, 0, 2, −1] [CONV-10], [CONV-11]
    g = np.array([1.0, 0.0, 2.0, -1.0]).reshape(1, 1, 1, 4)
    dv, dWt, dbt = conv.conv_transpose2d_backward(g, cache_t)
    np.testing.assert_array_equal(dv.ravel(), [3, 7])  # conv(g, w): 1·3 + 0·(−1), 2·3 + (−1)(−1)
    np.testing.assert_array_equal(dWt.ravel(), [-3, 2])  # [1·1 − 2·2, 1·0 − 2·(−1)]
    np.testing.assert_array_equal(dbt, [2])


# --------------------------------------------------------------------------------------------------
# Fused (npae.fast.kernels) == reference
# --------------------------------------------------------------------------------------------------
def _close(a, ref, dtype):
    """rtol 1e-12 in float64 (2e-6 in float32), with an absolute floor at the same fraction of the
    array's largest entry: the fused col2im adds the same terms in another order where the bias
    enters, so an entry that cancels to ~0 differs by rounding of its terms, not of itself."""
    assert a.dtype == dtype and a.shape == ref.shape
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    np.testing.assert_allclose(a, ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(cfg=conv_configs(), seed=seeds)
def test_conv2d_fused_equals_reference(dtype, cfg, seed):
    x_shape, W_shape, stride, padding = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    W = rng.standard_normal(W_shape).astype(dtype)
    b = rng.standard_normal(W_shape[0]).astype(dtype)
    y_ref, cache_ref = conv.conv2d_forward(x, W, b, stride, padding)
    y, cache = conv_kernels.conv2d_forward_fused(x, W, b, stride, padding)
    _close(y, y_ref, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads_ref = conv.conv2d_backward(dy, cache_ref)
    for c in (cache, cache_ref):  # the caches are interchangeable
        for g, g_ref in zip(conv_kernels.conv2d_backward_fused(dy, c), grads_ref):
            _close(g, g_ref, dtype)
    for g, g_ref in zip(conv.conv2d_backward(dy, cache), grads_ref):
        _close(g, g_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(cfg=conv_transpose_configs(), seed=seeds)
def test_conv_transpose2d_fused_equals_reference(dtype, cfg, seed):
    x_shape, W_shape, stride, padding, output_padding = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    W = rng.standard_normal(W_shape).astype(dtype)
    b = rng.standard_normal(W_shape[1]).astype(dtype)
    y_ref, cache_ref = conv.conv_transpose2d_forward(x, W, b, stride, padding, output_padding)
    y, cache = conv_kernels.conv_transpose2d_forward_fused(x, W, b, stride, padding, output_padding)
    _close(y, y_ref, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads_ref = conv.conv_transpose2d_backward(dy, cache_ref)
    for c in (cache, cache_ref):
        for g, g_ref in zip(conv_kernels.conv_transpose2d_backward_fused(dy, c), grads_ref):
            _close(g, g_ref, dtype)


def test_fused_accepts_non_contiguous_inputs_and_keeps_float32(rng):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)[:, :, ::2, ::-1]  # (2, 3, 5, 8), strided
    W = rng.standard_normal((3, 4, 3, 2)).astype(np.float32).transpose(1, 0, 2, 3)  # (4, 3, 3, 2)
    b = rng.standard_normal(4)  # float64 bias: the result must still be float32
    y, cache = conv_kernels.conv2d_forward_fused(x, W, b, 2, 1)
    y_ref, _ = conv.conv2d_forward(x, W, b, 2, 1)
    _close(y, y_ref, np.float32)
    dy = np.asfortranarray(rng.standard_normal(y.shape).astype(np.float32))
    for g in conv_kernels.conv2d_backward_fused(dy, cache):
        assert g.dtype == np.float32
    yt, cache_t = conv_kernels.conv_transpose2d_forward_fused(y, W, np.zeros(3, np.float32), 2, 1, 1)
    assert yt.dtype == np.float32 and yt.shape == (2, 3, 6, 9)  # back to (5, 8) plus output_padding
    for g in conv_kernels.conv_transpose2d_backward_fused(np.ones_like(yt), cache_t):
        assert g.dtype == np.float32


# --------------------------------------------------------------------------------------------------
# Initializers for conv weights [CONV-13]
# --------------------------------------------------------------------------------------------------
def test_conv_fans():
    """Checks [CONV-13] on fans worked by hand, plain and transposed, with strides."""
    assert conv_fans((8, 3, 5, 4)) == (60.0, 160.0)
    assert conv_fans((8, 3, 5, 4), stride=2) == (60.0, 40.0)
    assert conv_fans((8, 3, 4, 4), transposed=True, stride=2) == (32.0, 48.0)
    assert conv_fans((8, 3, 4, 4), transposed=True, stride=(2, 1)) == (64.0, 48.0)
    with pytest.raises(ValueError, match="conv weight"):
        conv_fans((3, 4))


@pytest.mark.parametrize("name", sorted(CONV_INITIALIZERS))
@pytest.mark.parametrize("transposed", [False, True])
def test_conv_initializers_statistics_and_seed(name, transposed):
    """Checks [CONV-13] with [INIT-1], [INIT-2], [INIT-3], [INIT-4]: the variance of 30k draws is the one
    the kernel's fans give.
    """
    shape, stride = (40, 30, 5, 5), 2
    W = CONV_INITIALIZERS[name](shape, make_rng(0), transposed=transposed, stride=stride)
    W2 = CONV_INITIALIZERS[name](shape, make_rng(0), transposed=transposed, stride=stride)
    np.testing.assert_array_equal(W, W2)
    assert W.shape == shape
    fan_in, fan_out = conv_fans(shape, transposed, stride)
    target_var = 2.0 / fan_in if name.startswith("he") else 2.0 / (fan_in + fan_out)
    assert W.var() == pytest.approx(target_var, rel=0.02)  # 30k draws
    assert CONV_INITIALIZERS[name](shape, make_rng(0), dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("transposed", [False, True])
def test_he_conv_keeps_the_second_moment_through_a_strided_layer(transposed):
    """He's scale 2/fan_in makes E[y²] = 2 E[x²] away from the borders; for a transposed
    convolution of stride 2 and a 4x4 kernel each output sums C_in·4 terms, not C_in·16."""
    rng = make_rng(1)
    C_in, C_out, k, s = 32, 32, 4, 2
    shape = (C_in, C_out, k, k) if transposed else (C_out, C_in, k, k)
    x = rng.standard_normal((4, C_in, 10, 10))
    moments = []
    for _ in range(6):
        W = he_normal_conv(shape, rng, transposed=transposed, stride=s)
        if transposed:  # (4, C_out, 22, 22); the outer 2 rows and columns get fewer stamps
            y, _ = conv.conv_transpose2d_forward(x, W, np.zeros(C_out), s)
            y = y[:, :, 2:-2, 2:-2]
        else:  # (4, C_out, 4, 4); no padding, so every output sums C_in·16 terms
            y, _ = conv.conv2d_forward(x, W, np.zeros(C_out), s)
        moments.append(np.mean(y ** 2))
    assert np.mean(moments) == pytest.approx(2.0, rel=0.1)


# --------------------------------------------------------------------------------------------------
# PyTorch, only when it happens to be installed
# --------------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch is None, reason="torch is not installed (it is optional)")
@given(cfg=conv_configs(), tcfg=conv_transpose_configs(), seed=seeds)
def test_matches_torch_when_available(cfg, tcfg, seed):
    rng = np.random.default_rng(seed)
    x_shape, W_shape, stride, padding = cfg
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[0])
    y, _ = conv.conv2d_forward(x, W, b, stride, padding)
    yt = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b),
                                    stride=_pair(stride), padding=_pair(padding)).numpy()
    np.testing.assert_allclose(y, yt, rtol=1e-10, atol=1e-10)
    x_shape, W_shape, stride, padding, output_padding = tcfg
    x, W, b = rng.standard_normal(x_shape), rng.standard_normal(W_shape), rng.standard_normal(W_shape[1])
    y, _ = conv.conv_transpose2d_forward(x, W, b, stride, padding, output_padding)
    yt = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(W), torch.from_numpy(b), stride=_pair(stride),
        padding=_pair(padding), output_padding=_pair(output_padding)).numpy()
    np.testing.assert_allclose(y, yt, rtol=1e-10, atol=1e-10)
