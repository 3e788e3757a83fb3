"""``pip install 'edgeport[pi]'`` inside an emulated board, from the board's own wheels.

pip evaluates environment markers against the machine it runs on, even with ``--platform``: a
download on x86 would pick the x86 half of the ``pi`` extra. So the target's requirements are
computed here from the edgeport wheel's METADATA with the markers evaluated in the *guest's*
environment (queried from the guest's Python), less what the board's Debian packages provide
when its venv uses them (32-bit: NumPy 1.x and Pillow); those are downloaded for the guest's
platform tags (``manylinux_2_17`` … ``manylinux_2_<its glibc>``) into a wheelhouse. Then the
*guest's* pip (this host's pip version, unpacked from its wheel; ``--isolated --no-index``) installs
``edgeport[pi]`` from it into a venv made by the guest's Python: the resolution a Pi user's pip does,
on the board's Python.

Cached under the board cache: ``wheels-MACHINE/`` (stamped by the requirement list),
``edgeport-wheel/`` (stamped by a fingerprint of the source tree), ``pip/`` and ``BOARD/venv``
(files identical in two boards' venvs of one architecture are hard links: Pi 4 and Pi 5 share 200 MB).
Run as ``python -m edgeport.benchmarks.devices.pi_venv inventory`` inside a board, it prints what
is installed there as JSON (stdlib only).
"""
from __future__ import annotations

import email
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeport.benchmarks.devices.boards import BOARDS
from edgeport.benchmarks.devices.pi_sysroot import (
    BoardImage, SetupError, fresh, key, run, set_stamp, share_identical, stamp_of)

EXTRA = "pi"
#: The guest's marker environment, computed as ``packaging.markers.default_environment()`` does
#: (stdlib only: the guest has no ``packaging`` yet), plus its glibc version for the wheel tags.
MARKER_ENV = r"""
import json, os, platform, sys
def version(info):
    v = "{0.major}.{0.minor}.{0.micro}".format(info)
    return v + (info.releaselevel[0] + str(info.serial) if info.releaselevel != "final" else "")
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": version(sys.implementation.version),
    "os_name": os.name, "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
    "glibc": platform.libc_ver()[1]}))
"""


# -- what the target needs ----------------------------------------------------------------------

def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
        if name is None:
            raise SetupError(f"{wheel}: no .dist-info/METADATA (not a wheel?)")
        return email.message_from_bytes(z.read(name))


def target_requirements(metadata: email.message.Message, extra: str, env: dict[str, str]) -> list:
    """Requires-Dist of ``extra`` as a machine with marker environment ``env`` resolves them: one
    Requirement per distribution (``numpy>=1.23`` and ``numpy<2; armv7l`` become ``numpy<2,>=1.23``)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    marker_env = {k: v for k, v in env.items() if k != "glibc"}
    merged: dict[str, Requirement] = {}
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({**marker_env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name in merged:
            merged[name].specifier &= req.specifier
            merged[name].extras |= req.extras
            continue
        req.marker = None
        merged[name] = req
    return list(merged.values())


def installed_distributions(site: Path) -> dict[str, str]:
    """{canonical name: version} of the distributions in ``site`` (dist-info and egg-info)."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    out = {}
    for d in metadata.distributions(path=[str(site)]):
        name = d.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), d.version)
    return out


def split_provided(reqs: list, provided: dict[str, str]) -> tuple[list, list[str]]:
    """(requirements to download, notes on those the system provides); a system version outside a
    requirement's range is a SetupError (pip would try to replace a Debian package)."""
    from packaging.utils import canonicalize_name

    todo, notes = [], []
    for req in reqs:
        have = provided.get(canonicalize_name(req.name))
        if have is None:
            todo.append(req)
        elif req.specifier.contains(have, prereleases=True):
            notes.append(f"{req} provided by Debian ({req.name} {have})")
        else:
            raise SetupError(f"{req} is required but Debian provides {req.name} {have}")
    return todo, notes


def wheel_platforms(machine: str, glibc: str) -> list[str]:
    """pip ``--platform`` tags a glibc ``glibc`` system on ``machine`` accepts. Every
    ``manylinux_2_N`` must be listed: pip matches them literally (without ``_2_27`` it silently picks
    ai-edge-litert 1.4.0 on aarch64; tflite-runtime's armv7l wheel is ``_2_34``)."""
    major, minor = (int(p) for p in glibc.split(".")[:2])
    if major != 2 or minor < 17:
        raise SetupError(f"glibc {glibc} on {machine}: manylinux wheels need glibc 2.17 or newer")
    legacy = ["linux_" + machine] if machine.startswith("armv") else []  # Pi wheels are often linux_armv7l
    return legacy + [f"manylinux2014_{machine}"] + [f"manylinux_2_{n}_{machine}" for n in range(17, minor + 1)]


def download_command(reqs: list, env: dict[str, str], dest: Path, *, deps: bool) -> list[str]:
    """``pip download`` of ``reqs`` for the guest (its Python version, its platform tags)."""
    platforms = [a for p in wheel_platforms(env["platform_machine"], env["glibc"]) for a in ("--platform", p)]
    return [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
            "--python-version", env["python_version"], "--implementation", "cp", *platforms,
            *([] if deps else ["--no-deps"]), "-d", str(dest), *sorted(str(r) for r in reqs)]


# -- host-side pieces: the edgeport wheel, pip for the guest, the wheelhouse ----------------------------

def source_fingerprint(source: Path) -> str:
    """sha256 of pyproject.toml, README.md and every file of the packages it maps (recursively)."""
    import tomllib

    config = tomllib.loads((source / "pyproject.toml").read_text())
    dirs = sorted(set(config.get("tool", {}).get("setuptools", {}).get("package-dir", {}).values())) or ["."]
    h = hashlib.sha256()
    for f in [source / "pyproject.toml", source / "README.md", *(
            p for d in dirs for p in sorted((source / d).rglob("*")) if p.is_file()
            and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))]:
        if f.is_file():
            h.update(str(f.relative_to(source)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def edgeport_wheel(source: Path, cache: Path) -> tuple[Path, str]:
    """``pip wheel --no-deps`` of ``source`` (built from a copy: the checkout gets no build/), cached
    by the source's fingerprint; returns (the wheel, the fingerprint)."""
    fingerprint = source_fingerprint(source)
    dest = cache / "edgeport-wheel"
    wheels = sorted(dest.glob("edgeport-*.whl"))
    if stamp_of(dest) == fingerprint and len(wheels) == 1:
        return wheels[0], fingerprint
    fresh(dest)
    print(f"arm-check: pip wheel --no-deps {source}", flush=True)
    import tomllib

    dirs = set(tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    with tempfile.TemporaryDirectory(prefix="edgeport-src-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ["pyproject.toml", "README.md", *sorted(dirs)]:
            src = source / name
            if src.is_dir():
                shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif src.exists():
                shutil.copy2(src, copy / name)
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
             "-w", str(dest), str(copy)], f"pip wheel {source} failed", timeout=900)
    wheels = sorted(dest.glob("edgeport-*.whl"))
    if len(wheels) != 1:
        raise SetupError(f"pip wheel {source} made {[w.name for w in wheels]}, not one edgeport wheel")
    set_stamp(dest, fingerprint)
    return wheels[0], fingerprint


def guest_pip(cache: Path) -> Path:
    """pip for the guests (Debian's minbase Python has none): this host's pip version, its wheel
    unpacked (``python DIR/pip`` runs it; unlike a zip, the guest can cache its bytecode there)."""
    from importlib.metadata import version

    want = version("pip")
    dest = cache / "pip"
    if stamp_of(dest) == want and (dest / "pip/__main__.py").is_file():
        return dest
    fresh(dest)
    with tempfile.TemporaryDirectory(prefix="edgeport-pip-") as tmp:
        run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "-d", tmp, f"pip=={want}"], f"pip download pip=={want} failed", timeout=600)
        found = sorted(Path(tmp).glob(f"pip-{want}-*.whl"))
        if not found:
            raise SetupError(f"pip download pip=={want} left no wheel")
        with zipfile.ZipFile(found[0]) as z:
            z.extractall(dest)
    set_stamp(dest, want)
    return dest


def wheelhouse(cache: Path, reqs: list, env: dict[str, str], *, deps: bool) -> Path:
    """``cache/wheels-MACHINE``: the target's wheels for ``reqs`` (with their dependencies when
    ``deps``), downloaded once per requirement list."""
    dest = cache / f"wheels-{env['platform_machine']}"
    command = download_command(reqs, env, dest, deps=deps)
    stamp = key(*command[1:])
    if stamp_of(dest) == stamp:
        return dest
    fresh(dest)
    print(f"arm-check: pip download for {env['platform_machine']}: {', '.join(sorted(map(str, reqs)))}", flush=True)
    run(command, f"pip could not download the {env['platform_machine']} wheels of {', '.join(map(str, reqs))}",
        timeout=1800)
    set_stamp(dest, stamp)
    return dest


# -- the guest venv ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuestVenv:
    image: BoardImage

    @property
    def path(self) -> Path:
        return self.image.home / "venv"

    @property
    def python(self) -> Path:
        return self.path / "bin" / self.image.python.name

    def pip(self, pip: Path, command: str, *args: str) -> None:
        """The guest's pip (``pip`` from :func:`guest_pip`), reading no configuration (``--isolated``)."""
        run(self.image.command(self.python, str(pip / "pip"), command, "--isolated", "--disable-pip-version-check",
                               *args),
            f"{self.image.board.key}: guest pip {command} failed", timeout=1800, env=self.image.env(),
            cwd=self.image.home)


def marker_environment(image: BoardImage) -> dict[str, str]:
    """The guest Python's marker environment and glibc (one run of its own interpreter)."""
    proc = run(image.command(image.python, "-I", "-c", MARKER_ENV),
               f"{image.board.key}: the guest Python did not start", timeout=300, env=image.env(), cwd=image.home)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def install_pi(image: BoardImage, cache: Path, wheel: Path, fingerprint: str) -> tuple[GuestVenv, dict[str, Any]]:
    """``pip install 'edgeport[pi]'`` in the board's venv: made once per wheelhouse; when only the
    source changed, edgeport is uninstalled and ``edgeport[pi]`` installed again (the guest's pip
    resolves the extra again against what is there). Returns the venv and what was done."""
    board, venv = image.board, GuestVenv(image)
    env = marker_environment(image)
    reqs = target_requirements(wheel_metadata(wheel), EXTRA, env)
    provided = {}
    if board.system_site_packages:
        provided = installed_distributions(image.rootfs / "usr/lib/python3/dist-packages")
    todo, notes = split_provided(reqs, provided)
    # Where Debian provides packages, dependencies are left to the guest's pip (it sees them);
    # resolving here would look for wheels PyPI does not have (NumPy for armv7l).
    house = wheelhouse(cache, todo, env, deps=not board.system_site_packages)
    pip = guest_pip(cache)
    info: dict[str, Any] = {"marker_environment": env, "requirements": [str(r) for r in reqs],
                            "downloaded_for": [str(r) for r in todo], "provided_by_debian": notes,
                            "wheelhouse": sorted(p.name for p in house.glob("*.whl")), "pip": stamp_of(pip)}
    install = ["install", "--no-cache-dir", "--no-index", "--find-links", str(house), "--find-links",
               str(wheel.parent), f"edgeport[{EXTRA}]"]
    stamp = key(image.stamp, board.system_site_packages, *info["wheelhouse"], info["pip"])
    if stamp_of(venv.path) != stamp or not venv.python.exists():
        info["done"] = "new venv, pip install edgeport[pi]"
        print(f"arm-check: {board.key}: guest venv + pip install 'edgeport[{EXTRA}]' ({board.machine}, "
              f"{board.qemu_cpu})", flush=True)
        fresh(venv.path)
        run(image.command(image.python, "-m", "venv", "--copies", "--without-pip",
                          *(["--system-site-packages"] if board.system_site_packages else []), str(venv.path)),
            f"{board.key}: python3.11 -m venv failed", timeout=600, env=image.env(), cwd=image.home)
        venv.pip(pip, *install)
        venv.pip(pip, "check")
        set_stamp(venv.path, stamp)
    elif stamp_of(venv.path / "edgeport") != fingerprint:
        info["done"] = "source changed: pip uninstall edgeport, pip install edgeport[pi]"
        print(f"arm-check: {board.key}: the source changed: pip install 'edgeport[{EXTRA}]' again", flush=True)
        set_stamp(venv.path / "edgeport", None)
        venv.pip(pip, "uninstall", "-y", "edgeport")
        venv.pip(pip, *install)
    else:
        info["done"] = "cached"
        return venv, info
    set_stamp(venv.path / "edgeport", fingerprint)
    twins = [cache / k / "venv" for k, b in BOARDS.items() if k != board.key and b.debian_arch == board.debian_arch]
    info["shared_bytes"] = sum(share_identical(t, venv.path) for t in twins if t.is_dir())
    return venv, info


# -- inside the guest ------------------------------------------------------------------------------

def inventory() -> dict[str, Any]:
    """What this interpreter has: machine, Python, every distribution, where edgeport and NumPy come
    from, whether TensorFlow could be imported, the CPU it was told about. Stdlib only."""
    import importlib.util
    import platform
    import re
    from importlib import metadata

    dists: dict[str, dict[str, str]] = {}
    for d in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", d.metadata["Name"] or "").lower()
        if name and name not in dists:
            dists[name] = {"version": d.version, "location": str(d.locate_file(""))}
    cpu = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, sep, v = line.partition(":")
            if sep and k.strip() in ("CPU part", "Model", "Features") and k.strip() not in cpu:
                cpu[k.strip()] = v.strip()
    except OSError:
        pass
    spec = importlib.util.find_spec("edgeport")
    return {"machine": platform.machine(), "python": platform.python_version(), "executable": sys.executable,
            "prefix": sys.prefix, "distributions": dists, "cpuinfo": cpu,
            "edgeport_file": spec.origin if spec else None,
            "tensorflow_importable": importlib.util.find_spec("tensorflow") is not None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["inventory"]:
        print("usage: python -m edgeport.benchmarks.devices.pi_venv inventory", file=sys.stderr)
        return 2
    print(json.dumps(inventory()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
