"""`edgeport bench MODEL --on NAME[,NAME...]`: the model's Pi bundle measured on each device.

The path of `verify --on` (:mod:`verify_on`): the rpi bundle built or reused, edgeport installed or
updated on every device at once, the bundle copied and checked, then ``edgeport bench --bundle``
runs there (batch-1 p50/p99, batch-32 throughput, load time, peak memory; one thread and all the
device's cores, or ``--threads``; ``--seconds``, ``--formats`` and ``--peak-n`` reach it too). Its
report comes back keyed by the device's identity (board, CPU, OS, engine versions of edgeport's venv
there: :func:`probe.identity`) to ``OUT/MODEL/devices/NAME.bench.json``, where `edgeport report`
finds it. A device that fails is one line; it never loses another device's results. An emulated
device's timings are labelled emulated (never latency).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.benchmarks.bench.result import bench_file
from edgeport.devices import remote
from edgeport.devices.config import get_device
from edgeport.devices.options import bench_argv, refuse
from edgeport.devices.probe import identity, probe
from edgeport.devices.verify_on import prepare
from edgeport.errors import EdgeportError
from edgeport.files import write_json_atomic
from edgeport.tables import fmt_num, fmt_size, fmt_us, text_table

DEVICES_DIR = "devices"  # OUT/MODEL/devices/NAME.bench.json


def device_bench_file(model_dir: Path, name: str) -> Path:
    return Path(model_dir) / DEVICES_DIR / f"{name}.bench.json"


@dataclass
class DeviceBench:
    device: str
    identity: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    results: Path | None = None
    error: str | None = None

    @property
    def rows(self) -> list[dict[str, Any]]:
        return ((self.report or {}).get("bench") or {}).get("rows", [])

    @property
    def ok(self) -> bool:
        return self.report is not None and bool(self.rows) and all("error" not in r for r in self.rows)


@dataclass
class BenchOnReport:
    """The workstation's bench rows (its last bench.json, if any) and each device's."""

    model: str
    workstation: dict[str, Any] | None
    runs: list[DeviceBench] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok,
                "devices": {r.device: {"ok": r.ok, "error": r.error, "identity": r.identity, "rows": r.rows,
                                       "results": str(r.results) if r.results else None} for r in self.runs}}

    def render(self, wide: bool = False) -> str:
        rows = [_row("workstation", r, "") for r in (self.workstation or {}).get("rows", []) if r["format"] != "keras"]
        for run in self.runs:
            rows += [_row(run.device, r, "emulated " if run.identity.get("emulated") else "") for r in run.rows]
        head = ["device", "format", "runtime", "threads", "load", "p50", "p99", "img/s", "peak RSS"]
        title = (f"bench {self.model} --on {', '.join(r.device for r in self.runs)}: batch-1 p50/p99, batch-32 "
                 "images/s, load time and peak memory, per thread count (emulated: not latency)")
        lines = [text_table(title, head, rows, left=3)]
        if self.workstation is None:
            lines.append(f"workstation: no bench.json yet (edgeport bench {self.model})")
        for r in self.runs:
            lines.append(f"{r.device}: " + (f"FAILED: {r.error}" if r.error else r.identity.get("label", "?")
                                            + (f" -> {r.results}" if r.results else "")))
        return "\n".join(lines)


def _row(device: str, r: dict[str, Any], emulated: str) -> list[str]:
    if "error" in r or "skipped" in r:
        return [device, r["format"], r.get("runtime", "-"), fmt_num(r.get("threads")), "ERROR" if "error" in r
                else "SKIPPED", "", "", "", ""]
    b1, b32 = r.get("batch1", {}), r.get("batch32", {})
    times = [f"{r['load_s'] * 1e3:.0f} ms", fmt_us(b1.get("p50_us")), fmt_us(b1.get("p99_us")),
             fmt_num(b32.get("images_per_s"), ",.0f")]
    return [device, r["format"], r.get("label", r["runtime"]), fmt_num(r.get("threads"), "d"),
            *(emulated + t for t in times), fmt_size(r.get("peak_rss_bytes"))]


def _one(name: str, model_dir: Path, archive: Path, options: list[str], log) -> DeviceBench:
    run = DeviceBench(name)
    try:
        device = get_device(name)
        _, there = remote.ensure_edgeport(device, archive, log=log)
        run.identity = identity(device, probe(device, remote.venv_python(device)))
        log(f"{name}: edgeport bench --bundle {there} {' '.join(options)}".rstrip())
        landed = archive.parent / f"{archive.name[:-len('.tar.gz')]}.{name}.bench.json"
        report = remote.run_there(device, there, "bench", options, landed)
        report.update(device_name=run.identity["label"], device_identity=run.identity)
        run.results = write_json_atomic(device_bench_file(model_dir, name), report)
        landed.unlink(missing_ok=True)
        run.report = report
    except EdgeportError as exc:
        run.error = str(exc)
    return run


def bench_on(model: str, on: str, *, out: Path = Path("artifacts"), dist: Path = Path("dist"),
             seconds: float = 2.0, threads: list[int] | None = None, formats: list[str] | None = None,
             peak_n: int = 2048, unsupported: dict[str, Any] | None = None) -> BenchOnReport:
    """Measure MODEL's rpi bundle on the named devices (comma-separated), all at once, with the options of
    `edgeport bench` that reach the device run; ``unsupported``: those given that it cannot honour (refused
    in one line before anything is built or copied, never dropped)."""
    refuse(unsupported or {}, "a device runs `bench --bundle`, which measures the bundle's artifacts on its "
                              "reference inputs")
    options = bench_argv(seconds=seconds, threads=threads, formats=formats, peak_n=peak_n)
    names, model_dir, archive = prepare(model, on, out=Path(out), dist=Path(dist), samples=300, data_dir=None,
                                        formats=formats)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        runs = list(pool.map(lambda n: _one(n, model_dir, archive, options, print), names))
    try:
        workstation = json.loads(bench_file(model_dir).read_text())
    except (OSError, ValueError):
        workstation = None
    return BenchOnReport(model_dir.name, workstation, runs)
