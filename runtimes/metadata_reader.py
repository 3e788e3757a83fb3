"""Standard TFLite Metadata (the ``TFLITE_METADATA`` entry the Task Library, MediaPipe Tasks and
Android Studio's ML Model Binding read): find the official schema code, and read a model's entry.

The schema code is the official ``metadata_schema_py_generated.py`` (flatc's output for
``metadata_schema.fbs``) as a maintained package ships it; edgeport carries no copy of its own.
It is looked up, in order, in an installed ``mediapipe`` (loaded by file path, so mediapipe's own
heavy ``__init__`` never runs), an installed ``tensorflow_lite_support``, and the copy that
``make data`` (``python -m edgeport.runtimes.metadata_reader fetch``) takes out of the mediapipe
wheel into ``$EDGEPORT_DATA_HOME/tflite-metadata/``. Reading needs numpy and ``flatbuffers`` only.
"""
from __future__ import annotations

import importlib.util
import io
import os
import sys
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgeport.errors import EdgeportError
from edgeport.runtimes import fileformats
from edgeport.names import data_home

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
SCHEMA_FILE = "metadata_schema_py_generated.py"
MEDIAPIPE = "mediapipe==1.2.2"
_IN_MEDIAPIPE = ("tasks", "metadata", SCHEMA_FILE)


class MetadataSchemaMissing(EdgeportError):
    """The official metadata schema code is not installed here."""


def cache_dir() -> Path:
    home = str(data_home())
    return Path(home) / "tflite-metadata"


def _package_file(package: str, parts: tuple[str, ...]) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)  # a top-level spec: the package itself is not run
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_file() else None


def _load(path: Path, name: str = "_edgeport_tflite_metadata_schema"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__edgeport_source__ = str(path)
    return module


@lru_cache(maxsize=1)
def schema():
    """The official generated metadata schema module (MetadataSchemaMissing when absent)."""
    candidates = [_package_file("mediapipe", _IN_MEDIAPIPE),
                  _package_file("tensorflow_lite_support", ("metadata", SCHEMA_FILE)),
                  cache_dir() / SCHEMA_FILE]
    for path in candidates:
        if path is not None and path.is_file():
            return _load(path)
    raise MetadataSchemaMissing(
        "the official TFLite Metadata schema code is not installed here: run `make data` (it takes "
        f"{SCHEMA_FILE} out of the {MEDIAPIPE} wheel into {cache_dir()}), or pip install {MEDIAPIPE}")


@dataclass
class TensorMetadata:
    name: str
    description: str = ""
    mean: list[float] | None = None  # NormalizationOptions: the model wants (x - mean) / std
    std: list[float] | None = None
    color_space: str | None = None
    labels: list[str] | None = None  # from a TENSOR_AXIS_LABELS associated file
    label_file: str | None = None


@dataclass
class StandardMetadata:
    name: str
    description: str
    version: str
    min_parser_version: str
    inputs: list[TensorMetadata] = field(default_factory=list)
    outputs: list[TensorMetadata] = field(default_factory=list)
    packed_files: list[str] = field(default_factory=list)
    schema_source: str = ""

    @property
    def labels(self) -> list[str] | None:
        return next((t.labels for t in self.outputs if t.labels), None)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def _enum_name(enum: Any, value: int) -> str:
    return next((k for k, v in vars(enum).items() if not k.startswith("_") and v == value), str(value))


def packed_files(model: bytes) -> dict[str, bytes]:
    """The files packed after the flatbuffer (a zip archive, as the official populator writes)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return {}


def read(model: bytes) -> StandardMetadata | None:
    """The model's standard metadata, or None when it has none. Raises MetadataSchemaMissing when it
    has some but the schema code is absent, and EdgeportError when the entry is malformed."""
    try:
        raw = fileformats.read_tflite(model).metadata.get(METADATA_NAME)
    except fileformats.FormatError as exc:
        raise EdgeportError(f"not a valid TFLite model: {exc}") from None
    if raw is None:
        return None
    if raw[4:8] != METADATA_IDENTIFIER:
        raise EdgeportError(f"its {METADATA_NAME} entry is not a metadata flatbuffer (no {METADATA_IDENTIFIER!r})")
    fb = schema()
    try:
        md = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(raw, 0))
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises struct/index errors on garbage
        raise EdgeportError(f"its {METADATA_NAME} entry is malformed ({type(exc).__name__}: {exc})") from None
    files = packed_files(model)

    def tensor(t: Any) -> TensorMetadata:
        out = TensorMetadata(_text(t.name), _text(t.description))
        content = t.content
        if content is not None and content.contentPropertiesType == fb.ContentProperties.ImageProperties:
            out.color_space = _enum_name(fb.ColorSpaceType, content.contentProperties.colorSpace)
        for unit in t.processUnits or []:
            if unit.optionsType == fb.ProcessUnitOptions.NormalizationOptions:
                out.mean = [float(v) for v in unit.options.mean]
                out.std = [float(v) for v in unit.options.std]
        for f in t.associatedFiles or []:
            if f.type == fb.AssociatedFileType.TENSOR_AXIS_LABELS and out.labels is None:
                out.label_file = _text(f.name)
                data = files.get(out.label_file)
                if data is not None:
                    out.labels = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
        return out

    graph = (md.subgraphMetadata or [None])[0]
    return StandardMetadata(
        _text(md.name), _text(md.description), _text(md.version), _text(md.minParserVersion),
        [tensor(t) for t in (graph.inputTensorMetadata or [])] if graph else [],
        [tensor(t) for t in (graph.outputTensorMetadata or [])] if graph else [],
        sorted(files), getattr(fb, "__edgeport_source__", ""))


def fetch(dest: Path | None = None) -> Path:
    """Take the official schema module (and its .fbs and licence) out of the mediapipe wheel."""
    import subprocess
    import tempfile

    dest = Path(dest or cache_dir())
    if (dest / SCHEMA_FILE).is_file():
        return dest / SCHEMA_FILE
    with tempfile.TemporaryDirectory(prefix="edgeport-mp-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", tmp,
               MEDIAPIPE]
        run = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("mediapipe-*.whl"))
        if run.returncode != 0 or not wheels:
            raise EdgeportError(f"could not download the {MEDIAPIPE} wheel for the TFLite Metadata schema: "
                                f"{(run.stderr or run.stdout).strip().splitlines()[-1:] or ['no output']}")
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as whl:
            names = whl.namelist()
            wanted = {"mediapipe/tasks/metadata/" + SCHEMA_FILE: SCHEMA_FILE,
                      "mediapipe/tasks/metadata/metadata_schema.fbs": "metadata_schema.fbs"}
            wanted.update({n: "LICENSE" for n in names
                           if ".dist-info/" in n and n.rsplit("/", 1)[-1].startswith("LICENSE")})
            for member, name in wanted.items():
                if member in names:
                    tmp_file = dest / f".{name}.tmp"
                    tmp_file.write_bytes(whl.read(member))
                    os.replace(tmp_file, dest / name)
        (dest / "SOURCE.txt").write_text(f"taken from {wheels[0].name} (PyPI {MEDIAPIPE}), Apache-2.0\n")
    if not (dest / SCHEMA_FILE).is_file():
        raise EdgeportError(f"{wheels[0].name} has no {SCHEMA_FILE}")
    schema.cache_clear()
    return dest / SCHEMA_FILE


if __name__ == "__main__":  # pragma: no cover - `make data`
    if sys.argv[1:] == ["fetch"]:
        try:
            print(f"TFLite Metadata schema: {fetch()}")
        except EdgeportError as exc:
            print(f"edgeport: error: {exc}", file=sys.stderr)
            sys.exit(2)
    else:
        print("usage: python -m edgeport.runtimes.metadata_reader fetch", file=sys.stderr)
        sys.exit(2)
