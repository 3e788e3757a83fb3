"""Bad files, bad input, crashing engines: a typed one-line error naming the file, never a crash of
the calling process, never partial output. Each protection here was checked by removing it."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.errors import EdgeportError, ExportError, InputError, LoadError, ModelFileError
from edgeport.runtimes import load


@pytest.fixture(scope="module")
def crashing_model(tmp_path_factory) -> Path:
    """A model whose loading kills the process with SIGSEGV (a Lambda that does it, allowed with
    --allow-unsafe): a stand-in for a native crash inside TensorFlow on a bad file."""
    import keras

    crash = lambda t: __import__("os").kill(__import__("os").getpid(), 11) or t  # noqa: E731 - SIGSEGV

    path = tmp_path_factory.mktemp("crash") / "crashes.keras"
    with pytest.MonkeyPatch.context() as mp:  # building calls the layer: not here, only where it is loaded
        mp.setattr(os, "kill", lambda *a: None)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(crash), keras.layers.Dense(2)])
        model.save(path)
    return path


def test_a_crash_while_exporting_fails_the_export_not_the_caller(crashing_model, tmp_path):
    from edgeport.export.pipeline import export_model

    with pytest.raises(ExportError, match=r"crashes\.keras: the export process died \(.*SIGSEGV"):
        export_model(str(crashing_model), formats=["tflite_fp32"], out=tmp_path, allow_unsafe=True, isolate=True)
    assert os.getpid() and not (tmp_path / "crashes" / "manifest.json").exists()


def test_a_crash_while_loading_a_keras_model_is_a_load_error(crashing_model, capsys):
    with pytest.raises(LoadError, match=r"crashes\.keras: the keras engine crashed \(SIGSEGV\)"):
        load(crashing_model, runtime="keras", safe_mode=False)
    assert main(["run", str(crashing_model), "1", "2", "3"]) == 2  # safe mode first: refused, named
    assert "crashes.keras" in capsys.readouterr().err


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    import keras

    from edgeport.export.pipeline import export_model

    tmp = tmp_path_factory.mktemp("hard")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp / "mnistish.keras")
    assert export_model(str(tmp / "mnistish.keras"), formats=["tflite_fp32", "tflite_int8", "onnx"], out=tmp,
                        calibration_samples=8).ok
    return tmp / "mnistish"


@pytest.mark.parametrize("fmt", ["model_fp32.tflite", "model_int8.tflite", "model.onnx"])
def test_inputs_that_do_not_fit_are_clear_errors(artifacts, fmt):
    session = load(artifacts / fmt)
    good = np.zeros((2, 28, 28, 1), np.float32)
    cases = {
        "wrong size": (np.zeros((2, 27, 28, 1), np.float32), "expected shape"),
        "channels first": (np.zeros((2, 1, 28, 28), np.float32), "channel"),
        "three channels": (np.zeros((2, 28, 28, 3), np.float32), "expected 1 channel"),
        "empty batch": (np.zeros((0, 28, 28, 1), np.float32), "empty batch"),
        "nan": (np.full((2, 28, 28, 1), np.nan, np.float32), "NaN/inf"),
        "inf": (np.full((2, 28, 28, 1), np.inf, np.float32), "NaN/inf"),
        "strings": (np.array([["a"] * 28] * 28)[None, ..., None], "expected numbers"),
        "objects": (np.array([None, 1], dtype=object), "expected numbers"),
    }
    for x, message in cases.values():
        with pytest.raises(InputError, match=message):
            session.predict(x)
    assert session.predict(good).shape == (2, 10)


def test_an_obviously_meant_missing_channel_axis_is_added_and_said(artifacts):
    session = load(artifacts / "model_fp32.tflite")
    x = np.random.default_rng(0).uniform(0, 255, (3, 28, 28)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"fed as \(3, 28, 28, 1\)"):
        y = session.predict(x)
    np.testing.assert_array_equal(y, session.predict(x[..., None]))
    assert any("channel axis added" in n for n in session.notes)


def test_a_huge_batch_runs_in_chunks_with_whole_output(artifacts, monkeypatch):
    session = load(artifacts / "model.onnx")
    monkeypatch.setattr(type(session), "max_batch", property(lambda self: 7))
    x = np.random.default_rng(1).uniform(0, 255, (50, 28, 28, 1)).astype(np.float32)
    chunked = session.predict(x)
    monkeypatch.setattr(type(session), "max_batch", property(lambda self: 1000))
    np.testing.assert_allclose(chunked, session.predict(x), rtol=1e-6, atol=1e-7)
    assert chunked.shape == (50, 10)


def test_an_image_that_is_not_an_image_is_named(artifacts, tmp_path, capsys):
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"this is not a png")
    assert main(["run", str(artifacts / "model_fp32.tflite"), str(fake)]) == 2
    err = capsys.readouterr().err
    assert "photo.png: not a readable image" in err and "Traceback" not in err


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(b"\x00" * 64), "not a valid tflite file"),
    (lambda p: p.mkdir(), "a directory"),
])
def test_broken_model_files_are_named_by_every_command(artifacts, tmp_path, make, message, capsys):
    path = tmp_path / "broken.tflite"
    make(path)
    with pytest.raises(LoadError, match=message):
        load(path)
    for argv in (["run", str(path), "1"], ["bench", str(path), "--seconds", "0.1"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "broken.tflite" in err and "Traceback" not in err


def test_an_onnx_renamed_tflite_and_a_truncated_file(artifacts, tmp_path):
    renamed = tmp_path / "model.tflite"
    renamed.write_bytes((artifacts / "model.onnx").read_bytes())
    with pytest.raises(LoadError, match="model.tflite: not a valid tflite file"):
        load(renamed)
    cut = tmp_path / "cut.onnx"
    data = (artifacts / "model.onnx").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match="cut.onnx"):
        load(cut)


def test_an_unreadable_file_is_named(artifacts, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file: permissions cannot make one unreadable here")
    path = tmp_path / "locked.tflite"
    path.write_bytes((artifacts / "model_fp32.tflite").read_bytes())
    path.chmod(0)
    with pytest.raises(LoadError, match="locked.tflite: unreadable"):
        load(path)


@pytest.mark.parametrize("suffix, data, message", [
    (".keras", b"PK\x03\x04 not really a zip", "not a Keras .keras archive"),
    (".h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "cannot load as a Keras model"),
    (".h5", b"GIF89a", "not an HDF5 file"),
])
def test_a_corrupt_keras_or_h5_file_is_named_by_export(tmp_path, suffix, data, message, capsys):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data)
    assert main(["export", str(path), "--out", str(tmp_path / "out"), "--formats", "tflite_fp32"]) == 2
    err = capsys.readouterr().err
    assert f"bad{suffix}" in err and message in err and "Traceback" not in err


def test_a_broken_saved_model_is_named(tmp_path):
    sm = tmp_path / "sm"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\xff\xff\xff garbage protobuf")
    with pytest.raises(LoadError, match="saved_model"):
        load(sm)
    from edgeport.export.pipeline import export_model

    with pytest.raises(ModelFileError, match="sm"):
        export_model(str(sm), formats=["tflite_fp32"], out=tmp_path / "out")


def test_a_tflite_whose_tensors_need_more_memory_than_the_machine_has_is_refused(artifacts, tmp_path, monkeypatch):
    from edgeport.runtimes import guard

    monkeypatch.setattr(guard, "available_memory", lambda: 1000)  # a machine with 1000 bytes
    with pytest.raises(LoadError, match=r"model_fp32.tflite: its tensors need .* this machine has"):
        load(artifacts / "model_fp32.tflite")
    assert isinstance(LoadError("x"), EdgeportError) and signal.SIGSEGV
