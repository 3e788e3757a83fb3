"""The parity gates and the parity figures: pure numpy, no engine."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.benchmarks.verify.gates import (DEFAULT_GATES, PRECISION_OF_FORMAT, Gate, GateFailure, Precision,
                                       load_gates)
from edgeport.benchmarks.verify.parity import figures, top1
from edgeport.benchmarks.verify.testdata import TestSet
from edgeport.errors import EdgeportError, GateError, UnknownNameError


def test_the_issue_thresholds_are_the_defaults():
    f32, f16, q = (DEFAULT_GATES[p] for p in Precision)
    assert (f32.max_abs_diff, f32.min_agreement) == (1e-5, 1.0)
    assert (f16.max_abs_diff, f16.min_agreement) == (1e-3, 0.999)
    assert (q.max_accuracy_drop_points, q.min_agreement, q.max_abs_diff) == (1.0, 0.98, None)


def test_every_export_format_has_a_precision_class():
    from edgeport.export.registry import Format

    assert {f.value for f in Format} == set(PRECISION_OF_FORMAT)
    for fmt in ("tflite_dynamic", "tflite_int8", "tflite_int16x8", "onnx_int8"):
        assert PRECISION_OF_FORMAT[fmt] is Precision.QUANTIZED


@pytest.mark.parametrize("kwargs", [{"max_abs_diff": -1}, {"min_agreement": 1.5}, {"min_agreement": -0.1},
                                    {"max_accuracy_drop_points": float("nan")}, {}])
def test_gate_invariants(kwargs):
    with pytest.raises(ValueError):
        Gate(**kwargs)


def test_gate_failures_name_artifact_runtime_figure_and_gate():
    gate = Gate(max_abs_diff=1e-5, min_agreement=1.0, max_accuracy_drop_points=1.0)
    ok = gate.failures({"max_abs_diff": 1e-6, "agreement": 1.0, "accuracy_delta_points": -0.5},
                       artifact="onnx", runtime="onnxruntime")
    assert ok == []
    bad = gate.failures({"max_abs_diff": 3e-4, "agreement": 0.97, "accuracy_delta_points": -1.5},
                        artifact="onnx", runtime="onnxruntime")
    assert [f.figure for f in bad] == ["max_abs_diff", "agreement", "accuracy_delta_points"]
    assert all(isinstance(f, GateError) and f.artifact == "onnx" and f.runtime == "onnxruntime" for f in bad)
    assert str(bad[0]) == "onnx on onnxruntime: max_abs_diff = 0.0003 fails the gate max_abs_diff <= 1e-05"
    assert bad[2].to_dict()["gate"] == ">= -1 points"


def test_overrides_from_pairs_json_and_mapping(tmp_path):
    table = load_gates("fp16.max_abs_diff=2e-3, quantized.min_agreement=0.97, tflite_int8.min_agreement=0.99")
    assert table.for_format("tflite_fp16").max_abs_diff == 2e-3
    assert table.for_format("onnx_int8").min_agreement == 0.97
    # a format override builds on its (overridden) class and wins over it
    assert table.for_format("tflite_int8").min_agreement == 0.99
    assert table.for_format("tflite_int8").max_accuracy_drop_points == 1.0
    assert table.for_format("onnx").max_abs_diff == 1e-5
    path = tmp_path / "gates.json"
    path.write_text(json.dumps({"float32": {"max_abs_diff": 1e-4}}))
    assert load_gates(str(path)).for_format("tflite_fp32").max_abs_diff == 1e-4
    assert load_gates({"quantized": {"max_accuracy_drop_points": None}}).for_format(
        "tflite_int8").max_accuracy_drop_points is None
    assert load_gates(None).to_dict()["float32"]["max_abs_diff"] == 1e-5


@pytest.mark.parametrize("spec, error", [("bogus.max_abs_diff=1", UnknownNameError),
                                         ("fp16.nonsense=1", UnknownNameError),
                                         ("fp16.max_abs_diff=abc", EdgeportError),
                                         ("fp16=1", EdgeportError),
                                         ("fp16.min_agreement=2", EdgeportError)])
def test_bad_overrides_are_refused(spec, error):
    with pytest.raises(error):
        load_gates(spec)


def _test(y, task="classification"):
    return TestSet(x=np.zeros((len(y), 1)), y=np.asarray(y), labels=(), task=task, source="t", dataset="t")


def test_classification_figures():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    out = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.3, 0.7]], np.float32)
    f = figures(ref, out, _test([0, 1, 0, 0]))
    assert f["agreement"] == 0.75 and f["disagreements"] == 1
    assert f["keras_accuracy"] == 0.75 and f["accuracy"] == 0.5
    assert f["accuracy_delta_points"] == pytest.approx(-25.0)
    assert f["max_abs_diff"] == pytest.approx(0.2) and f["mean_abs_diff"] == pytest.approx(0.1)
    assert list(top1(np.array([[0.2], [0.7]]))) == [0, 1]  # one sigmoid unit


def test_regression_figures_scale_the_diff_and_skip_agreement():
    ref = np.array([[212.0], [32.0]])
    out = ref + 1e-4
    f = figures(ref, out, _test(np.array([[212.0], [32.0]], np.float32), task="regression"))
    assert "agreement" not in f and "accuracy" not in f
    assert f["max_scaled_diff"] == pytest.approx(1e-4 / 212, rel=1e-2)
    assert f["mae"] == pytest.approx(1e-4, rel=1e-1)
    gate = load_gates().for_format("tflite_fp32")
    assert gate.failures(f, artifact="tflite_fp32", runtime="litert") == []
    bad = gate.failures({**f, "max_scaled_diff": 1e-3}, artifact="tflite_fp32", runtime="litert")
    assert isinstance(bad[0], GateFailure) and bad[0].figure == "max_scaled_diff"


def test_nonfinite_outputs_fail_the_diff_gate():
    ref = np.array([[0.5, 0.5]], np.float32)
    f = figures(ref, np.array([[np.nan, 0.5]], np.float32), _test([0]))
    assert f["finite"] is False and f["max_abs_diff"] == float("inf")
    assert load_gates().for_format("onnx").failures(f, artifact="onnx", runtime="onnxruntime")
