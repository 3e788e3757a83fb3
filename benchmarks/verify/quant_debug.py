"""Where an int8 model loses accuracy: TFLite's quantization debugger, one row per quantized tensor.

The debugger re-quantizes the SavedModel with the same kind of calibration (a representative set
of the model's own training inputs, as export used) into a model instrumented with NumericVerify
ops, runs debug samples through it and compares every quantized tensor with its float value.
Rows are sorted worst first by RMSE / scale: the error in units of one quantization step (about
0.29 is the ideal rounding error; much more means that layer's range or scale is the problem).
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError

IDEAL_RMSE_PER_SCALE = 1 / math.sqrt(12)  # uniform rounding error of one step


def calibration_inputs(record: dict[str, Any] | None, *, max_samples: int = 200
                       ) -> tuple[dict[str, np.ndarray], str]:
    """The artifact's own representative set, rebuilt from its manifest record (never another
    one: a different calibration would diagnose a different model). Returns (samples by input name,
    where from); every input of a multi-input model, as `edgeport fix` calibrates it."""
    from edgeport.export.calibration import rebuild

    if not record:
        raise EdgeportError("the artifact records no calibration; re-export it with this edgeport")
    arrays = {k: v[:max_samples] for k, v in rebuild(record).items()}
    where = f"{record.get('source')}, seed {record.get('seed')}"
    return arrays, f"{len(next(iter(arrays.values())))} samples rebuilt from the recorded calibration ({where})"


def _rows_from_dump(text: str) -> list[dict[str, Any]]:
    rows = []
    for rec in csv.DictReader(io.StringIO(text)):
        def num(key: str, rec: dict[str, str] = rec) -> float:
            try:
                return float(rec.get(key, "nan"))
            except ValueError:
                return float("nan")

        mse, scale = num("mean_squared_error"), num("scale")
        rmse = math.sqrt(mse) if mse >= 0 else float("nan")
        tensor = rec.get("tensor_name", "")
        rows.append({"layer": tensor.split(";")[0], "tensor": tensor, "op": rec.get("op_name", ""),
                     "tensor_idx": int(float(rec.get("tensor_idx", -1) or -1)),
                     "mse": mse, "rmse": rmse, "rmse_per_scale": rmse / scale if scale > 0 else float("nan"),
                     "max_abs_error": num("max_abs_error"), "mean_error": num("mean_error"),
                     "scale": scale, "zero_point": num("zero_point")})
    rows.sort(key=lambda r: -(r["rmse_per_scale"] if r["rmse_per_scale"] == r["rmse_per_scale"] else -1))
    return rows


def debug_int8(saved_model_dir: str | Path, calibration: dict[str, np.ndarray] | np.ndarray,
               debug_inputs: dict[str, np.ndarray] | np.ndarray, *, max_debug_samples: int = 100) -> dict[str, Any]:
    """Run TFLite's QuantizationDebugger on the export's int8 converter (calibrated on ``calibration``,
    by input name: one array for a one-input model) with the inputs fed as `edgeport fix` feeds them
    (export/tflite_fix); returns ``{"layers": [row per tensor, worst first], ...}``."""
    import tensorflow as tf

    from edgeport.export.calibration import by_names
    from edgeport.export.tflite import INT8_OPS, calibrated_converter
    from edgeport.export.tflite_fix import input_order, signature_inputs

    names = signature_inputs(str(saved_model_dir))

    def keyed(x: dict[str, np.ndarray] | np.ndarray, limit: int | None = None) -> dict[str, np.ndarray]:
        arrays = x if isinstance(x, dict) else {names[0] if len(names) == 1 else "input": x}
        return {k: np.asarray(v[:limit], np.float32) for k, v in by_names(arrays, names, str(saved_model_dir)).items()}

    cal, debug = keyed(calibration), keyed(debug_inputs, max_debug_samples)
    n_cal, n_debug = (len(next(iter(a.values()))) for a in (cal, debug))
    order: list[str] = []  # the debugger feeds lists in the calibrated model's input order

    def feed():
        return ({k: v[i:i + 1] for k, v in cal.items()} for i in range(n_cal))

    _, converter = calibrated_converter(saved_model_dir, feed, INT8_OPS)  # export's int8 converter
    with warnings.catch_warnings():  # the debugger runs tf.lite.Interpreter, which warns it is deprecated
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([debug[k][i:i + 1] for k in order] for i in range(n_debug)))
        order[:] = input_order(debugger.calibrated_model, list(debug))
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    return {"layers": _rows_from_dump(buf.getvalue()), "debug_samples": n_debug,
            "ideal_rmse_per_scale": IDEAL_RMSE_PER_SCALE}


def render_table(result: dict[str, Any], *, top: int = 15, wide: bool = False) -> str:
    """The per-layer table as plain text, worst tensors first (80 columns; ``wide``: MSE and longer names)."""
    rows = result.get("layers", [])
    if not rows:
        return f"quantization debugger: {result.get('error', 'no quantized tensors reported')}"
    name, op = (48, 18) if wide else (36, 16)
    mse = (lambda v: f" {v:>10.3g}") if wide else (lambda v: "")
    lines = [f"per-layer int8 error ({result.get('debug_samples', '?')} samples; RMSE/scale: error in "
             f"quantization steps, ideal {IDEAL_RMSE_PER_SCALE:.2f}):",
             f"  {'layer (tensor)':<{name}} {'op':<{op}}" + (f" {'MSE':>10}" if wide else "")
             + f" {'RMSE/scale':>10} {'max|err|':>10}"]
    for r in rows[:top]:
        lines.append(f"  {r['layer'][-name:]:<{name}} {r['op'][:op]:<{op}}{mse(r['mse'])} "
                     f"{r['rmse_per_scale']:>10.3f} {r['max_abs_error']:>10.3g}")
    if len(rows) > top:
        lines.append(f"  ... {len(rows) - top} more tensors in verify.json")
    return "\n".join(lines)


def run_debug_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker side: rebuild the calibration, run the debugger on the SavedModel, return the table."""
    from edgeport.benchmarks.verify.jobs import load_inputs

    cal, where = calibration_inputs(job["calibration"])
    from edgeport.export.tflite_batch1 import job_saved_model  # an RNN exported at batch 1: debugged at batch 1

    saved_model = job_saved_model({**job, "source": job["savedmodel"]})
    result = debug_int8(saved_model, cal, load_inputs(job["inputs"]), max_debug_samples=int(job.get("n", 100)))
    result["calibration"] = where
    return result
