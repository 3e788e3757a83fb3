"""A bare artifact against an engine artifact of its own precision class (a quantized file against a
quantized file, on the same engine) is held to the float32 gate: no quantization lies between them.
And a reference whose every output is constant on the data measures nothing: that fails."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


def _matmul(path, w: np.ndarray) -> None:
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", w.shape[0]])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", w.shape[1]])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def _scaled(src, dest, factor: float) -> None:
    """``src`` with its one int8 weight tensor's scale multiplied by ``factor``."""
    from onnx import numpy_helper

    proto = onnx.load(str(src))
    scale = next(t for t in proto.graph.initializer if t.name.endswith("_scale") and t.name.startswith("w"))
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(factor), scale.name))
    onnx.save(proto, str(dest))


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    d = tmp_path_factory.mktemp("same_class")
    rng = np.random.default_rng(0)
    _matmul(d / "f32.onnx", rng.standard_normal((16, 8)).astype(np.float32))
    quantize_dynamic(str(d / "f32.onnx"), str(d / "q.onnx"), weight_type=QuantType.QInt8)
    shutil.copy(d / "q.onnx", d / "copy.onnx")
    _scaled(d / "q.onnx", d / "scaled.onnx", 1.01)
    np.savez(d / "x.npz", x_test=rng.standard_normal((32, 16)).astype(np.float32))
    return d


def _verify(artifact, reference, npz):
    from edgeport.benchmarks.verify.command import verify_model

    return verify_model(str(artifact), reference=str(reference), data_npz=str(npz))


def test_a_quantized_file_against_its_copy_is_held_to_the_float32_gate(quantized):
    report = _verify(quantized / "copy.onnx", quantized / "q.onnx", quantized / "x.npz")
    assert report.ok, report.render()
    row = report.results[0]
    assert row.precision == "quantized" and any("gate float32, not quantized" in n for n in row.notes), row.notes
    assert row.gate["tolerance_factor"] is not None


def test_a_one_percent_edit_of_a_quantized_weight_fails_against_the_unedited_file(quantized):
    report = _verify(quantized / "scaled.onnx", quantized / "q.onnx", quantized / "x.npz")
    assert not report.ok
    assert any(f.figure == "tolerance_diff" for f in report.results[0].failures), report.render()


def test_a_quantized_file_against_its_float_model_keeps_the_quantized_gate(quantized):
    report = _verify(quantized / "q.onnx", quantized / "f32.onnx", quantized / "x.npz")
    row = report.results[0]
    assert row.precision == "quantized" and not any("gate float32" in n for n in row.notes)
    assert row.gate["tolerance_factor"] is None


def test_a_reference_that_is_zero_everywhere_measures_nothing(tmp_path):
    _matmul(tmp_path / "zero.onnx", np.zeros((4, 3), np.float32))
    shutil.copy(tmp_path / "zero.onnx", tmp_path / "copy.onnx")
    np.savez(tmp_path / "x.npz", x_test=np.ones((8, 4), np.float32))
    report = _verify(tmp_path / "copy.onnx", tmp_path / "zero.onnx", tmp_path / "x.npz")
    assert not report.ok
    failure = next(f for f in report.results[0].failures if f.figure == "reference_spread")
    assert "every reference output is 0 on these inputs" in str(failure)
