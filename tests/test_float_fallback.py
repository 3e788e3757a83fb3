"""An op the int8 or int16x8 converter cannot quantize stays in float through the converter's public
float fallback (``supported_ops`` with ``TFLITE_BUILTINS`` beside the integer set): printed, recorded
in the manifest (``kept_float``, ``reason``, ``fallback``) and proved by ``edgeport verify``; a
fallback that fails too is a one-line ExportError."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeport.export.pipeline import export_model
from edgeport.manifest import load_manifest

NAME = "neg_sign"
INT8, INT16X8 = "tflite_int8", "tflite_int16x8"


def bands(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class (0-9) is the row band that is bright: learnt in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 28, 28, 1))
    for i, k in enumerate(y):
        x[i, 2 * k + 4:2 * k + 7] += 150
    return x.astype(np.uint8), y.astype(np.int64)


def neg_sign_mlp():
    """A classifier with NEG (``keras.ops.negative``) and SIGN (``keras.ops.sign``), no Lambda: the
    converter refuses both at 16x8 ("Quantization to 16x8-bit not yet supported for op: 'NEG'"); at
    int8 it has no kernel for either and keeps them in float by itself (TF 2.21)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1), name="image")
    d = keras.layers.Dense(16)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inp)))
    h = keras.layers.ReLU()(keras.ops.negative(d)) + 0.25 * keras.ops.sign(d)
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(h))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fallback")
    net = neg_sign_mlp()
    x, y = bands(1500, 0)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    net.fit(x, y, epochs=4, batch_size=32, verbose=0)
    src = tmp / "src" / f"{NAME}.keras"
    src.parent.mkdir()
    net.save(src)
    np.save(tmp / "cal.npy", x[:64].astype(np.float32))
    xt, yt = bands(300, 1)
    np.savez(tmp / "test.npz", x_test=xt, y_test=yt)
    report = export_model(str(src), formats=[INT8, INT16X8], out=tmp / "out",
                          calibration_data=str(tmp / "cal.npy"), calibration_samples=32)
    assert report.ok, report.render()
    return tmp, report


def _entry(tmp: Path, fmt: str) -> dict:
    return load_manifest(tmp / "out" / NAME)["artifacts"][fmt]


def _verified(tmp: Path, fmt: str) -> dict:
    from edgeport.benchmarks.verify.command import verify_model

    checked = verify_model(NAME, out=tmp / "out", data_npz=str(tmp / "test.npz"), formats=[fmt])
    assert checked.ok, checked.render()
    return checked.results[0].figures


def test_an_op_the_16x8_converter_refuses_stays_float_through_its_fallback_and_verifies(exported):
    tmp, _ = exported
    entry = _entry(tmp, INT16X8)
    assert entry["fallback"] == "converter TFLITE_BUILTINS"
    assert "16x8-bit not yet supported for op:" in entry["reason"]
    kinds = sorted({f.split(" ", 1)[0] for f in entry["kept_float"]})
    assert kinds == ["NEG", "SIGN"], entry["kept_float"]  # only what must be: every FULLY_CONNECTED is int16x8
    assert "quantizer" not in entry  # ai-edge-quantizer was not needed
    assert entry["inputs"][0]["dtype"] == entry["outputs"][0]["dtype"] == "float32"
    assert entry["calibration"]["samples"] == 32
    figures = _verified(tmp, INT16X8)
    print("int16x8 fallback:", entry["bytes"], "bytes;", entry["kept_float"],
          {k: figures.get(k) for k in ("agreement", "kl_divergence", "max_abs_diff")})
    assert figures["agreement"] >= 0.98


def test_an_op_without_an_int8_kernel_stays_float_recorded_with_uint8_io_and_verifies(exported):
    tmp, _ = exported
    entry = _entry(tmp, INT8)
    kinds = sorted({f.split(" ", 1)[0] for f in entry["kept_float"]})
    assert kinds == ["NEG", "SIGN"], entry["kept_float"]
    assert entry["fallback"] == "converter TFLITE_BUILTINS_INT8" and "unquantized" in entry["reason"]
    assert entry["io_type"] == "uint8"  # the integer interface holds with ops in float inside
    assert entry["inputs"][0]["dtype"] == entry["outputs"][0]["dtype"] == "uint8"
    figures = _verified(tmp, INT8)
    print("int8 with float ops:", entry["bytes"], "bytes;", entry["kept_float"],
          {k: figures.get(k) for k in ("agreement", "kl_divergence", "max_abs_diff")})
    assert figures["agreement"] >= 0.95


def test_the_printed_line_names_the_ops_kept_float(exported):
    _, report = exported
    lines = [w for w in report.warnings if "kept in float by the converter" in w]
    assert any(w.startswith(f"warning: {INT16X8}:") and "converter's float fallback: " in w
               and "NEG x1" in w and "SIGN x1" in w for w in lines), report.warnings
    assert any(w.startswith(f"warning: {INT8}:") and "NEG x1" in w for w in lines), report.warnings
    assert all("\n" not in w for w in lines)


def _tiny_saved_model(path: Path, op) -> Path:
    """Dense -> ``op`` (a Lambda) -> Dense, exported as a SavedModel (a Lambda does not reload)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="x")
    out = keras.layers.Dense(4)(keras.layers.Lambda(op)(keras.layers.Dense(8)(inp)))
    keras.Model(inp, out).export(str(path), verbose=False)
    return path


def _maker(saved: Path, *, legacy: bool = False):
    import tensorflow as tf

    from edgeport.export.tflite import calibrated_converter

    feed = [[np.full((1, 8), v, np.float32)] for v in np.linspace(-1, 1, 8)]

    def make(ops):
        c = calibrated_converter(saved, lambda: iter(feed), ops)[1]
        c.experimental_new_quantizer = not legacy
        c.inference_input_type = c.inference_output_type = tf.uint8
        return c

    return make


def test_an_int8_refusal_converts_again_with_the_float_fallback_and_keeps_uint8_io(tmp_path):
    """TF 2.21's default int8 quantizer never refuses an op for want of an int8 kernel (it keeps it
    float itself); its legacy quantizer does ("Quantization not yet supported for op: 'NEG'"), and
    the float fallback then converts it with NEG in float and the uint8 interface intact."""
    import keras

    from edgeport.export import tflite_fallback as fb
    from edgeport.export.tflite import INT8_OPS
    from edgeport.export.tflite_flatbuffer import describe

    make, said = _maker(_tiny_saved_model(tmp_path / "neg", lambda t: keras.ops.negative(t)), legacy=True), []
    with pytest.raises(Exception) as refused:
        make([INT8_OPS]).convert()
    assert fb.refused_op(str(refused.value)) == "NEG"
    model, kept = fb.convert(make, INT8_OPS, fb.refusal_reason(refused.value), INT8,
                             lambda converter: converter.convert(), said.append)
    assert [f.split()[0] for f in kept.kept_float] == ["NEG"] and kept.fallback == "converter TFLITE_BUILTINS"
    assert kept.reason == "RuntimeError: Quantization not yet supported for op: 'NEG'"
    io = describe(model)
    assert io["inputs"][0]["dtype"] == io["outputs"][0]["dtype"] == "uint8"
    assert len(said) == 1 and "converter's float fallback: NEG x1" in said[0], said


def test_a_fallback_that_fails_too_is_one_line(tmp_path):
    """``keras.ops.erf`` is no TFLite builtin (it needs TensorFlow's flex ops): the converter with
    its float fallback still cannot convert it, and that is said in one line."""
    import keras

    from edgeport.errors import ExportError
    from edgeport.export import tflite_fallback as fb
    from edgeport.export.tflite import INT8_OPS

    make = _maker(_tiny_saved_model(tmp_path / "erf", lambda t: keras.ops.erf(t)))
    with pytest.raises(ExportError) as caught:
        fb.convert(make, INT8_OPS, "RuntimeError: Quantization not yet supported for op: 'ERF'", INT8,
                   lambda converter: converter.convert(), print)
    text = str(caught.value)
    assert "\n" not in text and "float fallback" in text and "TFLITE_BUILTINS" in text and "loc(" not in text, text
    print(text)
    assert fb.refused_op("Quantization to 16x8-bit not yet supported for op: 'NEG'.") == "NEG"
    assert fb.refused_op("'tf.Erf' op is neither a custom op nor a flex op") is None
