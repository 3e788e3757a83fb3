"""The microcontroller model: the format the mcu target carries (the registry's full-integer TFLite
row) made again by its own converter at a fixed batch of 1 (:mod:`edgeport.export.fixed_batch`)
from the source model (``model.keras``, ``model.h5`` or the source SavedModel), so that no SHAPE /
STRIDED_SLICE / PACK ops (the dynamic batch's bookkeeping) reach the firmware: full integer with
``IO_TYPE`` inputs and outputs, calibrated on the very samples the verified artifact was calibrated
on (the manifest's record, rebuilt exactly), with edgeport's metadata.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeport import __version__
from edgeport.errors import EdgeportError, ExportError
from edgeport.export import fixed_batch, registry

FORMAT = registry.for_bundle("mcu")[0]  # the full-integer TFLite format the firmware model is made as
IO_TYPE = "int8"
#: Ops of a free batch dimension: a microcontroller model must not carry them.
FORBIDDEN_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
#: Converter fields that say ops were left in float: TFLite Micro runs no mixed float/int8 graph here.
FLOAT_FIELDS = ("keep_float", "kept_float", "kept_float_to_load")


def _saved_model(path: Path, kind: str, samples: dict[str, np.ndarray], dest: Path) -> Path:
    """The source as a batch-1 SavedModel: a Keras model exported so, or a SavedModel re-traced."""
    if kind == "savedmodel":
        return fixed_batch.retraced_saved_model(path, dest)
    from edgeport.export.source import load_keras

    model = load_keras(path, kind=kind)
    names = [t.name for t in model.inputs]
    if sorted(names) != sorted(samples):
        raise ExportError(f"{path}: the model's inputs {names} are not the calibration record's {list(samples)}")
    return fixed_batch.keras_saved_model(model, [(n, samples[n].shape[1:]) for n in names], dest)


def convert_batch1(path: Path, kind: str, samples: dict[str, np.ndarray], *, io_type: str = IO_TYPE,
                   meta: dict[str, Any] | None = None) -> bytes:
    """A full-integer TFLite model with a fixed batch of 1 from a ``.keras``/``.h5`` file or a
    SavedModel (``kind``: keras, h5, savedmodel), calibrated on ``samples`` (by input name, one
    sample per row), with ``io_type`` (int8 or uint8) inputs and outputs."""
    if io_type not in ("int8", "uint8"):
        raise ExportError(f"a microcontroller model has int8 or uint8 inputs and outputs, not {io_type!r}")
    with tempfile.TemporaryDirectory(prefix="edgeport-mcu-") as tmp:
        saved = _saved_model(path, kind, samples, Path(tmp) / "saved_model_b1")
        model, fields = fixed_batch.convert(FORMAT, saved, samples, meta or {}, int8_io=io_type)
    if kept := [f for k in FLOAT_FIELDS for f in fields.get(k) or ()]:
        raise ExportError(f"{path}: the full-integer batch-1 conversion kept {', '.join(map(str, kept))} in float; "
                          "a microcontroller model must be full integer")
    return model


def calibration(model_dir: Path, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """The calibration samples of the verified ``FORMAT`` artifact (its manifest ``entry``), rebuilt."""
    from edgeport.export import calibration as records

    if kept := entry.get("keep_float") or entry.get("kept_float_to_load"):
        raise EdgeportError(f"{model_dir.name}: the verified int8 artifact keeps {kept} in float; a microcontroller "
                            "model must be full integer (TFLite Micro runs no mixed float/int8 graph here)")
    record = entry.get("calibration")
    if not record:
        raise EdgeportError(f"{model_dir.name}: the manifest's {FORMAT} entry records no calibration "
                            f"(exported by an older edgeport); re-export: `edgeport export {model_dir} "
                            f"--formats {FORMAT}` and verify")
    return records.rebuild(record)


def batch1_model(model_dir: Path, manifest: dict[str, Any], src: Any, entry: dict[str, Any],
                 source_sha: str) -> tuple[bytes, list[str]]:
    """(the batch-1 model with edgeport's metadata, its builtin ops) from the source ``src``,
    calibrated as the verified ``FORMAT`` artifact (its manifest ``entry``) was."""
    from edgeport.export.tflite_flatbuffer import builtin_ops

    name = model_dir.name
    meta = {"model": name, "labels": manifest.get("labels") or [], "input_contract": manifest.get("input_contract"),
            "input_names": manifest.get("input_names"), "source_sha256": source_sha, "edgeport": __version__}
    model = convert_batch1(src.path, src.kind, calibration(model_dir, entry), io_type=IO_TYPE, meta=meta)
    ops = builtin_ops(model)
    if bad := [op for op in ops if op in FORBIDDEN_OPS]:
        raise EdgeportError(f"{name}: the batch-1 model still has {', '.join(bad)} ops (ops: {', '.join(ops)}); "
                            "a microcontroller model must not compute shapes at run time")
    return model, ops
