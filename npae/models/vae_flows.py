"""A normalising flow on the VAE's posterior sample: planar flows or inverse autoregressive steps.

A mixin of :class:`npae.VAE` (``flow="planar"`` or ``"iaf"``). With a flow the KL has no closed
form, so the model trains on the log-weights (:mod:`npae.models.vae_objectives`); this module gives
that step the latent part of a log-weight, ``log p(z_K) − log q_K(z_K)``, and its backward, built
from the flow pairs (:func:`npae.pairs.flows.planar_stack_forward`,
:func:`npae.pairs.flows.iaf_stack_forward`, :func:`npae.pairs.flows.flow_log_density`).
Derivation: docs/derivations/flow.md.
"""
import numpy as np

from npae.pairs import bounds
from npae.pairs import flows
from npae.pairs import latent
from npae.models import layers
from npae.models.layers import FreeParams

FLOWS = ("planar", "iaf")
PLANAR_START = float(np.log(np.e - 1.0))  # the wᵀu at which the planar margin m(wᵀu) is 0


class FlowPosterior:
    """The flow's parameters (``flow.<step>.<key>``), its forward and backward, and the latent part
    of a log-weight through it. The model provides ``flow``, ``flow_steps``, ``flow_hidden``,
    ``context_dim_``, ``rng`` and ``flow_params``."""

    def _make_flow(self, Z, dtype):
        """The flow's parameters as :class:`FreeParams` named ``flow.<step>.<key>``, or None.

        Planar: ``u``, ``w`` (Z,) and ``b`` (1,) per step, placed so that û is small (the flow
        starts near the identity). IAF: a MADE per step (:func:`npae.pairs.flows.made_init`), the
        variable order reversed from one step to the next so that every latent gets to depend on
        every other; the masks (not parameters) are kept in ``flow_masks_``.
        """
        if self.flow is None:
            self.flow_masks_ = None
            return None
        arrays = {}
        H = int(self.flow_hidden) if self.flow_hidden is not None else max(2 * Z, 8)
        if layers.is_shapes_only():  # sizing a model file's config: shapes, no draws
            shapes = ({"u": (Z,), "w": (Z,), "b": (1,)} if self.flow == "planar" else
                      {"W1": (Z, H), "b1": (H,), "W2": (H, 2 * Z), "b2": (2 * Z,), "Wc": (Z, H)})
            self.flow_masks_ = None
            return FreeParams({f"{t}.{key}": layers.param_array(shape, dtype, None)
                               for t in range(int(self.flow_steps)) for key, shape in shapes.items()},
                              "flow.")
        if self.flow == "planar":
            for t in range(int(self.flow_steps)):
                # w of unit scale; u such that wᵀu ≈ log(e − 1), where m(wᵀu) ≈ 0 and so
                # û = u + (m(wᵀu) − wᵀu) w/‖w‖² is about the small noise only: a step near the
                # identity (docs/derivations/flow.md#flow-1)
                w = self.rng.standard_normal(Z) / np.sqrt(Z)
                noise = 0.01 * self.rng.standard_normal(Z)  # small along w and across it
                arrays[f"{t}.u"] = PLANAR_START * w / (w @ w) + noise
                arrays[f"{t}.w"] = w
                arrays[f"{t}.b"] = np.zeros(1)
            self.flow_masks_ = None
        else:
            self.flow_masks_ = []
            for t in range(int(self.flow_steps)):
                order = np.arange(1, Z + 1) if t % 2 == 0 else np.arange(Z, 0, -1)
                M1, M2 = flows.made_masks(Z, H, order=order)
                self.flow_masks_.append((M1.astype(dtype), M2.astype(dtype)))
                for key, value in flows.made_init(self.rng, Z, H, context_dim=self.context_dim_).items():
                    arrays[f"{t}.{key}"] = value
        return FreeParams({key: value.astype(dtype) for key, value in arrays.items()}, "flow.")

    def _flow_step_params(self, t):
        P = self.flow_params.params
        keys = ("u", "w", "b") if self.flow == "planar" else ("W1", "b1", "W2", "b2", "Wc")
        return {key: P[f"{t}.{key}"] for key in keys if f"{t}.{key}" in P}

    def _flow_forward(self, z0, h):
        """``(z_K, Σ logdet, cache)`` for samples ``z0`` (N, Z) through the flow's steps
        [FLOW-7]; ``h`` (N, C_h) is the IAF's context (unused by planar flows)."""
        steps = range(int(self.flow_steps))
        if self.flow == "planar":
            stack = [tuple(self._flow_step_params(t)[key] for key in ("u", "w", "b")) for t in steps]
            (zK, logdet_sum), cache = flows.planar_stack_forward(z0, stack)  # [FLOW-3], [FLOW-7]
        else:
            stack = [(self._flow_step_params(t), self.flow_masks_[t]) for t in steps]
            (zK, logdet_sum), cache = flows.iaf_stack_forward(z0, stack, context=h)  # [FLOW-13], [FLOW-7]
        return zK, logdet_sum, cache

    def _flow_backward(self, dz, dlogdet, cache):
        """Back through the flow: returns ``(dz0, dh)`` (``dh`` None for planar flows) and writes
        the flow's parameter gradients in place. Every step's logdet enters the sum with weight 1,
        so each gets ``dlogdet``."""
        G = self.flow_params.grads
        if self.flow == "planar":
            dz0, grads = flows.planar_stack_backward((dz, dlogdet), cache)  # [FLOW-5], [FLOW-6]
            grads, dh = [dict(zip(("u", "w", "b"), g)) for g in grads], None
        else:
            dz0, grads, dh = flows.iaf_stack_backward((dz, dlogdet), cache)  # [FLOW-15]
        for t, step_grads in enumerate(grads):
            for key, g in step_grads.items():
                G[f"{t}.{key}"][...] = g
        return dz0, dh

    def _flow_log_ratio_forward(self, mu, logvar, eps, h):
        """The latent part of a log-weight through the flow: ``((z_K, log_ratio), cache)`` with
        z_0 = mu + std·eps, z_K the flow's output (K, B, Z) and ``log_ratio = log p(z_K) −
        log q_K(z_K)`` (K, B), ``log q_K = log q_0(z_0) − Σ logdet`` [FLOW-7]. ``eps`` (K, B, Z),
        ``h`` (B, C_h) the IAF's context."""
        K, B, Z = eps.shape
        z0, rep_cache = latent.reparameterize_forward(mu, logvar, eps)  # (K, B, Z) [REPARAM-2]
        log_q0, q_cache = bounds.log_normal_forward(z0, mu, logvar)  # (K, B) [GAUSS-1]
        hK = np.broadcast_to(h, (K,) + h.shape).reshape(K * B, -1)  # (K·B, C_h): the draws share h
        zK, logdet, flow_cache = self._flow_forward(z0.reshape(K * B, Z), hK)  # (K·B, Z), (K·B,)
        log_pz, p_cache = bounds.log_standard_normal_forward(zK)  # (K·B,) [GAUSS-2]
        log_qK = flows.flow_log_density(log_q0, logdet.reshape(K, B))  # (K, B) [FLOW-7]
        log_ratio = log_pz.reshape(K, B) - log_qK  # (K, B)
        return (zK.reshape(K, B, Z), log_ratio), (rep_cache, q_cache, flow_cache, p_cache)

    def _flow_log_ratio_backward(self, dz, dlog_ratio, cache):
        """Node by node back from ``(dz_K, dlog_ratio)``: through the prior, the flow, q_0 and the
        sampler. Returns ``(dmu, dlogvar, dh)``, ``dh`` (B, C_h) summed over the draws (None for
        planar flows); writes the flow's gradients in place."""
        rep_cache, q_cache, flow_cache, p_cache = cache
        K, B, Z = dz.shape
        dlog_ratio_rows = dlog_ratio.reshape(-1)  # (K·B,)
        dz_prior = bounds.log_standard_normal_backward(dlog_ratio_rows, p_cache)  # (K·B, Z) [IWAE-9]
        dzK = dz.reshape(K * B, Z) + dz_prior  # (K·B, Z): z_K feeds the decoder and the prior [IWAE-10]
        # log_ratio = log p(z_K) − log q_0(z_0) + Σ logdet: Σ logdet gets dlog_ratio [FLOW-7]
        dz0, dh = self._flow_backward(dzK, dlog_ratio_rows, flow_cache)  # (K·B, Z)
        dz_q, dmu_q, dlogvar_q = bounds.log_normal_backward(-dlog_ratio, q_cache)  # from −log q_0 [IWAE-8]
        dz0 = dz0.reshape(K, B, Z) + dz_q  # (K, B, Z): z_0 feeds the flow and q_0 [IWAE-10]
        dmu_sampler, dlogvar_sampler = latent.reparameterize_backward(dz0, rep_cache)  # [REPARAM-3,4]
        dmu = dmu_sampler + dmu_q  # (B, Z): the sampler and q_0's own dependence [IWAE-10]
        dlogvar = dlogvar_sampler + dlogvar_q  # (B, Z) [IWAE-10]
        return dmu, dlogvar, None if dh is None else dh.reshape(K, B, -1).sum(axis=0)
