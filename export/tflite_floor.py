"""A fallback for integer TFLite models that convert but do not load.

When a calibrated activation range is nearly zero (a frozen, untrained MobileNetV2 base shrinks its
activations layer by layer), the quantized scale becomes so small that LiteRT's kernels refuse to
prepare (``no_integer_overflow_from_quantization`` when quantizing a fused ReLU6 bound). The
converter offers no option for it, so this module calibrates only, widens every activation range
narrower than ``floor`` to ``floor``, and quantizes the calibrated model with TensorFlow's own
calibration quantizer. The manifest records that it happened and how many tensors it touched.
Uses private TensorFlow Lite APIs (pinned TF 2.21); only ever runs when the normal path failed.
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


def quantize_with_range_floor(make_converter: Callable, *, activations: str, io_type: str = "float32",
                              floor: float = RANGE_FLOOR) -> tuple[bytes, int]:
    """Calibrate with ``make_converter()``, floor the ranges, quantize. Returns (model, tensors floored).

    ``activations``: "int8" or "int16"; ``io_type``: "float32", "int8" or "uint8".
    """
    import tensorflow as tf
    from tensorflow.lite.python import lite as tf_lite
    from tensorflow.lite.python.optimize import calibrator
    from tensorflow.lite.tools import flatbuffer_utils as fu

    converter = make_converter()
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see the module docstring
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        model = fu.read_model_from_bytearray(bytearray(converter.convert()))
    touched = floor_ranges(model, floor)
    calibrated = bytes(fu.convert_object_to_bytearray(model))
    io, act = np.dtype(io_type), np.dtype(activations)
    bias = np.dtype(np.int64 if activations == "int16" else np.int32)
    quantized = calibrator.Calibrator(calibrated)._calibrator.QuantizeModel(  # noqa: SLF001
        io.num, io.num, False, act.num, bias.num, False, False)
    quantized = bytes(quantized)
    if io_type != "float32":
        tf_type = tf.as_dtype(io)
        quantized = bytes(tf_lite._modify_model_io_type(quantized, tf_type, tf_type))  # noqa: SLF001
    return quantized, touched
