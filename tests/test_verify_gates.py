"""The parity gates and the parity figures: pure numpy, no engine."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.benchmarks.verify.figures import compare, output_kind, top1
from edgeport.benchmarks.verify.gates import DEFAULT_GATES, FLOAT32_ULP, Gate, GateFailure, load_gates
from edgeport.benchmarks.verify.result import summarize
from edgeport.errors import EdgeportError, GateError, UnknownNameError
from edgeport.export.registry import INFO, Format, Precision, precision_of

BINARY, PROBABILITIES, SCORES, VALUES = "binary", "probabilities", "scores", "values"


def test_precision_classes_live_in_the_export_registry():
    assert {f.value for f in Format} == set(INFO)
    for fmt in ("tflite_dynamic", "tflite_int8", "tflite_int16x8", "onnx_int8", "c_array"):
        assert precision_of(fmt) is Precision.QUANTIZED and INFO[fmt].quantized
    assert precision_of("tflite_fp16") is Precision.FP16
    assert {precision_of(f) for f in ("saved_model", "tflite_fp32", "onnx")} == {Precision.FLOAT32}
    table = load_gates()
    assert table.for_format("tflite_fp16") is table.by_precision[Precision.FP16]


def test_default_gates():
    f32, f16, q = (DEFAULT_GATES[p] for p in Precision)
    assert f32.tolerance_factor == 10 and f32.min_agreement == 0.999 and f32.tight
    assert f16.tight and f16.min_agreement == 0.99 and f16.max_kl_divergence is not None
    assert not q.tight and q.min_confident_agreement == 0.99 and q.max_kl_divergence == 0.05
    assert q.max_accuracy_drop_points == 1.0


@pytest.mark.parametrize("kwargs", [{"max_abs_diff": -1}, {"min_agreement": 1.5}, {"min_agreement": -0.1},
                                    {"max_accuracy_drop_points": float("nan")}, {}, {"tolerance_factor": 0.5},
                                    {"confidence_margin": 2, "min_agreement": 0.9}, {"min_agreement": True}])
def test_gate_invariants(kwargs):
    with pytest.raises(ValueError):
        Gate(**kwargs)


def test_tolerance_scales_with_the_noise_and_has_a_floor():
    gate = Gate(tolerance_factor=10)
    assert gate.tolerance(1e-6, 1.0)[0] == pytest.approx(1e-5)
    assert "10 x float32 noise" in gate.tolerance(1e-6, 1.0)[1]
    assert gate.tolerance(0.0, 1.0)[0] == pytest.approx(4 * FLOAT32_ULP)  # exact outputs: 4 ulps
    assert gate.tolerance(0.0, 200.0)[0] == pytest.approx(4 * FLOAT32_ULP * 200)  # ulps of the output's scale
    assert Gate(max_abs_diff=1e-3).tolerance(1e-9, 1.0) == (1e-3, "fixed gate 0.001")
    assert gate.tolerance(None, 1.0)[0] is None


def test_failures_name_artifact_runtime_output_figure_and_gate():
    gate = Gate(tolerance_factor=10, min_agreement=1.0, max_accuracy_drop_points=1.0)
    good = {"finite": True, "kind": PROBABILITIES, "tolerance_diff": 1e-6, "tolerance": 1e-5,
            "tolerance_basis": "10 x float32 noise 1e-06", "agreement": 1.0, "accuracy_delta_points": -0.5}
    assert gate.failures(good, artifact="onnx", runtime="onnxruntime") == []
    bad = gate.failures({**good, "tolerance_diff": 3e-4, "agreement": 0.97, "accuracy_delta_points": -1.5},
                        artifact="onnx", runtime="onnxruntime", output="output_1")
    assert [f.figure for f in bad] == ["tolerance_diff", "agreement", "accuracy_delta_points"]
    assert all(isinstance(f, GateError) and f.artifact == "onnx" and f.output == "output_1" for f in bad)
    assert str(bad[0]).startswith("onnx on onnxruntime, output output_1: tolerance_diff = 0.0003 fails the gate")
    assert bad[2].to_dict()["gate"] == ">= -1 points"


@pytest.mark.parametrize("missing", ["finite", "tolerance_diff", "agreement", "confident_agreement", "kl_divergence"])
def test_a_missing_figure_is_a_failure_not_a_skip(missing):
    gate = Gate(tolerance_factor=10, min_agreement=0.9, min_confident_agreement=0.9, max_kl_divergence=0.1)
    figures = {"finite": True, "kind": PROBABILITIES, "tolerance_diff": 0.0, "tolerance": 1e-5, "agreement": 1.0,
               "confident_agreement": 1.0, "kl_divergence": 0.0}
    figures[missing] = None
    failures = gate.failures(figures, artifact="tflite_int8", runtime="litert")
    assert [f.figure for f in failures] == [missing]
    assert "could not be measured" in str(failures[0])


def test_no_labels_is_the_only_figure_that_may_be_absent():
    gate = DEFAULT_GATES[Precision.QUANTIZED]
    figures = {"finite": True, "kind": PROBABILITIES, "agreement": 1.0, "confident_agreement": 1.0,
               "kl_divergence": 0.0}
    assert gate.failures(figures, artifact="x", runtime="y", labelled=False) == []
    assert [f.figure for f in gate.failures(figures, artifact="x", runtime="y", labelled=True)] == [
        "accuracy_delta_points"]


def test_overrides_from_pairs_json_and_mapping(tmp_path):
    table = load_gates("fp16.tolerance_factor=20, quantized.min_agreement=0.97, tflite_int8.min_agreement=0.99")
    assert table.for_format("tflite_fp16").tolerance_factor == 20
    assert table.for_format("onnx_int8").min_agreement == 0.97
    assert table.for_format("tflite_int8").min_agreement == 0.99  # a format override wins over its class
    assert table.for_format("tflite_int8").max_accuracy_drop_points == 1.0
    path = tmp_path / "gates.json"
    path.write_text(json.dumps({"float32": {"max_abs_diff": 1e-4}}))
    assert load_gates(str(path)).for_format("tflite_fp32").max_abs_diff == 1e-4
    assert load_gates({"quantized": {"max_accuracy_drop_points": None}}).for_format(
        "tflite_int8").max_accuracy_drop_points is None


@pytest.mark.parametrize("spec, error", [("bogus.max_abs_diff=1", UnknownNameError),
                                         ("fp16.nonsense=1", UnknownNameError),
                                         ("fp16.max_abs_diff=abc", EdgeportError),
                                         ("fp16=1", EdgeportError),
                                         ("fp16.min_agreement=2", EdgeportError)])
def test_bad_overrides_are_refused(spec, error):
    with pytest.raises(error):
        load_gates(spec)


def test_output_kinds():
    soft = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    assert output_kind(soft, "classification") == PROBABILITIES
    assert output_kind(np.array([[0.2], [0.9]]), "classification") == BINARY
    assert output_kind(np.array([[3.0, -1.0], [0.5, 2.0]]), "classification") == SCORES
    assert output_kind(np.array([[212.0], [32.0]]), "regression") == VALUES
    assert output_kind(np.array([[3.0, -1.0]]), "regression") == VALUES
    assert list(top1(np.array([[0.2], [0.7]]), BINARY)) == [0, 1]


def test_classification_figures_confidence_and_distribution():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.3, 0.7]], np.float32)
    out = np.array([[0.8, 0.2], [0.3, 0.7], [0.45, 0.55], [0.3, 0.7]], np.float32)
    f = compare(ref, out, kind=PROBABILITIES, y=np.array([0, 1, 0, 0]))
    assert f["agreement"] == 0.75 and f["disagreements"] == 1
    # the flip is a near tie (margin 0.1): every confident input agrees
    assert f["confident_n"] == 3 and f["confident_agreement"] == 1.0
    assert f["keras_accuracy"] == 0.75 and f["accuracy"] == 0.5
    assert f["accuracy_delta_points"] == pytest.approx(-25.0)
    assert f["max_abs_diff"] == pytest.approx(0.1, abs=1e-6)
    assert f["kl_divergence"] > 0
    same = compare(ref, ref.copy(), kind=PROBABILITIES)
    assert same["kl_divergence"] == 0.0 and same["max_abs_diff"] == 0.0


def test_top5_overlap_and_no_confident_inputs():
    rng = np.random.default_rng(0)
    ref = rng.dirichlet(np.ones(8), size=50).astype(np.float32)
    f = compare(ref, ref[:, ::-1].copy(), kind=PROBABILITIES)
    assert 0.0 <= f["top5_overlap"] < 1.0
    flat = np.full((5, 4), 0.25, np.float32)
    g = compare(flat, flat, kind=PROBABILITIES)
    assert g["confident_n"] == 0 and g["confident_agreement"] is None  # cannot be measured: a gate fails it


def test_values_figures_scale_the_diff_and_have_no_agreement():
    ref = np.array([[212.0], [32.0]])
    out = ref + 1e-4
    f = compare(ref, out, kind=VALUES, y=np.array([[212.0], [32.0]], np.float32))
    assert "agreement" not in f and "accuracy" not in f
    assert f["max_scaled_diff"] == pytest.approx(1e-4 / 212, rel=1e-2)
    assert f["mae"] == pytest.approx(1e-4, rel=1e-1) and f["relative_error"] < 1e-5


def test_nonfinite_outputs_fail_every_gate():
    ref = np.array([[0.5, 0.5]], np.float32)
    f = compare(ref, np.array([[np.nan, 0.5]], np.float32), kind=PROBABILITIES)
    assert f["finite"] is False and f["max_abs_diff"] == float("inf")
    for precision in Precision:
        failures = DEFAULT_GATES[precision].failures(f, artifact="x", runtime="y", labelled=False)
        assert "finite" in [e.figure for e in failures]


def test_summary_takes_the_worst_output():
    s = summarize({"a": {"max_abs_diff": 1e-6, "agreement": 1.0, "finite": True},
                   "b": {"max_abs_diff": 1e-3, "agreement": 0.9, "finite": True}})
    assert s["max_abs_diff"] == 1e-3 and s["agreement"] == 0.9 and s["finite"] is True
    assert isinstance(GateFailure("a", "b", "c", 1.0, "<= 0"), GateError)
