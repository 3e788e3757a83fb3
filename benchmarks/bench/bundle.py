"""`edgeport bench --bundle FILE`: benchmark a bundle's artifacts on the device it was copied to.

Inputs are the bundle's own reference inputs; every measurement runs in a fresh process as in
`edgeport bench`. The result, ``MODEL-TARGET.bench.json`` beside the bundle, has the shape of
``report.json`` (device block and rows per model), so `edgeport report merge` joins a Pi's figures
with the workstation's, keyed by device.
"""
from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.bench.command import measure, runtime_rows, skip_gpu, thread_counts
from edgeport.benchmarks.bench.result import BenchReport
from edgeport.benchmarks.device_info import device_info, device_key
from edgeport.benchmarks.report.rows import bench_figures, group_rows
from edgeport.files import write_json_atomic

REFERENCE_INPUTS = 32


def bench_bundle(source: Path, *, device: str, seconds: float, threads: list[int] | None,
                 formats: list[str] | None, peak_n: int) -> BenchReport:
    from edgeport.benchmarks.verify.bundle import plan_bundle, reference_of, results_path
    from edgeport.bundle import open_bundle

    dest = results_path(source, "bench.json")
    with open_bundle(source) as bundle, tempfile.TemporaryDirectory(prefix="edgeport-bench-") as tmp:
        report = BenchReport(bundle.model, bundle.root, device, device_info(), seconds)
        counts = thread_counts(threads, device)
        if device == "gpu" and not report.device["gpus"]:
            return skip_gpu(report, dest)
        plan, _ = plan_bundle(bundle, dest, formats)
        _, test = reference_of(bundle)
        inputs = str(Path(tmp) / "inputs.npz")
        x = test.x if isinstance(test.x, np.ndarray) else next(iter(test.x.values()))
        np.savez(inputs, x=x[:REFERENCE_INPUTS])
        report.inputs = f"{min(len(x), REFERENCE_INPUTS)} reference inputs from {bundle.source.name}"
        jobs = []
        for item in plan.artifacts:
            if item.error is not None:
                report.rows.append({"format": item.format, "runtime": "-", "error": str(item.error)})
                continue
            rows = runtime_rows(item.format, item.path, device, report)
            jobs += [(fmt, rt, rt, path, opts) for fmt, rt, path, opts in rows]
        measure(report, jobs, counts, inputs, peak_n=peak_n)
    write_json_atomic(dest, merge_shape(report))
    return report


def merge_shape(report: BenchReport) -> dict[str, Any]:
    """The bench report in report.json's shape (what `edgeport report merge` reads), the raw rows kept."""
    rows = [{"model": report.model, "format": fmt, "runtime": rt, "target": report.device_kind,
             "gate": "not verified here", **bench_figures(group)}
            for (fmt, rt), group in group_rows(report.rows).items()]
    return {"schema": 1, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device_name": device_key(report.device), "device": report.device,
            "models": {report.model: {"rows": rows}}, "bench": report.to_dict()}
