"""The browser proof's figures and gate verdicts (the gates of `edgeport verify`), its console
triage, the native batch-1 figure beside it, and its report rows (the columns of `edgeport report`)."""
from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.verify.gates import GateTable
from edgeport.benchmarks.verify.proof import SAME_MODEL, prove
from edgeport.export.registry import precision_of

#: Console errors that are engine INFO lines, not errors (LiteRT.js logs INFO through console.error).
KNOWN_INFO = (re.compile(r"^\s*INFO: "), re.compile(r"^\s*I\d{4} "),
              # LiteRT.js probes for an NPU accelerator in every page and says it has none
              re.compile(r"^WARNING: \[npu_registry\.cc:\d+\] NPU accelerator could not be loaded"),
              # ONNX Runtime's verbose and info log lines (asked for to learn where a session's nodes run),
              # and its warning that nodes left the requested provider (the run's row fails and says which)
              re.compile(r"^(?:\x1b\[[\d;]*m)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[(?:[VI]:onnxruntime:|"
                         r"W:onnxruntime:, session_state\.cc:\d+ VerifyEachNodeIsAssignedToAnEp\])"))
WARMUP, TIMED = 10, 50
#: ONNX Runtime's name for the execution provider of each page accelerator (its placement log's words).
ORT_PROVIDERS = {"wasm": "CPUExecutionProvider", "webgpu": "WebGpuExecutionProvider"}
_PLACED = re.compile(r"VerifyEachNodeIsAssignedToAnEp\]\s+(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. "
                     r"Number of nodes: (\d+)")
_NODE = re.compile(r"VerifyEachNodeIsAssignedToAnEp\]\s{3,}(\S+) \(")


def console_errors(messages: list[dict[str, str]]) -> list[str]:
    """Console errors and assertions that are not known engine INFO lines."""
    return [m["text"] for m in messages if m["type"] in ("error", "assert")
            and not any(p.search(m["text"]) for p in KNOWN_INFO)]


def placement(messages: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """ONNX Runtime's node placement from its verbose session log: {provider: {"nodes": N, "ops": [...]}}
    (ops are listed only when the nodes are split between providers); {} when the log has none."""
    out: dict[str, dict[str, Any]] = {}
    current = None
    for m in messages:
        if (hit := _PLACED.search(m["text"])):
            current = out.setdefault(hit[1], {"nodes": int(hit[2]), "ops": []})
        elif current is not None and (hit := _NODE.search(m["text"])):
            current["ops"].append(hit[1])
    return out


def backend_problem(accelerator: str, backend: dict[str, Any] | None, messages: list[dict[str, str]]) -> str | None:
    """Why a run did not run wholly on ``accelerator`` (the engine's own word: the accelerator it
    compiled for and whether fully, or ONNX Runtime's node placement in ``messages``), or None."""
    if backend is None:
        return None
    if backend.get("accelerator") != accelerator:
        return f"the engine ran on {backend.get('accelerator')}, not {accelerator} (it fell back)"
    if backend.get("fully") is False:
        return f"the model is not fully compiled for {accelerator}: part of it runs on WebAssembly"
    if backend.get("fully") is True:
        return None
    placed = placement(messages)
    if not placed:
        return f"the engine did not say where the model's nodes run on {accelerator} (no placement in its log)"
    want = ORT_PROVIDERS[accelerator]
    elsewhere = {ep: p for ep, p in placed.items() if ep != want}
    if not elsewhere:
        return None
    total = sum(p["nodes"] for p in placed.values())
    said = "; ".join(f"{p['nodes']} of {total} nodes on {ep}" + (f" ({', '.join(sorted(set(p['ops'])))})"
                                                                  if p["ops"] else "") for ep, p in elsewhere.items())
    return f"not every node runs on {want}: {said}"


#: Said beside WebGPU rows whose adapter is a software one (headless Linux Chromium: SwiftShader).
SOFTWARE_NOTE = ("WebGPU here is a software adapter (SwiftShader: a GPU emulated on the CPU): its rows prove "
                 "the WebGPU code path's answers; its times are not a GPU's latency")


def adapter_name(adapter: dict[str, Any] | None) -> str | None:
    """``vendor architecture`` of the page's WebGPU adapter (``, software`` for SwiftShader), or why none."""
    if not adapter:
        return None
    if adapter.get("error"):
        return f"none: {adapter['error']}"
    name = " ".join(str(adapter[k]) for k in ("vendor", "architecture") if adapter.get(k)) or "unnamed"
    return name + (", software" if software(adapter) else "")


def software(adapter: dict[str, Any] | None) -> bool:
    """A software WebGPU adapter (SwiftShader, or one the browser marks as its fallback)."""
    return bool(adapter and not adapter.get("error") and
                (adapter.get("fallback") or "swiftshader" in str(adapter.get("architecture", "")).lower()))


def gated(out: np.ndarray, ref: np.ndarray, noise: float, y: np.ndarray | None, task: str | None,
          table: GateTable, artifact: str, where: str) -> dict[str, Any]:
    """verify's row of ``out`` against the Keras reference ``ref`` under the gate of ``artifact``'s
    format (float: the derived float32 tolerance; int8: the quantized gate): its figures, gate and
    failures (:func:`edgeport.benchmarks.verify.proof.prove`)."""
    row = prove(artifact, "browser", where, ref, out, gate=table.for_format(artifact), against="Keras",
                precision=precision_of(artifact).value, y=y, noise=noise, task=task)
    return {"figures": row.figures, "gate": row.gate, "failures": [str(e) for e in row.failures],
            "status": "fail" if row.failures else "pass"}


def against_wasm(check: dict[str, Any], out: np.ndarray, wasm: np.ndarray | None, artifact: str, where: str,
                 kind: str) -> dict[str, Any]:
    """``check`` (a non-WebAssembly run against Keras) also held to the same file's WebAssembly
    outputs with the same-model gate (the same top-1 on every image; ``kind``: the Keras output's
    kind, as a quantized file's outputs may not look like a distribution); figures under ``vs_wasm``."""
    if wasm is None:
        return {**failing(check, f"{where}: no WebAssembly outputs of this file to compare with"), "vs_wasm": None}
    row = prove(artifact, "browser", where, wasm, out, gate=SAME_MODEL, against="the same file on WebAssembly",
                precision=precision_of(artifact).value, kinds={"output": kind})
    failures = [*check["failures"], *(str(e) for e in row.failures)]
    return {**check, "vs_wasm": {k: row.figures.get(k) for k in ("agreement", "max_abs_diff", "mean_abs_diff")},
            "failures": failures, "status": "fail" if failures else "pass"}


def native_p50(path: Path, pixels: np.ndarray) -> tuple[float, str]:
    """(median batch-1 ms of TIMED runs after WARMUP, engine) of a .tflite (LiteRT) or .onnx (ONNX
    Runtime) file in this process, one thread: the figure the browser's is set beside."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: pixels}
        step, engine = (lambda: s.run(None, feed)), f"onnxruntime {ort.__version__}"
    else:
        from edgeport.runtimes.litert import import_engine

        Interpreter, _, engine, _ = import_engine()
        it = Interpreter(model_path=str(path), num_threads=1)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], pixels)
        step = it.invoke
    times = []
    for i in range(WARMUP + TIMED):
        t0 = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), engine


def row(model: str, variant: str, file: str, engine: str, version: str, accelerator: str, check: dict[str, Any],
        p50_ms: float | None, native_ms: float | None, native_engine: str | None, size: int, device: str
        ) -> dict[str, Any]:
    """One browser row in the report's columns, with the native figure and the ratio beside it (a run
    that could not run: its check has no figures, and its failure says why)."""
    f = check["figures"]
    runtime = f"{engine} {version} ({accelerator})"
    return {"device": device, "model": model, "format": f"{file} ({variant}, web)", "accelerator": accelerator,
            "runtime": runtime, "target": "web", "precision": variant, "size_bytes": size,
            "accuracy": f.get("accuracy"),
            "keras_accuracy": f.get("keras_accuracy"), "accuracy_delta_points": f.get("accuracy_delta_points"),
            "agreement": f.get("agreement"), "max_abs_diff": f.get("max_abs_diff"),
            "mean_abs_diff": f.get("mean_abs_diff"), "gate": check["status"], "vs_wasm": check.get("vs_wasm"),
            "p50_us": None if p50_ms is None else p50_ms * 1e3, "latency_threads": 1, "engine": runtime,
            "native_p50_us": None if native_ms is None else native_ms * 1e3, "native_engine": native_engine,
            "browser_vs_native": p50_ms / native_ms if p50_ms and native_ms else None,
            "failures": check["failures"], "figures": f}


def failing(check: dict[str, Any], reason: str) -> dict[str, Any]:
    """``check`` failed for ``reason`` too (a run that fell back: its figures stay, it fails)."""
    return {**check, "failures": [*check["failures"], reason], "status": "fail"}


def failed(reason: str) -> dict[str, Any]:
    """The check of a run that could not run (no adapter, an unsupported op, a page that did not load)."""
    return failing({"figures": {}, "gate": None, "failures": []}, reason)
