"""Files people bring: one function decides what a model file is for every command (a ``.hdf5``
is a legacy Keras file like ``.h5``), and a bare third-party ``.tflite``'s precision class comes
from its tensors (dynamic-range int8 weights with float I/O, float16 weights)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport import model_files
from edgeport.cli import main
from edgeport.errors import LoadError, ModelFileError


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 12x12 images: bright centred blobs (class 1) and dark noise (class 0), like faces/non-faces."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[:12, :12]
    blob = np.exp(-((yy - 6) ** 2 + (xx - 6) ** 2) / 10.0)
    y = np.arange(n) % 2
    x = np.where(y[:, None, None] == 1, blob[None] * 0.8 + r.random((n, 12, 12)) * 0.2, r.random((n, 12, 12)) * 0.4)
    return x[..., None].astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def hdf5_model(tmp_path_factory):
    """A small trained Keras-2-style CNN saved as ``model.hdf5``, its test inputs, and its float .tflite
    plus a publisher's own dynamic-range and fp16 .tflite (converted with tf.lite directly)."""
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("hdf5")
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    net = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    net.compile("adam", "sparse_categorical_crossentropy")
    xt, yt = blobs(256)
    net.fit(xt, yt, epochs=3, verbose=0)
    net.save(d / "model.hdf5")
    xs, ys = blobs(64, seed=1)
    np.savez(d / "test.npz", x_test=xs, y_test=ys)
    files = {}
    for name, settings in {"fp32": {}, "dynamic": {"optimizations": [tf.lite.Optimize.DEFAULT]},
                           "fp16": {"optimizations": [tf.lite.Optimize.DEFAULT], "types": [tf.float16]}}.items():
        conv = tf.lite.TFLiteConverter.from_keras_model(net)
        conv.optimizations = settings.get("optimizations", [])
        if "types" in settings:
            conv.target_spec.supported_types = settings["types"]
        files[name] = d / f"publisher_{name}.tflite"
        files[name].write_bytes(conv.convert())
    return {"dir": d, "hdf5": d / "model.hdf5", "npz": d / "test.npz", **files}


def test_one_function_decides_what_a_model_file_is(tmp_path):
    for name, kind in {"a.keras": "keras", "a.h5": "keras", "a.HDF5": "keras", "a.tflite": "tflite",
                       "a.onnx": "onnx", "a.ort": "ort_format"}.items():
        (tmp_path / name).write_bytes(b"x" * 16)
        assert model_files.model_file_kind(tmp_path / name) == kind, name
    (tmp_path / "ckpt.weights").write_bytes(model_files.HDF5_SIGNATURE + b"rest")
    assert model_files.model_file_kind(tmp_path / "ckpt.weights") == "keras"  # sniffed by its signature
    assert model_files.is_legacy_keras(tmp_path / "ckpt.weights") and model_files.is_legacy_keras(tmp_path / "a.HDF5")
    (tmp_path / "a.xyz").write_bytes(b"nothing we know")
    with pytest.raises(LoadError, match=r"a\.xyz: unknown model file type '\.xyz'.*\.hdf5"):
        model_files.model_file_kind(tmp_path / "a.xyz")
    from edgeport.export.source import file_kind
    from edgeport.runtimes import guard, runtimes_for

    assert guard.artifact_kind(tmp_path / "a.HDF5") == "keras" and file_kind(tmp_path / "a.HDF5") == "h5"
    assert runtimes_for(tmp_path / "a.HDF5") == runtimes_for(tmp_path / "a.keras")


def test_a_damaged_hdf5_is_refused_naming_the_file(tmp_path):
    from edgeport.export.pipeline import export_model

    bad = tmp_path / "broken.hdf5"
    bad.write_bytes(b"PK\x03\x04 not hdf5 at all")
    with pytest.raises(ModelFileError, match=r"broken\.hdf5: not an HDF5 file"):
        export_model(str(bad), out=tmp_path / "out", formats=["tflite_fp32"])
    with pytest.raises(ModelFileError, match=r"x\.tflite: not a valid tflite file"):  # converted to ONNX: read first
        (tmp_path / "x.tflite").write_bytes(b"0000TFL3")
        export_model(str(tmp_path / "x.tflite"), out=tmp_path / "out")
    with pytest.raises(ModelFileError, match=r"x\.ort: an engine artifact.*edgeport verify"):
        (tmp_path / "x.ort").write_bytes(b"0000ORTM")
        export_model(str(tmp_path / "x.ort"), out=tmp_path / "out")


def test_an_hdf5_source_exports_and_every_command_takes_it(hdf5_model, tmp_path):
    from edgeport.benchmarks.verify.command import verify_model
    from edgeport.export.pipeline import export_model

    out = tmp_path / "artifacts"
    export_model(str(hdf5_model["hdf5"]), out=out, formats=["tflite_fp32", "tflite_dynamic"])
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "h5" and (out / "model" / manifest["source"]["file"]).is_file()
    report = verify_model("model", out=out, data_npz=str(hdf5_model["npz"]))
    assert report.ok, report.render()
    # the reported failure: `verify x.tflite --reference model.hdf5` was refused ("unknown model file type")
    assert main(["verify", str(hdf5_model["fp32"]), "--reference", str(hdf5_model["hdf5"]),
                 "--data-npz", str(hdf5_model["npz"])]) == 0


@pytest.mark.parametrize("which, precision, read", [("dynamic", "quantized", "dynamic range"),
                                                    ("fp16", "fp16", "float16 tensors"),
                                                    ("fp32", "float32", "every tensor float32")])
def test_a_bare_publishers_tflite_is_read_from_its_tensors(hdf5_model, which, precision, read):
    from edgeport.benchmarks.verify.command import verify_model

    report = verify_model(str(hdf5_model[which]), reference=str(hdf5_model["hdf5"]), data_npz=str(hdf5_model["npz"]))
    row = report.results[0]
    assert row.precision == precision, report.render()
    assert any(read in n for n in row.notes), row.notes  # the table says how the class was read
    assert row.status == "pass", report.render()
