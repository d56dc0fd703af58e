"""Each lesson's measure and figure, for ``npae train`` and ``npae evaluate``: the held-out numbers
of a trained model (:func:`_lesson_metrics`: a VAE's bound, KL per dimension and active units; an
autoencoder's reconstruction error plus the measure of its own idea: how sparse a sparse code is,
how much a denoiser removes, how little a contractive code moves, :func:`_contraction`), the lines
that print them (:func:`_metric_lines`), and the figures a run writes (:func:`_figures`).
"""
import os

import numpy as np

from npae.app.runspec import IS_VAE, _say, _units

#: Activations below this magnitude count as "near zero" in a sparse code's measures.
NEAR_ZERO = 0.05
#: Perturbation of the contraction measure: Gaussian, standard deviation this share of the data's.
PERTURBATION = 0.05


def _lesson_metrics(model, kind, Xt, yt, seed):
    """The held-out numbers of ``model``: for a VAE the bound and its latent use, for each
    autoencoder its reconstruction error plus the measure of its own idea."""
    from npae.models.vae import VAE

    if isinstance(model, VAE):
        return {"neg_elbo": model.neg_elbo(Xt, yt, seed=seed),
                "kl_per_dim": [float(v) for v in model.kl_per_dimension(Xt, yt)],
                "active_units": model.active_units(Xt, yt),
                "units": "nats per example"}
    out = {"recon_error": float(np.mean(model.reconstruction_error(Xt))), "units": _units(model)}
    if kind == "sae":
        H = model.encode(Xt)  # (N, units)
        out["sparsity"] = {
            "penalty": model.penalty, "rho": model.rho if model.penalty == "kl" else None,
            "mean_activation_per_unit": [float(v) for v in H.mean(axis=0)],
            "mean_activation": float(H.mean()),
            "near_zero_threshold": NEAR_ZERO,
            "near_zero_fraction": float(np.mean(np.abs(H) < NEAR_ZERO)),
        }
    if kind == "dae":
        noisy = model.corrupt(Xt, seed=seed)
        denoised = model.reconstruct(noisy)
        out["denoising"] = {
            "noise": model.noise, "noise_level": model.noise_level, "seed": seed,
            "error_from_corrupted_input": float(model.evaluate(Xt, seed=seed)["recon"]),
            "error_from_clean_input": out["recon_error"],
            "squared_distance_corrupted_to_clean": float(np.mean(np.sum((noisy - Xt) ** 2, axis=1))),
            "squared_distance_denoised_to_clean": float(np.mean(np.sum((denoised - Xt) ** 2, axis=1))),
        }
    if kind in ("ae", "cae"):
        if hasattr(model, "jacobian_frobenius"):
            J2 = np.asarray(model.jacobian_frobenius(Xt), dtype=np.float64)  # (N,) ||J||_F^2
            out["jacobian"] = {"mean_frobenius_sq": float(J2.mean()),
                               "rms_frobenius": float(np.sqrt(J2.mean()))}
        else:
            out["jacobian"] = {"note": "needs Autoencoder.jacobian_frobenius, not in this npae"}
        out["contraction"] = _contraction(model, Xt, seed)[0]
    return out


def _contraction(model, Xt, seed, n_inputs=1000, copies=10, share=PERTURBATION):
    """Mean ‖z(x + δ) − z(x)‖ / ‖δ‖ over held-out inputs and Gaussian δ (σ = ``share`` × the
    data's standard deviation): the code's displacement per unit input perturbation. For small
    σ the mean of its square tends to ‖J‖²_F / D (J the encoder's Jacobian, D the input size)."""
    rng = np.random.default_rng([seed, 0x636165])
    X = Xt[:n_inputs]
    sigma = share * float(np.std(Xt))
    Z = model.encode(X)  # (n, d)
    delta = sigma * rng.standard_normal((copies, *X.shape))  # (m, n, D)
    Zp = model.encode((X[None] + delta).reshape(-1, X.shape[1])).reshape(copies, *Z.shape)
    ratio = np.linalg.norm(Zp - Z[None], axis=2) / np.linalg.norm(delta, axis=2)  # (m, n)
    summary = {"sigma": sigma, "sigma_rule": f"{share:g} x the held-out data's standard deviation",
               "copies_per_input": copies, "n_inputs": int(X.shape[0]),
               "mean_code_displacement_per_unit_perturbation": float(ratio.mean()),
               "rms_code_displacement_per_unit_perturbation": float(np.sqrt(np.mean(ratio ** 2)))}
    return summary, Z, np.transpose(Zp, (1, 0, 2))


def _metric_lines(test, model):
    units = test.get("units", "")
    lines = []
    if "neg_elbo" in test:
        lines.append(f"held-out negative ELBO {test['neg_elbo']:.3f} {units}")
        lines.append("held-out KL per latent dimension (nats): "
                     + " ".join(f"{v:.3f}" for v in test["kl_per_dim"]))
        lines.append(f"active units {test['active_units']} of {len(test['kl_per_dim'])} "
                     f"(variance of the posterior mean over held-out data > 0.01)")
        return lines
    lines.append(f"held-out reconstruction error {test['recon_error']:.3f} {units}")
    if "sparsity" in test:
        s = test["sparsity"]
        target = f" (target rho {s['rho']:g})" if s["rho"] is not None else ""
        lines.append(f"sparse code: mean activation {s['mean_activation']:.4f}{target}, units' means "
                     f"{min(s['mean_activation_per_unit']):.4f} .. {max(s['mean_activation_per_unit']):.4f}; "
                     f"{100 * s['near_zero_fraction']:.1f}% of activations |h| < "
                     f"{s['near_zero_threshold']:g}")
    if "denoising" in test:
        d = test["denoising"]
        lines.append(f"denoising ({d['noise']} {d['noise_level']:g}): error "
                     f"{d['error_from_corrupted_input']:.3f} "
                     f"from corrupted inputs vs {d['error_from_clean_input']:.3f} from clean ones ({units}); "
                     f"squared distance to the clean input {d['squared_distance_corrupted_to_clean']:.3f} "
                     f"corrupted -> {d['squared_distance_denoised_to_clean']:.3f} denoised")
    if "jacobian" in test:
        j = test["jacobian"]
        lines.append(f"encoder Jacobian: mean ||J||_F^2 {j['mean_frobenius_sq']:.4g} on held-out data"
                     if "mean_frobenius_sq" in j else f"encoder Jacobian: {j['note']}")
    if "contraction" in test:
        c = test["contraction"]
        lines.append(f"code displacement per unit input perturbation: "
                     f"{c['mean_code_displacement_per_unit_perturbation']:.4g} (Gaussian, sigma "
                     f"{c['sigma']:.3g})")
    return lines


# ---------------------------------------------------------------------------------------- figures
def _figures(model, kind, Xt, yt, info, history, out, seed):
    """Write the figures of a trained model; returns their paths."""
    from npae.app import plotting

    paths = []

    def target(name):
        paths.append(os.path.join(out, name))
        return paths[-1]

    name = type(model).__name__
    cond = yt if model.takes_labels else None
    shape = info["image_shape"]
    classes = info.get("classes")
    plotting.loss_curves(history, title=f"{name} training (dashed: held-out data)", units=_units(model),
                         path=target("loss_curves.png"))
    Z = model.encode(Xt) if cond is None else model.encode(Xt, cond)
    recon = model.decode(Z) if cond is None else model.decode(Z, cond)
    what = "posterior means" if kind in IS_VAE else "codes"
    if shape is not None:
        n = 10
        pairs = np.concatenate([Xt[:n], recon[:n], Xt[n:2 * n], recon[n:2 * n]])
        plotting.image_grid(pairs, shape, n_cols=n, row_labels=["data", "reconstruction"] * 2,
                            title=f"held-out data and their reconstructions (decoded {what})",
                            path=target("reconstructions.png"))
    else:
        plotting.scatter_pair(Xt, recon, yt, title=f"held-out data and their reconstructions "
                                                   f"(decoded {what})", path=target("reconstructions.png"))
    if kind == "vae":
        samples = model.sample(100, seed=0)
        if shape is not None:
            plotting.image_grid(samples, shape, n_cols=10, title="samples: decoder means at 100 "
                                "draws z ~ N(0, I)", path=target("samples.png"))
        else:  # a point cloud: the model's real samples, decoder noise included
            samples = model.sample(Xt.shape[0], seed=0, draws=True)
            plotting.scatter_pair(Xt, samples, names=("held-out data", "x ~ p(x | z), z ~ N(0, I)"),
                                  title="data and samples of the model", path=target("samples.png"))
    elif kind == "cvae" and shape is not None:
        rows = np.repeat(np.arange(model.n_classes), 10)
        samples = model.sample(rows.size, y=rows, seed=0)
        labels = [classes[c] if classes else str(c) for c in range(model.n_classes)]
        plotting.image_grid(samples, shape, n_cols=10, row_labels=labels,
                            title="samples: decoder means at z ~ N(0, I), one row per class y",
                            path=target("samples.png"))
    if Z.shape[1] >= 1:
        projection = "auto"
        if Z.shape[1] > 2:
            projection = ("pca",)
            if Z.shape[0] <= plotting.TSNE_MAX_POINTS:
                if plotting.tsne_available():
                    projection = ("pca", "tsne")
                else:
                    _say("t-SNE skipped: scikit-learn is not installed (pip install scikit-learn); "
                         "latent_scatter.png shows PCA only")
        title = f"held-out {what}" + ("\n(the label is the decoder's input, so the code need not "
                                      "separate the classes)" if kind == "cvae" else "")
        plotting.latent_scatter(Z, yt if yt is not None else None, title=title,
                                class_names=list(classes) if classes else None,
                                projection=projection, seed=seed, path=target("latent_scatter.png"))
    if shape is not None and kind == "cvae":
        labels = list(classes) if classes else None
        plotting.class_grid(model, np.linspace(-2, 2, 9), shape, class_names=labels,
                            path=target("manifold_grid.png"))
    elif Z.shape[1] == 2 and shape is not None:
        if kind == "vae":
            plotting.manifold_grid(model, 15, shape, path=target("manifold_grid.png"))
        else:
            plotting.manifold_grid(model, 15, shape, codes=Z, path=target("manifold_grid.png"),
                                   title="decoded regular grid over the codes' range (min … max of "
                                         "each axis):\nno prior, so the gaps between codes decode too")
    if kind == "dae":
        clean = Xt[:20] if shape is not None else Xt
        noisy = model.corrupt(clean, seed=seed)
        how = f"held-out data with the training corruption ({model.noise} {model.noise_level:g}), denoised"
        if shape is not None:
            plotting.denoising_triplets(noisy, model.reconstruct(noisy), clean, shape, n=10, title=how,
                                        path=target("denoising.png"))
        else:
            plotting.denoising_points(noisy, model.reconstruct(noisy), clean, title=how,
                                      path=target("denoising.png"))
    if kind == "sae":
        rho = model.rho if model.penalty == "kl" else None
        plotting.sparsity_figure(Z, rho=rho, threshold=NEAR_ZERO,
                                 title=f"sparse code ({model.penalty} penalty, weight "
                                       f"{model.sparsity_weight_:g}) on held-out data",
                                 path=target("sparsity.png"))
    if kind == "cae":
        # the measure uses a small sigma (a derivative); the picture a visible one, 10x larger
        ratio = _contraction(model, Xt, seed)[0]["mean_code_displacement_per_unit_perturbation"]
        summary, Zc, Zp = _contraction(model, Xt[:8], seed, n_inputs=8, copies=40,
                                       share=10 * PERTURBATION)
        plotting.contraction_figure(Zc, Zp, sigma=summary["sigma"], background=Z[8:], ratio=ratio,
                                    ratio_sigma=PERTURBATION * float(np.std(Xt)),
                                    path=target("contraction.png"))
    return paths
