"""`edgeport.benchmarks.slow`: a format far below its float sibling in the same run is named."""
from __future__ import annotations

from edgeport.benchmarks import slow


def test_int16x8_on_reference_kernels_is_flagged_against_fp32():
    rows = [("tflite_fp32", "litert", 65_000.0), ("tflite_int16x8", "litert", 391.0),
            ("tflite_int8", "litert", 70_105.0)]
    found = slow.slow_paths(rows)
    assert [(s.format, s.sibling, s.runtime) for s in found] == [("tflite_int16x8", "tflite_fp32", "litert")]
    msg = found[0].message
    assert msg.startswith("tflite_int16x8 on litert: 391 img/s, 0.6% of tflite_fp32's 65,000 img/s in this run")
    assert "slow kernel path on this machine" in msg and "reference kernels" in msg
    record = slow.to_records(found)[0]
    assert record["ratio"] < 0.01 and record["threshold"] == slow.SLOW_FRACTION and record["message"] == msg


def test_a_quantized_format_faster_or_near_its_sibling_is_not_flagged():
    rows = [{"format": "tflite_fp32", "runtime": "litert", "images_per_s": 1000.0},
            {"format": "tflite_int8", "runtime": "litert", "images_per_s": 3000.0},
            {"format": "tflite_fp16", "runtime": "litert", "images_per_s": 900.0},
            {"format": "tflite_dynamic", "runtime": "litert", "images_per_s": 300.0},  # 0.3x: not slow enough
            {"format": "onnx", "runtime": "onnxruntime", "images_per_s": 1000.0},
            {"format": "onnx_int8", "runtime": "onnxruntime", "images_per_s": 260.0}]
    assert slow.slow_paths(rows) == []
    assert slow.notes(rows) == [  # not a slow kernel path, but slower than the float they replace: said
        "tflite_dynamic on litert: 3.3x slower than tflite_fp32 in this run (300 vs 1,000 img/s): it saves size, "
        "not time, on this machine",
        "onnx_int8 on onnxruntime: 3.8x slower than onnx in this run (260 vs 1,000 img/s): it saves size, not "
        "time, on this machine"]


def test_bench_says_when_int8_is_slower_than_float():
    """onnx_int8 at 2.4x slower than onnx (issue 22): bench's notes say so, and nothing faster is named."""
    rows = [("onnx", "onnxruntime", 2400.0), ("onnx_int8", "onnxruntime", 1000.0), ("tflite_fp32", "litert", 900.0),
            ("tflite_int8", "litert", 700.0)]
    assert slow.slower(rows) == ["onnx_int8 on onnxruntime: 2.4x slower than onnx in this run (1,000 vs 2,400 "
                                 "img/s): it saves size, not time, on this machine"]


def test_the_sibling_is_compared_on_the_same_runtime_at_its_best_row():
    rows = [("onnx", "onnxruntime", 500.0), ("onnx", "onnxruntime", 4000.0),  # two thread counts
            ("onnx", "onnxruntime-tensorrt", 100.0), ("onnx_int8", "onnxruntime", 900.0),
            ("onnx_int8", "onnxruntime-tensorrt", 90.0)]
    found = slow.slow_paths(rows)
    assert [(s.format, s.runtime, s.sibling_images_per_s) for s in found] == [("onnx_int8", "onnxruntime", 4000.0)]


def test_no_sibling_gives_no_comparison_and_says_why():
    rows = [("tflite", "litert", 10.0), ("tflite_fp32", "litert", 0.0), ("tflite_int8", "litert", 1.0),
            ("onnx_int8", "onnxruntime", 1.0), ("saved_model", "savedmodel", 5.0)]
    assert slow.slow_paths(rows) == []  # a bare artifact, an unmeasured sibling, a float format
    why = slow.unchecked(rows)
    assert any(w.startswith("tflite on litert: not compared") and "not a registry format" in w for w in why)
    assert "onnx_int8 on onnxruntime: not compared for speed: onnx was not measured on onnxruntime in this run" in why
    assert "tflite_int8 on litert: not compared for speed: tflite_fp32 was not measured on litert in this run" in why
    assert not any(w.startswith("saved_model") for w in why)  # a float format is the yardstick itself
    assert slow.notes(rows) == why


def test_the_threshold_is_a_parameter():
    rows = [("tflite_fp32", "litert", 1000.0), ("tflite_dynamic", "litert", 300.0)]
    assert slow.slow_paths(rows) == []
    assert [s.format for s in slow.slow_paths(rows, threshold=0.5)] == ["tflite_dynamic"]
    assert "30% of tflite_fp32's 1,000 img/s" in slow.render(slow.slow_paths(rows, threshold=0.5))[0]
