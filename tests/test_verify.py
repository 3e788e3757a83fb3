"""`edgeport verify`: an intact export passes, a broken artifact fails its gate, a tampered file is refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeport import cli
from edgeport.benchmarks.verify.gates import GateFailure
from edgeport.benchmarks.verify.command import VERIFY_FILE, embedded_c_bytes, verify_model
from edgeport.errors import GateError, IntegrityError
from edgeport.files import sha256_file
from edgeport.manifest import load_manifest, save_manifest

NAME = "bands_mlp"


def band_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class is the row band that is bright (an easy, confidently learnt task)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 28, 28, 1))
    for i, k in enumerate(y):
        x[i, 2 * k + 4:2 * k + 7] += 150
    return x.astype(np.uint8), y.astype(np.int64)


def mlp(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                             keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, activation="softmax")])


def export_tiny(model, root: Path, formats: list[str], cal: np.ndarray) -> Path:
    from edgeport.export.pipeline import export_model

    src = root / "src" / f"{NAME}.keras"
    src.parent.mkdir(parents=True, exist_ok=True)
    model.save(src)
    np.save(root / "cal.npy", cal.astype(np.float32))
    report = export_model(str(src), formats=formats, out=root / "out", calibration_data=str(root / "cal.npy"))
    assert report.ok, report.render()
    return root / "out" / NAME


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """A trained tiny model exported to every format, and its 400-image test set as .npz."""
    root = tmp_path_factory.mktemp("verify")
    x, y = band_data(1500, 0)
    net = mlp(0)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(x, y, epochs=4, batch_size=32, verbose=0)
    model_dir = export_tiny(net, root, ["all"], x[:200])
    xt, yt = band_data(400, 1)
    np.savez(root / "test.npz", x_test=xt, y_test=yt)
    return {"dir": model_dir, "npz": root / "test.npz", "root": root}


def copy_export(exported, tmp_path: Path) -> Path:
    dest = tmp_path / "out" / NAME
    shutil.copytree(exported["dir"], dest)
    return dest


def test_intact_export_passes_every_gate(exported):
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]))
    assert report.ok, report.render()
    by_format = {r.format: r for r in report.results}
    assert set(by_format) == set(load_manifest(exported["dir"])["artifacts"])  # nothing skipped
    assert by_format["tflite_fp32"].figures["max_abs_diff"] <= 1e-5
    assert by_format["tflite_fp32"].figures["agreement"] == 1.0
    assert by_format["tflite_int8"].figures["agreement"] >= 0.98
    assert by_format["c_array"].figures["equals_tflite_int8"] is True
    assert report.data["n"] == 400 and report.keras["accuracy"] > 0.9
    saved = json.loads((exported["dir"] / VERIFY_FILE).read_text())
    assert saved["ok"] is True and len(saved["results"]) == len(report.results)
    assert "tflite_int8" in report.render() and "PASS" in report.render()


def test_reference_outputs_are_cached_and_limit_applies(exported):
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]), limit=50,
                          runtimes=["onnxruntime"])
    assert report.data["n"] == 50 and report.ok
    again = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]), limit=50,
                         runtimes=["onnxruntime"])
    assert again.keras["cached"] is True
    assert any("not run (--runtimes onnxruntime)" in n for n in again.notes)


def test_broken_artifact_fails_its_gate_and_the_cli_exits_nonzero(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    other = export_tiny(mlp(seed=7), tmp_path / "other", ["tflite_fp32"], np.zeros((4, 28, 28, 1)))
    shutil.copyfile(other / "model_fp32.tflite", model_dir / "model_fp32.tflite")
    manifest = load_manifest(model_dir)
    manifest["artifacts"]["tflite_fp32"]["sha256"] = sha256_file(model_dir / "model_fp32.tflite")
    save_manifest(model_dir, manifest)  # integrity passes: only the gate can catch it

    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"],
                          debug_int8=False)
    assert not report.ok
    failures = [e for e in report.failures if isinstance(e, GateFailure)]
    assert failures and {f.artifact for f in failures} == {"tflite_fp32"}
    first = failures[0]
    assert first.runtime == "litert" and first.figure == "max_abs_diff" and first.gate == "<= 1e-05"
    assert "tflite_fp32 on litert: max_abs_diff" in str(first)
    with pytest.raises(GateError, match="tflite_fp32 on litert"):
        report.raise_for_failures()
    others = [r for r in report.results if r.format != "tflite_fp32"]
    assert all(r.status == "pass" for r in others)

    argv = ["verify", NAME, "--out", str(model_dir.parent), "--data-npz", str(exported["npz"]),
            "--runtimes", "litert", "--no-debug-int8"]
    assert cli.main(argv) == 1


def test_tampered_file_is_refused(exported, tmp_path, capsys):
    model_dir = copy_export(exported, tmp_path)
    path = model_dir / "model_int8.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # manifest untouched

    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"])
    int8 = next(r for r in report.results if r.format == "tflite_int8")
    assert int8.status == "refused" and not report.ok
    assert isinstance(int8.failures[0], IntegrityError)
    assert "model_int8.tflite" in str(int8.failures[0]) and "sha256" in str(int8.failures[0])
    assert int8.quant_debug is None  # a refused file is never run, not even by the debugger
    c_array = next(r for r in report.results if r.format == "c_array")
    assert c_array.status == "fail"  # its bytes no longer match the (tampered) int8 file
    assert cli.main(["verify", NAME, "--out", str(model_dir.parent), "--data-npz", str(exported["npz"]),
                     "--runtimes", "litert"]) == 1
    assert "REFUSED" in capsys.readouterr().out


def test_c_array_with_different_bytes_fails(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    c_file = model_dir / "model_int8_data.c"
    c_file.write_text(c_file.read_text().replace("[] = {\n", "[] = {\n  0xff,\n", 1))
    manifest = load_manifest(model_dir)
    manifest["artifacts"]["c_array"]["sha256"] = sha256_file(c_file)
    save_manifest(model_dir, manifest)
    assert embedded_c_bytes(c_file)[0] == 0xFF
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"])
    c_array = next(r for r in report.results if r.format == "c_array")
    assert c_array.status == "fail" and c_array.failures[0].figure == "embedded_bytes"


def test_failing_int8_gets_a_per_layer_error_table(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"],
                          gates="tflite_int8.max_abs_diff=0")  # an impossible gate: int8 must fail
    int8 = next(r for r in report.results if r.format == "tflite_int8")
    assert int8.status == "fail" and int8.quant_debug is not None, report.render()
    layers = int8.quant_debug["layers"]
    assert layers and {"layer", "op", "mse", "rmse_per_scale"} <= set(layers[0])
    assert any(row["op"] == "FULLY_CONNECTED" for row in layers)
    assert "per-layer int8 error" in report.render()
    saved = json.loads((model_dir / VERIFY_FILE).read_text())
    assert next(r for r in saved["results"] if r["format"] == "tflite_int8")["quant_debug"]["layers"]


def test_a_modified_keras_model_is_refused(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    mlp(3).save(model_dir / "model.keras")
    with pytest.raises(IntegrityError, match="model.keras"):
        verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"])


@pytest.mark.slow
def test_real_fashion_mnist_float32_pass_and_int8_within_half_a_point(tmp_path):
    """The full 10,000-image Fashion-MNIST test set through every format of a quickly trained MLP."""
    from edgeport.training.data import load_dataset

    ds = load_dataset("fashion_mnist")
    net = mlp(0)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(ds.x_train, ds.y_train, epochs=1, batch_size=64, verbose=0)
    rng = np.random.default_rng(0)
    model_dir = export_tiny(net, tmp_path, ["all"], ds.x_train[rng.choice(len(ds.x_train), 200, replace=False)])
    (model_dir / "training.json").write_text(json.dumps({"model": NAME, "dataset": "fashion_mnist"}))
    report = verify_model(NAME, out=model_dir.parent)
    by_format = {r.format: r for r in report.results}
    assert report.data["n"] == 10_000 and report.data["dataset"] == "fashion_mnist"
    for fmt in ("saved_model", "tflite_fp32", "onnx"):
        assert by_format[fmt].status == "pass", report.render()
    assert abs(by_format["tflite_int8"].figures["accuracy_delta_points"]) <= 0.5, report.render()
