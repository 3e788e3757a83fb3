"""`edgeport device add|list|check|remove`: each command one library function."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeport.devices.config import (Device, DeviceConfigError, config_path, get_device, load_devices,
                                     parse_address, save_devices)
from edgeport.devices.probe import DeviceCheck, check


@dataclass
class DeviceList:
    """The named devices, as devices.json holds them."""

    devices: list[Device]
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "devices": [asdict(d) for d in self.devices]}

    def render(self, wide: bool = False) -> str:
        if not self.devices:
            return f"no devices yet ({self.path}); add one: edgeport device add NAME ssh://USER@HOST[:PORT]"
        rows = [("name", "address", "identity", "ssh_config", "python", "workdir", "emulated")]
        rows += [(d.name, d.address, d.identity or "-", d.ssh_config or "-", d.python, d.workdir,
                  "yes" if d.emulated else "-") for d in self.devices]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def device_add(name: str, address: str, *, identity: Path | None = None, ssh_config: Path | None = None,
               python: str = "python3", workdir: str = ".edgeport", emulated: bool = False,
               replace: bool = False) -> str:
    """Name a device reached over ssh (nothing is sent to it yet: `edgeport device check NAME`).

    name: what later commands call it
    address: ssh://USER@HOST[:PORT], or a Host alias of your ~/.ssh/config
    identity: private key file for it (kept by path only; default: your ssh agent and config decide)
    ssh_config: an ssh_config file to use instead of ~/.ssh/config (ssh -F)
    python: the device's Python 3 command
    workdir: folder on the device for bundles and edgeport's venv (relative: under the login's home)
    emulated: the device is an emulated board (qemu): its timings are labelled emulated, never latency
    replace: replace a device of that name
    """
    for label, path in (("identity", identity), ("ssh_config", ssh_config)):
        if path is not None and not Path(path).expanduser().is_file():
            raise DeviceConfigError(f"{name}: --{label.replace('_', '-')} {path}: no such file")
    device = parse_address(name, address, identity=_abs(identity), ssh_config=_abs(ssh_config), python=python,
                           workdir=workdir, emulated=emulated)
    devices = load_devices()
    if name in devices and not replace:
        raise DeviceConfigError(f"a device named {name!r} exists ({devices[name].address}); "
                                "remove it first or pass --replace")
    devices[name] = device
    path = save_devices(devices)
    return f"added {name} ({device.address}) to {path}; next: edgeport device check {name}"


def _abs(path: Path | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path is not None else None


def device_list() -> DeviceList:
    """List the named devices."""
    return DeviceList(list(load_devices().values()), config_path())


def device_check(name: str) -> DeviceCheck:
    """Reach a device over ssh and say what it is: architecture, board, OS, Python, cores, memory,
    free disk, the engines installed, and whether edgeport can run there.

    name: a device named with `edgeport device add`
    """
    return check(get_device(name))


def device_remove(name: str) -> str:
    """Forget a device (nothing on the device is touched).

    name: a device named with `edgeport device add`
    """
    devices = load_devices()
    get_device(name)
    del devices[name]
    return f"removed {name} from {save_devices(devices)}"
