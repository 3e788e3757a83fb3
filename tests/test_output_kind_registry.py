"""An output kind is one module and one registry row: a made-up kind registered at runtime is
detected, compared, gated (its own gate fields, per precision class, overridable), summarised,
kept by fix and named in the verify table, with no other edit. numpy, plus one tiny ONNX model."""
from __future__ import annotations

import shutil
import sys
import types
from typing import Any, Mapping

import numpy as np
import pytest

from edgeport.benchmarks.verify import kinds
from edgeport.benchmarks.verify.kinds.base import Bound, GateField, Kind
from edgeport.export.registry import Precision

MAX_SIGN_FLIPS = GateField("max_sign_flip_rate", "elements whose sign differs from the reference's",
                           {Precision.FP16: 0.0, Precision.QUANTIZED: 0.01})


class Sign(Kind):
    """A made-up kind: every value is -1 or +1 (a sign map); what matters is how many signs flip."""

    name = "sign"
    rules = ((25, lambda ref, task: bool(np.isin(ref, (-1.0, 1.0)).all())),)
    gate_fields = (MAX_SIGN_FLIPS,)
    bounds = (Bound("sign_flip_rate", MAX_SIGN_FLIPS.name, "<="),)
    worst_is_max = ("sign_flip_rate",)
    fix_figures = alternative_figures = percent_figures = ("sign_flip_rate",)

    def figures(self, ref: np.ndarray, out: np.ndarray, f: dict[str, Any], *, y, settings: Mapping[str, float],
                margin) -> dict[str, Any]:
        return {**f, "sign_flip_rate": float((np.sign(ref) != np.sign(out)).mean())}

    def text(self, f: Mapping[str, Any]) -> str:
        return f"sign flips {f.get('sign_flip_rate', 0):.2%}"


@pytest.fixture
def sign_kind(monkeypatch):
    module = types.ModuleType("made_up_sign_kind")
    module.KIND = Sign()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(kinds.ROWS, "sign", f"{module.__name__}:KIND")  # the one registry row
    return module.KIND


def test_a_registered_kind_is_asked_everywhere(sign_kind):
    from edgeport.benchmarks.verify.figures import compare
    from edgeport.benchmarks.verify.fix_search import Candidate
    from edgeport.benchmarks.verify.gates import DEFAULT_GATES, load_gates
    from edgeport.benchmarks.verify.result import summarize, task_text

    rng = np.random.default_rng(0)
    ref = np.sign(rng.normal(size=(50, 8))).astype(np.float32)
    assert kinds.detect(ref, "classification") == "sign"
    assert kinds.detect(np.array([[0.2, 0.8]]), "classification") == "probabilities"  # the others keep their order
    assert kinds.parse_overrides(["y=sign"]) == {"y": "sign"}
    gate = DEFAULT_GATES[Precision.QUANTIZED]
    assert gate.max_sign_flip_rate == 0.01 and DEFAULT_GATES[Precision.FLOAT32].max_sign_flip_rate is None
    out = ref.copy()
    out[:2] *= -1  # 4% of the signs flip
    f = compare(ref, out, kind="sign", settings=gate.settings())
    assert f["sign_flip_rate"] == pytest.approx(0.04)
    assert [e.figure for e in gate.failures(f, artifact="a", runtime="r")] == ["sign_flip_rate"]
    assert load_gates("quantized.max_sign_flip_rate=0.05").for_format("tflite_int8").failures(
        f, artifact="a", runtime="r") == []
    same = compare(ref, ref, kind="sign")
    assert summarize({"a": same, "b": f})["sign_flip_rate"] == pytest.approx(0.04)  # the worst output
    assert task_text(f) == "sign flips 4.00%"
    assert Candidate("c", {}, figures=f).to_dict()["figures"]["sign_flip_rate"] == pytest.approx(0.04)
    assert "sign_flip_rate" in kinds.alternative_figures() and "sign_flip_rate" in kinds.percent_figures()


def test_verify_picks_up_a_registered_kind(sign_kind, tmp_path):
    """A bare ONNX sign model verified against itself: its output is detected as the made-up kind and
    gated on its figure, and the table names the kind."""
    from onnx import TensorProto as T, helper as h

    from edgeport.benchmarks.fuzz.input_models import _save
    from edgeport.benchmarks.verify.command import verify_model

    graph = h.make_graph([h.make_node("Sign", ["x"], ["y"])], "sign",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 8])])
    model = _save(h.make_model(graph, opset_imports=[h.make_opsetid("", 13)]), tmp_path / "sign.onnx")
    copy = tmp_path / "sign_copy.onnx"
    shutil.copyfile(model, copy)
    np.savez(tmp_path / "x.npz", x_test=np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32))
    report = verify_model(str(copy), reference=str(model), data_npz=str(tmp_path / "x.npz"))
    text = report.render()
    assert report.ok, text
    (f,) = report.results[0].outputs.values()
    assert f["kind"] == "sign" and f["sign_flip_rate"] == 0.0, f
    assert " sign " in text and kinds.text(f) == "sign flips 0.00%", text  # the table names its kind
