"""A fallback for int16x8 TFLite models that convert but do not load (int8 models use the public
selective-quantization API instead: see ``tflite_selective``).

When a calibrated activation range is nearly zero (a frozen, untrained MobileNetV2 base shrinks its
activations layer by layer), the quantized scale becomes so small that LiteRT's kernels refuse to
prepare (``no_integer_overflow_from_quantization`` when quantizing a fused ReLU6 bound). The
converter offers no option for it, so this module calibrates only, widens every activation range
narrower than ``floor`` to ``floor``, and quantizes the calibrated model with TensorFlow's own
calibration quantizer. The manifest records that it happened and how many tensors it touched.
Uses private TensorFlow Lite APIs (pinned TF 2.21) because no public one exists for int16x8: the
QuantizationDebugger's denylist quantizes to int8 only, and no converter option widens a range.
Only ever runs when the normal path failed; tests/test_export_behaviour.py fails loudly if it moves.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

RANGE_FLOOR = 1e-3


def floor_ranges(model, floor: float = RANGE_FLOOR) -> int:
    """Widen calibrated min/max ranges narrower than ``floor`` in place; return how many tensors."""
    count = 0
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            if q is None or q.min is None or q.max is None or not len(q.min):
                continue
            lo, hi = np.asarray(q.min, np.float32), np.asarray(q.max, np.float32)
            narrow = np.maximum(np.abs(lo), np.abs(hi)) < floor
            if not narrow.any():
                continue
            upward = hi >= -lo
            q.max = np.where(narrow & upward, np.maximum(hi, floor), hi).astype(np.float32)
            q.min = np.where(narrow & ~upward, np.minimum(lo, -floor), lo).astype(np.float32)
            count += 1
    return count


def quantize_with_range_floor(make_converter: Callable, floor: float = RANGE_FLOOR) -> tuple[bytes, int]:
    """Calibrate with ``make_converter()``, floor the ranges, quantize to int16 activations and int8
    weights with float32 I/O. Returns (model, tensors floored)."""
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.tools import flatbuffer_utils as fu

    converter = make_converter()
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see the module docstring
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        model = fu.read_model_from_bytearray(bytearray(converter.convert()))
    touched = floor_ranges(model, floor)
    calibrated = bytes(fu.convert_object_to_bytearray(model))
    io, act, bias = np.dtype(np.float32), np.dtype(np.int16), np.dtype(np.int64)
    quantized = calibrator.Calibrator(calibrated)._calibrator.QuantizeModel(  # noqa: SLF001
        io.num, io.num, False, act.num, bias.num, False, False)
    return bytes(quantized), touched
