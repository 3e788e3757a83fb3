"""The wheels a Raspberry Pi gets: ``edgeport[pi]`` resolved for the board, not for this host.

pip evaluates environment markers against the machine it runs on, even with ``--platform``: a
download on x86 would pick the x86 half of the ``pi`` extra. So the board's requirements are
computed here from the edgeport wheel's METADATA with the markers evaluated in the *board's*
environment (:data:`MARKER_ENV`, or 64-bit Pi OS's as the rpi bundle's ``--offline`` knows it), and
downloaded for the board's platform tags (``manylinux_2_17`` … ``manylinux_2_<its glibc>``) into a
wheelhouse: what ``bundle --target rpi --offline`` packs and install.sh installs from. edgeport's own wheel
is built here from the source tree (:func:`edgeport_wheel`, cached by its fingerprint).

Run as ``python -m edgeport.benchmarks.devices.pi_venv inventory`` inside a board, it prints what
is installed there as JSON (stdlib only): `make arm-check` checks the engines and that TensorFlow is absent.
"""
from __future__ import annotations

import email
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from edgeport.benchmarks.devices.pi_sysroot import (
    SetupError, fresh, key, run, set_stamp, stamp_of)

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
    print(f"edgeport wheel: pip wheel --no-deps {source}", flush=True)
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


def wheelhouse(cache: Path, reqs: list, env: dict[str, str], *, deps: bool) -> Path:
    """``cache/wheels-MACHINE``: the target's wheels for ``reqs`` (with their dependencies when
    ``deps``), downloaded once per requirement list."""
    dest = cache / f"wheels-{env['platform_machine']}"
    command = download_command(reqs, env, dest, deps=deps)
    stamp = key(*command[1:])
    if stamp_of(dest) == stamp:
        return dest
    fresh(dest)
    print(f"bundle --offline: pip download the {env['platform_machine']} Python {env['python_version']} wheels of "
          f"{', '.join(sorted(map(str, reqs)))}", flush=True)
    run(command, f"pip could not download the {env['platform_machine']} wheels of {', '.join(map(str, reqs))}",
        timeout=1800)
    set_stamp(dest, stamp)
    return dest


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
