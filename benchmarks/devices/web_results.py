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
from edgeport.benchmarks.verify.proof import prove
from edgeport.export.registry import precision_of

#: Console errors that are engine INFO lines, not errors (LiteRT.js logs INFO through console.error).
KNOWN_INFO = (re.compile(r"^\s*INFO: "), re.compile(r"^\s*I\d{4} "),
              # LiteRT.js probes for an NPU accelerator in every page and says it has none
              re.compile(r"^WARNING: \[npu_registry\.cc:\d+\] NPU accelerator could not be loaded"))
WARMUP, TIMED = 10, 50


def console_errors(messages: list[dict[str, str]]) -> list[str]:
    """Console errors and assertions that are not known engine INFO lines."""
    return [m["text"] for m in messages if m["type"] in ("error", "assert")
            and not any(p.search(m["text"]) for p in KNOWN_INFO)]


def gated(out: np.ndarray, ref: np.ndarray, noise: float, y: np.ndarray | None, task: str | None,
          table: GateTable, artifact: str, where: str) -> dict[str, Any]:
    """verify's row of ``out`` against the Keras reference ``ref`` under the gate of ``artifact``'s
    format (float: the derived float32 tolerance; int8: the quantized gate): its figures, gate and
    failures (:func:`edgeport.benchmarks.verify.proof.prove`)."""
    row = prove(artifact, "browser", where, ref, out, gate=table.for_format(artifact), against="Keras",
                precision=precision_of(artifact).value, y=y, noise=noise, task=task)
    return {"figures": row.figures, "gate": row.gate, "failures": [str(e) for e in row.failures],
            "status": "fail" if row.failures else "pass"}


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


def row(model: str, variant: str, file: str, engine: str, version: str, check: dict[str, Any], p50_ms: float,
        native_ms: float, native_engine: str, size: int, device: str) -> dict[str, Any]:
    """One browser row in the report's columns, with the native figure and the ratio beside it."""
    f = check["figures"]
    return {"device": device, "model": model, "format": f"{file} ({variant}, web)",
            "runtime": f"{engine} {version} (wasm)", "target": "web", "precision": variant, "size_bytes": size,
            "accuracy": f.get("accuracy"),
            "keras_accuracy": f.get("keras_accuracy"), "accuracy_delta_points": f.get("accuracy_delta_points"),
            "agreement": f.get("agreement"), "max_abs_diff": f.get("max_abs_diff"),
            "mean_abs_diff": f.get("mean_abs_diff"), "gate": check["status"], "p50_us": p50_ms * 1e3,
            "latency_threads": 1, "engine": f"{engine} {version} (wasm)",
            "native_p50_us": native_ms * 1e3, "native_engine": native_engine,
            "browser_vs_native": p50_ms / native_ms if native_ms else None}
