"""The manifest's schema, checked strictly: a missing or unknown field, a wrong type or an unsafe
file name is an error naming the field, never a silent default. Pure Python (a Pi reads it)."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from edgeport.errors import ModelFileError

_STR, _INT, _NUM, _BOOL, _LIST, _DICT = str, int, (int, float), bool, list, dict
_OPT = type(None)

TOP_REQUIRED = {"schema": _INT, "artifacts": _DICT}
TOP_OPTIONAL = {"model": _STR, "dataset": (_STR, _OPT), "task": (_STR, _OPT), "labels": _LIST,
                "labels_file": (_STR, _OPT), "input_contract": _DICT, "input_names": _LIST, "output_names": _LIST,
                "source": _DICT, "calibration": _DICT, "pending": _DICT,
                "output_kinds": _DICT,  # verify --output-kind NAME=KIND, kept for later runs
                "data_file": (_STR, _OPT)}  # a converted artifact's proof inputs (.npz) in its directory
SOURCE = {"file": _STR, "kind": _STR, "sha256": _STR, "bytes": _INT, "reference_runtime": _STR,
          "keras2_args_left_out": _LIST}  # a Keras 2 .h5 read without args Keras 3 dropped (runtimes/keras_legacy)
ENTRY_REQUIRED = {"format": _STR, "file": _STR, "sha256": _STR, "bytes": _INT, "files": _DICT,
                  "source_sha256": (_STR, _OPT), "inputs": _LIST, "outputs": _LIST, "status": _STR,
                  "precision": _STR, "versions": _DICT}
#: Format-specific fields the exporters write (one list, so a new one is added on purpose).
ENTRY_OPTIONAL = {
    "converter": _STR, "exported_at": _STR, "seconds": _NUM, "labels_file": (_STR, _OPT),
    "metadata_file": _STR, "metadata_key": _STR, "signature": _STR, "calibrated": _BOOL, "calibration": _DICT,
    "io_type": _STR, "arithmetic": _STR, "keep_float": _LIST, "kept_float_to_load": _LIST, "selective": _STR,
    "range_floor": _DICT,
    "kept_float": _LIST, "quantizer": _STR, "reason": _STR,  # int16x8 through ai-edge-quantizer
    "fallback": _STR,  # int8/int16x8: how ops were kept in float by the converter (tflite_fallback)
    "batch_fallback": _DICT,  # a free-batch RNN the converter cannot lower, converted at batch 1 (tflite_batch1)
    "id_inputs": _LIST, "int8_io_asked": _STR,  # int8: inputs that carry ids kept float32 (export/id_inputs)
    "opset": _INT, "activation_type": _STR, "weight_type": _STR, "per_channel": _BOOL,
    "preprocessed": _BOOL, "quant_format": _STR, "calibration_method": _STR, "header": _STR, "array": _STR,
    "array_bytes": _INT, "alignment": _INT, "tflite_sha256": _STR, "builtin_ops": _LIST, "fix": _DICT,
    "recipe": _STR,
    "optimization_style": _STR, "shipped": _STR, "required_operators": _DICT}
#: Only in a ``pending`` entry: what the interrupted replacement moves and changes (for recovery).
PENDING_ONLY = {"commit_files": _LIST, "commit_top": _DICT}
TENSOR = {"name": _STR, "shape": _LIST, "dtype": _STR, "scale": (_NUM, _OPT), "zero_point": (_INT, _OPT)}


def _flat(kind: Any) -> tuple[type, ...]:
    return tuple(k for part in (kind if isinstance(kind, tuple) else (kind,)) for k in _flat_one(part))


def _flat_one(part: Any) -> tuple[type, ...]:
    return _flat(part) if isinstance(part, tuple) else (part,)


def _type_name(kind: Any) -> str:
    kinds = _flat(kind)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a list",
             dict: "an object", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _fields(obj: Any, required: dict, optional: dict, where: str, path: str) -> None:
    if not isinstance(obj, dict):
        raise ModelFileError(f"{where}: manifest field {path or 'root'}: expected an object")
    for key in required:
        if key not in obj:
            raise ModelFileError(f"{where}: manifest field {path}{key} is missing")
    for key, value in obj.items():
        kind = required.get(key, optional.get(key))
        if kind is None:
            raise ModelFileError(f"{where}: unknown manifest field {path}{key} (written by another tool or edited "
                                 "by hand?); re-export the model")
        kinds = _flat(kind)
        bad_bool = isinstance(value, bool) and bool not in kinds
        if not isinstance(value, kinds) or bad_bool:
            raise ModelFileError(f"{where}: manifest field {path}{key}: expected {_type_name(kind)}, "
                                 f"got {type(value).__name__} {str(value)[:40]!r}")


def safe_relative(name: str, where: str, field: str) -> None:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or name.startswith("~"):
        raise ModelFileError(f"{where}: manifest field {field}: {name!r} is not a file inside the model directory")


def _entry(fmt: str, entry: Any, where: str, path: str, pending: bool = False) -> None:
    _fields(entry, ENTRY_REQUIRED, {**ENTRY_OPTIONAL, **(PENDING_ONLY if pending else {})}, where, path)
    for name in entry.get("commit_files", []):
        safe_relative(str(name), where, f"{path}commit_files")
    if entry["format"] != fmt:
        raise ModelFileError(f"{where}: manifest field {path}format is {entry['format']!r} under {fmt!r}")
    safe_relative(entry["file"], where, f"{path}file")
    if not entry["files"]:
        raise ModelFileError(f"{where}: manifest field {path}files is empty")
    for name, sha in entry["files"].items():
        safe_relative(name, where, f"{path}files")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ModelFileError(f"{where}: manifest field {path}files[{name!r}]: not a sha256")
    for side in ("inputs", "outputs"):
        for i, spec in enumerate(entry[side]):
            _fields(spec, {k: TENSOR[k] for k in ("name", "shape", "dtype")}, TENSOR, where, f"{path}{side}[{i}].")


def validate(manifest: Any, where: str) -> dict[str, Any]:
    """``manifest`` if it is a well-formed edgeport manifest; ModelFileError naming the field if not."""
    _fields(manifest, TOP_REQUIRED, TOP_OPTIONAL, where, "")
    if "source" in manifest:
        _fields(manifest["source"], {k: SOURCE[k] for k in ("file", "kind", "sha256")}, SOURCE, where, "source.")
        safe_relative(manifest["source"]["file"], where, "source.file")
    for field in ("labels_file", "data_file"):
        if manifest.get(field):
            safe_relative(manifest[field], where, field)
    for table in ("artifacts", "pending"):
        for fmt, entry in (manifest.get(table) or {}).items():
            _entry(fmt, entry, where, f"{table}.{fmt}.", pending=table == "pending")
    return manifest
