"""The export registry's fixed-batch-1 step: a registered format made again, by its own registry
row's converter (``FormatInfo.export``), from a SavedModel whose inputs have a batch of 1.

Deploy targets need batch-1 models (TFLite Micro, LiteRT.js and phone engines have no resize, and a
free batch leaves SHAPE / STRIDED_SLICE / PACK ops in the graph). They build them here, never with
converter calls of their own: :func:`keras_saved_model` (a Keras model: the source, or a target's
wrapper around it) or :func:`retraced_saved_model` (a source SavedModel), then :func:`convert` with
the format and the calibration samples. The result is that format's converter output, with the
same fields it records in a manifest and edgeport's metadata saying ``"batch": 1``.
"""
from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import ExportError
from edgeport.export.config import ExportConfig
from edgeport.export.registry import info
from edgeport.lazy import resolve


def _say(text: str) -> None:
    """Warnings reach the user; notes of what the caller asked for (float steps kept) do not."""
    if not text.startswith("note:"):
        print(text, file=sys.stderr)


class Batch1Context:
    """What a registry converter asks of an :class:`~edgeport.export.context.ExportContext`, for a
    batch-1 SavedModel: the SavedModel, the calibration feed, the int8 options and the metadata."""

    def __init__(self, saved_model: Path, samples: dict[str, np.ndarray], meta: dict[str, Any], *,
                 int8_io: str, keep_float: Sequence[str], warn: Callable[[str], None]):
        self.saved_model_dir, self.samples, self.warn = Path(saved_model), samples, warn
        self.config = ExportConfig(int8_io=int8_io, keep_float=tuple(keep_float))
        self.calibration: dict[str, Any] | None = None  # the caller records where its samples came from
        self._meta = meta
        self.model = None  # no Keras model here: the SavedModel is the source
        self.tflite_batch1 = None  # already batch 1 (see tflite_batch1)

    @cached_property
    def id_inputs(self) -> dict[str, Any]:
        """The inputs that carry ids (they feed an Embedding), read from the batch-1 float32 .tflite as
        an export of a SavedModel source reads them: never quantized."""
        from edgeport.export import id_inputs
        from edgeport.export.tflite import float32_model

        return id_inputs.from_tflite(float32_model(self.saved_model_dir))

    def representative_feed(self) -> list[dict[str, np.ndarray]]:
        """One dict per sample (by SavedModel input name), batch of 1."""
        count = len(next(iter(self.samples.values())))
        return [{k: v[i:i + 1] for k, v in self.samples.items()} for i in range(count)]

    def metadata(self, fmt: Any) -> dict[str, Any]:
        return {**self._meta, "format": str(fmt), "batch": 1}


def keras_saved_model(model, inputs: Sequence[tuple[str, Sequence[int]]], dest: Path, *,
                      dtype: str | Mapping[str, str] = "float32", unroll: bool = True) -> Path:
    """A Keras model as a SavedModel whose inputs (``(name, shape without the batch)``, in the
    model's order; ``dtype``: one for all, or by input name) have a fixed batch of 1, traced in
    inference mode as the SavedModel format traces it (``model(x, training=False)``). With ``unroll``
    its RNN layers are unrolled where their time steps are fixed (the same weights): at batch 1 an RNN
    is a TFLite WHILE loop otherwise, which TF's int8 calibrator crashes on (see tflite_batch1)."""
    import keras
    import tensorflow as tf

    from edgeport.export.tflite_batch1 import unrolled

    model = (unrolled(model) if unroll else None) or model

    def of(name: str) -> str:
        return dtype if isinstance(dtype, str) else dtype.get(name, "float32")

    specs = [tf.TensorSpec((1, *shape), getattr(tf, of(name)), name=name) for name, shape in inputs]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: model(x, training=False),
                         input_signature=[specs[0] if len(specs) == 1 else specs])
    archive.write_out(str(dest), verbose=False)
    return Path(dest)


def retraced_saved_model(path: Path, dest: Path) -> Path:
    """A SavedModel's serving signature, re-traced with a batch of 1."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    names = sorted(specs)
    if free := [n for n in names if None in specs[n].shape.as_list()[1:]]:
        raise ExportError(f"{path}: inputs {free} have free dimensions besides the batch; a batch-1 model "
                          "needs every dimension fixed")
    fixed = [tf.TensorSpec((1, *specs[n].shape.as_list()[1:]), specs[n].dtype, name=n) for n in names]
    serve = tf.function(lambda *args: fn(**dict(zip(names, args))), input_signature=fixed)
    module = tf.Module()
    module.source = loaded  # keeps the variables reachable from the new SavedModel
    tf.saved_model.save(module, str(dest), signatures={"serving_default": serve.get_concrete_function()})
    return Path(dest)


def convert(fmt: str, saved_model: Path, samples: dict[str, np.ndarray], meta: dict[str, Any], *,
            int8_io: str = "uint8", keep_float: Sequence[str] = (),
            warn: Callable[[str], None] = _say) -> tuple[bytes, dict[str, Any]]:
    """(model bytes, the fields its converter records) of registered format ``fmt`` made from the
    batch-1 ``saved_model`` by the format's own converter, calibrated on ``samples`` (by SavedModel
    input name, one sample per row) when the format calibrates."""
    from edgeport.export.context import cause_line

    row = info(fmt)
    ctx = Batch1Context(saved_model, samples, meta, int8_io=int8_io, keep_float=keep_float, warn=warn)
    with tempfile.TemporaryDirectory(prefix="edgeport-batch1-") as tmp:
        dest = Path(tmp) / row.file
        try:
            fields = resolve(row.export)(ctx, dest)
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - the converters raise anything; name the step and the cause
            raise ExportError(f"{saved_model}: the batch-1 {fmt} conversion failed: {cause_line(exc)}") from None
        return dest.read_bytes(), fields
