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


def _saturated(path, w: np.ndarray) -> None:
    """x @ w, then a softmax: with large logits the top probability sits within 1e-4 of 1."""
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", w.shape[0]])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", w.shape[1]])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def test_a_saturated_output_cannot_hide_a_one_percent_edit_on_the_same_engine(tmp_path):
    """Magika / openWakeWord (zoo, sensitivity): a 1% weight edit behind a saturated softmax moves the
    outputs less than the fixed relative bound 1e-4 x max(1, |ref|). Against a reference of its own
    precision on the same engine nothing but the weights can move an output: the bound is a few float32
    ulps of the output's scale, so the identical copy passes (diff 0) and the edit fails."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((16, 8)) * 0.01).astype(np.float32)
    w[:, 0] = 10 / 16  # a logit of ~10 against ~0: the top probability ~0.9997 on every row
    _saturated(tmp_path / "ref.onnx", w)
    _saturated(tmp_path / "edited.onnx", (w * np.float32(1.01)).astype(np.float32))
    shutil.copy(tmp_path / "ref.onnx", tmp_path / "copy.onnx")
    x = (1 + 0.05 * rng.standard_normal((16, 16))).astype(np.float32)
    np.savez(tmp_path / "x.npz", x_test=x)
    import onnxruntime as ort

    run = ort.InferenceSession(str(tmp_path / "ref.onnx"), providers=["CPUExecutionProvider"])
    ref = run.run(None, {"x": x})[0]
    edited = ort.InferenceSession(str(tmp_path / "edited.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    moved = float(np.abs(edited - ref).max())
    assert 0 < moved < 1e-4 * max(1.0, float(np.abs(ref).max()))  # the old bound would have passed it

    same = _verify(tmp_path / "copy.onnx", tmp_path / "ref.onnx", tmp_path / "x.npz")
    assert same.ok, same.render()
    row = same.results[0]
    assert row.figures["tolerance_diff"] == 0.0 and "same engine and precision" in row.figures["tolerance_basis"]
    assert any("bit-identical outputs expected" in n for n in row.notes)
    report = _verify(tmp_path / "edited.onnx", tmp_path / "ref.onnx", tmp_path / "x.npz")
    assert not report.ok
    assert any(f.figure == "tolerance_diff" for f in report.results[0].failures), report.render()


def test_a_float_file_against_its_float_model_source_keeps_the_relative_bound():
    """Only a reference of the artifact's own precision on its own engine and version gets the ulp bound."""
    from pathlib import Path
    from types import SimpleNamespace

    from edgeport.benchmarks.verify.command import _same_engine
    from edgeport.export.registry import Precision

    bare = SimpleNamespace(precision=None, path=Path("m.onnx"))
    ref = SimpleNamespace(precision="float32", runtime="onnxruntime", engine="onnxruntime 1.2")
    assert _same_engine(bare, Precision.FLOAT32, "onnxruntime", "onnxruntime 1.2", ref)
    assert not _same_engine(bare, Precision.FLOAT32, "onnxruntime", "onnxruntime 1.3", ref)  # another version
    assert not _same_engine(bare, Precision.FP16, "onnxruntime", "onnxruntime 1.2", ref)  # another class
    assert not _same_engine(bare, Precision.FLOAT32, "litert", "onnxruntime 1.2", ref)
    assert not _same_engine(bare, Precision.FLOAT32, "onnxruntime", "onnxruntime 1.2",
                            SimpleNamespace(precision=None, runtime="onnxruntime", engine="onnxruntime 1.2"))
    listed = SimpleNamespace(precision=Precision.FLOAT32, path=Path("m.onnx"))  # a model directory's format
    assert not _same_engine(listed, Precision.FLOAT32, "onnxruntime", "onnxruntime 1.2", ref)
