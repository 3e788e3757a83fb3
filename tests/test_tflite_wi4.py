"""tflite_wi4: int4 weights by ai-edge-quantizer from the float32 .tflite, proved on the quantized gate;
a 2-bit model of the same quantizer (NaN outputs on MobileNetV2) is failed by the same verify."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_quantizer")

from edgeport.benchmarks.verify.command import verify_model
from edgeport.errors import ExportError
from edgeport.export.pipeline import export_model
from edgeport.export.registry import INFO, Precision
from edgeport.export.tflite_wi4 import RECIPE, quantize
from edgeport.manifest import load_manifest

NAME = "bands_cnn"


def band_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class is the row band that is bright (an easy, confidently learnt task)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 28, 28, 1))
    for i, k in enumerate(y):
        x[i, 2 * k + 4:2 * k + 7] += 150
    return x.astype(np.float32), y.astype(np.int64)


def small_cnn():
    """A CNN with enough weights (~57k) that the int4 file is far smaller than the float one."""
    import keras

    keras.utils.set_random_seed(0)
    net = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = band_data(1000, 0)
    net.fit(x, y, epochs=2, batch_size=32, verbose=0)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wi4")
    src = root / f"{NAME}.keras"
    small_cnn().save(src)
    report = export_model(str(src), formats=["tflite_fp32", "tflite_wi4"], out=root / "out")
    assert report.ok, report.render()
    xt, yt = band_data(300, 1)
    np.savez(root / "test.npz", x_test=xt, y_test=yt)
    return {"dir": root / "out" / NAME, "npz": root / "test.npz", "src": src}


def test_registry_row():
    row = INFO["tflite_wi4"]
    assert row.needs.value == "tflite_fp32" and row.precision is Precision.QUANTIZED
    assert row.weights == "int4" and row.activations == "float32" and row.runtimes == ("litert",)


def test_int4_file_is_much_smaller_and_passes_the_quantized_gate(exported):
    d = exported["dir"]
    fp32, wi4 = (d / INFO[f].file for f in ("tflite_fp32", "tflite_wi4"))
    ratio = fp32.stat().st_size / wi4.stat().st_size
    assert ratio > 5.5, f"int4 file only {ratio:.2f}x smaller than float32"  # measured 6.6x
    entry = load_manifest(d)["artifacts"]["tflite_wi4"]
    assert entry["recipe"] == RECIPE and entry["converter"].startswith("ai_edge_quantizer.Quantizer ")
    assert entry["precision"] == "quantized" and entry["io_type"] == "float32"
    assert entry["outputs"][0]["dtype"] == "float32"
    report = verify_model(NAME, out=d.parent, data_npz=str(exported["npz"]), formats=["tflite_wi4"])
    assert report.ok, report.render()
    row = report.results[0]
    assert row.format == "tflite_wi4" and row.precision == "quantized" and row.status == "pass"
    assert row.figures["finite"] is True and row.figures["agreement"] >= 0.95
    assert row.figures["kl_divergence"] <= 0.05 and row.gate["min_agreement"] == 0.95


def test_a_gate_fails_a_weak_int4_model(exported):
    """The row is gated, not just run: a gate int4 cannot meet fails it."""
    report = verify_model(NAME, out=exported["dir"].parent, data_npz=str(exported["npz"]), formats=["tflite_wi4"],
                          gates="tflite_wi4.max_kl_divergence=0")
    assert not report.ok and any(getattr(e, "figure", "") == "kl_divergence" for e in report.failures)


def rgb_convnet():
    """Two convolutions on RGB input: its 2-bit channelwise model gives NaN on LiteRT 2.3 (as MobileNetV2's does)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(16, 1)(keras.layers.Conv2D(8, 3, strides=2)(x))
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))


def test_two_bit_nan_model_fails_verify(tmp_path):
    """2-bit channelwise weights (``dynamic_wi2c_afp32``) make every output NaN: edgeport's verify
    fails that bare artifact on its finite-outputs gate; the same model at int4 is finite."""
    import tensorflow as tf

    net = rgb_convnet()
    net.save(tmp_path / "reference.keras")
    float_model = tf.lite.TFLiteConverter.from_keras_model(net).convert()
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x_test=x)
    rows = {}
    for recipe in ("dynamic_wi2c_afp32", RECIPE):
        bare = tmp_path / f"{recipe}.tflite"
        bare.write_bytes(quantize(float_model, recipe))
        report = verify_model(str(bare), reference=str(tmp_path / "reference.keras"),
                              data_npz=str(tmp_path / "inputs.npz"))
        rows[recipe] = report.results[0]
    two_bit = rows["dynamic_wi2c_afp32"]
    assert two_bit.precision == "quantized" and two_bit.status == "fail" and two_bit.figures["finite"] is False
    assert any(getattr(e, "figure", "") == "finite" for e in two_bit.failures)
    assert rows[RECIPE].figures["finite"] is True


def test_unknown_recipe_and_unquantizable_model_are_one_line_errors():
    with pytest.raises(ExportError, match="has no recipe 'dynamic_wi3'"):
        quantize(b"", "dynamic_wi3")
    with pytest.raises(ExportError, match=r"^ai_edge_quantizer.Quantizer .* cannot quantize") as err:
        quantize(b"not a flatbuffer")
    assert "\n" not in str(err.value)


def test_a_model_litert_refuses_fails_the_format_in_one_line(tmp_path, monkeypatch):
    """Blockwise 2-bit weights (every dimension divisible by 32) quantize, but XNNPACK refuses them."""
    import keras

    from edgeport.export import tflite_wi4

    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(32)])
    net.save(tmp_path / "dense.keras")
    monkeypatch.setattr(tflite_wi4, "RECIPE", "dynamic_wi2b32_afp32")
    report = export_model(str(tmp_path / "dense.keras"), formats=["tflite_wi4"], out=tmp_path / "out")
    row = report.results[0]
    assert not report.ok and row.status == "failed" and "\n" not in row.error
    assert row.error.startswith("tflite_wi4: LiteRT refuses the dynamic_wi2b32_afp32 model:"), row.error
    assert not (tmp_path / "out" / "dense" / INFO["tflite_wi4"].file).exists()
