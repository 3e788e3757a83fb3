"""Export stage behaviour: failures keep the last good artifacts, safe mode, options, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.errors import ModelFileError, UnknownNameError
from edgeport.export.config import ExportConfig, ExportConfigError
from edgeport.export.pipeline import export_model
from edgeport.export.registry import Format, expand_formats, list_formats
from edgeport.manifest import check_integrity, load_manifest

FAST = ["tflite_fp32", "tflite_fp16", "onnx"]


def _snapshot(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}


def _boom(*_args, **_kwargs):
    raise ValueError("converter exploded\nsecond line of a long traceback")


# -- options and names -------------------------------------------------------------------------
def test_all_expands_in_dependency_order_and_names_are_checked():
    assert expand_formats(["all"]) == tuple(Format)
    assert expand_formats(["c_array,tflite_fp32", "saved_model"]) == (
        Format.SAVED_MODEL, Format.TFLITE_FP32, Format.C_ARRAY)
    with pytest.raises(UnknownNameError, match="tflite_int4.*valid formats: all, c_array"):
        expand_formats(["tflite_int4"])
    listing = list_formats()
    assert all(f.value in listing for f in Format) and "model_int8_data.h" in listing
    assert main(["formats"]) == 0


@pytest.mark.parametrize("kwargs, flag", [({"opset": 12}, "--opset"),
                                          ({"calibration_samples": 0}, "--calibration-samples"),
                                          ({"int8_io": "int4"}, "--int8-io"), ({"seed": "x"}, "--seed"),
                                          ({"calibration_data": "missing.npy"}, "--calibration-data")])
def test_config_invariants(kwargs, flag):
    with pytest.raises(ExportConfigError, match=flag):
        ExportConfig(**kwargs)


def test_course_model_that_is_not_trained_says_how_to_train_it(tmp_path):
    pytest.importorskip("edgeport.training.models")
    with pytest.raises(ModelFileError, match="edgeport train fashion_mlp"):
        export_model("fashion_mlp", out=tmp_path)
    with pytest.raises(ModelFileError, match="not a .keras/.h5/.hdf5 file"):
        export_model("no_such_model", out=tmp_path)


# -- failures and atomicity --------------------------------------------------------------------
def test_a_failing_format_keeps_the_previous_artifact_and_the_others_succeed(tiny_models, tmp_path, monkeypatch):
    first = export_model(str(tiny_models["mlp"]), formats=FAST, out=tmp_path, isolate=False)
    assert first.ok, first.render()
    model_dir = tmp_path / "tiny_mlp"
    before, entry = _snapshot(model_dir), load_manifest(model_dir)["artifacts"]["tflite_fp16"]

    monkeypatch.setattr("edgeport.export.tflite.export_fp16", _boom)
    again = export_model(str(tiny_models["mlp"]), formats=FAST, out=tmp_path, isolate=False)
    assert not again.ok and again.failed == ["tflite_fp16"]
    failed = next(r for r in again.results if r.format == "tflite_fp16")
    assert failed.error == "tflite_fp16: ValueError: converter exploded"
    assert "tflite_fp16" in again.render() and "converter exploded" in again.render()
    after = load_manifest(model_dir)
    assert after["artifacts"]["tflite_fp16"] == entry  # the previous good entry, untouched
    assert (model_dir / "model_fp16.tflite").read_bytes() == before["model_fp16.tflite"]
    for fmt in FAST:  # every listed file still matches its sha256
        check_integrity(model_dir, after["artifacts"][fmt])
    assert after["artifacts"]["onnx"]["exported_at"] >= entry["exported_at"]

    code = main(["export", "--no-isolate", str(tiny_models["mlp"]), "--formats", "tflite_fp16", "tflite_fp32",
                 "--out", str(tmp_path)])
    assert code != 0


def test_a_failed_dependency_is_reported_for_the_formats_that_need_it(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setattr("edgeport.export.saved_model.export", _boom)
    report = export_model(str(tiny_models["celsius"]), formats=["tflite_fp32", "onnx"], out=tmp_path, isolate=False)
    assert report.failed == ["tflite_fp32", "onnx"]
    assert report.results[0].error == ("tflite_fp32: needs saved_model first, which failed: "
                                       "ValueError: converter exploded")
    assert report.results[1].error == ("onnx: not attempted: needs saved_model, which failed: "
                                       "ValueError: converter exploded")
    report = export_model(str(tiny_models["celsius"]), formats=["saved_model", "tflite_fp32"], out=tmp_path,
                          isolate=False)
    assert report.results[1].error.startswith("tflite_fp32: not attempted: needs saved_model, which failed")


def test_an_interrupted_export_leaves_the_last_good_state(tiny_models, tmp_path, monkeypatch):
    assert export_model(str(tiny_models["mlp"]), formats=FAST, out=tmp_path, isolate=False).ok
    model_dir = tmp_path / "tiny_mlp"
    before = _snapshot(model_dir)

    def interrupted(ctx, dest):
        dest.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr("edgeport.export.onnx.export_fp32", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_model(str(tiny_models["mlp"]), formats=FAST, out=tmp_path, isolate=False)
    after = _snapshot(model_dir)
    assert after["model.onnx"] == before["model.onnx"]
    manifest = json.loads(after["manifest.json"])
    for entry in manifest["artifacts"].values():
        check_integrity(model_dir, entry)
    assert [p.name for p in model_dir.iterdir() if p.name.startswith(".")] == [".edgeport.lock"]  # no temporaries
    assert "pending" not in manifest


# -- loading the user's model ------------------------------------------------------------------
@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory) -> Path:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2.0),
                              keras.layers.Dense(2)])
    path = tmp_path_factory.mktemp("lambda") / "with_lambda.keras"
    model.save(path)
    return path


def test_safe_mode_refuses_a_lambda_model_unless_allowed(lambda_model, tmp_path):
    with pytest.raises(ModelFileError, match="--allow-unsafe") as err:
        export_model(str(lambda_model), formats=["tflite_fp32"], out=tmp_path)
    assert str(lambda_model) in str(err.value)
    assert not (tmp_path / "with_lambda").exists()  # nothing copied or written
    assert main(["export", str(lambda_model), "--formats", "tflite_fp32", "--out", str(tmp_path)]) == 2
    report = export_model(str(lambda_model), formats=["tflite_fp32"], out=tmp_path, allow_unsafe=True)
    assert report.ok, report.render()


def test_a_truncated_keras_file_is_named(tiny_models, tmp_path, capsys):
    data = tiny_models["mlp"].read_bytes()
    for name, blob in (("truncated.keras", data[: len(data) // 2]), ("empty.keras", b"")):
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(ModelFileError, match=str(path)):
            export_model(str(path), out=tmp_path / "out")
    assert main(["export", str(tmp_path / "empty.keras"), "--out", str(tmp_path / "out")]) == 2
    assert "empty.keras" in capsys.readouterr().err


# -- int8 options --------------------------------------------------------------------------------
@pytest.mark.parametrize("io, dtype", [("uint8", np.uint8), ("int8", np.int8), ("float32", np.float32)])
def test_int8_io_type_is_what_was_asked(tiny_models, tmp_path, io, dtype):
    from ai_edge_litert.interpreter import Interpreter

    report = export_model(str(tiny_models["cnn"]), formats=["tflite_int8"], out=tmp_path, int8_io=io,
                          calibration_samples=8)
    assert report.ok, report.render()
    interp = Interpreter(model_path=str(tmp_path / "tiny_cnn" / "model_int8.tflite"))
    assert interp.get_input_details()[0]["dtype"] == dtype
    assert interp.get_output_details()[0]["dtype"] == dtype
    entry = load_manifest(tmp_path / "tiny_cnn")["artifacts"]["tflite_int8"]
    assert entry["io_type"] == io and entry["inputs"][0]["dtype"] == np.dtype(dtype).name
    if io != "float32":
        assert entry["inputs"][0]["scale"] > 0 and entry["outputs"][0]["zero_point"] is not None


def test_calibration_data_file_is_used_and_recorded(tiny_models, tmp_path):
    samples = np.random.default_rng(3).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "calib.npy", samples)
    report = export_model(str(tiny_models["mlp"]), formats=["tflite_int8", "onnx_int8"], out=tmp_path,
                          calibration_data=str(tmp_path / "calib.npy"), calibration_samples=10, seed=5)
    assert report.ok and not report.warnings, report.render()
    manifest = load_manifest(tmp_path / "tiny_mlp")
    cal = manifest["calibration"]
    assert (cal["samples"], cal["seed"], cal["source"]) == (10, 5, f"file:{(tmp_path / 'calib.npy').resolve()}")
    assert cal["file_sha256"] and cal["inputs"] == [[cal["inputs"][0][0], [28, 28, 1]]]
    assert manifest["artifacts"]["onnx_int8"]["calibration"]["samples"] == 10


def test_random_calibration_is_warned_about(tiny_models, tmp_path):
    report = export_model(str(tiny_models["celsius"]), formats=["tflite_int8"], out=tmp_path,
                          calibration_samples=4)
    assert report.ok and any("random-uniform" in w for w in report.warnings)
    assert "random-uniform" in report.render()


def test_an_int8_model_litert_refuses_keeps_the_failing_op_in_float(tiny_models, tmp_path, monkeypatch):
    import edgeport.export.tflite as tflite

    real, calls = tflite.interpreter, []

    def first_fails(model, *args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("kernel_util.cc: no_integer_overflow_from_quantization was not true."
                               "Node number 1 (CONV_2D) failed to prepare.")
        return real(model, *args)

    monkeypatch.setattr(tflite, "interpreter", first_fails)
    report = export_model(str(tiny_models["cnn"]), formats=["tflite_int8"], out=tmp_path, calibration_samples=8,
                          isolate=False)
    assert report.ok, report.render()
    entry = load_manifest(tmp_path / "tiny_cnn")["artifacts"]["tflite_int8"]
    assert len(entry["kept_float_to_load"]) == 1 and entry["io_type"] == "float32"
    assert "range_floor" not in entry  # the public selective-quantization API, not the private floor
    assert any("keeping" in w and "in float" in w for w in report.warnings)


def test_course_model_calibrates_on_its_dataset(tmp_path):
    models = pytest.importorskip("edgeport.training.models")
    data = pytest.importorskip("edgeport.training.data")
    try:
        data.representative_samples("fashion_mnist", 1, 0)
    except Exception as exc:  # noqa: BLE001 - the data package is not installed here
        pytest.skip(f"Fashion-MNIST unavailable: {exc}")
    model_dir = tmp_path / "fashion_mlp"
    model_dir.mkdir()
    models.get_spec("fashion_mlp").build().save(model_dir / "model.keras")
    report = export_model("fashion_mlp", formats=["tflite_int8"], out=tmp_path, calibration_samples=12)
    assert report.ok and not report.warnings, report.render()
    manifest = load_manifest(model_dir)
    cal = manifest["calibration"]
    assert (cal["samples"], cal["seed"], cal["source"], cal["dataset"]) == (12, 0, "dataset:fashion_mnist",
                                                                             "fashion_mnist")
    assert manifest["dataset"] == "fashion_mnist" and manifest["input_names"] == ["image"]
    assert manifest["labels"][0] == "T-shirt/top" and (model_dir / "labels.txt").is_file()
    assert manifest["input_contract"]["extra"] == {}


def test_model_arguments_resolve_to_model_directories(tmp_path):
    from edgeport.export.source import resolve_source

    model_dir = tmp_path / "mine"
    model_dir.mkdir()
    (model_dir / "model.keras").write_bytes(b"x")
    (tmp_path / "brought.keras").write_bytes(b"x")
    out = tmp_path / "out"
    assert resolve_source(str(model_dir), out).model_dir == model_dir
    # a file exports to OUT/<its stem>/ as --help says, unless it already is OUT/<name>/model.keras
    assert resolve_source(str(model_dir / "model.keras"), out).model_dir == out / "model"
    assert resolve_source(str(model_dir / "model.keras"), tmp_path).model_dir == model_dir
    assert resolve_source(str(tmp_path / "brought.keras"), out).model_dir == out / "brought"
    out.mkdir()
    with pytest.raises(ModelFileError, match="neither a SavedModel"):
        resolve_source(str(out), tmp_path)


def test_onnx_opset_is_configurable(tiny_models, tmp_path):
    import onnx

    report = export_model(str(tiny_models["celsius"]), formats=["onnx"], out=tmp_path, opset=13)
    assert report.ok, report.render()
    model = onnx.load(str(tmp_path / "tiny_celsius" / "model.onnx"))
    assert {o.domain: o.version for o in model.opset_import}[""] == 13
    assert load_manifest(tmp_path / "tiny_celsius")["artifacts"]["onnx"]["opset"] == 13
    report = export_model(str(tiny_models["celsius"]), formats=["onnx"], out=tmp_path, opset=99)
    assert not report.ok and "use --opset" in report.results[0].error
