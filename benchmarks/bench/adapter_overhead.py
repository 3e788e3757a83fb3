"""What the runtime adapter costs: ``session.predict`` vs a bare engine loop, batch 1.

    python -m edgeport.benchmarks.bench.adapter_overhead artifacts/fashion_mlp/model.tflite [...]

For a .tflite the bare loop is ``set_tensor / invoke / get_tensor`` on an interpreter of the same
engine, threads and delegates; for an .onnx it is ``InferenceSession.run`` with the same options.
Quantized models get a second bare loop that also quantizes the input and dequantizes the
output by hand, which is what a caller of the bare engine has to write to use the model at all.
Both sides are warmed up, then timed call by call in interleaved rounds (median and p90).
The gate: the adapter's median within 10% or 2 µs of the bare loop's. For a quantized model
the gate is taken against the bare loop that also (de)quantizes (the raw loop feeds integers and
returns integers, so it does not meet the model's contract); both differences are printed.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeport.model_files import model_file_kind
from edgeport.runtimes import load

GATE_RATIO = 1.10
GATE_ABS_US = 2.0


@dataclass
class Figures:
    median_us: float
    p90_us: float


@dataclass
class Result:
    artifact: str
    engine: str
    threads: int | None
    bare: Figures
    session: Figures
    bare_with_quant: Figures | None
    ratio: float  # session / bare loop
    diff_us: float  # session - bare loop
    gate_against: str  # "bare", "bare_with_quant" or "session_raw"
    within_gate: bool
    session_raw: Figures | None = None  # predict() fed raw uint8 pixels, the bare loop's own input

    def render(self) -> str:
        s, b, bq = self.session, self.bare, self.bare_with_quant
        lines = [f"{self.artifact} [{self.engine}, threads={self.threads}]",
                 f"  bare set/invoke/get   {b.median_us:8.2f} µs (p90 {b.p90_us:.2f})"]
        if bq:
            lines.append(f"  bare + (de)quantize   {bq.median_us:8.2f} µs (p90 {bq.p90_us:.2f})")
        lines.append(f"  session.predict       {s.median_us:8.2f} µs (p90 {s.p90_us:.2f})")
        if self.session_raw:
            r = self.session_raw
            lines.append(f"  predict(uint8 pixels) {r.median_us:8.2f} µs (p90 {r.p90_us:.2f}), "
                         f"{r.median_us - b.median_us:+.2f} µs vs bare on the same uint8 input")
        lines.append(f"  vs bare: ratio {self.ratio:.3f}, {self.diff_us:+.2f} µs")
        if bq:
            lines.append(f"  vs bare + (de)quantize: ratio {s.median_us / bq.median_us:.3f}, "
                         f"{s.median_us - bq.median_us:+.2f} µs")
        verdict = "within" if self.within_gate else "OUTSIDE"
        lines.append(f"  {verdict} the gate (10% or {GATE_ABS_US:g} µs, against {self.gate_against})")
        return "\n".join(lines)


def _time_rounds(fns: dict[str, Callable[[], object]], *, seconds: float, rounds: int
                 ) -> dict[str, Figures]:
    """Interleave the functions in rounds; time every call; median and p90 per function."""
    for fn in fns.values():  # warm up
        for _ in range(200):
            fn()
    t0 = time.perf_counter()
    for _ in range(200):
        next(iter(fns.values()))()
    per_call = max((time.perf_counter() - t0) / 200, 1e-7)
    n = max(50, int(seconds / rounds / len(fns) / per_call))
    samples: dict[str, list[int]] = {k: [] for k in fns}
    clock = time.perf_counter_ns
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                out = samples[name]
                for _ in range(n):
                    t = clock()
                    fn()
                    out.append(clock() - t)
    finally:
        if gc_was:
            gc.enable()
    return {k: Figures(float(np.median(v)) / 1e3, float(np.percentile(v, 90)) / 1e3)
            for k, v in samples.items()}


def _sample(session) -> np.ndarray:
    spec = session.inputs[0]
    shape = (1, *(d or 1 for d in spec.shape[1:]))
    return np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)


def _litert_bare(session, x: np.ndarray) -> dict[str, Callable[[], object]]:
    from edgeport.runtimes.litert import import_engine

    Interpreter, resolvers, _, _ = import_engine(session.engine.split()[0])
    kw = {"model_path": str(session.path)}
    if session.threads is not None:
        kw["num_threads"] = session.threads
    if not session.xnnpack:
        kw["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(**kw)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    i, o = inp["index"], out["index"]
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    dtype = inp["dtype"]
    feed = x.astype(dtype) if not in_scale else np.clip(
        np.round(x / in_scale) + in_zp, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)

    def bare():
        interp.set_tensor(i, feed)
        interp.invoke()
        return interp.get_tensor(o)

    fns = {"bare": bare}
    if in_scale:
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max

        def bare_quant():
            interp.set_tensor(i, np.clip(np.round(x / in_scale) + in_zp, lo, hi).astype(dtype))
            interp.invoke()
            return (interp.get_tensor(o).astype(np.float32) - out_zp) * out_scale
        fns["bare_with_quant"] = bare_quant
    return fns


def _onnx_bare(session, x: np.ndarray) -> dict[str, Callable[[], object]]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if session.threads is not None:
        so.intra_op_num_threads = session.threads
        so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(session.path), sess_options=so,
                                providers=session.providers)
    name = sess.get_inputs()[0].name

    def bare():
        return sess.run(None, {name: x})[0]
    return {"bare": bare}


def measure(path: str | Path, *, threads: int | None = 1, seconds: float = 4.0, rounds: int = 8,
            **options) -> Result:
    """Batch-1 latency of session.predict vs the bare engine loop on one artifact."""
    session = load(path, threads=threads, **options)
    if len(session.inputs) != 1:
        raise SystemExit(f"{path}: the benchmark feeds single-input models")
    x = _sample(session)
    engine_loop = _litert_bare if model_file_kind(session.path) == "tflite" else _onnx_bare
    fns = engine_loop(session, x)
    reference = fns["bare_with_quant" if "bare_with_quant" in fns else "bare"]()
    np.testing.assert_allclose(session.predict(x), reference, atol=1e-6)
    fns["session"] = lambda: session.predict(x)
    spec = session.inputs[0]
    if spec.dtype == "uint8" and (spec.scale in (None, 0.0, 1.0)) and not spec.zero_point:
        raw = x.astype(np.uint8)  # what the bare loop feeds: uint8 pixels are this model's contract
        np.testing.assert_allclose(session.predict(raw), reference, atol=1e-6)
        fns["session_raw"] = lambda: session.predict(raw)
    figs = _time_rounds(fns, seconds=seconds, rounds=rounds)
    bare, sess = figs["bare"], figs["session"]
    if "session_raw" in figs:  # same model, same input as the bare loop
        against, mine, gate = "session_raw", figs["session_raw"], bare
    else:
        against = "bare_with_quant" if "bare_with_quant" in figs else "bare"
        mine, gate = sess, figs[against]
    within = (mine.median_us <= gate.median_us * GATE_RATIO
              or mine.median_us - gate.median_us <= GATE_ABS_US)
    return Result(str(path), session.engine, threads, bare, sess, figs.get("bare_with_quant"),
                  sess.median_us / bare.median_us, sess.median_us - bare.median_us, against, within,
                  figs.get("session_raw"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeport.benchmarks.bench.adapter_overhead",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", help=".tflite or .onnx files")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4.0, help="timing budget per artifact")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--no-xnnpack", action="store_true", help="litert without XNNPACK")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    results = []
    for path in args.artifacts:
        opts = {"xnnpack": False} if args.no_xnnpack and str(path).endswith(".tflite") else {}
        results.append(measure(path, threads=args.threads, seconds=args.seconds,
                               rounds=args.rounds, **opts))
        if not args.json:
            print(results[-1].render(), flush=True)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.within_gate for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
