// npae latent explorer: the decoder of a trained npae model, run in the page (no server, no network).
// Written by npae/app/explorer.py, which embeds the run's data as JSON in the script #npae-data.
//
// Read the decoder part beside npae/models/layers.py (Sequential, DenseAct) and
// npae/models/conv_layers.py (ConvAct, Reshape, Flatten): the page runs the same steps in the same
// order (decoder.0, decoder.1, ...), each a layer then its activation, on one example at a time.
"use strict";

const DATA = JSON.parse(document.getElementById("npae-data").textContent);

// ------------------------------------------------------------------ the embedded arrays
function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function float32s(text) {  // little-endian float32, as explorer._b64 wrote them; read into doubles
  const bytes = fromBase64(text);
  const view = new DataView(bytes.buffer);
  const out = new Float64Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

// ------------------------------------------------------------------ activations (npae/pairs/functional.py)
function sigmoid(a) {  // 1 / (1 + e^-a) without overflow, as functional.sigmoid
  const e = Math.exp(-Math.abs(a));
  return a >= 0 ? 1 / (1 + e) : e / (1 + e);
}

const ACTIVATIONS = {
  identity: (a) => a,
  relu: (a) => Math.max(a, 0),
  leaky_relu: (a, hyper) => (a > 0 ? a : hyper.slope * a),
  sigmoid: sigmoid,
  tanh: (a) => Math.tanh(a),
  softplus: (a) => Math.max(a, 0) + Math.log1p(Math.exp(-Math.abs(a))),
  elu: (a, hyper) => (a > 0 ? a : hyper.alpha * Math.expm1(Math.min(a, 0))),
};

function activate(x, name, hyper) {  // in place: the activation after a layer
  const f = ACTIVATIONS[name];
  if (!f) throw new Error("npae explorer: unknown activation " + name);
  for (let i = 0; i < x.length; i++) x[i] = f(x[i], hyper);
  return x;
}

// ------------------------------------------------------------------ layers (npae/pairs)
// A tensor of one example: {data: Float64Array, shape: [n] or [C, H, W]} (C order, as NumPy).

function denseForward(x, W, b, nIn, nOut) {  // y = x W + b, W (n_in, n_out): pairs.functional.dense_forward
  const y = new Float64Array(nOut);
  for (let j = 0; j < nOut; j++) y[j] = b[j];
  for (let i = 0; i < nIn; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * nOut;
    for (let j = 0; j < nOut; j++) y[j] += xi * W[row + j];
  }
  return y;
}

function convTranspose2dForward(x, shape, W, wShape, b, stride, pad, outPad) {
  // pairs.conv.conv_transpose2d_forward: each input pixel x[c, h, w] adds x[c, h, w] * W[c] onto the
  // output at (h*sH - pH, w*sW - pW); W is (C_in, C_out, kH, kW); overlapping stamps add up.
  const [Cin, H, Wd] = shape, [, Cout, kH, kW] = wShape;
  const Ho = (H - 1) * stride[0] - 2 * pad[0] + kH + outPad[0];
  const Wo = (Wd - 1) * stride[1] - 2 * pad[1] + kW + outPad[1];
  const y = new Float64Array(Cout * Ho * Wo);
  for (let co = 0; co < Cout; co++) y.fill(b[co], co * Ho * Wo, (co + 1) * Ho * Wo);
  for (let ci = 0; ci < Cin; ci++) {
    for (let h = 0; h < H; h++) {
      for (let w = 0; w < Wd; w++) {
        const v = x[(ci * H + h) * Wd + w];
        if (v === 0) continue;
        for (let co = 0; co < Cout; co++) {
          for (let i = 0; i < kH; i++) {
            const oh = h * stride[0] - pad[0] + i;
            if (oh < 0 || oh >= Ho) continue;
            for (let j = 0; j < kW; j++) {
              const ow = w * stride[1] - pad[1] + j;
              if (ow < 0 || ow >= Wo) continue;
              y[(co * Ho + oh) * Wo + ow] += v * W[((ci * Cout + co) * kH + i) * kW + j];
            }
          }
        }
      }
    }
  }
  return {data: y, shape: [Cout, Ho, Wo]};
}

function conv2dForward(x, shape, W, wShape, b, stride, pad) {
  // pairs.conv.conv2d_forward: y[f, i, j] = b[f] + sum_c sum_k x_pad[c, i*s + k] W[f, c, k]
  const [Cin, H, Wd] = shape, [Cout, , kH, kW] = wShape;
  const Ho = Math.floor((H + 2 * pad[0] - kH) / stride[0]) + 1;
  const Wo = Math.floor((Wd + 2 * pad[1] - kW) / stride[1]) + 1;
  const y = new Float64Array(Cout * Ho * Wo);
  for (let co = 0; co < Cout; co++) {
    for (let oh = 0; oh < Ho; oh++) {
      for (let ow = 0; ow < Wo; ow++) {
        let s = b[co];
        for (let ci = 0; ci < Cin; ci++) {
          for (let i = 0; i < kH; i++) {
            const h = oh * stride[0] - pad[0] + i;
            if (h < 0 || h >= H) continue;
            for (let j = 0; j < kW; j++) {
              const w = ow * stride[1] - pad[1] + j;
              if (w < 0 || w >= Wd) continue;
              s += x[(ci * H + h) * Wd + w] * W[((co * Cin + ci) * kH + i) * kW + j];
            }
          }
        }
        y[(co * Ho + oh) * Wo + ow] = s;
      }
    }
  }
  return {data: y, shape: [Cout, Ho, Wo]};
}

// ------------------------------------------------------------------ the decoder (Sequential.apply)
const STEPS = DATA.decoder.map((s) => Object.assign({}, s, s.W ? {W: float32s(s.W), b: float32s(s.b)} : {}));

function decoderApply(zc) {  // zc: the code, with a conditional model's one-hot label joined [z | y]
  let t = {data: Float64Array.from(zc), shape: [zc.length]};
  for (const s of STEPS) {
    if (s.kind === "dense") {  // DenseAct: Dense then its activation
      t = {data: activate(denseForward(t.data, s.W, s.b, s.n_in, s.n_out), s.activation, s.hyper),
           shape: [s.n_out]};
    } else if (s.kind === "conv_transpose2d") {  // ConvAct(ConvTranspose2D, activation)
      t = convTranspose2dForward(t.data, t.shape, s.W, s.W_shape, s.b, s.stride, s.padding, s.output_padding);
      activate(t.data, s.activation, s.hyper);
    } else if (s.kind === "conv2d") {  // ConvAct(Conv2D, activation)
      t = conv2dForward(t.data, t.shape, s.W, s.W_shape, s.b, s.stride, s.padding);
      activate(t.data, s.activation, s.hyper);
    } else if (s.kind === "reshape") {  // (C*H*W) -> (C, H, W): only the shape changes
      t = {data: t.data, shape: s.shape.slice()};
    } else if (s.kind === "flatten") {
      t = {data: t.data, shape: [t.data.length]};
    }
  }
  return t.data;
}

function decode(z, label) {  // model.decode for one code: Bernoulli means, or Gaussian means
  const zc = Array.from(z);
  for (let c = 0; c < DATA.n_classes; c++) zc.push(c === label ? 1 : 0);  // [z | one-hot y]
  const out = decoderApply(zc);
  if (DATA.output === "sigmoid") return out.map(sigmoid);
  return out.slice(0, DATA.n_features);  // "mean" (a learned variance's second head dropped) or "identity"
}

// npaeDecode([[z...], ...], [y, ...]): the decoder's outputs as nested arrays (what model.decode returns)
window.npaeDecode = function (codes, labels) {
  if (DATA.n_classes && !labels) throw new Error("npaeDecode: a conditional model needs the labels");
  return codes.map((z, i) => Array.from(decode(z, DATA.n_classes ? labels[i] : -1)));
};

// ------------------------------------------------------------------ the page
const Z = DATA.latent_dim, N = DATA.points.n;
const CODES = float32s(DATA.points.codes);
const PIXELS = fromBase64(DATA.points.images);
const LABELS = DATA.points.labels;
const PLANE = DATA.plane;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];
const colour = (k) => (k === null ? "#1f77b4" : PALETTE[k % PALETTE.length]);
const codeOf = (i) => Array.from(CODES.subarray(i * Z, (i + 1) * Z));
const dot = (a, b) => a.reduce((s, v, i) => s + v * b[i], 0);

function toPlane(code) {  // the latent code's coordinates in the plane: projections on v1, v2
  if (PLANE.kind === "line") return [code[0], 0];
  return [dot(code, PLANE.v1), dot(code, PLANE.v2)];
}

function fromPlane(u, w) {  // the code at plane point (u, w): base + u v1 + w v2
  return PLANE.base.map((b, k) => b + u * PLANE.v1[k] + w * PLANE.v2[k]);
}

const PTS = [];
for (let i = 0; i < N; i++) PTS.push(toPlane(codeOf(i)));
const ORDER = (function () {  // the points drawn in a fixed shuffled order, so no class hides another
  const order = Array.from({length: N}, (_, i) => i);
  let seed = 12345;
  for (let i = N - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
})();

const VIEW = (function () {  // a square window around the points (and the prior's grid)
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [u, w] of PTS) { x0 = Math.min(x0, u); x1 = Math.max(x1, u); y0 = Math.min(y0, w); y1 = Math.max(y1, w); }
  if (PLANE.kind === "line") { y0 = -1; y1 = 1; }
  if (DATA.is_vae) { x0 = Math.min(x0, -3); x1 = Math.max(x1, 3); y0 = Math.min(y0, -3); y1 = Math.max(y1, 3); }
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const half = 0.55 * Math.max(x1 - x0, y1 - y0, 1e-6);
  return {x0: cx - half, x1: cx + half, y0: cy - half, y1: cy + half};
})();

const plane = document.getElementById("plane");
const toPixel = ([u, w]) => [(u - VIEW.x0) / (VIEW.x1 - VIEW.x0) * plane.width,
                             (1 - (w - VIEW.y0) / (VIEW.y1 - VIEW.y0)) * plane.height];
const fromPixel = (px, py) => [VIEW.x0 + px / plane.width * (VIEW.x1 - VIEW.x0),
                               VIEW.y1 - py / plane.height * (VIEW.y1 - VIEW.y0)];

const STATE = {code: PLANE.base.slice(), label: LABELS && DATA.n_classes ? 0 : -1, decoded: null,
               picked: [], pickedRecon: null, strip: null};

// ---- drawing an image (or, for data that are not images, a bar chart of the features)
function drawImage(canvas, values, scale01) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const [lo, hi] = DATA.display;
  const grey = (v) => Math.round(255 * Math.min(1, Math.max(0, scale01 ? v : (v - lo) / (hi - lo))));
  const shape = DATA.image_shape;
  if (!shape) {  // features as bars
    const n = values.length, bw = canvas.width / n;
    ctx.fillStyle = "#1f77b4";
    for (let i = 0; i < n; i++) {
      const h = grey(values[i]) / 255 * (canvas.height - 2);
      ctx.fillRect(i * bw, canvas.height - h, Math.max(1, bw - 1), h);
    }
    return;
  }
  const [H, W] = shape, rgb = shape.length === 3;
  const img = ctx.createImageData(W, H);
  for (let p = 0; p < H * W; p++) {
    for (let c = 0; c < 3; c++) img.data[4 * p + c] = grey(values[rgb ? 3 * p + c : p]);
    img.data[4 * p + 3] = 255;
  }
  const tmp = document.createElement("canvas");
  tmp.width = W; tmp.height = H;
  tmp.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function drawPlane() {
  const ctx = plane.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, plane.width, plane.height);
  if (DATA.grid && document.getElementById("show-grid").checked) {  // z = Phi^-1((k + 1/2) / 15)
    ctx.strokeStyle = "rgba(0, 0, 0, 0.15)";
    ctx.lineWidth = 1;
    for (const q of DATA.grid) {
      const [px] = toPixel([q, 0]), [, py] = toPixel([0, q]);
      ctx.beginPath(); ctx.moveTo(px, 0); ctx.lineTo(px, plane.height); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(0, py); ctx.lineTo(plane.width, py); ctx.stroke();
    }
  }
  ctx.strokeStyle = "rgba(0, 0, 0, 0.4)";  // the axes through 0
  const [ox, oy] = toPixel([0, 0]);
  ctx.beginPath(); ctx.moveTo(ox, 0); ctx.lineTo(ox, plane.height); ctx.moveTo(0, oy); ctx.lineTo(plane.width, oy); ctx.stroke();
  for (const i of ORDER) {
    const [px, py] = toPixel(PTS[i]);
    ctx.fillStyle = colour(LABELS ? LABELS[i] : null);
    ctx.globalAlpha = 0.75;
    ctx.beginPath(); ctx.arc(px, py, 3, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.globalAlpha = 1;
  STATE.picked.forEach((i, k) => {  // the picked points, ringed (A, B)
    const [px, py] = toPixel(PTS[i]);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(px, py, 7, 0, 2 * Math.PI); ctx.stroke();
    ctx.fillStyle = "#000"; ctx.font = "bold 12px sans-serif"; ctx.fillText("AB"[k] || "", px + 8, py - 8);
  });
  if (STATE.picked.length === 2) {
    const [ax, ay] = toPixel(PTS[STATE.picked[0]]), [bx, by] = toPixel(PTS[STATE.picked[1]]);
    ctx.strokeStyle = "#000"; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke(); ctx.setLineDash([]);
  }
  const [cx, cy] = toPixel(toPlane(STATE.code));  // the code being decoded
  ctx.strokeStyle = "#d00"; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(cx - 8, cy); ctx.lineTo(cx + 8, cy); ctx.moveTo(cx, cy - 8); ctx.lineTo(cx, cy + 8); ctx.stroke();
}

const fmt = (v) => v.toFixed(2);

function showCode(code) {  // decode the code at once and show it
  STATE.code = code.slice();
  STATE.decoded = decode(STATE.code, STATE.label);
  drawImage(document.getElementById("decoded"), STATE.decoded, false);
  const what = DATA.output === "sigmoid" && DATA.is_vae ? "Bernoulli means p(x_d = 1 | z)" :
    (DATA.is_vae ? "Gaussian means" : "output (what a code decodes to)");
  const y = DATA.n_classes ? `, y = ${DATA.class_names[STATE.label]}` : "";
  document.getElementById("decoded-caption").textContent =
    `The decoder, run in this page, at z = (${STATE.code.map(fmt).join(", ")})${y}: its ${what}. ` +
    "Move the pointer over the plane" + (Z > 1 ? " or the sliders" : "") + " and it decodes that code at once.";
  SLIDERS.forEach((s, k) => { s.value = STATE.code[k]; s.nextSibling.textContent = " " + fmt(STATE.code[k]); });
  drawPlane();
}

function pick(i) {  // a clicked point: its image and reconstruction; the last two: the interpolation
  STATE.picked = STATE.picked.concat([i]).slice(-2);
  const label = LABELS && DATA.n_classes ? LABELS[i] : -1;
  if (DATA.n_classes) { STATE.label = label; document.getElementById("class-select").value = String(label); }
  const D = DATA.n_features, data = Array.from(PIXELS.subarray(i * D, (i + 1) * D), (v) => v / 255);
  drawImage(document.getElementById("picked-data"), data, true);
  STATE.pickedRecon = decode(codeOf(i), label);
  drawImage(document.getElementById("picked-recon"), STATE.pickedRecon, false);
  const cls = LABELS ? ` of class ${DATA.class_names[LABELS[i]]}` : "";
  document.getElementById("picked-caption").textContent =
    `Held-out example #${i}${cls} (left) and its reconstruction (right): the decoder at its ` +
    `${DATA.is_vae ? "posterior mean mu(x)" : "code z(x)"} = (${codeOf(i).map(fmt).join(", ")}).`;
  if (STATE.picked.length === 2) drawStrip();
  showCode(codeOf(i));
}

function drawStrip() {  // decoded codes on the straight line from A to B
  const [a, b] = STATE.picked.map(codeOf), steps = 10, strip = document.getElementById("strip");
  const size = strip.width / steps, cell = document.createElement("canvas");
  cell.width = cell.height = size - 3;  // a white gap between the images
  const ctx = strip.getContext("2d");
  strip.height = size;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, strip.width, strip.height);
  STATE.strip = [];
  for (let s = 0; s < steps; s++) {
    const t = s / (steps - 1), z = a.map((v, k) => (1 - t) * v + t * b[k]);
    const x = decode(z, STATE.label);
    STATE.strip.push(Array.from(x));
    drawImage(cell, x, false);
    ctx.drawImage(cell, s * size, 0);
  }
  const y = DATA.n_classes ? ` All with the decoder's class y = ${DATA.class_names[STATE.label]}: what changes along ` +
    "the strip is what the code holds (style), not the label." : "";
  document.getElementById("strip-caption").textContent =
    `Interpolation: the decoder at (1 - t) z_A + t z_B for t = 0, 1/9, ..., 1, from #${STATE.picked[0]} (left) ` +
    `to #${STATE.picked[1]} (right).${y}` + (DATA.is_vae ? "" : " With no prior, the straight line may cross " +
    "empty stretches of the code space, where the decoder gives blends.");
  drawPlane();
}

// ---- sliders (one per latent dimension), class selector, captions
const SLIDERS = [];
(function setUp() {
  const lim = DATA.is_vae ? 3 : Math.max(...Array.from(CODES, Math.abs), 1e-6) * 1.1;
  const box = document.getElementById("sliders");
  if (Z > 1) {
    for (let k = 0; k < Z; k++) {
      const label = document.createElement("label"), s = document.createElement("input");
      s.type = "range"; s.min = -lim; s.max = lim; s.step = lim / 100; s.value = STATE.code[k];
      s.addEventListener("input", () => { const c = STATE.code.slice(); c[k] = Number(s.value); showCode(c); });
      label.append(`z${k + 1} `, s, document.createTextNode(""));
      box.append(label);
      SLIDERS.push(s);
    }
  }
  if (DATA.n_classes) {
    const sel = document.getElementById("class-select");
    DATA.class_names.slice(0, DATA.n_classes).forEach((name, c) => {
      const o = document.createElement("option"); o.value = String(c); o.textContent = name; sel.append(o);
    });
    sel.addEventListener("change", () => {
      STATE.label = Number(sel.value);
      if (STATE.picked.length === 2) drawStrip();
      showCode(STATE.code);
    });
    document.getElementById("class-box").style.display = "block";
  }
  if (LABELS) {
    const legend = document.getElementById("legend");
    DATA.class_names.forEach((name, c) => {
      const span = document.createElement("span"), dotEl = document.createElement("i");
      dotEl.style.background = colour(c); span.append(dotEl, name); legend.append(span);
    });
  }
  const t = DATA.test || {}, units = t.units || "";
  let run = `${DATA.model} (${DATA.kind}), latent size ${Z}; ${DATA.provenance}. `;
  if (t.neg_elbo !== undefined) {
    run += `Held-out negative ELBO ${t.neg_elbo.toFixed(2)} ${units}; active units ${t.active_units} of ` +
      `${(t.kl_per_dim || []).length}; KL per latent dimension (nats): ` +
      `${(t.kl_per_dim || []).map((v) => v.toFixed(2)).join(", ")}.`;
  } else if (t.recon_error !== undefined) {
    run += `Held-out reconstruction error ${t.recon_error.toFixed(2)} ${units}.`;
  }
  document.getElementById("run-caption").textContent =
    run + ` The plane shows ${N} of the ${DATA.n_held_out} held-out examples.`;
  const who = DATA.is_vae ? "posterior mean mu(x)" : "code z(x)";
  let cap = `Each dot is the ${who} of one held-out example` + (LABELS ? ", coloured by its class" : "") + ". ";
  if (PLANE.kind === "pca") {
    cap += `With ${Z} latent dimensions the plane is that of the codes' first two principal axes ` +
      `(${(100 * PLANE.explained[0]).toFixed(0)}% and ${(100 * PLANE.explained[1]).toFixed(0)}% of their variance), ` +
      "through their mean; the pointer decodes codes of that plane, the sliders any code. ";
    if (DATA.is_vae) cap += "The prior N(0, I) projects to N(0, I) in this plane. ";
  } else if (PLANE.kind === "line") {
    cap += "The latent space is a line (z1 to the right). ";
  } else {
    cap += "z1 runs to the right, z2 up. ";
  }
  if (DATA.grid) {
    cap += "The grey grid marks the codes of the manifold figure, z = Phi^-1(u) at u = (k + 1/2)/15: equal " +
      "steps of prior probability, dense near the origin where the prior puts its mass.";
  } else if (!DATA.is_vae) {
    cap += "An autoencoder has no prior: the empty stretches between the classes decode to blends, " +
      "the gaps that the VAE's KL term closes.";
  }
  if (DATA.n_classes) cap += " The label is the decoder's input too, so the code need not separate the classes.";
  document.getElementById("plane-caption").textContent = cap;
  if (!DATA.grid) document.getElementById("show-grid").parentElement.style.display = "none";
})();

plane.addEventListener("mousemove", (ev) => {
  const r = plane.getBoundingClientRect();
  const [u, w] = fromPixel(ev.clientX - r.left, ev.clientY - r.top);
  showCode(fromPlane(u, PLANE.kind === "line" ? 0 : w));
});

plane.addEventListener("click", (ev) => {
  const r = plane.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
  let best = -1, bestD = 64;  // within 8 pixels
  for (let i = 0; i < N; i++) {
    const [px, py] = toPixel(PTS[i]), d = (px - x) ** 2 + (py - y) ** 2;
    if (d < bestD) { best = i; bestD = d; }
  }
  if (best >= 0) pick(best);
});
document.getElementById("show-grid").addEventListener("change", drawPlane);

// For tests and the curious: the state of the page, and where point i is drawn.
window.npaeExplorer = {
  n: N,
  state: () => ({code: STATE.code.slice(), label: STATE.label, decoded: Array.from(STATE.decoded),
                 picked: STATE.picked.slice(), pickedRecon: STATE.pickedRecon && Array.from(STATE.pickedRecon),
                 strip: STATE.strip}),
  pointPixel: (i) => toPixel(PTS[i]),
  pick: pick,
};

showCode(STATE.code);
