// mlp serve's page: a drawing pad whose strokes are posted to /api/predict as a PNG while the
// pen moves (one request in flight, the newest drawing next), and what the answer says. An image
// file is shrunk here first and shown on the pad; it is asked about again when the run changes.
// Each answer is then asked about at /api/backprop, as one request in flight too, for the panel
// that shows the backward pass for a label the learner picks, and SGD steps on a copy of the run.
"use strict";

const PEN = 18; // px on the 280-px pad: MNIST's 2-px pen at 28×28 on a digit drawn ~200 px tall
// An image file is shrunk before it is sent: a phone's photo (12 MP, 3-6 MB) is slow to send
// and to decode, and its digit is read at 28×28. At 1024 px, a digit a fifth of the photo tall
// is ~200 px, as drawn on the pad.
const MAX_SIDE = 1024;
const MAX_BYTES = 2 ** 20; // a shrunk image's PNG above this goes as JPEG: a photo's grain does not compress
const PAD_NOTE = "or drop an image file on the page";
const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const $ = (id) => document.getElementById(id);
let strokes = [];
let drawing = null;
let runName = null;
let runClasses = [];
let picture = null; // the image file as sent, while it is what the pad shows
let reading = 0; // the file being read: a stroke or a later file, which bump it, drop that one

function clearPad() {
  ink.fillStyle = "white";
  ink.fillRect(0, 0, pad.width, pad.height);
}

function redraw() {
  clearPad();
  ink.strokeStyle = "black";
  ink.lineWidth = PEN;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  for (const stroke of strokes) {
    ink.beginPath();
    ink.moveTo(stroke[0][0], stroke[0][1]);
    for (const [x, y] of stroke) ink.lineTo(x, y);
    if (stroke.length === 1) ink.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
    ink.stroke();
  }
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
}

pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  leavePicture();
  drawing = [point(event)];
  strokes.push(drawing);
  redraw();
  ask();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  // every point the pen passed: a busy page gets one event a frame, the others coalesced in it
  const passed = event.getCoalescedEvents?.() ?? [];
  for (const each of passed.length ? passed : [event]) drawing.push(point(each));
  redraw();
  ask();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    drawing = null;
    ask();
  });
}
$("undo").addEventListener("click", () => {
  if (picture) leavePicture();
  else strokes.pop();
  redraw();
  ask();
});
$("clear").addEventListener("click", () => {
  leavePicture();
  strokes = [];
  redraw();
  ask();
});

function ask() {
  const id = predictions.ticket();
  if (picture) {
    predictions.send(picture, id);
    return;
  }
  if (strokes.length === 0) {
    predictions.drop();
    show(null);
    shownBackprop(null, null);
    return;
  }
  pad.toBlob((blob) => predictions.send(blob, id), "image/png");
}

// Requests of one kind, one at a time: one asked for meanwhile waits, only the newest, and an
// answer is shown only while nothing newer has been asked for (`ticket()` is the asking).
function oneAtATime(post, shown, failed) {
  let inFlight = false;
  let pending = null; // [body, id] of the request that goes next
  let latest = 0; // the id of the newest request asked for: answers to older ones are not shown
  let given = 0; // the newest id given to send: an older body (toBlob's may come late) is not sent
  function send(body, id) {
    if (id < given) return;
    given = id;
    if (inFlight) {
      pending = [body, id];
      return;
    }
    inFlight = true;
    post(body)
      .then((answer) => id === latest && shown(answer, body))
      .catch((error) => id === latest && failed(error.message))
      .finally(() => {
        inFlight = false;
        if (pending) {
          const [next, nextId] = pending;
          pending = null;
          send(next, nextId);
        }
      });
  }
  const drop = () => {
    pending = null;
    latest++;
  };
  return { send, drop, ticket: () => ++latest };
}

const predictions = oneAtATime(
  (blob) => posted("/api/predict", { top: "10" }, blob),
  (answer, blob) => {
    show(answer);
    shownBackprop(blob, answer);
  },
  (message) => {
    showError(message);
    shownBackprop(null, null);
  },
);

// POST `body` to `path` with `params` and the run chosen; the answer's JSON, or its error thrown.
async function posted(path, params, body) {
  const query = new URLSearchParams(params);
  if (runName) query.set("run", runName);
  const headers = body ? { "Content-Type": body.type || "application/octet-stream" } : {};
  const response = await fetch(`${path}?${query}`, { method: "POST", body, headers }).catch(() => {
    throw new Error("the server did not answer: is mlp serve still running?");
  });
  const answer = await reply(response);
  if (!response.ok) throw new Error(answer.error);
  return answer;
}

// The server's errors are JSON, {"error": …, "status": …}; what stands in its way may answer otherwise.
async function reply(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { error: `${response.status} ${response.statusText}: ${text.slice(0, 200)}` };
  }
}

function showError(message) {
  show(null);
  $("answer").textContent = "no answer";
  $("error").textContent = message;
}

function show(answer) {
  $("error").textContent = "";
  if (answer === null) {
    $("answer").textContent = "draw a digit";
    $("bars").replaceChildren();
    for (const id of ["seen", "why"]) $(id).getContext("2d").clearRect(0, 0, 168, 168);
    $("why-label").textContent = "";
    $("layers").replaceChildren();
    return;
  }
  const [best] = answer.predictions;
  const score = Object.keys(best).find((key) => key !== "class" && key !== "name");
  const detail = Object.assign(document.createElement("span"), { className: "score" });
  detail.textContent = `  (${score} ${best[score].toFixed(3)})`;
  $("answer").replaceChildren(best.name, detail);
  const byClass = [...answer.predictions].sort((a, b) => a.class - b.class);
  $("bars").replaceChildren(...byClass.map((p) => bar(p, score, p.class === best.class)));
  paintImage($("seen"), answer.input, (v) => [v, v, v]);
  const scale = Math.max(1e-12, ...answer.gradient.flat().map(Math.abs));
  paintImage($("why"), answer.gradient, (g) => signed(g / scale));
  $("why-label").textContent = `towards ${best.name}, away from ${answer.runner_up.name} (the runner-up)`;
  const strips = answer.activations.map((values, i) => layerStrip(values, answer.layer_names[i]));
  if (answer.states) strips.push(statesPicture(answer.states));
  $("layers").replaceChildren(...strips);
}

function bar(prediction, score, top) {
  const row = document.createElement("div");
  row.className = top ? "bar top" : "bar";
  const value = prediction[score];
  row.innerHTML = `<span></span><span class="track"><span class="fill" style="display:block;width:${(100 * value).toFixed(1)}%"></span></span><span class="value">${value.toFixed(3)}</span>`;
  row.firstChild.textContent = prediction.name;
  return row;
}

function signed(g) {
  // red where the pixel pushes towards the answer, blue where away, white where neither
  const strength = Math.round(255 * (1 - Math.min(1, Math.abs(g))));
  return g >= 0 ? [255, strength, strength] : [strength, strength, 255];
}

function paintImage(canvas, rows, colour) {
  const size = rows.length;
  const small = document.createElement("canvas");
  small.width = small.height = size;
  const image = small.getContext("2d").createImageData(size, size);
  rows.flat().forEach((value, i) => {
    image.data.set([...colour(value), 255], 4 * i);
  });
  small.getContext("2d").putImageData(image, 0, 0);
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function layerStrip(values, name) {
  const signedValues = values.some((v) => v < 0); // tanh's: −1 to 1
  const active = signedValues ? "" : `, ${values.filter((v) => v > 0).length} active`;
  return labelled(`${name}: ${values.length} units${active}`, unitsPicture([values], 18));
}

function statesPicture(states) {
  const label = `h(t) after each row t, top (t = 1) to bottom (t = ${states.length}): what the network carries as it reads`;
  return labelled(label, unitsPicture(states, 4 * states.length));
}

// rows of unit values as pixels: signed ones red (> 0) and blue (< 0), the others brightness
function unitsPicture(rows, height, signedValues = rows.flat().some((v) => v < 0)) {
  const values = rows.flat();
  const top = Math.max(1e-12, ...values.map(Math.abs));
  const canvas = document.createElement("canvas");
  canvas.width = rows[0].length;
  canvas.height = rows.length;
  canvas.style.height = `${height}px`;
  const image = canvas.getContext("2d").createImageData(canvas.width, canvas.height);
  values.forEach((v, i) => {
    const level = Math.round((255 * Math.max(0, v)) / top);
    image.data.set([...(signedValues ? signed(v / top) : [level, level, Math.round(level / 2)]), 255], 4 * i);
  });
  canvas.getContext("2d").putImageData(image, 0, 0);
  return canvas;
}

function labelled(text, canvas) {
  const box = document.createElement("div");
  box.className = "layer";
  const label = document.createElement("div");
  label.className = "hint";
  label.textContent = text;
  box.append(label, canvas);
  return box;
}

// Images from the file picker or dropped on the page are classified the same way: shrunk to
// MAX_SIDE here, shown on the pad, kept. One the browser cannot decode goes as it is, so the
// server says what is wrong with it (or reads a format the browser does not).
async function classifyFile(file) {
  const id = ++reading;
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" }).catch(() => null);
  const size = bitmap && [bitmap.width, bitmap.height];
  const small = bitmap && id === reading ? shrunk(bitmap) : null;
  const sent = small ? await encoded(small, size, file) : file;
  bitmap?.close();
  if (id !== reading) return; // drawn on, or another file chosen, meanwhile
  strokes = [];
  picture = sent;
  if (small) paintPicture(small);
  else redraw();
  $("pad-note").textContent = pictureNote(file, size, sent, small);
  ask();
}

// Back to drawing: the image shown is forgotten, and one still being read is dropped.
function leavePicture() {
  reading++;
  if (!picture) return;
  picture = null;
  strokes = [];
  $("pad-note").textContent = PAD_NOTE;
}

// Halving first: a single drawImage from 4032 to 1024 px reads too few of the pixels in some
// browsers, and the photo's grain aliases into specks.
function shrunk(bitmap) {
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  let image = bitmap;
  while (image.width / 2 >= width) image = resized(image, Math.round(image.width / 2), Math.round(image.height / 2));
  return resized(image, width, height);
}

function resized(image, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  context.fillStyle = "white"; // transparency is white, as the server reads it (and JPEG has none)
  context.fillRect(0, 0, width, height);
  context.imageSmoothingQuality = "high";
  context.drawImage(image, 0, 0, width, height);
  return canvas;
}

// The file itself when it needs no shrinking (what mlp predict would read), else PNG, or JPEG
// when the PNG is large.
async function encoded(canvas, [width, height], file) {
  if (canvas.width === width && canvas.height === height && file.size <= MAX_BYTES) return file;
  const png = await blobOf(canvas, "image/png");
  return png.size <= MAX_BYTES ? png : blobOf(canvas, "image/jpeg", 0.92);
}

const blobOf = (canvas, type, quality) => new Promise((resolve) => canvas.toBlob(resolve, type, quality));

function paintPicture(image) {
  clearPad();
  const scale = Math.min(pad.width / image.width, pad.height / image.height);
  const [width, height] = [image.width * scale, image.height * scale];
  ink.imageSmoothingQuality = "high";
  ink.drawImage(image, (pad.width - width) / 2, (pad.height - height) / 2, width, height);
}

function pictureNote(file, size, sent, small) {
  if (!small) return `${file.name}: sent as it is (this browser cannot show it)`;
  const how = sent === file ? "sent as it is" : `sent at ${small.width} × ${small.height}`;
  return `${file.name}, ${size.join(" × ")}, ${how}. Draw on the pad to go back to drawing.`;
}

function takeFile(file) {
  classifyFile(file).catch((error) => showError(`cannot read ${file.name}: ${error.message}`));
}

$("file").addEventListener("change", (event) => {
  if (event.target.files[0]) takeFile(event.target.files[0]);
  event.target.value = ""; // so that choosing the same file again reads it again
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files[0]) takeFile(event.dataTransfer.files[0]);
});

// The backward pass panel (equations.md §8): for the image last answered and a label y, what
// /api/backprop computed, on this page's own copy of the run once it has taken steps.
// The server keeps a copy per session, the page's own name (not crypto.randomUUID: a page served
// to a phone over the network is not a secure context, where alone that exists).
const SESSION = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
let label = null; // the class picked; null: the network's answer
let shownBlob = null; // the image of the answer shown: what a step and a new label are for
let shownLabel = null; // the label of the panel shown
let stepsTaken = 0; // by this page's copy since the run was chosen or reset
let stepping = false;
let copiesKept = null; // at most this many copies on the server, for all its pages

const backprops = oneAtATime(
  (blob) => posted("/api/backprop", { top: "10", session: SESSION, ...(label !== null && { label }) }, blob),
  showBackprop,
  (message) => ($("bp-error").textContent = message),
);

// The panel follows the answers: each is asked about again, the newest next (null: none).
function shownBackprop(blob, answer) {
  shownBlob = blob;
  $("bp-step").disabled = stepping || !blob;
  if (answer === null) {
    backprops.drop();
    showBackprop(null);
  } else backprops.send(blob, backprops.ticket());
}

function askBackprop() {
  if (shownBlob) backprops.send(shownBlob, backprops.ticket());
}

function labelButtons() {
  if (label !== null && label >= runClasses.length) label = null;
  const buttons = runClasses.map((name, k) => {
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: name });
    button.addEventListener("click", () => {
      label = label === k ? null : k; // the one picked, again: back to the network's answer
      markLabel(label);
      askBackprop();
    });
    return button;
  });
  $("bp-labels").replaceChildren(...buttons);
}

function markLabel(shown) {
  [...$("bp-labels").children].forEach((button, k) => {
    button.classList.toggle("chosen", k === shown);
    button.setAttribute("aria-pressed", String(k === shown));
  });
}

function showBackprop(answer) {
  $("bp-error").textContent = "";
  for (const id of ["bp-loss", "bp-on", "bp-output", "bp-check", "bp-hidden", "bp-first", "bp-time"]) {
    $(id).replaceChildren();
  }
  shownLabel = answer && answer.label;
  markLabel(answer ? answer.label : label);
  if (answer === null) {
    $("bp-label-note").textContent = "draw a digit above";
    return;
  }
  const name = answer.label_name;
  $("bp-label-note").textContent =
    label === null
      ? `y = ${name}, the network's answer: pick another class to ask "what if this were a …?"`
      : `y = ${name}, picked (click ${name} again to follow the answer)`;
  const softmax = answer.output.startsWith("softmax");
  const lossFormula = softmax ? `−log ŷ<sub>${answer.label}</sub>` : "½‖a − y‖²";
  $("bp-loss").innerHTML = `C = ${lossFormula} = <b>${answer.loss.toPrecision(3)}</b> <span class="cite">§8a</span>`;
  const [best] = answer.predictions;
  const plural = answer.steps > 1 ? "s" : "";
  const who = answer.steps ? `this page's copy of the run after ${answer.steps} step${plural}` : "the run as trained";
  $("bp-on").textContent = `Shown for ${who}, which answers ${best.name} (${scoreOf(best).toFixed(3)}).`;
  copiesKept = answer.copies;
  if (answer.steps < stepsTaken) dropped("the panel shows the run as trained");
  stepsTaken = answer.steps;
  const rnn = answer.step_deltas !== null;
  $("bp-output").replaceChildren(...outputDelta(answer, softmax, rnn));
  $("bp-check").replaceChildren(...checkTable(answer.check));
  $("bp-hidden").replaceChildren(...hiddenDeltas(answer.deltas, answer.slopes));
  const inputs = inputGradient(answer.input_gradient, rnn);
  if (rnn) $("bp-time").replaceChildren(...throughTime(answer.step_deltas, answer.step_norms), inputs);
  else $("bp-first").replaceChildren(...firstLayer(answer.units), inputs);
}

const scoreOf = (prediction) => prediction.probability ?? prediction.score;
const minus = (text) => text.replace(/^-/, "−");
const number = (v) => minus(v !== 0 && Math.abs(v) < 0.001 ? v.toExponential(1) : v.toFixed(3));
const cite = (section) => ` <span class="cite">equations.md ${section}</span>`;

function caption(html, tag = "figcaption") {
  return Object.assign(document.createElement(tag), { innerHTML: html });
}

// δ^L = ŷ − y (softmax) or (a − y) ⊙ σ'(z^L) (mse): ten signed bars on one scale, |δ| ≤ 1
function outputDelta(answer, softmax, rnn) {
  const delta = answer.deltas.at(-1);
  const L = answer.deltas.length;
  const name = rnn ? "δ = ∂C/∂o" : `δ<sup>${L}</sup> = ∂C/∂z<sup>${L}</sup>`;
  const formula = softmax ? "ŷ − y" : `(a − y) ⊙ σ′(z${rnn ? "" : `<sup>${L}</sup>`})`;
  const bars = delta.map((value, k) => {
    const row = document.createElement("div");
    row.className = k === answer.label ? "bar signed top" : "bar signed";
    const width = (50 * Math.min(1, Math.abs(value))).toFixed(1);
    const fill = `<span class="fill ${value >= 0 ? "up" : "down"}" style="width:${width}%"></span>`;
    row.innerHTML = `<span></span><span class="track">${fill}</span><span class="value">${number(value)}</span>`;
    row.firstChild.textContent = runClasses[k] ?? k;
    return row;
  });
  return [caption(`${name} = ${formula}, the output's delta${cite("§8a")}`), ...bars];
}

// δ^l = (W^{l+1})ᵀδ^{l+1} ⊙ σ'(z^l), the layer nearest the output first, as the recursion runs
function hiddenDeltas(deltas, slopes) {
  return slopes
    .map((slope, i) => {
      const [l, above] = [`<sup>${i + 1}</sup>`, `<sup>${i + 2}</sup>`];
      const off = slope.filter((s) => s === 0).length;
      const passed = off ? `: ${off} of ${slope.length} units were off (σ′ = 0) and pass nothing back` : "";
      const box = Object.assign(document.createElement("div"), { className: "layer" });
      box.append(
        caption(`δ${l} = (W${above})ᵀδ${above} ⊙ σ′(z${l})${passed}${cite("§8b")}`, "div"),
        stripRow(`δ${l}`, unitsPicture([deltas[i]], 18, true)),
        stripRow(`σ′(z${l})`, unitsPicture([slope], 10, false)),
      );
      return box;
    })
    .reverse();
}

function stripRow(name, canvas) {
  const row = Object.assign(document.createElement("div"), { className: "strip" });
  row.append(caption(name, "span"), canvas);
  return row;
}

function signedImage(rows, side) {
  const canvas = Object.assign(document.createElement("canvas"), { width: side, height: side });
  const scale = Math.max(1e-12, ...rows.flat().map(Math.abs));
  paintImage(canvas, rows, (v) => signed(v / scale));
  return canvas;
}

// the units of the first layer whose |δ¹_j| is largest: ∂C/∂W¹_j = δ¹_j xᵀ beside W¹_j
function firstLayer(units) {
  if (!units.length) return [];
  const text = `The ${units.length} first-layer units j with the largest |δ¹<sub>j</sub>|: left, the gradient of
    their weights ∂C/∂W¹<sub>j</sub> = δ¹<sub>j</sub>xᵀ (x is the normalised input: its background is below 0);
    right, their weights W¹<sub>j</sub>, what the unit looks for${cite("§8c")}`;
  const figures = units.map((unit) => {
    const box = document.createElement("figure");
    const pair = Object.assign(document.createElement("div"), { className: "pair" });
    pair.append(signedImage(unit.gradient, 100), signedImage(unit.weights, 100));
    box.append(pair, caption(`unit ${unit.unit}: δ¹<sub>${unit.unit}</sub> = ${number(unit.delta)}`));
    return box;
  });
  return [caption(text, "p"), ...figures];
}

function inputGradient(rows, rnn) {
  const box = Object.assign(document.createElement("figure"), { className: "input" });
  const how = rnn ? ", its row t Uᵀr<sup>(t)</sup>," : " = (W¹)ᵀδ¹";
  const text = `∂C/∂x${how} per pixel: <span class="towards">red</span> where more ink raises C,
    <span class="away">blue</span> where it lowers it${cite("§8c")}`;
  box.append(signedImage(rows, 168), caption(text));
  return box;
}

// an RNN's r^(t) = ∂C/∂z^(t), a row a step, and ‖r^(t)‖: how the error fades going back in time
function throughTime(steps, norms) {
  const T = steps.length;
  const [t, next, last] = ["<sup>(t)</sup>", "<sup>(t+1)</sup>", `<sup>(${T})</sup>`];
  const recursion = `r${t} = ∂C/∂z${t} = (Wᵀr${next}) ⊙ σ′(z${t}), from r${last} = (Vᵀδ) ⊙ σ′(z${last}):
    rows t = 1 (top) to ${T}, ${steps[0].length} units across${cite("§8d")}`;
  const picture = Object.assign(document.createElement("div"), { className: "layer", id: "bp-steps" });
  picture.append(caption(recursion, "div"), unitsPicture(steps, 4 * T, true));
  const curve = Object.assign(document.createElement("figure"), { className: "norms" });
  const text = `‖r${t}‖ for t = 1 to ${T}: the error read at t = ${T}, carried back${cite("§8d")}`;
  curve.append(normCurve(norms), caption(text));
  return [picture, curve];
}

function normCurve(norms) {
  const [width, height, left, bottom] = [360, 130, 44, 22];
  const top = Math.max(1e-12, ...norms);
  const x = (t) => left + ((width - left - 8) * t) / Math.max(1, norms.length - 1);
  const y = (v) => height - bottom - ((height - bottom - 10) * v) / top;
  const points = norms.map((v, t) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const box = document.createElement("div");
  box.innerHTML = `<svg id="bp-norms" class="curve" viewBox="0 0 ${width} ${height}" role="img"
    aria-label="‖r(t)‖ for each step t">
    <path class="axis" d="M${left},${y(top)} V${y(0)} H${width - 8}"/>
    <polyline points="${points}"/>
    <text x="${left - 4}" y="${y(top) + 4}" text-anchor="end">${top.toPrecision(2)}</text>
    <text x="${left - 4}" y="${y(0) + 4}" text-anchor="end">0</text>
    <text x="${x(0)}" y="${height - 4}">t = 1</text>
    <text x="${x(norms.length - 1)}" y="${height - 4}" text-anchor="end">t = ${norms.length}</text></svg>`;
  return box.firstElementChild;
}

// the live gradient check: the backward pass's ∂C/∂θ beside (C(θ + ε) − C(θ − ε)) / 2ε
function checkTable(rows) {
  if (rows === null) return [caption(`no live check: this network is too large to copy in float64 for it${cite("§8e")}`)];
  const table = document.createElement("table");
  const heads = ["tensor", "entry", "analytic", "numeric", "rel. error"];
  table.innerHTML = `<thead><tr>${heads.map((head) => `<th>${head}</th>`).join("")}</tr></thead>`;
  const body = table.createTBody();
  for (const row of rows) {
    const written = (v, digits, how) => (v === null ? "not finite" : minus(v[how](digits)));
    const error = written(row.relative_error, 1, "toExponential") + (row.kink ? " kink" : "");
    const [analytic, numeric] = [row.analytic, row.numeric].map((v) => written(v, 7, "toPrecision"));
    const line = body.insertRow();
    for (const text of [row.tensor, row.index.join(", "), analytic, numeric, error]) line.insertCell().textContent = text;
  }
  const scroll = Object.assign(document.createElement("div"), { className: "scroll" });
  scroll.append(table);
  const text = `a live gradient check in float64 of the entry of each tensor whose gradient is largest${cite("§8e")}`;
  const kink = "kink: a ReLU changed sides between θ ± ε, where the difference means nothing";
  return [caption(text), scroll, ...(rows.some((row) => row.kink) ? [caption(kink)] : [])];
}

// One SGD step on this page's copy, for the image and label shown; then the panel again.
async function takeStep() {
  const blob = shownBlob;
  if (!blob || stepping) return;
  stepping = true;
  $("bp-step").disabled = true;
  $("bp-error").textContent = "";
  try {
    const y = label ?? shownLabel; // the label of the panel shown
    const params = { top: "10", session: SESSION, lr: $("bp-lr").value, ...(y !== null && { label: y }) };
    const taken = await posted("/api/step", params, blob);
    copiesKept = taken.copies;
    if (taken.fresh && stepsTaken > 0) dropped("this step started again from the run as trained");
    stepsTaken = taken.steps;
    const [best] = taken.predictions;
    const [before, after] = [taken.loss_before, taken.loss_after].map((c) => c.toPrecision(3));
    const line = document.createElement("li");
    line.textContent = `step ${taken.steps}: C ${before} → ${after} for y = ${taken.label_name} (η ${taken.lr});
      answer ${best.name} (${scoreOf(best).toFixed(3)})`;
    $("bp-log").append(line);
    while ($("bp-log").children.length > 8) $("bp-log").firstChild.remove();
    askBackprop();
  } finally {
    stepping = false;
    $("bp-step").disabled = !shownBlob;
  }
}

function dropped(what) {
  const most = copiesKept === null ? "a few copies" : `${copiesKept} copies`;
  $("bp-dropped").textContent = `This page's copy of the run was dropped (the server keeps at most ${most}
    for all its pages, the one used longest ago dropped first): ${what}.`;
}

// Back to the run as trained: the server forgets this page's copy.
async function resetCopy() {
  $("bp-log").replaceChildren();
  $("bp-dropped").textContent = "";
  stepsTaken = 0;
  if (runName) await posted("/api/reset", { session: SESSION }, null);
}

const panelError = (error) => ($("bp-error").textContent = error.message);
$("bp-step").addEventListener("click", () => takeStep().catch(panelError));
$("bp-reset").addEventListener("click", () => resetCopy().then(askBackprop).catch(panelError));

// The runs: the select lists them as mlp runs does; the chosen one's pictures, config, metrics.
async function loadRuns() {
  const { runs } = await (await fetch("/api/runs")).json();
  const select = $("run");
  select.replaceChildren(
    ...runs.map((run) => {
      const option = document.createElement("option");
      option.value = run.run;
      const accuracy = typeof run.test_acc === "number" ? run.test_acc.toFixed(4) : "-";
      option.textContent = `${run.run} — ${run.dataset || "?"}, test ${accuracy}, ${run.status}`;
      option.disabled = run.unservable !== null;
      option.title = run.unservable || "";
      return option;
    }),
  );
  const ready = runs.filter((run) => run.unservable === null);
  const best = ready.sort((a, b) => (b.test_acc || 0) - (a.test_acc || 0))[0];
  if (!best) showNoRuns(runs);
  else {
    select.value = best.run;
    await chooseRun(best.run);
  }
}

// A newcomer who serves an empty folder learns at once what to do, not after drawing.
function showNoRuns(runs) {
  const why = runs.map((run) => `${run.run}: ${run.unservable}`).join("; ");
  $("no-runs-why").textContent = runs.length
    ? `None of the runs in this folder can answer for 28×28 images (${why}).`
    : "No trained runs in this folder yet.";
  $("no-runs").hidden = false;
  if (!runs.length) $("run").replaceChildren(new Option("no runs yet", "", true, true));
  $("run").disabled = !runs.length;
}

async function chooseRun(name) {
  const response = await fetch(`/api/runs/${encodeURIComponent(name)}`);
  const run = await reply(response);
  if (!response.ok) throw new Error(run.error);
  const stepped = stepsTaken > 0 || $("bp-log").children.length > 0;
  runName = name;
  runClasses = run.classes;
  labelButtons();
  if (stepped) resetCopy().catch(panelError); // the copy was of the old run
  $("run-summary").textContent = `${run.dataset || "?"}: ${run.classes.join(", ")}`;
  const base = `/api/runs/${encodeURIComponent(name)}/`;
  $("pictures").replaceChildren(
    ...run.files
      .filter((file) => file.endsWith(".png"))
      .map((file) => Object.assign(document.createElement("img"), { src: base + file, alt: file, title: file })),
  );
  $("config").textContent = run.config || "(no config.yaml)";
  $("metrics").textContent = JSON.stringify(run.metrics, null, 2);
  ask();
}

$("run").addEventListener("change", (event) =>
  chooseRun(event.target.value).catch((error) => showError(`cannot show the run: ${error.message}`)),
);
clearPad();
loadRuns().catch((error) => showError(`cannot list the runs: ${error.message}`));
