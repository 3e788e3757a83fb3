"""Ask a device what it is (:mod:`probe_script` run by its own python3) and whether edgeport can use it.

What edgeport needs of a device is read from edgeport's own metadata, one home each: the Python it
requires (``Requires-Python``) and the engines of the ``pi`` extra whose markers hold on the device's
platform (an armv6l board, or an armv7l one with Python 3.12+, gets none: said before anything is copied).
"""
from __future__ import annotations

import importlib.metadata
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeport.devices import ssh
from edgeport.devices.config import Device
from edgeport.devices.ssh import DeviceError

SCRIPT = Path(__file__).with_name("probe_script.py")
EXTRA = "pi"
NO_PYTHON_EXIT = 97


class PythonMissing(DeviceError):
    """The device has no Python 3 under the command it was given."""


class PythonTooOld(DeviceError):
    """The device's Python is older than edgeport requires."""


class NoEngineWheel(DeviceError):
    """No inference engine publishes a wheel for the device's architecture and Python."""


def engine_modules() -> list[tuple[str, tuple[str, ...]]]:
    """(import name, distribution names) of the engines of the runtimes a Pi bundle's formats use, and NumPy."""
    from edgeport.export import registry
    from edgeport.runtimes.registry import ENGINES

    runtimes = dict.fromkeys(r for f in registry.for_bundle("rpi") for r in registry.info(f).runtimes)
    mods = {mod: dists for r in runtimes for mod, _, dists in ENGINES.get(r, ())}
    return [(m, tuple(d)) for m, d in mods.items()] + [("numpy", ("numpy",))]


def probe(device: Device, python: str | None = None) -> dict[str, Any]:
    """The probe's JSON from ``python`` (default: the device's) on the device."""
    py = python or device.python
    args = json.dumps({"workdir": device.workdir, "engines": engine_modules()})
    command = (f"command -v {shlex.quote(py)} >/dev/null 2>&1 || exit {NO_PYTHON_EXIT}; "
               f"exec {shlex.quote(py)} - {shlex.quote(args)}")
    done = ssh.run(device, command, stdin=SCRIPT, timeout=120, check=False)
    if done.returncode == NO_PYTHON_EXIT:
        raise PythonMissing(f"{device.name}: no {py!r} on the device; install Python 3 there (Raspberry Pi OS: "
                            f"sudo apt install python3 python3-venv) or name it with --python")
    try:
        return json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(f"{device.name}: {py} did not answer the probe (exit {done.returncode}): "
                          f"{ssh.last_line(done.stderr)}") from None


def requires_python() -> str:
    return importlib.metadata.metadata("edgeport")["Requires-Python"] or ""


def python_problem(info: dict[str, Any]) -> str | None:
    """Why the device's Python cannot run edgeport, or None."""
    from packaging.specifiers import SpecifierSet

    need = requires_python()
    if need and not SpecifierSet(need).contains(info["python"], prereleases=True):
        return f"its Python is {info['python']} ({info.get('executable')}); edgeport needs Python {need}"
    return None


def wheel_engines(markers: dict[str, str]) -> list[str]:
    """Engine distributions of the ``pi`` extra that the device's platform gets, sorted (empty: none)."""
    from packaging.requirements import Requirement

    engines = {d for _, dists in engine_modules() for d in dists if d != "numpy"}
    out = []
    for line in importlib.metadata.requires("edgeport") or []:
        req = Requirement(line)
        if req.name in engines and req.marker is not None and req.marker.evaluate({**markers, "extra": EXTRA}):
            out.append(str(req.name))
    return sorted(out)  # the installed metadata's order is setuptools', not pyproject's


def require_usable(device: Device, info: dict[str, Any]) -> list[str]:
    """The engines edgeport will install there; one clear error when the device cannot be used."""
    if problem := python_problem(info):
        raise PythonTooOld(f"{device.name}: {problem}; install a newer python3 there or name one with --python")
    engines = wheel_engines(info["markers"])
    if not engines:
        m = info["markers"]
        raise NoEngineWheel(f"{device.name}: no inference engine publishes a wheel for {m['platform_machine']} "
                            f"with Python {m['python_version']} (LiteRT, tflite-runtime and ONNX Runtime), so "
                            "edgeport copies nothing to it. A 64-bit OS (aarch64) runs them all; 32-bit armv7l "
                            "needs Python <= 3.11")
    return engines


def require_space(device: Device, info: dict[str, Any], need: int) -> None:
    """NoSpace before copying when the device's workdir has less than ``need`` bytes free."""
    from edgeport.files import human_size

    if info.get("disk_free", 0) < need:
        raise ssh.NoSpace(f"{device.name}: only {human_size(info.get('disk_free'))} free under "
                          f"{device.workdir} on the device; this needs {human_size(need)}: free some space there")


@dataclass
class DeviceCheck:
    """`edgeport device check`: what the device is and whether edgeport can run there."""

    device: Device
    info: dict[str, Any]
    venv: dict[str, Any] | None = None
    problem: str | None = None
    engines: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device.name, "address": self.device.address, "ok": self.ok, "problem": self.problem,
                "info": self.info, "venv": self.venv, "installs": list(self.engines)}

    def render(self, wide: bool = False) -> str:
        from edgeport.files import human_size

        i = self.info
        mem = i.get("memory", {})
        board = (i.get("model") or "-") + (" (emulated: its timings are never latency)" if self.device.emulated else "")
        rows = [("device", f"{self.device.name} ({self.device.address}): reachable"),
                ("architecture", i.get("machine")), ("board", board), ("cpu", i.get("cpu") or "-"),
                ("os", i.get("os")), ("python", f"{i.get('python')} ({i.get('executable')})"),
                ("cores", i.get("cores")),
                ("memory", f"{human_size(mem.get('MemTotal'))} ({human_size(mem.get('MemAvailable'))} available)"),
                ("free disk", f"{human_size(i.get('disk_free'))} under {self.device.workdir}")]
        rows += [(f"engine {k}", v or "not installed") for k, v in _engines(i).items()]
        if self.venv is not None:
            rows += [(f"venv {k}", v or "not installed") for k, v in _engines(self.venv).items()]
        rows.append(("edgeport installs", ", ".join(self.engines) or "-"))
        rows.append(("verdict", "usable" if self.ok else f"NOT usable: {self.problem}"))
        return "\n".join(f"{k:<18} {v}" for k, v in rows)


def _engines(info: dict[str, Any]) -> dict[str, str | None]:
    return {**info.get("engines", {}), "edgeport": info.get("edgeport")}


def check(device: Device) -> DeviceCheck:
    """Probe the device (and edgeport's venv there, if made) and judge it."""
    info = probe(device)
    result = DeviceCheck(device, info)
    try:
        result.engines = tuple(require_usable(device, info))
    except (PythonTooOld, NoEngineWheel) as exc:
        result.problem = str(exc).split(": ", 1)[1]
    if info.get("venv"):
        result.venv = probe(device, f"{device.workdir}/venv/bin/python")
    return result


def identity(device: Device, info: dict[str, Any]) -> dict[str, Any]:
    """What a figure measured on ``device`` is keyed by: board, CPU, OS and engine versions (``info``: the
    probe of the Python that measured, edgeport's venv), and whether the board is emulated."""
    engines = {k: v for k, v in _engines(info).items() if v}
    board = info.get("model") or f"{info.get('machine', '?')} board"
    label = f"{board} / {info.get('cpu') or info.get('machine', '?')} / {info.get('os', '?')}"
    label += " / " + ", ".join(f"{k} {v}" for k, v in sorted(engines.items()))
    return {"device": device.name, "board": board, "cpu": info.get("cpu"), "machine": info.get("machine"),
            "os": info.get("os"), "python": info.get("python"), "cores": info.get("cores"), "engines": engines,
            "emulated": device.emulated, "label": ("emulated " if device.emulated else "") + label}
