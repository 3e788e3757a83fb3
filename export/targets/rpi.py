"""Raspberry Pi bundle: the float32 and int8 artifacts, labels, the manifest and a reference set.

The reference set (``reference.npz``) is a seeded sample of real test inputs with the Keras outputs
on them and each output's float32 noise, taken from what `edgeport verify` computed on this
machine: the Pi proves parity with the same gates and no TensorFlow (``edgeport verify --bundle``).
Only verified artifacts ship: the model must have passed `edgeport verify` as it is now.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


from edgeport import reference_set
from edgeport.errors import EdgeportError
from edgeport.export import registry
from edgeport.export.targets import rpi_install
from edgeport.export.targets.bundle import BundleBuilder, Selection
from edgeport.export.targets.common import check_artifacts, seeded_indices, take_rows, verified_testset
from edgeport.manifest import effective_entries, load_manifest
from edgeport.names import LABELS_FILE, MANIFEST_FILE
from edgeport.runtimes.registry import capabilities

FORMATS = registry.for_bundle("rpi")  # the registry rows that say a Pi bundle carries them
#: what every Pi runs: the formats whose runtimes all have a 32-bit Arm wheel
REQUIRED = tuple(f for f in FORMATS if all(capabilities(r).armv7l for r in registry.info(f).runtimes))
TOP_LEVEL = ("model", "dataset", "task", "labels", "labels_file", "input_contract", "input_names", "output_names",
             "source", "calibration", "output_kinds")

USAGE = """# {model} on a Raspberry Pi

Proved on the Pi itself, with the same gates as on the workstation and no TensorFlow. On a bare
Raspberry Pi OS, in the folder that holds {name}.tar.gz:

{commands}

Files: {files}. Every file's sha256 is in bundle.json and is checked before anything is loaded.
The reference set: {n} real test inputs from {source} with the Keras outputs on them.
"""


def _reference(model_dir: Path, verify: dict[str, Any], samples: int, seed: int, data_dir: str | None,
               manifest: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    data = verify.get("data") or {}
    try:
        cached = reference_set.read(model_dir / reference_set.REFERENCE_FILE)
    except (OSError, ValueError, KeyError):
        raise EdgeportError(f"{model_dir.name}: no reference outputs cached; "
                            f"run `edgeport verify {model_dir}`") from None
    key = cached["meta"].get("key", {})
    source_sha = (manifest.get("source") or {}).get("sha256")
    if key.get("data_sha256") != data.get("sha256") or key.get("model_sha256") != source_sha:
        raise EdgeportError(f"{model_dir.name}: the cached reference is not the last verify's; run `edgeport verify "
                            f"{model_dir}` again")
    test = verified_testset(model_dir, manifest, verify, data_dir)
    if test.fingerprint() != data.get("sha256"):
        raise EdgeportError(f"{model_dir.name}: the test data changed since the last verify; verify again")
    idx = seeded_indices(len(test), samples, seed)
    return {"idx": idx, "f32": {k: v[idx] for k, v in cached["f32"].items()}, "meta": cached["meta"],
            "data": data}, test


def build(model_dir: Path, builder: BundleBuilder, *, samples: int, seed: int, data_dir: str | None,
          selection: Selection | None = None, offline: bool = False) -> None:
    """The artifacts (those of ``selection``, said in README.md and bundle.json), labels, manifest, the
    reference set, and edgeport's wheel with install.sh (``offline``: the 64-bit Pi OS wheels too)."""
    manifest = load_manifest(model_dir)
    entries = effective_entries(model_dir, manifest)
    formats, left_out, verify = (selection or Selection()).choose(model_dir, FORMATS, entries, REQUIRED)
    source_sha = (manifest.get("source") or {}).get("sha256", "")
    check_artifacts(model_dir, manifest, entries, formats, source_sha)
    for fmt in formats:
        builder.add_file(entries[fmt]["file"], model_dir / entries[fmt]["file"])
    if (model_dir / LABELS_FILE).is_file():
        builder.add_file(LABELS_FILE, model_dir / LABELS_FILE)
    sub = {k: manifest[k] for k in TOP_LEVEL if k in manifest}
    builder.add_json(MANIFEST_FILE, {**sub, "schema": manifest["schema"],
                                       "artifacts": {f: entries[f] for f in formats}})
    ref, test = _reference(model_dir, verify, samples, seed, data_dir, manifest)
    idx = ref["idx"]
    x = take_rows(test.x, idx)
    meta = {**{k: v for k, v in ref["meta"].items() if k != "key"}, "model_sha256": source_sha,
            "data": {**ref["data"], "n": int(len(idx)), "seed": seed, "indices_of": "the verify test set"},
            "task": test.task, "labels": list(test.labels)}
    reference_set.write(builder.path("reference.npz"), f32=ref["f32"], meta=meta, x=x,
                        y=test.y[idx] if test.y is not None else None)
    wheels = rpi_install.add(builder, offline=offline)
    commands = rpi_install.usage(builder.name, offline, entries[formats[0]]["file"])
    files = ", ".join(entries[f]["file"] for f in formats) + ", labels.txt, manifest.json, reference.npz, " \
        f"install.sh, wheels/ ({len(wheels)} wheels)"
    builder.add_text("README.md", USAGE.format(model=model_dir.name, name=builder.name, files=files, n=len(idx),
                                               commands=commands,
                                               source=ref["data"].get("source")) + Selection.readme(left_out))
    builder.notes += [f"left out {f}: {why}" for f, why in left_out.items()]
    builder.meta.update(artifacts=formats, left_out=left_out, reference={"file": "reference.npz", "n": int(len(idx))},
                        source_sha256=source_sha, verified=verify.get("reference", {}).get("runtime"))
