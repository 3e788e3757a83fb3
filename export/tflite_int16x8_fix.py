"""`edgeport fix` candidates for int16x8 TFLite (int16 activations, int8 weights), through the
format's own public path: ai-edge-quantizer's ``static_wi8_ai16`` with ops kept in float
(:func:`edgeport.export.tflite_int16x8.keep_float_loading`, which `edgeport export` calls too).

Layers are ranked worst first by the quantizer's own model validator (the public
``Quantizer.validate``: each tensor's signal-to-noise ratio in the all-int16x8 model against the
float one, on debug samples of the recorded calibration).
"""
from __future__ import annotations

from typing import Any, Iterator

from edgeport.export import calibration as cal
from edgeport.export.tflite_fix import DEBUG_SAMPLES, _note


class TfliteInt16x8Fixer:
    keep_key = "int16x8_keep_float"
    base_from_last = True

    def __init__(self, job: dict[str, Any]):
        from edgeport.export.tflite import float32_model
        from edgeport.export.tflite_batch1 import job_saved_model  # an RNN exported at batch 1: fixed at batch 1

        self.job, self.record = job, job["calibration"]
        self.float_model = float32_model(job_saved_model(job))
        self.base = cal.requested_samples(self.record)

    def float_size(self) -> int:
        """Bytes of the float32 .tflite every candidate is quantized from."""
        return len(self.float_model)

    def calibrations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield (f"every op int16x8 ({cal.used_samples(self.record)} calibration samples)",
               {"calibration_samples": self.base})
        if more := cal.more_samples(self.record, _note):
            yield more[1], {"calibration_samples": more[0]}

    def build(self, settings: dict[str, Any]) -> tuple[bytes, str]:
        from edgeport.export.tflite_int16x8 import keep_float_loading

        samples = cal.samples_of(self.record, settings["calibration_samples"])
        model, _ = keep_float_loading(self.float_model, list(settings.get(self.keep_key) or []), samples, warn=_note)
        return model, ".tflite"

    def ranking(self, settings: dict[str, Any]) -> list[str]:
        """Op output tensors worst first: the quantizer validator's signal-to-noise ratio (dB) of each
        tensor of the all-int16x8 model against the float model, on debug samples."""
        from edgeport.export import tflite_int16x8 as q16

        samples = cal.samples_of(self.record, min(settings["calibration_samples"], DEBUG_SAMPLES))
        snr = q16.tensor_snr(self.float_model, samples, warn=_note)
        ranked = sorted((t for _, t, _ in q16.ops(self.float_model) if t in snr), key=lambda t: snr[t])
        self.ranked = [{"tensor": t, "snr_db": snr[t]} for t in ranked]
        return ranked

    def expand(self, kept: list[str]) -> list[str]:
        return list(kept)

    @staticmethod
    def export_settings(entry: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        return {"int16x8_keep_float": list(settings.get(TfliteInt16x8Fixer.keep_key) or [])}

