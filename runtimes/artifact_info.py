"""What a caller needs to know about an artifact besides its tensors: labels and input contract.

Looked up, in order, in ``manifest.json`` / ``labels.txt`` beside the artifact (its directory, or
the one above for a SavedModel directory), then in the metadata embedded in the file (the
``"edgeport"`` entry of a TFLite model's metadata, ONNX ``metadata_props``). No engine needed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.types import METADATA_KEY, InputContract
from edgeport.runtimes import fileformats
from edgeport import names

LABELS_FILE = names.LABELS_FILE


@dataclass
class ArtifactInfo:
    model: str | None = None
    labels: list[str] | None = None
    contract: InputContract | None = None
    inputs: list[Any] | None = None  # input names in the model's (Keras) order, if recorded
    source: str = "none"  # where the metadata came from: manifest, embedded, tflite-metadata, labels.txt
    labels_from: str = "none"  # where ``labels`` came from (one of the above); "none" when there are none
    notes: list[str] = field(default_factory=list)
    #: NormalizationOptions of standard TFLite Metadata: the model wants (pixel - mean) / std.
    normalization: tuple[list[float], list[float]] | None = None
    standard: Any = None  # the StandardMetadata read from a third-party .tflite
    unreadable: str | None = None  # standard metadata is there but could not be read: why


def input_order(meta: dict[str, Any] | None) -> list[str] | None:
    """Input names in the Keras model's order, as the exporter records them: ``inputs`` or
    ``input_contract.extra.inputs`` (names or ``{"name": ...}`` objects)."""
    if not isinstance(meta, dict):
        return None
    names = meta.get("inputs") or meta.get("input_names")
    if not names:
        extra = (meta.get("input_contract") or {}).get("extra") or {}
        names = extra.get("inputs") if isinstance(extra, dict) else None
    if not isinstance(names, list):
        return None
    out = [n.get("name") if isinstance(n, dict) else n for n in names]
    return out if all(isinstance(n, str) for n in out) else None


def embedded(path: str | Path) -> dict[str, Any] | None:
    """The ``edgeport`` metadata JSON embedded in a .tflite or .onnx file, or None."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tflite", ".onnx") or not p.is_file():
        return None
    try:
        data = p.read_bytes()
        meta = (fileformats.read_tflite(data).metadata if suffix == ".tflite"
                else fileformats.read_onnx(data).metadata)
    except (OSError, fileformats.FormatError):
        return None
    raw = meta.get(METADATA_KEY)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text.rstrip("\0"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _manifest_dirs(p: Path) -> list[Path]:
    """Where a manifest may sit: beside a file; above (and above that) a SavedModel directory."""
    root = p.parent if p.name == "saved_model.pb" else p
    return [root.parent, root.parent.parent] if root.is_dir() else [root.parent]


def _contract(d: Any) -> InputContract | None:
    if not isinstance(d, dict):
        return None
    try:
        return InputContract.from_dict(d)
    except (TypeError, ValueError, KeyError):
        return None


def _read_labels(path: Path) -> list[str] | None:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError):
        return None
    return [ln for ln in lines if ln] or None


def artifact_info(path: str | Path) -> ArtifactInfo:
    """Labels, input contract and input order for an artifact, from the best source there is."""
    p = Path(path)
    info = ArtifactInfo()
    for d in _manifest_dirs(p):
        mf = d / names.MANIFEST_FILE
        if not mf.is_file():
            continue
        try:
            m = json.loads(mf.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            info.notes.append(f"{mf}: unreadable ({exc})")
            continue
        if not isinstance(m, dict) or not _lists(m, p):
            continue
        info.model = m.get("model")
        info.labels = m.get("labels") or (
            _read_labels(d / m["labels_file"]) if m.get("labels_file") else None)
        info.contract = _contract(m.get("input_contract"))
        info.inputs = input_order(m)
        info.source = "manifest"
        info.labels_from = "manifest" if info.labels else "none"
        break
    meta = embedded(p)
    if meta:
        info.model = info.model or meta.get("model")
        if not info.labels and meta.get("labels"):
            info.labels, info.labels_from = meta["labels"], "embedded"
        info.contract = info.contract or _contract(meta.get("input_contract"))
        info.inputs = info.inputs or input_order(meta)
        if info.source == "none":
            info.source = "embedded"
    if p.suffix.lower() == ".tflite" and p.is_file() and info.contract is None:
        _standard(p, info)
    if info.labels is None:
        for d in _manifest_dirs(p):
            labels = _read_labels(d / LABELS_FILE)
            if labels:
                info.labels, info.labels_from = labels, names.LABELS_FILE
                info.source = info.source if info.source != "none" else names.LABELS_FILE
                break
    return info


def _lists(manifest: dict[str, Any], p: Path) -> bool:
    """Whether a manifest describes ``p`` (a manifest beside an unrelated file says nothing of it)."""
    root = p.parent if p.name == "saved_model.pb" else p
    names = {str(e.get("file")) for e in (manifest.get("artifacts") or {}).values() if isinstance(e, dict)}
    source = (manifest.get("source") or {}).get("file") if isinstance(manifest.get("source"), dict) else None
    return root.name in names or root.name == source


def _standard(p: Path, info: ArtifactInfo) -> None:
    """Labels and normalization from standard TFLite Metadata (a third-party model)."""
    from edgeport.errors import EdgeportError
    from edgeport.runtimes import metadata_reader

    try:
        standard = metadata_reader.read(p.read_bytes())
    except (OSError, EdgeportError) as exc:
        info.unreadable = f"{p}: carries TFLite Metadata that could not be read: {exc}"
        info.notes.append(info.unreadable)
        return
    if standard is None:
        return
    info.standard = standard
    info.model = info.model or standard.name or None
    if standard.labels and not info.labels:
        info.labels, info.labels_from = standard.labels, "tflite-metadata"
    first = standard.inputs[0] if standard.inputs else None
    if first is not None and first.mean and first.std:
        info.normalization = (first.mean, first.std)
    if info.source == "none":
        info.source = "tflite-metadata"
