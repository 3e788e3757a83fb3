"""Raspberry Pi bundles: built from a verified model only, proved again by `verify --bundle` and
measured by `bench --bundle` without TensorFlow, and refused when tampered with or unsafe."""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgeport.benchmarks.bench.command import bench_model
from edgeport.benchmarks.verify.command import verify_model
from edgeport.bundle import BundleError, open_bundle
from edgeport.cli import main
from edgeport.errors import EdgeportError
from edgeport.export.pipeline import export_model
from edgeport.export.targets import bundle_model

NAME = "pi_mlp"
FORMATS = ["tflite_fp32", "tflite_int8", "onnx", "onnx_int8"]


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 50, (n, 12, 12, 1))
    for i, k in enumerate(y):
        x[i, 3 * k:3 * k + 3] += 180
    return x.astype(np.uint8), y


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import keras

    tmp = tmp_path_factory.mktemp("bundle")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(800, 0)
    model.fit(x, y, epochs=4, verbose=0)
    model.save(tmp / f"{NAME}.keras")
    np.save(tmp / "cal.npy", x[:100].astype(np.float32))
    xt, yt = _data(300, 1)
    np.savez(tmp / "test.npz", x_test=xt, y_test=yt)
    assert export_model(str(tmp / f"{NAME}.keras"), formats=FORMATS, out=tmp / "out",
                        calibration_data=str(tmp / "cal.npy")).ok
    with pytest.raises(EdgeportError, match="not verified"):
        bundle_model(NAME, target="rpi", out=tmp / "out", dist=tmp / "dist")
    assert verify_model(NAME, out=tmp / "out", data_npz=str(tmp / "test.npz")).ok
    result = bundle_model(NAME, target="rpi", out=tmp / "out", dist=tmp / "dist", samples=120)
    return {"tmp": tmp, "archive": result.archive, "folder": result.folder, "result": result}


def test_the_bundle_holds_what_the_pi_needs(built):
    names = set(built["result"].files)
    assert {"model_fp32.tflite", "model_int8.tflite", "model.onnx", "model_int8.onnx", "labels.txt",
            "manifest.json", "reference.npz", "README.md"} <= names
    with open_bundle(built["archive"]) as bundle:
        assert bundle.model == NAME and bundle.target == "rpi"
        ref = np.load(bundle.path("reference.npz"))
        assert ref["x"].shape == (120, 12, 12, 1) and ref["x"].dtype == np.uint8 and len(ref["y"]) == 120
    again = bundle_model(NAME, target="rpi", out=built["tmp"] / "out", dist=built["tmp"] / "dist2", samples=120)
    assert again.archive.read_bytes() != b"" and again.files == built["result"].files  # reproducible contents


def test_verify_and_bench_on_the_bundle(built, capsys):
    report = verify_model(bundle=str(built["archive"]))
    assert report.ok, report.render()
    assert {r.format for r in report.results} == set(FORMATS) and report.data["n"] == 120
    assert (built["archive"].parent / f"{NAME}-rpi.verify.json").is_file()
    bench = bench_model(bundle=str(built["folder"]), seconds=0.2, threads=[1])
    assert bench.ok and {r["format"] for r in bench.rows} == set(FORMATS)
    merged = json.loads((built["folder"].parent / f"{NAME}-rpi.bench.json").read_text())
    assert merged["models"][NAME]["rows"] and merged["device_name"]
    assert main(["report", "merge", str(built["folder"].parent / f"{NAME}-rpi.bench.json"),
                 "--out", str(built["tmp"] / "merged")]) == 0


def test_what_cannot_apply_to_a_bundle_is_refused_not_dropped(built, capsys):
    """A bundle is proved on the reference set it carries: --limit / --normalize / --data-npz are one line."""
    for flag in (["--limit", "5"], ["--normalize", "1,0,1"], ["--data-npz", "x.npz"]):
        assert main(["verify", "--bundle", str(built["archive"]), *flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and flag[0] in err[0] and "cannot apply to --bundle" in err[0], err


def test_the_bundle_manifest_keeps_the_output_kinds(built, tmp_path):
    """verify --output-kind NAME=KIND recorded in the model's manifest travels in the rpi bundle's, so a
    Pi reads each output as the workstation did."""
    model_dir = built["tmp"] / "out" / NAME
    text = (model_dir / "manifest.json").read_text()
    manifest = json.loads(text)
    out_name = manifest["output_names"][0]
    manifest["output_kinds"] = {out_name: "scores"}
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    try:
        made = bundle_model(NAME, target="rpi", out=built["tmp"] / "out", dist=tmp_path, samples=120)
        with open_bundle(made.archive) as bundle:
            assert json.loads(bundle.path("manifest.json").read_text())["output_kinds"] == {out_name: "scores"}
    finally:
        (model_dir / "manifest.json").write_text(text)


def _rewrite(archive: Path, dest: Path, edit) -> Path:
    """Copy a bundle archive member by member through ``edit(info, data) -> [(info, data)]``."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w:gz") as out:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            for info, payload in edit(m, data):
                out.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return dest


def test_a_tampered_bundle_is_refused(built, tmp_path, capsys):
    def flip(info, data):
        if info.name.endswith("model_int8.tflite"):
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        return [(info, data)]

    bad = _rewrite(built["archive"], tmp_path / "tampered.tar.gz", flip)
    with pytest.raises(BundleError, match=r"model_int8\.tflite sha256 .* changed after it was made"):
        open_bundle(bad)
    assert main(["verify", "--bundle", str(bad)]) == 2
    assert "refused" in capsys.readouterr().err


@pytest.mark.parametrize("evil", ["../escape.txt", "/etc/evil", "pi_mlp-rpi/../../x"])
def test_a_path_traversing_bundle_is_refused(built, tmp_path, evil, capsys):
    def add(info, data):
        extra = tarfile.TarInfo(evil)
        extra.size = 4
        return [(info, data)] + ([(extra, b"evil")] if info.name.endswith("README.md") else [])

    bad = _rewrite(built["archive"], tmp_path / "traversal.tar.gz", add)
    with pytest.raises(BundleError, match="unsafe path"):
        open_bundle(bad)
    assert not (tmp_path.parent / "escape.txt").exists()
    assert main(["verify", "--bundle", str(bad)]) == 2
    assert "unsafe path" in capsys.readouterr().err


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_links_and_device_files_are_refused(built, tmp_path, kind):
    def add(info, data):
        if not info.name.endswith("README.md"):
            return [(info, data)]
        extra = tarfile.TarInfo(f"{NAME}-rpi/odd")
        extra.type, extra.linkname = kind, "/etc/passwd"
        return [(info, data), (extra, None)]

    bad = _rewrite(built["archive"], tmp_path / "odd.tar.gz", add)
    with pytest.raises(BundleError, match="link|device"):
        open_bundle(bad)


def test_an_unlisted_or_missing_file_is_refused(built, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(built["folder"], folder)
    (folder / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="not listed"):
        open_bundle(folder)
    (folder / "extra.bin").unlink()
    (folder / "labels.txt").unlink() if (folder / "labels.txt").exists() else (folder / "README.md").unlink()
    with pytest.raises(BundleError, match="missing"):
        open_bundle(folder)
    os.symlink("/etc/passwd", folder / "link")
    with pytest.raises(BundleError, match="link"):
        open_bundle(folder)


def test_a_failing_format_is_left_out_when_asked_and_the_bundle_says_so(built, tmp_path):
    """One failing int8 no longer blocks the Pi bundle for good: --skip-failing or --formats ship the
    formats that passed, and README.md and bundle.json say what was left out and why."""
    out = tmp_path / "out"
    shutil.copytree(built["tmp"] / "out", out)
    path = out / NAME / "verify.json"
    verify = json.loads(path.read_text())
    for row in verify["results"]:
        if row["format"] == "tflite_int8":
            row["status"], row["failures"] = "fail", [{"type": "GateError", "message": "agreement 72.50% < 95.00%"}]
    path.write_text(json.dumps(verify))
    with pytest.raises(EdgeportError, match="tflite_int8 did not pass the last verify.*--skip-failing"):
        bundle_model(NAME, target="rpi", out=out, dist=tmp_path / "dist", samples=40)
    skipped = bundle_model(NAME, target="rpi", out=out, dist=tmp_path / "dist", samples=40, skip_failing=True)
    assert "model_int8.tflite" not in skipped.files and {"model_fp32.tflite", "model.onnx"} <= set(skipped.files)
    meta = json.loads((skipped.folder / "bundle.json").read_text())
    assert list(meta["left_out"]) == ["tflite_int8"] and "agreement 72.50%" in meta["left_out"]["tflite_int8"]
    readme = (skipped.folder / "README.md").read_text()
    assert "Left out of this bundle" in readme and "tflite_int8: fail on litert in the last verify" in readme
    only = bundle_model(NAME, target="rpi", out=out, dist=tmp_path / "dist", samples=40, formats=["tflite_fp32"])
    assert [f for f in only.files if f.startswith("model")] == ["model_fp32.tflite"]
    assert json.loads((only.folder / "bundle.json").read_text())["left_out"]["onnx"] == "not asked for (--formats)"
    report = verify_model(bundle=str(only.archive))
    assert report.ok and [r.format for r in report.results] == ["tflite_fp32"]
    with pytest.raises(EdgeportError, match="--formats tflite_wi9: this bundle carries"):
        bundle_model(NAME, target="rpi", out=out, dist=tmp_path / "dist", formats=["tflite_wi9"])
    with pytest.raises(EdgeportError, match="a mcu bundle is made and proved from fixed artifacts"):
        bundle_model(NAME, target="mcu", out=out, dist=tmp_path / "dist", skip_failing=True)


def test_a_bare_artifact_is_told_what_works(built, tmp_path):
    bare = built["tmp"] / "out" / NAME / "model_fp32.tflite"
    with pytest.raises(EdgeportError, match=r"a bare artifact; .* edgeport verify .* --reference SOURCE"):
        bundle_model(str(bare), target="rpi", out=tmp_path, dist=tmp_path / "dist")
    with pytest.raises(EdgeportError, match="a source model; bundle its model directory: edgeport export"):
        bundle_model(str(built["tmp"] / f"{NAME}.keras"), target="rpi", out=tmp_path, dist=tmp_path / "dist")
