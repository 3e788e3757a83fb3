"""`make pi-emulation`: prove every .tflite artifact runs on a Raspberry Pi 4 and matches x86.

The "Pi" is an arm64 Debian bookworm sysroot run by ``qemu-aarch64-static -cpu cortex-a72``
(``pi_sysroot.py``) with numpy and ai-edge-litert 2.3 and no TensorFlow. For each model, N real
test images (seeded) go through each .tflite artifact twice, via ``edgeport.runtimes``: under
emulation (``python3.11 -m edgeport.benchmarks.devices.pi_emulation --guest JOB``, one process per
artifact, killed after a timeout) and on this x86 host. The outputs must agree within:

- float outputs (fp32, fp16, dynamic-range): max |arm - x86| <= 1e-5 (the engines' float kernels
  differ by a few ULP: XNNPACK's x86 (AVX) kernels vs its Arm (NEON) ones);
- quantized outputs (a quantized output tensor, or a final DEQUANTIZE of one: int8, int16x8):
  at most one quantization step of that tensor.

Writes ``OUT/MODEL/pi_emulation.json`` and ``OUT/report/pi-emulated/report.json`` (the shape
`edgeport report merge` joins; its agreement and max error are against x86, not Keras).
Timings under qemu are an x86 host translating Arm code: they are recorded as emulated seconds,
never as latency. Exit status 1 when any artifact fails its gate or the emulated process dies.
"""
from __future__ import annotations

import importlib.util
import json
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.errors import EdgeportError

DEVICE_NAME = "Raspberry Pi 4 (emulated: qemu-aarch64 cortex-a72)"
RESULT_FILE = "pi_emulation.json"
REPORT_DIR = Path("report") / "pi-emulated"
FLOAT_MAX_ABS_DIFF = 1e-5
TIMING_NOTE = "wall time under qemu-user on an x86 host: not a Raspberry Pi's speed"


@dataclass(frozen=True)
class Tolerance:
    max_abs_diff: float
    basis: str


def tolerance_for(step: float | None) -> Tolerance:
    """One quantization step for quantized outputs, else the float gate."""
    if step:
        return Tolerance(step * (1 + 1e-6), "1 step")
    return Tolerance(FLOAT_MAX_ABS_DIFF, "float")


def compare(x86: np.ndarray, arm: np.ndarray, tol: Tolerance, labels: np.ndarray | None = None,
            step: float | None = None) -> dict[str, Any]:
    """Arm outputs against x86 outputs of the same artifact on the same inputs."""
    if x86.shape != arm.shape:
        return {"status": "fail", "error": f"output shape {arm.shape} on Arm, {x86.shape} on x86"}
    a, b = arm.astype(np.float64), x86.astype(np.float64)
    diff = np.abs(a - b)
    finite = bool(np.isfinite(a).all())
    big = np.abs(b) >= 1e-3
    f: dict[str, Any] = {
        "n": len(a), "identical": bool(np.array_equal(arm, x86)), "differing_values": int((diff > 0).sum()),
        "max_abs_diff": float(diff.max()) if finite else float("inf"),
        "mean_abs_diff": float(diff.mean()) if finite else float("inf"),
        "max_rel_diff": float((diff[big] / np.abs(b[big])).max()) if finite and big.any() and not step else None,
        "tolerance": tol.max_abs_diff, "tolerance_basis": tol.basis}
    if step:
        f["max_steps"] = round(f["max_abs_diff"] / step, 3)
    if a.ndim == 2 and a.shape[1] > 1:
        pa, pb = a.argmax(1), b.argmax(1)
        f["agreement"], f["disagreements"] = float((pa == pb).mean()), int((pa != pb).sum())
        if labels is not None:
            f["accuracy"], f["x86_accuracy"] = float((pa == labels).mean()), float((pb == labels).mean())
    f["status"] = "pass" if finite and f["max_abs_diff"] <= tol.max_abs_diff else "fail"
    return f


def first_output(out: Any) -> np.ndarray:
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, np.float32)


def output_step(path: Path) -> float | None:
    """The quantization step of the first output: its own scale, or that of the integer tensor a
    final DEQUANTIZE reads (int16x8 models return float). None for a float output."""
    from edgeport.runtimes.litert import import_engine

    Interpreter, resolvers, _, _ = import_engine()
    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    out = interp.get_output_details()[0]
    if out["quantization"][0]:
        return float(out["quantization"][0])
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    for op in interp._get_ops_details():
        if op["op_name"] == "DEQUANTIZE" and out["index"] in list(op["outputs"]):
            return float(tensors[int(op["inputs"][0])]["quantization"][0]) or None
    return None


# -- the emulated side -------------------------------------------------------------------------

def guest(job_file: str) -> int:
    """Inside the emulated Pi: run one artifact on the inputs, save outputs and what ran them."""
    from edgeport.benchmarks.device_info import device_info
    from edgeport.runtimes import load

    job = json.loads(Path(job_file).read_text())
    x = np.load(job["inputs"])
    start = time.perf_counter()
    # probe=False: this whole process is the probe (the host times it out and reads its signal)
    session = load(job["artifact"], runtime="litert", probe=False)
    out = session.predict(x)
    seconds = time.perf_counter() - start
    np.save(job["outputs"], first_output(out))
    Path(job["result"]).write_text(json.dumps({
        "engine": session.engine, "machine": platform.machine(),
        "tensorflow_installed": importlib.util.find_spec("tensorflow") is not None,
        "tensorflow_imported": "tensorflow" in sys.modules, "emulated_seconds": round(seconds, 3),
        "device": device_info()}))
    return 0


def run_guest(root, artifact: Path, inputs: Path, work: Path, timeout: float) -> tuple[np.ndarray, dict]:
    """Run ``guest`` under qemu; a crash, hang or error becomes an EdgeportError naming the file."""
    job = {"artifact": str(artifact.resolve()), "inputs": str(inputs), "outputs": str(work / "arm.npy"),
           "result": str(work / "arm.json")}
    (work / "job.json").write_text(json.dumps(job))
    cmd = root.command("-m", "edgeport.benchmarks.devices.pi_emulation", "--guest", str(work / "job.json"))
    no_core = lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # noqa: E731
    try:
        proc = subprocess.run(cmd, env=root.env(), cwd=work, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=no_core)
    except subprocess.TimeoutExpired:
        raise EdgeportError(f"{artifact.name}: the emulated process did not finish in {timeout:g} s "
                            "(killed); raise --timeout if the host is busy") from None
    tail = "\n".join((proc.stderr or "").strip().splitlines()[-6:])
    if proc.returncode < 0 or proc.returncode >= 128:
        sig = -proc.returncode if proc.returncode < 0 else proc.returncode - 128
        name = signal.Signals(sig).name if sig in signal.valid_signals() else "a signal"
        raise EdgeportError(f"{artifact.name}: the emulated process died with {name} (signal {sig}) "
                            f"(ai-edge-litert under qemu needs the fake cpuinfo in {root.rootfs}/proc)\n{tail}")
    if proc.returncode != 0:
        raise EdgeportError(f"{artifact.name}: the emulated process failed (exit {proc.returncode}):\n{tail}")
    return np.load(work / "arm.npy"), json.loads((work / "arm.json").read_text())


# -- the host side -----------------------------------------------------------------------------

@dataclass
class PiEmulationReport:
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    setup_s: float = 0.0
    run_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(m["ok"] for m in self.models.values())

    def render(self) -> str:
        from edgeport.benchmarks.tables import fmt_num, fmt_pct, text_table

        def gate(r: dict[str, Any]) -> str:
            return r["status"].upper() + (": " + r["error"].splitlines()[0] if r.get("error") else "")

        rows = [[m, r["format"], r.get("engine", "-"), fmt_num(r.get("max_abs_diff"), ".2e"),
                 f"{fmt_num(r.get('tolerance'), '.2e')} ({r.get('tolerance_basis', '-')})",
                 fmt_pct(r.get("agreement")), "yes" if r.get("identical") else "no", gate(r)]
                for m, sec in self.models.items() for r in sec["results"]]
        header = ["model", "format", "engine (aarch64)", "max |arm-x86|", "tolerance", "top-1 agree",
                  "identical", "gate"]
        out = [text_table(f"{DEVICE_NAME} vs x86", header, rows, left=3)]
        out.append(f"setup {self.setup_s:.1f} s, run {self.run_s:.1f} s (emulated; no latency measured)")
        return "\n".join(out + [f"wrote {p}" for p in self.files])


def _inputs(model_dir: Path, manifest: dict[str, Any], n: int, seed: int):
    from edgeport.training.testset import load_testset

    test = load_testset(model_dir, manifest)
    idx = np.sort(np.random.default_rng(seed).choice(len(test), size=min(n, len(test)), replace=False))
    x = np.ascontiguousarray(test.x[idx], dtype=np.float32)
    y = test.y.reshape(-1)[idx].astype(np.int64) if test.y is not None and test.task == "classification" else None
    return x, y, {"dataset": test.dataset, "source": test.source, "n": len(idx), "seed": seed,
                  "test_set_size": len(test)}


def _artifact(root, model_dir: Path, fmt: str, entry: dict[str, Any], x: np.ndarray, y, inputs: Path,
              work: Path, timeout: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One artifact's row (x86 vs emulated Arm) and the device block the emulated run saw."""
    from edgeport.manifest import check_integrity
    from edgeport.runtimes import load

    row: dict[str, Any] = {"format": fmt, "file": entry["file"], "precision": entry.get("precision"),
                           "size_bytes": entry.get("bytes"), "sha256": entry.get("sha256")}
    try:
        path = check_integrity(model_dir, entry)
        x86 = first_output(load(path, runtime="litert").predict(x))
        step = output_step(path)
        arm, info = run_guest(root, path, inputs, work, timeout)
    except EdgeportError as exc:
        return {**row, "status": "fail", "error": str(exc)}, None
    keys = ("engine", "machine", "tensorflow_installed", "tensorflow_imported", "emulated_seconds")
    row.update({k: info[k] for k in keys})
    row.update(compare(x86, arm, tolerance_for(step), y, step))
    if info["machine"] != "aarch64" or info["tensorflow_installed"] or info["tensorflow_imported"]:
        row["status"] = "fail"
        row["error"] = (f"not a TensorFlow-free aarch64 run: machine {info['machine']}, tensorflow "
                        f"installed {info['tensorflow_installed']}, imported {info['tensorflow_imported']}")
    return row, info["device"]


def _device_block(guest_device: dict[str, Any] | None, root) -> dict[str, Any]:
    qemu = subprocess.run([root.command()[0], "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    # cores: the board's; the emulated process itself sees (and runs on) the host's cores
    return {**(guest_device or {}), "name": DEVICE_NAME, "cores": root.board.cores,
            "logical_cpus": root.board.cores, "emulated": True, "board": root.board.model,
            "emulator": f"{qemu} -cpu {root.board.qemu_cpu}",
            "note": "parity against x86 litert on the same artifact; no timings"}


def _write_report(out: Path, sections: dict[str, dict[str, Any]], device: dict[str, Any]) -> Path:
    """OUT/report/pi-emulated/report.json in the shape `edgeport report merge` reads."""
    from edgeport.files import write_json_atomic

    dest = out / REPORT_DIR / "report.json"
    try:
        models = json.loads(dest.read_text()).get("models", {})
    except (OSError, ValueError):
        models = {}
    for name, sec in sections.items():
        models[name] = {"rows": [{
            "model": name, "format": r["format"], "runtime": "litert", "target": "cpu",
            "precision": r.get("precision"), "size_bytes": r.get("size_bytes"), "accuracy": r.get("accuracy"),
            "agreement": r.get("agreement"), "max_abs_diff": r.get("max_abs_diff"), "gate": r["status"],
            "engine": r.get("engine"), "reference": "x86 litert, same artifact"} for r in sec["results"]]}
    return write_json_atomic(dest, {"schema": 1, "generated": _now(), "device_name": DEVICE_NAME,
                                    "device": device, "models": models})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_pi_emulation(models: list[str], *, out: Path = Path("artifacts"), n: int = 500, seed: int = 0,
                     timeout: float = 300.0, cache: Path | None = None, mirror: str | None = None,
                     source: Path | None = None) -> PiEmulationReport:
    """Run every .tflite artifact of each model on an emulated Raspberry Pi 4 and compare with x86.

    models: model names (directories under --out with manifest.json)
    n: real test images per model (a seeded random sample)
    timeout: seconds one emulated artifact run may take before it is killed
    cache: where the sysroot and wheels live (default $EDGEPORT_DATA_HOME/pi-sysroot)
    mirror: Debian mirror for debootstrap (default: the one apt is configured with)
    source: the edgeport source tree installed into the sysroot (default: this checkout)
    """
    from edgeport.benchmarks.devices import pi_sysroot
    from edgeport.benchmarks.device_info import device_info
    from edgeport.files import write_json_atomic
    from edgeport.manifest import load_manifest

    if n < 1 or timeout <= 0:
        raise EdgeportError(f"--n and --timeout must be positive (got {n}, {timeout})")
    report, out, t0 = PiEmulationReport(), Path(out), time.perf_counter()
    root = pi_sysroot.prepare(cache, mirror=mirror, source=source)
    report.setup_s = time.perf_counter() - t0
    guest_device = None
    with tempfile.TemporaryDirectory(prefix="edgeport-pi-") as tmp:
        for name in dict.fromkeys(models):
            model_dir = out / name
            manifest = load_manifest(model_dir)
            x, y, data = _inputs(model_dir, manifest, n, seed)
            inputs = Path(tmp) / f"{name}-inputs.npy"
            np.save(inputs, x)
            results = []
            for fmt, entry in manifest["artifacts"].items():
                if not str(entry.get("file", "")).endswith(".tflite"):
                    continue
                print(f"pi-emulation: {name} {entry['file']}", flush=True)
                work = Path(tempfile.mkdtemp(dir=tmp))
                row, seen = _artifact(root, model_dir, fmt, entry, x, y, inputs, work, timeout)
                results.append(row)
                guest_device = guest_device or seen
            if not results:
                raise EdgeportError(f"{model_dir}: the manifest lists no .tflite artifact; run `edgeport export {name}`")
            report.models[name] = {"schema": 1, "model": name, "generated": _now(), "device_name": DEVICE_NAME,
                                   "inputs": data, "results": results, "timing_note": TIMING_NOTE,
                                   "ok": all(r["status"] == "pass" for r in results)}
    report.run_s = time.perf_counter() - t0 - report.setup_s
    device, host = _device_block(guest_device, root), device_info()
    for name, sec in report.models.items():
        sec.update(device=device, host={k: host[k] for k in ("cpu", "machine", "versions")},
                   setup_s=round(report.setup_s, 1), run_s=round(report.run_s, 1))
        report.files.append(write_json_atomic(out / name / RESULT_FILE, sec))
    report.files.append(_write_report(out, report.models, device))
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--guest"]:
        return guest(argv[1])
    from edgeport.cli import build_parser

    args = build_parser(run_pi_emulation, "python -m edgeport.benchmarks.devices.pi_emulation").parse_args(argv)
    try:
        report = run_pi_emulation(**vars(args))
    except EdgeportError as exc:
        print(f"pi-emulation: error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
