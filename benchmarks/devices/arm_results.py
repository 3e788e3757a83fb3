"""Results of `make arm-check`: rows, board runs, the report, its table and its files.

The parity table (model x format x board x runtime), ``OUT/arm-check/arm_check.json`` and, per board,
``OUT/report/emulated-BOARD/report.json`` (the shape `edgeport report merge` joins).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgeport.benchmarks.devices.boards import FORBIDDEN, Board

TIMING_NOTE = ("times are wall times under qemu-user on an x86 host (setup, and verify including engine "
               "start-up): not a Raspberry Pi's speed, never reported as latency")
RESULT_FILE = "arm_check.json"
REFERENCE = "Keras outputs in the bundle's reference set"


@dataclass
class Row:
    model: str
    format: str
    board: str
    runtime: str
    status: str  # pass | fail | refused | error | not run | skipped
    engine: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    precision: str | None = None
    size_bytes: int | None = None
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status not in ("pass", "skipped")


@dataclass
class BoardRun:
    board: Board
    setup_s: float = 0.0
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    install: dict[str, Any] = field(default_factory=dict)
    inventory: dict[str, Any] = field(default_factory=dict)
    verify_s: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems


@dataclass
class ArmCheckReport:
    models: list[str]
    boards: list[BoardRun] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    bundles: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    host_s: float = 0.0
    total_s: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.errors and all(b.ok for b in self.boards) and bool(self.rows)
                and not any(r.failed for r in self.rows))

    def render(self) -> str:
        return render(self)


def engines_installed(b: Board, inv: dict[str, Any]) -> str:
    dists = inv.get("distributions", {})
    names = [n for n in (*b.expect, *FORBIDDEN) if n in dists]
    parts = []
    for n in names:
        where = " (Debian)" if "/usr/lib/python3/dist-packages" in dists[n].get("location", "") else ""
        parts.append(f"{n} {dists[n]['version']}{where}")
    return ", ".join(parts)


# -- output ------------------------------------------------------------------------------------

def _gate(r: Row) -> str:
    return {"pass": "PASS", "skipped": "n/a"}.get(r.status, r.status.upper())


def _diff(r: Row) -> str:
    from edgeport.tables import fmt_num

    f = r.figures
    if f.get("max_abs_diff") is None:
        return "-"
    if f.get("tolerance") is not None:  # float: every output within 10 x the float32 noise
        return f"{fmt_num(f.get('tolerance_diff', f['max_abs_diff']), '.2e')} <= {fmt_num(f['tolerance'], '.2e')}"
    return fmt_num(f["max_abs_diff"], ".2e")


def table_rows(rows: list[Row]) -> list[list[str]]:
    from edgeport.tables import fmt_num, fmt_pct, fmt_points

    out = []
    for r in rows:
        f = r.figures
        out.append([r.model, r.format, r.board, f"{r.runtime} ({r.engine})" if r.engine else r.runtime, _diff(r),
                    fmt_pct(f.get("agreement")), fmt_pct(f.get("confident_agreement")),
                    fmt_num(f.get("kl_divergence"), ".2g"), fmt_points(f.get("accuracy_delta_points")), _gate(r)])
    return out


HEADER = ["model", "format", "board", "runtime (engine)", "max|diff| <= tol (float)", "agree", "confident", "KL",
          "Δ acc pts", "gate"]


def render(report: ArmCheckReport) -> str:
    from edgeport.tables import text_table

    order = {b.board.key: i for i, b in enumerate(report.boards)}
    rows = sorted(report.rows, key=lambda r: (report.models.index(r.model) if r.model in report.models else 99,
                                              r.format, order.get(r.board, 99), r.runtime))
    styles = ["red" if r.failed else None for r in rows]
    lines = [text_table("arm-check: edgeport verify --bundle on emulated Raspberry Pis (against Keras, "
                        "workstation gates)", HEADER, table_rows(rows), styles, left=4)]
    reasons: dict[str, list[str]] = {}  # one line per reason, naming the rows it explains
    for r in rows:
        if r.reason and r.status != "pass":
            reasons.setdefault(f"{_gate(r)}: {r.reason}", []).append(f"{r.model}/{r.format}/{r.board}/{r.runtime}")
    lines += [f"  {', '.join(where)}: {why}" for why, where in reasons.items()]
    board_rows = []
    for b in report.boards:
        status = "ok" if b.ok else "FAIL: " + (b.error.splitlines()[0] if b.error else "; ".join(b.problems))
        board_rows.append([b.board.key, b.board.device_name, engines_installed(b.board, b.inventory) or "-",
                           f"{b.setup_s:.1f}", " + ".join(f"{s:.1f}" for s in b.verify_s.values()) or "-", status])
    lines.append(text_table("boards (edgeport[pi] installed by the bundle's install.sh; TensorFlow must be absent)",
                            ["board", "emulated as", "installed", "setup s", "verify s (per model)", "status"],
                            board_rows, left=3))
    lines.append(install_table(report))
    for b in report.boards:
        if b.error:
            lines.append(f"{b.board.key}: setup failed: {b.error}")
    lines += [f"error: {e}" for e in report.errors]
    lines.append(f"host (bundles, edgeport wheel) {report.host_s:.1f} s, total {report.total_s:.1f} s. "
                 f"Note: {TIMING_NOTE}.")
    failed = sum(r.failed for r in report.rows)
    verdict = "all rows pass" if report.ok else f"{failed} of {len(report.rows)} rows failed or did not run"
    if not all(b.ok for b in report.boards):
        verdict += "; a board failed its setup or checks"
    lines.append(f"arm-check: {verdict}")
    return "\n".join(lines + [f"wrote {p}" for p in report.files])


def install_table(report: ArmCheckReport) -> str:
    """Per board and model: the README's install line from the bundle alone (emulated wall time, sizes)."""
    from edgeport.files import human_size
    from edgeport.tables import text_table

    rows = []
    for b in report.boards:
        for model, i in b.install.items():
            how = "offline" if i.get("offline") else f"online ({i.get('online_because') or '?'})"
            took = f"{i['emulated_s']:.1f} (emulated)" if "emulated_s" in i else "-"
            rows.append([b.board.key, model, how, took + ("" if i.get("exit", 0) == 0 else f" exit {i['exit']}"),
                         human_size(i.get("bundle_bytes")), human_size(i.get("wheelhouse_bytes")),
                         human_size(i.get("venv_bytes"))])
    return text_table("install from the bundle alone (tar xzf M-rpi.tar.gz && sh M-rpi/install.sh, typed on the "
                      "board)", ["board", "model", "network", "install s", "tarball", "wheelhouse", "venv"], rows,
                      left=2)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _device(b: BoardRun) -> dict[str, Any]:
    inv = b.inventory
    return {"name": b.board.device_name, "board": b.board.model, "machine": inv.get("machine", b.board.machine),
            "cpu": f"{b.board.qemu_cpu} (qemu-user)", "cores": b.board.cores, "logical_cpus": b.board.cores,
            "emulated": True, "emulator": f"{b.board.qemu} -cpu {b.board.qemu_cpu}", "python": inv.get("python"),
            "engines": engines_installed(b.board, inv), "hostname": platform.node() + " (emulating)",
            "note": TIMING_NOTE}


def merge_rows(report: ArmCheckReport, b: BoardRun) -> dict[str, Any]:
    """Per model, the rows of ``b`` in the report.json shape `edgeport report merge` reads."""
    models: dict[str, Any] = {}
    for r in report.rows:
        if r.board != b.board.key or r.status == "skipped":
            continue
        f = r.figures
        models.setdefault(r.model, {"rows": []})["rows"].append({
            "model": r.model, "format": r.format, "runtime": r.runtime, "target": "cpu", "precision": r.precision,
            "size_bytes": r.size_bytes, "accuracy": f.get("accuracy"),
            "accuracy_delta_points": f.get("accuracy_delta_points"), "agreement": f.get("agreement"),
            "max_abs_diff": f.get("max_abs_diff"), "gate": r.status, "engine": r.engine, "reference": REFERENCE})
    return models


def write_results(report: ArmCheckReport, out: Path) -> list[Path]:
    from dataclasses import asdict

    from edgeport.files import write_json_atomic

    files = []
    for b in report.boards:
        files.append(write_json_atomic(out / "report" / f"emulated-{b.board.key}" / "report.json", {
            "schema": 1, "generated": _now(), "device_name": b.board.device_name, "device": _device(b),
            "models": merge_rows(report, b)}))
    boards = [{"key": b.board.key, "device": _device(b), "ok": b.ok, "error": b.error, "problems": b.problems,
               "setup_s": round(b.setup_s, 1), "verify_s": {m: round(s, 1) for m, s in b.verify_s.items()},
               "bundles_verified": b.files, "install": b.install, "inventory": b.inventory} for b in report.boards]
    files.insert(0, write_json_atomic(out / "arm-check" / RESULT_FILE, {
        "schema": 1, "generated": _now(), "ok": report.ok, "models": report.models, "bundles": report.bundles,
        "reference": REFERENCE, "timing_note": TIMING_NOTE, "host_s": round(report.host_s, 1),
        "total_s": round(report.total_s, 1), "errors": report.errors, "boards": boards,
        "rows": [asdict(r) for r in report.rows]}))
    return files
