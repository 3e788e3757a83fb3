"""Runtimes by name, resolved lazily; which runtime runs which artifact; what each can do; ``load``.

Nothing here imports an engine: a runtime's module (and its engine) is imported when a session
of it is created. A runtime's name is spelled here and in its own module only: callers ask its
:class:`Capabilities` (``capabilities(name).threads``), never ``name == ...``
(tests/test_runtime_homes.py keeps it so).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from edgeport.errors import LoadError, UnknownNameError
from edgeport.lazy import lookup, resolve
from edgeport.runtimes import guard

RUNTIMES: dict[str, str] = {
    "keras": "edgeport.runtimes.keras_runtime:KerasSession",
    "savedmodel": "edgeport.runtimes.savedmodel:SavedModelSession",
    "litert": "edgeport.runtimes.litert:LiteRTSession",
    "onnxruntime": "edgeport.runtimes.onnxruntime_runtime:OnnxRuntimeSession",
    "tflm": "edgeport.runtimes.tflm:TFLMSession",
}

#: Artifact kind -> the runtimes that can run it, the default first.
DEFAULTS: dict[str, tuple[str, ...]] = {
    "keras": ("keras",),
    "savedmodel": ("savedmodel",),
    "tflite": ("litert",),
    "onnx": ("onnxruntime",),
    "ort_format": ("onnxruntime",),
}

#: Runtime -> (import name, distribution names) of the engines it can use, preferred first.
ENGINES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "keras": (("keras", "keras", ("keras",)),),
    "savedmodel": (("tensorflow", "tensorflow",
                    ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly")),),
    "litert": (("ai_edge_litert", "ai_edge_litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
               ("tflite_runtime", "tflite_runtime", ("tflite-runtime",)),
               ("tensorflow", "tf.lite", ("tensorflow", "tensorflow-cpu", "tensorflow-macos",
                                          "tf-nightly"))),
    "onnxruntime": (("onnxruntime", "onnxruntime",
                     ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
                      "onnxruntime-directml", "onnxruntime-silicon")),),
    "tflm": (("tflite_micro", "tflite_micro", ("tflite-micro",)),),
}

#: Runtimes an artifact kind may be run with when asked by name, but never by default: TFLite
#: Micro takes only fixed-batch full-integer models (the microcontroller bundle's).
OPTIONAL: dict[str, tuple[str, ...]] = {"tflite": ("tflm",)}

FORMAT_HINTS = {"keras": ".keras", "savedmodel": "saved_model/ dir", "litert": ".tflite",
                "onnxruntime": ".onnx", "tflm": ".tflite (full integer, fixed batch)"}


@dataclass(frozen=True)
class Capabilities:
    """What a runtime can do, declared once; verify, bench, report and the targets ask these."""

    devices: tuple[str, ...] = ("cpu",)  # where it runs from Python: "cpu", "gpu"
    cpu_only: str = "no GPU path declared"  # why it has no GPU path (said when a GPU row is skipped); "" with one
    #: extra GPU rows: variant -> load options (labelled NAME-VARIANT, see variant_label)
    gpu_variants: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    threads: bool = True  # honours an engine thread count
    dynamic_batch: bool = True  # runs any batch size (False: the model's fixed batch only)
    precisions: tuple[str, ...] = ("float32",)  # weight/activation types it computes with
    source_model: bool = False  # runs a model's source: a float32 TensorFlow graph (fp16 reference lowered from it)
    noise: bool = False  # measures its own float32 noise (against a float64 twin of the model)
    bench_reference: bool = False  # bench times it as the reference (and its per-call predict, and the MACs)
    int8_matmul: str | None = None  # "module:attr" building its int8 GEMM (n, threads) -> callable: the int8 peak
    armv7l: bool = False  # has a wheel for 32-bit Arm Pi OS (what every Pi bundle can run)

    def __post_init__(self) -> None:
        if not self.devices or not set(self.devices) <= {"cpu", "gpu"}:
            raise ValueError(f"devices must be cpu and/or gpu, got {self.devices}")
        if "gpu" in self.devices:
            object.__setattr__(self, "cpu_only", "")
        elif not self.cpu_only:
            raise ValueError("a CPU-only runtime says why it has no GPU path")
        if self.gpu_variants and "gpu" not in self.devices:
            raise ValueError("GPU variants need the gpu device")
        object.__setattr__(self, "gpu_variants", MappingProxyType(dict(self.gpu_variants)))


_BENCH = "edgeport.benchmarks.bench.int8_peak:"
CAPABILITIES: dict[str, Capabilities] = {
    "keras": Capabilities(devices=("cpu", "gpu"), source_model=True, noise=True, bench_reference=True),
    "savedmodel": Capabilities(devices=("cpu", "gpu"), source_model=True),
    "litert": Capabilities(cpu_only="no GPU path for TFLite in Python (LiteRT GPU delegates are mobile-only)",
                           precisions=("float32", "float16", "int8", "int16", "int4"),
                           int8_matmul=_BENCH + "litert_int8_matmul", armv7l=True),
    "onnxruntime": Capabilities(devices=("cpu", "gpu"), precisions=("float32", "int8"),
                                gpu_variants={"tensorrt": {"providers": ["TensorrtExecutionProvider",
                                                                         "CUDAExecutionProvider"]}},
                                int8_matmul=_BENCH + "onnxruntime_int8_matmul"),
    "tflm": Capabilities(cpu_only="a microcontroller interpreter", threads=False, dynamic_batch=False,
                         precisions=("int8", "int16")),
}


def capabilities(name: str) -> Capabilities:
    """What runtime ``name`` (or a GPU variant's label, NAME-VARIANT) can do; a custom runtime
    (``"package.module:Class"``) declares nothing beyond the defaults."""
    name = runtime_of(name)
    if name in CAPABILITIES:
        return CAPABILITIES[name]
    if ":" in name:
        return Capabilities()
    raise UnknownNameError("runtime", name, list(CAPABILITIES))


def variant_label(name: str, variant: str) -> str:
    """The row label of a runtime's GPU variant: ``NAME-VARIANT``."""
    return f"{name}-{variant}"


def runtime_of(label: str) -> str:
    """The runtime a row label runs on: a GPU variant's label -> its runtime; any other label as it is."""
    name, _, variant = label.rpartition("-")
    return name if name in CAPABILITIES and variant in CAPABILITIES[name].gpu_variants else label


def runtimes_of_kind(kind: str) -> tuple[str, ...]:
    """Runtimes that run an artifact kind (``edgeport.model_files.KINDS``), the default first."""
    return DEFAULTS.get(kind, ())


def session_class(name: str) -> type:
    """The Session class of a runtime (imports its module, not yet its engine).

    ``name`` is a key of RUNTIMES, or a ``"package.module:Class"`` of a custom runtime.
    """
    if ":" in name:
        return resolve(name)
    return lookup(RUNTIMES, "runtime", name)


def runtimes_for(path: str | os.PathLike) -> list[str]:
    """Runtimes that can run the artifact at ``path``, the default first."""
    return list(DEFAULTS[guard.artifact_kind(path)])


def load(path: str | os.PathLike, *, runtime: str | None = None, threads: int | None = None,
         device: str = "cpu", probe: bool | None = None, **options: Any):
    """Load an artifact into a Session.

    runtime: a name from RUNTIMES; default by the artifact's kind (.tflite -> litert,
        .onnx -> onnxruntime, .keras -> keras, SavedModel dir -> savedmodel).
    threads: engine threads (None: the engine's default).
    device: "cpu" or "gpu" (DeviceUnavailable when the engine has no GPU here).
    probe: load it in a child process first, so a crash inside the engine cannot take this
        process down (None: the runtime's default; results are cached per file).
    options: runtime options (litert: xnnpack, engine; onnxruntime: graph_optimization_level,
        providers; every runtime: allow_nonfinite).
    """
    root = guard.model_root(path)
    kind = guard.validate(root)
    name = runtime or DEFAULTS[kind][0]
    cls = session_class(name)
    if name in RUNTIMES and name not in DEFAULTS[kind] + OPTIONAL.get(kind, ()):
        raise LoadError(f"{root}: runtime {name!r} cannot run a {kind} artifact; "
                        f"use {' or '.join(DEFAULTS[kind])}")
    if device not in ("cpu", "gpu"):
        raise LoadError(f"{root}: unknown device {device!r}; use 'cpu' or 'gpu'")
    if name in ENGINES and not any(importlib.util.find_spec(mod) for mod, _, _ in ENGINES[name]):
        raise LoadError(f"{root}: runtime {name!r} needs {_install_hint(name)}")
    kwargs = dict(options, threads=threads, device=device)
    if probe if probe is not None else cls.probe_by_default:
        guard.probe(name, root, kwargs)
    return cls(root, **kwargs)


def _install_hint(name: str) -> str:
    engines = [dists[0] for _, _, dists in ENGINES[name]]
    return "one of: " + ", ".join(f"pip install {d}" for d in engines) if len(engines) > 1 \
        else f"pip install {engines[0]}"


def engine_versions(name: str) -> list[tuple[str, str | None]]:
    """[(engine label, version or None if not installed)] without importing any engine."""
    out = []
    for module, label, dists in ENGINES[name]:
        version = None
        if importlib.util.find_spec(module) is not None:
            version = "?"
            for dist in dists:
                try:
                    version = importlib.metadata.version(dist)
                    break
                except importlib.metadata.PackageNotFoundError:
                    continue
        out.append((label, version))
    return out


def list_runtimes() -> str:
    """List the runtimes, the artifacts each runs, and whether its engine is installed."""
    rows = [("runtime", "runs", "engine", "status")]
    for name in RUNTIMES:
        engines = engine_versions(name)
        usable = [(label, v) for label, v in engines if v]
        engine = f"{usable[0][0]} {usable[0][1]}" if usable else engines[0][0]
        status = "installed" if usable else f"missing ({_install_hint(name)})"
        if name == "litert" and usable:
            status += " (fallbacks: " + ", ".join(
                f"{label} {v or 'not installed'}" for label, v in engines if label != usable[0][0]) + ")"
        rows.append((name, FORMAT_HINTS[name], engine, status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}"
                     for r in rows)
