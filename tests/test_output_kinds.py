"""Proof for every kind of output: multi-label sigmoid maps, per-position softmax, embeddings, raw
YOLO-style and post-NMS detections. Each model is built here, exported to the float and quantized
formats and verified: its kind is detected and stated, its float32 rows pass, each format gets its
kind's figures, and one weight tensor 1% off fails. ``--output-kind`` overrides a kind and the
manifest keeps it."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeport import cli
from edgeport.benchmarks.verify.command import verify_model
from edgeport.export.pipeline import export_model
from edgeport.manifest import load_manifest

FORMATS = ["saved_model", "tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int16x8", "onnx",
           "onnx_int8"]


def _keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


def sigmoid_maps():
    """An audio-style event model: [B, 64 frames, 16 mel] -> three [B, 64, 8] per-frame sigmoid maps."""
    keras = _keras()
    inp = keras.Input((64, 16), name="mel")
    h = keras.layers.Conv1D(24, 3, padding="same", activation="relu")(inp)
    outs = [keras.layers.Dense(8, activation="sigmoid", name=n, kernel_initializer=keras.initializers.RandomNormal(
        stddev=1.0))(h) for n in ("onsets", "frames", "offsets")]
    return keras.Model(inp, outs), ["multilabel"] * 3


def tagger():
    """A sequence tagger: [B, 12 tokens, 10 features] -> a softmax over 5 tags at every token."""
    keras = _keras()
    inp = keras.Input((12, 10), name="tokens")
    h = keras.layers.Dense(24, activation="relu")(inp)
    out = keras.layers.Dense(5, activation="softmax", name="tags",
                             kernel_initializer=keras.initializers.RandomNormal(stddev=0.8))(h)
    return keras.Model(inp, out), ["per_position"]


def embedder():
    """A face-embedding-style model: 32 features -> a unit-length 16-d embedding."""
    keras = _keras()
    inp = keras.Input((32,), name="features")
    bias = keras.initializers.RandomNormal(stddev=0.5)  # with zero biases a kernel's scale would cancel out
    h = keras.layers.Dense(48, activation="relu", bias_initializer=bias)(inp)
    out = keras.layers.UnitNormalization(name="embedding")(keras.layers.Dense(16, bias_initializer=bias)(h))
    return keras.Model(inp, out), ["embedding"]


def yolo_raw():
    """A tiny YOLO-style head on 16x16 RGB pixels: [B, 4+3, 256]: cx, cy (pixels), w, h, 3 class scores."""
    keras = _keras()
    inp = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255.0)(inp))
    xy = keras.layers.Rescaling(16.0)(keras.layers.Conv2D(2, 1, activation="sigmoid")(h))
    wh = keras.layers.Rescaling(3.0, offset=1.0)(keras.layers.Conv2D(2, 1, activation="relu")(h))
    cls = keras.layers.Conv2D(3, 1, activation="sigmoid", kernel_initializer=keras.initializers.RandomNormal(
        stddev=2.0))(h)
    grid = keras.layers.Reshape((256, 7))(keras.layers.Concatenate()([xy, wh, cls]))
    return keras.Model(inp, keras.layers.Permute((2, 1), name="head")(grid)), ["detections"]


def post_nms():
    """A detector's post-NMS output [B, 10, 6]: x1, y1, x2, y2 (pixels), score, class (per slot)."""
    keras = _keras()
    inp = keras.Input((16, 16, 3), name="image")
    f = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inp)))
    tl = keras.layers.Reshape((10, 2))(keras.layers.Dense(20, activation="sigmoid")(f))
    tl = keras.layers.Rescaling(64.0)(tl)
    wh = keras.layers.Rescaling(12.0, offset=8.0)(keras.layers.Reshape((10, 2))(
        keras.layers.Dense(20, activation="sigmoid")(f)))
    br = keras.layers.Add()([tl, wh])
    score = keras.layers.Reshape((10, 1))(keras.layers.Dense(10, activation="sigmoid",
                                                             kernel_initializer=keras.initializers.RandomNormal(
                                                                 stddev=0.5))(f))
    ids = keras.initializers.Constant(np.arange(10) % 3)
    cls = keras.layers.Reshape((10, 1))(keras.layers.Dense(10, kernel_initializer="zeros", bias_initializer=ids)(f))
    out = keras.layers.Concatenate(name="detections")([tl, br, score, cls])
    return keras.Model(inp, out), ["detections"]


MODELS = {"sigmoid_maps": sigmoid_maps, "tagger": tagger, "embedder": embedder, "yolo_raw": yolo_raw,
          "post_nms": post_nms}


def _inputs(model, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) == 3:
        return rng.integers(0, 256, (n, *shape)).astype(np.uint8)
    return rng.normal(size=(n, *shape)).astype(np.float32)


def _build(name: str, root: Path, formats: list[str] = FORMATS) -> dict:
    model, kinds = MODELS[name]()
    src = root / "src" / f"{name}.keras"
    src.parent.mkdir(parents=True, exist_ok=True)
    model.save(src)
    np.save(root / "cal.npy", _inputs(model, 100, 0).astype(np.float32))
    np.savez(root / "test.npz", x_test=_inputs(model, 200, 1))
    report = export_model(str(src), formats=formats, out=root / "out", calibration_data=str(root / "cal.npy"))
    assert report.ok, report.render()
    verified = verify_model(name, out=root / "out", data_npz=str(root / "test.npz"), debug_int8=False)
    print(verified.render())
    return {"dir": root / "out" / name, "npz": root / "test.npz", "kinds": kinds, "report": verified}


@pytest.fixture(scope="module", params=list(MODELS))
def kind_model(request, tmp_path_factory) -> dict:
    return _build(request.param, tmp_path_factory.mktemp(request.param))


def test_each_kind_is_detected_stated_and_its_float32_rows_pass(kind_model):
    report = kind_model["report"]
    outputs = report.reference["figures"]["outputs"]  # named as the SavedModel signature names them
    assert [o["kind"] for o in outputs.values()] == kind_model["kinds"]
    text = report.render()
    for name, o in outputs.items():  # the table names each output and its kind (the kind alone: one output)
        assert (f"{name}: {o['kind']}" if len(outputs) > 1 else f" {o['kind']} ") in text, text
    for r in report.results:
        assert set(r.outputs) == set(outputs)
        if r.precision == "float32":
            assert r.status == "pass", text
        for f in r.outputs.values():  # the kind's own figures were measured for every format
            kind = f["kind"]
            need = {"multilabel": ("flip_rate", "f1"), "per_position": ("agreement", "kl_divergence"),
                    "embedding": ("cosine_min", "neighbour_agreement"),
                    "detections": ("detection_recall", "detection_precision", "mean_iou")}[kind]
            assert all(f.get(k) is not None for k in need), (r.format, kind, f)
    saved = load_manifest(kind_model["dir"])
    assert "output_kinds" not in saved  # detected kinds are not written; given ones are


def test_one_weight_tensor_one_percent_off_fails(kind_model, tmp_path, edits):
    dest = tmp_path / "out" / kind_model["dir"].name
    shutil.copytree(kind_model["dir"], dest)
    edits.scale_weights(dest / "model_fp32.tflite", 1.01)
    edits.rehash(dest, "tflite_fp32")
    report = verify_model(dest.name, out=dest.parent, data_npz=str(kind_model["npz"]), formats=["tflite_fp32"])
    assert report.results[0].status == "fail", report.render()


def test_a_given_kind_wins_and_the_manifest_keeps_it(tmp_path, capsys):
    built = _build("tagger", tmp_path, ["saved_model", "tflite_fp32", "tflite_int8"])
    out = built["dir"].parent
    report = verify_model("tagger", out=out, data_npz=str(built["npz"]), formats=["tflite_fp32", "tflite_int8"],
                          output_kind=["output_0=values"], debug_int8=False)
    assert {r.outputs["output_0"]["kind"] for r in report.results} == {"values"}
    assert load_manifest(built["dir"])["output_kinds"] == {"output_0": "values"}
    again = verify_model("tagger", out=out, data_npz=str(built["npz"]), formats=["tflite_int8"], debug_int8=False)
    assert again.results[0].outputs["output_0"]["kind"] == "values"
    assert any("output kinds from the manifest: output_0=values" in n for n in again.notes)
    capsys.readouterr()
    assert cli.main(["verify", "tagger", "--out", str(out), "--data-npz", str(built["npz"]),
                     "--output-kind", "nosuch=values"]) == 2
    err = capsys.readouterr().err
    assert "--output-kind nosuch: no such output; outputs: output_0" in err and "Traceback" not in err
    assert cli.main(["verify", "tagger", "--out", str(out), "--output-kind", "output_0=boxes"]) == 2
    assert "unknown kind 'boxes'" in capsys.readouterr().err


# -- each kind's gate can fail on its own task figures (numpy only) ---------------------------------
def _quantized_failures(ref: np.ndarray, out: np.ndarray, kind: str) -> list[str]:
    from edgeport.benchmarks.verify.figures import compare
    from edgeport.benchmarks.verify.gates import DEFAULT_GATES
    from edgeport.export.registry import Precision

    gate = DEFAULT_GATES[Precision.QUANTIZED]
    f = compare(ref, out, kind=kind, settings=gate.settings())
    return [e.figure for e in gate.failures(f, artifact="a", runtime="r", labelled=False)]


def test_a_rank_2_float_output_is_a_classifiers_scores_only_when_tied_to_classes(tmp_path):
    """mp_hand_landmark_lite: 63 landmark values beside a Left/Right head are values, not logits; a bare
    .npz without labels or class names says no task, and its rank-2 outputs are values too."""
    from edgeport.benchmarks.verify import kinds
    from edgeport.benchmarks.verify.plan import bare

    rng = np.random.default_rng(0)
    landmarks, logits, hand = rng.normal(size=(4, 63)), rng.normal(size=(4, 2)), rng.uniform(size=(4, 1))
    found = kinds.resolve({"lm": landmarks, "logits": logits, "hand": hand}, "classification",
                          labels=("Left", "Right"))
    assert found == {"lm": "values", "logits": "scores", "hand": "binary"}
    assert kinds.resolve({"lm": landmarks}, "classification") == {"lm": "scores"}  # no class names: the task's
    assert kinds.resolve({"lm": landmarks}, "unknown") == {"lm": "values"}
    np.savez(tmp_path / "x.npz", x_test=np.zeros((2, 3), np.float32))
    (tmp_path / "m.onnx").write_bytes(b"")
    plan = bare(tmp_path / "m.onnx", reference=str(tmp_path / "m.onnx"), data_npz=str(tmp_path / "x.npz"),
                limit=None)
    assert plan.test.task == "unknown" and any(n.startswith("task unknown") for n in plan.notes)
    np.savez(tmp_path / "y.npz", x_test=np.zeros((2, 3), np.float32), y_test=np.array([0, 1]))
    plan = bare(tmp_path / "m.onnx", reference=str(tmp_path / "m.onnx"), data_npz=str(tmp_path / "y.npz"),
                limit=None)
    assert plan.test.task == "classification"


def test_multilabel_gate_counts_flipped_decisions():
    rng = np.random.default_rng(0)
    ref = rng.uniform(size=(20, 64, 8)).astype(np.float32)
    assert _quantized_failures(ref, ref + 0.001, "multilabel") == []
    flipped = ref.copy()
    near = np.abs(ref - 0.5) < 0.05  # about 10% of the elements cross the threshold
    flipped[near] = 1 - flipped[near]
    assert "flip_rate" in _quantized_failures(ref, flipped, "multilabel")


def test_per_position_gate_agrees_per_position():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(30, 12, 5)) * 3
    ref = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32)
    assert _quantized_failures(ref, ref, "per_position") == []
    worse = ref[:, :, ::-1].copy()  # every position's ranking reversed
    assert {"agreement", "kl_divergence"} <= set(_quantized_failures(ref, worse, "per_position"))


def test_embedding_gate_reads_direction_and_neighbours():
    rng = np.random.default_rng(2)
    e = rng.normal(size=(50, 16))
    ref = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
    assert _quantized_failures(ref, ref * 1.0001, "embedding") == []
    noisy = ref + rng.normal(scale=0.4, size=ref.shape).astype(np.float32)
    assert "cosine_min" in _quantized_failures(ref, noisy, "embedding")


@pytest.mark.parametrize("layout", ["raw", "post_nms"])
def test_detection_gate_matches_boxes_by_class_and_iou(layout):
    from edgeport.benchmarks.verify.kinds.detections import figures

    rng = np.random.default_rng(3)
    if layout == "raw":  # [B, 4+C, N]: cx, cy, w, h in pixels and class scores
        ref = np.zeros((4, 7, 40), np.float32)
        ref[:, 0:2] = rng.uniform(10, 100, (4, 2, 40))
        ref[:, 2:4] = rng.uniform(4, 8, (4, 2, 40))
        ref[:, 4:] = rng.uniform(0, 0.2, (4, 3, 40))
        ref[:, 4, :5] = 0.9  # five confident boxes per image
        moved = ref.copy()
        moved[:, 0, :5] += 20  # the confident boxes moved far: no match
    else:  # [B, N, 6]: x1, y1, x2, y2, score, class
        ref = np.zeros((4, 10, 6), np.float32)
        ref[..., :2] = rng.uniform(0, 50, (4, 10, 2))
        ref[..., 2:4] = ref[..., :2] + 10
        ref[..., 4] = 0.9
        ref[..., 5] = np.arange(10) % 3
        moved = ref.copy()
        moved[..., 5] = (moved[..., 5] + 1) % 3  # every class wrong
    same = figures(ref, ref)
    assert same["detection_recall"] == 1.0 and same["detection_precision"] == 1.0 and same["mean_iou"] == 1.0
    assert same["detection_layout"] == layout
    assert {"detection_recall", "detection_precision"} <= set(_quantized_failures(ref, moved, "detections"))
    assert _quantized_failures(ref, ref + 0.01, "detections") == []


def test_fix_scores_candidates_on_the_output_kind_gate(tmp_path):
    """The audio-style sigmoid maps: int8 flips ~1% of the decisions (quantized gate: 0.5%); fix scores
    every candidate on flips and F1, not on argmax agreement, and its table shows them."""
    from edgeport.benchmarks.verify.fix import fix_model

    model, _ = sigmoid_maps()
    model.save(tmp_path / "maps.keras")
    np.save(tmp_path / "cal.npy", _inputs(model, 100, 0))
    np.savez(tmp_path / "test.npz", x_test=_inputs(model, 200, 1))
    assert export_model(str(tmp_path / "maps.keras"), formats=["saved_model", "tflite_int8"], out=tmp_path / "out",
                        calibration_data=str(tmp_path / "cal.npy")).ok
    report = fix_model("maps", out=tmp_path / "out", data_npz=str(tmp_path / "test.npz"), formats=["tflite_int8"])
    text = report.render()
    print(text)
    cands = report.tables["tflite_int8"]["candidates"]
    assert cands[0]["figures"]["kind"] == "multilabel" and cands[0]["figures"]["flip_rate"] > 0.005, text
    assert any("flip_rate" in f for f in cands[0]["failures"]) and "flips " in text, text
    assert all("agreement" not in c["figures"] for c in cands)  # no argmax over a sigmoid map
    chosen = report.tables["tflite_int8"].get("chosen")
    assert report.ok == (chosen is not None and chosen["figures"]["flip_rate"] <= 0.005), text
