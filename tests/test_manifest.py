"""Manifests are parsed strictly: a missing or unknown field, a wrong type or a file outside the
model directory is an error naming the field; the artifact transaction survives interruptions."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from edgeport.errors import ModelFileError
from edgeport.manifest import SCHEMA, effective_entries, load_manifest, recover, save_manifest
from edgeport.manifest_schema import validate

SHA = "0" * 64


def entry(fmt: str = "tflite_fp32", file: str = "model_fp32.tflite") -> dict:
    return {"format": fmt, "file": file, "sha256": SHA, "bytes": 3, "files": {file: SHA}, "source_sha256": SHA,
            "inputs": [{"name": "x", "shape": [None, 2], "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": [None, 2], "dtype": "float32"}], "status": "ok",
            "precision": "float32", "versions": {"python": "3.11"}}


def good() -> dict:
    return {"schema": SCHEMA, "model": "m", "source": {"file": "model.keras", "kind": "keras", "sha256": SHA},
            "artifacts": {"tflite_fp32": entry()}}


def test_a_well_formed_manifest_passes():
    assert validate(good(), "m.json")["model"] == "m"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("artifacts"), "artifacts is missing"),
    (lambda m: m.update(surprise=1), "unknown manifest field surprise"),
    (lambda m: m["artifacts"]["tflite_fp32"].pop("sha256"), "artifacts.tflite_fp32.sha256 is missing"),
    (lambda m: m["artifacts"]["tflite_fp32"].update(bytes="3"), "bytes: expected an integer"),
    (lambda m: m["artifacts"]["tflite_fp32"].update(bytes=True), "bytes: expected an integer"),
    (lambda m: m["artifacts"]["tflite_fp32"].update(extra_field=1),
     "unknown manifest field artifacts.tflite_fp32.extra_field"),
    (lambda m: m["artifacts"]["tflite_fp32"].update(file="../../etc/passwd"), "not a file inside the model"),
    (lambda m: m["artifacts"]["tflite_fp32"].update(file="/etc/passwd"), "not a file inside the model"),
    (lambda m: m["artifacts"]["tflite_fp32"]["files"].update({"../x": SHA}), "not a file inside the model"),
    (lambda m: m["artifacts"]["tflite_fp32"]["files"].update({"a": "short"}), "not a sha256"),
    (lambda m: m["artifacts"]["tflite_fp32"].update(format="onnx"), "format is 'onnx' under 'tflite_fp32'"),
    (lambda m: m["artifacts"]["tflite_fp32"]["inputs"][0].pop("dtype"), "inputs[0].dtype is missing"),
    (lambda m: m["source"].update(file="../model.keras"), "source.file"),
])
def test_strict_parsing_names_the_field(edit, message):
    m = copy.deepcopy(good())
    edit(m)
    with pytest.raises(ModelFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(m, "m.json")


def test_load_manifest_is_strict_and_names_the_file(tmp_path):
    m = good()
    m["artifacts"]["tflite_fp32"]["mystery"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match=r"manifest\.json: unknown manifest field artifacts.tflite_fp32.mystery"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable manifest"):
        load_manifest(tmp_path)


def _write(model_dir: Path, name: str, data: bytes) -> str:
    import hashlib

    (model_dir / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_pending_entries_are_settled_by_the_files_on_disk(tmp_path):
    old_sha = _write(tmp_path, "model_fp32.tflite", b"old")
    old = {**entry(), "sha256": old_sha, "files": {"model_fp32.tflite": old_sha}}
    new_sha = "1" * 64
    new = {**entry(), "sha256": new_sha, "files": {"model_fp32.tflite": new_sha}}
    manifest = {**good(), "artifacts": {"tflite_fp32": old}, "pending": {"tflite_fp32": new}}
    save_manifest(tmp_path, manifest)
    # killed before the rename: the old file is in place, so the old entry counts; recovery drops pending
    assert effective_entries(tmp_path, load_manifest(tmp_path))["tflite_fp32"]["sha256"] == old_sha
    said = recover(tmp_path, load_manifest(tmp_path))
    assert said and "previous entry stands" in said[0] and "pending" not in load_manifest(tmp_path)
    # killed after the rename: the new file is in place, so the new entry counts and is committed
    real_sha = _write(tmp_path, "model_fp32.tflite", b"new")
    new = {**entry(), "sha256": real_sha, "files": {"model_fp32.tflite": real_sha}}
    (tmp_path / ".prev.model_fp32.tflite").write_bytes(b"old")
    save_manifest(tmp_path, {**good(), "artifacts": {"tflite_fp32": old}, "pending": {"tflite_fp32": new}})
    assert effective_entries(tmp_path, load_manifest(tmp_path))["tflite_fp32"]["sha256"] == real_sha  # readers
    said = recover(tmp_path, load_manifest(tmp_path))  # the export did not finish: it is undone
    assert "undone" in said[0] and load_manifest(tmp_path)["artifacts"]["tflite_fp32"]["sha256"] == old_sha
    assert (tmp_path / "model_fp32.tflite").read_bytes() == b"old"
    assert not (tmp_path / ".prev.model_fp32.tflite").exists()
