"""Run one benchmark job in a fresh Python process (see ``worker.py``) and read its JSON result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def run_job(job: dict[str, Any], *, threads: int | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """Run ``job`` in ``python -m edgeport.benchmarks.worker``; returns its result, or
    ``{"ok": False, "error": ...}`` when the child failed, crashed or timed out."""
    with tempfile.TemporaryDirectory(prefix="edgeport-bench-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job))
        cmd = [sys.executable, "-m", "edgeport.benchmarks.worker", str(job_path), str(result_path)]
        try:
            proc = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
        if result_path.exists():
            try:
                return json.loads(result_path.read_text())
            except ValueError:
                pass
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return {"ok": False, "error": f"the benchmark process was killed by {name} "
                                          f"(a crash inside the engine): {_last_line(proc.stderr)}"}
        return {"ok": False, "error": f"the benchmark process exited {proc.returncode}: "
                                      f"{_last_line(proc.stderr) or 'no output'}"}
