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
    """A float16-weight .tflite (the converter's fp16 path, as third parties ship them) and inputs."""
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("fp16")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4, activation="softmax")])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    path = d / "fp16.tflite"
    path.write_bytes(converter.convert())
    np.savez(d / "x.npz", x_test=np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    return path, d / "x.npz"


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


def test_a_float32_artifact_reference_gives_no_fp16_baseline_and_says_why(fp16_tflite, tmp_path):
    """A figure that cannot be measured still fails: a float32 artifact is no fp16 baseline."""
    from edgeport.benchmarks.verify import reference as ref

    class Session:
        def tensor_storage(self):
            return {"float32": 3}

    own, basis = ref._artifact_fp16(Session(), "litert")
    assert not own and basis.startswith("none: a litert reference of precision float32")
