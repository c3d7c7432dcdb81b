// mlp serve's page: a drawing pad whose strokes are posted to /api/predict as a PNG while the
// pen moves (one request in flight, the newest drawing next), and what the answer says. An image
// file is shrunk here first and shown on the pad; it is asked about again when the run changes.
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
let inFlight = false;
let pending = null; // [blob, id] of the drawing that goes next
let latest = 0; // the id of the newest drawing, file or clear: answers to older ones are not shown
let runName = null;
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
  drawing.push(point(event));
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
  const id = ++latest;
  if (picture) {
    send(picture, id);
    return;
  }
  if (strokes.length === 0) {
    pending = null;
    show(null);
    return;
  }
  pad.toBlob((blob) => send(blob, id), "image/png");
}

// One request at a time: a drawing made meanwhile waits, and only the newest is sent.
function send(blob, id) {
  if (inFlight) {
    pending = [blob, id];
    return;
  }
  inFlight = true;
  const query = new URLSearchParams({ top: "10" });
  if (runName) query.set("run", runName);
  const headers = { "Content-Type": blob.type || "application/octet-stream" };
  fetch(`/api/predict?${query}`, { method: "POST", body: blob, headers })
    .catch(() => {
      throw new Error("the server did not answer: is mlp serve still running?");
    })
    .then(async (response) => {
      const answer = await reply(response);
      if (id !== latest) return; // the pad has changed since: a newer answer comes, or none
      if (!response.ok) throw new Error(answer.error);
      show(answer);
    })
    .catch((error) => {
      if (id === latest) showError(error.message);
    })
    .finally(() => {
      inFlight = false;
      if (pending) {
        const [next, nextId] = pending;
        pending = null;
        send(next, nextId);
      }
    });
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
function unitsPicture(rows, height) {
  const values = rows.flat();
  const signedValues = values.some((v) => v < 0);
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
  runName = name;
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
