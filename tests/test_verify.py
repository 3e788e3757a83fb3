"""`edgeport verify`: intact exports pass, and nothing a careful reviewer tried fools it.

A broken conversion (another model's weights; one weight tensor 1% off) fails its gate; a tampered
file (the .tflite, the .h) is refused; a stale artifact (the model was retrained) is refused with
the command that re-exports it; every output of a multi-output model is compared by name; an
engine fallback is said and recorded; unlabelled data is allowed and says so.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeport import cli
from edgeport.export.c_array import embedded_bytes
from edgeport.benchmarks.verify.command import VERIFY_FILE, verify_model
from edgeport.benchmarks.verify.gates import GateFailure
from edgeport.benchmarks.verify.result import NO_LABELS
from edgeport.errors import GateError, IntegrityError
from edgeport.manifest import StaleArtifactError, load_manifest

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


def trained(seed: int):
    x, y = band_data(1500, seed)
    net = mlp(seed)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return net


def export_tiny(model, root: Path, formats: list[str], cal: np.ndarray, name: str = NAME) -> Path:
    from edgeport.export.pipeline import export_model

    src = root / "src" / f"{name}.keras"
    src.parent.mkdir(parents=True, exist_ok=True)
    model.save(src)
    np.save(root / "cal.npy", cal.astype(np.float32))
    report = export_model(str(src), formats=formats, out=root / "out", calibration_data=str(root / "cal.npy"))
    assert report.ok, report.render()
    return root / "out" / name


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """A trained tiny model exported to every format, and its 400-image test set as .npz."""
    root = tmp_path_factory.mktemp("verify")
    x, _ = band_data(200, 0)
    model_dir = export_tiny(trained(0), root, ["all"], x)
    xt, yt = band_data(400, 1)
    np.savez(root / "test.npz", x_test=xt, y_test=yt)
    np.savez(root / "unlabelled.npz", x_test=xt)
    return {"dir": model_dir, "npz": root / "test.npz", "unlabelled": root / "unlabelled.npz", "root": root}


def copy_export(exported, tmp_path: Path) -> Path:
    dest = tmp_path / "out" / NAME
    shutil.copytree(exported["dir"], dest)
    return dest


def test_intact_export_passes_every_gate(exported, child_processes):
    """Every engine in its own child process, as the command runs it (the rest of the suite runs
    verify's jobs in the test process)."""
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]))
    assert report.ok, report.render()
    by_format = {r.format: r for r in report.results}
    assert set(by_format) == set(load_manifest(exported["dir"])["artifacts"])  # nothing skipped
    fp32 = by_format["tflite_fp32"]
    assert fp32.figures["tolerance_diff"] <= fp32.figures["tolerance"] < 1e-4
    assert "float32 noise" in fp32.figures["tolerance_basis"] and fp32.figures["agreement"] == 1.0
    assert by_format["tflite_fp16"].figures["tolerance_reference"] == "fp16-weights reference"
    assert by_format["tflite_int8"].figures["confident_agreement"] >= 0.99
    assert by_format["tflite_int8"].figures["kl_divergence"] <= 0.05
    assert by_format["c_array"].figures["equals_source"] is True
    assert all(r.engine for r in report.results if r.format != "c_array")  # the engine that ran, per row
    assert by_format["tflite_fp32"].timing["images_per_s"] > 0
    assert report.data["n"] == 400 and report.keras["accuracy"] > 0.9
    saved = json.loads((exported["dir"] / VERIFY_FILE).read_text())
    assert saved["ok"] is True and len(saved["results"]) == len(report.results)
    assert "tflite_int8" in report.render() and "PASS" in report.render()


def test_reference_is_cached_and_limit_applies(exported):
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]), limit=50,
                          runtimes=["onnxruntime"])
    assert report.data["n"] == 50 and report.ok, report.render()
    again = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]), limit=50,
                         runtimes=["onnxruntime"])
    assert again.reference["cached"] is True
    assert {r.runtime for r in again.results} == {"onnxruntime"}
    assert any(n.startswith("not run (--runtimes onnxruntime)") and "c_array" in n for n in again.notes)


def test_another_models_weights_fail_the_float32_gate_and_the_cli_exits_nonzero(exported, tmp_path, edits):
    model_dir = copy_export(exported, tmp_path)
    other = export_tiny(mlp(seed=7), tmp_path / "other", ["tflite_fp32"], np.zeros((4, 28, 28, 1)))
    shutil.copyfile(other / "model_fp32.tflite", model_dir / "model_fp32.tflite")
    edits.rehash(model_dir, "tflite_fp32")
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"],
                          debug_int8=False)
    assert not report.ok
    failures = [e for e in report.failures if isinstance(e, GateFailure)]
    assert failures and {f.artifact for f in failures} == {"tflite_fp32"}
    assert failures[0].runtime == "litert" and failures[0].figure == "tolerance_diff"
    with pytest.raises(GateError, match="tflite_fp32 on litert"):
        report.raise_for_failures()
    assert all(r.status == "pass" for r in report.results if r.format != "tflite_fp32")
    argv = ["verify", NAME, "--out", str(model_dir.parent), "--data-npz", str(exported["npz"]),
            "--runtimes", "litert", "--no-debug-int8"]
    assert cli.main(argv) == 1


@pytest.mark.parametrize("pick", [max, min], ids=["largest", "smallest"])
def test_one_weight_tensor_one_percent_off_fails_the_float32_gate(exported, tmp_path, pick, edits):
    model_dir = copy_export(exported, tmp_path)
    tensor = edits.scale_weights(model_dir / "model_fp32.tflite", 1.01, pick=pick)
    edits.rehash(model_dir, "tflite_fp32")
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), formats=["tflite_fp32"])
    row = report.results[0]
    assert row.status == "fail", (tensor, report.render())
    assert [f.figure for f in row.failures] == ["tolerance_diff"]
    assert row.figures["tolerance_diff"] > 3 * row.figures["tolerance"]


def test_tampered_tflite_is_refused_and_never_run(exported, tmp_path, capsys):
    model_dir = copy_export(exported, tmp_path)
    path = model_dir / "model_int8.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # manifest untouched
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"])
    int8 = next(r for r in report.results if r.format == "tflite_int8")
    assert int8.status == "refused" and not report.ok and int8.engine == ""
    assert isinstance(int8.failures[0], IntegrityError)
    assert "model_int8.tflite" in str(int8.failures[0]) and "sha256" in str(int8.failures[0])
    assert int8.quant_debug is None  # a refused file is never run, not even by the debugger
    c_array = next(r for r in report.results if r.format == "c_array")
    assert c_array.status == "refused"  # its int8 model is not intact
    assert cli.main(["verify", NAME, "--out", str(model_dir.parent), "--data-npz", str(exported["npz"]),
                     "--runtimes", "litert"]) == 1
    assert "REFUSED" in capsys.readouterr().out


def test_tampered_header_is_refused(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    header = model_dir / "model_int8_data.h"
    header.write_text(header.read_text().replace("_OP_COUNT", "_OP_COUNT_TAMPERED"))
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), formats=["c_array",
                                                                                              "tflite_int8"])
    c_array = next(r for r in report.results if r.format == "c_array")
    assert c_array.status == "refused" and "model_int8_data.h" in str(c_array.failures[0])


def test_c_array_with_different_bytes_fails(exported, tmp_path, edits):
    model_dir = copy_export(exported, tmp_path)
    c_file = model_dir / "model_int8_data.c"
    c_file.write_text(c_file.read_text().replace("[] = {\n", "[] = {\n  0xff,\n", 1))
    edits.rehash(model_dir, "c_array")
    assert embedded_bytes(c_file)[0] == 0xFF
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]),
                          formats=["c_array", "tflite_int8"])
    c_array = next(r for r in report.results if r.format == "c_array")
    assert c_array.status == "fail" and c_array.failures[0].figure == "embedded_bytes"


def test_failing_int8_gets_a_per_layer_table_from_its_own_calibration(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), formats=["tflite_int8"],
                          gates="tflite_int8.max_kl_divergence=0")  # an impossible gate: int8 must fail
    int8 = next(r for r in report.results if r.format == "tflite_int8")
    assert int8.status == "fail" and int8.quant_debug is not None, report.render()
    layers = int8.quant_debug["layers"]
    assert layers and {"layer", "op", "mse", "rmse_per_scale"} <= set(layers[0]), int8.quant_debug
    assert "file:" in int8.quant_debug["calibration"]  # the artifact's recorded calibration, said
    assert any("quantization debugger calibrated on" in n for n in report.notes)
    assert "per-layer int8 error" in report.render()


def test_a_retrained_model_makes_the_old_artifacts_stale(exported, tmp_path):
    model_dir = copy_export(exported, tmp_path)
    trained(5).save(model_dir / "model.keras")
    from edgeport.export.pipeline import export_model

    np.save(tmp_path / "cal.npy", band_data(50, 3)[0].astype(np.float32))
    export = export_model(str(model_dir), formats=["tflite_fp32"], out=model_dir.parent,
                          calibration_data=str(tmp_path / "cal.npy"))
    assert export.ok and any("earlier version of the model" in w for w in export.warnings)
    report = verify_model(NAME, out=model_dir.parent, data_npz=str(exported["npz"]), runtimes=["litert"])
    by_format = {r.format: r for r in report.results}
    assert by_format["tflite_fp32"].status == "pass", report.render()
    stale = by_format["tflite_int8"]
    assert stale.status == "refused" and isinstance(stale.failures[0], StaleArtifactError)
    assert "edgeport export" in str(stale.failures[0]) and "--formats tflite_int8" in str(stale.failures[0])
    assert not report.ok


def test_unlabelled_data_is_allowed_and_says_accuracy_is_not_gated(exported):
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["unlabelled"]),
                          formats=["tflite_int8", "onnx"])
    assert report.ok, report.render()
    assert NO_LABELS in report.notes and NO_LABELS in report.render()
    assert all("accuracy" not in r.figures for r in report.results if r.format != "c_array")


def test_an_engine_fallback_is_said_and_recorded(exported, tmp_path, monkeypatch, capsys, child_processes):
    broken = tmp_path / "broken" / "ai_edge_litert"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('simulated broken ai-edge-litert install')\n")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]), formats=["tflite_fp32"])
    row = report.results[0]
    assert row.status == "pass" and not row.engine.startswith("ai_edge_litert"), row.engine
    assert any("simulated broken ai-edge-litert install" in n for n in row.notes)
    assert "litert engine fallback" in capsys.readouterr().out and "fallback" in report.render()


def two_output_model():
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((28, 28, 1), name="image")
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inp)))
    classes = keras.layers.Dense(10, activation="softmax", name="classes")(h)
    box = keras.layers.Dense(4, name="box")(h)
    return keras.Model(inp, [classes, box])


def test_every_output_of_a_multi_output_model_is_compared_by_name(tmp_path, edits):
    x, y = band_data(120, 2)
    model_dir = export_tiny(two_output_model(), tmp_path, ["tflite_fp32", "onnx"], x[:20], name="two_out")
    np.savez(tmp_path / "test.npz", x_test=x, y_test=y)
    report = verify_model("two_out", out=model_dir.parent, data_npz=str(tmp_path / "test.npz"),
                          gates="float32.min_agreement=0")  # untrained: only the numbers are gated here
    assert report.ok, report.render()
    for r in report.results:
        assert set(r.outputs) == {"output_0", "output_1"}
        assert all(f["tolerance_diff"] <= f["tolerance"] for f in r.outputs.values())
    box_head = lambda ts, key: next(t for t in ts if "box" in t.name.decode())  # noqa: E731
    edits.scale_weights(model_dir / "model_fp32.tflite", 1.05, pick=box_head)
    edits.rehash(model_dir, "tflite_fp32")
    report = verify_model("two_out", out=model_dir.parent, data_npz=str(tmp_path / "test.npz"),
                          formats=["tflite_fp32"], gates="float32.min_agreement=0")
    failures = report.results[0].failures
    assert failures and {f.output for f in failures} == {"output_1"}, report.render()
    assert "output output_1" in str(failures[0])


def test_a_bare_artifact_is_verified_against_a_named_reference(exported, tmp_path):
    bare = tmp_path / "third_party.tflite"
    shutil.copyfile(exported["dir"] / "model_int8.tflite", bare)
    report = verify_model(str(bare), reference=str(exported["dir"] / "model.onnx"), data_npz=str(exported["npz"]))
    assert report.ok and report.results[0].precision == "quantized", report.render()
    assert (tmp_path / "third_party.tflite.verify.json").is_file()
    f32 = tmp_path / "f32.tflite"
    shutil.copyfile(exported["dir"] / "model_fp32.tflite", f32)
    report = verify_model(str(f32), reference=str(exported["dir"] / "model.onnx"), data_npz=str(exported["npz"]))
    row = report.results[0]
    assert row.status == "pass" and row.precision == "float32"
    assert row.figures["tolerance_basis"].startswith("fixed relative bound")  # no float64 twin of an .onnx
    assert any("tolerance from a fixed relative bound" in n for n in row.notes)
    assert cli.main(["verify", str(bare)]) == 2  # no reference named: a clear error, not a guess


@pytest.mark.slow
def test_real_fashion_mnist_float32_pass_and_int8_within_half_a_point(tmp_path):
    """The full 10,000-image Fashion-MNIST test set through every default format of a quickly trained
    MLP (tflite_wi4 is opt-in: on this 1-epoch MLP its int4 weights reach 94.4% agreement, below the gate)."""
    from edgeport.training.data import load_dataset

    ds = load_dataset("fashion_mnist")
    net = mlp(0)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(ds.x_train, ds.y_train, epochs=1, batch_size=64, verbose=0)
    rng = np.random.default_rng(0)
    model_dir = export_tiny(net, tmp_path, ["default"], ds.x_train[rng.choice(len(ds.x_train), 200, replace=False)])
    (model_dir / "training.json").write_text(json.dumps({"model": NAME, "dataset": "fashion_mnist"}))
    report = verify_model(NAME, out=model_dir.parent)
    by_format = {r.format: r for r in report.results}
    assert report.data["n"] == 10_000 and report.data["dataset"] == "fashion_mnist"
    assert report.ok, report.render()
    assert abs(by_format["tflite_int8"].figures["accuracy_delta_points"]) <= 0.5, report.render()
