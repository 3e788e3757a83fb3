"""Android and iOS bundles: mobile variants (uint8 RGB in, probabilities out) with standard TFLite
Metadata, proved against Keras and the verified artifacts; non-image models refused; and, when
``.venv-mediapipe`` exists, the same files proved inside MediaPipe Tasks."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks.verify.command import verify_model
from edgeport.benchmarks.verify.gates import load_gates
from edgeport.bundle import open_bundle
from edgeport.cli import main
from edgeport.errors import DataError, EdgeportError
from edgeport.export.pipeline import export_model
from edgeport.export.targets import bundle_model
from edgeport.runtimes import load, metadata_reader as tflite_metadata
from edgeport.runtimes.cli import load_image
from edgeport.types import InputContract

ROOT = Path(__file__).resolve().parents[1]
MEDIAPIPE_VENV = ROOT / ".venv-mediapipe"
FORMATS = ["tflite_fp32", "tflite_int8"]
SAMPLES = 200


def _io(path: Path) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return interp.get_input_details()[0], interp.get_output_details()[0]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """A Fashion-MNIST MLP trained for seconds on real data, exported and verified (name fashion_mlp:
    the course spec gives it its dataset, labels and calibration)."""
    import keras

    from edgeport.training.data import load_dataset

    try:
        ds = load_dataset("fashion_mnist")
    except DataError as exc:
        pytest.skip(f"Fashion-MNIST is not installed here ({exc}); run `make data`")
    tmp = tmp_path_factory.mktemp("mobile")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds.x_train[:4000], ds.y_train[:4000], epochs=2, batch_size=64, verbose=0)
    model.save(tmp / "fashion_mlp.keras")
    out, dist = tmp / "out", tmp / "dist"
    assert export_model(str(tmp / "fashion_mlp.keras"), formats=FORMATS, out=out).ok
    with pytest.raises(EdgeportError, match="not verified"):
        bundle_model("fashion_mlp", target="android", out=out, dist=dist, samples=SAMPLES)
    assert verify_model("fashion_mlp", out=out, limit=1000).ok
    android = bundle_model("fashion_mlp", target="android", out=out, dist=dist, samples=SAMPLES)
    return {"tmp": tmp, "out": out, "dist": dist, "android": android, "labels": list(ds.labels)}


def test_android_bundle_layout_contract_and_metadata(fashion):
    result = fashion["android"]
    assert set(result.files) == {"assets/model.tflite", "assets/model_int8.tflite", "assets/labels.txt", "USAGE.md"}
    assert (result.folder / "assets/labels.txt").read_text().splitlines() == fashion["labels"]
    usage = (result.folder / "USAGE.md").read_text()
    assert "```kotlin" in usage and "ImageClassifier" in usage and "setModelAssetPath" in usage
    for name in ("model.tflite", "model_int8.tflite"):
        path = result.folder / "assets" / name
        inp, out = _io(path)
        assert list(inp["shape"]) == [1, 28, 28, 3] and inp["dtype"] == np.uint8 and not inp["quantization"][0]
        assert list(out["shape"]) == [1, 10] and out["dtype"] == np.float32
        meta = tflite_metadata.read(path.read_bytes())
        assert meta is not None and meta.labels == fashion["labels"] and meta.packed_files == ["labels.txt"]
        assert meta.inputs[0].color_space == "RGB" and meta.inputs[0].mean is None  # uint8: no normalization
        assert meta.name.startswith("fashion_mlp") and meta.version and meta.min_parser_version == "1.0.0"
        probs = load(path).predict(np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3)).astype(np.float32))
        assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=0.02)


def test_the_proof_is_in_bundle_json(fashion):
    with open_bundle(fashion["android"].archive) as bundle:
        meta = bundle.meta
    assert meta["target"] == "android" and meta["mobile"]["input"]["dtype"] == "uint8"
    assert meta["mobile"]["output"] == {"shape": [1, 10], "dtype": "float32", "kind": "probabilities",
                                        "head": "softmax", "how": "the model's softmax"}
    proof = meta["proof"]
    assert proof["ok"] and proof["data"]["n"] == SAMPLES and proof["data"]["dataset"] == "fashion_mnist"
    rows = {(r["file"], r["notes"][0]): r for r in proof["results"]}  # verify rows, "against ..." first
    for file, fmt, artifact in (("model.tflite", "tflite_fp32", "model_fp32.tflite"),
                                ("model_int8.tflite", "tflite_int8", "model_int8.tflite")):
        keras_row, same = rows[(file, "against Keras")], rows[(file, f"against {artifact}")]
        for row in (keras_row, same):
            assert row["status"] == "pass" and row["format"] == fmt and row["figures"]["n"] == SAMPLES
        assert keras_row["gate"] == load_gates().for_format(fmt).to_dict()  # the gate verify holds fmt to
        assert same["figures"]["agreement"] == 1.0 and same["figures"]["max_abs_diff"] == 0.0  # same network
    float_row = rows[("model.tflite", "against Keras")]["figures"]
    assert float_row["agreement"] == 1.0 and float_row["tolerance_diff"] <= float_row["tolerance"] < 1e-4
    assert meta["mobile"]["variants"]["int8"]["float_ops"] == ["CAST", "MUL", "SUM", "ADD", "MUL", "FLOOR"]
    assert any("verify's gates" in t for t in fashion["android"].tables)


def test_a_perturbed_variant_fails_the_gate_verify_uses(fashion, tmp_path):
    """The proof is verify's: model.tflite with its weights moved by 1% still picks the same top-1, yet
    fails the float32 tolerance verify holds tflite_fp32 to against Keras, as a verify row."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgeport.export.targets.bundle import require_verified
    from edgeport.export.targets.mobile import _source_model
    from edgeport.export.targets.mobile_proof import proof_images, prove
    from edgeport.manifest import effective_entries, load_manifest

    model_dir, assets = fashion["out"] / "fashion_mlp", fashion["android"].folder / "assets"
    manifest = load_manifest(model_dir)
    model = fu.read_model(str(assets / "model.tflite"))
    weights = max(model.buffers, key=lambda b: 0 if b.data is None else len(b.data))
    weights.data = np.frombuffer((np.frombuffer(bytes(weights.data), np.float32) * 1.01).tobytes(), np.uint8)
    fu.write_model(model, str(tmp_path / "model.tflite"))
    x, y, _ = proof_images(model_dir, manifest, require_verified(model_dir, []), SAMPLES, 0, None)
    rows = prove({"float32": tmp_path / "model.tflite", "int8": assets / "model_int8.tflite"},
                 _source_model(model_dir, manifest), model_dir, effective_entries(model_dir, manifest), "softmax",
                 x, y, load_gates())
    verdicts = {(r.file, r.notes[0], r.precision): r.status for r in rows}
    assert verdicts[("model.tflite", "against Keras", "float32")] == "fail"
    assert verdicts[("model_int8.tflite", "against Keras", "quantized")] == "pass"
    failed = next(r for r in rows if r.status == "fail")
    assert failed.gate == load_gates().for_format("tflite_fp32").to_dict()
    assert "tolerance_diff" in [e.figure for e in failed.failures] and failed.to_dict()["status"] == "fail"


def test_gray_inside_equals_pillow_l(fashion, tmp_path):
    """Colour pictures (not gray ones): the mobile model's luma is Pillow's "L", so it answers exactly
    what the verified artifact answers on the same file read by `edgeport run`."""
    from PIL import Image

    rng = np.random.default_rng(1)
    model_dir = fashion["out"] / "fashion_mlp"
    mobile = load(fashion["android"].folder / "assets/model.tflite")
    original = load(model_dir / "model_fp32.tflite")
    for i in range(8):
        path = tmp_path / f"colour{i}.png"
        Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8), "RGB").save(path)
        rgb = load_image(path, InputContract("image", height=28, width=28, channels=3))
        gray = load_image(path, InputContract("image", height=28, width=28, channels=1))
        np.testing.assert_array_equal(mobile.predict(rgb), original.predict(gray))


def test_ios_bundle_through_the_cli(fashion, capsys):
    assert main(["bundle", "fashion_mlp", "--target", "ios", "--out", str(fashion["out"]),
                 "--dist", str(fashion["dist"]), "--samples", str(SAMPLES)]) == 0
    assert "verify's gates" in capsys.readouterr().out
    with open_bundle(fashion["dist"] / "fashion_mlp-ios.tar.gz") as bundle:
        assert set(bundle.meta["files"]) == {"model.tflite", "model_int8.tflite", "labels.txt", "USAGE.md"}
        assert "MediaPipeTasksVision" in bundle.path("USAGE.md").read_text()
        assert tflite_metadata.read(bundle.path("model_int8.tflite").read_bytes()).labels == fashion["labels"]
        assert bundle.meta["proof"]["ok"]


def test_too_few_proof_images_are_refused(fashion):
    with pytest.raises(EdgeportError, match="at least 200"):
        bundle_model("fashion_mlp", target="android", out=fashion["out"], dist=fashion["dist"], samples=50)


def _shapes(n: int, seed: int):
    """16x16 RGB: class 1 has a bright square in the red channel."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, 16, 16, 3))
    for i in np.flatnonzero(y):
        r = rng.integers(0, 8)
        x[i, r:r + 8, r:r + 8, 0] += 190
    return x.astype(np.uint8), y


def test_rgb_sigmoid_model_presents_two_classes(tmp_path):
    """The wrapper on an RGB model with one sigmoid output: [1 - p, p] in float32, so both labels apply."""
    import keras

    from edgeport.export.targets.mobile_model import TWO_CLASSES, camera_form, convert, describe, output_head, wrap

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalMaxPooling2D(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    x, y = _shapes(600, 0)
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    p = model.predict(x[:200].astype(np.float32), verbose=0)
    head = output_head(p, ["plain", "square"], "squares")
    assert head == "sigmoid"
    contract = InputContract("image", height=16, width=16, channels=3)
    fp32, int8, kept = convert(wrap(model, contract, head), contract, camera_form(x[:100]), tmp_path)
    assert any(f"/{TWO_CLASSES}" in name for name in kept)  # the [1 - p, p] step stays float
    assert describe(int8)["float_ops"] == ["CAST", "SUB", "CONCATENATION"]
    want = np.concatenate([1 - p, p], axis=1)
    for raw in (fp32, int8):
        desc = describe(raw)
        assert desc["input"] == {"shape": [1, 16, 16, 3], "dtype": "uint8"}
        assert desc["output"] == {"shape": [1, 2], "dtype": "float32"}
        path = tmp_path / f"m{len(raw)}.tflite"
        path.write_bytes(raw)
        probs = load(path).predict(x[:200].astype(np.float32))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
        assert (probs.argmax(1) == want.argmax(1)).mean() >= (1.0 if raw is fp32 else 0.95)
    np.testing.assert_allclose(load(tmp_path / f"m{len(fp32)}.tflite").predict(x[:50].astype(np.float32)),
                               want[:50], atol=1e-5)


def test_output_heads():
    from edgeport.export.targets.mobile_model import output_head, probabilities

    labels = ["a", "b", "c"]
    soft = np.array([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]], np.float32)
    assert output_head(soft, labels, "m") == "softmax"
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]], np.float32)
    assert output_head(logits, labels, "m") == "logits"
    np.testing.assert_allclose(probabilities(logits, "logits").sum(axis=1), 1.0)
    with pytest.raises(EdgeportError, match="3 output classes but 2 labels"):
        output_head(soft, ["a", "b"], "m")
    with pytest.raises(EdgeportError, match="one output value and 3 labels"):
        output_head(np.array([[0.4]]), labels, "m")


def test_a_model_that_takes_values_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.save(tmp_path / "celsius.keras")
    assert export_model(str(tmp_path / "celsius.keras"), formats=["tflite_fp32"], out=tmp_path / "out").ok
    for target in ("android", "ios", "web"):  # the message names the target asked for
        with pytest.raises(EdgeportError, match=rf"the {target} target is for image classifiers .* takes values of "
                                                r"shape \[1\] \(celsius\)"):
            bundle_model("celsius", target=target, out=tmp_path / "out", dist=tmp_path / "dist")
    assert not list((tmp_path / "dist").glob("celsius-*"))


@pytest.mark.skipif(not (MEDIAPIPE_VENV / "bin" / "python").is_file(),
                    reason=f"{MEDIAPIPE_VENV} does not exist: `make mobile-check` creates it "
                           "(pip install mediapipe==1.2.2 into its own virtualenv)")
def test_mediapipe_runs_the_android_bundle_as_edgeport_does(fashion):
    from edgeport.benchmarks.devices.mediapipe_check import run_mediapipe_check

    report = run_mediapipe_check(["fashion_mlp"], out=fashion["out"], dist=fashion["dist"], samples=SAMPLES,
                                 venv=MEDIAPIPE_VENV, timeout=300)
    assert report.ok, report.render()
    section = report.models["fashion_mlp"]
    assert not section["bundle_built"] and section["images"]["n"] == SAMPLES  # the bundle above, reused
    for row in section["results"]:
        assert row["agreement_bundle"] == row["agreement_original"] == 1.0 and row["labels_equal"]
        assert row["max_abs_score_diff"] < 1e-6
    assert json.loads((fashion["out"] / "fashion_mlp" / "mediapipe_check.json").read_text())["ok"]


def test_one_different_answer_fails_the_mediapipe_check():
    from edgeport.benchmarks.devices.mediapipe_check import compare

    labels = ["a", "b"]
    mp_out = {"rows": [{"index": 0, "name": "a", "categories": 2, "scores": [0.9, 0.1]},
                       {"index": 1, "name": "b", "categories": 2, "scores": [0.4, 0.6]}],
              "classify_s": [0.001, 0.001], "create_s": 0.1, "process_s": 1.0, "mediapipe": "1.2.2"}

    def doc(tops):
        return {"seconds": 0.5, "engine": "litert", "results": [
            {"top_k": [{"index": t, "label": labels[t], "probability": 0.9},
                       {"index": 1 - t, "label": labels[1 - t], "probability": 0.1}]} for t in tops]}

    names = {"fmt": "tflite_fp32", "file": "model.tflite", "original": "model_fp32.tflite"}
    same = compare(mp_out, doc([0, 1]), doc([0, 1]), labels, np.array([0, 1]), **names)
    assert same["status"] == "pass" and same["agreement_bundle"] == 1.0 and same["labels_equal"]
    assert [r["status"] for r in same["results"]] == ["pass", "pass"]  # verify rows
    differ = compare(mp_out, doc([0, 1]), doc([0, 0]), labels, None, **names)
    assert differ["status"] == "fail" and differ["agreement_original"] == 0.5 and differ["disagreements_original"] == 1
    failure = differ["results"][1]["failures"][0]
    assert failure["type"] == "GateFailure" and failure["figure"] == "agreement"  # verify's gate says so
