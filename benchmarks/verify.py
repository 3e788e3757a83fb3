"""`edgeport verify MODEL`: every artifact x every runtime that loads it, against the Keras outputs.

Integrity first (a file whose sha256 differs from the manifest is refused), then the whole real
test set through each runtime, then the gates of the artifact's precision class. Nothing is
skipped: quantized artifacts are gated on accuracy and agreement, and ``c_array`` is proved by
its embedded bytes being exactly the int8 TFLite model. Results go to ``OUT/MODEL/verify.json``.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.benchmarks import parity
from edgeport.benchmarks.gates import PRECISION_OF_FORMAT, GateFailure, GateTable, load_gates
from edgeport.benchmarks.progress import Steps
from edgeport.benchmarks.tables import fmt_num, fmt_pct, fmt_points, fmt_size, text_table
from edgeport.benchmarks.testdata import TestSet, load_testset
from edgeport.errors import EdgeportError, IntegrityError
from edgeport.files import size_bytes, write_json_atomic
from edgeport.manifest import check_integrity, load_manifest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VERIFY_FILE = "verify.json"


@dataclass
class Result:
    """One artifact on one runtime: its figures, its gate, and what failed."""

    format: str
    runtime: str
    file: str
    precision: str
    status: str = "pass"  # pass | fail | refused | error
    size_bytes: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    failures: list[EdgeportError] = field(default_factory=list)
    seconds: float = 0.0
    quant_debug: dict[str, Any] | None = None

    def fail(self, error: EdgeportError, status: str = "fail") -> None:
        self.failures.append(error)
        self.status = status if self.status == "pass" else self.status

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "runtime": self.runtime, "file": self.file,
                "precision": self.precision, "status": self.status, "size_bytes": self.size_bytes,
                "figures": self.figures, "gate": self.gate, "seconds": round(self.seconds, 3),
                "failures": [_error_dict(e) for e in self.failures], "quant_debug": self.quant_debug}


def _error_dict(e: EdgeportError) -> dict[str, Any]:
    return e.to_dict() if isinstance(e, GateFailure) else {"type": type(e).__name__, "message": str(e)}


@dataclass
class VerifyReport:
    model: str
    model_dir: Path
    data: dict[str, Any]
    keras: dict[str, Any]
    gates: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == "pass" for r in self.results)

    @property
    def failures(self) -> list[EdgeportError]:
        return [e for r in self.results for e in r.failures]

    def raise_for_failures(self) -> None:
        """Raise the first typed failure (GateError, IntegrityError, LoadError ...), if any."""
        if self.failures:
            raise self.failures[0]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "data": self.data, "keras": self.keras,
                "gates": self.gates, "results": [r.to_dict() for r in self.results], "notes": self.notes}

    def render(self) -> str:
        from edgeport.benchmarks.quant_debug import render_table

        rows, styles = [], []
        for r in self.results:
            f = r.figures
            rows.append([r.format, r.runtime, fmt_size(r.size_bytes), fmt_pct(f.get("accuracy")),
                         fmt_points(f.get("accuracy_delta_points")), fmt_pct(f.get("agreement")),
                         fmt_num(f.get("max_abs_diff"), ".2e"), fmt_num(f.get("mean_abs_diff"), ".2e"),
                         r.status.upper()])
            styles.append(None if r.status == "pass" else "bold red")
        acc = self.keras.get("accuracy")
        title = (f"verify {self.model}: {self.data.get('n')} test inputs from {self.data.get('source')}"
                 + (f", keras accuracy {acc:.2%}" if acc is not None else ""))
        out = [text_table(title, ["format", "runtime", "size", "accuracy", "Δ pts", "agreement",
                                  "max|diff|", "mean|diff|", "gate"], rows, styles)]
        out += [f"FAILED {type(e).__name__}: {e}" for e in self.failures]
        out += [render_table(r.quant_debug) for r in self.results if r.quant_debug]
        out += [f"note: {n}" for n in self.notes]
        out.append(f"{self.model}: {'all artifacts pass their gates' if self.ok else 'VERIFY FAILED'}"
                   f" -> {self.model_dir / VERIFY_FILE}")
        return "\n".join(out)


def embedded_c_bytes(path: Path) -> bytes:
    """The bytes of the first ``unsigned char NAME[] = {0x.., ...}`` array in a C source file."""
    text = path.read_text(errors="replace")
    m = re.search(r"\[\]\s*=\s*\{(.*?)\}", text, flags=re.S)
    if not m:
        raise IntegrityError(f"{path}: no byte array found")
    return bytes(int(tok, 16) for tok in re.findall(r"0x([0-9a-fA-F]{1,2})", m.group(1)))


def _verify_c_array(model_dir: Path, manifest: dict[str, Any], result: Result, results: list[Result]) -> None:
    """c_array passes when its bytes equal the int8 TFLite model, and fails with it when that model
    fails its gates in this run (when ``--runtimes`` left it out, the byte check stands alone)."""
    int8 = manifest["artifacts"].get("tflite_int8")
    if int8 is None:
        result.fail(IntegrityError(f"{result.file}: no tflite_int8 artifact in the manifest to compare with"))
        return
    embedded = embedded_c_bytes(model_dir / result.file)
    reference = (model_dir / int8["file"]).read_bytes()
    result.figures = {"embedded_bytes": len(embedded), "equals_tflite_int8": embedded == reference}
    if embedded != reference:
        result.fail(GateFailure("c_array", "bytes", "embedded_bytes", f"{len(embedded)} bytes, different",
                                f"== {int8['file']} ({len(reference)} bytes)"))
        return
    proved = [r for r in results if r.format == "tflite_int8"]
    result.runtime = "bytes == tflite_int8"
    if any(r.status != "pass" for r in proved):
        result.fail(GateFailure("c_array", result.runtime, "tflite_int8 status", proved[0].status, "== pass"))
    elif proved:
        result.figures = {**proved[0].figures, **result.figures}


def _run_artifact(path: Path, runtime: str, ref, test: TestSet, result: Result, table: GateTable) -> None:
    from edgeport.runtimes import load

    session = load(path, runtime=runtime)
    out = parity.predict_batched(session, test.x)
    result.figures = parity.figures(ref, out, test)
    gate = table.for_format(result.format)
    result.gate = gate.to_dict()
    for failure in gate.failures(result.figures, artifact=result.format, runtime=runtime):
        result.fail(failure)


def _debug(model_dir: Path, manifest: dict[str, Any], test: TestSet, data_dir: str | None) -> dict[str, Any]:
    from edgeport.benchmarks import quant_debug

    saved = manifest["artifacts"].get("saved_model")
    try:
        if saved is None:
            raise EdgeportError("no saved_model artifact to re-quantize")
        cal, where = quant_debug.calibration_inputs(manifest, test.x, data_dir=data_dir)
        result = quant_debug.debug_int8(check_integrity(model_dir, saved), cal, test.x)
        result["calibration"] = where
        return result
    except Exception as exc:  # noqa: BLE001 - the table is a diagnosis; its absence must not hide the failure
        return {"layers": [], "error": f"quantization debugger failed: {type(exc).__name__}: {exc}"}


def verify_model(model: str, *, out: Path = Path("artifacts"), runtimes: list[str] | None = None,
                 limit: int | None = None, data_dir: str | None = None, data_npz: str | None = None,
                 gates: str | None = None, debug_int8: bool = True,
                 debug_all: bool = False) -> VerifyReport:
    """Prove every artifact of a model against its Keras outputs on the real test set.

    model: model name (its directory under --out holds manifest.json and model.keras)
    out: artifacts directory; results go to OUT/MODEL/verify.json
    runtimes: only these runtimes (default: every runtime that can load each artifact)
    limit: only the first N test inputs (default: the full test set)
    data_dir: data directory of the model's dataset (idx files, digits, image folder)
    data_npz: a .npz with x_test and y_test to verify on instead of the model's dataset
    gates: gate overrides: a JSON file, or KEY.FIELD=VALUE pairs, e.g. fp16.max_abs_diff=2e-3
    debug_int8: run TFLite's quantization debugger on a failing int8 artifact
    debug_all: run the quantization debugger on the int8 artifact even when it passes
    """
    model_dir = Path(out) / model
    manifest = load_manifest(model_dir)
    table = load_gates(gates)
    test = load_testset(model_dir, manifest, data_dir=data_dir, data_npz=data_npz, limit=limit)
    entries = manifest.get("artifacts", {})
    plan, skipped = [], []
    for fmt, entry in entries.items():
        if fmt == "c_array":  # proved by its bytes, after the int8 model it holds
            continue
        for rt in _runtimes_for(model_dir / entry["file"]):
            if runtimes is None or rt in runtimes or rt == "-":
                plan.append((fmt, entry, rt))
            else:
                skipped.append(f"{fmt} on {rt}")
    report = VerifyReport(model, model_dir, test.describe(), {}, table.to_dict())
    if skipped:
        report.notes.append(f"not run (--runtimes {' '.join(runtimes or [])}): {', '.join(skipped)}")
    with Steps(len(plan) + 1 + ("c_array" in entries), f"verify {model}") as steps:
        steps.step(f"keras reference on {len(test)} inputs")
        ref, cached = parity.reference_outputs(model_dir, manifest, test)
        steps.advance()
        report.keras = {k: v for k, v in parity.figures(ref, ref, test).items()
                        if k in ("accuracy", "keras_mae", "n")}
        report.keras["cached"] = cached
        for fmt, entry, rt in plan:
            steps.step(f"{fmt} on {rt}")
            report.results.append(_check(model_dir, fmt, entry, rt, ref, test, table))
            steps.advance()
        if "c_array" in entries:
            steps.step("c_array bytes")
            r = _new_result(model_dir, "c_array", entries["c_array"], "bytes")
            try:
                check_integrity(model_dir, entries["c_array"])
                _verify_c_array(model_dir, manifest, r, report.results)
            except EdgeportError as exc:
                r.fail(exc, "refused" if isinstance(exc, IntegrityError) else "error")
            report.results.append(r)
            steps.advance()
    for r in report.results:
        failing = r.status == "fail" and debug_int8
        if r.format == "tflite_int8" and r.quant_debug is None and (failing or debug_all):
            print(f"verify {model}: running the quantization debugger on {r.file} ...", flush=True)
            r.quant_debug = _debug(model_dir, manifest, test, data_dir)
    if not report.results:
        report.notes.append(f"{model_dir / 'manifest.json'} lists no artifacts: nothing is proved")
    write_json_atomic(model_dir / VERIFY_FILE, report.to_dict())
    return report


def _runtimes_for(path: Path) -> list[str]:
    """Every runtime that can load ``path``; ``["-"]`` when none can (the row then fails)."""
    from edgeport.runtimes import runtimes_for

    try:
        return runtimes_for(path) if path.exists() else ["-"]
    except EdgeportError:
        return ["-"]


def _new_result(model_dir: Path, fmt: str, entry: dict[str, Any], runtime: str) -> Result:
    precision = PRECISION_OF_FORMAT.get(fmt)
    path = model_dir / entry["file"]
    return Result(fmt, runtime, entry["file"], precision.value if precision else "unknown",
                  size_bytes=size_bytes(path) if path.exists() else None)


def _check(model_dir: Path, fmt: str, entry: dict[str, Any], runtime: str, ref, test: TestSet,
           table: GateTable) -> Result:
    result = _new_result(model_dir, fmt, entry, runtime)
    started = time.perf_counter()
    try:
        path = check_integrity(model_dir, entry)
        if runtime == "-":
            raise EdgeportError(f"{path}: no runtime can load this artifact")
        _run_artifact(path, runtime, ref, test, result, table)
    except IntegrityError as exc:
        result.fail(exc, "refused")
    except Exception as exc:  # noqa: BLE001 - an engine failure on one artifact is that row's failure
        result.fail(exc if isinstance(exc, EdgeportError)
                    else EdgeportError(f"{result.file} on {runtime}: {type(exc).__name__}: {exc}"), "error")
    result.seconds = time.perf_counter() - started
    return result
