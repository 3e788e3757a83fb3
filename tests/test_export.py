"""Export stage: every tiny model kind to every format, checked against Keras and the manifest.

Artifacts are run directly with LiteRT and ONNX Runtime (not through edgeport.runtimes).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeport.export.pipeline import export_model
from edgeport.export.registry import FILES, INFO, Format
from edgeport.files import sha256_file
from edgeport.manifest import check_integrity, load_manifest

DEFAULT = [f for f in Format if not INFO[f.value].opt_in]  # what an export without --formats builds

SAMPLES = 16
#: max abs difference from Keras per format, relative to max(1, max |Keras output|)
TOLERANCE = {"tflite_fp32": 1e-5, "onnx": 1e-5, "tflite_fp16": 2e-2, "tflite_dynamic": 0.1,
             "tflite_int8": 0.15, "tflite_int16x8": 0.1, "onnx_int8": 0.15}
# MobileNetV2 through every default format: tests/test_faces_models.py, on the real trained network
KINDS = ["mlp", "cnn", "two_input", "celsius"]


# -- running artifacts directly ---------------------------------------------------------------
def raw_inputs(model, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random raw inputs in each input's contract range: 0-255 pixels for images, -1..1 for values."""
    out = {}
    for t in model.inputs:
        shape = tuple(t.shape[1:])
        image = len(shape) == 3 and shape[-1] in (1, 3)
        x = rng.uniform(*((0.0, 255.0) if image else (-1.0, 1.0)), size=(n, *shape)).astype(np.float32)
        out[t.name] = np.round(x) if image else x
    return out


def keras_outputs(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    args = [inputs[t.name] for t in model.inputs]
    return np.asarray(model(args if len(args) > 1 else args[0], training=False))


def tflite_outputs(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=Path(path).read_bytes()).get_signature_runner("serving_default")
    ins, outs = runner.get_input_details(), runner.get_output_details()
    rows = []
    for i in range(len(next(iter(inputs.values())))):
        feed = {}
        for name, x in inputs.items():
            d, v = ins[name], x[i:i + 1]
            if np.issubdtype(d["dtype"], np.integer):
                scale, zero = d["quantization"]
                lim = np.iinfo(d["dtype"])
                v = np.clip(np.round(v / scale + zero), lim.min, lim.max)
            feed[name] = v.astype(d["dtype"])
        result = runner(**feed)
        key = sorted(result)[0]
        y = result[key].astype(np.float32)
        if np.issubdtype(outs[key]["dtype"], np.integer):
            scale, zero = outs[key]["quantization"]
            y = (y - zero) * scale
        rows.append(y)
    return np.concatenate(rows)


def onnx_outputs(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: inputs[i.name] for i in sess.get_inputs()})[0]


def tflite_metadata(path: Path) -> dict:
    """The 'edgeport' metadata entry, read straight from the flatbuffer schema."""
    from tensorflow.lite.python import schema_py_generated as fb

    model = fb.Model.GetRootAsModel(bytearray(Path(path).read_bytes()), 0)
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == b"edgeport":
            return json.loads(bytes(model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy()))
    raise AssertionError(f"{path}: no edgeport metadata entry")


def onnx_metadata(path: Path) -> dict:
    import onnx

    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["edgeport"])


def c_array_bytes(path: Path) -> bytes:
    text = Path(path).read_text()
    body = text[text.index("= {") + 3:text.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", body))


# -- one full export per kind, shared by the tests below ----------------------------------------
@pytest.fixture(scope="module")
def exported(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    cache: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in cache:
            report = export_model(str(tiny_models[kind]), out=out, calibration_samples=SAMPLES)
            cache[kind] = report, out / f"tiny_{kind}"
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_every_format_exports_with_a_true_manifest(exported, kind):
    report, model_dir = exported(kind)
    assert report.ok, report.render()
    assert [r.format for r in report.results] == [f.value for f in DEFAULT]
    manifest = load_manifest(model_dir)
    assert manifest["source"]["sha256"] == sha256_file(model_dir / "model.keras")
    cal = manifest["calibration"]
    assert (cal["samples"], cal["seed"], cal["source"]) == (SAMPLES, 0, "random-uniform") and cal["ranges"]
    for fmt in DEFAULT:
        entry = manifest["artifacts"][fmt.value]
        assert entry["status"] == "ok" and entry["file"] == FILES[fmt.value]
        path = check_integrity(model_dir, entry)  # sha256 matches the file
        assert entry["bytes"] == (path.stat().st_size if path.is_file() else entry["bytes"])
        assert entry["inputs"] and entry["outputs"] and entry["seconds"] >= 0
        assert entry["source_sha256"] == manifest["source"]["sha256"]
        assert entry["versions"]["tensorflow"] and entry["versions"]["onnxruntime"]
    header = model_dir / "model_int8_data.h"
    assert manifest["artifacts"]["c_array"]["files"]["model_int8_data.h"] == sha256_file(header)
    saved_files = manifest["artifacts"]["saved_model"]["files"]
    assert "saved_model/saved_model.pb" in saved_files and len(saved_files) > 2  # every file of the directory
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]  # no temporaries left


@pytest.mark.parametrize("kind", KINDS)
def test_artifacts_agree_with_keras(exported, kind, rng):
    import keras

    _, model_dir = exported(kind)
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    inputs = raw_inputs(model, 4, rng)
    ref = keras_outputs(model, inputs)
    scale = max(1.0, float(np.abs(ref).max()))
    for fmt, tol in TOLERANCE.items():
        path = model_dir / FILES[fmt]
        got = tflite_outputs(path, inputs) if fmt.startswith("tflite") else onnx_outputs(path, inputs)
        assert got.shape == ref.shape, fmt
        err = float(np.abs(got - ref).max()) / scale
        assert err <= tol, f"{kind} {fmt}: max abs diff {err:.3g} > {tol}"


@pytest.mark.parametrize("kind", ["cnn", "two_input"])
def test_labels_and_contract_travel_inside_the_artifacts(exported, kind):
    _, model_dir = exported(kind)
    manifest = load_manifest(model_dir)
    assert (model_dir / "labels.txt").read_text().split("\n")[:-1] == manifest["labels"]
    for fmt in DEFAULT:
        path = model_dir / FILES[fmt.value]
        if path.suffix == ".tflite":
            meta = tflite_metadata(path)
        elif path.suffix == ".onnx":
            meta = onnx_metadata(path)
        else:
            continue
        assert meta["labels"] == manifest["labels"] and meta["model"] == f"tiny_{kind}"
        assert meta["input_contract"] == manifest["input_contract"]
        assert meta["format"] == fmt.value and meta["input_names"] == manifest["input_names"]
    contract = manifest["input_contract"]
    assert contract["kind"] == "image" and contract["layout"] == "NHWC"
    assert contract["pixel_range"] == [0.0, 255.0]
    saved = json.loads((model_dir / "saved_model/assets.extra/edgeport.json").read_text())
    assert saved["labels"] == manifest["labels"]


def test_tflite_buffers_are_16_byte_aligned(exported):
    from edgeport.export.tflite_flatbuffer import buffer_offsets

    _, model_dir = exported("cnn")
    for path in model_dir.glob("*.tflite"):
        assert all(off % 16 == 0 for off in buffer_offsets(path.read_bytes())), path.name


def test_c_array_holds_the_int8_model_and_compiles(exported, tmp_path):
    _, model_dir = exported("cnn")
    tflite = (model_dir / "model_int8.tflite").read_bytes()
    source, header = model_dir / "model_int8_data.c", model_dir / "model_int8_data.h"
    assert c_array_bytes(source) == tflite
    text = header.read_text()
    assert "extern const unsigned char edgeport_model_int8[];" in text
    assert "extern const unsigned int edgeport_model_int8_len;" in text
    entry = load_manifest(model_dir)["artifacts"]["c_array"]
    assert set(entry["files"]) == {"model_int8_data.c", "model_int8_data.h"}
    assert "CONV_2D" in entry["builtin_ops"] and "FULLY_CONNECTED" in entry["builtin_ops"]
    assert all(op in text for op in entry["builtin_ops"])
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    for std in ("c99", "c11"):
        subprocess.run([gcc, "-c", f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", str(source),
                        "-I", str(model_dir), "-o", str(tmp_path / f"model_{std}.o")], check=True)
    # link it and check the array from C: its length, its alignment and its bytes
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include <stdint.h>\n#include "model_int8_data.h"\n'
                    "int main(void) { if ((uintptr_t)edgeport_model_int8 % 16) return 3;\n"
                    "  fwrite(edgeport_model_int8, 1, edgeport_model_int8_len, stdout); return 0; }\n")
    exe = tmp_path / "dump"
    subprocess.run([gcc, "-std=c11", str(main), str(source), "-I", str(model_dir), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == tflite


@pytest.mark.parametrize("name", ["fashion_mlp", "fashion_cnn"])
def test_quantized_sizes_against_float32(name, tmp_path):
    models = pytest.importorskip("edgeport.training.models")
    model = models.get_spec(name).build()
    source = tmp_path / f"{name}_untrained.keras"  # not a course-model name: random calibration
    model.save(source)
    report = export_model(str(source), formats=["tflite_fp32", "tflite_fp16", "tflite_int8"], out=tmp_path,
                          calibration_samples=SAMPLES)
    assert report.ok, report.render()
    sizes = {r.format: r.bytes for r in report.results}
    assert sizes["tflite_int8"] <= 0.30 * sizes["tflite_fp32"], sizes
    assert sizes["tflite_fp16"] <= 0.55 * sizes["tflite_fp32"], sizes


def test_augmentation_layers_are_left_out_of_every_artifact(tmp_path, rng):
    """keras.Model.export traces without training=False: RandomFlip/Rotation/Zoom (the image_cnn
    recipe) would stay in the graph and no converter takes their random ops. Exported in inference
    mode, every format converts and the SavedModel's graph has no random op."""
    import keras
    import tensorflow as tf

    from edgeport.export.saved_model import INFERENCE

    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([keras.Input((16, 16, 3), name="image"), L.RandomFlip("horizontal"),
                              L.RandomRotation(0.1), L.RandomZoom(0.1), L.Rescaling(1 / 255.0),
                              L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(1, activation="sigmoid")])
    model.save(tmp_path / "augmented.keras")
    report = export_model(str(tmp_path / "augmented.keras"), out=tmp_path / "out",
                          formats=["saved_model", "tflite_fp32", "tflite_int8", "onnx"], calibration_samples=8)
    assert report.ok, report.render()
    model_dir = tmp_path / "out" / "augmented"
    assert load_manifest(model_dir)["artifacts"]["saved_model"]["converter"] == INFERENCE
    fn = tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]
    ops = {n.op for f in fn.graph.as_graph_def().library.function for n in f.node_def}
    assert not [op for op in ops if "Random" in op or "ImageProjectiveTransform" in op]
    assert list(fn.structured_input_signature[1]) == ["image"]
    inputs = raw_inputs(model, 4, rng)
    assert np.abs(tflite_outputs(model_dir / "model_fp32.tflite", inputs) - keras_outputs(model, inputs)).max() < 1e-5
