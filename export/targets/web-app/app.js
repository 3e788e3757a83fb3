// edgeport web classifier: the bundle's fixed-batch models (uint8 RGB [1, H, W, 3] in, float32
// probabilities out) in LiteRT.js and ONNX Runtime Web, on WebAssembly unless ?accelerator=webgpu.
// Pitfalls kept from the user: one loadLiteRt() per page, every model and tensor deleted on every
// path, one thread per model unless the page is cross-origin isolated with cores to spare. WebGPU
// never falls back to WebAssembly unsaid: the page shows what each engine actually runs on.
import { loadLiteRt, loadAndCompile, Tensor } from '@litertjs/core';

const params = new URLSearchParams(location.search);
const ACCEL = params.get('accelerator') === 'webgpu' ? 'webgpu' : 'wasm';
// ORT's WebGPU execution provider is in its WebGPU build (ort.webgpu.min.mjs), not the wasm-only one.
const ort = await import(ACCEL === 'webgpu' ? 'onnxruntime-web/webgpu' : 'onnxruntime-web');
const CORES = navigator.hardwareConcurrency || 1;
// Threads need SharedArrayBuffer (COOP/COEP); with threads on 2 cores, 3+ live models deadlocked
// delete(): only with 4+ cores, and the page keeps at most one live model per engine.
const THREADS = Number(params.get('threads')) ||
  (self.crossOriginIsolated && CORES >= 4 ? Math.min(4, Math.floor(CORES / 2)) : 1);
const $ = (id) => document.getElementById(id);

let manifest = null;
let litertReady = null; // the one loadLiteRt() promise
const live = {}; // engine -> {key, model}

function litert() {
  if (!litertReady) {
    litertReady = loadLiteRt('./node_modules/@litertjs/core/wasm/',
      THREADS > 1 ? { threads: true } : {});
  }
  return litertReady;
}

const ENGINES = {
  litertjs: {
    async open(file) {
      await litert();
      return loadAndCompile(file, { accelerator: ACCEL, cpuOptions: { numThreads: THREADS } });
    },
    async run(model, pixels, shape) {
      const input = new Tensor(pixels, shape);
      let outs = [];
      let host = null; // a WebGPU output is copied to the CPU before it can be read
      try {
        outs = await model.run(input);
        if (outs[0].accelerator !== 'wasm') host = await outs[0].copyTo('wasm');
        return Float32Array.from((host || outs[0]).toTypedArray());
      } finally {
        input.delete();
        if (host) host.delete();
        for (const t of outs) t.delete();
      }
    },
    close(model) { model.delete(); },
    // LiteRT.js recompiles for WebAssembly (a console warning only) when a model is not fully accelerated
    backend(model) { return { accelerator: model.options.accelerator, fully: model.isFullyAccelerated }; },
  },
  onnxruntime_web: {
    // verbose: ORT logs where each node runs (its only report of placement) and much else
    async open(file, verbose = false) {
      ort.env.wasm.wasmPaths = new URL('./node_modules/onnxruntime-web/dist/', location.href).href;
      ort.env.wasm.numThreads = THREADS;
      ort.env.logLevel = 'error';
      // one execution provider, so ORT throws when it is missing instead of dropping it for another
      return ort.InferenceSession.create(file, { executionProviders: [ACCEL],
        ...(verbose ? { logSeverityLevel: 0, logVerbosityLevel: 0 } : {}) });
    },
    async run(session, pixels, shape) {
      const input = new ort.Tensor('uint8', pixels, shape);
      let outs = null;
      try {
        outs = await session.run({ [session.inputNames[0]]: input });
        return Float32Array.from(outs[session.outputNames[0]].data);
      } finally {
        input.dispose();
        if (outs) for (const t of Object.values(outs)) t.dispose();
      }
    },
    close(session) { session.release(); },
    // a session runs on its one provider or was not made; where its nodes run, its verbose log says
    backend() { return { accelerator: ACCEL, fully: null }; },
  },
};

// A quantized output is dequantized with the manifest's scale and zero point (LiteRT.js does not
// expose them); the shipped models give float32 probabilities, which pass through.
function dequantize(values, io) {
  if (!io.scale) return values;
  return Float32Array.from(values, (v) => (v - io.zero_point) * io.scale);
}

async function model(engine, variant) {
  const key = `${engine}/${variant}`;
  if (live[engine]?.key === key) return live[engine].model;
  await closeEngine(engine);
  const file = manifest.models[variant][engine].file;
  live[engine] = { key, model: await ENGINES[engine].open(file) };
  return live[engine].model;
}

async function closeEngine(engine) {
  const entry = live[engine];
  delete live[engine];
  if (entry) await ENGINES[engine].close(entry.model);
}

async function closeAll() { for (const e of Object.keys(live)) await closeEngine(e); }

function shape() { return manifest.input.shape; }
function size() { return shape().reduce((a, b) => a * b, 1); }

async function classify(engine, variant, pixels) {
  const m = await model(engine, variant);
  const out = await ENGINES[engine].run(m, pixels, shape());
  return dequantize(out, manifest.models[variant][engine].output);
}

// -- what the check drives (window.edgeport) --------------------------------------------------

// What the engine runs the model on: {accelerator, fully (null: see the engine's placement log)}.
async function backend(engine, variant) {
  await closeEngine(engine);
  const m = await ENGINES[engine].open(manifest.models[variant][engine].file, true);
  try { return ENGINES[engine].backend(m); } finally { await ENGINES[engine].close(m); }
}

// The WebGPU adapter the browser offers: {vendor, architecture, description, fallback}, or why none.
async function adapter() {
  if (!navigator.gpu) return { error: 'navigator.gpu is undefined (WebGPU is off in this browser)' };
  const a = await navigator.gpu.requestAdapter();
  if (!a) return { error: 'navigator.gpu.requestAdapter() gave no adapter' };
  const i = a.info || {};
  return { vendor: i.vendor, architecture: i.architecture, description: i.description,
    fallback: i.isFallbackAdapter ?? null, f16: a.features.has('shader-f16') };
}

// The model stays open for bench() (a WebGPU session takes seconds to make); bench() closes it.
async function runBatch(engine, variant, b64) {
  const all = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const n = all.length / size();
  const probs = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = await classify(engine, variant, all.slice(i * size(), (i + 1) * size()));
      probs.push(Array.from(p));
    }
  } catch (e) {
    await closeEngine(engine);
    throw e;
  }
  return probs;
}

async function bench(engine, variant, b64, warmup, runs) {
  const pixels = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).slice(0, size());
  const times = [];
  try {
    const m = await model(engine, variant);
    for (let i = 0; i < warmup + runs; i++) {
      const t0 = performance.now();
      await ENGINES[engine].run(m, pixels, shape());
      if (i >= warmup) times.push(performance.now() - t0);
    }
  } finally {
    await closeEngine(engine);
  }
  return times;
}

function drawPixels(canvas, pixels) {
  const [, h, w] = shape();
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    img.data.set([pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2], 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

function showGrid(b64, rows) {
  const all = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const grid = $('grid');
  grid.replaceChildren();
  rows.forEach((r, i) => {
    const fig = document.createElement('figure');
    const c = document.createElement('canvas');
    drawPixels(c, all.subarray(i * size(), (i + 1) * size()));
    const cap = document.createElement('figcaption');
    cap.textContent = r.label;
    if (r.bad) cap.className = 'bad';
    fig.append(c, cap);
    grid.append(fig);
  });
}

// -- the user's page -----------------------------------------------------------------------------

function fromImage(source) {
  const [, h, w] = shape();
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  const ctx = c.getContext('2d');
  ctx.drawImage(source, 0, 0, w, h);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) rgb.set([rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]], 3 * i);
  return rgb;
}

let last = null; // the last image shown, classified again when the engine or model changes
let queue = Promise.resolve(); // one classification at a time (ORT makes one WebGPU session at a time)

function show(pixels) {
  queue = queue.then(() => showNow(pixels));
  return queue;
}

async function showNow(pixels) {
  const engine = $('engine').value, variant = $('variant').value;
  last = pixels;
  drawPixels($('preview'), pixels);
  try {
    await model(engine, variant); // loading is not latency
    const t0 = performance.now();
    const p = await classify(engine, variant, pixels);
    const ms = performance.now() - t0;
    const top = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, 5);
    $('topk').replaceChildren(...top.map((k) => {
      const tr = document.createElement('tr');
      tr.innerHTML = `<td></td><td>${(100 * p[k]).toFixed(1)}%</td>`;
      tr.firstChild.textContent = manifest.labels[k];
      return tr;
    }));
    const b = ENGINES[engine].backend(live[engine].model);
    const on = b.accelerator + (b.accelerator !== 'wasm' && b.fully === false ? ', partly wasm' : '');
    $('latency').textContent = `${manifest.engines[engine].name} (${on}, ${THREADS} thread${THREADS > 1 ? 's' : ''}): ${ms.toFixed(2)} ms`;
  } catch (e) {
    $('status').textContent = `error: ${e.message || e}`;
    await closeAll();
  }
}

async function image(file) {
  const bitmap = await createImageBitmap(file);
  try { await show(fromImage(bitmap)); } finally { bitmap.close(); }
}

async function camera() {
  const video = $('video');
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
  video.hidden = false;
  await video.play();
  const tick = async () => { if (!video.hidden) { await show(fromImage(video)); setTimeout(tick, 500); } };
  tick();
}

async function main() {
  manifest = await (await fetch('./web.json')).json();
  $('title').textContent = `${manifest.model}: ${manifest.labels.length}-class image classifier`;
  for (const [k, e] of Object.entries(manifest.engines)) $('engine').add(new Option(`${e.name} ${e.version}`, k));
  for (const v of Object.keys(manifest.models)) $('variant').add(new Option(v, v));
  $('file').onchange = (e) => { const f = e.target.files[0]; e.target.value = ''; if (f) image(f); };
  $('engine').onchange = $('variant').onchange = () => last && show(last);
  const drop = $('drop');
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) image(e.dataTransfer.files[0]); };
  $('camera').onclick = () => camera().catch((e) => { $('status').textContent = `camera: ${e.message}`; });
  if (!navigator.mediaDevices?.getUserMedia) $('camera').hidden = true;
  window.addEventListener('pagehide', closeAll);
  window.edgeport = { runBatch, bench, backend, adapter, showGrid, closeAll, accelerator: ACCEL, threads: THREADS,
    isolated: self.crossOriginIsolated };
  $('status').textContent = `ready: ${ACCEL}, ${THREADS} thread${THREADS > 1 ? 's' : ''} per model` +
    (self.crossOriginIsolated ? ', cross-origin isolated' : '');
}

main().catch((e) => { $('status').textContent = `error: ${e.message || e}`; console.error(e); });
