"""int16x8 when the converter cannot make a loadable model: an op it refuses at 16x8 stays float
through the converter's own public float fallback first; a model LiteRT refuses (or ops asked to stay
float) goes through Google's public ai-edge-quantizer (static_wi8_ai16) with the failing op kept in
float; the private TensorFlow fallback is gone."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from edgeport.export.pipeline import export_model

from edgeport.manifest import load_manifest

pytest.importorskip("ai_edge_quantizer")
ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("edgeport", "export", "training", "runtimes", "benchmarks")  # pyproject's package-dir


def bands(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class (0-9) is the row band that is bright: learnt in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 28, 28, 1))
    for i, k in enumerate(y):
        x[i, 2 * k + 4:2 * k + 7] += 150
    return x.astype(np.uint8), y.astype(np.int64)


def negating_mlp():
    """A classifier with a NEG op (``keras.ops.negative``, no Lambda layer): the converter's int16x8
    mode refuses it ("Quantization to 16x8-bit not yet supported for op: 'NEG'")."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1), name="image")
    h = keras.layers.Dense(16)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inp)))
    h = keras.layers.ReLU()(keras.ops.negative(h))
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h))


def _entry(model_dir: Path) -> dict:
    return load_manifest(model_dir)["artifacts"]["tflite_int16x8"]


def test_an_op_the_converter_refuses_at_int16x8_is_kept_float_and_verifies(tmp_path):
    """The converter's float fallback keeps NEG float; asked to (``--int16x8-keep-float NEG``),
    ai-edge-quantizer keeps it float the same way and both verify."""
    from edgeport.benchmarks.verify.command import verify_model

    net = negating_mlp()
    x, y = bands(1500, 0)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    net.fit(x, y, epochs=4, batch_size=32, verbose=0)
    src = tmp_path / "src" / "neg_mlp.keras"
    src.parent.mkdir()
    net.save(src)
    np.save(tmp_path / "cal.npy", x[:64].astype(np.float32))
    xt, yt = bands(300, 1)
    np.savez(tmp_path / "test.npz", x_test=xt, y_test=yt)
    for asked, out in (((), "out"), (("NEG",), "asked")):
        report = export_model(str(src), formats=["tflite_int16x8"], out=tmp_path / out, int16x8_keep_float=list(asked),
                              calibration_data=str(tmp_path / "cal.npy"), calibration_samples=32)
        assert report.ok, report.render()
        entry = _entry(tmp_path / out / "neg_mlp")
        assert [f for f in entry["kept_float"] if f.startswith("NEG ")], entry["kept_float"]
        assert not [f for f in entry["kept_float"] if f.startswith("FULLY_CONNECTED ")]  # only what must be
        assert entry["inputs"][0]["dtype"] == entry["outputs"][0]["dtype"] == "float32"
        assert entry["calibration"]["samples"] == 32  # the samples the converter was given
        if asked:  # the --int16x8-keep-float path: ai-edge-quantizer, as before
            assert re.fullmatch(r"ai_edge_quantizer \S+ static_wi8_ai16", entry["quantizer"])
            assert entry["keep_float"] == ["NEG"] and "fallback" not in entry
            assert any("1 NEG" in w and "ai_edge_quantizer" in w for w in report.warnings), report.warnings
        else:  # the converter's own float fallback first: no quantizer needed
            assert "16x8-bit not yet supported for op: 'NEG'" in entry["reason"]
            assert entry["fallback"] == "converter TFLITE_BUILTINS" and "quantizer" not in entry
            assert any("NEG x1" in w and "float fallback" in w for w in report.warnings), report.warnings
        checked = verify_model("neg_mlp", out=tmp_path / out, data_npz=str(tmp_path / "test.npz"),
                               formats=["tflite_int16x8"])
        assert checked.ok, checked.render()
        figures = checked.results[0].figures
        print(f"NEG model ({entry.get('fallback') or entry['quantizer']}):", entry["bytes"], "bytes;",
              {k: figures.get(k) for k in ("agreement", "kl_divergence", "max_abs_diff")})
        assert figures["agreement"] >= 0.98


def test_an_int16x8_model_litert_refuses_is_quantized_with_the_refused_ops_float(tiny_models, tmp_path):
    """The untrained frozen MobileNetV2 base: its activations shrink layer by layer, the converter's
    int16x8 model overflows a kernel's rescale and LiteRT refuses it (no monkeypatching here)."""
    from edgeport.export.tflite_flatbuffer import interpreter

    report = export_model(str(tiny_models["mobilenet"]), formats=["tflite_int16x8"], out=tmp_path,
                          calibration_samples=8)
    assert report.ok, report.render()
    entry = _entry(tmp_path / "tiny_mobilenet")
    assert entry["reason"].startswith("RuntimeError: ") and "failed to prepare" in entry["reason"]
    assert entry["kept_float"] and entry["quantizer"].endswith("static_wi8_ai16")
    assert entry["inputs"][0]["dtype"] == "float32" and "range_floor" not in entry
    it = interpreter((tmp_path / "tiny_mobilenet" / entry["file"]).read_bytes())
    out = it.get_signature_runner()(**{it.get_signature_list()["serving_default"]["inputs"][0]:
                                       np.full((1, 32, 32, 3), 128, np.float32)})
    probs = next(iter(out.values()))
    assert np.isfinite(probs).all() and abs(float(probs.sum()) - 1) < 0.05
    print("frozen MobileNetV2:", entry["bytes"], "bytes;", len(entry["kept_float"]), "ops in float")


def test_keep_float_names_an_unknown_op_as_an_error(tiny_models):
    import keras
    import tensorflow as tf
    from edgeport.export.tflite_int16x8 import int16x8_keep_float

    from edgeport.errors import ExportError

    model = keras.saving.load_model(tiny_models["celsius"])
    float_model = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(ExportError, match="no op output tensor or op type named 'no/such'"):
        int16x8_keep_float(float_model, ["no/such"], {"x": np.zeros((2, 1), np.float32)})
    quantized = int16x8_keep_float(float_model, ["FULLY_CONNECTED"], {"x": np.linspace(-1, 1, 8)[:, None]},
                                   warn=lambda _: None)
    from edgeport.export.tflite_int16x8 import float_ops

    assert [f.split()[0] for f in float_ops(quantized)] == ["FULLY_CONNECTED"]


def test_the_private_tensorflow_int16x8_fallback_is_gone():
    assert not (ROOT / "export" / "tflite_floor.py").exists()
    hits = [str(p.relative_to(ROOT)) for d in PACKAGE_DIRS for p in (ROOT / d).rglob("*.py")
            if re.search(r"_experimental_calibrate_only|calibrator\.Calibrator", p.read_text())]
    assert hits == []
