"""ONNX formats: float32 via tf2onnx from the SavedModel; int8 QDQ via ONNX Runtime static quantization."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import ExportError
from edgeport.export.context import ExportContext
from edgeport.export.registry import Format
from edgeport.types import METADATA_KEY

CALIBRATION_BATCH = 16


def set_metadata(model, meta: dict[str, Any]) -> None:
    """Put edgeport's metadata JSON into the model's ``metadata_props`` (replacing an old entry)."""
    import onnx

    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = json.dumps(meta, sort_keys=True)
    onnx.helper.set_model_props(model, props)


def _tf2onnx_in_process(saved_model: Path, opset: int):
    import logging

    import tensorflow as tf
    from tf2onnx import convert, tf_loader

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
        str(saved_model), None, None, tag="serve", signatures=["serving_default"],
        return_initialized_tables=True, return_tensors_to_rename=True)
    with tf.device("/cpu:0"):
        # Private: tf2onnx has no public in-process SavedModel entry (from_keras / from_function
        # only); this is what `python -m tf2onnx.convert --saved-model` runs. tests/test_private_apis.py
        model, _ = convert._convert_common(
            graph_def, name=saved_model.name, opset=opset, input_names=inputs, output_names=outputs,
            tensors_to_rename=renames, initialized_tables=tables)
    return model


def _tf2onnx_subprocess(saved_model: Path, opset: int, dest: Path):
    import onnx

    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model), "--output",
           str(dest), "--opset", str(opset), "--signature_def", "serving_default"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        lines = [ln for ln in run.stderr.splitlines() if "Error" in ln or "error" in ln]
        raise ExportError(f"tf2onnx exited {run.returncode}: {(lines or ['(no message)'])[-1].strip()}")
    return onnx.load(str(dest))


def export_fp32(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    import onnx
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    opset, newest = ctx.config.opset, max(OPSET_TO_IR_VERSION)
    if opset > newest:
        raise ExportError(f"opset {opset} is newer than tf2onnx supports ({newest}); use --opset {newest}")
    try:
        model, how = _tf2onnx_in_process(ctx.saved_model_dir, opset), "in-process"
    except (ImportError, AttributeError, TypeError) as exc:  # tf2onnx's internals moved: use its CLI
        ctx.warn(f"warning: onnx: tf2onnx's in-process converter is unusable ({type(exc).__name__}: {exc}); "
                 "converting with `python -m tf2onnx.convert` instead")
        model, how = _tf2onnx_subprocess(ctx.saved_model_dir, opset, dest), "subprocess"
    set_metadata(model, ctx.metadata(Format.ONNX))
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return {"converter": f"tf2onnx ({how}, from the SavedModel)", "opset": opset,
            "metadata_key": METADATA_KEY}


def _reader(ctx: ExportContext, names: list[str], batch: int = CALIBRATION_BATCH):
    """An ONNX Runtime CalibrationDataReader over the run's representative samples."""
    by_sig = {ctx.signature_name(k): v for k, v in ctx.samples.items()}
    if set(by_sig) != set(names):
        if len(names) != 1 or len(by_sig) != 1:
            raise ExportError(f"ONNX inputs {names} do not match the model inputs {sorted(by_sig)}")
        by_sig = {names[0]: next(iter(by_sig.values()))}
    return reader(by_sig, batch)


def reader(samples: dict[str, np.ndarray], batch: int = CALIBRATION_BATCH):
    """A CalibrationDataReader over ``samples`` (by ONNX input name), ``batch`` rows at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    count = len(next(iter(samples.values())))
    batches = [{k: np.ascontiguousarray(v[i:i + batch]) for k, v in samples.items()}
               for i in range(0, count, batch)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self):
            return next(self._batches, None)

    return Reader()


def calibration_batch(method: str) -> int:
    """Samples per calibration batch: histogram methods stack per-batch outputs, so equal batches of
    one keep them homogeneous; minmax takes CALIBRATION_BATCH at a time."""
    return CALIBRATION_BATCH if str(method) == "minmax" else 1


def preprocess(source: Path, work: Path, warn) -> tuple[Path, bool]:
    """ONNX Runtime's quantization pre-processing (shape inference, folding); the plain model when it fails."""
    pre = work / "preprocessed.onnx"
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        return pre, True
    except Exception as exc:  # noqa: BLE001 - pre-processing only helps; said and recorded
        warn(f"warning: onnx_int8: ONNX Runtime's quantization pre-processing failed "
             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); quantizing the model without it")
        return source, False


def quantize(pre: Path, dest: Path, reader, *, method: str = "minmax", exclude: list[str] | None = None) -> Path:
    """Static QDQ int8 quantization (per-channel weights) of ``pre`` into ``dest``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    known = {n.name for n in onnx.load(str(pre), load_external_data=False).graph.node}
    if unknown := [n for n in exclude or [] if n not in known]:
        raise ExportError(f"--onnx-keep-float: no node named {unknown[0]!r} in the ONNX graph")
    from edgeport.export.config import OnnxCalibration

    methods = {OnnxCalibration.MINMAX.value: CalibrationMethod.MinMax, OnnxCalibration.ENTROPY.value:
               CalibrationMethod.Entropy, OnnxCalibration.PERCENTILE.value: CalibrationMethod.Percentile,
               OnnxCalibration.DISTRIBUTION.value: CalibrationMethod.Distribution}
    quantize_static(str(pre), str(dest), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, calibrate_method=methods[method],
                    nodes_to_exclude=list(exclude or []) or None)
    return dest


def export_int8(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    import onnx

    source = ctx.dependency(Format.ONNX)
    work = dest.parent / "onnx_int8_work"
    work.mkdir(exist_ok=True)
    pre, preprocessed = preprocess(source, work, ctx.warn)
    names = [i.name for i in onnx.load(str(pre), load_external_data=False).graph.input]
    method, exclude = str(ctx.config.onnx_calibration), list(ctx.config.onnx_keep_float)
    quantized = quantize(pre, work / "quantized.onnx", _reader(ctx, names, calibration_batch(method)),
                         method=method, exclude=exclude)
    model = onnx.load(str(quantized))
    set_metadata(model, ctx.metadata(Format.ONNX_INT8))
    onnx.save(model, str(dest))
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    return {"converter": f"onnxruntime.quantization.quantize_static (QDQ, per-channel, {method})",
            "quant_format": "QDQ", "per_channel": True, "activation_type": "int8", "weight_type": "int8",
            "calibration_method": method, "keep_float": exclude,
            "preprocessed": preprocessed, "calibration": dict(ctx.calibration or {}),
            "metadata_key": METADATA_KEY}
