"""The whole pipeline on real Fashion-MNIST: train, export every format, verify, bench, report."""
from __future__ import annotations

import json

import pytest

from edgeport.cli import main
from edgeport.export.registry import INFO


@pytest.mark.slow
def test_fashion_mlp_end_to_end_on_real_data(tmp_path):
    out = str(tmp_path)
    assert main(["train", "fashion_mlp", "--out", out, "--verbose", "0"]) == 0
    trained = json.loads((tmp_path / "fashion_mlp" / "training.json").read_text())
    assert trained["test_metrics"]["accuracy"] >= 0.865  # the course's target, on the real 10k test set

    assert main(["export", "fashion_mlp", "--out", out]) == 0
    manifest = json.loads((tmp_path / "fashion_mlp" / "manifest.json").read_text())
    sizes = {f: e["bytes"] for f, e in manifest["artifacts"].items()}
    assert set(sizes) == {f for f, i in INFO.items() if not i.opt_in} and manifest["calibration"]["samples"] == 200
    assert sizes["tflite_int8"] <= 0.30 * sizes["tflite_fp32"]
    assert sizes["tflite_fp16"] <= 0.55 * sizes["tflite_fp32"]

    assert main(["verify", "fashion_mlp", "--out", out]) == 0  # every gate, full 10k test set
    verified = json.loads((tmp_path / "fashion_mlp" / "verify.json").read_text())
    by_fmt = {(r["format"], r["runtime"]): r for r in verified["results"]}
    for fmt in ("saved_model", "tflite_fp32", "onnx"):
        figures = next(r for (f, _), r in by_fmt.items() if f == fmt)["figures"]
        assert figures["max_abs_diff"] <= 1e-5 and figures["agreement"] == 1.0
    int8 = by_fmt[("tflite_int8", "litert")]["figures"]
    assert int8["n"] == 10000 and abs(int8["accuracy_delta_points"]) <= 0.5

    assert main(["bench", "fashion_mlp", "--out", out, "--seconds", "0.2", "--threads", "1",
                 "--formats", "tflite_fp32", "tflite_int8", "--no-keras-predict"]) == 0
    assert main(["report", "fashion_mlp", "--out", out]) == 0
    report = tmp_path / "report"
    for name in ("report.json", "report.csv", "report.md", "accuracy_vs_latency.png",
                 "prediction_grid_fashion_mlp.png"):
        assert (report / name).stat().st_size > 0, name
