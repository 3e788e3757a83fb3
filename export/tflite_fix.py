"""`edgeport fix` candidates for the full-integer int8 TFLite format.

A fixer (named by the format's registry row) builds candidates from settings (the very settings
`edgeport export` takes), ranks layers worst first for selective quantization, and says how to
export the chosen one. Every candidate goes through the format's own converter
(:func:`edgeport.export.tflite.int8_model`): there is one int8 conversion in the code.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

from edgeport.export import calibration as cal

DEBUG_SAMPLES = 64
#: The candidate without an input quantizer (float32 inputs, the same calibration).
INPUT_LABEL = "float32 inputs (no input quantizer)"


def _note(text: str) -> None:
    print(f"edgeport fix: {text}", file=sys.stderr, flush=True)


def signature_inputs(saved_model: str) -> list[str]:
    """The serving signature's input names."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    return sorted(fn.structured_input_signature[1])


def input_order(model: bytes, keys: list[str]) -> list[str]:
    """``keys`` (signature input names) in the order of the .tflite's inputs (``serving_default_X:0``)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgeport.runtimes.base import tensor_key

    graph = fu.read_model_from_bytearray(bytearray(model)).subgraphs[0]
    names = [tensor_key(graph.tensors[i].name.decode()) for i in graph.inputs]
    if len(keys) == 1:
        return list(keys)
    if sorted(names) != sorted(keys):
        from edgeport.errors import ExportError

        raise ExportError(f"the calibrated model's inputs {names} are not the signature's {sorted(keys)}")
    return names


class TfliteInt8Fixer:
    """Candidates: the calibration as exported, more samples, then worst layers kept in float."""

    keep_key = "keep_float"
    base_from_last = True  # selective candidates start from the last calibration tried

    def __init__(self, job: dict[str, Any]):
        from edgeport.export.tflite_batch1 import job_saved_model  # an RNN exported at batch 1: fixed at batch 1

        self.job, self.saved_model = job, str(job_saved_model(job))
        self.record = job["calibration"]
        self._quantizers: dict[int, Any] = {}
        self._names: list[str] | None = None
        self.base = cal.requested_samples(self.record)

    def calibrations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield f"as exported ({cal.used_samples(self.record)} calibration samples)", {"calibration_samples": self.base}
        if self.job.get("io_type", "uint8") != "float32":  # the input quantizer, which no layer ranking sees
            yield INPUT_LABEL, {"calibration_samples": self.base, "int8_io": "float32"}
        if more := cal.more_samples(self.record, _note):
            yield more[1], {"calibration_samples": more[0]}

    def _samples(self, n: int) -> dict[str, Any]:
        """``n`` recorded samples keyed by signature input name (every input of a multi-input model)."""
        if self._names is None:
            self._names = signature_inputs(self.saved_model)
        return cal.by_names(cal.samples_of(self.record, n), self._names, str(self.saved_model))

    def _feed(self, n: int):
        """The converter's representative dataset: one dict per sample, batch 1."""
        x = self._samples(n)
        count = len(next(iter(x.values())))
        return lambda: ({k: v[i:i + 1] for k, v in x.items()} for i in range(count))

    def _quantizer(self, n: int):
        from edgeport.export.tflite import calibrated_converter
        from edgeport.export.tflite_selective import SelectiveQuantizer

        if n not in self._quantizers:
            debug = self._samples(min(n, DEBUG_SAMPLES))
            order: list[str] = []  # the debugger feeds lists in the calibrated model's input order
            count = len(next(iter(debug.values())))
            q = SelectiveQuantizer(calibrated_converter(self.saved_model, self._feed(n))[1],
                                   debug_feed=lambda: ([debug[k][i:i + 1] for k in order] for i in range(count)))
            order[:] = input_order(q.debugger.calibrated_model, list(debug))
            self._quantizers[n] = q
        return self._quantizers[n]

    def float_size(self) -> int:
        """Bytes of the float32 .tflite of the same SavedModel (the float end of the float fraction)."""
        from edgeport.export.tflite import float32_model

        return len(float32_model(self.saved_model))

    def build(self, settings: dict[str, Any]) -> tuple[bytes, str]:
        from edgeport.export.tflite import int8_model

        n, keep = settings["calibration_samples"], list(settings.get(self.keep_key) or [])
        io_type = settings.get("int8_io") or self.job.get("io_type", "uint8")
        model, _ = int8_model(self.saved_model, self._feed(n), io_type=io_type, keep=keep,
                              warn=_note, quantizer=self._quantizer(n) if keep else None)
        return model, ".tflite"

    def ranking(self, settings: dict[str, Any]) -> list[str]:
        rows = self._quantizer(settings["calibration_samples"]).ranking()
        self.ranked = rows
        return [r["tensor"] for r in rows if r["op"] not in ("QUANTIZE", "DEQUANTIZE")]

    def expand(self, kept: list[str]) -> list[str]:
        return list(kept)

    @staticmethod
    def export_settings(entry: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        """`export_model` keyword arguments that rebuild the chosen candidate."""
        keep = list(settings.get(TfliteInt8Fixer.keep_key) or [])
        io_type = settings.get("int8_io") or entry.get("io_type") or "uint8"
        return {"keep_float": keep, "int8_io": io_type if not keep else "uint8"}

    @staticmethod
    def cause(tried: list[Any]) -> str | None:
        """What the search learnt of the cause: the input quantizer, when the model as exported fails and
        the same calibration with float32 inputs (no input quantizer) passes."""
        first, second = (tried + [None, None])[:2]
        if first is not None and second is not None and not first.passes and second.passes \
                and second.label == INPUT_LABEL:
            return ("the input quantizer: its int8 steps round the inputs (ids into other ids, for one); "
                    "with float32 inputs the same calibration passes (--int8-io float32)")
        return None
