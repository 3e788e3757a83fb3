"""binfmt_misc: the kernel runs an Arm program through qemu-user, so a board's programs start each other.

Debian's ``qemu-user-static`` ships one registration line per architecture in ``/usr/lib/binfmt.d``
(flags ``OPF``: ``F`` opens qemu when it is registered, so the handler works inside a ``chroot``);
systemd-binfmt or binfmt-support registers them at boot. Where neither runs (containers, minimal VMs)
:func:`ensure` does what they do, as root: mount ``binfmt_misc`` and write the line to ``register``.
With the handler, ``chroot SYSROOT /bin/sh -c 'sh install.sh'`` runs exactly what a Pi owner types, and
an ssh session whose environment names the sysroot (``QEMU_LD_PREFIX``) and CPU (``QEMU_CPU``) runs
the board's ``python3``, its venv's console scripts and their child processes like a Pi does.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from edgeport.errors import EdgeportError

ROOT = Path("/proc/sys/fs/binfmt_misc")
CONFIGS = Path("/usr/lib/binfmt.d")
#: board qemu -> the handler's name in binfmt_misc (and its ``binfmt.d`` file)
HANDLERS = {"qemu-aarch64-static": "qemu-aarch64", "qemu-arm-static": "qemu-arm"}


class BinfmtUnavailable(EdgeportError):
    """No binfmt_misc handler for a board's architecture, and none can be registered here (why and how)."""


def handler(qemu: str) -> str:
    return HANDLERS[Path(qemu).name]


def state(qemu: str, root: Path = ROOT) -> dict[str, str] | None:
    """The registered handler for ``qemu``'s architecture ({"enabled", "interpreter", "flags"}), or None."""
    try:
        text = (root / handler(qemu)).read_text()
    except OSError:
        return None
    lines = text.splitlines()
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    return {"enabled": lines[0] if lines else "", "interpreter": fields.get("interpreter", ""),
            "flags": fields.get("flags:", fields.get("flags", ""))}


def problem(qemu: str, root: Path = ROOT) -> str | None:
    """Why programs of ``qemu``'s architecture cannot start each other here (None: they can)."""
    got = state(qemu, root)
    if got is None:
        return f"no binfmt_misc handler {handler(qemu)} (in {root})"
    if got["enabled"] != "enabled":
        return f"the binfmt_misc handler {handler(qemu)} is {got['enabled'] or 'not enabled'}"
    if "F" not in got["flags"]:
        return f"the binfmt_misc handler {handler(qemu)} lacks the F flag (qemu is not found inside a chroot)"
    return None


def ensure(qemu: str, root: Path = ROOT, configs: Path = CONFIGS) -> None:
    """The handler for ``qemu``'s architecture registered (as root: mounted and registered from
    qemu-user-static's own ``binfmt.d`` line); BinfmtUnavailable says why not and what to run."""
    if (why := problem(qemu, root)) is None:
        return
    conf = configs / f"{handler(qemu)}.conf"
    how = f"as root: mount -t binfmt_misc binfmt_misc {root}; cat {conf} > {root}/register (what systemd-binfmt does)"
    if os.geteuid() != 0:
        raise BinfmtUnavailable(f"{why}; {how}")
    if not conf.is_file():
        raise BinfmtUnavailable(f"{why}, and no {conf}: apt-get install qemu-user-static")
    if not (root / "register").exists():
        done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(root)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise BinfmtUnavailable(f"{why}; mounting binfmt_misc failed: {done.stderr.strip()}")
    if state(qemu, root) is not None:  # registered without F, or disabled: replaced by Debian's line
        (root / handler(qemu)).write_text("-1")
    try:
        (root / "register").write_text(conf.read_text().strip())
    except OSError as exc:
        raise BinfmtUnavailable(f"{why}; registering {conf} failed: {exc}") from None
    if (still := problem(qemu, root)) is not None:
        raise BinfmtUnavailable(f"{still} after registering {conf}")
