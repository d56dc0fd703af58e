"""VAE against IWAE training on MNIST: test log-likelihood and active units (Burda et al. 2016, Table 1).

For each architecture (one stochastic layer; one layer with an IAF in the posterior; two stochastic
layers) and each training k (``--ks`` 1, 5, 50 for the first seed; ``--flow-ks`` 1, 5 for the IAF
model; ``--later-ks`` 1, 5 for the other seeds), trains the model twice, once on the k-sample ELBO
(``objective="elbo"``, "VAE") and once on the IWAE-k bound (``objective="iwae"``), then reports on
held-out images the IWAE-5000 estimate of log p(x) (``log_likelihood_estimate(X, k=5000)``), the
bound ladder ELBO ≤ IWAE-5 ≤ ... ≤ IWAE-5000, and the active units of each stochastic layer. With
k = 1 the two objectives coincide for the models trained on log-weights (the flow and the two-layer
model): those are trained once and listed under both. Defaults: 2 epochs, 2 seeds, IWAE-5000 on
100 held-out images (26 minutes on a busy two-core machine).

Data: MNIST t10k[:8000] for training, binarized dynamically (a fresh Bernoulli draw of every
pixel at every epoch); t10k[8000:] held out, binarized once (a fixed draw). ``--data digits``
trains on the bundled 8x8 digits instead (the first 1,500; the other 297 held out), 64-100-100-2
networks for 300 epochs, 3 seeds: small images trained to convergence, the scale at which a CPU
shows what the paper shows (each advanced model ahead of the plain one; the effects table at the end
gives every paired difference with its standard error over seeds). ``--quick`` is that setting cut
to 30 epochs and one seed (seconds; the test suite runs it).
Figures: ``bounds.png`` (test log-likelihood and active units against the training k, VAE and IWAE
side by side, per architecture) and ``bounds_ladder.png`` (each model's bound against the number
of samples used to evaluate it). The numbers also go to ``bounds_results.json`` (with the per-image
IWAE estimates in ``bounds_per_image.npz``), and a run with ``--reuse`` skips the models already
there with the same settings. Results and discussion: docs/bounds.md.
Lecture idea: a tighter bound as a training objective; active units. Docs: docs/derivations/iwae.md,
hier.md, flow.md.

    python demos/bounds.py [--quick] [--data {mnist,digits}] [--out DIR] [--data-dir DIR] [--epochs N]
                           [--seeds S] [--reuse]
"""
# %% settings
import argparse
import json
import os
import sys
import time

import numpy as np

import npae
from npae import datasets, plotting
from npae.training import optim
from npae.training.report import log_line

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="seconds: the digits setting, 30 epochs, one seed")
parser.add_argument("--data", choices=("mnist", "digits"), default="mnist",
                    help="MNIST (the paper's data) or the bundled 8x8 digits trained to convergence")
parser.add_argument("--out", default="demo_out", help="folder for the PNGs and the results")
parser.add_argument("--seed", type=int, default=0, help="the first seed; seeds run seed, seed + 1, ...")
parser.add_argument("--seeds", type=int, default=None, help="how many seeds per model (2; digits 3)")
parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: $NPAE_DATA, the cache)")
parser.add_argument("--download", action="store_true", help="download MNIST into the cache if missing")
parser.add_argument("--epochs", type=int, default=None, help="passes over the training set (2; digits 300)")
parser.add_argument("--ks", type=int, nargs="+", default=None,
                    help="training k, first seed (1 5 50; digits 1 5)")
parser.add_argument("--flow-ks", type=int, nargs="+", default=None, help="training k of the IAF model (1 5; "
                    "digits 1)")
parser.add_argument("--two-ks", type=int, nargs="+", default=None, help="training k of the two-layer model "
                    "(as --ks; digits 1)")
parser.add_argument("--later-ks", type=int, nargs="+", default=None, help="training k of the later seeds "
                    "(1 5; digits 1 5)")
parser.add_argument("--archs", nargs="+", default=["1 layer", "1 layer + IAF", "2 layers"])
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--lr", type=float, default=3e-3, help="Adam's step size (eps 1e-4 as in the paper)")
parser.add_argument("--k-test", type=int, default=None, help="samples of the test log-likelihood estimate "
                    "(5000; digits 1000)")
parser.add_argument("--n-test", type=int, default=None, help="held-out images the estimate averages over "
                    "(100; digits all 297)")
parser.add_argument("--dtype", default=None, help="float32 (digits: float64)")
parser.add_argument("--reuse", action="store_true", help="keep results already in --out for these settings")
args = parser.parse_args()
if args.quick:
    args.data = "digits"
DEFAULTS = {  # per data set; an option given on the command line wins
    "mnist": dict(seeds=2, epochs=2, ks=[1, 5, 50], flow_ks=[1, 5], two_ks=None, later_ks=[1, 5], n_test=100,
                  k_test=5000, dtype="float32"),
    "digits": dict(seeds=3, epochs=300, ks=[1, 5], flow_ks=[1], two_ks=[1], later_ks=[1, 5], n_test=297,
                   k_test=1000, dtype="float64"),
}
for key, value in DEFAULTS[args.data].items():
    if getattr(args, key) is None:
        setattr(args, key, value)
args.two_ks = args.two_ks or args.ks
if args.quick:  # the digits setting, shorter: the test suite runs this
    args.epochs, args.seeds, args.k_test = 30, 1, 200
os.makedirs(args.out, exist_ok=True)
out = lambda name: os.path.join(args.out, name)  # noqa: E731

# %% data: the official test file, 8,000 images to train on and 2,000 held out
if args.data == "digits":
    X, _ = datasets.load_digits()
    X_train, X_held = X[:1500], X[1500:]
else:
    try:
        X, _ = datasets.load_mnist("test", data_dir=args.data_dir, download=args.download)
    except FileNotFoundError as exc:
        print(f"MNIST not available, nothing to show: {exc}")
        sys.exit(0)
    X_train, X_held = X[:8000], X[8000:]
D = X_train.shape[1]
X_held = datasets.binarize(X_held, "static", rng=12345).astype(args.dtype)  # one fixed draw
X_test = X_held[:args.n_test]  # where the k_test-sample estimate is averaged
p_mean = np.clip(X_train.mean(axis=0), 1e-3, 1 - 1e-3)
output_bias = np.log(p_mean / (1 - p_mean))  # logit of each pixel's mean: where the decoder starts
print(f"training on {len(X_train)} images (dynamic binarization), {args.epochs} epochs; IWAE-{args.k_test} "
      f"on {len(X_test)} held-out images (one fixed binarization), IWAE-50 and active units on {len(X_held)}")

# %% the models: the IWAE paper's architectures (tanh; smaller ones for the 8x8 digits)
if args.data == "digits":  # 64-100-100-2, a 2-D code; two layers 64-100-100-2(z1)-50-50-5(z2)
    one, flow_hidden = dict(hidden=(100, 100), latent_dim=2), 50
    two = dict(hidden1=(100, 100), latent_dim1=2, hidden2=(50, 50), latent_dim2=5)
else:  # 784-200-200-50 with one stochastic layer; 784-100-100-100(z1)-50-50-50(z2) with two
    one, two, flow_hidden = dict(hidden=(200, 200), latent_dim=50), dict(), 100


def make(arch, objective, k, seed):
    common = dict(activation="tanh", objective=objective, k=k, dtype=args.dtype, seed=seed, warm_start=True)
    if arch == "2 layers":
        model = npae.TwoLayerVAE(D, **two, **common)
    elif arch == "1 layer + IAF":
        model = npae.VAE(D, **one, flow="iaf", flow_steps=2, flow_hidden=flow_hidden, **common)
    else:
        model = npae.VAE(D, **one, **common)
    model.decoder.dense_layers[-1].params["b"][...] = output_bias  # the marginal pixel log-odds
    return model


def train(model, seed):
    """One fit per epoch on a fresh binarization; the Adam state carries over (warm_start)."""
    rng = np.random.default_rng([seed, 0xB1])  # the binarization stream, apart from the model's
    opt, history = optim.Adam(lr=args.lr, eps=1e-4), {}
    for epoch in range(args.epochs):
        X_epoch = datasets.binarize(X_train, "dynamic", rng=rng).astype(args.dtype)
        model.fit(X_epoch, epochs=1, batch_size=args.batch_size, optimizer=opt, progress=False)
        for key, values in model.history_.items():
            history.setdefault(key, []).extend(values)
        if epoch in (0, args.epochs - 1) or (epoch + 1) % 5 == 0:
            print("  " + log_line(epoch, history, args.epochs))
    return history


# %% train and evaluate every model (seed by seed, so an interrupted run has whole seeds)
settings = {k: getattr(args, k) for k in ("quick", "data", "epochs", "batch_size", "lr", "k_test", "n_test",
                                          "dtype")}
ladder_ks = sorted({1, 5, 50, 500, args.k_test} & set(range(1, args.k_test + 1)))
results_path, per_image_path = out("bounds_results.json"), out("bounds_per_image.npz")
rows, per_image = [], {}
if args.reuse and os.path.isfile(results_path) and os.path.isfile(per_image_path):
    saved = json.load(open(results_path))
    if saved["settings"] == settings:
        rows = saved["rows"]
        per_image = dict(np.load(per_image_path))
done = {(r["arch"], r["objective"], r["k"], r["seed"]) for r in rows}
for seed in range(args.seed, args.seed + args.seeds):
    for arch in args.archs:
        ks = args.flow_ks if arch == "1 layer + IAF" else args.two_ks if arch == "2 layers" else args.ks
        for k in (ks if seed == args.seed else sorted(set(ks) & set(args.later_ks))):
            for objective in ("elbo", "iwae"):
                if (arch, objective, k, seed) in done:
                    continue
                shared = k == 1 and arch != "1 layer"  # trained on log-weights: k = 1 is one objective
                if shared and objective == "iwae":
                    continue
                kind = "VAE = IWAE" if shared else "VAE" if objective == "elbo" else "IWAE"
                name = f"{arch}, {kind}, k = {k}"
                print(f"{name}, seed {seed}")
                model, start = make(arch, objective, k, seed), time.time()
                try:
                    history = train(model, seed)
                except npae.DivergenceError as exc:  # say so and go on with the other models
                    print(f"  diverged, left out of the table: {exc}")
                    continue
                train_s = time.time() - start
                ladder = [model.log_likelihood_estimate(X_test, k=kk, seed=seed, per_example=True)
                          for kk in ladder_ks]
                ll50_all = model.log_likelihood_estimate(X_held, k=50, seed=seed, per_example=True)
                active = model.active_units(X_held)
                active = list(active) if isinstance(active, tuple) else [active]
                row = dict(arch=arch, objective=objective, k=k, seed=seed, shared=shared,
                           test_ll=float(ladder[-1].mean()), ladder=[float(b.mean()) for b in ladder],
                           ladder_ks=ladder_ks, ll50_all=float(ll50_all.mean()), active=active,
                           train_loss=history["loss"][-1],
                           train_seconds=round(train_s, 1),
                           eval_seconds=round(time.time() - start - train_s, 1))
                print(f"  test IWAE-{args.k_test} {row['test_ll']:.2f} nats, ELBO {row['ladder'][0]:.2f}, "
                      f"IWAE-50 on {len(X_held)}: {row['ll50_all']:.2f}, active units "
                      f"{'+'.join(map(str, active))}, {train_s:.0f} s training, "
                      f"{row['eval_seconds']:.0f} s eval")
                for objective_as in (("elbo", "iwae") if shared else (objective,)):
                    rows.append(dict(row, objective=objective_as))
                    per_image[f"{arch}|{objective_as}|{k}|{seed}"] = ladder[-1]
                    per_image[f"{arch}|{objective_as}|{k}|{seed}|k50"] = ll50_all
                json.dump(dict(settings=settings, rows=rows), open(results_path, "w"), indent=1)
                np.savez(per_image_path, **per_image)

# %% the table: mean (and range) over seeds, and IWAE minus VAE on the same images
archs = [a for a in args.archs if any(r["arch"] == a for r in rows)]
ks_of = {a: sorted({r["k"] for r in rows if r["arch"] == a}) for a in archs}
first_seed = min(r["seed"] for r in rows)


def select(arch, objective, k):
    return [r for r in rows if (r["arch"], r["objective"], r["k"]) == (arch, objective, k)]


def cell(arch, objective, k, key="test_ll"):
    values = np.array([r[key] for r in select(arch, objective, k)])
    spread = f" ±{(values.max() - values.min()) / 2:.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}" if len(values) else "-"


def gains(arch, k, suffix=""):
    """IWAE − VAE per seed, on the same images: mean ± standard error of the per-image difference."""
    out = []
    for r in select(arch, "elbo", k):
        if r["shared"]:
            return "the same model"
        key = f"{arch}|{{}}|{k}|{r['seed']}{suffix}"
        if key.format("iwae") in per_image:
            d = per_image[key.format("iwae")] - per_image[key.format("elbo")]
            out.append(f"{d.mean():+.2f} ± {d.std(ddof=1) / np.sqrt(d.size):.2f}")
    return ", ".join(out)


print(f"\nheld-out log-likelihood, nats: IWAE-{args.k_test} on {len(X_test)} images and IWAE-50 on "
      f"{len(X_held)}; active units (z1+z2) per seed")
print(f"{'architecture':<14} {'k':>3} | {'VAE':>13} {'IWAE':>13} | {'VAE act.':>11} {'IWAE act.':>11} | "
      f"IWAE − VAE, IWAE-{args.k_test} | IWAE − VAE, IWAE-50 on {len(X_held)}")
for arch in archs:
    for k in ks_of[arch]:
        acts = ["/".join("+".join(map(str, r["active"])) for r in select(arch, o, k))
                for o in ("elbo", "iwae")]
        print(f"{arch:<14} {k:>3} | {cell(arch, 'elbo', k):>13} {cell(arch, 'iwae', k):>13} | "
              f"{acts[0]:>11} {acts[1]:>11} | {gains(arch, k):<22} | {gains(arch, k, '|k50')}")
print("(± half the range over seeds; a row with k = 1 for the IAF or two layers is one model listed twice)")


# %% the effects: each advanced model against the plain one, paired on the same images, over seeds
def paired(a, b):
    """``a`` minus ``b`` (each ``(arch, objective, k)``) per seed on the same held-out images: the mean
    over seeds of the per-image mean difference, its standard error over seeds, and the per-seed means."""
    per_seed = []
    for seed in sorted({r["seed"] for r in rows}):
        key_a, key_b = ("|".join(map(str, (*x, seed))) for x in (a, b))
        if key_a in per_image and key_b in per_image:
            per_seed.append(float(np.mean(per_image[key_a] - per_image[key_b])))
    values = np.array(per_seed)
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return values.mean() if values.size else float("nan"), se, values


plain, sampled_kl = ("1 layer", "elbo", 1), ("1 layer", "iwae", 1)  # diagonal q; closed-form or sampled KL
effects = [("IWAE-5 training vs VAE (5-sample ELBO)", ("1 layer", "iwae", 5), ("1 layer", "elbo", 5)),
           ("IAF posterior vs diagonal (closed-form KL)", ("1 layer + IAF", "elbo", 1), plain),
           ("IAF posterior vs diagonal (sampled KL)", ("1 layer + IAF", "elbo", 1), sampled_kl),
           ("2 stochastic layers vs 1, k = 1", ("2 layers", "elbo", 1), plain),
           ("2 stochastic layers vs 1, IWAE-5", ("2 layers", "iwae", 5), ("1 layer", "iwae", 5))]
print(f"\neffects: arm A minus arm B, IWAE-{args.k_test} on the same {len(X_test)} held-out images, nats "
      f"(> 0: A is better);\nmean over seeds ± its standard error, then each seed")
measured = []
for name, a, b in effects:
    mean, se, values = paired(a, b)
    if values.size:
        measured.append((name, mean, se, values))
        if values.size > 1:
            verdict = ("A ahead" if mean - 2 * se > 0 else "B ahead" if mean + 2 * se < 0 else
                       "within 2 SE of 0, not shown")
            print(f"  {name:<42} {mean:+.3f} ± {se:.3f} ({values.size} seeds: "
                  f"{', '.join(f'{v:+.3f}' for v in values)}): {verdict}")
        else:
            print(f"  {name:<42} {mean:+.3f} (one seed: no standard error; a sign, not a result)")

# %% figures: log-likelihood and active units against the training k; each model's ladder
colors = {"elbo": "tab:blue", "iwae": "tab:red"}
labels = {"elbo": "VAE (k-sample ELBO)", "iwae": "IWAE-k"}


def log_k_axis(ax, ks, label):
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel(label)
    if len(ks) == 1:  # one k: keep the two colours' dots close to their tick
        ax.set_xlim(ks[0] / 1.3, ks[0] * 1.3)


fig = plotting.new_figure((4.0 * len(archs), 6.4))
for j, arch in enumerate(archs):
    ax_ll = fig.add_subplot(2, len(archs), j + 1)
    ax_au = fig.add_subplot(2, len(archs), len(archs) + j + 1)
    for objective in ("elbo", "iwae"):
        shift = 0.96 if objective == "elbo" else 1.04  # side by side where the points coincide
        ks = [k for k in ks_of[arch] if select(arch, objective, k)]
        x = np.array(ks) * shift
        lls = [[r["test_ll"] for r in select(arch, objective, k)] for k in ks]
        for xi, values in zip(x, lls):
            ax_ll.plot([xi] * len(values), values, "o", color=colors[objective], alpha=0.5, ms=4)
        ax_ll.plot(x, [np.mean(v) for v in lls], "-", color=colors[objective], label=labels[objective])
        n_layers = 2 if arch == "2 layers" else 1
        for layer, style in zip(range(n_layers), ("-", ":")):
            acts = [[r["active"][layer] for r in select(arch, objective, k)] for k in ks]
            for xi, values in zip(x, acts):
                ax_au.plot([xi] * len(values), values, "o", color=colors[objective], alpha=0.5, ms=4)
            name = labels[objective] + (f", z{layer + 1}" if n_layers == 2 else "")
            ax_au.plot(x, [np.mean(v) for v in acts], style, color=colors[objective], label=name)
    log_k_axis(ax_ll, ks_of[arch], "training k")
    log_k_axis(ax_au, ks_of[arch], "training k")
    ax_ll.set_title(arch)
    ax_au.set_ylim(0, 1.08 * max(max(r["active"]) for r in rows if r["arch"] == arch))
    if j == 0:
        ax_ll.set_ylabel(f"test log-lik., IWAE-{args.k_test} (nats)")
        ax_au.set_ylabel("active units")
    ax_ll.legend(fontsize=7)
    ax_au.legend(fontsize=7)
data_name = "8x8 digits" if args.data == "digits" else "MNIST"
n_seeds = len({r["seed"] for r in rows})
fig.suptitle(f"{data_name}, {args.epochs} epochs, up to {n_seeds} seed(s): dots are runs, lines their mean",
             fontsize=10)
fig.tight_layout()
plotting.save_figure(fig, out("bounds.png"))
print(f"wrote {out('bounds.png')}")

fig = plotting.new_figure((4.0 * len(archs), 3.6))
all_ks = sorted({r["k"] for r in rows})
k_colors = dict(zip(all_ks, ("tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:gray")))
for j, arch in enumerate(archs):
    ax = fig.add_subplot(1, len(archs), j + 1)
    for r in (r for r in rows if r["arch"] == arch and r["seed"] == first_seed):
        if r["shared"] and r["objective"] == "iwae":
            continue
        style = "-" if r["objective"] == "elbo" or r["shared"] else "--"
        name = "VAE = IWAE" if r["shared"] else "VAE" if r["objective"] == "elbo" else "IWAE"
        ax.plot(r["ladder_ks"], r["ladder"], style, marker=".", color=k_colors.get(r["k"]),
                label=f"{name}, trained k = {r['k']}")
    log_k_axis(ax, ladder_ks, "evaluation k (k = 1: the ELBO)")
    ax.set_title(f"{arch}, seed {first_seed}")
    if j == 0:
        ax.set_ylabel("held-out bound on log p(x) (nats)")
    ax.legend(fontsize=7)
fig.suptitle(f"the bound ladder on {len(X_test)} held-out images: dashed IWAE-trained, solid VAE-trained",
             fontsize=10)
fig.tight_layout()
plotting.save_figure(fig, out("bounds_ladder.png"))
print(f"wrote {out('bounds_ladder.png')}")

fig = plotting.new_figure((7.5, 0.6 + 0.55 * max(len(measured), 1)))
ax = fig.add_subplot(1, 1, 1)
for i, (name, mean, se, values) in enumerate(measured):
    y = len(measured) - 1 - i
    ax.plot(values, [y] * len(values), "o", color="tab:gray", alpha=0.6, ms=4)
    if values.size > 1:
        ax.errorbar(mean, y, xerr=2 * se, fmt="D", color="tab:red", capsize=3)
    else:
        ax.plot(mean, y, "D", color="tab:red")
ax.axvline(0.0, color="black", lw=0.8)
ax.set_yticks(range(len(measured)))
ax.set_yticklabels([m[0] for m in measured][::-1], fontsize=8)
ax.set_xlabel(f"arm A − arm B, held-out IWAE-{args.k_test} (nats; > 0: the advanced model is better)")
ax.set_title(f"{data_name}, {args.epochs} epochs: grey dots are seeds, red their mean ± 2 SE", fontsize=9)
fig.tight_layout()
plotting.save_figure(fig, out("bounds_effects.png"))
print(f"wrote {out('bounds_effects.png')}")
