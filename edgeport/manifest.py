"""The per-model manifest (``artifacts/MODEL/manifest.json``): pure json, readable on a Pi.

Layout::

    {"schema": 1, "model": "fashion_mlp", "labels": [...], "labels_file": "labels.txt",
     "input_contract": {...}, "source": {"file", "sha256", "bytes"},
     "calibration": {"samples", "seed", "source"},
     "artifacts": {FORMAT: {"format", "file", "sha256", "bytes", "inputs": [TensorSpec...],
                            "outputs": [...], "versions": {...}, "seconds", "status", ...}}}
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport.errors import IntegrityError, ModelFileError
from edgeport.files import sha256_file, write_json_atomic

MANIFEST_NAME = "manifest.json"
SCHEMA = 1


def manifest_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / MANIFEST_NAME


def load_manifest(model_dir: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """Read a model directory's manifest; a missing one is an error unless ``missing_ok``."""
    path = manifest_path(model_dir)
    if not path.exists():
        if missing_ok:
            return {"schema": SCHEMA, "artifacts": {}}
        raise ModelFileError(f"{path}: no manifest; run `edgeport export` for this model first")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict) or "artifacts" not in data:
        raise ModelFileError(f"{path}: not an edgeport manifest (no 'artifacts' key)")
    return data


def save_manifest(model_dir: str | Path, manifest: dict[str, Any]) -> Path:
    manifest = dict(manifest, schema=SCHEMA)
    return write_json_atomic(manifest_path(model_dir), manifest)


def artifact_file(model_dir: str | Path, entry: dict[str, Any]) -> Path:
    return Path(model_dir) / entry["file"]


def check_integrity(model_dir: str | Path, entry: dict[str, Any]) -> Path:
    """Return the artifact's path if its sha256 matches the manifest, else raise IntegrityError."""
    path = artifact_file(model_dir, entry)
    if not path.exists():
        raise IntegrityError(f"{path}: listed in the manifest but missing")
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise IntegrityError(
            f"{path}: sha256 {actual[:12]}… differs from the manifest's {str(entry.get('sha256'))[:12]}…; "
            "the file was changed after export: re-export it, do not trust it")
    return path
