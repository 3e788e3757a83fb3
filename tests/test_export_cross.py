"""`edgeport export FILE.tflite|FILE.onnx` (issue 22, item 4): a bare artifact into the other engine's
format, landed with its manifest entry and proved against the original, on real published models from
the zoo (fetched into the data home when missing); an op a converter cannot take is one line naming it,
and nothing is left half-written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.benchmarks.zoo.fetch import model_path
from edgeport.benchmarks.zoo.recipes import BY_NAME
from edgeport.cli import main
from edgeport.errors import ExportError
from edgeport.export import cross
from edgeport.export.pipeline import export_model
from edgeport.files import sha256_file


def _zoo(name: str):
    try:
        return model_path(BY_NAME[name])
    except Exception as exc:  # noqa: BLE001 - no network and no cached wheel: the zoo is not here
        pytest.skip(f"zoo model {name} not available: {exc}")


@pytest.fixture(scope="module")
def face_tflite(tmp_path_factory):
    """MediaPipe's BlazeFace (fp16 weights, two outputs) converted to ONNX once."""
    src = _zoo("mp_face_detection_short")
    out = tmp_path_factory.mktemp("cross")
    return src, out, export_model(str(src), out=out)


@pytest.fixture(scope="module")
def embedding_onnx(tmp_path_factory):
    """openWakeWord's speech embedding (.onnx, symbolic batch) converted to TFLite once."""
    src = _zoo("oww_embedding")
    out = tmp_path_factory.mktemp("cross")
    return src, out, export_model(str(src), out=out)


def test_a_tflite_becomes_onnx_proved_against_itself(face_tflite):
    src, out, report = face_tflite
    assert report.ok, report.render()
    model_dir = out / src.stem
    manifest = json.loads((model_dir / "manifest.json").read_text())
    entry = manifest["artifacts"]["onnx_from_tflite"]
    assert entry["file"] == "model.onnx" and entry["sha256"] == sha256_file(model_dir / "model.onnx")
    assert entry["source_sha256"] == sha256_file(src) == manifest["source"]["sha256"]
    assert manifest["source"] == {**manifest["source"], "file": "source.tflite", "kind": "tflite",
                                  "reference_runtime": "litert"}
    assert sha256_file(model_dir / "source.tflite") == sha256_file(src)
    assert entry["converter"].startswith("tf2onnx ") and entry["versions"]["tf2onnx"]
    assert [o["name"] for o in entry["outputs"]] == ["regressors", "classificators"]
    assert entry["inputs"][0]["shape"] == [1, 128, 128, 3] and entry["inputs"][0]["dtype"] == "float32"
    assert entry["precision"] == "float32"
    proof = json.loads((model_dir / "model.onnx.verify.json").read_text())
    assert [r["status"] for r in proof["results"]] == ["pass"]
    assert proof["reference"]["runtime"] == "litert"
    text = report.render()
    assert "proof data: no --data-npz: 8 seeded random rows" in text and "proved" in text.splitlines()[-1]
    assert (model_dir / "proof_inputs.npz").is_file()


def test_its_directory_verifies_again_on_the_kept_proof_inputs(face_tflite, tmp_path):
    """`edgeport verify OUT/<stem>` proves the converted entry against the kept original, on the inputs the
    manifest's data_file names, its outputs not read as a classifier's (nothing says they are classes)."""
    from edgeport.benchmarks.verify.command import verify_model

    src, out, _ = face_tflite
    model_dir = out / src.stem
    assert json.loads((model_dir / "manifest.json").read_text())["data_file"] == "proof_inputs.npz"
    report = verify_model(str(model_dir), out=tmp_path)
    assert report.ok, report.render()
    saved = json.loads((model_dir / "verify.json").read_text())
    assert [(r["format"], r["status"]) for r in saved["results"]] == [("onnx_from_tflite", "pass")]
    assert {f["kind"] for r in saved["results"] for f in r["outputs"].values()} == {"values"}


def test_an_onnx_becomes_tflite_proved_against_itself(embedding_onnx):
    src, out, report = embedding_onnx
    assert report.ok, report.render()
    model_dir = out / src.stem
    entry = json.loads((model_dir / "manifest.json").read_text())["artifacts"]["tflite_from_onnx"]
    assert entry["converter"].startswith("onnx2tf ") and entry["source_sha256"] == sha256_file(src)
    assert entry["inputs"][0]["shape"][1:] == [76, 32, 1]  # the ONNX layout and sizes
    proof = json.loads((model_dir / "model.tflite.verify.json").read_text())
    assert [r["status"] for r in proof["results"]] == ["pass"] and proof["reference"]["runtime"] == "onnxruntime"


def test_the_users_data_proves_it_and_is_said(face_tflite, tmp_path):
    """--data-npz instead of random rows; converting again replaces the artifact in the same directory."""
    src, out, _ = face_tflite
    x = np.random.default_rng(1).uniform(-1, 1, (3, 128, 128, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_test=x)
    report = export_model(str(src), out=out, data_npz=str(tmp_path / "d.npz"))
    assert report.ok and f"proof data: {tmp_path / 'd.npz'} (--data-npz)" in report.render()
    proof = json.loads((out / src.stem / "model.onnx.verify.json").read_text())
    assert proof["data"]["n"] == 3


def test_a_custom_op_is_one_line_naming_it(tmp_path, capsys):
    """MediaPipe's selfie segmenter has the custom op Convolution2DTransposeBias: tf2onnx cannot take it."""
    src = _zoo("mp_selfie_segmentation")
    assert main(["export", str(src), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"edgeport: error: {src}: tf2onnx cannot convert op "
                                               "Convolution2DTransposeBias"), err
    assert "converter log:" in err[0]
    model_dir = tmp_path / src.stem
    assert sorted(p.name for p in model_dir.iterdir()) == [".edgeport.lock", "export.log"]


def test_an_op_onnx2tf_lacks_is_one_line_naming_it(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], p=2, name="pool")],
                              "lp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 7, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "lp.onnx")
    assert main(["export", str(tmp_path / "lp.onnx"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnx2tf cannot convert op LpPool (onnx2tf" in err[0], err
    assert not (tmp_path / "out" / "lp" / "model.tflite").exists()
    assert not (tmp_path / "out" / "lp" / "manifest.json").exists()


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    """A converter that dies after writing half its file: no artifact, no entry, no staging folder."""
    from edgeport.export import from_tflite

    def half(job):
        with open(job["dest"], "wb") as fh:
            fh.write(b"\x08\x07half an onnx")
        raise MemoryError("killed mid-write")

    monkeypatch.setattr(from_tflite, "convert_job", half)
    src = _zoo("mp_face_detection_short")
    with pytest.raises(ExportError, match="tf2onnx failed converting it .*killed mid-write"):
        export_model(str(src), out=tmp_path)
    left = sorted(p.name for p in (tmp_path / src.stem).iterdir())
    assert left == [".edgeport.lock"], left


def test_what_does_not_apply_is_refused(tmp_path):
    src = _zoo("mp_face_detection_short")
    with pytest.raises(ExportError, match="--formats, --int8-io: for exporting a model"):
        export_model(str(src), out=tmp_path, formats=["tflite_fp32"], int8_io="int8")
    with pytest.raises(ExportError, match="--data-npz .*: for converting a bare"):
        export_model(str(tmp_path / "m.keras"), out=tmp_path, data_npz="d.npz")


def test_a_symbolic_size_is_asked_for(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "r.onnx")
    with pytest.raises(ExportError, match=r"input x has symbolic dimensions \(\?x3x\?x\?\); give its size with "
                                          r"--input-shape x=1x3xNxN"):
        export_model(str(tmp_path / "r.onnx"), out=tmp_path)


def test_one_row_per_source_kind():
    assert {r.source: r.target for r in cross.ROWS} == {"tflite": "onnx", "onnx": "tflite"}
    assert all(r.source_file == "source." + r.source for r in cross.ROWS)


def test_an_op_without_a_tf2onnx_handler_is_named(tmp_path):
    """MediaPipe's sparse BlazeFace keeps its weights sparse (DENSIFY), which tf2onnx 1.17 has no handler for."""
    src = _zoo("mp_face_detection_full_sparse")
    with pytest.raises(ExportError, match=r"tf2onnx cannot convert op DENSIFY \(tf2onnx [\d.]+ has no handler"):
        export_model(str(src), out=tmp_path)
    assert not (tmp_path / src.stem / "manifest.json").exists()


def test_signature_names_reach_the_onnx_graph_and_its_branches():
    """The ONNX inputs/outputs take the .tflite signature's names, inside an If's branches too."""
    from onnx import TensorProto, helper

    from edgeport.export.from_tflite import rename

    branch = helper.make_graph([helper.make_node("Identity", ["serving_default_x:0"], ["b"])], "then", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.BOOL, [], [True])),
         helper.make_node("If", ["c"], ["StatefulPartitionedCall:0"], then_branch=branch, else_branch=branch)],
        "g", [helper.make_tensor_value_info("serving_default_x:0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("StatefulPartitionedCall:0", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    rename(model, {"serving_default_x:0": "x", "StatefulPartitionedCall:0": "score"})
    assert [i.name for i in model.graph.input] == ["x"] and [o.name for o in model.graph.output] == ["score"]
    assert list(model.graph.node[1].attribute[0].g.node[0].input) == ["x"]
    rename(model, {"score": "c"})  # a name another tensor has already: left as it was
    assert [o.name for o in model.graph.output] == ["score"]


def test_a_layout_the_converter_chose_is_said():
    from edgeport.export.cross_data import layout_notes
    from edgeport.types import TensorSpec

    before = [TensorSpec("map", (None, 1, None, None), "float32"), TensorSpec("score", (None, 4), "float32")]
    after = [{"name": "map", "shape": [1, 320, 320, 1]}, {"name": "score", "shape": [1, 4]}]
    notes = layout_notes(before, after)
    assert len(notes) == 1 and notes[0].startswith("output map: the original declares [None, 1, None, None]")
