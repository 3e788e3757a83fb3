"""How `edgeport fix` builds quantized candidates: one builder per format (TFLite int8, ONNX int8).

A builder yields its calibration ladder, builds a candidate from settings (the same settings
`edgeport export` takes: ``calibration_samples``, ``keep_float`` / ``onnx_keep_float``,
``onnx_calibration``), and ranks the layers worst first for selective quantization.
"""
from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgeport.errors import EdgeportError

MORE_SAMPLES = 1000
DEBUG_SAMPLES = 64


def _used(job: dict[str, Any]) -> int:
    """The calibration samples the export used (fewer than requested when the source has fewer)."""
    return int(job["calibration"].get("samples") or job["calibration"].get("requested") or 200)


def more_samples(job: dict[str, Any]) -> tuple[int, str] | None:
    """How many calibration samples the "more samples" candidate uses (MORE_SAMPLES, or every sample
    the source has when it has fewer) and its label; None when that adds nothing to the export's."""
    used = _used(job)
    try:
        available = len(_samples(job, MORE_SAMPLES))
    except EdgeportError as exc:  # the "as exported" candidate fails on the same source and says so too
        print(f"edgeport fix: note: more calibration samples not tried: {exc}", file=sys.stderr, flush=True)
        return None
    if available <= used:
        return None
    return available, (f"{available} calibration samples" if available >= MORE_SAMPLES
                       else f"{available} calibration samples (all the source has)")


def _samples(job: dict[str, Any], n: int) -> np.ndarray:
    from edgeport.export.calibration import rebuild

    arrays = rebuild({**job["calibration"], "requested": n})
    if len(arrays) != 1:
        raise EdgeportError("edgeport fix handles single-input models")
    return next(iter(arrays.values()))


class TfliteInt8:
    keep_key = "keep_float"

    def __init__(self, job: dict[str, Any]):
        self.job, self.saved_model = job, job["saved_model"]
        self._quantizers: dict[int, Any] = {}
        self.base = int(job["calibration"].get("requested") or job["calibration"].get("samples") or 200)

    def calibrations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield f"as exported ({_used(self.job)} calibration samples)", {"calibration_samples": self.base}
        if more := more_samples(self.job):
            yield more[1], {"calibration_samples": more[0]}

    def _converter(self, n: int):
        import tensorflow as tf

        x = _samples(self.job, n)
        converter = tf.lite.TFLiteConverter.from_saved_model(self.saved_model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([row[None]] for row in x)
        return tf, converter

    def _quantizer(self, n: int):
        from edgeport.export.tflite_selective import SelectiveQuantizer

        if n not in self._quantizers:
            debug = _samples(self.job, min(n, DEBUG_SAMPLES))
            self._quantizers[n] = SelectiveQuantizer(self._converter(n)[1],
                                                     debug_feed=lambda: ([row[None]] for row in debug))
        return self._quantizers[n]

    def build(self, settings: dict[str, Any]) -> tuple[bytes, str]:
        n, keep = settings["calibration_samples"], settings.get(self.keep_key) or []
        if keep:
            return self._quantizer(n).model(keep), ".tflite"
        tf, converter = self._converter(n)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = self.job.get("io_type", "uint8")
        if io != "float32":
            converter.inference_input_type = converter.inference_output_type = getattr(tf, io)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(converter.convert()), ".tflite"

    def ranking(self, settings: dict[str, Any]) -> list[str]:
        rows = self._quantizer(settings["calibration_samples"]).ranking()
        self.ranked = rows
        return [r["tensor"] for r in rows if r["op"] not in ("QUANTIZE", "DEQUANTIZE")]

    def expand(self, kept: list[str]) -> list[str]:
        return list(kept)


class OnnxInt8:
    keep_key = "onnx_keep_float"
    METHODS = ("entropy", "percentile", "distribution")

    def __init__(self, job: dict[str, Any]):
        import onnx  # noqa: F401 - fail here, not mid-search, when onnx is missing

        from edgeport.export.onnx import preprocess

        self.job = job
        self.work = Path(tempfile.mkdtemp(prefix="edgeport-fix-onnx-"))
        self.pre, _ = preprocess(Path(job["onnx"]), self.work, lambda _msg: None)
        self.input = onnx.load(str(self.pre), load_external_data=False).graph.input[0].name
        self.base = int(job["calibration"].get("requested") or job["calibration"].get("samples") or 200)

    def calibrations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield (f"as exported (minmax, {_used(self.job)} samples)",
               {"calibration_samples": self.base, "onnx_calibration": "minmax"})
        if more := more_samples(self.job):
            yield f"minmax, {more[1]}", {"calibration_samples": more[0], "onnx_calibration": "minmax"}
        for method in self.METHODS:
            yield f"{method}, {self.base} samples", {"calibration_samples": self.base, "onnx_calibration": method}

    def _reader(self, settings: dict[str, Any]):
        from edgeport.export.onnx import CALIBRATION_BATCH, reader

        batch = CALIBRATION_BATCH if settings.get("onnx_calibration", "minmax") == "minmax" else 1
        return reader({self.input: _samples(self.job, settings["calibration_samples"])}, batch)

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
            weighted = node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(dynamic) < len(node.input)
            parent = group_of.get(dynamic[0]) if len(dynamic) == 1 and consumers.get(dynamic[0], 0) == 1 else None
            key = node.name if weighted or parent is None else parent
            groups.setdefault(key, []).append(node.name)
            for out in node.output:
                group_of[out] = key
        self.group_of = group_of
        return groups

    def expand(self, kept: list[str]) -> list[str]:
        groups = self._groups() if not hasattr(self, "groups") else self.groups
        self.groups = groups
        return [n for key in kept for n in groups.get(key, [key])]

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


def builder(job: dict[str, Any]):
    return {"tflite_int8": TfliteInt8, "onnx_int8": OnnxInt8}[job["format"]](job)
