"""The reference every artifact is held to, computed once in a child process and cached.

- **float32 outputs**: the source model (Keras through a compiled function, or a SavedModel, or
  an artifact named with ``--reference``) on every verification input, by output name.
- **float32 noise**: how much float32 arithmetic itself moves each output: the largest
  |Keras float32 - the same Keras model in float64| over the first ``noise_n`` inputs. The
  float32 and fp16 gates scale with it, so a 150-layer network gets the slack its depth earns and
  a one-layer MLP does not. Without a Keras model there is no float64 twin: the noise is unknown
  and the gate says so (a fixed relative bound applies, recorded as such).
- **fp16 reference**: the format's own arithmetic: the model's float32 graph as the TFLite
  converter lowers it (Rescaling and BatchNorm folded into the weights) with every float weight
  rounded to float16, run in float32. (Rounding the *Keras* weights is not the same arithmetic:
  the converter rounds the folded weights.)

Cached in ``MODEL_DIR/reference_outputs.npz`` keyed by the model's and the data's sha256.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeport.children import raise_for
from edgeport.benchmarks.verify.jobs import count, load_inputs, predict_all
from edgeport import reference_set
from edgeport.runtimes.litert import round_float_weights

REFERENCE_FILE = reference_set.REFERENCE_FILE
SCHEME = 2
NOISE_N = 512
NO_NOISE = "no float64 twin of a {runtime} reference: float32 noise unknown"


@dataclass
class Reference:
    outputs: dict[str, np.ndarray]
    noise: dict[str, float | None]
    noise_basis: str
    runtime: str
    source: str
    fp16: dict[str, np.ndarray] | None = None
    fp16_basis: str = ""
    engine: str = ""
    cached: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    precision: str | None = None  # an engine artifact's precision class, read from its tensors (None: a model)
    precision_read: str = ""

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "runtime": self.runtime, "engine": self.engine, "cached": self.cached,
                "outputs": {k: list(v.shape) for k, v in self.outputs.items()},
                "noise": self.noise, "noise_basis": self.noise_basis,
                "fp16": self.fp16_basis or None, "seconds": round(self.seconds, 2),
                **({"precision": self.precision, "precision_read": self.precision_read} if self.precision else {})}


# -- the child side ------------------------------------------------------------------------------

def float64_twin(model: Any) -> Any:
    """The same Keras model with every layer in float64 and its weights cast exactly."""
    import keras

    def widen(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "dtype" and value == "float32":
                    value = "float64"
                elif key == "dtype" and isinstance(value, dict) and value.get("class_name") == "DTypePolicy":
                    value = {**value, "config": {**value.get("config", {}), "name": "float64"}}
                else:
                    value = widen(value)
                out[key] = value
            return out
        return [widen(v) for v in node] if isinstance(node, list) else node

    config = keras.saving.serialize_keras_object(model)
    twin = keras.saving.deserialize_keras_object(widen(config), safe_mode=True)
    twin.set_weights([np.asarray(w, np.float64) for w in model.get_weights()])
    return twin


def _noise(session, x, n: int) -> tuple[dict[str, float], str]:
    import keras

    from edgeport.runtimes.keras_runtime import output_names

    twin = float64_twin(session.model)
    sub = x[:n] if isinstance(x, np.ndarray) else (x if count(x) == 1 else {k: v[:n] for k, v in x.items()})
    ref32 = predict_all(session, sub)
    feed = (np.asarray(sub, np.float64) if isinstance(sub, np.ndarray)
            else [np.asarray(sub[k], np.float64) for k in session.input_keys])
    y = twin.predict(feed, verbose=0, batch_size=64)
    if isinstance(y, dict):
        y = [y[k] for k in sorted(y)]
    y = y if isinstance(y, (list, tuple)) else [y]
    names = output_names(session.model)
    noise = {name: float(np.max(np.abs(ref32[name].astype(np.float64) - np.asarray(v, np.float64)), initial=0.0))
             for name, v in zip(names, y)}
    return noise, f"max |Keras float32 - Keras float64| on the first {count(sub)} inputs (keras {keras.__version__})"


def _fp16(session, source: str, saved_model: str | None, x, work: Path) -> tuple[dict, str]:
    import warnings

    import tensorflow as tf

    from edgeport.export.tflite_batch1 import float32_lowered
    from edgeport.model_files import is_saved_model
    from edgeport.runtimes import guard, load

    if saved_model is None:
        if is_saved_model(guard.model_root(source)):
            saved_model = str(guard.model_root(source))
        else:
            saved_model = str(work / "savedmodel")
            session.model.export(saved_model, format="tf_saved_model", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a free-batch Keras RNN: at batch 1; a SavedModel source has no Keras model to trace again
        lowered, how = float32_lowered(Path(saved_model), getattr(session, "model", None), work)
    rounded, count_ = round_float_weights(lowered)
    path = work / "fp16_reference.tflite"
    path.write_bytes(rounded)
    outputs = predict_all(load(path, probe=False), x)
    return outputs, (f"float32 graph lowered by tf.lite {tf.__version__} from {Path(saved_model).name}"
                     f"{f' {how}' if how else ''}, {count_} float weight tensors rounded to float16")


def _artifact_fp16(session, runtime: str, x, work: Path) -> tuple[dict[str, np.ndarray] | None, str]:
    """The fp16 baseline of a reference that is itself an engine artifact, as it is: an fp16 artifact
    is its own (None: the reference's outputs); a float32 one with its float32 weights rounded to
    float16, run on the same engine; any other gives none, and says why."""
    from edgeport.benchmarks.verify.jobs import precision_hint
    from edgeport.export.registry import Precision
    from edgeport.runtimes import load

    hint, read_as = precision_hint(session)
    if hint == Precision.FP16.value:
        return None, f"the reference itself: an fp16 {runtime} artifact ({read_as}), the fp16 baseline as it is"
    rounded = session.float16_weights(work) if hint == Precision.FLOAT32.value else None
    if rounded is None:
        return {}, (f"none: a {runtime} reference of precision {hint} ({read_as}) is no fp16 artifact and "
                    "cannot be rewritten with float16 weights here")
    path, n = rounded
    return predict_all(load(path, runtime=runtime, probe=False), x), (
        f"the {runtime} reference with its {n} float32 weight tensors rounded to float16, run in float32")


def compute_reference(job: dict[str, Any]) -> dict[str, Any]:
    """Child side of :func:`reference_for`."""
    from edgeport.runtimes import capabilities, load

    t0 = time.perf_counter()
    session = load(job["path"], runtime=job["runtime"], threads=job.get("threads"), probe=False)
    can = capabilities(job["runtime"])
    x = load_inputs(job["inputs"])
    arrays = {f"f32/{k}": v for k, v in predict_all(session, x).items()}
    result: dict[str, Any] = {"engine": session.engine, "notes": list(session.notes)}
    if not can.source_model:
        from edgeport.benchmarks.verify.jobs import precision_hint

        result["precision"], result["precision_read"] = precision_hint(session)
    if can.noise:
        result["noise"], result["noise_basis"] = _noise(session, x, int(job.get("noise_n", NOISE_N)))
    else:
        result["noise"], result["noise_basis"] = None, NO_NOISE.format(runtime=job["runtime"])
    if job.get("fp16") and not can.source_model:
        with tempfile.TemporaryDirectory(prefix="edgeport-fp16ref-") as tmp:
            fp16, result["fp16_basis"] = _artifact_fp16(session, job["runtime"], x, Path(tmp))
        fp16 = {k[4:]: v for k, v in arrays.items()} if fp16 is None else fp16
        arrays.update({f"f16/{k}": v for k, v in fp16.items()})
    elif job.get("fp16"):
        with tempfile.TemporaryDirectory(prefix="edgeport-fp16ref-") as tmp:
            fp16, result["fp16_basis"] = _fp16(session, job["path"], job.get("savedmodel"), x, Path(tmp))
        arrays.update({f"f16/{k}": v for k, v in fp16.items()})
    np.savez(job["outputs"], **arrays)
    result["seconds"] = time.perf_counter() - t0
    return result


# -- the parent side -----------------------------------------------------------------------------

def _reference(data: dict[str, Any], *, cached: bool) -> Reference:
    meta, f32 = data["meta"], data["f32"]
    noise = meta.get("noise") or {n: None for n in f32}
    return Reference(outputs=f32, noise={n: noise.get(n) for n in f32}, noise_basis=meta.get("noise_basis", ""),
                     runtime=meta["runtime"], source=meta["source"], fp16=data["f16"],
                     fp16_basis=meta.get("fp16_basis", ""), engine=meta.get("engine", ""), cached=cached,
                     seconds=float(meta.get("seconds", 0.0)), notes=list(meta.get("notes", [])),
                     precision=meta.get("precision"), precision_read=meta.get("precision_read") or "")


def _read_cache(cache: Path, key: dict[str, Any]) -> Reference | None:
    try:
        data = reference_set.read(cache)
    except (OSError, ValueError, KeyError):
        return None  # none yet, unreadable or of an older scheme: recompute
    if data["meta"].get("key") != key:
        return None
    return _reference(data, cached=True)


def reference_for(source: Path, runtime: str, inputs: Path, *, key: dict[str, Any], cache: Path | None,
                  fp16: bool, saved_model: Path | None, threads: int | None, timeout: float) -> Reference:
    """The reference on the saved ``inputs``: from ``cache`` when its key matches, else computed in
    a child process (and cached)."""
    from edgeport.children import run_job

    key = {**key, "scheme": SCHEME, "fp16": fp16, "noise_n": NOISE_N, "runtime": runtime}
    if cache is not None and (hit := _read_cache(cache, key)) is not None:
        return hit
    with tempfile.TemporaryDirectory(prefix="edgeport-reference-") as tmp:
        out = Path(tmp) / "reference.npz"
        result = run_job({"kind": "reference", "path": str(source), "runtime": runtime, "inputs": str(inputs),
                          "outputs": str(out), "fp16": fp16, "noise_n": NOISE_N, "threads": threads,
                          "savedmodel": str(saved_model) if saved_model else None},
                         threads=threads, timeout=timeout)
        raise_for(result, f"{source} (the reference, on {runtime})")
        meta = {"key": key, "runtime": runtime, "source": str(source),
                **{k: result.get(k) for k in ("noise", "noise_basis", "fp16_basis", "engine", "notes", "seconds",
                                              "precision", "precision_read")}}
        with np.load(out, allow_pickle=False) as z:
            f32 = {k[4:]: z[k] for k in z.files if k.startswith("f32/")}
            f16 = {k[4:]: z[k] for k in z.files if k.startswith("f16/")} or None
        if cache is not None:
            reference_set.write(cache, f32=f32, f16=f16, meta=meta)
        return _reference({"f32": f32, "f16": f16, "meta": meta}, cached=False)


def cached_outputs(model_dir: Path, data_sha256: str | None) -> np.ndarray | None:
    """The cached float32 reference's first output on the data with ``data_sha256`` (report plots)."""
    try:
        data = reference_set.read(Path(model_dir) / REFERENCE_FILE)
    except (OSError, ValueError, KeyError):
        return None
    if data_sha256 is None or data["meta"].get("key", {}).get("data_sha256") != data_sha256:
        return None
    return next(iter(data["f32"].values()))


def from_reference_set(data: dict[str, Any]) -> Reference:
    """A Reference from a reference set a bundle carries (outputs computed where TensorFlow was)."""
    return _reference(data, cached=True)
