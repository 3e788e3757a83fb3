"""The export formats: the one place that knows each format's name, file, converter, runtimes,
proof, fixer, followers and the size that matters for it.

A format is one module (its converter, and where it needs them its fixer, proof and size) plus one
row here; verify, fix, bench, report, bundles and fuzz ask this table and never spell a format's
name. Imports nothing heavy: ``edgeport formats`` and name validation never load TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from edgeport.errors import UnknownNameError
from edgeport.lazy import resolve


class Precision(str, Enum):
    """What a format's numbers are: the class its parity gate and its plot colour come from."""

    FLOAT32 = "float32"
    FP16 = "fp16"
    QUANTIZED = "quantized"

    def __str__(self) -> str:
        return self.value


class Proof(str, Enum):
    """How an artifact is proved: run on its runtimes against the reference, or shown to embed the
    very bytes of the artifact it is made from (which must pass its own proof)."""

    RUN = "run"
    SAME_BYTES = "same_bytes"

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
    TFLITE_WI4 = "tflite_wi4"
    ONNX = "onnx"
    ONNX_INT8 = "onnx_int8"
    ORT = "ort"
    ORT_INT8 = "ort_int8"
    C_ARRAY = "c_array"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FormatInfo:
    """One format's registry row. ``"module:attr"`` strings are resolved only when used."""

    name: Format
    export: str  # "module:attr" of ``export(ctx, dest) -> dict`` (the converter entry point)
    file: str  # file (or directory) name inside the model directory
    family: str  # the file family it is described as: saved_model | tflite | onnx | c_array
    needs: Format | None  # what it is built from (it follows that format when that one changes)
    precision: Precision
    summary: str
    #: runtimes that load it (runtime registry names); left out: the runtime registry's for its file's kind
    runtimes: tuple[str, ...] = ()
    proof: Proof = Proof.RUN
    embedded: str | None = None  # SAME_BYTES: "module:attr" of ``(path) -> bytes`` it embeds
    fixer: str | None = None  # "module:attr" of the class `edgeport fix` builds candidates with
    debugger: str | None = None  # "module:attr" of ``(job) -> dict``: per-layer quantization error table
    size: str | None = None  # "module:attr" of ``(path) -> int``: the bytes that matter on a device
    describer: str | None = None  # "module:attr" of ``(ctx, path) -> {inputs, outputs}``; None: its family's
    weights: str = "float32"  # what its weights are stored as: float32 | float16 | int8 | int4
    activations: str = "float32"  # what its activations are computed in: float32 | int8 | int16
    bundles: tuple[str, ...] = ()  # deploy targets that carry this artifact as it is
    opt_in: str = ""  # why it is left out of ``default`` (exported by name or with ``all``); "": in it
    extra_files: tuple[str, ...] = ()  # written beside ``file`` in the same step
    directory: bool = False

    def __post_init__(self) -> None:
        if self.proof is Proof.RUN and not self.runtimes:
            from edgeport.model_files import kind_of_name
            from edgeport.runtimes.registry import runtimes_of_kind

            object.__setattr__(self, "runtimes", runtimes_of_kind(kind_of_name(self.file, directory=self.directory)))

    @property
    def quantized(self) -> bool:
        return self.precision is Precision.QUANTIZED

    @property
    def full_integer(self) -> bool:
        """Integer weights and integer activations (what a microcontroller or an NPU runs)."""
        return self.weights.startswith("int") and self.activations.startswith("int")


_P = "edgeport.export."
_F = Format
_FP32, _Q = Precision.FLOAT32, Precision.QUANTIZED
_INFOS = (
    FormatInfo(_F.SAVED_MODEL, _P + "saved_model:export", "saved_model", "savedmodel", None, _FP32,
               "TensorFlow SavedModel (Keras model.export), serving signature",
               directory=True),
    FormatInfo(_F.TFLITE_FP32, _P + "tflite:export_fp32", "model_fp32.tflite", "tflite",
               _F.SAVED_MODEL, _FP32, "TFLite float32", bundles=("rpi",)),
    FormatInfo(_F.TFLITE_FP16, _P + "tflite:export_fp16", "model_fp16.tflite", "tflite",
               _F.SAVED_MODEL, Precision.FP16, "TFLite float16 weights, float32 compute/IO",
               weights="float16"),
    FormatInfo(_F.TFLITE_DYNAMIC, _P + "tflite:export_dynamic", "model_dynamic.tflite", "tflite",
               _F.SAVED_MODEL, _Q, "TFLite dynamic-range (int8 weights, float IO)",
               weights="int8"),
    FormatInfo(_F.TFLITE_INT8, _P + "tflite:export_int8", "model_int8.tflite", "tflite",
               _F.SAVED_MODEL, _Q, "TFLite full integer int8 (uint8 IO by default), calibrated",
               fixer=_P + "tflite_fix:TfliteInt8Fixer", debugger="edgeport.benchmarks.verify.quant_debug:run_debug_job",
               weights="int8", activations="int8", bundles=("rpi", "mcu")),
    FormatInfo(_F.TFLITE_INT16X8, _P + "tflite:export_int16x8", "model_int16x8.tflite", "tflite",
               _F.SAVED_MODEL, _Q, "TFLite int16 activations, int8 weights, calibrated",
               fixer=_P + "tflite_int16x8_fix:TfliteInt16x8Fixer", weights="int8", activations="int16"),
    FormatInfo(_F.TFLITE_WI4, _P + "tflite_wi4:export", "model_wi4.tflite", "tflite", _F.TFLITE_FP32, _Q,
               "TFLite int4 weights (ai-edge-quantizer), float activations/IO",
               weights="int4", opt_in="int4 weights pass the quantized gate on the course models but not on every "
               "model (a 1-epoch Fashion-MNIST MLP: agreement 94.4% < 95%); export it by name and verify it"),
    FormatInfo(_F.ONNX, _P + "onnx:export_fp32", "model.onnx", "onnx", _F.SAVED_MODEL, _FP32,
               "ONNX float32 (tf2onnx from the SavedModel)", bundles=("rpi",)),
    FormatInfo(_F.ONNX_INT8, _P + "onnx:export_int8", "model_int8.onnx", "onnx", _F.ONNX, _Q,
               "ONNX int8 QDQ, per-channel, static calibration (ONNX Runtime)",
               fixer=_P + "onnx_fix:OnnxInt8Fixer", weights="int8", activations="int8", bundles=("rpi",)),
    FormatInfo(_F.ORT, _P + "ort:export_fp32", "model.ort", "ort", _F.ONNX, _FP32,
               "ONNX Runtime Mobile format (from the float ONNX), with its required_operators.config",
               describer=_P + "ort:describe", bundles=("android", "ios"),
               extra_files=("model.required_operators.config",)),
    FormatInfo(_F.ORT_INT8, _P + "ort:export_int8", "model_int8.ort", "ort", _F.ONNX_INT8, _Q,
               "ONNX Runtime Mobile format (from the int8 QDQ ONNX), with its required_operators.config",
               describer=_P + "ort:describe", weights="int8", activations="int8",
               bundles=("android", "ios"), extra_files=("model_int8.required_operators.config",)),
    FormatInfo(_F.C_ARRAY, _P + "c_array:export", "model_int8_data.c", "c_array", _F.TFLITE_INT8,
               _Q, "the int8 TFLite model as a C source/header pair for firmware", proof=Proof.SAME_BYTES,
               embedded=_P + "c_array:embedded_bytes", size=_P + "c_array:flash_bytes",
               weights="int8", activations="int8", extra_files=("model_int8_data.h",)),
)
INFO: dict[str, FormatInfo] = {i.name.value: i for i in _INFOS}
FILES: dict[str, str] = {i.name.value: i.file for i in _INFOS}
ALL = "all"  # every format
DEFAULT = "default"  # every format but the opt-in ones: what `edgeport export` and `make export` build


def precision_of(name: str | Format) -> Precision:
    """The precision class of a format: the one fact gates and plots read."""
    return info(name).precision


def info(name: str | Format) -> FormatInfo:
    key = name.value if isinstance(name, Format) else str(name)
    if key not in INFO:
        raise UnknownNameError("format", key, [*INFO, DEFAULT, ALL])
    return INFO[key]


def known(name: str) -> bool:
    return str(name) in INFO


def expand_formats(names: list[str] | tuple[str, ...] | str) -> tuple[Format, ...]:
    """Validate names (comma lists allowed, ``all`` = every format, ``default`` = all but the opt-in
    ones) and sort them in dependency order.

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
            elif name == DEFAULT:
                wanted.update(i.name for i in _INFOS if not i.opt_in)
            else:
                wanted.add(info(name).name)
    if not wanted:
        raise UnknownNameError("format", "", [*INFO, DEFAULT, ALL])
    return tuple(f for f in Format if f in wanted)


def dependency_chain(fmt: Format | str) -> tuple[Format, ...]:
    """What ``fmt`` needs, nearest first (c_array -> tflite_int8 -> saved_model)."""
    chain: list[Format] = []
    need = info(fmt).needs
    while need is not None:
        chain.append(need)
        need = INFO[need.value].needs
    return tuple(chain)


def followers(fmt: Format | str) -> tuple[str, ...]:
    """Formats built from ``fmt`` (directly or not): re-exported whenever ``fmt`` changes."""
    name = info(fmt).name
    return tuple(f.value for f in Format if name in dependency_chain(f))


def of_family(family: str) -> tuple[str, ...]:
    """The formats of one file family, in registry order."""
    return tuple(i.name.value for i in _INFOS if i.family == family)


def fixable() -> tuple[str, ...]:
    """Formats `edgeport fix` can search candidates for (their row names a fixer)."""
    return tuple(i.name.value for i in _INFOS if i.fixer)


def runs(name: str) -> bool:
    """Whether the format is proved by running it (not by its bytes)."""
    return info(name).proof is Proof.RUN


def float_sibling(name: str) -> str | None:
    """The float32 format of the same family, run in the same verify/bench: the speed yardstick."""
    i = info(name)
    return next((o.name.value for o in _INFOS if o.family == i.family and o.precision is _FP32
                 and o.proof is Proof.RUN and o.name is not i.name), None)


def deploy_size(name: str, path: Path) -> int:
    """The bytes that matter for an artifact on a device (a C array: the model bytes it puts in
    flash, not its source text)."""
    from edgeport.files import size_bytes

    i = info(name)
    return int(resolve(i.size)(path)) if i.size else size_bytes(path)


def for_bundle(target: str) -> tuple[str, ...]:
    """The formats a deploy target carries as they are, in registry order."""
    return tuple(i.name.value for i in _INFOS if target in i.bundles)


def read_precision(storage: dict[str, int]) -> tuple[Precision, str]:
    """The precision class of a bare artifact, from what its tensors are (``Session.tensor_storage``),
    and how it was read: integer-quantized tensors of any kind (full integer, int16x8, or int8
    weights with float I/O: dynamic range) are quantized; float16 weights are fp16."""
    if not storage:
        return Precision.FLOAT32, "the engine does not say what its tensors are: read as float32"
    if storage.get("int16_quantized"):
        return Precision.QUANTIZED, f"{storage['int16_quantized']} int16-quantized tensors (int16x8)"
    if storage.get("int8_quantized"):
        how = ("dynamic range: activations quantized at run time (DynamicQuantizeLinear), float I/O"
               if storage.get("dynamic_quantize")
               else "quantized integer I/O (full integer)" if storage.get("integer_io")
               else "float I/O (dynamic range, or integer inside)")
        return Precision.QUANTIZED, f"{storage['int8_quantized']} int8-quantized tensors, {how}"
    if storage.get("float16"):
        return Precision.FP16, f"{storage['float16']} float16 tensors (fp16 weights)"
    return Precision.FLOAT32, "every tensor float32"


def list_formats() -> str:
    """List the export formats, their files, what each needs and its precision class."""
    files = {i.name.value: ", ".join((i.file + ("/" if i.directory else ""), *i.extra_files)) for i in _INFOS}
    w = max(len(f) for f in files.values()) + 2
    rows = [f"{'format':<16}{'file':<{w}}{'needs':<14}{'precision':<11}description"]
    for i in _INFOS:
        rows.append(f"{i.name.value:<16}{files[i.name.value]:<{w}}{(i.needs.value if i.needs else '-'):<14}"
                    f"{i.precision.value:<11}{i.summary}")
    rows.append(f"{DEFAULT:<16}{'':<{w}}{'':<14}{'':<11}every format above but the opt-in ones (the default)")
    rows.append(f"{ALL:<16}{'':<{w}}{'':<14}{'':<11}every format above, in this order")
    rows += [f"opt-in: {i.name.value}: {i.opt_in}" for i in _INFOS if i.opt_in]
    return "\n".join(rows)
