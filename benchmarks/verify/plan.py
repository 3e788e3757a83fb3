"""What one `edgeport verify` run proves: which artifacts, against which reference, on which data.

Two ways in:

- a model directory (``artifacts/MODEL`` with ``manifest.json``): every artifact the manifest
  lists, each first checked file by file against its sha256 and against the model it came from
  (a stale artifact is refused, naming the command that re-exports it), against the source model
  beside it (``model.keras``, ``model.h5`` or ``source_saved_model/``), on the model's test set;
- a bare artifact (``x.tflite``, ``x.onnx``, a SavedModel, a ``.keras``) with ``--reference`` (a
  Keras file, a SavedModel or another artifact) and ``--data-npz`` inputs: no manifest needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.training.testset import UNKNOWN_TASK, TestSet, load_testset, npz_testset
from edgeport.errors import EdgeportError, IntegrityError, ModelFileError
from edgeport.export import registry
from edgeport.export.registry import INFO, Precision
from edgeport.files import sha256_file
from edgeport.manifest import check_fresh, check_integrity, effective_entries, find_model_dir, load_manifest
from edgeport import model_files, names

VERIFY_FILE = names.VERIFY_FILE


@dataclass
class Planned:
    """One artifact to prove (``error``: refused before any engine saw it)."""

    format: str
    path: Path
    precision: Precision | None  # None: read from the artifact (a bare file)
    entry: dict[str, Any] = field(default_factory=dict)
    error: EdgeportError | None = None


@dataclass
class Plan:
    name: str
    dest: Path  # where verify.json goes
    test: TestSet
    reference_source: Path
    reference_runtime: str
    reference_key: dict[str, Any]
    cache: Path | None  # the reference cache (a model directory's)
    saved_model: Path | None  # the SavedModel the fp16 reference is lowered from
    artifacts: list[Planned] = field(default_factory=list)  # proved by running them
    by_bytes: list[Planned] = field(default_factory=list)  # proved by the bytes they embed
    manifest: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)  # what the inputs became before they were fed


def is_bare(model: str, out: Path) -> bool:
    """Whether MODEL names an artifact file (or SavedModel) rather than a model directory."""
    p = Path(model)
    if p.is_file() and model_files.is_model_file(p):
        kind = model_files.model_file_kind(p)
        return not (p.parent / names.MANIFEST_FILE).is_file() or kind not in model_files.SOURCE_KINDS
    return model_files.is_saved_model(p)


def bare_label(artifact: Path) -> str:
    """The format column of a bare artifact: it has no registry row, so its file kind."""
    return f"bare {artifact.suffix.lstrip('.') or 'SavedModel'}"


def model_dir_of(model: str, out: Path) -> Path:
    return find_model_dir(model, out)


def _reexport(manifest: dict[str, Any], model_dir: Path, fmts: list[str]) -> str:
    return f"edgeport export {model_dir} --formats {' '.join(fmts)}"


def from_model_dir(model_dir: Path, *, data_dir: str | None, data_npz: str | None, limit: int | None,
                   formats: list[str] | None = None) -> Plan:
    from edgeport.runtimes import runtimes_for

    manifest = load_manifest(model_dir)
    source = manifest.get("source") or {}
    if not source.get("file"):
        raise ModelFileError(f"{model_dir / 'manifest.json'}: records no source model; re-export the model")
    source_path = model_dir / source["file"]
    if not source_path.exists():
        raise IntegrityError(f"{source_path}: the model the artifacts were exported from is missing")
    source_sha = sha256_file(source_path)
    test = load_testset(model_dir, manifest, data_dir=data_dir, data_npz=data_npz, limit=limit)
    entries = effective_entries(model_dir, manifest)
    saved = next((entries[f] for f in registry.of_family("savedmodel") if f in entries), None)
    saved_model = None
    if saved is not None and saved.get("source_sha256") == source_sha:
        try:
            saved_model = check_integrity(model_dir, saved)
        except IntegrityError:
            saved_model = None
    if formats:
        unknown = sorted(set(formats) - set(entries))
        if unknown:
            raise EdgeportError(f"{model_dir}: no {', '.join(unknown)} artifact in the manifest "
                                f"(it lists {', '.join(entries) or 'none'})")
        entries = {k: v for k, v in entries.items() if k in formats}
    converted = _converted()
    if converted & set(entries) and test.y is None and not test.labels and not manifest.get("task"):
        from dataclasses import replace

        test = replace(test, task=UNKNOWN_TASK)  # as for a bare artifact: nothing says its outputs are classes
    plan = Plan(name=manifest.get("model") or model_dir.name, dest=model_dir / VERIFY_FILE, test=test,
                reference_source=source_path,
                reference_runtime=source.get("reference_runtime") or runtimes_for(source_path)[0],
                reference_key={"model_sha256": source_sha, "data_sha256": test.fingerprint(), "n": len(test)},
                cache=model_dir / names.REFERENCE_FILE, saved_model=saved_model, manifest=manifest,
                model_dir=model_dir)
    for fmt, entry in entries.items():
        info = INFO.get(fmt)
        planned = Planned(fmt, model_dir / entry["file"], info.precision if info else None, entry)
        try:
            if info is None and fmt not in converted:
                raise ModelFileError(f"{model_dir / 'manifest.json'}: unknown format {fmt!r}")
            check_integrity(model_dir, entry)
            if info is None:  # converted from a bare artifact by `export FILE`: its precision read from the file
                if entry.get("source_sha256") != source_sha:
                    raise IntegrityError(f"{planned.path}: converted from another {source['file']} than the one "
                                         "here; convert it again")
            else:
                check_fresh(manifest, fmt, entry, source_sha, _reexport(manifest, model_dir, [fmt]))
        except EdgeportError as exc:
            planned.error = exc
        if info is not None and not registry.runs(fmt):
            plan.by_bytes.append(planned)
        else:
            plan.artifacts.append(planned)
    return plan


def _converted() -> frozenset[str]:
    """The manifest keys of artifacts converted from a bare artifact (export.cross's rows)."""
    from edgeport.export.cross import ROWS

    return frozenset(row.name for row in ROWS)


def bare(artifact: Path, *, reference: str | None, data_npz: str | None, limit: int | None,
         task: str | None = None) -> Plan:
    if not reference:
        raise EdgeportError(f"{artifact}: no manifest here: name what to verify it against with --reference "
                            "(a .keras/.h5/.hdf5 model, a SavedModel or another artifact) and the inputs with "
                            "--data-npz")
    if not data_npz:
        raise EdgeportError(f"{artifact}: --data-npz FILE is needed (x_test, optional y_test) to verify a bare "
                            "artifact")
    from edgeport.runtimes import guard, runtimes_for
    from edgeport.runtimes.artifact_info import artifact_info

    ref = Path(reference)
    ref_runtime = runtimes_for(ref)[0]
    labels = tuple(artifact_info(artifact).labels or artifact_info(ref).labels or ())
    test = npz_testset(data_npz, labels=labels, task=task, limit=limit)
    unknown = task is None and test.y is None and not labels
    if unknown:  # nothing says these are classes: a rank-2 float output is values, not a classifier's scores
        from dataclasses import replace

        test = replace(test, task=UNKNOWN_TASK)
    ref_sha = sha256_file(ref)
    dest = artifact.with_name(artifact.name + ".verify.json")
    plan = Plan(name=artifact.name, dest=dest, test=test, reference_source=ref, reference_runtime=ref_runtime,
                reference_key={"model_sha256": ref_sha, "data_sha256": test.fingerprint(), "n": len(test)},
                cache=None, saved_model=ref if model_files.is_saved_model(guard.model_root(ref)) else None)
    plan.artifacts.append(Planned(bare_label(artifact), artifact, None))
    plan.notes.append(f"bare artifact: no manifest; its precision class is read from the file; reference "
                      f"{ref} ({ref_runtime})")
    if unknown:
        plan.notes.append(f"task unknown: {data_npz} has no y_test and neither file names class labels, so no output "
                          "is read as a classifier's scores or one sigmoid (--output-kind NAME=classifier says so)")
    return plan


def preprocess(plan: Plan, normalize: str | None) -> None:
    """State what the test inputs are fed as (the model's image contract: raw 0-255 pixels; a bare
    artifact's .npz: as given); ``--normalize SCALE,MEAN,STD`` normalises them first, for every artifact
    and the reference alike (the reference is keyed by the data it ran on)."""
    from dataclasses import replace

    from edgeport.runtimes import preprocess as pre
    from edgeport.types import InputContract

    if normalize:
        x, plan.preprocessing = pre.normalize_feed(plan.test.x, normalize, plan.test.source)
        plan.test = replace(plan.test, x=x)
        plan.reference_key = {**plan.reference_key, "data_sha256": plan.test.fingerprint()}
    elif (contract := plan.manifest.get("input_contract")) and contract.get("kind") == "image":
        plan.preprocessing = pre.stated(InputContract.from_dict(contract), "the model's input contract")
    else:
        plan.preprocessing = {"from": plan.test.source, "text": f"inputs fed as given in {plan.test.source}"}
    plan.notes.append(plan.preprocessing["text"])
