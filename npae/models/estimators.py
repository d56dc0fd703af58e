"""Two unbiased estimators of the same gradient, side by side: score function vs pathwise.

The target is the gradient, with respect to the encoder parameters φ, of the expected
reconstruction term of a VAE's loss on a batch::

    g = ∇_φ (1/B) Σ_i E_{z ~ q_φ(z|x_i)} [ f_i(z) ],    f_i(z) = −log p(x_i | z)

(the KL term has a closed form and the same exact gradient under both estimators, so it is left
out). From S draws eps_s ~ N(0, I), z_s = mu + std · eps_s:

* pathwise (reparameterization): ĝ_s = ∂/∂φ f(mu + std · eps_s), through the sampler [SCORE-4];
* score function (log-derivative, REINFORCE): ĝ_s = (f(z_s) − b) ∇_φ log q_φ(z_s | x) [SCORE-3]
  with b = 0, or with the leave-one-out baseline b_s = mean of f over the other S − 1 draws.

All three are unbiased; their per-draw variances differ, which is the point of the comparison.
Derivation: docs/derivations/score.md
"""
import numpy as np

from npae.pairs import latent
from npae.init import make_rng
from npae.validation import InputTypeError, check_scalar

ESTIMATORS = ("pathwise", "score", "score_baseline")


def encoder_gradient_estimates(model, x, n_samples=1000, seed=None):
    """Per-draw estimates of ``∇_φ E_q[recon NLL]`` for the encoder parameters of a :class:`~npae.VAE`.

    Parameters
    ----------
    model : npae.VAE
    x : (B, n_features) array
    n_samples : int >= 2
        S, the number of draws (the baseline needs at least two).
    seed : int or Generator, optional
        Source of ``eps``; ``None`` uses the model's evaluation stream (never its training generator).

    Returns
    -------
    dict with
        ``"pathwise"``, ``"score"``, ``"score_baseline"``: (S, P) arrays, one flattened gradient
        estimate per draw (P = number of encoder parameters, in ``model.encoder.params`` order);
        their means over the first axis are the S-sample estimates.
        ``"names"``: the encoder parameter names; ``"eps"``: the (S, B, Z) noise used.
    """
    if model.n_classes:
        raise InputTypeError("encoder_gradient_estimates supports an unconditional npae.VAE only")
    check_scalar("n_samples", n_samples, low=2, integer=True)
    mu, logvar = model.posterior(x)  # (B, Z); the encoder keeps its caches for S backward passes
    rng = model.evaluation_rng() if seed is None else make_rng(seed)
    B, Z, S = mu.shape[0], model.latent_dim, int(n_samples)
    eps = rng.standard_normal((S, B, Z)).astype(model.dtype)  # (S, B, Z)

    # one forward for all draws
    z, (_, std) = latent.reparameterize_forward(mu, logvar, eps)  # (S, B, Z)
    f, dz = model.reconstruction_nll(z, x)  # (S, B) per-example NLL; dz: ∂/∂z of (1/B) Σ_i f_i per draw

    # leave-one-out baseline, independent of draw s, so the estimator stays unbiased
    baseline = (f.sum(axis=0) - f) / (S - 1)  # (S, B)
    score_mu = eps / std  # (S, B, Z) ∂ log q / ∂mu = (z − mu) / σ² [SCORE-1]
    score_logvar = 0.5 * (eps * eps - 1.0)  # (S, B, Z) ∂ log q / ∂logvar [SCORE-2]

    result = {name: [] for name in ESTIMATORS}
    for s in range(S):
        per_draw = {
            # pathwise: dz through z = mu + std·eps, node by node as in reparameterize_backward
            "pathwise": latent.reparameterize_backward(dz[s], (eps[s], std)),  # [SCORE-4]
            "score": _score_terms(f[s] / B, score_mu[s], score_logvar[s]),  # [SCORE-3]
            "score_baseline": _score_terms((f[s] - baseline[s]) / B, score_mu[s], score_logvar[s]),
        }
        for name, (dmu, dlogvar) in per_draw.items():
            grads = model.encoder_gradients(dmu, dlogvar)
            result[name].append(np.concatenate([g.ravel() for g in grads.values()]))
    out_dict = {name: np.array(rows) for name, rows in result.items()}
    out_dict["names"] = list(model.encoder.params)
    out_dict["eps"] = eps
    return out_dict


def _score_terms(weight, score_mu, score_logvar):
    """(dmu, dlogvar) of one score-function draw: ``weight_i · ∂ log q(z_i|x_i) / ∂(mu, logvar)``."""
    w = weight[:, None]  # (B, 1)
    return w * score_mu, w * score_logvar  # [SCORE-3]


def compare_estimators(estimates):
    """Summary of :func:`encoder_gradient_estimates`: for each estimator the S-sample mean (P,),
    the per-draw variance summed over coordinates (trace of the covariance), and the ratio of
    each variance to the pathwise one (how many times noisier than pathwise)."""
    summary = {}
    path_var = float(np.sum(np.var(estimates["pathwise"], axis=0, ddof=1)))
    for name in ESTIMATORS:
        g = estimates[name]
        var = float(np.sum(np.var(g, axis=0, ddof=1)))
        summary[name] = {"mean": g.mean(axis=0), "variance": var,
                         "ratio_to_pathwise": var / path_var if path_var > 0 else np.inf}
    return summary
