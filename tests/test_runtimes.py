"""Every runtime on artifacts of the tiny models, against the keras runtime (the reference).

Artifacts come from the export stage (``export_model``, every format) once per session; the
tiny models have no dataset, so each gets a calibration file of random raw inputs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.errors import DeviceUnavailable, InputError, LoadError
from edgeport.runtimes import load, runtimes_for

FLOAT_TOL = 1e-5
IMAGE_KINDS = ("mlp", "cnn")
ALL_KINDS = ("mlp", "cnn", "two_input", "celsius")
FLOAT_FORMATS = ("saved_model", "tflite_fp32", "onnx")
LOSSY_FORMATS = ("tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int16x8", "onnx_int8")


def _samples(kind: str, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    if kind == "two_input":
        return {"image": rng.uniform(0, 255, (n, 8, 8, 1)).astype(np.float32),
                "features": rng.normal(size=(n, 3)).astype(np.float32)}
    if kind == "celsius":
        return rng.uniform(-40, 100, (n, 1)).astype(np.float32)
    return rng.integers(0, 256, (n, 28, 28, 1)).astype(np.float32)


def _calibration_file(kind: str, directory: Path) -> str:
    data = _samples(kind, 64, seed=100)
    if isinstance(data, dict):
        np.savez(directory / f"cal_{kind}.npz", **data)
        return str(directory / f"cal_{kind}.npz")
    np.save(directory / f"cal_{kind}.npy", data)
    return str(directory / f"cal_{kind}.npy")


def _export(keras_file: Path, out: Path, cal: str, formats: list[str], **kw) -> dict[str, Path]:
    from edgeport.export.pipeline import export_model
    from edgeport.manifest import load_manifest

    report = export_model(str(keras_file), formats=formats, out=out, calibration_data=cal,
                          calibration_samples=64, **kw)
    failed = [f"{r.format}: {r.error}" for r in report.results if r.status != "ok"]
    assert not failed, f"export of {keras_file.name} failed: {failed}"
    manifest = load_manifest(report.model_dir)
    return {fmt: report.model_dir / e["file"] for fmt, e in manifest["artifacts"].items()
            if e.get("status") == "ok"}


@pytest.fixture(scope="session")
def artifacts(tiny_models, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """{kind: {format: path}} for the tiny mlp, cnn, two_input and celsius models: every export
    format, plus ``tflite_int8_io`` (int8 instead of the default uint8 input/output)."""
    root = tmp_path_factory.mktemp("runtime_artifacts")
    out: dict[str, dict[str, Path]] = {}
    for kind in ALL_KINDS:
        cal = _calibration_file(kind, root)
        arts = _export(tiny_models[kind], root / "all", cal, ["all"])
        arts["keras"] = tiny_models[kind]
        if kind in IMAGE_KINDS:
            arts["tflite_int8_io"] = _export(tiny_models[kind], root / "int8_io", cal, ["tflite_int8"],
                                             int8_io="int8")["tflite_int8"]
        out[kind] = arts
    return out


def _labels(path: Path) -> list[str]:
    return json.loads((path.parent / "manifest.json").read_text())["labels"]


@pytest.fixture(scope="session")
def reference(artifacts):
    """Keras outputs per kind on the shared samples (the reference every runtime must meet)."""
    return {kind: load(arts["keras"]).predict(_samples(kind, 7)) for kind, arts in artifacts.items()}


# -- parity ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
def test_float_formats_match_keras(artifacts, reference, kind, fmt):
    session = load(artifacts[kind][fmt])
    y = session.predict(_samples(kind, 7))
    assert y.dtype == np.float32 and y.shape == reference[kind].shape
    assert np.abs(y - reference[kind]).max() <= FLOAT_TOL, session.describe()


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("fmt", LOSSY_FORMATS)
def test_lossy_formats_stay_close_to_keras(artifacts, reference, kind, fmt):
    y = load(artifacts[kind][fmt]).predict(_samples(kind, 7))
    ref = reference[kind]
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert np.abs(y - ref).max() <= 0.05 * max(1.0, float(np.abs(ref).max()))


def test_runtime_defaults_and_engine_names(artifacts):
    arts = artifacts["mlp"]
    assert runtimes_for(arts["tflite_fp32"]) == ["litert"]
    assert runtimes_for(arts["onnx"]) == ["onnxruntime"]
    assert runtimes_for(arts["keras"]) == ["keras"]
    assert runtimes_for(arts["saved_model"]) == ["savedmodel"]
    assert runtimes_for(arts["saved_model"] / "saved_model.pb") == ["savedmodel"]
    s = load(arts["tflite_fp32"])
    assert s.runtime == "litert" and s.engine.startswith("ai_edge_litert ")
    assert load(arts["onnx"]).engine.startswith("onnxruntime ")
    with pytest.raises(LoadError, match="cannot run a tflite"):
        load(arts["tflite_fp32"], runtime="onnxruntime")


@pytest.mark.parametrize("kind", IMAGE_KINDS)
@pytest.mark.parametrize("fmt", ["tflite_int8", "tflite_int8_io"])
def test_quantized_io_is_handled_inside(artifacts, reference, kind, fmt):
    session = load(artifacts[kind][fmt])
    (spec,), (out,) = session.inputs, session.outputs
    assert spec.dtype == {"tflite_int8": "uint8", "tflite_int8_io": "int8"}[fmt]
    assert spec.quantized and out.quantized
    y = session.predict(_samples(kind, 7))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=0.03)  # dequantized probabilities
    assert np.abs(y - reference[kind]).max() < 0.1
    assert (y.argmax(1) == reference[kind].argmax(1)).mean() >= 5 / 7
    # uint8 pixels are fed as they are (the contract is raw 0-255 in any numeric dtype)
    np.testing.assert_array_equal(session.predict(_samples(kind, 7).astype(np.uint8)), y)
    for i in range(3):  # batch 1: the fast paths (float32, and raw uint8 straight into the tensor)
        one = _samples(kind, 7)[i:i + 1]
        np.testing.assert_array_equal(session.predict(one), y[i:i + 1])
        np.testing.assert_array_equal(session.predict(one.astype(np.uint8)), y[i:i + 1])


def test_quantize_matches_the_engine_formula(artifacts):
    from edgeport.runtimes.quant import quantize

    session = load(artifacts["mlp"]["tflite_int8_io"])
    spec = session.inputs[0]
    x = _samples("mlp", 2)
    q = session.prepare(x)[0]
    expected = np.clip(np.round(x / spec.scale) + spec.zero_point, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(quantize(x, spec.scale, spec.zero_point, "int8"), expected)


@pytest.mark.parametrize("fmt", ["tflite_fp32", "tflite_int8", "onnx"])
def test_batch_sizes(artifacts, reference, fmt):
    session = load(artifacts["cnn"][fmt])
    x = _samples("cnn", 7)
    full = session.predict(x)
    for n in (1, 3, 7, 1, 3):
        y = session.predict(x[:n])
        assert y.shape == (n, 10)
        np.testing.assert_allclose(y, full[:n], atol=1e-6)
    tol = FLOAT_TOL if fmt != "tflite_int8" else 0.1
    assert np.abs(full - reference["cnn"]).max() <= tol


def test_fixed_batch_engines_are_fed_in_chunks(artifacts, reference, tmp_path, monkeypatch):
    import onnx

    x = _samples("cnn", 7)
    s = load(artifacts["cnn"]["tflite_fp32"])
    monkeypatch.setattr(s, "_interpreter_for", lambda shapes: None)  # as if resizing were refused
    assert np.abs(s.predict(x) - reference["cnn"]).max() <= FLOAT_TOL
    proto = onnx.load(str(artifacts["cnn"]["onnx"]))
    for t in [*proto.graph.input, *proto.graph.output]:
        t.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed_batch.onnx"
    onnx.save(proto, str(fixed))
    s = load(fixed)
    assert s.inputs[0].shape[0] == 1
    for n in (1, 3, 7):
        assert np.abs(s.predict(x[:n]) - reference["cnn"][:n]).max() <= FLOAT_TOL


def test_litert_options_and_fallback_engine(artifacts, reference):
    path = artifacts["cnn"]["tflite_fp32"]
    for kw in ({"threads": 2}, {"xnnpack": False}, {"engine": "tf.lite"}):
        s = load(path, **kw)
        assert np.abs(s.predict(_samples("cnn", 7)) - reference["cnn"]).max() <= FLOAT_TOL, kw
    assert load(path, engine="tf.lite").engine.startswith("tf.lite ")
    assert load(path, xnnpack=False).xnnpack is False


def test_onnxruntime_options(artifacts, reference):
    for level in ("disable", "basic", "extended", "all"):
        s = load(artifacts["cnn"]["onnx"], threads=1, graph_optimization_level=level)
        assert np.abs(s.predict(_samples("cnn", 7)) - reference["cnn"]).max() <= FLOAT_TOL
    from edgeport.errors import UnknownNameError
    with pytest.raises(UnknownNameError, match="graph optimization level"):
        load(artifacts["cnn"]["onnx"], graph_optimization_level="max", probe=False)


def test_multi_input_by_list_and_by_name(artifacts, reference):
    from edgeport.runtimes.base import tensor_key

    feed = _samples("two_input", 7)
    for fmt in ("keras", "saved_model", "tflite_fp32", "onnx", "tflite_int8"):
        s = load(artifacts["two_input"][fmt])
        # every runtime takes a list in the Keras model's input order (recorded by the exporter)
        assert [tensor_key(spec.name) for spec in s.inputs] == ["image", "features"], fmt
        by_name = s.predict(feed)
        by_list = s.predict([feed["image"], feed["features"]])
        np.testing.assert_array_equal(by_name, by_list)
        tol = FLOAT_TOL if fmt != "tflite_int8" else 0.05
        assert np.abs(by_name - reference["two_input"]).max() <= tol, fmt
    s = load(artifacts["two_input"]["keras"])
    assert [i.name for i in s.inputs] == ["image", "features"]  # the Keras model's own order
    with pytest.raises(InputError, match="missing"):
        s.predict({"image": feed["image"]})
    with pytest.raises(InputError, match="2 inputs"):
        s.predict(feed["image"])


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["keras", "tflite_fp32", "tflite_int8", "onnx"])
def test_bad_input_names_expected_and_given(artifacts, fmt):
    s = load(artifacts["mlp"][fmt])
    x = _samples("mlp", 2)
    cases = [
        (x[0], r"expected shape \(N, 28, 28, 1\), given \(28, 28, 1\).*batch axis"),
        (np.zeros((2, 28, 28, 3)), r"expected 1 channel\(s\).*given 3 channel"),
        (np.zeros((2, 1, 28, 28)), r"expected 1 channel.*given 28.*channels-first"),
        (np.zeros((2, 32, 32, 1)), r"expected shape \(N, 28, 28, 1\), given \(2, 32, 32, 1\)"),
        (np.zeros((0, 28, 28, 1)), r"empty batch.*given shape \(0, 28, 28, 1\)"),
        (np.full((2, 28, 28, 1), "a"), r"expected numbers castable to .*given dtype <U1"),
        (np.array([[object()]]), r"given dtype object"),
        ("pixels", r"given dtype <U6"),
    ]
    for bad, pattern in cases:
        with pytest.raises(InputError, match=pattern):
            s.predict(bad)
    for value in (np.nan, np.inf, -np.inf):
        xb = x.copy()
        xb[1, 3, 4, 0] = value
        with pytest.raises(InputError, match=r"1 NaN/inf value.*allow_nonfinite=True"):
            s.predict(xb)
        with pytest.raises(InputError, match="NaN/inf"):
            s.predict(xb[1:])  # the batch-1 fast path checks too
        s.predict(xb, allow_nonfinite=True)  # explicitly allowed: runs


def test_allow_nonfinite_at_load(artifacts):
    s = load(artifacts["mlp"]["tflite_fp32"], allow_nonfinite=True)
    x = _samples("mlp", 1)
    x[0, 0, 0, 0] = np.nan
    s.predict(x)


# -- bad model files -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tflite_fp32", "onnx", "keras"])
def test_missing_truncated_and_garbage_files_raise_load_error(artifacts, tmp_path, fmt):
    good = artifacts["mlp"][fmt]
    data = good.read_bytes()
    suffix = good.suffix
    cases = {
        "missing": None,
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "header_only": data[:64],
        "garbage": np.random.default_rng(0).bytes(len(data)),
        "text": b"this is not a model\n" * 50,
    }
    if fmt == "tflite_fp32":  # a TFL3 header on garbage: passes the identifier check, not the bounds
        cases["fake_header"] = data[:8] + np.random.default_rng(1).bytes(len(data) - 8)
    for name, content in cases.items():
        path = tmp_path / f"{name}{suffix}"
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(LoadError) as info:
            load(path)
        assert str(path) in str(info.value), (name, str(info.value))


def test_broken_saved_model_raises_load_error(artifacts, tmp_path):
    import shutil

    broken = tmp_path / "saved_model"
    shutil.copytree(artifacts["mlp"]["saved_model"], broken)
    pb = broken / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    with pytest.raises(LoadError, match="truncated") as info:
        load(broken)
    assert str(broken) in str(info.value)
    shutil.rmtree(broken)
    shutil.copytree(artifacts["mlp"]["saved_model"], broken)
    data = broken / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(LoadError) as info:
        load(broken).predict(_samples("mlp", 1))
    assert str(broken) in str(info.value)


def test_corrupt_weights_in_a_well_formed_tflite(artifacts, tmp_path):
    """Flip bytes in the weights: the file stays well-formed, the engine must still not crash us."""
    data = bytearray(artifacts["mlp"]["tflite_fp32"].read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 400):
        data[i] ^= 0x5A
    path = tmp_path / "flipped.tflite"
    path.write_bytes(bytes(data))
    try:
        s = load(path)
    except LoadError as exc:
        assert str(path) in str(exc)
    else:
        s.predict(_samples("mlp", 1), allow_nonfinite=True)


def test_engine_crash_in_probe_is_a_load_error(artifacts, tmp_path, monkeypatch):
    """A runtime whose engine segfaults while loading: the child dies, this process does not."""
    (tmp_path / "crashing_runtime.py").write_text(textwrap.dedent("""
        import ctypes
        from edgeport.runtimes.base import Session

        class CrashSession(Session):
            def __init__(self, path, **kw):
                ctypes.string_at(0)  # SIGSEGV inside native code
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LoadError, match=r"crashed \(SIGSEGV\) while loading"):
        load(artifacts["mlp"]["tflite_fp32"], runtime="crashing_runtime:CrashSession", probe=True)


def test_probe_is_cached_and_cheap(artifacts):
    from edgeport.runtimes import guard

    path = artifacts["celsius"]["tflite_fp32"]
    guard.clear_cache()
    n = len(guard.PROBE_SECONDS)
    load(path)
    load(path)
    assert len(guard.PROBE_SECONDS) == n + 1  # the second load reused the probe
    assert guard.PROBE_SECONDS[-1] < 5.0  # ~0.3-0.8 s here; generous for a loaded CI machine


# -- no TensorFlow on the device -------------------------------------------------------------

def test_tflite_runs_without_tensorflow(artifacts):
    """The Pi path: tensorflow and keras cannot even be imported, and never are."""
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "onnxruntime"):
                    raise ImportError("blocked for this test: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from edgeport.runtimes import load
        s = load({str(artifacts["mlp"]["tflite_int8"])!r})
        y = s.predict(np.zeros((3, 28, 28, 1), np.float32))
        assert y.shape == (3, 10), y.shape
        s = load({str(artifacts["cnn"]["tflite_fp32"])!r})
        s.predict(np.zeros((1, 28, 28, 1), np.float32))
        from edgeport.runtimes.artifact_info import artifact_info
        assert artifact_info({str(artifacts["mlp"]["tflite_fp32"])!r}).model == "tiny_mlp"
        bad = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
        assert not bad, bad
        print("OK", s.engine)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("OK ai_edge_litert")


def test_importing_runtimes_imports_no_engine():
    code = ("import sys, edgeport.runtimes, edgeport.runtimes.cli, edgeport.runtimes.guard;"
            "print([m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'onnxruntime', 'ai_edge_litert', 'tflite_runtime')])")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- GPU -------------------------------------------------------------------------------------

def _has_gpu_provider() -> bool:
    import onnxruntime as ort

    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def test_gpu_unavailable_is_clear(artifacts):
    if _has_gpu_provider():
        pytest.skip("this machine has an onnxruntime GPU provider; see test_gpu_matches_cpu")
    with pytest.raises(DeviceUnavailable, match="onnxruntime-gpu"):
        load(artifacts["mlp"]["onnx"], device="gpu")
    with pytest.raises(DeviceUnavailable, match="CPU only"):
        load(artifacts["mlp"]["tflite_fp32"], device="gpu")
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(DeviceUnavailable, match="TensorFlow sees no GPU"):
            load(artifacts["mlp"]["keras"], device="gpu")


def test_gpu_matches_cpu(artifacts, reference):
    if not _has_gpu_provider():
        pytest.skip("no CUDA/TensorRT execution provider here (onnxruntime-gpu not installed)")
    s = load(artifacts["cnn"]["onnx"], device="gpu")
    assert np.abs(s.predict(_samples("cnn", 7)) - reference["cnn"]).max() <= 1e-4


# -- command line ----------------------------------------------------------------------------

def _png(path: Path, size=(40, 30), mode="RGB") -> Path:
    from PIL import Image

    rng = np.random.default_rng(3)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(path)
    return path


@pytest.mark.parametrize("fmt", ["tflite_fp32", "onnx", "tflite_int8"])
def test_cli_run_image_prints_labels(artifacts, tmp_path, capsys, fmt):
    img = _png(tmp_path / "shirt.png")
    assert main(["run", str(artifacts["mlp"][fmt]), str(img), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.startswith("shirt.png:")][0]
    labels = _labels(artifacts["mlp"][fmt])
    assert len(line.split(",")) == 2 and all(t.split()[0] in labels for t in line[10:].split(",")), out


def test_cli_json_and_npy_batch(artifacts, tmp_path, capsys):
    arts = artifacts["mlp"]
    batch = _samples("mlp", 3)
    np.save(tmp_path / "batch.npy", batch)
    img = _png(tmp_path / "grey.jpg", size=(28, 28), mode="L")
    assert main(["run", str(arts["tflite_fp32"]), str(tmp_path / "batch.npy"), str(img), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runtime"] == "litert" and doc["labels_from"] == "manifest"
    assert [r["input"] for r in doc["results"]] == ["batch.npy[0]", "batch.npy[1]", "batch.npy[2]",
                                                   "grey.jpg"]
    expected = load(arts["tflite_fp32"]).predict(batch)
    first = doc["results"][0]["top_k"]
    assert first[0]["index"] == int(expected[0].argmax())
    assert first[0]["label"] == _labels(arts["tflite_fp32"])[first[0]["index"]]
    assert abs(first[0]["probability"] - float(expected[0].max())) < 1e-6


def test_cli_labels_from_embedded_metadata(artifacts, tmp_path, capsys):
    """No manifest beside the file: labels and contract come from the file itself."""
    for fmt in ("tflite_fp32", "onnx"):
        lone = tmp_path / f"lone{artifacts['mlp'][fmt].suffix}"
        lone.write_bytes(artifacts["mlp"][fmt].read_bytes())
        assert main(["run", str(lone), str(_png(tmp_path / "x.png")), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["labels_from"] == "embedded" and doc["model"] == "tiny_mlp"
        assert doc["results"][0]["top_k"][0]["label"] in _labels(artifacts["mlp"][fmt])


def test_cli_numbers_for_a_values_model(artifacts, capsys):
    path = artifacts["celsius"]["tflite_fp32"]
    assert main(["run", str(path), "0", "100", "-40", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = load(path).predict(np.array([[0.0], [100.0], [-40.0]], np.float32))
    got = [r["outputs"][0]["values"][0] for r in doc["results"]]
    np.testing.assert_allclose(got, expected[:, 0], rtol=1e-6)
    assert doc["results"][1]["given"] == [100.0]
    assert main(["run", str(path), "37.5"]) == 0
    assert "37.5 ->" in capsys.readouterr().out


def test_cli_errors_are_one_line(artifacts, tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.tflite"), "1"]) == 2
    assert "nope.tflite" in capsys.readouterr().err
    assert main(["run", str(artifacts["mlp"]["tflite_fp32"]), "12"]) == 2
    assert "takes images" in capsys.readouterr().err
    np.save(tmp_path / "wrong.npy", np.zeros((2, 28, 28, 3), np.float32))
    assert main(["run", str(artifacts["mlp"]["tflite_fp32"]), str(tmp_path / "wrong.npy")]) == 2
    assert "expected 1 channel(s)" in capsys.readouterr().err


def test_runtimes_command_lists_engines(capsys):
    assert main(["runtimes"]) == 0
    out = capsys.readouterr().out
    for name in ("keras", "savedmodel", "litert", "onnxruntime", "ai_edge_litert"):
        assert name in out


# -- real data (slow) ------------------------------------------------------------------------

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "artifacts"


def _fashion_test_images(n: int) -> np.ndarray:
    """n real Fashion-MNIST test images, (n, 28, 28, 1) float32 raw 0-255."""
    try:
        from edgeport.training.data import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset("fashion_mnist")
        for getter in (lambda d: d.x_test, lambda d: d["x_test"], lambda d: d.test[0],
                       lambda d: d["test"][0], lambda d: d[1][0]):
            try:
                x = np.asarray(getter(ds))
            except (AttributeError, KeyError, TypeError, IndexError):
                continue
            if x.ndim >= 3 and len(x) >= n:
                return x[:n].reshape(n, 28, 28, 1).astype(np.float32)
    import gzip

    path = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    if not path.exists():
        pytest.skip("no Fashion-MNIST: run `make data`")
    with gzip.open(path) as fh:
        data = np.frombuffer(fh.read(), np.uint8, offset=16)
    return data[: n * 784].reshape(n, 28, 28, 1).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fashion_mlp", "fashion_cnn"])
def test_real_artifacts_match_keras_on_1000_test_images(model):
    from edgeport.manifest import load_manifest

    model_dir = ARTIFACTS_DIR / model
    if not (model_dir / "manifest.json").exists():
        pytest.skip(f"{model_dir}/manifest.json does not exist: run `make export` first")
    manifest = load_manifest(model_dir)
    x = _fashion_test_images(1000)
    keras_file = model_dir / "model.keras"
    entries = {f: e for f, e in manifest["artifacts"].items() if isinstance(e, dict) and e.get("file")}
    keras_file = next((model_dir / e["file"] for e in entries.values()
                       if str(e["file"]).endswith(".keras")), keras_file)
    ref = load(keras_file).predict(x)
    checked = []
    for fmt, entry in entries.items():
        path = model_dir / entry["file"]
        if entry.get("status", "ok") not in ("ok", "passed") or not path.exists():
            continue
        try:
            names = runtimes_for(path)
        except LoadError:
            continue  # not a runnable artifact (C source, ...)
        for runtime in names:
            y = load(path, runtime=runtime).predict(x)
            diff = float(np.abs(y - ref).max())
            agree = float((y.argmax(1) == ref.argmax(1)).mean())
            checked.append((fmt, runtime, diff, agree))
            from edgeport.export.registry import Precision, precision_of

            if precision_of(fmt) is not Precision.FLOAT32:  # the registry's class, not words in the name
                assert agree >= 0.95, (fmt, runtime, diff, agree)
            else:
                assert diff <= FLOAT_TOL, (fmt, runtime, diff, agree)
    assert checked, f"no runnable artifacts in {model_dir}/manifest.json"
    print("\n".join(f"{model} {f:<16} {r:<12} max|diff| {d:.2e}  top-1 agreement {a:.3f}"
                    for f, r, d, a in checked))
