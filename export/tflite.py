"""TFLite formats: float32, float16, dynamic range, full integer int8, int16x8 (from the SavedModel)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from edgeport.export.context import ExportContext
from edgeport.export.registry import Format
from edgeport.export.context import cause_line
from edgeport.export.tflite_floor import RANGE_FLOOR, quantize_with_range_floor
from edgeport.export.tflite_meta import add_metadata, interpreter

CONVERTER = "tf.lite.TFLiteConverter.from_saved_model"


def _convert(converter) -> bytes:
    with warnings.catch_warnings():  # TF's calibrator builds a deprecated tf.lite.Interpreter itself
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        return converter.convert()


def _converter(ctx: ExportContext):
    import tensorflow as tf

    return tf, tf.lite.TFLiteConverter.from_saved_model(str(ctx.saved_model_dir))


def _representative(ctx: ExportContext):
    feed = ctx.representative_feed()

    def dataset():
        yield from feed

    return dataset


def _write(ctx: ExportContext, fmt: Format, converter, dest: Path, *, model: bytes | None = None,
           **fields: Any) -> dict[str, Any]:
    model = _convert(converter) if model is None else model
    dest.write_bytes(add_metadata(model, ctx.metadata(fmt)))
    out = {"converter": CONVERTER, "metadata_key": "edgeport", **fields}
    if ctx.calibration is not None and fields.get("calibrated"):
        out["calibration"] = dict(ctx.calibration)
    return out


def export_fp32(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    _, c = _converter(ctx)
    return _write(ctx, Format.TFLITE_FP32, c, dest, precision="float32")


def export_fp16(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    tf, c = _converter(ctx)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_types = [tf.float16]
    return _write(ctx, Format.TFLITE_FP16, c, dest, precision="float16 weights")


def export_dynamic(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    tf, c = _converter(ctx)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    return _write(ctx, Format.TFLITE_DYNAMIC, c, dest, precision="dynamic-range int8 weights")


def _calibrated(ctx: ExportContext, ops: str):
    tf, c = _converter(ctx)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = _representative(ctx)
    c.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops)]
    return tf, c


def _integer(ctx: ExportContext, fmt: Format, ops: str, activations: str, io_type: str,
             dest: Path, **fields: Any) -> dict[str, Any]:
    """Convert; if the result does not load in LiteRT, re-quantize with floored ranges (tflite_floor)."""
    tf, c = _calibrated(ctx, ops)
    if io_type != "float32":
        c.inference_input_type = c.inference_output_type = getattr(tf, io_type)
    model = _convert(c)
    try:
        interpreter(model, ctx.warn)
    except (RuntimeError, ValueError) as exc:
        reason = cause_line(exc)
        model, touched = quantize_with_range_floor(lambda: _calibrated(ctx, ops)[1], activations=activations,
                                                   io_type=io_type)
        interpreter(model, ctx.warn)  # the fallback must load, or the format fails with this error
        fields["range_floor"] = {"floor": RANGE_FLOOR, "tensors": touched, "reason": reason}
        ctx.warn(f"warning: {fmt}: the converter's model does not load ({reason}); re-quantized with "
                 f"activation ranges of at least {RANGE_FLOOR:g} ({touched} tensors widened)")
    return _write(ctx, fmt, c, dest, model=model, io_type=io_type, calibrated=True, **fields)


def export_int8(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    return _integer(ctx, Format.TFLITE_INT8, "TFLITE_BUILTINS_INT8", "int8", str(ctx.config.int8_io),
                    dest, precision="int8")


def export_int16x8(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    return _integer(ctx, Format.TFLITE_INT16X8, "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
                    "int16", "float32", dest, precision="int16 activations, int8 weights")
