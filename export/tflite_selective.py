"""Selective int8 quantization with TFLite's public QuantizationDebugger: some layers stay float.

``tf.lite.experimental.QuantizationDebugger`` calibrates a converter once; setting its public
``options`` to ``QuantizationDebugOptions(denylisted_nodes=[...])`` re-quantizes that calibration
with the named op outputs kept in float, and ``get_nondebug_quantized_model()`` returns the
deployable model. The debugger's per-layer statistics rank the layers (RMSE in quantization steps).

Such a model keeps float32 inputs and outputs: the public API offers no uint8/int8 interface for a
model with float layers inside (``fully_quantize=False``); edgeport's runtimes take raw values
either way, and the manifest records the interface.
"""
from __future__ import annotations

import csv
import io
import re
import warnings
from typing import Any, Callable, Iterable

import numpy as np

Feed = Callable[[], Iterable[Any]]
_FAILED_NODE = re.compile(r"Node number (\d+) \((\w+)\) failed to prepare")


class SelectiveQuantizer:
    """One calibration of a converter, re-quantized with any set of op outputs kept in float."""

    def __init__(self, converter, debug_feed: Feed | None = None):
        import tensorflow as tf

        self._tf = tf
        with warnings.catch_warnings():  # the debugger builds deprecated tf.lite.Interpreters itself
            warnings.simplefilter("ignore")
            self.debugger = tf.lite.experimental.QuantizationDebugger(converter=converter,
                                                                      debug_dataset=debug_feed)

    def tensor_names(self) -> set[str]:
        from tensorflow.lite.tools import flatbuffer_utils as fu

        model = fu.read_model_from_bytearray(bytearray(self.debugger.calibrated_model))
        return {(t.name.decode() if isinstance(t.name, bytes) else t.name) for g in model.subgraphs for t in g.tensors}

    def model(self, keep_float: Iterable[str] = ()) -> bytes:
        """The int8 model with ``keep_float`` op outputs (tensor names) left in float; an unknown
        name is an error (the converter would ignore it and quantize everything)."""
        keep_float = list(keep_float)
        if keep_float and (unknown := sorted(set(keep_float) - self.tensor_names())):
            from edgeport.errors import ExportError

            raise ExportError(f"--keep-float: no tensor named {unknown[0]!r} in the calibrated model")
        options = self._tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float) or None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.debugger.options = options
            return bytes(self.debugger.get_nondebug_quantized_model())

    def ranking(self) -> list[dict[str, Any]]:
        """Quantized op outputs, worst first: RMSE / scale (error in quantization steps) on the
        debug inputs. Needs ``debug_feed``."""
        self.debugger.options = self._tf.lite.experimental.QuantizationDebugOptions()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.debugger.run()
        buf = io.StringIO()
        self.debugger.layer_statistics_dump(buf)
        rows = []
        for rec in csv.DictReader(io.StringIO(buf.getvalue())):
            try:
                mse, scale = float(rec["mean_squared_error"]), float(rec["scale"])
            except (KeyError, ValueError):
                continue
            steps = float(np.sqrt(mse) / scale) if scale > 0 and mse >= 0 else float("nan")
            rows.append({"tensor": rec.get("tensor_name", ""), "op": rec.get("op_name", ""),
                         "rmse_per_scale": steps})
        rows.sort(key=lambda r: -(r["rmse_per_scale"] if r["rmse_per_scale"] == r["rmse_per_scale"] else -1))
        return rows


def failing_node(model: bytes, error: str) -> str | None:
    """The output tensor name of the op a LiteRT 'Node number N (OP) failed to prepare' names."""
    match = _FAILED_NODE.search(error)
    if match is None:
        return None
    from tensorflow.lite.tools import flatbuffer_utils as fu

    graph = fu.read_model_from_bytearray(bytearray(model)).subgraphs[0]
    index = int(match.group(1))
    if index >= len(graph.operators) or not len(graph.operators[index].outputs):
        return None
    name = graph.tensors[graph.operators[index].outputs[0]].name
    return name.decode() if isinstance(name, bytes) else name
