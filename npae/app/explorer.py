"""``explorer.html``: the latent space of a trained model in the browser, as one self-contained file.

``npae train`` writes it into every run folder of an autoencoder or a VAE, and ``npae explore
RUN_DIR`` writes it for a run trained earlier. The page needs no server, no kernel and no network:
the decoder's weights are embedded (float32, base64), its forward pass is plain JavaScript
(``npae/app/explorer.js``, written to be read beside :class:`npae.models.layers.Sequential`: the
same steps in the same order, ``decoder.0``, ``decoder.1``, ... with the same activations), and
the held-out data come along as their codes and 8-bit images.

What the page shows (each panel with a caption that gives the run's numbers):

* the latent plane: the held-out posterior means (an autoencoder's codes), coloured by class; a
  latent space of more than 2 dimensions is drawn in the plane of its first two principal axes,
  with one slider per latent dimension. The plane passes through the codes' mean, and its
  coordinates are the projections onto the two axes, so the prior N(0, I) projects to N(0, I) in
  the plane and the Φ⁻¹ grid of the manifold figure ([LATENT-4]) is drawn in it as an overlay;
* the decoder, live: the image at the pointer (or at the sliders' code);
* a clicked point's image and its reconstruction (the decoder at its posterior mean, computed in
  the page), and, between the last two clicked points, the interpolation strip;
* for a conditional VAE, the class the decoder is given (clicking a point selects its class).

``window.npaeDecode(codes[, labels])`` exposes the decoder: codes (a list of latent vectors) in, the
decoder's outputs (the Bernoulli means or the Gaussian means, as ``model.decode``) out.
"""
import base64
import html
import json
import os
from importlib import resources

import numpy as np

from npae.app.runspec import UserError

PAGE_NAME = "explorer.html"
#: At most this many held-out examples go into the page (their codes and images).
MAX_POINTS = 1000
#: The held-out images embedded (8 bits per pixel) stay under this many bytes: an MNIST-size run
#: embeds about 760 images, the digits all their 270.
IMAGE_BYTES = 600_000
#: A page over this size is not written (a decoder of millions of weights belongs in a notebook).
MAX_PAGE_BYTES = 50_000_000
#: Points of the Φ⁻¹ grid on each axis: the manifold figure's 15 × 15 (npae.pairs.latent.manifold_grid).
GRID_POINTS = 15


def _b64(array, dtype):
    """The array's values as ``dtype`` (little-endian, C order), base64."""
    data = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    return base64.b64encode(data.tobytes()).decode("ascii")


def _unb64(text, dtype, shape):
    """Inverse of :func:`_b64` (for tests and the round-trip check)."""
    raw = base64.b64decode(text.encode("ascii"))
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(np.float64).reshape(shape)


# ---------------------------------------------------------------------------------------- the decoder
def decoder_steps(model):
    """The decoder of ``model`` as the list of steps the page runs, in forward order: dicts with
    ``kind`` ("dense", "conv_transpose2d", "conv2d", "reshape", "flatten"), ``name`` (the layer's
    parameter prefix, ``decoder.<k>``), the weights (float32, base64) and shapes, and the
    activation with its hyperparameters. Raises :class:`UserError` for a layer the page cannot run.
    """
    from npae.models.conv_layers import ConvAct, ConvLayer, Flatten, Reshape
    from npae.models.layers import DenseAct

    names = {}
    for name, layer, _ in model.decoder.entries:
        names.setdefault(id(layer), name.rsplit(".", 1)[0])
    steps = []
    for step in model.decoder.steps:
        if isinstance(step, DenseAct):
            W, b = step.dense.params["W"], step.dense.params["b"]
            steps.append(dict(kind="dense", name=names[id(step.dense)], n_in=int(W.shape[0]),
                              n_out=int(W.shape[1]), W=_b64(W, "f4"), b=_b64(b, "f4"),
                              activation=step.act_name, hyper=dict(step.hyper)))
        elif isinstance(step, (ConvAct, ConvLayer)):
            conv = step.conv if isinstance(step, ConvAct) else step
            W, b = conv.params["W"], conv.params["b"]
            entry = dict(kind="conv_transpose2d" if conv.transposed else "conv2d", name=names[id(conv)],
                         W_shape=[int(s) for s in W.shape], W=_b64(W, "f4"), b=_b64(b, "f4"),
                         stride=list(conv.stride), padding=list(conv.padding),
                         activation=step.act_name, hyper=dict(getattr(step, "hyper", {})))
            if conv.transposed:
                entry["output_padding"] = list(conv.output_padding)
            steps.append(entry)
        elif isinstance(step, Reshape):
            steps.append(dict(kind="reshape", shape=list(step.shape)))
        elif isinstance(step, Flatten):
            steps.append(dict(kind="flatten"))
        else:
            raise UserError(f"the explorer page cannot run the decoder step {step!r} of this "
                            f"{type(model).__name__} (it runs dense layers, convolutions, "
                            f"transposed convolutions, reshape and flatten)")
    return steps


def _output_map(model):
    """How the decoder's last output becomes what ``model.decode`` returns: "sigmoid" (Bernoulli
    means, or an autoencoder's sigmoid output), "mean" (a Gaussian decoder: the first n_features
    outputs; a learned variance's second head is dropped) or "identity"."""
    from npae.models.vae import VAE

    if isinstance(model, VAE):
        return "sigmoid" if model.likelihood == "bernoulli" else "mean"
    return "sigmoid" if model.output == "sigmoid" else "identity"


def reference_decode(steps, output, n_features, codes):
    """The page's decoder, in NumPy from the embedded (float32) weights: what ``npaeDecode`` must
    return, for the round-trip test. ``codes`` (N, Z + C): a conditional model's one-hot label joined."""
    from npae.pairs import conv, functional as F

    x = np.asarray(codes, dtype=np.float64)
    for s in steps:
        if s["kind"] == "dense":
            W = _unb64(s["W"], "f4", (s["n_in"], s["n_out"]))
            x = F.dense_forward(x, W, _unb64(s["b"], "f4", (s["n_out"],)))[0]
        elif s["kind"] in ("conv2d", "conv_transpose2d"):
            W = _unb64(s["W"], "f4", tuple(s["W_shape"]))
            b = _unb64(s["b"], "f4", (s["W_shape"][1 if s["kind"] == "conv_transpose2d" else 0],))
            if s["kind"] == "conv2d":
                x = conv.conv2d_forward(x, W, b, s["stride"], s["padding"])[0]
            else:
                x = conv.conv_transpose2d_forward(x, W, b, s["stride"], s["padding"],
                                                  s["output_padding"])[0]
        elif s["kind"] == "reshape":
            x = x.reshape(x.shape[0], *s["shape"])
        else:
            x = x.reshape(x.shape[0], -1)
        if s["kind"] in ("dense", "conv2d", "conv_transpose2d"):
            x = F.activation_pair(s["activation"])[0](x, **s["hyper"])[0]
    if output == "sigmoid":
        return F.sigmoid(x)
    return x[:, :n_features]


# ---------------------------------------------------------------------------------------- the page data
def _plane(Z, prior):
    """The map from the latent space to the page's plane: for Z = 2 the axes themselves; above,
    the first two principal axes of the codes, through their mean (``base`` + u·v1 + w·v2, with
    ``base`` the mean's part orthogonal to the plane: the coordinates are plain projections)."""
    d = Z.shape[1]
    if d == 1:
        return dict(kind="line", v1=[1.0], v2=[0.0], base=[0.0])
    if d == 2:
        return dict(kind="axes", v1=[1.0, 0.0], v2=[0.0, 1.0], base=[0.0, 0.0])
    mean = Z.mean(axis=0)  # (d,)
    _, sv, Vt = np.linalg.svd(Z - mean, full_matrices=False)
    v1, v2 = Vt[0], Vt[1]
    base = mean - (mean @ v1) * v1 - (mean @ v2) * v2
    share = sv[:2] ** 2 / max(float(np.sum(sv ** 2)), 1e-300)
    return dict(kind="pca", v1=v1.tolist(), v2=v2.tolist(), base=base.tolist(),
                explained=[float(s) for s in share])


def _points(model, Xt, yt, limit):
    """``(X, y, codes)`` of the first ``limit`` held-out examples (codes: posterior means)."""
    X = Xt[:limit]
    y = None if yt is None else np.asarray(yt)[:limit]
    cond = model.takes_labels
    codes = model.encode(X, y) if cond else model.encode(X)
    return X, y, np.asarray(codes, dtype=np.float64)


def page_data(model, kind, Xt, yt, info, test, *, title=None, max_points=MAX_POINTS):
    """Everything the page shows, as a JSON-ready dict (see :func:`write_page`)."""
    from npae.models.vae import VAE
    from npae.pairs import latent

    D = int(model.n_features_in_)
    limit = int(max(1, min(Xt.shape[0], max_points, max(50, IMAGE_BYTES // D))))
    X, y, codes = _points(model, Xt, yt, limit)
    labelled = y is not None and np.asarray(y).dtype.kind in "iu"
    lo, hi = float(np.min(Xt)), float(np.max(Xt))
    if info.get("unit_interval"):
        lo, hi = 0.0, 1.0
    hi = hi if hi > lo else lo + 1.0
    pixels = np.round(np.clip((X - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)  # (N, D)
    is_vae = isinstance(model, VAE)
    classes = info.get("classes")
    n_classes = int(getattr(model, "n_classes", 0) or 0)
    if labelled:
        n_labels = max(n_classes, int(np.max(yt)) + 1)
        class_names = list(classes) if classes and len(classes) >= n_labels else \
            [str(c) for c in range(n_labels)]
    else:
        class_names = []
    grid = None
    if is_vae and codes.shape[1] >= 2:
        grid = latent.manifold_grid(GRID_POINTS)[::GRID_POINTS, 0].tolist()  # z = Φ⁻¹((k + ½) / 15)
    shape = info.get("image_shape")
    return dict(
        title=title or f"{type(model).__name__} on {info.get('source', 'data')}",
        model=type(model).__name__, kind=kind, is_vae=is_vae, latent_dim=int(codes.shape[1]),
        n_features=D, n_classes=n_classes, class_names=class_names,
        image_shape=[int(s) for s in shape] if shape is not None else None, display=[lo, hi],
        output=_output_map(model), decoder=decoder_steps(model),
        points=dict(n=int(codes.shape[0]), codes=_b64(codes, "f4"), images=_b64(pixels, "u1"),
                    labels=[int(v) for v in y] if labelled else None),
        plane=_plane(codes, is_vae), grid=grid, test=_plain(test or {}),
        provenance=info.get("provenance", ""), n_held_out=int(Xt.shape[0]))


def _plain(value):
    """JSON-ready copy of ``value`` (NumPy scalars and arrays as numbers and lists)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def render(data):
    """The page's HTML: the shell below, the data as JSON and ``explorer.js``, all inline."""
    script = resources.files("npae.app").joinpath("explorer.js").read_text(encoding="utf-8")
    blob = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")  # nothing ends the script
    title = html.escape(data["title"])
    return _SHELL.format(title=title, data=blob, script=script)


def write_page(model, kind, Xt, yt, info, test, path, **kw):
    """Write the explorer page of ``model`` to ``path`` atomically; returns ``path``."""
    from npae.app import runs

    text = render(page_data(model, kind, Xt, yt, info, test, **kw))
    size = len(text.encode("utf-8"))
    if size > MAX_PAGE_BYTES:
        raise UserError(f"the explorer page of this {type(model).__name__} would take {size / 1e6:.0f} MB "
                        f"(over {MAX_PAGE_BYTES / 1e6:.0f} MB: its decoder has too many weights to embed)")
    return runs.atomic_write(path, text)


def write_for_run(model, kind, Xt, yt, info, test, out):
    """What ``npae train`` calls: the page of the run in ``out``, or None (with a note) when the
    page cannot be made (the run's other files are written either way)."""
    from npae.app.runspec import _say

    try:
        return write_page(model, kind, Xt, yt, info, test, os.path.join(out, PAGE_NAME))
    except UserError as err:
        _say(f"{PAGE_NAME} not written: {err}")
        return None


# ---------------------------------------------------------------------------------------- npae explore
def _explore(args):
    """``npae explore RUN_DIR``: write the explorer page of a run trained earlier."""
    from npae.app import runs
    from npae.app.evaluate import _held_out, _read_spec
    from npae.models.autoencoder import Autoencoder
    from npae.models.files import load
    from npae.models.vae import VAE

    run_dir = args.run
    if not os.path.isdir(run_dir):
        what = "does not exist" if not os.path.exists(run_dir) else "is a file, not a folder"
        raise UserError(f"{run_dir!r} {what}; npae explore takes a run folder written by npae train "
                        f"(e.g. runs/vae-digits)")
    found = runs.holds_run(run_dir)
    if "model.npz" not in found:
        if "checkpoint.npz" in found:
            raise UserError(f"{run_dir} holds a checkpoint but no model.npz: the run did not finish; "
                            f"finish it with npae train ... --out {run_dir} --resume")
        raise UserError(f"{run_dir} holds no run (no model.npz or metrics.json): npae explore takes a "
                        f"run folder written by npae train")
    if "metrics.json" not in found:
        raise UserError(f"{run_dir} has model.npz but no metrics.json, the record of the data it was "
                        f"trained on, which the page draws; not a run folder written by npae train")
    target = args.out or os.path.join(run_dir, PAGE_NAME)
    if os.path.isdir(target):
        raise UserError(f"--out {target} is a folder; give the path of the .html file to write")
    if os.path.lexists(target) and not args.overwrite:
        raise UserError(f"{target} already exists; give --overwrite to replace it, or --out another file")
    inside = os.path.abspath(os.path.dirname(os.path.abspath(target))) == os.path.abspath(run_dir)
    lock = runs.RunLock(run_dir).acquire() if inside else None  # no run may be writing there now
    try:
        model_path = os.path.join(run_dir, "model.npz")
        model = load(model_path)
        if not isinstance(model, (VAE, Autoencoder)):
            raise UserError(f"{model_path} holds a {type(model).__name__}; the explorer draws the latent "
                            f"space of an autoencoder or a VAE")
        spec = _read_spec(run_dir, model)
        if spec is None:
            raise UserError(f"{run_dir}/metrics.json describes another model than {model_path}")
        with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as fh:
            metrics = json.load(fh)
        Xt, yt, info = _held_out(spec)
        if Xt.shape[1] != model.n_features_in_:
            raise UserError(f"{model_path} expects {model.n_features_in_} features; the run's held-out "
                            f"data have {Xt.shape[1]}")
        kind = metrics.get("model") or ("vae" if isinstance(model, VAE) else "ae")
        if model.takes_labels and yt is None:
            raise UserError(f"a {type(model).__name__} needs the labels of the data; these have none")
        path = write_page(model, kind, Xt, yt, info, metrics.get("test"), target,
                          max_points=args.max_points)
    finally:
        if lock is not None:
            lock.release()
    size = os.path.getsize(path)
    print(f"wrote {path} ({size / 1e6:.2f} MB): open it in a browser (no server or network needed)")
    return 0


_SHELL = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - npae latent explorer</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 4px 0; }}
.row {{ display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }}
.panel {{ border: 1px solid #ccc; border-radius: 6px; padding: 10px; }}
.caption {{ color: #444; font-size: 13px; max-width: 420px; margin: 6px 0 0 0; }}
canvas {{ image-rendering: pixelated; display: block; }}
#plane {{ cursor: crosshair; border: 1px solid #999; }}
.imgs canvas {{ display: inline-block; border: 1px solid #999; margin-right: 6px; }}
#sliders label {{ display: block; font-size: 12px; font-family: monospace; }}
#sliders input {{ width: 150px; vertical-align: middle; }}
#legend span {{ display: inline-block; margin-right: 8px; font-size: 12px; }}
#legend i {{ display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 3px; }}
code {{ font-size: 12px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="caption" id="run-caption" style="max-width: 1100px"></p>
<div class="row">
  <div class="panel">
    <canvas id="plane" width="440" height="440"></canvas>
    <div id="legend"></div>
    <label><input type="checkbox" id="show-grid" checked> show the &Phi;<sup>-1</sup> grid</label>
    <p class="caption" id="plane-caption"></p>
  </div>
  <div class="panel">
    <div id="class-box" style="display:none">decoder's class y: <select id="class-select"></select></div>
    <canvas id="decoded" width="224" height="224"></canvas>
    <p class="caption" id="decoded-caption" style="max-width: 240px"></p>
    <div id="sliders"></div>
  </div>
  <div class="panel">
    <div class="imgs"><canvas id="picked-data" width="140" height="140"></canvas><canvas
      id="picked-recon" width="140" height="140"></canvas></div>
    <p class="caption" id="picked-caption">Click a point of the plane.</p>
    <canvas id="strip" width="400" height="40"></canvas>
    <p class="caption" id="strip-caption">Click a second point to see the interpolation between the two.</p>
  </div>
</div>
<script type="application/json" id="npae-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""
