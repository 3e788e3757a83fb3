"""An emulated Raspberry Pi 5 reached through ssh takes a real Pi's path: `device add`, `device check`,
`verify MODEL --on`, `bench MODEL --on` and `report` against a loopback sshd whose sessions run the board's
own Python under qemu-user (binfmt_misc, the board's root filesystem and CPU: :mod:`pi_device`), with no
internet there: edgeport is installed from the --offline bundle's own wheel and wheelhouse by its
install.sh. Timings stay labelled emulated. The board's root filesystem, the aarch64 wheels and the
device's venv are cached in the data home; only a changed edgeport wheel is installed again.

Needs qemu-user-static, debootstrap, binfmt_misc (`make arm-deps`, as root) and openssh-server; otherwise it
skips saying why. Measured on the 2-core machine: ~2 min the first time (debootstrap, the aarch64 wheels from
PyPI, the install under qemu), ~80 s cached when the checkout changed (edgeport alone reinstalled), less
when it did not.
"""
from __future__ import annotations

import json
import sys

import pytest

from edgeport.benchmarks.devices import pi_device
from edgeport.cli import main
from edgeport.names import data_home

WHY = pi_device.missing("pi5")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY is not None, reason=f"no emulated Pi 5: {WHY}")]


@pytest.fixture(scope="module")
def pi5(tmp_path_factory):
    from edgeport.benchmarks.devices.binfmt import BinfmtUnavailable

    try:
        pi = pi_device.start("pi5", tmp_path_factory.mktemp("pi5-sshd"))
    except BinfmtUnavailable as exc:  # root, but this kernel lets no handler be registered (a container)
        pytest.skip(f"no emulated Pi 5: {exc}")
    yield pi
    pi.stop()


def test_an_emulated_pi5_through_ssh(pi5, device_workspace, tmp_path, capsys):
    device_workspace(80, bench=True)
    capsys.readouterr()

    assert main(["device", "add", "pi5emu", pi5.address, "--identity", str(pi5.loop.client_key), "--ssh-config",
                 str(pi5.loop.ssh_config), "--python", pi5.python, "--workdir", str(data_home() / "pi5emu-device"),
                 "--emulated"]) == 0
    assert main(["device", "check", "pi5emu"]) == 0
    check = capsys.readouterr().out
    assert "aarch64" in check and "Raspberry Pi 5 Model B Rev 1.0 (emulated" in check and "bookworm" in check, check
    assert "Cortex-A76" in check, check  # from the board's /proc/cpuinfo CPU part (a Pi's kernel names no model)
    assert "ai-edge-litert" in check and "usable" in check, check

    assert main(["verify", "tiny_mlp", "--out", "out", "--formats", "tflite_fp32", "--on", "pi5emu"]) == 0
    verified = capsys.readouterr().out
    row = next(line for line in verified.splitlines() if line.startswith("tflite_fp32"))
    assert row.count("PASS 100.00%") == 2, verified  # the workstation's and the board's
    assert "offline" in verified or "installing" not in verified, verified  # installed from the bundle alone
    came = json.loads((tmp_path / "dist" / "tiny_mlp-rpi.pi5emu.verify.json").read_text())
    assert came["ok"] and "ai_edge_litert 2.3" in came["results"][0]["engine"]

    assert main(["bench", "tiny_mlp", "--out", "out", "--on", "pi5emu", "--formats", "tflite_fp32",
                 "--seconds", "0.2", "--threads", "1"]) == 0
    benched = capsys.readouterr().out
    row = next(line for line in benched.splitlines() if line.startswith("pi5emu "))
    assert "emulated" in row, benched
    ident = json.loads((tmp_path / "out/tiny_mlp/devices/pi5emu.bench.json").read_text())["device_identity"]
    assert ident["emulated"] and ident["machine"] == "aarch64" and ident["board"] == "Raspberry Pi 5 Model B Rev 1.0"

    assert main(["report", "tiny_mlp", "--out", "out", "--no-browser"]) == 0
    rows = json.loads((tmp_path / "out/report/report.json").read_text())["models"]["tiny_mlp"]["rows"]
    board = [r for r in rows if r.get("device") == ident["label"]]
    assert board and board[0]["p50_us"] is None and board[0]["emulated_p50_us"] > 0  # emulated: never latency
    print(check, verified, benched, sep="\n", file=sys.stderr)  # the transcript, with -s
