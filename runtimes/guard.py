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
import shlex
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from edgeport import errors
from edgeport.errors import LoadError
from edgeport.runtimes import fileformats
from edgeport.runtimes.base import available_memory

#: Artifact kinds: how a path is recognised.
KINDS = ("keras", "savedmodel", "tflite", "onnx")
SUFFIXES = {".keras": "keras", ".h5": "keras", ".tflite": "tflite", ".onnx": "onnx"}

#: Seconds a probe may take before the engine is called hung (TensorFlow imports are slow).
PROBE_TIMEOUT_S = {"keras": 180.0, "savedmodel": 180.0}
DEFAULT_PROBE_TIMEOUT_S = 60.0

_PROBE_CACHE: dict[tuple, tuple[str, str] | None] = {}
#: Seconds each child probe took (most recent last), for reports and the benchmark.
PROBE_SECONDS: list[float] = []


def artifact_kind(path: str | os.PathLike) -> str:
    """``keras`` / ``savedmodel`` / ``tflite`` / ``onnx`` for a path, or LoadError."""
    p = Path(path)
    if not p.exists():
        raise LoadError(f"{p}: no such file or directory")
    if p.is_dir():
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise LoadError(f"{p}: a directory without saved_model.pb (not a SavedModel)")
    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        return "savedmodel"
    kind = SUFFIXES.get(p.suffix.lower())
    if kind:
        return kind
    try:  # sniff unknown suffixes
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise LoadError(f"{p}: unreadable ({exc.strerror})") from None
    if head[4:8] == fileformats.TFLITE_IDENTIFIER:
        return "tflite"
    if head[:4] == b"PK\x03\x04":
        return "keras"
    raise LoadError(f"{p}: unknown model file type {p.suffix or '(no suffix)'!r}; "
                    f"expected one of {', '.join(SUFFIXES)} or a SavedModel directory")


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
        elif kind == "keras":
            _validate_keras(p)
    except fileformats.FormatError as exc:
        raise LoadError(f"{p}: not a valid {kind} file: {exc}") from None
    except OSError as exc:
        raise LoadError(f"{p}: unreadable ({exc.strerror or exc})") from None
    return kind


def _read(p: Path) -> bytes:
    with open(p, "rb") as fh:
        return fh.read()


def _validate_keras(p: Path) -> None:
    if p.suffix.lower() == ".h5":
        with open(p, "rb") as fh:
            if fh.read(8) != b"\x89HDF\r\n\x1a\n":
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


# -- the child-process probe -----------------------------------------------------------------

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
runtime, path, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    from edgeport.runtimes.registry import session_class
    session = session_class(runtime)(path, **options)
    session.self_test()
    print(json.dumps({"ok": True, "engine": session.engine, "seconds": time.perf_counter() - t0}))
except BaseException as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "error": str(exc)}))
    sys.exit(3)
"""


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
    if key in _PROBE_CACHE:
        cached = _PROBE_CACHE[key]
        if cached is not None:
            _raise(p, runtime, *cached)
        return
    timeout = timeout or PROBE_TIMEOUT_S.get(runtime, DEFAULT_PROBE_TIMEOUT_S)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([x for x in sys.path if x] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.perf_counter()
    try:
        launcher = shlex.split(os.environ.get("EDGEPORT_CHILD_LAUNCHER", ""))  # an emulated board's qemu
        proc = subprocess.run([*launcher, sys.executable, "-c", _CHILD, runtime, str(p), json.dumps(options)],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise LoadError(f"{p}: could not start the {runtime} probe process ({exc.strerror or exc}); inside an "
                        "emulated board set EDGEPORT_CHILD_LAUNCHER to its qemu command") from None
    except subprocess.TimeoutExpired:
        raise LoadError(f"{p}: the {runtime} engine did not finish loading it within {timeout:.0f} s "
                        "(hung?)") from None
    PROBE_SECONDS.append(time.perf_counter() - t0)
    result = _parse_child(proc.stdout)
    if proc.returncode == 0 and result and result.get("ok"):
        _PROBE_CACHE[key] = None
        return
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        failure = ("LoadError", f"the {runtime} engine crashed ({name}) while loading it; "
                   "the file is probably corrupt or not made for this engine")
    elif result and not result.get("ok"):
        failure = (result.get("type", "Error"), result.get("error", ""))
    else:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        failure = ("LoadError", f"the {runtime} engine exited with status {proc.returncode} while "
                   f"loading it: {' | '.join(tail) or 'no message'}")
    _PROBE_CACHE[key] = failure
    _raise(p, runtime, *failure)


def _parse_child(stdout: str) -> dict[str, Any] | None:
    for line in reversed((stdout or "").strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def _raise(p: Path, runtime: str, type_name: str, message: str) -> None:
    cls = getattr(errors, type_name, None)
    if isinstance(cls, type) and issubclass(cls, errors.EdgeportError) and cls is not errors.UnknownNameError:
        # The child's own typed error (LoadError, DeviceUnavailable, ...): same type, same text.
        raise cls(message if str(p) in message else f"{p}: {message}")
    raise LoadError(f"{p}: the {runtime} engine could not load it: {type_name}: {message}")


def clear_cache() -> None:
    _PROBE_CACHE.clear()
