"""Find the model to export and load it: Keras safe mode on unless the user allows unsafe code."""
from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeport.errors import ModelFileError
from edgeport.files import atomic_path

MODEL_FILE = "model.keras"
UNSAFE_FLAG = "--allow-unsafe"


@dataclass(frozen=True)
class ModelSource:
    name: str  # the model directory's name (a course model name, or the .keras file's stem)
    model_dir: Path  # where the artifacts and the manifest go
    keras_file: Path  # the file to load (the user's .keras, or model_dir/model.keras)

    @property
    def target(self) -> Path:
        return self.model_dir / MODEL_FILE


def _course_names() -> list[str]:
    try:
        from edgeport.training.models import MODELS
    except ImportError:  # pragma: no cover - training stage not installed
        return []
    return list(MODELS)


def resolve_source(model: str, out: Path) -> ModelSource:
    """MODEL is a course model name (OUT/MODEL/model.keras), a model directory, or a .keras file."""
    path, out = Path(model), Path(out)
    if path.suffix == ".keras":
        if not path.is_file():
            raise ModelFileError(f"{path}: no such .keras file")
        if path.name == MODEL_FILE:  # already inside a model directory: export beside it
            return ModelSource(path.resolve().parent.name, path.parent, path)
        return ModelSource(path.stem, out / path.stem, path)
    bare = len(path.parts) == 1
    if bare and (out / model / MODEL_FILE).is_file():
        return ModelSource(model, out / model, out / model / MODEL_FILE)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise ModelFileError(f"{path}: a directory without {MODEL_FILE}; train it first "
                                 f"(`edgeport train {path.name}`) or pass a .keras file")
        return ModelSource(path.resolve().name, path, path / MODEL_FILE)
    if bare and model in _course_names():
        raise ModelFileError(f"{out / model / MODEL_FILE}: not found; run `edgeport train {model} "
                             f"--out {out}` first")
    raise ModelFileError(f"{model!r}: not a .keras file, a model directory or a trained course model "
                         f"under {out}/ (course models: {', '.join(_course_names()) or 'none installed'})")


def load_keras(path: Path, *, allow_unsafe: bool = False):
    """Load a .keras file (safe mode unless ``allow_unsafe``); every failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a Keras .keras archive (truncated or corrupt?); "
                             "re-save it with model.save(...) or re-run `edgeport train`")
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe, compile=False)
    except Exception as exc:  # keras raises ValueError, TypeError, KeyError, zip and OS errors
        text = str(exc)
        if not allow_unsafe and ("safe_mode" in text or "unsafe" in text.lower()):
            raise ModelFileError(
                f"{path}: refused in Keras safe mode: the model needs unsafe deserialisation "
                f"(for example a Lambda layer's Python code); if you trust this file, pass "
                f"{UNSAFE_FLAG}") from None
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        raise ModelFileError(f"{path}: cannot load as a Keras model ({type(exc).__name__}: "
                             f"{first[:300]})") from None


def install_source(src: ModelSource) -> Path:
    """Copy a user's .keras file to MODEL_DIR/model.keras atomically (no-op if it is already there)."""
    target = src.target
    if target.exists() and target.resolve() == src.keras_file.resolve():
        return target
    with atomic_path(target) as tmp:
        shutil.copyfile(src.keras_file, tmp)
    return target
