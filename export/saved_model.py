"""SavedModel: Keras ``model.export`` (the serving signature every other format converts from), or
a copy of a SavedModel the user brought."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from edgeport.export.context import ExportContext
from edgeport.export.registry import Format
from edgeport.names import LABELS_FILE

#: edgeport's metadata inside the SavedModel (assets.extra is carried but not loaded by TF).
METADATA_FILE = "assets.extra/edgeport.json"


INFERENCE = "keras.export.ExportArchive, endpoint 'serve' = model(x, training=False)"


def _export_inference(ctx: ExportContext, dest: Path) -> str:
    """The serving signature in inference mode.

    ``keras.Model.export`` traces ``model.__call__`` without ``training=False``, so layers whose
    ``call`` defaults to ``training=True`` (RandomFlip, RandomRotation, RandomZoom: the course's
    augmentation) keep their random ops in the graph, and neither the TFLite converter nor tf2onnx
    supports those. The public ``ExportArchive`` with an explicit inference endpoint is the same
    archive (same ``serving_default`` names) without them. A model with no symbolic inputs
    (subclassed, built by calling it) goes through ``model.export``, and the warning says so."""
    import keras
    import tensorflow as tf

    model = ctx.model
    try:
        specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    except (AttributeError, TypeError, ValueError):
        specs = []
    if not specs:
        ctx.warn(f"warning: {ctx.name} has no symbolic inputs (a subclassed model): exported with "
                 "keras.Model.export, which traces it without training=False")
        model.export(str(dest), format="tf_saved_model", verbose=False)
        return "keras.Model.export(format='tf_saved_model')"
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda x: model(x, training=False),
                         input_signature=[specs[0] if len(specs) == 1 else specs])
    archive.write_out(str(dest), verbose=False)
    return INFERENCE


def export(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    if ctx.model is None:  # the source is a SavedModel already: carry it, with edgeport's metadata
        shutil.copytree(ctx.source.path, dest)
        converter = "copy of the source SavedModel"
    else:
        converter = _export_inference(ctx, dest)
    meta = dest / METADATA_FILE
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(ctx.metadata(Format.SAVED_MODEL), indent=2, sort_keys=True) + "\n")
    if ctx.labels:
        (meta.parent / LABELS_FILE).write_text("\n".join(ctx.labels) + "\n")
    return {"converter": converter, "signature": "serving_default",
            "metadata_file": METADATA_FILE}
