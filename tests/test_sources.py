"""Bring your own model: legacy .h5 (Keras 3 and tf.keras / Keras 2) and SavedModel directories go
through the same export and verify as a .keras file; --out works as documented."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks.verify.command import verify_model
from edgeport.cli import main
from edgeport.errors import ModelFileError
from edgeport.export.pipeline import export_model
from edgeport.manifest import load_manifest

FORMATS = ["saved_model", "tflite_fp32", "tflite_fp16", "tflite_int8", "onnx"]


def _data(tmp_path: Path, n: int = 64) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28, 1)).astype(np.uint8)
    np.save(tmp_path / "cal.npy", x[:32].astype(np.float32))
    np.savez(tmp_path / "test.npz", x_test=x)
    return tmp_path / "cal.npy", tmp_path / "test.npz"


def _keras3_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                             keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])


def _export_and_verify(path: Path, tmp_path: Path, formats=FORMATS):
    cal, npz = _data(tmp_path)
    report = export_model(str(path), formats=formats, out=tmp_path / "out", calibration_data=str(cal))
    assert report.ok, report.render()
    model_dir = tmp_path / "out" / path.stem
    # untrained models: near-uniform outputs, so only the numbers are gated
    verified = verify_model(path.stem, out=tmp_path / "out", data_npz=str(npz),
                            gates="quantized.min_confident_agreement=0,quantized.min_agreement=0,"
                                  "fp16.min_confident_agreement=0,fp16.min_agreement=0,float32.min_agreement=0")
    assert verified.ok, verified.render()
    return load_manifest(model_dir), verified


def test_a_keras3_h5_exports_and_verifies(tmp_path):
    path = tmp_path / "mine.h5"
    _keras3_model().save(path)
    manifest, verified = _export_and_verify(path, tmp_path)
    assert manifest["source"]["kind"] == "h5" and manifest["source"]["file"] == "model.h5"
    assert (tmp_path / "out" / "mine" / "model.h5").is_file()
    assert verified.reference["runtime"] == "keras" and "float64" in verified.reference["noise_basis"]


def test_a_tf_keras_2_h5_exports_and_verifies(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    legacy = tf_keras.Sequential([tf_keras.layers.Input((28, 28, 1)), tf_keras.layers.Rescaling(1 / 255.0),
                                  tf_keras.layers.Flatten(), tf_keras.layers.Dense(8, activation="relu"),
                                  tf_keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "keras2.h5"
    legacy.save(path)
    manifest, verified = _export_and_verify(path, tmp_path)
    assert manifest["source"]["kind"] == "h5"
    assert all(r.status == "pass" for r in verified.results)


def test_a_savedmodel_directory_exports_and_verifies(tmp_path):
    src = tmp_path / "exported_sm"
    _keras3_model().export(str(src), verbose=False)
    manifest, verified = _export_and_verify(src, tmp_path)
    assert manifest["source"]["kind"] == "savedmodel" and manifest["source"]["reference_runtime"] == "savedmodel"
    assert verified.reference["runtime"] == "savedmodel"
    fp32 = next(r for r in verified.results if r.format == "tflite_fp32")
    assert fp32.figures["tolerance_basis"].startswith("fixed relative bound")  # no float64 twin: said
    fp16 = next(r for r in verified.results if r.format == "tflite_fp16")
    assert fp16.figures["tolerance_diff"] <= fp16.figures["tolerance"]


def test_h5_with_a_lambda_is_refused_unless_allowed(tmp_path):
    import keras

    path = tmp_path / "lam.h5"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Lambda(lambda t: t * 2.0)]).save(path)
    with pytest.raises(ModelFileError, match=r"lam\.h5: refused in Keras safe mode.*--allow-unsafe"):
        export_model(str(path), formats=["tflite_fp32"], out=tmp_path / "out")
    report = export_model(str(path), formats=["tflite_fp32"], out=tmp_path / "out", allow_unsafe=True)
    assert report.ok, report.render()


def test_h5_with_an_unknown_custom_layer_names_the_file(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="test_only")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    path = tmp_path / "custom.h5"
    keras.Sequential([keras.Input((4,)), Twice(), keras.layers.Dense(2)]).save(path)
    keras.saving.get_custom_objects().clear()  # the user's code is not here
    with pytest.raises(ModelFileError, match=r"custom\.h5: cannot load as a Keras model"):
        export_model(str(path), formats=["tflite_fp32"], out=tmp_path / "out")


def test_a_corrupt_h5_is_named(tmp_path, capsys):
    path = tmp_path / "broken.h5"
    path.write_bytes(b"not an hdf5 file at all")
    assert main(["export", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "broken.h5: not an HDF5 file" in capsys.readouterr().err


def test_out_is_honoured_for_a_model_file_in_another_directory(tmp_path):
    some = tmp_path / "some" / "dir"
    some.mkdir(parents=True)
    _keras3_model().save(some / "model.keras")
    assert main(["export", str(some / "model.keras"), "--formats", "tflite_fp32", "--out", str(tmp_path / "X")]) == 0
    assert (tmp_path / "X" / "model" / "model_fp32.tflite").is_file()
    assert not (some / "model_fp32.tflite").exists() and not (some / "manifest.json").exists()
