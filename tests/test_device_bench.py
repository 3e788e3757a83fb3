"""`edgeport bench MODEL --on NAME,NAME` on the loopback device (this machine's plain python3, edgeport
from its own wheel in a venv there) and a dead one: the device's rows come back keyed by its identity
(board, CPU, OS, engine versions), the dead device is one line and loses nothing of the other's; then
`edgeport report` shows the device's latency beside the workstation's, and an emulated device's
timings are labelled emulated and never count as latency. The device's venv is kept under the data
home, so only the first run installs engines."""
from __future__ import annotations

import json
import sys

import pytest

from edgeport.benchmarks.report.rows import device_rows
from edgeport.cli import main
from edgeport.devices.bench_on import BenchOnReport, DeviceBench, bench_on
from edgeport.errors import EdgeportError
from edgeport.devices import loopback
from edgeport.devices.command import device_add
from edgeport.names import data_home


@pytest.mark.slow  # ~45 s: export, verify, bench here, edgeport's wheel (re)built and installed on the device
def test_bench_on_the_loopback_device_and_a_dead_one(loopback_device, device_workspace, tmp_path, capsys):
    lb = loopback_device
    device_workspace(80, bench=True)
    kw = {"identity": lb.client_key, "ssh_config": lb.ssh_config}
    device_add("loop", f"ssh://{lb.user}@127.0.0.1:{lb.port}", workdir=str(data_home() / "loopback-device"), **kw)
    device_add("dead", f"ssh://{lb.user}@127.0.0.1:{loopback.free_port()}", **kw)
    capsys.readouterr()
    assert main(["bench", "tiny_mlp", "--out", "out", "--on", "loop,dead", "--formats", "tflite_fp32",
                 "--seconds", "0.1", "--threads", "1"]) == 1  # the dead device fails the command, not the other's rows
    out = capsys.readouterr().out
    print(out, file=sys.stderr)  # the transcript, with -s
    rows = [line.split() for line in out.splitlines() if line.split()[1:2] == ["tflite_fp32"]]
    assert [r[0] for r in rows] == ["workstation", "loop"], out
    assert "dead: FAILED: dead (ssh://" in out and "unreachable" in out
    came = json.loads((tmp_path / "out" / "tiny_mlp" / "devices" / "loop.bench.json").read_text())
    ident = came["device_identity"]
    assert ident["machine"] and ident["os"] and "ai_edge_litert" in ident["engines"] and not ident["emulated"]
    assert came["device_name"] == ident["label"] and came["bench"]["rows"][0]["batch1"]["p50_us"] > 0
    assert not (tmp_path / "out" / "tiny_mlp" / "devices" / "dead.bench.json").exists()

    assert main(["report", "tiny_mlp", "--out", "out", "--no-browser"]) == 0
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    device_rows = [r for r in report["models"]["tiny_mlp"]["rows"] if r.get("device") == ident["label"]]
    assert device_rows and device_rows[0]["p50_us"] > 0 and device_rows[0]["gate"] == "pass"


ROW = {"format": "tflite_fp32", "runtime": "litert", "threads": 1, "label": "litert", "load_s": 0.02,
       "batch1": {"p50_us": 900.0, "p99_us": 1500.0}, "batch32": {"images_per_s": 4000.0}, "peak_rss_bytes": 5e7}


def _bench_json(model: str, emulated: bool) -> dict:
    label = ("emulated " if emulated else "") + "Raspberry Pi 5 Model B Rev 1.0 / Cortex-A76 / Debian 12 / litert 2.3.0"
    return {"device_name": label, "device_identity": {"device": "pi5", "emulated": emulated, "label": label},
            "models": {model: {"rows": [{"model": model, "format": "tflite_fp32", "runtime": "litert",
                                         "target": "cpu", "p50_us": 900.0, "throughput_ips": 4000.0}]}},
            "bench": {"rows": [ROW]}}


def test_report_keys_device_rows_by_identity_and_emulated_time_is_never_latency(tmp_path):
    import json

    model_dir = tmp_path / "m"
    (model_dir / "devices").mkdir(parents=True)
    (model_dir / "devices" / "pi5.bench.json").write_text(json.dumps(_bench_json("m", False)))
    (model_dir / "devices" / "qemu5.bench.json").write_text(json.dumps(_bench_json("m", True)))
    real, emulated = device_rows(model_dir, {("tflite_fp32", "litert"): "pass"})
    assert real["device"].startswith("Raspberry Pi 5") and real["p50_us"] == 900.0 and real["gate"] == "pass"
    assert real["target"] == "device pi5" and emulated["target"] == "emulated device pi5"
    assert emulated["p50_us"] is None and emulated["throughput_ips"] is None and emulated["emulated_p50_us"] == 900.0
    from edgeport.benchmarks.report import html

    page = html._row(emulated, [])
    assert "emulated 900" in page and "emulated 4,000" in page


def test_bench_on_table_and_refusals(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    runs = [DeviceBench("pi5", {"label": "Pi 5", "emulated": False}, {"bench": {"rows": [ROW]}}, tmp_path / "x"),
            DeviceBench("qemu", {"label": "emulated Pi 5", "emulated": True}, {"bench": {"rows": [ROW]}}),
            DeviceBench("dead", error="dead (ssh://pi@h): unreachable")]
    text = BenchOnReport("m", None, runs).render()
    lines = text.splitlines()
    assert next(ln for ln in lines if ln.startswith("pi5 ")).split()[6:8] == ["900.0", "µs"]
    assert next(ln for ln in lines if ln.startswith("qemu ")).split()[4:6] == ["emulated", "20"]
    assert "emulated 900.0 µs" in text and "dead: FAILED: dead" in text
    assert "no bench.json yet" in text and not BenchOnReport("m", None, runs).ok
    with pytest.raises(EdgeportError, match="--bundle cannot go with --on"):
        bench_on("m", "pi5", unsupported={"--bundle": "x.tar.gz"})
    with pytest.raises(EdgeportError, match="no device named 'pi5'"):
        bench_on("m", "pi5")
