"""`edgeport fix` is bounded and honest: a model whose int8 loses everything at one LOG op gets that op
kept in float (a tiny candidate, named in a note), and a tiny time budget stops the search and says so."""
from __future__ import annotations

import numpy as np
import pytest

from edgeport.benchmarks.verify.fix import fix_model
from edgeport.export.pipeline import export_model
from edgeport.manifest import load_manifest

NAME = "logmel"


def log_model():
    """A log-power front end (the input spans 16 e-folds): int8 rounds the small powers to zero, so
    the quantized LOG loses everything; the float function is smooth."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32,), name="power")
    h = keras.layers.Lambda(lambda t: keras.ops.log(t), name="logmel")(inp)
    h = keras.layers.Dense(32, activation="relu", name="d1")(h)
    model = keras.Model(inp, keras.layers.Dense(5, activation="softmax", name="head")(h))
    k, b = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([k * 4, b])
    return model


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fixlog")
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(-8, 8, (400, 32))).astype(np.float32)
    log_model().export(str(tmp / NAME), verbose=False)  # a SavedModel source (a Lambda does not reload)
    np.save(tmp / "cal.npy", x[:200])
    np.savez(tmp / "test.npz", x_test=x[200:])
    report = export_model(str(tmp / NAME), formats=["saved_model", "tflite_int8"], out=tmp / "out",
                          calibration_data=str(tmp / "cal.npy"), calibration_samples=100)
    assert report.ok, report.render()
    return tmp


def test_fix_keeps_the_log_op_in_float_and_names_it(logged):
    report = fix_model(NAME, out=logged / "out", data_npz=str(logged / "test.npz"), formats=["tflite_int8"])
    text = report.render()
    assert report.ok, text
    flat = " ".join(text.split())  # notes wrap at 80 columns
    assert "op LOG at layer" in flat and "error jumps from" in flat, text
    fix = load_manifest(logged / "out" / NAME)["artifacts"]["tflite_int8"]["fix"]
    assert fix["candidates"][0]["passes"] is False
    kept = fix["settings"]["keep_float"]
    assert len(kept) == 1 and "Log" in kept[0], kept
    assert fix["float_fraction"] <= 0.25 and "verdict" not in fix
    print(text)


def test_a_tiny_time_budget_stops_the_search_and_says_so(logged, tmp_path):
    import shutil

    shutil.copytree(logged / "out", tmp_path / "out")
    report = fix_model(NAME, out=tmp_path / "out", data_npz=str(logged / "test.npz"), formats=["tflite_int8"],
                       max_seconds=0.01)
    text = report.render()
    assert not report.ok
    assert "search stopped: time budget" in text and "not tried" in text, text
    assert "no verdict on int8" in text and "int8 does not fit" not in text  # a stop is not a verdict
    fix = load_manifest(tmp_path / "out" / NAME)["artifacts"]["tflite_int8"]["fix"]
    assert fix["stopped"].startswith("time budget") and fix["verdict"]["text"]
    print(text)


def deep_model():
    """Ten dense layers, each with one unit 200x larger compensated in the next kernel: the same
    function in float, but every per-tensor int8 activation range loses the other units, layer after
    layer; no few layers in float fix it."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((32,), name="x")
    h, names = inp, [f"d{i}" for i in range(10)]
    for n in names:
        h = keras.layers.Dense(48, activation="relu", name=n)(h)
    model = keras.Model(inp, keras.layers.Dense(5, activation="softmax", name="head")(h))
    for a, b in zip(names, names[1:] + ["head"]):
        k, bias = model.get_layer(a).get_weights()
        k[:, :4], bias[:4] = k[:, :4] * 200, bias[:4] * 200
        model.get_layer(a).set_weights([k, bias])
        k2, b2 = model.get_layer(b).get_weights()
        k2[:4, :] /= 200
        model.get_layer(b).set_weights([k2, b2])
    k, b = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([k * 8, b])
    return model


def test_a_deep_model_int8_does_not_fit_unless_the_trade_is_accepted(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 32)).astype(np.float32)
    deep_model().export(str(tmp_path / "deep"), verbose=False)
    np.save(tmp_path / "cal.npy", x[:200])
    np.savez(tmp_path / "test.npz", x_test=x[200:])
    assert export_model(str(tmp_path / "deep"), formats=["saved_model", "tflite_int8"], out=tmp_path / "out",
                        calibration_data=str(tmp_path / "cal.npy"), calibration_samples=100).ok
    report = fix_model("deep", out=tmp_path / "out", data_npz=str(tmp_path / "test.npz"), formats=["tflite_int8"])
    text = report.render()
    print(text)
    assert not report.ok and "int8 does not fit deep" in text, text
    fix = load_manifest(tmp_path / "out" / "deep")["artifacts"]["tflite_int8"]["fix"]
    assert fix["verdict"]["cause"] and "settings" not in fix
    accepted = fix_model("deep", out=tmp_path / "out", data_npz=str(tmp_path / "test.npz"), formats=["tflite_int8"],
                         max_float_fraction=1.0)
    print(accepted.render())
    fix = load_manifest(tmp_path / "out" / "deep")["artifacts"]["tflite_int8"]["fix"]
    assert accepted.ok and fix["max_float_fraction"] == 1.0 and fix["float_fraction"] > 0.25, accepted.render()
