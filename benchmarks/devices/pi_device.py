"""An emulated Raspberry Pi reached through ssh, the way a real one is.

Debian's OpenSSH server on loopback (:mod:`edgeport.devices.loopback`) whose sessions run the board's
programs: binfmt_misc hands every Arm program to qemu-user (:mod:`binfmt`), and the sessions' environment
(sshd's ``SetEnv``) names the board's root filesystem (``QEMU_LD_PREFIX``: its libraries, its
``/proc/cpuinfo``, ``/proc/device-tree/model`` and ``/etc/os-release``) and CPU (``QEMU_CPU``). The
device's ``python`` is the board's own ``python3.11``; the shell and its tools (``tar``, ``sha256sum``)
are the host's. It has no internet, as many boards have none: pip is given no index and a proxy that
answers nothing (``PIP_NO_INDEX``), so edgeport installs there only from an ``--offline`` bundle's wheels.
So `edgeport device check`, `verify --on` and `bench --on` take exactly the code path of a real Pi;
its device entry says ``emulated``, and its timings are labelled emulated, never latency.

``python -m edgeport.benchmarks.devices.pi_device pi5 DIR`` starts one and prints the
`edgeport device add` line for it; Ctrl-C (or SIGTERM) stops it.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeport.benchmarks.devices import binfmt
from edgeport.benchmarks.devices.board_shell import OFFLINE_ENV
from edgeport.benchmarks.devices.boards import board as board_named
from edgeport.benchmarks.devices.pi_sysroot import (HOST_PACKAGES, PYTHON, BoardImage, default_cache, locked,
                                                     prepare_board)
from edgeport.devices import loopback


@dataclass
class EmulatedPi:
    """A running emulated board behind a loopback sshd."""

    image: BoardImage
    loop: loopback.Loopback

    @property
    def python(self) -> str:
        return str(self.image.rootfs / "usr/bin" / PYTHON)

    @property
    def address(self) -> str:
        return f"ssh://{self.loop.user}@127.0.0.1:{self.loop.port}"

    def add_command(self, name: str, workdir: str) -> str:
        """The `edgeport device add` line that names it."""
        return (f"edgeport device add {name} {self.address} --identity {self.loop.client_key} --ssh-config "
                f"{self.loop.ssh_config} --python {self.python} --workdir {workdir} --emulated")

    def stop(self) -> None:
        self.loop.stop()


def session_env(image: BoardImage) -> dict[str, str]:
    """What every ssh session on the board gets: its root filesystem and CPU for qemu, and no internet."""
    return {"QEMU_LD_PREFIX": str(image.rootfs), "QEMU_CPU": image.board.qemu_cpu, **OFFLINE_ENV}


def missing(key: str = "pi5") -> str | None:
    """Why an emulated board cannot be reached through ssh here, or None."""
    import os

    if (why := loopback.missing()) is not None:
        return why
    b = board_named(key)
    for tool in (b.qemu, "debootstrap"):
        if shutil.which(tool) is None:
            return f"no {tool}: apt-get install {HOST_PACKAGES[tool]} (make arm-deps, as root)"
    if os.geteuid() != 0 and (why := binfmt.problem(b.qemu)) is not None:
        return why
    return None


def start(key: str, root: Path, *, cache: Path | None = None, mirror: str | None = None) -> EmulatedPi:
    """Board ``key``'s root filesystem (built once, cached), binfmt_misc, and an sshd in front of it."""
    cache = Path(cache) if cache else default_cache()
    with locked(cache):
        image = prepare_board(cache, board_named(key), mirror=mirror)
    binfmt.ensure(image.qemu)
    return EmulatedPi(image, loopback.start(Path(root), env=session_env(image)))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal
    import time

    from edgeport.errors import EdgeportError

    parser = argparse.ArgumentParser("python -m edgeport.benchmarks.devices.pi_device", description=__doc__.split(
        "\n")[0])
    parser.add_argument("board", help="pi4 or pi5 (64-bit Pi OS)")
    parser.add_argument("root", type=Path, help="folder for the sshd's keys and config")
    args = parser.parse_args(argv)
    try:
        pi = start(args.board, args.root)
    except (EdgeportError, loopback.LoopbackUnavailable) as exc:
        print(f"pi_device: error: {exc}", file=sys.stderr)
        return 2
    print(f"{pi.image.board.device_name} on {pi.address}; name it with:\n  "
          f"{pi.add_command(args.board + 'emu', '.edgeport-' + args.board + 'emu')}\nCtrl-C stops it.", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill PID stops it as Ctrl-C does
    try:
        while pi.loop.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        pi.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
