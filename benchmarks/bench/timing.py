"""The timing harness: warm up, then a time-bounded series of calls timed one by one.

Used inside the benchmark worker (one fresh process per measurement); numpy only.
"""
from __future__ import annotations

import resource
import sys
import time
from typing import Any, Callable

import numpy as np


def summarize_ns(samples_ns: list[int] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean/std/min/max of per-call times, in microseconds, plus the call count."""
    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    if us.size == 0:
        raise ValueError("no timing samples")
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {"n": int(us.size), "p50_us": float(p50), "p90_us": float(p90), "p99_us": float(p99),
            "mean_us": float(us.mean()), "std_us": float(us.std(ddof=1) if us.size > 1 else 0.0),
            "min_us": float(us.min()), "max_us": float(us.max()), "total_s": float(us.sum() / 1e6)}


def time_once(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e9


def time_series(fn: Callable[[], Any], *, seconds: float, warmup_seconds: float | None = None,
                min_calls: int = 5, max_calls: int = 1_000_000, min_warmup_calls: int = 3) -> dict[str, Any]:
    """Warm up, then call ``fn`` until ``seconds`` have passed (at least ``min_calls`` times).

    Each call is timed on its own with ``perf_counter_ns``; returns :func:`summarize_ns` plus
    the warm-up call count.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    warmup_seconds = min(0.5, seconds / 4) if warmup_seconds is None else warmup_seconds
    warm, start = 0, time.perf_counter()
    while warm < min_warmup_calls or time.perf_counter() - start < warmup_seconds:
        fn()
        warm += 1
    samples: list[int] = []
    clock, deadline = time.perf_counter_ns, time.perf_counter_ns() + int(seconds * 1e9)
    while len(samples) < max_calls and (len(samples) < min_calls or clock() < deadline):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return {**summarize_ns(samples), "warmup_calls": warm}


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far.

    Linux: VmHWM from /proc/self/status, the high-water mark of this program's own memory.
    (ru_maxrss is not used there: it carries the forking parent's peak across exec.) Elsewhere
    ru_maxrss (KiB on BSDs, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def rate(fn: Callable[[], Any], n: int, seconds: float) -> dict[str, float]:
    stats = time_series(fn, seconds=seconds, min_calls=3, min_warmup_calls=1, warmup_seconds=0.0)
    best_s = stats["min_us"] / 1e6
    gmacs = n ** 3 / best_s / 1e9
    return {"calls": stats["n"], "best_s": best_s, "gmac_s": gmacs, "gflop_s": 2 * gmacs}


def numpy_matmul_rate(a: np.ndarray, b: np.ndarray, seconds: float) -> dict[str, float]:
    out = np.empty_like(a)
    return rate(lambda: np.matmul(a, b, out=out), len(a), seconds)


def onnx_matmul_session(op: str, a_type: int, c_type: int, b: np.ndarray, n: int, threads: int | None):
    """An ONNX Runtime CPU session of one [n, n] x b node (``op``: MatMul, MatMulInteger): feed "a"."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["c"])], "peak",
                              [helper.make_tensor_value_info("a", a_type, [n, n])],
                              [helper.make_tensor_value_info("c", c_type, [n, n])],
                              [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads, so.inter_op_num_threads = int(threads), 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def onnxruntime_matmul_rate(a: np.ndarray, b: np.ndarray, seconds: float, threads: int | None) -> dict[str, float]:
    """The same product through ONNX Runtime's MLAS kernels (which pick AVX-512/NEON at run time)."""
    from onnx import TensorProto

    sess = onnx_matmul_session("MatMul", TensorProto.FLOAT, TensorProto.FLOAT, b, len(a), threads)
    return rate(lambda: sess.run(None, {"a": a}), len(a), seconds)


def matmul_peak(n: int = 2048, *, seconds: float = 1.0, threads: int | None = None) -> dict[str, Any]:
    """This machine's dense float32 rate: the best of time-bounded series of n x n matrix products,
    through numpy's BLAS and, when installed, ONNX Runtime (a BLAS build may not know a new CPU
    and fall back to older kernels; the faster library is closer to what the hardware can do).

    A product costs n^3 multiply-accumulates (2 n^3 FLOP). BLAS threads are set by the process's
    environment (the bench sets OPENBLAS/OMP/MKL_NUM_THREADS per child).
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    by_library: dict[str, Any] = {"numpy": numpy_matmul_rate(a, b, seconds)}
    try:
        by_library["onnxruntime"] = onnxruntime_matmul_rate(a, b, seconds, threads)
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - the numpy figure stands alone
        by_library["onnxruntime"] = {"error": f"{type(exc).__name__}: {exc}"}
    source, best = max(((k, v) for k, v in by_library.items() if "gmac_s" in v), key=lambda kv: kv[1]["gmac_s"])
    return {"n": n, "source": source, "gmac_s": best["gmac_s"], "gflop_s": best["gflop_s"], "by_library": by_library}
