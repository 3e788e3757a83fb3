"""What a device is, asked on the device: run there as ``python3 - ARGS_JSON`` (the script on stdin).

Standard library only, and no f-strings nor annotations, so a Python too old for edgeport still
answers with its version. Prints one JSON object: the machine, its Python and marker environment,
board model, OS, cores, memory, free disk under the workdir, and which engines import (versions).
"""
import json
import os
import platform
import sys


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def _os_name():
    text = _read("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system() + " " + platform.release()


def _meminfo():
    out = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable") and rest.split():
            out[key] = int(rest.split()[0]) * 1024
    return out


#: Arm's "CPU part" numbers of the cores Raspberry Pis and similar boards use (a 64-bit Arm kernel prints
#: no "model name")
ARM_PARTS = {"0xc07": "Cortex-A7", "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
             "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd46": "Cortex-A510", "0xd4b": "Cortex-A78C"}


def _cpu():
    seen = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if value.strip():
            seen.setdefault(key.strip(), value.strip())
    return (seen.get("model name") or ARM_PARTS.get(seen.get("CPU part")) or seen.get("Hardware")
            or seen.get("Processor") or platform.processor() or None)


def _free(path):
    path = os.path.expanduser(path)
    while path and not os.path.isdir(path):
        path = os.path.dirname(path.rstrip("/")) or "."
    st = os.statvfs(path or ".")
    return st.f_bavail * st.f_frsize


def _version(dists):
    try:
        from importlib import metadata
    except ImportError:
        return "?"
    for dist in dists:
        try:
            return metadata.version(dist)
        except Exception:  # noqa: BLE001 - PackageNotFoundError: try the engine's next distribution name
            continue
    return "?"


def _engines(engines):
    out = {}
    try:
        from importlib.util import find_spec
    except ImportError:
        return out
    for module, dists in engines:
        out[module] = _version(dists) if find_spec(module) is not None else None
    return out


def main():
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    info = sys.version_info
    if info[0] < 3:  # too old for the rest: its version is the answer
        print(json.dumps({"python": "%d.%d.%d" % tuple(info[:3]), "executable": sys.executable,
                          "machine": platform.machine()}))
        return
    model = _read("/proc/device-tree/model")
    workdir = args.get("workdir", ".")
    venv_python = os.path.join(os.path.expanduser(workdir), "venv", "bin", "python")
    print(json.dumps({
        "python": "%d.%d.%d" % (info[0], info[1], info[2]), "executable": sys.executable,
        "machine": platform.machine(), "system": platform.system(), "os": _os_name(),
        "model": model.strip("\x00\n ") if model else None, "cpu": _cpu(), "cores": os.cpu_count(),
        "memory": _meminfo(), "disk_free": _free(workdir), "home": os.path.expanduser("~"),
        "venv": os.path.exists(venv_python), "in_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "engines": _engines(args.get("engines", [])), "edgeport": _engines([["edgeport", ["edgeport"]]])["edgeport"],
        "markers": {"platform_machine": platform.machine(), "python_version": "%d.%d" % (info[0], info[1]),
                    "python_full_version": platform.python_version(), "sys_platform": sys.platform,
                    "platform_system": platform.system(), "os_name": os.name,
                    "implementation_name": sys.implementation.name,
                    "platform_python_implementation": platform.python_implementation(),
                    "platform_release": platform.release(), "platform_version": platform.version(),
                    "implementation_version": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
