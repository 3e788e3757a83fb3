"""The Raspberry Pi boards `make arm-check` emulates: what each one is, and what a user installs on it.

A board is a Debian bookworm userland (Raspberry Pi OS 12: Python 3.11, glibc 2.36) run by qemu-user
with the board's CPU, and the ``/proc/cpuinfo`` that CPU's kernel writes: qemu serves it from the
sysroot (``-L``), and ai-edge-litert and ONNX Runtime both crash under qemu-user without it. It must
describe the ``-cpu`` qemu emulates: the Pi 5 text under a Cortex-A72 makes the engines use dot
product instructions the A72 lacks (SIGILL).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeport.errors import UnknownNameError


@dataclass(frozen=True)
class Cpu:
    """One core's block of /proc/cpuinfo as the Raspberry Pi OS kernel prints it."""

    features: str
    part: str
    variant: str
    revision: int
    architecture: int
    model_name: str | None = None  # 32-bit kernels print "model name"; arm64 ones do not
    bogomips: str = "108.00"


@dataclass(frozen=True)
class Board:
    key: str
    name: str
    model: str  # the "Model" line: the board as its firmware names it
    machine: str  # platform.machine() inside: what pip's environment markers see
    debian_arch: str
    qemu: str
    qemu_cpu: str
    cpu: Cpu
    firmware: tuple[tuple[str, str], ...]  # the lines after the cores: Hardware, Revision, Serial, Model
    #: python3-venv: Raspberry Pi OS has it (``python3 -m venv`` works there), Debian's minbase does not
    debian_packages: tuple[str, ...] = ("python3", "python3-venv")
    system_site_packages: bool = False  # the guest venv sees Debian's NumPy (32-bit: PyPI has none)
    #: distributions edgeport[pi] must install here, as version specifiers
    expect: dict[str, str] = field(default_factory=dict)
    #: distributions it must not install here (no wheel for this machine)
    absent: tuple[str, ...] = ()
    #: runtime -> the engine verify must report for it (prefix of "engine version")
    engines: dict[str, str] = field(default_factory=dict)
    #: why the runtimes missing from ``engines`` do not run on this board
    not_here: str = ""
    cores: int = 4

    @property
    def runtimes(self) -> list[str]:
        return list(self.engines)

    @property
    def device_name(self) -> str:
        return f"{self.name} (emulated: {self.qemu.removesuffix('-static')} {self.qemu_cpu})"


#: Never on a device: the point of edgeport[pi] is running without TensorFlow.
FORBIDDEN = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tf-keras", "keras", "tf-nightly")

_AARCH64_EXPECT = {"ai-edge-litert": "==2.3.*", "onnxruntime": "==1.31.*", "numpy": ">=1.23"}
_AARCH64_ENGINES = {"litert": "ai_edge_litert 2.3.", "onnxruntime": "onnxruntime 1.31."}
_SERIAL = ("Serial", "10000000deadbeef")

PI4 = Board(
    "pi4", "Raspberry Pi 4, 64-bit Pi OS", "Raspberry Pi 4 Model B Rev 1.5", "aarch64", "arm64",
    "qemu-aarch64-static", "cortex-a72",
    Cpu("fp asimd evtstrm crc32 cpuid", part="0xd08", variant="0x0", revision=3, architecture=8),
    (("Hardware", "BCM2835"), ("Revision", "c03115"), _SERIAL, ("Model", "Raspberry Pi 4 Model B Rev 1.5")),
    expect=_AARCH64_EXPECT, absent=("tflite-runtime",), engines=_AARCH64_ENGINES)

PI5 = Board(
    "pi5", "Raspberry Pi 5, 64-bit Pi OS", "Raspberry Pi 5 Model B Rev 1.0", "aarch64", "arm64",
    "qemu-aarch64-static", "cortex-a76",
    Cpu("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        part="0xd0b", variant="0x4", revision=1, architecture=8),
    (("Revision", "d04170"), _SERIAL, ("Model", "Raspberry Pi 5 Model B Rev 1.0")),  # no Hardware line
    expect=_AARCH64_EXPECT, absent=("tflite-runtime",), engines=_AARCH64_ENGINES)

PI32 = Board(
    "pi32", "Raspberry Pi 2, 32-bit Pi OS", "Raspberry Pi 2 Model B Rev 1.1", "armv7l", "armhf",
    "qemu-arm-static", "cortex-a7",
    Cpu("half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm",
        part="0xc07", variant="0x0", revision=5, architecture=7, model_name="ARMv7 Processor rev 5 (v7l)",
        bogomips="38.40"),
    (("Hardware", "BCM2835"), ("Revision", "a01041"), _SERIAL, ("Model", "Raspberry Pi 2 Model B Rev 1.1")),
    debian_packages=("python3", "python3-venv", "python3-numpy", "python3-pil", "ca-certificates"),
    system_site_packages=True,  # ca-certificates: its engines come from PyPI (the --offline wheels are aarch64's)
    expect={"tflite-runtime": "==2.14.0", "numpy": ">=1.23,<2"}, absent=("ai-edge-litert", "onnxruntime"),
    engines={"litert": "tflite_runtime 2.14.0"},
    not_here="no ONNX Runtime wheel for armv7l (verify --runtimes litert)")

BOARDS: dict[str, Board] = {b.key: b for b in (PI4, PI5, PI32)}


def board(key: str) -> Board:
    try:
        return BOARDS[key]
    except KeyError:
        raise UnknownNameError("board", key, tuple(BOARDS)) from None


def cpuinfo_text(b: Board) -> str:
    """/proc/cpuinfo as the board's Raspberry Pi OS kernel writes it."""
    c = b.cpu
    lines = []
    for i in range(b.cores):
        lines += [f"processor\t: {i}"] + ([f"model name\t: {c.model_name}"] if c.model_name else [])
        lines += [f"BogoMIPS\t: {c.bogomips}", f"Features\t: {c.features}", "CPU implementer\t: 0x41",
                  f"CPU architecture: {c.architecture}", f"CPU variant\t: {c.variant}", f"CPU part\t: {c.part}",
                  f"CPU revision\t: {c.revision}", ""]
    for key, value in b.firmware:  # the kernel pads the key with tabs to two tab stops
        lines.append(f"{key}{chr(9) if len(key) >= 8 else chr(9) * 2}: {value}")
    return "\n".join(lines) + "\n"
