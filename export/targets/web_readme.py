"""README.md of a web bundle: what it is, how to serve it (the headers), its files and sizes."""
from __future__ import annotations

from typing import Any

from edgeport.files import human_size
from edgeport.serve import HEADERS, MIME


def readme(model: str, web: dict[str, Any], sizes: dict[str, int]) -> str:
    """The bundle's README.md."""
    i, o = web["input"], web["output"]
    engines = ", ".join(f"{e['name']} {e['version']} (npm {e['package']})" for e in web["engines"].values())
    rows = "\n".join(f"| {v} | `{m['litertjs']['file']}` ({human_size(m['litertjs']['bytes'])}) | "
                     f"`{m['onnxruntime_web']['file']}` ({human_size(m['onnxruntime_web']['bytes'])}) | "
                     f"{m['verified_artifact']} |"
                     for v, m in web["models"].items())
    headers = "\n".join(f"    {k}: {v}" for k, v in HEADERS.items() if k.startswith("Cross-Origin"))
    return f"""# {model} in the browser

A static web app: pick or drop an image (or use the camera where the browser allows it) and see the
top-5 labels with their probabilities, the engine and its latency. Engines: {engines}, on
WebAssembly; `?accelerator=webgpu` runs both on WebGPU (ONNX Runtime Web's WebGPU build,
`ort.webgpu.min.mjs`), and the latency line says what each engine actually ran on (LiteRT.js moves a
model it cannot fully compile for WebGPU back to WebAssembly). No bundler and no CDN: an import map
loads the engines from `node_modules/`, pinned by `package.json` and `package-lock.json` (`npm ci`
gives the same files).

## Serve it

    edgeport serve dist/{model}-web          # http://127.0.0.1:8000/, loopback only

Any static server works if it sends `.wasm` as `{MIME['.wasm']}` and, for WebAssembly threads
(SharedArrayBuffer), these headers on every response:

{headers}

Opening `index.html` as a `file://` URL does not work (modules and wasm need HTTP).

## Models

| variant | LiteRT.js | ONNX Runtime Web | verified artifact |
|---|---|---|---|
{rows}

Input: {i['dtype']} {i['color_space']} {i['shape']} (batch fixed at 1: LiteRT.js has no resize and
refuses a dynamic batch){'; luma is computed inside, as Pillow' + "'s 'L'" if i.get('to_gray') else ''}.
Output: {o['dtype']} {o['shape']} {o['kind']} ({o['how']}), labels in `{web['labels_file']}`.
The int8 model takes uint8 pixels too (browser tensors are float32, int32 or uint8 only); any
quantization parameters are in `web.json` (LiteRT.js does not expose them).

## In your own app

- Call `loadLiteRt()` once per page; `delete()` every LiteRT.js model and tensor, `release()` every
  ORT session, on error paths too (see `app.js`).
- Give `accelerator: 'wasm'` to LiteRT.js unless you want WebGPU: it picks WebGPU whenever an
  adapter exists. With `'webgpu'`, check `model.options.accelerator` and `model.isFullyAccelerated`:
  a model it cannot fully compile for WebGPU comes back compiled for WebAssembly, with only a console
  warning. Read a WebGPU output with `await t.copyTo('wasm')` before `toTypedArray()`.
- ONNX Runtime Web's WebGPU provider is in `ort.webgpu.min.mjs` (not the wasm-only `ort.wasm.min.mjs`);
  give it `executionProviders: ['webgpu']` alone, so a missing adapter throws instead of quietly
  using another provider. Nodes it has no WebGPU kernel for (e.g. QuantizeLinear of the int8 model)
  still run on its CPU provider: a session made with `logSeverityLevel: 0` logs where each node runs.
- Chrome on Linux needs `--enable-unsafe-webgpu` for WebGPU; without a GPU it is SwiftShader (a
  software adapter): right answers, CPU speed.
- Use one thread per model unless the page is cross-origin isolated and has cores to spare; with
  threads on a 2-core machine, three or more live models deadlocked `delete()`.

## Sizes

models {human_size(sizes['models'])}, engines (wasm and JS) {human_size(sizes['engines'])},
app {human_size(sizes['app'])}.
"""
