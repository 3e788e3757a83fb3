"""OpenSSH's own client, run as a program: a command on a device, a file onto it.

Every call is ``ssh -o BatchMode=yes``: the user's agent, ssh_config and known_hosts rules apply
as they are (StrictHostKeyChecking stays the user's), nothing is ever asked, and so an unknown host
key is refused, never accepted. ssh's failures become one line that says what to do.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeport.devices.config import Device
from edgeport.errors import EdgeportError

CONNECT_TIMEOUT_S = 10
SSH = "ssh"


class DeviceError(EdgeportError):
    """A device that cannot be used as asked; the message names it and what to do."""


class Unreachable(DeviceError):
    """No connection to the device's ssh server."""


class KeyRefused(DeviceError):
    """The device's ssh server refused every key offered."""


class UnknownHostKey(DeviceError):
    """The device's host key is not in known_hosts (or differs from it): never accepted silently."""


class NoSpace(DeviceError):
    """The device's disk is full."""


class ConnectionLost(DeviceError):
    """The connection dropped (or the device rebooted) while a command ran."""


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str


def ssh_argv(device: Device, command: str) -> list[str]:
    """``ssh`` with BatchMode and the device's address, port, key and ssh_config."""
    argv = [SSH, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
    if device.ssh_config:
        argv += ["-F", str(Path(device.ssh_config).expanduser())]
    if device.identity:
        argv += ["-i", str(Path(device.identity).expanduser())]
    if device.port:
        argv += ["-p", str(device.port)]
    if device.user:
        argv += ["-l", device.user]
    return [*argv, "--", device.host, command]


def run(device: Device, command: str, *, stdin: bytes | Path | None = None, timeout: float = 600,
        check: bool = True) -> Completed:
    """Run a shell command on the device; ssh's own failures (exit 255) raise as one clear line,
    and with ``check`` so does any other non-zero exit (its last stderr line)."""
    argv = ssh_argv(device, command)
    try:
        if isinstance(stdin, Path):
            with open(stdin, "rb") as fh:
                proc = subprocess.run(argv, stdin=fh, capture_output=True, timeout=timeout)
        else:
            proc = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise DeviceError(f"{device.name}: no `ssh` here; install OpenSSH's client (apt-get install "
                          "openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise ConnectionLost(f"{device.name}: `{command.split()[0]}` gave no answer in {timeout:.0f} s; "
                             "the device or its connection hung") from None
    result = Completed(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
    fail = classify(device, result)
    if fail is not None:
        raise fail
    if check and result.returncode != 0:
        raise DeviceError(f"{device.name}: `{command}` failed (exit {result.returncode}): {last_line(result.stderr)}")
    return result


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Warning: Permanently")]
    return lines[-1] if lines else "no message"


def classify(device: Device, result: Completed) -> DeviceError | None:
    """The one-line error for what ssh (or the device) said, or None."""
    err, who = result.stderr, f"{device.name} ({device.address})"
    if "No space left on device" in err:
        return NoSpace(f"{who}: no space left on the device's disk ({last_line(err)}); free some space "
                       f"there or give it another --workdir")
    if result.returncode != 255:
        return None
    if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
        changed = "changed" if "HAS CHANGED" in err else "is not in your known_hosts"
        scan = f"ssh-keyscan{f' -p {device.port}' if device.port else ''} {device.host}"
        return UnknownHostKey(f"{who}: its host key {changed}; edgeport never accepts a host key on its own: "
                              f"run `ssh {_ssh_hint(device)}` once and check the fingerprint, or add it "
                              f"deliberately with `{scan} >> ~/.ssh/known_hosts`")
    if "Permission denied" in err or "Too many authentication failures" in err:
        key = f"the key {device.identity}" if device.identity else "every key offered (agent, ssh_config)"
        return KeyRefused(f"{who}: the device refused {key}; add its public key to the device's "
                          f"~/.ssh/authorized_keys (ssh-copy-id), or give --identity FILE")
    for sign in ("Connection refused", "Connection timed out", "No route to host", "Could not resolve",
                 "Network is unreachable", "Name or service not known", "Operation timed out"):
        if sign in err:
            return Unreachable(f"{who}: unreachable: {last_line(err)}; is it on, on this network, and running "
                               f"an ssh server?")
    if "closed by remote host" in err or "Broken pipe" in err or "Connection reset" in err \
            or "Timeout, server" in err:
        return ConnectionLost(f"{who}: the connection dropped (did the device reboot?): {last_line(err)}")
    return DeviceError(f"{who}: ssh failed: {last_line(err)}")


def _ssh_hint(device: Device) -> str:
    parts = (["-F", device.ssh_config] if device.ssh_config else []) + (["-p", str(device.port)] if device.port else [])
    return " ".join(shlex.quote(p) for p in [*parts, f"{device.user}@{device.host}" if device.user else device.host])


def push(device: Device, local: Path, remote: str, sha256: str, *, timeout: float = 1800) -> None:
    """Copy a file onto the device as ``remote``: written to ``remote.part``, its sha256 checked there,
    then renamed; a cut transfer leaves no ``remote`` to run half of (the next push starts over)."""
    part, q = shlex.quote(remote + ".part"), shlex.quote(remote)
    parent = shlex.quote(str(Path(remote).parent))
    run(device, f"mkdir -p {parent} && cat > {part}", stdin=local, timeout=timeout)
    got = run(device, f"sha256sum {part} 2>/dev/null || shasum -a 256 {part}").stdout.decode().split()
    if not got or got[0] != sha256:
        run(device, f"rm -f {part}", check=False)
        raise DeviceError(f"{device.name}: {local.name} arrived damaged (sha256 {got[0][:12] if got else '?'}… "
                          f"!= {sha256[:12]}…); nothing was run; try again")
    run(device, f"mv -f {part} {q}")
