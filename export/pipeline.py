"""`edgeport export`: every requested format, atomically, with a manifest a device can trust.

Each format is built in a staging directory inside the model directory, described (inputs and
outputs read back from the written file, which proves it loads) and hashed file by file; then
:func:`edgeport.export.commit.commit` renames it into place and records its manifest entry, so an
interruption leaves the previous artifact or the new one, never neither. A failing format keeps
its previous good files and entry; the others go on. One export per model at a time (a lock).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeport.errors import ExportError, ModelFileError
from edgeport.export.commit import model_lock, commit
from edgeport.export.config import ExportConfig
from edgeport.export.context import ExportContext, cause_line
from edgeport.export.describe import describe, versions
from edgeport.native_log import LOG_NAME, NativeLog
from edgeport.export.registry import INFO, Format, dependency_chain
from edgeport.runtimes import keras_legacy
from edgeport.export.source import (installed_already, load_source, refuse_other_sources, resolve_source,
                                     source_record, stage_source)
from edgeport.files import human_size, sha256_file, size_bytes, write_text_atomic
from edgeport.manifest import hash_files, load_manifest, recover, save_manifest
from edgeport.lazy import resolve
from edgeport.names import LABELS_FILE

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class FormatResult:
    format: str
    status: str  # ok | failed
    file: str | None = None
    bytes: int | None = None
    seconds: float = 0.0
    error: str | None = None

    def line(self) -> str:
        head = f"{self.format:<15} {self.status:<6} {human_size(self.bytes):>10} {self.seconds:>6.1f} s"
        return f"{head}  {self.file}" if self.status == "ok" else f"{head}  {self.error}"


@dataclass
class ExportReport:
    model: str
    model_dir: Path
    results: list[FormatResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == "ok" for r in self.results)

    @property
    def failed(self) -> list[str]:
        return [r.format for r in self.results if r.status != "ok"]

    def render(self) -> str:
        lines = [*self.warnings, f"{self.model}: {len(self.results) - len(self.failed)}/{len(self.results)} "
                 f"formats ok in {self.seconds:.1f} s -> {self.model_dir}"]
        lines += ["  " + r.line() for r in self.results]
        if self.failed:
            lines.append(f"failed: {', '.join(self.failed)}" + (f" (converter log: {self.log})" if self.log else ""))
        return "\n".join(lines)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _export_one(ctx: ExportContext, fmt: Format, manifest: dict[str, Any], t0: float) -> dict[str, Any]:
    info = INFO[fmt.value]
    staging = Path(tempfile.mkdtemp(prefix=f".{fmt.value}.", suffix=".tmp", dir=ctx.model_dir))
    try:
        dest = staging / info.file
        extra = resolve(info.export)(ctx, dest)
        ctx.produced[fmt] = dest
        names = [info.file, *info.extra_files]
        entry = {**extra, "format": fmt.value, "file": info.file, "sha256": sha256_file(dest),
                 "bytes": size_bytes(dest), "files": hash_files(staging, names), "precision": info.precision.value,
                 **describe(ctx, info, dest), "labels_file": LABELS_FILE if ctx.labels else None,
                 "source_sha256": ctx.source_sha256, "versions": versions(),
                 "seconds": round(time.perf_counter() - t0, 3), "status": "ok",
                 "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if not ctx.source_installed:  # the new source model lands with the first new artifact, atomically
            names += stage_source(ctx.source, staging)
        commit(ctx.model_dir, manifest, fmt.value, entry, staging, names, top=_top_level(ctx))
        ctx.source_installed = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ctx.produced[fmt] = ctx.model_dir / info.file
    return entry


def _top_level(ctx: ExportContext) -> dict[str, Any]:
    """The manifest's top-level fields this export sets (committed with each artifact)."""
    top = dict(model=ctx.name, dataset=ctx.spec.dataset if ctx.spec is not None else None,
               task=ctx.spec.task if ctx.spec is not None else None,
               labels=ctx.labels, labels_file=LABELS_FILE if ctx.labels else None,
               input_contract=ctx.contract.to_dict(), input_names=[name for name, _ in ctx.inputs],
               output_names=list(ctx.output_shapes), source=ctx.source_info)
    if ctx.calibration is not None:
        top["calibration"] = dict(ctx.calibration)
    return top


def _open_manifest(model_dir: Path, warnings: list[str]) -> dict[str, Any]:
    try:
        manifest = load_manifest(model_dir, missing_ok=True)
    except ModelFileError as exc:
        warnings.append(f"warning: {exc}; its artifacts are no longer listed: starting a new manifest")
        return {"artifacts": {}}
    warnings += [f"note: {line}" for line in recover(model_dir, manifest)]
    for fmt in INFO:  # staging folders an export killed mid-format left (no other export runs: the lock)
        for stale in model_dir.glob(f".{fmt}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    return manifest


def export_model(model: str, config: ExportConfig | None = None, *, out: Path = Path("artifacts"),
                 isolate: bool = True, data_npz: str | None = None, **options: Any) -> ExportReport:
    """Export a model to every deployable format, with a manifest a device can trust; or convert a bare
    .tflite to ONNX (tf2onnx) or a bare .onnx to TFLite (onnx2tf) and prove it against the original.

    model: a course model name or model directory under --out, a .keras or .h5 file, a SavedModel directory, or a bare .tflite/.onnx to convert
    config: how to export (an ExportConfig); or its fields as keyword arguments (``formats=[...]``, ...)
    out: artifacts directory; a file or SavedModel exports to OUT/<its stem>/
    isolate: run the conversions in a child process, so that a crash inside TensorFlow or a converter
        fails the export with an error instead of killing this process
    data_npz: a bare artifact's proof inputs (.npz: x_test, optional y_test); default: seeded random inputs, said
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line
    start = time.perf_counter()
    if config is None:
        config = ExportConfig(**options)
    elif options:
        raise TypeError(f"export_model: options in config or as keywords, not both ({', '.join(options)})")
    from edgeport.export import cross

    if (row := cross.converter_for(model)) is not None:
        return cross.export_artifact(model, row, config, out=Path(out), data_npz=data_npz, isolate=isolate)
    if data_npz is not None:
        raise ExportError(f"--data-npz {data_npz}: for converting a bare .tflite/.onnx; {model} is proved by "
                          "`edgeport verify`, which takes --data-npz too")
    source = resolve_source(model, Path(out))
    if isolate:
        return _isolated({"model": model, "out": str(out), "config": config.to_dict()}, source)
    report = ExportReport(source.name, source.model_dir)
    log = NativeLog()
    try:
        with log.capture(f"load {source.path}"):
            keras_model = load_source(source, allow_unsafe=config.allow_unsafe)
        with model_lock(source.model_dir):
            refuse_other_sources(source)
            ctx = ExportContext(source, config, warn=report.warnings.append, model=keras_model)
            try:
                ctx.source_info = source_record(source)
                if left_out := ctx.source_info.get("keras2_args_left_out"):  # stated, never silent
                    report.warnings.append(f"note: {keras_legacy.note(source.path.name, left_out)}")
                ctx.source_sha256 = ctx.source_info["sha256"]
                ctx.source_installed = installed_already(source, ctx.source_sha256)
                _run_formats(ctx, config, report, log, Path(out))
            finally:
                ctx.close()
        if report.failed:
            report.log = log.keep(source.model_dir / LOG_NAME)
    finally:
        log.close()
    report.seconds = time.perf_counter() - start
    return report


def _isolated(args: dict[str, Any], source) -> ExportReport:
    from edgeport.children import RUNNER_FAILURES, raise_for, run_job

    result = run_job({"kind": "export", **args}, timeout=6 * 3600, stream=True)
    if not result.get("ok"):
        if result.get("error_type") in RUNNER_FAILURES:  # crashed, hung, out of memory, did not start
            raise ExportError(f"{source.path}: the export process died ({result['error']}); a crash inside "
                              "TensorFlow or a converter on this model. Artifacts already exported and their "
                              "manifest entries are intact; the next export undoes the interrupted one")
        raise_for(result, str(source.path))
    report = ExportReport(result["model"], Path(result["model_dir"]), warnings=result["warnings"],
                          seconds=result["seconds"], log=Path(result["log"]) if result.get("log") else None)
    report.results = [FormatResult(**r) for r in result["results"]]
    return report


def export_job(job: dict[str, Any]) -> dict[str, Any]:
    """Worker side of an isolated export (``edgeport.worker`` kind ``export``)."""
    from dataclasses import asdict

    report = export_model(job["model"], ExportConfig.from_dict(job["config"]), out=Path(job["out"]), isolate=False)
    return {"model": report.model, "model_dir": str(report.model_dir), "warnings": report.warnings,
            "seconds": report.seconds, "log": str(report.log) if report.log else None,
            "results": [asdict(r) for r in report.results]}


def _run_formats(ctx: ExportContext, config: ExportConfig, report: ExportReport, log: NativeLog,
                 out: Path) -> None:
    manifest = _open_manifest(ctx.model_dir, report.warnings)
    if ctx.labels and not (ctx.model_dir / LABELS_FILE).exists():
        write_text_atomic(ctx.model_dir / LABELS_FILE, "\n".join(ctx.labels) + "\n")
    said = 0
    for fmt in config.formats:
        t0 = time.perf_counter()
        result = FormatResult(fmt.value, "failed", INFO[fmt.value].file)
        blocked = next((d for d in dependency_chain(fmt) if d in ctx.failed), None)
        try:
            if blocked is not None:
                raise ExportError(f"not attempted: needs {blocked}, which failed: {ctx.failed[blocked]}")
            with log.capture(fmt.value):
                entry = _export_one(ctx, fmt, manifest, t0)
            result.status, result.bytes = "ok", entry["bytes"]
        except Exception as exc:  # noqa: BLE001 - one format's failure is reported, the others go on
            ctx.failed.setdefault(fmt, cause_line(exc))
            result.error = f"{fmt.value}: {cause_line(exc)}"
        result.seconds = time.perf_counter() - t0
        for warning in report.warnings[said:]:
            _say(warning)
        said = len(report.warnings)
        report.results.append(result)
        _say(result.line())
    stale = sorted(f for f, e in manifest["artifacts"].items() if e.get("source_sha256") != ctx.source_sha256)
    if stale:
        report.warnings.append(
            f"warning: {', '.join(stale)} in {ctx.model_dir} came from an earlier version of the model and will "
            f"be refused by verify; re-export them: edgeport export {ctx.name} --out {out} --formats {' '.join(stale)}")
        _say(report.warnings[-1])
    save_manifest(ctx.model_dir, manifest)
