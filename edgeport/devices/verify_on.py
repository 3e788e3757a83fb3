"""`edgeport verify MODEL --on NAME[,NAME...]`: the model's Pi bundle proved on each device, its rows
shown beside the workstation's.

The rpi bundle is built (reproducibly: an unchanged model gives the same archive, which a device that
has it does not receive again); then, for every device at once, edgeport is installed or updated there
from the bundle by its own install.sh (:mod:`remote`; the bundle is ``--offline``, so a board with no
internet installs from its wheels alone), ``edgeport verify --bundle`` run there with the
workstation's gates (or ``--gates``), output kinds, ``--formats``, ``--runtimes``, ``--threads`` and
``--timeout`` (:mod:`options`), and its verify.json brought back to ``dist/MODEL-rpi.DEVICE.verify.json``.
The table says, per device, whether each row was held to the same gate as the workstation's row.
A device that fails is one line in the table; it never loses another device's results.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeport.devices import options as opts
from edgeport.devices import remote
from edgeport.devices.config import get_device
from edgeport.errors import EdgeportError
from edgeport.names import VERIFY_FILE

TARGET = "rpi"


@dataclass
class DeviceRun:
    device: str
    report: dict[str, Any] | None = None
    results: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.report is not None and bool(self.report.get("ok"))


@dataclass
class VerifyOnReport:
    """The workstation's verify rows and each device's, side by side."""

    model: str
    workstation: dict[str, Any]
    runs: list[DeviceRun] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # the tail of `edgeport verify --bundle` on every device

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.ok for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "workstation": _rows(self.workstation), "options": self.options,
                "devices": {r.device: {"ok": r.ok, "error": r.error, "results": str(r.results) if r.results else None,
                                       "rows": _rows(r.report or {}),
                                       "gates_differ": _gate_differences(self.workstation, r.report or {})}
                            for r in self.runs}}

    def render(self, wide: bool = False) -> str:
        here = _rows(self.workstation)
        there = {r.device: _rows(r.report or {}) for r in self.runs}
        keys = list(dict.fromkeys([*here, *(k for rows in there.values() for k in rows)]))
        head = ["format", "runtime", f"workstation ({self.workstation.get('data', {}).get('n', '?')} inputs)"]
        head += [f"{r.device} ({(r.report or {}).get('data', {}).get('n', '?')} inputs)" for r in self.runs]
        table = [head] + [[k[0], k[1], here.get(k, "-"), *(there[r.device].get(k, "-") for r in self.runs)]
                          for k in keys]
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        lines = [f"verify {self.model} --on {', '.join(r.device for r in self.runs)}: agreement with the Keras "
                 "outputs and max |diff| (a device proves the bundle's reference set; its gates compared below)"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        for r in self.runs:
            lines.append(f"{r.device}: {'FAILED: ' + r.error if r.error else 'PASS' if r.ok else 'FAIL'}"
                         + (f"; {_gate_text(self.workstation, r.report)}" if r.report is not None else "")
                         + (f" -> {r.results}" if r.results else ""))
        return "\n".join(lines)


def _gates(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.get("format", "?"), r.get("runtime", "?")): r["gate"] for r in report.get("results", [])
            if r.get("gate")}


def _gate_differences(workstation: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """"FORMAT on RUNTIME: FIELD DEVICE'S (workstation WORKSTATION'S)" for each field of a row's gate that
    differs between the device's row and the workstation's."""
    here, there = _gates(workstation), _gates(report)
    return [f"{k[0]} on {k[1]}: " + ", ".join(f"{n} {there[k].get(n)} (workstation {here[k].get(n)})"
                                              for n in sorted({*here[k], *there[k]})
                                              if here[k].get(n) != there[k].get(n))
            for k in there if k in here and here[k] != there[k]]


def _gate_text(workstation: dict[str, Any], report: dict[str, Any]) -> str:
    shared = len(set(_gates(workstation)) & set(_gates(report)))
    if differ := _gate_differences(workstation, report):
        return "gates DIFFER from the workstation's: " + "; ".join(differ)
    return f"same gates as the workstation's ({shared} row{'s' * (shared != 1)})" if shared else \
        "no gated row in common with the workstation's"


def _rows(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    out = {}
    for r in report.get("results", []):
        f = r.get("figures", {})
        agr, diff = f.get("agreement"), f.get("max_abs_diff")
        cell = r.get("status", "?").upper()
        cell += f" {agr:.2%}" if isinstance(agr, (int, float)) else ""
        cell += f" {diff:.1e}" if isinstance(diff, (int, float)) else ""
        out[(r.get("format", "?"), r.get("runtime", "?"))] = cell
    return out


def _one(name: str, archive: Path, options: list[str], log) -> DeviceRun:
    run = DeviceRun(name)
    try:
        device = get_device(name)
        _, there = remote.ensure_edgeport(device, archive, log=log)
        log(f"{name}: edgeport verify --bundle {there} {' '.join(options)}".rstrip())
        run.results = archive.parent / f"{archive.name[:-len('.tar.gz')]}.{name}.{VERIFY_FILE}"
        run.report = remote.verify_there(device, there, run.results, options)
    except EdgeportError as exc:
        run.error = str(exc)
    return run


def verify_on(model: str, on: str, *, out: Path = Path("artifacts"), dist: Path = Path("dist"),
              samples: int = 300, data_dir: str | None = None, formats: list[str] | None = None,
              runtimes: list[str] | None = None, gates: str | None = None, threads: int | None = None,
              timeout: float = 900.0, output_kind: list[str] | None = None,
              unsupported: dict[str, Any] | None = None) -> VerifyOnReport:
    """Prove MODEL's rpi bundle on the named devices (comma-separated), all at once, with the options of
    `edgeport verify` that reach the device run (:mod:`options`); ``unsupported``: those given that it
    cannot honour (refused in one line before anything is built or copied, never dropped)."""
    opts.refuse(unsupported or {}, "a device runs `verify --bundle`, which proves the bundle's own reference set "
                                   "with no TensorFlow")
    table, kinds = opts.given_verify(gates=gates, runtimes=runtimes, output_kind=output_kind)
    names, model_dir, archive = prepare(model, on, out=out, dist=dist, samples=samples, data_dir=data_dir,
                                        formats=formats)
    workstation = json.loads((model_dir / VERIFY_FILE).read_text())
    there = opts.verify_there(workstation, str(model_dir / VERIFY_FILE), table=table, kinds=kinds, formats=formats,
                              runtimes=runtimes, threads=threads, timeout=timeout).argv()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        runs = list(pool.map(lambda n: _one(n, archive, there, print), names))
    return VerifyOnReport(model_dir.name, workstation, runs, there)


def prepare(model: str, on: str, *, out: Path, dist: Path, samples: int, data_dir: str | None,
            formats: list[str] | None) -> tuple[list[str], Path, Path]:
    """(device names, the model's directory, its rpi bundle) for ``--on``: every name known and the bundle
    built (or reused; ``--offline``: a board with no internet installs from it alone) before any device is
    reached."""
    if not model:
        raise EdgeportError("--on: name the model whose bundle the devices run (edgeport verify MODEL --on NAME)")
    from edgeport.export.targets import bundle_model
    from edgeport.manifest import find_model_dir

    names = list(dict.fromkeys(n.strip() for n in on.split(",") if n.strip()))
    if not names:
        raise EdgeportError("--on: name at least one device (edgeport device list)")
    for name in names:
        get_device(name)  # an unknown name fails before anything is built
    model_dir = find_model_dir(model, out)
    chosen = {"formats": formats} if formats else {}  # default: every format the Pi bundle carries
    built = bundle_model(model, target=TARGET, out=out, dist=dist, samples=samples, data_dir=data_dir, offline=True,
                         **chosen)
    return names, model_dir, built.archive
