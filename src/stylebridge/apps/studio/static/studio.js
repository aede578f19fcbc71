// stylebridge studio: one page, five tabs, a JSON API. No framework, nothing loaded from elsewhere.
"use strict";

const studio = { token: null, info: null, inflight: 0, updates: 0 };
window.studio = studio; // the browser tests read inflight / updates
const $ = (id) => document.getElementById(id);

function setBusy(delta) {
  studio.inflight += delta;
  document.body.dataset.busy = String(studio.inflight);
}

function showError(err) {
  $("status").textContent = err ? String(err.message || err) : "";
}

async function call(path, body) {
  setBusy(1);
  try {
    const r = await fetch("/api/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Studio-Session": studio.token },
      body: JSON.stringify(body || {}),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error || r.statusText);
    showError(null);
    return j;
  } finally {
    setBusy(-1);
  }
}

async function upload(slot, file, align) {
  if (studio.info && file.size > studio.limits.max_bytes) {
    throw new Error(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB is more than the limit of ` +
                    `${(studio.limits.max_bytes / 1e6).toFixed(1)} MB`);
  }
  setBusy(1);
  try {
    const r = await fetch(`/api/upload/${slot}?align=${align ? 1 : 0}`, {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-Studio-Session": studio.token },
      body: file,
    });
    const j = await r.json();
    if (!r.ok) throw new Error(`${file.name}: ${j.error || r.statusText}`);
    showError(null);
    return j;
  } finally {
    setBusy(-1);
  }
}

// Run at most one request at a time per control; while one is out, keep only the newest call and send it when
// the first returns — a stroke or a slider drag never queues stale work behind itself.
function latestOnly(fn) {
  let busy = false, pending = null;
  const run = (...args) => {
    if (busy) { pending = args; return; }
    busy = true;
    Promise.resolve().then(() => fn(...args)).catch(showError).finally(() => {
      busy = false;
      if (pending) { const a = pending; pending = null; run(...a); }
    });
  };
  return run;
}

function show(img, url) {
  img.src = url;
  img.hidden = false;
  studio.updates += 1;
  img.dataset.version = String((+img.dataset.version || 0) + 1);
}

function strip(div, urls) {
  div.replaceChildren(...urls.map((u) => { const i = new Image(); i.src = u; return i; }));
}

const animations = new Map();
function animate(img, frames, ms = 80) {
  clearInterval(animations.get(img));
  let k = 0;
  show(img, frames[0]);
  animations.set(img, setInterval(() => { k = (k + 1) % frames.length; img.src = frames[k]; }, ms));
}

function fillSelect(sel, items, label = (x) => x) {
  sel.replaceChildren(...items.map((x) => { const o = document.createElement("option"); o.value = x; o.textContent = label(x); return o; }));
}

function loadImage(url) {
  return new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = url; });
}

function bindOutput(input) {
  const out = $(input.id + "-v");
  if (out) input.addEventListener("input", () => { out.textContent = input.value; });
}

// A canvas that draws with the pointer and calls onStroke while drawing and when a stroke ends.
function drawable(canvas, brush, onStroke) {
  const ctx = canvas.getContext("2d");
  let last = null;
  const pos = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    try { canvas.setPointerCapture(e.pointerId); } catch { /* synthetic events have no pointer to capture */ }
    last = pos(e);
    const b = brush();
    ctx.fillStyle = b.color;
    ctx.beginPath(); ctx.arc(last[0], last[1], b.size / 2, 0, Math.PI * 2); ctx.fill();
    onStroke(false);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = pos(e), b = brush();
    ctx.strokeStyle = b.color; ctx.lineWidth = b.size; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p;
    onStroke(false);
  });
  const end = () => { if (last) { last = null; onStroke(true); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  return ctx;
}

// ------------------------------------------------------------------------------------------------ Generate
function initGenerate(info) {
  fillSelect($("gen-generator"), info.generators.map((g) => g.name));
  $("gen-crossover").max = info.num_ws;
  const run = latestOnly(async () => {
    const body = { generator: $("gen-generator").value, seeds: $("gen-seeds").value, psi: +$("gen-psi").value };
    if ($("gen-mix").checked) { body.mix_seed = +$("gen-mix-seed").value; body.crossover = +$("gen-crossover").value; }
    const j = await call("generate", body);
    strip($("gen-out"), j.images);
    strip($("gen-mixed"), j.mixed || []);
    $("gen-label").textContent = `seeds ${body.seeds}`;
    $("gen-mix-label").textContent = j.mixed ? `mixed: rows ≥ ${body.crossover} from seed ${body.mix_seed} →` : "";
    if (j.mix_source) { const i = new Image(); i.src = j.mix_source[0]; i.className = "thumb"; $("gen-mix-label").append(i); }
    studio.updates += 1;
    $("gen-out").dataset.version = String((+$("gen-out").dataset.version || 0) + 1);
    $("gen-ms").textContent = `${j.ms.toFixed(1)} ms on the server`;
  });
  for (const id of ["gen-generator", "gen-seeds", "gen-psi", "gen-mix", "gen-mix-seed", "gen-crossover"]) {
    $(id).addEventListener("input", run);
    bindOutput($(id));
  }
  run();
}

// ------------------------------------------------------------------------------------------------ Translate
function initTranslate(info) {
  const canvas = $("tr-canvas");
  const models = info.translators;
  fillSelect($("tr-model"), models.map((t) => t.name), (n) => {
    const t = models.find((m) => m.name === n);
    return `${n} (${t.family}${t.channels === 1 ? ", sketch" : ""})`;
  });
  const sketchModel = models.find((t) => t.family === "actmap") || models.find((t) => t.channels === 1);
  if (sketchModel) $("tr-model").value = sketchModel.name;
  $("tr-align").disabled = !!info.align;
  if (info.align) $("tr-align").parentElement.title = info.align;

  const ctx = drawable(canvas, () => {
    const kind = $("tr-brush").value;
    return { color: kind === "ink" ? "#000" : kind === "paper" ? "#fff" : $("tr-color").value, size: +$("tr-size").value };
  }, () => run());
  const clear = () => { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  const model = () => models.find((t) => t.name === $("tr-model").value);
  const syncControls = () => {
    const t = model();
    $("tr-walk").disabled = !t || !t.walk;
    $("tr-samples").disabled = !t || !t.multimodal;
    $("tr-colors").disabled = !t || t.family !== "actmap" || t.channels !== 3;
  };
  const run = latestOnly(async () => {
    const t = model();
    if (!t) throw new Error("no translator loaded");
    const j = await call("translate", {
      method: t.name, source: { data: canvas.toDataURL("image/png") }, seed: +$("tr-seed").value,
      samples: t.multimodal ? +$("tr-samples").value : 0, psi: +$("tr-psi").value, colors: $("tr-colors").value,
    });
    show($("tr-out"), j.image);
    strip($("tr-samples-out"), j.samples || []);
    $("tr-ms").textContent = `${j.ms.toFixed(1)} ms on the server`;
  });
  const drawPicture = async (url) => {
    const img = await loadImage(url);
    clear();
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    run();
  };
  $("tr-clear").addEventListener("click", () => { clear(); run(); });
  $("tr-example").addEventListener("click", async () => {
    try {
      const j = await call("example", { kind: $("tr-example-kind").value, seed: +$("tr-example-seed").value });
      await drawPicture(j.picture);
    } catch (e) { showError(e); }
  });
  $("tr-file").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (!f) return;
    try { await drawPicture((await upload("translate", f, $("tr-align").checked)).picture); } catch (err) { showError(err); }
  });
  $("tr-walk").addEventListener("click", async () => {
    try {
      const j = await call("translate", {
        method: $("tr-model").value, source: { data: canvas.toDataURL("image/png") }, seed: +$("tr-seed").value,
        walk: true, frames: 24, psi: +$("tr-psi").value, colors: $("tr-colors").value,
      });
      animate($("tr-walk-out"), j.frames);
      $("tr-ms").textContent = `walk: ${j.frames.length} frames in ${j.ms.toFixed(1)} ms`;
    } catch (e) { showError(e); }
  });
  for (const id of ["tr-seed", "tr-samples", "tr-psi", "tr-colors"]) { $(id).addEventListener("input", () => run()); bindOutput($(id)); }
  $("tr-model").addEventListener("input", () => { syncControls(); run(); });
  syncControls();
  clear();
  // Start from a sketch of the renderer so there is something to draw on.
  call("example", { kind: "sketch", seed: 1 }).then((j) => drawPicture(j.picture)).catch(showError);
}

// ------------------------------------------------------------------------------------------------ Edit
function initEdit(info) {
  fillSelect($("ed-inverter"), info.inverters);
  if (info.inverters.includes("e4e")) $("ed-inverter").value = "e4e";
  const syncSteps = () => { $("ed-steps-label").hidden = $("ed-inverter").value !== "optimize"; };
  $("ed-inverter").addEventListener("input", syncSteps);
  syncSteps();
  $("ed-align").disabled = !!info.align;
  let source = { example: "face", seed: +$("ed-example-seed").value };

  const box = $("ed-sliders");
  for (const d of info.directions) {
    const name = document.createElement("span"); name.textContent = d.short;
    const s = document.createElement("input");
    // Ends on the 0.05 grid so that 0 is a value the slider can take (a range input snaps to min + k·step).
    Object.assign(s, { type: "range", min: Math.floor(d.range[0] * 20) / 20, max: Math.ceil(d.range[1] * 20) / 20,
                       step: 0.05, value: 0 });
    s.dataset.direction = d.name;
    const v = document.createElement("output"); v.textContent = "0";
    const layers = document.createElement("input");
    Object.assign(layers, { type: "text", value: d.layers, title: "W+ rows this direction moves (a-b, a,b or all)" });
    layers.dataset.layers = d.name;
    s.addEventListener("input", () => { v.textContent = (+s.value).toFixed(2); edit(); });
    layers.addEventListener("change", () => edit());
    box.append(name, s, v, layers);
  }
  const edit = latestOnly(async () => {
    const strengths = {}, layers = {};
    for (const s of box.querySelectorAll("input[data-direction]")) strengths[s.dataset.direction] = +s.value;
    for (const l of box.querySelectorAll("input[data-layers]")) layers[l.dataset.layers] = l.value.trim();
    const j = await call("edit", { strengths, layers });
    show($("ed-out"), j.image);
    $("ed-download-image").href = j.image;
    $("ed-download-latent").href = `/api/latents/${studio.token}`;
    $("ed-ms").textContent = `edit: ${j.ms.toFixed(1)} ms on the server`;
  });
  const invert = async () => {
    const inverter = $("ed-inverter").value;
    $("ed-invert").disabled = true;
    $("ed-ms").textContent = inverter === "optimize" ? `optimising ${$("ed-steps").value} steps …` : "";
    try {
      const j = await call("invert", { inverter, source, steps: +$("ed-steps").value });
      show($("ed-input"), j.input);
      show($("ed-recon"), j.reconstruction);
      $("ed-ms").textContent = `inversion (${inverter}): ${j.ms.toFixed(1)} ms`;
      edit();
    } catch (e) { showError(e); } finally { $("ed-invert").disabled = false; }
  };
  $("ed-invert").addEventListener("click", invert);
  $("ed-example").addEventListener("click", () => { source = { example: "face", seed: +$("ed-example-seed").value }; invert(); });
  $("ed-example-seed").addEventListener("change", () => { source = { example: "face", seed: +$("ed-example-seed").value }; });
  $("ed-file").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (!f) return;
    try { await upload("edit", f, $("ed-align").checked); source = { slot: "edit" }; await invert(); } catch (err) { showError(err); }
  });
  $("ed-reset").addEventListener("click", () => {
    for (const s of box.querySelectorAll("input[data-direction]")) { s.value = 0; s.nextSibling.textContent = "0"; }
    for (const l of box.querySelectorAll("input[data-layers]")) l.value = l.defaultValue;
    edit();
  });
}

// ------------------------------------------------------------------------------------------------ Local edit
function initLocal(info) {
  const tab = document.querySelector('nav button[data-tab="local"]');
  if (!info.stylemaps.length) { tab.hidden = true; return; }
  fillSelect($("lo-model"), info.stylemaps);
  const canvas = $("lo-canvas");
  const ctx = canvas.getContext("2d");
  const mask = document.createElement("canvas"); // white where painted, kept apart from the picture
  mask.width = canvas.width; mask.height = canvas.height;
  const mctx = mask.getContext("2d");
  let refImage = null, source = null, reference = null;
  const regions = $("lo-regions");
  for (const r of info.regions) {
    const l = document.createElement("label");
    const c = document.createElement("input"); c.type = "checkbox"; c.dataset.region = r;
    c.addEventListener("input", () => run());
    l.append(c, " " + r);
    regions.append(l);
  }
  const redraw = () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (refImage) ctx.drawImage(refImage, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 0.45; ctx.drawImage(tint, 0, 0); ctx.globalAlpha = 1;
  };
  const tint = document.createElement("canvas"); tint.width = canvas.width; tint.height = canvas.height;
  const tctx = tint.getContext("2d");
  const refreshTint = () => {
    tctx.clearRect(0, 0, tint.width, tint.height);
    tctx.drawImage(mask, 0, 0);
    tctx.globalCompositeOperation = "source-in"; tctx.fillStyle = "#e0245e"; tctx.fillRect(0, 0, tint.width, tint.height);
    tctx.globalCompositeOperation = "source-over";
  };
  // Paint on the mask canvas with the same pointer handling, then show it tinted over the reference.
  let last = null;
  const pos = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  const paint = (p) => {
    mctx.strokeStyle = mctx.fillStyle = "#fff"; mctx.lineWidth = +$("lo-size").value; mctx.lineCap = "round";
    mctx.beginPath();
    if (last) { mctx.moveTo(last[0], last[1]); mctx.lineTo(p[0], p[1]); mctx.stroke(); } else { mctx.arc(p[0], p[1], mctx.lineWidth / 2, 0, Math.PI * 2); mctx.fill(); }
    last = p; refreshTint(); redraw(); run();
  };
  canvas.addEventListener("pointerdown", (e) => {
    try { canvas.setPointerCapture(e.pointerId); } catch { /* synthetic events have no pointer to capture */ }
    last = null; paint(pos(e));
  });
  canvas.addEventListener("pointermove", (e) => { if (last) paint(pos(e)); });
  const end = () => { if (last) { last = null; run(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  const maskURL = () => {
    const out = document.createElement("canvas"); out.width = mask.width; out.height = mask.height;
    const o = out.getContext("2d"); o.fillStyle = "#000"; o.fillRect(0, 0, out.width, out.height); o.drawImage(mask, 0, 0);
    return out.toDataURL("image/png");
  };
  const painted = () => mctx.getImageData(0, 0, mask.width, mask.height).data.some((v, i) => i % 4 === 3 && v > 0);
  const body = (frames) => ({
    model: $("lo-model").value, source, reference, mask: painted() ? maskURL() : null,
    regions: [...regions.querySelectorAll("input:checked")].map((c) => c.dataset.region),
    dx: +$("lo-dx").value, dy: +$("lo-dy").value, frames,
  });
  const ready = () => painted() || regions.querySelector("input:checked");
  const run = latestOnly(async () => {
    if (!ready()) return;
    const j = await call("local", body(0));
    show($("lo-out"), j.image);
    $("lo-ms").textContent = `blend: ${j.ms.toFixed(1)} ms on the server`;
  });
  const exampleFace = async (seed) => (await call("example", { kind: "face", seed })).picture;
  const setSource = (src, url) => { source = src; show($("lo-source"), url); run(); };
  const setReference = async (ref, url) => { reference = ref; refImage = await loadImage(url); redraw(); run(); };
  $("lo-source-seed").addEventListener("change", async () => {
    const seed = +$("lo-source-seed").value;
    try { setSource({ example: "face", seed }, await exampleFace(seed)); } catch (e) { showError(e); }
  });
  $("lo-ref-seed").addEventListener("change", async () => {
    const seed = +$("lo-ref-seed").value;
    try { await setReference({ example: "face", seed }, await exampleFace(seed)); } catch (e) { showError(e); }
  });
  $("lo-source-file").addEventListener("change", async (e) => {
    const f = e.target.files[0]; e.target.value = ""; if (!f) return;
    try { setSource({ slot: "local-source" }, (await upload("local-source", f, false)).picture); } catch (err) { showError(err); }
  });
  $("lo-ref-file").addEventListener("change", async (e) => {
    const f = e.target.files[0]; e.target.value = ""; if (!f) return;
    try { await setReference({ slot: "local-reference" }, (await upload("local-reference", f, false)).picture); } catch (err) { showError(err); }
  });
  $("lo-clear").addEventListener("click", () => { mctx.clearRect(0, 0, mask.width, mask.height); refreshTint(); redraw(); run(); });
  for (const id of ["lo-dx", "lo-dy"]) { $(id).addEventListener("input", () => run()); bindOutput($(id)); }
  $("lo-model").addEventListener("input", () => run());
  $("lo-frames").addEventListener("click", async () => {
    try {
      if (!ready()) throw new Error("paint on the reference or pick a region first");
      const j = await call("local", body(16));
      show($("lo-out"), j.image);
      animate($("lo-frames-out"), j.frames.concat(j.frames.slice().reverse()), 60);
      strip($("lo-strip"), j.frames);
      $("lo-ms").textContent = `${j.frames.length} frames in ${j.ms.toFixed(1)} ms`;
    } catch (e) { showError(e); }
  });
  (async () => {
    const a = +$("lo-source-seed").value, b = +$("lo-ref-seed").value;
    source = { example: "face", seed: a }; reference = { example: "face", seed: b };
    show($("lo-source"), await exampleFace(a));
    await setReference(reference, await exampleFace(b));
  })().catch(showError);
}

// ------------------------------------------------------------------------------------------------ Compare
function initCompare(info) {
  $("cmp-align").disabled = !!info.align;
  let source = null;
  const run = async () => {
    if (!source) throw new Error("upload a picture or pick an example first");
    $("cmp-run").disabled = true;
    try {
      const j = await call("compare", { source, optimize_steps: +$("cmp-optimize").value });
      $("cmp-out").replaceChildren(...j.results.map((r) => {
        const f = document.createElement("figure");
        const i = new Image(); i.src = r.image; i.alt = r.name;
        const c = document.createElement("figcaption"); c.textContent = `${r.name} — ${r.ms.toFixed(1)} ms`;
        f.append(i, c); f.dataset.method = r.name;
        return f;
      }));
      studio.updates += 1;
      $("cmp-out").dataset.version = String((+$("cmp-out").dataset.version || 0) + 1);
      $("cmp-ms").textContent = `${j.results.length} methods, ${j.ms.toFixed(1)} ms in all on the server`;
    } finally { $("cmp-run").disabled = false; }
  };
  $("cmp-example").addEventListener("click", async () => {
    const kind = $("cmp-example-kind").value, seed = +$("cmp-example-seed").value;
    try {
      show($("cmp-input"), (await call("example", { kind, seed })).picture);
      source = { example: kind, seed };
      await run();
    } catch (e) { showError(e); }
  });
  $("cmp-file").addEventListener("change", async (e) => {
    const f = e.target.files[0]; e.target.value = ""; if (!f) return;
    try { const j = await upload("compare", f, $("cmp-align").checked); show($("cmp-input"), j.picture); source = { slot: "compare" }; await run(); } catch (err) { showError(err); }
  });
  $("cmp-run").addEventListener("click", () => run().catch(showError));
}

// ------------------------------------------------------------------------------------------------ start
function initTabs() {
  for (const b of document.querySelectorAll("nav button")) {
    b.addEventListener("click", () => {
      for (const o of document.querySelectorAll("nav button")) o.classList.toggle("active", o === b);
      for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.id === "tab-" + b.dataset.tab);
    });
  }
}

async function start() {
  initTabs();
  setBusy(1);
  try {
    const r = await fetch("/api/session", { method: "POST" });
    const j = await r.json();
    studio.token = j.token; studio.info = j.info; studio.limits = j.limits;
    initGenerate(j.info);
    if (j.info.translators.length) initTranslate(j.info); else document.querySelector('nav button[data-tab="translate"]').hidden = true;
    if (j.info.directions.length && j.info.inverters.length) initEdit(j.info); else document.querySelector('nav button[data-tab="edit"]').hidden = true;
    initLocal(j.info);
    initCompare(j.info);
    studio.ready = true;
  } catch (e) { showError(e); } finally { setBusy(-1); }
}
start();
