"""A device on this machine's loopback, for the tests and for trying the device commands without a
board: Debian's OpenSSH server run unprivileged by the caller (``sshd -D``, its own config, generated
keys, 127.0.0.1 and a free high port only), and the ssh_config and known_hosts a client needs for it,
written deliberately from the host key it generated (nothing is scanned or accepted on trust).
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
ALIAS = "edgeport-loopback"


class LoopbackUnavailable(RuntimeError):
    """No OpenSSH server or client here (the reason says which)."""


def missing() -> str | None:
    """Why a loopback device cannot start here, or None."""
    if not os.access(SSHD, os.X_OK):
        return f"no {SSHD}: apt-get install openssh-server (make ssh-deps, as root)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"no `{tool}`: apt-get install openssh-client"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgeport-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class Loopback:
    """A running sshd on 127.0.0.1:``port`` that lets ``user`` in with ``client_key``."""

    root: Path
    port: int
    user: str
    client_key: Path
    ssh_config: Path
    known_hosts: Path
    process: subprocess.Popen

    def write_ssh_config(self, path: Path, known_hosts: Path) -> Path:
        """An ssh_config for this sshd: the alias ``edgeport-loopback``, ``known_hosts`` as the only one."""
        path.write_text(f"Host {ALIAS}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {self.user}\n"
                        f"  IdentityFile {self.client_key}\n"
                        f"Host *\n  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
                        "  IdentitiesOnly yes\n  LogLevel ERROR\n")
        return path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(root: Path, timeout: float = 10.0, env: dict[str, str] | None = None) -> Loopback:
    """Start sshd for the calling user under ``root``; it stops with :meth:`Loopback.stop`. ``env``: set in
    every session (sshd's ``SetEnv``: an emulated board's qemu settings)."""
    if reason := missing():
        raise LoopbackUnavailable(reason)
    root.mkdir(parents=True, exist_ok=True)
    host_key, client_key = keygen(root / "host_key"), keygen(root / "client_key")
    (root / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    port, user = free_port(), getpass.getuser()
    config = root / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nAuthorizedKeysFile "
                      f"{root / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      f"UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile {root / 'sshd.pid'}\n"
                      "AllowTcpForwarding no\nX11Forwarding no\nLogLevel ERROR\n"
                      + (f"SetEnv {' '.join(f'{k}={json.dumps(v)}' for k, v in env.items())}\n" if env else ""))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # its privilege-separation directory
    log = open(root / "sshd.log", "wb")  # sshd writes to it as long as it runs
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    loop = Loopback(root, port, user, client_key, root / "ssh_config", known, proc)
    loop.write_ssh_config(loop.ssh_config, known)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LoopbackUnavailable(f"sshd exited ({proc.returncode}): {(root / 'sshd.log').read_text()[-300:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return loop
        time.sleep(0.05)
    loop.stop()
    raise LoopbackUnavailable(f"sshd did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
