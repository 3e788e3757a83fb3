"""ONNX Runtime Mobile format: ``ort`` and ``ort_int8`` exported from the ONNX models with their
required_operators.config, equal to the ONNX they are made from, verified on onnxruntime, carried by
the android and ios bundles (listed with their sha256), and a truncated .ort refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks.verify.command import verify_model
from edgeport.bundle import open_bundle
from edgeport.errors import DataError, LoadError
from edgeport.export.ort import required_operators
from edgeport.export.pipeline import export_model
from edgeport.export.registry import INFO, for_bundle
from edgeport.export.targets import bundle_model
from edgeport.files import sha256_file
from edgeport.manifest import load_manifest
from edgeport.runtimes import load

PAIRS = {"ort": "onnx", "ort_int8": "onnx_int8"}


@pytest.fixture(scope="module")
def exported(tiny_models, tmp_path_factory) -> Path:
    """The tiny CNN exported to the two ONNX formats and the two ORT formats."""
    out = tmp_path_factory.mktemp("ort")
    result = export_model(str(tiny_models["cnn"]), formats=["onnx", "onnx_int8", "ort", "ort_int8"], out=out)
    assert result.ok, result.failed
    return out / "tiny_cnn"


def test_the_registry_rows():
    assert INFO["ort"].needs.value == "onnx" and INFO["ort_int8"].needs.value == "onnx_int8"
    assert INFO["ort_int8"].full_integer and not INFO["ort"].quantized
    for target in ("android", "ios"):
        assert {"ort", "ort_int8"} <= set(for_bundle(target))


def test_ort_alone_builds_its_onnx_in_a_temporary_place(tiny_models, tmp_path):
    result = export_model(str(tiny_models["mlp"]), formats=["ort_int8"], out=tmp_path)
    assert result.ok, result.failed
    model_dir = tmp_path / "tiny_mlp"
    assert sorted(p.name for p in model_dir.glob("model*")) == [
        "model.keras", "model_int8.ort", "model_int8.required_operators.config"]
    assert set(load_manifest(model_dir)["artifacts"]) == {"ort_int8"}


def test_each_ort_has_its_required_operators(exported):
    manifest = load_manifest(exported)
    for fmt in PAIRS:
        info, entry = INFO[fmt], manifest["artifacts"][fmt]
        config = exported / info.extra_files[0]
        assert set(entry["files"]) == {info.file, config.name}
        assert entry["files"][config.name] == sha256_file(config)
        text = config.read_text()
        assert f"# - {info.file}" in text and "/tmp" not in text  # names the shipped file, no temporary path
        ops = required_operators(config)
        assert entry["required_operators"] == ops
        flat = {op for names in ops.values() for op in names}
        assert "MaxPool" in flat and "Reshape" in flat
        assert entry["optimization_style"].startswith("Fixed") and "plain .ort" in entry["shipped"]
        assert entry["converter"].startswith("onnxruntime ") and INFO[PAIRS[fmt]].file in entry["converter"]
        assert entry["inputs"][0]["shape"] == [None, 28, 28, 1] and entry["outputs"][0]["shape"] == [None, 10]
    int8_ops = {op for names in manifest["artifacts"]["ort_int8"]["required_operators"].values() for op in names}
    assert {"QLinearConv", "QLinearMatMul"} <= int8_ops  # the int8 graph stays integer in the .ort


def test_ort_outputs_equal_the_onnx_outputs(exported):
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype(np.float32)
    for fmt, onnx_fmt in PAIRS.items():
        ort = load(exported / INFO[fmt].file)
        assert ort.runtime == "onnxruntime"
        diff = float(np.abs(ort.predict(x) - load(exported / INFO[onnx_fmt].file).predict(x)).max())
        assert diff <= 1e-6, (fmt, diff)


def test_a_truncated_ort_is_refused_in_one_line_naming_it(exported, tmp_path):
    data = (exported / INFO["ort"].file).read_bytes()
    for keep in (len(data) // 2, len(data) - 64, 12):
        bad = tmp_path / f"cut{keep}.ort"
        bad.write_bytes(data[:keep])
        with pytest.raises(LoadError) as err:
            load(bad)
        assert str(bad) in str(err.value) and "\n" not in str(err.value)


# -- verify and the mobile bundles (real Fashion-MNIST: a trained model makes confident answers) --------

@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    import keras

    from edgeport.training.data import load_dataset

    try:
        ds = load_dataset("fashion_mnist")
    except DataError as exc:
        pytest.skip(f"Fashion-MNIST is not installed here ({exc}); run `make data`")
    tmp = tmp_path_factory.mktemp("ort_mobile")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds.x_train[:4000], ds.y_train[:4000], epochs=2, batch_size=64, verbose=0)
    model.save(tmp / "fashion_mlp.keras")
    out, dist = tmp / "out", tmp / "dist"
    assert export_model(str(tmp / "fashion_mlp.keras"), out=out,
                        formats=["tflite_fp32", "tflite_int8", "ort", "ort_int8"]).ok
    verified = verify_model("fashion_mlp", out=out, limit=1000)
    return {"out": out, "dist": dist, "verified": verified,
            "verify": json.loads((out / "fashion_mlp" / "verify.json").read_text())}


def test_verify_runs_the_ort_files_on_onnxruntime_and_passes(fashion):
    rows = {r["format"]: r for r in fashion["verify"]["results"]}
    for fmt in PAIRS:
        assert rows[fmt]["runtime"] == "onnxruntime" and rows[fmt]["status"] == "pass", rows[fmt]
    assert fashion["verified"].ok


@pytest.mark.parametrize("target, folder", [("android", "assets/"), ("ios", "")])
def test_the_mobile_bundles_carry_the_ort_files(fashion, target, folder):
    result = bundle_model("fashion_mlp", target=target, out=fashion["out"], dist=fashion["dist"], samples=200)
    model_dir = fashion["out"] / "fashion_mlp"
    wanted = [name for fmt in PAIRS for name in (INFO[fmt].file, *INFO[fmt].extra_files)]
    for name in wanted:
        assert result.files[folder + name]["sha256"] == sha256_file(model_dir / name)
    with open_bundle(result.archive) as bundle:  # checks every listed file's sha256
        meta = bundle.meta
        assert all(folder + name in meta["files"] for name in wanted)
        assert set(meta["as_is"]) == set(PAIRS) and all(a["verified"] for a in meta["as_is"].values())
    usage = (result.folder / "USAGE.md").read_text()
    assert ("OrtSession" if target == "android" else "ORTSession") in usage
    assert "model_int8" in usage and "--include_ops_by_config" in usage
