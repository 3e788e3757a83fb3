"""Prove web bundles inside a real browser: serve ``dist/MODEL-web`` on loopback, drive Debian's
headless Chromium with puppeteer-core (the system browser, no browser download), run ``samples``
real test images through each engine (LiteRT.js, ONNX Runtime Web) and variant (float32, int8) in
the page, and hold the page's outputs to `edgeport verify`'s gates against the Keras model (float:
the derived float32 tolerance; int8: the quantized gate), on WebAssembly and again on WebGPU
(Chromium's ``--enable-unsafe-webgpu``; headless on Linux that is SwiftShader), where each engine's
outputs must also give WebAssembly's top-1 on every image. A WebGPU run that cannot run (no adapter,
an op the backend lacks) or that the engine moves to WebAssembly (LiteRT.js's compiled accelerator,
ONNX Runtime's node placement from its verbose log) is a failed row with the reason. It fails on a
disagreement beyond the gate, a page error, a failed request or a console error that is not a known
engine INFO line.
It saves a screenshot of the page with a grid of predictions into the report folder, and times
batch 1 in the page (median of 50 after warm-up) beside the same file natively.

    python -m edgeport.benchmarks.devices.web_check fashion_mlp fashion_cnn --out artifacts --dist dist
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.benchmarks.devices import web_results as wr
from edgeport.benchmarks.verify.gates import load_gates
from edgeport.benchmarks.verify.proof import verified_gates
from edgeport.errors import EdgeportError
from edgeport.export.targets import web_engines
from edgeport.files import human_size, write_json_atomic
from edgeport.tables import fmt_num, fmt_pct, text_table

DRIVER = Path(__file__).with_name("web-driver")
CHROMIUM = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
#: Headless Chromium as the check runs it (root needs --no-sandbox); WebGPU is behind a flag on Linux,
#: where Debian's build serves it from SwiftShader (CPU Vulkan) when no GPU is used.
BROWSER_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync")
WEBGPU_ARGS = ("--enable-unsafe-webgpu",)
RESULT_FILE = "web_check.json"
GRID = 24


def chromium() -> str:
    """The system Chromium; EdgeportError with the install line when it is missing."""
    for path in CHROMIUM:
        if Path(path).is_file():
            return path
    raise EdgeportError("Chromium is not installed; run: apt-get install -y --no-install-recommends chromium "
                        "(make web-check does it as root)")


def puppeteer() -> Path:
    """puppeteer-core's entry point, installed once from web-driver/'s lockfile (no browser download)."""
    modules = web_engines.npm_install(DRIVER, web_engines.data_home() / "web-driver", "puppeteer-core",
                                      env={"PUPPETEER_SKIP_DOWNLOAD": "1"})
    return modules / "puppeteer-core" / "lib" / "esm" / "puppeteer" / "puppeteer-core.js"


def keras_reference(model_dir: Path, manifest: dict[str, Any], head: str, x: np.ndarray) -> tuple[np.ndarray, float]:
    """(Keras probabilities on ``x``, float32 noise: max |Keras float32 - its float64 twin|)."""
    from edgeport.export.targets.mobile import _source_model
    from edgeport.export.targets.mobile_proof import keras_reference as reference

    return reference(_source_model(model_dir, manifest), head, x)


def run_page(folder: Path, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The driver's result for ``job`` against ``folder`` served on loopback."""
    from edgeport.serve import start

    server, url = start(folder)
    try:
        with tempfile.TemporaryDirectory(prefix="edgeport-web-") as tmp:
            jp, rp = Path(tmp) / "job.json", Path(tmp) / "result.json"
            jp.write_text(json.dumps({**job, "url": url + "index.html", "timeout_ms": int(timeout * 1000)}))
            try:
                done = subprocess.run(["node", str(DRIVER / "driver.mjs"), str(jp), str(rp)], capture_output=True,
                                      text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise EdgeportError(f"{folder}: the browser did not finish in {timeout:.0f} s") from None
            if not rp.is_file():
                raise EdgeportError(f"{folder}: the browser driver failed (exit {done.returncode}): "
                                    + (done.stderr.strip().splitlines() or ["no output"])[-1])
            return json.loads(rp.read_text())
    finally:
        server.shutdown()
        server.server_close()


def check_bundle(folder: Path, model_dir: Path, *, samples: int = 200, seed: int = 0, data_dir: str | None = None,
                 gates: str | None = None, shots: Path | None = None, timeout: float = 600.0,
                 accelerators: tuple[str, ...] = web_engines.ACCELERATORS, unsafe_webgpu: bool = True,
                 timing: tuple[int, int] = (wr.WARMUP, wr.TIMED)) -> dict[str, Any]:
    """The browser proof of one web bundle folder against the Keras model in ``model_dir``: every
    engine x variant on each of ``accelerators`` (WebAssembly first; each other one is also held to
    WebAssembly's outputs with the same-model gate, and a run that cannot run there, or falls back,
    is a failed row saying why). ``unsafe_webgpu=False`` runs Chromium without its WebGPU flag;
    ``timing``: (warm-up, timed) batch-1 runs in the page."""
    if not accelerators or accelerators[0] != web_engines.ACCELERATORS[0] or \
            not set(accelerators) <= set(web_engines.ACCELERATORS):
        raise EdgeportError(f"accelerators {list(accelerators)}: the first must be "
                            f"{web_engines.ACCELERATORS[0]} and each one of {list(web_engines.ACCELERATORS)}")
    from edgeport.benchmarks.device_info import device_info, device_key
    from edgeport.benchmarks.verify.figures import output_kind
    from edgeport.export.targets.bundle import require_verified
    from edgeport.export.targets.mobile_model import camera_form
    from edgeport.export.targets.mobile_proof import proof_images
    from edgeport.manifest import load_manifest

    folder, model_dir = Path(folder), Path(model_dir)
    web = json.loads((folder / "web.json").read_text())
    manifest = load_manifest(model_dir)
    verified = require_verified(model_dir, [])
    x, y, data = proof_images(model_dir, manifest, verified, samples, seed, data_dir)
    ref, noise = keras_reference(model_dir, manifest, web["output"]["head"], x)
    rgb = camera_form(x)
    runs = [{"engine": e, "variant": v} for v in web["models"] for e in web["engines"]]
    shot = Path(shots or model_dir.parent / "report" / "web") / f"{web['model']}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    pages = [{"accelerator": a, "runs": runs, "probe": a != accelerators[0]} for a in accelerators]
    args = [*BROWSER_ARGS, *(WEBGPU_ARGS if unsafe_webgpu else ())]
    job = {"puppeteer": str(puppeteer()), "chromium": chromium(), "args": args, "pages": pages, "warmup": timing[0],
           "timed": timing[1], "images": base64.b64encode(rgb.tobytes()).decode(), "grid_n": GRID,
           "labels": web["labels"], "truth": None if y is None else [int(v) for v in y[:GRID]],
           "screenshot": str(shot), "caption": f"{web['model']}: the first {GRID} of {len(x)} test images, "
           f"{web['engines'][runs[0]['engine']]['name']} {runs[0]['variant']} (red: wrong)"}
    page = run_page(folder, job, timeout)
    problems = [f"page error: {e}" for e in page["page_errors"]] + \
               [f"console error: {e}" for e in wr.console_errors(page["console"])] + \
               [f"request failed: {e}" for e in page["failed_requests"]] + \
               ([f"driver: {page['error'].splitlines()[0]}"] if page.get("error") else [])
    table = load_gates(gates) if gates else verified_gates(verified)  # by default, the gates verify ran with
    device, rows, wasm = device_key(device_info()), [], {}
    kind = output_kind(ref, manifest.get("task") or "classification")  # a WebGPU run vs WebAssembly's, as vs Keras
    adapters = {p["accelerator"]: wr.adapter_name(p.get("adapter")) for p in page.get("pages", [])}
    for r in page["runs"]:
        m, eng, acc = web["models"][r["variant"]], web["engines"][r["engine"]], r["accelerator"]
        file, where = m[r["engine"]]["file"], f"{m[r['engine']]['file']} in {eng['name']} ({r['accelerator']})"
        out = None if r.get("error") else np.asarray(r["probs"], np.float64)
        reason = r.get("error")
        if reason is None and out.shape != ref.shape:
            reason = f"the page returned {list(out.shape)}, not {list(ref.shape)}"
        if reason:
            verdict, p50 = wr.failed(f"{where}: {reason}"), None
        else:
            verdict, p50 = wr.gated(out, ref, noise, y, manifest.get("task"), table, m["verified_artifact"],
                                    where), statistics.median(r["times_ms"])
            if acc == accelerators[0]:
                wasm[r["engine"], r["variant"]] = out
            else:
                verdict = wr.against_wasm(verdict, out, wasm.get((r["engine"], r["variant"])),
                                          m["verified_artifact"], where, kind)
            fell = wr.backend_problem(acc, r.get("backend"), page["console"][r["console_from"]:r["console_to"]])
            verdict = wr.failing(verdict, f"{where}: {fell}") if fell else verdict
        native, native_engine = wr.native_p50(folder / file, rgb[:1]) if p50 else (None, None)
        row = wr.row(web["model"], r["variant"], Path(file).name, eng["name"], eng["version"], acc, verdict, p50,
                     native, native_engine, m[r["engine"]]["bytes"], device)
        if acc != accelerators[0]:  # the report's rows say which adapter (a software one: its times are not a GPU's)
            seen = adapters.get(acc) or "none"
            named = f"{eng['name']} {eng['version']} ({acc}: {'no adapter' if seen.startswith('none') else seen})"
            row.update(adapter=adapters.get(acc), engine=named, runtime=named)
        rows.append(row)
    ok = not problems and rows and all(r["gate"] == "pass" for r in rows)
    return {"model": web["model"], "bundle": str(folder), "browser": page.get("browser"),
            "isolated": page.get("isolated"), "status": page.get("status"), "data": data, "noise": noise,
            "pages": page.get("pages", []), "browser_args": args,
            "rows": rows, "problems": problems, "screenshot": str(shot), "ok": bool(ok),
            "console_info_lines": sum(1 for m in page["console"] if m["type"] == "error") - len(
                wr.console_errors(page["console"]))}


def _ms(us: float | None) -> str:
    return fmt_num(None if us is None else us / 1e3, ".3f")


def render(result: dict[str, Any]) -> str:
    def vs(r: dict[str, Any], key: str, f) -> str:
        return f((r.get("vs_wasm") or {}).get(key)) if r.get("vs_wasm") else ""

    rows = [[r["format"], r["runtime"], fmt_pct(r["agreement"]), fmt_num(r["max_abs_diff"], ".2e"),
             vs(r, "agreement", fmt_pct), vs(r, "max_abs_diff", lambda v: fmt_num(v, ".2e")),
             "PASS" if r["gate"] == "pass" else "FAILED", _ms(r["p50_us"]), _ms(r["native_p50_us"]),
             fmt_num(r["browser_vs_native"], ".1f") + "x" if r["browser_vs_native"] else ""] for r in result["rows"]]
    header = ["web model", "engine (backend)", "top-1 = Keras", "max |p - Keras|", "top-1 = wasm", "max |p - wasm|",
              "gate", "browser p50 ms", "native p50 ms", "ratio"]
    lines = [text_table(f"{result['model']}: {result['data']['n']} real test images in {result['browser']}",
                        header, rows, left=2)]
    lines += [f"  {p['accelerator']}: adapter {wr.adapter_name(p.get('adapter'))}" for p in result.get("pages", [])
              if p.get("adapter") and p["accelerator"] != web_engines.ACCELERATORS[0]]
    if any(wr.software(p.get("adapter")) for p in result.get("pages", [])):
        lines.append(f"  {wr.SOFTWARE_NOTE}")
    lines += [f"  {f}" for r in result["rows"] for f in r["failures"]]
    lines += [f"  FAIL {p}" for p in result["problems"]]
    lines.append(f"  screenshot: {result['screenshot']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from edgeport.export.targets import bundle_model
    from edgeport.manifest import find_model_dir

    ap = argparse.ArgumentParser(prog="web_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--install", action="store_true", help="only install the npm engines and puppeteer-core")
    ap.add_argument("--out", type=Path, default=Path("artifacts"))
    ap.add_argument("--dist", type=Path, default=Path("dist"))
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gates", default=None, help="gate overrides (default: the gates the model was verified with)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--accelerators", default=",".join(web_engines.ACCELERATORS),
                    help=f"page backends, comma-separated, {web_engines.ACCELERATORS[0]} first "
                         f"(default: {','.join(web_engines.ACCELERATORS)})")
    args = ap.parse_args(argv)
    ok = True
    try:
        if args.install:
            print(f"web engines: {web_engines.engines()}\npuppeteer-core: {puppeteer()}\nchromium: {chromium()}")
            return 0
        for name in args.models:
            bundle = bundle_model(name, target="web", out=args.out, dist=args.dist, samples=args.samples,
                                  seed=args.seed, data_dir=args.data_dir)
            model_dir = find_model_dir(name, args.out)
            result = check_bundle(bundle.folder, model_dir, samples=args.samples, seed=args.seed,
                                  data_dir=args.data_dir, gates=args.gates, shots=args.out / "report" / "web",
                                  accelerators=tuple(a.strip() for a in args.accelerators.split(",") if a.strip()))
            result["sizes"] = {k: v for k, v in (json.loads((bundle.folder / "bundle.json").read_text())
                                                 .get("sizes") or {}).items()}
            write_json_atomic(model_dir / RESULT_FILE, result)
            print(render(result))
            print("  bundle: " + ", ".join(f"{k} {human_size(v)}" for k, v in result["sizes"].items())
                  + f"; archive {human_size(bundle.archive.stat().st_size)}", flush=True)
            ok &= result["ok"]
    except EdgeportError as exc:
        print(f"edgeport: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    from edgeport.native_log import native_to_log

    with native_to_log("web-check"):  # TensorFlow's, absl's and oneDNN's lines: to the log, as in every command
        code = main()
    sys.exit(code)
