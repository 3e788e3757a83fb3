"""Emulated Raspberry Pi boards: a Debian sysroot per Arm architecture, a copy per board, qemu-user.

Built once and cached under ``$EDGEPORT_DATA_HOME/arm-boards`` (default ``~/.cache/edgeport``):

- ``debian-arm64/``, ``debian-armhf/``: ``debootstrap --foreign --variant=minbase`` of bookworm
  (Raspberry Pi OS 12) from the Debian mirror apt already uses, with the board's Debian packages
  (``python3``; 32-bit also ``python3-numpy python3-pil``: PyPI has no armv7l NumPy). The foreign
  first stage only downloads them: they are unpacked with ``dpkg -x``; no maintainer script runs,
  so the links ``update-alternatives`` would make (BLAS, LAPACK) are made here, and ``proc``
  (a link to the host's /proc) becomes a directory. The .debs, docs, man pages and locales go.
- ``BOARD/rootfs/``: a hard-link copy (``cp -al``: no extra disk) of its architecture's sysroot
  with the board's ``proc/cpuinfo`` and ``proc/device-tree/model`` (what qemu serves for ``-L`` or
  ``QEMU_LD_PREFIX``, and what a chroot of it reads).

Every step writes a stamp (``NAME.stamp`` beside it, never inside: the copies share inodes) naming
what it was built from; a step whose stamp matches is skipped, one whose stamp is missing or
different is rebuilt from scratch. One run at a time per cache (``.lock``).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgeport.benchmarks.devices.boards import Board, cpuinfo_text
from edgeport.errors import EdgeportError
from edgeport.names import data_home

SUITE = "bookworm"  # Raspberry Pi OS 12: python3.11, glibc 2.36
PYTHON = "python3.11"
HOST_PACKAGES = {"qemu-aarch64-static": "qemu-user-static", "qemu-arm-static": "qemu-user-static",
                 "debootstrap": "debootstrap"}
#: Unpacked but never used by Python: pruned to keep the cache small.
PRUNE = ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
         "usr/share/lintian")


class SetupError(EdgeportError):
    """The emulated board could not be prepared (tools, mirror, download, install)."""


# -- the Debian mirror apt uses -------------------------------------------------------------------

@dataclass(frozen=True)
class AptSource:
    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    architectures: tuple[str, ...] = ()
    enabled: bool = True


def parse_sources_list(text: str) -> list[AptSource]:
    """One-line ``sources.list`` entries: ``deb [arch=amd64 signed-by=…] URI SUITE COMPONENT…``."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        opts = dict(o.split("=", 1) for o in (m.group(2) or "").split() if "=" in o)
        out.append(AptSource((m.group(1),), (m.group(3),), (m.group(4),), tuple(m.group(5).split()),
                             tuple(opts.get("arch", "").replace(",", " ").split())))
    return out


def parse_deb822(text: str) -> list[AptSource]:
    """deb822 ``*.sources`` paragraphs (``Types:``, ``URIs:``, ``Suites:``, ``Components:``…)."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = (s.strip() for s in line.split(":", 1))
                key = key.lower()
                fields[key] = value
        if "uris" in fields:
            get = lambda k: tuple(fields.get(k, "").split())  # noqa: E731, B023 - used at once, in this iteration
            out.append(AptSource(get("types"), get("uris"), get("suites"), get("components"),
                                 get("architectures"), fields.get("enabled", "yes").lower() != "no"))
    return out


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every source apt reads: sources.list, sources.list.d/*.list and *.sources (others ignored)."""
    files = [etc_apt / "sources.list"] + sorted((etc_apt / "sources.list.d").glob("*"))
    out = []
    for f in files:
        if f.is_file() and f.suffix in (".list", ".sources"):
            text = f.read_text(errors="replace")
            out += parse_deb822(text) if f.suffix == ".sources" else parse_sources_list(text)
    return out


def debian_mirror(sources: list[AptSource], suite: str = SUITE, arch: str = "arm64") -> str:
    """The first enabled binary source serving ``suite`` with ``main`` for ``arch``."""
    for s in sources:
        if (s.enabled and "deb" in s.types and suite in s.suites and "main" in s.components
                and (not s.architectures or arch in s.architectures)):
            return s.uris[0]
    raise SetupError(f"no apt source serves Debian {suite} main for {arch}; add one to /etc/apt "
                     "or pass --mirror URL (a Debian mirror)")


# -- host tools, commands, stamps, the lock ---------------------------------------------------------

def ensure_host_tools(tools: list[str]) -> dict[str, str]:
    """{tool: absolute path}; installs what is missing with apt-get when root, otherwise says how."""
    missing = sorted({HOST_PACKAGES[t] for t in tools if shutil.which(t) is None})
    if missing:
        command = "apt-get update && apt-get install -y " + " ".join(missing)
        if os.geteuid() != 0:
            raise SetupError(f"{', '.join(missing)} missing; run: sudo {command}")
        print(f"arm-check: installing {' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            run(args, f"apt-get failed; run: {command}", timeout=900, env=env)
    return {t: shutil.which(t) or t for t in tools}


def run(args: list[str], failure: str, *, timeout: float, **kw) -> subprocess.CompletedProcess:
    """Run a setup command; a failure or timeout is a SetupError with the command's last lines."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{failure} (no answer after {timeout:.0f} s)") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-12:])
        raise SetupError(f"{failure} (exit {proc.returncode}):\n{tail}")
    return proc


def stamp_of(path: Path) -> str | None:
    try:
        return path.with_name(path.name + ".stamp").read_text()
    except OSError:
        return None


def set_stamp(path: Path, stamp: str | None) -> None:
    """Record (or with None, clear) what ``path`` was built from; written last, after the step."""
    f = path.with_name(path.name + ".stamp")
    if stamp is None:
        f.unlink(missing_ok=True)
    else:
        f.write_text(stamp)


def key(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:16]


def fresh(path: Path) -> Path:
    """An empty directory at ``path`` (a half-built previous attempt is removed first)."""
    set_stamp(path, None)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def default_cache() -> Path:
    return data_home() / "arm-boards"


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """One arm-check per cache at a time: a second one waits, saying so."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"arm-check: another run holds {cache / '.lock'}; waiting for it", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the Debian sysroot of an architecture ---------------------------------------------------------

def link_alternatives(rootfs: Path) -> list[str]:
    """The links ``update-alternatives`` would make for BLAS and LAPACK (NumPy loads libblas.so.3 and
    liblapack.so.3), relative, as ``usr/lib/TRIPLET/libblas.so.3 -> blas/libblas.so.3``."""
    made = []
    for lib in sorted((rootfs / "usr/lib").glob("*/*/lib*.so.3")):
        if lib.parent.name not in ("blas", "lapack"):
            continue
        link = lib.parent.parent / lib.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(f"{lib.parent.name}/{lib.name}")
            made.append(str(link.relative_to(rootfs)))
    return made


def ca_bundle(rootfs: Path) -> bool:
    """``etc/ssl/certs/ca-certificates.crt`` as ``update-ca-certificates`` (ca-certificates' maintainer
    script, never run here) writes it: Mozilla's certificates, concatenated. False when none are unpacked."""
    certs = sorted((rootfs / "usr/share/ca-certificates").rglob("*.crt"))
    if not certs:
        return False
    dest = rootfs / "etc/ssl/certs/ca-certificates.crt"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(c.read_text() for c in certs))
    return True


def prune(rootfs: Path) -> None:
    for rel in PRUNE:
        shutil.rmtree(rootfs / rel, ignore_errors=True)


def debian_sysroot(cache: Path, arch: str, packages: tuple[str, ...], mirror: str) -> tuple[Path, str]:
    """``cache/debian-ARCH``: bookworm for ``arch`` with ``packages`` unpacked; (path, its stamp)."""
    dest = cache / f"debian-{arch}"
    stamp = key(SUITE, arch, sorted(packages), mirror)
    if stamp_of(dest) == stamp and (dest / "usr/bin" / PYTHON).exists():
        return dest, stamp
    if os.geteuid() != 0:
        raise SetupError(f"building {dest} needs root (debootstrap); run it once as root, e.g. "
                         "sudo make arm-check: later runs only read the cache")
    fresh(dest)
    print(f"arm-check: debootstrap {arch} {SUITE} ({', '.join(packages)}) from {mirror}", flush=True)
    run(["debootstrap", f"--arch={arch}", "--foreign", "--variant=minbase", f"--include={','.join(packages)}",
         SUITE, str(dest), mirror], f"debootstrap {arch} failed", timeout=1800)
    for deb in sorted((dest / "var/cache/apt/archives").glob("*.deb")):
        run(["dpkg", "-x", str(deb), str(dest)], f"dpkg -x {deb.name} failed", timeout=300)
    if not (dest / "usr/bin" / PYTHON).exists():
        raise SetupError(f"{dest}: no usr/bin/{PYTHON} after unpacking {SUITE}")
    proc = dest / "proc"
    if proc.is_symlink() or proc.is_file():  # debootstrap links it to the host's /proc
        proc.unlink()
    proc.mkdir(exist_ok=True)
    link_alternatives(dest)
    ca_bundle(dest)
    prune(dest)
    set_stamp(dest, stamp)
    return dest, stamp


# -- a board ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardImage:
    """A board's root filesystem and the qemu that runs it."""

    board: Board
    rootfs: Path
    qemu: str  # absolute path of qemu-aarch64-static / qemu-arm-static
    stamp: str = ""

    @property
    def python(self) -> Path:
        return self.rootfs / "usr/bin" / PYTHON


def board_image(cache: Path, board: Board, base: Path, base_stamp: str, qemu: str) -> BoardImage:
    """``cache/BOARD/rootfs``: a hard-link copy of ``base`` with the board's /proc/cpuinfo."""
    rootfs = cache / board.key / "rootfs"
    text = cpuinfo_text(board)
    stamp = key(base_stamp, text, board.model)
    if stamp_of(rootfs) != stamp or not (rootfs / "proc/cpuinfo").is_file():
        set_stamp(rootfs, None)
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        run(["cp", "-al", str(base), str(rootfs)], f"cp -al {base} {rootfs} failed", timeout=600)
        (rootfs / "proc/cpuinfo").write_text(text)  # a new file: base/proc is empty
        (rootfs / "proc/device-tree").mkdir()
        (rootfs / "proc/device-tree/model").write_text(board.model + "\0")  # as the firmware writes it
        set_stamp(rootfs, stamp)
    return BoardImage(board, rootfs, qemu, stamp)


def prepare_board(cache: Path, board: Board, *, mirror: str | None = None) -> BoardImage:
    """Build (or reuse) ``board``'s root filesystem; the caller holds :func:`locked`."""
    tools = ensure_host_tools([board.qemu, "debootstrap"])
    mirror = mirror or debian_mirror(read_apt_sources(), arch=board.debian_arch)
    base, base_stamp = debian_sysroot(cache, board.debian_arch, board.debian_packages, mirror)
    return board_image(cache, board, base, base_stamp, tools[board.qemu])
