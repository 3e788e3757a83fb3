"""edgeport on a device: its own wheel installed into a venv there, a bundle copied, verify run there.

The wheel is built from this source tree (``pip wheel --no-deps``, cached by the tree's fingerprint,
as `make arm-check` builds it); the device's venv is made by its own ``python3 -m venv`` and gets the
wheel with the ``pi`` extra by its own pip (the engines for its platform: from its index, or from
``--find-links`` wheels beside it). It is reinstalled whenever the wheel differs (its sha256 is kept
in the venv), so the device always runs the code the workstation runs.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from edgeport.devices import ssh
from edgeport.devices.config import Device
from edgeport.devices.probe import EXTRA, probe, require_space, require_usable
from edgeport.devices.ssh import DeviceError
from edgeport.files import sha256_file
from edgeport.names import data_home

FIRST_INSTALL_BYTES = 600 << 20  # a venv with NumPy, LiteRT and ONNX Runtime, and pip's cache
STAMP = ".edgeport-wheel.sha256"
INSTALL_TIMEOUT_S = 1800


def source_tree() -> Path:
    """The checkout edgeport runs from (its wheel is built from it)."""
    import edgeport

    root = Path(edgeport.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise DeviceError(f"edgeport runs from {root}, not a source tree: its wheel cannot be built for the device; "
                          "run edgeport from its checkout (pip install -e .)")
    return root


def wheel() -> Path:
    """edgeport's wheel: built from its source tree, or re-made from an installed (non-editable) copy."""
    from edgeport.benchmarks.devices.pi_venv import edgeport_wheel
    from edgeport.devices.own_wheel import installed_wheel

    try:
        root = source_tree()
    except DeviceError:
        return installed_wheel(data_home() / "devices" / "installed-wheel")
    return edgeport_wheel(root, data_home() / "devices")[0]


def _q(path: str) -> str:
    return shlex.quote(path)


def system_site_packages(machine: str) -> bool:
    """Whether a venv on ``machine`` sees the OS's packages: a 32-bit Pi takes Debian's NumPy (PyPI has
    no armv7l NumPy; the emulated boards of `make arm-check` say which)."""
    from edgeport.benchmarks.devices.boards import BOARDS

    return any(b.system_site_packages for b in BOARDS.values() if b.machine == machine)


def venv_python(device: Device) -> str:
    return f"{device.workdir}/venv/bin/python"


def ensure_edgeport(device: Device, whl: Path, log=print) -> dict[str, Any]:
    """edgeport from ``whl`` (with its ``pi`` extra) in the device's venv; returns the device's probe.
    Refuses, before copying anything, a device with no usable Python or no engine wheel."""
    info = probe(device)
    require_usable(device, info)
    sha = sha256_file(whl)
    venv, py = f"{device.workdir}/venv", venv_python(device)
    have = ssh.run(device, f"cat {_q(venv + '/' + STAMP)} 2>/dev/null", check=False).stdout.decode().strip()
    if have == sha:
        return info
    require_space(device, info, FIRST_INSTALL_BYTES if not info.get("venv") else 4 * whl.stat().st_size)
    log(f"{device.name}: installing {whl.name} ({EXTRA} extra) into {venv}")
    remote = f"{device.workdir}/wheels/{whl.name}"
    ssh.push(device, whl, remote, sha)
    if not info.get("venv"):
        system = " --system-site-packages" if system_site_packages(info["machine"]) else ""
        made = ssh.run(device, f"{_q(device.python)} -m venv{system} {_q(venv)}", timeout=300, check=False)
        if made.returncode != 0:
            ssh.run(device, f"rm -rf {_q(venv)}", check=False)
            hint = " (Debian/Pi OS: sudo apt install python3-venv)" if "ensurepip" in made.stderr else ""
            raise DeviceError(f"{device.name}: {device.python} -m venv failed{hint}: {ssh.last_line(made.stderr)}")
    pip = f"{_q(py)} -m pip install -q --disable-pip-version-check --find-links {_q(device.workdir + '/wheels')}"
    ssh.run(device, f"{pip} --force-reinstall --no-deps {_q(remote)} && {pip} {_q(remote + f'[{EXTRA}]')}",
            timeout=INSTALL_TIMEOUT_S)
    ssh.run(device, f"echo {sha} > {_q(venv + '/' + STAMP)}")
    return info


def copy_bundle(device: Device, archive: Path) -> str:
    """The bundle on the device (checked by sha256 on arrival; not copied again when it is there)."""
    sha, remote = sha256_file(archive), f"{device.workdir}/bundles/{archive.name}"
    have = ssh.run(device, f"sha256sum {_q(remote)} 2>/dev/null", check=False).stdout.decode().split()
    if not have or have[0] != sha:
        ssh.push(device, archive, remote, sha)
    return remote


def verify_there(device: Device, remote_archive: str, results: Path, timeout: float = 3600) -> dict[str, Any]:
    """`edgeport verify --bundle` on the device; its verify.json is brought back as ``results``."""
    return run_there(device, remote_archive, "verify", [], results, timeout)


def run_there(device: Device, remote_archive: str, command: str, options: list[str], results: Path,
              timeout: float = 3600) -> dict[str, Any]:
    """`edgeport COMMAND --bundle ARCHIVE OPTIONS` on the device (verify or bench: each writes
    ``STEM.COMMAND.json`` beside the archive); that JSON is brought back as ``results``. A run that wrote
    none (or not JSON: a cut connection) is an error: nothing half-done is trusted."""
    name = Path(remote_archive).name
    stem = name[:-len(".tar.gz")] if name.endswith(".tar.gz") else name
    there = f"{Path(remote_archive).parent}/{stem}.{command}.json"
    edgeport = f"{device.workdir}/venv/bin/edgeport"
    argv = " ".join(_q(a) for a in [edgeport, command, "--bundle", remote_archive, *options])
    done = ssh.run(device, f"rm -f {_q(there)} && {argv}", timeout=timeout, check=False)
    got = ssh.run(device, f"cat {_q(there)}", check=False)
    if got.returncode != 0:
        raise DeviceError(f"{device.name}: edgeport {command} --bundle wrote no {command}.json "
                          f"(exit {done.returncode}): {ssh.last_line(done.stderr)}")
    try:
        report = json.loads(got.stdout)
    except ValueError:
        raise DeviceError(f"{device.name}: its {command}.json is not JSON; nothing was trusted") from None
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_bytes(got.stdout)
    return report
