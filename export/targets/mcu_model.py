"""The microcontroller model: converted again from the source model (``model.keras``, ``model.h5``
or the source SavedModel) with a batch-1 input signature, so that no SHAPE / STRIDED_SLICE / PACK
ops (the dynamic batch's bookkeeping) reach the firmware, full integer with ``IO_TYPE`` inputs
and outputs, calibrated on the very samples the verified ``tflite_int8`` artifact was calibrated on
(the manifest's record, rebuilt exactly), with edgeport's metadata.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgeport import __version__
from edgeport.errors import EdgeportError, ExportError
from edgeport.export.targets.common import export_batch1
from edgeport.export.tflite import INT8_OPS, calibrated_converter

IO_TYPE = "int8"
#: Ops of a free batch dimension: a microcontroller model must not carry them.
FORBIDDEN_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
METADATA_FORMAT = "tflite_int8_b1"


def _fixed_keras(path: Path, kind: str, samples: dict[str, np.ndarray], dest: Path) -> None:
    from edgeport.export.source import load_keras

    model = load_keras(path, kind=kind)
    names = [t.name for t in model.inputs]
    if sorted(names) != sorted(samples):
        raise ExportError(f"{path}: the model's inputs {names} are not the calibration record's {list(samples)}")
    export_batch1(model, [(n, samples[n].shape[1:]) for n in names], dest)


def _fixed_saved_model(path: Path, dest: Path) -> None:
    """The source SavedModel's serving signature, re-traced with a batch of 1."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    names = sorted(specs)
    free = [n for n in names if None in specs[n].shape.as_list()[1:]]
    if free:
        raise ExportError(f"{path}: inputs {free} have free dimensions besides the batch; a microcontroller "
                          "model needs every dimension fixed")
    fixed = [tf.TensorSpec((1, *specs[n].shape.as_list()[1:]), specs[n].dtype, name=n) for n in names]
    serve = tf.function(lambda *args: fn(**dict(zip(names, args))), input_signature=fixed)
    module = tf.Module()
    module.source = loaded  # keeps the variables reachable from the new SavedModel
    tf.saved_model.save(module, str(dest), signatures={"serving_default": serve.get_concrete_function()})


def convert_batch1(path: Path, kind: str, samples: dict[str, np.ndarray], *, io_type: str = IO_TYPE) -> bytes:
    """A full-integer TFLite model with a fixed batch of 1 from a ``.keras``/``.h5`` file or a
    SavedModel (``kind``: keras, h5, saved_model), calibrated on ``samples`` (by input name, one
    sample per row), with ``io_type`` (int8 or uint8) inputs and outputs."""
    import tensorflow as tf

    if io_type not in ("int8", "uint8"):
        raise ExportError(f"a microcontroller model has int8 or uint8 inputs and outputs, not {io_type!r}")
    with tempfile.TemporaryDirectory(prefix="edgeport-mcu-") as tmp:
        saved = Path(tmp) / "saved_model_b1"
        if kind == "savedmodel":
            _fixed_saved_model(path, saved)
        else:
            _fixed_keras(path, kind, samples, saved)
        count = len(next(iter(samples.values())))
        feed = [{k: v[i:i + 1] for k, v in samples.items()} for i in range(count)]
        _, converter = calibrated_converter(saved, lambda: iter(feed), INT8_OPS)  # the int8 converter of export
        converter.inference_input_type = converter.inference_output_type = getattr(tf, io_type)
        with warnings.catch_warnings():  # TF's calibrator builds a deprecated tf.lite.Interpreter itself
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            try:
                return converter.convert()
            except Exception as exc:
                from edgeport.export.context import cause_line

                raise ExportError(f"{path}: the full-integer batch-1 conversion failed: {cause_line(exc)}") from None


def calibration(model_dir: Path, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """The calibration samples of the verified ``tflite_int8`` (its manifest ``entry``), rebuilt."""
    from edgeport.export import calibration as records

    if kept := entry.get("keep_float") or entry.get("kept_float_to_load"):
        raise EdgeportError(f"{model_dir.name}: the verified int8 artifact keeps {kept} in float; a microcontroller "
                            "model must be full integer (TFLite Micro runs no mixed float/int8 graph here)")
    record = entry.get("calibration")
    if not record:
        raise EdgeportError(f"{model_dir.name}: the manifest's tflite_int8 entry records no calibration "
                            f"(exported by an older edgeport); re-export: `edgeport export {model_dir} "
                            "--formats tflite_int8` and verify")
    return records.rebuild(record)


def batch1_model(model_dir: Path, manifest: dict[str, Any], src: Any, entry: dict[str, Any],
                 source_sha: str) -> tuple[bytes, list[str]]:
    """(the batch-1 model with edgeport's metadata, its builtin ops) from the source ``src``,
    calibrated as the verified ``tflite_int8`` (its manifest ``entry``) was."""
    from edgeport.export.tflite_flatbuffer import add_metadata, builtin_ops

    name = model_dir.name
    model = convert_batch1(src.path, src.kind, calibration(model_dir, entry), io_type=IO_TYPE)
    ops = builtin_ops(model)
    if bad := [op for op in ops if op in FORBIDDEN_OPS]:
        raise EdgeportError(f"{name}: the batch-1 model still has {', '.join(bad)} ops (ops: {', '.join(ops)}); "
                            "a microcontroller model must not compute shapes at run time")
    meta = {"model": name, "labels": manifest.get("labels") or [], "input_contract": manifest.get("input_contract"),
            "input_names": manifest.get("input_names"), "format": METADATA_FORMAT,
            "source_sha256": source_sha, "edgeport": __version__}
    return add_metadata(model, meta), ops
