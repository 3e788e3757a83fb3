"""`edgeport verify MODEL --on NAME,NAME`: the rpi bundle proved on a real device over ssh (a loopback
sshd, this machine's plain python3: edgeport installed there from its own wheel into a venv, the
engines from the package index), rows beside the workstation's; a failing device loses nothing of
another's. The device's venv is kept under the data home, so only the first run installs engines."""
from __future__ import annotations

import json
import sys

import pytest

from edgeport.cli import main
from edgeport.devices import loopback
from edgeport.devices.command import device_add
from edgeport.names import data_home

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(loopback.missing() is not None, reason=f"no loopback device: {loopback.missing()}")]


@pytest.fixture
def lb(loopback_device):
    return loopback_device  # tests/conftest.py: one sshd per session


def test_verify_on_the_loopback_device_and_a_dead_one(lb, device_workspace, tmp_path, capsys):
    device_workspace(120)
    address = f"ssh://{lb.user}@127.0.0.1:{lb.port}"
    device_add("loop", address, identity=lb.client_key, ssh_config=lb.ssh_config,
               workdir=str(data_home() / "loopback-device"))
    device_add("dead", f"ssh://{lb.user}@127.0.0.1:{loopback.free_port()}", identity=lb.client_key,
               ssh_config=lb.ssh_config)
    capsys.readouterr()
    assert main(["verify", "tiny_mlp", "--out", "out", "--formats", "tflite_fp32", "--on", "loop,dead"]) == 1
    out = capsys.readouterr().out
    print(out, file=sys.stderr)  # the transcript, with -s
    row = next(line for line in out.splitlines() if line.startswith("tflite_fp32"))
    assert row.count("PASS 100.00%") == 2, row  # the workstation's and the device's
    assert "dead: FAILED: dead (ssh://" in out and "unreachable" in out
    assert "loop: PASS; same gates as the workstation's (1 row)" in out
    came_back = json.loads((tmp_path / "dist" / "tiny_mlp-rpi.loop.verify.json").read_text())
    assert came_back["ok"] and came_back["results"][0]["format"] == "tflite_fp32"
    # reused; --gates reaches the device's verify (its verify.json records them), the table says they differ
    assert main(["verify", "tiny_mlp", "--out", "out", "--formats", "tflite_fp32", "--on", "loop",
                 "--gates", "float32.min_agreement=0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "installing" not in out and "--gates float32.min_agreement=0.0" in out and "--threads 1" in out
    assert "gates DIFFER from the workstation's: tflite_fp32 on litert: min_agreement 0.0 (workstation 0.999)" in out
    came_back = json.loads((tmp_path / "dist" / "tiny_mlp-rpi.loop.verify.json").read_text())
    assert came_back["gates"]["float32"]["min_agreement"] == 0 and came_back["results"][0]["gate"]["min_agreement"] == 0
    assert came_back["results"][0]["timing"]["threads"] == 1
