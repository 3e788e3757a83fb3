"""The targets' proofs are verify rows: figures from verify's compare, verdicts from verify's gates
(no model is trained here: seconds)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgeport.benchmarks.verify import proof
from edgeport.benchmarks.verify.gates import GateFailure, load_gates
from edgeport.benchmarks.verify.result import Result
from edgeport.errors import EdgeportError
from edgeport.export import registry


def _probs(n: int, classes: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(n, classes)) * 3
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _float_format() -> str:
    return next(f for f in registry.INFO if registry.precision_of(f) is registry.Precision.FLOAT32
                and registry.runs(f))


def test_a_perturbed_variant_fails_the_gate_verify_holds_its_format_to():
    fmt, table = _float_format(), load_gates()
    ref = _probs(200, 10, 0)
    good = proof.prove(fmt, "litert", "model.tflite", ref, ref + 1e-9, gate=table.for_format(fmt), against="Keras",
                       precision="float32", noise=1e-8)
    assert isinstance(good, Result) and good.status == "pass" and good.figures["agreement"] == 1.0
    bad_out = ref.copy()
    bad_out[3, 0] += 1e-4  # every top-1 still agrees; the float32 tolerance does not hold
    bad = proof.prove(fmt, "litert", "model.tflite", ref, bad_out, gate=table.for_format(fmt), against="Keras",
                      precision="float32", noise=1e-8)
    assert bad.status == "fail" and bad.gate == table.for_format(fmt).to_dict()
    assert bad.figures["agreement"] == 1.0 and [e.figure for e in bad.failures] == ["tolerance_diff"]
    assert all(isinstance(e, GateFailure) for e in bad.failures)
    # the verdict is the gate's own: the same figures through Gate.failures say the same
    assert [str(e) for e in table.for_format(fmt).failures(bad.outputs["output"], artifact="model.tflite",
                                                            runtime="litert")] == [str(e) for e in bad.failures]
    row = bad.to_dict()  # a verify.json row
    assert row["status"] == "fail" and row["failures"][0]["type"] == "GateFailure" and row["notes"] == ["against Keras"]
    assert "FAIL" in proof.table("t", [good, bad]) and proof.failure_lines([bad]) == [str(bad.failures[0])]


def test_one_flipped_answer_fails_the_same_model_gate():
    ref = _probs(50, 4, 1)
    out = ref.copy()
    out[7] = out[7][::-1]  # another top-1 on one input
    assert (out[7].argmax() != ref[7].argmax())
    row = proof.prove(_float_format(), "onnxruntime", "model.onnx", ref, out, gate=proof.SAME_MODEL,
                      against="model.tflite", precision="float32")
    assert row.status == "fail" and row.figures["disagreements"] == 1
    assert [e.figure for e in row.failures] == ["agreement"] and proof.against(row) == "model.tflite"


def test_the_microcontroller_step_gate_allows_one_step_not_two():
    from edgeport.export.targets.mcu_proof import step_gates, steps

    scale = 1 / 256
    spec = SimpleNamespace(name="output_0", scale=scale)
    ref = np.round(_probs(20, 10, 2) / scale) * scale
    fmt = registry.for_bundle("mcu")[0]
    for moved, status in ((1, "pass"), (2, "fail")):
        out = ref.copy()
        out[3, 0] += moved * scale
        row = proof.prove(fmt, "tflm", "model_int8_b1.tflite", {"output_0": ref}, {"output_0": out},
                          gate=step_gates([spec]), against="LiteRT", precision="quantized")
        assert row.status == status and steps(row, [spec]) == {"output_0": moved}


def test_a_shape_mismatch_is_a_failure_not_a_crash():
    ref = _probs(5, 3, 3)
    row = proof.prove(_float_format(), "browser", "m", ref, ref[:, :2], gate=proof.SAME_MODEL, against="Keras",
                      precision="float32")
    assert row.status == "fail" and "output" in str(row.failures[0])


def test_verified_gates_are_the_ones_verify_ran_with():
    table = load_gates("quantized.min_agreement=0.5")
    verify_json = {"gates": table.to_dict()}
    assert proof.verified_gates(verify_json).to_dict() == table.to_dict()
    assert proof.verified_gates({}).to_dict() == load_gates().to_dict()
    with pytest.raises(EdgeportError, match=r"gates in verify.json cannot be read .*verify` again"):
        proof.verified_gates({"gates": {"quantized": {"a_field_of_another_edgeport": 1}}})
