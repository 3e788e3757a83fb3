"""Run one job in a fresh Python process (``edgeport.worker``) and read its JSON result."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgeport import errors

#: A command prefix for child processes, for an interpreter that cannot start itself: inside a
#: qemu-user emulated board (no binfmt_misc), ``qemu-aarch64-static -cpu cortex-a72 -L ROOTFS``.
LAUNCHER_VAR = "EDGEPORT_CHILD_LAUNCHER"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    if threads:
        env.update({k: str(threads) for k in THREAD_VARS})
    return env


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _no_core_dump() -> None:  # a crashing engine must not litter the working directory
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def launcher() -> list[str]:
    """The command prefix child processes are started through (empty: run directly)."""
    import shlex

    return shlex.split(os.environ.get(LAUNCHER_VAR, ""))


def run_job(job: dict[str, Any], *, threads: int | None = None, timeout: float = 600.0,
            stream: bool = False) -> dict[str, Any]:
    """Run ``job`` in ``python -m edgeport.worker``; returns its result, or
    ``{"ok": False, "error": ...}`` when the child failed, crashed or timed out.
    ``stream``: the child's stderr (its progress lines) goes straight to ours."""
    with tempfile.TemporaryDirectory(prefix="edgeport-job-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        cmd = [*launcher(), sys.executable, "-m", "edgeport.worker", str(job_path), str(result_path)]
        try:
            proc = subprocess.run(cmd, env=child_env(threads), stdout=subprocess.PIPE,
                                  stderr=None if stream else subprocess.PIPE, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, preexec_fn=_no_core_dump)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout:.0f} s (hung?); the process was killed",
                    "error_type": "Timeout"}
        if result_path.exists():
            try:
                return json.loads(result_path.read_text())
            except ValueError:
                pass
        if proc.returncode < 0:
            try:
                name = signal.Signals(-proc.returncode).name
            except ValueError:
                name = f"signal {-proc.returncode}"
            return {"ok": False, "error_type": "Crash",
                    "error": f"the process was killed by {name} (a crash inside the engine): "
                             f"{_last_line(proc.stderr or '')}"}
        return {"ok": False, "error": f"the process exited {proc.returncode}: "
                                      f"{_last_line(proc.stderr or '') or 'no output'}"}


def raise_for(result: dict[str, Any], where: str) -> None:
    """Raise a failed job's error as an EdgeportError naming ``where`` (the child's own typed
    error keeps its type: a LoadError stays a LoadError)."""
    if result.get("ok"):
        return
    name, message = result.get("error_type", ""), str(result.get("error", "failed"))
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.EdgeportError) and cls is not errors.UnknownNameError:
        message = message.split(": ", 1)[1] if message.startswith(f"{name}: ") else message
        raise cls(message if where.split()[0] in message else f"{where}: {message}")
    raise errors.EdgeportError(f"{where}: {message}")
