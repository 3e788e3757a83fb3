"""The training record (``artifacts/MODEL/training.json``): what ``edgeport train`` wrote about a
model (history, test metrics, dataset, data source, labels, seed, versions). Json only, like the
manifest; this module is the one place that names, writes and reads it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport.errors import ModelFileError
from edgeport.files import write_json_atomic
from edgeport import names

TRAINING_FILE = names.TRAINING_FILE


def training_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / TRAINING_FILE


def save_training_record(model_dir: str | Path, record: dict[str, Any]) -> Path:
    return write_json_atomic(training_path(model_dir), record)


def load_training_record(model_dir: str | Path) -> dict[str, Any]:
    """The record, ``{}`` when the model was not trained by edgeport (a user's own file)."""
    path = training_path(model_dir)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable training record ({exc}); re-run `edgeport train` "
                             "or delete it") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: not an edgeport training record (not a JSON object)")
    return data
