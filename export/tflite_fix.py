"""`edgeport fix` candidates for the full-integer int8 TFLite format.

A fixer (named by the format's registry row) builds candidates from settings (the very settings
`edgeport export` takes), ranks layers worst first for selective quantization, and says how to
export the chosen one. Every candidate goes through the format's own converter
(:func:`edgeport.export.tflite.int8_model`): there is one int8 conversion in the code.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator

from edgeport.errors import EdgeportError
from edgeport.export import calibration as cal

DEBUG_SAMPLES = 64


def _note(text: str) -> None:
    print(f"edgeport fix: {text}", file=sys.stderr, flush=True)


def single_input(record: dict[str, Any], n: int):
    """The recorded calibration's ``n`` samples of a single-input model."""
    arrays = cal.samples_of(record, n)
    if len(arrays) != 1:
        raise EdgeportError("edgeport fix handles single-input models")
    return next(iter(arrays.values()))


class TfliteInt8Fixer:
    """Candidates: the calibration as exported, more samples, then worst layers kept in float."""

    keep_key = "keep_float"
    base_from_last = True  # selective candidates start from the last calibration tried

    def __init__(self, job: dict[str, Any]):
        self.job, self.saved_model = job, job["source"]
        self.record = job["calibration"]
        self._quantizers: dict[int, Any] = {}
        self.base = cal.requested_samples(self.record)

    def calibrations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield f"as exported ({cal.used_samples(self.record)} calibration samples)", {"calibration_samples": self.base}
        if more := cal.more_samples(self.record, _note):
            yield more[1], {"calibration_samples": more[0]}

    def _feed(self, n: int):
        x = single_input(self.record, n)
        return lambda: ([row[None]] for row in x)

    def _quantizer(self, n: int):
        from edgeport.export.tflite import calibrated_converter
        from edgeport.export.tflite_selective import SelectiveQuantizer

        if n not in self._quantizers:
            debug = single_input(self.record, min(n, DEBUG_SAMPLES))
            self._quantizers[n] = SelectiveQuantizer(calibrated_converter(self.saved_model, self._feed(n))[1],
                                                     debug_feed=lambda: ([row[None]] for row in debug))
        return self._quantizers[n]

    def build(self, settings: dict[str, Any]) -> tuple[bytes, str]:
        from edgeport.export.tflite import int8_model

        n, keep = settings["calibration_samples"], list(settings.get(self.keep_key) or [])
        model, _ = int8_model(self.saved_model, self._feed(n), io_type=self.job.get("io_type", "uint8"), keep=keep,
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
        return {"keep_float": keep, "int8_io": (entry.get("io_type") or "uint8") if not keep else "uint8"}
