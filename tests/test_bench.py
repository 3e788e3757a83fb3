"""`edgeport bench`: child-process figures, device info, MAC counts, the GPU-less path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeport import cli
from edgeport.benchmarks.bench import command as bench_mod
from edgeport.benchmarks.bench.command import NO_GPU, bench_model
from edgeport.children import run_job
from edgeport.benchmarks.device_info import device_info, device_key, isa_flags
from edgeport.benchmarks.bench.macs import count_macs
from edgeport.benchmarks.bench.timing import summarize_ns, time_series

NAME = "tiny_mlp"


@pytest.fixture(scope="module")
def exported(tiny_models, tmp_path_factory) -> Path:
    """The conftest tiny MLP exported to two TFLite formats (untrained weights are fine for timing)."""
    from edgeport.export.pipeline import export_model

    root = tmp_path_factory.mktemp("bench")
    np.save(root / "cal.npy", np.random.default_rng(0).uniform(0, 255, (20, 28, 28, 1)).astype(np.float32))
    report = export_model(str(tiny_models["mlp"]), formats=["tflite_fp32", "tflite_int8"], out=root / "out",
                          calibration_data=str(root / "cal.npy"))
    assert report.ok, report.render()
    return root / "out" / NAME


def test_macs_by_hand(tiny_models):
    import keras

    mlp = keras.models.load_model(tiny_models["mlp"])
    assert count_macs(mlp)["total"] == 784 * 16 + 16 * 10
    cnn = keras.models.load_model(tiny_models["cnn"])
    # conv 3x3, 1->4 channels, 26x26 out; pool -> 13x13x4 = 676 -> Dense 8 -> Dense 10
    assert count_macs(cnn)["total"] == 26 * 26 * 3 * 3 * 1 * 4 + 676 * 8 + 8 * 10
    assert [r["type"] for r in count_macs(cnn)["layers"]] == ["Conv2D", "Dense", "Dense"]


def test_macs_depthwise_separable_grouped_and_nested():
    import keras

    inner = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.DepthwiseConv2D(3, padding="same")])
    model = keras.Sequential([
        keras.Input((8, 8, 4)), inner,
        keras.layers.SeparableConv2D(6, 3),  # 6x6 out: depthwise 36*9*4, pointwise 36*4*6
        keras.layers.Conv2D(6, 1, groups=2),  # 36 * 1 * (6/2) * 6
        keras.layers.Conv2DTranspose(2, 2, strides=2),  # 36 input positions * 4 * 6 * 2
    ])
    expected = 64 * 9 * 4 + (36 * 9 * 4 + 36 * 4 * 6) + 36 * 3 * 6 + 36 * 4 * 6 * 2
    assert count_macs(model)["total"] == expected


def test_device_info_has_cpu_model_cores_and_flags():
    info = device_info()
    assert info["cpu"] and info["cores"] >= 1 and info["hostname"]
    assert isinstance(info["isa"], dict) and info["isa"]
    if info["machine"] in ("x86_64", "AMD64"):
        assert {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx"} <= set(info["isa"])
    assert "numpy" in info["versions"] and "python" in info["versions"]
    assert info["cpu"] in device_key(info)


def test_isa_flags_from_arm_and_x86_cpuinfo():
    arm = {"features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimddp"}
    flags = isa_flags(arm, machine="aarch64")
    assert flags["neon"] and flags["dotprod"] and flags["fp16"] and not flags["i8mm"]
    x86 = isa_flags({"flags": "sse4_2 avx avx2 fma avx512f avx512_vnni"}, machine="x86_64")
    assert x86["avx2"] and x86["avx512_vnni"] and not x86["avx_vnni"] and not x86["amx"]


def test_timing_summary_and_time_bounded_series():
    s = summarize_ns([1000, 2000, 3000, 4000, 100_000])
    assert s["n"] == 5 and s["min_us"] == 1.0 and s["p50_us"] == 3.0 and s["max_us"] == 100.0
    assert s["p90_us"] > s["p50_us"] and s["std_us"] > 0
    calls = []
    out = time_series(lambda: calls.append(1), seconds=0.05, min_calls=10)
    assert out["n"] >= 10 and out["warmup_calls"] >= 3 and len(calls) == out["n"] + out["warmup_calls"]


def test_a_failing_child_is_reported_not_raised():
    result = run_job({"kind": "runtime", "path": "/nonexistent.tflite", "runtime": "litert", "seconds": 0.1,
                      "inputs": "/nonexistent.npz"}, timeout=60)
    assert result["ok"] is False and "Error" in result["error"]


def test_bench_figures_from_fresh_processes(exported):
    report = bench_model(NAME, out=exported.parent, seconds=0.2, threads=[1], formats=["tflite_fp32", "tflite_int8"],
                         keras_predict=False, peak_n=256)
    assert report.ok, report.render()
    assert {(r["format"], r["runtime"]) for r in report.rows} == {("tflite_fp32", "litert"), ("tflite_int8", "litert")}
    for row in report.rows:
        assert row["threads"] == 1 and row["size_bytes"] > 0
        assert row["batch1"]["p50_us"] > 0 and row["batch1"]["n"] >= 5
        assert row["batch1"]["p99_us"] >= row["batch1"]["p50_us"] >= row["batch1"]["min_us"]
        assert row["batch32"]["images_per_s"] > 0
        assert row["load_s"] > 0 and row["first_inference_s"] > 0
        assert row["peak_rss_bytes"] > row["baseline_rss_bytes"] > 0 and row["rss_delta_bytes"] > 0
        assert row["gmac_s_batch32"] > 0 and 0 < row["efficiency"]
    assert report.macs["total"] == 784 * 16 + 16 * 10
    assert report.peak["1"]["gmac_s"] > 0 and report.peak["1"]["n"] == 256
    int8 = report.int8_peak["1"]
    assert int8["ok"] and int8["n"] == 256 and int8["gmac_s"] > 0
    assert int8["by_runtime"]["litert"]["gmac_s"] > 0 and "FULLY_CONNECTED" in int8["by_runtime"]["litert"]["how"]
    by = {r["format"]: r for r in report.rows}
    # the int8 row is held to LiteRT's measured int8 peak, the float row to the float32 peak
    assert by["tflite_int8"]["efficiency_peak"] == "int8 litert matmul peak"
    assert by["tflite_int8"]["efficiency"] == pytest.approx(
        by["tflite_int8"]["gmac_s_batch32"] / int8["by_runtime"]["litert"]["gmac_s"])
    assert by["tflite_fp32"]["efficiency_peak"] == "float32 matmul peak"
    fp32 = by["tflite_fp32"]
    assert fp32["efficiency"] == pytest.approx(fp32["gmac_s_batch32"] / report.peak["1"]["gmac_s"])
    saved = json.loads((exported / "bench.json").read_text())
    assert saved["int8_peak"]["1"]["gmac_s"] == int8["gmac_s"] and isinstance(saved["slow_paths"], list)
    assert saved["device"]["cpu"] and saved["device"]["isa"] and len(saved["rows"]) == 2
    text = report.render()
    assert "tflite_int8" in text and "machine peak" in text and "MACs per image: 12,704" in text
    assert "machine peak, int8 256x256 matmul" in text


def test_int8_rows_fall_back_to_the_best_engine_and_say_so():
    """An integer row whose runtime measured no int8 peak uses the best engine's, named in the row."""
    row = {"format": "onnx_int8", "runtime": "onnxruntime", "threads": 2, "batch1": {"p50_us": 100.0},
           "batch32": {"images_per_s": 1000.0}}
    int8 = {"1": {"ok": True, "gmac_s": 50.0, "source": "litert",
                  "by_runtime": {"litert": {"gmac_s": 50.0}, "onnxruntime": {"error": "boom"}}}}
    bench_mod._efficiency(row, 10_000_000, {"1": {"gmac_s": 10.0}}, int8)
    assert row["efficiency"] == pytest.approx(10.0 / 50.0)
    assert row["efficiency_peak"] == "int8 litert matmul peak (none measured on onnxruntime)"
    row.pop("efficiency")
    bench_mod._efficiency(row, 10_000_000, {"1": {"gmac_s": 10.0}}, {})
    assert "efficiency" not in row and row["efficiency_peak"].startswith("none: no int8")


def test_a_tampered_artifact_is_not_benchmarked(exported, tmp_path):
    import shutil

    model_dir = tmp_path / NAME
    shutil.copytree(exported, model_dir)
    (model_dir / "model_fp32.tflite").write_bytes(b"TFL3" + bytes(100))
    report = bench_model(NAME, out=tmp_path, seconds=0.1, threads=[1], formats=["tflite_fp32"], peak_n=64)
    assert not report.ok and "sha256" in report.rows[0]["error"]


def test_gpu_on_a_machine_without_one_says_so_and_exits_zero(exported, monkeypatch, capsys):
    monkeypatch.setattr(bench_mod, "device_info", lambda: {**device_info(), "gpus": [], "gpu": None})
    report = bench_model(NAME, out=exported.parent, device="gpu")
    assert report.ok and report.skipped == NO_GPU and report.rows == []
    assert NO_GPU in capsys.readouterr().out
    assert json.loads((exported / "bench_gpu.json").read_text())["skipped"] == NO_GPU
    assert cli.main(["bench", NAME, "--out", str(exported.parent), "--device", "gpu"]) == 0
    assert NO_GPU in capsys.readouterr().out


def test_a_gpu_engine_that_sees_no_gpu_is_skipped_not_failed(exported, monkeypatch):
    """nvidia-smi says a GPU is there, but TensorFlow (tensorflow-cpu here) cannot use it."""
    fake = {**device_info(), "gpus": [{"name": "Fake GPU", "driver": "0", "memory": ""}], "gpu": "Fake GPU"}
    monkeypatch.setattr(bench_mod, "device_info", lambda: fake)
    if device_info()["gpus"]:
        pytest.skip("a real GPU is present")
    report = bench_model(NAME, out=exported.parent, device="gpu", seconds=0.1, formats=["keras", "tflite_fp32"])
    assert report.ok and report.rows and all("skipped" in r for r in report.rows)
    assert "DeviceUnavailable" in report.rows[0]["skipped"] and "SKIPPED" in report.render()
    assert any("no GPU path for TFLite" in n for n in report.notes)


def test_bench_says_and_records_a_slow_kernel_path(capsys):
    from edgeport.benchmarks.bench.result import BenchReport

    report = BenchReport("m", Path("."), "cpu", {}, 1.0)
    report.rows = [{"format": f, "runtime": rt, "batch32": {"images_per_s": ips}} for f, rt, ips in
                   (("keras", "keras", 10.0), ("tflite_fp32", "litert", 65_000.0), ("tflite_int16x8", "litert", 391.0),
                    ("tflite_int8", "litert", 70_105.0))]
    bench_mod._say_slow(report)
    assert [s["format"] for s in report.slow_paths] == ["tflite_int16x8"]
    assert report.notes == [report.slow_paths[0]["message"]]  # keras, the reference, is not compared
    assert "bench: tflite_int16x8 on litert: 391 img/s, 0.6% of tflite_fp32's" in capsys.readouterr().out
    assert report.to_dict()["slow_paths"][0]["sibling"] == "tflite_fp32"


def test_bench_says_when_int8_is_slower_than_float_short_of_a_slow_path(capsys):
    from edgeport.benchmarks.bench.result import BenchReport

    report = BenchReport("m", Path("."), "cpu", {}, 1.0)
    report.rows = [{"format": f, "runtime": "onnxruntime", "batch32": {"images_per_s": ips}}
                   for f, ips in (("onnx", 2400.0), ("onnx_int8", 1000.0))]
    bench_mod._say_slow(report)
    assert report.slow_paths == [] and report.notes == [
        "onnx_int8 on onnxruntime: 2.4x slower than onnx in this run (1,000 vs 2,400 img/s): it saves size, not "
        "time, on this machine"]
    assert "bench: onnx_int8 on onnxruntime: 2.4x slower than onnx" in capsys.readouterr().out


def test_no_matmul_peak_is_measured_when_the_macs_are_not_counted(monkeypatch):
    """A bare artifact or a non-Keras source: no MAC count, so no efficiency; the peaks are skipped, said."""
    from edgeport.benchmarks.bench.result import BenchReport

    ran = []
    monkeypatch.setattr(bench_mod, "run_job", lambda job, **_: ran.append(job["kind"]) or {"ok": False, "error": "x"})
    report = BenchReport("m", Path("."), "cpu", {}, 0.1)
    bench_mod.measure(report, [], [1, 2], None, peak_n=64, keras_path=None)
    assert ran == [] and report.peak == {} and report.int8_peak == {}
    assert any(n.startswith("matmul peaks not measured: the model's MACs are not counted") for n in report.notes)
    report = BenchReport("m", Path("."), "cpu", {}, 0.1)
    bench_mod.measure(report, [], [1], None, peak_n=64, keras_path="model.keras")  # the MAC count fails
    assert ran == ["macs"] and report.peak == {} and "(x)" in report.notes[0]
