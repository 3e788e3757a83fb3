"""The export formats: one place that knows their names, files, converters and dependencies.

Imports nothing heavy: ``edgeport formats`` and name validation never load TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from edgeport.errors import UnknownNameError


class Precision(str, Enum):
    """What a format's numbers are: the class its parity gate and its plot colour come from."""

    FLOAT32 = "float32"
    FP16 = "fp16"
    QUANTIZED = "quantized"

    def __str__(self) -> str:
        return self.value


class Format(str, Enum):
    """Export format names, in dependency order (a format comes after what it needs)."""

    SAVED_MODEL = "saved_model"
    TFLITE_FP32 = "tflite_fp32"
    TFLITE_FP16 = "tflite_fp16"
    TFLITE_DYNAMIC = "tflite_dynamic"
    TFLITE_INT8 = "tflite_int8"
    TFLITE_INT16X8 = "tflite_int16x8"
    ONNX = "onnx"
    ONNX_INT8 = "onnx_int8"
    C_ARRAY = "c_array"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FormatInfo:
    name: Format
    target: str  # "module:attr" of ``export(ctx, dest) -> dict``
    file: str  # file (or directory) name inside the model directory
    kind: str  # how the pipeline describes it: saved_model | tflite | onnx | c_array
    needs: Format | None
    precision: Precision
    summary: str
    extra_files: tuple[str, ...] = ()  # written beside ``file`` in the same step
    directory: bool = False

    @property
    def quantized(self) -> bool:
        return self.precision is Precision.QUANTIZED


_P = "edgeport.export."
_F = Format
_FP32, _Q = Precision.FLOAT32, Precision.QUANTIZED
_INFOS = (
    FormatInfo(_F.SAVED_MODEL, _P + "saved_model:export", "saved_model", "saved_model", None, _FP32,
               "TensorFlow SavedModel (Keras model.export), serving signature", directory=True),
    FormatInfo(_F.TFLITE_FP32, _P + "tflite:export_fp32", "model_fp32.tflite", "tflite",
               _F.SAVED_MODEL, _FP32, "TFLite float32"),
    FormatInfo(_F.TFLITE_FP16, _P + "tflite:export_fp16", "model_fp16.tflite", "tflite",
               _F.SAVED_MODEL, Precision.FP16, "TFLite float16 weights, float32 compute/IO"),
    FormatInfo(_F.TFLITE_DYNAMIC, _P + "tflite:export_dynamic", "model_dynamic.tflite", "tflite",
               _F.SAVED_MODEL, _Q, "TFLite dynamic-range (int8 weights, float IO)"),
    FormatInfo(_F.TFLITE_INT8, _P + "tflite:export_int8", "model_int8.tflite", "tflite",
               _F.SAVED_MODEL, _Q, "TFLite full integer int8 (uint8 IO by default), calibrated"),
    FormatInfo(_F.TFLITE_INT16X8, _P + "tflite:export_int16x8", "model_int16x8.tflite", "tflite",
               _F.SAVED_MODEL, _Q, "TFLite int16 activations, int8 weights, calibrated"),
    FormatInfo(_F.ONNX, _P + "onnx:export_fp32", "model.onnx", "onnx", _F.SAVED_MODEL, _FP32,
               "ONNX float32 (tf2onnx from the SavedModel)"),
    FormatInfo(_F.ONNX_INT8, _P + "onnx:export_int8", "model_int8.onnx", "onnx", _F.ONNX, _Q,
               "ONNX int8 QDQ, per-channel, static calibration (ONNX Runtime)"),
    FormatInfo(_F.C_ARRAY, _P + "c_array:export", "model_int8_data.c", "c_array", _F.TFLITE_INT8,
               _Q, "the int8 TFLite model as a C source/header pair for firmware",
               extra_files=("model_int8_data.h",)),
)
INFO: dict[str, FormatInfo] = {i.name.value: i for i in _INFOS}
FILES: dict[str, str] = {i.name.value: i.file for i in _INFOS}
ALL = "all"


def precision_of(name: str | Format) -> Precision:
    """The precision class of a format: the one fact gates and plots read."""
    return info(name).precision


def info(name: str | Format) -> FormatInfo:
    key = name.value if isinstance(name, Format) else str(name)
    if key not in INFO:
        raise UnknownNameError("format", key, [*INFO, ALL])
    return INFO[key]


def expand_formats(names: list[str] | tuple[str, ...] | str) -> tuple[Format, ...]:
    """Validate names (comma lists allowed, ``all`` = every format) and sort them in dependency order.

    Dependencies that were not asked for are not added: the pipeline builds them in a temporary
    place when a requested format needs them.
    """
    if isinstance(names, str):
        names = [names]
    wanted: set[Format] = set()
    for item in names:
        for name in (n.strip() for n in str(item).split(",")):
            if not name:
                continue
            if name == ALL:
                wanted.update(Format)
            else:
                wanted.add(info(name).name)
    if not wanted:
        raise UnknownNameError("format", "", [*INFO, ALL])
    return tuple(f for f in Format if f in wanted)


def dependency_chain(fmt: Format) -> tuple[Format, ...]:
    """What ``fmt`` needs, nearest first (c_array -> tflite_int8 -> saved_model)."""
    chain: list[Format] = []
    need = INFO[fmt.value].needs
    while need is not None:
        chain.append(need)
        need = INFO[need.value].needs
    return tuple(chain)


def list_formats() -> str:
    """List the export formats, their files and what each needs."""
    rows = [f"{'format':<16}{'file':<38}{'needs':<14}description"]
    for i in _INFOS:
        files = ", ".join((i.file + ("/" if i.directory else ""), *i.extra_files))
        rows.append(f"{i.name.value:<16}{files:<38}{(i.needs.value if i.needs else '-'):<14}{i.summary}")
    rows.append(f"{ALL:<16}{'':<38}{'':<14}every format above, in this order")
    return "\n".join(rows)
