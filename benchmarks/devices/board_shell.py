"""A command line typed on an emulated board, as its owner types it: the board's ``/bin/sh`` in a ``chroot``
of its root filesystem, its programs (and every program they start) run by qemu-user through binfmt_misc
(:mod:`binfmt`) with the board's CPU, in a fresh home. ``offline``: in a network namespace of its own (no
network at all), and pip told so too (``PIP_NO_INDEX``, a proxy that answers nothing): an install that
reaches for the internet fails loudly instead of passing where a Pi with no internet fails.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgeport.benchmarks.devices import binfmt
from edgeport.benchmarks.devices.pi_sysroot import BoardImage, SetupError

HOME = "/home/pi"  # the Pi OS login's home inside the board
#: no network for pip even outside a namespace: every index or proxy request goes nowhere
OFFLINE_ENV = {"PIP_NO_INDEX": "1", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": ""}


@dataclass(frozen=True)
class Typed:
    """What one command line did on the board."""

    line: str
    returncode: int
    output: str
    seconds: float


def fresh_home(image: BoardImage) -> Path:
    """The board's ``/home/pi``, emptied: nothing of a previous run (nor any source tree) is there."""
    home = image.rootfs / HOME.lstrip("/")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return home


def argv(image: BoardImage, line: str, *, offline: bool) -> tuple[list[str], dict[str, str]]:
    """(host command, its environment) that types ``line`` in the board's home."""
    binfmt.ensure(image.qemu)
    unshare, chroot = shutil.which("unshare"), shutil.which("chroot") or "/usr/sbin/chroot"
    if unshare is None:
        raise SetupError("no `unshare` (util-linux) here: the board's commands need it")
    ns = ["--net"] if offline else []
    if os.geteuid() != 0:  # chroot needs CAP_SYS_CHROOT: a user namespace of one's own gives it
        ns.append("--map-root-user")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "LANG": "C.UTF-8", "USER": "pi",
           "QEMU_CPU": image.board.qemu_cpu, **(OFFLINE_ENV if offline else _network_trust(image))}
    cmd = [unshare, *ns, chroot, str(image.rootfs), "/bin/sh", "-c", f"cd {HOME} && {line}"]
    return (cmd if ns else cmd[1:]), env


def _network_trust(image: BoardImage) -> dict[str, str]:
    """An online board sits on this machine's network and trusts what it trusts: this machine's CA bundle
    (a site's TLS proxy included), as its own file in the board (the Debian bundle stays as it is)."""
    host = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    if not host.is_file():
        return {}
    inside = "/etc/ssl/certs/edgeport-host-network.crt"
    (image.rootfs / inside.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(host, image.rootfs / inside.lstrip("/"))
    return {"SSL_CERT_FILE": inside, "PIP_CERT": inside}


def type_line(image: BoardImage, line: str, *, offline: bool, timeout: float) -> Typed:
    """Run ``line`` on the board; a timeout is a result (exit 124), not an exception."""
    cmd, env = argv(image, line, offline=offline)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return Typed(line, 124, out + f"\n(killed after {timeout:g} s)", time.perf_counter() - t0)
    return Typed(line, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (a hard-linked file once)."""
    seen, total = set(), 0
    for f in path.rglob("*"):
        if f.is_file() and not f.is_symlink():
            st = f.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
