"""`edgeport report` and `edgeport report merge`: files, plots, and a table keyed by device."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgeport import cli
from edgeport.benchmarks.bench.command import bench_model
from edgeport.benchmarks.report.command import build_report, merge_reports
from edgeport.benchmarks.report.rows import COLUMNS
from edgeport.benchmarks.verify.command import verify_model
from edgeport.errors import EdgeportError

NAME = "tiny_cnn"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def artifacts(tiny_models, tmp_path_factory) -> Path:
    """A tiny CNN exported to four formats (a C array among them), verified, benchmarked, with a training.json."""
    from edgeport.export.pipeline import export_model

    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    np.save(root / "cal.npy", rng.uniform(0, 255, (20, 28, 28, 1)).astype(np.float32))
    np.savez(root / "test.npz", x_test=rng.integers(0, 256, (60, 28, 28, 1)).astype(np.uint8),
             y_test=rng.integers(0, 10, 60))
    out = root / "artifacts"
    report = export_model(str(tiny_models["cnn"]), formats=["tflite_fp32", "tflite_int8", "onnx", "c_array"], out=out,
                          calibration_data=str(root / "cal.npy"))
    assert report.ok, report.render()
    history = {"loss": [1.2, 0.8, 0.6], "accuracy": [0.6, 0.75, 0.8], "val_loss": [1.0, 0.9, 0.85],
               "val_accuracy": [0.65, 0.7, 0.72]}
    (out / NAME / "training.json").write_text(json.dumps({"model": NAME, "history": history, "seed": 0,
                                                          "test_metrics": {"accuracy": 0.72}, "seconds": 3.0}))
    verify_model(NAME, out=out, data_npz=str(root / "test.npz"), gates="quantized.min_agreement=0",
                 debug_int8=False)
    bench_model(NAME, out=out, seconds=0.1, threads=[1], keras_predict=False, peak_n=128,
                formats=["keras", "tflite_fp32", "tflite_int8"], data_npz=str(root / "test.npz"))
    return out


def _valid_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 200


def test_report_writes_json_csv_md_and_plots(artifacts):
    report = build_report([NAME], out=artifacts)
    d = artifacts / "report"
    for name in ("report.json", "report.csv", "report.md", "accuracy_vs_latency.png", "size_per_format.png",
                 f"training_curves_{NAME}.png", f"prediction_grid_{NAME}.png"):
        assert (d / name).is_file(), name
    for png in d.glob("*.png"):
        _valid_png(png)
    data = json.loads((d / "report.json").read_text())
    rows = data["models"][NAME]["rows"]
    by = {(r["format"], r["runtime"]): r for r in rows}
    assert by[("tflite_fp32", "litert")]["gate"] == "pass"
    assert by[("tflite_fp32", "litert")]["p50_us"] > 0 and by[("tflite_fp32", "litert")]["throughput_ips"] > 0
    assert by[("onnx", "onnxruntime")]["accuracy"] is not None and by[("onnx", "onnxruntime")].get("p50_us") is None
    assert by[("keras", "keras (reference)")]["gate"] == "reference"
    assert data["device"]["cpu"] and data["device_name"]
    with open(d / "report.csv") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == COLUMNS and len(table) == len(rows)
    md = (d / "report.md").read_text()
    assert f"## {NAME}" in md and "| format | runtime | size | accuracy |" in md and "p50" in md
    assert "![accuracy_vs_latency](accuracy_vs_latency.png)" in md and "per-call framework overhead" in md
    assert "tflite_int8" in report.render()
    page = (d / "index.html").read_text()  # the page to open: every image beside it, nothing from the network
    assert f"<h2 id=\"{NAME}\">" in page and "tflite_int8" in page and "://" not in page
    for img in re.findall(r'src="([^"]+)"', page):
        assert (d / img).is_file(), img
    proof = report.data["page"]  # opened in headless Chromium when there is one (make web-deps)
    if proof["ok"] is not None:
        assert proof["ok"] and not proof["problems"], proof
        assert proof["failing_rows"] == sum(r["gate"] in ("fail", "refused", "error") for r in rows)
        _valid_png(d / "index.png")


def test_report_says_what_is_missing(artifacts, tmp_path):
    import shutil

    shutil.copytree(artifacts / NAME, tmp_path / NAME)
    (tmp_path / NAME / "verify.json").unlink()
    (tmp_path / NAME / "bench.json").unlink()
    build_report([NAME], out=tmp_path, browser=False)
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"not verified: run `edgeport verify {NAME}`" in md and "not benchmarked" in md


def test_merge_joins_reports_keyed_by_device(artifacts, tmp_path):
    build_report([NAME], out=artifacts, browser=False)
    base = json.loads((artifacts / "report" / "report.json").read_text())
    paths = []
    for device in ("workstation / x86", "raspberrypi / Cortex-A72"):
        p = tmp_path / device.split()[0] / "report.json"
        p.parent.mkdir()
        p.write_text(json.dumps({**base, "device_name": device}))
        paths.append(str(p))
    merged = merge_reports(paths, out=tmp_path / "merged")
    data = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert set(data["devices"]) == {"workstation / x86", "raspberrypi / Cortex-A72"}
    rows = data["models"][NAME]["rows"]
    assert len(rows) == 2 * len(base["models"][NAME]["rows"])
    assert {r["device"] for r in rows} == set(data["devices"])
    md = (tmp_path / "merged" / "report.md").read_text()
    assert "| device | format |" in md and "raspberrypi / Cortex-A72" in md and "workstation / x86" in md
    with open(tmp_path / "merged" / "report.csv") as fh:
        assert {r["device"] for r in csv.DictReader(fh)} == set(data["devices"])
    assert "raspberrypi" in merged.render()
    assert cli.main(["report", "merge", *paths, "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.md").is_file()


def test_merge_refuses_what_is_not_a_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(EdgeportError, match="not an edgeport report"):
        merge_reports([str(bad)], out=tmp_path / "m")


def test_sizes_are_deploy_sizes_a_c_array_counts_its_flash_bytes(artifacts):
    from edgeport.export import registry

    build_report([NAME], out=artifacts, browser=False)
    sec = json.loads((artifacts / "report" / "report.json").read_text())["models"][NAME]
    source = artifacts / NAME / registry.FILES["c_array"]
    int8 = artifacts / NAME / registry.FILES["tflite_int8"]
    # the C source text is several times the model; a device holds the model bytes only
    assert sec["sizes"]["c_array"] == registry.deploy_size("c_array", source) < source.stat().st_size / 3
    assert sec["sizes"]["c_array"] == int8.stat().st_size == sec["sizes"]["tflite_int8"]
    for r in sec["rows"]:
        if r["format"] == "c_array":
            assert r["size_bytes"] == sec["sizes"]["c_array"]


def test_the_grid_shows_the_first_integer_format_that_runs():
    from edgeport.benchmarks.report.command import grid_format

    entry = {"file": "x"}
    assert grid_format({"artifacts": {"tflite_fp32": entry, "onnx_int8": entry, "tflite_int8": entry,
                                      "c_array": entry}}) == "tflite_int8"
    assert grid_format({"artifacts": {"onnx_int8": entry, "c_array": entry}}) == "onnx_int8"
    assert grid_format({"artifacts": {"tflite_fp32": entry, "c_array": entry}}) is None
