"""Weight initializers, each drawing from an explicit ``np.random.Generator``.

Glorot/Xavier keeps the variance of activations and of gradients roughly equal across a layer for
symmetric activations; He doubles the variance to make up for ReLU zeroing half of its inputs.
Derivation: docs/derivations/init.md
"""
import numpy as np


def make_rng(seed, name="seed"):
    """Return a ``np.random.Generator`` from an int seed, ``None`` or an existing Generator; errors
    name the argument ``name``."""
    if isinstance(seed, np.random.Generator):
        return seed
    from npae.validation import InputError, InputTypeError

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise InputTypeError(f"{name} must be an int, None or a numpy Generator, got {seed!r}")
    if seed is not None and seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(seed)


def glorot_uniform(n_in, n_out, rng, dtype=np.float64):
    """U(−L, L) with L = sqrt(6 / (n_in + n_out)) [INIT-1]."""
    limit = np.sqrt(6.0 / (n_in + n_out))  # [INIT-1]
    return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)


def glorot_normal(n_in, n_out, rng, dtype=np.float64):
    """N(0, s²) with s = sqrt(2 / (n_in + n_out)) [INIT-2]."""
    std = np.sqrt(2.0 / (n_in + n_out))  # [INIT-2]
    return (std * rng.standard_normal((n_in, n_out))).astype(dtype)


def he_uniform(n_in, n_out, rng, dtype=np.float64):
    """U(−L, L) with L = sqrt(6 / n_in) [INIT-3]."""
    limit = np.sqrt(6.0 / n_in)  # [INIT-3]
    return rng.uniform(-limit, limit, size=(n_in, n_out)).astype(dtype)


def he_normal(n_in, n_out, rng, dtype=np.float64):
    """N(0, s²) with s = sqrt(2 / n_in) [INIT-4]."""
    std = np.sqrt(2.0 / n_in)  # [INIT-4]
    return (std * rng.standard_normal((n_in, n_out))).astype(dtype)


INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
}


# --------------------------------------------------------------------------------------------------
# Convolution kernels (npae.pairs.conv). Fans count the terms of one sum: docs/derivations/conv.md#conv-13
# --------------------------------------------------------------------------------------------------
def conv_fans(weight_shape, transposed=False, stride=1):
    """``(fan_in, fan_out)`` of a conv2d or conv_transpose2d weight [CONV-13].

    A fan is the number of terms in one sum of a pass, away from the borders: an output entry of
    the forward pass for ``fan_in``, an input-gradient entry of the backward pass for ``fan_out``.
    With ``r = kH·kW`` taps and a stride that spreads them ``sH·sW`` apart,

    * conv2d, ``W`` (C_out, C_in, kH, kW): ``fan_in = C_in·r``, ``fan_out = C_out·r / (sH·sW)``;
    * conv_transpose2d, ``W`` (C_in, C_out, kH, kW): ``fan_in = C_in·r / (sH·sW)``,
      ``fan_out = C_out·r``: the two of the conv2d it is the adjoint of, swapped.

    With stride 1 the conv2d fans are PyTorch's (which ignores the stride). For a transposed
    convolution PyTorch reads the weight as the adjoint conv2d's and takes ``C_out·r`` as fan_in,
    which counts the layer's *backward* sum; here fan_in counts what one output of the layer
    itself sums, the number that keeps a decoder's activations at unit scale.

    Parameters
    ----------
    weight_shape : (4,) tuple in PyTorch's layout
    transposed : bool, whether ``weight_shape`` belongs to a transposed convolution
    stride : int or (h, w), >= 1

    Returns
    -------
    fan_in, fan_out : floats (a stride that does not divide the kernel gives an average count)

    Derivation: docs/derivations/conv.md#conv-13
    """
    if len(weight_shape) != 4:
        raise ValueError(f"a conv weight is (out, in, kH, kW) or (in, out, kH, kW), got {weight_shape}")
    sH, sW = (stride, stride) if not isinstance(stride, (tuple, list)) else stride
    if min(sH, sW) < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    taps = weight_shape[2] * weight_shape[3]  # kH·kW
    if transposed:
        C_in, C_out = weight_shape[0], weight_shape[1]
        return C_in * taps / (sH * sW), float(C_out * taps)  # [CONV-13]
    C_out, C_in = weight_shape[0], weight_shape[1]
    return float(C_in * taps), C_out * taps / (sH * sW)  # [CONV-13]


def glorot_uniform_conv(weight_shape, rng, dtype=np.float64, transposed=False, stride=1):
    """:func:`glorot_uniform` for a conv weight: U(−L, L), L = sqrt(6 / (fan_in + fan_out)) [INIT-1],
    fans from :func:`conv_fans` [CONV-13]."""
    fan_in, fan_out = conv_fans(weight_shape, transposed, stride)
    limit = np.sqrt(6.0 / (fan_in + fan_out))  # [INIT-1]
    return rng.uniform(-limit, limit, size=tuple(weight_shape)).astype(dtype)


def glorot_normal_conv(weight_shape, rng, dtype=np.float64, transposed=False, stride=1):
    """:func:`glorot_normal` for a conv weight: std = sqrt(2 / (fan_in + fan_out)) [INIT-2]."""
    fan_in, fan_out = conv_fans(weight_shape, transposed, stride)
    std = np.sqrt(2.0 / (fan_in + fan_out))  # [INIT-2]
    return (std * rng.standard_normal(tuple(weight_shape))).astype(dtype)


def he_uniform_conv(weight_shape, rng, dtype=np.float64, transposed=False, stride=1):
    """:func:`he_uniform` for a conv weight: U(−L, L), L = sqrt(6 / fan_in) [INIT-3]."""
    fan_in, _ = conv_fans(weight_shape, transposed, stride)
    limit = np.sqrt(6.0 / fan_in)  # [INIT-3]
    return rng.uniform(-limit, limit, size=tuple(weight_shape)).astype(dtype)


def he_normal_conv(weight_shape, rng, dtype=np.float64, transposed=False, stride=1):
    """:func:`he_normal` for a conv weight: std = sqrt(2 / fan_in) [INIT-4]."""
    fan_in, _ = conv_fans(weight_shape, transposed, stride)
    std = np.sqrt(2.0 / fan_in)  # [INIT-4]
    return (std * rng.standard_normal(tuple(weight_shape))).astype(dtype)


CONV_INITIALIZERS = {
    "glorot_uniform": glorot_uniform_conv,
    "glorot_normal": glorot_normal_conv,
    "he_uniform": he_uniform_conv,
    "he_normal": he_normal_conv,
}
