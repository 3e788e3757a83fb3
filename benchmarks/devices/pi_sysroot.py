"""An emulated Raspberry Pi: an arm64 Debian sysroot run by qemu-user, with edgeport's Pi stack.

Built once and cached (``$EDGEPORT_DATA_HOME/pi-sysroot``, else ``~/.cache/edgeport/pi-sysroot``):

- ``rootfs/``: ``debootstrap --arch=arm64 --foreign --variant=minbase --include=python3`` of
  bookworm from the Debian mirror apt already uses, its packages unpacked with ``dpkg -x`` (the
  foreign first stage only downloads them), and ``proc/`` a directory whose ``cpuinfo`` describes
  the board: qemu's ``-L`` serves it, and ai-edge-litert 2.x segfaults under qemu-user without it.
- ``site-packages/``: aarch64 wheels of numpy and ai-edge-litert 2.3 (no TensorFlow).
- ``edgeport/``: a wheel of this source tree unpacked (edgeport is pure Python).

Each step is skipped when its stamp says it is done, so a second run takes seconds.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeport.errors import EdgeportError

SUITE = "bookworm"  # Raspberry Pi OS 12 is bookworm: python3.11, glibc 2.36
PYTHON = "python3.11"
GLIBC_MINOR = 36
QEMU = "qemu-aarch64-static"
HOST_TOOLS = {QEMU: "qemu-user-static", "debootstrap": "debootstrap"}
LITERT = "ai-edge-litert==2.3.*"
STAMP = ".edgeport-done"


class SetupError(EdgeportError):
    """The emulated device could not be prepared (tools, mirror, download)."""


@dataclass(frozen=True)
class Board:
    name: str
    qemu_cpu: str
    cpu_part: str
    cpu_revision: int
    hardware: str
    model: str
    cores: int
    features: str  # /proc/cpuinfo "Features": what the CPU really has (no dotprod on an A72)


PI4 = Board("Raspberry Pi 4", "cortex-a72", "0xd08", 3, "BCM2711", "Raspberry Pi 4 Model B Rev 1.5",
            4, "fp asimd evtstrm crc32 cpuid")


def cpuinfo_text(board: Board = PI4) -> str:
    """/proc/cpuinfo as an arm64 Raspberry Pi OS kernel writes it for ``board``."""
    block = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {f}\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {p}\nCPU revision\t: {r}\n\n")
    cores = "".join(block.format(i=i, f=board.features, p=board.cpu_part, r=board.cpu_revision)
                    for i in range(board.cores))
    return cores + f"Hardware\t: {board.hardware}\nRevision\t: c03115\nModel\t\t: {board.model}\n"


def wheel_platforms(glibc_minor: int = GLIBC_MINOR) -> list[str]:
    """pip ``--platform`` tags an aarch64 glibc 2.``glibc_minor`` system accepts, newest last.

    Every manylinux_2_N tag must be listed: pip matches them literally, and without _2_27 it
    silently picks ai-edge-litert 1.4.0 instead of 2.x."""
    return ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, glibc_minor + 1)]


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
            get = lambda k: tuple(fields.get(k, "").split())  # noqa: E731
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


# -- building it -----------------------------------------------------------------------------

def ensure_host_tools() -> None:
    """Install qemu-user-static and debootstrap with apt-get when root; otherwise say how."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    command = "apt-get update && apt-get install -y " + " ".join(missing)
    if os.geteuid() != 0:
        raise SetupError(f"{', '.join(missing)} missing; run: sudo {command}")
    print(f"pi-emulation: installing {' '.join(missing)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        _run(args, f"apt-get failed; run: {command}", env=env, timeout=900)


def _run(args: list[str], failure: str, timeout: float, **kw) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{failure} (no answer after {timeout:.0f} s)") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise SetupError(f"{failure}:\n{tail}")


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _publish(partial: Path, final: Path, stamp: str) -> None:
    (partial / STAMP).write_text(stamp)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)


def _stamp(path: Path) -> str | None:
    try:
        return (path / STAMP).read_text()
    except OSError:
        return None


def source_fingerprint(source: Path) -> str:
    """sha256 of pyproject.toml and every .py file of the packages it maps."""
    config = tomllib.loads((source / "pyproject.toml").read_text())
    dirs = sorted(set(config.get("tool", {}).get("setuptools", {}).get("package-dir", {}).values()))
    h = hashlib.sha256((source / "pyproject.toml").read_bytes())
    for d in dirs or ["."]:
        for f in sorted((source / d).glob("*.py")):
            h.update(f"{d}/{f.name}\0".encode() + f.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Sysroot:
    cache: Path
    board: Board = PI4

    @property
    def rootfs(self) -> Path:
        return self.cache / "rootfs"

    @property
    def site(self) -> Path:
        return self.cache / "site-packages"

    @property
    def app(self) -> Path:
        return self.cache / "edgeport"

    def command(self, *args: str) -> list[str]:
        """Run the sysroot's python3.11 under qemu-aarch64 with this board's CPU."""
        return [QEMU, "-cpu", self.board.qemu_cpu, "-L", str(self.rootfs),
                str(self.rootfs / "usr/bin" / PYTHON), *args]

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1",
                "PYTHONPATH": f"{self.app}:{self.site}", "HOME": str(self.cache)}

    def build_rootfs(self, mirror: str) -> None:
        if _stamp(self.rootfs) is not None:
            return
        if os.geteuid() != 0:
            raise SetupError(f"building {self.rootfs} needs root (debootstrap); run it once as root, "
                             "e.g. sudo make pi-emulation: later runs only read the cache")
        part = _fresh(self.cache / "rootfs.partial")
        print(f"pi-emulation: debootstrap arm64 {SUITE} from {mirror}", flush=True)
        _run(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3",
              SUITE, str(part), mirror], "debootstrap failed", timeout=1800)
        for deb in sorted((part / "var/cache/apt/archives").glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(part)], f"dpkg -x {deb.name} failed", timeout=300)
        if not (part / "usr/bin" / PYTHON).exists():
            raise SetupError(f"{part}: no usr/bin/{PYTHON} after unpacking {SUITE}")
        _publish(part, self.rootfs, mirror)

    def write_cpuinfo(self) -> None:
        """Replace debootstrap's ``proc -> /proc`` symlink with a directory holding our cpuinfo."""
        proc = self.rootfs / "proc"
        if proc.is_symlink() or proc.is_file():
            proc.unlink()
        proc.mkdir(exist_ok=True)
        text = cpuinfo_text(self.board)
        if not (proc / "cpuinfo").exists() or (proc / "cpuinfo").read_text() != text:
            (proc / "cpuinfo").write_text(text)

    def install_wheels(self, numpy_req: str) -> None:
        reqs = [numpy_req, LITERT]
        stamp = " ".join(reqs + wheel_platforms())
        if _stamp(self.site) == stamp:
            return
        part = _fresh(self.cache / "site-packages.partial")
        print(f"pi-emulation: downloading aarch64 wheels ({', '.join(reqs)})", flush=True)
        platforms = [a for p in wheel_platforms() for a in ("--platform", p)]
        _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "--only-binary=:all:", "--python-version", PYTHON.removeprefix("python"),
              "--implementation", "cp", *platforms, "--target", str(part), *reqs],
             "pip could not fetch the aarch64 wheels", timeout=1800)
        found = sorted(p.name for p in part.glob("ai_edge_litert-*.dist-info"))
        if not any(n.startswith("ai_edge_litert-2.3.") for n in found):
            raise SetupError(f"pip picked {found or 'no ai-edge-litert'}, not {LITERT}")
        _publish(part, self.site, stamp)

    def install_edgeport(self, source: Path) -> None:
        """Unpack a wheel of ``source`` (pure Python, no dependencies) when the source changed."""
        fingerprint = source_fingerprint(source)
        if _stamp(self.app) == fingerprint:
            return
        wheels = _fresh(self.cache / "wheel.partial")
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
              "-w", str(wheels), str(source)], f"pip wheel {source} failed", timeout=600)
        part = _fresh(self.cache / "edgeport.partial")
        for whl in wheels.glob("edgeport-*.whl"):
            with zipfile.ZipFile(whl) as z:
                z.extractall(part)
        shutil.rmtree(wheels, ignore_errors=True)
        if not (part / "edgeport/runtimes/__init__.py").exists():
            raise SetupError(f"the wheel of {source} has no edgeport.runtimes")
        _publish(part, self.app, fingerprint)


def default_cache() -> Path:
    home = os.environ.get("EDGEPORT_DATA_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "edgeport") / "pi-sysroot"


def prepare(cache: Path | None = None, *, mirror: str | None = None, source: Path | None = None,
            numpy_req: str | None = None) -> Sysroot:
    """Build (or reuse) the emulated Pi; returns it ready to run ``edgeport.runtimes``."""
    import numpy as np

    ensure_host_tools()
    root = Sysroot(Path(cache) if cache else default_cache())
    source = Path(source) if source else Path(__file__).resolve().parents[1]
    if not (source / "pyproject.toml").exists():
        raise SetupError(f"{source}: not an edgeport source tree (no pyproject.toml); pass --source")
    root.cache.mkdir(parents=True, exist_ok=True)
    with open(root.cache / ".lock", "w") as lock:  # one builder at a time per cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp(root.rootfs) is None:
            root.build_rootfs(mirror or debian_mirror(read_apt_sources()))
        root.write_cpuinfo()
        root.install_wheels(numpy_req or f"numpy=={np.__version__}")
        root.install_edgeport(source)
    return root
