"""TFLite formats: float32, float16, dynamic range, full integer int8, int16x8 (from the SavedModel)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edgeport.errors import ExportError
from edgeport.export.context import ExportContext, cause_line
from edgeport.export.registry import Format
from edgeport.export import tflite_batch1 as batch1
from edgeport.export.tflite_flatbuffer import add_metadata, interpreter

Feed = Callable[[], Iterable[Any]]

CONVERTER = "tf.lite.TFLiteConverter.from_saved_model"


def _convert(converter) -> bytes:
    with warnings.catch_warnings():  # TF's calibrator builds a deprecated tf.lite.Interpreter itself
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        return converter.convert()


def _converter(ctx: ExportContext):
    import tensorflow as tf

    return tf, tf.lite.TFLiteConverter.from_saved_model(str(batch1.saved_model(ctx)))


def _representative(ctx: ExportContext):
    feed = ctx.representative_feed()

    def dataset():
        yield from feed

    return dataset


def _write(ctx: ExportContext, fmt: Format, converter, dest: Path, *, model: bytes | None = None,
           **fields: Any) -> dict[str, Any]:
    model = _convert(converter) if model is None else model
    batch = {"batch": 1} if ctx.tflite_batch1 is not None else {}  # converted at batch 1 (tflite_batch1)
    dest.write_bytes(add_metadata(model, {**ctx.metadata(fmt), **batch}))
    out = {"converter": CONVERTER, "metadata_key": "edgeport", **fields}
    if ctx.calibration is not None and fields.get("calibrated"):
        out["calibration"] = dict(ctx.calibration)
    return out


@batch1.free_batch_or_1(Format.TFLITE_FP32.value)
def export_fp32(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    _, c = _converter(ctx)
    return _write(ctx, Format.TFLITE_FP32, c, dest, arithmetic="float32")


@batch1.free_batch_or_1(Format.TFLITE_FP16.value)
def export_fp16(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    tf, c = _converter(ctx)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_types = [tf.float16]
    return _write(ctx, Format.TFLITE_FP16, c, dest, arithmetic="float16 weights")


@batch1.free_batch_or_1(Format.TFLITE_DYNAMIC.value)
def export_dynamic(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    tf, c = _converter(ctx)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    return _write(ctx, Format.TFLITE_DYNAMIC, c, dest, arithmetic="dynamic-range int8 weights")


def float32_model(saved_model: str | Path) -> bytes:
    """The float32 TFLite model of a SavedModel (what the int16x8 quantizer path starts from)."""
    import tensorflow as tf

    return _convert(tf.lite.TFLiteConverter.from_saved_model(str(saved_model)))


def calibrated_converter(saved_model: str | Path, feed: Feed, ops: str | Sequence[str] | None = None):
    """(tf, a converter of ``saved_model`` calibrated on ``feed``, restricted to ``ops`` when given:
    one ``tf.lite.OpsSet`` name or several, e.g. an integer set and ``TFLITE_BUILTINS``)."""
    import tensorflow as tf

    c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = feed
    if ops is not None:
        c.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in ([ops] if isinstance(ops, str) else ops)]
    return tf, c


def _calibrated(ctx: ExportContext, ops: str | Sequence[str] | None):
    return calibrated_converter(batch1.saved_model(ctx), _representative(ctx), ops)


MAX_FLOAT_TO_LOAD = 8
INT8_OPS = "TFLITE_BUILTINS_INT8"
SELECTIVE = "tf.lite.experimental.QuantizationDebugger, denylisted_nodes"


def int8_model(saved_model: str | Path, feed: Feed, *, io_type: str, keep: list[str] | tuple[str, ...] = (),
               warn: Callable[[str], None] = print, quantizer=None) -> tuple[bytes, dict[str, Any]]:
    """The one full-integer int8 conversion (export and `edgeport fix` both call it): calibrated on
    ``feed``, ``keep`` op outputs left in float (TFLite's public QuantizationDebugger; float32 I/O
    then), an op the converter cannot quantize kept in float by its float fallback (said, recorded:
    see tflite_fallback), and an op LiteRT refuses to prepare kept in float too. ``quantizer``: an already
    calibrated :class:`SelectiveQuantizer` of the same calibration (a fix search reuses one).
    Returns (model bytes, the manifest fields that describe it)."""
    from edgeport.export.tflite_selective import SelectiveQuantizer

    keep, fields = list(keep), {}

    def selective(names: list[str]) -> bytes:
        nonlocal quantizer
        if quantizer is None:
            quantizer = SelectiveQuantizer(calibrated_converter(saved_model, feed)[1])
        return quantizer.model(names)

    if keep:
        model, io_type = selective(keep), "float32"
        fields.update(keep_float=keep, selective=SELECTIVE)
        warn(f"note: int8: {len(keep)} layer(s) kept in float (selective quantization); float32 I/O")
    else:
        model, kept = _int8_converted(saved_model, feed, io_type, warn)
        fields.update(kept.fields if kept is not None else {})
    fields["io_type"] = io_type
    return _load_int8(model, keep, fields, selective, warn), fields


def _int8_converted(saved_model: str | Path, feed: Feed, io_type: str, warn: Callable[[str], None]):
    """(the converter's int8 model, the ops it keeps in float or None): TFLITE_BUILTINS_INT8, and
    when the converter refuses an op, again with its public float fallback (TFLITE_BUILTINS beside)."""
    from edgeport.export import tflite_fallback as fb

    def make(ops: list[str]):
        tf, c = calibrated_converter(saved_model, feed, ops)
        if io_type != "float32":
            c.inference_input_type = c.inference_output_type = getattr(tf, io_type)
        return c

    label = Format.TFLITE_INT8.value
    try:
        model = _convert(make([INT8_OPS]))
    except Exception as exc:  # only an op the converter refuses falls back; the rest re-raises
        if fb.refused_op(str(exc)) is None:
            raise
        return fb.convert(make, INT8_OPS, fb.refusal_reason(exc), label, _convert, warn)
    return model, fb.own(model, label, warn)


def _load_int8(model: bytes, keep: list[str], fields: dict[str, Any], selective, warn) -> bytes:
    """An int8 model that LiteRT refuses to prepare (a collapsed activation range overflows a
    kernel's rescale) gets the failing op kept in float, op by op, with the public API."""
    from edgeport.export.tflite_selective import failing_node

    kept: list[str] = []
    for _ in range(MAX_FLOAT_TO_LOAD):
        try:
            interpreter(model, warn)
            break
        except (RuntimeError, ValueError) as exc:
            reason = cause_line(exc)
            node = failing_node(model, str(exc))
            if node is None or node in keep + kept:
                raise
            kept.append(node)
            warn(f"warning: int8: LiteRT refuses the int8 model ({reason}); keeping {node} in float")
            model = selective(keep + kept)
    else:
        interpreter(model, warn)  # still refused: the format fails with this error
    if kept:
        fields["kept_float_to_load"] = kept
        fields["io_type"] = "float32"
    return model


INT16X8_OPS = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
#: The 16x8 converter's error for a tensor its calibration did not see (the CAST of an id input).
UNCALIBRATED = "Max and min for dynamic tensors should be recorded during calibration"


def _converter_int16x8(ctx: ExportContext, fields: dict[str, Any]) -> tuple[bytes | None, list[str], str]:
    """(the converter's loadable int16x8 model, or None with the ops to keep in float and why). An op
    the converter refuses at 16x8 is kept in float by its public float fallback first (recorded in
    ``fields``); only a fallback that fails goes on to ai-edge-quantizer."""
    from edgeport.export import tflite_fallback as fb
    from edgeport.export import tflite_int16x8 as q16
    from edgeport.export.tflite_selective import failing_node

    try:
        model = _convert(_calibrated(ctx, INT16X8_OPS)[1])
    except Exception as exc:  # only an op the converter refuses falls back; the rest re-raises
        if UNCALIBRATED in str(exc):  # e.g. the CAST of an id input (an Embedding's lookup): said by the caller
            return None, [], cause_line(exc)
        if (op := fb.refused_op(str(exc))) is None:
            raise
        reason, label = fb.refusal_reason(exc), Format.TFLITE_INT16X8.value
        try:
            model, kept = fb.convert(lambda ops: _calibrated(ctx, ops)[1], INT16X8_OPS, reason, label, _convert,
                                     ctx.warn)
        except ExportError as failed:
            ctx.warn(f"warning: {failed}; going on to {q16.PACKAGE} ({q16.RECIPE})")
            return None, [op], reason
        fields.update(kept.fields)
        return model, [], ""
    try:
        interpreter(model, ctx.warn)
        return model, [], ""
    except (RuntimeError, ValueError) as exc:
        node = failing_node(model, str(exc))
        return None, [node] if node is not None else [], cause_line(exc)


def _load_int16x8(ctx: ExportContext, fields: dict[str, Any]) -> bytes:
    """The converter's int16x8 model (an op it refuses kept float by its float fallback); when even
    that fallback fails or LiteRT refuses the converter's model, or ops are asked to stay float (what
    `edgeport fix` chose), the float32 .tflite of the same
    SavedModel through ai-edge-quantizer's static_wi8_ai16 with those ops kept in float, calibrated
    on the same samples (see tflite_int16x8)."""
    from collections import Counter

    from edgeport.export import tflite_int16x8 as q16

    if asked := list(ctx.config.int16x8_keep_float):
        keep, reason = asked, f"{len(asked)} op(s) asked to stay in float (--int16x8-keep-float)"
        fields["keep_float"] = asked
    else:
        model, keep, reason = _converter_int16x8(ctx, fields)
        if model is not None:
            return model
    float_model = float32_model(batch1.saved_model(ctx))
    known = {t for _, t, _ in q16.ops(float_model)}
    if keep and keep[0] not in known and keep[0] != keep[0].upper():
        ctx.warn(f"note: tflite_int16x8: the refused op {keep[0]} is not in the float model; quantizing every op first")
        keep = []
    feed = ctx.representative_feed()  # the samples the converter calibrated on
    samples = {k: np.concatenate([d[k] for d in feed]) for k in feed[0]}
    model, _ = q16.keep_float_loading(float_model, keep, samples, warn=ctx.warn)
    floats = q16.float_ops(model)
    fields.update(kept_float=floats, quantizer=q16.quantizer_label(), reason=reason)
    kinds = Counter(f.split(" ", 1)[0] for f in floats)
    why = reason if asked else f"the converter cannot make a loadable int16x8 model ({reason})"
    ctx.warn(f"{'note' if asked else 'warning'}: tflite_int16x8: {why}; quantized "
             f"the float32 model with {q16.quantizer_label()} on the same {len(feed)} samples; in float: "
             f"{', '.join(f'{n} {k}' for k, n in kinds.items()) or 'nothing'} (manifest: kept_float)")
    return model


def int8_io(ctx: ExportContext) -> tuple[str, dict[str, Any]]:
    """The int8 model's I/O type and the fields that say why: float32 when an input carries ids (an
    integer input quantizer rounds ids into other ids; the converter leaves a float32 input to its CAST
    unquantized, so the ids stay exact), said once; else ``--int8-io``."""
    asked = str(ctx.config.int8_io)
    if not ctx.id_inputs or asked == "float32":
        return asked, {"id_inputs": sorted(ctx.id_inputs)} if ctx.id_inputs else {}
    names = ", ".join(sorted(ctx.id_inputs))
    ctx.warn(f"note: {Format.TFLITE_INT8.value}: input(s) {names} carry ids (they feed an embedding lookup): "
             f"float32 I/O instead of --int8-io {asked}, so no input quantizer rounds an id into another")
    return "float32", {"id_inputs": sorted(ctx.id_inputs), "int8_io_asked": asked}


@batch1.free_batch_or_1(Format.TFLITE_INT8.value)
def export_int8(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    io_type, id_fields = int8_io(ctx)
    model, fields = int8_model(batch1.saved_model(ctx), _representative(ctx), io_type=io_type,
                               keep=list(ctx.config.keep_float), warn=ctx.warn)
    return _write(ctx, Format.TFLITE_INT8, None, dest, model=model, calibrated=True, arithmetic="int8",
                  **fields, **id_fields)


@batch1.free_batch_or_1(Format.TFLITE_INT16X8.value)
def export_int16x8(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    fields: dict[str, Any] = {"arithmetic": "int16 activations, int8 weights", "io_type": "float32"}
    model = _load_int16x8(ctx, fields)
    return _write(ctx, Format.TFLITE_INT16X8, None, dest, model=model, calibrated=True, **fields)
