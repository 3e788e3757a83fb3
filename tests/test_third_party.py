"""A third-party .tflite that carries standard TFLite Metadata (NormalizationOptions, a packed label
file), built here with the official schema: `edgeport run`, `bench` and `verify` take it as it is."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.runtimes import metadata_reader as tflite_metadata
from edgeport.runtimes.artifact_info import artifact_info

LABELS = ["cat", "dog", "bird"]


def _tflite_of(model, tmp_path: Path, name: str) -> bytes:
    import tensorflow as tf

    model.export(str(tmp_path / name), verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / name)).convert()


@pytest.fixture(scope="module")
def third_party(tmp_path_factory):
    """A classifier that wants (pixel - 127.5) / 127.5 (no scaling inside) and a box regressor."""
    import keras

    from edgeport.export.targets.metadata_writer import image_classifier_metadata, populate, write_image_classifier

    tmp = tmp_path_factory.mktemp("third_party")
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inp))
    classifier = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))
    boxes = keras.Model(inp, keras.layers.Dense(4)(h))
    fixed = _tflite_of(classifier, tmp, "cls"), _tflite_of(boxes, tmp, "box")
    cls_path, box_path = tmp / "classifier.tflite", tmp / "detector.tflite"
    cls_path.write_bytes(write_image_classifier(fixed[0], LABELS, name="third-party classifier",
                                                description="a model edgeport did not make", mean=[127.5] * 3,
                                                std=[127.5] * 3))
    md = image_classifier_metadata(fixed[1], name="boxes", description="a regressor", version="2",
                                   labels_file="none.txt", mean=[127.5], std=[127.5])
    box_path.write_bytes(populate(fixed[1], md, {}))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    from PIL import Image

    Image.fromarray(pixels).save(tmp / "photo.png")
    return {"classifier": classifier, "boxes": boxes, "cls": cls_path, "box": box_path,
            "png": tmp / "photo.png", "pixels": pixels.astype(np.float32), "tmp": tmp}


def test_standard_metadata_is_read(third_party):
    md = tflite_metadata.read(third_party["cls"].read_bytes())
    assert md.name == "third-party classifier" and md.labels == LABELS and md.packed_files == ["labels.txt"]
    assert md.inputs[0].mean == [127.5] * 3 and md.inputs[0].std == [127.5] * 3
    assert md.inputs[0].color_space == "RGB" and md.min_parser_version == "1.0.0"
    info = artifact_info(third_party["cls"])
    assert info.source == "tflite-metadata" and info.labels == LABELS
    assert info.normalization == ([127.5] * 3, [127.5] * 3)


def test_run_applies_its_normalization_and_its_labels(third_party, capsys):
    assert main(["run", str(third_party["cls"]), str(third_party["png"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = np.asarray(third_party["classifier"](((third_party["pixels"] - 127.5) / 127.5)[None]))[0]
    top = doc["results"][0]["top_k"]
    assert doc["labels_from"] == "tflite-metadata" and top[0]["label"] == LABELS[int(expected.argmax())]
    assert top[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    raw = np.asarray(third_party["classifier"](third_party["pixels"][None]))[0]
    assert abs(top[0]["probability"] - float(raw.max())) > 1e-3 or raw.argmax() != expected.argmax()


def test_a_regression_output_is_shown_as_values_with_its_shape(third_party, capsys):
    assert main(["run", str(third_party["box"]), str(third_party["png"])]) == 0
    out = capsys.readouterr().out
    assert "probability" not in out and "shape (4,)" in out
    assert main(["run", str(third_party["box"]), str(third_party["png"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    values = doc["results"][0]["outputs"][0]["values"]
    expected = np.asarray(third_party["boxes"](((third_party["pixels"] - 127.5) / 127.5)[None]))[0]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)


def test_unreadable_metadata_is_an_error_not_a_silent_raw_run(third_party, monkeypatch, capsys):
    def missing():
        raise tflite_metadata.MetadataSchemaMissing("the official TFLite Metadata schema code is not installed here")

    monkeypatch.setattr(tflite_metadata, "schema", missing)
    assert main(["run", str(third_party["cls"]), str(third_party["png"])]) == 2
    err = capsys.readouterr().err
    assert "classifier.tflite: carries TFLite Metadata that could not be read" in err and "--ignore-metadata" in err
    assert main(["run", str(third_party["cls"]), str(third_party["png"]), "--ignore-metadata"]) == 0


def test_bench_and_verify_take_it_without_a_manifest(third_party, tmp_path):
    from edgeport.benchmarks.bench.command import bench_model
    from edgeport.benchmarks.verify.command import verify_model

    report = bench_model(str(third_party["cls"]), seconds=0.2, threads=[1], keras_predict=False)
    assert report.ok and report.rows and report.rows[0]["batch1"]["p50_us"] > 0
    assert Path(f"{third_party['cls']}.bench.json").is_file()
    rng = np.random.default_rng(1)
    x = ((rng.integers(0, 256, (32, 16, 16, 3)) - 127.5) / 127.5).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x_test=x)
    third_party["classifier"].save(tmp_path / "reference.keras")
    report = verify_model(str(third_party["cls"]), reference=str(tmp_path / "reference.keras"),
                          data_npz=str(tmp_path / "inputs.npz"), gates="float32.min_agreement=0")
    assert report.ok, report.render()
