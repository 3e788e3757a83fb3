"""What machine a figure was measured on: CPU, cores, ISA flags, GPU, library versions.

Reads /proc/cpuinfo, platform and nvidia-smi; versions come from package metadata, so nothing
here imports TensorFlow (it runs as-is on a Raspberry Pi).
"""
from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from edgeport.versions import package_versions
from pathlib import Path
from typing import Any

#: ISA features that decide inference speed: name shown -> /proc/cpuinfo flag(s).
X86_FEATURES = {"sse4_2": ("sse4_2",), "avx": ("avx",), "avx2": ("avx2",), "fma": ("fma",),
                "f16c": ("f16c",), "avx512f": ("avx512f",), "avx512bw": ("avx512bw",),
                "avx512_vnni": ("avx512_vnni",), "avx_vnni": ("avx_vnni",),
                "avx512_bf16": ("avx512_bf16",), "avx512_fp16": ("avx512_fp16",),
                "amx": ("amx_tile", "amx_int8", "amx_bf16")}
ARM_FEATURES = {"neon": ("asimd", "neon"), "fp16": ("fphp", "asimdhp"), "dotprod": ("asimddp",),
                "i8mm": ("i8mm",), "bf16": ("bf16",), "sve": ("sve",), "sve2": ("sve2",)}
PACKAGES = ("numpy", "tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert", "tflite-runtime",
            "onnx", "onnxruntime", "onnxruntime-gpu", "tf2onnx", "edgeport")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as {key: value} (empty where unreadable)."""
    info: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key and key not in info:
            info[key] = value.strip()
    return info


def cpu_model(info: dict[str, str] | None = None) -> str:
    info = _cpuinfo() if info is None else info
    for key in ("model name", "hardware", "cpu model", "processor"):
        if info.get(key) and not info[key].isdigit():
            return info[key]
    if info.get("cpu part"):  # Arm without a model name: implementer/part codes
        return f"Arm implementer {info.get('cpu implementer', '?')} part {info['cpu part']}"
    return platform.processor() or platform.machine() or "unknown"


def isa_flags(info: dict[str, str] | None = None, machine: str | None = None) -> dict[str, bool]:
    """The speed-relevant ISA features of this CPU: x86 (AVX2, AVX-512, VNNI, AMX) or Arm (NEON, dotprod, i8mm)."""
    info = _cpuinfo() if info is None else info
    flags = set((info.get("flags") or info.get("features") or "").split())
    machine = (machine or platform.machine()).lower()
    table = ARM_FEATURES if machine.startswith(("arm", "aarch64")) else X86_FEATURES
    found = {name: any(f in flags for f in alts) for name, alts in table.items()}
    if table is ARM_FEATURES and machine in ("aarch64", "arm64"):
        found["neon"] = True  # Advanced SIMD is mandatory on AArch64
    return found


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as reported by nvidia-smi (name, driver, memory); [] when there is none."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        proc = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0]:
            rows.append({"name": parts[0], "driver": parts[1], "memory": parts[2] if len(parts) > 2 else ""})
    return rows


def library_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    return package_versions(packages)


def device_info() -> dict[str, Any]:
    """The device block written into bench.json and keyed on by `edgeport report merge`."""
    info = _cpuinfo()
    gpu_list = gpus()
    flags = isa_flags(info)
    return {
        "hostname": socket.gethostname(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(info),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count() or 1,
        "isa": flags,
        "isa_summary": " ".join(name for name, present in flags.items() if present),
        "gpus": gpu_list,
        "gpu": gpu_list[0]["name"] if gpu_list else None,
        "gpu_driver": gpu_list[0]["driver"] if gpu_list else None,
        "versions": library_versions(),
    }


def device_key(device: dict[str, Any]) -> str:
    """A short stable label for one machine: hostname, CPU and GPU."""
    parts = [device.get("hostname") or "?", device.get("cpu") or "?"]
    if device.get("gpu"):
        parts.append(device["gpu"])
    return " / ".join(parts)
