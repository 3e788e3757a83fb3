"""Messages a person can use (issue 22, findings 5 and 8): symbolic dimensions by a readable name with a
concrete --input-shape to type, a short row label for a .npy, text and --json agreeing on the labels,
a dynamic-range ONNX described as one. Tiny ONNX models built here; no export, no TensorFlow."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.runtimes.dims import dim_names


def _onnx(path, nodes, inputs, outputs, inits=()):
    import onnx
    from onnx import helper as h

    model = h.make_model(h.make_graph(nodes, "m", inputs, outputs, initializer=list(inits)),
                         opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def generated_dims(tmp_path):
    """An ONNX whose symbolic dimensions carry converter-made names (paddle2onnx's, and '?')."""
    from onnx import TensorProto as T, helper as h

    return _onnx(tmp_path / "p2o.onnx", [h.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
                 [h.make_tensor_value_info("x", T.FLOAT, ["P2O.DYNAMICDIMENSION.0", 3, "?", "?"])],
                 [h.make_tensor_value_info("y", T.FLOAT, ["P2O.DYNAMICDIMENSION.0", 3])])


def test_generated_dimension_names_are_not_shown():
    assert dim_names(("P2O.DYNAMICDIMENSION.0", 3, "?", "unk__12", "DynamicDim1", "height", "batch_size", None)) \
        == (None, None, None, None, None, "height", "batch_size", None)


def test_the_input_shape_hint_names_dims_readably_and_gives_one_to_type(generated_dims, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "p.png")
    assert main(["run", str(generated_dims), str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "P2O" not in err and "?" not in err, err
    assert "symbolic dimension(s) x.dim2, x.dim3 have no size" in err
    assert "--input-shape x=Nx3xDIM2xDIM3 with your sizes, e.g. --input-shape x=1x3x224x224" in err
    assert main(["run", str(generated_dims), str(tmp_path / "p.png"), "--input-shape", "x=1x3x224x224"]) == 0


def test_a_npy_on_a_symbolic_model_gets_a_short_label_and_text_agrees_with_json(generated_dims, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.ones((2, 3, 64, 64), np.float32))
    assert main(["run", str(generated_dims), str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    assert len(out) < 600, len(out)  # was every input value as the row label (~25,000 values here)
    assert "x.npy[0]: 1, 1, 1, 1, ... (12288 values) -> y shape (3,): 1, 1, 1" in out
    assert "no labels found" in out
    assert main(["run", str(generated_dims), str(tmp_path / "x.npy"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["labels_from"] == "none" and len(doc["results"][0]["given"]) == 3 * 64 * 64
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    assert main(["run", str(generated_dims), str(tmp_path / "x.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels_from"] == "labels.txt"
    assert main(["run", str(generated_dims), str(tmp_path / "x.npy")]) == 0
    assert "labels from labels.txt" in capsys.readouterr().out


def test_a_dynamic_range_onnx_is_described_as_one(tmp_path):
    """Token ids in (int64), float out, weights int8, activations quantized at run time: not 'full integer'."""
    from onnx import TensorProto as T, helper as h, numpy_helper as nh
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgeport.export import registry
    from edgeport.runtimes import load

    w = nh.from_array(np.random.default_rng(0).normal(size=(16, 32)).astype(np.float32), "W")
    src = _onnx(tmp_path / "f.onnx", [h.make_node("Cast", ["ids"], ["f"], to=T.FLOAT),
                                      h.make_node("MatMul", ["f", "W"], ["y"])],
                [h.make_tensor_value_info("ids", T.INT64, ["N", 16])],
                [h.make_tensor_value_info("y", T.FLOAT, ["N", 32])], [w])
    quantize_dynamic(str(src), str(tmp_path / "d.onnx"), weight_type=QuantType.QInt8)
    storage = load(tmp_path / "d.onnx").tensor_storage()
    precision, how = registry.read_precision(storage)
    assert precision is registry.Precision.QUANTIZED and "dynamic range" in how and "full integer" not in how, how
    assert storage["integer_io"] == 0  # int64 ids are integers, not quantized I/O
