"""Models with several inputs, integer and scalar inputs, state tensors and symbolic dimensions, through
`edgeport export`, `verify`, `run` and `bench` (issue 15, "Inputs"). Every model is built here."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.benchmarks.fuzz import input_models
from edgeport.cli import main

BENCH = ["--seconds", "0.2", "--threads", "1", "--peak-n", "64"]


# -- a Keras model with an int64 per-sample scalar and a state tensor --------------------------------

@pytest.fixture(scope="module")
def two_input(tmp_path_factory):
    import keras

    tmp = tmp_path_factory.mktemp("two_input")
    keras.utils.set_random_seed(0)
    ids = keras.Input((), dtype="int64", name="ids")
    state = keras.Input((2, 8), name="state")
    h = keras.layers.Concatenate()([keras.layers.Embedding(10, 4)(ids), keras.layers.Flatten()(state)])
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(16, activation="relu")(h))
    model = keras.Model([ids, state], out)
    rng = np.random.default_rng(0)
    x_ids, x_state = rng.integers(0, 10, 256).astype(np.int64), rng.normal(size=(256, 2, 8)).astype(np.float32)
    y = x_ids % 3
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit({"ids": x_ids, "state": x_state}, y, epochs=2, verbose=0)
    model.save(tmp / "two.keras")
    np.savez(tmp / "cal.npz", ids=x_ids[:128], state=x_state[:128])
    np.savez(tmp / "test.npz", ids=x_ids[128:], state=x_state[128:], y_test=y[128:])
    return tmp


FORMATS = ["saved_model", "tflite_fp32", "tflite_int8", "onnx", "onnx_int8"]


def test_two_input_keras_model_exports_calibrates_per_input_and_verifies_by_name(two_input, capsys):
    tmp = two_input
    assert main(["export", str(tmp / "two.keras"), "--out", str(tmp / "out"), "--formats", *FORMATS,
                 "--calibration-data", str(tmp / "cal.npz")]) == 0
    manifest = json.loads((tmp / "out" / "two" / "manifest.json").read_text())
    for fmt in ("tflite_int8", "onnx_int8"):
        cal = manifest["artifacts"][fmt]["calibration"]
        assert cal["source"].startswith("file:") and cal["samples"] == 128
        assert cal["per_input"]["ids"] == {"dtype": "int64", "shape": [], "min": 0.0, "max": 9.0}
        assert cal["per_input"]["state"]["dtype"] == "float32" and cal["per_input"]["state"]["shape"] == [2, 8]
    capsys.readouterr()
    assert main(["verify", "two", "--out", str(tmp / "out"), "--data-npz", str(tmp / "test.npz")]) == 0
    verified = json.loads((tmp / "out" / "two" / "verify.json").read_text())
    rows = {r["format"]: r for r in verified["results"]}
    assert verified["ok"] and set(FORMATS) <= set(rows)
    assert {f: rows[f]["status"] for f in FORMATS} == {f: "pass" for f in FORMATS}


def test_fix_searches_a_two_input_model_calibrated_per_input(two_input):
    """Every candidate of both int8 fixers is built from the per-input calibration, selective ones too
    (the debugger feeds the inputs in the interpreter's order: ids, then state)."""
    from edgeport.benchmarks.verify.fix import fix_model

    tmp = two_input
    if not (tmp / "out" / "two" / "manifest.json").is_file():  # run alone: export it here
        assert main(["export", str(tmp / "two.keras"), "--out", str(tmp / "out"), "--formats", *FORMATS,
                     "--calibration-data", str(tmp / "cal.npz")]) == 0
    report = fix_model("two", out=tmp / "out", data_npz=str(tmp / "test.npz"), formats=["tflite_int8", "onnx_int8"],
                       gates="quantized.min_agreement=1.0", max_float_fraction=1.0)
    text = report.render()
    for fmt in ("tflite_int8", "onnx_int8"):
        cands = report.tables[fmt]["candidates"]
        assert len(cands) >= 2 and not any(c["error"] for c in cands), text
        assert any(c["kept_float"] for c in cands), text  # selective candidates were built and scored


def test_calibration_keeps_integer_inputs_and_refuses_a_scalar(tmp_path):
    from edgeport.errors import ExportError
    from edgeport.export.calibration import draw, fit

    ids = np.array([16777217, 3, 9], np.int64)
    assert fit(ids, "ids", (), "int64").dtype == np.int64 and int(fit(ids, "ids", (), "int64")[0]) == 16777217
    pixels = np.full((2, 28, 28, 1), 255, np.uint8)  # raw pixels for a float input: fed as float32
    assert fit(pixels, "image", (28, 28, 1), "float32").dtype == np.float32
    with pytest.raises(ExportError, match="not whole numbers"):
        fit(np.array([0.5]), "ids", (), "int64")
    np.savez(tmp_path / "cal.npz", ids=ids, state=np.zeros((3, 2, 8), np.float32))
    dtypes = {"ids": "int64", "state": "float32"}
    samples, record = draw([("ids", ()), ("state", (2, 8))], n=10, seed=0, file=tmp_path / "cal.npz", dataset=None,
                           data_dir=None, image_size=None, ranges={}, dtypes=dtypes)
    assert sorted(samples["ids"].tolist()) == [3, 9, 16777217] and samples["state"].dtype == np.float32
    assert record["per_input"]["ids"]["dtype"] == "int64"
    np.savez(tmp_path / "bad.npz", ids=np.array(3), state=np.zeros((3, 2, 8), np.float32))
    with pytest.raises(ExportError, match=r"bad.npz: \['ids'\] hold one scalar"):
        draw([("ids", ()), ("state", (2, 8))], n=10, seed=0, file=tmp_path / "bad.npz", dataset=None,
             data_dir=None, image_size=None, ranges={}, dtypes=dtypes)


# -- a bare 3-input stateful ONNX: float audio, state (2, 1, H) with no batch axis, int64 scalar -----

@pytest.fixture(scope="module")
def stateful(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stateful")
    model = input_models.stateful(tmp / "vad.onnx")
    np.savez(tmp / "in.npz", **input_models.stateful_feed())
    return model, tmp / "in.npz"


def test_run_feeds_a_npz_by_input_name_and_the_int64_reaches_the_graph_exactly(stateful, capsys):
    model, feed = stateful
    assert main(["run", str(model), str(feed), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    outs = {o["name"]: o for o in doc["results"][0]["outputs"]}
    assert outs["sr_is_big"]["values"] == [1.0]  # 16777217 == 16777217: no float32 round trip (it would be 2**24)
    assert outs["sr_mod"]["values"] == [217.0]
    assert outs["new_state"]["shape"] == [2, 1, 16]
    x = input_models.stateful_feed()
    w = np.linspace(-1, 1, 512 * 16, dtype=np.float32).reshape(512, 16)
    np.testing.assert_allclose(np.reshape(outs["new_state"]["values"], (2, 1, 16)), x["state"] + x["audio"] @ w,
                               rtol=1e-5, atol=1e-5)


def test_bench_times_batch_1_and_says_why_batch_32_is_not_measured(stateful, capsys):
    model, feed = stateful
    assert main(["bench", str(model), "--data-npz", str(feed), *BENCH]) == 0
    out = capsys.readouterr().out
    assert "not measured at batch 32" in out and "no shared batch axis" in out
    report = json.loads(model.with_name("vad.onnx.bench.json").read_text())
    row = report["rows"][0]
    assert "error" not in row and row["batch1"]["p50_us"] > 0
    assert "not measured" in row["batch32"]["not_measured"] and "sr ()" in row["batch32"]["not_measured"]
    assert row["input_shapes"] == {"audio": [1, 512], "state": [2, 1, 16], "sr": []}
    assert any("batch sizes other than 1 are not measured" in n for n in report["notes"])


def test_verify_proves_a_stateful_step_given_whole(stateful, tmp_path):
    """A feed whose inputs share no batch axis is one step: verify runs it whole and gates every output."""
    import shutil

    from edgeport.benchmarks.verify.command import verify_model

    model, npz = stateful
    copy = tmp_path / "vad_copy.onnx"
    shutil.copyfile(model, copy)
    report = verify_model(str(copy), reference=str(model), data_npz=str(npz))
    row = report.results[0]
    assert report.ok and set(row.outputs) == {"prob", "new_state", "sr_is_big", "sr_mod"}, report.render()
    assert all(f["n"] == 1 and f["max_abs_diff"] == 0.0 for f in row.outputs.values())


def test_bad_npz_inputs_are_one_line_errors_naming_the_file(stateful, tmp_path, capsys):
    model, _ = stateful
    good = input_models.stateful_feed()
    cases = {
        "keys.npz": ({**{k: v for k, v in good.items() if k != "state"}, "st": good["state"]},
                     r"keys.npz: arrays .* do not match the inputs of vad.onnx: \['audio', 'state', 'sr'\]"),
        "frac.npz": ({**good, "sr": np.array(16000.5)}, r"frac.npz: vad.onnx: input 'sr': an integer input \(int64\)"),
        "shape.npz": ({**good, "state": good["state"][0]}, r"shape.npz: .*'state': expected shape \(2, 1, 16\)"),
    }
    import re

    for name, (arrays, pattern) in cases.items():
        np.savez(tmp_path / name, **arrays)
        for cmd in (["run", str(model), str(tmp_path / name)],
                    ["bench", str(model), "--data-npz", str(tmp_path / name), *BENCH]):
            capsys.readouterr()
            assert main(cmd) == 2, (name, cmd[0])
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and re.search(pattern, err), (cmd[0], err)
    capsys.readouterr()
    np.save(tmp_path / "one.npy", good["audio"])
    assert main(["run", str(model), str(tmp_path / "one.npy")]) == 2
    assert "takes .npz files with one array per input name" in capsys.readouterr().err


# -- a detector-like ONNX with symbolic height/width ----------------------------------------------

@pytest.fixture(scope="module")
def symbolic(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("symbolic")
    model = input_models.symbolic(tmp / "det.onnx")
    np.savez(tmp / "img.npz", images=np.random.default_rng(0).uniform(0, 255, (1, 3, 96, 128)).astype(np.float32))
    return model, tmp / "img.npz"


def test_bench_fills_symbolic_dims_from_the_flag_and_from_the_data(symbolic, capsys):
    model, data = symbolic
    assert main(["bench", str(model), "--input-shape", "images=1x3x64x64", *BENCH]) == 0
    out = capsys.readouterr().out
    assert "height=64, width=64 from --input-shape" in out
    report = json.loads(model.with_name("det.onnx.bench.json").read_text())
    assert report["input_shapes"] == {"images": [1, 3, 64, 64]}
    assert all("error" not in r and r["batch32"]["images_per_s"] > 0 for r in report["rows"])
    assert report["rows"][0]["input_shapes"] == [1, 3, 64, 64]
    assert main(["bench", str(model), "--data-npz", str(data), *BENCH]) == 0
    assert "height=96, width=128 from the data" in capsys.readouterr().out
    report = json.loads(model.with_name("det.onnx.bench.json").read_text())
    assert all("error" not in r for r in report["rows"]) and report["input_shapes"] == {"images": [1, 3, 96, 128]}


def test_symbolic_dims_without_data_or_flag_is_one_line_naming_them_and_the_flag(symbolic, capsys):
    model, _ = symbolic
    assert main(["bench", str(model), *BENCH]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "images.height, images.width" in err and "--input-shape images=1x3xHEIGHTxWIDTH" in err
    assert not model.with_name("det.onnx.bench.json").exists() or "ok" not in err


@pytest.mark.parametrize("flag, message", [
    ("images=1x3x64", "has 4 dimension(s) (1, 3, height, width), given 3"),
    ("images=1x4x64x64", "dimension 1 of 'images' is fixed at 3"),
    ("imgs=1x3x64x64", "has no input 'imgs'; its inputs are ['images']"),
    ("images=1x3xax64", "expected NAME=DIMxDIMx"),
    ("images=1x3x0x64", "sizes are at least 1"),
])
def test_bad_input_shape_flags_are_one_line(symbolic, flag, message, capsys):
    model, data = symbolic
    assert main(["bench", str(model), "--input-shape", flag, *BENCH]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "--input-shape" in err


def test_run_resizes_an_image_to_the_input_shape_and_checks_data_against_it(symbolic, tmp_path, capsys):
    from PIL import Image

    model, data = symbolic
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "p.png")
    assert main(["run", str(model), str(tmp_path / "p.png"), "--input-shape", "images=1x3x64x64", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input_shapes"] == {"images": [1, 3, 64, 64]}
    assert np.allclose(doc["results"][0]["outputs"][0]["values"], 0.0)  # a black image, NCHW, 64x64
    assert main(["run", str(model), str(tmp_path / "p.png")]) == 2
    assert "images.height, images.width have no size" in capsys.readouterr().err
    assert main(["run", str(model), str(data), "--input-shape", "images=1x3x64x64"]) == 2
    assert "contradicts the data's 'images' of shape (1, 3, 96, 128)" in capsys.readouterr().err


def test_the_testset_reads_npz_keyed_by_input_name_and_whole_feeds(tmp_path):
    from edgeport.training.testset import npz_testset

    np.savez(tmp_path / "named.npz", audio=np.zeros((5, 4), np.float32), ids=np.arange(5), y=np.arange(5))
    t = npz_testset(tmp_path / "named.npz", limit=3)
    assert sorted(t.x) == ["audio", "ids"] and len(t) == 3 and t.y.tolist() == [0, 1, 2] and not t.whole
    np.savez(tmp_path / "whole.npz", **input_models.stateful_feed())
    t = npz_testset(tmp_path / "whole.npz", limit=3)
    assert t.whole and len(t) == 1 and t.x["sr"].shape == () and int(t.x["sr"]) == input_models.BIG_SR


def test_a_keras_model_with_symbolic_height_and_width_calibrates_on_data_or_says_what_is_missing(tmp_path):
    """Input (None, None, 3): calibration takes its size from --calibration-data; random calibration
    cannot invent one and says so in one line naming the dimensions and what to give."""
    import keras

    from edgeport.export.pipeline import export_model
    from edgeport.manifest import load_manifest

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3), name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255.0)(inp))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h)))
    model.save(tmp_path / "fcn.keras")
    report = export_model(str(tmp_path / "fcn.keras"), formats=["tflite_int8"], out=tmp_path / "a")
    assert not report.ok
    line = report.results[0].error
    assert "symbolic dimension(s) image axis 1, image axis 2" in line and "--input-shape" in line, line
    report = export_model(str(tmp_path / "fcn.keras"), formats=["tflite_int8"], out=tmp_path / "c",
                          input_shape=["image=1x20x20x3"])
    assert report.ok, report.render()
    record = load_manifest(tmp_path / "c" / "fcn")["artifacts"]["tflite_int8"]["calibration"]
    assert record["source"] == "random-uniform" and record["per_input"]["image"]["shape"] == [20, 20, 3]
    report = export_model(str(tmp_path / "fcn.keras"), formats=["tflite_int8"], out=tmp_path / "d",
                          input_shape=["image=1x20x20x4"])
    assert "contradicts the input's shape Nx?x?x3" in report.results[0].error
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).integers(0, 256, (16, 24, 32, 3)).astype(np.uint8))
    report = export_model(str(tmp_path / "fcn.keras"), formats=["tflite_int8"], out=tmp_path / "b",
                          calibration_data=str(tmp_path / "cal.npy"))
    assert report.ok, report.render()
    record = load_manifest(tmp_path / "b" / "fcn")["artifacts"]["tflite_int8"]["calibration"]
    assert record["inputs"] == [["image", [None, None, 3]]] and record["per_input"]["image"]["shape"] == [24, 32, 3]
