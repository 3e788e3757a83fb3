"""Find the model to export and load it: a `.keras` file, a legacy `.h5` (tf.keras / Keras 2 or
Keras 3) or a TensorFlow SavedModel directory. Keras safe mode is on unless the user allows
unsafe code; a Lambda's Python code or an unknown custom object is refused, naming the file.
"""
from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeport import model_files
from edgeport.errors import ModelFileError
from edgeport.files import sha256_file
from edgeport.runtimes.keras_legacy import dropped_args

UNSAFE_FLAG = "--allow-unsafe"
#: Source kind -> the name it is installed under in the model directory.
INSTALLED_NAMES = {"keras": "model.keras", "h5": "model.h5", "savedmodel": "source_saved_model"}
#: Source kind -> the runtime that computes the reference outputs.
REFERENCE_RUNTIME = {"keras": "keras", "h5": "keras", "savedmodel": "savedmodel"}
MODEL_FILE = INSTALLED_NAMES["keras"]
HDF5_SIGNATURE = model_files.HDF5_SIGNATURE


def file_kind(path: Path) -> str | None:
    """The source kind of a model file (``keras`` or legacy ``h5``, which covers ``.hdf5``), as
    :func:`edgeport.model_files.model_file_kind` decides it for every command; None otherwise."""
    if model_files.SUFFIXES.get(path.suffix.lower()) != "keras":
        return None
    return "h5" if model_files.is_legacy_keras(path) else "keras"


@dataclass(frozen=True)
class ModelSource:
    name: str  # the model directory's name (a course model name, or the file's stem)
    model_dir: Path  # where the artifacts and the manifest go
    path: Path  # what to load: the user's file or directory, or the installed copy
    kind: str  # keras | h5 | savedmodel

    @property
    def installed_path(self) -> Path:
        """Where the source is kept beside its artifacts (the reference verify runs)."""
        return self.model_dir / INSTALLED_NAMES[self.kind]

    @property
    def keras_file(self) -> Path:  # the name the rest of the code base used for ``path``
        return self.path


def _course_names() -> list[str]:
    try:
        from edgeport.training.models import MODELS
    except ImportError:  # pragma: no cover - training stage not installed
        return []
    return list(MODELS)


is_saved_model = model_files.is_saved_model


def installed(model_dir: Path) -> ModelSource | None:
    """The source already installed in a model directory, if any."""
    for kind, name in INSTALLED_NAMES.items():
        p = model_dir / name
        if (p.is_file() and kind != "savedmodel") or (kind == "savedmodel" and is_saved_model(p)):
            return ModelSource(model_dir.resolve().name, model_dir, p, kind)
    return None


def resolve_source(model: str, out: Path) -> ModelSource:
    """MODEL is a course model name or model directory (with model.keras/.h5 or a source SavedModel
    inside), a .keras/.h5 file, or a SavedModel directory. A file or SavedModel exports to
    OUT/<its stem>/, unless it already is the source of a model directory under OUT."""
    path, out = Path(model), Path(out)
    kind = file_kind(path)
    if kind is None and path.suffix.lower() in model_files.SUFFIXES:
        raise ModelFileError(f"{path}: an engine artifact ({model_files.SUFFIXES[path.suffix.lower()]}), not a model "
                             "to export; prove it with `edgeport verify FILE --reference MODEL --data-npz F`")
    if kind is not None:
        if not path.is_file():
            raise ModelFileError(f"{path}: no such file")
        if path.name == INSTALLED_NAMES[kind] and path.resolve().parent.parent == out.resolve():
            return ModelSource(path.resolve().parent.name, path.parent, path, kind)
        return ModelSource(path.stem, out / path.stem, path, kind)
    bare = len(path.parts) == 1
    if bare and (found := installed(out / model)) is not None:
        return found
    if is_saved_model(path):
        if path.resolve().parent.parent == out.resolve() and path.name == INSTALLED_NAMES["savedmodel"]:
            return ModelSource(path.resolve().parent.name, path.parent, path, "savedmodel")
        return ModelSource(path.resolve().name, out / path.resolve().name, path, "savedmodel")
    if path.is_dir():
        if (found := installed(path)) is not None:
            return found
        raise ModelFileError(f"{path}: a directory that is neither a SavedModel (no saved_model.pb) nor a "
                             f"model directory (no {', '.join(INSTALLED_NAMES.values())}); "
                             "pass a .keras, .h5 or .hdf5 file")
    if bare and model in _course_names():
        raise ModelFileError(f"{out / model / MODEL_FILE}: not found; run `edgeport train {model} "
                             f"--out {out}` first")
    raise ModelFileError(f"{model!r}: not a .keras/.h5/.hdf5 file, a SavedModel or model directory, or a trained "
                         f"course model under {out}/ (course models: {', '.join(_course_names()) or 'none installed'})")


def _check_container(path: Path, kind: str) -> None:
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if kind == "keras" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a Keras .keras archive (truncated or corrupt?); "
                             "re-save it with model.save(...) or re-run `edgeport train`")
    if kind == "h5":
        with open(path, "rb") as fh:
            if fh.read(8) != HDF5_SIGNATURE:
                raise ModelFileError(f"{path}: not an HDF5 file (no HDF5 signature; truncated or corrupt?)")


def load_keras(path: Path, *, allow_unsafe: bool = False, kind: str | None = None):
    """Load a .keras or .h5 file (safe mode unless ``allow_unsafe``); every failure names the file."""
    path = Path(path)
    kind = kind or file_kind(path) or "keras"
    _check_container(path, kind)
    from edgeport.runtimes.keras_legacy import load_model  # keras, TensorFlow: imported when loading

    try:
        model, legacy = load_model(path, safe_mode=not allow_unsafe)
        if legacy:
            print(f"note: {legacy}", flush=True)
        return model
    except Exception as exc:  # noqa: BLE001 - keras raises ValueError, TypeError, KeyError, zip, h5py and OS errors
        text = str(exc)
        if not allow_unsafe and ("safe_mode" in text or "unsafe" in text.lower() or "arbitrary code" in text):
            raise ModelFileError(
                f"{path}: refused in Keras safe mode: the model needs unsafe deserialisation "
                f"(for example a Lambda layer's Python code); if you trust this file, pass "
                f"{UNSAFE_FLAG}") from None
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        hint = (" (a custom layer or function: the model's own code is needed to load it)"
                if "Unknown" in first or "custom" in first.lower() else "")
        raise ModelFileError(f"{path}: cannot load as a Keras model ({type(exc).__name__}: "
                             f"{first[:300]}){hint}") from None


def load_source(src: ModelSource, *, allow_unsafe: bool = False):
    """The Keras model of a .keras/.h5 source; None for a SavedModel (read through its signature)."""
    if src.kind == "savedmodel":
        from edgeport.errors import LoadError
        from edgeport.runtimes.guard import validate

        try:
            validate(src.path, "savedmodel")
        except LoadError as exc:
            raise ModelFileError(str(exc)) from None
        return None
    return load_keras(src.path, allow_unsafe=allow_unsafe, kind=src.kind)


def refuse_other_sources(src: ModelSource) -> None:
    """One source model per model directory: exporting a model.h5 where a model.keras is refused."""
    for kind, name in INSTALLED_NAMES.items():
        other = src.model_dir / name
        if kind != src.kind and other.exists():
            raise ModelFileError(f"{src.model_dir}: already holds {name}, the source of its artifacts; export "
                                 f"{src.path} into another --out directory (or remove {other} first)")


def source_record(src: ModelSource) -> dict:
    """The manifest's ``source`` block: what the artifacts were exported from (once installed)."""
    from edgeport.files import size_bytes

    return {"file": src.installed_path.name, "kind": src.kind, "sha256": sha256_file(src.path),
            "bytes": size_bytes(src.path),
            "reference_runtime": REFERENCE_RUNTIME[src.kind],
            **({"keras2_args_left_out": dropped} if src.kind == "h5" and (dropped := dropped_args(src.path)) else {})}


def installed_already(src: ModelSource, sha256: str) -> bool:
    """Whether the model directory holds this very source already."""
    return src.installed_path.exists() and sha256_file(src.installed_path) == sha256


def stage_source(src: ModelSource, staging: Path) -> list[str]:
    """Copy the source into ``staging`` under its installed name, to be committed with an artifact;
    returns the names to move (a replaced source of another kind is moved aside with it)."""
    if src.kind == "savedmodel":
        shutil.copytree(src.path, staging / src.installed_path.name)
    else:
        shutil.copyfile(src.path, staging / src.installed_path.name)
    return [src.installed_path.name]
