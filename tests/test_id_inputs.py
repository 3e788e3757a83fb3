"""A Keras text model whose float32 input carries ids into an ``Embedding``: its quantized formats keep
the ids exact (no input quantizer rounds an id into another), int16x8's uncalibratable CAST goes to
ai-edge-quantizer, and calibration without data draws ids as whole numbers in [0, vocabulary)."""
from __future__ import annotations

import numpy as np
import pytest

from edgeport.export.pipeline import export_model
from edgeport.manifest import load_manifest

NAME, VOCAB, STEPS, CLASSES = "idtext", 30, 12, 4
FORMATS = ["tflite_int8", "onnx_int8", "tflite_int16x8"]


def texts(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Float32 "texts" of ids: class k is the one whose marker id k occurs (three times) among filler ids."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.integers(CLASSES, VOCAB, (n, STEPS))
    for i, k in enumerate(y):
        x[i, rng.choice(STEPS, 3, replace=False)] = k
    return x.astype(np.float32), y.astype(np.int64)


def id_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((STEPS,), dtype="float32", name="ids")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, 8)(inp))
    return keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax")(h))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import keras

    tmp = tmp_path_factory.mktemp("ids")
    net, (x, y) = id_model(), texts(1000, 0)
    net.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    net.fit(x, y, epochs=3, batch_size=64, verbose=0)
    src = tmp / "src" / f"{NAME}.keras"
    src.parent.mkdir()
    net.save(src)
    np.save(tmp / "cal.npy", x[:64])
    xt, yt = texts(200, 1)
    np.savez(tmp / "test.npz", x_test=xt, y_test=yt)
    return tmp, src


@pytest.fixture(scope="module")
def exported(trained):
    tmp, src = trained
    report = export_model(str(src), formats=FORMATS, out=tmp / "out", calibration_data=str(tmp / "cal.npy"),
                          calibration_samples=32)
    assert report.ok, report.render()
    return tmp


def test_an_input_feeding_an_embedding_is_an_id_input_with_the_tables_vocabulary():
    from edgeport.export.id_inputs import find

    found = find(id_model())
    assert list(found) == ["ids"] and found["ids"].vocabulary == VOCAB


def test_the_quantized_formats_keep_ids_exact_and_pass_their_gates(exported):
    from edgeport.benchmarks.verify.command import verify_model

    entries = load_manifest(exported / "out" / NAME)["artifacts"]
    assert entries["tflite_int8"]["id_inputs"] == ["ids"] and entries["tflite_int8"]["io_type"] == "float32"
    assert "Max and min" in entries["tflite_int16x8"]["reason"] and entries["tflite_int16x8"]["quantizer"]
    assert entries["tflite_int8"]["calibration"]["id_inputs"]["ids"]["drawn_as"] == "kept as given"
    checked = verify_model(NAME, out=exported / "out", data_npz=str(exported / "test.npz"), formats=FORMATS)
    assert checked.ok, checked.render()
    for result in checked.results:  # 69.5% for tflite_int8 before ids were kept exact
        assert result.figures["agreement"] >= 0.95, (result, result.figures)


def test_without_data_ids_are_drawn_as_whole_numbers_in_the_vocabulary(trained, capsys):
    tmp, src = trained
    report = export_model(str(src), formats=["tflite_int8"], out=tmp / "nodata", calibration_samples=16)
    assert report.ok, report.render()
    record = load_manifest(tmp / "nodata" / NAME)["artifacts"]["tflite_int8"]["calibration"]
    assert record["id_inputs"]["ids"]["drawn_as"] == f"whole numbers in [0, {VOCAB})"
    assert record["per_input"]["ids"]["min"] >= 0 and record["per_input"]["ids"]["max"] <= VOCAB - 1
    said = capsys.readouterr()
    assert "ids, whole numbers in [0, 30)" in said.out + said.err


def test_calibration_rebuilds_the_same_whole_number_ids():
    from edgeport.export import calibration

    ids = {"ids": {"vocabulary": VOCAB, "read_from": "Embedding 'e' input_dim", "drawn_as": "whole numbers"}}
    samples, record = calibration.draw([("ids", (STEPS,))], n=8, seed=3, file=None, dataset=None, data_dir=None,
                                       image_size=None, ranges={"ids": (0, VOCAB - 1)}, ids=ids)
    x = samples["ids"]
    assert x.dtype == np.float32 and np.array_equal(x, np.round(x)) and 0 <= x.min() and x.max() < VOCAB
    assert np.array_equal(calibration.rebuild(record)["ids"], x)


def test_a_savedmodel_source_has_its_id_inputs_read_from_the_float_tflite(trained):
    import keras

    from edgeport.export.id_inputs import from_tflite
    from edgeport.export.tflite import float32_model

    tmp, src = trained
    keras.models.load_model(src).export(str(tmp / "sm"), verbose=False)
    found = from_tflite(float32_model(tmp / "sm"))
    assert list(found) == ["ids"] and found["ids"].vocabulary == VOCAB


def test_fix_offers_float32_inputs_second_and_names_the_input_quantizer_as_the_cause():
    from itertools import islice
    from types import SimpleNamespace

    from edgeport.export.tflite_fix import INPUT_LABEL, TfliteInt8Fixer

    record = {"requested": 8, "samples": 8, "seed": 0, "source": "random-uniform", "inputs": [["ids", [STEPS]]],
              "ranges": {"ids": [0, VOCAB - 1]}}
    fixer = TfliteInt8Fixer({"source": "unused", "calibration": record, "io_type": "uint8"})
    labels = [label for label, _ in islice(fixer.calibrations(), 2)]
    assert labels[1] == INPUT_LABEL
    assert TfliteInt8Fixer.export_settings({"io_type": "uint8"}, {"int8_io": "float32"})["int8_io"] == "float32"
    failed, passed = SimpleNamespace(passes=False, label=labels[0]), SimpleNamespace(passes=True, label=INPUT_LABEL)
    assert "input quantizer" in TfliteInt8Fixer.cause([failed, passed])
    assert TfliteInt8Fixer.cause([failed, SimpleNamespace(passes=False, label=INPUT_LABEL)]) is None
    float_io = TfliteInt8Fixer({"source": "unused", "calibration": record, "io_type": "float32"})
    assert INPUT_LABEL not in [label for label, _ in islice(float_io.calibrations(), 2)]


def test_the_quantization_debugger_runs_on_a_two_input_model(tmp_path):
    """verify's debugger feeds every input, as fix's does (it said "single-input models only")."""
    import keras

    from edgeport.benchmarks.verify.quant_debug import debug_int8

    ids = keras.Input((STEPS,), name="ids")
    extra = keras.Input((3,), name="extra")
    h = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, 4)(ids)),
                                    keras.layers.Dense(4)(extra)])
    keras.Model([ids, extra], keras.layers.Dense(CLASSES, activation="softmax")(h)).export(
        str(tmp_path / "sm"), verbose=False)
    x = {"ids": texts(16, 2)[0], "extra": np.random.default_rng(0).uniform(-1, 1, (16, 3)).astype(np.float32)}
    result = debug_int8(tmp_path / "sm", x, x, max_debug_samples=8)
    assert result["layers"] and result["debug_samples"] == 8
