"""A Keras 2 .h5 whose recurrent layers saved ``time_major`` (ethnicolr's census LSTM, zoo): Keras 3
refuses the argument; saved as False, its default, the file is read without it, said in a note and in
the manifest; saved True it is refused with the layer named."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.errors import LoadError
from edgeport.runtimes import keras_legacy


def _h5(path, config: dict) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)


def _lstm_config(time_major) -> dict:
    return {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Embedding", "config": {"name": "emb", "input_dim": 10, "output_dim": 4}},
        {"class_name": "LSTM", "config": {"name": "lstm_1", "units": 3, "time_major": time_major}}]}}


def test_the_dropped_argument_is_found_and_left_out_of_a_copy(tmp_path):
    _h5(tmp_path / "m.h5", _lstm_config(False))
    assert keras_legacy.dropped_args(tmp_path / "m.h5") == ["lstm_1.time_major=False"]
    (tmp_path / "out").mkdir()
    copy, note = keras_legacy.without_dropped_args(tmp_path / "m.h5", tmp_path / "out")
    assert "read by Keras 3 without lstm_1.time_major=False" in note
    assert keras_legacy.dropped_args(copy) == []
    assert keras_legacy.dropped_args(tmp_path / "m.h5") == ["lstm_1.time_major=False"]  # the original untouched


def test_time_major_true_is_refused_naming_the_layer(tmp_path):
    _h5(tmp_path / "m.h5", _lstm_config(True))
    with pytest.raises(LoadError, match=r"m\.h5: layer 'lstm_1' was saved with time_major=True"):
        keras_legacy.without_dropped_args(tmp_path / "m.h5", tmp_path)


def test_a_file_without_it_has_nothing_to_leave_out(tmp_path):
    _h5(tmp_path / "m.h5", {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2}}]}})
    assert keras_legacy.dropped_args(tmp_path / "m.h5") == []
    assert keras_legacy.dropped_args(tmp_path / "missing.h5") == []


def test_a_tf_keras_lstm_h5_loads_in_keras_3_with_the_same_outputs(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    legacy = tf_keras.Sequential([tf_keras.layers.Input((6,)), tf_keras.layers.Embedding(20, 4),
                                  tf_keras.layers.LSTM(5), tf_keras.layers.Dense(3, activation="softmax")])
    path = tmp_path / "keras2_lstm.h5"
    legacy.save(path)
    assert keras_legacy.dropped_args(path) == [f"{legacy.layers[1].name}.time_major=False"]
    model, note = keras_legacy.load_model(path)
    assert "a Keras 2 .h5, read by Keras 3 without" in note
    x = np.random.default_rng(0).integers(0, 20, (4, 6)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), legacy.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    from edgeport.benchmarks.verify.command import verify_model
    from edgeport.export.pipeline import export_model
    from edgeport.manifest import load_manifest

    report = export_model(str(path), formats=["onnx"], out=tmp_path / "out")  # export states it, manifest keeps it
    assert report.ok and any("read by Keras 3 without" in w for w in report.warnings), report.render()
    assert load_manifest(tmp_path / "out" / path.stem)["source"]["keras2_args_left_out"] == [
        f"{legacy.layers[1].name}.time_major=False"]
    np.savez(tmp_path / "x.npz", x_test=x)
    verified = verify_model(path.stem, out=tmp_path / "out", data_npz=str(tmp_path / "x.npz"),
                            gates="float32.min_agreement=0")
    assert verified.ok and any("read by Keras 3 without" in n for n in verified.notes), verified.render()
