"""What a model file is: the one answer every command uses (export, verify, fix, bench, run, fuzz).

A path is one of these kinds:

- ``keras``: a Keras model file: ``.keras`` (a zip) or a legacy HDF5 file (``.h5`` or ``.hdf5``,
  the extension many ``ModelCheckpoint`` examples use; tf.keras / Keras 2 or Keras 3);
- ``savedmodel``: a TensorFlow SavedModel directory (or its ``saved_model.pb``);
- ``tflite``, ``onnx``, ``ort_format``: an engine's artifact file.

A file whose suffix is not listed is recognised by its first bytes (a TFLite or ORT flatbuffer
identifier, a zip, an HDF5 signature); anything else is a ``LoadError`` naming the file and the
kinds this tool reads. numpy-free and TensorFlow-free: a Raspberry Pi's runtime imports it.
"""
from __future__ import annotations

import os
from pathlib import Path

from edgeport.errors import LoadError

KINDS = ("keras", "savedmodel", "tflite", "onnx", "ort_format")
#: Suffix -> kind. ``.h5`` and ``.hdf5`` are both legacy (HDF5) Keras files.
SUFFIXES = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".tflite": "tflite", ".onnx": "onnx",
            ".ort": "ort_format"}
LEGACY_KERAS_SUFFIXES = (".h5", ".hdf5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TFLITE_IDENTIFIER = b"TFL3"
#: The ORT format's flatbuffer file identifier (onnxruntime/core/flatbuffers/schema/ort.fbs).
ORT_IDENTIFIER = b"ORTM"
#: Kinds that are a model's source (a reference), not an engine artifact.
SOURCE_KINDS = ("keras", "savedmodel")


def is_saved_model(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file())


def kind_of_name(name: str, *, directory: bool = False) -> str | None:
    """The kind a model path of this name has, by its name alone (None: not known by name)."""
    if directory or name in ("saved_model.pb", "saved_model.pbtxt"):
        return "savedmodel"
    return SUFFIXES.get(Path(name).suffix.lower())


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(8)
    except OSError as exc:
        raise LoadError(f"{p}: unreadable ({exc.strerror})") from None


def model_file_kind(path: str | os.PathLike) -> str:
    """The kind of a model path (see the module docstring), or LoadError naming the file."""
    p = Path(path)
    if not p.exists():
        raise LoadError(f"{p}: no such file or directory")
    if p.is_dir():
        if is_saved_model(p):
            return "savedmodel"
        raise LoadError(f"{p}: a directory without saved_model.pb (not a SavedModel)")
    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        return "savedmodel"
    kind = SUFFIXES.get(p.suffix.lower())
    if kind:
        return kind
    head = _head(p)
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    if head[4:8] == ORT_IDENTIFIER:
        return "ort_format"
    if head[:4] == b"PK\x03\x04" or head == HDF5_SIGNATURE:
        return "keras"
    raise LoadError(f"{p}: unknown model file type {p.suffix or '(no suffix)'!r}; "
                    f"expected one of {', '.join(SUFFIXES)} or a SavedModel directory")


def is_legacy_keras(path: str | os.PathLike) -> bool:
    """A legacy HDF5 Keras file (``.h5``/``.hdf5``, or an unknown suffix with the HDF5 signature)."""
    p = Path(path)
    if p.suffix.lower() in LEGACY_KERAS_SUFFIXES:
        return True
    return p.is_file() and p.suffix.lower() not in SUFFIXES and _head(p) == HDF5_SIGNATURE


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a model this tool reads (a known suffix, or a SavedModel directory)."""
    p = Path(path)
    return (p.is_file() and p.suffix.lower() in SUFFIXES) or is_saved_model(p)
