"""SavedModel: Keras ``model.export`` (the serving signature every other format converts from), or
a copy of a SavedModel the user brought."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from edgeport.export.context import ExportContext
from edgeport.export.registry import Format

#: edgeport's metadata inside the SavedModel (assets.extra is carried but not loaded by TF).
METADATA_FILE = "assets.extra/edgeport.json"


def export(ctx: ExportContext, dest: Path) -> dict[str, Any]:
    if ctx.model is None:  # the source is a SavedModel already: carry it, with edgeport's metadata
        shutil.copytree(ctx.source.path, dest)
        converter = "copy of the source SavedModel"
    else:
        ctx.model.export(str(dest), format="tf_saved_model", verbose=False)
        converter = "keras.Model.export(format='tf_saved_model')"
    meta = dest / METADATA_FILE
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(ctx.metadata(Format.SAVED_MODEL), indent=2, sort_keys=True) + "\n")
    if ctx.labels:
        (meta.parent / "labels.txt").write_text("\n".join(ctx.labels) + "\n")
    return {"converter": converter, "signature": "serving_default",
            "metadata_file": METADATA_FILE}
