"""`edgeport export FILE.tflite` / `FILE.onnx`: a bare engine artifact into the other engine's format, proved.

One row per source kind says what it becomes and which module converts it (``"module:attr"``, resolved
lazily). The conversion runs in a child process (a converter crash fails the export, not this process),
its chatter goes to a log; the result lands atomically in ``OUT/<stem>/`` beside a copy of the original
(the manifest's source, with its sha256) and is then proved by ``edgeport verify`` with the original as
the reference, on the user's ``--data-npz`` or on seeded random inputs (said and kept). An op the
converter cannot take is one error line naming it; nothing is left half-written.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeport import model_files
from edgeport.errors import ExportError
from edgeport.export.commit import commit, model_lock
from edgeport.export.pipeline import ExportReport, FormatResult
from edgeport.native_log import LOG_NAME

#: The ExportConfig fields a conversion reads; any other one given is refused (never silently ignored).
OPTIONS = ("opset", "seed", "input_shape", "allow_unsafe")
TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Cross:
    """A bare artifact of kind ``source`` converted to kind ``target`` by ``converter`` (``convert``:
    ``"module:attr"`` of a worker job ``(job) -> dict``)."""

    source: str
    target: str
    converter: str
    convert: str
    file: str  # the converted artifact's name in the model directory

    @property
    def name(self) -> str:
        """Its manifest key (not an export format: nothing exports it from a model)."""
        return f"{self.target}_from_{self.source}"

    @property
    def source_file(self) -> str:
        """The name the original is kept under beside the converted artifact."""
        return "source" + _suffix(self.source)


def _suffix(kind: str) -> str:
    return next(s for s, k in model_files.SUFFIXES.items() if k == kind)


_P = "edgeport.export."
ROWS = (Cross("tflite", "onnx", "tf2onnx", _P + "from_tflite:convert_job", "model.onnx"),
        Cross("onnx", "tflite", "onnx2tf", _P + "from_onnx:convert_job", "model.tflite"))
BY_SOURCE = {r.source: r for r in ROWS}


def converter_for(model: str) -> Cross | None:
    """The row that converts MODEL, when MODEL is an engine artifact file of a kind one converts."""
    path = Path(model)
    if not path.is_file() or path.suffix.lower() not in model_files.SUFFIXES:
        return None
    return BY_SOURCE.get(model_files.SUFFIXES[path.suffix.lower()])


@dataclass
class CrossReport(ExportReport):
    """The export report of a conversion, with the proof that followed it (a VerifyReport)."""

    proof: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return super().ok and self.proof is not None and bool(self.proof.ok)

    def render(self, wide: bool = False) -> str:
        head = super().render()
        if self.proof is None:
            return head
        proof = self.proof.render(wide=True) if wide else self.proof.render()
        verdict = "proved" if self.proof.ok else "NOT proved: it fails its gate against the original"
        return "\n".join([head, *self.notes, proof, f"{self.model_dir / self.results[0].file}: {verdict}"])


def _check_options(config) -> None:
    from edgeport.export.config import ExportConfig

    default = ExportConfig()
    given = [f.name for f in fields(config) if f.name not in OPTIONS and getattr(config, f.name) != getattr(
        default, f.name)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise ExportError(f"{flags}: for exporting a model; a bare artifact is converted to the other engine's "
                          f"format (options: {', '.join('--' + n.replace('_', '-') for n in OPTIONS)}, --data-npz)")


def _model_dir(path: Path, row: Cross, out: Path) -> Path:
    """OUT/<stem>/, or the directory whose kept original this is."""
    if path.name == row.source_file and path.resolve().parent.parent == out.resolve():
        return path.parent
    return out / path.stem


def export_artifact(model: str, row: Cross, config, *, out: Path, data_npz: str | None = None,
                    isolate: bool = True) -> CrossReport:
    """Convert the bare artifact MODEL with ``row``, land it with its manifest entry, then prove it."""
    from edgeport.export.cross_data import layout_notes, static_shapes
    from edgeport.files import sha256_file
    from edgeport.manifest import load_manifest, recover

    start = time.perf_counter()
    _check_options(config)
    path, out = Path(model), Path(out)
    model_dir = _model_dir(path, row, out)
    report = CrossReport(model_dir.name, model_dir)
    shapes, outputs = static_shapes(path, config.input_shape, data_npz)
    with model_lock(model_dir):
        manifest = load_manifest(model_dir, missing_ok=True)
        report.warnings += [f"note: {line}" for line in recover(model_dir, manifest)]
        for stale in model_dir.glob(f".{row.name}.*.tmp"):  # a conversion killed mid-way
            shutil.rmtree(stale, ignore_errors=True)
        kept = (manifest.get("source") or {}).get("file")
        if kept and kept != row.source_file:
            raise ExportError(f"{model_dir}: already holds the artifacts of {kept}; convert {path} into another "
                              "--out directory")
        t0 = time.perf_counter()
        entry, npz, said = _convert_and_land(path, row, config, shapes, model_dir, manifest, sha256_file(path),
                                             isolate, data_npz)
        report.results.append(FormatResult(row.name, "ok", row.file, entry["bytes"], time.perf_counter() - t0))
    report.notes.append(f"converted by {entry['converter']} from {path} (sha256 {entry['source_sha256'][:12]}...); "
                        f"kept as {model_dir / row.source_file}")
    report.notes += [f"note: {n}" for n in layout_notes(outputs, entry["outputs"])]
    report.notes.append(f"proof data: {said}")
    from edgeport.benchmarks.verify.command import verify_model

    artifact, original = model_dir / row.file, model_dir / row.source_file
    report.proof = verify_model(str(artifact), reference=str(original), data_npz=str(npz), out=out)
    report.notes.append(f"prove it again: edgeport verify {artifact} --reference {original} --data-npz {npz}")
    report.seconds = time.perf_counter() - start
    return report


def _convert_and_land(path: Path, row: Cross, config, shapes: dict, model_dir: Path, manifest: dict,
                      source_sha: str, isolate: bool, data_npz: str | None) -> tuple[dict[str, Any], Path, str]:
    """(the landed entry, the proof's .npz, how it was made): the artifact, the kept original and the
    proof inputs made here land in one commit; the manifest's ``data_file`` names those inputs, so a
    later ``edgeport verify MODEL_DIR`` proves on them again."""
    from edgeport.export.cross_data import PROOF_FILE, proof_data
    from edgeport.export.describe import versions
    from edgeport.files import sha256_file, size_bytes
    from edgeport.manifest import hash_files
    from edgeport.runtimes import runtimes_for

    t0 = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=f".{row.name}.", suffix=".tmp", dir=model_dir))
    try:
        dest = staging / row.file
        job = {"kind": "call", "target": row.convert, "src": str(path), "dest": str(dest),
               "log": str(staging / LOG_NAME), "opset": config.opset,
               "shapes": {k: list(v) for k, v in shapes.items()}}
        result = _run(job, isolate)
        if not result.get("ok"):
            log = staging / LOG_NAME
            kept = None
            if log.is_file():
                kept = model_dir / LOG_NAME
                shutil.copyfile(log, kept)
            raise ExportError(_failure_line(path, row, result) + (f"; converter log: {kept}" if kept else ""))
        shutil.copyfile(path, staging / row.source_file)
        npz, said = proof_data(staging, shapes, data_npz, config.seed)
        names = [row.file, row.source_file] + ([] if data_npz else [PROOF_FILE])
        entry = {"format": row.name, "file": row.file, "sha256": sha256_file(dest), "bytes": size_bytes(dest),
                 "files": hash_files(staging, [row.file]), "precision": result["precision"],
                 "inputs": result["inputs"], "outputs": result["outputs"], "source_sha256": source_sha,
                 "versions": {**versions(), **result["versions"]}, "converter": result["converter"],
                 "reason": result["precision_read"], "seconds": round(time.perf_counter() - t0, 3),
                 "status": "ok", "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        source = {"file": row.source_file, "kind": row.source, "sha256": source_sha, "bytes": size_bytes(path),
                  "reference_runtime": runtimes_for(path)[0]}
        top = {"model": model_dir.name, "source": source, "input_names": [i["name"] for i in result["inputs"]],
               "output_names": [o["name"] for o in result["outputs"]], "data_file": None if data_npz else PROOF_FILE}
        commit(model_dir, manifest, row.name, entry, staging, names, top=top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry, (Path(data_npz) if data_npz else model_dir / PROOF_FILE), said.replace(str(staging), str(model_dir))


def _run(job: dict[str, Any], isolate: bool) -> dict[str, Any]:
    if isolate:
        from edgeport.children import run_job

        return run_job(job, timeout=TIMEOUT_S, label=f"the {job['target'].split(':')[0]} conversion")
    from edgeport.worker import run

    return run(job, catch=Exception)


def _failure_line(path: Path, row: Cross, result: dict[str, Any]) -> str:
    """The child's own one line (it names the op), or what the runner saw (a crash, a timeout)."""
    from edgeport.children import message_of

    message = message_of(result)
    if result.get("error_type") == "ExportError":
        return message
    return f"{path}: {row.converter} failed converting it ({message})"
