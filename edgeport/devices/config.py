"""The named devices: ``$XDG_CONFIG_HOME/edgeport/devices.json`` (default ``~/.config/edgeport``).

A device is an ssh address (``ssh://USER@HOST[:PORT]`` or an ``~/.ssh/config`` alias) plus, by path
only, an identity file and an ssh_config file: no secrets are ever written here.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from edgeport.errors import EdgeportError
from edgeport.files import write_text_atomic

CONFIG_FILE = "devices.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]-]+$")  # names, IPv4, [IPv6]; never an ssh option (-oProxyCommand=...)
USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")


class DeviceConfigError(EdgeportError):
    """A device name, address or devices.json that edgeport cannot use."""


@dataclass(frozen=True)
class Device:
    """One device the user named.

    name: what commands call it (letters, digits, _ . -)
    host: host name, address or ssh_config alias
    user: login user (None: ssh's own default or the alias's)
    port: ssh port (None: ssh's own default or the alias's)
    identity: private key file, by path (None: ssh's agent and config decide)
    ssh_config: an ssh_config file passed as ``ssh -F`` (None: the user's own)
    python: the device's Python 3 command
    workdir: the device's folder for edgeport's bundles and venv (relative: under its home)
    emulated: an emulated board (qemu): its timings are labelled emulated and never count as latency
    """

    name: str
    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    ssh_config: str | None = None
    python: str = "python3"
    workdir: str = ".edgeport"
    emulated: bool = False

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise DeviceConfigError(f"device name {self.name!r}: use letters, digits, '_', '.' or '-'")
        if not HOST.match(self.host) or self.host.startswith("-"):
            raise DeviceConfigError(f"{self.name}: {self.host!r} is not a host name or ssh_config alias")
        if self.user is not None and not USER.match(self.user):
            raise DeviceConfigError(f"{self.name}: {self.user!r} is not a user name")
        if self.port is not None and not 0 < self.port < 65536:
            raise DeviceConfigError(f"{self.name}: port {self.port} is not 1-65535")
        if self.workdir.startswith("~/"):  # relative paths are under the login's home already
            object.__setattr__(self, "workdir", self.workdir[2:])
        if not self.python.strip() or not self.workdir.strip():
            raise DeviceConfigError(f"{self.name}: the device's python and workdir cannot be empty")

    @property
    def address(self) -> str:
        """How it was given: ``ssh://USER@HOST:PORT`` or the alias."""
        if self.user is None and self.port is None:
            return self.host
        return "ssh://" + (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port else "")


def parse_address(name: str, address: str, **kw) -> Device:
    """A Device from ``ssh://[USER@]HOST[:PORT]`` or an ``~/.ssh/config`` alias (``[USER@]ALIAS`` too)."""
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme != "ssh" or parts.path not in ("", "/") or parts.query or parts.password:
            raise DeviceConfigError(f"{name}: {address!r}: write ssh://USER@HOST[:PORT] (no password: keys only)")
        try:
            port = parts.port
        except ValueError:
            raise DeviceConfigError(f"{name}: {address!r}: the port is not a number 1-65535") from None
        return Device(name, parts.hostname or "", user=parts.username, port=port, **kw)
    user, _, host = address.rpartition("@")
    return Device(name, host, user=user or None, **kw)


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/edgeport/devices.json`` (default ``~/.config/edgeport/devices.json``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgeport" / CONFIG_FILE


def load_devices(path: Path | None = None) -> dict[str, Device]:
    path = path or config_path()
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(Device)}
        return {name: Device(**{k: v for k, v in entry.items() if k in known}, name=name)
                for name, entry in raw["devices"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DeviceConfigError(f"{path}: not a devices file edgeport can read ({exc}); fix or remove it") from None


def save_devices(devices: dict[str, Device], path: Path | None = None) -> Path:
    path = path or config_path()
    body = {"schema": 1, "devices": {n: {k: v for k, v in asdict(d).items() if k != "name" and v is not None}
                                     for n, d in sorted(devices.items())}}
    return write_text_atomic(path, json.dumps(body, indent=1) + "\n")


def get_device(name: str) -> Device:
    devices = load_devices()
    if name not in devices:
        known = ", ".join(sorted(devices)) or "none yet: edgeport device add NAME ssh://USER@HOST"
        raise DeviceConfigError(f"no device named {name!r} in {config_path()}; devices: {known}")
    return devices[name]
