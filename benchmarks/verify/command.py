"""`edgeport verify`: every artifact x every runtime that loads it, against its reference.

Integrity first (every file of every artifact against the manifest's sha256, and against the model
it came from: a stale artifact is refused), then the reference (computed once in a child process
and cached: float32 outputs, float32 noise, the fp16 reference), then each artifact in a child
process of its own on the whole test set, every output compared by name and gated by the gate of
its precision class. Nothing is skipped: a figure a gate needs that was not measured fails the row.
Results go to ``MODEL_DIR/verify.json`` (``ARTIFACT.verify.json`` for a bare artifact).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeport.benchmarks.device_info import usable_cores
from edgeport.benchmarks.progress import Steps
from edgeport.benchmarks.verify import outputs as outs
from edgeport.benchmarks.verify import plan as plans
from edgeport.benchmarks.verify.gates import GateFailure, GateTable, load_gates
from edgeport.benchmarks.verify import kinds as output_kinds
from edgeport.benchmarks.verify.kinds import parse_overrides
from edgeport.benchmarks.verify.jobs import artifact_outputs, save_inputs
from edgeport.benchmarks.verify.reference import Reference, reference_for
from edgeport.benchmarks.verify.result import NO_LABELS, Result, VerifyReport, summarize
from edgeport.errors import EdgeportError, IntegrityError
from edgeport.export import registry
from edgeport.export.registry import Precision
from edgeport.files import size_bytes, write_json_atomic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
VERIFY_FILE = plans.VERIFY_FILE
OutputMismatchError = outs.OutputMismatchError


def verify_model(model: str | None = None, *, bundle: str | None = None, out: Path = Path("artifacts"),
                 reference: str | None = None,
                 data_npz: str | None = None, data_dir: str | None = None, formats: list[str] | None = None,
                 runtimes: list[str] | None = None, limit: int | None = None, gates: str | None = None,
                 threads: int | None = None, timeout: float = 900.0, debug_int8: bool = True,
                 debug_all: bool = False, output_kind: list[str] | None = None, on: str | None = None,
                 normalize: str | None = None) -> VerifyReport:
    """Prove every artifact of a model (or one bare artifact) against its reference.

    model: model name or directory (its manifest lists the artifacts), or a bare .tflite/.onnx/SavedModel
    bundle: a bundle (dist/MODEL-rpi.tar.gz or its folder) to prove on this device instead of a model
    out: artifacts directory the model name is looked up in
    reference: what a bare artifact is held to: a .keras/.h5 model, a SavedModel or another artifact
    data_npz: a .npz with x_test (and y_test) to verify on instead of the model's dataset
    data_dir: data directory of the model's dataset (idx files, digits, image folder)
    formats: only these formats (default: every artifact in the manifest)
    runtimes: only these runtimes (default: every runtime that can load each artifact)
    limit: only the first N test inputs (default: the whole test set)
    gates: gate overrides: a JSON file, or KEY.FIELD=VALUE pairs, e.g. quantized.min_agreement=0.97
    threads: engine threads per artifact (default: every usable core)
    timeout: seconds one artifact may run before it is called hung
    debug_int8: run TFLite's quantization debugger on a failing int8 artifact
    debug_all: run the quantization debugger on the int8 artifact even when it passes
    output_kind: NAME=KIND per output ({kinds}) instead of the detected kind; kept in the manifest for later runs
    on: prove the model's rpi bundle on these devices (NAME[,NAME...]: edgeport device list), rows beside this machine's
    normalize: SCALE,MEAN,STD: feed the test inputs as (x * SCALE - MEAN) / STD (per channel: a:b:c); recorded
    """
    if on is not None:  # the devices' rows beside the last verify here: edgeport.devices.verify_on
        from edgeport.devices.verify_on import verify_on

        return verify_on(model, on, out=Path(out), data_dir=data_dir, formats=formats, runtimes=runtimes,
                         gates=gates, threads=threads, timeout=timeout, output_kind=output_kind, unsupported={
                             "--bundle": bundle, "--limit": limit, "--reference": reference, "--data-npz": data_npz,
                             "--normalize": normalize, "--debug-all": debug_all})
    table = load_gates(gates)
    kinds = parse_overrides(output_kind)
    threads = threads or usable_cores()
    if bundle is not None:
        given = [flag for flag, value in (("--limit", limit), ("--normalize", normalize), ("--reference", reference),
                                          ("--data-npz", data_npz), ("--data-dir", data_dir)) if value]
        if given:  # a bundle is proved on its own reference set, as it was stored; nothing is dropped silently
            raise EdgeportError(f"{bundle}: {', '.join(given)} cannot apply to --bundle: a bundle is proved on the "
                                "reference set it carries, fed as stored")
        return _verify_bundle(Path(bundle), table, formats=formats, runtimes=runtimes, threads=threads,
                              timeout=timeout, kinds=kinds)
    if model is None:
        raise EdgeportError("name a model, an artifact or --bundle FILE")
    if plans.is_bare(model, Path(out)):
        plan = plans.bare(Path(model), reference=reference, data_npz=data_npz, limit=limit)
    else:
        if reference:
            raise EdgeportError(f"--reference is for a bare artifact; {model} has a manifest: its source "
                                "model is the reference")
        plan = plans.from_model_dir(plans.model_dir_of(model, Path(out)), data_dir=data_dir, data_npz=data_npz,
                                    limit=limit, formats=formats)
    plans.preprocess(plan, normalize)
    return run_plan(plan, table, runtimes=runtimes, threads=threads, timeout=timeout,
                    debug=(debug_int8, debug_all), kinds=kinds, merge=bool(formats) and plan.model_dir is not None)



verify_model.__doc__ = verify_model.__doc__.replace("{kinds}", ", ".join(output_kinds.names()))  # the registry's


def _verify_bundle(source: Path, table: GateTable, *, formats: list[str] | None, runtimes: list[str] | None,
                   threads: int, timeout: float, kinds: dict[str, str]) -> VerifyReport:
    from edgeport.benchmarks.verify.bundle import plan_bundle, results_path
    from edgeport.bundle import open_bundle

    with open_bundle(source) as opened:
        plan, reference = plan_bundle(opened, results_path(source, VERIFY_FILE), formats)
        return run_plan(plan, table, runtimes=runtimes, threads=threads, timeout=timeout, debug=(False, False),
                        reference=reference, kinds=kinds)


def run_plan(plan: plans.Plan, table: GateTable, *, runtimes: list[str] | None, threads: int, timeout: float,
             debug: tuple[bool, bool] = (True, False), reference: Reference | None = None,
             kinds: dict[str, str] | None = None, merge: bool = False) -> VerifyReport:
    """Prove ``plan``'s artifacts; ``reference`` given (a bundle's stored outputs) skips computing it;
    ``kinds`` ({output: kind}, ``--output-kind``) overrides the detected output kinds; ``merge`` (some
    formats of a model directory): the rows go into its verify.json beside the other formats' rows."""
    from edgeport.runtimes import runtimes_for

    rows, skipped = [], []
    for item in plan.artifacts:
        names = ["-"] if item.error is not None else _runtimes(item, runtimes_for)
        rows += [(item, rt) for rt in names if runtimes is None or rt in runtimes or rt == "-"]
        skipped += [f"{item.format} on {rt}" for rt in names if not (runtimes is None or rt in runtimes or rt == "-")]
    data = {**plan.test.describe(), **({"preprocessing": plan.preprocessing} if plan.preprocessing else {})}
    report = VerifyReport(plan.name, plan.model_dir or plan.dest.parent, data, {}, table.to_dict(),
                          notes=list(plan.notes), dest=plan.dest)
    running = {item.format for item, _ in rows}
    for item in [i for i in plan.by_bytes if registry.info(i.format).needs.value not in running]:
        source = registry.info(item.format).needs.value
        skipped.append(f"{item.format} (its bytes are the {source} model, which does not run here)")
        plan.by_bytes.remove(item)
    if skipped:
        report.notes.append(f"not run (--runtimes {' '.join(runtimes or [])}): {', '.join(skipped)}")
    if plan.test.y is None:
        report.notes.append(NO_LABELS)
    with tempfile.TemporaryDirectory(prefix="edgeport-verify-") as tmp, \
            Steps(len(rows) + 1 + len(plan.by_bytes), f"verify {plan.name}") as steps:
        inputs = save_inputs(plan.test.x, Path(tmp) / "inputs.npz")
        steps.step(f"reference on {len(plan.test)} inputs")
        if reference is None:
            fp16 = any(i.precision is Precision.FP16 or i.precision is None for i in plan.artifacts)
            reference = reference_for(plan.reference_source, plan.reference_runtime, inputs, key=plan.reference_key,
                                      cache=plan.cache, fp16=fp16, saved_model=plan.saved_model, threads=threads,
                                      timeout=timeout)
        steps.advance()
        found, kind_notes = outs.resolve_kinds(plan, reference, kinds or {})
        report.reference = {**reference.describe(), "figures": outs.reference_figures(reference, plan, found)}
        report.notes += [f"reference: {n}" for n in reference.notes] + kind_notes
        for item, runtime in rows:
            steps.step(f"{item.format} on {runtime}")
            report.results.append(_check(item, runtime, reference, plan, table, inputs, Path(tmp), threads, timeout,
                                         found))
            steps.advance()
        for item in plan.by_bytes:
            steps.step(f"{item.format} bytes")
            report.results.append(_check_by_bytes(item, plan, report.results))
            steps.advance()
        _debug(plan, report, inputs, *debug, timeout=timeout)
    from edgeport.benchmarks.verify.budget import error_budget

    report.notes += error_budget(report.results)
    _say_slow(report)
    if not report.results:
        report.notes.append(f"{plan.dest.parent} lists no artifacts: nothing is proved")
    if merge:
        from edgeport.benchmarks.verify.result import write_merged

        write_merged(plan.model_dir, plan.dest, report)
    else:
        write_json_atomic(plan.dest, report.to_dict())
    return report


def _say_slow(report: VerifyReport) -> None:
    """Formats that ran far below their float sibling in this verify (a slow kernel path here)."""
    from edgeport.benchmarks import slow

    rows = [(r.format, r.runtime, r.timing.get("images_per_s")) for r in report.results if r.timing]
    found = slow.slow_paths(rows)
    report.slow_paths = slow.to_records(found)
    report.notes += [f"slow: {line}" for line in slow.render(found)]


def _runtimes(item: plans.Planned, runtimes_for) -> list[str]:
    """The runtimes that load an artifact: its registry row's; a bare file's by what the file is."""
    if registry.known(item.format):
        return list(registry.info(item.format).runtimes) or ["-"]
    try:
        return runtimes_for(item.path)
    except EdgeportError:
        return ["-"]


def _precision(item: plans.Planned, timing: dict[str, Any], result: Result) -> Precision:
    """The registry's class for a listed format; a bare artifact's is read from its tensors (said)."""
    if item.precision is not None:
        return item.precision
    result.notes.append(f"precision class {timing.get('precision_hint')} read from the file: "
                        f"{timing.get('precision_read')}")
    return Precision(timing.get("precision_hint") or "float32")


def _same_engine(item: plans.Planned, precision: Precision, runtime: str, engine: str, reference: Reference) -> bool:
    """Whether a bare artifact runs the reference's own arithmetic: the reference is an engine
    artifact of the same precision class, run by the same engine (and version) on the same runtime."""
    return (item.precision is None and reference.precision == precision.value and reference.runtime == runtime
            and bool(engine) and reference.engine == engine)


def _gate(item: plans.Planned, precision: Precision, runtime: str, reference: Reference, table: GateTable,
          result: Result):
    """(gate, the class it is of): the registry's for a listed format, the class read from a bare file's
    tensors otherwise; but a bare artifact against an engine artifact of its own class on its own engine
    (a quantized file against a quantized file) has no rounding between them: the float32 gate (said)."""
    if item.precision is not None:
        return table.for_format(item.format), precision
    same = (precision is not Precision.FLOAT32 and reference.precision == precision.value
            and reference.runtime == runtime)
    if not same:
        return table.by_precision[precision], precision
    result.notes.append(f"gate float32, not {precision.value}: the reference is a {precision.value} artifact too "
                        f"({reference.precision_read}) on the same engine ({runtime}), so no {precision.value} "
                        "rounding lies between them; only the float noise of the engine may")
    return table.by_precision[Precision.FLOAT32], Precision.FLOAT32


def _check(item: plans.Planned, runtime: str, reference: Reference, plan: plans.Plan, table: GateTable,
           inputs: Path, tmp: Path, threads: int, timeout: float, kinds: dict[str, str]) -> Result:
    result = Result(item.format, runtime, item.path.name, item.precision.value if item.precision else "?",
                    size_bytes=_size(item), sha256=item.entry.get("sha256"))
    started = time.perf_counter()
    try:
        if item.error is not None:
            raise item.error
        if runtime == "-":
            raise EdgeportError(f"{item.path}: no runtime can load this artifact")
        work = Path(tempfile.mkdtemp(dir=tmp))
        outputs, timing = artifact_outputs(item.path, runtime, inputs, work, threads=threads, timeout=timeout)
        result.engine = timing.get("engine", "")
        result.notes += timing.get("notes", [])
        for note in timing.get("notes", []):
            print(f"verify {plan.name}: {item.format}: {note}", flush=True)
        result.timing = {k: timing.get(k) for k in ("load_s", "predict_s", "images_per_s", "threads", "batch")}
        precision = _precision(item, timing, result)
        result.precision = precision.value
        same_engine = _same_engine(item, precision, runtime, result.engine, reference)
        gate, precision = _gate(item, precision, runtime, reference, table, result)
        result.gate = gate.to_dict()
        names = outs.match(reference, outputs, f"{item.path.name} on {runtime}")
        first = next(iter(reference.outputs))
        for ref_name, art_name in names.items():
            f = outs.figures(ref_name, outputs[art_name], reference, precision, plan, gate, ref_name == first,
                             kinds[ref_name], same_engine=same_engine)
            result.outputs[ref_name] = f
            for failure in gate.failures(f, artifact=item.format, runtime=runtime,
                                         output=ref_name if len(names) > 1 else "",
                                         labelled=plan.test.y is not None):
                result.fail(failure)
        if constant := outs.constant_reference(reference):
            result.fail(GateFailure(item.format, runtime, "reference_spread", 0.0,
                                    f"> 0 ({constant}: the comparison measures nothing)"))
        result.figures = summarize(result.outputs)
        fixed = {f.get("tolerance_basis") for f in result.outputs.values()
                 if str(f.get("tolerance_basis", "")).startswith("fixed relative bound")}
        result.notes += [f"{item.format}: tolerance from a {basis}" for basis in sorted(fixed)]
        if same_engine:
            result.notes.append(f"tolerance: a few float32 ulps of each output's scale ({outs.SAME_ENGINE}, "
                                f"{reference.engine}): bit-identical outputs expected")
    except IntegrityError as exc:
        result.fail(exc, "refused")
    except ValueError as exc:  # a shape that differs from the reference's
        result.fail(OutputMismatchError(f"{item.path.name} on {runtime}: {exc}"))
    except EdgeportError as exc:
        result.fail(exc, "error")
    result.seconds = time.perf_counter() - started
    return result


def _check_by_bytes(item: plans.Planned, plan: plans.Plan, results: list[Result]) -> Result:
    """An artifact proved by its bytes passes when the bytes it embeds equal the artifact it is made
    from (its registry row's ``needs``), which must pass its own gates."""
    from edgeport.lazy import resolve

    info = registry.info(item.format)
    source = info.needs.value
    result = Result(item.format, f"bytes == {source}", item.path.name, info.precision.value,
                    size_bytes=_size(item))
    try:
        if item.error is not None:
            raise item.error
        made_from = next((i for i in plan.artifacts if i.format == source), None)
        if made_from is None or made_from.error is not None:
            raise IntegrityError(f"{item.path.name}: no intact {source} artifact to compare its bytes with"
                                 + (f" ({made_from.error})" if made_from is not None else ""))
        embedded, expected = resolve(info.embedded)(item.path), made_from.path.read_bytes()
        result.figures = {"embedded_bytes": len(embedded), "equals_source": embedded == expected}
        if embedded != expected:
            result.fail(GateFailure(item.format, result.runtime, "embedded_bytes", f"{len(embedded)} bytes, different",
                                    f"== {made_from.path.name} ({len(expected)} bytes)"))
        proved = [r for r in results if r.format == source]
        if not proved:
            result.fail(GateFailure(item.format, result.runtime, f"{source} status", None, "== pass"))
        elif any(r.status != "pass" for r in proved):
            result.fail(GateFailure(item.format, result.runtime, f"{source} status", proved[0].status, "== pass"))
        else:
            result.figures = {**proved[0].figures, **result.figures}
    except IntegrityError as exc:
        result.fail(exc, "refused")
    except EdgeportError as exc:
        result.fail(exc, "error")
    return result


def _size(item: plans.Planned) -> int | None:
    """The bytes that matter on a device (the registry's deploy size; a bare file's own size)."""
    if not item.path.exists():
        return None
    if registry.known(item.format):
        try:
            return registry.deploy_size(item.format, item.path)
        except EdgeportError:
            pass  # an unreadable artifact fails its row with the reason; its size is then the file's
    return size_bytes(item.path)


def _debug(plan: plans.Plan, report: VerifyReport, inputs: Path, debug_int8: bool, debug_all: bool, *,
           timeout: float) -> None:
    from edgeport.children import run_job

    for r in report.results:
        debugger = registry.info(r.format).debugger if registry.known(r.format) else None
        if debugger is None or r.quant_debug is not None or not ((r.status == "fail" and debug_int8) or debug_all):
            continue
        entry = next((i.entry for i in plan.artifacts if i.format == r.format), {})
        record = entry.get("calibration") or plan.manifest.get("calibration")
        if plan.saved_model is None:
            r.quant_debug = {"layers": [], "error": "no intact saved_model artifact to re-quantize"}
            continue
        print(f"verify {plan.name}: running the quantization debugger on {r.file} ...", flush=True)
        from edgeport.export.tflite_batch1 import fix_job  # an RNN exported at batch 1: debugged at batch 1

        result = run_job({"kind": "call", "target": debugger, "savedmodel": str(plan.saved_model),
                          "calibration": record, "inputs": str(inputs),
                          **fix_job(plan.model_dir, plan.manifest, entry)}, timeout=timeout)
        r.quant_debug = result if result.get("ok") else {
            "layers": [], "error": f"quantization debugger failed: {result.get('error')}"}
        if result.get("calibration"):
            report.notes.append(f"quantization debugger calibrated on {result['calibration']}")
