"""Guard the calling process against bad model files.

Two layers, both before an engine touches the file in this process:

1. ``validate``: cheap static checks per artifact kind (exists, non-empty, the TFLite flatbuffer
   identifier and bounds of every table and buffer, the ONNX/SavedModel protobuf structure, a
   ``.keras`` zip with ``config.json`` and intact CRCs). Typed ``LoadError`` naming the file.
2. ``probe``: create the engine session in a child process (same interpreter, same options) and
   run one batch of zeros through it. If the child dies by a signal (a crash inside native
   code) or fails, ``LoadError`` names the file and the cause. Results are cached per file
   identity (path, size, mtime, inode) and options, so repeated loads pay nothing.
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

from edgeport.children import RUNNER_FAILURES, error_class, message_of, raise_for, run_job
from edgeport import model_files
from edgeport.errors import LoadError
from edgeport.runtimes import fileformats
from edgeport.runtimes.base import available_memory

#: Artifact kinds and suffixes: one home, :mod:`edgeport.model_files` (every command asks it).
KINDS = model_files.KINDS
SUFFIXES = model_files.SUFFIXES
ORT_IDENTIFIER = model_files.ORT_IDENTIFIER

#: Seconds a probe may take before the engine is called hung (TensorFlow imports are slow).
PROBE_TIMEOUT_S = {"keras": 180.0, "savedmodel": 180.0}
DEFAULT_PROBE_TIMEOUT_S = 60.0

_PROBE_CACHE: dict[tuple, tuple[str, str] | None] = {}
#: Seconds each child probe took (most recent last), for reports and the benchmark.
PROBE_SECONDS: list[float] = []


def artifact_kind(path: str | os.PathLike) -> str:
    """``keras`` / ``savedmodel`` / ``tflite`` / ``onnx`` / ``ort_format`` for a path, or LoadError."""
    return model_files.model_file_kind(path)


def model_root(path: str | os.PathLike) -> Path:
    """The path an engine is given: a SavedModel's directory, otherwise the file."""
    p = Path(path)
    return p.parent if p.name in ("saved_model.pb", "saved_model.pbtxt") else p


def validate(path: str | os.PathLike, kind: str | None = None) -> str:
    """Static checks of an artifact; returns its kind. Raises LoadError naming the file."""
    p = model_root(path)
    kind = kind or artifact_kind(p)
    if not p.exists():
        raise LoadError(f"{p}: no such file or directory")
    try:
        if kind == "savedmodel":
            _validate_saved_model(p)
            return kind
        if not p.is_file():
            raise LoadError(f"{p}: not a file (a {kind} artifact is one file)")
        size = p.stat().st_size
        if size == 0:
            raise LoadError(f"{p}: empty file (0 bytes)")
        if kind == "tflite":
            info = fileformats.read_tflite(_read(p), with_metadata=False)
            available = available_memory()
            if info.tensor_bytes > available:
                raise LoadError(f"{p}: its tensors need {info.tensor_bytes / 2**30:.1f} GiB at batch 1 and this "
                                f"machine has {available / 2**30:.1f} GiB available: refused before allocating")
        elif kind == "onnx":
            fileformats.read_onnx(_read(p))
        elif kind == "ort_format":
            check_ort(_read(p))
        elif kind == "keras":
            _validate_keras(p)
    except fileformats.FormatError as exc:
        raise LoadError(f"{p}: not a valid {kind} file: {exc}") from None
    except OSError as exc:
        raise LoadError(f"{p}: unreadable ({exc.strerror or exc})") from None
    return kind


def check_ort(data: bytes) -> int:
    """Bounds-check an ORT-format flatbuffer down to its initializers' bytes; their count.

    ort.fbs: InferenceSession {ort_version, model:Model} -> Model {.., graph:Graph (field 7)} ->
    Graph {initializers:[Tensor] (field 0)} -> Tensor {.., raw_data:[ubyte] (field 4)}.
    """
    if len(data) < 8 or bytes(data[4:8]) != ORT_IDENTIFIER:
        raise fileformats.FormatError(f"file identifier is {bytes(data[4:8])!r}, not {ORT_IDENTIFIER!r} "
                                      "(not an ORT-format model)")
    fb = fileformats._Flat(data)
    root = fb.deref(0)
    model = fb.field(root, 1)
    if model is None:
        raise fileformats.FormatError("no model in the ORT file")
    model = fb.deref(model)
    for table, strings in ((root, (0,)), (model, (2, 3, 4, 6))):  # ort_version; producer, domain, doc
        for pos in (fb.field(table, i) for i in strings):
            if pos is not None:
                fb.bytes_at(pos)
    graph = fb.field(model, 7)
    if graph is None:
        raise fileformats.FormatError("the ORT model has no graph")
    graph = fb.deref(graph)
    for index in (1, 2):  # node_args, nodes
        if (pos := fb.field(graph, index)) is not None:
            for table in fb.tables(pos):
                fb.field(table, 0)
    inits = fb.field(graph, 0)
    tensors = fb.tables(inits) if inits is not None else []
    for tensor in tensors:
        raw = fb.field(tensor, 4)
        if raw is not None:
            fb.vector(raw, 1)
    return len(tensors)


def _read(p: Path) -> bytes:
    with open(p, "rb") as fh:
        return fh.read()


def _validate_keras(p: Path) -> None:
    if model_files.is_legacy_keras(p):
        with open(p, "rb") as fh:
            if fh.read(8) != model_files.HDF5_SIGNATURE:
                raise fileformats.FormatError("no HDF5 signature")
        return
    if not zipfile.is_zipfile(p):
        raise fileformats.FormatError("not a zip archive (a .keras file is a zip; truncated?)")
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            if "config.json" not in names:
                raise fileformats.FormatError(f"no config.json in the archive (has {names[:5]})")
            json.loads(zf.read("config.json"))
            bad = zf.testzip()
            if bad is not None:
                raise fileformats.FormatError(f"member {bad!r} fails its CRC check (corrupt)")
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        if isinstance(exc, fileformats.FormatError):
            raise
        raise fileformats.FormatError(f"corrupt archive ({exc})") from None


def _validate_saved_model(d: Path) -> None:
    pb = d / "saved_model.pb"
    if not pb.exists():
        if (d / "saved_model.pbtxt").exists():
            return
        raise LoadError(f"{d}: no saved_model.pb (not a SavedModel directory)")
    fileformats.check_saved_model_pb(_read(pb))
    index = d / "variables" / "variables.index"
    if (d / "variables").is_dir() and index.exists() and index.stat().st_size == 0:
        raise LoadError(f"{index}: empty variables index (truncated SavedModel)")


# -- the child-process probe (through edgeport.children, the one runner) ----------------------

def probe_job(job: dict[str, Any]) -> dict[str, Any]:
    """Child side (``edgeport.worker`` kind ``probe``): load the file, run one batch of zeros."""
    from edgeport.runtimes.registry import session_class

    t0 = time.perf_counter()
    session = session_class(job["runtime"])(job["path"], **job["options"])
    session.self_test()
    return {"engine": session.engine, "seconds": time.perf_counter() - t0}


def _identity(p: Path) -> tuple:
    if p.is_dir():
        stats = [f.stat() for f in sorted(p.rglob("*")) if f.is_file()]
        return (str(p.resolve()), sum(s.st_size for s in stats),
                max((s.st_mtime_ns for s in stats), default=0), len(stats))
    st = p.stat()
    return (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def probe(runtime: str, path: str | os.PathLike, options: dict[str, Any], *,
          timeout: float | None = None) -> None:
    """Load ``path`` with ``runtime`` in a child process first; raise if that fails or crashes."""
    p = model_root(path)
    try:
        key = (runtime, _identity(p), json.dumps(options, sort_keys=True, default=str))
    except OSError as exc:
        raise LoadError(f"{p}: unreadable ({exc.strerror or exc})") from None
    if key not in _PROBE_CACHE:
        timeout = timeout or PROBE_TIMEOUT_S.get(runtime, DEFAULT_PROBE_TIMEOUT_S)
        t0 = time.perf_counter()
        result = run_job({"kind": "probe", "runtime": runtime, "path": str(p), "options": options},
                         timeout=timeout, label=f"the {runtime} load probe")
        PROBE_SECONDS.append(time.perf_counter() - t0)
        _PROBE_CACHE[key] = None if result.get("ok") else result
    if _PROBE_CACHE[key] is not None:
        _raise(p, runtime, _PROBE_CACHE[key])


def _raise(p: Path, runtime: str, result: dict[str, Any]) -> None:
    kind = result.get("error_type")
    if kind == "ChildCrashed":
        raise LoadError(f"{p}: the {runtime} engine crashed ({result.get('signal')}) while loading it; "
                        "the file is probably corrupt or not made for this engine")
    if kind == "ChildTimedOut":
        raise LoadError(f"{p}: the {runtime} engine did not finish loading it (hung?): {message_of(result)}")
    if kind in RUNNER_FAILURES:
        raise LoadError(f"{p}: the {runtime} engine could not load it: {message_of(result)}")
    if error_class(result) is not None:  # the child's own typed error (LoadError, DeviceUnavailable, ...)
        raise_for(result, str(p))
    raise LoadError(f"{p}: the {runtime} engine could not load it: {result.get('error')}")


def clear_cache() -> None:
    _PROBE_CACHE.clear()
