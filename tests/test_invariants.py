"""Invariants every proof keeps on artifacts made outside edgeport (issue 22): identity against a
byte-identical copy whatever the precision, and the sensitivity that makes the identity mean something."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

FLOAT16 = 1  # tflite TensorType.FLOAT16


@pytest.fixture(scope="module")
def fp16_tflite(tmp_path_factory) -> tuple[Path, Path]:
    """A float16-weight .tflite (the converter's fp16 path, as third parties ship them) and inputs;
    its float32 sibling beside it (``fp32.tflite``)."""
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("fp16")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4, activation="softmax")])
    (d / "fp32.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    path = d / "fp16.tflite"
    path.write_bytes(converter.convert())
    np.savez(d / "x.npz", x_test=np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    return path, d / "x.npz"


def _matmul_onnx(path: Path, weights: np.ndarray) -> Path:
    """x [N, 8] @ W [8, 4] (W float16 + Cast when ``weights`` is float16: an fp16-weights ONNX)."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper

    half = weights.dtype == np.float16
    nodes = ([h.make_node("Cast", ["w"], ["wf"], to=T.FLOAT)] if half else []) + [
        h.make_node("MatMul", ["x", "wf" if half else "w"], ["y"])]
    graph = h.make_graph(nodes, "mm", [h.make_tensor_value_info("x", T.FLOAT, ["N", 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])], [numpy_helper.from_array(weights, "w")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def scale_fp16_weights(path: Path, factor: float) -> str:
    """Multiply the largest float16 weight tensor of a .tflite by ``factor``."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(path.read_bytes()))
    graph = model.subgraphs[0]
    weights = [t for t in graph.tensors if t.type == FLOAT16 and model.buffers[t.buffer].data is not None
               and len(model.buffers[t.buffer].data)]
    tensor = max(weights, key=lambda t: len(model.buffers[t.buffer].data))
    buf = model.buffers[tensor.buffer]
    values = np.frombuffer(bytes(bytearray(buf.data)), np.float16).astype(np.float32) * np.float32(factor)
    buf.data = np.frombuffer(values.astype(np.float16).tobytes(), np.uint8)
    path.write_bytes(bytes(fu.convert_object_to_bytearray(model)))
    return tensor.name.decode()


def test_an_fp16_artifact_passes_against_its_own_copy_and_fails_once_a_weight_moves(fp16_tflite, tmp_path):
    """Was: "tolerance_diff could not be measured ... no fp16-weights reference (none: a litert reference
    has no float32 graph to lower)" with max diff 0. An fp16 reference is the fp16 baseline as it is."""
    from edgeport.benchmarks.verify.command import verify_model

    original, npz = fp16_tflite
    copy = tmp_path / "copy.tflite"
    shutil.copyfile(original, copy)
    report = verify_model(str(copy), reference=str(original), data_npz=str(npz))
    row = report.results[0]
    assert report.ok and row.precision == "fp16", report.render()
    assert row.outputs["output_0"]["tolerance_diff"] == 0.0
    assert report.reference["fp16"].startswith("the reference itself: an fp16 litert artifact")

    scale_fp16_weights(copy, 1.01)
    report = verify_model(str(copy), reference=str(original), data_npz=str(npz))
    assert not report.ok and report.results[0].outputs["output_0"]["tolerance_diff"] > 0, report.render()


def test_an_fp16_artifact_against_its_float32_sibling_is_held_to_the_sibling_with_rounded_weights(fp16_tflite):
    """Was: "no fp16-weights reference (none: a litert reference has no float32 graph to lower)"."""
    from edgeport.benchmarks.verify.command import verify_model

    fp16, npz = fp16_tflite
    report = verify_model(str(fp16), reference=str(fp16.with_name("fp32.tflite")), data_npz=str(npz))
    assert report.ok and report.results[0].outputs["output_0"]["tolerance_diff"] < 1e-6, report.render()
    assert "float32 weight tensors rounded to float16" in report.reference["fp16"]


def test_onnx_fp16_weights_identity_and_sibling(tmp_path):
    from edgeport.benchmarks.verify.command import verify_model

    w = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    f32, f16 = _matmul_onnx(tmp_path / "f32.onnx", w), _matmul_onnx(tmp_path / "f16.onnx", w.astype(np.float16))
    copy = _matmul_onnx(tmp_path / "copy.onnx", w.astype(np.float16))
    np.savez(tmp_path / "x.npz", x_test=np.random.default_rng(1).normal(size=(10, 8)).astype(np.float32))
    for reference in (f16, f32):
        report = verify_model(str(copy), reference=str(reference), data_npz=str(tmp_path / "x.npz"))
        row = report.results[0]
        assert report.ok and row.precision == "fp16" and row.outputs["y"]["tolerance_diff"] < 1e-6, report.render()
    bad = _matmul_onnx(tmp_path / "bad.onnx", (w * np.float32(1.01)).astype(np.float16))
    assert not verify_model(str(bad), reference=str(f16), data_npz=str(tmp_path / "x.npz")).ok


def test_a_quantized_artifact_reference_gives_no_fp16_baseline_and_says_why(tmp_path):
    """A figure that cannot be measured still fails: an int8 artifact is no fp16 baseline."""
    from edgeport.benchmarks.verify import reference as ref

    class Session:
        def tensor_storage(self):
            return {"int8_quantized": 3, "integer_io": 2}

    fp16, basis = ref._artifact_fp16(Session(), "litert", None, tmp_path)
    assert fp16 == {} and basis.startswith("none: a litert reference of precision quantized")


# -- batching: N rows give the outputs of N single runs ------------------------------------------
def _fold_tflite(path: Path, batch: int | None, lead: int = 1) -> Path:
    """A detector head in miniature: [B, 8, 8, 4] -> matmul -> reshape to [1, -1, 16], so a resized
    batch folds into the anchors (64 of them per row); ``lead=-1``: [-1, 64, 16], batch-correct."""
    import tensorflow as tf

    w = tf.constant(np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([batch, 8, 8, 4], tf.float32)])
    def head(x):
        return tf.reshape(tf.reshape(x, [lead, -1 if lead == 1 else 64, 4]) @ w, [lead, -1 if lead == 1 else 64, 16])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([head.get_concrete_function()], head)
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def fold(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fold")
    x = np.random.default_rng(1).normal(size=(8, 8, 8, 4)).astype(np.float32)
    np.save(d / "rows8.npy", x)
    np.savez(d / "rows8.npz", x_test=x)
    return {"fixed": _fold_tflite(d / "fold_fixed.tflite", 1), "free": _fold_tflite(d / "fold_free.tflite", None),
            "ok": _fold_tflite(d / "fold_ok.tflite", None, lead=-1),
            "npy": d / "rows8.npy", "npz": d / "rows8.npz", "x": x}


@pytest.mark.parametrize("which, note", [
    ("fixed", "its batch is fixed at 1 (declared input shape (1, 8, 8, 4)): rows run one at a time, never resized"),
    ("free", "its batch is not axis 0: 1 != 4): rows run one at a time")])
def test_a_batch_that_folds_into_another_axis_runs_row_by_row(fold, which, note, capsys):
    """Was: resized to batch 8, (1, 512, 16) out, `run` ended in IndexError and verify failed on shapes."""
    import json

    from edgeport.cli import main
    from edgeport.runtimes import load

    session = load(fold[which], probe=False)
    singles = np.concatenate([session.predict(fold["x"][i:i + 1]) for i in range(8)])
    assert singles.shape == (8, 64, 16)
    session = load(fold[which], probe=False)
    np.testing.assert_array_equal(session.predict(fold["x"]), singles)
    assert any(note in n for n in session.notes), session.notes

    assert main(["run", str(fold[which]), str(fold["npy"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["results"]) == 8 and any(note in n for n in doc["notes"])
    for i, r in enumerate(doc["results"]):
        assert r["outputs"][0]["shape"] == [64, 16]
        np.testing.assert_allclose(r["outputs"][0]["values"], singles[i].ravel(), rtol=1e-6)
    assert main(["run", str(fold[which]), str(fold["npy"])]) == 0
    assert note in capsys.readouterr().err


def test_verify_runs_a_fixed_batch_model_row_by_row(fold, tmp_path):
    """Was: "output shape (8, 896, 16) differs from the reference's (1, 7168, 16)"."""
    from edgeport.benchmarks.verify.command import verify_model
    from edgeport.benchmarks.verify.jobs import predict_all
    from edgeport.runtimes import load

    for model in ("fixed", "free"):  # each against a model that batches right
        report = verify_model(str(fold[model]), reference=str(fold["ok"]), data_npz=str(fold["npz"]))
        assert report.ok and report.results[0].outputs["Identity"]["tolerance_diff"] < 1e-5, report.render()
        assert report.reference["outputs"] == {"Identity": [8, 64, 16]}
    session = load(fold["free"], probe=False)
    rows = np.concatenate([session.predict(fold["x"][i:i + 1]) for i in range(8)])
    np.testing.assert_array_equal(predict_all(load(fold["free"], probe=False), fold["x"])["Identity"], rows)


def test_a_batch_safe_model_is_checked_once_and_stays_batched(tiny_models, rng):
    from edgeport.runtimes import load

    session = load(tiny_models["mlp"], probe=False)
    x = rng.integers(0, 256, (6, 28, 28, 1)).astype(np.float32)
    y = session.predict(x)
    assert session.row_by_row is False and y.shape == (6, 10)
    assert not any("one at a time" in n for n in session.notes)


# -- outputs as returned: the engine's shape, not the declared one --------------------------------
def _ctc_onnx(path: Path, batch: int | str) -> Path:
    """An ONNX that declares its output [1, 5] and returns [3, N, 5] (a CTC recogniser's [T, N, C]):
    an If on a data-dependent condition keeps shape inference from replacing the declared shape."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    then = h.make_graph([h.make_node("Unsqueeze", ["x", "axes"], ["u"]), h.make_node("Tile", ["u", "reps"], ["t"]),
                         h.make_node("Mul", ["t", "w"], ["a"])], "then", [],
                        [h.make_tensor_value_info("a", T.FLOAT, None)])
    other = h.make_graph([h.make_node("Identity", ["x"], ["b"])], "else", [],
                         [h.make_tensor_value_info("b", T.FLOAT, None)])
    graph = h.make_graph(
        [h.make_node("ReduceMax", ["x"], ["mx"], keepdims=0), h.make_node("Greater", ["mx", "low"], ["cond"]),
         h.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)], "ctc",
        [h.make_tensor_value_info("x", T.FLOAT, [batch, 5])], [h.make_tensor_value_info("y", T.FLOAT, [1, 5])],
        [h.make_tensor("low", T.FLOAT, [], [-1e30]), h.make_tensor("axes", T.INT64, [1], [0]),
         h.make_tensor("reps", T.INT64, [3], [3, 1, 1]),
         h.make_tensor("w", T.FLOAT, [3, 1, 5], np.arange(1, 16, dtype=np.float32).tolist())])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def ctc(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ctc")
    _ctc_onnx(d / "ctc.onnx", "N")
    _ctc_onnx(d / "ctc_fixed.onnx", 1)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.save(d / "one.npy", x[:1])
    np.save(d / "four.npy", x)
    np.savez(d / "four.npz", x_test=x)
    return {"model": d / "ctc.onnx", "fixed": d / "ctc_fixed.onnx", "one": d / "one.npy", "four": d / "four.npy",
            "npz": d / "four.npz", "x": x}


def _expected(x: np.ndarray) -> np.ndarray:
    return np.tile(x[None], (3, 1, 1)) * np.arange(1, 16, dtype=np.float32).reshape(3, 1, 5)


NOTE = "output 'y': declared shape (1, 5), the engine returns (3, 1, 5) for one row: read as returned"


@pytest.mark.parametrize("rows", ["one", "four"])
def test_run_reads_every_output_with_the_shape_the_engine_returns(ctc, rows, capsys):
    """Was: 5 values (one time step of three) shown, without a word."""
    import json

    from edgeport.cli import main

    assert main(["run", str(ctc["model"]), str(ctc[rows]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert NOTE in doc["notes"]
    assert len(doc["results"]) == len(np.load(ctc[rows]))
    for i, r in enumerate(doc["results"]):
        assert r["outputs"][0]["shape"] == [3, 1, 5]
        np.testing.assert_allclose(r["outputs"][0]["values"], _expected(ctc["x"][i:i + 1]).ravel(), rtol=1e-6)
    assert main(["run", str(ctc["model"]), str(ctc[rows])]) == 0
    out = capsys.readouterr()
    assert "y shape (3, 1, 5)" in out.out and "(15 values" in out.out and NOTE in out.err


def test_verify_reads_outputs_as_returned_and_records_the_declared_shape(ctc, tmp_path):
    import shutil

    from edgeport.benchmarks.verify.command import verify_model

    copy = tmp_path / "copy.onnx"
    shutil.copyfile(ctc["model"], copy)
    report = verify_model(str(copy), reference=str(ctc["model"]), data_npz=str(ctc["npz"]))
    assert report.ok, report.render()
    assert report.reference["outputs"] == {"y": [4, 3, 1, 5]}
    assert any(NOTE in n for n in report.results[0].notes) and any(NOTE in n for n in report.notes)


# -- preprocessing stated: what an image became before it was fed ---------------------------------
@pytest.fixture(scope="module")
def mean_pixels(tmp_path_factory) -> dict[str, Path]:
    """A .tflite with no normalisation metadata whose output is the mean of what it is fed, per
    channel; a grey PNG of 200s; 0-255 images in a .npz."""
    import tensorflow as tf
    from PIL import Image

    d = tmp_path_factory.mktemp("pixels")

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def mean(x):
        return tf.reduce_mean(x, axis=[1, 2])

    (d / "mean.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_concrete_functions([mean.get_concrete_function()], mean).convert())
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(d / "grey.png")
    np.savez(d / "images.npz", x_test=np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3)).astype(np.float32))
    return {"model": d / "mean.tflite", "png": d / "grey.png", "npz": d / "images.npz"}


def test_run_states_raw_pixels_and_takes_normalize(mean_pixels, capsys):
    """Was: fed raw 0-255 without a word, and no way to give scale/mean/std."""
    import json

    from edgeport.cli import main

    model, png = str(mean_pixels["model"]), str(mean_pixels["png"])
    assert main(["run", model, png]) == 0
    out = capsys.readouterr()
    assert "200, 200, 200" in out.out
    assert "images fed as raw 0-255 pixels (no normalisation metadata in the file" in out.err
    assert main(["run", model, png, "--json", "--normalize", "1/255,0.5,0.5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(doc["results"][0]["outputs"][0]["values"], [(200 / 255 - 0.5) / 0.5] * 3, rtol=1e-5)
    fed = doc["preprocessing"]
    assert fed["scale"] == pytest.approx(1 / 255) and fed["mean"] == [0.5, 0.5, 0.5] and fed["std"] == [0.5] * 3
    assert fed["from"] == "--normalize 1/255,0.5,0.5"
    assert main(["run", model, png, "--normalize", "1,1:2,1"]) == 2
    assert "edgeport: error: --normalize: 2 channel values for a model of 3 channels" in capsys.readouterr().err


def test_verify_and_bench_take_normalize_and_record_it(mean_pixels, tmp_path):
    import shutil

    from edgeport.benchmarks.bench.command import bench_model
    from edgeport.benchmarks.verify.command import verify_model

    copy = tmp_path / "copy.tflite"
    shutil.copyfile(mean_pixels["model"], copy)
    plain = verify_model(str(copy), reference=str(mean_pixels["model"]), data_npz=str(mean_pixels["npz"]))
    report = verify_model(str(copy), reference=str(mean_pixels["model"]), data_npz=str(mean_pixels["npz"]),
                          normalize="1/255,0.5:0.4:0.3,0.5")
    assert report.ok and plain.ok, report.render()
    assert plain.data["preprocessing"]["text"].startswith("inputs fed as given")
    fed = report.data["preprocessing"]
    assert fed["mean"] == [0.5, 0.4, 0.3] and fed["from"] == "--normalize 1/255,0.5:0.4:0.3,0.5"
    assert any(n.startswith("inputs fed as (value x 0.00392157 - mean [0.5, 0.4, 0.3]) / std 0.5")
               for n in report.notes)
    x = np.load(mean_pixels["npz"])["x_test"]
    expected = (x.mean(axis=(1, 2)) / 255 - np.array([0.5, 0.4, 0.3])) / 0.5
    assert report.reference["figures"]["outputs"]["Identity"]["shape"] == [5, 3]
    assert plain.data["sha256"] != report.data["sha256"]
    from edgeport.benchmarks.verify.jobs import predict_all
    from edgeport.runtimes import load
    from edgeport.runtimes.preprocess import normalize_feed

    fed_x, _ = normalize_feed(x, "1/255,0.5:0.4:0.3,0.5", "x")
    np.testing.assert_allclose(predict_all(load(copy, probe=False), fed_x)["Identity"], expected, rtol=1e-4)

    bench = bench_model(str(copy), data_npz=str(mean_pixels["npz"]), normalize="1,127.5,127.5", seconds=0.05,
                        threads=[1])
    assert "inputs fed as (value - mean 127.5) / std 127.5 (--normalize 1,127.5,127.5" in bench.inputs


@pytest.mark.parametrize("which", ["model", "fixed"])
def test_rows_of_an_output_without_a_batch_axis_stay_rows_in_any_chunking(ctc, which):
    """verify's chunks of 32 and a last chunk of one row (the batch-1 fast paths) give one stacked array."""
    from edgeport.benchmarks.verify.jobs import predict_all
    from edgeport.runtimes import load

    x = np.random.default_rng(1).normal(size=(33, 5)).astype(np.float32)
    y = predict_all(load(ctc[which], probe=False), x)["y"]
    assert y.shape == (33, 3, 1, 5)
    np.testing.assert_allclose(y, np.stack([_expected(x[i:i + 1]) for i in range(33)]), rtol=1e-6)


def test_a_free_batch_the_graph_cannot_take_runs_row_by_row_and_says_why(tmp_path):
    """An ONNX declaring [N, 5] that reshapes to [1, 5]: a batch of several rows is an engine error."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h

    from edgeport.runtimes import load

    graph = h.make_graph([h.make_node("Reshape", ["x", "shape"], ["r"]), h.make_node("Mul", ["r", "w"], ["y"])],
                         "one", [h.make_tensor_value_info("x", T.FLOAT, ["N", 5])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 5])],
                         [h.make_tensor("shape", T.INT64, [2], [1, 5]), h.make_tensor("w", T.FLOAT, [5], [2.0] * 5)])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "one.onnx")
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    session = load(tmp_path / "one.onnx", probe=False)
    np.testing.assert_allclose(session.predict(x), 2 * x, rtol=1e-6)
    assert any(n.startswith("a batch of 4 rows does not run (") and n.endswith("rows run one at a time")
               for n in session.notes), session.notes
