// rns console: the page. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Live: each camera's overlay arrives as JPEG pictures by long poll (GET
// /api/cameras/<cam>/picture?after=<seq>), at most the console's fps. Freeze pins the picture on
// screen (POST /api/frames with its seq): the console keeps that picture's raw camera frame, which
// is what an exemplar is taught from. Drawing (box, points, scribble) uses pointer events, so mouse,
// pen and touch work alike; coordinates are sent in full-resolution frame pixels. Preview asks the
// node for the mask it would store (nothing stored); Confirm stores exactly that mask.
// The API's token lives in an HttpOnly cookie the console set when the page was opened.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  cameras: [], camera: null, seq: 0, picture: null, // picture: {bitmap, seq, stamp, width, height, teachable}
  frozen: null, // {frame, camera, width, height, raw: bitmap, overlay: bitmap}
  tool: "box", box: null, points: [], strokes: [], drag: null,
  preview: null, // {id, image, className}
  classes: [], version: null, polling: 0,
};
// What the page measured (read by the benchmark and the browser test).
window.rnsMetrics = { firstPictureMs: null, shown: [] };

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data = {};
  try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { error: text }; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function say(text, kind) {
  const el = $("message");
  el.textContent = text;
  el.className = kind || "";
}

// ------------------------------------------------------------------ live pictures
async function pollPictures(token) {
  while (token === state.polling) {
    if (state.frozen || !state.camera) return;
    let response;
    try {
      response = await fetch(`/api/cameras/${encodeURIComponent(state.camera)}/picture?after=${state.seq}&wait=10`);
    } catch (e) {
      $("stage-note").textContent = "console unreachable, retrying ...";
      await new Promise((r) => setTimeout(r, 1000)); // retry back-off
      continue;
    }
    if (token !== state.polling || state.frozen) return;
    if (response.status === 204) continue;
    if (!response.ok) {
      let reason = response.statusText;
      try { reason = (await response.json()).error; } catch (e) { /* keep the status text */ }
      $("stage-note").textContent = reason;
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    const h = response.headers;
    const bitmap = await createImageBitmap(await response.blob());
    if (token !== state.polling || state.frozen) return;
    state.seq = Number(h.get("x-seq"));
    state.picture = { bitmap, seq: state.seq, stamp: h.get("x-stamp"), frameId: h.get("x-frame-id"),
                      width: Number(h.get("x-frame-width")), height: Number(h.get("x-frame-height")),
                      teachable: h.get("x-teachable") === "1" };
    draw();
    const shownAt = performance.timeOrigin + performance.now();
    if (window.rnsMetrics.firstPictureMs === null) window.rnsMetrics.firstPictureMs = performance.now();
    window.rnsMetrics.shown.push({ seq: state.seq, stamp: state.picture.stamp, shownAt });
    if (window.rnsMetrics.shown.length > 500) window.rnsMetrics.shown.shift();
    $("stage-note").textContent = state.picture.teachable ? "" : "live (this picture's camera frame was not received: freeze the next one)";
    $("freeze").disabled = false;
  }
}

function startLive() {
  state.polling += 1;
  pollPictures(state.polling);
}

// ------------------------------------------------------------------ drawing
function canvasImage() {
  if (!state.frozen) return state.picture && state.picture.bitmap;
  return $("show-labels").checked ? state.frozen.overlay : state.frozen.raw;
}

function draw() {
  const canvas = $("canvas");
  const image = canvasImage();
  if (!image) return;
  if (canvas.width !== image.width || canvas.height !== image.height) {
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.style.setProperty("--aspect", String(image.width / image.height));
  }
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  if (!state.frozen) return;
  const s = canvas.width / state.frozen.width; // frame pixels -> canvas pixels
  if (state.preview) ctx.drawImage(state.preview.image, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = Math.max(2, canvas.width / 320);
  if (state.box) {
    const [x0, y0, x1, y1] = state.box;
    ctx.strokeStyle = "#ffd400";
    ctx.strokeRect(x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s);
  }
  for (const p of state.points) {
    ctx.beginPath();
    ctx.arc(p.x * s, p.y * s, Math.max(5, canvas.width / 100), 0, 2 * Math.PI);
    ctx.fillStyle = p.positive ? "#12b76a" : "#f04438";
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
  ctx.strokeStyle = "rgba(255, 212, 0, 0.85)";
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.lineWidth = brushWidth() * s;
  for (const stroke of state.strokes) {
    ctx.beginPath();
    stroke.forEach(([x, y], i) => (i ? ctx.lineTo(x * s, y * s) : ctx.moveTo(x * s, y * s)));
    if (stroke.length === 1) ctx.lineTo(stroke[0][0] * s + 0.1, stroke[0][1] * s);
    ctx.stroke();
  }
}

function brushWidth() { // frame pixels
  return state.frozen ? Math.max(4, Math.round(state.frozen.width / 60)) : 8;
}

function framePoint(event) {
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  const fx = ((event.clientX - rect.left) / rect.width) * state.frozen.width;
  const fy = ((event.clientY - rect.top) / rect.height) * state.frozen.height;
  const clamp = (v, hi) => Math.min(Math.max(v, 0), hi - 0.001);
  return [clamp(fx, state.frozen.width), clamp(fy, state.frozen.height)];
}

function annotationChanged() {
  state.preview = null;
  $("confirm").disabled = true;
  draw();
}

function onPointerDown(event) {
  if (!state.frozen) return;
  event.preventDefault();
  $("canvas").setPointerCapture(event.pointerId);
  const [x, y] = framePoint(event);
  // one kind of mark at a time: what is on screen is what is sent
  if (state.tool !== "box") state.box = null;
  if (state.tool !== "scribble") state.strokes = [];
  if (state.tool === "box" || state.tool === "scribble") state.points = [];
  if (state.tool === "box") {
    state.drag = [x, y];
    state.box = null;
  } else if (state.tool === "scribble") {
    state.drag = true;
    state.strokes.push([[x, y]]);
  } else {
    state.points.push({ x, y, positive: state.tool === "positive" });
  }
  annotationChanged();
}

function onPointerMove(event) {
  if (!state.frozen || !state.drag) return;
  event.preventDefault();
  const [x, y] = framePoint(event);
  if (state.tool === "box") {
    const [x0, y0] = state.drag;
    state.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
  } else if (state.tool === "scribble") {
    state.strokes[state.strokes.length - 1].push([x, y]);
  }
  draw();
}

function onPointerUp(event) {
  if (state.drag && state.tool === "box") onPointerMove(event);
  state.drag = null;
}

// ------------------------------------------------------------------ freeze, preview, confirm
async function freeze() {
  if (state.frozen) return unfreeze();
  const picture = state.picture;
  if (!picture) return;
  $("freeze").disabled = true;
  try {
    const frame = await api("POST", "/api/frames", { camera: state.camera, seq: picture.seq });
    state.polling += 1; // stop the live loop
    const raw = await createImageBitmap(await (await fetch(`/api/frames/${frame.frame}/picture`)).blob());
    state.frozen = { frame: frame.frame, camera: state.camera, width: frame.width, height: frame.height,
                     raw, overlay: picture.bitmap, stamp: frame.stamp };
    state.box = null; state.points = []; state.strokes = []; state.preview = null;
    document.body.classList.add("frozen");
    $("tools").hidden = false;
    $("teach").hidden = false;
    $("freeze").textContent = "Live";
    $("confirm").disabled = true;
    $("stage-note").textContent = `frozen: frame ${frame.stamp}${frame.frame_id ? " (" + frame.frame_id + ")" : ""} - draw on the object`;
    say("");
    draw();
  } catch (e) {
    say(e.message, "error");
  } finally {
    $("freeze").disabled = false;
  }
}

async function unfreeze() {
  const frozen = state.frozen;
  state.frozen = null; state.preview = null; state.box = null; state.points = []; state.strokes = [];
  document.body.classList.remove("frozen");
  $("tools").hidden = true;
  $("teach").hidden = true;
  $("freeze").textContent = "Freeze";
  $("stage-note").textContent = "";
  if (frozen) api("DELETE", `/api/frames/${frozen.frame}`).catch(() => {});
  startLive();
}

function annotation() { // the one kind of mark on screen
  if (state.box) return { box: state.box };
  if (state.points.length) return { points: state.points };
  if (state.strokes.length) return { scribble: { width: brushWidth(), strokes: state.strokes } };
  return null;
}

function chosenClass() {
  const name = $("class-input").value.trim();
  const known = state.classes.some((c) => c.name === name);
  return { name, known };
}

async function preview(event) {
  event.preventDefault();
  const ann = annotation();
  const { name, known } = chosenClass();
  if (!ann) return say("draw on the frozen frame first: a box, points or a scribble", "error");
  if (!name) return say("pick a class or type a new name", "error");
  $("preview").disabled = true;
  say("asking the node for the mask ...");
  try {
    const res = await api("POST", "/api/exemplars", { camera: state.frozen.camera, frame: state.frozen.frame,
                                                       class: name, create_class: !known, preview: true, ...ann });
    const image = new Image();
    image.src = res.mask_png;
    await image.decode();
    state.preview = { id: res.preview_id, image, className: name, createClass: !known };
    $("confirm").disabled = false;
    say(`preview: ${res.pixels} pixels for "${name}"${known ? "" : " (new class)"} - confirm or cancel`, "ok");
    draw();
  } catch (e) {
    say(e.message, "error");
  } finally {
    $("preview").disabled = false;
  }
}

async function confirmExemplar() {
  const p = state.preview;
  if (!p || !state.frozen) return;
  $("confirm").disabled = true;
  try {
    const res = await api("POST", "/api/exemplars", { camera: state.frozen.camera, frame: state.frozen.frame,
                                                       class: p.className, create_class: p.createClass, preview_id: p.id });
    say(res.message, "ok");
    showClasses(res);
    unfreeze();
  } catch (e) {
    say(e.message, "error");
    $("confirm").disabled = false;
  }
}

// ------------------------------------------------------------------ classes, memory, status
function showClasses(map) {
  state.classes = map.classes;
  state.version = map.support_version;
  const list = $("classes");
  list.replaceChildren();
  for (const c of map.classes) {
    const li = document.createElement("li");
    li.dataset.classId = c.id;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = c.color;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c.name;
    const info = document.createElement("span");
    info.className = "muted";
    info.textContent = `id ${c.id} · ${c.exemplar_count} exemplar${c.exemplar_count === 1 ? "" : "s"}${c.has_text ? " · text" : ""}`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "Remove";
    remove.title = `remove class ${c.name} and its exemplars`;
    remove.addEventListener("click", () => removeClass(c));
    const exemplars = document.createElement("div");
    exemplars.className = "exemplars";
    for (const id of c.exemplar_ids) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `exemplar ${id} ✕`;
      b.title = `remove exemplar ${id}`;
      b.addEventListener("click", () => removeExemplar(id));
      exemplars.append(b);
    }
    li.append(swatch, name, info, remove, exemplars);
    list.append(li);
  }
  const names = $("class-names");
  names.replaceChildren(...map.classes.map((c) => Object.assign(document.createElement("option"), { value: c.name })));
}

async function refreshClasses() {
  try { showClasses(await api("GET", "/api/classes")); } catch (e) { say(e.message, "error"); }
}

async function removeClass(c) {
  if (!window.confirm(`Remove class "${c.name}" (id ${c.id}) and its ${c.exemplar_count} exemplar(s)?`)) return;
  try { const res = await api("DELETE", `/api/classes/${c.id}`); say(res.message, "ok"); showClasses(res); }
  catch (e) { say(e.message, "error"); }
}

async function removeExemplar(id) {
  if (!window.confirm(`Remove exemplar ${id}?`)) return;
  try { const res = await api("DELETE", `/api/exemplars/${id}`); say(res.message, "ok"); showClasses(res); }
  catch (e) { say(e.message, "error"); }
}

async function addClass(event) {
  event.preventDefault();
  const input = event.target.elements.name;
  try {
    const res = await api("POST", "/api/classes", { name: input.value.trim() });
    say(res.message, "ok");
    showClasses(res);
    input.value = "";
  } catch (e) { say(e.message, "error"); }
}

async function memory(action) {
  const snapshot = $("snapshot-name").value.trim();
  try {
    let res;
    if (action === "load") {
      if (!window.confirm(`${$("merge").checked ? "Merge" : "Replace the memory with"} snapshot "${snapshot}"?`)) return;
      res = await api("POST", "/api/memory/load", { snapshot, merge: $("merge").checked });
      showClasses(res);
    } else {
      res = await api("POST", "/api/memory/save", action === "snapshot" ? { snapshot } : {});
    }
    say(res.message, "ok");
    listSnapshots();
  } catch (e) { say(e.message, "error"); }
}

async function listSnapshots() {
  try {
    const res = await api("GET", "/api/snapshots");
    $("snapshot-dir").textContent = `snapshots in ${res.directory}`;
    $("snapshot-names").replaceChildren(...res.snapshots.map((n) => Object.assign(document.createElement("option"), { value: n })));
  } catch (e) { /* shown by the status line */ }
}

function showCameras(names) {
  if (names.join() === state.cameras.join()) return;
  state.cameras = names;
  const tabs = $("camera-tabs");
  tabs.replaceChildren(...names.map((name) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = name;
    b.classList.toggle("selected", name === state.camera);
    b.addEventListener("click", () => selectCamera(name));
    return b;
  }));
  tabs.hidden = names.length < 2;
  if (!names.includes(state.camera) && names.length) selectCamera(names[0]);
}

function selectCamera(name) {
  if (state.frozen) unfreeze();
  state.camera = name;
  state.seq = 0;
  for (const b of $("camera-tabs").children) b.classList.toggle("selected", b.textContent === name);
  startLive();
}

function showStatus(s) {
  $("target").textContent = s.target;
  const health = $("health");
  const statuses = Object.values(s.diagnostics);
  const main = s.diagnostics[`${s.target}: segmentation`];
  const worst = statuses.reduce((m, st) => Math.max(m, st.level), 0);
  health.textContent = !s.reachable ? "node unreachable" : worst >= 2 ? "error" : worst === 1 ? "warning" : "ok";
  health.className = "badge " + (!s.reachable || worst >= 2 ? "error" : worst === 1 ? "warn" : "ok");
  health.title = s.graph_error || (main ? main.message : "");
  const dl = $("diagnostics");
  dl.replaceChildren();
  if (main) {
    const v = main.values;
    $("rates").textContent = `${v.output_rate_hz || "?"} fps · latency ${v.latency_median_ms || "?"} ms`;
    const rows = [["state", v.state], ["device", v.device], ["backbone", v.backbone], ["input", `${v.input_rate_hz} Hz`],
                  ["output", `${v.output_rate_hz} Hz`], ["latency", `${v.latency_median_ms} ms (p95 ${v.latency_p95_ms})`],
                  ["dropped", `${v.frames_dropped_stale} stale, ${v.frames_dropped_invalid} invalid, ${v.frames_failed} failed`],
                  ["classes", v.classes], ["exemplars", v.exemplars], ["message", main.message]];
    for (const [k, val] of rows) {
      if (val === undefined) continue;
      dl.append(Object.assign(document.createElement("dt"), { textContent: k }),
                Object.assign(document.createElement("dd"), { textContent: val }));
    }
  }
  showCameras(s.cameras);
  if (s.support_version !== null && s.support_version !== state.version) refreshClasses();
}

async function pollStatus() {
  try { showStatus(await api("GET", "/api/status")); }
  catch (e) { $("health").textContent = "console unreachable"; $("health").className = "badge error"; }
  setTimeout(pollStatus, 1000); // the status line refreshes once a second
}

// ------------------------------------------------------------------ wiring
function selectTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll("button.tool")) b.classList.toggle("selected", b.dataset.tool === tool);
}

document.addEventListener("DOMContentLoaded", () => {
  const canvas = $("canvas");
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  $("freeze").addEventListener("click", freeze);
  for (const b of document.querySelectorAll("button.tool")) b.addEventListener("click", () => selectTool(b.dataset.tool));
  $("clear").addEventListener("click", () => { state.box = null; state.points = []; state.strokes = []; annotationChanged(); });
  $("show-labels").addEventListener("change", draw);
  $("teach").addEventListener("submit", preview);
  $("confirm").addEventListener("click", confirmExemplar);
  $("cancel").addEventListener("click", () => { say(""); unfreeze(); });
  $("add-class").addEventListener("submit", addClass);
  $("save").addEventListener("click", () => memory("save"));
  $("save-snapshot").addEventListener("click", () => memory("snapshot"));
  $("load-snapshot").addEventListener("click", () => memory("load"));
  $("freeze").disabled = true;
  pollStatus();
  refreshClasses();
  listSnapshots();
});
