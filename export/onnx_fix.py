"""`edgeport fix` candidates for the int8 ONNX format: calibration methods, then layers kept float.

Candidates are built by the format's own quantizer (:func:`edgeport.export.onnx.quantize`, the
function `edgeport export` uses) from the float ONNX artifact the format is made from.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgeport.export import calibration as cal
from edgeport.export.config import OnnxCalibration
from edgeport.export.tflite_fix import DEBUG_SAMPLES, _note

WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


class OnnxInt8Fixer:
    keep_key = "onnx_keep_float"
    base_from_last = False  # selective candidates start from the calibration with the lowest KL

    def __init__(self, job: dict[str, Any]):
        import onnx  # fail here, not mid-search, when onnx is missing

        from edgeport.export.onnx import preprocess

        self.job, self.record = job, job["calibration"]
        self.work = Path(tempfile.mkdtemp(prefix="edgeport-fix-onnx-"))
        self.pre, _ = preprocess(Path(job["source"]), self.work, _note)
        self.inputs = [i.name for i in onnx.load(str(self.pre), load_external_data=False).graph.input]
        self.base = cal.requested_samples(self.record)

    def calibrations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        default = OnnxCalibration.MINMAX.value
        yield (f"as exported ({default}, {cal.used_samples(self.record)} samples)",
               {"calibration_samples": self.base, "onnx_calibration": default})
        if more := cal.more_samples(self.record, _note):
            yield f"{default}, {more[1]}", {"calibration_samples": more[0], "onnx_calibration": default}
        for method in (m.value for m in OnnxCalibration if m is not OnnxCalibration.MINMAX):
            yield f"{method}, {self.base} samples", {"calibration_samples": self.base, "onnx_calibration": method}

    def float_size(self) -> int:
        """Bytes of the float ONNX model every candidate is quantized from."""
        return self.pre.stat().st_size

    def _reader(self, settings: dict[str, Any]):
        from edgeport.export.onnx import calibration_batch, reader

        method = settings.get("onnx_calibration", OnnxCalibration.MINMAX.value)
        return reader(self._samples(settings["calibration_samples"]), calibration_batch(method))

    def _samples(self, n: int) -> dict[str, Any]:
        """``n`` recorded samples keyed by ONNX input name (every input of a multi-input model)."""
        return cal.by_names(cal.samples_of(self.record, n), self.inputs, str(self.job["source"]))

    def build(self, settings: dict[str, Any]) -> tuple[bytes, str]:
        from edgeport.export.onnx import quantize

        dest = self.work / "candidate.onnx"
        quantize(self.pre, dest, self._reader(settings), method=settings.get("onnx_calibration", "minmax"),
                 exclude=settings.get(self.keep_key))
        return dest.read_bytes(), ".onnx"

    def _groups(self) -> dict[str, list[str]]:
        """Layers of the graph: a node with weights (Conv, Gemm, MatMul) and the single-consumer
        chain after it (bias Add, activation, ...), keyed by the weighted node's name. Leaving a
        layer unquantized means leaving all of it: an activation alone keeps its input quantized."""
        import onnx

        graph = onnx.load(str(self.pre), load_external_data=False).graph
        weights = {i.name for i in graph.initializer}
        consumers: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                consumers[name] = consumers.get(name, 0) + 1
        group_of: dict[str, str] = {}  # tensor -> group key
        groups: dict[str, list[str]] = {}
        for node in graph.node:
            dynamic = [i for i in node.input if i and i not in weights]
            weighted = node.op_type in WEIGHTED and len(dynamic) < len(node.input)
            parent = group_of.get(dynamic[0]) if len(dynamic) == 1 and consumers.get(dynamic[0], 0) == 1 else None
            key = node.name if weighted or parent is None else parent
            groups.setdefault(key, []).append(node.name)
            for out in node.output:
                group_of[out] = key
        self.group_of = group_of
        return groups

    def expand(self, kept: list[str]) -> list[str]:
        if not hasattr(self, "groups"):
            self.groups = self._groups()
        return [n for key in kept for n in self.groups.get(key, [key])]

    def ranking(self, settings: dict[str, Any]) -> list[str]:
        """Layers worst first by ONNX Runtime's QDQ debugging: the lowest SQNR of a layer's
        activations between the float model and the quantized one."""
        from onnxruntime.quantization import qdq_loss_debug as qdq

        qdq_model = self.work / "ranking_qdq.onnx"
        qdq_model.write_bytes(self.build(settings)[0])
        float_aug, qdq_aug = self.work / "float_aug.onnx", self.work / "qdq_aug.onnx"
        qdq.modify_model_output_intermediate_tensors(str(self.pre), str(float_aug))
        qdq.modify_model_output_intermediate_tensors(str(qdq_model), str(qdq_aug))
        small = {**settings, "calibration_samples": min(settings["calibration_samples"], DEBUG_SAMPLES)}
        float_acts = qdq.collect_activations(str(float_aug), self._reader(small))
        qdq_acts = qdq.collect_activations(str(qdq_aug), self._reader(small))
        errors = qdq.compute_activation_error(qdq.create_activation_matching(qdq_acts, float_acts))
        self.groups = self._groups()
        worst: dict[str, float] = {}
        for tensor, err in errors.items():
            key = self.group_of.get(tensor)
            if key is not None:
                sqnr = float(err.get("qdq_err", err.get("xmodel_err", 0.0)))
                worst[key] = min(sqnr, worst.get(key, float("inf")))
        ranked = sorted(worst, key=worst.get)
        self.ranked = [{"layer": k, "nodes": self.groups[k], "sqnr": worst[k]} for k in ranked]
        return ranked

    @staticmethod
    def export_settings(entry: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        """`export_model` keyword arguments that rebuild the chosen candidate."""
        return {"onnx_keep_float": list(settings.get(OnnxInt8Fixer.keep_key) or []),
                "onnx_calibration": settings.get("onnx_calibration", OnnxCalibration.MINMAX.value)}
