"""The export configuration: checked once, frozen, shared by every format.

ExportConfig is the one spelling of the export options: ``export_model`` builds it from its keyword
arguments, the CLI derives ``edgeport export``'s flags from its fields (help from its docstring),
and an isolated export carries it to the child as :meth:`ExportConfig.to_dict`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

from edgeport.errors import EdgeportError
from edgeport.export.registry import Format, expand_formats

MIN_OPSET = 13
#: The export defaults, in one place (ExportConfig's fields; fix and the targets read them too).
DEFAULT_OPSET, DEFAULT_CALIBRATION_SAMPLES, DEFAULT_SEED = 17, 200, 0


class ExportConfigError(EdgeportError):
    """An export option out of range (opset, sample count, int8 IO type, calibration file)."""


class OnnxCalibration(str, Enum):
    """ONNX Runtime's static calibration methods (how activation ranges are picked)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"
    DISTRIBUTION = "distribution"

    def __str__(self) -> str:
        return self.value


class Int8IO(str, Enum):
    """Input/output tensor type of the full-integer TFLite model."""

    UINT8 = "uint8"
    INT8 = "int8"
    FLOAT32 = "float32"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ExportConfig:
    """How to export: the options of ``edgeport export`` (and ``export_model``'s keyword arguments).

    formats: `default` (every format but the opt-in ones), `all`, or format names, space or comma separated (see `edgeport formats`)
    opset: ONNX opset for tf2onnx (13 or newer)
    calibration_samples: representative samples for int8/int16x8/onnx_int8 calibration
    seed: seed that draws the calibration samples
    int8_io: input/output type of tflite_int8: uint8, int8 or float32
    calibration_data: a .npy (or .npz per input name) of raw inputs for models without a known dataset
    data_dir: data directory for the course model's dataset (idx files, digits, image folder)
    allow_unsafe: load a model that needs unsafe deserialisation (Lambda code; only for files you trust)
    keep_float: tflite_int8: op outputs (TFLite tensor names) to keep in float (what `edgeport fix` chose)
    onnx_keep_float: onnx_int8: node names to leave unquantized (what `edgeport fix` chose)
    int16x8_keep_float: tflite_int16x8: op outputs (tensor names) or op types to keep in float, through ai-edge-quantizer
    onnx_calibration: onnx_int8 calibration method: minmax, entropy, percentile or distribution
    input_shape: NAME=1xHxWxC per input with symbolic dimensions: the size seeded random calibration draws (without --calibration-data); repeatable
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line

    formats: tuple[Format, ...] = ("default",)  # expanded: every format but the opt-in ones
    opset: int = DEFAULT_OPSET
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    seed: int = DEFAULT_SEED
    int8_io: Int8IO = Int8IO.UINT8
    calibration_data: Path | None = None
    data_dir: str | None = None
    allow_unsafe: bool = False
    keep_float: tuple[str, ...] = ()  # tflite_int8: op outputs (tensor names) left in float
    onnx_keep_float: tuple[str, ...] = ()  # onnx_int8: node names left unquantized
    int16x8_keep_float: tuple[str, ...] = ()  # tflite_int16x8: op outputs (tensor names) or op types left in float
    onnx_calibration: OnnxCalibration = OnnxCalibration.MINMAX
    input_shape: tuple[str, ...] = ()  # NAME=1xHxWxC: the size random calibration gives symbolic dimensions

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "formats", expand_formats(list(self.formats)))
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or self.opset < MIN_OPSET:
            raise ExportConfigError(f"--opset must be an integer >= {MIN_OPSET}, got {self.opset!r}")
        if (isinstance(self.calibration_samples, bool) or not isinstance(self.calibration_samples, int)
                or self.calibration_samples <= 0):
            raise ExportConfigError(
                f"--calibration-samples must be a positive integer, got {self.calibration_samples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ExportConfigError(f"--seed must be an integer, got {self.seed!r}")
        try:
            set_(self, "int8_io", Int8IO(str(self.int8_io)))
        except ValueError:
            valid = ", ".join(m.value for m in Int8IO)
            raise ExportConfigError(f"--int8-io must be one of {valid}, got {self.int8_io!r}") from None
        try:
            set_(self, "onnx_calibration", OnnxCalibration(str(self.onnx_calibration)))
        except ValueError:
            valid = ", ".join(m.value for m in OnnxCalibration)
            raise ExportConfigError(f"--onnx-calibration must be one of {valid}, "
                                    f"got {self.onnx_calibration!r}") from None
        for name in ("keep_float", "onnx_keep_float", "int16x8_keep_float"):
            names = tuple(n.strip() for item in getattr(self, name) for n in str(item).split(",") if n.strip())
            set_(self, name, names)
        shapes = {}
        for item in self.input_shape:
            name, _, dims = str(item).partition("=")
            parts = dims.lower().split("x")
            if not name.strip() or not all(p.isascii() and p.isdigit() and int(p) >= 1 for p in parts):
                raise ExportConfigError(f"--input-shape {item}: expected NAME=1xHxWxC (sizes >= 1, batch first)")
            shapes[name.strip()] = tuple(int(p) for p in parts)
        set_(self, "input_shape", tuple(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items()))
        if self.calibration_data is not None:
            path = Path(self.calibration_data)
            if path.suffix not in (".npy", ".npz"):
                raise ExportConfigError(f"--calibration-data {path}: expected a .npy (one input) "
                                        "or .npz (one array per input name) file")
            if not path.is_file():
                raise ExportConfigError(f"--calibration-data {path}: no such file")
            set_(self, "calibration_data", path)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (what an isolated export sends its child): enums by value,
        paths as strings, tuples as lists."""
        def plain(v: Any) -> Any:
            if isinstance(v, Enum):
                return v.value
            if isinstance(v, Path):
                return str(v)
            return [plain(i) for i in v] if isinstance(v, tuple) else v

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportConfig:
        """The config :meth:`to_dict` wrote (checked again by ``__post_init__``)."""
        return cls(**{f.name: tuple(v) if isinstance(v := data[f.name], list) else v for f in fields(cls)})


def sample_shapes(items: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """``("image=1x320x320x3",)`` (validated by ExportConfig) -> {"image": (320, 320, 3)}: without the batch."""
    return {name: tuple(int(d) for d in dims.split("x"))[1:] for name, _, dims in (i.partition("=") for i in items)}
