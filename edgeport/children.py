"""The one way edgeport runs work in a child process: a job dict in, a result dict out.

``run_job(job)`` starts ``python -m edgeport.worker JOB.json RESULT.json`` (through
``EDGEPORT_CHILD_LAUNCHER`` inside an emulated board) and always returns a dict:

- ``{"ok": True, ...}``: what the job function returned;
- ``{"ok": False, "error_type": CLASS, "error": "CLASS: message"}``: the job raised (its class name
  travels, so ``raise_for`` raises a LoadError as a LoadError);
- ``error_type`` ``ChildCrashed`` (with ``signal``, e.g. ``SIGSEGV``: a crash in native code),
  ``ChildTimedOut`` (past ``timeout``, or no progress for ``idle_timeout``: killed),
  ``ChildOutOfMemory`` (past ``memory_limit``, or killed by the kernel's OOM killer) or
  ``ChildFailed`` (exited without a result, or could not start): the message names the job.

Failures carry ``stderr`` (its last lines) and ``job`` (the kind). The child never dumps core.
Used by export isolation, the load probe, TFLite Micro arena trials, verify/bench/fix jobs and the
fuzz workers; no other package module starts Python processes (tests/test_children.py checks).
"""
from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from edgeport import errors
from edgeport.errors import EdgeportError

#: A command prefix for child processes, for an interpreter that cannot start itself: inside a
#: qemu-user emulated board (no binfmt_misc), ``qemu-aarch64-static -cpu cortex-a72 -L ROOTFS``.
LAUNCHER_VAR = "EDGEPORT_CHILD_LAUNCHER"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
STDERR_LINES = 5
_POLL_S = 0.02

#: Job kinds run in the calling process instead of a child: the test suite sets verify's own jobs
#: here (TensorFlow and the engines are loaded in it already); tests/test_children.py and one verify
#: test per engine keep proving the child path. Empty for every command: never set it there.
IN_PROCESS: set[str] = set()


class ChildFailed(EdgeportError):
    """A child process ended without a result (it exited early, or could not start)."""


class ChildCrashed(ChildFailed):
    """A child process was killed by a signal (a crash inside native code)."""


class ChildTimedOut(ChildFailed):
    """A child process ran past its time (or made no progress) and was killed."""


class ChildOutOfMemory(ChildFailed):
    """A child process ran out of memory (its limit, or the kernel's OOM killer)."""


#: error_type names the runner itself gives (not raised by a job).
RUNNER_FAILURES = tuple(c.__name__ for c in (ChildFailed, ChildCrashed, ChildTimedOut, ChildOutOfMemory))


def launcher() -> list[str]:
    """The command prefix child processes are started through (empty: run directly)."""
    return shlex.split(os.environ.get(LAUNCHER_VAR, ""))


def child_env(threads: int | None = None) -> dict[str, str]:
    """The child's environment: ours, quiet TensorFlow, the parent's import path, thread caps."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the caller's PYTHONPATH first, as Python orders it itself, then the parent's own sys.path
    env["PYTHONPATH"] = os.pathsep.join(([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []) +
                                        [p for p in sys.path if p])
    if threads:
        env.update({k: str(threads) for k in THREAD_VARS})
    return env


def _limits(memory_limit: int | None) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: no core files, optional address-space cap
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    return apply


def _tail(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        return []
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 16384))
        text = fh.read().decode("utf-8", "replace")
    return [ln[:300] for ln in text.splitlines() if ln.strip()][-STDERR_LINES:]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        return (path.stat().st_size, path.stat().st_mtime_ns) if path is not None else None
    except OSError:
        return None


def _wait(proc: subprocess.Popen, timeout: float, progress: Path | None, idle_timeout: float | None,
          startup_timeout: float | None) -> str | None:
    """Wait for the child; returns None when it exited, else why it was killed (a message)."""
    start = last = time.monotonic()
    seen = _stamp(progress)
    while True:
        try:
            proc.wait(timeout=_POLL_S)
            return None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now - start > timeout:
            why = f"ran past its {timeout:.0f} s limit (hung?)"
        elif idle_timeout is not None:
            stamp = _stamp(progress)
            if stamp != seen:
                seen, last, startup_timeout = stamp, now, None
            limit = startup_timeout if startup_timeout is not None else idle_timeout
            why = f"made no progress for {limit:.0f} s (hung?)" if now - last > limit else None
        else:
            why = None
        if why:
            proc.kill()
            proc.wait()
            return why


def _failure(kind: str, label: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error_type": kind, "error": f"{label}: {message}", **extra}


def run_job(job: dict[str, Any], *, threads: int | None = None, timeout: float = 600.0, stream: bool = False,
            memory_limit: int | None = None, progress: Path | None = None, idle_timeout: float | None = None,
            startup_timeout: float | None = None, label: str | None = None) -> dict[str, Any]:
    """Run ``job`` (``{"kind": KIND, ...}``, see ``edgeport.worker.JOBS``) in a fresh process; returns
    its result dict or a failure dict (module docstring). Never raises for the child's failure.

    stream: the child's stderr (progress lines) goes straight to ours instead of being kept.
    memory_limit: bytes of address space the child may map (None: no limit).
    progress, idle_timeout: kill the child when ``progress`` (a file it writes) has not changed for
        ``idle_timeout`` seconds (``startup_timeout`` before its first change).
    label: how failures name the job (default: ``the KIND job``)."""
    label = label or f"the {job.get('kind', '?')} job"
    if job.get("kind") in IN_PROCESS:
        from edgeport.worker import run

        return run(job, catch=Exception)
    with tempfile.TemporaryDirectory(prefix="edgeport-job-") as tmp:
        job_path, result_path, err_path = Path(tmp) / "job.json", Path(tmp) / "result.json", Path(tmp) / "stderr"
        job_path.write_text(json.dumps(job))
        cmd = [*launcher(), sys.executable, "-m", "edgeport.worker", str(job_path), str(result_path)]
        t0 = time.perf_counter()
        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(cmd, env=child_env(threads), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL,
                                        stderr=None if stream else err, preexec_fn=_limits(memory_limit))
            except OSError as exc:
                hint = f"; inside an emulated board set {LAUNCHER_VAR} to its qemu command" if not launcher() else ""
                return _failure("ChildFailed", label, f"could not start its process {cmd[0]!r} "
                                                      f"({exc.strerror or exc}){hint}", job=job.get("kind"))
            try:
                killed = _wait(proc, timeout, progress, idle_timeout, startup_timeout)
            finally:  # the caller interrupted (Ctrl-C): the child goes too
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        seconds = time.perf_counter() - t0
        tail = _tail(None if stream else err_path)
        extra = {"job": job.get("kind"), "stderr": tail, "seconds": round(seconds, 3)}
        if killed:
            return _failure("ChildTimedOut", label, f"{killed}; the process was killed", **extra)
        if result_path.is_file():
            try:
                return json.loads(result_path.read_text())
            except ValueError:
                pass
        last = f": {tail[-1]}" if tail else ""
        code = proc.returncode
        if code < 0:
            name = _signal_name(-code)
            if -code == signal.SIGKILL:
                return _failure("ChildOutOfMemory", label, "was killed by SIGKILL (out of memory? the kernel's "
                                                           f"OOM killer sends it){last}", signal=name, **extra)
            return _failure("ChildCrashed", label, f"crashed: its process was killed by {name} (a crash in native "
                                                   f"code){last}", signal=name, **extra)
        return _failure("ChildFailed", label, f"its process exited {code} without a result{last or ': no output'}",
                        **extra)


def error_class(result: dict[str, Any]) -> type[EdgeportError] | None:
    """The EdgeportError subclass a failed result names (the child's own, or the runner's), or None."""
    name = str(result.get("error_type", ""))
    cls = getattr(errors, name, None) or {c.__name__: c for c in (ChildFailed, ChildCrashed, ChildTimedOut,
                                                                  ChildOutOfMemory)}.get(name)
    if name == "MemoryError":
        return ChildOutOfMemory
    if isinstance(cls, type) and issubclass(cls, EdgeportError) and cls is not errors.UnknownNameError:
        return cls
    return None


def message_of(result: dict[str, Any]) -> str:
    """The failure's message without its ``CLASS: `` prefix."""
    name, message = str(result.get("error_type", "")), str(result.get("error", "failed"))
    return message.split(": ", 1)[1] if name and message.startswith(f"{name}: ") else message


def raise_for(result: dict[str, Any], where: str, *, default: type[EdgeportError] = EdgeportError) -> None:
    """Raise a failed job's error as an EdgeportError naming ``where``: the child's own typed error
    keeps its type (a LoadError stays a LoadError), a crash/timeout is ChildCrashed/ChildTimedOut,
    anything else (a ValueError, ...) is ``default`` with its class name in the message."""
    if result.get("ok"):
        return
    cls = error_class(result)
    own = cls is not None and cls.__name__ == result.get("error_type")  # its class is the prefix: drop it
    message = message_of(result) if own else str(result.get("error", "failed"))
    head = where.split()[0] if where.split() else where
    raise (cls or default)(message if head and head in message else f"{where}: {message}")


def selftest_job(job: dict[str, Any]) -> dict[str, Any]:
    """A job that does what it is told (``do``: ok, raise CLASS, abort, segv, sleep SECONDS,
    allocate BYTES): the runner's own check (tests/test_children.py)."""
    do, arg = job.get("do", "ok"), job.get("arg")
    if do == "raise":
        cls = getattr(errors, str(arg), None) or {"ValueError": ValueError}.get(str(arg), RuntimeError)
        raise cls(f"told to raise {arg}")
    if do == "abort":
        os.abort()
    if do == "segv":
        import ctypes

        ctypes.string_at(0)
    if do == "sleep":
        time.sleep(float(arg))
    if do == "allocate":
        return {"bytes": len(bytearray(int(arg)))}
    return {"pid": os.getpid(), "echo": arg}
