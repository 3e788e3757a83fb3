"""`edgeport export`: every requested format, atomically, with a manifest a device can trust.

Each format is written to a temporary path, described (inputs/outputs read back from the written
file, which proves it loads), hashed, then renamed into place; the manifest is saved atomically
after every format. A failing format keeps its previous good file and entry, the others go on.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from edgeport.errors import ExportError, ModelFileError
from edgeport.export.config import ExportConfig
from edgeport.export.context import ExportContext, cause_line
from edgeport.export.describe import describe, versions
from edgeport.export.registry import INFO, Format, dependency_chain
from edgeport.export.source import install_source, load_keras, resolve_source
from edgeport.files import atomic_path, human_size, sha256_file, size_bytes, write_text_atomic
from edgeport.manifest import load_manifest, save_manifest
from edgeport.registry import resolve

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
LOG_NAME = "export.log"


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


class _NativeLog:
    """Send the converters' native stdout/stderr (TF, absl, tf2onnx) to a log file, not the terminal."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="edgeport-log-")
        self.path = Path(self._dir.name) / LOG_NAME

    @contextlib.contextmanager
    def capture(self, title: str) -> Iterator[None]:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = [os.dup(1), os.dup(2)]
        with open(self.path, "ab") as fh:
            fh.write(f"\n===== {title} =====\n".encode())
            fh.flush()
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)

    def keep(self, dest: Path) -> Path:
        with atomic_path(dest) as tmp:
            shutil.copyfile(self.path, tmp)
        return dest

    def close(self) -> None:
        self._dir.cleanup()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _export_one(ctx: ExportContext, fmt: Format, manifest: dict[str, Any], t0: float) -> dict[str, Any]:
    info = INFO[fmt.value]
    final = ctx.model_dir / info.file
    with atomic_path(final, directory=info.directory) as tmp:
        extra = resolve(info.target)(ctx, tmp)
        ctx.produced[fmt] = tmp
        io = describe(ctx, info, tmp)
        entry = {"format": fmt.value, "file": info.file, "sha256": sha256_file(tmp), "bytes": size_bytes(tmp),
                 **io, "labels_file": "labels.txt" if ctx.labels else None,
                 "source_sha256": ctx.source_sha256, "versions": versions(), **extra}
        # Never let the manifest name a sha256 that the file on disk does not have: drop the old
        # entry before the renames, add the new one after them.
        if manifest["artifacts"].pop(fmt.value, None) is not None:
            save_manifest(ctx.model_dir, manifest)
        for name in info.extra_files:
            os.replace(tmp.parent / name, ctx.model_dir / name)
    ctx.produced[fmt] = final
    entry.update(seconds=round(time.perf_counter() - t0, 3), status="ok",
                 exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return entry


def _top_level(ctx: ExportContext, manifest: dict[str, Any]) -> None:
    manifest.update(model=ctx.name, dataset=ctx.spec.dataset if ctx.spec is not None else None,
                    labels=ctx.labels, labels_file="labels.txt" if ctx.labels else None,
                    input_contract=ctx.contract.to_dict(), input_names=[name for name, _ in ctx.inputs],
                    source={"file": ctx.source.target.name, "sha256": ctx.source_sha256,
                            "bytes": ctx.source.target.stat().st_size})
    if ctx.calibration is not None:
        manifest["calibration"] = dict(ctx.calibration)


def _open_manifest(model_dir: Path, warnings: list[str]) -> dict[str, Any]:
    try:
        manifest = load_manifest(model_dir, missing_ok=True)
    except ModelFileError as exc:
        warnings.append(f"warning: {exc}; starting a new manifest")
        return {"artifacts": {}}
    manifest.setdefault("artifacts", {})
    return manifest


def export_model(model: str, *, formats: list[str] = ["all"], out: Path = Path("artifacts"),  # noqa: B006
                 opset: int = 17, calibration_samples: int = 200, seed: int = 0, int8_io: str = "uint8",
                 calibration_data: str | None = None, data_dir: str | None = None,
                 allow_unsafe: bool = False) -> ExportReport:
    """Export a trained model to every deployable format, with a manifest a device can trust.

    model: a course model name (OUT/MODEL/model.keras), a model directory, or a .keras file
    formats: `all` or format names, space or comma separated (see `edgeport formats`)
    out: artifacts directory; a .keras file exports to OUT/<file stem>/
    opset: ONNX opset for tf2onnx (13 or newer)
    calibration_samples: representative samples for int8/int16x8/onnx_int8 calibration
    seed: seed that draws the calibration samples
    int8_io: input/output type of tflite_int8: uint8, int8 or float32
    calibration_data: a .npy (or .npz per input name) of raw inputs for models without a known dataset
    data_dir: data directory for the course model's dataset (idx files, digits, image folder)
    allow_unsafe: load a .keras file that needs unsafe deserialisation (only for files you trust)
    """
    start = time.perf_counter()
    config = ExportConfig(formats=tuple(formats), opset=opset, calibration_samples=calibration_samples,
                          seed=seed, int8_io=int8_io, calibration_data=calibration_data,
                          data_dir=data_dir, allow_unsafe=allow_unsafe)
    source = resolve_source(model, Path(out))
    report = ExportReport(source.name, source.model_dir)
    log = _NativeLog()
    try:
        with log.capture(f"load {source.keras_file}"):
            keras_model = load_keras(source.keras_file, allow_unsafe=config.allow_unsafe)
        target = install_source(source)
        ctx = ExportContext(source, config, warn=report.warnings.append, model=keras_model)
        try:
            ctx.source_sha256 = sha256_file(target)
            _run_formats(ctx, config, report, log)
        finally:
            ctx.close()
        if report.failed:
            report.log = log.keep(source.model_dir / LOG_NAME)
    finally:
        log.close()
    report.seconds = time.perf_counter() - start
    return report


def _run_formats(ctx: ExportContext, config: ExportConfig, report: ExportReport, log: _NativeLog) -> None:
    manifest = _open_manifest(ctx.model_dir, report.warnings)
    if ctx.labels and not (ctx.model_dir / "labels.txt").exists():
        write_text_atomic(ctx.model_dir / "labels.txt", "\n".join(ctx.labels) + "\n")
    said = len(report.warnings)
    for warning in report.warnings:
        _say(warning)
    for fmt in config.formats:
        t0 = time.perf_counter()
        result = FormatResult(fmt.value, "failed", INFO[fmt.value].file)
        blocked = next((d for d in dependency_chain(fmt) if d in ctx.failed), None)
        try:
            if blocked is not None:
                raise ExportError(f"not attempted: needs {blocked}, which failed: {ctx.failed[blocked]}")
            with log.capture(fmt.value):
                entry = _export_one(ctx, fmt, manifest, t0)
            manifest["artifacts"][fmt.value] = entry
            _top_level(ctx, manifest)
            save_manifest(ctx.model_dir, manifest)
            result.status, result.bytes = "ok", entry["bytes"]
        except Exception as exc:  # one format's failure is reported, the others go on
            ctx.failed.setdefault(fmt, cause_line(exc))
            result.error = f"{fmt.value}: {cause_line(exc)}"
        result.seconds = time.perf_counter() - t0
        for warning in report.warnings[said:]:
            _say(warning)
        said = len(report.warnings)
        report.results.append(result)
        _say(result.line())
