"""Web bundles: the fixed-batch mobile variants for LiteRT.js and ONNX Runtime Web with the pinned
engines, served with the right headers, and proved inside headless Chromium against Keras with
verify's gates (the proof fails when the page's outputs are altered); a dynamic batch is refused."""
from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from edgeport.benchmarks.devices import web_check
from edgeport.benchmarks.devices.web_results import backend_problem, console_errors, placement
from edgeport.benchmarks.verify.command import verify_model
from edgeport.errors import DataError, EdgeportError
from edgeport.files import sha256_file
from edgeport.export.pipeline import export_model
from edgeport.export.targets import bundle_model
from edgeport.export.targets.web_model import require_web_tflite
from edgeport.serve import start

FORMATS = ["tflite_fp32", "tflite_int8"]


def _browser_or_skip() -> None:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm missing; run `make web-deps`")
    try:
        web_check.chromium()
    except EdgeportError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """A Fashion-MNIST CNN trained for seconds on real data, exported, verified and bundled for the web."""
    import keras

    from edgeport.training.data import load_dataset

    if not shutil.which("npm"):
        pytest.skip("npm is missing (the web engines come from npm); run `make web-deps`")
    try:
        ds = load_dataset("fashion_mnist")
    except DataError as exc:
        pytest.skip(f"Fashion-MNIST is not installed here ({exc}); run `make data`")
    tmp = tmp_path_factory.mktemp("web")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds.x_train[:3000], ds.y_train[:3000], epochs=1, batch_size=64, verbose=0)
    model.save(tmp / "fashion_cnn.keras")
    out, dist = tmp / "out", tmp / "dist"
    assert export_model(str(tmp / "fashion_cnn.keras"), formats=FORMATS, out=out).ok
    assert verify_model("fashion_cnn", out=out, limit=1000).ok
    bundle = bundle_model("fashion_cnn", target="web", out=out, dist=dist, samples=200)
    return {"tmp": tmp, "out": out, "dist": dist, "bundle": bundle, "model_dir": out / "fashion_cnn"}


def test_web_bundle_layout(web):
    folder = web["bundle"].folder
    meta = json.loads((folder / "web.json").read_text())
    assert meta["input"] == {"shape": [1, 28, 28, 3], "dtype": "uint8", "color_space": "RGB",
                             "to_gray": "inside the model (PIL 'L', exact)"}
    for variant in ("float32", "int8"):
        lite, ort = meta["models"][variant]["litertjs"], meta["models"][variant]["onnxruntime_web"]
        assert lite["input"]["shape_signature"] == [1, 28, 28, 3] and lite["input"]["dtype"] == "uint8"
        assert ort["input"]["shape"] == [1, 28, 28, 3] and ort["input"]["dtype"] == "uint8"
        assert (folder / lite["file"]).is_file() and (folder / ort["file"]).is_file()
    assert {e["version"] for e in meta["engines"].values()} == {"2.5.3", "1.30.0"}
    lock = json.loads((folder / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == "1.30.0"
    assert (folder / "node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm").is_file()
    assert (folder / "node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm").is_file()
    listed = json.loads((folder / "bundle.json").read_text())["files"]  # `edgeport serve` serves only these
    for f in ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"):
        assert f"node_modules/onnxruntime-web/dist/{f}" in listed  # ORT's WebGPU build, for ?accelerator=webgpu
    readme = (folder / "README.md").read_text()
    assert "Cross-Origin-Embedder-Policy: require-corp" in readme and "application/wasm" in readme
    sizes = json.loads((folder / "bundle.json").read_text())["sizes"]
    assert sizes["engines"] > 20e6 and 0 < sizes["models"] < 1e6 and sizes["app"] > 0
    assert web["bundle"].archive.is_file()


def test_a_dynamic_batch_tflite_is_refused_for_the_web(web):
    """The verified artifact has batch -1: LiteRT.js would refuse it in the browser; the bundle does first."""
    dynamic = (web["model_dir"] / "model_fp32.tflite").read_bytes()
    with pytest.raises(EdgeportError, match=r"dynamic batch \(shape_signature \[-1, 28, 28, 1\]\); LiteRT.js refuses"):
        require_web_tflite(dynamic, "model_fp32.tflite")


def test_serve_sends_wasm_mime_and_isolation_headers(web):
    server, url = start(web["bundle"].folder)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm"
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(url + "app.js") as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(EdgeportError, match="no index.html"):
        start(web["tmp"])


def test_console_triage():
    msgs = [{"type": "error", "text": "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."},
            {"type": "error", "text": "WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded and "
                                      "registered: kLiteRtStatusErrorInvalidArgument."},
            {"type": "log", "text": "anything"}, {"type": "error", "text": "Uncaught TypeError: x is undefined"}]
    assert console_errors(msgs) == ["Uncaught TypeError: x is undefined"]


def _ort_log(*lines):
    stamp = "2026-12-05 07:55:49.078500 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp] "
    return [{"type": "error", "text": stamp + line} for line in lines]


def test_backend_problem_reads_what_the_engine_ran_on():
    """A WebGPU run passes only when the engine says it ran there: LiteRT.js's compiled accelerator and
    isFullyAccelerated, ONNX Runtime's node placement (its verbose log); a fallback is the reason it fails."""
    assert backend_problem("webgpu", {"accelerator": "webgpu", "fully": True}, []) is None
    assert "fell back" in backend_problem("webgpu", {"accelerator": "wasm", "fully": True}, [])
    assert "not fully compiled" in backend_problem("webgpu", {"accelerator": "webgpu", "fully": False}, [])
    ort = {"accelerator": "webgpu", "fully": None}
    assert backend_problem("webgpu", ort, _ort_log(" All nodes placed on [WebGpuExecutionProvider]. "
                                                   "Number of nodes: 12")) is None
    split = _ort_log(" Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2", "  QuantizeLinear (q0)",
                     "  Reshape (r0)", " Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 10",
                     "  Conv (c0)")
    assert placement(split) == {"CPUExecutionProvider": {"nodes": 2, "ops": ["QuantizeLinear", "Reshape"]},
                                "WebGpuExecutionProvider": {"nodes": 10, "ops": ["Conv"]}}
    assert backend_problem("webgpu", ort, split) == ("not every node runs on WebGpuExecutionProvider: 2 of 12 nodes "
                                                     "on CPUExecutionProvider (QuantizeLinear, Reshape)")
    assert "did not say" in backend_problem("webgpu", ort, [])  # no placement logged: not taken on trust
    assert backend_problem("wasm", None, []) is None  # WebAssembly runs are not probed
    assert console_errors(split) == []  # ORT's verbose lines are not console errors


def test_the_browser_proves_the_bundle(web):
    _browser_or_skip()
    started = time.perf_counter()
    result = web_check.check_bundle(web["bundle"].folder, web["model_dir"], samples=200,
                                    shots=web["tmp"] / "report", accelerators=("wasm",))
    print(web_check.render(result), f"\n{time.perf_counter() - started:.1f} s")
    assert result["ok"], result["problems"]
    assert {(r["runtime"], r["precision"]) for r in result["rows"]} == {
        (e, v) for e in ("litert.js 2.5.3 (wasm)", "onnxruntime-web 1.30.0 (wasm)") for v in ("float32", "int8")}
    for r in result["rows"]:
        assert r["gate"] == "pass" and r["p50_us"] > 0 and r["native_p50_us"] > 0
    float_rows = [r for r in result["rows"] if r["precision"] == "float32"]
    assert all(r["agreement"] == 1.0 and r["max_abs_diff"] < 1e-4 for r in float_rows)
    assert Path(result["screenshot"]).stat().st_size > 10_000


def test_altered_page_outputs_fail_the_proof(web, tmp_path):
    """One probability moved by 1e-4 in LiteRT.js's outputs: every top-1 still agrees, yet the float
    model fails verify's float32 tolerance; ONNX Runtime Web's rows, untouched, still pass."""
    _browser_or_skip()
    folder = tmp_path / "altered"
    shutil.copytree(web["bundle"].folder, folder)
    app = folder / "app.js"
    text = app.read_text()
    good = "return Float32Array.from((host || outs[0]).toTypedArray());"
    assert text.count(good) == 1
    app.write_text(text.replace(good, "const a = Float32Array.from((host || outs[0]).toTypedArray()); a[0] += 1e-4; "
                                      "return a;"))
    meta = json.loads((folder / "bundle.json").read_text())  # re-listed: serve sends only what bundle.json lists
    meta["files"]["app.js"]["sha256"] = sha256_file(app)
    (folder / "bundle.json").write_text(json.dumps(meta))
    result = web_check.check_bundle(folder, web["model_dir"], samples=200, shots=tmp_path, accelerators=("wasm",))
    assert not result["ok"]
    verdict = {(r["runtime"].split()[0], r["precision"]): r["gate"] for r in result["rows"]}
    assert verdict[("litert.js", "float32")] == "fail"
    assert verdict[("onnxruntime-web", "float32")] == "pass" and verdict[("onnxruntime-web", "int8")] == "pass"
    failed = next(r for r in result["rows"] if r["gate"] == "fail")
    assert any("tolerance_diff" in f for f in failed["failures"])


WEBGPU_RUNS = {(e, v, a) for e in ("litert.js", "onnxruntime-web") for v in ("float32", "int8")
               for a in ("wasm", "webgpu")}


def _rows(result):
    return {(r["runtime"].split()[0], r["precision"], r["accelerator"]): r for r in result["rows"]}


def test_webgpu_backends_are_held_to_the_gates_and_to_wasm(web, tmp_path):
    """Both engines' WebGPU backends (SwiftShader in headless Chromium) on 20 images: each row has the
    gate's verdict against Keras and against the same file on WebAssembly, or fails saying why (an op
    ONNX Runtime's WebGPU provider lacks runs on its CPU provider: that is a failure, not a pass)."""
    _browser_or_skip()
    result = web_check.check_bundle(web["bundle"].folder, web["model_dir"], samples=20, shots=tmp_path, timing=(2, 10))
    print(web_check.render(result))
    adapter = next(p["adapter"] for p in result["pages"] if p["accelerator"] == "webgpu")
    if adapter.get("error"):
        pytest.skip(f"this Chromium offers no WebGPU adapter even with --enable-unsafe-webgpu: {adapter['error']}")
    assert not result["problems"], result["problems"]
    rows = _rows(result)
    assert set(rows) == WEBGPU_RUNS
    for (_, _, acc), r in rows.items():
        assert r["gate"] in ("pass", "fail") and (r["gate"] == "fail") == bool(r["failures"])
        if acc == "webgpu" and r["gate"] == "pass":
            assert r["vs_wasm"]["agreement"] == 1.0 and r["p50_us"] > 0 and r["adapter"]
    for engine in ("litert.js", "onnxruntime-web"):  # float32 runs wholly on WebGPU in both engines
        r = rows[engine, "float32", "webgpu"]
        assert r["gate"] == "pass" and r["agreement"] == 1.0 and r["max_abs_diff"] < 1e-4, r["failures"]
    ort_int8 = rows["onnxruntime-web", "int8", "webgpu"]
    if ort_int8["gate"] == "fail":  # ORT 1.30's WebGPU provider has no QuantizeLinear: those nodes run on CPU
        assert any("CPUExecutionProvider" in f for f in ort_int8["failures"]), ort_int8["failures"]
    assert "SwiftShader" in web_check.render(result) or not web_check.wr.software(adapter)


def test_webgpu_off_gives_failed_rows_with_the_reason(web, tmp_path):
    """Chromium without --enable-unsafe-webgpu: no adapter, so every WebGPU row fails and says why
    (never a skip, never WebAssembly's answers under WebGPU's name); the WebAssembly rows still pass."""
    _browser_or_skip()
    result = web_check.check_bundle(web["bundle"].folder, web["model_dir"], samples=20, shots=tmp_path,
                                    unsafe_webgpu=False, timing=(2, 10))
    text = web_check.render(result)
    print(text)
    assert not result["ok"]
    rows = _rows(result)
    assert set(rows) == WEBGPU_RUNS
    for (_, _, acc), r in rows.items():
        if acc == "wasm":
            assert r["gate"] == "pass", r["failures"]
        else:
            assert r["gate"] == "fail" and r["p50_us"] is None and r["agreement"] is None
            assert len(r["failures"]) == 1 and "webgpu" in r["failures"][0].lower(), r["failures"]
            assert r["failures"][0] in text
    assert "FAILED" in text
