"""edgeport on a device: the bundle copied, and installed there by the bundle's own install.sh, as its owner does.

The rpi bundle carries edgeport's wheel (built from this source tree, ``pip wheel --no-deps``, cached by
the tree's fingerprint, or re-made from an installed copy) and install.sh: on the device the bundle is
unpacked and ``sh M-rpi/install.sh VENV`` run with the device's ``python3`` (its README's first command).
install.sh makes the venv and installs the wheel with the ``pi`` extra; an ``--offline`` bundle whose
wheels are the device's (machine and Python) installs from them alone, since a board often has no
internet; any other takes the engines from the device's package index. It is reinstalled whenever the
bundle's wheel differs from the one installed (its sha256 is kept in the venv), so the device always
runs the code the workstation runs.
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from edgeport.devices import ssh
from edgeport.devices.config import Device
from edgeport.devices.probe import probe, require_space, require_usable
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


def venv_python(device: Device) -> str:
    return f"{device.workdir}/venv/bin/python"


def bundle_install(archive: Path) -> tuple[str, str, str | None]:
    """(the bundle's folder name, its edgeport wheel's sha256, the "MACHINE PYTHON" its wheels/ is for or
    None), read from the archive's bundle.json."""
    import tarfile

    from edgeport.export.targets.rpi_install import INSTALLER, WHEELS

    name = archive.name[:-len(".tar.gz")] if archive.name.endswith(".tar.gz") else archive.stem
    try:
        with tarfile.open(archive) as tar:
            meta = json.loads(tar.extractfile(f"{name}/bundle.json").read())  # type: ignore[union-attr]
    except (OSError, KeyError, ValueError, AttributeError, tarfile.TarError) as exc:
        raise DeviceError(f"{archive}: not an rpi bundle edgeport can install from ({exc})") from None
    wheels = [(k, v) for k, v in meta.get("files", {}).items() if k.startswith(f"{WHEELS}/edgeport-")]
    if len(wheels) != 1 or INSTALLER not in meta.get("files", {}):
        raise DeviceError(f"{archive}: no edgeport wheel and install.sh in it; rebuild it with `edgeport bundle`")
    offline = (meta.get("install") or {}).get("offline")
    return name, wheels[0][1]["sha256"], offline.replace("cp", "") if offline else None


def ensure_edgeport(device: Device, archive: Path, log=print) -> tuple[dict[str, Any], str]:
    """The bundle on the device and edgeport from it (the bundle's install.sh, ``pi`` extra) in the device's
    venv; returns (the device's probe, the bundle's path there). Refuses, before copying anything, a device
    with no usable Python or no engine wheel."""
    info = probe(device)
    require_usable(device, info)
    name, sha, offline = bundle_install(archive)
    venv = f"{device.workdir}/venv"
    have = ssh.run(device, f"cat {_q(venv + '/' + STAMP)} 2>/dev/null", check=False).stdout.decode().strip()
    if have == sha:
        return info, copy_bundle(device, archive)
    require_space(device, info, (FIRST_INSTALL_BYTES if not info.get("venv") else 0) + 3 * archive.stat().st_size)
    there = copy_bundle(device, archive)
    board = f"{info['markers']['platform_machine']} {info['markers']['python_version']}"
    source = ("the bundle's wheels alone: offline" if offline == board else
              f"the device's package index: the bundle's wheels are for {offline or 'no board'}, it is {board}")
    log(f"{device.name}: installing edgeport from the bundle: sh {name}/install.sh {venv} (engines from {source})")
    folder = f"{Path(there).parent}/{name}"
    ssh.run(device, f"rm -rf {_q(folder)} && tar xzf {_q(there)} -C {_q(str(Path(there).parent))} && "
                    f"PYTHON={_q(device.python)} sh {_q(folder + '/install.sh')} {_q(venv)}",
            timeout=INSTALL_TIMEOUT_S)
    ssh.run(device, f"echo {sha} > {_q(venv + '/' + STAMP)}")
    return info, there


def copy_bundle(device: Device, archive: Path) -> str:
    """The bundle on the device (checked by sha256 on arrival; not copied again when it is there)."""
    sha, remote = sha256_file(archive), f"{device.workdir}/bundles/{archive.name}"
    have = ssh.run(device, f"sha256sum {_q(remote)} 2>/dev/null", check=False).stdout.decode().split()
    if not have or have[0] != sha:
        ssh.push(device, archive, remote, sha)
    return remote


def verify_there(device: Device, remote_archive: str, results: Path, options: list[str] | None = None,
                 timeout: float = 3600) -> dict[str, Any]:
    """`edgeport verify --bundle ARCHIVE OPTIONS` on the device; its verify.json is brought back as ``results``."""
    return run_there(device, remote_archive, "verify", list(options or []), results, timeout)


def command_line(device: Device, command: str, remote_archive: str, options: list[str]) -> str:
    """The shell line that runs `edgeport COMMAND --bundle ARCHIVE OPTIONS` in the device's venv, every
    argument quoted (a gate pair or an output name reaches edgeport as one argument, whatever it holds)."""
    edgeport = f"{device.workdir}/venv/bin/edgeport"
    return " ".join(_q(a) for a in [edgeport, command, "--bundle", remote_archive, *options])


def run_there(device: Device, remote_archive: str, command: str, options: list[str], results: Path,
              timeout: float = 3600) -> dict[str, Any]:
    """`edgeport COMMAND --bundle ARCHIVE OPTIONS` on the device (verify or bench: each writes
    ``STEM.COMMAND.json`` beside the archive); that JSON is brought back as ``results``. A run that wrote
    none (or not JSON: a cut connection) is an error: nothing half-done is trusted."""
    name = Path(remote_archive).name
    stem = name[:-len(".tar.gz")] if name.endswith(".tar.gz") else name
    there = f"{Path(remote_archive).parent}/{stem}.{command}.json"
    done = ssh.run(device, f"rm -f {_q(there)} && {command_line(device, command, remote_archive, options)}",
                   timeout=timeout, check=False)
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
