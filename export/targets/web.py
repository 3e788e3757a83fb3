"""Web and hybrid apps (PWAs, Capacitor/Ionic, Electron, in-app web views): ``dist/MODEL-web/``, a
static page that classifies a picked, dropped or camera image in the browser with LiteRT.js or ONNX
Runtime Web (WebAssembly), showing the top-k labels, the engine and its latency.

It carries the mobile variants (:mod:`~edgeport.export.targets.mobile_model`: batch 1, uint8 RGB
``[1, H, W, 3]`` in, float32 probabilities out; float32 and int8) as ``.tflite`` for LiteRT.js and,
converted from those same files, as ONNX for ONNX Runtime Web (:mod:`~edgeport.export.targets.web_model`);
labels, ``web.json`` (I/O, scale and zero point, files, engines), the engines' files from npm
pinned by the ``package.json`` and ``package-lock.json`` it ships, and a README with the headers to
serve it with (``edgeport serve dist/MODEL-web``). Before anything ships, both variants pass the
mobile proof and each ONNX file picks what its .tflite picks on the same real test images;
``python -m edgeport.benchmarks.devices.web_check`` (``make web-check``) proves the files again
inside headless Chromium.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.verify import proof
from edgeport.errors import EdgeportError
from edgeport.export.targets.bundle import BundleBuilder
from edgeport.export.targets.mobile import LABELS_FILE, checked_source, mobile_variants
from edgeport.export.registry import precision_of
from edgeport.export.targets.mobile_model import HEADS, VARIANTS, camera_form
from edgeport.export.targets.mobile_proof import proof_images, prove
from edgeport.export.targets import web_engines
from edgeport.export.targets.web_model import onnx_io, require_web_tflite, to_onnx
from edgeport.export.targets.web_readme import readme

APP_FILES = ("index.html", "app.js", "package.json", "package-lock.json")
MODELS_DIR = "models/"
WEB_FILE = "web.json"


def build(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None) -> None:
    """The static web app, its models for both engines, the engines' files and README.md."""
    model_dir = Path(model_dir)
    src = checked_source(model_dir, samples, builder.target)
    modules = web_engines.engines()
    model, head, fp32, int8, kept = mobile_variants(src)
    models: dict[str, dict[str, Any]] = {}
    tflite_files: dict[str, Path] = {}
    onnx_files: dict[str, Path] = {}
    for v, raw in zip(VARIANTS, (fp32, int8)):
        stem = Path(v.file).stem
        desc = require_web_tflite(raw, f"{src.name} {v.file}")
        onnx = to_onnx(raw, f"{src.name} {v.file}")
        tflite_files[v.name] = builder.add_bytes(MODELS_DIR + v.file, raw)
        onnx_files[v.name] = builder.add_bytes(MODELS_DIR + stem + ".onnx", onnx)
        models[v.name] = {
            "verified_artifact": v.artifact,
            "litertjs": {"file": MODELS_DIR + v.file, "bytes": len(raw), "input": desc["input"],
                         "output": desc["output"]},
            "onnxruntime_web": {"file": MODELS_DIR + stem + ".onnx", "bytes": len(onnx), **onnx_io(onnx)}}
    x, y, data = proof_images(model_dir, src.manifest, src.verify, samples, seed, data_dir)
    rows = prove(tflite_files, model, model_dir, src.entries, head, x, y, proof.verified_gates(src.verify))
    rows += _onnx_rows(tflite_files, onnx_files, x, y)
    table = proof.table(f"{src.name}: web models (RGB uint8 in) vs Keras, the verified artifacts and their "
                        ".tflite, verify's gates", rows)
    if any(r.status != "pass" for r in rows):
        raise EdgeportError(f"{src.name}: the web models do not agree with what they were made from; nothing "
                            f"shipped:\n{table}\n" + "\n".join(proof.failure_lines(rows)))
    builder.tables.append(table)
    for name in APP_FILES:
        builder.add_file(name, web_engines.APP / name)
    for rel, path in web_engines.shipped_files(modules):
        builder.add_file(rel, path)
    builder.add_text(LABELS_FILE, "\n".join(src.labels) + "\n")
    versions = web_engines.versions(modules)
    web = _web_meta(src, head, models, versions)
    builder.add_json(WEB_FILE, web)
    builder.add_text("README.md", readme(src.name, web, sizes(builder.stage)))
    if kept:
        builder.notes.append("model_int8: the wrapper's own steps run in float32; the network is int8")
    builder.meta.update(source_sha256=src.sha256, web=web, sizes=sizes(builder.stage),
                        proof={"data": data, "runtime": "litert and onnxruntime (Python); the browser proof is "
                               "make web-check", "results": [r.to_dict() for r in rows], "ok": True})


def _onnx_rows(tflite: dict[str, Path], onnx: dict[str, Path], x: np.ndarray, y: np.ndarray | None
               ) -> list[proof.Result]:
    """Each ONNX file against its own .tflite on every image (same pixels, camera form): verify rows,
    the same-model gate."""
    from edgeport.benchmarks.verify.figures import output_kind
    from edgeport.runtimes import load

    rgb = camera_form(x).astype(np.float32)
    refs = {v.name: np.asarray(load(tflite[v.name], threads=1, probe=False).predict(rgb), np.float64)
            for v in VARIANTS}
    kinds = {"output": output_kind(refs[VARIANTS[0].name], "classification")}  # the float variant's
    rows = []
    for v in VARIANTS:
        ref = refs[v.name]
        session = load(onnx[v.name], threads=1, probe=False)
        rows.append(proof.prove(v.artifact, session.runtime, onnx[v.name].name, ref,
                                np.asarray(session.predict(rgb), np.float64), gate=proof.SAME_MODEL,
                                against=tflite[v.name].name, precision=precision_of(v.artifact).value,
                                engine=session.engine, y=y, kinds=kinds))
    return rows


def _web_meta(src, head: str, models: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    c = src.contract
    return {"model": src.name, "labels": src.labels, "labels_file": LABELS_FILE,
            "input": {"shape": [1, c.height, c.width, 3], "dtype": "uint8", "color_space": "RGB",
                      "to_gray": "inside the model (PIL 'L', exact)" if c.channels == 1 else None},
            "output": {"shape": [1, len(src.labels)], "dtype": "float32", "kind": "probabilities", "head": head,
                       "how": HEADS[head]},
            "models": models,
            "engines": {k: {"name": web_engines.NAMES[k], "package": web_engines.PACKAGES[k], "version": versions[k]}
                        for k in web_engines.NAMES},
            "accelerator": "wasm (?accelerator=webgpu runs both engines on WebGPU; the page says what each ran on)",
            "threads": "1 per model; more only when cross-origin isolated with 4+ cores (?threads=N overrides)"}


def sizes(root: Path) -> dict[str, int]:
    """Bytes by part: models, engines' wasm and JS (node_modules), the app (the rest)."""
    out = {"models": 0, "engines": 0, "app": 0}
    for p in root.rglob("*"):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            key = "models" if rel.startswith(MODELS_DIR) else "engines" if rel.startswith("node_modules/") else "app"
            out[key] += p.stat().st_size
    return out
