"""Microcontroller bundles: a batch-1 full-integer model with no shape ops, the arena it really
needs, TFLite Micro = LiteRT (no delegates) on real Fashion-MNIST inputs, C that compiles, and a
failing proof fails the bundle."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("tflite_micro")

from edgeport.benchmarks.verify.command import verify_model
from edgeport.errors import EdgeportError
from edgeport.export.pipeline import export_model
from edgeport.export.targets import bundle_model
from edgeport.export.targets import mcu_files, mcu_model
from edgeport.export.tflite_flatbuffer import builtin_ops
from edgeport.runtimes import tflm
from edgeport.runtimes.litert import LiteRTSession

NAME = "mcu_cnn"
SAMPLES = 200
#: The TFLM method names, spelled by hand from micro_mutable_op_resolver.h (not by the rule under test).
TFLM_METHODS = {"CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
                "FULLY_CONNECTED": "AddFullyConnected",
                "MAX_POOL_2D": "AddMaxPool2D", "AVERAGE_POOL_2D": "AddAveragePool2D", "RESHAPE": "AddReshape",
                "SOFTMAX": "AddSoftmax", "MUL": "AddMul", "QUANTIZE": "AddQuantize", "DEQUANTIZE": "AddDequantize",
                "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "BATCH_MATMUL": "AddBatchMatMul",
                "CUMSUM": "AddCumSum", "PADV2": "AddPadV2", "L2_NORMALIZATION": "AddL2Normalization",
                "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "LOG_SOFTMAX": "AddLogSoftmax",
                "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "CONCATENATION": "AddConcatenation"}


def _tiny_cnn():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation="softmax")])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny CNN trained for a few seconds on real Fashion-MNIST, exported (tflite_int8),
    verified and bundled for a microcontroller."""
    from edgeport.training.data import load_dataset

    ds = load_dataset("fashion_mnist")
    tmp = tmp_path_factory.mktemp("mcu")
    model = _tiny_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds.x_train[:3000].astype(np.float32), ds.y_train[:3000], epochs=1, batch_size=64, verbose=0)
    model.save(tmp / f"{NAME}.keras")
    np.save(tmp / "cal.npy", ds.x_train[3000:3100].astype(np.float32))
    np.savez(tmp / "test.npz", x_test=ds.x_test[:300], y_test=ds.y_test[:300])
    out = tmp / "out"
    assert export_model(str(tmp / f"{NAME}.keras"), formats=["tflite_int8"], out=out,
                        calibration_data=str(tmp / "cal.npy")).ok
    with pytest.raises(EdgeportError, match="not verified"):
        bundle_model(NAME, target="mcu", out=out, dist=tmp / "dist", samples=SAMPLES)
    assert verify_model(NAME, out=out, data_npz=str(tmp / "test.npz"), formats=["tflite_int8"]).ok
    result = bundle_model(NAME, target="mcu", out=out, dist=tmp / "dist", samples=SAMPLES)
    folder = result.folder
    return {"tmp": tmp, "out": out, "result": result, "folder": folder,
            "model": (folder / mcu_files.MODEL_FILE).read_bytes(),
            "proof": json.loads((folder / mcu_files.PROOF_FILE).read_text()),
            "test": np.load(tmp / "test.npz")}


def test_batch1_full_integer_model_without_shape_ops(built):
    ops = builtin_ops(built["model"])
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(ops)
    assert {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "SOFTMAX"} <= set(ops)
    assert built["proof"]["ops"] == ops
    session = LiteRTSession(built["folder"] / mcu_files.MODEL_FILE, xnnpack=False)
    (inp,), (outp,) = session.inputs, session.outputs
    assert inp.shape == (1, 28, 28, 1) and outp.shape == (1, 10)
    assert inp.dtype == outp.dtype == "int8" and inp.quantized and outp.quantized
    io = built["proof"]["io"]
    assert io["type"] == "int8"
    assert io["inputs"][0]["scale"] == pytest.approx(inp.scale) and io["inputs"][0]["zero_point"] == inp.zero_point
    assert io["outputs"][0]["zero_point"] == outp.zero_point
    assert built["proof"]["calibration"]["source"].startswith("file:")  # the int8 artifact's own record


def test_tflm_equals_litert_without_delegates(built):
    proof = built["proof"]["proof"]
    assert proof["ok"] and proof["n"] == SAMPLES and proof["max_steps"] <= 1
    assert 0.9 <= proof["identical_fraction"] <= 1.0 and proof["top1_agreement_keras"] >= 0.9
    assert len(built["proof"]["indices"]) == SAMPLES
    # independently of the bundle's proof code: TFLM in a child process against LiteRT, row by row
    path, x = built["folder"] / mcu_files.MODEL_FILE, built["test"]["x_test"][:64]
    (micro,), engine = tflm.predict_isolated(path, x, arena_size=built["proof"]["arena_bytes"])
    assert engine.startswith("tflite_micro ")
    lite = LiteRTSession(path, xnnpack=False)
    ref = np.concatenate([lite.predict(x[i:i + 1]) for i in range(len(x))])
    steps = np.rint(np.abs(micro - ref) / lite.outputs[0].scale)
    assert steps.max() <= 1
    assert built["result"].tables and "TFLM = LiteRT" in built["result"].tables[0]


def test_the_arena_is_measured_and_exactly_enough(built):
    model, arena = built["model"], built["proof"]["arena_bytes"]
    assert arena > 0 and arena == built["proof"]["proof"]["arena_bytes"]
    proof = built["proof"]
    assert arena >= proof["arena_recorded_total"] == proof["arena_head"] + proof["arena_tail"]
    assert tflm.arena_fits(model, arena)
    assert not tflm.arena_fits(model, arena - 16)  # tight: a smaller arena fails
    assert not tflm.arena_fits(model, 16)  # a segfault inside TFLite Micro, in a child: this process lives on
    assert tflm.measure_arena(model) == arena
    session = tflm.TFLMSession(built["folder"] / mcu_files.MODEL_FILE, arena_size=arena, threads=2)
    assert session.allocations()["total"] == arena
    assert session.notes and "one thread" in session.notes[0]
    x = built["test"]["x_test"][:5]
    batch = session.predict(x)
    rows = np.concatenate([session.predict(x[i:i + 1]) for i in range(5)])
    np.testing.assert_array_equal(batch, rows)
    assert batch.shape == (5, 10) and batch.dtype == np.float32


def test_c_array_and_header_state_flash_ram_ops(built):
    folder, model = built["folder"], built["model"]
    header = (folder / mcu_files.HEADER_FILE).read_text()
    assert f"#define EDGEPORT_MODEL_INT8_FLASH_BYTES {len(model)}u" in header
    assert f"#define EDGEPORT_MODEL_INT8_ARENA_BYTES {built['proof']['arena_bytes']}u" in header
    assert all(f"X({op})" in header for op in built["proof"]["ops"])
    readme = (folder / "README.md").read_text()
    assert "| memory | what | bytes |" in readme
    assert re.search(rf"\| flash \|.*\| {len(model):,} \|", readme)
    assert re.search(rf"\| RAM \|.*\| {built['proof']['arena_bytes']:,} \|", readme)
    assert all(op in readme for op in built["proof"]["ops"])
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["target"] == "mcu" and meta["mcu"]["flash_bytes"] == len(model)


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("g++") is None, reason="no gcc/g++")
def test_the_c_compiles_and_the_resolver_names_tflm_methods(built, tmp_path):
    folder = built["folder"]
    subprocess.run(["gcc", "-c", "-std=c99", "-Wall", "-Wextra", "-Werror", str(folder / mcu_files.SOURCE_FILE),
                    "-o", str(tmp_path / "model.o")], check=True)
    resolver = (folder / mcu_files.RESOLVER_FILE).read_text()
    called = re.findall(r"resolver\.(Add\w+)\(\)", resolver)
    assert called == [TFLM_METHODS[op] for op in built["proof"]["ops"]]
    # C++ syntax against a stand-in for TFLM's header that has exactly the expected methods
    stub = tmp_path / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    stub.parent.mkdir(parents=True)
    methods = "\n".join(f"  TfLiteStatus {TFLM_METHODS[op]}() {{ return kTfLiteOk; }}" for op in built["proof"]["ops"])
    stub.write_text("typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;\nnamespace tflite {\n"
                    f"template <unsigned int N> class MicroMutableOpResolver {{\n public:\n{methods}\n}};\n}}\n")
    main = tmp_path / "main.cc"
    main.write_text(f'#include "{mcu_files.HEADER_FILE}"\n#include "{mcu_files.RESOLVER_FILE}"\n'
                    "int main() { static edgeport::EdgeportOpResolver r;\n"
                    "  static unsigned char arena[EDGEPORT_MODEL_INT8_ARENA_BYTES];\n"
                    "  return edgeport::RegisterOps(r) == kTfLiteOk && arena[0] == 0 && edgeport_model_int8_len"
                    " == EDGEPORT_MODEL_INT8_FLASH_BYTES ? 0 : 1; }\n")
    exe = tmp_path / "a.out"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}", f"-I{folder}", str(main),
                    str(tmp_path / "model.o"), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_resolver_method_names():
    for op, method in TFLM_METHODS.items():
        assert tflm.resolver_method(op) == method
    snippet = tflm.micro_op_resolver(["SOFTMAX", "CONV_2D", "SOFTMAX"])
    assert "MicroMutableOpResolver<kEdgeportOpCount>" in snippet and "kEdgeportOpCount = 2;" in snippet
    with pytest.raises(EdgeportError, match="custom ops"):
        tflm.micro_op_resolver(["CONV_2D", "CUSTOM:MyOp"])


def test_a_failing_proof_fails_the_bundle_and_keeps_the_previous_one(built, monkeypatch):
    real = tflm.predict_isolated

    def off_by_two(path, x, *, arena_size, **kw):
        outs, engine = real(path, x, arena_size=arena_size, **kw)
        y = outs[0].copy()
        y[3, 0] += 2 * 0.00390625 * 1.0001  # two output steps on one value of one input
        return [y], engine

    monkeypatch.setattr(tflm, "predict_isolated", off_by_two)
    before = {p.name: p.read_bytes() for p in built["folder"].iterdir()}
    with pytest.raises(EdgeportError, match=r"disagree.*'output_0' is up to 2 quantization steps"):
        bundle_model(NAME, target="mcu", out=built["out"], dist=built["folder"].parent, samples=SAMPLES)
    assert {p.name: p.read_bytes() for p in built["folder"].iterdir()} == before
    assert not [p for p in built["folder"].parent.iterdir() if p.name.endswith(".tmp")]


def test_refusals_before_any_work(built):
    with pytest.raises(EdgeportError, match="at least 200"):
        bundle_model(NAME, target="mcu", out=built["out"], dist=built["tmp"] / "d2", samples=50)
    other = built["tmp"] / "stale"
    shutil.copytree(built["out"], other)
    with open(other / NAME / "model.keras", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(EdgeportError, match="changed since export"):
        bundle_model(NAME, target="mcu", out=other, dist=built["tmp"] / "d3", samples=SAMPLES)


def test_a_savedmodel_source_gets_a_batch1_bundle_too(built):
    import keras

    tmp = built["tmp"]
    keras.saving.load_model(tmp / f"{NAME}.keras").export(str(tmp / "mcu_sm"), verbose=False)
    out = tmp / "out_sm"
    assert export_model(str(tmp / "mcu_sm"), formats=["tflite_int8"], out=out,
                        calibration_data=str(tmp / "cal.npy")).ok
    assert verify_model("mcu_sm", out=out, data_npz=str(tmp / "test.npz"), formats=["tflite_int8"]).ok
    result = bundle_model("mcu_sm", target="mcu", out=out, dist=tmp / "dist_sm", samples=SAMPLES)
    proof = json.loads((result.folder / mcu_files.PROOF_FILE).read_text())
    assert proof["proof"]["ok"] and proof["proof"]["max_steps"] <= 1 and proof["arena_bytes"] > 0
    assert proof["io"]["inputs"][0]["shape"] == [1, 28, 28, 1]
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(proof["ops"])
    assert proof["proof"]["reference"].endswith(": source_saved_model")  # top-1 against the SavedModel itself


def test_two_inputs_keep_the_keras_order(tmp_path):
    import keras

    from edgeport.export.tflite_flatbuffer import add_metadata

    keras.utils.set_random_seed(0)
    img, vec = keras.Input((8, 8, 1), name="image"), keras.Input((3,), name="features")
    h = keras.layers.Concatenate()([keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(img)), vec])
    keras.Model([img, vec], keras.layers.Dense(2, activation="softmax")(h)).save(tmp_path / "two.keras")
    rng = np.random.default_rng(0)
    cal = {"image": rng.uniform(0, 255, (40, 8, 8, 1)).astype(np.float32),
           "features": rng.normal(size=(40, 3)).astype(np.float32)}
    model = mcu_model.convert_batch1(tmp_path / "two.keras", "keras", cal)
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(builtin_ops(model))
    path = tmp_path / "two.tflite"
    path.write_bytes(add_metadata(model, {"input_names": ["image", "features"]}))
    use = tflm.arena_use(path.read_bytes())
    assert use["arena"] >= use["total"] > 0 and not tflm.arena_fits(path.read_bytes(), use["arena"] - 16)
    session = tflm.TFLMSession(path, arena_size=use["arena"])
    assert [s.name for s in session.inputs] == ["image", "features"]
    x = [cal["image"][:6], cal["features"][:6]]
    lite = LiteRTSession(path, xnnpack=False)
    ref = np.concatenate([lite.predict([x[0][i:i + 1], x[1][i:i + 1]]) for i in range(6)])
    assert np.abs(session.predict(x) - ref).max() <= lite.outputs[0].scale * 1.01
