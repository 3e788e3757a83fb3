"""One job in a fresh process: ``python -m edgeport.worker JOB.json RESULT.json``.

Started only by :func:`edgeport.children.run_job` (the one child-process runner). A job is
``{"kind": KIND, ...}``; KIND names a function in ``JOBS`` (resolved lazily, so a job
imports only what it uses). Running each measurement or verification in its own process keeps
figures honest (load time includes the engine's start-up, peak memory is this job's alone, thread
settings cannot leak) and keeps a crash inside an engine out of the calling process.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from collections.abc import Callable

from edgeport.lazy import lookup, resolve

JOBS: dict[str, str] = {
    "export": "edgeport.export.pipeline:export_job",
    "runtime": "edgeport.benchmarks.bench.jobs:run_runtime",
    "keras_predict": "edgeport.benchmarks.bench.jobs:run_keras_predict",
    "peak": "edgeport.benchmarks.bench.jobs:run_peak",
    "macs": "edgeport.benchmarks.bench.jobs:run_macs",
    "outputs": "edgeport.benchmarks.verify.jobs:run_outputs",
    "reference": "edgeport.benchmarks.verify.reference:compute_reference",
    "fix_search": "edgeport.benchmarks.verify.fix_search:search",
    "probe": "edgeport.runtimes.guard:probe_job",
    "fuzz": "edgeport.benchmarks.fuzz.harness:worker_job",
    "selftest": "edgeport.children:selftest_job",
}


def job_function(job: dict) -> Callable[[dict], dict]:
    """The function that runs ``job``: its kind's row in JOBS, or a "call" job's own
    ``"module:attr"`` target (a format's debugger, say)."""
    return resolve(job["target"]) if job["kind"] == "call" else lookup(JOBS, "job kind", job["kind"])


def run(job: dict, *, catch: type[BaseException] = BaseException) -> dict:
    """Run ``job`` here; its result dict, or ``{"ok": False, ...}`` naming the error's class.
    The result is what travels between processes: it goes through JSON either way."""
    try:
        result = {"ok": True, **job_function(job)(job)}
    except catch as exc:  # the parent reports it as this job's error (typed)
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "error_type": type(exc).__name__,
                  "traceback": traceback.format_exc(limit=5)}
    return json.loads(json.dumps(result))


def main(argv: list[str]) -> int:
    job_path, result_path = Path(argv[0]), Path(argv[1])
    result_path.write_text(json.dumps(run(json.loads(job_path.read_text()))))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
