"""`edgeport verify --bundle FILE`: prove a bundle's artifacts on the device it was copied to.

The bundle is opened safely and every file checked against its sha256 before anything is loaded
(:mod:`edgeport.bundle`); each artifact must also match its manifest entry and come from the model
the reference set was computed with. The reference is the bundle's ``reference.npz``: real test
inputs with the Keras outputs and float32 noise computed where TensorFlow was; the gates are those
of `edgeport verify`. No TensorFlow is needed (nor imported).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeport import reference_set
from edgeport.benchmarks.verify.plan import Plan, Planned
from edgeport.benchmarks.verify.reference import Reference, from_reference_set
from edgeport.bundle import Bundle, BundleError
from edgeport.errors import EdgeportError
from edgeport.export.registry import INFO
from edgeport.manifest import StaleArtifactError, check_integrity
from edgeport.manifest_schema import validate
from edgeport.training.testset import TestSet
from edgeport.names import MANIFEST_FILE


def bundle_manifest(bundle: Bundle) -> dict[str, Any]:
    try:
        manifest = json.loads(bundle.path(MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle.source}: unreadable manifest.json ({exc})") from None
    try:
        validate(manifest, f"{bundle.source}:manifest.json")
    except EdgeportError as exc:
        raise BundleError(str(exc)) from None
    if not manifest["artifacts"]:
        raise BundleError(f"{bundle.source}: its manifest.json lists no artifacts")
    return manifest


def reference_of(bundle: Bundle) -> tuple[dict[str, Any], TestSet]:
    """The bundle's reference set and its inputs as a test set."""
    try:
        data = reference_set.read(bundle.path("reference.npz"))
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{bundle.source}: unreadable reference.npz ({exc})") from None
    if data["x"] is None:
        raise BundleError(f"{bundle.source}: reference.npz holds no inputs")
    meta = data["meta"]
    test = TestSet(x=data["x"], y=data["y"], labels=tuple(meta.get("labels") or ()),
                   task=meta.get("task") or "classification", source=f"{bundle.source.name}:reference.npz",
                   dataset="bundle")
    return data, test


def plan_bundle(bundle: Bundle, dest: Path, formats: list[str] | None = None) -> tuple[Plan, Reference]:
    manifest = bundle_manifest(bundle)
    data, test = reference_of(bundle)
    meta = data["meta"]
    ran_on = meta.get("runtime") or (manifest.get("source") or {}).get("reference_runtime") or "unknown"
    reference = from_reference_set({**data, "meta": {**meta, "runtime": ran_on,
                                                      "source": meta.get("source", "keras model")}})
    reference.noise_basis = (reference.noise_basis or "") + " (computed where the bundle was made)"
    plan = Plan(name=bundle.model, dest=dest, test=test, reference_source=bundle.source,
                reference_runtime=reference.runtime, reference_key={}, cache=None, saved_model=None,
                manifest=manifest)
    plan.notes.append(f"bundle {bundle.source.name} ({bundle.target}), every file checked against bundle.json")
    for fmt, entry in manifest["artifacts"].items():
        if formats and fmt not in formats:
            continue
        info = INFO.get(fmt)
        item = Planned(fmt, bundle.root / entry["file"], info.precision if info else None, entry)
        try:
            if info is None:
                raise BundleError(f"{bundle.source}: unknown format {fmt!r} in its manifest")
            check_integrity(bundle.root, entry)
            if entry.get("source_sha256") != meta.get("model_sha256"):
                raise StaleArtifactError(f"{entry['file']}: exported from another model than the one its "
                                         "reference set was computed with; rebuild the bundle")
        except EdgeportError as exc:
            item.error = exc
        plan.artifacts.append(item)
    return plan, reference


def results_path(source: Path, suffix: str) -> Path:
    name = source.name[:-len(".tar.gz")] if source.name.endswith(".tar.gz") else source.name
    return source.parent / f"{name}.{suffix}"
