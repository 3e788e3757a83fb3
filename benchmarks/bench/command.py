"""`edgeport bench MODEL`: latency, throughput, size, memory and efficiency of every artifact x runtime.

Every figure comes from a fresh child process (``worker.py``): load time, first inference, then
a warmed-up, time-bounded series at batch 1 (p50/p90/p99/mean/std/min) and at batch 32
(images/s), at 1 thread and at all cores, and the child's peak RSS. The model's MACs per image
and this machine's float32 and int8 matrix-product peaks, measured in the same run, turn throughput
into GMAC/s and an efficiency against the hardware (integer formats against the int8 peak of their
runtime). A format far below its float sibling in the same run is said to be on a slow kernel path
(``edgeport.benchmarks.slow``). Results go to ``OUT/MODEL/bench.json``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgeport.benchmarks import slow
from edgeport.benchmarks.bench.result import BenchReport, bench_file
from edgeport.children import run_job
from edgeport.benchmarks.device_info import device_info, usable_cores
from edgeport.benchmarks.progress import Steps
from edgeport.benchmarks.bench import inputs as bench_inputs
from edgeport.errors import EdgeportError, UnknownNameError
from edgeport.export import registry
from edgeport.files import size_bytes, write_json_atomic
from edgeport.manifest import check_integrity, effective_entries, load_manifest
from edgeport.runtimes.registry import capabilities, runtime_of, variant_label

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
KERAS_REFERENCE = "keras (compiled function, reference)"
KERAS_PREDICT = "keras predict (per-call framework overhead)"
NO_GPU = "no GPU on this machine: skipped GPU benchmarks"
BATCH_SIZES = (1, 32)


def _plan(model_dir: Path, manifest: dict[str, Any], formats: list[str] | None, device: str,
          report: BenchReport) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(format, runtime, path, load options) per row; tampered or unrunnable artifacts are noted."""
    entries = effective_entries(model_dir, manifest)
    source_sha = (manifest.get("source") or {}).get("sha256")
    if formats:
        unknown = [f for f in formats if f not in entries and f != "keras"]
        if unknown:
            raise UnknownNameError("exported format", unknown[0], [*entries, "keras"])
    rows = []
    for fmt, entry in entries.items():
        if formats and fmt not in formats:
            continue
        if registry.known(fmt) and not registry.runs(fmt):
            row = registry.info(fmt)
            made_from = row.needs.value if row.needs else "the artifact it embeds"
            report.notes.append(f"{fmt}: {row.summary}: proved by the bytes it embeds, not run; its speed is "
                                f"the {made_from} row's")
            continue
        try:
            path = check_integrity(model_dir, entry)
        except EdgeportError as exc:
            report.rows.append({"format": fmt, "runtime": "-", "error": str(exc)})
            continue
        if entry.get("source_sha256") != source_sha:
            report.notes.append(f"{fmt}: stale: exported from an earlier version of the model (verify refuses it)")
        rows += runtime_rows(fmt, path, device, report)
    return rows


def runtime_rows(fmt: str, path: Path, device: str, report: BenchReport) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(format, runtime label, path, load options) on every runtime that runs ``path`` on ``device``
    (and each GPU variant a runtime declares); a runtime without that device is noted, not run."""
    from edgeport.runtimes import runtimes_for

    rows = []
    for rt in runtimes_for(path):
        can = capabilities(rt)
        if device not in can.devices:
            report.notes.append(f"{fmt}: {can.cpu_only}")
            continue
        rows.append((fmt, rt, str(path), {}))
        if device == "gpu":
            rows += [(fmt, variant_label(rt, v), str(path), dict(opts)) for v, opts in can.gpu_variants.items()]
    return rows


def _row(fmt: str, runtime: str, label: str, threads: int | None, path: str, result: dict[str, Any]) -> dict[str, Any]:
    size = registry.deploy_size(fmt, Path(path)) if registry.known(fmt) else size_bytes(path)
    row = {"format": fmt, "runtime": runtime, "label": label, "threads": threads, "file": Path(path).name,
           "size_bytes": size}
    if not result.get("ok"):
        # no GPU (or provider) for this engine here: a fact about the machine, not a failure
        key = "skipped" if result.get("error_type") == "DeviceUnavailable" else "error"
        return {**row, key: result.get("error", "unknown failure")}
    row.update({k: v for k, v in result.items() if k not in ("ok",)})
    row["rss_delta_bytes"] = row["peak_rss_bytes"] - row["baseline_rss_bytes"]
    failed = [f"{k}: {v['error']}" for k, v in row.items() if k.startswith("batch") and isinstance(v, dict)
              and "error" in v]
    if failed:  # a series that could not be measured fails its row (and the command)
        row["error"] = "; ".join(failed)
    for note in row.get("notes") or []:
        print(f"bench: {fmt} on {label}: {note}", flush=True)
    return row


def _integer(fmt: str) -> bool:
    """Whether the format computes in integers (held to the int8 peak); unknown names are not."""
    return registry.known(fmt) and registry.info(fmt).full_integer


def _peak_for(row: dict[str, Any], peak: dict[str, Any], int8_peak: dict[str, Any]) -> tuple[float, str] | None:
    """(GMAC/s, what it is) of the peak a row is held to: the int8 matmul peak of its own runtime for
    an integer format (the best engine's when its runtime has none), the float32 peak otherwise; with
    up to the row's threads (a contended VM can be slower with more)."""
    def fits(t: str) -> bool:
        return row["threads"] is None or int(t) <= row["threads"]

    if _integer(row["format"]):
        rt = runtime_of(row["runtime"])
        own = [(p["by_runtime"][rt]["gmac_s"], f"int8 {rt} matmul peak") for t, p in int8_peak.items()
               if fits(t) and p.get("gmac_s") and "gmac_s" in p.get("by_runtime", {}).get(rt, {})]
        best = [(p["gmac_s"], f"int8 {p['source']} matmul peak (none measured on {rt})")
                for t, p in int8_peak.items() if fits(t) and p.get("gmac_s")]
        if own or best:
            return max(own or best)
        return None
    usable = [(p["gmac_s"], "float32 matmul peak") for t, p in peak.items() if fits(t) and p.get("gmac_s")]
    return max(usable, default=None)


def _efficiency(row: dict[str, Any], macs: int | None, peak: dict[str, Any],
                int8_peak: dict[str, Any] | None = None) -> None:
    if not macs or "batch1" not in row:
        return
    ref = _peak_for(row, peak, int8_peak or {})
    b1, b32 = row.get("batch1", {}), row.get("batch32", {})
    if b1.get("p50_us"):
        row["gmac_s_batch1"] = macs / (b1["p50_us"] / 1e6) / 1e9
    if b32.get("images_per_s"):
        row["gmac_s_batch32"] = macs * b32["images_per_s"] / 1e9
        if ref is not None:
            row["efficiency"], row["efficiency_peak"] = row["gmac_s_batch32"] / ref[0], ref[1]
        elif _integer(row["format"]):
            row["efficiency_peak"] = "none: no int8 matmul peak was measured (see int8_peak)"


def bench_model(model: str | None = None, *, bundle: str | None = None, out: Path = Path("artifacts"),
                device: str = "cpu", seconds: float = 2.0, threads: list[int] | None = None,
                formats: list[str] | None = None, keras_predict: bool = True, data_dir: str | None = None,
                data_npz: str | None = None, peak_n: int = 2048, input_shape: list[str] | None = None,
                normalize: str | None = None, on: str | None = None) -> BenchReport:
    """Benchmark every artifact x runtime of a model, each measurement in a fresh process.

    model: model name or directory (its manifest lists the artifacts), or a bare .tflite/.onnx file
    bundle: a bundle (dist/MODEL-rpi.tar.gz or its folder) to benchmark on this device; writes a report.json `edgeport report merge` joins
    out: artifacts directory; results go to OUT/MODEL/bench.json (bench_gpu.json for --device gpu), or ARTIFACT.bench.json
    device: cpu, or gpu (ONNX Runtime CUDA/TensorRT, TensorFlow GPU); without a GPU it says so, skips and exits 0
    seconds: length of each time-bounded series (batch 1 and batch 32), after warm-up
    threads: thread counts to measure (default: 1 and all cores)
    formats: only these formats (and `keras` for the Keras rows)
    keras_predict: include Keras model.predict, labelled as per-call framework overhead
    data_dir: data directory of the model's dataset (idx files, digits, image folder)
    data_npz: a .npz to feed instead of the model's dataset: x_test (one input), or one array per input name (several inputs, integer, scalar and state inputs)
    peak_n: matrix size of the float32 and int8 matmuls that measure this machine's peaks
    input_shape: NAME=1x3x320x320 for an input with symbolic dimensions when no --data-npz gives them; several allowed
    normalize: SCALE,MEAN,STD: feed the inputs as (x * SCALE - MEAN) / STD (per channel: a:b:c); recorded
    on: measure the model's rpi bundle on these devices (NAME[,NAME...]: edgeport device list); results to OUT/MODEL/devices/NAME.bench.json
    """  # noqa: E501 - edgeport.cli reads each parameter's help from its one line
    if device not in ("cpu", "gpu"):
        raise EdgeportError(f"--device must be cpu or gpu, got {device!r}")
    if seconds <= 0:
        raise EdgeportError(f"--seconds must be positive, got {seconds}")
    if on is not None:  # the devices' rows beside this machine's last bench: edgeport.devices.bench_on
        from edgeport.devices.bench_on import bench_on

        return bench_on(model, on, out=Path(out), seconds=seconds, threads=threads, formats=formats, peak_n=peak_n,
                        unsupported={"--bundle": bundle, "--device gpu": device != "cpu", "--data-dir": data_dir,
                                     "--data-npz": data_npz, "--input-shape": input_shape, "--normalize": normalize})
    if bundle is not None:
        from edgeport.benchmarks.bench.bundle import bench_bundle

        return bench_bundle(Path(bundle), device=device, seconds=seconds, threads=threads, formats=formats,
                            peak_n=peak_n)
    if model is None:
        raise EdgeportError("name a model, an artifact or --bundle FILE")
    from edgeport.benchmarks.verify.plan import is_bare, model_dir_of

    bare = is_bare(model, Path(out))
    if bare:
        artifact = Path(model)
        model_dir, manifest = artifact.parent, {}
        dest = artifact.with_name(f"{artifact.name}.{bench_file(Path(), device).name}")
    else:
        model_dir = model_dir_of(model, Path(out))
        manifest, dest = load_manifest(model_dir), bench_file(model_dir, device)
    report = BenchReport(artifact.name if bare else model_dir.name, model_dir, device, device_info(), seconds)
    counts = thread_counts(threads, device)
    if device == "gpu" and not report.device["gpus"]:
        return skip_gpu(report, dest)
    plan = _bare_plan(artifact, device, report) if bare else _plan(model_dir, manifest, formats, device, report)
    source = manifest.get("source") or {}
    keras_path = str(model_dir / source.get("file", "model.keras"))
    reference = None if bare else _reference_runtime(source, Path(keras_path))
    has_keras = reference is not None and capabilities(reference).bench_reference
    if not bare and not has_keras:
        report.notes.append(f"no Keras rows and no MAC count: the source is {source.get('file', 'missing')} "
                            f"({source.get('kind', '?')}), not a Keras model")
    want_keras = (not formats or "keras" in formats) and has_keras
    jobs = [(fmt, rt, rt, path, opts) for fmt, rt, path, opts in plan]
    if want_keras:
        jobs.insert(0, ("keras", reference, KERAS_REFERENCE, keras_path, {}))
        if keras_predict and device == "cpu":
            jobs.insert(1, ("keras", "keras.predict", KERAS_PREDICT, keras_path, {}))
    with tempfile.TemporaryDirectory(prefix="edgeport-bench-") as tmp:
        inputs = str(Path(tmp) / "inputs.npz")
        if bare:
            report.inputs, report.input_shapes, said = bench_inputs.bare(artifact, Path(inputs), data_npz, input_shape,
                                                                         max(BATCH_SIZES))
            report.notes += said
            for line in [report.inputs, *said]:
                print(f"bench: {line}", flush=True)
        else:
            report.inputs = bench_inputs.managed(model_dir, manifest, Path(inputs), data_dir, data_npz,
                                                 max(BATCH_SIZES))
        fed = bench_inputs.preprocess(Path(inputs), normalize, manifest, data_npz or report.inputs)
        report.inputs += f"; {fed['text']}"
        report.notes.append(fed["text"])
        print(f"bench: {fed['text']}", flush=True)
        measure(report, jobs, counts, inputs, peak_n=peak_n, keras_path=keras_path if has_keras else None)
    write_json_atomic(dest, report.to_dict())
    return report


def _reference_runtime(source: dict[str, Any], path: Path) -> str | None:
    """The runtime that runs the model's source (the manifest's, else its file's default); None: no file."""
    from edgeport.runtimes import runtimes_for

    if not path.exists():
        return None
    return source.get("reference_runtime") or runtimes_for(path)[0]


def thread_counts(threads: list[int] | None, device: str) -> list[int | None]:
    counts = sorted(set(threads or [1, usable_cores()])) if device == "cpu" else [None]
    if any(t is not None and t < 1 for t in counts):
        raise EdgeportError(f"--threads must be positive, got {counts}")
    return counts


def skip_gpu(report: BenchReport, dest: Path) -> BenchReport:
    report.notes.append(NO_GPU)
    report.skipped = NO_GPU
    print(NO_GPU)
    write_json_atomic(dest, report.to_dict())
    return report


def measure(report: BenchReport, jobs: list[tuple[str, str, str, str, dict[str, Any]]], counts: list[int | None],
            inputs: str | None, *, peak_n: int, keras_path: str | None = None) -> None:
    """MACs (from the Keras model, when there is one), the float32 and int8 matmul peaks per thread
    count, then every job x thread count, each in a fresh process; rows go into ``report``, then the
    formats on a slow kernel path (against their float sibling in this run) into its notes."""
    device, seconds = report.device_kind, report.seconds
    peaks = counts if device == "cpu" and keras_path is not None else []  # a peak serves the MACs' efficiency only
    total = len(jobs) * len(counts) + 2 * len(peaks) + int(keras_path is not None)
    with Steps(total, f"bench {report.model}") as steps:
        if keras_path is not None:
            steps.step("MACs from the Keras model")
            macs = run_job({"kind": "macs", "path": keras_path}, timeout=300)
            report.macs = macs if macs.get("ok") else {"error": macs.get("error")}
            steps.advance()
        if device == "cpu" and not report.macs.get("total"):
            report.notes.append("matmul peaks not measured: the model's MACs are not counted "
                                f"({report.macs.get('error') or 'no Keras model'}), so no row has a GMAC/s or "
                                "an efficiency to hold against them")
            steps.advance(2 * len(peaks))
            peaks = []
        for t in peaks:
            steps.step(f"float32 matmul peak, {t} thread(s)")
            report.peak[str(t)] = run_job({"kind": "peak", "n": peak_n, "seconds": min(seconds, 2.0), "threads": t},
                                          threads=t)
            steps.advance()
            steps.step(f"int8 matmul peak, {t} thread(s)")
            report.int8_peak[str(t)] = run_job({"kind": "peak", "precision": "int8", "n": peak_n,
                                                "seconds": min(seconds, 2.0), "threads": t}, threads=t)
            if not report.int8_peak[str(t)].get("ok"):
                report.notes.append(f"int8 matmul peak, {t} thread(s), not measured: "
                                    f"{report.int8_peak[str(t)].get('error')}; int8 rows have no efficiency")
            steps.advance()
        for fmt, rt, label, path, opts in jobs:
            for t in counts:
                steps.step(f"{label} on {fmt}, {t or 'default'} thread(s)")
                kind = "keras_predict" if rt == "keras.predict" else "runtime"
                job = {"kind": kind, "path": path, "runtime": runtime_of(rt),
                       "threads": t, "device": device, "seconds": seconds, "inputs": inputs,
                       "batch_sizes": list(BATCH_SIZES), "options": opts}
                row = _row(fmt, rt, label, t, path, run_job(job, threads=t, timeout=120 + 20 * seconds))
                _efficiency(row, report.macs.get("total"), report.peak, report.int8_peak)
                report.rows.append(row)
                steps.advance()
    _say_slow(report)


def _say_slow(report: BenchReport) -> None:
    """Formats far below their float sibling's batch-32 throughput in this run: printed, noted, recorded."""
    rates = [{"format": r["format"], "runtime": r["runtime"],
              "images_per_s": (r.get("batch32") or {}).get("images_per_s")} for r in report.rows
             if "error" not in r and r["format"] != "keras"]  # Keras is the reference, not an exported format
    found = slow.slow_paths(rates)
    report.slow_paths = slow.to_records(found)
    for line in slow.notes(rates):
        print(f"bench: {line}", flush=True)
        report.notes.append(line)


def _bare_plan(artifact: Path, device: str, report: BenchReport) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The rows of an artifact that came without a manifest: its file, on every runtime that loads it."""
    from edgeport.runtimes import guard

    guard.validate(artifact)  # a broken file is refused here, with its name, before any engine sees it
    report.notes.append(f"{artifact.name}: a bare artifact (no manifest): integrity and parity are not checked "
                        "here; `edgeport verify ARTIFACT --reference ...` proves it")
    # a bare artifact is labelled by its suffix (a directory: the registry's directory format)
    fmt = artifact.suffix.lstrip(".") or next((n for n, i in registry.INFO.items() if i.directory), "directory")
    return runtime_rows(fmt, artifact, device, report)
