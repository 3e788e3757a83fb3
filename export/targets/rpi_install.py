"""A Pi bundle that installs itself: edgeport's own wheel and ``install.sh`` (and, ``--offline``, the board's wheels).

edgeport is on no package index, so ``pip install 'edgeport[pi]'`` fails on a Pi. The bundle carries
the wheel (pure Python, built from this source tree and cached as `edgeport verify --on` builds it)
in ``wheels/``, and ``install.sh`` makes a venv with the board's ``python3`` and installs that wheel
with the ``pi`` extra. The engines come from the package index, or, in an ``--offline`` bundle, from
``wheels/`` alone: the wheels of 64-bit Raspberry Pi OS (aarch64, CPython 3.11, glibc 2.36) resolved
as `make arm-check` resolves them (:mod:`edgeport.benchmarks.devices.pi_venv`: the ``pi`` extra's
markers evaluated for the board, ``pip download --platform ... --python-version 3.11 --only-binary``).
"""
from __future__ import annotations

from pathlib import Path

from edgeport.errors import EdgeportError

WHEELS = "wheels"
INSTALLER = "install.sh"
OFFLINE_STAMP = "OFFLINE"  # wheels/OFFLINE: "MACHINE PYTHON" the wheelhouse is for
EXTRA = "pi"
VENV = "~/edgeport"
#: 64-bit Raspberry Pi OS 12 (bookworm) as pip's environment markers see it (the emulated Pi 4 and Pi 5 of
#: `make arm-check` report the same from their own Python)
PI_OS_64 = {"implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
            "platform_machine": "aarch64", "platform_release": "6.6.51+rpt-rpi-v8", "platform_system": "Linux",
            "platform_version": "#1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08)", "python_full_version": "3.11.2",
            "platform_python_implementation": "CPython", "python_version": "3.11", "sys_platform": "linux",
            "glibc": "2.36"}

INSTALL_SH = r"""#!/bin/sh
# edgeport into a venv from this bundle's own wheel, with the Pi engines (the [pi] extra):
#   sh install.sh [VENV] [PIP OPTIONS...]     VENV: default ~/edgeport
# An --offline bundle's wheels/ holds every wheel for 64-bit Pi OS (Python 3.11): pip then reads nothing else.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-"$HOME/edgeport"}
[ $# -gt 0 ] && shift
py=${PYTHON:-python3}
say() { echo "install.sh: $*" >&2; }
command -v "$py" >/dev/null 2>&1 || {
  say "no $py here; install Python 3.10 or newer (sudo apt install python3 python3-venv)"; exit 1; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  say "$("$py" -V 2>&1) is too old: edgeport needs Python 3.10 or newer"; exit 1; }
board=$("$py" -c 'import platform, sys; print(platform.machine(), "%d.%d" % sys.version_info[:2])')
site=""
case "$board" in
  armv6l*) say "armv6l (Pi Zero/1): no LiteRT or ONNX Runtime wheel exists for it; nothing installed"; exit 1 ;;
  armv7l*) site="--system-site-packages"
           say "32-bit Pi OS: the venv uses Debian's NumPy (sudo apt install python3-numpy python3-pil)" ;;
esac
index=""
if [ -f "$here/wheels/OFFLINE" ]; then
  if [ "$(cat "$here/wheels/OFFLINE")" = "$board" ]; then index="--no-index"
  else say "the bundle's wheels are for $(cat "$here/wheels/OFFLINE"), this board is $board:" \
           "the engines come from the package index"; fi
fi
pipi() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
if [ -x "$venv/bin/edgeport" ]; then  # an update: this bundle's edgeport replaces the one there (same version or not)
  pipi --no-index --no-deps --force-reinstall "$@" "$here/wheels/@WHEEL@"
else
  [ -x "$venv/bin/python" ] || "$py" -m venv $site "$venv" || {
    say "$py -m venv failed (Debian/Pi OS: sudo apt install python3-venv)"; exit 1; }
fi
pipi $index --find-links "$here/wheels" "$@" "$here/wheels/@WHEEL@[pi]"
say "edgeport is in $venv: $venv/bin/edgeport verify --bundle $here"
"""


def usage(name: str, offline: bool, artifact: str) -> str:
    """The README's first lines: commands that work verbatim on a bare Raspberry Pi OS."""
    where = ("every wheel for 64-bit Pi OS (Python 3.11) is in wheels/: no internet needed" if offline else
             "the engines (NumPy, LiteRT, ONNX Runtime) come from PyPI; `edgeport bundle --offline` packs them")
    return f"""```bash
tar xzf {name}.tar.gz && sh {name}/install.sh   # a venv at {VENV}: edgeport from this bundle's wheel
{VENV}/bin/edgeport verify --bundle {name}.tar.gz   # every artifact against the Keras outputs in reference.npz
{VENV}/bin/edgeport bench --bundle {name}.tar.gz    # latency on this Pi -> {name}.bench.json (edgeport report merge)
{VENV}/bin/edgeport run {name}/{artifact} photo.png
```

install.sh: {where}. 32-bit Pi OS (armv7l) first: `sudo apt install python3-venv python3-numpy python3-pil`
(tflite-runtime 2.14 on Debian's NumPy 1.x; no ONNX Runtime wheel exists for armv7l)."""


def add(builder, *, offline: bool = False) -> list[str]:
    """Put the wheel, install.sh and (``offline``) the 64-bit Pi OS wheelhouse into ``builder``; returns
    the wheel files added."""
    from edgeport.devices.remote import wheel

    whl = wheel()
    builder.add_file(f"{WHEELS}/{whl.name}", whl)
    builder.add_text(INSTALLER, INSTALL_SH.replace("@WHEEL@", whl.name))
    added = [whl.name]
    if offline:
        house = wheelhouse(whl)
        for p in sorted(house.glob("*.whl")):
            builder.add_file(f"{WHEELS}/{p.name}", p)
            added.append(p.name)
        builder.add_text(f"{WHEELS}/{OFFLINE_STAMP}", f"{PI_OS_64['platform_machine']} {PI_OS_64['python_version']}\n")
    builder.meta["install"] = {"command": f"sh {INSTALLER}", "extra": EXTRA, "wheels": added,
                               "offline": f"{PI_OS_64['platform_machine']} cp{PI_OS_64['python_version']}"
                               if offline else None}
    return added


def wheelhouse(whl: Path) -> Path:
    """The 64-bit Pi OS wheels of ``whl``'s ``pi`` extra and their dependencies (downloaded once, cached;
    the download says what it fetches)."""
    from edgeport.benchmarks.devices import pi_venv
    from edgeport.benchmarks.devices.pi_sysroot import SetupError
    from edgeport.names import data_home

    reqs = pi_venv.target_requirements(pi_venv.wheel_metadata(whl), EXTRA, PI_OS_64)
    try:
        return pi_venv.wheelhouse(data_home() / "devices" / "offline", reqs, PI_OS_64, deps=True)
    except SetupError as exc:
        raise EdgeportError(f"bundle --offline: {exc} (the first --offline bundle needs PyPI; later ones reuse "
                            "the wheels)") from None
