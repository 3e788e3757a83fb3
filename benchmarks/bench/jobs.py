"""Benchmark jobs, each run in a fresh process by ``edgeport.worker``.

``runtime``: one artifact in one runtime (load, first inference, time-bounded series at batch 1
and 32, peak RSS); ``keras_predict``: Keras ``model.predict`` per call (framework overhead);
``peak``: this machine's float32 (or int8) matmul rate; ``macs``: MACs per image of a Keras model.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgeport.benchmarks.bench.timing import matmul_peak, peak_rss_bytes, time_once, time_series


def random_inputs(session, n: int = 32, seed: int = 0) -> np.ndarray:
    """Seeded inputs in the artifact's contract (raw 0-255 pixels for images), for an artifact that
    came without data; the bench says so in its inputs line."""
    from edgeport.runtimes.artifact_info import artifact_info

    spec = session.inputs[0]
    shape = [n, *(d or 1 for d in spec.shape[1:])]
    contract = artifact_info(session.path).contract
    lo, hi = contract.pixel_range if contract is not None else ((0.0, 255.0) if len(shape) == 4 else (-1.0, 1.0))
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


_CACHE: dict[str, Any] = {}


def _data(job: dict[str, Any], session=None) -> np.ndarray | dict[str, np.ndarray]:
    """The job's inputs: ``x`` (one input) or ``x/NAME`` per input from the command's .npz, else seeded
    random ones in the contract (a one-input artifact benched without data)."""
    if "data" not in _CACHE:
        if job.get("inputs") is None:
            _CACHE["data"] = random_inputs(session)
        else:
            from edgeport.runtimes.feeds import read_npz, split_arrays

            _CACHE["data"] = split_arrays(read_npz(job["inputs"]), job["inputs"])[0]
    return _CACHE["data"]


def _inputs(job: dict[str, Any], batch: int, session=None) -> np.ndarray | dict[str, np.ndarray] | None:
    """The job's inputs as a batch of ``batch`` (rows repeated); None when the model's inputs share
    no batch axis and ``batch`` is not 1 (they are fed as they are: that size is not measured)."""
    x = _data(job, session)
    if session is not None and (isinstance(x, dict) or not session.batched):
        from edgeport.runtimes.feeds import batch_of, by_input

        return batch_of(session, by_input(session, x, job.get("source") or str(job.get("inputs"))), batch)
    if isinstance(x, dict):  # keras.predict: arrays by Keras input name
        return {k: np.concatenate([v] * -(-batch // len(v)))[:batch] for k, v in x.items()}
    reps = -(-batch // len(x))
    return np.concatenate([x] * reps)[:batch]


def _floats(x: Any) -> Any:
    """Float inputs as float32 for Keras ``predict``; integer ones keep their dtype."""
    if isinstance(x, dict):
        return {k: _floats(v) for k, v in x.items()}
    return x.astype(np.float32) if x.dtype.kind == "f" else x


def _series(fn_for_batch, job: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for batch in job.get("batch_sizes", [1, 32]):
        try:
            fn = fn_for_batch(batch)
            if isinstance(fn, str):  # not measurable at this batch size: why, recorded
                out[f"batch{batch}"] = {"not_measured": fn}
                continue
            stats = time_series(fn, seconds=float(job["seconds"]))
            stats["images_per_s"] = batch * stats["n"] / stats["total_s"]
            out[f"batch{batch}"] = stats
        except Exception as exc:  # noqa: BLE001 - record, keep the other batch size
            out[f"batch{batch}"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def run_runtime(job: dict[str, Any]) -> dict[str, Any]:
    from edgeport.runtimes import load

    baseline = peak_rss_bytes()
    t0 = time.perf_counter()
    # probe=False: this process is already the guard (the parent reports a crash here as the row's error)
    session = load(job["path"], runtime=job["runtime"], threads=job.get("threads"),
                   device=job.get("device", "cpu"), probe=False, **job.get("options", {}))
    load_s = time.perf_counter() - t0
    x1 = _inputs(job, 1, session)
    first_s = time_once(lambda: session.predict(x1))

    def for_batch(batch: int):
        x = _inputs(job, batch, session)
        if x is None:
            return f"not measured at batch {batch}: {session.unbatched_reason()}; timed at batch 1 only"
        return lambda: session.predict(x)

    series = _series(for_batch, job)
    notes = list(session.notes) + [v["not_measured"] for v in series.values() if "not_measured" in v]
    result = {"load_s": load_s, "first_inference_s": first_s, "engine": session.engine, "notes": notes,
              "input_shapes": _shapes(x1), "baseline_rss_bytes": baseline, **series}
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def run_keras_predict(job: dict[str, Any]) -> dict[str, Any]:
    """``model.predict`` per call: what a naive benchmark times (framework overhead included)."""
    x1 = _floats(_inputs(job, 1))
    baseline = peak_rss_bytes()
    t0 = time.perf_counter()  # load time includes the engine's import, as in the runtime rows
    import tensorflow as tf

    from edgeport.runtimes.keras_runtime import set_tf_threads

    set_tf_threads(tf, job.get("threads"))  # the same thread settings as the keras runtime row
    import keras

    model = keras.models.load_model(job["path"], compile=False)
    load_s = time.perf_counter() - t0
    first_s = time_once(lambda: model.predict(x1, verbose=0))

    def for_batch(batch: int):
        x = _floats(_inputs(job, batch))
        return lambda: model.predict(x, verbose=0)

    result = {"load_s": load_s, "first_inference_s": first_s, "engine": f"keras {keras.__version__}",
              "baseline_rss_bytes": baseline, **_series(for_batch, job)}
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def _shapes(x: Any) -> dict[str, list[int]] | list[int]:
    """The shapes of one batch-1 feed, for the result (what every filled dimension became)."""
    return {k: list(v.shape) for k, v in x.items()} if isinstance(x, dict) else list(np.shape(x))


def run_peak(job: dict[str, Any]) -> dict[str, Any]:
    """The float32 matmul peak, or with ``"precision": "int8"`` the int8 one through each engine."""
    n, seconds, threads = int(job.get("n", 2048)), float(job.get("seconds", 1.0)), job.get("threads")
    if job.get("precision", "float32") == "int8":
        from edgeport.benchmarks.bench.int8_peak import int8_matmul_peak

        return int8_matmul_peak(n, seconds=seconds, threads=threads)
    return matmul_peak(n, seconds=seconds, threads=threads)


def run_macs(job: dict[str, Any]) -> dict[str, Any]:
    from edgeport.benchmarks.bench.macs import count_macs_file

    return count_macs_file(job["path"])


