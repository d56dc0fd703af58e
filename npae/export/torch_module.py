"""npae models as ``torch.nn`` modules, and PyTorch weights back into npae models.

Imported only by :func:`npae.export.to_torch` and :func:`npae.export.from_torch` (this module
imports torch at its top; ``import npae`` and ``import npae.export`` never do).

:class:`NpaeModule` holds the encoder and decoder as ``nn.Sequential`` chains with npae's current
weights (a Dense ``W`` (n_in, n_out) is ``Linear.weight.T``; convolution weights already share
PyTorch's layout) and computes, line for line, what the npae model computes:

* ``encode(x, y=None)``: the code (autoencoder) or the posterior mean ``mu`` (VAE);
  ``encode_stats`` the clamped ``(mu, logvar)`` [REPARAM-5];
* ``decode(z, y=None)``: probabilities σ(logits), the Gaussian mean, or the autoencoder's output;
* ``loss(x, y=None, eps=None)`` (also ``forward``): the training loss, nats per example, as npae's
  ``loss_and_grads(x, y, eps)[0]``; for a VAE ``eps`` (B, Z) or (L, B, Z) is the sampler's noise,
  drawn with ``torch.randn`` when omitted (training on in PyTorch).

Activations are written in npae's forms (softplus as ``max(a, 0) + log1p(exp(−|a|))``, not
``nn.Softplus``, whose threshold at 20 differs from npae's by 2e-9), so float64 outputs agree to
rounding. A twin, not a derivation: the comments name the tag of the npae line each line mirrors
(without brackets: the tag index, ``python -m npae.tags``, lists the implementations a student reads,
and this is not one of them).
"""
import math

import numpy as np
import torch
from torch import nn

from npae.constants import DECODER_LOGVAR_FLOOR, LOGVAR_MAX, LOGVAR_MIN
from npae.export.kinds import chain_layers, check_exportable
from npae.models.conv_layers import Conv2D, ConvTranspose2D, Flatten, ImagePlanes, Reshape
from npae.models.layers import Dense
from npae.validation import InputError


# --------------------------------------------------------------------------------------------------
# Layers in npae's own forms
# --------------------------------------------------------------------------------------------------
class Act(nn.Module):
    """One of npae's activations by name, with its hyperparameters ([ACT-1] .. [ACT-12])."""

    def __init__(self, name, slope=0.01, alpha=1.0):
        super().__init__()
        self.name, self.slope, self.alpha = name, float(slope), float(alpha)

    def forward(self, a):
        if self.name == "identity":
            return a
        if self.name == "relu":
            return torch.relu(a)
        if self.name == "leaky_relu":
            return torch.where(a > 0, a, self.slope * a)  # npae's ACT-4
        if self.name == "sigmoid":
            return torch.sigmoid(a)
        if self.name == "tanh":
            return torch.tanh(a)
        if self.name == "softplus":
            return softplus(a)
        return torch.where(a > 0, a, self.alpha * torch.expm1(torch.clamp_max(a, 0)))  # elu, npae's ACT-12

    def extra_repr(self):
        return self.name


def softplus(a):
    """``max(a, 0) + log1p(exp(−|a|))`` [ACT-10], finite for every finite a."""
    return torch.clamp_min(a, 0) + torch.log1p(torch.exp(-a.abs()))


class Planes(nn.Module):
    """npae's ImagePlanes: a row ``[x | c]`` as an image with the condition as constant planes [CONV-14]."""

    def __init__(self, image_shape, n_cond):
        super().__init__()
        self.image_shape, self.n_cond = tuple(image_shape), int(n_cond)

    def forward(self, xc):
        C, H, W = self.image_shape
        B = xc.shape[0]
        x = xc[:, :C * H * W].reshape(B, C, H, W)
        if not self.n_cond:
            return x
        c = xc[:, C * H * W:, None, None].expand(B, self.n_cond, H, W)
        return torch.cat([x, c], dim=1)


def _torch_layer(layer, dtype):
    if isinstance(layer, Dense):
        return nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
    if isinstance(layer, Conv2D):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                         dtype=dtype)
    if isinstance(layer, ConvTranspose2D):
        return nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                                  layer.padding, layer.output_padding, dtype=dtype)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, Reshape):
        return nn.Unflatten(1, layer.shape)
    if isinstance(layer, ImagePlanes):
        return Planes(layer.image_shape, layer.n_cond)
    return Act(layer.name, **layer.hyper)


def _chain(seq, dtype, who):
    """``(nn.Sequential, {npae name: (torch key, transposed)})`` of the npae chain ``seq``, with
    its current weights copied in; torch keys are relative to the Sequential."""
    modules, names = [], {}
    for index, (layer, prefix) in enumerate(chain_layers(seq, who)):
        mod = _torch_layer(layer, dtype)
        if prefix is not None:
            dense = isinstance(layer, Dense)
            names[prefix + "W"] = (f"{index}.weight", dense)
            names[prefix + "b"] = (f"{index}.bias", False)
        modules.append(mod)
    return nn.Sequential(*modules), names


# --------------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------------
class NpaeModule(nn.Module):
    """An npae Autoencoder, VAE or ConditionalVAE as a ``torch.nn.Module`` (see the module
    docstring). ``param_map``: npae parameter name -> (state_dict key, transposed)."""

    def __init__(self, model, who="to_torch"):
        super().__init__()
        self.kind = check_exportable(model, who)
        self.dtype = torch.float32 if np.dtype(model.dtype) == np.float32 else torch.float64
        self.n_features, self.latent_dim = int(model.n_features_in_), int(model.latent_dim)
        self.n_classes = int(getattr(model, "n_classes", 0) or 0)
        self.encoder, enc = _chain(model.encoder, self.dtype, who)
        self.decoder, dec = _chain(model.decoder, self.dtype, who)
        self.param_map = {**{k: ("encoder." + t, tr) for k, (t, tr) in enc.items()},
                          **{k: ("decoder." + t, tr) for k, (t, tr) in dec.items()}}
        if self.kind == "autoencoder":
            self.output, self.loss_name = model.output, model.loss
        else:
            self.likelihood, self.variance = model.likelihood, model.variance
            self.beta = float(model.beta)
            if model.decoder_logvar is not None:
                self.decoder_logvar = nn.Parameter(torch.zeros(model.decoder_logvar.params["logvar"].shape,
                                                               dtype=self.dtype))
                self.param_map["decoder.logvar"] = ("decoder_logvar", False)
        missing = set(model.params) - set(self.param_map)
        if missing:  # a parameter the exported module would not hold: never export half a model
            raise InputError(f"npae.export.{who}: no exported place for the parameters {sorted(missing)}")
        load_npae_params(self, model.params)

    # ---------------------------------------------------------------- pieces
    def _join(self, a, y):
        if not self.n_classes:
            if y is not None:
                raise InputError("this model is unconditional: y must be None")
            return a
        if y is None:
            raise InputError("the conditional model needs the labels y")
        y = torch.as_tensor(y, device=a.device).long()
        c = nn.functional.one_hot(y, self.n_classes).to(a.dtype)  # (B, C)
        c = c.expand(a.shape[:-1] + c.shape[-1:])
        return torch.cat([a, c], dim=-1)  # npae's ELBO-8

    def encode_stats(self, x, y=None):
        """``(mu, logvar)`` of a VAE, logvar clamped to [LOGVAR_MIN, LOGVAR_MAX] [REPARAM-5]."""
        out = self.encoder(self._join(x, y))  # (B, 2Z)
        Z = self.latent_dim
        return out[:, :Z], torch.clamp(out[:, Z:2 * Z], LOGVAR_MIN, LOGVAR_MAX)  # npae's REPARAM-5

    def encode(self, x, y=None):
        """The code (autoencoder) or the posterior mean (VAE), (B, Z)."""
        if self.kind == "autoencoder":
            return self.encoder(x)
        return self.encode_stats(x, y)[0]

    def decoder_out(self, z, y=None):
        """The decoder's last affine output for codes (..., Z): logits, means, or [means | raw logvar]."""
        zc = self._join(z, y)
        out = self.decoder(zc.reshape(-1, zc.shape[-1]))
        return out.reshape(z.shape[:-1] + out.shape[-1:])

    def decode(self, z, y=None):
        """What npae's ``decode`` returns: probabilities, Gaussian means or the autoencoder's output."""
        out = self.decoder_out(z, y)
        if self.kind == "autoencoder":
            return torch.sigmoid(out) if self.output == "sigmoid" else out
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return out[..., :self.n_features]

    def _nll(self, out, x):
        """Per-row negative log-likelihood summed over features ([LOSS-5], [GAUSSDEC-1])."""
        if self.likelihood == "bernoulli":
            return torch.sum(torch.clamp_min(out, 0) - out * x + torch.log1p(torch.exp(-out.abs())), dim=-1)
        D = self.n_features
        if self.variance == "fixed":
            mean, logvar = out, torch.zeros((), dtype=out.dtype, device=out.device)
        elif self.variance == "learned":
            mean, logvar = out[..., :D], DECODER_LOGVAR_FLOOR + softplus(out[..., D:] - DECODER_LOGVAR_FLOOR)
        else:
            mean, logvar = out, DECODER_LOGVAR_FLOOR + softplus(self.decoder_logvar - DECODER_LOGVAR_FLOOR)
        diff = x - mean
        return 0.5 * torch.sum(math.log(2 * math.pi) + logvar + diff * diff * torch.exp(-logvar), dim=-1)

    # ---------------------------------------------------------------- the loss
    def loss(self, x, y=None, eps=None):
        """The training loss in nats per example (npae's ``loss_and_grads(x, y, eps)[0]``)."""
        B = x.shape[0]
        if self.kind == "autoencoder":
            out = self.decoder(self.encoder(x))
            if self.loss_name == "bce":
                return torch.sum(torch.clamp_min(out, 0) - out * x + torch.log1p(torch.exp(-out.abs()))) / B
            pred = torch.sigmoid(out) if self.output == "sigmoid" else out
            return torch.sum((pred - x) ** 2) / B  # npae's LOSS-1
        mu, logvar = self.encode_stats(x, y)  # (B, Z)
        if eps is None:
            eps = torch.randn(B, self.latent_dim, dtype=x.dtype, device=x.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, Z) or (L, B, Z) npae's REPARAM-2
        out = self.decoder_out(z, y)  # (B, D) or (L, B, D)
        recon = torch.mean(self._nll(out, x))  # over the L·B rows
        kl = 0.5 * torch.sum(mu * mu + torch.expm1(logvar) - logvar) / B  # npae's KL-1
        return recon + self.beta * kl  # npae's ELBO-1

    def forward(self, x, y=None, eps=None):
        """The training loss (:meth:`loss`), so that ``module(x)`` trains in a plain loop or DDP."""
        return self.loss(x, y, eps)


# --------------------------------------------------------------------------------------------------
# Both directions
# --------------------------------------------------------------------------------------------------
def load_npae_params(module, params):
    """Copy npae ``params`` (name -> array) into ``module``'s parameters."""
    state = dict(module.named_parameters())
    with torch.no_grad():
        for name, (key, transposed) in module.param_map.items():
            a = params[name].T if transposed else params[name]
            state[key].copy_(torch.from_numpy(np.ascontiguousarray(a)))


def to_torch(model):
    return NpaeModule(model)


def from_torch(source, model):
    """Write the weights of ``source`` (an :class:`NpaeModule` or its ``state_dict``) into
    ``model``'s parameters in place; shapes must match."""
    if isinstance(source, NpaeModule):
        source = source.state_dict()
    if not hasattr(source, "keys"):
        raise InputError(f"npae.export.from_torch: source must be a module made by npae.export.to_torch "
                         f"or its state_dict, got {type(source).__name__}")
    reference = NpaeModule(model, who="from_torch")  # the map of names for this model
    wanted = {key for key, _ in reference.param_map.values()}
    missing, extra = wanted - set(source.keys()), set(source.keys()) - wanted
    if missing or extra:
        raise InputError(f"npae.export.from_torch: the weights do not fit this {type(model).__name__}: "
                         f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    new = {}
    for name, (key, transposed) in reference.param_map.items():
        t = source[key].detach().cpu()
        a = t.numpy().T if transposed else t.numpy()
        if a.shape != model.params[name].shape:
            want = model.params[name].T.shape if transposed else model.params[name].shape
            raise InputError(f"npae.export.from_torch: {key} has shape {tuple(t.shape)}, this "
                             f"{type(model).__name__} needs {tuple(want)}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"npae.export.from_torch: {key} holds NaN or inf")
        new[name] = a
    for name, a in new.items():  # all checked first: nothing is half written
        model.params[name][...] = a
    return model
